"""One call's record (:class:`Call`) and what the gateway answers with (:class:`Reply`)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from bastion.auth.principal import Principal
from bastion.gateway.counters import LimitState, Reservation
from bastion.gateway.providers.base import JSON
from bastion.gateway.resilience import Trail


@dataclass
class Call:
    """One governed call's record: what the audit event and the metrics are built from.

    ``endpoint`` names the kind of call (``chat``, ``embeddings``; later a tool call or
    a prediction); the ledger action is ``<family>.<endpoint>`` (``llm.chat``) and the
    resource the model (or tool) it named, once the policy knows it.
    """

    principal: Principal
    endpoint: str
    family: str = "llm"
    resource_kind: str = "model"
    started: float = field(default_factory=time.perf_counter)
    requested_model: str | None = None
    served_model: str | None = None
    provider: str | None = None
    stream: bool = False
    trail: Trail = field(default_factory=Trail)
    decisions: dict[str, Any] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usage_source: str = "none"
    cost_usd: float = 0.0
    reserved_usd: float = 0.0
    ttft_s: float | None = None
    finish_reason: str | None = None
    outcome: str = "success"
    status: int = 200
    error_code: str | None = None
    sent: JSON | None = None  # the masked body that went upstream
    answer_text: str = ""  # what came back (before restoring placeholders)
    limit_states: list[LimitState] = field(default_factory=list)
    model_known: bool = False
    done: bool = False
    reservation: Reservation | None = None  # held from admission until settled
    #: What this call is part of (a /query or /research run: ``{"run": "run_..."}``),
    #: recorded in its ledger event so the run's own event and this one link up.
    links: dict[str, str] = field(default_factory=dict)

    @property
    def action(self) -> str:
        return f"{self.family}.{self.endpoint}"

    @property
    def resource(self) -> str:
        name = self.requested_model if self.model_known else "unknown"
        return f"{self.resource_kind}:{name}"

    @property
    def model_label(self) -> str:
        """For metrics: a policy model name, never a caller's free text."""
        return (
            (self.served_model or self.requested_model or "unknown")
            if self.model_known
            else "unknown"
        )

    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started

    def overhead_s(self) -> float:
        return max(0.0, self.elapsed_s() - self.trail.upstream_s - self.trail.waited_s)


@dataclass
class Reply:
    """A whole answer, or a stream of SSE bytes; with the headers Bastion adds."""

    body: JSON | None
    headers: dict[str, str]
    stream: AsyncIterator[bytes] | None = None
