"""Connections to the upstream MCP servers, with the official SDK's client.

One :class:`Upstream` per server in the policy keeps one ``mcp.Client`` open (a stdio
server stays spawned; an HTTP server keeps its connection pool). The client is entered
and left by an owner task of its own, because the SDK's transports hold task groups
that must be closed by the task that opened them; calls from any request use it.

Whatever goes wrong upstream becomes :class:`ToolServerFailure`: ``connect`` (cannot
start or reach it, or the connection dropped: the next call reconnects), ``timeout``
(no answer in ``timeout_s``: a server that never answers), ``malformed`` (an answer that
is not the protocol) or ``error`` (a JSON-RPC error from the server). Bastion itself
stays up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TextIO, TypeVar

import aiohttp
import anyio
import httpx2
import mcp_types as types
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT
from pydantic import ValidationError

from bastion.toolgate.config import McpServer
from bastion.toolgate.errors import ToolServerFailure
from bastion.toolgate.wire import WireCaller, can_post
from mcp import Client, StdioServerParameters

log = logging.getLogger("bastion.mcp")
T = TypeVar("T")


@contextlib.asynccontextmanager
async def open_client(config: McpServer, *, errlog: TextIO | None = None) -> AsyncIterator[Client]:
    """An entered SDK client for one configured server (and its HTTP pool, closed after)."""
    if config.url is not None:
        http = create_mcp_http_client(
            headers=dict(config.headers) or None,
            timeout=httpx2.Timeout(config.timeout_s, connect=config.connect_timeout_s),
        )
        async with http:
            transport = streamable_http_client(str(config.url), http_client=http)
            async with Client(transport, read_timeout_seconds=config.timeout_s, cache=None) as c:
                yield c
        return
    assert config.command is not None
    params = StdioServerParameters(
        command=config.command[0],
        args=list(config.command[1:]),
        env=dict(config.env) or None,
        cwd=config.cwd,
    )
    stdio = stdio_client(params, errlog=errlog or sys.stderr)
    async with Client(stdio, read_timeout_seconds=config.timeout_s, cache=None) as c:
        yield c


class Upstream:
    """One upstream server: its open client, its last tool listing."""

    def __init__(self, name: str, config: McpServer) -> None:
        self.name = name
        self.config = config
        self._client: Client | None = None
        self._stop: asyncio.Event | None = None
        self._owner: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._tools: list[types.Tool] | None = None
        self._listed_at = 0.0
        self._listing: asyncio.Lock = asyncio.Lock()
        self._wire = WireCaller(config) if config.url is not None else None
        self.post_directly = True
        self.posted = 0  # tools/calls sent as one direct POST

    # --- connection -------------------------------------------------------------------

    async def client(self) -> Client:
        client = self._client
        if client is not None and self._owner is not None and not self._owner.done():
            return client
        async with self._lock:
            if self._client is not None and self._owner is not None and not self._owner.done():
                return self._client
            await self._disconnect()
            self._client = await self._connect()
            return self._client

    async def _connect(self) -> Client:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[Client] = loop.create_future()
        stop = asyncio.Event()
        self._stop = stop
        self._owner = loop.create_task(self._own(ready, stop), name=f"mcp-upstream-{self.name}")
        try:
            async with asyncio.timeout(self.config.connect_timeout_s):
                return await asyncio.shield(ready)
        except TimeoutError:
            stop.set()
            raise ToolServerFailure(
                "timeout",
                f"the MCP server {self.name!r} did not complete its handshake in "
                f"{self.config.connect_timeout_s:g}s",
            ) from None
        except ToolServerFailure:
            raise
        except Exception as exc:
            raise ToolServerFailure(
                "connect",
                f"the MCP server {self.name!r} could not be reached ({type(exc).__name__})",
            ) from None

    async def _own(self, ready: asyncio.Future[Client], stop: asyncio.Event) -> None:
        """Enter the client, hand it over, hold it until asked to stop; in one task."""
        try:
            async with open_client(self.config) as client:
                if not ready.done():
                    ready.set_result(client)
                await stop.wait()
        except BaseException as exc:  # reported to the caller, or the next call reconnects
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else ConnectionError())
            elif not isinstance(exc, asyncio.CancelledError):
                log.warning(
                    "the connection to an MCP server ended",
                    extra={"server": self.name, "error": type(exc).__name__},
                )

    async def _disconnect(self) -> None:
        owner, stop = self._owner, self._stop
        self._client = None
        self._owner = self._stop = None
        if stop is not None:
            stop.set()
        if owner is not None and not owner.done():
            try:
                async with asyncio.timeout(5):
                    await asyncio.shield(owner)
            except (TimeoutError, Exception):
                owner.cancel()

    async def aclose(self) -> None:
        async with self._lock:
            await self._disconnect()
        if self._wire is not None:
            await self._wire.aclose()

    # --- requests -----------------------------------------------------------------------

    async def request(
        self, what: str, send: Callable[[Client], Awaitable[T]], timeout_s: float | None = None
    ) -> T:
        """Send one request; every failure becomes a :class:`ToolServerFailure`."""
        timeout = timeout_s or self.config.timeout_s
        client = await self.client()
        try:
            with anyio.fail_after(timeout):
                return await send(client)
        except Exception as exc:
            raise await self._failure(exc, what, timeout) from None

    async def call_tool(
        self, tool: str, arguments: dict[str, Any], timeout_s: float | None = None
    ) -> types.CallToolResult:
        """``tools/call``: one POST on a kept-alive connection where the server allows it
        (:mod:`bastion.toolgate.wire`), else the SDK client; the same failures either way."""
        client = await self.client()
        if self._wire is None or not self.post_directly or not can_post(client, self.config):
            return await self.request(
                "tools/call", lambda c: c.call_tool(tool, arguments), timeout_s
            )
        timeout = timeout_s or self.config.timeout_s
        try:
            async with asyncio.timeout(timeout):
                result = await self._wire.call_tool(client, tool, arguments)
            self.posted += 1
            return result
        except Exception as exc:
            raise await self._failure(exc, "tools/call", timeout) from None

    async def _failure(self, exc: Exception, what: str, limit_s: float) -> Exception:
        """What a failed request becomes (anything unforeseen is re-raised as it is)."""
        if isinstance(exc, TimeoutError):
            return ToolServerFailure(
                "timeout", f"the MCP server {self.name!r} did not answer {what} in {limit_s:g}s"
            )
        if isinstance(exc, MCPError):
            if exc.code == REQUEST_TIMEOUT:
                return ToolServerFailure(
                    "timeout", f"the MCP server {self.name!r} did not answer {what} in time"
                )
            if exc.code == CONNECTION_CLOSED:
                await self._dropped()
                return ToolServerFailure(
                    "connect", f"the connection to the MCP server {self.name!r} closed"
                )
            return ToolServerFailure(
                "error",
                f"the MCP server {self.name!r} answered {what} with an error "
                f"({exc.code}): {exc.message[:300]}",
            )
        if isinstance(exc, ValidationError):
            return ToolServerFailure(
                "malformed", f"the MCP server {self.name!r} answered {what} with a malformed result"
            )
        if isinstance(
            exc,
            anyio.ClosedResourceError
            | anyio.BrokenResourceError
            | OSError
            | httpx2.HTTPError
            | aiohttp.ClientError,
        ):
            await self._dropped()
            return ToolServerFailure(
                "connect", f"the connection to the MCP server {self.name!r} failed"
            )
        return exc

    async def _dropped(self) -> None:
        async with self._lock:
            await self._disconnect()

    async def tools(self, *, refresh: bool = False) -> list[types.Tool]:
        """The server's tools: the last listing while it is younger than ``refresh_s``."""
        fresh = time.monotonic() - self._listed_at < self.config.refresh_s
        if self._tools is not None and fresh and not refresh:
            return self._tools
        async with self._listing:
            if (
                self._tools is not None
                and not refresh
                and time.monotonic() - self._listed_at < self.config.refresh_s
            ):
                return self._tools
            tools = await self.request("tools/list", _list_all_tools)
            self._tools, self._listed_at = tools, time.monotonic()
            return tools

    def listed(self) -> list[types.Tool] | None:
        return self._tools

    def forget_tools(self) -> None:
        self._tools = None


async def _list_all_tools(client: Client) -> list[types.Tool]:
    tools: list[types.Tool] = []
    cursor: str | None = None
    for _ in range(100):  # a paginator that never ends cannot hang a call
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


class Upstreams:
    """The upstreams of the policy in force; a server whose settings change reconnects."""

    def __init__(self) -> None:
        self._by_name: dict[str, Upstream] = {}
        #: False: every tools/call through the SDK client (tests compare both paths).
        self.post_directly = True

    def get(self, name: str, config: McpServer) -> Upstream:
        upstream = self._by_name.get(name)
        if upstream is None or upstream.config != config:
            if upstream is not None:
                _close_later(upstream)
            upstream = self._by_name[name] = Upstream(name, config)
        upstream.post_directly = self.post_directly
        return upstream

    async def aclose(self) -> None:
        upstreams, self._by_name = list(self._by_name.values()), {}
        for upstream in upstreams:
            with contextlib.suppress(Exception):
                await upstream.aclose()


_closing: set[asyncio.Task[Any]] = set()


def _close_later(upstream: Upstream) -> None:
    task = asyncio.get_running_loop().create_task(upstream.aclose())
    _closing.add(task)
    task.add_done_callback(_closing.discard)
