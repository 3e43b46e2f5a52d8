"""Pipeline runs and their steps: what ran, when, with what result (the evidence).

- ``pipeline_runs``: one row a run: the pipeline's name and file digest, the parameters,
  who started it, its state (``queued``, ``running``, ``succeeded``, ``failed``,
  ``cancelled``, ``crashed``), and the process running it (host, pid and the engine's
  executor id), so a run whose process died is shown as crashed rather than left
  "running".
- ``pipeline_steps``: one row a step of a run: state (``pending``, ``running``,
  ``succeeded``, ``failed``, ``skipped``), attempts, the executor that ran it, output
  (JSON), criteria verdicts, artifact digests, the error.
- ``pipeline_workers``: one row a queue worker (``bastion pipelines worker``): its
  executor id, process, concurrency and when it was last seen, so the other workers can
  tell that it died and take over its runs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bastion.db.base import Base, utcnow

RUN_STATES = ("queued", "running", "succeeded", "failed", "cancelled", "crashed")
STEP_STATES = ("pending", "running", "succeeded", "failed", "skipped")


class PipelineRunRow(Base):
    __tablename__ = "pipeline_runs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    pipeline: Mapped[str] = mapped_column(String(100), index=True)
    digest: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(1000))
    spec: Mapped[str] = mapped_column(Text)  # the file's text as run
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default="running")
    started_by: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    executor: Mapped[str | None] = mapped_column(String(100), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)


class PipelineStepRow(Base):
    __tablename__ = "pipeline_steps"
    __table_args__ = (UniqueConstraint("run_id", "step", name="uq_pipeline_steps_run_step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("pipeline_runs.id"), index=True)
    step: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    executor: Mapped[str | None] = mapped_column(String(100), default=None)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    output: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    verdicts: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    artifacts: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text, default=None)


class PipelineWorkerRow(Base):
    __tablename__ = "pipeline_workers"

    executor: Mapped[str] = mapped_column(String(100), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    concurrency: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    stopped_at: Mapped[datetime | None] = mapped_column(default=None)
    #: Set once another worker (or its own restart) took over its unfinished runs.
    recovered_at: Mapped[datetime | None] = mapped_column(default=None)
    recovered_by: Mapped[str | None] = mapped_column(String(100), default=None)
