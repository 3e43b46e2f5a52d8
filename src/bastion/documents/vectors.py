"""Dense search in PostgreSQL with pgvector, where the database has it.

Migration 0019 creates the ``vector`` extension and the side table
``doc_chunk_vectors`` (one row per embedded chunk: its key, collection, model, number of
dimensions and the vector) only where PostgreSQL offers the extension
(``pg_available_extensions``) and the migrating role may create it. Where the table
exists, :class:`VectorIndex` is *on*: ingestion writes each chunk's vector there beside
the float32 bytes in ``doc_chunks.embedding`` (which stay the source of truth and what
the in-memory path reads), and dense search runs in SQL::

    SELECT pk, 1 - (embedding::vector(384) <=> :q) FROM doc_chunk_vectors
    WHERE dims = 384 AND model = :model AND collection IN (:readable…)
    ORDER BY embedding::vector(384) <=> :q LIMIT :depth

Elsewhere (SQLite, PostgreSQL without pgvector) it is *off* and retrieval keeps its exact
in-memory search.

The column is an unsized ``vector`` because the embedding model is policy, not schema:
the HNSW index (cosine) is an expression index per size, partial on ``dims``, as
pgvector's documentation recommends for vectors of several sizes in one column. The
first vectors of a size build that size's index (the migration does it for the sizes it
backfills; ingestion for a size seen later) — an index, never a table or a column.

HNSW needs pgvector 0.5 or later; with an older one every search is an exact scan in
SQL. HNSW is approximate and pgvector 0.6 filters after the index scan: a search runs with
``hnsw.ef_search`` well above the depth asked for, and when the index returns fewer rows
than asked for (a small collection, or one the filter thinned out) it is run again as an
exact scan, so a search never comes back short. Chunks leave the table with their
``doc_chunks`` row (``ON DELETE CASCADE``): removing or re-ingesting a document removes
its vectors in the same transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from bastion.db import Database
    from bastion.documents.models import ChunkRow

TABLE = "doc_chunk_vectors"
#: pgvector's HNSW indexes ``vector`` columns of up to 2,000 dimensions; larger vectors
#: are searched by an exact scan in SQL.
HNSW_MAX_DIMS = 2000
#: Candidates the HNSW scan keeps (``hnsw.ef_search``): several times the depth asked
#: for, within pgvector's limit of 1,000.
EF_SEARCH_FACTOR = 4
EF_SEARCH_MIN = 200
EF_SEARCH_MAX = 1000


def literal(vector: Any) -> str:
    """pgvector's text form of a vector: ``[0.1,0.2,…]`` (float32 values round-trip)."""
    return "[" + ",".join(repr(float(x)) for x in vector) + "]"


def index_name(dims: int) -> str:
    return f"ix_{TABLE}_hnsw_{int(dims)}"


def create_index_sql(dims: int) -> str:
    d = int(dims)
    return (
        f"CREATE INDEX IF NOT EXISTS {index_name(d)} ON {TABLE} "
        f"USING hnsw ((embedding::vector({d})) vector_cosine_ops) WHERE dims = {d}"
    )


def search_sql(dims: int) -> str:
    """Nearest chunks by cosine distance among one size's vectors (``:collections`` an
    expanding parameter); the size is inlined so the planner matches the partial index."""
    cast = f"vector({int(dims)})"
    # Only the integer size is inlined.
    return (
        f"SELECT pk, 1 - (embedding::{cast} <=> CAST(:q AS {cast})) AS score "  # noqa: S608
        f"FROM doc_chunk_vectors WHERE dims = {int(dims)} AND model = :model "
        "AND collection IN :collections "
        f"ORDER BY embedding::{cast} <=> CAST(:q AS {cast}) LIMIT :depth"
    )


def ef_search(depth: int) -> int:
    return min(EF_SEARCH_MAX, max(EF_SEARCH_MIN, EF_SEARCH_FACTOR * depth))


def available(conn: Any) -> bool:
    """Whether this PostgreSQL offers the ``vector`` extension (installed or not)."""
    if conn.dialect.name != "postgresql":
        return False
    found = conn.execute(
        text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
    ).first()
    return found is not None


class VectorIndex:
    """The pgvector side table of a database, when it has one."""

    def __init__(self, db: Database, *, enabled: bool | None = None) -> None:
        """``enabled`` None: on where the database has the side table (asked once);
        False: off whatever the database has (the in-memory path, for comparisons)."""
        self.db = db
        self._enabled: bool | None = enabled
        self._indexed: set[int] = set()
        self._hnsw: bool | None = None
        self._lock = threading.Lock()

    def enabled(self) -> bool:
        """True where migration 0019 made the side table (checked once per process)."""
        if self._enabled is None:
            on = False
            if self.db.engine.dialect.name == "postgresql":
                with self.db.engine.connect() as conn:
                    row = conn.execute(
                        text(
                            f"SELECT to_regclass('{TABLE}') IS NOT NULL "
                            "AND to_regtype('vector') IS NOT NULL"
                        )
                    ).scalar()
                on = bool(row)
            self._enabled = on
        return self._enabled

    # --- writing --------------------------------------------------------------------

    def store(self, session: Session, chunks: Sequence[ChunkRow], model: str, vectors: Any) -> None:
        """Write the vectors of freshly flushed ``chunks`` (their keys are set)."""
        if not self.enabled() or not chunks:
            return
        dims = int(vectors.shape[1])
        self._ensure_index(session, dims)
        session.execute(
            text(
                "INSERT INTO doc_chunk_vectors (pk, collection, model, dims, embedding) "
                "VALUES (:pk, :collection, :model, :dims, CAST(:embedding AS vector))"
            ),
            [
                {
                    "pk": chunk.pk,
                    "collection": chunk.collection,
                    "model": model,
                    "dims": dims,
                    "embedding": literal(vectors[i]),
                }
                for i, chunk in enumerate(chunks)
            ],
        )

    def _ensure_index(self, session: Session, dims: int) -> None:
        if dims in self._indexed or dims > HNSW_MAX_DIMS:
            return
        if self._hnsw is None:
            found = session.execute(text("SELECT 1 FROM pg_am WHERE amname = 'hnsw'")).first()
            self._hnsw = found is not None
        if not self._hnsw:  # pgvector before 0.5: exact scans in SQL
            return
        exists = session.execute(text(f"SELECT to_regclass('{index_name(dims)}')")).scalar()
        if exists is None:
            session.execute(text(create_index_sql(dims)))
        with self._lock:
            self._indexed.add(dims)

    # --- searching ------------------------------------------------------------------

    def has(self, collections: Sequence[str], model: str) -> bool:
        """Whether any chunk in these collections has a vector made by ``model``."""
        statement = text(
            # Through the chunks' collection index, then the vectors' key.
            "SELECT 1 FROM doc_chunks c JOIN doc_chunk_vectors v ON v.pk = c.pk "
            "WHERE c.collection IN :collections AND v.model = :model LIMIT 1"
        ).bindparams(bindparam("collections", expanding=True))
        with self.db.session() as session:
            row = session.execute(
                statement, {"model": model, "collections": list(collections)}
            ).first()
        return row is not None

    def search(
        self, collections: Sequence[str], model: str, vector: Any, depth: int
    ) -> list[tuple[int, float]] | None:
        """``(chunk key, cosine similarity)``, best first; None when no stored vector has
        the query's size (vectors from another model size: lexical alone)."""
        statement = text(search_sql(len(vector))).bindparams(
            bindparam("collections", expanding=True)
        )
        params = {
            "q": literal(vector),
            "model": model,
            "collections": list(collections),
            "depth": depth,
        }
        with self.db.session() as session:
            session.execute(text(f"SET LOCAL hnsw.ef_search = {ef_search(depth)}"))
            rows = session.execute(statement, params).all()
            if len(rows) < depth:
                # Fewer than asked: the collection is small or the filter dropped the
                # index's candidates. The exact scan finds every match.
                session.execute(text("SET LOCAL enable_indexscan = off"))
                rows = session.execute(statement, params).all()
        if not rows:
            return None
        found = [(int(pk), float(score)) for pk, score in rows]
        found.sort(key=lambda kv: (-kv[1], kv[0]))
        return found
