"""Queries over the registry tables, one intention per method."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bastion.registry.models import (
    CardRow,
    EvidenceRow,
    ModelVersionRow,
    PromotionRequestRow,
    StageChangeRow,
)


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

    def pending_request(self, version_id: int, to_stage: str) -> PromotionRequestRow | None:
        return self.session.scalar(
            select(PromotionRequestRow).where(
                PromotionRequestRow.version_id == version_id,
                PromotionRequestRow.to_stage == to_stage,
                PromotionRequestRow.status == "pending",
            )
        )

    def set_request_status(self, request_id: str, current: str, new: str) -> bool:
        """Move a request from ``current`` to ``new``; False when it was not ``current``."""
        result = self.session.execute(
            update(PromotionRequestRow)
            .where(PromotionRequestRow.id == request_id, PromotionRequestRow.status == current)
            .values(status=new)
        )
        return bool(getattr(result, "rowcount", 0))

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
            .where(PromotionRequestRow.status == "pending")
            .group_by(PromotionRequestRow.name)
        ).all()
        return {name: int(n) for name, n in rows}

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
