"""Reading pipeline runs (the engine writes them): listings and one run's detail."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from bastion.db import Database
from bastion.errors import NotFound
from bastion.pipelines.models import PipelineRunRow, PipelineStepRow


def recent_runs(db: Database, pipeline: str | None, limit: int) -> list[dict[str, Any]]:
    from bastion.pipelines.engine import run_view

    query = select(PipelineRunRow).order_by(PipelineRunRow.started_at.desc()).limit(limit)
    if pipeline is not None:
        query = query.where(PipelineRunRow.pipeline == pipeline)
    with db.session() as session:
        rows = session.execute(query).scalars().all()
        return [run_view(row, []) for row in rows]


def run_detail(db: Database, run_id: str) -> dict[str, Any]:
    from bastion.pipelines.engine import run_view

    with db.session() as session:
        row = session.get(PipelineRunRow, run_id)
        if row is None:
            raise NotFound(f"no pipeline run {run_id}: `bastion pipelines list` shows the runs")
        steps = (
            session.execute(select(PipelineStepRow).where(PipelineStepRow.run_id == run_id))
            .scalars()
            .all()
        )
        return run_view(row, list(steps))
