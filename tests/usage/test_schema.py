"""Migration 0015 builds the usage tables exactly as the code declares them."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from bastion.schema import metadata
from bastion.usage.histogram import BUCKETS
from bastion.usage.models import LATENCY_COLUMNS


def test_the_migration_matches_the_tables(migrated: Any) -> None:
    engine = sa.create_engine(migrated.resolved_database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diffs = [d for d in compare_metadata(context, metadata) if "usage_" in repr(d)]
            columns = {c["name"] for c in sa.inspect(conn).get_columns("usage_daily")}
    finally:
        engine.dispose()
    assert diffs == []
    assert set(LATENCY_COLUMNS) <= columns and len(LATENCY_COLUMNS) == BUCKETS
