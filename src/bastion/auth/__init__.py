"""Who is calling and what they may do: API keys (stored hashed), principals, roles.

Public names, loaded on first use so that importing :mod:`bastion.auth.permissions`
from the policy schema does not pull in the key service and its database code:

- :class:`Principal` (``SYSTEM``, :func:`cli_principal`), :class:`Permission`;
- :class:`KeyService` (create, list, revoke, authenticate), :class:`KeyView`,
  :class:`CreatedKey`;
- the errors: ``MissingKey``, ``InvalidKey``, ``RevokedKey``, ``ExpiredKey`` (401),
  ``PermissionDenied`` (403), ``KeyNotFound`` (404), ``UnknownRole``, ``UnknownTeam``,
  ``InvalidKeyRequest`` (400).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bastion.lazy import lazy_exports

if TYPE_CHECKING:
    from bastion.auth.errors import (
        ExpiredKey,
        InvalidKey,
        KeyNotFound,
        MissingKey,
        PermissionDenied,
        RevokedKey,
        UnknownRole,
        UnknownTeam,
    )
    from bastion.auth.permissions import DEFAULT_ROLE_PERMISSIONS, Permission
    from bastion.auth.principal import SYSTEM, Principal, cli_principal
    from bastion.auth.service import CreatedKey, InvalidKeyRequest, KeyService, KeyView

_EXPORTS = {
    **dict.fromkeys(
        (
            "ExpiredKey",
            "InvalidKey",
            "KeyNotFound",
            "MissingKey",
            "PermissionDenied",
            "RevokedKey",
            "UnknownRole",
            "UnknownTeam",
        ),
        "bastion.auth.errors",
    ),
    **dict.fromkeys(("DEFAULT_ROLE_PERMISSIONS", "Permission"), "bastion.auth.permissions"),
    **dict.fromkeys(("SYSTEM", "Principal", "cli_principal"), "bastion.auth.principal"),
    **dict.fromkeys(
        ("CreatedKey", "InvalidKeyRequest", "KeyService", "KeyView"), "bastion.auth.service"
    ),
}
__getattr__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "DEFAULT_ROLE_PERMISSIONS",
    "SYSTEM",
    "CreatedKey",
    "ExpiredKey",
    "InvalidKey",
    "InvalidKeyRequest",
    "KeyNotFound",
    "KeyService",
    "KeyView",
    "MissingKey",
    "Permission",
    "PermissionDenied",
    "Principal",
    "RevokedKey",
    "UnknownRole",
    "UnknownTeam",
    "cli_principal",
]
