"""The checks on a model's prediction log, as Prometheus sees them.

``bastion drift check --model M`` and ``bastion performance check --model M`` run as
commands (cron, a pipeline step), which no Prometheus scrapes: each records what it
found (:func:`record_check`, table ``monitoring_check_results``) and every server
replica exposes the totals from that table when scraped (:class:`CheckCollector`):

    bastion_monitoring_alerts_total{check, model, severity}   alerts sent
    bastion_monitoring_checks_total{check, model}              checks run
    bastion_drifted_features{model}                            features drifted at the last check

Every replica reports the same numbers (they come from the one database): aggregate
them with ``max``, not ``sum``. Labels stay low-cardinality: models are the registry's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Literal

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy import func, select

from bastion.db import Database
from bastion.monitoring.findings import Finding
from bastion.monitoring.models import CheckResultRow

CheckKind = Literal["drift", "performance"]
#: The finding of a drift check that counts a feature (or prediction) as drifted.
DRIFTED = "column_drift"


def flagged_count(check: CheckKind, findings: Iterable[Finding]) -> int:
    """Drifted features (distinct columns) or fallen metrics of one check."""
    found = list(findings)
    if check == "drift":
        return len({f.subject for f in found if f.kind == DRIFTED})
    return len({(f.subject, f.kind) for f in found if f.severity.rank > 0})


def record_check(
    db: Database, check: CheckKind, model: str, findings: Iterable[Finding], *, alerted: bool
) -> None:
    found = list(findings)
    worst = max(found, key=lambda f: f.severity.rank, default=None)
    with db.session() as session:
        session.add(
            CheckResultRow(
                check=check,
                model=model[:100],
                flagged=flagged_count(check, found),
                severity=worst.severity.value if worst is not None else "none",
                alerted=alerted,
            )
        )


class CheckCollector:
    """A Prometheus collector reading ``monitoring_check_results`` at scrape time."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def _families() -> tuple[CounterMetricFamily, CounterMetricFamily, GaugeMetricFamily]:
        return (
            CounterMetricFamily(
                "bastion_monitoring_alerts",
                "Alerts sent by the monitoring checks of a model's prediction log, by check "
                "(drift, performance), model and the highest severity found.",
                labels=["check", "model", "severity"],
            ),
            CounterMetricFamily(
                "bastion_monitoring_checks",
                "Monitoring checks run on a model's prediction log, by check and model.",
                labels=["check", "model"],
            ),
            GaugeMetricFamily(
                "bastion_drifted_features",
                "Features found drifted by the last drift check of each model.",
                labels=["model"],
            ),
        )

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        alerts, checks, drifted = self._families()
        t = CheckResultRow
        with self.db.session() as session:
            counted = session.execute(
                select(t.check, t.model, t.severity, t.alerted, func.count())
                .group_by(t.check, t.model, t.severity, t.alerted)
            ).all()  # fmt: skip
            last = (
                select(t.model, func.max(t.id).label("id"))
                .where(t.check == "drift")
                .group_by(t.model)
                .subquery()
            )
            latest = session.execute(select(t.model, t.flagged).join(last, t.id == last.c.id)).all()
        runs: dict[tuple[str, str], int] = {}
        for check, model, severity, alerted, n in counted:
            runs[(check, model)] = runs.get((check, model), 0) + n
            if alerted:
                alerts.add_metric([check, model, severity], n)
        for (check, model), n in sorted(runs.items()):
            checks.add_metric([check, model], n)
        for model, flagged in latest:
            drifted.add_metric([model], flagged)
        yield from (alerts, checks, drifted)
