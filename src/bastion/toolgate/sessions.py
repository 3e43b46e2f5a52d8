"""The SDK's streamable-HTTP session manager, started on first use and stopped with the
gate: it holds a task group that must be opened and closed by one task (its owner),
whichever request comes first, and whether or not the app's lifespan runs. A modern
``tools/call`` is answered in front of it (:mod:`bastion.toolgate.fastface`)."""

from __future__ import annotations

import asyncio
import contextlib

from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.types import Receive, Scope, Send

from bastion.toolgate.face import build_server
from bastion.toolgate.fastface import FastFace
from bastion.toolgate.service import ToolGate


class McpSessions:
    def __init__(self, gate: ToolGate) -> None:
        self.gate = gate
        self._manager: StreamableHTTPSessionManager | None = None
        self._owner: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._lock = asyncio.Lock()
        self._fast: FastFace | None = None
        #: False: every request through the SDK (tests compare both paths).
        self.fast = True
        self.answered = 0  # requests the fast path answered

    async def _running(self) -> StreamableHTTPSessionManager:
        manager = self._manager
        if manager is not None and self._owner is not None and not self._owner.done():
            return manager
        async with self._lock:
            if self._manager is None or self._owner is None or self._owner.done():
                server = build_server(self.gate)
                manager = StreamableHTTPSessionManager(
                    app=server, json_response=True, stateless=True
                )
                self._fast = FastFace(
                    self.gate,
                    server,
                    manager.security_settings,
                    manager.asgi_app.max_body_size,
                )
                ready = asyncio.get_running_loop().create_future()
                self._stop = asyncio.Event()
                self._owner = asyncio.get_running_loop().create_task(
                    self._own(manager, ready), name="mcp-sessions"
                )
                await ready
                self._manager = manager
            assert self._manager is not None
            return self._manager

    async def _own(
        self, manager: StreamableHTTPSessionManager, ready: asyncio.Future[None]
    ) -> None:
        try:
            async with manager.run():
                ready.set_result(None)
                await self._stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(RuntimeError(f"the MCP session manager failed: {exc!r}"))
            raise

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        manager = await self._running()
        if self.fast and self._fast is not None:
            rest = await self._fast.handle(scope, receive, send)
            if rest is None:
                self.answered += 1
                return
            receive = rest
        await manager.handle_request(scope, receive, send)

    async def aclose(self) -> None:
        self._stop.set()
        owner, self._owner, self._manager = self._owner, None, None
        if owner is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(owner, 5)
