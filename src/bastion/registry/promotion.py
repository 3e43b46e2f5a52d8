"""Promotion requests, decisions and alias moves: the part of the registry that changes
which version serves.

A request is refused when a gate fails (unless an admin overrides it with a written
justification); an approval is by someone other than the requester, evaluates the gates
again and only then moves the MLflow alias. A rollback is the admins' emergency path.
Each step is a ledger event before the database records it; MLflow is written before
Bastion's tables, so a failure there leaves them untouched.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from bastion.auth.errors import PermissionDenied
from bastion.auth.permissions import Permission
from bastion.auth.principal import Principal
from bastion.db import utcnow
from bastion.errors import InvalidInput
from bastion.registry.config import check_name
from bastion.registry.errors import (
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
from bastion.registry.gates import GateResult, apply_overrides, evaluate, summary
from bastion.registry.models import ModelVersionRow, PromotionRequestRow, StageChangeRow
from bastion.registry.repository import RegistryRepository
from bastion.registry.schemas import RequestView, VersionView

if TYPE_CHECKING:
    from bastion.registry.service import ModelRegistry

#: Which stage a version must be in to be promoted to each target.
PROMOTE_FROM = {"staging": "development", "production": "staging"}


def _text(value: str | None, what: str) -> str:
    if value is None or not value.strip():
        raise InvalidInput(f"{what} is required: say why, in a sentence", code=f"{what}_required")
    if len(value) > 4000:
        raise InvalidInput(f"{what} is longer than 4000 characters", code=f"{what}_too_long")
    return value.strip()


def _overrides(
    reg: ModelRegistry,
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
    reg: ModelRegistry, actor: Principal, resource: str, results: list[GateResult], request_id: str
) -> list[dict[str, Any]]:
    done = []
    for r in results:
        if r.overridden and r.overridden_by == actor.user:
            reg._event(
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
            done.append({"gate": r.gate, "justification": r.justification, "by": actor.user})
    return done


def request_promotion(
    reg: ModelRegistry,
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
    with reg.db.session() as session:
        repo = RegistryRepository(session)
        row = reg._row(repo, name, version)
        need = PROMOTE_FROM[to]
        if row.stage != need:
            raise InvalidTransition(
                f"{name} v{version} is in {row.stage}; promotion to {to} is from {need}"
            )
        if repo.pending_request(row.id, to) is not None:
            raise PromotionPending(
                f"{name} v{version} already has a pending request for {to}: "
                "`bastion models requests` shows it"
            )
        results = evaluate(reg.config.gates_for(to, name), reg._evidence(repo, row))
        version_id, from_stage = row.id, row.stage
    results = _overrides(reg, actor, results, overrides)
    request_id = f"pr_{secrets.token_hex(6)}"
    gates_json = [r.model_dump() for r in results]
    if any(r.blocking for r in results):
        reg._event(
            actor,
            "model.promotion.request",
            resource,
            {"to": to, "gates": gates_json, "reason": reason},
            outcome="denied",
        )
        raise GatesFailed(f"{name} v{version} does not meet the gates for {to}: {summary(results)}")
    reg._event(
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


def _decider(reg: ModelRegistry, actor: Principal, request: PromotionRequestRow, verb: str) -> None:
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
        reg._event(
            actor,
            f"model.promotion.{verb}",
            f"model:{request.name}/{request.version}",
            {"request_id": request.id, "refused": refusal.code},
            outcome="denied",
        )
        raise refusal
    if request.status != "pending":
        raise RequestNotPending(
            f"request {request.id} is already {request.status} by {request.decided_by}"
        )


def approve(
    reg: ModelRegistry,
    actor: Principal,
    request_id: str,
    notes: str | None = None,
    overrides: dict[str, str] | None = None,
) -> RequestView:
    """Approve: gates are evaluated again, then the alias moves."""
    with reg.db.session() as session:
        repo = RegistryRepository(session)
        request = reg._request(repo, request_id)
        _decider(reg, actor, request, "approve")
        row = session.get(ModelVersionRow, request.version_id)
        assert row is not None
        if row.stage != request.from_stage:
            raise InvalidTransition(
                f"{row.name} v{row.version} moved to {row.stage} since the request; "
                "reject this request and ask again"
            )
        results = evaluate(
            reg.config.gates_for(request.to_stage, row.name), reg._evidence(repo, row)
        )
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
        reg._event(
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
    _claim(reg, request_id, "pending", "approving")
    try:
        reg._event(
            actor,
            "model.promotion.approve",
            resource,
            {"request_id": request_id, "to": to, "notes": notes, "gates": gates_json},
        )
        recorded = _record_overrides(reg, actor, resource, results, request_id)
        _move(reg, actor, name, version, to, kind="promotion", request_id=request_id)
    except BaseException:
        _claim(reg, request_id, "approving", "pending")
        raise
    with reg.db.session() as session:
        request = reg._request(RegistryRepository(session), request_id)
        request.status = "approved"
        request.decided_by = actor.user
        request.decided_at = utcnow()
        request.notes = notes
        request.decision_gates = gates_json
        request.overrides = [*(request.overrides or []), *recorded]
        return RequestView.of(request)


def _claim(reg: ModelRegistry, request_id: str, status: str, to: str) -> None:
    with reg.db.session() as session:
        claimed = RegistryRepository(session).set_request_status(request_id, status, to)
    if not claimed:
        raise RequestNotPending(f"request {request_id} was decided by someone else just now")


def reject(reg: ModelRegistry, actor: Principal, request_id: str, notes: str) -> RequestView:
    notes = _text(notes, "notes")
    with reg.db.session() as session:
        request = reg._request(RegistryRepository(session), request_id)
        _decider(reg, actor, request, "reject")
        resource = f"model:{request.name}/{request.version}"
    reg._event(
        actor,
        "model.promotion.reject",
        resource,
        {"request_id": request_id, "notes": notes},
    )
    with reg.db.session() as session:
        request = reg._request(RegistryRepository(session), request_id)
        request.status = "rejected"
        request.decided_by = actor.user
        request.decided_at = utcnow()
        request.notes = notes
        return RequestView.of(request)


def _move(
    reg: ModelRegistry,
    actor: Principal,
    name: str,
    version: int,
    to: str,
    *,
    kind: str,
    request_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Put ``version`` in ``to`` (staging or production), demoting the holder."""
    with reg.db.session() as session:
        repo = RegistryRepository(session)
        row = reg._row(repo, name, version)
        holder = repo.holder(name, to)
        prev = holder.version if holder is not None and holder.id != row.id else None
        was = row.stage
    # Whoever held the stage before: production is archived, staging goes back.
    demoted_to = "archived" if to == "production" else "development"
    reg._event(
        actor,
        "model.alias.move",
        f"model:{name}",
        {
            "alias": to,
            "version": version,
            "previous_version": prev,
            "kind": kind,
            "request_id": request_id,
        },
    )
    reg.store.set_alias(name, to, version)
    if was == "staging" and to == "production":
        reg.store.delete_alias(name, "staging")
    reg.store.set_tag(name, version, "bastion.stage", to)
    if prev is not None:
        reg.store.set_tag(name, prev, "bastion.stage", demoted_to)
    now = utcnow()
    with reg.db.session() as session:
        repo = RegistryRepository(session)
        row = reg._row(repo, name, version)
        if prev is not None:
            old = reg._row(repo, name, prev)
            repo.add(
                StageChangeRow(
                    version_id=old.id,
                    name=name,
                    version=prev,
                    from_stage=old.stage,
                    to_stage=demoted_to,
                    kind="replaced",
                    request_id=request_id,
                    actor=actor.user,
                    at=now,
                    details={"replaced_by": version},
                )
            )
            old.stage, old.stage_changed_at = demoted_to, now
        repo.add(
            StageChangeRow(
                version_id=row.id,
                name=name,
                version=version,
                from_stage=row.stage,
                to_stage=to,
                kind=kind,
                request_id=request_id,
                actor=actor.user,
                at=now,
                details=details or {},
            )
        )
        row.stage, row.stage_changed_at = to, now


def rollback(reg: ModelRegistry, actor: Principal, name: str, reason: str) -> VersionView:
    """Emergency: production goes back to the version that was there before, at once."""
    if not actor.can(Permission.MODELS_ADMIN):
        refused = PermissionDenied(
            "only admins (models:admin) may roll back; others request a promotion"
        )
        reg._event(
            actor, "model.rollback", f"model:{name}", {"refused": refused.code}, outcome="denied"
        )
        raise refused
    reason = _text(reason, "reason")
    with reg.db.session() as session:
        repo = RegistryRepository(session)
        if not repo.versions(check_name(name)):
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
    reg._event(
        actor,
        "model.rollback",
        f"model:{name}",
        {"from_version": from_version, "to_version": to_version, "reason": reason},
    )
    _move(
        reg,
        actor,
        name,
        to_version,
        "production",
        kind="rollback",
        details={"reason": reason, "rolled_back": from_version},
    )
    return reg.get_version(name, to_version)


def archive(
    reg: ModelRegistry, actor: Principal, name: str, version: int, reason: str
) -> VersionView:
    reason = _text(reason, "reason")
    with reg.db.session() as session:
        row = reg._row(RegistryRepository(session), name, version)
        was = row.stage
    if was == "production":
        raise InvalidTransition(
            f"{name} v{version} is in production: promote another version or roll back first"
        )
    if was == "archived":
        return reg.get_version(name, version)
    reg._event(actor, "model.archive", f"model:{name}/{version}", {"from": was, "reason": reason})
    if was == "staging":
        reg.store.delete_alias(name, "staging")
    reg.store.set_tag(name, version, "bastion.stage", "archived")
    with reg.db.session() as session:
        repo = RegistryRepository(session)
        row = reg._row(repo, name, version)
        now = utcnow()
        repo.add(
            StageChangeRow(
                version_id=row.id,
                name=name,
                version=version,
                from_stage=was,
                to_stage="archived",
                kind="archive",
                actor=actor.user,
                at=now,
                details={"reason": reason},
            )
        )
        row.stage, row.stage_changed_at = "archived", now
        return VersionView.of(row)
