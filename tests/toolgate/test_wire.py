"""The hot ``tools/call`` path: answered on ``/mcp`` without the SDK's per-request
server machinery (:mod:`bastion.toolgate.fastface`) and sent to a streamable-HTTP
server as one direct POST (:mod:`bastion.toolgate.wire`). Either must answer exactly as
the SDK's paths do: the same results, the same JSON-RPC errors and HTTP statuses, the
same refusals, the same ledger events and the same arguments reaching the server. Each
case runs every way, the SDK's client (or raw HTTP, for requests it would never send)
as the caller."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp.shared.exceptions import MCPError

from .conftest import Served, approve

pytestmark = pytest.mark.anyio

EMAIL = "jane.doe@example.com"

#: (role, tool, arguments): allowed, masked, refused by each check, failing upstream.
CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("admin", "remote.echo", {"text": "hello"}),
    ("admin", "remote.echo", {"text": f"write to {EMAIL} or +1 415 555 0100"}),
    ("guest", "remote.echo", {"text": f"from a guest, {EMAIL}"}),
    ("admin", "remote.add", {"a": 2, "b": 40}),
    ("guest", "remote.add", {"a": 1, "b": 2}),  # not on the guest's allow-list
    ("admin", "remote.add", {"a": "two", "b": 2}),  # the tool's schema says no
    ("admin", "remote.echo", {"text": "about Project Falcon"}),  # deny-listed
    ("admin", "remote.weather", {"city": "Oslo"}),  # definition changed since approval
    ("admin", "remote.nothing", {}),  # no such tool
    ("admin", "remote.hang", {}),  # the server never answers
]

#: Ledger fields that are measurements of this one call, not its decisions.
TIMINGS = {"latency_ms", "upstream_ms", "overhead_ms"}


async def _outcome(served: Served, role: str, tool: str, args: dict[str, Any]) -> Any:
    async with served.client(role) as client:
        try:
            result = await client.call_tool(tool, args)
        except MCPError as exc:
            return ("error", exc.error.code, exc.error.message, exc.error.data)
        return ("result", result.model_dump(mode="json", exclude_none=True))


def _last_event(served: Served) -> dict[str, Any]:
    from bastion.audit import EventFilter

    event = list(served.runtime.audit.export(EventFilter(action="mcp.tools.call")))[-1]
    details = {k: v for k, v in event.details.items() if k not in TIMINGS}
    return {
        "outcome": event.outcome,
        "resource": event.resource,
        "flags": sorted(event.flags),
        "details": details,
    }


async def _change_pin(served: Served, server: str, tool: str) -> None:
    from starlette.concurrency import run_in_threadpool

    repo = served.app.state.toolgate.repository
    pins = await run_in_threadpool(repo.pins_for, server)
    definitions = {
        name: ("0" * 64 if name == tool else pin.digest, pin.definition)
        for name, pin in pins.items()
    }
    await run_in_threadpool(repo.replace_pins, server, definitions, "user:admin-user")
    served.app.state.toolgate.forget_pins()


async def test_a_direct_post_answers_as_the_sdk_client_does(served: Served) -> None:
    await approve(served, "remote")
    await _change_pin(served, "remote", "weather")
    gate = served.app.state.toolgate
    seen: dict[tuple[str, str, str], Any] = {}
    sessions = served.app.state.mcp_sessions
    for role, tool, args in CASES:
        answers = {}
        for fast, direct in ((False, False), (True, True), (True, False), (False, True)):
            sessions.fast = fast
            gate.upstreams.post_directly = direct
            before = len(served.received_lines())
            answer = await _outcome(served, role, tool, args)
            answers[fast, direct] = (answer, _last_event(served), served.received_lines()[before:])
        for way, answered in answers.items():
            assert answered == answers[False, False], (role, tool, args, way)
        seen[(role, tool, str(args))] = answers[True, True][0]
    # The cases cover what they claim: results, refusals with their codes, a timeout.
    codes = {a[3]["code"] for a in seen.values() if a[0] == "error" and isinstance(a[3], dict)}
    assert {
        "mcp_tool_not_allowed",
        "mcp_invalid_arguments",
        "mcp_tool_definition_changed",
        "mcp_tool_not_found",
        "mcp_upstream_timeout",
    } <= codes, codes
    assert sum(a[0] == "result" for a in seen.values()) >= 4
    masked = seen[("admin", "remote.echo", str(CASES[1][2]))]
    assert EMAIL not in str(masked) and "<EMAIL" in str(masked)
    # And the direct POST was really taken for the calls that reached the server.
    upstream = gate.upstreams.get("remote", gate.policy.mcp.servers["remote"])
    assert upstream.posted >= 8  # the four answered calls, twice
    assert sessions.answered >= 20  # the ten cases, twice


def _envelope(name: Any, version: str = "2026-07-28", meta: bool = True) -> dict[str, Any]:
    params: dict[str, Any] = {"name": name, "arguments": {"text": f"hi {EMAIL}"}}
    if meta:
        params["_meta"] = {
            "io.modelcontextprotocol/protocolVersion": version,
            "io.modelcontextprotocol/clientCapabilities": {},
        }
    return {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params}


def _headers(name: str = "remote.echo", version: str = "2026-07-28") -> dict[str, str]:
    return {
        "accept": "application/json, text/event-stream",
        "content-type": "application/json",
        "mcp-protocol-version": version,
        "mcp-method": "tools/call",
        "mcp-name": name,
    }


#: Raw requests, well-formed and not: (headers, body); the fast path answers the first
#: kind and hands the rest to the SDK, and either way the answer is the SDK's.
RAW: list[tuple[dict[str, str], Any]] = [
    (_headers(), _envelope("remote.echo")),
    (_headers("remote.nothing"), _envelope("remote.nothing")),
    (_headers("remote.other"), _envelope("remote.echo")),  # Mcp-Name disagrees
    (_headers(), _envelope("remote.echo", meta=False)),  # no _meta envelope
    (_headers(version="2099-01-01"), _envelope("remote.echo", version="2099-01-01")),
    (_headers(), _envelope(42)),  # a name that is not a string
    (_headers(), {**_envelope("remote.echo"), "id": None}),
    (_headers() | {"accept": "text/html"}, _envelope("remote.echo")),
    (_headers() | {"content-type": "text/plain"}, _envelope("remote.echo")),
    (_headers(), "{not json"),
    (
        _headers() | {"mcp-method": "tools/list"},
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/list",
            "params": {"_meta": _envelope("x")["params"]["_meta"]},
        },
    ),
]


async def test_raw_requests_get_the_sdks_answers_on_the_fast_path(served: Served) -> None:
    import httpx

    await approve(served, "remote")
    sessions = served.app.state.mcp_sessions
    auth = {"Authorization": f"Bearer {served.keys['admin']}"}
    async with httpx.AsyncClient(base_url=served.url, timeout=30) as http:
        for headers, body in RAW:
            answers = []
            for fast in (False, True):
                sessions.fast = fast
                content = body if isinstance(body, str) else json.dumps(body)
                response = await http.post("/mcp", content=content, headers=headers | auth)
                answers.append(
                    (response.status_code, response.headers.get("content-type"), response.text)
                )
            assert answers[0] == answers[1], (headers, body)
    assert sessions.answered == 2  # the two well-formed calls; the rest went to the SDK


async def test_every_case_gets_the_sdk_s_bytes_on_the_fast_path(served: Served) -> None:
    """Byte for byte, over raw HTTP: each case of CASES (allowed, masked, refused by each
    check, an upstream that never answers) answered by the fast path and by the SDK."""
    import httpx

    await approve(served, "remote")
    await _change_pin(served, "remote", "weather")
    sessions = served.app.state.mcp_sessions
    before = sessions.answered
    kinds: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=served.url, timeout=60) as http:
        for role, tool, args in CASES:
            auth = {"Authorization": f"Bearer {served.keys[role]}"}
            body = _envelope(tool)
            body["params"]["arguments"] = args
            answers = []
            for fast in (False, True):
                sessions.fast = fast
                response = await http.post(
                    "/mcp", content=json.dumps(body), headers=_headers(tool) | auth
                )
                answers.append(
                    (response.status_code, response.headers.get("content-type"), response.content)
                )
            assert answers[0] == answers[1], (role, tool, args)
            kinds.append(json.loads(answers[1][2]))
    assert sessions.answered - before == len(CASES)  # every case took the fast path once
    # The cases are what they claim: results (one masked) and errors of each kind.
    assert sum("result" in k for k in kinds) >= 3
    assert "<EMAIL" in json.dumps(kinds[1]["result"])
    codes = {k["error"]["data"]["code"] for k in kinds if "error" in k}
    assert {"mcp_tool_not_allowed", "mcp_upstream_timeout", "denylist_blocked"} <= codes, codes
