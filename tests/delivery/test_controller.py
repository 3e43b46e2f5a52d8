"""The controller on its own: a failing canary rolled back, a healthy one promoted after
approval, a restart resumed, one controller at a time; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from bastion.audit import EventFilter
from bastion.db import utcnow
from bastion.delivery.controller import RolloutController
from bastion.delivery.service import DeliveryService, rollback_with_traffic
from bastion.registry.errors import SelfApproval
from bastion.runtime import open_runtime

from .conftest import ADA, ANA, BOB, MODEL, Income, Simulator, register


def actions(runtime: Any, prefix: str = "deploy.") -> list[Any]:
    page = runtime.audit.page(EventFilter(), limit=500, order="asc").events
    return [e for e in page if e.action.startswith(prefix)]


def test_a_canary_failing_10_percent_is_rolled_back_by_the_controller_alone(
    runtime: Any,
    income: Income,
    delivery: DeliveryService,
    controller: RolloutController,
    simulate: Simulator,
) -> None:
    simulate.production = income.production
    simulate.error_rate = {income.production: 0.01, income.candidate: 0.10}
    delivery.start(ANA, MODEL, income.candidate, steps="20,50,100", interval="10m")
    outcomes: list[Any] = []
    now = utcnow()
    for _ in range(20):
        arms = simulate.send(300)
        assert arms.get("canary", 0) > 0
        now += timedelta(seconds=20)  # one look per batch: the controller's interval
        outcomes = controller.tick(now)
        if outcomes and outcomes[0].action == "rolled_back":
            break
    assert outcomes[0].action == "rolled_back"
    status = delivery.status(MODEL)
    assert (status.state, status.weight, status.final) == ("failed", 0, True)
    # Traffic is back on production: no request reaches the candidate.
    assert simulate.send(500) == {"production": 500}
    rollback = [e for e in actions(runtime) if e.action == "deploy.rollback"]
    assert len(rollback) == 1 and rollback[0].outcome == "failure"
    checks = {c["metric"]: c for c in rollback[0].details["analysis"]["checks"]}
    assert checks["error_rate"]["verdict"] == "fail"
    assert checks["error_rate"]["test"] == "msprt-2prop"
    assert checks["error_rate"]["numbers"]["rate_candidate"] > 0.05
    history = delivery.history(MODEL)
    assert history.decisions[0].action == "start"
    assert history.decisions[-1].action == "rollback"


def test_a_healthy_canary_reaches_100_percent_after_approval(
    runtime: Any,
    income: Income,
    delivery: DeliveryService,
    controller: RolloutController,
    simulate: Simulator,
) -> None:
    simulate.production = income.production
    simulate.error_rate = {income.production: 0.01, income.candidate: 0.01}
    delivery.start(ANA, MODEL, income.candidate, steps="10,50,100", interval="10m")
    weights = []
    now = utcnow()
    for _ in range(30):
        simulate.send(2000)
        now += timedelta(minutes=11)
        controller.tick(now)
        status = delivery.status(MODEL)
        weights.append(status.weight)
        if status.state == "passed":
            break
    assert status.state == "passed", status.last_analysis
    assert weights[-1] == 50 and 10 in weights
    # The controller never moves production itself: the registry's approval does.
    assert income.registry.get_version(MODEL, income.candidate).stage == "staging"
    request = income.registry.request_promotion(ADA, MODEL, income.candidate, "production", "ok")
    with pytest.raises(SelfApproval):
        income.registry.approve(ADA, request.id)  # requester ≠ approver
    assert controller.tick(now + timedelta(minutes=1))[0].action == "waiting"
    income.registry.approve(BOB, request.id, notes="canary passed")
    now += timedelta(minutes=2)
    (outcome,) = controller.tick(now)
    assert outcome.action == "promoted"
    status = delivery.status(MODEL)
    assert (status.state, status.weight) == ("promoted", 100)
    simulate.production = income.candidate
    assert simulate.send(100) == {"production": 100}
    seen = [e.action for e in actions(runtime)]
    assert seen[0] == "deploy.start"
    assert "deploy.step" in seen and "deploy.awaiting_approval" in seen
    assert seen[-1] == "deploy.promote"
    analyses = [e for e in actions(runtime) if e.action == "deploy.analysis"]
    assert any(e.details["verdict"] == "pass" for e in analyses)


def test_a_restart_mid_rollout_resumes_it(
    runtime: Any, income: Income, delivery: DeliveryService, simulate: Simulator
) -> None:
    simulate.production = income.production
    delivery.start(ANA, MODEL, income.candidate, steps="10,40,100", interval="10m")
    first = RolloutController(delivery, holder="replica-a")
    now = utcnow()
    for _ in range(10):
        simulate.send(2000)
        now += timedelta(minutes=11)
        first.tick(now)
        if delivery.status(MODEL).weight == 40:
            break
    assert delivery.status(MODEL).weight == 40
    # A new process: its own runtime and controller, nothing carried over but the
    # database. The old holder's lease runs out before the new one may act.
    again = open_runtime(runtime.settings, label="restarted")
    try:
        service = DeliveryService(again.db, again.ledger, again.policy)
        second = RolloutController(service, holder="replica-b")
        assert second.tick(now) == []
        assert service.status(MODEL).step_index == 1
        for _ in range(10):
            simulate.send(2000)
            now += timedelta(minutes=11)
            second.tick(now)
            if service.status(MODEL).state == "passed":
                break
        assert service.status(MODEL).state == "passed"
        assert service.status(MODEL).weight == 40
    finally:
        again.close()


def test_only_one_controller_acts_at_a_time(
    income: Income, delivery: DeliveryService, simulate: Simulator
) -> None:
    simulate.production = income.production
    delivery.start(ANA, MODEL, income.candidate, steps="10,100", interval="1s")
    simulate.send(200)
    a = RolloutController(delivery, holder="replica-a")
    b = RolloutController(delivery, holder="replica-b")
    now = utcnow()
    assert len(a.tick(now)) == 1
    assert b.tick(now + timedelta(seconds=30)) == []  # a's lease (60 s) still runs
    assert len(a.tick(now + timedelta(seconds=31))) == 1  # a renews it
    later = now + timedelta(seconds=31 + 61)
    assert len(b.tick(later)) == 1  # a went quiet: b takes over
    assert a.tick(later) == []
    b.release()  # b shuts down cleanly: a may act at once (on demand: nothing is due)
    assert len(a.tick(later, model=MODEL)) == 1


def test_models_rollback_resets_traffic(
    runtime: Any,
    income: Income,
    delivery: DeliveryService,
    simulate: Simulator,
    baseline_model: Any,
    tmp_path: Any,
) -> None:
    registry = income.registry
    # v2 replaces v1 in production
    registry.approve(
        ADA, registry.request_promotion(ANA, MODEL, income.candidate, "production", "go").id
    )
    v3 = register(registry, baseline_model, tmp_path, "three")
    registry.approve(BOB, registry.request_promotion(ANA, MODEL, v3, "staging", "next").id)
    simulate.production = income.candidate
    delivery.start(ANA, MODEL, v3, steps="50,100", interval="10m")
    assert "canary" in simulate.send(200)
    rollback_with_traffic(registry, delivery, ADA, MODEL, "incident 42")
    assert registry.get_version(MODEL, income.production).stage == "production"
    status = delivery.status(MODEL)
    assert (status.state, status.weight) == ("aborted", 0)
    simulate.production = income.production
    assert simulate.send(200) == {"production": 200}
    aborts = [e for e in actions(runtime) if e.action == "deploy.abort"]
    assert "incident 42" in aborts[-1].details["reason"]
