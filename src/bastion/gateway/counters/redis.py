"""Counters in Redis, shared by every gateway replica.

Each operation is one Lua script (EVALSHA, reloaded on NOSCRIPT) that reads the time
from the Redis server, so replicas' clocks never matter and no two admissions
interleave. Keys, under ``key_prefix`` (default ``bastion:counters:``)::

    rl:<metric>:<scope>                  GCRA theoretical arrival time (us, server
                                         clock); expires when the bucket is full
    bud:<per>:<start>:<scope>:tot        HASH spent, reserved (nano-USD)
    bud:<per>:<start>:<scope>:res        HASH reservation id -> nano-USD
    bud:<per>:<start>:<scope>:dl         ZSET reservation id -> deadline (us)
    rsv:<id>                             the reservation is open (settle deletes it;
                                         lives reservation_ttl + 1 h)

``<start>`` is the window's start in epoch seconds; window keys expire a day after the
window ends. The scripts build the keys they touch from the prefix and the scopes they
are given, so they need a standalone Redis (or Sentinel), not Redis Cluster.

Every Redis error (connection refused, timeout, error reply) becomes
``CountersUnavailable``; settle and release retry a few times first (they are
idempotent: a retry after a lost reply finds the reservation already settled).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any

from redis.asyncio import BlockingConnectionPool, Connection, Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.maint_notifications import MaintNotificationsConfig
from redis.retry import Retry
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from bastion.gateway.counters.base import (
    MARKER_GRACE_S,
    WINDOW_RETENTION_S,
    WINDOW_S,
    Admission,
    BudgetLimit,
    BudgetState,
    Counters,
    LimitState,
    Reservation,
    budget_refusal,
    budget_state,
    charge,
    normalise,
    rate_limited,
    to_nano,
    too_large,
)
from bastion.gateway.errors import CountersUnavailable

SETTLE_ATTEMPTS = 3
_ERRORS = (RedisError, OSError, TimeoutError)


@functools.cache
def _script(name: str) -> str:
    lua = files("bastion.gateway.counters") / "lua"
    return (lua / "common.lua").read_text() + "\n" + (lua / f"{name}.lua").read_text()


def _time(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class RedisCounters(Counters):
    def __init__(
        self,
        url: str,
        *,
        reservation_ttl_s: float = 900,
        key_prefix: str = "bastion:counters:",
        socket_timeout_s: float = 2.0,
        max_connections: int = 64,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """``clock`` replaces the server's time (tests of calendar windows only)."""
        self.reservation_ttl_s = reservation_ttl_s
        self.key_prefix = key_prefix
        self._clock = clock
        self._pool: BlockingConnectionPool[Connection] = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=max(1.0, 4 * socket_timeout_s),  # waiting for a free connection
            socket_timeout=socket_timeout_s,
            socket_connect_timeout=socket_timeout_s,
            retry=Retry(NoBackoff(), 0),  # a dead Redis answers now; settle retries itself
            # redis-py checks each pooled connection before lending it (a socket the server
            # closed is reconnected), except with maintenance notifications on, which its
            # default "auto" counts as on: a burst after a Redis restart then met the dead
            # connections. They are a Redis Enterprise feature this pool does not use.
            maint_notifications_config=MaintNotificationsConfig(enabled=False),
        )
        # The client does not own the pool: ``aclose`` disconnects the pool itself.
        self._redis: Redis[bytes] = Redis(connection_pool=self._pool)
        self._admit = self._redis.register_script(_script("admit"))
        self._settle = self._redis.register_script(_script("settle"))
        self._states = self._redis.register_script(_script("states"))

    def _now_arg(self) -> str:
        return "" if self._clock is None else str(round(self._clock() * 1_000_000))

    async def _run(self, script: Any, args: list[str | int]) -> Any:
        try:
            return await script(args=args)
        except _ERRORS as exc:
            raise CountersUnavailable(
                f"the rate-limit and budget counters cannot be reached ({type(exc).__name__} "
                "from Redis); retry shortly",
            ) from exc

    async def admit(self, admission: Admission) -> Reservation:
        rates, budgets = normalise(admission)
        for limit in rates:
            if charge(limit, admission) > limit.per_minute:
                raise too_large(limit, charge(limit, admission))
        rid = uuid.uuid4().hex
        cost = to_nano(admission.cost_usd)
        args: list[str | int] = [
            self.key_prefix,
            rid,
            self._now_arg(),
            round(self.reservation_ttl_s * 1_000_000),
            round((self.reservation_ttl_s + MARKER_GRACE_S) * 1000),
            WINDOW_RETENTION_S,
            cost,
            len(rates),
        ]
        for limit in rates:
            args += [limit.scope, limit.metric, limit.per_minute, charge(limit, admission)]
        args.append(len(budgets))
        for budget in budgets:
            args += [budget.scope, budget.per, to_nano(budget.usd)]
        reply = await self._run(self._admit, args)
        outcome = reply[0].decode()
        if outcome == "rate":
            raise rate_limited(rates[int(reply[1]) - 1], int(reply[2]) / 1e6)
        if outcome == "budget":
            _, index, spent, stop, now_us = reply
            raise budget_refusal(
                budgets[int(index) - 1],
                spent=int(spent),
                cost=cost,
                now=_time(int(now_us) / 1e6),
                window_end=_time(int(stop)),
            )
        now_us = int(reply[1])
        tats = [int(t) for t in reply[2 : 2 + len(rates)]]
        windows = reply[2 + len(rates) :]
        limits = [
            LimitState(
                limit=limit,
                remaining=max(0, int((WINDOW_S * 1e6 - (tat - now_us)) * limit.per_minute / 6e7)),
                reset_s=max(0.0, (tat - now_us) / 1e6),
            )
            for limit, tat in zip(rates, tats, strict=True)
        ]
        states = [
            budget_state(
                budget,
                int(windows[4 * n + 2]),
                int(windows[4 * n + 3]),
                _time(int(windows[4 * n])),
                _time(int(windows[4 * n + 1])),
            )
            for n, budget in enumerate(budgets)
        ]
        return Reservation(
            id=rid,
            admission=admission,
            limits=limits,
            budgets=states,
            admitted_at=_time(now_us / 1e6),
            rate_limits=rates,
            budget_limits=budgets,
        )

    async def settle(self, reservation: Reservation, *, tokens: int, cost_usd: float) -> None:
        await self._settle_with_retries(reservation, tokens=tokens, cost_usd=cost_usd)

    async def release(self, reservation: Reservation) -> None:
        await self._settle_with_retries(reservation, tokens=0, cost_usd=0.0)

    async def _settle_with_retries(
        self, reservation: Reservation, *, tokens: int, cost_usd: float
    ) -> None:
        token_limits = [limit for limit in reservation.rate_limits if limit.metric == "tokens"]
        if not reservation.budgets and not token_limits:
            return  # admit wrote nothing that settling could change
        args: list[str | int] = [
            self.key_prefix,
            reservation.id,
            self._now_arg(),
            WINDOW_RETENTION_S,
            to_nano(cost_usd),
            tokens - reservation.admission.tokens,
            len(reservation.budgets),
        ]
        for state in reservation.budgets:
            args += [state.budget.scope, state.budget.per, int(state.window_start.timestamp())]
        args.append(len(token_limits))
        for limit in token_limits:
            args += [limit.scope, limit.per_minute]
        retrying = AsyncRetrying(
            stop=stop_after_attempt(SETTLE_ATTEMPTS),
            wait=wait_exponential(multiplier=0.05, max=0.4),
            retry=retry_if_exception_type(CountersUnavailable),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                await self._run(self._settle, args)

    async def budget_states(self, budgets: Sequence[BudgetLimit]) -> list[BudgetState]:
        args: list[str | int] = [self.key_prefix, self._now_arg(), len(budgets)]
        for budget in budgets:
            args += [budget.scope, budget.per]
        reply = await self._run(self._states, args)
        return [
            budget_state(
                budget,
                int(reply[4 * n + 2]),
                int(reply[4 * n + 3]),
                _time(int(reply[4 * n])),
                _time(int(reply[4 * n + 1])),
            )
            for n, budget in enumerate(budgets)
        ]

    async def ping(self) -> None:
        try:
            await self._redis.ping()
        except _ERRORS as exc:
            raise CountersUnavailable(
                f"the counters' Redis does not answer ({type(exc).__name__}); check "
                "BASTION_REDIS_URL and that Redis is running",
            ) from exc

    async def aclose(self) -> None:
        await self._pool.disconnect()
