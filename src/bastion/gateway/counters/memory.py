"""Counters in this process: one lock around a few dictionaries.

The lock is a ``threading.Lock`` held for microseconds and never across an ``await``,
so one instance is safe from coroutines and threads alike. Several gateway processes
(uvicorn workers, replicas) each have their own counters: use Redis there.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bastion.gateway.counters.base import (
    EPSILON_S,
    MARKER_GRACE_S,
    WINDOW_RETENTION_S,
    WINDOW_S,
    Admission,
    BudgetLimit,
    BudgetState,
    Counters,
    LimitState,
    Period,
    RateLimit,
    Reservation,
    budget_refusal,
    budget_state,
    budget_window,
    charge,
    normalise,
    rate_limited,
    to_nano,
    too_large,
)

SWEEP_EVERY_S = 60.0


@dataclass
class _Window:
    end: float
    spent: int = 0
    reserved: int = 0
    #: id -> (nano-USD, deadline), in admission order: with one TTL per instance the
    #: deadlines ascend, so expired reservations are at the front.
    holds: OrderedDict[str, tuple[int, float]] = field(default_factory=OrderedDict)

    def purge(self, now: float) -> None:
        while self.holds:
            rid, (amount, deadline) = next(iter(self.holds.items()))
            if deadline > now:
                return
            del self.holds[rid]
            self.reserved -= amount


class MemoryCounters(Counters):
    def __init__(
        self, *, reservation_ttl_s: float = 900, clock: Callable[[], float] = time.time
    ) -> None:
        self.reservation_ttl_s = reservation_ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._tats: dict[tuple[str, str], float] = {}
        self._windows: dict[tuple[str, Period, float], _Window] = {}
        self._open: OrderedDict[str, float] = OrderedDict()  # reservation id -> forget at
        self._next_sweep = 0.0

    async def admit(self, admission: Admission) -> Reservation:
        return self.admit_now(admission)

    def admit_now(self, admission: Admission) -> Reservation:
        """``admit`` without an event loop (the work never waits)."""
        rates, budgets = normalise(admission)
        rid = uuid.uuid4().hex
        cost = to_nano(admission.cost_usd)
        with self._lock:
            now = self._clock()
            self._sweep(now)
            new_tats = self._check_rates(rates, admission, now)
            windows = self._check_budgets(budgets, cost, now)
            # Nothing above wrote a counter: from here on everything is charged.
            for limit, tat in zip(rates, new_tats, strict=True):
                self._tats[(limit.scope, limit.metric)] = tat
            deadline = now + self.reservation_ttl_s
            for _, window, _, _ in windows:
                window.holds[rid] = (cost, deadline)
                window.reserved += cost
            self._open[rid] = deadline + MARKER_GRACE_S
            states = [
                budget_state(budget, window.spent, window.reserved, start, end)
                for budget, window, start, end in windows
            ]
        return Reservation(
            id=rid,
            admission=admission,
            limits=[
                LimitState(
                    limit=limit,
                    remaining=max(0, int((WINDOW_S - (tat - now)) * limit.per_minute / WINDOW_S)),
                    reset_s=max(0.0, tat - now),
                )
                for limit, tat in zip(rates, new_tats, strict=True)
            ],
            budgets=states,
            admitted_at=datetime.fromtimestamp(now, UTC),
            rate_limits=rates,
            budget_limits=budgets,
        )

    def _check_rates(
        self, rates: Sequence[RateLimit], admission: Admission, now: float
    ) -> list[float]:
        new_tats: list[float] = []
        refusal: tuple[float, RateLimit] | None = None
        for limit in rates:
            units = charge(limit, admission)
            if units > limit.per_minute:
                raise too_large(limit, units)
            interval = WINDOW_S / limit.per_minute
            tat = max(self._tats.get((limit.scope, limit.metric), now), now) + units * interval
            over = tat - now - WINDOW_S
            if over > EPSILON_S and (refusal is None or over > refusal[0]):
                refusal = (over, limit)
            new_tats.append(tat)
        if refusal is not None:
            raise rate_limited(refusal[1], refusal[0])
        return new_tats

    def _check_budgets(
        self, budgets: Sequence[BudgetLimit], cost: int, now: float
    ) -> list[tuple[BudgetLimit, _Window, datetime, datetime]]:
        at = datetime.fromtimestamp(now, UTC)
        windows = []
        for budget in budgets:
            start, end = budget_window(budget.per, at)
            window = self._window(budget.scope, budget.per, start, end)
            window.purge(now)
            if window.spent + window.reserved + cost > to_nano(budget.usd):
                raise budget_refusal(budget, spent=window.spent, cost=cost, now=at, window_end=end)
            windows.append((budget, window, start, end))
        return windows

    def _window(self, scope: str, per: Period, start: datetime, end: datetime) -> _Window:
        key = (scope, per, start.timestamp())
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _Window(end=end.timestamp())
        return window

    def _sweep(self, now: float) -> None:
        """Forget full buckets, old windows and unsettled reservations past their grace
        (at most once a minute, so admission stays O(limits))."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_EVERY_S
        self._tats = {key: tat for key, tat in self._tats.items() if tat > now}
        self._windows = {
            key: w for key, w in self._windows.items() if w.end + WINDOW_RETENTION_S > now
        }
        while self._open:
            rid, forget_at = next(iter(self._open.items()))
            if forget_at > now:
                break
            del self._open[rid]

    async def settle(self, reservation: Reservation, *, tokens: int, cost_usd: float) -> None:
        self.settle_now(reservation, tokens=tokens, cost_usd=cost_usd)

    async def release(self, reservation: Reservation) -> None:
        self.settle_now(reservation, tokens=0, cost_usd=0.0)

    def settle_now(self, reservation: Reservation, *, tokens: int, cost_usd: float) -> None:
        actual = to_nano(cost_usd)
        with self._lock:
            now = self._clock()
            forget_at = self._open.pop(reservation.id, None)
            if forget_at is None or forget_at <= now:
                return  # settled or released already, or forgotten after its grace
            for state in reservation.budgets:
                scope, per = state.budget.scope, state.budget.per
                window = self._window(scope, per, state.window_start, state.window_end)
                hold = window.holds.pop(reservation.id, None)
                if hold is not None:
                    window.reserved -= hold[0]
                window.spent += actual
            delta = tokens - reservation.admission.tokens
            for limit in reservation.rate_limits:
                if limit.metric == "tokens" and delta:
                    key = (limit.scope, limit.metric)
                    tat = max(self._tats.get(key, now), now) + delta * WINDOW_S / limit.per_minute
                    self._tats[key] = max(tat, now)

    async def budget_states(self, budgets: Sequence[BudgetLimit]) -> list[BudgetState]:
        with self._lock:
            now = self._clock()
            at = datetime.fromtimestamp(now, UTC)
            states = []
            for budget in budgets:
                start, end = budget_window(budget.per, at)
                window = self._window(budget.scope, budget.per, start, end)
                window.purge(now)
                states.append(budget_state(budget, window.spent, window.reserved, start, end))
            return states

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        return None
