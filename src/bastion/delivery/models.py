"""Rollout tables: the rollout itself, every decision taken on it, and the controller lease.

- ``rollouts``: one row per rollout. ``active_model`` holds the model's name while the
  rollout is not finished and NULL after, so a unique index keeps one unfinished
  rollout per model on every backend (NULLs never collide).
- ``rollout_decisions``: start, each analysis with its verdict and numbers, advance,
  hold, pause, resume, abort, rollback, promotion: the history ``bastion deploy
  history`` shows (the ledger holds the same, chained).
- ``controller_leases``: who may act now. A replica acts only while it holds the row's
  unexpired lease; taking it is one conditional UPDATE (or the first INSERT).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bastion.db.base import Base, utcnow

#: States a rollout can be in; the last four are final.
STATES = ("running", "paused", "holding", "passed", "failed", "aborted", "promoted")
FINAL = frozenset({"failed", "aborted", "promoted"})
KINDS = ("canary", "ab", "shadow")


class RolloutRow(Base):
    __tablename__ = "rollouts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    model: Mapped[str] = mapped_column(String(255), index=True)
    active_model: Mapped[str | None] = mapped_column(String(255), unique=True)
    candidate_version: Mapped[int] = mapped_column(Integer)
    baseline_version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    steps: Mapped[list[int]] = mapped_column(JSON)
    interval_s: Mapped[float] = mapped_column(Float)
    step_index: Mapped[int] = mapped_column(Integer, default=0)
    weight: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16))
    thresholds: Mapped[dict[str, Any]] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    step_started_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Candidate requests logged when the step began (the step's own sample is the rest).
    step_base_count: Mapped[int] = mapped_column(Integer, default=0)
    next_check_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()
    #: The last analysis: verdict, checks, estimate of requests still needed.
    last_analysis: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class RolloutDecisionRow(Base):
    __tablename__ = "rollout_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rollout_id: Mapped[str] = mapped_column(ForeignKey("rollouts.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(32))
    step_index: Mapped[int] = mapped_column(Integer)
    weight: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    verdict: Mapped[str | None] = mapped_column(String(16))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)


class ControllerLeaseRow(Base):
    __tablename__ = "controller_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column()
