"""Registry tables: what Bastion knows about each model version beyond MLflow.

MLflow holds the runs, the artifacts and the aliases; these tables hold the evidence
recorded at registration, stored reports, promotion requests and their decisions, every
stage change, the user-written fields of model and data cards, and the registrations in
flight.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy import UniqueConstraint as Unique
from sqlalchemy.orm import Mapped, mapped_column

from bastion.db.base import Base, utcnow


class ModelVersionRow(Base):
    __tablename__ = "registry_versions"
    __table_args__ = (
        Unique("name", "version", name="uq_registry_versions_name_version"),
        Unique("name", "artifact_sha256", name="uq_registry_versions_name_artifact"),
        Index("uq_registry_versions_name_semver", "name", "semver", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[int] = mapped_column(Integer)
    # An optional semantic version label (``1.2.0``), unique per model and rising with
    # ``version``: see :mod:`bastion.registry.semver`.
    semver: Mapped[str | None] = mapped_column(String(100))
    run_id: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(1000))
    # The artifact as given (a file's bytes or a model directory's tree digest): the
    # idempotency key. ``stored_sha256`` is the tree digest of what MLflow holds.
    artifact_sha256: Mapped[str] = mapped_column(String(64))
    stored_sha256: Mapped[str] = mapped_column(String(64))
    dataset: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    training_seconds: Mapped[float | None] = mapped_column(Float)
    author: Mapped[str | None] = mapped_column(String(200))
    code_version: Mapped[str | None] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    registered_by: Mapped[str] = mapped_column(String(200))
    registered_at: Mapped[datetime] = mapped_column(default=utcnow)
    stage: Mapped[str] = mapped_column(String(20), default="development")
    stage_changed_at: Mapped[datetime] = mapped_column(default=utcnow)


class EvidenceRow(Base):
    __tablename__ = "registry_evidence"
    __table_args__ = (Index("ix_registry_evidence_version_kind", "version_id", "kind", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("registry_versions.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    passed: Mapped[bool | None] = mapped_column(Boolean)
    sha256: Mapped[str] = mapped_column(String(64))
    recorded_by: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class PromotionRequestRow(Base):
    __tablename__ = "registry_requests"
    __table_args__ = (Index("ix_registry_requests_status_at", "status", "requested_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("registry_versions.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[int] = mapped_column(Integer)
    from_stage: Mapped[str] = mapped_column(String(20))
    to_stage: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(200))
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    gates: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None]
    notes: Mapped[str | None] = mapped_column(Text)
    decision_gates: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    overrides: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # While ``approving``: the attempt (named in its ledger events), its approver, and
    # the lease: since when someone works on it (None: nobody, settle it at once).
    claim_id: Mapped[str | None] = mapped_column(String(32))
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claimed_at: Mapped[datetime | None]


class StageChangeRow(Base):
    __tablename__ = "registry_stage_changes"
    __table_args__ = (Index("ix_registry_stage_changes_name_id", "name", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("registry_versions.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    from_stage: Mapped[str | None] = mapped_column(String(20))
    to_stage: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(20))
    request_id: Mapped[str | None] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class CardRow(Base):
    __tablename__ = "registry_cards"
    __table_args__ = (Unique("version_id", "kind", name="uq_registry_cards_version_kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("registry_versions.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))
    fields: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class RegistrationRow(Base):
    """A registration in flight: whoever holds (name, digest) creates the MLflow version;
    the row goes in the transaction that records the version. One left behind by a
    process that died is taken over once its lease is older than the policy's bound
    (at once when ``claimed_at`` is None: its holder gave up after touching MLflow)."""

    __tablename__ = "registry_registrations"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    artifact_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    claim_id: Mapped[str] = mapped_column(String(32))
    claimed_by: Mapped[str] = mapped_column(String(200))
    claimed_at: Mapped[datetime | None]
