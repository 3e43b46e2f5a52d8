"""Bastion on loopback in front of real MCP servers (stdio and streamable HTTP), with the
official SDK's client as the caller."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
import uvicorn
from mcp.client.streamable_http import streamable_http_client

from mcp import Client

SERVER = Path(__file__).with_name("mcp_server.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


POLICY = """\
version: 1
models: {{}}
roles:
  admin: {{tools: ["local.*", "remote.*", "prompt:*", "resource:*"]}}
  operator: {{tools: ["*"]}}
  analyst: {{tools: ["local.*", "remote.*", "prompt:local.*", "resource:local.*"]}}
  guest: {{tools: ["local.echo", "remote.echo"]}}
privacy:
  prompt: {{action: mask, entities: [EMAIL_ADDRESS, PHONE_NUMBER]}}
  response: {{action: flag}}
denylist:
  - {{term: "Project Falcon", action: block}}
mcp:
  servers:
    local:
      command: ["{python}", "{server}", "stdio"]
      env: {{MCP_RECEIVED_FILE: "{received}", MCP_DESCRIPTION_FILE: "{description}"}}
      refresh_s: 0
      timeout_s: 5
      privacy: {{arguments: mask, results: flag, restore: true}}
      tools:
        delete_file: {{destructive: true}}
        add:
          arguments: {{a: {{maximum: 1000}}}}
          rate_limit: {{per_minute: 3}}
        hang: {{timeout_s: 0.5}}
    remote:
      url: "http://127.0.0.1:{port}/mcp"
      refresh_s: 0
      privacy: {{arguments: mask, results: flag, restore: false}}
      tools:
        hang: {{timeout_s: 0.5}}
    broken:
      url: "http://127.0.0.1:{port}/garbage"
      timeout_s: 1
    down:
      url: "http://127.0.0.1:{closed}/mcp"
      connect_timeout_s: 1
      timeout_s: 1
"""


@dataclass
class Served:
    url: str
    home: Path
    received: Path
    description: Path
    runtime: Any
    app: Any
    keys: dict[str, str]

    def received_lines(self) -> list[dict[str, Any]]:
        import json

        if not self.received.exists():
            return []
        return [json.loads(line) for line in self.received.read_text().splitlines()]

    @asynccontextmanager
    async def client(self, role: str) -> AsyncIterator[Client]:
        http = httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {self.keys[role]}"}, timeout=30
        )
        async with http, Client(streamable_http_client(self.url + "/mcp", http_client=http)) as c:
            yield c


@pytest.fixture(scope="module")
def mcp_http_server() -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(SERVER), "http", str(port)])
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/garbage", timeout=1)
            break
        except httpx.TransportError:
            assert proc.poll() is None, "the MCP test server died"
            assert time.monotonic() < deadline, "the MCP test server did not start"
            time.sleep(0.1)
    try:
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:  # a `hang` call still open keeps it waiting
            proc.kill()
            proc.wait(10)


class _Uvicorn(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # not the main thread
        pass


@pytest.fixture
def served(settings, mcp_http_server: int, tmp_path: Path) -> Iterator[Served]:  # type: ignore[no-untyped-def]
    from bastion.app import create_app
    from bastion.auth.principal import SYSTEM
    from bastion.db import create_database, upgrade
    from bastion.runtime import open_runtime

    received = tmp_path / "received.jsonl"
    description = tmp_path / "description.txt"
    (settings.home / "policy.yaml").write_text(
        POLICY.format(
            python=sys.executable,
            server=SERVER,
            received=received,
            description=description,
            port=mcp_http_server,
            closed=free_port(),
        )
    )
    db = create_database(settings.resolved_database_url)
    upgrade(db.engine)
    db.dispose()
    runtime = open_runtime(settings)
    keys = {
        role: str(runtime.keys.create(SYSTEM, user=f"{role}-user", role=role).secret)
        for role in ("admin", "analyst", "guest", "operator")
    }
    app = create_app(settings, runtime=runtime)
    port = free_port()
    server = _Uvicorn(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", loop="asyncio")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "Bastion did not start"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    try:
        yield Served(
            f"http://127.0.0.1:{port}", settings.home, received, description, runtime, app, keys
        )
    finally:
        server.should_exit = True
        thread.join(30)


async def approve(served: Served, server: str) -> None:
    from bastion.toolgate.admin import approve as approve_server

    await approve_server(served.runtime, server, "user:admin-user")
    served.app.state.toolgate.forget_pins()  # this process's cache; others see it in 5 s
