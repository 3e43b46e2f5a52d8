"""Hybrid retrieval: BM25 (FTS5 / PostgreSQL full-text) and dense vectors, fused by a
convex combination of min-max normalised scores (each list's scores scaled to [0, 1]
within the search, then ``0.5 * lexical + 0.5 * dense``; a chunk absent from a list
takes that list's floor, 0). Bruch, Gai and Ingber ("An Analysis of Fusion Functions
for Hybrid Retrieval", ACM TOIS 2023) found this beats reciprocal rank fusion in and out
of domain, because it keeps how far apart the scores are, not only their order; equal
weights are its untuned default, not a value fitted to Bastion's benchmark (on
``bench/retrieval.py`` a weight chosen on three regulations never beat 0.5 at R@5 on the
other three, on either backend, and its natural questions favour no other weight on both).

The floor a list is scaled from is where its unlisted chunks stand. A list cut at the
depth asked for has more below it, so its last score is the floor (plain min-max). A
list that came back shorter than the depth is exhaustive: the lexical search returned
every chunk that matches a word of the query, and every other chunk scores what a
non-match scores, 0 (BM25 and ``ts_rank`` alike). Scaling such a list from its own
lowest match would give that match the same 0 as a chunk that shares no word with the
query; it is scaled from 0 instead (the "theoretical minimum" of Bruch et al.). This is
what lets a short query with few matches ("Identification") keep its real matches
above dense near-misses.

Dense search is exact (a matrix product over the collection's vectors, kept in memory
per collection and rebuilt when the collection changes), or on PostgreSQL with pgvector
runs in SQL over an HNSW index (:mod:`bastion.documents.vectors`); the query is embedded through
the gateway as the caller, so the caller's budget pays for it and the ledger records it.
Without an embedding model in the policy, retrieval is BM25 alone.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bastion.db import Database
from bastion.documents.access import readable, require_read
from bastion.documents.errors import CollectionNotFound, DocumentNotFound
from bastion.documents.models import ChunkRow, DocumentRow
from bastion.documents.repository import DocumentRepository
from bastion.documents.retrieval import Passage, Reading
from bastion.documents.vectors import VectorIndex
from bastion.errors import InvalidInput
from bastion.policy import PolicyStore

if TYPE_CHECKING:
    from bastion.auth.principal import Principal
    from bastion.documents.embeddings import Embedder

#: Each method's weight in the fused score (equal: the untuned default).
WEIGHTS = {"bm25": 0.5, "dense": 0.5}
MAX_TOP_K = 100
MAX_QUERY_CHARS = 4000
METHODS = ("hybrid", "bm25", "dense")


@dataclass(frozen=True)
class Candidates:
    """What fusion starts from: ``(chunk key, score)`` lists per method, best first."""

    lists: dict[str, list[tuple[int, float]]]
    floors: dict[str, float]


class HybridRetriever:
    """The :class:`~bastion.documents.retrieval.Retriever` Bastion runs."""

    def __init__(
        self,
        db: Database,
        policy: PolicyStore,
        embedder: Embedder | None,
        vectors: VectorIndex | None = None,
    ) -> None:
        self.db = db
        self.policy_store = policy
        self.embedder = embedder
        self.vectors = vectors if vectors is not None else VectorIndex(db)
        self._vectors: dict[tuple[str, str], tuple[tuple[int, int], list[int], Any]] = {}
        self._lock = threading.Lock()

    # --- the interface --------------------------------------------------------------

    def readable_collections(self, principal: Principal) -> list[str]:
        with self.db.session() as session:
            stored = [c.name for c in DocumentRepository(session).collections()]
        policy = self.policy_store.policy
        return readable(policy, principal, [*stored, *policy.documents.collections])

    async def search(
        self,
        collection: str | None,
        query: str,
        top_k: int,
        principal: Principal,
        *,
        method: str = "hybrid",
    ) -> list[Passage]:
        if not query.strip():
            raise InvalidInput("the query is empty", param="query")
        if len(query) > MAX_QUERY_CHARS:
            raise InvalidInput(f"the query is longer than {MAX_QUERY_CHARS} characters")
        if not 1 <= top_k <= MAX_TOP_K:
            raise InvalidInput(f"top_k must be from 1 to {MAX_TOP_K}", param="top_k")
        if method not in METHODS:
            raise InvalidInput(f"method must be one of {', '.join(METHODS)}", param="method")
        collections = await asyncio.to_thread(self._collections, collection, principal)
        if not collections:
            return []
        depth = max(50, 4 * top_k)
        found = await self.candidates(collections, query, depth, principal, method=method)
        fused = fuse(found.lists, floors=found.floors)[:top_k]
        return await asyncio.to_thread(self._passages, fused, found.lists)

    async def candidates(
        self,
        collections: Sequence[str],
        query: str,
        depth: int,
        principal: Principal,
        *,
        method: str = "hybrid",
    ) -> Candidates:
        """Each method's best ``depth`` chunks of ``collections`` (already checked as
        readable by the caller), with the floors :func:`fuse` scales them from."""
        lists: dict[str, list[tuple[int, float]]] = {}
        if method in ("hybrid", "bm25"):
            lists["bm25"] = await asyncio.to_thread(self._lexical, collections, query, depth)
        model = self.policy_store.policy.documents.embedding_model
        if method in ("hybrid", "dense") and model is not None and self.embedder is not None:
            dense = await self._dense(collections, model, query, depth, principal)
            if dense is not None:
                lists["dense"] = dense
        # A lexical list shorter than the depth is every match: unlisted chunks score 0.
        floors = {"bm25": 0.0} if len(lists.get("bm25", ())) < depth else {}
        return Candidates(lists, floors)

    async def read(self, ref: str, principal: Principal) -> Reading:
        return await asyncio.to_thread(self._read, ref, principal)

    # --- parts ----------------------------------------------------------------------

    def _collections(self, collection: str | None, principal: Principal) -> list[str]:
        policy = self.policy_store.policy
        if collection is None:
            return self.readable_collections(principal)
        require_read(policy, principal, collection)
        with self.db.session() as session:
            known = {c.name for c in DocumentRepository(session).collections()}
        if collection not in known and collection not in policy.documents.collections:
            raise CollectionNotFound(
                f"no collection {collection!r}: ingest documents into it first",
                collection=collection,
            )
        return [collection]

    def _lexical(
        self, collections: Sequence[str], query: str, depth: int
    ) -> list[tuple[int, float]]:
        with self.db.session() as session:
            return DocumentRepository(session).lexical(collections, query, depth)

    async def _dense(
        self,
        collections: Sequence[str],
        model: str,
        query: str,
        depth: int,
        principal: Principal,
    ) -> list[tuple[int, float]] | None:
        if await asyncio.to_thread(self.vectors.enabled):
            return await self._dense_sql(collections, model, query, depth, principal)
        pks, matrix = await asyncio.to_thread(self._matrix, collections, model)
        if matrix is None or self.embedder is None:
            return None
        vector = (await self.embedder.embed(model, [query], principal))[0]
        if vector.shape[0] != matrix.shape[1]:
            return None  # vectors from another model size: lexical alone
        scores = matrix @ vector
        take = min(depth, len(pks))
        best = np.argpartition(-scores, take - 1)[:take]
        best = best[np.argsort(-scores[best], kind="stable")]
        return [(pks[i], float(scores[i])) for i in best]

    async def _dense_sql(
        self,
        collections: Sequence[str],
        model: str,
        query: str,
        depth: int,
        principal: Principal,
    ) -> list[tuple[int, float]] | None:
        """pgvector: the same answer as the exact path, from the database's index."""
        has = await asyncio.to_thread(self.vectors.has, collections, model)
        if not has or self.embedder is None:
            return None
        vector = (await self.embedder.embed(model, [query], principal))[0]
        return await asyncio.to_thread(self.vectors.search, collections, model, vector, depth)

    def _matrix(self, collections: Sequence[str], model: str) -> tuple[list[int], Any]:
        all_pks: list[int] = []
        parts = []
        for name in collections:
            with self.db.session() as session:
                repo = DocumentRepository(session)
                generation = repo.generation([name])
                cached = self._vectors.get((name, model))
                if cached is None or cached[0] != generation:
                    pks, matrix = repo.embeddings([name], model)
                    cached = (generation, pks, matrix)
                    with self._lock:
                        self._vectors[(name, model)] = cached
            if cached[2] is not None:
                all_pks.extend(cached[1])
                parts.append(cached[2])
        if not parts:
            return [], None
        widths = {p.shape[1] for p in parts}
        if len(widths) > 1:
            keep = max(widths)
            pairs = [(pk, p) for pk, p in zip(all_pks, parts, strict=False) if p.shape[1] == keep]
            return [pk for pk, _ in pairs], np.vstack([p for _, p in pairs])
        return all_pks, np.vstack(parts)

    def _passages(
        self, fused: list[tuple[int, float]], lists: dict[str, list[tuple[int, float]]]
    ) -> list[Passage]:
        with self.db.session() as session:
            found = DocumentRepository(session).chunks_by_pk([pk for pk, _ in fused])
            out = []
            ranks = {m: {pk: i + 1 for i, (pk, _) in enumerate(ls)} for m, ls in lists.items()}
            for pk, score in fused:
                if pk not in found:
                    continue
                chunk, doc = found[pk]
                out.append(
                    Passage(
                        chunk_id=chunk.chunk_id,
                        document_id=doc.id,
                        document=doc.name,
                        collection=chunk.collection,
                        location=chunk.location,
                        text=chunk.text,
                        score=round(score, 6),
                        start=chunk.start,
                        end=chunk.end,
                        ranks={m: r[pk] for m, r in ranks.items() if pk in r},
                        metadata=dict(doc.meta),
                    )
                )
        return out

    def _read(self, ref: str, principal: Principal) -> Reading:
        policy = self.policy_store.policy
        with self.db.session() as session:
            repo = DocumentRepository(session)
            chunk: ChunkRow | None = repo.chunk(ref)
            doc: DocumentRow | None = repo.document(chunk.document_id if chunk else ref)
            if doc is None:
                raise DocumentNotFound(f"no document or chunk {ref!r}", ref=ref)
            require_read(policy, principal, doc.collection)
            if chunk is not None:
                return Reading(
                    "chunk",
                    chunk.chunk_id,
                    doc.id,
                    doc.name,
                    doc.collection,
                    chunk.location,
                    chunk.text,
                    chunk.start,
                    chunk.end,
                    dict(doc.meta),
                )
            first = repo.chunks_of(doc.id)[:1]
            location = first[0].location if first else doc.name
            return Reading(
                "document",
                doc.id,
                doc.id,
                doc.name,
                doc.collection,
                location,
                doc.text,
                0,
                len(doc.text),
                dict(doc.meta),
            )


def fuse(
    lists: dict[str, list[tuple[int, float]]],
    weights: dict[str, float] | None = None,
    *,
    floors: dict[str, float] | None = None,
) -> list[tuple[int, float]]:
    """Convex combination of each list's min-max normalised scores (higher is better);
    ties broken by the best single rank, then the key. Lists are ``(key, score)``, best
    first; a method without a weight in ``weights`` gets an equal share. ``floors`` gives,
    for a list that holds every candidate its method would score above the floor, that
    floor: the list is scaled from it rather than from its own lowest score. Scores are
    always finite, within [0, 1] (a non-finite input score counts as its list's floor)."""
    lists = {m: ranked for m, ranked in lists.items() if ranked}
    if not lists:
        return []
    given = weights if weights is not None else WEIGHTS
    raw = {m: given.get(m, 1.0) for m in lists}
    total = sum(raw.values()) or 1.0
    scores: dict[int, float] = {}
    best: dict[int, int] = {}
    for method, ranked in lists.items():
        weight = raw[method] / total
        finite = [score for _, score in ranked if math.isfinite(score)]
        floor = (floors or {}).get(method)
        if floor is not None and math.isfinite(floor):
            finite.append(floor)
        # Halves: the span of two extreme doubles would overflow to inf.
        low = min(finite) / 2 if finite else 0.0
        high = max(finite) / 2 if finite else 0.0
        span = high - low
        for rank, (key, score) in enumerate(ranked, start=1):
            if not math.isfinite(score):
                scaled = 0.0
            elif span > 0:
                scaled = min(1.0, max(0.0, (score / 2 - low) / span))
            else:  # one score, or all equal: every entry is the list's best
                scaled = 1.0
            scores[key] = scores.get(key, 0.0) + weight * scaled
            best[key] = min(best.get(key, rank), rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], best[kv[0]], kv[0]))
