"""Response monitoring, access anomalies, clock alerts and policy history, on both databases."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from bastion.evidence.clocks import ClockService
from bastion.evidence.config import AccessChecks, ResponseChecks
from bastion.evidence.traffic import check_access, check_responses, responses_html
from bastion.monitoring.alerts import Alert, AlertRouter
from bastion.monitoring.config import AlertRule
from bastion.policy.history import PolicyHistory, UnknownPolicyVersion

from .conftest import now


def actions(runtime: Any, action: str) -> list[Any]:
    with runtime.db.engine.connect() as conn:
        return list(
            conn.execute(
                sa.text(
                    "SELECT request_id, flags, details FROM audit_events WHERE action = :a ORDER BY id"
                ),
                {"a": action},
            )
        )


def test_each_flagged_call_is_recorded_once_and_summarised_by_day(
    runtime: Any, write: Callable[..., None]
) -> None:
    write("llm.chat", 3, details={"latency_ms": 120, "status": 200}, request_id="ok")
    write("llm.chat", 1, details={"latency_ms": 6200, "status": 200}, request_id="slow")
    write(
        "llm.chat",
        1,
        flags=("pii_leak:EMAIL_ADDRESS",),
        details={"latency_ms": 90},
        request_id="leak",
    )
    write("llm.chat", 1, outcome="failure", details={"status": 502}, request_id="fail")
    write("llm.chat", 1, details={"finish_reason": "content_filter"}, request_id="refused")
    since = now() - timedelta(days=7)
    summary = check_responses(runtime.db, runtime.ledger, ResponseChecks(), since=since, now=now())
    assert summary.totals() == {"calls": 7, "slow": 1, "pii_leak": 1, "error": 1, "refusal": 1}
    flagged = {row.request_id: json.loads(row.flags) for row in actions(runtime, "response.flag")}
    assert flagged == {
        "slow": ["slow"],
        "leak": ["pii_leak"],
        "fail": ["error"],
        "refused": ["refusal"],
    }
    again = check_responses(runtime.db, runtime.ledger, ResponseChecks(), since=since, now=now())
    assert again.flagged_now == 0 and again.totals() == summary.totals()
    assert len(actions(runtime, "response.flag")) == 4
    severities = {f.kind: f.severity.value for f in summary.findings()}
    assert severities == {
        "slow": "warning",
        "pii_leak": "critical",
        "error": "warning",
        "refusal": "warning",
    }
    html = responses_html(summary)
    assert "Flagged responses per day" in html and "Plotly.newPlot" in html


def test_the_latency_threshold_comes_from_the_policy(
    runtime: Any, write: Callable[..., None]
) -> None:
    write("llm.chat", 1, details={"latency_ms": 1500})
    strict = check_responses(
        runtime.db, None, ResponseChecks(latency_s=1), since=now() - timedelta(hours=1), now=now()
    )
    assert strict.totals()["slow"] == 1


def test_a_key_used_far_above_its_baseline_or_on_a_new_model_raises_anomalies(
    runtime: Any, write: Callable[..., None]
) -> None:
    write("llm.chat", 14, details={"key": "bk_a", "requested_model": "local"})
    write("llm.chat", 3, details={"key": "bk_quiet", "requested_model": "local"})
    middle = now()
    write("llm.chat", 30, details={"key": "bk_a", "requested_model": "local"})
    write("llm.chat", 2, details={"key": "bk_a", "requested_model": "gpt-4.1"})
    write("llm.chat", 1, details={"key": "bk_quiet", "requested_model": "local"})
    write("llm.chat", 40, details={"key": "bk_new", "requested_model": "local"})
    cfg = AccessChecks(baseline_days=14, volume_factor=5, min_calls=10)
    found = check_access(runtime.db, runtime.ledger, cfg, now=middle + timedelta(days=1))
    kinds = {(a.key, a.kind) for a in found}
    assert kinds == {("bk_a", "volume"), ("bk_a", "new_model")}
    volume = next(a for a in found if a.kind == "volume")
    assert volume.evidence["calls"] == 32 and volume.evidence["daily_mean"] == 1.0
    recorded = actions(runtime, "access.anomaly")
    assert {json.loads(r.details)["kind"] for r in recorded} == {"volume", "new_model"}


def test_calls_at_hours_a_key_never_used_are_unusual(
    runtime: Any, write: Callable[..., None]
) -> None:
    write("llm.chat", 12, details={"key": "bk_h", "requested_model": "local"})
    # shift the baseline 36 hours back: the recent calls come at an hour it never saw
    with runtime.db.engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE audit_events SET ts_us = ts_us - 129600000000 WHERE action = 'llm.chat'"
            )
        )
    middle = now()
    write("llm.chat", 1, details={"key": "bk_h", "requested_model": "local"})
    found = check_access(
        runtime.db, None, AccessChecks(min_calls=10), now=middle + timedelta(hours=1)
    )
    assert [(a.kind, a.evidence["hours"]) for a in found] == [("unusual_hours", [middle.hour])]


class Collect:
    name = "collect"

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def send(self, alert: Alert) -> None:
        self.alerts.append(alert)


def test_clocks_alert_before_they_lapse(runtime: Any) -> None:
    clocks = ClockService(runtime.db, runtime.ledger)
    aware = datetime(2026, 3, 1, tzinfo=UTC)
    due_soon = clocks.open(
        kind="serious_incident", severity="widespread", title="outage", actor="u", aware_at=aware
    )
    later = clocks.open(kind="subject_request", title="access request", actor="u", aware_at=aware)
    findings = clocks.due_findings(aware + timedelta(days=1), warn_days=3)
    assert [(f.subject, f.kind, f.severity.value) for f in findings] == [
        (f"incident:{due_soon.id}", "due_soon", "warning")
    ]
    lapsed = clocks.due_findings(aware + timedelta(days=30), warn_days=3)
    assert [(f.subject, f.kind) for f in lapsed] == [
        (f"incident:{due_soon.id}", "lapsed"),
        (f"incident:{later.id}", "due_soon"),
    ]
    sink = Collect()
    router = AlertRouter(
        [AlertRule(name="clocks", checks=["clock"], notify=["collect"])], {"collect": sink}
    )
    router.dispatch(lapsed)
    assert len(sink.alerts) == 1 and sink.alerts[0].severity.value == "critical"
    clocks.close(due_soon.id, actor="u")
    assert [c.id for c in clocks.items(open_only=True)] == [later.id]


def test_every_policy_version_is_kept_and_a_rollback_is_a_recorded_change(runtime: Any) -> None:
    history = PolicyHistory(runtime.db)
    (first,) = history.versions()
    assert first.trigger == "startup" and first.digest == runtime.policy.current.digest
    path = runtime.policy.path
    original = path.read_text()
    path.write_text(original + "# tightened by ada\n")
    assert runtime.reload_policy("user:ada", "api").changed
    second = history.versions()[1]
    assert second.loaded_by == "user:ada" and (second.added, second.removed) == (1, 0)
    assert "+# tightened by ada" in second.diff
    outcome = runtime.rollback_policy(first.version, "user:ada")
    assert outcome.changed and path.read_text() == original
    third = history.versions()[2]
    assert third.trigger == f"rollback:{first.version}" and third.digest == first.digest
    assert [json.loads(r.details)["version"] for r in actions(runtime, "policy.rollback")] == [1]
    with pytest.raises(UnknownPolicyVersion):
        runtime.rollback_policy(99, "user:ada")


class Failing:
    name = "failing"

    def send(self, alert: Alert) -> None:
        from bastion.monitoring.alerts import NotifierFailed

        raise NotifierFailed("the webhook answered 503")


def router_to(sink: Any) -> AlertRouter:
    return AlertRouter(
        [AlertRule(name="clocks", checks=["clock"], notify=[sink.name])], {sink.name: sink}
    )


def test_each_clock_threshold_is_alerted_once_across_replicas(runtime: Any) -> None:
    import threading

    aware = datetime(2026, 3, 1, tzinfo=UTC)
    opened = ClockService(runtime.db, runtime.ledger).open(
        kind="serious_incident", severity="widespread", title="outage", actor="u", aware_at=aware
    )
    # two replicas check at the same moment, each with its own notifier
    sinks = [Collect(), Collect()]
    replicas = [ClockService(runtime.db, runtime.ledger) for _ in sinks]
    barrier = threading.Barrier(2)

    def check(i: int) -> None:
        barrier.wait()
        replicas[i].alert_due(aware + timedelta(days=1), 3, router_to(sinks[i]).dispatch)

    threads = [threading.Thread(target=check, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(len(s.alerts) for s in sinks) == 1
    # the next checks send nothing more until the clock lapses; then once more, critical
    later = replicas[0].alert_due(
        aware + timedelta(days=1, hours=1), 3, router_to(sinks[0]).dispatch
    )
    assert later == []
    lapsed = replicas[1].alert_due(aware + timedelta(days=3), 3, router_to(sinks[1]).dispatch)
    assert [(f.subject, f.kind) for f in lapsed] == [(f"incident:{opened.id}", "lapsed")]
    assert replicas[0].alert_due(aware + timedelta(days=4), 3, router_to(sinks[0]).dispatch) == []
    recorded = actions(runtime, "clock.alert")
    assert [json.loads(r.details)["threshold"] for r in recorded] == ["due_soon", "lapsed"]


def test_a_clock_alert_no_notifier_took_is_tried_again(runtime: Any) -> None:
    from bastion.evidence.clocks import alert_clocks

    clocks = ClockService(runtime.db, runtime.ledger)
    aware = datetime(2026, 3, 1, tzinfo=UTC)
    clocks.open(kind="subject_request", title="access request", actor="u", aware_at=aware)
    due = aware + timedelta(days=29)
    assert clocks.alert_due(due, 3, router_to(Failing()).dispatch) == []
    sink = Collect()
    assert len(clocks.alert_due(due, 3, router_to(sink).dispatch)) == 1
    assert len(sink.alerts) == 1
    # the server's one-iteration check, with the runtime's policy: already alerted
    assert alert_clocks(runtime.db, runtime.ledger, runtime.policy.policy, due) == []
