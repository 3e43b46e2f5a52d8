"""Delivery fixtures: a registry with ``income`` v1 in production and v2 in staging, and
traffic simulated through the rollout's own traffic plan into the prediction log.

The prediction log rows are written here as serving's writer writes them (same table,
same columns); the serving tests cover the writer itself.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bastion.db import utcnow
from bastion.delivery.controller import RolloutController
from bastion.delivery.service import DeliveryService
from bastion.delivery.traffic import RolloutTraffic
from bastion.registry.service import ModelRegistry
from bastion.serving.models import PredictionLabelRow, PredictionRow
from registry.conftest import (  # noqa: F401  (fixtures)
    ADA,
    ANA,
    BOB,
    adult,
    baseline_model,
    events,
    mlflow_template,
    register,
    registry,
    set_registry_policy,
    to_production,
)

MODEL = "income"


@dataclass
class Income:
    registry: ModelRegistry
    production: int
    candidate: int


@pytest.fixture
def income(
    runtime: Any,
    registry: ModelRegistry,  # noqa: F811  (the fixture imported above)
    baseline_model: Any,  # noqa: F811
    tmp_path: Path,
) -> Income:
    # The gates are the registry's business (tests/registry); here, only approvals.
    set_registry_policy(runtime, {})
    v1 = register(registry, baseline_model, tmp_path, "one")
    to_production(registry, MODEL, v1)
    v2 = register(registry, baseline_model, tmp_path, "two")
    request = registry.request_promotion(ANA, MODEL, v2, "staging", "try v2")
    registry.approve(ADA, request.id, notes="ok for a canary")
    return Income(registry, v1, v2)


@pytest.fixture
def delivery(runtime: Any) -> DeliveryService:
    return DeliveryService(runtime.db, runtime.ledger, runtime.policy)


@pytest.fixture
def controller(delivery: DeliveryService) -> RolloutController:
    return RolloutController(delivery, holder="replica-a")


@dataclass
class Simulator:
    """Sends requests through the traffic plan and logs what each version answers."""

    runtime: Any
    traffic: RolloutTraffic
    error_rate: dict[int, float]
    production: int = 1
    seed: int = 0
    sent: int = 0

    def send(self, n: int, *, labels: bool = False, at: Any = None) -> dict[str, int]:
        rng = np.random.default_rng(self.seed + self.sent)
        self.traffic.refresh()
        arms: dict[str, int] = {}
        rows: list[Any] = []
        when = at or utcnow()
        for i in range(n):
            key = f"user-{self.sent + i}"
            routing = self.traffic.route(MODEL, key)
            routes = [(self.production, "production")] if routing is None else []
            if routing is not None:
                routes = [(routing.primary.version, routing.primary.arm)]
                routes += [(s.version, s.arm) for s in routing.shadows]
            for version, arm in routes:
                arms[arm] = arms.get(arm, 0) + 1
                failed = rng.random() < self.error_rate.get(version, 0.01)
                score = float(rng.random())
                request_id = f"req-{uuid.uuid4().hex}"
                rows.append(
                    PredictionRow(
                        request_id=request_id,
                        model=MODEL,
                        version=version,
                        arm=arm,
                        created_at=when,
                        latency_ms=float(rng.lognormal(3.0, 0.3)),
                        outcome="error" if failed else "ok",
                        error_code="model_error" if failed else None,
                        prediction=None if failed else [int(score > 0.7)],
                        score=None if failed else score,
                        features=None,
                        features_digest="0" * 64,
                        route_key_digest=None,
                    )
                )
                if labels and not failed:
                    rows.append(PredictionLabelRow(request_id=request_id, label=int(score > 0.7)))
        self.sent += n
        with self.runtime.db.session() as session:
            session.add_all(rows)
        return arms


@pytest.fixture
def simulate(runtime: Any) -> Simulator:
    return Simulator(runtime, RolloutTraffic(runtime.db, ttl_s=0.0), {})


def later(minutes: float) -> Any:
    return utcnow() + timedelta(minutes=minutes)
