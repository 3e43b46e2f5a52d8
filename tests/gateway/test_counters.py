"""Rate limits and budgets, in process and in Redis: the same tests against both.

The Redis runs use ``BASTION_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/15``),
a key prefix of their own per test, deleted afterwards. An unreachable Redis skips
them on a developer's machine and fails them under ``CI=true``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.gateway.counters import (
    Admission,
    BudgetLimit,
    Counters,
    MemoryCounters,
    RateLimit,
    Reservation,
    budget_window,
    create_counters,
)
from bastion.gateway.counters.base import to_nano
from bastion.gateway.counters.redis import RedisCounters
from bastion.gateway.errors import (
    BudgetExceeded,
    CountersUnavailable,
    RateLimited,
    RequestTooLarge,
)

pytestmark = pytest.mark.anyio

REDIS_URL = os.environ.get("BASTION_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


class Clock:
    """A settable clock (epoch seconds) for calendar windows and rate limits."""

    def __init__(self, at: datetime) -> None:
        self.t = at.timestamp()

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds

    def set(self, at: datetime) -> None:
        self.t = at.timestamp()


class Store:
    """Counters of one kind over one store; ``new()`` is another replica of it."""

    def __init__(self, kind: str, prefix: str = "") -> None:
        self.kind = kind
        self.prefix = prefix
        self.opened: list[Counters] = []

    def new(self, *, reservation_ttl_s: float = 900, clock: Clock | None = None) -> Counters:
        counters: Counters
        if self.kind == "memory":
            counters = MemoryCounters(reservation_ttl_s=reservation_ttl_s, clock=clock or time.time)
        else:
            counters = RedisCounters(
                REDIS_URL, reservation_ttl_s=reservation_ttl_s, key_prefix=self.prefix, clock=clock
            )
        self.opened.append(counters)
        return counters

    def replicas(self, n: int) -> list[Counters]:
        """Memory counters live in one process: its "replicas" share one object."""
        if self.kind == "memory":
            return [self.new()] * n
        return [self.new() for _ in range(n)]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    # Redis: skipped (or failed in CI) where unreachable; the prefix's keys are deleted after.
    prefix = request.getfixturevalue("redis_prefix") if request.param == "redis" else ""
    store = Store(request.param, prefix)
    yield store
    for counters in store.opened:
        await counters.aclose()


@pytest.fixture
async def counters(store: Store) -> Counters:
    return store.new()


def admission(
    rate_limits: list[RateLimit] | None = None,
    budgets: list[BudgetLimit] | None = None,
    *,
    tokens: int = 0,
    cost_usd: float = 0.0,
) -> Admission:
    return Admission(rate_limits or [], budgets or [], tokens, cost_usd)


async def spent_and_reserved(counters: Counters, budget: BudgetLimit) -> tuple[int, int]:
    [state] = await counters.budget_states([budget])
    return to_nano(state.spent_usd), to_nano(state.reserved_usd)


# -- atomicity and concurrency ----------------------------------------------------------


async def test_one_refusing_budget_charges_nothing_anywhere(counters: Counters) -> None:
    roomy = BudgetLimit("team:risk", 100.0, "month")
    tight = BudgetLimit("user:ann", 0.5, "day")
    requests = RateLimit("user:ann", "requests", 2)
    tokens = RateLimit("team:risk", "tokens", 1000)

    with pytest.raises(BudgetExceeded) as refused:
        await counters.admit(
            admission([requests, tokens], [roomy, tight], tokens=600, cost_usd=1.0)
        )
    assert "budget of $0.50 per day for user 'ann'" in refused.value.message

    assert await spent_and_reserved(counters, roomy) == (0, 0)
    # Nothing was charged to the rate limits either: two requests of 500 tokens still fit.
    for _ in range(2):
        await counters.admit(admission([requests, tokens], [roomy], tokens=500, cost_usd=1.0))
    assert await spent_and_reserved(counters, roomy) == (0, to_nano(2.0))


async def test_a_refusing_rate_limit_reserves_no_budget(counters: Counters) -> None:
    budget = BudgetLimit("team:risk", 10.0, "day")
    tokens = RateLimit("team:risk", "tokens", 1000)
    await counters.admit(admission([tokens], [budget], tokens=800, cost_usd=1.0))
    with pytest.raises(RateLimited):
        await counters.admit(admission([tokens], [budget], tokens=800, cost_usd=1.0))
    assert await spent_and_reserved(counters, budget) == (0, to_nano(1.0))


async def test_200_concurrent_admissions_fit_exactly_50_worst_cases(counters: Counters) -> None:
    budget = BudgetLimit("team:risk", 1.0, "day")  # 50 x $0.02
    results = await asyncio.gather(
        *(counters.admit(admission([], [budget], cost_usd=0.02)) for _ in range(200)),
        return_exceptions=True,
    )
    admitted = [r for r in results if isinstance(r, Reservation)]
    refused = [r for r in results if isinstance(r, BudgetExceeded)]
    assert (len(admitted), len(refused)) == (50, 150)
    # Refused by requests in flight, not by money spent: worth retrying soon.
    assert all(0 < r.retry_after <= 1 and "in flight" in r.message for r in refused)
    assert await spent_and_reserved(counters, budget) == (0, to_nano(1.0))

    await asyncio.gather(*(counters.settle(r, tokens=10, cost_usd=0.013) for r in admitted))
    assert await spent_and_reserved(counters, budget) == (50 * to_nano(0.013), 0)
    # What settlement freed admits more: 0.35 left fits 17 more worst cases.
    more = await asyncio.gather(
        *(counters.admit(admission([], [budget], cost_usd=0.02)) for _ in range(40)),
        return_exceptions=True,
    )
    assert sum(isinstance(r, Reservation) for r in more) == 17


async def test_replicas_in_threads_never_overspend(store: Store) -> None:
    """Four threads, each with its event loop (and, on Redis, its own client: four
    replicas), 50 concurrent admissions each against a budget that fits 50."""
    budget = BudgetLimit("team:risk", 1.0, "week")
    replicas = store.replicas(4)
    start, all_admitted = threading.Barrier(4), threading.Barrier(4)

    def replica(counters: Counters) -> list[Reservation]:
        async def run() -> list[Reservation]:
            start.wait()
            results = await asyncio.gather(
                *(counters.admit(admission([], [budget], cost_usd=0.02)) for _ in range(50)),
                return_exceptions=True,
            )
            admitted = [r for r in results if isinstance(r, Reservation)]
            assert all(isinstance(r, Reservation | BudgetExceeded) for r in results)
            all_admitted.wait()  # settling frees money: only once every replica has tried
            for r in admitted:
                await counters.settle(r, tokens=0, cost_usd=0.01)
            if store.kind == "redis":
                await counters.aclose()  # its connections belong to this thread's loop
            return admitted

        return asyncio.run(run())

    with ThreadPoolExecutor(4) as pool:
        admitted = [r for rs in pool.map(replica, replicas) for r in rs]
    assert len(admitted) == 50
    check = replicas[0] if store.kind == "memory" else store.new()  # threads closed theirs
    assert await spent_and_reserved(check, budget) == (to_nano(0.5), 0)


# -- settle and release -------------------------------------------------------------


async def test_release_refunds_tokens_and_budget_but_the_request_counts(
    counters: Counters,
) -> None:
    budget = BudgetLimit("key:k1", 1.0, "day")
    limits = [RateLimit("key:k1", "requests", 2), RateLimit("key:k1", "tokens", 1000)]
    first = await counters.admit(admission(limits, [budget], tokens=600, cost_usd=0.8))
    with pytest.raises(RateLimited, match="1000 tokens per minute for key 'k1'"):
        await counters.admit(admission(limits, [budget], tokens=600, cost_usd=0.1))

    await counters.release(first)
    assert await spent_and_reserved(counters, budget) == (0, 0)
    await counters.admit(admission(limits, [budget], tokens=600, cost_usd=0.8))
    with pytest.raises(RateLimited, match="2 requests per minute"):
        await counters.admit(admission(limits, [budget], tokens=0, cost_usd=0.0))


async def test_settle_corrects_token_limits_by_the_actual_count(store: Store) -> None:
    counters = store.new(clock=Clock(datetime(2024, 5, 1, 12, tzinfo=UTC)))
    tokens = RateLimit("team:risk", "tokens", 1000)
    over = await counters.admit(admission([tokens], tokens=800))
    await counters.settle(over, tokens=200, cost_usd=0.0)  # 600 refunded
    second = await counters.admit(admission([tokens], tokens=800))
    assert second.limits[0].remaining == 0
    await counters.settle(second, tokens=1000, cost_usd=0.0)  # 200 over the estimate
    with pytest.raises(RateLimited) as refused:
        await counters.admit(admission([tokens], tokens=1))
    # 1200 used of 1000: 200 + 1 tokens over, at 1000 a minute.
    assert refused.value.retry_after == pytest.approx(201 * 0.06, abs=1e-3)


async def test_settling_or_releasing_twice_has_no_further_effect(counters: Counters) -> None:
    budget = BudgetLimit("team:risk", 1.0, "month")
    tokens = RateLimit("team:risk", "tokens", 1000)
    first = await counters.admit(admission([tokens], [budget], tokens=500, cost_usd=0.5))
    await counters.settle(first, tokens=500, cost_usd=0.25)
    await counters.settle(first, tokens=0, cost_usd=0.25)
    await counters.release(first)
    assert await spent_and_reserved(counters, budget) == (to_nano(0.25), 0)
    # Neither the second settle nor the release refunded the 500 tokens.
    second = await counters.admit(admission([tokens], [budget], tokens=500, cost_usd=0.5))
    assert second.limits[0].remaining == 0

    await counters.release(second)
    await counters.release(second)
    await counters.settle(second, tokens=500, cost_usd=0.5)
    assert await spent_and_reserved(counters, budget) == (to_nano(0.25), 0)


async def test_expired_reservations_free_the_budget_and_late_costs_still_count(
    store: Store,
) -> None:
    """A crashed replica's reservations stop holding the budget after their TTL."""
    counters = store.new(reservation_ttl_s=0.05)
    budget = BudgetLimit("team:risk", 1.0, "day")
    stranded = await counters.admit(admission([], [budget], cost_usd=0.6))
    with pytest.raises(BudgetExceeded):
        await counters.admit(admission([], [budget], cost_usd=0.6))
    await asyncio.sleep(0.1)
    assert await spent_and_reserved(counters, budget) == (0, 0)
    await counters.admit(admission([], [budget], cost_usd=0.6))
    # Settling the expired reservation still records what was spent.
    await counters.settle(stranded, tokens=0, cost_usd=0.5)
    assert await spent_and_reserved(counters, budget) == (to_nano(0.5), to_nano(0.6))


# -- calendar windows -----------------------------------------------------------------


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("per", "now", "start", "end"),
    [
        ("day", utc(2024, 2, 29, 23, 59, 59), utc(2024, 2, 29), utc(2024, 3, 1)),
        ("week", utc(2024, 2, 29, 12), utc(2024, 2, 26), utc(2024, 3, 4)),
        ("week", utc(2024, 3, 4), utc(2024, 3, 4), utc(2024, 3, 11)),
        ("week", utc(2025, 1, 1), utc(2024, 12, 30), utc(2025, 1, 6)),  # ISO week 1
        ("week", utc(2024, 3, 3, 23, 59, 59), utc(2024, 2, 26), utc(2024, 3, 4)),  # Sunday
        ("month", utc(2024, 2, 29, 23, 59, 59), utc(2024, 2, 1), utc(2024, 3, 1)),
        ("month", utc(2024, 12, 31, 23), utc(2024, 12, 1), utc(2025, 1, 1)),
        ("month", utc(2025, 1, 1), utc(2025, 1, 1), utc(2025, 2, 1)),
    ],
)
def test_budget_windows_are_utc_calendar_periods(
    per: Any, now: datetime, start: datetime, end: datetime
) -> None:
    assert budget_window(per, now) == (start, end)
    # An aware time in another zone falls in the UTC window.
    assert budget_window(per, now.astimezone(datetime.now().astimezone().tzinfo)) == (start, end)


async def test_budgets_renew_at_their_window_boundaries(store: Store) -> None:
    clock = Clock(utc(2024, 2, 29, 23, 59, 59) + timedelta(seconds=0.5))  # a Thursday
    counters = store.new(clock=clock)
    day = BudgetLimit("user:ann", 1.0, "day")
    week = BudgetLimit("user:ann", 2.0, "week")
    month = BudgetLimit("user:ann", 2.0, "month")
    budgets = [day, week, month]

    spent = await counters.admit(admission([], budgets, cost_usd=1.0))
    await counters.settle(spent, tokens=0, cost_usd=1.0)
    with pytest.raises(BudgetExceeded) as refused:
        await counters.admit(admission([], budgets, cost_usd=0.5))
    assert refused.value.retry_after == pytest.approx(0.5)  # until midnight UTC
    assert "spent until 2024-03-01 00:00 UTC" in refused.value.message

    clock.set(utc(2024, 3, 1))  # a new day and month; the same week
    states = await counters.budget_states(budgets)
    assert [(s.window_start, s.window_end, s.spent_usd) for s in states] == [
        (utc(2024, 3, 1), utc(2024, 3, 2), 0.0),
        (utc(2024, 2, 26), utc(2024, 3, 4), 1.0),
        (utc(2024, 3, 1), utc(2024, 4, 1), 0.0),
    ]
    spent = await counters.admit(admission([], budgets, cost_usd=1.0))
    await counters.settle(spent, tokens=0, cost_usd=1.0)
    clock.set(utc(2024, 3, 2))
    with pytest.raises(BudgetExceeded, match="per week for user 'ann'") as refused:
        await counters.admit(admission([], budgets, cost_usd=0.5))
    assert refused.value.retry_after == pytest.approx(2 * 86400)  # until Monday

    clock.set(utc(2024, 3, 4))
    await counters.admit(admission([], budgets, cost_usd=1.0))


async def test_a_settlement_lands_in_the_window_it_was_reserved_in(store: Store) -> None:
    clock = Clock(utc(2024, 5, 31, 23, 59, 58))
    counters = store.new(clock=clock)
    day = BudgetLimit("team:risk", 1.0, "day")
    reservation = await counters.admit(admission([], [day], cost_usd=0.5))
    clock.set(utc(2024, 6, 1, 0, 0, 3))  # a call across midnight
    await counters.settle(reservation, tokens=0, cost_usd=0.25)
    assert await spent_and_reserved(counters, day) == (0, 0)
    clock.set(utc(2024, 5, 31, 23, 59, 59))
    assert await spent_and_reserved(counters, day) == (to_nano(0.25), 0)


# -- rate limits ----------------------------------------------------------------------


async def test_request_limit_refuses_with_retry_after_until_capacity(store: Store) -> None:
    clock = Clock(utc(2024, 5, 1, 12))
    counters = store.new(clock=clock)
    limit = RateLimit("team:risk", "requests", 60)
    first = await counters.admit(admission([limit]))
    assert (first.limits[0].remaining, first.limits[0].reset_s) == (59, pytest.approx(1.0))
    for _ in range(59):
        last = await counters.admit(admission([limit]))
    assert last.limits[0].remaining == 0
    with pytest.raises(RateLimited) as refused:
        await counters.admit(admission([limit]))
    assert refused.value.message.startswith(
        "rate limit of 60 requests per minute for team 'risk' reached"
    )
    assert refused.value.retry_after == pytest.approx(1.0, abs=1e-3)
    clock.advance(0.99)
    with pytest.raises(RateLimited):
        await counters.admit(admission([limit]))
    clock.advance(0.01)
    await counters.admit(admission([limit]))


async def test_request_limit_with_the_real_clock(counters: Counters) -> None:
    limit = RateLimit("user:bob", "requests", 3)
    for _ in range(3):
        await counters.admit(admission([limit]))
    with pytest.raises(RateLimited) as refused:
        await counters.admit(admission([limit]))
    assert 19 < refused.value.retry_after <= 20  # a third of a minute per request


async def test_token_limit_refuses_what_does_not_fit(store: Store) -> None:
    clock = Clock(utc(2024, 5, 1, 12))
    counters = store.new(clock=clock)
    tokens = RateLimit("user:bob", "tokens", 1000)
    await counters.admit(admission([tokens], tokens=700))
    with pytest.raises(RateLimited, match="1000 tokens per minute for user 'bob'") as refused:
        await counters.admit(admission([tokens], tokens=400))
    assert refused.value.retry_after == pytest.approx(6.0, abs=1e-3)  # 100 tokens at 1000/min
    clock.advance(6.0)
    await counters.admit(admission([tokens], tokens=400))


async def test_an_estimate_larger_than_a_minute_can_never_pass(counters: Counters) -> None:
    requests = RateLimit("key:k1", "requests", 1)
    tokens = RateLimit("team:risk", "tokens", 1000)
    with pytest.raises(RequestTooLarge, match="lower max_tokens") as refused:
        await counters.admit(admission([requests, tokens], tokens=1001))
    assert "1001 tokens" in refused.value.message
    assert "1000 tokens per minute for team 'risk'" in refused.value.message
    await counters.admit(admission([requests, tokens], tokens=1000))  # nothing was charged


async def test_limits_on_the_same_counter_are_merged_to_the_strictest(
    counters: Counters,
) -> None:
    loose = RateLimit("team:risk", "requests", 10)
    strict = RateLimit("team:risk", "requests", 1)
    budget = BudgetLimit("team:risk", 1.0, "day")
    reservation = await counters.admit(
        admission([loose, strict], [budget, BudgetLimit("team:risk", 5.0, "day")], cost_usd=0.5)
    )
    assert [s.limit for s in reservation.limits] == [strict]
    assert await spent_and_reserved(counters, budget) == (0, to_nano(0.5))
    with pytest.raises(RateLimited):
        await counters.admit(admission([loose]))


# -- failures -------------------------------------------------------------------------


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


#: Far longer than any timeout under test: only a call that would never end reaches it.
HANG_GUARD_S = 30.0


@pytest.fixture
def silent_port() -> Iterator[int]:
    """Accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


@pytest.mark.parametrize("port_fixture", ["closed_port", "silent_port"])
async def test_an_unreachable_redis_fails_as_counters_unavailable(
    request: pytest.FixtureRequest, port_fixture: str
) -> None:
    port = request.getfixturevalue(port_fixture)
    counters = create_counters(f"redis://127.0.0.1:{port}/0", socket_timeout_s=0.2)
    budget = BudgetLimit("team:risk", 1.0, "day")
    try:
        for call in (
            lambda: counters.admit(admission([], [budget], cost_usd=0.1)),
            lambda: counters.budget_states([budget]),
            counters.ping,
        ):
            # A silent server answers nothing: without the socket timeout the call would
            # wait forever, and the guard would raise TimeoutError instead.
            with pytest.raises(CountersUnavailable):
                await asyncio.wait_for(call(), HANG_GUARD_S)
        fake = await MemoryCounters().admit(admission([], [budget], cost_usd=0.1))
        with pytest.raises(CountersUnavailable):  # after a few retries
            await asyncio.wait_for(counters.settle(fake, tokens=0, cost_usd=0.1), HANG_GUARD_S)
    finally:
        await counters.aclose()


def test_without_a_url_counters_are_in_process() -> None:
    assert isinstance(create_counters(None), MemoryCounters)


# -- property: worst-case reservations never overspend ----------------------------------

CENT = 10_000_000  # nano-USD

operations = st.lists(
    st.one_of(
        st.tuples(st.just("admit"), st.integers(0, 40)),  # worst case, in cents
        st.tuples(st.just("settle"), st.integers(0, 60), st.floats(0, 1)),
        st.tuples(st.just("release"), st.integers(0, 60)),
        st.tuples(st.just("advance"), st.floats(0, 30_000)),  # seconds: crosses days
    ),
    max_size=60,
)


def run_now(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never waits (the memory counters') without a loop."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise AssertionError("the coroutine waited")


@settings(max_examples=150, deadline=None)
@given(operations)
def test_worst_case_reservations_never_overspend(ops: list[tuple[Any, ...]]) -> None:
    """Any sequence of admissions, settlements at or below the reservation, releases and
    time passing: spent + reserved stays within the budget in every window, and the
    counters admit exactly what a simple model says fits."""
    clock = Clock(utc(2024, 2, 28, 20))
    counters = MemoryCounters(reservation_ttl_s=10**7, clock=clock)  # no expiry here
    budget = BudgetLimit("team:risk", 1.0, "day")
    limit = to_nano(budget.usd)
    spent: dict[datetime, int] = {}  # the model: window -> spent
    open_: dict[str, tuple[datetime, int]] = {}  # reservation id -> (window, worst case)
    reservations: list[Reservation] = []

    def window() -> datetime:
        return budget_window("day", datetime.fromtimestamp(clock(), UTC))[0]

    def held(w: datetime) -> int:
        return sum(cost for (rw, cost) in open_.values() if rw == w)

    for op in ops:
        if op[0] == "admit":
            cost = op[1] * CENT
            fits = spent.get(window(), 0) + held(window()) + cost <= limit
            try:
                r = counters.admit_now(admission([], [budget], cost_usd=op[1] / 100))
            except BudgetExceeded:
                assert not fits
            else:
                assert fits
                reservations.append(r)
                open_[r.id] = (window(), cost)
        elif op[0] in ("settle", "release") and reservations:
            r = reservations[op[1] % len(reservations)]
            actual = 0 if op[0] == "release" else int(to_nano(r.admission.cost_usd) * op[2])
            counters.settle_now(r, tokens=0, cost_usd=actual / 1e9)
            if r.id in open_:
                w, _ = open_.pop(r.id)
                spent[w] = spent.get(w, 0) + actual
        elif op[0] == "advance":
            clock.advance(op[1])
        [state] = run_now(counters.budget_states([budget]))
        assert to_nano(state.spent_usd) + to_nano(state.reserved_usd) <= limit
        assert to_nano(state.spent_usd) == spent.get(window(), 0)
        assert to_nano(state.reserved_usd) == held(window())
