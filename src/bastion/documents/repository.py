"""Queries over documents and chunks, including the lexical search of each backend.

SQLite: FTS5 ``MATCH`` ranked by ``bm25()``. PostgreSQL: the ``tsv`` column matched by
an OR of the query's words and ranked by ``ts_rank`` (PostgreSQL has no BM25; on the
regulations' titles its plain frequency rank found the right article better than the
cover-density ``ts_rank_cd``, MRR 0.93 against 0.76). Both take the query's words only — never
the caller's text as query syntax — so no input can be a syntax error.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import bindparam, delete, func, select, text
from sqlalchemy.orm import Session

from bastion.documents.models import ChunkRow, DocumentRow

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
MAX_QUERY_WORDS = 64
_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "has",
        "have",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "this",
        "to",
        "was",
        "were",
        "which",
        "with",
        "what",
        "who",
        "how",
        "does",
        "do",
        "shall",
        "may",
    ]
)


def query_words(query: str) -> list[str]:
    words = [w for w in _WORD.findall(query.lower()) if w not in _STOP]
    seen: dict[str, None] = {}
    for w in words:
        seen.setdefault(w, None)
    return list(seen)[:MAX_QUERY_WORDS]


@dataclass(frozen=True)
class CollectionSummary:
    name: str
    documents: int
    chunks: int


class DocumentRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # --- documents ------------------------------------------------------------------

    def document_by_name(self, collection: str, name: str) -> DocumentRow | None:
        return self.session.scalars(
            select(DocumentRow).where(
                DocumentRow.collection == collection, DocumentRow.name == name
            )
        ).one_or_none()

    def document(self, document_id: str) -> DocumentRow | None:
        return self.session.get(DocumentRow, document_id)

    def documents(self, collection: str) -> list[DocumentRow]:
        return list(
            self.session.scalars(
                select(DocumentRow)
                .where(DocumentRow.collection == collection)
                .order_by(DocumentRow.name)
            )
        )

    def collections(self) -> list[CollectionSummary]:
        rows = self.session.execute(
            select(
                DocumentRow.collection,
                func.count(DocumentRow.id),
                func.coalesce(func.sum(DocumentRow.chunk_count), 0),
            ).group_by(DocumentRow.collection)
        ).all()
        return [CollectionSummary(c, int(d), int(n)) for c, d, n in sorted(rows)]

    def replace_document(self, row: DocumentRow, chunks: Sequence[ChunkRow]) -> None:
        """Put ``row`` and its chunks in place of any document with its id."""
        self.remove_document(row.id)
        self.session.add(row)
        self.session.flush()
        self.session.add_all(chunks)
        self.session.flush()

    def remove_document(self, document_id: str) -> bool:
        # Chunks first: their delete trigger keeps the FTS5 index in step.
        self.session.execute(delete(ChunkRow).where(ChunkRow.document_id == document_id))
        result = self.session.execute(delete(DocumentRow).where(DocumentRow.id == document_id))
        return bool(getattr(result, "rowcount", 0))

    # --- chunks ---------------------------------------------------------------------

    def chunk(self, chunk_id: str) -> ChunkRow | None:
        return self.session.scalars(
            select(ChunkRow).where(ChunkRow.chunk_id == chunk_id)
        ).one_or_none()

    def chunks_by_pk(self, pks: Sequence[int]) -> dict[int, tuple[ChunkRow, DocumentRow]]:
        if not pks:
            return {}
        rows = self.session.execute(
            select(ChunkRow, DocumentRow)
            .join(DocumentRow, DocumentRow.id == ChunkRow.document_id)
            .where(ChunkRow.pk.in_(list(pks)))
        ).all()
        return {c.pk: (c, d) for c, d in rows}

    def chunks_of(self, document_id: str) -> list[ChunkRow]:
        return list(
            self.session.scalars(
                select(ChunkRow)
                .where(ChunkRow.document_id == document_id)
                .order_by(ChunkRow.ordinal)
            )
        )

    def embeddings(
        self, collections: Sequence[str], model: str
    ) -> tuple[list[int], np.ndarray[tuple[int, int], np.dtype[np.float32]] | None]:
        """Every chunk vector made by ``model`` in these collections (pk order)."""
        found = self.session.execute(
            select(ChunkRow.pk, ChunkRow.embedding)
            .join(DocumentRow, DocumentRow.id == ChunkRow.document_id)
            .where(
                ChunkRow.collection.in_(list(collections)),
                DocumentRow.embedding_model == model,
                ChunkRow.embedding.is_not(None),
            )
            .order_by(ChunkRow.pk)
        ).all()
        rows: list[tuple[int, bytes]] = [(int(pk), bytes(blob)) for pk, blob in found if blob]
        if not rows:
            return [], None
        dims = {len(blob) for _, blob in rows}
        if len(dims) != 1:  # vectors of another size (a changed model): the common size
            size = max(dims, key=lambda d: sum(len(b) == d for _, b in rows))
            rows = [r for r in rows if len(r[1]) == size]
        matrix = np.frombuffer(b"".join(blob for _, blob in rows), dtype="<f4")
        return [pk for pk, _ in rows], matrix.reshape(len(rows), -1)

    def generation(self, collections: Sequence[str]) -> tuple[int, int]:
        """Changes whenever chunks in these collections are added or removed."""
        row = self.session.execute(
            select(func.count(ChunkRow.pk), func.coalesce(func.max(ChunkRow.pk), 0)).where(
                ChunkRow.collection.in_(list(collections))
            )
        ).one()
        return int(row[0]), int(row[1])

    def lexical(
        self, collections: Sequence[str], query: str, limit: int
    ) -> list[tuple[int, float]]:
        """``(chunk key, score)``, best first (higher is better): BM25 (SQLite, whose
        ``bm25()`` is negated) or ``ts_rank`` (PostgreSQL)."""
        words = query_words(query)
        if not words or not collections:
            return []
        dialect = self.session.get_bind().dialect.name
        if dialect == "sqlite":
            query_text = " OR ".join('"' + w.replace('"', "") + '"' for w in words)
            sql = (
                "SELECT c.pk, -bm25(doc_chunks_fts) FROM doc_chunks_fts f "
                "JOIN doc_chunks c ON c.pk = f.rowid "
                "WHERE doc_chunks_fts MATCH :q AND c.collection IN :collections "
                "ORDER BY bm25(doc_chunks_fts) LIMIT :limit"
            )
        else:
            # to_tsquery over lexemes the same configuration makes: quote each word.
            query_text = " | ".join("'" + w.replace("'", "") + "'" for w in words)
            sql = (
                "SELECT pk, ts_rank(tsv, q) FROM doc_chunks, to_tsquery('english', :q) AS q "
                "WHERE tsv @@ q AND collection IN :collections "
                "ORDER BY ts_rank(tsv, q) DESC, pk LIMIT :limit"
            )
        statement = text(sql).bindparams(bindparam("collections", expanding=True))
        params = {"q": query_text, "limit": limit, "collections": list(collections)}
        return [(int(r[0]), float(r[1])) for r in self.session.execute(statement, params)]
