"""Grounded answers and research: ``POST /query`` and ``POST /research`` (also served
as ``/api/query`` and ``/api/research``, beside the other ``/api`` routes).

Thin: the body is validated by its pydantic model (422 naming the field), the service
does the work. ``not_grounded`` answers 422 with the best passages found beside the
usual error fields.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from bastion.agent.research import Research
from bastion.api.deps import require_caller, requires
from bastion.api.errors import error_body
from bastion.api.routing import GUARDED, StrictJSONRoute, errors
from bastion.auth.permissions import Permission
from bastion.auth.principal import Principal
from bastion.rag.errors import NotGrounded
from bastion.rag.schemas import QueryIn, QueryOut, ResearchIn, ResearchOut
from bastion.rag.service import Answers

router = APIRouter(
    tags=["answers"],
    route_class=StrictJSONRoute,
    responses=errors(*GUARDED, 404, 429, 502, 503, 504),
)


def get_answers(request: Request) -> Answers:
    answers: Answers = request.app.state.answers.answers
    return answers


def get_research(request: Request) -> Research:
    research: Research = request.app.state.answers.research
    return research


AnswersDep = Annotated[Answers, Depends(get_answers)]
ResearchDep = Annotated[Research, Depends(get_research)]


@router.post(
    "/api/query",
    summary="Answer a question from your documents (same as POST /query)",
    response_model=QueryOut,
    operation_id="api_query",
)
@router.post(
    "/query",
    summary="Answer a question from your documents, with citations and a grounding check",
    response_model=QueryOut,
    operation_id="query",
)
async def query(
    body: QueryIn,
    answers: AnswersDep,
    principal: Annotated[Principal | None, Depends(requires(Permission.DOCUMENTS_READ))],
) -> Any:
    try:
        return await answers.query(require_caller(principal), body)
    except NotGrounded as exc:
        content = error_body(exc.message, exc.type, exc.code, None)
        content["error"]["passages"] = exc.passages
        return JSONResponse(content, status_code=exc.status)


@router.post(
    "/api/research",
    summary="Research a topic with an audited agent loop (same as POST /research)",
    response_model=ResearchOut,
    operation_id="api_research",
)
@router.post(
    "/research",
    summary="Research a topic with a bounded, audited agent loop over allow-listed tools",
    response_model=ResearchOut,
    operation_id="research",
)
async def research(
    body: ResearchIn,
    service: ResearchDep,
    principal: Annotated[Principal | None, Depends(requires(Permission.RESEARCH_RUN))],
) -> Any:
    return await service.run(require_caller(principal), body)
