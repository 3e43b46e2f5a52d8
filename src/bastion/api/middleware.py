"""Pure ASGI middleware (no BaseHTTPMiddleware, which buffers streams):
request ids, the body-size limit, the access log and HTTP metrics."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.api.errors import error_body
from bastion.observability import Metrics, request_id_var

log = logging.getLogger("bastion.access")
SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestContext:
    def __init__(self, app: ASGIApp, metrics: Metrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if SAFE_ID.match(given) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
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
                },
            )
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
