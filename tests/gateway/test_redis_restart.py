"""The counters' Redis stopped and started again under load (issue #24, item 3).

While it is down the gateway fails closed (503 ``counters_unavailable``, never a 500);
once it is back, the connections the pool held to the old process are dead and must be
replaced before use, not lent to a burst of calls that then fail with 503.

The Redis here is a private ``redis-server`` on a free port that the test stops and
starts; the shared one is never touched.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest

from .policy import write_policy
from .serving import free_port

pytestmark = [pytest.mark.anyio, pytest.mark.redis]


class PrivateRedis:
    """A ``redis-server`` of the test's own that can be stopped and started on one port."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary, self.directory = binary, directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        import redis

        self.proc = subprocess.Popen(
            [
                self.binary,
                *("--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.directory)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port, socket_timeout=0.5).ping()
                return
            except redis.RedisError:
                assert self.proc.poll() is None, "redis-server exited at start"
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("redis-server is not installed (CI must have it)")
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(binary, tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def settings(home: Path, database_url: str, upstream, private_redis: PrivateRedis):  # type: ignore[no-untyped-def]
    from bastion.settings import Settings

    write_policy(home / "policy.yaml", upstream.base_url, on_counter_error="refuse")
    return Settings(
        home=home,
        database_url=database_url,
        policy_reload_interval_s=60,
        redis_url=private_redis.url,
        counters_timeout_s=5.0,  # a loaded machine must not time out: refused is what is tested
    )


@pytest.fixture
async def call(app, key_for) -> AsyncIterator[Callable[[], asyncio.Future[str]]]:  # type: ignore[no-untyped-def]
    """``await call()`` -> "ok", or the status, error code and cause of one failed chat
    call through the SDK ("503 counters_unavailable (ConnectionError)")."""
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        timeout=30,
        limits=httpx.Limits(max_connections=None),
    )
    client = openai.AsyncOpenAI(
        base_url="http://bastion.test/v1", http_client=http, api_key=key_for("admin"), max_retries=0
    )

    async def one() -> str:
        try:
            await client.chat.completions.create(
                model="ok", messages=[{"role": "user", "content": "Say hello"}]
            )
        except openai.APIStatusError as err:
            body = err.body if isinstance(err.body, dict) else {}
            code = body.get("code") or body.get("error", {}).get("code")
            cause = re.search(r"\((\w+) from Redis\)", err.message)
            return f"{err.status_code} {code} ({cause[1] if cause else '?'})"
        return "ok"

    def start() -> asyncio.Future[str]:
        return asyncio.ensure_future(one())

    yield start
    await http.aclose()
    await app.state.gateway.aclose()


async def burst(call: Callable[[], asyncio.Future[str]], n: int) -> Counter[str]:
    return Counter(await asyncio.gather(*(call() for _ in range(n))))


async def test_a_burst_after_redis_restarts_meets_no_dead_pooled_connection(
    call: Callable[[], asyncio.Future[str]], private_redis: PrivateRedis
) -> None:
    # A burst fills the pool with connections to this Redis process.
    assert await burst(call, 60) == {"ok": 60}

    private_redis.stop()
    down = Counter[str]()
    for _ in range(3):  # load while Redis is away: every call refused, closed
        down += await burst(call, 10)
        await asyncio.sleep(0.2)
    assert sum(down.values()) == 30
    assert all(label.startswith("503 counters_unavailable") for label in down), down

    private_redis.start()
    # The pool still holds connections to the stopped process; none may reach a caller.
    assert await burst(call, 100) == {"ok": 100}
