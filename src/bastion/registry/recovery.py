"""Approvals that did not finish, settled from what MLflow and the ledger say happened.

An approval claims its request (pending -> approving) under an attempt id with a lease,
writes its ledger events (naming the attempt), moves the alias in MLflow, then records
its decision and the stage changes in one transaction. A process that dies in between
leaves the request ``approving``. Once nobody holds the lease (it is older than the
policy's ``registry.recover_after_s``, or the approver gave up after an error from
MLflow) the next decision on that model, or ``bastion models verify``, settles it:

- the alias points at the version and the ledger holds this attempt's approval: the
  approval took effect. Its MLflow steps are repeated and it is recorded as approved,
  by its approver, with the notes and gates the ledger holds;
- otherwise it did not, and the request is pending again for an approver to decide.

Either way a ``model.promotion.recover`` event says which and why. The ledger decides
whether an approval was given and MLflow whether it took effect: an alias that moved
with no approval on record is not taken for one (``verify`` reports it as drift).
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bastion.audit.repository import EventFilter, EventRepository, EventView
from bastion.auth.principal import Principal
from bastion.db import utcnow
from bastion.registry.errors import ClaimLost
from bastion.registry.gates import GateResult, overrides_by
from bastion.registry.moves import Move, move_aliases, plan_move, record_move
from bastion.registry.repository import RegistryRepository
from bastion.registry.schemas import RequestView, SettledApproval

if TYPE_CHECKING:
    from bastion.registry.parts import RegistryParts


def finish_approval(
    reg: RegistryParts,
    approver: str,
    request_id: str,
    claim: str | None,
    move: Move,
    notes: str | None,
    gates: list[dict[str, Any]],
) -> RequestView:
    """Record the decision and the stage changes together, if the claim still holds."""
    recorded = overrides_by([GateResult(**g) for g in gates], approver)
    now = utcnow()
    with reg.db.session() as session:
        repo = RegistryRepository(session)
        request = repo.require_request(request_id)
        decided = repo.decide_claimed(
            request_id,
            claim,
            decided_by=approver,
            decided_at=now,
            notes=notes,
            decision_gates=gates,
            overrides=[*(request.overrides or []), *recorded],
        )
        if decided:
            record_move(reg, repo, approver, move, now)
        session.refresh(request)
        view = RequestView.of(request)
    if not decided and not (view.status == "approved" and view.decided_by == approver):
        raise ClaimLost(
            f"approving {request_id} took longer than registry.recover_after_s "
            f"({reg.config.recover_after_s:g} s) and another process settled it meanwhile "
            f"(it is {view.status} now): `bastion models verify` reports any alias left moved"
        )
    return view


def record_recovery(
    reg: RegistryParts,
    actor: Principal,
    request_id: str,
    resource: str,
    claim: str | None,
    *,
    status: str,
    approver: str | None,
    detail: str,
    alias_version: int | None = None,
) -> None:
    """The ledger's word on how an approval that did not finish ended."""
    reg.events.record(
        actor,
        "model.promotion.recover",
        resource,
        {
            "request_id": request_id,
            "attempt": claim,
            "status": status,
            "approver": approver,
            "alias_version": alias_version,
            "detail": detail,
        },
    )


def settle_unfinished(
    reg: RegistryParts,
    actor: Principal,
    *,
    name: str | None = None,
    recover_after: float | None = None,
) -> list[SettledApproval]:
    """Settle the approvals (of ``name``, or all) that nobody is finishing any more."""
    bound = reg.config.recover_after_s if recover_after is None else recover_after
    cutoff = utcnow() - timedelta(seconds=bound)
    with reg.db.session() as session:
        found = [
            (r.id, r.claim_id)
            for r in RegistryRepository(session).unsettled_approvals(cutoff, name=name)
        ]
    settled = []
    for request_id, claim in found:
        with reg.db.session() as session:
            held = RegistryRepository(session).take_over_request(
                request_id, claim, utcnow(), cutoff
            )
        if not held:  # another process is settling it right now
            continue
        try:
            settled.append(_settle(reg, actor, request_id, claim))
        except BaseException:
            # MLflow could not say (or record): the next one to meet it tries at once.
            with contextlib.suppress(Exception), reg.db.session() as session:
                RegistryRepository(session).give_up_request(request_id, claim)
            raise
    return settled


def _approval(
    reg: RegistryParts, request_id: str, resource: str, claim: str | None
) -> EventView | None:
    """This attempt's approval in the ledger (before attempts had ids: the last one)."""
    found = None
    for event in EventRepository(reg.db).stream_all(
        EventFilter(action="model.promotion.approve", resource=resource, outcome="success")
    ):
        if event.details.get("request_id") == request_id and event.details.get("attempt") == claim:
            found = event
    return found


def _settle(
    reg: RegistryParts, actor: Principal, request_id: str, claim: str | None
) -> SettledApproval:
    with reg.db.session() as session:
        request = RegistryRepository(session).require_request(request_id)
        name, version, to = request.name, request.version, request.to_stage
    resource = f"model:{name}/{version}"
    approval = _approval(reg, request_id, resource, claim)
    # The ledger names people "user:NAME"; the request records NAME.
    approver = approval.actor.removeprefix("user:") if approval is not None else None
    holds = reg.store.aliases(name).get(to)
    took_effect = approval is not None and holds == version
    if took_effect:
        detail = (
            f"the alias {to!r} had moved to v{version} after {approver}'s approval: "
            "recorded as approved"
        )
    elif approval is None:
        detail = "no approval was recorded before the process stopped: pending again"
    else:
        where = f"is on v{holds}" if holds is not None else "is not set"
        detail = (
            f"{approver}'s approval did not take effect (the alias {to!r} {where}): "
            "pending again, for an approver to decide"
        )
    status = "approved" if took_effect else "pending"
    record_recovery(
        reg,
        actor,
        request_id,
        resource,
        claim,
        status=status,
        approver=approver,
        detail=detail,
        alias_version=holds,
    )
    if took_effect:
        assert approval is not None
        assert approver is not None
        move = plan_move(reg, name, version, to, kind="promotion", request_id=request_id)
        move_aliases(reg, move)
        finish_approval(
            reg,
            approver,
            request_id,
            claim,
            move,
            approval.details.get("notes"),
            approval.details.get("gates") or [],
        )
    else:
        with reg.db.session() as session:
            RegistryRepository(session).release_request(request_id, claim)
    return SettledApproval(
        request_id=request_id,
        name=name,
        version=version,
        to_stage=to,
        status=status,
        approver=approver,
        detail=detail,
    )
