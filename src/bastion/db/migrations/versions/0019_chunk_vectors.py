"""chunk vectors in pgvector, where PostgreSQL offers the extension

Only on PostgreSQL with ``vector`` in ``pg_available_extensions`` (and a role allowed to
create it, or the extension already there): creates the extension, the side table
``doc_chunk_vectors`` (an unsized ``vector`` per embedded chunk, removed with its chunk),
fills it from the float32 bytes already stored in ``doc_chunks.embedding``, and builds
an HNSW cosine index per vector size found (see ``bastion.documents.vectors``).
Elsewhere (SQLite, PostgreSQL without pgvector) it does nothing and dense search stays
in memory. Downgrading drops the table and leaves the extension (other schemas or
databases' objects may use it; an unused extension is harmless).

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

import logging

import numpy as np
import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | None = None
depends_on: str | None = None

log = logging.getLogger("bastion.db")
BACKFILL_BATCH = 500
# As in bastion.documents.vectors (a migration stays as it was written: no imports of
# the code that may change after it).
TABLE = "doc_chunk_vectors"
HNSW_MAX_DIMS = 2000


def _literal(vector: np.ndarray) -> str:
    return "[" + ",".join(repr(float(x)) for x in vector) + "]"


def _create_index(dims: int) -> str:
    return (
        f"CREATE INDEX IF NOT EXISTS ix_{TABLE}_hnsw_{dims} ON {TABLE} "
        f"USING hnsw ((embedding::vector({dims})) vector_cosine_ops) WHERE dims = {dims}"
    )


def _available(bind: sa.Connection) -> bool:
    if bind.dialect.name != "postgresql":
        return False
    found = bind.execute(
        sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
    ).first()
    return found is not None


def _extension_ready(bind: sa.Connection) -> bool:
    if not _available(bind):
        return False
    if bind.execute(sa.text("SELECT to_regtype('vector')")).scalar() is not None:
        return True
    savepoint = bind.begin_nested()
    try:
        bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS vector"))
    except sa.exc.DBAPIError as exc:  # not allowed to: stay on the in-memory path
        savepoint.rollback()
        log.warning("pgvector is available but could not be created (%s)", exc.orig)
        return False
    savepoint.commit()
    return bind.execute(sa.text("SELECT to_regtype('vector')")).scalar() is not None


def upgrade() -> None:
    bind = op.get_bind()
    if not _extension_ready(bind):
        return
    op.execute(
        f"CREATE TABLE {TABLE} ("
        "pk integer NOT NULL, "
        "collection varchar(200) NOT NULL, "
        "model varchar(200) NOT NULL, "
        "dims integer NOT NULL, "
        "embedding vector NOT NULL, "
        f"CONSTRAINT pk_{TABLE} PRIMARY KEY (pk), "
        f"CONSTRAINT fk_{TABLE}_pk_doc_chunks FOREIGN KEY (pk) "
        "REFERENCES doc_chunks (pk) ON DELETE CASCADE)"
    )
    _backfill(bind)


def _backfill(bind: sa.Connection) -> None:
    rows = bind.execute(
        sa.text(
            "SELECT c.pk, c.collection, d.embedding_model, c.embedding FROM doc_chunks c "
            "JOIN doc_documents d ON d.id = c.document_id "
            "WHERE c.embedding IS NOT NULL AND d.embedding_model IS NOT NULL ORDER BY c.pk"
        )
    )
    insert = sa.text(
        "INSERT INTO doc_chunk_vectors (pk, collection, model, dims, embedding) "
        "VALUES (:pk, :collection, :model, :dims, CAST(:embedding AS vector))"
    )
    sizes: set[int] = set()
    while batch := rows.fetchmany(BACKFILL_BATCH):
        params = []
        for pk, collection, model, blob in batch:
            vector = np.frombuffer(bytes(blob), dtype="<f4")
            if vector.size == 0:
                continue
            sizes.add(vector.size)
            params.append(
                {
                    "pk": pk,
                    "collection": collection,
                    "model": model,
                    "dims": vector.size,
                    "embedding": _literal(vector),
                }
            )
        if params:
            bind.execute(insert, params)
    # pgvector before 0.5 has no HNSW: searches are then exact scans in SQL.
    hnsw = bind.execute(sa.text("SELECT 1 FROM pg_am WHERE amname = 'hnsw'")).first()
    for dims in sorted(sizes):
        if hnsw is not None and dims <= HNSW_MAX_DIMS:
            op.execute(_create_index(dims))


def downgrade() -> None:
    op.execute(f"DROP TABLE IF EXISTS {TABLE}")
