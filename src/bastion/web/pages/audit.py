"""Audit: the ledger explorer, its verification status, a bounded verify, the export.

Pages use the ledger's keyset cursor (``(ts_us, id)`` on indexed columns), so a page
costs the same at the millionth event as at the first. The status shows each stream's
newest signed checkpoint and the last recorded verification; a verification runs only
on the button, over the newest events of each stream (bounded), and is recorded.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from bastion.api.deps import AuditDep, SignerDep
from bastion.audit import EventFilter
from bastion.auth.permissions import Permission
from bastion.auth.principal import Principal
from bastion.web.frame import parse_when, render, text_or_none, ui_requires

router = APIRouter(include_in_schema=False)

Auditor = Annotated[Principal, Depends(ui_requires(Permission.AUDIT_READ))]
#: The button's bound: the newest events of each stream (a full verify is the CLI's).
VERIFY_DEFAULT = 10_000
VERIFY_MAX = 100_000
FILTERS = ("actor", "action", "outcome", "resource", "since", "until")


def _filter(
    actor: str | None,
    action: str | None,
    outcome: str | None,
    resource: str | None,
    since: str | None,
    until: str | None,
) -> EventFilter:
    return EventFilter(
        actor=text_or_none(actor),
        action=text_or_none(action),
        outcome=text_or_none(outcome),
        resource=text_or_none(resource),
        since=parse_when(since, "since"),
        until=parse_when(until, "until"),
    )


Field = Annotated[str | None, Query(max_length=300)]


@router.get("/ui/audit")
def explorer(
    request: Request,
    audit: AuditDep,
    _: Auditor,
    actor: Field = None,
    action: Field = None,
    outcome: Field = None,
    resource: Field = None,
    since: Field = None,
    until: Field = None,
    cursor: Field = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> HTMLResponse:
    flt = _filter(actor, action, outcome, resource, since, until)
    found = audit.explore(flt, limit=limit, cursor=text_or_none(cursor))
    values = dict(zip(FILTERS, (actor, action, outcome, resource, since, until), strict=True))
    filters = {k: v or "" for k, v in values.items()}
    return render(
        request,
        "audit.html",
        {
            "found": found,
            "filters": filters,
            "limit": limit,
            "verify_default": VERIFY_DEFAULT,
            "verify_max": VERIFY_MAX,
        },
    )


@router.post("/ui/audit/verify")
async def verify(
    audit: AuditDep,
    signer: SignerDep,
    who: Auditor,
    per_stream: Annotated[int, Form(ge=1, le=VERIFY_MAX)] = VERIFY_DEFAULT,
) -> Response:
    await run_in_threadpool(
        lambda: audit.verify_recent(
            {signer.key_id: signer.public}, per_stream=per_stream, actor=who.actor
        )
    )
    return RedirectResponse("/ui/audit?action=audit.verify", status_code=303)


@router.get("/ui/audit/export")
def export(
    audit: AuditDep,
    _: Auditor,
    actor: Field = None,
    action: Field = None,
    outcome: Field = None,
    resource: Field = None,
    since: Field = None,
    until: Field = None,
) -> StreamingResponse:
    """The same JSONL as ``bastion audit export``: one event per line, oldest first."""
    flt = _filter(actor, action, outcome, resource, since, until)

    def lines() -> Iterator[bytes]:
        for event in audit.export(flt):
            yield (json.dumps(event.to_dict(), ensure_ascii=False) + "\n").encode()

    return StreamingResponse(
        lines(),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="bastion-ledger.jsonl"'},
    )
