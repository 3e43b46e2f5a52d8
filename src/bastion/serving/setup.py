"""Building the prediction service from the runtime's parts."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import TYPE_CHECKING

from bastion.serving.cache import ModelCache
from bastion.serving.log import PredictionLog
from bastion.serving.service import PredictionService
from bastion.serving.source import RegistrySource

if TYPE_CHECKING:
    from bastion.db import Database
    from bastion.observability import Metrics
    from bastion.policy import PolicyStore
    from bastion.registry.service import ModelRegistry


def build_serving(
    db: Database,
    policy: PolicyStore,
    metrics: Metrics,
    registry: ModelRegistry,
    *,
    home: Path,
    secret: bytes,
) -> PredictionService:
    from bastion.delivery.traffic import RolloutTraffic

    cache = ModelCache(
        RegistrySource(registry.parts, home / "serving-models"),
        alias_ttl_s=lambda: policy.policy.serving.alias_ttl_s,
        on_load=lambda name, version, outcome: metrics.model_loads.labels(name, outcome).inc(),
    )
    # This process's alias moves reach serving at once; other processes' by the TTL.
    registry.parts.on_alias_moved(cache.invalidate)
    writer = PredictionLog(
        db, on_rows=lambda outcome, n: metrics.prediction_log_rows.labels(outcome).inc(n)
    )
    key = hmac.new(secret, b"bastion/serving", hashlib.sha256).digest()
    return PredictionService(
        db,
        cache,
        writer,
        policy=lambda: policy.policy.serving,
        digest_key=key,
        # Which version answers: the rollout controller's canary, A/B and shadow plans.
        plan=RolloutTraffic(db),
        metrics=metrics,
    )
