"""Who may read and write which collection (the policy's ``documents`` section).

A caller reads a collection when its role holds ``documents:read`` and either its role
is ``admin``, or the collection is listed with a ``read`` pattern matching the role
(and, if the entry names ``teams``, the caller's team is one of them), or the
collection is not listed and ``open_collections`` is true. Writing (ingest, remove)
needs ``documents:write`` and a ``write`` pattern (``admin`` for unlisted collections).
"""

from __future__ import annotations

from collections.abc import Iterable

from bastion.auth.permissions import Permission
from bastion.auth.principal import Principal
from bastion.documents.errors import CollectionForbidden
from bastion.policy.schema import Policy, matches_any


def can_read(policy: Policy, principal: Principal, collection: str) -> bool:
    if not principal.can(Permission.DOCUMENTS_READ):
        return False
    if principal.role == "admin":
        return True
    config = policy.documents.collections.get(collection)
    if config is None:
        return policy.documents.open_collections
    if not matches_any(principal.role, config.read):
        return False
    return config.teams is None or principal.team in config.teams


def can_write(policy: Policy, principal: Principal, collection: str) -> bool:
    if not principal.can(Permission.DOCUMENTS_WRITE):
        return False
    if principal.role == "admin":
        return True
    config = policy.documents.collections.get(collection)
    if config is None:
        return False
    if not matches_any(principal.role, config.write):
        return False
    return config.teams is None or principal.team in config.teams


def readable(policy: Policy, principal: Principal, collections: Iterable[str]) -> list[str]:
    return sorted(c for c in set(collections) if can_read(policy, principal, c))


def require_read(policy: Policy, principal: Principal, collection: str) -> None:
    if not can_read(policy, principal, collection):
        raise CollectionForbidden(
            f"role {principal.role!r} may not read the collection {collection!r}: the "
            "policy's documents.collections entry decides who may",
            collection=collection,
        )


def require_write(policy: Policy, principal: Principal, collection: str) -> None:
    if not can_write(policy, principal, collection):
        raise CollectionForbidden(
            f"role {principal.role!r} may not add to or remove from the collection "
            f"{collection!r}: ask an admin, or list the role under its write patterns",
            collection=collection,
        )
