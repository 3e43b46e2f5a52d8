"""Ingesting, listing, showing and removing documents.

    service = DocumentService(db, policy_store, ledger, embedder, guard_for)
    report = await service.ingest("regulations", [Upload("gdpr.jsonl", data)], principal)

A document is named within its collection (a file's name, a JSONL line's ``id``);
its id is derived from both, so re-ingesting keeps the id. The content digest decides:
the same content (made with the same embedding model) is skipped; changed content
replaces the document's chunks in one transaction. Personal data is handled by the
collection's policy before anything is stored: ``index`` keeps the text as it is,
``mask`` replaces each finding with its type (``<EMAIL_ADDRESS>``), ``refuse`` refuses
the document (naming the types found, never the values).

Each ingest and removal is one ledger event (``documents.ingest``,
``documents.remove``) with counts and digests, never document text.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bastion.audit import EventIn, Ledger
from bastion.db import Database
from bastion.documents.access import can_read, require_read, require_write
from bastion.documents.chunking import Chunk, chunk
from bastion.documents.errors import (
    CollectionNotFound,
    DocumentNotFound,
    MalformedDocument,
    PersonalDataRefused,
)
from bastion.documents.models import ChunkRow, DocumentRow
from bastion.documents.parsing import Landmark, Parsed, parse
from bastion.documents.repository import CollectionSummary, DocumentRepository
from bastion.documents.vectors import VectorIndex
from bastion.policy import PolicyStore

if TYPE_CHECKING:
    from bastion.auth.principal import Principal
    from bastion.documents.embeddings import Embedder
    from bastion.privacy import PrivacyGuard

#: A callback told (done, total, name) as documents are processed.
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class Upload:
    filename: str
    data: bytes
    format: str | None = None  # None: from the file name's extension


@dataclass
class IngestedDocument:
    id: str
    name: str
    status: str  # added | replaced | unchanged
    chunks: int
    personal_data: dict[str, int] = field(default_factory=dict)


@dataclass
class IngestReport:
    collection: str
    documents: list[IngestedDocument] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for d in self.documents if d.status == status)


#: Chunks embedded per step of an ingest (progress is reported after each step).
EMBED_GROUP = 64


@dataclass
class _Pending:
    doc: Parsed
    found: dict[str, int]
    pieces: list[Chunk]
    texts: list[str]


def _groups(items: list[_Pending], size: int) -> list[list[_Pending]]:
    groups: list[list[_Pending]] = []
    current: list[_Pending] = []
    count = 0
    for item in items:
        if current and count + len(item.texts) > size:
            groups.append(current)
            current, count = [], 0
        current.append(item)
        count += len(item.texts)
    if current:
        groups.append(current)
    return groups


def document_id(collection: str, name: str) -> str:
    return "doc_" + hashlib.sha256(f"{collection}\x00{name}".encode()).hexdigest()[:24]


class DocumentService:
    def __init__(
        self,
        db: Database,
        policy: PolicyStore,
        ledger: Ledger,
        embedder: Embedder | None,
        guard_for: Callable[[], PrivacyGuard],
        vectors: VectorIndex | None = None,
    ) -> None:
        self.db = db
        self.policy_store = policy
        self.ledger = ledger
        self.embedder = embedder
        self.guard_for = guard_for
        #: pgvector's side table where the database has one (else a no-op).
        self.vectors = vectors if vectors is not None else VectorIndex(db)

    # --- ingestion ------------------------------------------------------------------

    async def ingest(
        self,
        collection: str,
        uploads: Sequence[Upload],
        principal: Principal,
        progress: Progress | None = None,
    ) -> IngestReport:
        policy = self.policy_store.policy
        require_write(policy, principal, collection)
        parsed: list[Parsed] = []
        for upload in uploads:
            parsed.extend(parse(upload.filename, upload.data, upload.format))
        names = Counter(p.name for p in parsed)
        twice = sorted(n for n, k in names.items() if k > 1)
        if twice:
            raise MalformedDocument(
                f"documents named twice in one ingest: {', '.join(twice[:5])}; rename one",
                names=twice[:20],
            )
        settings = policy.documents
        mode = settings.personal_data_for(collection)
        model = settings.embedding_model if self.embedder is not None else None
        report = IngestReport(collection)
        total = len(parsed)
        # 1. what changed, with personal data handled and chunks cut
        pending: list[_Pending] = []
        for done, doc in enumerate(parsed, start=1):
            unchanged = self._unchanged(collection, doc, model)
            if unchanged is not None:
                report.documents.append(unchanged)
            else:
                found = self._personal_data(doc, mode)
                pieces = chunk(doc, settings.chunk_chars, settings.overlap_chars)
                texts = [_search_text(doc, p.location, p.text) for p in pieces]
                pending.append(_Pending(doc, found, pieces, texts))
            if progress is not None and not pending:
                progress(done, total, doc.name)
        # 2. vectors, in batches across documents (each batch one governed gateway
        # call), then 3. one transaction per document: old chunks out, new ones in.
        done = total - len(pending)
        for group in _groups(pending, EMBED_GROUP):
            texts = [t for item in group for t in item.texts]
            vectors = None
            if model is not None and self.embedder is not None and texts:
                vectors = await self.embedder.embed(model, texts, principal)
            offset = 0
            for item in group:
                count = len(item.texts)
                mine = vectors[offset : offset + count] if vectors is not None else None
                offset += count
                report.documents.append(self._store(collection, item, mine, mode, model, principal))
                done += 1
                if progress is not None:
                    progress(done, total, item.doc.name)
        order = {p.name: i for i, p in enumerate(parsed)}
        report.documents.sort(key=lambda d: order[d.name])
        await asyncio.to_thread(
            self._record,
            principal,
            "documents.ingest",
            collection,
            {
                "documents": total,
                "added": report.count("added"),
                "replaced": report.count("replaced"),
                "unchanged": report.count("unchanged"),
                "chunks": sum(d.chunks for d in report.documents if d.status != "unchanged"),
                "digests": sorted(p.digest for p in parsed)[:1000],
                "personal_data": mode,
                "embedding_model": model,
            },
        )
        return report

    def _unchanged(
        self, collection: str, doc: Parsed, model: str | None
    ) -> IngestedDocument | None:
        with self.db.session() as session:
            existing = DocumentRepository(session).document_by_name(collection, doc.name)
            if (
                existing is not None
                and existing.digest == doc.digest
                and existing.embedding_model == model
            ):
                return IngestedDocument(existing.id, doc.name, "unchanged", existing.chunk_count)
        return None

    def _store(
        self,
        collection: str,
        item: _Pending,
        vectors: Any,
        mode: str,
        model: str | None,
        principal: Principal,
    ) -> IngestedDocument:
        doc = item.doc
        doc_id = document_id(collection, doc.name)
        rows = [
            ChunkRow(
                chunk_id=f"{doc_id}-{doc.digest[:8]}-{p.ordinal}",
                document_id=doc_id,
                collection=collection,
                ordinal=p.ordinal,
                location=p.location[:500],
                start=p.start,
                end=p.end,
                text=p.text,
                search_text=item.texts[i],
                embedding=vectors[i].astype("<f4").tobytes() if vectors is not None else None,
            )
            for i, p in enumerate(item.pieces)
        ]
        row = DocumentRow(
            id=doc_id,
            collection=collection,
            name=doc.name,
            format=doc.format,
            digest=doc.digest,
            text=doc.text,
            meta=doc.meta,
            chunk_count=len(rows),
            personal_data={"mode": mode, "found": item.found},
            embedding_model=model if vectors is not None else None,
            ingested_by=principal.actor,
        )
        with self.db.session() as session:
            repo = DocumentRepository(session)
            replaced = repo.document(doc_id) is not None
            repo.replace_document(row, rows)
            if vectors is not None and model is not None:
                self.vectors.store(session, rows, model, vectors)
        status = "replaced" if replaced else "added"
        return IngestedDocument(doc_id, doc.name, status, len(rows), item.found)

    def _personal_data(self, doc: Parsed, mode: str) -> dict[str, int]:
        """Apply the policy to ``doc`` in place; what was found, by type."""
        if mode == "index":
            return {}
        spans = sorted(self.guard_for().analyze(doc.text), key=lambda s: s.start)
        found = dict(Counter(s.entity_type for s in spans))
        if not spans:
            return {}
        if mode == "refuse":
            kinds = ", ".join(f"{k} ×{v}" for k, v in sorted(found.items()))
            raise PersonalDataRefused(
                f"{doc.name!r} holds personal data ({kinds}) and this collection's policy "
                "refuses it: remove it from the document, or ask for personal_data: mask",
                document=doc.name,
                found=found,
            )
        _mask(doc, spans)
        return found

    # --- reading --------------------------------------------------------------------

    def collections(self, principal: Principal) -> list[CollectionSummary]:
        policy = self.policy_store.policy
        with self.db.session() as session:
            stored = {c.name: c for c in DocumentRepository(session).collections()}
        for name in policy.documents.collections:
            stored.setdefault(name, CollectionSummary(name, 0, 0))
        return [c for n, c in sorted(stored.items()) if can_read(policy, principal, n)]

    def documents(self, collection: str, principal: Principal) -> list[DocumentRow]:
        policy = self.policy_store.policy
        require_read(policy, principal, collection)
        with self.db.session() as session:
            rows = DocumentRepository(session).documents(collection)
            session.expunge_all()
        if not rows and collection not in policy.documents.collections:
            raise CollectionNotFound(
                f"no collection {collection!r}: `bastion docs list` shows the collections"
            )
        return rows

    def document(
        self, ref: str, principal: Principal, collection: str | None = None
    ) -> tuple[DocumentRow, list[ChunkRow]]:
        """A document by id, or by name within ``collection``; with its chunks."""
        policy = self.policy_store.policy
        with self.db.session() as session:
            repo = DocumentRepository(session)
            row = repo.document(ref)
            if row is None and collection is not None:
                row = repo.document_by_name(collection, ref)
            if row is None:
                raise DocumentNotFound(f"no document {ref!r}", document=ref)
            require_read(policy, principal, row.collection)
            chunks = repo.chunks_of(row.id)
            session.expunge_all()
        return row, chunks

    def remove(self, ref: str, principal: Principal, collection: str | None = None) -> DocumentRow:
        policy = self.policy_store.policy
        with self.db.session() as session:
            repo = DocumentRepository(session)
            row = repo.document(ref)
            if row is None and collection is not None:
                row = repo.document_by_name(collection, ref)
            if row is None:
                raise DocumentNotFound(f"no document {ref!r}", document=ref)
            require_write(policy, principal, row.collection)
            repo.remove_document(row.id)
            session.expunge(row)
        self._record(
            principal,
            "documents.remove",
            row.collection,
            {"document": row.id, "digest": row.digest},
        )
        return row

    def _record(
        self, principal: Principal, action: str, collection: str, details: dict[str, Any]
    ) -> None:
        self.ledger.append(
            EventIn(
                actor=principal.actor,
                action=action,
                resource=f"collection:{collection}",
                outcome="success",
                details=details,
            )
        )


def _search_text(doc: Parsed, location: str, text: str) -> str:
    """What the lexical index and the embedder read: the place, a title, then the text."""
    title = doc.meta.get("title")
    header = " · ".join(str(p) for p in (location, title) if p)
    return f"{header}\n{text}" if header else text


def _mask(doc: Parsed, spans: Sequence[Any]) -> None:
    """Replace each span with ``<TYPE>``; landmarks move with the text."""
    parts: list[str] = []
    shifts: list[tuple[int, int]] = []  # (original offset, cumulative delta after it)
    last = 0
    delta = 0
    for span in spans:
        if span.start < last:
            continue  # overlapping findings: the first one wins
        parts.append(doc.text[last : span.start])
        label = f"<{span.entity_type}>"
        parts.append(label)
        delta += len(label) - (span.end - span.start)
        shifts.append((span.end, delta))
        last = span.end
    parts.append(doc.text[last:])
    doc.text = "".join(parts)

    def moved(offset: int) -> int:
        d = 0
        for end, cumulative in shifts:
            if end <= offset:
                d = cumulative
            else:
                break
        return offset + d

    doc.landmarks = [Landmark(moved(m.offset), m.location, m.kind) for m in doc.landmarks]
