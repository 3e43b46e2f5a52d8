"""Retries, fallbacks and circuit breakers around one call.

For each model of the chain (the one asked for, then its ``fallbacks`` the caller may
use): skip it while its deployment's breaker (or its provider's) is open; else try it
up to ``1 + max_retries`` times, and give the deployment one verdict for the call
(``bastion.gateway.breaker``): retries are not counted as failures of their own. A
retryable failure (429, 5xx, connection, timeout) waits with exponential backoff and
full jitter, or exactly what ``Retry-After`` asks, and tries again; a wait that would
pass the request's deadline (or the longest wait the settings allow) moves on to the
next model instead. ``context_length_exceeded`` is never retried on the same model:
the next model (configure a larger one as a fallback) gets it. A content-policy
refusal or a bad request goes back to the caller at once, with the provider's reason.

Written here rather than with tenacity: the loop interleaves retries with fallbacks
and breakers under one deadline, which tenacity's single-callable loop cannot express.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from bastion.gateway.breaker import Health, Ticket
from bastion.gateway.errors import UpstreamFailure
from bastion.gateway.providers.base import Target

T = TypeVar("T")

BACKOFF_BASE_S = 0.25
BACKOFF_MAX_S = 8.0
#: Failures that count against a deployment's breaker (its health, not the caller's
#: input). A 429 is not among them: it is a quota, which ``Retry-After`` and the
#: fallbacks handle; the deployment is up.
BREAKER_KINDS = frozenset(
    {"server_error", "connect", "timeout", "first_token_timeout", "stall", "malformed"}
)


@dataclass
class Attempt:
    model: str
    provider: str
    outcome: str  # "ok" or a failure kind
    ms: float
    status: int | None = None
    retry_after: float | None = None

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "model": self.model,
            "provider": self.provider,
            "outcome": self.outcome,
            "ms": round(self.ms, 2),
        }
        if self.status is not None:
            out["status"] = self.status
        if self.retry_after is not None:
            out["retry_after_s"] = round(self.retry_after, 3)
        return out


@dataclass
class Trail:
    """What the attempts did; goes into the audit event and the metrics."""

    attempts: list[Attempt] = field(default_factory=list)
    upstream_s: float = 0.0
    waited_s: float = 0.0
    #: Leave a success's verdict to the caller (a stream is judged when it ends) ...
    defer_verdict: bool = False
    #: ... which gives it to this ticket.
    owed: Ticket | None = None


def backoff_s(attempt: int, retry_after: float | None, rng: Callable[[], float]) -> float:
    if retry_after is not None:
        return retry_after + rng() * min(0.1 * retry_after, 0.25)
    return rng() * min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2.0**attempt)


class Resilience:
    def __init__(
        self,
        health: Health,
        *,
        max_wait_s: float,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.health = health
        self.max_wait_s = max_wait_s
        self._sleep = sleep
        self._rng = rng

    async def run(
        self,
        targets: list[Target | UpstreamFailure],
        op: Callable[[Target, float], Awaitable[T]],
        trail: Trail,
        deadline: float,
    ) -> tuple[T, Target]:
        """``op(target, seconds_left)`` on the first target that answers.

        A target given as an UpstreamFailure (no credentials, say) is recorded and skipped.
        Each target's deployment gets one verdict for the call, whatever the number of
        attempts (with ``trail.defer_verdict``, a success is left to the caller in
        ``trail.owed``: a stream is judged when it ends).
        """
        loop = asyncio.get_running_loop()
        last: UpstreamFailure | None = None
        for target in targets:
            if isinstance(target, UpstreamFailure):
                last = target
                continue
            if deadline - loop.time() <= 0:  # before admit(): a probe slot taken here is lost
                raise last or UpstreamFailure("timeout", "the request ran out of time")
            ticket = self.health.deployment(target).admit(target.model)
            if isinstance(ticket, UpstreamFailure):
                last = ticket
                trail.attempts.append(Attempt(target.model, target.provider, "circuit_open", 0))
                continue
            try:
                return await self._attempts(target, ticket, op, trail, deadline, last), target
            except UpstreamFailure as failure:
                last = failure
                if failure.kind in ("content_policy", "bad_request"):
                    raise
        assert last is not None, "no targets"
        raise last

    async def _attempts(
        self,
        target: Target,
        ticket: Ticket,
        op: Callable[[Target, float], Awaitable[T]],
        trail: Trail,
        deadline: float,
        last: UpstreamFailure | None,
    ) -> T:
        """Up to ``1 + max_retries`` attempts at one target, then its verdicts."""
        loop = asyncio.get_running_loop()
        cfg = target.config
        fault: str | None = None  # the last of the upstream's own faults
        reached = unreachable = False
        try:
            for attempt in range(cfg.max_retries + 1):
                left = deadline - loop.time()
                if left <= 0:
                    raise last or UpstreamFailure("timeout", "the request ran out of time")
                started = loop.time()
                try:
                    result = await op(target, left)
                except UpstreamFailure as failure:
                    elapsed = loop.time() - started
                    trail.upstream_s += elapsed
                    trail.attempts.append(
                        Attempt(
                            target.model,
                            target.provider,
                            failure.kind,
                            elapsed * 1000,
                            failure.upstream_status,
                            failure.retry_after,
                        )
                    )
                    last = failed = failure
                    if failure.kind in BREAKER_KINDS:
                        fault = failure.kind
                    if failure.connection:
                        unreachable = True
                    elif failure.kind not in ("timeout", "first_token_timeout"):
                        reached = True  # the host answered, if only with an error
                except BaseException:
                    elapsed_ms = (loop.time() - started) * 1000
                    trail.attempts.append(
                        Attempt(target.model, target.provider, "cancelled", elapsed_ms)
                    )
                    raise
                else:
                    elapsed = loop.time() - started
                    trail.upstream_s += elapsed
                    trail.attempts.append(
                        Attempt(target.model, target.provider, "ok", elapsed * 1000)
                    )
                    ticket.provider_verdict(reached=True, unreachable=False)
                    if trail.defer_verdict:
                        trail.owed = ticket
                    else:
                        ticket.verdict(ok=True, fault=None)
                    return result
                if not failed.retryable or attempt == cfg.max_retries:
                    break
                wait = backoff_s(attempt, failed.retry_after, self._rng)
                if wait > self.max_wait_s or loop.time() + wait >= deadline:
                    break
                trail.waited_s += wait
                await self._sleep(wait)
            assert last is not None
            raise last
        except UpstreamFailure:
            ticket.provider_verdict(reached=reached, unreachable=unreachable)
            ticket.verdict(ok=False, fault=fault)
            raise
        except BaseException:  # cancelled: no verdict, the probe slot is freed
            ticket.abandon()
            raise
