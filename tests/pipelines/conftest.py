from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def pipeline_settings(migrated: Any, database_url: str) -> Iterator[Any]:
    """Settings whose DBOS tables (on PostgreSQL) live in a schema of this test's own."""
    schema = f"dbos_{uuid.uuid4().hex[:10]}"
    yield migrated.model_copy(update={"pipelines_schema": schema})
    if database_url.startswith("postgresql"):
        import sqlalchemy as sa

        engine = sa.create_engine(database_url)
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture
def engine(pipeline_settings: Any) -> Iterator[Any]:
    from bastion.pipelines.engine import PipelineEngine
    from bastion.runtime import open_runtime

    rt = open_runtime(pipeline_settings)
    eng = PipelineEngine(rt)
    eng.launch()
    yield eng
    eng.close()
    rt.close()
