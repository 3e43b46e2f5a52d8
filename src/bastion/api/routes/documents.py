"""Documents over HTTP: collections, uploads, documents, search.

Uploads are the file's bytes as the request body, named by ``?filename=`` (its
extension picks the parser, or ``?format=`` names it): ``curl --data-binary @gdpr.pdf
'…/api/collections/regs/documents?filename=gdpr.pdf'``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from bastion.api.deps import require_caller, requires
from bastion.api.routing import GUARDED, StrictJSONRoute, errors
from bastion.auth.permissions import Permission
from bastion.auth.principal import Principal
from bastion.documents.search import MAX_QUERY_CHARS, MAX_TOP_K, HybridRetriever
from bastion.documents.service import DocumentService, Upload

router = APIRouter(
    tags=["documents"],
    route_class=StrictJSONRoute,
    responses=errors(*GUARDED, 404),
)

CollectionPath = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")]
Reader = Annotated[Principal | None, Depends(requires(Permission.DOCUMENTS_READ))]
Writer = Annotated[Principal | None, Depends(requires(Permission.DOCUMENTS_WRITE))]


def get_documents(request: Request) -> DocumentService:
    service: DocumentService = request.app.state.documents.service
    return service


def get_retriever(request: Request) -> HybridRetriever:
    retriever: HybridRetriever = request.app.state.documents.retriever
    return retriever


DocumentsDep = Annotated[DocumentService, Depends(get_documents)]
RetrieverDep = Annotated[HybridRetriever, Depends(get_retriever)]


class CollectionOut(BaseModel):
    name: str
    documents: int
    chunks: int


class IngestedOut(BaseModel):
    id: str
    name: str
    status: Literal["added", "replaced", "unchanged"]
    chunks: int
    personal_data: dict[str, int]


class IngestOut(BaseModel):
    collection: str
    added: int
    replaced: int
    unchanged: int
    documents: list[IngestedOut]


class DocumentOut(BaseModel):
    id: str
    collection: str
    name: str
    format: str
    digest: str
    chunks: int
    embedding_model: str | None
    meta: dict[str, Any]


class ChunkOut(BaseModel):
    chunk_id: str
    location: str
    start: int
    end: int
    text: str


class DocumentDetail(DocumentOut):
    personal_data: dict[str, Any]
    chunk_list: list[ChunkOut]


class SearchIn(BaseModel):
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    collection: str | None = Field(default=None, max_length=100)
    top_k: int = Field(default=5, ge=1, le=MAX_TOP_K)
    method: Literal["hybrid", "bm25", "dense"] = "hybrid"


class PassageOut(BaseModel):
    chunk_id: str
    document_id: str
    document: str
    collection: str
    location: str
    text: str
    score: float
    start: int
    end: int
    ranks: dict[str, int]


def _document(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "collection": row.collection,
        "name": row.name,
        "format": row.format,
        "digest": row.digest,
        "chunks": row.chunk_count,
        "embedding_model": row.embedding_model,
        "meta": row.meta,
    }


@router.get("/api/collections", summary="The collections the caller may read")
def list_collections(service: DocumentsDep, caller: Reader) -> list[CollectionOut]:
    return [CollectionOut(**c.__dict__) for c in service.collections(require_caller(caller))]


@router.get("/api/collections/{name}/documents", summary="The documents of a collection")
def list_documents(
    name: CollectionPath, service: DocumentsDep, caller: Reader
) -> list[DocumentOut]:
    rows = service.documents(name, require_caller(caller))
    return [DocumentOut(**_document(r)) for r in rows]


@router.post(
    "/api/collections/{name}/documents",
    summary="Add a document (the request body is the file)",
    responses=errors(415),
)
async def ingest_document(
    name: CollectionPath,
    request: Request,
    service: DocumentsDep,
    caller: Writer,
    filename: Annotated[str, Query(min_length=1, max_length=500)],
    format: Annotated[Literal["markdown", "text", "html", "pdf", "jsonl"] | None, Query()] = None,
) -> IngestOut:
    data = await request.body()
    report = await service.ingest(name, [Upload(filename, data, format)], require_caller(caller))
    return IngestOut(
        collection=report.collection,
        added=report.count("added"),
        replaced=report.count("replaced"),
        unchanged=report.count("unchanged"),
        documents=[IngestedOut(**d.__dict__) for d in report.documents],
    )


@router.get("/api/documents/{document_id}", summary="A document and its chunks")
def show_document(
    document_id: Annotated[str, Path(max_length=100)], service: DocumentsDep, caller: Reader
) -> DocumentDetail:
    row, chunks = service.document(document_id, require_caller(caller))
    return DocumentDetail(
        **_document(row),
        personal_data=row.personal_data,
        chunk_list=[
            ChunkOut(
                chunk_id=c.chunk_id, location=c.location, start=c.start, end=c.end, text=c.text
            )
            for c in chunks
        ],
    )


@router.delete("/api/documents/{document_id}", summary="Remove a document from the index")
def remove_document(
    document_id: Annotated[str, Path(max_length=100)], service: DocumentsDep, caller: Writer
) -> DocumentOut:
    return DocumentOut(**_document(service.remove(document_id, require_caller(caller))))


@router.post("/api/search", summary="Hybrid search over readable collections")
async def search_documents(
    body: SearchIn, retriever: RetrieverDep, caller: Reader
) -> list[PassageOut]:
    found = await retriever.search(
        body.collection, body.query, body.top_k, require_caller(caller), method=body.method
    )
    return [PassageOut(**{k: v for k, v in p.__dict__.items() if k != "metadata"}) for p in found]
