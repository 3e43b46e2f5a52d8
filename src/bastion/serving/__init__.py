"""Serving registered models: ``/predict`` by alias or version, a model cache that swaps
atomically when an alias moves, a prediction log written in batches, labels,
explanations, monitoring from the log, and the routing seam
(:mod:`bastion.serving.routing`) that progressive delivery plugs into.

Plain Python: no web framework. MLflow is imported on first use; names load on first
use (PEP 562).

    service = runtime.serving()
    service.plan = my_traffic_plan          # a TrafficPlan; None serves the alias
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bastion.lazy import lazy_exports

if TYPE_CHECKING:
    from bastion.serving.cache import ModelCache, Served
    from bastion.serving.log import PredictionLog
    from bastion.serving.models import PredictionLabelRow, PredictionRow
    from bastion.serving.routing import Route, Routing, TrafficPlan
    from bastion.serving.service import Answer, PredictionService

_EXPORTS = {
    "Answer": "bastion.serving.service",
    "ModelCache": "bastion.serving.cache",
    "PredictionLabelRow": "bastion.serving.models",
    "PredictionLog": "bastion.serving.log",
    "PredictionRow": "bastion.serving.models",
    "PredictionService": "bastion.serving.service",
    "Route": "bastion.serving.routing",
    "Routing": "bastion.serving.routing",
    "Served": "bastion.serving.cache",
    "TrafficPlan": "bastion.serving.routing",
}

__getattr__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "Answer",
    "ModelCache",
    "PredictionLabelRow",
    "PredictionLog",
    "PredictionRow",
    "PredictionService",
    "Route",
    "Routing",
    "Served",
    "TrafficPlan",
]
