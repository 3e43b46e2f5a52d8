"""Documents: the collections a viewer may read, their documents, a search over them and
a question answered from them with citations and the grounding check.

Every call goes through the services the API uses: the search is ``POST /api/search``'s
retriever (the query is embedded through the gateway as the viewer, so it is budgeted
and recorded), the question is ``POST /query``'s service (one gateway call and one
ledger event, refused as ``not_grounded`` when nothing relevant was found). A question
is a POST with the page's CSRF token: it spends the viewer's budget.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from bastion.api.routes.documents import DocumentsDep, RetrieverDep
from bastion.api.routes.rag import AnswersDep
from bastion.auth.permissions import Permission
from bastion.auth.principal import Principal
from bastion.rag.errors import NotGrounded
from bastion.rag.schemas import QueryIn
from bastion.web.frame import render, text_or_none, ui_requires

router = APIRouter(include_in_schema=False)

Reader = Annotated[Principal, Depends(ui_requires(Permission.DOCUMENTS_READ))]
Name = Annotated[str | None, Query(max_length=100)]
#: Passages a search on the page shows.
SHOWN = 10


def _described(request: Request, names: list[str]) -> dict[str, str]:
    from bastion.api.deps import get_runtime

    declared = get_runtime(request).policy.policy.documents.collections
    return {n: (declared[n].description or "") if n in declared else "" for n in names}


async def _page(
    request: Request,
    service: Any,
    retriever: Any,
    who: Principal,
    collection: str | None,
    q: str | None,
    answer: dict[str, Any] | None = None,
    question: str = "",
) -> HTMLResponse:
    collections = await run_in_threadpool(service.collections, who)
    documents = await run_in_threadpool(service.documents, collection, who) if collection else None
    passages = await retriever.search(collection, q, SHOWN, who) if q else None
    return render(
        request,
        "documents.html",
        {
            "collections": collections,
            "described": _described(request, [c.name for c in collections]),
            "collection": collection or "",
            "documents": documents,
            "q": q or "",
            "passages": passages,
            "answer": answer,
            "question": question,
        },
    )


@router.get("/ui/documents")
async def documents_page(
    request: Request,
    service: DocumentsDep,
    retriever: RetrieverDep,
    who: Reader,
    collection: Name = None,
    q: Annotated[str | None, Query(max_length=4000)] = None,
) -> HTMLResponse:
    return await _page(request, service, retriever, who, text_or_none(collection), text_or_none(q))


@router.post("/ui/documents/ask")
async def ask(
    request: Request,
    service: DocumentsDep,
    retriever: RetrieverDep,
    answers: AnswersDep,
    who: Reader,
    question: Annotated[str, Form(min_length=1, max_length=4000)],
    collection: Annotated[str, Form(max_length=100)] = "",
) -> HTMLResponse:
    """``POST /query`` from a form: the answer, its citations and the grounding check."""
    chosen = text_or_none(collection)
    body = QueryIn(question=question, collection=chosen)
    try:
        answer: dict[str, Any] = await answers.query(who, body)
    except NotGrounded as exc:
        answer = {"refused": exc.message, "passages": exc.passages}
    return await _page(
        request, service, retriever, who, chosen, None, answer=answer, question=question
    )
