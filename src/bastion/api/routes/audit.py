"""The ledger for auditors: filtered, cursor-paginated events."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query

from bastion.api.deps import AuditDep, SignerDep, requires
from bastion.api.routing import GUARDED, StrictJSONRoute, errors
from bastion.api.schemas import EventPage
from bastion.audit import EventFilter
from bastion.auth.permissions import Permission
from bastion.auth.principal import Principal

router = APIRouter(
    prefix="/api/audit",
    tags=["audit"],
    route_class=StrictJSONRoute,
    responses=errors(*GUARDED),
)
Auditor = Annotated[Principal | None, Depends(requires(Permission.AUDIT_READ))]


@router.get("/events", summary="Ledger events, newest first, filtered")
def list_events(
    audit: AuditDep,
    _: Auditor,
    actor: str | None = None,
    action: str | None = None,
    resource: str | None = None,
    outcome: str | None = None,
    since: Annotated[datetime | None, Query(description="ISO 8601; inclusive")] = None,
    until: Annotated[datetime | None, Query(description="ISO 8601; exclusive")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
    order: Literal["asc", "desc"] = "desc",
) -> EventPage:
    page = audit.page(
        EventFilter(
            actor=actor, action=action, resource=resource, outcome=outcome, since=since, until=until
        ),
        limit=limit,
        cursor=cursor,
        order=order,
    )
    return EventPage(data=page.events, next_cursor=page.next_cursor)


@router.get("/public-key", summary="The PEM public key that verifies this server's checkpoints")
def public_key(signer: SignerDep, _: Auditor) -> dict[str, str]:
    return {"key_id": signer.key_id, "pem": signer.public_pem()}


@router.get(
    "/proofs/{event_id}",
    summary="An inclusion proof of one event against its stream's signed Merkle root",
)
def proof(event_id: int, audit: AuditDep, _: Auditor) -> dict[str, Any]:
    return audit.prove(event_id)
