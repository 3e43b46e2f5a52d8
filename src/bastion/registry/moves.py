"""Moving a version into staging or production: the alias in MLflow, the stage changes in
Bastion's tables, and the ledger event before both.

A move is planned from the tables (which version holds the stage now), announced in
the ledger, made in MLflow, then recorded. Each MLflow step can be repeated: an
approval whose process died after the alias moved is finished by running the same plan
again (see :mod:`bastion.registry.recovery`), and until its tables say otherwise the
plan comes out the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bastion.auth.principal import Principal
from bastion.db import utcnow
from bastion.registry.repository import RegistryRepository

if TYPE_CHECKING:
    from bastion.registry.parts import RegistryParts


@dataclass(frozen=True)
class Move:
    name: str
    version: int
    to: str  # staging or production
    was: str  # the version's stage before
    previous: int | None  # the version that held ``to`` and steps down
    kind: str  # promotion or rollback
    request_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def demoted_to(self) -> str:
        """Whoever held the stage before: production is archived, staging goes back."""
        return "archived" if self.to == "production" else "development"


def plan_move(
    reg: RegistryParts,
    name: str,
    version: int,
    to: str,
    *,
    kind: str,
    request_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> Move:
    with reg.db.session() as session:
        repo = RegistryRepository(session)
        row = repo.require_version(name, version)
        holder = repo.holder(name, to)
        return Move(
            name=name,
            version=version,
            to=to,
            was=row.stage,
            previous=holder.version if holder is not None and holder.id != row.id else None,
            kind=kind,
            request_id=request_id,
            details=details or {},
        )


def announce_move(reg: RegistryParts, actor: Principal, move: Move) -> None:
    reg.events.record(
        actor,
        "model.alias.move",
        f"model:{move.name}",
        {
            "alias": move.to,
            "version": move.version,
            "previous_version": move.previous,
            "kind": move.kind,
            "request_id": move.request_id,
        },
    )


def move_aliases(reg: RegistryParts, move: Move) -> None:
    """MLflow's side; each step is safe to repeat."""
    reg.store.set_alias(move.name, move.to, move.version)
    if move.was == "staging" and move.to == "production":
        reg.store.delete_alias(move.name, "staging")
    reg.store.set_tag(move.name, move.version, "bastion.stage", move.to)
    if move.previous is not None:
        reg.store.set_tag(move.name, move.previous, "bastion.stage", move.demoted_to)
    reg.aliases_moved(move.name)


def record_move(
    reg: RegistryParts, repo: RegistryRepository, actor: str, move: Move, now: datetime
) -> None:
    """Bastion's side, in the caller's transaction; ``actor`` is a user name."""
    row = repo.require_version(move.name, move.version)
    if move.previous is not None:
        repo.change_stage(
            repo.require_version(move.name, move.previous),
            move.demoted_to,
            kind="replaced",
            actor=actor,
            at=now,
            request_id=move.request_id,
            details={"replaced_by": move.version},
        )
    repo.change_stage(
        row,
        move.to,
        kind=move.kind,
        actor=actor,
        at=now,
        request_id=move.request_id,
        details=move.details,
    )


def make_move(reg: RegistryParts, actor: Principal, move: Move) -> None:
    """Announce, move in MLflow, record: the whole move outside an approval."""
    announce_move(reg, actor, move)
    move_aliases(reg, move)
    with reg.db.session() as session:
        record_move(reg, RegistryRepository(session), actor.user, move, utcnow())
