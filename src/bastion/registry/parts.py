"""What the registry's workflows work with: narrow, public collaborators.

Registration, promotion, alias moves and recovery are written as functions over
:class:`RegistryParts` — the database, the MLflow store, the event recorder and the
policy's registry section — not over the whole :class:`~bastion.registry.service.
ModelRegistry`. The service builds the parts once and orchestrates the workflows; a
later caller (serving and canaries moving aliases, say) takes the parts it needs
without the registry.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar

from bastion.audit.events import EventIn, Ledger
from bastion.auth.principal import Principal
from bastion.registry.repository import RegistryRepository
from bastion.registry.schemas import VersionView

log = logging.getLogger("bastion.registry")

if TYPE_CHECKING:
    from bastion.db import Database
    from bastion.policy import PolicyStore
    from bastion.registry.config import RegistryPolicy
    from bastion.registry.mlflow_store import MlflowStore


class EventRecorder:
    """The registry's ledger events: who did what to which model version, and the details."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def record(
        self,
        actor: Principal,
        action: str,
        resource: str,
        details: dict[str, Any],
        outcome: str = "success",
    ) -> None:
        self.ledger.append(
            EventIn(
                actor=actor.actor,
                action=action,
                resource=resource,
                outcome=outcome,
                details=details,
            )
        )


@dataclass(frozen=True)
class RegistryParts:
    db: Database
    store: MlflowStore
    events: EventRecorder
    policy: PolicyStore
    #: Called with the model's name each time its MLflow aliases moved (promotion,
    #: rollback, archive, recovery): this process's serving reads them again at once.
    alias_listeners: list[Callable[[str], None]] = field(default_factory=list, compare=False)

    def on_alias_moved(self, listener: Callable[[str], None]) -> None:
        self.alias_listeners.append(listener)

    def aliases_moved(self, name: str) -> None:
        for listener in list(self.alias_listeners):
            try:
                listener(name)
            except Exception:  # a listener's bug must not undo a recorded move
                log.exception("alias listener failed", extra={"model": name})

    @property
    def config(self) -> RegistryPolicy:
        """The policy's ``registry`` section in force now (it reloads with the policy)."""
        return self.policy.policy.registry

    def get_version(self, name: str, version: int) -> VersionView:
        with self.db.session() as session:
            return VersionView.of(RegistryRepository(session).require_version(name, version))


P = ParamSpec("P")
R = TypeVar("R")


class on_parts(Generic[P, R]):
    """A workflow function ``f(parts, ...)`` offered as a method of an object that has
    ``.parts``: ``register = on_parts(registration.register)`` gives
    ``registry.register(actor, name, ...)`` with the function's own signature, typed."""

    def __init__(self, fn: Callable[Concatenate[RegistryParts, P], R]) -> None:
        self.fn = fn
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]

    def __get__(self, obj: Any, owner: type | None = None) -> Callable[P, R]:
        return functools.partial(self.fn, obj.parts)
