"""The request id of the request being served, for logs and error bodies."""

from __future__ import annotations

from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("bastion_request_id", default=None)
#: A client's ``X-Request-ID`` that was not taken as the request id, as a keyed digest
#: (``hmac-sha256:...``): what the ledger and the access log keep of it.
client_request_id_var: ContextVar[str | None] = ContextVar(
    "bastion_client_request_id", default=None
)


def current_request_id() -> str | None:
    return request_id_var.get()
