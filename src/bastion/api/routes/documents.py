"""Documents over HTTP: collections, uploads, documents, search.

An upload is either a multipart form, one or more file parts named by their own file
names (``curl -F file=@gdpr.pdf -F file=@ai-act.md …/api/collections/regs/documents``,
``httpx``/``requests`` ``files=``), or the file's bytes as the request body named by
``?filename=`` (``curl --data-binary @gdpr.pdf '…/documents?filename=gdpr.pdf'``). The
extension picks the parser, or ``?format=`` names it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field
from python_multipart.multipart import parse_options_header
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from bastion.api.deps import require_caller, requires
from bastion.api.routing import GUARDED, StrictJSONRoute, errors
from bastion.auth.permissions import Permission
from bastion.auth.principal import Principal
from bastion.documents.search import MAX_QUERY_CHARS, MAX_TOP_K, HybridRetriever
from bastion.documents.service import DocumentService, Upload
from bastion.errors import InvalidInput

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


#: Files one multipart upload may carry (each is parsed and indexed in one request).
MAX_UPLOAD_FILES = 100

_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "One or more files; each part's file name "
                            "picks its parser",
                        }
                    },
                    "required": ["file"],
                }
            },
            "application/octet-stream": {
                "schema": {
                    "type": "string",
                    "format": "binary",
                    "description": "The file itself, named by ?filename=",
                }
            },
        },
    }
}


@router.post(
    "/api/collections/{name}/documents",
    summary="Add documents (a multipart form of files, or the request body is the file)",
    responses=errors(413, 415),
    openapi_extra=_UPLOAD_BODY,
)
async def ingest_document(
    name: CollectionPath,
    request: Request,
    service: DocumentsDep,
    caller: Writer,
    filename: Annotated[str | None, Query(min_length=1, max_length=500)] = None,
    format: Annotated[Literal["markdown", "text", "html", "pdf", "jsonl"] | None, Query()] = None,
) -> IngestOut:
    uploads = await _uploads(request, filename, format)
    report = await service.ingest(name, uploads, require_caller(caller))
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


async def _uploads(request: Request, filename: str | None, format: str | None) -> list[Upload]:
    """The files of an upload request: a multipart form's file parts, or the body."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != "multipart/form-data":
        if filename is None:
            raise InvalidInput(
                "name the file with ?filename= (its extension picks the parser), "
                "or send a multipart form with file parts",
                param="filename",
            )
        return [Upload(filename, await request.body(), format)]
    # A form cut short (a dropped connection, a client that gave up) may still parse,
    # missing its last file: only a form that reaches its closing delimiter is read. The
    # body is bounded by the server's body limit, and the parser reads it from memory.
    _, options = parse_options_header(request.headers["content-type"])
    boundary = options.get(b"boundary", b"")
    body = await request.body()
    if not boundary or not body.rstrip(b"\r\n").endswith(b"--" + boundary + b"--"):
        raise InvalidInput(
            "the multipart form is incomplete (no closing boundary): send it again whole"
        )
    try:
        form = await request.form(max_files=MAX_UPLOAD_FILES, max_fields=MAX_UPLOAD_FILES)
    except MultiPartException as exc:  # cut short, no boundary, too many parts …
        raise InvalidInput(f"the multipart form could not be read: {exc.message}") from exc
    uploads: list[Upload] = []
    try:
        for field, value in form.multi_items():
            if not isinstance(value, UploadFile):
                if field in ("file", "files"):  # curl -F file=<a.md: content without a name
                    raise InvalidInput(
                        f"the part {field!r} has no file name: send it as a file "
                        "(curl -F file=@a.md), its name picks the parser",
                        param=field,
                    )
                continue  # other plain fields are not files
            # A browser may send the client's path ("C:\\Users\\me\\a.pdf"): its name only.
            given = (value.filename or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
            name = given or filename
            if not name:
                raise InvalidInput(
                    f"the file part {field!r} has no file name: give one (it picks the parser)",
                    param=field,
                )
            uploads.append(Upload(name, await value.read(), format))
    finally:
        await form.close()
    if not uploads:
        raise InvalidInput("the multipart form holds no file part", param="file")
    return uploads
