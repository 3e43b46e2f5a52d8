"""Alert rules route findings to notifiers: a signed webhook and the log.

A rule matches findings by check, subject and minimum severity, and names notifiers.
Within a rule's cooldown the same finding (same check, subject and kind — its
fingerprint) is not sent again; a delivery that failed on every notifier is not
remembered, so the next run tries again.

Webhook wire format: a JSON body (``type: bastion.alert``) POSTed with headers
``X-Bastion-Timestamp`` (Unix seconds), ``X-Bastion-Signature: sha256=<hex>`` where the
HMAC-SHA256 key is the notifier's secret and the message is ``"<timestamp>." + body``,
and ``Idempotency-Key`` (the same on every retry of one alert). Receivers check with
:func:`verify_signature`. Transport errors, 408, 429 and 5xx responses are retried with
exponential backoff and jitter (tenacity); other 4xx fail at once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import httpx
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from bastion.monitoring.config import (
    AlertRule,
    LogNotifierConfig,
    MonitoringPolicy,
    Severity,
    WebhookNotifierConfig,
)
from bastion.monitoring.errors import NotifierFailed
from bastion.monitoring.findings import Finding

SIGNATURE_HEADER = "X-Bastion-Signature"
TIMESTAMP_HEADER = "X-Bastion-Timestamp"
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Alert:
    rule: str
    findings: list[Finding]
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: float = field(default_factory=time.time)

    @property
    def severity(self) -> Severity:
        return max((f.severity for f in self.findings), key=lambda s: s.rank)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "bastion.alert",
            "id": self.id,
            "rule": self.rule,
            "severity": self.severity.value,
            "created_at": self.created_at,
            "findings": [f.to_dict() for f in self.findings],
        }


class Notifier(Protocol):
    name: str

    def send(self, alert: Alert) -> None: ...


class LogNotifier:
    LEVELS: ClassVar[dict[Severity, int]] = {
        Severity.info: logging.INFO,
        Severity.warning: logging.WARNING,
        Severity.critical: logging.ERROR,
    }

    def __init__(self, name: str = "log", logger: logging.Logger | None = None) -> None:
        self.name = name
        self.logger = logger or logging.getLogger("bastion.monitoring.alerts")

    def send(self, alert: Alert) -> None:
        for f in alert.findings:
            self.logger.log(
                self.LEVELS[f.severity],
                "alert %s: %s",
                alert.rule,
                f.message,
                extra={"alert_id": alert.id, "fingerprint": f.fingerprint, "check": f.check},
            )


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    tolerance_seconds: float = 300.0,
    now: float | None = None,
) -> bool:
    """True when ``signature`` is ours for this body and the timestamp is fresh."""
    try:
        age = abs((time.time() if now is None else now) - float(timestamp))
    except ValueError:
        return False
    return age <= tolerance_seconds and hmac.compare_digest(
        sign(secret, timestamp, body), signature
    )


class _RetryableStatus(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, _RetryableStatus | httpx.TransportError)


class WebhookNotifier:
    def __init__(
        self,
        name: str,
        url: str,
        *,
        secret: str | None = None,
        timeout_seconds: float = 5.0,
        max_attempts: int = 5,
        backoff_initial_seconds: float = 0.5,
        backoff_max_seconds: float = 30.0,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name
        self.url = url
        self._secret = secret
        self._timeout = timeout_seconds
        self._client = client
        self._retrying = Retrying(
            stop=stop_after_attempt(max_attempts),
            wait=wait_exponential(multiplier=backoff_initial_seconds, max=backoff_max_seconds)
            + wait_random(0, backoff_initial_seconds),
            retry=retry_if_exception(_retryable),
            sleep=sleep,
        )
        self.attempts = 0

    @classmethod
    def from_config(
        cls, name: str, config: WebhookNotifierConfig, client: httpx.Client | None = None
    ) -> WebhookNotifier:
        return cls(
            name,
            config.url,
            secret=config.secret.get_secret_value() if config.secret else None,
            timeout_seconds=config.timeout_seconds,
            max_attempts=config.max_attempts,
            backoff_initial_seconds=config.backoff_initial_seconds,
            backoff_max_seconds=config.backoff_max_seconds,
            client=client,
        )

    def _post(self, client: httpx.Client, body: bytes, alert: Alert) -> None:
        self.attempts += 1
        ts = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "bastion-monitoring",
            "Idempotency-Key": alert.id,
            TIMESTAMP_HEADER: ts,
        }
        if self._secret:
            headers[SIGNATURE_HEADER] = sign(self._secret, ts, body)
        response = client.post(self.url, content=body, headers=headers, timeout=self._timeout)
        if response.status_code in RETRY_STATUSES:
            raise _RetryableStatus(response)
        if response.status_code >= 400:
            raise NotifierFailed(
                f"webhook {self.name} refused the alert with HTTP {response.status_code}; "
                "check its URL and secret",
                status_code=response.status_code,
            )

    def send(self, alert: Alert) -> None:
        body = json.dumps(alert.to_dict(), sort_keys=True, separators=(",", ":")).encode()
        client = self._client or httpx.Client()
        try:
            self._retrying(self._post, client, body, alert)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            raise NotifierFailed(
                f"webhook {self.name} failed after {exc.last_attempt.attempt_number} attempts "
                f"({last}); is {self.url} up?",
            ) from last
        except (_RetryableStatus, httpx.TransportError) as exc:  # pragma: no cover - reraise path
            raise NotifierFailed(f"webhook {self.name} failed: {exc}") from exc
        finally:
            if self._client is None:
                client.close()


@dataclass(frozen=True)
class Delivery:
    rule: str
    notifier: str
    status: str  # sent | suppressed | failed
    fingerprints: list[str]
    error: str = ""


class AlertRouter:
    """Matches findings to rules, de-duplicates within cooldowns, and notifies."""

    def __init__(
        self,
        rules: Iterable[AlertRule],
        notifiers: Mapping[str, Notifier],
        *,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger | None = None,
    ) -> None:
        self.rules = list(rules)
        self.notifiers: dict[str, Notifier] = {"log": LogNotifier(), **notifiers}
        self._clock = clock
        self._last_sent: dict[tuple[str, str], float] = {}
        self._log = logger or logging.getLogger("bastion.monitoring.alerts")

    @classmethod
    def from_policy(
        cls, policy: MonitoringPolicy, *, client: httpx.Client | None = None
    ) -> AlertRouter:
        notifiers: dict[str, Notifier] = {}
        for name, cfg in policy.notifiers.items():
            if isinstance(cfg, WebhookNotifierConfig):
                notifiers[name] = WebhookNotifier.from_config(name, cfg, client)
            elif isinstance(cfg, LogNotifierConfig):
                notifiers[name] = LogNotifier(name, logging.getLogger(cfg.logger))
        return cls(policy.alert_rules, notifiers)

    @staticmethod
    def matches(rule: AlertRule, finding: Finding) -> bool:
        return (
            (not rule.checks or finding.check in rule.checks)
            and (not rule.subjects or finding.subject in rule.subjects)
            and finding.severity.rank >= rule.min_severity.rank
        )

    def dispatch(self, findings: Iterable[Finding]) -> list[Delivery]:
        findings = list(findings)
        deliveries: list[Delivery] = []
        for rule in self.rules:
            matched = [f for f in findings if self.matches(rule, f)]
            if not matched:
                continue
            now = self._clock()
            fresh = [
                f
                for f in matched
                if now - self._last_sent.get((rule.name, f.fingerprint), -float("inf"))
                >= rule.cooldown_seconds
            ]
            stale = [f.fingerprint for f in matched if f not in fresh]
            if stale:
                deliveries += [Delivery(rule.name, n, "suppressed", stale) for n in rule.notify]
            if not fresh:
                continue
            alert = Alert(rule.name, fresh)
            prints = [f.fingerprint for f in fresh]
            delivered = False
            for name in rule.notify:
                try:
                    self.notifiers[name].send(alert)
                except NotifierFailed as exc:
                    self._log.error(
                        "alert %s not delivered to %s: %s", rule.name, name, exc.message
                    )
                    deliveries.append(Delivery(rule.name, name, "failed", prints, exc.message))
                else:
                    delivered = True
                    deliveries.append(Delivery(rule.name, name, "sent", prints))
            if delivered:
                for f in fresh:
                    self._last_sent[(rule.name, f.fingerprint)] = now
        return deliveries
