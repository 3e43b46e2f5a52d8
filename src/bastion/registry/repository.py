"""Queries over the registry tables, one intention per method."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, func, or_, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from bastion.registry.models import (
    CardRow,
    EvidenceRow,
    ModelVersionRow,
    PromotionRequestRow,
    RegistrationRow,
    StageChangeRow,
)

#: A request no one has decided yet: waiting, or an approval under way.
OPEN = ("pending", "approving")


def _lapsed(lease: InstrumentedAttribute[datetime | None], cutoff: datetime) -> ColumnElement[bool]:
    """Nobody holds the lease: given up (None), or taken before ``cutoff``."""
    return or_(lease.is_(None), lease < cutoff)


class RegistryRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # -- versions -----------------------------------------------------------------------

    def version(self, name: str, version: int) -> ModelVersionRow | None:
        return self.session.scalar(
            select(ModelVersionRow).where(
                ModelVersionRow.name == name, ModelVersionRow.version == version
            )
        )

    def version_by_digest(self, name: str, digest: str) -> ModelVersionRow | None:
        return self.session.scalar(
            select(ModelVersionRow).where(
                ModelVersionRow.name == name, ModelVersionRow.artifact_sha256 == digest
            )
        )

    def versions(self, name: str) -> Sequence[ModelVersionRow]:
        return self.session.scalars(
            select(ModelVersionRow)
            .where(ModelVersionRow.name == name)
            .order_by(ModelVersionRow.version)
        ).all()

    def semvers(self, name: str) -> list[tuple[int, str | None]]:
        """(version, semver label) of each of a model's versions."""
        rows = self.session.execute(
            select(ModelVersionRow.version, ModelVersionRow.semver).where(
                ModelVersionRow.name == name
            )
        ).all()
        return [(int(v), label) for v, label in rows]

    def all_versions(self) -> Sequence[ModelVersionRow]:
        return self.session.scalars(
            select(ModelVersionRow).order_by(ModelVersionRow.name, ModelVersionRow.version)
        ).all()

    def holder(self, name: str, stage: str) -> ModelVersionRow | None:
        """The version in ``stage`` (staging and production hold one each)."""
        return self.session.scalar(
            select(ModelVersionRow).where(
                ModelVersionRow.name == name, ModelVersionRow.stage == stage
            )
        )

    def add(self, row: object) -> None:
        self.session.add(row)
        self.session.flush()

    # -- requests -----------------------------------------------------------------------

    def request(self, request_id: str) -> PromotionRequestRow | None:
        return self.session.get(PromotionRequestRow, request_id)

    def open_request(self, version_id: int, to_stage: str) -> PromotionRequestRow | None:
        """The undecided request (pending or being approved) for this move, if any."""
        return self.session.scalar(
            select(PromotionRequestRow).where(
                PromotionRequestRow.version_id == version_id,
                PromotionRequestRow.to_stage == to_stage,
                PromotionRequestRow.status.in_(OPEN),
            )
        )

    def _update_request(self, request_id: str, *where: Any, **values: Any) -> bool:
        result = self.session.execute(
            update(PromotionRequestRow)
            .where(PromotionRequestRow.id == request_id, *where)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))

    def claim_request(self, request_id: str, claim_id: str, by: str, at: datetime) -> bool:
        """pending -> approving, held by ``claim_id``; False when it was not pending."""
        return self._update_request(
            request_id,
            PromotionRequestRow.status == "pending",
            status="approving",
            claim_id=claim_id,
            claimed_by=by,
            claimed_at=at,
        )

    def _claimed(self, claim_id: str | None) -> tuple[ColumnElement[bool], ...]:
        # None: an approval begun before attempts had ids (schema 0004).
        held = PromotionRequestRow.claim_id
        return (
            PromotionRequestRow.status == "approving",
            held.is_(None) if claim_id is None else held == claim_id,
        )

    def release_request(self, request_id: str, claim_id: str | None) -> bool:
        """approving -> pending again: the approval held by ``claim_id`` did not happen."""
        return self._update_request(
            request_id,
            *self._claimed(claim_id),
            status="pending",
            claim_id=None,
            claimed_by=None,
            claimed_at=None,
        )

    def give_up_request(self, request_id: str, claim_id: str | None) -> None:
        """Keep the approval unsettled but let the next one who meets it settle it at once."""
        self._update_request(request_id, *self._claimed(claim_id), claimed_at=None)

    def take_over_request(
        self, request_id: str, claim_id: str | None, at: datetime, cutoff: datetime
    ) -> bool:
        """Hold an unsettled approval's lease to settle it; False when someone else does."""
        return self._update_request(
            request_id,
            *self._claimed(claim_id),
            _lapsed(PromotionRequestRow.claimed_at, cutoff),
            claimed_at=at,
        )

    def decide_claimed(self, request_id: str, claim_id: str | None, **decision: Any) -> bool:
        """approving -> approved with ``decision``; False when the claim was lost."""
        return self._update_request(
            request_id,
            *self._claimed(claim_id),
            status="approved",
            claim_id=None,
            claimed_by=None,
            claimed_at=None,
            **decision,
        )

    def reject_pending(self, request_id: str, **decision: Any) -> bool:
        """pending -> rejected; False when it was not pending (an approval claimed it)."""
        return self._update_request(
            request_id, PromotionRequestRow.status == "pending", status="rejected", **decision
        )

    def unsettled_approvals(
        self, cutoff: datetime, *, name: str | None = None
    ) -> Sequence[PromotionRequestRow]:
        """Approvals nobody is working on: given up, or claimed before ``cutoff``."""
        query = select(PromotionRequestRow).where(
            PromotionRequestRow.status == "approving",
            _lapsed(PromotionRequestRow.claimed_at, cutoff),
        )
        if name is not None:
            query = query.where(PromotionRequestRow.name == name)
        return self.session.scalars(query.order_by(PromotionRequestRow.requested_at)).all()

    def requests(
        self,
        *,
        status: str | None = None,
        name: str | None = None,
        version_id: int | None = None,
        limit: int = 200,
    ) -> Sequence[PromotionRequestRow]:
        query = select(PromotionRequestRow)
        if status is not None:
            query = query.where(PromotionRequestRow.status == status)
        if name is not None:
            query = query.where(PromotionRequestRow.name == name)
        if version_id is not None:
            query = query.where(PromotionRequestRow.version_id == version_id)
        order = PromotionRequestRow.requested_at.desc(), PromotionRequestRow.id.desc()
        return self.session.scalars(query.order_by(*order).limit(limit)).all()

    def pending_counts(self) -> dict[str, int]:
        rows = self.session.execute(
            select(PromotionRequestRow.name, func.count())
            .where(PromotionRequestRow.status.in_(OPEN))
            .group_by(PromotionRequestRow.name)
        ).all()
        return {name: int(n) for name, n in rows}

    def change_stage(
        self,
        row: ModelVersionRow,
        to: str,
        *,
        kind: str,
        actor: str,
        at: datetime,
        request_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Put ``row`` in ``to`` and keep the change in its history."""
        self.add(
            StageChangeRow(
                version_id=row.id,
                name=row.name,
                version=row.version,
                from_stage=row.stage,
                to_stage=to,
                kind=kind,
                request_id=request_id,
                actor=actor,
                at=at,
                details=details or {},
            )
        )
        row.stage, row.stage_changed_at = to, at

    # -- registrations in flight --------------------------------------------------------

    def registration(self, name: str, digest: str) -> RegistrationRow | None:
        return self.session.get(RegistrationRow, (name, digest))

    def take_over_registration(
        self, name: str, digest: str, claim_id: str, by: str, at: datetime, cutoff: datetime
    ) -> bool:
        """Hold a registration whose holder died or gave up; False when it is alive."""
        result = self.session.execute(
            update(RegistrationRow)
            .where(
                RegistrationRow.name == name,
                RegistrationRow.artifact_sha256 == digest,
                _lapsed(RegistrationRow.claimed_at, cutoff),
            )
            .values(claim_id=claim_id, claimed_by=by, claimed_at=at)
        )
        return bool(getattr(result, "rowcount", 0))

    def end_registration(self, name: str, digest: str, claim_id: str) -> bool:
        """Remove the reservation held by ``claim_id``; False when someone took it over."""
        result = self.session.execute(
            delete(RegistrationRow).where(
                RegistrationRow.name == name,
                RegistrationRow.artifact_sha256 == digest,
                RegistrationRow.claim_id == claim_id,
            )
        )
        return bool(getattr(result, "rowcount", 0))

    def give_up_registration(self, name: str, digest: str, claim_id: str) -> None:
        """Keep the reservation (MLflow may hold its version) for the next one to finish."""
        self.session.execute(
            update(RegistrationRow)
            .where(
                RegistrationRow.name == name,
                RegistrationRow.artifact_sha256 == digest,
                RegistrationRow.claim_id == claim_id,
            )
            .values(claimed_at=None)
        )

    # -- history ------------------------------------------------------------------------

    def stage_changes(self, name: str, version_id: int | None = None) -> Sequence[StageChangeRow]:
        query = select(StageChangeRow).where(StageChangeRow.name == name)
        if version_id is not None:
            query = query.where(StageChangeRow.version_id == version_id)
        return self.session.scalars(query.order_by(StageChangeRow.id)).all()

    def previous_production(self, name: str, current: int) -> ModelVersionRow | None:
        """The version that served before ``current``, skipping versions rolled back from.

        Production's history is a stack: a promotion pushes, a rollback pops. Rolling
        back twice goes two steps back, never forward again to the version that the
        first rollback removed.
        """
        changes = self.session.execute(
            select(StageChangeRow.version, StageChangeRow.version_id, StageChangeRow.kind)
            .where(StageChangeRow.name == name, StageChangeRow.to_stage == "production")
            .order_by(StageChangeRow.id)
        ).all()
        stack: list[tuple[int, int]] = []
        for version, version_id, kind in changes:
            entry = (version, version_id)
            if kind == "rollback" and entry in stack:
                del stack[stack.index(entry) + 1 :]
                continue
            if entry in stack:
                stack.remove(entry)
            stack.append(entry)
        below = [version_id for version, version_id in stack if version != current]
        return self.session.get(ModelVersionRow, below[-1]) if below else None

    # -- evidence and cards -------------------------------------------------------------

    def latest_evidence(self, version_id: int, kind: str) -> EvidenceRow | None:
        return self.session.scalar(
            select(EvidenceRow)
            .where(EvidenceRow.version_id == version_id, EvidenceRow.kind == kind)
            .order_by(EvidenceRow.id.desc())
            .limit(1)
        )

    def evidence(self, version_id: int) -> Sequence[EvidenceRow]:
        return self.session.scalars(
            select(EvidenceRow).where(EvidenceRow.version_id == version_id).order_by(EvidenceRow.id)
        ).all()

    def card(self, version_id: int, kind: str) -> CardRow | None:
        return self.session.scalar(
            select(CardRow).where(CardRow.version_id == version_id, CardRow.kind == kind)
        )
