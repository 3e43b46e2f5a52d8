"""Errors raised by ``bastion.monitoring``.

    BastionError
    └── MonitoringError                      monitoring_error
        ├── InvalidData (InvalidInput)       monitoring_invalid_data
        │   ├── ColumnNotFound               monitoring_column_not_found
        │   ├── EmptyData                    monitoring_empty_data
        │   └── IncompatibleSketch           monitoring_incompatible_sketch
        ├── UnsupportedSource (InvalidInput) monitoring_unsupported_source
        ├── UnsupportedModel (InvalidInput)  monitoring_unsupported_model
        └── NotifierFailed (Unavailable)     monitoring_notifier_failed

Codes are stable: never renamed once released. Every message says what to do next.
The CLI maps ``InvalidInput`` subclasses to exit code 2 (bad input) and a failed
check to exit code 1.
"""

from __future__ import annotations

from bastion.errors import BastionError, InvalidInput, Unavailable


class MonitoringError(BastionError):
    code = "monitoring_error"


class InvalidData(MonitoringError, InvalidInput):
    code = "monitoring_invalid_data"


class ColumnNotFound(InvalidData):
    code = "monitoring_column_not_found"


class EmptyData(InvalidData):
    code = "monitoring_empty_data"


class IncompatibleSketch(InvalidData):
    code = "monitoring_incompatible_sketch"


class UnsupportedSource(MonitoringError, InvalidInput):
    code = "monitoring_unsupported_source"


class UnsupportedModel(MonitoringError, InvalidInput):
    code = "monitoring_unsupported_model"


class NotifierFailed(MonitoringError, Unavailable):
    code = "monitoring_notifier_failed"
