"""Queries on the prediction log and its labels."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from bastion.db import utcnow
from bastion.serving.models import PredictionLabelRow, PredictionRow

#: Labels are written this many at a time (a statement's parameter limit on SQLite).
_CHUNK = 500


class PredictionRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def prediction(self, model: str, request_id: str) -> PredictionRow | None:
        return self.session.scalars(
            select(PredictionRow).where(
                PredictionRow.request_id == request_id, PredictionRow.model == model
            )
        ).one_or_none()

    def window(
        self,
        model: str,
        since: datetime,
        until: datetime | None = None,
        *,
        arms: Iterable[str] | None = None,
        version: int | None = None,
    ) -> list[tuple[PredictionRow, Any]]:
        """The model's successful predictions in ``[since, until)``, each with its label
        (None when none has arrived), oldest first."""
        query = (
            select(PredictionRow, PredictionLabelRow.label)
            .outerjoin(
                PredictionLabelRow, PredictionLabelRow.request_id == PredictionRow.request_id
            )
            .where(
                PredictionRow.model == model,
                PredictionRow.created_at >= since,
                PredictionRow.created_at < (until or utcnow()),
                PredictionRow.outcome == "ok",
            )
            .order_by(PredictionRow.created_at, PredictionRow.id)
        )
        if arms is not None:
            query = query.where(PredictionRow.arm.in_(list(arms)))
        if version is not None:
            query = query.where(PredictionRow.version == version)
        return [(row, label) for row, label in self.session.execute(query).all()]

    def known_ids(self, request_ids: list[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(request_ids), _CHUNK):
            chunk = request_ids[start : start + _CHUNK]
            found.update(
                self.session.scalars(
                    select(PredictionRow.request_id).where(PredictionRow.request_id.in_(chunk))
                )
            )
        return found

    def put_labels(self, labels: dict[str, Any]) -> None:
        """Attach (or replace) labels by request id."""
        ids = list(labels)
        now = utcnow()
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            self.session.execute(
                delete(PredictionLabelRow).where(PredictionLabelRow.request_id.in_(chunk))
            )
            self.session.execute(
                insert(PredictionLabelRow),
                [{"request_id": rid, "label": labels[rid], "created_at": now} for rid in chunk],
            )

    def count(self, model: str) -> int:
        return int(
            self.session.scalar(
                select(func.count()).select_from(PredictionRow).where(PredictionRow.model == model)
            )
            or 0
        )
