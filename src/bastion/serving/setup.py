"""Building the prediction service from the runtime's parts."""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING

from bastion.serving.cache import ModelCache
from bastion.serving.log import PredictionLog
from bastion.serving.service import PredictionService
from bastion.serving.source import RegistrySource

if TYPE_CHECKING:
    from bastion.registry.service import ModelRegistry
    from bastion.runtime import Runtime


def build_serving(runtime: Runtime, registry: ModelRegistry) -> PredictionService:
    from bastion.runtime import secret_key

    metrics = runtime.metrics
    policy = runtime.policy
    cache = ModelCache(
        RegistrySource(registry.parts, runtime.settings.home / "serving-models"),
        alias_ttl_s=lambda: policy.policy.serving.alias_ttl_s,
        on_load=lambda name, version, outcome: metrics.model_loads.labels(name, outcome).inc(),
    )
    writer = PredictionLog(
        runtime.db, on_rows=lambda outcome, n: metrics.prediction_log_rows.labels(outcome).inc(n)
    )
    key = hmac.new(secret_key(runtime.settings), b"bastion/serving", hashlib.sha256).digest()
    return PredictionService(
        runtime.db,
        cache,
        writer,
        policy=lambda: policy.policy.serving,
        digest_key=key,
        metrics=metrics,
    )
