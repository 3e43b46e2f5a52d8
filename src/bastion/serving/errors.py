"""Errors raised by :mod:`bastion.serving`.

BastionError (bastion.errors)
├── NotFound
│   ├── NothingServed            model_not_served            404
│   ├── PredictionNotFound       prediction_not_found        404
│   └── NoLabels                 no_labels                   404
├── InvalidInput
│   ├── InvalidPayload           invalid_payload             422  (``param`` names the field)
│   ├── InvalidLabels            invalid_labels              400
│   └── InvalidWindow            invalid_window              400
├── Forbidden
│   └── PinNotAllowed            pin_not_allowed             403
├── Conflict
│   ├── FeaturesNotKept          features_not_kept           409
│   └── NotExplainable           not_explainable             409
└── Unavailable
    └── ModelLoadFailed          model_load_failed           503
"""

from __future__ import annotations

from bastion.errors import Conflict, Forbidden, InvalidInput, NotFound, Unavailable


class NothingServed(NotFound):
    code = "model_not_served"


class PredictionNotFound(NotFound):
    code = "prediction_not_found"


class NoLabels(NotFound):
    code = "no_labels"


class InvalidPayload(InvalidInput):
    status = 422
    code = "invalid_payload"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message, param=param)
        self.param = param


class InvalidLabels(InvalidInput):
    code = "invalid_labels"


class InvalidWindow(InvalidInput):
    code = "invalid_window"


class PinNotAllowed(Forbidden):
    code = "pin_not_allowed"


class FeaturesNotKept(Conflict):
    code = "features_not_kept"


class NotExplainable(Conflict):
    code = "not_explainable"


class ModelLoadFailed(Unavailable):
    code = "model_load_failed"
