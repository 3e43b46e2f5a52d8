"""Alert routing and the signed webhook, against a real HTTP server on loopback."""

from __future__ import annotations

import json
import logging

import pytest
from pydantic import ValidationError

from bastion.monitoring import (
    AlertRouter,
    AlertRule,
    Finding,
    MonitoringPolicy,
    Severity,
    verify_signature,
)
from bastion.monitoring.alerts import SIGNATURE_HEADER, TIMESTAMP_HEADER, Alert, WebhookNotifier
from bastion.monitoring.errors import NotifierFailed

SECRET = "s3cret-for-tests"


def finding(subject: str = "age", severity: Severity = Severity.warning) -> Finding:
    return Finding("drift", subject, "column_drift", severity, f"{subject} drifted", {"score": 0.3})


def notifier(url: str, sleeps: list[float] | None = None, attempts: int = 4) -> WebhookNotifier:
    return WebhookNotifier(
        "ops",
        url,
        secret=SECRET,
        max_attempts=attempts,
        backoff_initial_seconds=0.01,
        backoff_max_seconds=0.05,
        sleep=(sleeps.append if sleeps is not None else lambda _: None),
    )


def test_webhook_body_is_signed_and_verifiable(receiver) -> None:
    notifier(receiver.url).send(Alert("drift-to-ops", [finding()]))
    ((headers, body),) = receiver.requests
    assert verify_signature(SECRET, headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])
    assert not verify_signature("wrong", headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])
    assert not verify_signature(
        SECRET, headers[TIMESTAMP_HEADER], body + b" ", headers[SIGNATURE_HEADER]
    )
    payload = json.loads(body)
    assert payload["type"] == "bastion.alert" and payload["findings"][0]["subject"] == "age"


def test_webhook_retries_server_errors_with_backoff(receiver) -> None:
    receiver.statuses = [500, 503]
    sleeps: list[float] = []
    hook = notifier(receiver.url, sleeps)
    hook.send(Alert("r", [finding()]))
    assert len(receiver.requests) == 3 and hook.attempts == 3
    assert len(sleeps) == 2 and all(s > 0 for s in sleeps)
    keys = {h["Idempotency-Key"] for h, _ in receiver.requests}
    assert len(keys) == 1  # the receiver can drop duplicates of one alert
    for headers, body in receiver.requests:
        assert verify_signature(SECRET, headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])


def test_webhook_gives_up_after_max_attempts(receiver) -> None:
    receiver.statuses = [500] * 10
    with pytest.raises(NotifierFailed, match="after 3 attempts"):
        notifier(receiver.url, attempts=3).send(Alert("r", [finding()]))
    assert len(receiver.requests) == 3


def test_webhook_client_errors_are_not_retried(receiver) -> None:
    receiver.statuses = [401]
    with pytest.raises(NotifierFailed, match="HTTP 401"):
        notifier(receiver.url).send(Alert("r", [finding()]))
    assert len(receiver.requests) == 1


def test_unreachable_webhook_fails_cleanly() -> None:
    with pytest.raises(NotifierFailed):
        notifier("http://127.0.0.1:9/hook", attempts=2).send(Alert("r", [finding()]))


def test_router_deduplicates_within_cooldown(receiver) -> None:
    now = [1000.0]
    rule = AlertRule(name="drift-to-ops", checks=["drift"], notify=["ops"], cooldown_seconds=600)
    router = AlertRouter([rule], {"ops": notifier(receiver.url)}, clock=lambda: now[0])
    assert [d.status for d in router.dispatch([finding()])] == ["sent"]
    assert [d.status for d in router.dispatch([finding()])] == ["suppressed"]
    deliveries = router.dispatch([finding(), finding("income")])  # a new subject goes through
    assert {d.status for d in deliveries} == {"sent", "suppressed"}
    now[0] += 601
    assert [d.status for d in router.dispatch([finding()])] == ["sent"]
    assert len(receiver.requests) == 3


def test_failed_delivery_is_retried_on_the_next_run(receiver) -> None:
    rule = AlertRule(name="r", notify=["ops"], cooldown_seconds=600)
    router = AlertRouter([rule], {"ops": notifier(receiver.url, attempts=1)})
    receiver.statuses = [500]
    assert [d.status for d in router.dispatch([finding()])] == ["failed"]
    assert [d.status for d in router.dispatch([finding()])] == ["sent"]


def test_rules_filter_by_severity_and_check(caplog) -> None:
    rule = AlertRule(
        name="critical-only", min_severity=Severity.critical, checks=["fairness"], notify=["log"]
    )
    router = AlertRouter([rule], {})
    with caplog.at_level(logging.WARNING, logger="bastion.monitoring.alerts"):
        assert router.dispatch([finding(severity=Severity.critical)]) == []
        crit = Finding(
            "fairness", "sex", "four_fifths", Severity.critical, "four-fifths rule failed"
        )
        assert [d.status for d in router.dispatch([crit])] == ["sent"]
    assert "four-fifths rule failed" in caplog.text


def test_policy_section_validates_and_builds_a_router() -> None:
    policy = MonitoringPolicy.model_validate(
        {
            "notifiers": {
                "ops": {
                    "kind": "webhook",
                    "url": "http://127.0.0.1:1/x",
                    "secret": "zq-hook-secret-42",
                }
            },
            "alert_rules": [{"name": "all", "notify": ["ops", "log"]}],
            "drift": {"psi_retrain": 0.2},
        }
    )
    router = AlertRouter.from_policy(policy)
    assert set(router.notifiers) == {"ops", "log"}
    assert "zq-hook-secret-42" not in repr(policy)  # the secret is not printed
    with pytest.raises(ValidationError, match="unknown notifiers"):
        MonitoringPolicy.model_validate({"alert_rules": [{"name": "x", "notify": ["pager"]}]})
    with pytest.raises(ValidationError):
        MonitoringPolicy.model_validate({"drift": {"method": "magic"}})
