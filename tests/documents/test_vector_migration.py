"""Migration 0019: where PostgreSQL offers pgvector it makes the side table, fills it
from the vectors already stored and builds the HNSW index; downgrading drops the table
and keeps the chunks; elsewhere (SQLite, PostgreSQL without pgvector) it changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from bastion.db import create_database, upgrade
from bastion.db.migrate import _config
from bastion.documents import vectors
from bastion.documents.vectors import VectorIndex


def count(db: Any, sql: str, **params: Any) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(sa.text(sql), params).scalar_one())


def _seed_0018(db: Any) -> int:
    """A document with two embedded chunks, written as an 0018 Bastion would have."""
    import numpy as np

    with db.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO doc_documents (id, collection, name, format, digest, text, meta, "
                "chunk_count, personal_data, embedding_model, ingested_by, ingested_at) VALUES "
                "('doc_1', 'public', 'a.md', 'md', :d, 'alpha beta', '{}', 2, '{}', "
                "'hash-embed', 'ops', CURRENT_TIMESTAMP)"
            ),
            {"d": "0" * 64},
        )
        for i, vector in enumerate(np.eye(2, 8, dtype="<f4")):
            conn.execute(
                sa.text(
                    "INSERT INTO doc_chunks (chunk_id, document_id, collection, ordinal, "
                    'location, start, "end", text, search_text, embedding) VALUES '
                    "(:c, 'doc_1', 'public', :i, 'a.md', 0, 5, 'alpha', 'alpha', :e)"
                ),
                {"c": f"doc_1-{i}", "i": i, "e": vector.tobytes()},
            )
    return 2


def _has_table(db: Any) -> bool:
    with db.engine.connect() as conn:
        return sa.inspect(conn).has_table("doc_chunk_vectors")


@pytest.mark.postgres
def test_the_migration_backfills_and_goes_down_and_up_with_pgvector(pgvector_url: str) -> None:
    db = create_database(pgvector_url)
    try:
        upgrade(db.engine, "0018")
        seeded = _seed_0018(db)
        upgrade(db.engine)
        assert _has_table(db)
        assert count(db, "SELECT count(*) FROM doc_chunk_vectors WHERE dims = 8") == seeded
        assert (
            count(
                db,
                "SELECT count(*) FROM pg_indexes WHERE indexname = :n",
                n=vectors.index_name(8),
            )
            == 1
        )
        command.downgrade(_config(db.engine), "0018")
        assert not _has_table(db)
        assert count(db, "SELECT count(*) FROM doc_chunks") == seeded  # chunks untouched
        upgrade(db.engine)
        assert count(db, "SELECT count(*) FROM doc_chunk_vectors") == seeded
    finally:
        db.dispose()


def test_the_migration_changes_nothing_where_pgvector_is_absent(database_url: str) -> None:
    db = create_database(database_url)
    try:
        with db.engine.connect() as conn:
            offered = vectors.available(conn)
        if offered:
            pytest.skip("this PostgreSQL offers pgvector: the test above covers it")
        upgrade(db.engine, "0018")
        seeded = _seed_0018(db)
        upgrade(db.engine)
        assert not _has_table(db)
        assert not VectorIndex(db).enabled()
        command.downgrade(_config(db.engine), "0018")
        upgrade(db.engine)
        assert not _has_table(db)
        assert count(db, "SELECT count(*) FROM doc_chunks") == seeded
    finally:
        db.dispose()
