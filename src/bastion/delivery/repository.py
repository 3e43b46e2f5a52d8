"""Queries for rollouts, their decisions, the controller lease, and the arms' samples.

The samples are read from serving's prediction log (``predictions``, labels in
``prediction_labels``); their columns are the contract in
:mod:`bastion.serving.models`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bastion.delivery.models import (
    ControllerLeaseRow,
    RolloutDecisionRow,
    RolloutRow,
)
from bastion.serving.models import PredictionLabelRow, PredictionRow

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    FloatArray = npt.NDArray[np.float64]

#: Most rows of one arm read for latency, drift and quality (counts are exact).
SAMPLE_LIMIT = 50_000


@dataclass(frozen=True)
class ArmSamples:
    """What one arm served in a window: exact counts and a recent sample of values."""

    requests: int
    errors: int
    latencies_ms: FloatArray = field(default_factory=lambda: _floats([]))
    predictions: list[Any] = field(default_factory=list)
    labelled: int = 0
    wrong: int = 0

    @classmethod
    def empty(cls) -> ArmSamples:
        return cls(0, 0)


def _floats(values: list[float]) -> FloatArray:
    import numpy as np  # NumPy when an analysis runs, not at the server's start

    return np.asarray(values, dtype=np.float64)


def _scalar(value: Any) -> Any:
    """A logged prediction as one comparable value: a one-element list is its element."""
    while isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, dict) and len(value) == 1:
        return _scalar(next(iter(value.values())))
    return value


class DeliveryRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # rollouts --------------------------------------------------------------------------

    def add(self, row: RolloutRow) -> None:
        self.session.add(row)
        self.session.flush()

    def get(self, rollout_id: str) -> RolloutRow | None:
        return self.session.get(RolloutRow, rollout_id)

    def active_for(self, model: str) -> RolloutRow | None:
        return self.session.scalars(
            select(RolloutRow).where(RolloutRow.active_model == model)
        ).first()

    def active(self) -> Sequence[RolloutRow]:
        return self.session.scalars(
            select(RolloutRow).where(RolloutRow.active_model.is_not(None)).order_by(RolloutRow.id)
        ).all()

    def latest_for(self, model: str) -> RolloutRow | None:
        return self.session.scalars(
            select(RolloutRow)
            .where(RolloutRow.model == model)
            .order_by(RolloutRow.created_at.desc(), RolloutRow.id.desc())
        ).first()

    def for_model(self, model: str | None, limit: int = 50) -> Sequence[RolloutRow]:
        query = select(RolloutRow).order_by(RolloutRow.created_at.desc()).limit(limit)
        if model is not None:
            query = query.where(RolloutRow.model == model)
        return self.session.scalars(query).all()

    def add_decision(self, row: RolloutDecisionRow) -> None:
        self.session.add(row)

    def decisions(self, rollout_id: str) -> Sequence[RolloutDecisionRow]:
        return self.session.scalars(
            select(RolloutDecisionRow)
            .where(RolloutDecisionRow.rollout_id == rollout_id)
            .order_by(RolloutDecisionRow.id)
        ).all()

    # the lease -------------------------------------------------------------------------

    def take_lease(
        self, name: str, holder: str, now: datetime, until: datetime, *, renew: bool = True
    ) -> bool:
        """Hold ``name`` until ``until`` if it is free, expired or (with ``renew``)
        already ours. Without ``renew`` the lease is a claimed slot: nobody, its holder
        included, takes it again before it expires."""
        free = ControllerLeaseRow.expires_at < now
        taken = self.session.execute(
            update(ControllerLeaseRow)
            .where(
                ControllerLeaseRow.name == name,
                ((ControllerLeaseRow.holder == holder) | free) if renew else free,
            )
            .values(holder=holder, expires_at=until)
        )
        if getattr(taken, "rowcount", 0) == 1:
            return True
        if self.session.get(ControllerLeaseRow, name) is not None:
            return False
        try:
            with self.session.begin_nested():
                self.session.add(ControllerLeaseRow(name=name, holder=holder, expires_at=until))
        except IntegrityError:  # another replica inserted it first
            return False
        return True

    def drop_lease(self, name: str, holder: str) -> None:
        row = self.session.get(ControllerLeaseRow, name)
        if row is not None and row.holder == holder:
            self.session.delete(row)

    # the prediction log ----------------------------------------------------------------

    def prediction_count(
        self, model: str, version: int, arms: Sequence[str], since: datetime
    ) -> int:
        return int(
            self.session.scalar(
                select(func.count(PredictionRow.id)).where(
                    PredictionRow.model == model,
                    PredictionRow.version == version,
                    PredictionRow.arm.in_(arms),
                    PredictionRow.created_at >= since,
                )
            )
            or 0
        )

    def arm_samples(
        self, model: str, version: int, arms: Sequence[str], since: datetime
    ) -> ArmSamples:
        where = (
            PredictionRow.model == model,
            PredictionRow.version == version,
            PredictionRow.arm.in_(arms),
            PredictionRow.created_at >= since,
        )
        total, errors = self.session.execute(
            select(
                func.count(PredictionRow.id),
                func.coalesce(func.sum(case((PredictionRow.outcome != "ok", 1), else_=0)), 0),
            ).where(*where)
        ).one()
        if not total:
            return ArmSamples.empty()
        rows = self.session.execute(
            select(
                PredictionRow.outcome,
                PredictionRow.latency_ms,
                PredictionRow.prediction,
                PredictionLabelRow.label,
            )
            .outerjoin(
                PredictionLabelRow, PredictionLabelRow.request_id == PredictionRow.request_id
            )
            .where(*where)
            .order_by(PredictionRow.id.desc())
            .limit(SAMPLE_LIMIT)
        ).all()
        latencies = _floats([r.latency_ms for r in rows])
        predictions = [_scalar(r.prediction) for r in rows if r.outcome == "ok"]
        labelled = wrong = 0
        for r in rows:
            if r.outcome == "ok" and r.label is not None:
                labelled += 1
                wrong += int(_scalar(r.prediction) != _scalar(r.label))
        return ArmSamples(int(total), int(errors), latencies, predictions, labelled, wrong)
