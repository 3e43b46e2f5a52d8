"""Evidence tables: manual attestations of controls, and incidents with legal clocks.

Both are also recorded in the ledger when they change (``evidence.attest``,
``incident.open``, ``incident.close``); the tables are what a report reads.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bastion.db.base import Base, utcnow


class AttestationRow(Base):
    __tablename__ = "evidence_attestations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    framework: Mapped[str] = mapped_column(String(50), index=True)
    control: Mapped[str] = mapped_column(String(100))
    attested_by: Mapped[str] = mapped_column(String(200))
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class IncidentRow(Base):
    __tablename__ = "evidence_incidents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: serious_incident (EU AI Act Art. 73) or subject_request (GDPR Art. 12(3))
    kind: Mapped[str] = mapped_column(String(32))
    #: serious incidents: standard (15 days), death (10), widespread (2)
    severity: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(300))
    opened_by: Mapped[str] = mapped_column(String(200))
    #: when the provider became aware: the clock starts here
    aware_at: Mapped[datetime] = mapped_column()
    deadline_at: Mapped[datetime] = mapped_column(index=True)
    closed_at: Mapped[datetime | None] = mapped_column(default=None)
    closed_by: Mapped[str | None] = mapped_column(String(200), default=None)
    resolution: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ClockAlertRow(Base):
    """One alert per (clock, threshold): the row is claimed before the alert is sent, so
    of several replicas checking at once only the one whose insert succeeds sends it."""

    __tablename__ = "evidence_clock_alerts"
    __table_args__ = (UniqueConstraint("incident_id", "threshold"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(Integer)
    #: due_soon or lapsed
    threshold: Mapped[str] = mapped_column(String(16))
    sent_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: how many notifiers took it
    delivered: Mapped[int] = mapped_column(Integer, default=0)
