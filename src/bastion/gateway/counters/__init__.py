"""Rate limits and budgets for the gateway: in this process, or in Redis for replicas.

    counters = create_counters(settings.redis_url)
    reservation = await counters.admit(Admission(rate_limits, budgets, tokens, cost_usd))
    ...                                  # RateLimited / BudgetExceeded / RequestTooLarge
    await counters.settle(reservation, tokens=used, cost_usd=actual)   # or release()

Errors (from ``bastion.gateway.errors``): ``RateLimited`` and ``BudgetExceeded`` (429,
with ``retry_after``), ``RequestTooLarge`` (400: a token estimate larger than a minute
of a token limit, which could never pass), ``CountersUnavailable`` (503: the store
cannot be reached; the caller refuses or allows by policy).
"""

from __future__ import annotations

from bastion.gateway.counters.base import (
    Admission,
    BudgetLimit,
    BudgetState,
    Counters,
    LimitState,
    RateLimit,
    Reservation,
    budget_window,
)
from bastion.gateway.counters.memory import MemoryCounters

__all__ = [
    "Admission",
    "BudgetLimit",
    "BudgetState",
    "Counters",
    "LimitState",
    "MemoryCounters",
    "RateLimit",
    "Reservation",
    "budget_window",
    "create_counters",
]


def create_counters(
    redis_url: str | None,
    *,
    reservation_ttl_s: float = 900,
    key_prefix: str = "bastion:counters:",
    socket_timeout_s: float = 2.0,
) -> Counters:
    """Redis counters when a URL is given (several replicas), else in-process ones.

    Opens nothing: the first call connects."""
    if redis_url is None:
        return MemoryCounters(reservation_ttl_s=reservation_ttl_s)
    from bastion.gateway.counters.redis import RedisCounters

    return RedisCounters(
        redis_url,
        reservation_ttl_s=reservation_ttl_s,
        key_prefix=key_prefix,
        socket_timeout_s=socket_timeout_s,
    )
