"""pgvector: on PostgreSQL with the extension, dense search runs in SQL over an HNSW
index and finds what the exact in-memory search finds; access control, re-ingest and
removal hold there too; migration 0019 goes up and down with and without the extension.

The server is a private PostgreSQL with pgvector (``pgvector_server``: pgserver's
binaries), skipped with the reason where it cannot start.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import bindparam

from bastion.auth.principal import cli_principal
from bastion.documents import vectors
from bastion.documents.demo import corpus_bytes
from bastion.documents.search import HybridRetriever
from bastion.documents.service import Upload
from bastion.documents.vectors import VectorIndex

# The retrieval and ingestion tests that matter, run again here on pgvector.
from .test_ingest import (
    test_reingest_skips_unchanged_and_replaces_changed,
    test_remove_takes_a_document_out_of_search,
)
from .test_retrieval import (
    test_a_caller_never_retrieves_from_a_collection_it_may_not_read,
    test_passages_point_into_their_document,
)

__all__ = [
    "test_a_caller_never_retrieves_from_a_collection_it_may_not_read",
    "test_passages_point_into_their_document",
    "test_reingest_skips_unchanged_and_replaces_changed",
    "test_remove_takes_a_document_out_of_search",
]

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]
ADMIN = cli_principal("ops")


@pytest.fixture
def database_url(pgvector_url: str) -> str:
    """Every test here runs on the private PostgreSQL with pgvector."""
    return pgvector_url


def count(db: Any, sql: str, **params: Any) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(sa.text(sql), params).scalar_one())


def vector_pks(db: Any) -> set[int]:
    with db.engine.connect() as conn:
        return {int(r[0]) for r in conn.execute(sa.text("SELECT pk FROM doc_chunk_vectors"))}


def embedded_pks(db: Any) -> set[int]:
    with db.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT pk FROM doc_chunks WHERE embedding IS NOT NULL"))
        return {int(r[0]) for r in rows}


def demo_titles(limit: int) -> list[str]:
    rows = [json.loads(line) for line in corpus_bytes().decode().splitlines() if line.strip()]
    return [str(r["text"]).split(". ")[0][:120] for r in rows[:: max(1, len(rows) // limit)]]


async def test_dense_search_runs_in_sql_and_finds_what_the_exact_search_finds(docs: Any) -> None:
    db = docs.service.db
    assert docs.retriever.vectors.enabled()
    report = await docs.service.ingest("raw", [Upload("eu.jsonl", corpus_bytes())], ADMIN)
    chunks = sum(d.chunks for d in report.documents)
    assert chunks > 500  # well above the depth asked for: the HNSW index answers
    assert vector_pks(db) == embedded_pks(db) and len(vector_pks(db)) == chunks
    exact = HybridRetriever(
        db, docs.retriever.policy_store, docs.retriever.embedder, VectorIndex(db, enabled=False)
    )
    titles = demo_titles(25)
    for title in titles:
        pg = await docs.retriever.search("raw", title, 10, ADMIN, method="dense")
        mem = await exact.search("raw", title, 10, ADMIN, method="dense")
        pg_scores = [p.score for p in pg]
        mem_scores = [p.score for p in mem]
        assert pg_scores == pytest.approx(mem_scores, abs=1e-5), title
        # the same chunks, but for ties at the cut (equal scores in either order)
        cut = mem_scores[-1] + 1e-5
        assert {p.chunk_id for p in pg if p.score > cut} == {
            p.chunk_id for p in mem if p.score > cut
        }, title
        hybrid_pg = await docs.retriever.search("raw", title, 5, ADMIN)
        hybrid_mem = await exact.search("raw", title, 5, ADMIN)
        assert [p.document for p in hybrid_pg] == [p.document for p in hybrid_mem], title

    # The search runs through the HNSW index (not a scan and a sort), also once the
    # planner has the table's statistics.
    dims = count(db, "SELECT min(dims) FROM doc_chunk_vectors")
    query = (await docs.retriever.embedder.embed("hash-embed", [titles[0]], ADMIN))[0]
    statement = sa.text("EXPLAIN " + vectors.search_sql(dims)).bindparams(
        bindparam("collections", expanding=True)
    )
    with db.engine.begin() as conn:
        conn.execute(sa.text("ANALYZE doc_chunk_vectors"))  # as autovacuum would
        conn.execute(sa.text(f"SET LOCAL hnsw.ef_search = {vectors.ef_search(50)}"))
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                statement,
                {
                    "q": vectors.literal(query),
                    "model": "hash-embed",
                    "collections": ["raw"],
                    "depth": 50,
                },
            )
        )
    assert vectors.index_name(dims) in plan, plan


async def test_a_filtered_search_is_never_short(docs: Any) -> None:
    """The index's candidates come from every collection; the caller's filter must not
    leave it with fewer passages than exist (pgvector filters after the index scan)."""
    await docs.service.ingest("raw", [Upload("eu.jsonl", corpus_bytes())], ADMIN)
    small = b"# Lunch\n\nThe canteen serves soup.\n\n# Hours\n\nOpen from noon.\n"
    await docs.service.ingest("public", [Upload("canteen.md", small)], ADMIN)
    found = await docs.retriever.search("public", "regulation of personal data", 10, ADMIN)
    assert {p.document for p in found} == {"canteen.md"} and found
    dense = await docs.retriever.search("public", "soup", 10, ADMIN, method="dense")
    assert len(dense) == count(
        docs.service.db, "SELECT count(*) FROM doc_chunks WHERE collection = 'public'"
    )


async def test_vectors_follow_their_chunks_through_reingest_and_removal(docs: Any) -> None:
    db = docs.service.db
    first = b"# Policy\n\nInvoices are kept for ten years.\n"
    report = await docs.service.ingest("public", [Upload("p.md", first)], ADMIN)
    before = vector_pks(db)
    assert before and before == embedded_pks(db)
    changed = first.replace(b"ten", b"seven")
    await docs.service.ingest("public", [Upload("p.md", changed)], ADMIN)
    after = vector_pks(db)
    assert after == embedded_pks(db) and not (after & before)  # the old vectors are gone
    (best,) = await docs.retriever.search("public", "how long are invoices kept", 1, ADMIN)
    assert "seven" in best.text
    docs.service.remove(report.documents[0].id, ADMIN)
    assert vector_pks(db) == set()
