"""Who is calling: the identity an API key stands for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bastion.auth.permissions import Permission

if TYPE_CHECKING:
    from bastion.policy.schema import KeyRestrictions


@dataclass(frozen=True)
class Principal:
    key_id: str
    key_prefix: str
    user: str
    team: str | None
    role: str
    permissions: frozenset[Permission]
    #: What this key is narrowed to (models, limits, budgets); None: the policy alone.
    restrictions: KeyRestrictions | None = None
    #: The keyed digest of the network this request came from (set per request;
    #: :mod:`bastion.evidence.sources`), None when not recorded.
    source: str | None = None

    @property
    def actor(self) -> str:
        """How the ledger names this caller."""
        return f"user:{self.user}"

    def can(self, permission: Permission) -> bool:
        if permission is Permission.PUBLIC or permission is Permission.AUTHENTICATED:
            return True
        return permission in self.permissions


SYSTEM = Principal(
    key_id="-",
    key_prefix="-",
    user="system",
    team=None,
    role="admin",
    permissions=frozenset(Permission),
)


def cli_principal(user: str) -> Principal:
    """An operator at the command line (who has the database in hand)."""
    return Principal("-", "-", user, None, "admin", frozenset(Permission))
