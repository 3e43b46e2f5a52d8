"""Legal clocks: serious incidents (EU AI Act Art. 73) and data-subject requests (GDPR).

Deadlines, counted from when the provider became aware (or the request was received):

- serious incident, Art. 73(2): 15 days; Art. 73(4), a death: 10 days; Art. 73(3),
  widespread infringement or serious disruption of critical infrastructure: 2 days.
- data-subject request, GDPR Art. 12(3): one month (calendar month, the same day of
  the next month, the last day when that month is shorter).

Open items are shown in every report; :meth:`ClockService.due_findings` turns items
close to (or past) their deadline into monitoring findings for the alert notifiers, and
:func:`alert_clocks` (run by the server on a schedule, and by ``bastion monitor clocks``)
sends each (clock, threshold) once: it claims a row of ``evidence_clock_alerts`` before
sending, so of several replicas (or a replica and a cron job) only one sends it. A claim
whose every notifier failed is released, so the next check tries again.

Errors: UnknownIncident (404, unknown_incident), IncidentClosed (409, incident_closed),
BadIncident (400, invalid_incident).
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from bastion.audit.events import EventIn, Ledger
from bastion.db import Database
from bastion.db.base import utcnow
from bastion.errors import Conflict, InvalidInput, NotFound
from bastion.evidence.models import ClockAlertRow, IncidentRow
from bastion.monitoring.config import Severity
from bastion.monitoring.findings import Finding

if TYPE_CHECKING:
    from bastion.monitoring.alerts import Delivery
    from bastion.policy.schema import Policy

Kind = Literal["serious_incident", "subject_request"]
IncidentSeverity = Literal["standard", "death", "widespread"]

SERIOUS_DAYS: dict[str, int] = {"standard": 15, "death": 10, "widespread": 2}


class UnknownIncident(NotFound):
    code = "unknown_incident"


class IncidentClosed(Conflict):
    code = "incident_closed"


class BadIncident(InvalidInput):
    code = "invalid_incident"


def add_month(moment: datetime) -> datetime:
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def deadline(kind: Kind, severity: IncidentSeverity, aware_at: datetime) -> datetime:
    if kind == "subject_request":
        return add_month(aware_at)
    return aware_at + timedelta(days=SERIOUS_DAYS[severity])


@dataclass(frozen=True)
class Clock:
    id: int
    kind: str
    severity: str
    title: str
    opened_by: str
    aware_at: datetime
    deadline_at: datetime
    closed_at: datetime | None
    closed_by: str | None

    @classmethod
    def of(cls, row: IncidentRow) -> Clock:
        return cls(
            row.id,
            row.kind,
            row.severity,
            row.title,
            row.opened_by,
            row.aware_at,
            row.deadline_at,
            row.closed_at,
            row.closed_by,
        )

    def status(self, now: datetime) -> str:
        if self.closed_at is not None and self.closed_at <= now:
            return "closed_in_time" if self.closed_at <= self.deadline_at else "closed_late"
        return "overdue" if now > self.deadline_at else "open"

    def to_dict(self, now: datetime) -> dict[str, Any]:
        left = (self.deadline_at - now).total_seconds() / 86_400
        closed = self.closed_at if self.closed_at is not None and self.closed_at <= now else None
        return {
            "id": self.id,
            "kind": self.kind,
            "severity": self.severity,
            "title": self.title,
            "opened_by": self.opened_by,
            "aware_at": self.aware_at.isoformat(),
            "deadline_at": self.deadline_at.isoformat(),
            "closed_at": closed.isoformat() if closed else None,
            "closed_by": self.closed_by if closed else None,
            "status": self.status(now),
            "days_left": round(left, 2) if closed is None else None,
        }


class ClockService:
    def __init__(self, db: Database, ledger: Ledger | None = None) -> None:
        self.db = db
        self._ledger = ledger

    def open(
        self,
        *,
        kind: Kind,
        title: str,
        actor: str,
        severity: IncidentSeverity = "standard",
        aware_at: datetime | None = None,
    ) -> Clock:
        title = title.strip()
        if not title:
            raise BadIncident("give the incident a title (what happened, no personal data)")
        if kind == "subject_request" and severity != "standard":
            raise BadIncident("a data-subject request has no severity: leave --severity out")
        aware = aware_at or utcnow()
        if aware.tzinfo is None:
            aware = aware.replace(tzinfo=UTC)
        due = deadline(kind, severity, aware)
        with self.db.session() as session:
            row = IncidentRow(
                kind=kind,
                severity=severity,
                title=title[:300],
                opened_by=actor,
                aware_at=aware,
                deadline_at=due,
            )
            session.add(row)
            session.flush()
            clock = Clock.of(row)
        self._record(actor, "incident.open", clock, {"deadline_at": due.isoformat()})
        return clock

    def close(self, incident_id: int, *, actor: str, resolution: str = "") -> Clock:
        with self.db.session() as session:
            row = session.get(IncidentRow, incident_id)
            if row is None:
                raise UnknownIncident(f"no incident {incident_id}: see bastion incidents list")
            if row.closed_at is not None:
                raise IncidentClosed(f"incident {incident_id} was closed already")
            row.closed_at = utcnow()
            row.closed_by = actor
            row.resolution = resolution or None
            session.flush()
            clock = Clock.of(row)
        self._record(actor, "incident.close", clock, {"in_time": clock.status(utcnow())})
        return clock

    def items(self, *, open_only: bool = False) -> list[Clock]:
        query = select(IncidentRow).order_by(IncidentRow.deadline_at, IncidentRow.id)
        if open_only:
            query = query.where(IncidentRow.closed_at.is_(None))
        with self.db.session() as session:
            return [Clock.of(r) for r in session.scalars(query)]

    def for_period(self, start: datetime, as_of: datetime) -> list[Clock]:
        """Items a report over [start, as_of] must show: opened by then, not closed before."""
        with self.db.session() as session:
            rows = session.scalars(
                select(IncidentRow)
                .where(IncidentRow.aware_at < as_of)
                .where((IncidentRow.closed_at.is_(None)) | (IncidentRow.closed_at >= start))
                .order_by(IncidentRow.deadline_at, IncidentRow.id)
            )
            return [Clock.of(r) for r in rows]

    def due_findings(self, now: datetime, warn_days: float) -> list[Finding]:
        """Open items within ``warn_days`` of their deadline (warning) or past it (critical)."""
        findings = []
        for clock in self.items(open_only=True):
            left = (clock.deadline_at - now).total_seconds() / 86_400
            if left > warn_days:
                continue
            lapsed = left < 0
            findings.append(
                Finding(
                    check="clock",
                    subject=f"incident:{clock.id}",
                    kind="lapsed" if lapsed else "due_soon",
                    severity=Severity.critical if lapsed else Severity.warning,
                    message=(
                        f"{clock.kind.replace('_', ' ')} {clock.id} ({clock.title}): deadline "
                        f"{clock.deadline_at:%Y-%m-%d %H:%M} UTC "
                        + ("has passed" if lapsed else f"in {left:.1f} days")
                    ),
                    details={"deadline_at": clock.deadline_at.isoformat(), "days_left": left},
                )
            )
        return findings

    def alert_due(
        self,
        now: datetime,
        warn_days: float,
        send: Callable[[list[Finding]], list[Delivery]],
    ) -> list[Finding]:
        """Send each due finding not alerted before (per clock and threshold); return
        those this call sent."""
        sent = []
        for finding in self.due_findings(now, warn_days):
            incident = int(finding.subject.partition(":")[2])
            if not self._claim(incident, finding.kind):
                continue  # alerted already, here or by another replica
            deliveries = send([finding])
            delivered = sum(1 for d in deliveries if d.status == "sent")
            with self.db.engine.begin() as conn:
                mine = (ClockAlertRow.incident_id == incident) & (
                    ClockAlertRow.threshold == finding.kind
                )
                if deliveries and not delivered:  # every notifier failed: try again later
                    conn.execute(delete(ClockAlertRow).where(mine))
                    continue
                conn.execute(update(ClockAlertRow).where(mine).values(delivered=delivered))
            if self._ledger is not None:
                self._ledger.append(
                    EventIn(
                        actor="system",
                        action="clock.alert",
                        resource=finding.subject,
                        outcome="success",
                        details={"threshold": finding.kind, "notified": delivered},
                    )
                )
            sent.append(finding)
        return sent

    def _claim(self, incident: int, threshold: str) -> bool:
        try:
            with self.db.engine.begin() as conn:
                conn.execute(
                    insert(ClockAlertRow).values(
                        incident_id=incident, threshold=threshold, sent_at=utcnow(), delivered=0
                    )
                )
        except IntegrityError:
            return False
        return True

    def _record(self, actor: str, action: str, clock: Clock, extra: dict[str, Any]) -> None:
        if self._ledger is None:
            return
        self._ledger.append(
            EventIn(
                actor=actor,
                action=action,
                resource=f"incident:{clock.id}",
                outcome="success",
                details={"kind": clock.kind, "severity": clock.severity, **extra},
            )
        )


def alert_clocks(
    db: Database, ledger: Ledger | None, policy: Policy, now: datetime
) -> list[Finding]:
    """One check: alert (through the policy's notifiers) on clocks newly due or lapsed."""
    from bastion.monitoring.alerts import AlertRouter

    router = AlertRouter.from_policy(policy.monitoring)
    return ClockService(db, ledger).alert_due(
        now, policy.evidence.clocks.warn_days, router.dispatch
    )
