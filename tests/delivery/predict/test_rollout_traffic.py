"""A rollout's traffic through the real ``/predict``: one user, one version; shadow answers logged and never returned; the controller reads serving's log."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bastion.delivery.controller import RolloutController
from bastion.delivery.service import DeliveryService
from bastion.registry.service import ModelRegistry
from bastion.serving.models import PredictionRow
from serving.conftest import ANA, NAME, Model, promote, register
from serving.test_predict import ROW, bearer

pytestmark = pytest.mark.anyio


def logged(runtime: Any) -> list[PredictionRow]:
    runtime.serving().log.flush()
    with runtime.db.session() as session:
        rows = list(session.scalars(select(PredictionRow).order_by(PredictionRow.id)))
        session.expunge_all()
    return rows


@pytest.fixture
def candidate(registry: ModelRegistry, served_v1: int, income_v2: Model) -> int:
    version = register(registry, income_v2)
    promote(registry, NAME, version, to="staging")
    return version


async def test_the_route_key_sends_one_user_to_one_version(
    client: httpx.AsyncClient,
    runtime: Any,
    key_for: Any,
    served_v1: int,
    candidate: int,
) -> None:
    delivery = DeliveryService(runtime.db, runtime.ledger, runtime.policy)
    delivery.start(ANA, NAME, candidate, steps="30,100", interval="10m")
    # 1,000 calls of the plan serving asks (its HTTP path costs ~0.1 s a call here; the
    # hypothesis test in test_traffic.py covers 1,000 keys), then 200 over HTTP.
    plan = runtime.serving().plan
    first = {f"user-{i}": plan.route(NAME, f"user-{i}") for i in range(100)}
    for i in range(1_000):
        assert plan.route(NAME, f"user-{i % 100}") == first[f"user-{i % 100}"]
    headers = bearer(key_for("analyst"))
    seen: dict[str, set[int]] = {}
    for i in range(200):
        user = f"user-{i % 20}"
        r = await client.post(
            f"/predict/{NAME}", json={"inputs": ROW}, headers=headers | {"user": user}
        )
        assert r.status_code == 200, r.text
        seen.setdefault(user, set()).add(r.json()["version"])
    assert all(len(versions) == 1 for versions in seen.values()), seen
    per_version = Counter(next(iter(v)) for v in seen.values())
    assert set(per_version) == {served_v1, candidate}  # both arms serve someone
    arms = Counter(row.arm for row in logged(runtime))
    assert arms["canary"] + arms["production"] == 200
    for user, versions in seen.items():
        routed = first[user]
        assert routed is not None and versions == {routed.primary.version}
    # The controller reads these rows: 200 requests are too few to judge the error rate.
    # v2 (the Fairlearn-mitigated model) is slower than v1; when its p95 is clearly
    # worse, the latency check may already roll it back, and only that check.
    (look,) = RolloutController(delivery).tick(model=NAME)
    assert look.analysis is not None
    checks = {c.metric: c for c in look.analysis.checks}
    numbers = checks["error_rate"].numbers
    assert checks["error_rate"].verdict == "hold"
    assert (numbers["n_base"], numbers["n_candidate"]) == (arms["production"], arms["canary"])
    failing = {m for m, c in checks.items() if c.verdict == "fail"}
    if look.action == "rolled_back":
        latency = checks["latency"].numbers
        assert failing == {"latency"}
        assert latency["p95_candidate_ms"] > 1.2 * latency["p95_base_ms"]  # type: ignore[operator]
    else:
        assert (look.action, failing) == ("held", set())


async def test_shadow_answers_are_logged_and_never_returned(
    client: httpx.AsyncClient,
    runtime: Any,
    key_for: Any,
    served_v1: int,
    candidate: int,
) -> None:
    delivery = DeliveryService(runtime.db, runtime.ledger, runtime.policy)
    delivery.start(ANA, NAME, candidate, kind="shadow", steps="100", interval="10m")
    headers = bearer(key_for("analyst"))
    answers = []
    for i in range(30):
        r = await client.post(
            f"/predict/{NAME}", json={"inputs": ROW}, headers=headers | {"user": f"u{i}"}
        )
        assert r.status_code == 200
        answers.append(r.json())
    assert {a["version"] for a in answers} == {served_v1}
    assert all(
        set(a) == {"predictions", "model", "version", "alias", "request_id"} for a in answers
    )
    rows = logged(runtime)
    shadows = [r for r in rows if r.arm == "shadow"]
    assert len(shadows) == 30 and {r.version for r in shadows} == {candidate}
    assert {r.request_id for r in shadows}.isdisjoint({a["request_id"] for a in answers})
