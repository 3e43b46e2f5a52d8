"""The server's scheduled checks: drift (and performance, with labels) of each production
model from its prediction log, one replica per check, each run in the ledger, alerts
through the policy's notifiers. The scheduler's one pass (``run_once``) is driven
directly with a clock of our own: no sleeping."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any

import httpx
import pytest

from bastion.db import utcnow
from bastion.serving.labels import add_labels
from bastion.serving.schedule import CheckScheduler
from registry.conftest import events

from .conftest import NAME, Model, set_policy
from .test_log import logged
from .test_monitoring import serve_rows
from .test_predict import bearer

pytestmark = pytest.mark.anyio

ALERTS = "bastion.test.serving-alerts"


def configure(runtime: Any, **checks: Any) -> None:
    set_policy(runtime, "serving", {"checks": {"interval": "1h", "min_rows": 100} | checks})
    set_policy(
        runtime,
        "monitoring",
        {
            "notifiers": {"ops": {"kind": "log", "logger": ALERTS}},
            "alert_rules": [{"name": "model-drift", "checks": ["drift"], "notify": ["ops"]}],
        },
    )


def scheduler(runtime: Any, holder: str = "replica-a") -> CheckScheduler:
    return CheckScheduler(runtime.db, runtime.ledger, runtime.policy, holder=holder)


async def test_a_drifted_window_is_flagged_by_a_scheduled_run(
    client: httpx.AsyncClient,
    runtime: Any,
    key_for: Any,
    served_v1: int,
    income_v1: Model,
    caplog: pytest.LogCaptureFixture,
) -> None:
    configure(runtime, fail_on="column")
    shifted = income_v1.trained.test.head(2000).copy()
    shifted["age"] = shifted["age"] + 15
    shifted["hours_per_week"] = (shifted["hours_per_week"] + 20).clip(upper=99)
    await serve_rows(client, bearer(key_for("analyst")), shifted)
    logged(runtime)
    with caplog.at_level(logging.WARNING, logger=ALERTS):
        (run,) = scheduler(runtime).run_once()
    assert (run.model, run.check, run.status, run.version) == (NAME, "drift", "failed", served_v1)
    assert {"age", "hours_per_week"} <= set(run.numbers["drifted_columns"])
    assert "sex" not in run.numbers["drifted_columns"]
    assert run.alerts >= 1
    alerted = [r.getMessage() for r in caplog.records if r.name == ALERTS]
    assert any("age drifted" in m for m in alerted), alerted
    (event,) = events(runtime, "monitoring.drift_check")
    assert (event.actor, event.resource, event.outcome) == (
        "system:serving-checks",
        f"model:{NAME}/{served_v1}",
        "failure",
    )
    details = event.details
    assert details["status"] == "failed" and details["rows"] == 2000
    assert details["columns"]["age"]["drifted"] is True
    assert details["columns"]["age"]["score"] is not None


async def test_an_undrifted_window_passes_and_labels_add_a_performance_check(
    client: httpx.AsyncClient,
    runtime: Any,
    key_for: Any,
    served_v1: int,
    income_v1: Model,
    caplog: pytest.LogCaptureFixture,
) -> None:
    configure(runtime, fail_on="column")
    trained = income_v1.trained
    frame = trained.test.head(3000)
    ids = await serve_rows(client, bearer(key_for("analyst")), frame)
    logged(runtime)
    truth = trained.y_test.head(3000)
    add_labels(
        runtime.db,
        [{"request_id": r, "label": int(y)} for r, y in zip(ids, truth, strict=True)],
    )
    with caplog.at_level(logging.WARNING, logger=ALERTS):
        runs = scheduler(runtime).run_once()
    assert [(r.check, r.status) for r in runs] == [("drift", "passed"), ("performance", "passed")]
    drift, performance = runs
    assert drift.numbers["drifted_columns"] == [] and drift.alerts == 0
    assert performance.numbers["labelled"] == 3000
    assert performance.numbers["overall"]["accuracy"] == pytest.approx(
        trained.metrics["accuracy"], abs=0.03
    )
    assert [r for r in caplog.records if r.name == ALERTS] == []
    assert [e.outcome for e in events(runtime, "monitoring.drift_check")] == ["success"]
    (perf,) = events(runtime, "monitoring.performance_check")
    assert perf.details["baseline"]["accuracy"] == pytest.approx(trained.metrics["accuracy"])


async def test_two_schedulers_at_once_run_the_check_once(
    client: httpx.AsyncClient, runtime: Any, key_for: Any, served_v1: int, income_v1: Model
) -> None:
    configure(runtime)
    await serve_rows(client, bearer(key_for("analyst")), income_v1.trained.test.head(500))
    logged(runtime)
    replicas = [scheduler(runtime, "replica-a"), scheduler(runtime, "replica-b")]
    now = utcnow()
    start = threading.Barrier(2)
    runs: dict[str, list[Any]] = {}

    def replica(s: CheckScheduler) -> None:
        start.wait()
        runs[s.holder] = s.run_once(now)

    threads = [threading.Thread(target=replica, args=(s,)) for s in replicas]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(len(r) for r in runs.values()) == [0, 1], runs
    assert len(events(runtime, "monitoring.drift_check")) == 1
    # within the interval nobody runs it again, the one that ran included
    assert [s.run_once(now + timedelta(minutes=30)) for s in replicas] == [[], []]
    # the next interval's run is anyone's, once
    later = now + timedelta(hours=1)
    assert sorted(len(s.run_once(later)) for s in replicas) == [0, 1]
    assert len(events(runtime, "monitoring.drift_check")) == 2


async def test_too_few_predictions_are_a_skipped_run_with_the_reason(
    client: httpx.AsyncClient, runtime: Any, key_for: Any, served_v1: int, income_v1: Model
) -> None:
    configure(runtime, min_rows=1000)
    await serve_rows(client, bearer(key_for("analyst")), income_v1.trained.test.head(50))
    logged(runtime)
    (run,) = scheduler(runtime).run_once()
    assert (run.check, run.status) == ("drift", "skipped")
    assert "50 predictions" in run.numbers["reason"]
    (event,) = events(runtime, "monitoring.drift_check")
    assert event.details["status"] == "skipped"
