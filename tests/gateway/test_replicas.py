"""Two `bastion serve` processes sharing Redis and one database: a budget is spent once.

200 concurrent calls, spread over both replicas, against a team budget that holds about
50 worst cases. Each replica reserves the worst case in Redis before it calls the
upstream, so however the calls interleave the money spent never passes the budget,
and what the ledgers bill adds up to what Redis counted.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import sqlalchemy as sa

from .policy import write_policy
from .serving import Server, admin_key, serve_env

pytestmark = pytest.mark.redis

BUDGET_USD = 1.0


@pytest.fixture
def replicas(
    tmp_path: Path,
    database_url: str,
    redis_url: str,
    redis_prefix: str,  # type: ignore[no-untyped-def]
    fake_upstream,
) -> Iterator[dict[str, Any]]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    write_policy(home / "policy.yaml", fake_upstream.base_url, team_budget=BUDGET_USD)
    env = serve_env(
        home,
        BASTION_DATABASE_URL=database_url,
        BASTION_REDIS_URL=redis_url,
        BASTION_REDIS_PREFIX=redis_prefix,
        BASTION_LOG_LEVEL="INFO",
        BASTION_SECRET_KEY="shared-by-every-replica",
    )
    key = admin_key(env, user="ops", team="capped")
    servers = [Server(home, env, home / f"replica-{n}.log") for n in range(2)]
    try:
        for server in servers:  # both start at once, then both must be ready
            server.spawn()
        for server in servers:
            server.wait_ready()
        yield {"servers": servers, "key": key, "env": env}
    finally:
        for server in servers:
            server.stop()


def test_two_replicas_sharing_redis_never_overspend(
    replicas,
    database_url: str,  # type: ignore[no-untyped-def]
    redis_url: str,
    redis_prefix: str,
) -> None:
    async def main() -> list[str]:
        clients = [
            openai.AsyncOpenAI(base_url=s.url + "/v1", api_key=replicas["key"], max_retries=0)
            for s in replicas["servers"]
        ]

        async def one(i: int) -> str:
            try:
                await clients[i % 2].chat.completions.create(
                    model="pricey", messages=[{"role": "user", "content": "hi"}], max_tokens=18
                )
                return "ok"
            except openai.RateLimitError as exc:
                return str(exc.code)

        try:
            return await asyncio.gather(*(one(i) for i in range(200)))
        finally:
            for client in clients:
                await client.close()

    results = asyncio.run(main())
    assert set(results) <= {"ok", "budget_exceeded"}
    served = results.count("ok")
    assert 10 <= served < 200, results

    from bastion.gateway.counters import BudgetLimit, create_counters

    async def state() -> Any:
        counters = create_counters(redis_url, key_prefix=redis_prefix)
        try:
            [budget] = await counters.budget_states([BudgetLimit("team:capped", BUDGET_USD, "day")])
            return budget
        finally:
            await counters.aclose()

    budget = asyncio.run(state())
    assert budget.spent_usd <= BUDGET_USD
    assert budget.reserved_usd == pytest.approx(0.0, abs=1e-9)  # every reservation settled
    for server in replicas["servers"]:
        server.stop()  # the ledgers are flushed
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT stream, outcome, details FROM audit_events WHERE action = 'llm.chat'"
                )
            ).all()
    finally:
        engine.dispose()
    assert len(rows) == 200  # one event per call, wherever it was served
    assert len({r.stream for r in rows}) == 2  # both replicas served and recorded
    details = [json.loads(r.details) if isinstance(r.details, str) else r.details for r in rows]
    billed = sum(
        d["cost_usd"] for r, d in zip(rows, details, strict=True) if r.outcome == "success"
    )
    assert sum(r.outcome == "success" for r in rows) == served
    assert billed == pytest.approx(budget.spent_usd, rel=1e-6)
