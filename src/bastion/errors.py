"""The root of every error a Bastion user can see.

    BastionError (code, message, status)
    ├── NotFound            404
    ├── Conflict            409
    ├── InvalidInput        400/422
    ├── Unauthenticated     401
    ├── Forbidden           403
    └── Unavailable         503

Each package raises subclasses of these with a stable ``code`` (snake case, never
renamed once released) and a message that says what to do. The HTTP face maps them to
one JSON shape; the CLI prints the message and exits non-zero.
"""

from __future__ import annotations

from typing import Any, ClassVar


class BastionError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    type: ClassVar[str] = "server_error"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code  # type: ignore[misc]
        self.details = details


class InvalidInput(BastionError):
    status = 400
    code = "invalid_request"
    type = "invalid_request_error"


class Unauthenticated(BastionError):
    status = 401
    code = "invalid_api_key"
    type = "authentication_error"


class Forbidden(BastionError):
    status = 403
    code = "permission_denied"
    type = "permission_error"


class NotFound(BastionError):
    status = 404
    code = "not_found"
    type = "not_found_error"


class Conflict(BastionError):
    status = 409
    code = "conflict"
    type = "conflict_error"


class Unavailable(BastionError):
    status = 503
    code = "unavailable"
    type = "server_error"
