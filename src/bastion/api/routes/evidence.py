"""Compliance reports, attestations and legal clocks for auditors; feedback on calls."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from bastion.api.deps import RuntimeDep, require_caller, requires
from bastion.api.routing import GUARDED, INT32_MAX, StrictJSONRoute, errors
from bastion.auth.permissions import Permission
from bastion.auth.principal import Principal

router = APIRouter(
    tags=["evidence"], route_class=StrictJSONRoute, responses=errors(*GUARDED, 404, 409, 503)
)


@router.get(
    "/api/reports/compliance",
    summary="A compliance report built from the ledger (OSCAL JSON, HTML, Markdown or PDF)",
    responses={
        200: {
            "content": {
                "application/json": {},
                "text/html": {},
                "text/markdown": {},
                "application/pdf": {},
            }
        }
    },
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
    caller = require_caller(principal)
    done = await run_in_threadpool(
        evidence_service(runtime).generate, framework, period, format, actor=caller.actor
    )
    return Response(
        done.content, media_type=done.media_type, headers={"X-Bastion-Report-Digest": done.digest}
    )


def evidence_service(runtime: Any) -> Any:
    """The reports and clocks service over the runtime's database, keys and ledger."""
    from bastion.evidence.service import EvidenceService
    from bastion.runtime import chain_key

    return EvidenceService(
        runtime.db,
        {runtime.signer.key_id: runtime.signer.public},
        runtime.ledger,
        chain_key(runtime.settings),
    )


class AttestationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    framework: str = Field(min_length=1, max_length=50)
    control: str = Field(min_length=1, max_length=100)
    by: str = Field(min_length=1, max_length=200, description="who attests")
    note: str = Field(min_length=1, max_length=4000)


@router.post("/api/reports/attestations", summary="Attest a control manually", status_code=201)
async def attest(
    body: AttestationIn,
    runtime: RuntimeDep,
    principal: Annotated[Principal | None, Depends(requires(Permission.REPORTS_WRITE))],
) -> dict[str, str]:
    caller = require_caller(principal)
    await run_in_threadpool(
        evidence_service(runtime).attest,
        body.framework,
        body.control,
        by=body.by,
        note=body.note,
        actor=caller.actor,
    )
    return {"framework": body.framework, "control": body.control, "by": body.by}


class IncidentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["serious_incident", "subject_request"]
    title: str = Field(min_length=1, max_length=300)
    severity: Literal["standard", "death", "widespread"] = "standard"
    aware_at: datetime | None = None


class IncidentClose(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resolution: str = Field("", max_length=4000)


@router.get("/api/incidents", summary="Incidents and data-subject requests with deadlines")
async def list_incidents(
    runtime: RuntimeDep,
    _: Annotated[Principal | None, Depends(requires(Permission.REPORTS_READ))],
    open_only: bool = True,
) -> dict[str, Any]:
    from bastion.db.base import utcnow

    items = await run_in_threadpool(evidence_service(runtime).clocks.items, open_only=open_only)
    now = utcnow()
    return {"data": [c.to_dict(now) for c in items]}


@router.post("/api/incidents", summary="Open an incident or data-subject request", status_code=201)
async def open_incident(
    body: IncidentIn,
    runtime: RuntimeDep,
    principal: Annotated[Principal | None, Depends(requires(Permission.REPORTS_WRITE))],
) -> dict[str, Any]:
    from bastion.db.base import utcnow

    caller = require_caller(principal)
    clock = await run_in_threadpool(
        evidence_service(runtime).clocks.open,
        kind=body.kind,
        title=body.title,
        severity=body.severity,
        aware_at=body.aware_at,
        actor=caller.actor,
    )
    result: dict[str, Any] = clock.to_dict(utcnow())
    return result


@router.post("/api/incidents/{incident_id}/close", summary="Close an incident or request")
async def close_incident(
    incident_id: Annotated[int, PathParam(ge=1, le=INT32_MAX)],
    body: IncidentClose,
    runtime: RuntimeDep,
    principal: Annotated[Principal | None, Depends(requires(Permission.REPORTS_WRITE))],
) -> dict[str, Any]:
    from bastion.db.base import utcnow

    caller = require_caller(principal)
    clock = await run_in_threadpool(
        evidence_service(runtime).clocks.close,
        incident_id,
        actor=caller.actor,
        resolution=body.resolution,
    )
    result: dict[str, Any] = clock.to_dict(utcnow())
    return result


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


@router.get(
    "/api/feedback",
    summary="Feedback, oldest first (JSON, or JSONL / CSV export)",
    responses={
        200: {"content": {"application/json": {}, "application/x-ndjson": {}, "text/csv": {}}}
    },
)
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
