"""What progressive delivery returns: views shared by the API and the CLI."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from bastion.delivery.models import FINAL, RolloutDecisionRow, RolloutRow


class RolloutView(BaseModel):
    id: str
    model: str
    kind: str
    candidate_version: int
    baseline_version: int
    steps: list[int]
    interval_s: float
    step_index: int
    weight: int = Field(description="percent of requests the candidate takes (shadow: scores)")
    state: str
    final: bool
    reason: str | None
    thresholds: dict[str, Any]
    created_by: str
    created_at: datetime
    step_started_at: datetime
    next_check_at: datetime
    finished_at: datetime | None
    last_analysis: dict[str, Any] | None

    @classmethod
    def of(cls, row: RolloutRow) -> RolloutView:
        return cls(
            id=row.id,
            model=row.model,
            kind=row.kind,
            candidate_version=row.candidate_version,
            baseline_version=row.baseline_version,
            steps=list(row.steps),
            interval_s=row.interval_s,
            step_index=row.step_index,
            weight=row.weight,
            state=row.state,
            final=row.state in FINAL,
            reason=row.reason,
            thresholds=dict(row.thresholds),
            created_by=row.created_by,
            created_at=row.created_at,
            step_started_at=row.step_started_at,
            next_check_at=row.next_check_at,
            finished_at=row.finished_at,
            last_analysis=row.last_analysis,
        )


class DecisionView(BaseModel):
    at: datetime
    actor: str
    action: str
    step_index: int
    weight: int
    state: str
    verdict: str | None
    details: dict[str, Any]

    @classmethod
    def of(cls, row: RolloutDecisionRow) -> DecisionView:
        return cls(
            at=row.at,
            actor=row.actor,
            action=row.action,
            step_index=row.step_index,
            weight=row.weight,
            state=row.state,
            verdict=row.verdict,
            details=dict(row.details),
        )


class RolloutHistory(BaseModel):
    rollout: RolloutView
    decisions: list[DecisionView]


class StartRollout(BaseModel):
    """``POST /api/deployments``: start a canary, an A/B split or a shadow."""

    model_config = {"extra": "forbid"}

    model: str = Field(min_length=1, max_length=200)
    version: int = Field(ge=1)
    kind: Literal["canary", "ab", "shadow"] = "canary"
    steps: list[int] | None = Field(None, description="percent at each step, e.g. [5, 25, 50, 100]")
    interval: str = Field("10m", description="time each step runs at least: 30s, 10m, 1h")
    reason: str | None = Field(None, max_length=4000)


class ReasonBody(BaseModel):
    model_config = {"extra": "forbid"}

    reason: str | None = Field(None, max_length=4000)
