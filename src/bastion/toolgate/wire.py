"""``tools/call`` to an HTTP upstream in one POST on a kept-alive connection.

Why not the SDK client for this one request: it runs each call through anyio memory
streams, a task per POST and httpx2, which cost Bastion more CPU than all of its
governance together (profiled: about half of its time per call). Everything that
makes the request the protocol's stays the SDK's: the request is the SDK's
``CallToolRequest``; its ``_meta`` envelope and ``MCP-Protocol-Version`` /
``Mcp-Method`` / ``Mcp-Name`` / ``Mcp-Param-*`` headers come from the connected
session's own stamp; the reply is read with the SDK's JSON-RPC adapter and checked
with its per-version result validation, its ``CallToolResult`` adapter and its
output-schema check. Only the POST itself (aiohttp, JSON or an event stream back) is
ours.

Used only where that is all the protocol asks: a streamable-HTTP server that
negotiated a stateless revision (no ``Mcp-Session-Id``). Every other server, and every
other request, goes through the SDK client (:mod:`bastion.toolgate.upstream`).
"""

from __future__ import annotations

import contextlib
import itertools
import json
from typing import Any

import aiohttp
import mcp_types as types
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    JSONRPCError,
    JSONRPCResponse,
    jsonrpc_message_adapter,
)
from mcp_types import methods as _methods
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError

from bastion.gateway.upstream import sse_events
from bastion.toolgate.config import McpServer
from mcp import Client

_ids = itertools.count(1)


def can_post(client: Client, config: McpServer) -> bool:
    """Whether ``client``'s connection lets one ``tools/call`` be one plain POST."""
    session = client.session
    version = getattr(session, "_negotiated_version", None)
    return (
        config.url is not None
        and version in MODERN_PROTOCOL_VERSIONS
        and callable(getattr(session, "_stamp", None))
        and hasattr(session, "_call_tool_adapter")
    )


class WireCaller:
    """One upstream's kept-alive aiohttp session for direct ``tools/call`` POSTs."""

    def __init__(self, config: McpServer) -> None:
        assert config.url is not None
        self.url = str(config.url)
        self.config = config
        self._http: aiohttp.ClientSession | None = None

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=64, keepalive_timeout=30),
                headers=dict(self.config.headers),
                skip_auto_headers=("User-Agent",),
                timeout=aiohttp.ClientTimeout(total=None, connect=self.config.connect_timeout_s),
            )
        return self._http

    async def aclose(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.close()

    async def call_tool(
        self, client: Client, name: str, arguments: dict[str, Any]
    ) -> types.CallToolResult:
        """The SDK's ``Client.call_tool`` in one POST; raises what it would raise
        (``MCPError`` for a JSON-RPC error, ``ValidationError`` for a malformed result)."""
        session = client.session
        request = types.CallToolRequest(
            params=types.CallToolRequestParams(name=name, arguments=arguments)
        )
        data = request.model_dump(by_alias=True, mode="json", exclude_none=True)
        opts: dict[str, Any] = {}
        session._stamp(data, opts)  # type: ignore[arg-type]  # the envelope and routing headers
        request_id = next(_ids)
        body = {"jsonrpc": "2.0", "id": request_id, **data}
        headers = {
            "accept": "application/json, text/event-stream",
            "content-type": "application/json",
            **opts.get("headers", {}),
        }
        raw = await self._post(json.dumps(body, separators=(",", ":")), headers, request_id)
        version = session._negotiated_version or "2025-11-25"
        with contextlib.suppress(KeyError):  # a method the version does not define
            _methods.validate_server_result("tools/call", version, raw)
        result = session._call_tool_adapter.validate_python(raw, by_name=False)
        if not isinstance(result, types.CallToolResult):
            # An input_required (or claimed) answer: the SDK path raises for it too.
            raise MCPError(INTERNAL_ERROR, "the server asked for input mid-call")
        if not result.is_error:
            await session.validate_tool_result(name, result)
        return result

    async def _post(self, body: str, headers: dict[str, str], request_id: int) -> dict[str, Any]:
        async with self._session().post(
            self.url, data=body.encode(), headers=headers, allow_redirects=False
        ) as response:
            ctype = response.headers.get("content-type", "").lower()
            if response.status == 202:
                raise MCPError(INVALID_REQUEST, "server answered a request with 202 Accepted")
            if response.status >= 300:
                if response.status >= 400 and ctype.startswith("application/json"):
                    try:
                        parsed = jsonrpc_message_adapter.validate_json(
                            await response.read(), by_name=False
                        )
                    except ValidationError:
                        parsed = None
                    if isinstance(parsed, JSONRPCError):
                        raise MCPError.from_error_data(parsed.error)
                if response.status == 404:
                    raise MCPError(METHOD_NOT_FOUND, "Not Found")
                raise MCPError(INTERNAL_ERROR, "Server returned an error response")
            if ctype.startswith("application/json"):
                try:
                    message = jsonrpc_message_adapter.validate_json(
                        await response.read(), by_name=False
                    )
                except ValidationError as exc:
                    raise MCPError(PARSE_ERROR, f"Failed to parse JSON response: {exc}") from None
                return _answer(message, request_id)
            if ctype.startswith("text/event-stream"):
                async for event, payload in sse_events(response.content):
                    if event not in (None, "message"):
                        continue
                    try:
                        message = jsonrpc_message_adapter.validate_json(payload, by_name=False)
                    except ValidationError:
                        continue  # the SDK logs and skips an event it cannot read
                    if isinstance(message, JSONRPCResponse | JSONRPCError) and (
                        message.id == request_id
                    ):
                        return _answer(message, request_id)
                raise MCPError(INTERNAL_ERROR, "the event stream ended without an answer")
            raise MCPError(INVALID_REQUEST, f"Unexpected content type: {ctype}")


def _answer(message: Any, request_id: int) -> dict[str, Any]:
    if isinstance(message, JSONRPCError):
        raise MCPError.from_error_data(message.error)
    if not isinstance(message, JSONRPCResponse) or message.id != request_id:
        raise MCPError(PARSE_ERROR, "the answer is not this request's response")
    result = message.result
    return dict(result) if isinstance(result, dict) else {}
