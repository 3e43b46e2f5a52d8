"""``/mcp``'s ``tools/call`` answered without the SDK's per-request server machinery.

Why: for one stateless ``tools/call`` the SDK's session manager builds a transport
security check, a request runner, a middleware chain and a dispatch context per
request; that machinery cost Bastion about as much CPU as its governance. This module
answers the one hot request directly and runs the SDK's own pieces for everything that
defines the protocol, in the SDK's order: the ``Content-Type`` / ``Accept`` checks, the
modern-revision validation ladder (``_meta`` envelope, ``MCP-Protocol-Version`` /
``Mcp-Method`` / ``Mcp-Name`` headers, supported versions), the ``Mcp-Param-*`` header
check, the per-version request validation, the params model, the exception-to-error
mapping, the per-version result serialisation and the wire writer (status per error
code). The governance is the same :meth:`~bastion.toolgate.service.ToolGate.call_tool`
the SDK path calls.

Anything else (another method, a notification, a legacy-handshake revision, any
request one of those checks would reject) is handed to the SDK with its body replayed,
so the SDK answers it exactly as before. What is not run here: the SDK's OpenTelemetry
span per request (Bastion's own metrics and ledger event still record the call).
"""

from __future__ import annotations

import json
from typing import Any

import mcp_types as types

# The SDK's own Mcp-Param-* check and wire writer (the same body and HTTP status per
# error code); private names, pinned by uv.lock and covered by tests/toolgate.
from mcp.server._streamable_http_modern import _mcp_param_rejection, _write
from mcp.server.connection import Connection
from mcp.server.lowlevel.server import Server
from mcp.server.runner import ServerRunner, modern_error_data
from mcp.server.streamable_http import check_accept_headers
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import (
    InboundLadderRejection,
    classify_inbound_request,
    find_duplicated_routing_header,
)
from mcp_types import JSONRPCError, JSONRPCRequest, JSONRPCResponse
from mcp_types import methods as _methods
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from bastion.auth.principal import Principal
from bastion.toolgate import face
from bastion.toolgate.service import ToolGate

_VERSION_HEADER = b"mcp-protocol-version"
_MODERN = frozenset(v.encode() for v in MODERN_PROTOCOL_VERSIONS)


class FastFace:
    """Answers a modern-revision ``tools/call``; says no (``None``) to anything else."""

    def __init__(
        self,
        gate: ToolGate,
        server: Server[Any],
        security: TransportSecuritySettings | None,
        max_body: int | None,
    ) -> None:
        self.gate = gate
        self.server = server
        self.security = TransportSecurityMiddleware(security)
        self.max_body = max_body
        self._runners: dict[str, ServerRunner[Any]] = {}

    def _runner(self, version: str) -> ServerRunner[Any]:
        """A runner only for its per-version result serialisation (no state of a call)."""
        runner = self._runners.get(version)
        if runner is None:
            connection = Connection.from_envelope(version, None, None)
            runner = self._runners[version] = ServerRunner(self.server, connection, None)
        return runner

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """Answer the request and return None, or return the ``receive`` the SDK must
        read the request from (the body this read, replayed)."""
        if scope.get("method") != "POST" or not any(
            k == _VERSION_HEADER and v in _MODERN for k, v in scope["headers"]
        ):
            return receive
        request = Request(scope, receive)
        if await self.security.validate_request(request, is_post=True) is not None:
            return receive
        has_json, _ = check_accept_headers(request)
        if not has_json:
            return receive
        body = await request.body()
        replay = _replay(body, receive)
        if self.max_body is not None and len(body) > self.max_body:
            return replay
        try:
            decoded = json.loads(body)
        except (ValueError, RecursionError):
            return replay
        if not isinstance(decoded, dict) or decoded.get("method") != "tools/call":
            return replay
        try:
            req = JSONRPCRequest.model_validate(decoded)
        except ValidationError:
            return replay
        if find_duplicated_routing_header(request.headers.items()) is not None:
            return replay
        verdict = classify_inbound_request(decoded, headers=dict(request.headers))
        if isinstance(verdict, InboundLadderRejection):
            return replay
        version = verdict.protocol_version
        try:
            _methods.validate_client_request("tools/call", version, req.params)
            params = types.CallToolRequestParams.model_validate(req.params or {}, by_name=False)
        except (KeyError, ValidationError):
            return replay
        if await _mcp_param_rejection(self.server, request, req, verdict, None) is not None:
            return replay
        principal = scope.get("state", {}).get("principal")
        msg: JSONRPCResponse | JSONRPCError
        try:
            if not isinstance(principal, Principal):
                raise MCPError(
                    face.REFUSED, "not authenticated", {"code": "missing_api_key", "status": 401}
                )
            result = await face.guarded(
                self.gate.call_tool(principal, params.name, dict(params.arguments or {}))
            )
            dumped = self._runner(version)._serialize("tools/call", version, result)
            msg = JSONRPCResponse(jsonrpc="2.0", id=req.id, result=dumped)
        except Exception as exc:
            msg = JSONRPCError(jsonrpc="2.0", id=req.id, error=modern_error_data(exc))
        await _write(msg, scope, receive, send)
        return None


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
