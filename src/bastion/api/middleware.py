"""Pure ASGI middleware (no BaseHTTPMiddleware, which buffers streams):
request ids, the body-size limit, the access log and HTTP metrics.

A client's ``X-Request-ID`` becomes the request id (in the response, the ledger's
``request_id`` and the log) only when it is an opaque token of a known form: a UUID,
32 hex digits (nginx's ``$request_id``, a W3C trace id) or a ULID, with at least one
letter. Anything else (``536-22-8471``, an e-mail address, a name) is replaced by a
fresh id, and the client's value is kept only as a keyed digest (HMAC-SHA256 with a key
derived from the server's secret) under ``client_request_id``, in the ledger event and
the access log, so an operator holding the value can still find the request. A shape
test, not the privacy detectors: it costs one regular expression, and it cannot miss a
kind of personal data the detectors do not know (a bare name or customer number).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.api.errors import error_body
from bastion.observability import Metrics, client_request_id_var, request_id_var

log = logging.getLogger("bastion.access")
SAFE_ID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[0-9a-fA-F]{32}"
    r"|[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}"
)
_LETTER = re.compile(r"[A-Za-z]")


def safe_request_id(value: str) -> bool:
    """Whether a client's ``X-Request-ID`` may be kept as it is (see the module doc)."""
    return SAFE_ID.fullmatch(value) is not None and _LETTER.search(value) is not None


def _bad_target(scope: Scope) -> bool:
    """A NUL in the path or query: no route can use it, and PostgreSQL cannot store
    or compare it (it would be a 500 on any route that looks the value up)."""
    return "\x00" in scope["path"] or b"%00" in scope.get("query_string", b"")


METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestContext:
    def __init__(
        self, app: ASGIApp, metrics: Metrics, max_body_bytes: int, id_key: bytes = b""
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.id_key = id_key or hashlib.sha256(uuid.uuid4().bytes).digest()

    def client_digest(self, value: str) -> str:
        mac = hmac.new(self.id_key, value.encode("utf-8", "surrogateescape"), hashlib.sha256)
        return f"hmac-sha256:{mac.hexdigest()[:32]}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        client = None
        if given and safe_request_id(given):
            request_id = given
        else:
            request_id = uuid.uuid4().hex
            client = self.client_digest(given) if given else None
        token = request_id_var.set(request_id)
        client_token = client_request_id_var.set(client)
        started = time.perf_counter()
        state: dict[str, Any] = {"status": 500, "started": False}

        async def send_wrapper(message: Message) -> None:
            if state.get("refused"):
                return  # the body was refused with 413; the app's reply is dropped
            if message["type"] == "http.response.start":
                if state["started"]:
                    return
                state["started"] = True
                state["status"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            length = headers.get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
                await self._too_large(send, state, request_id)
                return
            if _bad_target(scope):
                await self._refuse(
                    send_wrapper,
                    400,
                    "the path or query holds a NUL character (%00): remove it",
                    "invalid_request",
                )
                return
            try:
                limited = self._limited(receive, send, state, request_id)
                await self.app(scope, limited, send_wrapper)
            except Exception:
                # Answered here, where the request id is still known (Starlette's own
                # handler runs outside this middleware, after the id is gone).
                log.exception("unhandled error")
                if state["started"]:
                    raise  # headers are out: the server closes the connection
                body = json.dumps(
                    error_body(
                        "Bastion failed to handle this request; it has been logged with this "
                        "request id",
                        "server_error",
                        "internal_error",
                    )
                ).encode()
                await send_wrapper(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send_wrapper({"type": "http.response.body", "body": body})
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            status = state["status"]
            # Labels stay bounded whatever a client sends.
            method = scope["method"] if scope["method"] in METHODS else "OTHER"
            self.metrics.http_requests.labels(template, method, f"{status // 100}xx").inc()
            self.metrics.http_duration.labels(template, method).observe(elapsed)
            principal = getattr(scope.get("state", {}).get("principal"), "key_prefix", None)
            log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "key": principal,
                    "client_request_id": client,
                },
            )
            client_request_id_var.reset(client_token)
            request_id_var.reset(token)

    def _limited(
        self, receive: Receive, send: Send, state: dict[str, Any], request_id: str
    ) -> Receive:
        seen = 0

        async def wrapped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    await self._too_large(send, state, request_id)
                    return {"type": "http.disconnect"}
            return message

        return wrapped

    async def _refuse(self, send: Send, status: int, message: str, code: str) -> None:
        body = json.dumps(error_body(message, "invalid_request_error", code)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _too_large(self, send: Send, state: dict[str, Any], request_id: str) -> None:
        """Answer 413 on the raw ``send``; from then on the app's own reply is dropped."""
        state["refused"] = True
        if state["started"]:
            return  # the app already answered; nothing more can be said
        body = json.dumps(
            error_body(
                f"the request body is larger than {self.max_body_bytes} bytes: send less",
                "invalid_request_error",
                "request_too_large",
            )
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-request-id", request_id.encode()),
                ],
            }
        )
        state["started"], state["status"] = True, 413
        await send({"type": "http.response.body", "body": body})
