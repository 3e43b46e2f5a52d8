"""Promotion requests, decisions and alias moves: the part of the registry that changes
which version serves.

A request is refused when a gate fails (unless an admin overrides it with a written
justification); an approval is by someone other than the requester, evaluates the gates
again and only then moves the MLflow alias. A rollback is the admins' emergency path.
Each step is a ledger event before the database records it; MLflow is written before
Bastion's tables, so a failure there leaves them untouched.

An approval holds its request (``approving``) while it works. When it fails before
MLflow was touched the request is pending again at once; after that, or when its
process dies, :mod:`bastion.registry.recovery` settles it from what MLflow and the
ledger say, before the next decision on the model (or by ``bastion models verify``).
"""

from __future__ import annotations

import contextlib
import secrets
from typing import TYPE_CHECKING, Any

from bastion.auth.errors import PermissionDenied
from bastion.auth.permissions import Permission
from bastion.auth.principal import Principal
from bastion.db import utcnow
from bastion.errors import InvalidInput
from bastion.registry.config import check_name
from bastion.registry.errors import (
    ClaimLost,
    GatesFailed,
    InvalidTransition,
    JustificationRequired,
    ModelNotFound,
    NoRollbackTarget,
    OverrideNotAllowed,
    PromotionPending,
    RequestNotPending,
    SelfApproval,
)
from bastion.registry.gates import (
    GateResult,
    apply_overrides,
    evaluate,
    overrides_by,
    summary,
)
from bastion.registry.models import ModelVersionRow, PromotionRequestRow
from bastion.registry.moves import announce_move, make_move, move_aliases, plan_move
from bastion.registry.recovery import finish_approval, record_recovery, settle_unfinished
from bastion.registry.repository import RegistryRepository
from bastion.registry.schemas import RequestView, VersionView

if TYPE_CHECKING:
    from bastion.registry.parts import RegistryParts

#: Which stage a version must be in to be promoted to each target.
PROMOTE_FROM = {"staging": "development", "production": "staging"}


def _text(value: str | None, what: str) -> str:
    if value is None or not value.strip():
        raise InvalidInput(f"{what} is required: say why, in a sentence", code=f"{what}_required")
    if len(value) > 4000:
        raise InvalidInput(f"{what} is longer than 4000 characters", code=f"{what}_too_long")
    return value.strip()


def _overrides(
    reg: RegistryParts,
    actor: Principal,
    results: list[GateResult],
    overrides: dict[str, str] | None,
) -> list[GateResult]:
    if not overrides:
        return results
    if not actor.can(Permission.MODELS_ADMIN):
        raise OverrideNotAllowed(
            "only admins (models:admin) may override a failing gate: ask one, or supply "
            "the missing evidence"
        )
    if not reg.config.allow_override:
        raise OverrideNotAllowed("the policy sets registry.allow_override: false")
    names = {r.gate for r in results}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise InvalidInput(
            f"cannot override {', '.join(unknown)}: the gates here are "
            f"{', '.join(sorted(names)) or 'none'}",
            code="unknown_gate",
        )
    for gate, why in overrides.items():
        if not why or len(why.strip()) < 10:
            raise JustificationRequired(
                f"overriding {gate} needs a written justification (a sentence at least)"
            )
    return apply_overrides(results, {g: w.strip() for g, w in overrides.items()}, actor.user)


def _record_overrides(
    reg: RegistryParts, actor: Principal, resource: str, results: list[GateResult], request_id: str
) -> list[dict[str, Any]]:
    for r in results:
        if r.overridden and r.overridden_by == actor.user:
            reg.events.record(
                actor,
                "model.gate.override",
                resource,
                {
                    "request_id": request_id,
                    "gate": r.gate,
                    "reason": r.reason,
                    "justification": r.justification,
                },
            )
    return overrides_by(results, actor.user)


def request_promotion(
    reg: RegistryParts,
    actor: Principal,
    name: str,
    version: int,
    to: str,
    reason: str,
    overrides: dict[str, str] | None = None,
) -> RequestView:
    reason = _text(reason, "reason")
    if to not in PROMOTE_FROM:
        raise InvalidTransition(
            f"cannot request promotion to {to!r}: request staging or production "
            "(archiving needs no request; rolling back is `bastion models rollback`)"
        )
    resource = f"model:{name}/{version}"
    settle_unfinished(reg, actor, name=name)
    with reg.db.session() as session:
        repo = RegistryRepository(session)
        row = repo.require_version(name, version)
        need = PROMOTE_FROM[to]
        if row.stage != need:
            raise InvalidTransition(
                f"{name} v{version} is in {row.stage}; promotion to {to} is from {need}"
            )
        if repo.open_request(row.id, to) is not None:
            raise PromotionPending(
                f"{name} v{version} already has an undecided request for {to}: "
                "`bastion models requests` shows it"
            )
        results = evaluate(reg.config.gates_for(to, name), repo.evidence_for(row))
        version_id, from_stage = row.id, row.stage
    results = _overrides(reg, actor, results, overrides)
    request_id = f"pr_{secrets.token_hex(6)}"
    gates_json = [r.model_dump() for r in results]
    if any(r.blocking for r in results):
        reg.events.record(
            actor,
            "model.promotion.request",
            resource,
            {"to": to, "gates": gates_json, "reason": reason},
            outcome="denied",
        )
        raise GatesFailed(f"{name} v{version} does not meet the gates for {to}: {summary(results)}")
    reg.events.record(
        actor,
        "model.promotion.request",
        resource,
        {"request_id": request_id, "to": to, "reason": reason, "gates": gates_json},
    )
    recorded = _record_overrides(reg, actor, resource, results, request_id)
    with reg.db.session() as session:
        request = PromotionRequestRow(
            id=request_id,
            version_id=version_id,
            name=name,
            version=version,
            from_stage=from_stage,
            to_stage=to,
            reason=reason,
            requested_by=actor.user,
            requested_at=utcnow(),
            status="pending",
            gates=gates_json,
            overrides=recorded,
        )
        RegistryRepository(session).add(request)
        return RequestView.of(request)


def _decider(reg: RegistryParts, actor: Principal, request: PromotionRequestRow, verb: str) -> None:
    refusal: PermissionDenied | SelfApproval | None = None
    if not actor.can(Permission.MODELS_APPROVE):
        refusal = PermissionDenied(
            f"only approvers (models:approve) may {verb} a promotion request"
        )
    elif actor.user == request.requested_by:
        refusal = SelfApproval(
            f"{actor.user} requested {request.id} and cannot {verb} it: another approver must"
        )
    if refusal is not None:
        # An attempt to decide one's own request is itself worth an auditor's eye.
        reg.events.record(
            actor,
            f"model.promotion.{verb}",
            f"model:{request.name}/{request.version}",
            {"request_id": request.id, "refused": refusal.code},
            outcome="denied",
        )
        raise refusal
    if request.status == "approving":
        since = f"{request.claimed_at:%Y-%m-%d %H:%M:%S} UTC" if request.claimed_at else "?"
        raise RequestNotPending(
            f"request {request.id} is being approved by {request.claimed_by} (since {since}); "
            "an approval whose process died is settled once it is older than "
            f"registry.recover_after_s ({reg.config.recover_after_s:g} s), or at once by "
            "`bastion models verify --recover-after 0`"
        )
    if request.status != "pending":
        raise RequestNotPending(
            f"request {request.id} is already {request.status} by {request.decided_by}"
        )


def _settle_first(reg: RegistryParts, actor: Principal, request_id: str) -> None:
    """Settle the model's unfinished approvals (maybe this one) before deciding."""
    with reg.db.session() as session:
        name = RegistryRepository(session).require_request(request_id).name
    settle_unfinished(reg, actor, name=name)


def approve(
    reg: RegistryParts,
    actor: Principal,
    request_id: str,
    notes: str | None = None,
    overrides: dict[str, str] | None = None,
) -> RequestView:
    """Approve: gates are evaluated again, then the alias moves."""
    _settle_first(reg, actor, request_id)
    with reg.db.session() as session:
        repo = RegistryRepository(session)
        request = repo.require_request(request_id)
        _decider(reg, actor, request, "approve")
        row = session.get(ModelVersionRow, request.version_id)
        assert row is not None
        if row.stage != request.from_stage:
            raise InvalidTransition(
                f"{row.name} v{row.version} moved to {row.stage} since the request; "
                "reject this request and ask again"
            )
        results = evaluate(reg.config.gates_for(request.to_stage, row.name), repo.evidence_for(row))
        earlier = {o["gate"]: o for o in request.overrides or []}
        name, version, to = row.name, row.version, request.to_stage
    # Overrides given at request time stand; an approver may add their own.
    results = [
        r.model_copy(
            update={
                "overridden": True,
                "justification": earlier[r.gate]["justification"],
                "overridden_by": earlier[r.gate]["by"],
            }
        )
        if not r.passed and r.gate in earlier
        else r
        for r in results
    ]
    results = _overrides(reg, actor, results, overrides)
    resource = f"model:{name}/{version}"
    gates_json = [r.model_dump() for r in results]
    if any(r.blocking for r in results):
        reg.events.record(
            actor,
            "model.promotion.approve",
            resource,
            {"request_id": request_id, "to": to, "gates": gates_json},
            outcome="denied",
        )
        raise GatesFailed(
            f"{name} v{version} no longer meets the gates for {to}: {summary(results)}"
        )
    # Two approvers at once: only the one who claims the pending request goes on.
    claim = _claim(reg, actor, request_id)
    approved = touched = False
    try:
        reg.events.record(
            actor,
            "model.promotion.approve",
            resource,
            {
                "request_id": request_id,
                "attempt": claim,
                "to": to,
                "notes": notes,
                "gates": gates_json,
            },
        )
        approved = True
        _record_overrides(reg, actor, resource, results, request_id)
        move = plan_move(reg, name, version, to, kind="promotion", request_id=request_id)
        announce_move(reg, actor, move)
        touched = True
        move_aliases(reg, move)
        return finish_approval(reg, actor.user, request_id, claim, move, notes, gates_json)
    except ClaimLost:
        raise
    except BaseException as exc:
        _unwind(reg, actor, request_id, resource, claim, exc, touched=touched, approved=approved)
        raise


def _claim(reg: RegistryParts, actor: Principal, request_id: str) -> str:
    claim = secrets.token_hex(8)
    with reg.db.session() as session:
        claimed = RegistryRepository(session).claim_request(request_id, claim, actor.user, utcnow())
    if not claimed:
        raise RequestNotPending(f"request {request_id} was decided by someone else just now")
    return claim


def _unwind(
    reg: RegistryParts,
    actor: Principal,
    request_id: str,
    resource: str,
    claim: str,
    exc: BaseException,
    *,
    touched: bool,
    approved: bool,
) -> None:
    """After a failed approval: pending again when MLflow was never touched; otherwise
    unsettled, for the next decision or ``verify`` to settle at once (did the alias
    move?)."""
    # The error that stopped it is the one to report, not this clean-up's.
    with contextlib.suppress(Exception), reg.db.session() as session:
        repo = RegistryRepository(session)
        if touched:
            repo.give_up_request(request_id, claim)
        else:
            repo.release_request(request_id, claim)
    if approved and not touched:
        # The ledger says this approval was given; say that it came to nothing.
        with contextlib.suppress(Exception):
            record_recovery(
                reg,
                actor,
                request_id,
                resource,
                claim,
                status="pending",
                approver=actor.user,
                detail=f"the approval failed before the alias moved "
                f"({getattr(exc, 'code', type(exc).__name__)}): pending again",
            )


def reject(reg: RegistryParts, actor: Principal, request_id: str, notes: str) -> RequestView:
    notes = _text(notes, "notes")
    _settle_first(reg, actor, request_id)
    with reg.db.session() as session:
        request = RegistryRepository(session).require_request(request_id)
        _decider(reg, actor, request, "reject")
        resource = f"model:{request.name}/{request.version}"
    reg.events.record(
        actor,
        "model.promotion.reject",
        resource,
        {"request_id": request_id, "notes": notes},
    )
    with reg.db.session() as session:
        repo = RegistryRepository(session)
        rejected = repo.reject_pending(
            request_id, decided_by=actor.user, decided_at=utcnow(), notes=notes
        )
        view = RequestView.of(repo.require_request(request_id))
    if not rejected:  # an approver claimed it in between
        raise RequestNotPending(f"request {request_id} was decided by someone else just now")
    return view


def rollback(reg: RegistryParts, actor: Principal, name: str, reason: str) -> VersionView:
    """Emergency: production goes back to the version that was there before, at once."""
    if not actor.can(Permission.MODELS_ADMIN):
        refused = PermissionDenied(
            "only admins (models:admin) may roll back; others request a promotion"
        )
        reg.events.record(
            actor, "model.rollback", f"model:{name}", {"refused": refused.code}, outcome="denied"
        )
        raise refused
    reason = _text(reason, "reason")
    settle_unfinished(reg, actor, name=check_name(name))
    with reg.db.session() as session:
        repo = RegistryRepository(session)
        if not repo.versions(name):
            raise ModelNotFound(f"no model {name!r} in the registry")
        current = repo.holder(name, "production")
        if current is None:
            raise NoRollbackTarget(f"{name} has no version in production to roll back")
        target = repo.previous_production(name, current.version)
        if target is None:
            raise NoRollbackTarget(
                f"{name} v{current.version} is the only version ever in production: "
                "there is nothing to roll back to"
            )
        from_version, to_version = current.version, target.version
    reg.events.record(
        actor,
        "model.rollback",
        f"model:{name}",
        {"from_version": from_version, "to_version": to_version, "reason": reason},
    )
    make_move(
        reg,
        actor,
        plan_move(
            reg,
            name,
            to_version,
            "production",
            kind="rollback",
            details={"reason": reason, "rolled_back": from_version},
        ),
    )
    return reg.get_version(name, to_version)


def archive(
    reg: RegistryParts, actor: Principal, name: str, version: int, reason: str
) -> VersionView:
    reason = _text(reason, "reason")
    settle_unfinished(reg, actor, name=check_name(name))
    with reg.db.session() as session:
        row = RegistryRepository(session).require_version(name, version)
        was = row.stage
    if was == "production":
        raise InvalidTransition(
            f"{name} v{version} is in production: promote another version or roll back first"
        )
    if was == "archived":
        return reg.get_version(name, version)
    reg.events.record(
        actor, "model.archive", f"model:{name}/{version}", {"from": was, "reason": reason}
    )
    if was == "staging":
        reg.store.delete_alias(name, "staging")
        reg.aliases_moved(name)
    reg.store.set_tag(name, version, "bastion.stage", "archived")
    with reg.db.session() as session:
        repo = RegistryRepository(session)
        row = repo.require_version(name, version)
        details = {"reason": reason}
        repo.change_stage(
            row, "archived", kind="archive", actor=actor.user, at=utcnow(), details=details
        )
        return VersionView.of(row)
