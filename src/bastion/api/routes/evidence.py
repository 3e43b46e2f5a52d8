"""Compliance reports for auditors, and feedback on calls."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from bastion.api.deps import RuntimeDep, require_caller, requires
from bastion.api.routing import GUARDED, StrictJSONRoute, errors
from bastion.auth.permissions import Permission
from bastion.auth.principal import Principal

router = APIRouter(
    tags=["evidence"], route_class=StrictJSONRoute, responses=errors(*GUARDED, 404, 503)
)


@router.get(
    "/api/reports/compliance",
    summary="A compliance report built from the ledger (OSCAL JSON, HTML, Markdown or PDF)",
    responses={200: {"content": {"application/json": {}, "text/html": {}, "application/pdf": {}}}},
)
async def compliance_report(
    runtime: RuntimeDep,
    principal: Annotated[Principal | None, Depends(requires(Permission.REPORTS_READ))],
    framework: Annotated[
        str, Query(max_length=50, description="eu-ai-act, gdpr, iso42001, iso27001, soc2, …")
    ],
    period: Annotated[
        str, Query(max_length=80, description="START..END, e.g. 2026-01-01..2026-03-31")
    ],
    format: Literal["json", "html", "md", "pdf"] = "json",
) -> Response:
    from bastion.evidence.service import EvidenceService

    caller = require_caller(principal)
    service = EvidenceService(
        runtime.db, {runtime.signer.key_id: runtime.signer.public}, runtime.ledger
    )
    done = await run_in_threadpool(service.generate, framework, period, format, actor=caller.actor)
    return Response(
        done.content, media_type=done.media_type, headers={"X-Bastion-Report-Digest": done.digest}
    )


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=128)
    kind: Literal["helpful", "wrong", "unsafe", "other"]
    rating: int | None = Field(None, ge=1, le=5)
    comment: str | None = Field(None, max_length=4000)


def _feedback(runtime: Any) -> Any:
    from bastion.feedback.service import CommentScrubber, FeedbackService

    return FeedbackService(runtime.db, runtime.ledger, CommentScrubber(runtime.policy.policy))


@router.post("/api/feedback", summary="Feedback on a call, by its request id", status_code=201)
async def add_feedback(
    body: FeedbackIn,
    runtime: RuntimeDep,
    principal: Annotated[Principal | None, Depends(requires(Permission.LLM_USE))],
) -> dict[str, Any]:
    caller = require_caller(principal)
    done = await run_in_threadpool(
        _feedback(runtime).add,
        request_id=body.request_id,
        kind=body.kind,
        rating=body.rating,
        comment=body.comment,
        actor=caller.actor,
    )
    result: dict[str, Any] = done.to_dict()
    return result


@router.get("/api/feedback", summary="Feedback, oldest first (JSON, or JSONL / CSV export)")
async def list_feedback(
    runtime: RuntimeDep,
    _: Annotated[Principal | None, Depends(requires(Permission.MONITORING_READ))],
    request_id: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    format: Literal["json", "jsonl", "csv"] = "json",
) -> Response:
    from bastion import jsonio
    from bastion.feedback.service import to_csv, to_jsonl

    items = await run_in_threadpool(_feedback(runtime).list, request_id=request_id, limit=limit)
    if format == "csv":
        return Response(to_csv(items), media_type="text/csv; charset=utf-8")
    if format == "jsonl":
        return Response("".join(to_jsonl(items)), media_type="application/x-ndjson")
    return Response(
        jsonio.dumps({"data": [i.to_dict() for i in items]}), media_type="application/json"
    )
