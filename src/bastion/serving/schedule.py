"""Scheduled monitoring in the server: every ``serving.checks.interval``, each model in
production is checked from its prediction log — drift of the last ``window`` against
the drift baseline registered with its version, and performance against the version's
registered metrics when labels have arrived.

One replica runs each model's check per interval. The turn is a lease row (delivery's
``controller_leases``, :meth:`bastion.delivery.repository.DeliveryRepository.take_lease`)
named after the model and claimed until the next run is due: one conditional UPDATE,
the same on SQLite and PostgreSQL, which only one replica's claim passes. A replica that
dies mid-check leaves the slot claimed until then; the next interval's run is anyone's.

Each run is a ledger event (``monitoring.drift_check``, ``monitoring.performance_check``,
actor ``system:serving-checks``) with its numbers; a window with fewer than ``min_rows``
predictions, or one that cannot be judged (no baseline, features not kept), is recorded
as ``skipped`` with the reason. Findings go through the policy's
``monitoring.alert_rules``, their subject prefixed with the model (``income/age``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from bastion.audit.events import EventIn, Ledger
from bastion.db import Database, utcnow
from bastion.delivery.controller import holder_name
from bastion.delivery.repository import DeliveryRepository
from bastion.errors import BastionError
from bastion.monitoring.signals import CheckKind, record_check
from bastion.registry.models import ModelVersionRow
from bastion.serving.errors import NoLabels

if TYPE_CHECKING:
    from bastion.monitoring.alerts import AlertRouter
    from bastion.monitoring.config import MonitoringPolicy
    from bastion.monitoring.findings import Finding
    from bastion.policy import PolicyStore
    from bastion.serving.config import ServingChecks

log = logging.getLogger("bastion.serving")

ACTOR = "system:serving-checks"
#: The loop looks at least this often, so a check a dead replica claimed is picked up.
POLL_S = 60.0


def lease_name(model: str) -> str:
    name = f"serving-checks:{model}"
    if len(name) <= 64:
        return name
    return "serving-checks:" + hashlib.sha256(model.encode()).hexdigest()[:40]


@dataclass(frozen=True)
class CheckRun:
    """One check of one model: ``passed``, ``failed`` (drift, or a metric below its
    tolerance) or ``skipped`` (with the reason), its numbers, and the alerts sent."""

    model: str
    check: str  # drift | performance
    status: str
    version: int | None
    numbers: dict[str, Any]
    alerts: int = 0


@dataclass
class CheckScheduler:
    db: Database
    ledger: Ledger
    policy: PolicyStore
    holder: str = field(default_factory=holder_name)
    _router: tuple[MonitoringPolicy, AlertRouter] | None = field(default=None, repr=False)

    @property
    def config(self) -> ServingChecks:
        return self.policy.policy.serving.checks

    def served_models(self) -> list[str]:
        """The models with a version in production."""
        with self.db.session() as session:
            return sorted(
                session.scalars(
                    select(ModelVersionRow.name)
                    .where(ModelVersionRow.stage == "production")
                    .distinct()
                )
            )

    def run_once(self, now: datetime | None = None) -> list[CheckRun]:
        """Check every production model whose turn is free; [] for those another
        replica (or this one, earlier in the interval) has checked."""
        config = self.config
        if not config.enabled:
            return []
        now = now or utcnow()
        runs: list[CheckRun] = []
        for model in self.served_models():
            if not self._claim(model, now, config.period):
                continue
            try:
                runs += self.check(model, now)
            except Exception:
                log.exception("scheduled check failed", extra={"model": model})
        return runs

    def check(self, model: str, now: datetime | None = None) -> list[CheckRun]:
        """Drift and (with labels) performance of ``model`` now, recorded and alerted."""
        from bastion.serving.checks import judge_log_performance, log_drift, log_performance

        config = self.config
        monitoring = self.policy.policy.monitoring
        now = now or utcnow()
        window: dict[str, Any] = {"window": config.window, "until": now.isoformat()}
        try:
            drift = log_drift(self.db, model, config.length, now=now)
        except BastionError as exc:
            return [self._skipped(model, "drift", None, window | _why(exc))]
        rows = len(drift.window.frame)
        window |= {"rows": rows, "versions": {str(v): n for v, n in drift.window.versions.items()}}
        if rows < config.min_rows:
            reason = {"reason": f"{rows} predictions in the window, fewer than {config.min_rows}"}
            return [self._skipped(model, "drift", drift.window.version, window | reason)]
        report = drift.compare(monitoring.drift)
        failed = report.failed(config.fail_on)
        numbers: dict[str, Any] = window | {
            "fail_on": config.fail_on,
            "dataset_drift": report.dataset_drift,
            "drift_share": round(report.drift_share, 4),
            "prediction_drift": report.prediction_drift,
            "drifted_columns": report.drifted_columns,
            "retrain_columns": report.retrain_columns,
            "columns": {
                c.column: {
                    "method": c.method,
                    "score": _round(c.score),
                    "threshold": c.threshold,
                    "psi": _round(c.psi),
                    "drifted": c.drifted,
                }
                for c in report.columns
            },
        }
        runs = [
            self._record(model, "drift", drift.window.version, failed, numbers, report.findings)
        ]
        try:
            labelled = log_performance(self.db, model, config.length, now=now)
        except NoLabels:
            return runs
        except BastionError as exc:
            return [*runs, self._skipped(model, "performance", None, window | _why(exc))]
        judged = judge_log_performance(labelled, monitoring.performance)
        result = judged.report
        perf_numbers: dict[str, Any] = window | {
            "labelled": len(labelled.frame),
            "task": result.task,
            "overall": {k: _round(v) for k, v in result.overall.items()},
            "baseline": result.baseline,
            "degraded": sorted(
                {str(f.details.get("metric")) for f in result.findings if f.subject == "overall"}
            ),
        }
        return [
            *runs,
            self._record(
                model,
                "performance",
                labelled.window.version,
                not result.passed,
                perf_numbers,
                result.findings,
            ),
        ]

    # ---------------------------------------------------------------------------------

    def _claim(self, model: str, now: datetime, period: timedelta) -> bool:
        # Claimed until the next run is due; a little early so the loop's next poll
        # after a full period finds it free.
        until = now + period - timedelta(seconds=1)
        with self.db.session() as session:
            return DeliveryRepository(session).take_lease(
                lease_name(model), self.holder, now, until, renew=False
            )

    def _skipped(
        self, model: str, check: str, version: int | None, numbers: dict[str, Any]
    ) -> CheckRun:
        self._event(model, check, version, "skipped", numbers, "skipped")
        return CheckRun(model, check, "skipped", version, numbers)

    def _record(
        self,
        model: str,
        check: str,
        version: int,
        failed: bool,
        numbers: dict[str, Any],
        findings: list[Finding],
    ) -> CheckRun:
        sent = self._alert(model, findings)
        # what /metrics reports (bastion_monitoring_alerts_total, drifted features)
        kind: CheckKind = "drift" if check == "drift" else "performance"
        record_check(self.db, kind, model, findings, alerted=sent > 0)
        status = "failed" if failed else "passed"
        numbers = numbers | {"alerts_sent": sent}
        self._event(model, check, version, status, numbers, "failure" if failed else "success")
        return CheckRun(model, check, status, version, numbers, sent)

    def _event(
        self,
        model: str,
        check: str,
        version: int | None,
        status: str,
        numbers: dict[str, Any],
        outcome: str,
    ) -> None:
        self.ledger.append(
            EventIn(
                actor=ACTOR,
                action=f"monitoring.{check}_check",
                resource=f"model:{model}" + (f"/{version}" if version is not None else ""),
                outcome=outcome,
                details={"status": status, "scheduled": True} | numbers,
            )
        )

    def _alert(self, model: str, findings: list[Finding]) -> int:
        if not findings:
            return 0
        monitoring = self.policy.policy.monitoring
        if not monitoring.alert_rules:
            return 0
        if self._router is None or self._router[0] is not monitoring:
            from bastion.monitoring.alerts import AlertRouter

            # rebuilt when the policy reloads; cooldowns start again then
            self._router = (monitoring, AlertRouter.from_policy(monitoring))
        named = [
            dataclasses.replace(
                f, subject=f"{model}/{f.subject}", details=f.details | {"model": model}
            )
            for f in findings
        ]
        deliveries = self._router[1].dispatch(named)
        return sum(1 for d in deliveries if d.status == "sent")


def _why(exc: BastionError) -> dict[str, Any]:
    return {"reason": exc.message, "code": exc.code}


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


async def run_checks(scheduler: CheckScheduler) -> None:
    """The server's background loop: look every poll (at most a minute, at least once
    an interval), errors logged."""
    from starlette.concurrency import run_in_threadpool

    while True:
        await asyncio.sleep(min(POLL_S, scheduler.config.period.total_seconds()))
        try:
            for run in await run_in_threadpool(scheduler.run_once):
                if run.status == "failed":
                    log.warning(
                        "scheduled %s check failed",
                        run.check,
                        extra={"model": run.model, "version": run.version},
                    )
        except Exception:
            log.exception("scheduled checks failed; the next poll tries again")
