"""Authentication and authorisation errors.

Unauthenticated (401): missing_api_key, invalid_api_key, api_key_revoked, api_key_expired
Forbidden (403): permission_denied
NotFound (404): key_not_found
InvalidInput (400): unknown_role
"""

from __future__ import annotations

from bastion.errors import Forbidden, InvalidInput, NotFound, Unauthenticated


class MissingKey(Unauthenticated):
    code = "missing_api_key"


class InvalidKey(Unauthenticated):
    code = "invalid_api_key"


class RevokedKey(Unauthenticated):
    code = "api_key_revoked"


class ExpiredKey(Unauthenticated):
    code = "api_key_expired"


class PermissionDenied(Forbidden):
    code = "permission_denied"


class KeyNotFound(NotFound):
    code = "key_not_found"


class UnknownRole(InvalidInput):
    code = "unknown_role"


class UnknownTeam(InvalidInput):
    code = "unknown_team"
