"""Gateway: deployment health (breakers), recent calls from the ledger, one call's detail.

The health part needs ``metrics:read`` (as ``GET /api/gateway/health``); the calls are
ledger events and need ``audit:read`` (as ``GET /api/audit/events``). A call's stored
content (the masked prompt, the answer) is shown only when the policy stored it and the
viewer holds ``subjects:manage`` (who may export a person's content through the API).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from bastion.api.deps import AuditDep
from bastion.auth.permissions import Permission
from bastion.auth.principal import Principal
from bastion.gateway.history import CallFilter, CallHistory
from bastion.gateway.service import Gateway
from bastion.web.frame import parse_when, render, text_or_none, ui_requires

router = APIRouter(include_in_schema=False)

Watcher = Annotated[Principal, Depends(ui_requires(Permission.METRICS_READ))]
Auditor = Annotated[Principal, Depends(ui_requires(Permission.AUDIT_READ))]
#: Who may read a call's stored content (the permission of a subject's content export).
CONTENT = Permission.SUBJECTS_MANAGE
OUTCOMES = ("success", "refused", "failure", "error", "cancelled")


@router.get("/ui/gateway")
def health(request: Request, who: Watcher) -> HTMLResponse:
    gateway: Gateway = request.app.state.gateway
    return render(
        request,
        "gateway.html",
        {"health": gateway.health_report(), "may_see_calls": who.can(Permission.AUDIT_READ)},
    )


@router.get("/ui/gateway/calls")
def calls(
    request: Request,
    audit: AuditDep,
    _: Auditor,
    team: str | None = None,
    model: Annotated[str | None, Query(max_length=300)] = None,
    outcome: str | None = None,
    flag: str | None = None,
    since: str | None = None,
    until: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> HTMLResponse:
    flt = CallFilter(
        team=text_or_none(team),
        model=text_or_none(model),
        outcome=text_or_none(outcome),
        flag=text_or_none(flag),
        since=parse_when(since, "since"),
        until=parse_when(until, "until"),
    )
    page = CallHistory(audit).page(flt, limit=limit, cursor=text_or_none(cursor))
    filters = {
        "team": team or "",
        "model": model or "",
        "outcome": outcome or "",
        "flag": flag or "",
        "since": since or "",
        "until": until or "",
    }
    return render(
        request,
        "gateway_calls.html",
        {"page": page, "filters": filters, "outcomes": OUTCOMES, "limit": limit},
    )


@router.get("/ui/gateway/calls/{event_id}")
def call(request: Request, event_id: int, audit: AuditDep, who: Auditor) -> HTMLResponse:
    may_read = who.can(CONTENT)
    detail = CallHistory(audit).call(event_id, with_content=may_read)
    return render(
        request,
        "gateway_call.html",
        {"d": detail, "may_read_content": may_read, "content_permission": CONTENT.value},
    )
