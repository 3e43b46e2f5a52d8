"""The counters' vocabulary: limits, an admission, what admission returns, the interface.

Rate limits are a GCRA (a token bucket kept as one "theoretical arrival time"): a limit
of N per minute holds N units and refills continuously over 60 s. Budgets are kept in
integer nano-USD per calendar window in UTC (day; ISO week from Monday 00:00; month),
as ``spent`` plus reservations that each carry a deadline.

Both implementations share the arithmetic below so that they refuse the same
admissions with the same messages.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from bastion.gateway.errors import BudgetExceeded, RateLimited, RequestTooLarge

Metric = Literal["requests", "tokens"]
Period = Literal["day", "week", "month"]

WINDOW_S = 60.0
"""A rate limit's bucket holds one minute of its rate."""
NANO = 1_000_000_000
#: Slack on the GCRA comparison: floats may make N admissions of 1/N minute add up to
#: a hair over a minute.
EPSILON_S = 1e-6
#: A refusal caused only by reservations in flight (not by spent money) is worth
#: retrying soon: those requests settle, usually below their worst case.
IN_FLIGHT_RETRY_S = 1.0
#: A reservation can still be settled this long after its deadline (the cost is then
#: added to spent); after that, settling it has no effect.
MARKER_GRACE_S = 3600.0
#: Ended budget windows are kept this long (late settlements, the last window's figures).
WINDOW_RETENTION_S = 86400


@dataclass(frozen=True)
class RateLimit:
    """A per-minute limit on one scope (``key:<id>``, ``user:<name>``, ``team:<name>``)."""

    scope: str
    metric: Metric
    per_minute: int

    def __post_init__(self) -> None:
        if self.per_minute < 1:
            raise ValueError(f"per_minute must be at least 1, got {self.per_minute}")


@dataclass(frozen=True)
class BudgetLimit:
    scope: str
    usd: float
    per: Period

    def __post_init__(self) -> None:
        if not self.usd >= 0:
            raise ValueError(f"a budget must be zero or more USD, got {self.usd}")
        if self.per not in ("day", "week", "month"):
            raise ValueError(f"a budget's window is day, week or month, got {self.per!r}")


@dataclass(frozen=True)
class Admission:
    rate_limits: Sequence[RateLimit]
    budgets: Sequence[BudgetLimit]
    tokens: int
    """Estimate charged against token limits (prompt + max_tokens)."""
    cost_usd: float
    """Worst-case cost reserved against every budget."""

    def __post_init__(self) -> None:
        if self.tokens < 0 or not self.cost_usd >= 0:
            raise ValueError("an admission's tokens and cost cannot be negative")


@dataclass(frozen=True)
class LimitState:
    """One rate limit after an admission, for the ``x-ratelimit-*`` headers."""

    limit: RateLimit
    remaining: int
    reset_s: float
    """Seconds until the bucket is full again."""


@dataclass(frozen=True)
class BudgetState:
    budget: BudgetLimit
    spent_usd: float
    reserved_usd: float
    remaining_usd: float
    window_end: datetime
    window_start: datetime


@dataclass
class Reservation:
    """What ``admit`` charged; hand it back to ``settle`` or ``release`` exactly once
    (a second call has no effect)."""

    id: str
    admission: Admission
    limits: list[LimitState]
    budgets: list[BudgetState]
    admitted_at: datetime
    #: The limits and budgets actually charged (duplicates merged, see ``normalise``).
    rate_limits: tuple[RateLimit, ...] = field(repr=False, default=())
    budget_limits: tuple[BudgetLimit, ...] = field(repr=False, default=())


class Counters(ABC):
    """Rate limits and budgets, checked and charged atomically per admission.

    ``admit`` charges every limit and reserves ``cost_usd`` in every budget window, or
    charges nothing and raises ``RateLimited``, ``BudgetExceeded`` or
    ``RequestTooLarge`` (a token estimate larger than a minute's capacity can never
    pass). ``settle`` replaces the reservation by the actual cost; ``release`` drops
    it. Reservations not settled within ``reservation_ttl_s`` expire (a crashed
    replica does not hold a budget forever); a late settlement still counts as spent.

    Spending exceeds a budget only when a settlement's actual cost is larger than its
    reservation (impossible while reservations are the worst case), or when a call
    settles after its reservation expired and another admission used the room (keep
    ``reservation_ttl_s`` well above the longest call's timeout). A settlement later
    than ``reservation_ttl_s`` + 1 h is dropped.

    Several limits on one counter in one admission (same scope and metric, or same
    scope and window) are merged to the strictest.

    Any failure of the store raises ``CountersUnavailable``; the caller decides, by
    policy, whether to refuse or to allow.
    """

    @abstractmethod
    async def admit(self, admission: Admission) -> Reservation: ...

    @abstractmethod
    async def settle(self, reservation: Reservation, *, tokens: int, cost_usd: float) -> None:
        """Charge the actual cost in the windows reserved and correct token limits by
        ``tokens - admission.tokens``."""

    @abstractmethod
    async def release(self, reservation: Reservation) -> None:
        """The call failed: free the reservation and refund the token estimate (the
        request itself still counts against requests limits)."""

    @abstractmethod
    async def budget_states(self, budgets: Sequence[BudgetLimit]) -> list[BudgetState]: ...

    @abstractmethod
    async def ping(self) -> None: ...

    @abstractmethod
    async def aclose(self) -> None: ...


# -- shared arithmetic --------------------------------------------------------------


def to_nano(usd: float) -> int:
    return round(usd * NANO)


def from_nano(nano: int) -> float:
    return nano / NANO


def budget_window(per: Period, now: datetime) -> tuple[datetime, datetime]:
    """The calendar window (UTC) holding ``now``: ``[start, end)``."""
    now = now.astimezone(UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if per == "day":
        return day, day + timedelta(days=1)
    if per == "week":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    start = day.replace(day=1)
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return start, end


def normalise(admission: Admission) -> tuple[tuple[RateLimit, ...], tuple[BudgetLimit, ...]]:
    """Merge limits on the same counter, keeping the strictest.

    A rate limit's state is per (scope, metric) and a budget's per (scope, window), so
    two limits on one counter in the same admission would be charged twice.
    """
    rates: dict[tuple[str, str], RateLimit] = {}
    for limit in admission.rate_limits:
        known = rates.get((limit.scope, limit.metric))
        if known is None or limit.per_minute < known.per_minute:
            rates[(limit.scope, limit.metric)] = limit
    budgets: dict[tuple[str, str], BudgetLimit] = {}
    for budget in admission.budgets:
        seen = budgets.get((budget.scope, budget.per))
        if seen is None or budget.usd < seen.usd:
            budgets[(budget.scope, budget.per)] = budget
    return tuple(rates.values()), tuple(budgets.values())


def charge(limit: RateLimit, admission: Admission) -> int:
    return 1 if limit.metric == "requests" else admission.tokens


def scope_kind(scope: str) -> str:
    """``key``, ``user``, ``team``: a metric label (the name itself would not be)."""
    kind, sep, _ = scope.partition(":")
    return kind if sep else "other"


def describe_scope(scope: str) -> str:
    kind, sep, name = scope.partition(":")
    return f"{kind} '{name}'" if sep else f"'{scope}'"


def too_large(limit: RateLimit, units: int) -> RequestTooLarge:
    return RequestTooLarge(
        f"this request may use {units} {limit.metric}, more than the limit of "
        f"{limit.per_minute} {limit.metric} per minute for {describe_scope(limit.scope)}; "
        "lower max_tokens or shorten the prompt",
        limit=limit.per_minute,
        metric=limit.metric,
        scope_kind=scope_kind(limit.scope),
    )


def rate_limited(limit: RateLimit, retry_after: float) -> RateLimited:
    return RateLimited(
        f"rate limit of {limit.per_minute} {limit.metric} per minute for "
        f"{describe_scope(limit.scope)} reached; retry in {math.ceil(retry_after)} s",
        retry_after=retry_after,
        metric=limit.metric,
        scope_kind=scope_kind(limit.scope),
    )


def budget_exceeded(
    budget: BudgetLimit, *, in_flight: bool, window_end: datetime, retry_after: float
) -> BudgetExceeded:
    what = f"budget of ${budget.usd:,.2f} per {budget.per} for {describe_scope(budget.scope)}"
    if in_flight:
        message = (
            f"{what} is held by requests in flight; retry shortly, or lower max_tokens "
            "to reserve less"
        )
    else:
        message = (
            f"{what} is spent until {window_end:%Y-%m-%d %H:%M} UTC; ask an admin to raise "
            "it, or lower max_tokens to reserve less"
        )
    return BudgetExceeded(
        message,
        retry_after=retry_after,
        per=budget.per,
        scope_kind=scope_kind(budget.scope),
        in_flight=in_flight,
    )


def budget_refusal(
    budget: BudgetLimit,
    *,
    spent: int,
    cost: int,
    now: datetime,
    window_end: datetime,
) -> BudgetExceeded:
    """Refused because spent + reserved + cost > limit: wait for the window's end if
    spent money alone refuses the request, else only for requests in flight."""
    in_flight = spent + cost <= to_nano(budget.usd)
    to_end = (window_end - now).total_seconds()
    retry = min(IN_FLIGHT_RETRY_S, to_end) if in_flight else to_end
    return budget_exceeded(budget, in_flight=in_flight, window_end=window_end, retry_after=retry)


def budget_state(
    budget: BudgetLimit, spent: int, reserved: int, start: datetime, end: datetime
) -> BudgetState:
    return BudgetState(
        budget=budget,
        spent_usd=from_nano(spent),
        reserved_usd=from_nano(reserved),
        remaining_usd=from_nano(max(0, to_nano(budget.usd) - spent - reserved)),
        window_end=end,
        window_start=start,
    )
