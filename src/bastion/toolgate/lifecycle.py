"""A tool call as a governed call: the gateway's lifecycle with MCP's evidence.

Admission (rate limits through the gateway's counters), the shielded failure path and
settlement are :class:`bastion.gateway.lifecycle.Lifecycle`'s; what differs is the
ledger event (caller, server, tool, argument and result digests, decisions, latency,
outcome) and the metrics (per server and tool).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bastion.audit import EventIn
from bastion.gateway.calls import Call
from bastion.gateway.lifecycle import Lifecycle
from bastion.policy.schema import Policy


@dataclass
class ToolCall(Call):
    """One MCP request's record (``tools/call``, ``resources/read``, ``prompts/get``)."""

    server: str = "unknown"
    tool: str = "unknown"
    #: Whether ``server`` and ``tool`` are names the policy and the server know (else
    #: the metrics say "unknown": a caller's free text never becomes a label).
    known: bool = False
    arguments_digest: str | None = None
    result_digest: str | None = None
    is_error: bool = False

    @property
    def resource(self) -> str:
        if self.decisions.get("server") != "known":
            return f"{self.resource_kind}:unknown"
        return f"{self.resource_kind}:{self.server}.{self.tool}"


class ToolLifecycle(Lifecycle):
    async def record(self, call: Call, policy: Policy) -> None:
        assert isinstance(call, ToolCall)
        await self.ledger.append_async(tool_event(call, policy))

    def observe(self, call: Call) -> None:
        assert isinstance(call, ToolCall)
        m = self.metrics
        server = call.server if call.server in _known_servers(call) else "unknown"
        tool = call.tool if call.known else "unknown"
        m.mcp_calls.labels(server, tool, call.endpoint, call.outcome).inc()
        if call.outcome == "refused" and call.error_code:
            m.mcp_refusals.labels(server, call.error_code).inc()
        m.mcp_duration.labels(server, tool).observe(call.elapsed_s())
        m.mcp_overhead.labels(server).observe(call.overhead_s())


def _known_servers(call: ToolCall) -> set[str]:
    return {call.server} if call.decisions.get("server") == "known" else set()


def tool_event(call: ToolCall, policy: Policy) -> EventIn:
    p = call.principal
    details: dict[str, Any] = {
        "method": call.endpoint,
        "key": p.key_prefix,
        "team": p.team,
        "role": p.role,
        "server": call.server if call.decisions.get("server") == "known" else None,
        "tool": call.tool if call.decisions.get("server") == "known" else None,
        "arguments_digest": call.arguments_digest,
        "result_digest": call.result_digest,
        "decisions": call.decisions,
        "status": call.status,
        "latency_ms": round(call.elapsed_s() * 1000, 3),
        "upstream_ms": round(call.trail.upstream_s * 1000, 3),
        "overhead_ms": round(call.overhead_s() * 1000, 3),
    }
    if call.is_error:
        details["tool_error"] = True
    if call.error_code:
        details["error_code"] = call.error_code
    return EventIn(
        actor=p.actor,
        action=f"mcp.{call.endpoint}",
        resource=call.resource,
        outcome=call.outcome,
        details=details,
        flags=tuple(sorted(call.flags)),
        subject=p.user,
    )
