"""Retries, fallbacks and circuit breakers around one call.

For each model of the chain (the one asked for, then its ``fallbacks`` the caller may
use): skip it while its upstream's breaker is open; else try it up to
``1 + max_retries`` times. A retryable failure (429, 5xx, connection, timeout) waits
with exponential backoff and full jitter, or exactly what ``Retry-After`` asks, and
tries again; a wait that would pass the request's deadline (or the longest wait the
settings allow) moves on to the next model instead. ``context_length_exceeded`` is
never retried on the same model: the next model (configure a larger one as a fallback)
gets it. A content-policy refusal or a bad request goes back to the caller at once,
with the provider's reason.

Written here rather than with tenacity: the loop interleaves retries with fallbacks
and breakers under one deadline, which tenacity's single-callable loop cannot express.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from bastion.gateway.breaker import Breakers
from bastion.gateway.errors import UpstreamFailure
from bastion.gateway.providers.base import Target

T = TypeVar("T")

BACKOFF_BASE_S = 0.25
BACKOFF_MAX_S = 8.0
#: Failures that count against an upstream's breaker (its health, not the caller's input).
#: A 429 is not among them: it is one model's quota (OpenAI limits per model), and
#: counting it would shut out the provider's other models, which still have theirs.
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


def backoff_s(attempt: int, retry_after: float | None, rng: Callable[[], float]) -> float:
    if retry_after is not None:
        return retry_after + rng() * min(0.1 * retry_after, 0.25)
    return rng() * min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2.0**attempt)


class Resilience:
    def __init__(
        self,
        breakers: Breakers,
        *,
        max_wait_s: float,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.breakers = breakers
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
        """
        loop = asyncio.get_running_loop()
        last: UpstreamFailure | None = None
        for target in targets:
            if isinstance(target, UpstreamFailure):
                last = target
                continue
            cfg = target.config
            breaker = self.breakers.get(target.provider, cfg.breaker_failures, cfg.breaker_reset_s)
            for attempt in range(cfg.max_retries + 1):
                left = deadline - loop.time()
                if left <= 0:  # before allow(): a probe slot taken here would never be freed
                    raise last or UpstreamFailure("timeout", "the request ran out of time")
                if not breaker.allow():
                    last = UpstreamFailure(
                        "circuit_open",
                        f"upstream {target.provider!r} is failing; its circuit breaker is open",
                        retry_after=breaker.retry_after(),
                    )
                    trail.attempts.append(Attempt(target.model, target.provider, "circuit_open", 0))
                    break
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
                    if failure.kind in BREAKER_KINDS:
                        breaker.record_failure()
                    else:
                        breaker.record_success()
                    last = failure
                    if failure.kind in ("content_policy", "bad_request"):
                        raise
                    if not failure.retryable or attempt == cfg.max_retries:
                        break
                    wait = backoff_s(attempt, failure.retry_after, self._rng)
                    if wait > self.max_wait_s or loop.time() + wait >= deadline:
                        break
                    trail.waited_s += wait
                    await self._sleep(wait)
                except BaseException:
                    trail.attempts.append(
                        Attempt(
                            target.model,
                            target.provider,
                            "cancelled",
                            (loop.time() - started) * 1000,
                        )
                    )
                    breaker.release()
                    raise
                else:
                    elapsed = loop.time() - started
                    trail.upstream_s += elapsed
                    trail.attempts.append(
                        Attempt(target.model, target.provider, "ok", elapsed * 1000)
                    )
                    breaker.record_success()
                    return result, target
        assert last is not None, "no targets"
        raise last
