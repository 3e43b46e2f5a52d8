"""Money and guards on the edges of the data path: what a review found, kept found.

Each test names what a user would have hit: a breaker stuck open, spend that never
reached the counters, a reservation smaller than the bill, personal data in tool-call
arguments, a key whose team escaped its rules, a stream cut or left early and billed
nothing, a prompt too long for one model that a larger fallback could have served.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from .policy import write_policy
from .serving import free_port

pytestmark = pytest.mark.anyio


@pytest.fixture
def settings(home: Path, database_url: str, upstream, monkeypatch):  # type: ignore[no-untyped-def]
    from bastion.settings import Settings

    monkeypatch.delenv("BASTION_TEST_MISSING_KEY", raising=False)
    write_policy(home / "policy.yaml", upstream.base_url)
    return Settings(
        home=home,
        database_url=database_url,
        policy_reload_interval_s=60,
        gateway_max_retry_wait_s=2.0,
    )


@pytest.fixture
async def sdk(app, key_for) -> AsyncIterator[Callable[..., openai.AsyncOpenAI]]:  # type: ignore[no-untyped-def]
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), timeout=30)

    def make(
        role: str = "admin",
        *,
        team: str | None = None,
        user: str | None = None,
        key: str | None = None,
    ) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url="http://bastion.test/v1",
            http_client=http,
            api_key=key or key_for(role, team=team, user=user),
            max_retries=0,
        )

    yield make
    await http.aclose()
    await app.state.gateway.aclose()


def hello(text: str = "Say hello") -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def last_event(runtime) -> Any:  # type: ignore[no-untyped-def]
    from bastion.audit import EventFilter

    return list(runtime.audit.page(EventFilter(action="llm.chat"), limit=1000, order="asc").events)[
        -1
    ]


async def budget(app, scope: str, usd: float = 1.0) -> Any:  # type: ignore[no-untyped-def]
    from bastion.gateway.counters import BudgetLimit

    [state] = await app.state.gateway.counters.budget_states([BudgetLimit(scope, usd, "day")])
    return state


# --- circuit breakers ------------------------------------------------------------------


def test_a_lost_probe_frees_the_half_open_breaker_after_reset() -> None:
    from bastion.gateway.breaker import CircuitBreaker

    now = [0.0]
    breaker = CircuitBreaker(failures=1, reset_s=10, clock=lambda: now[0])
    breaker.record_failure()
    now[0] = 11.0
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # one at a time
    now[0] = 22.0  # the probe never reported back
    assert breaker.allow()


async def test_running_out_of_time_takes_no_probe_slot() -> None:
    from bastion.gateway.breaker import Health
    from bastion.gateway.errors import UpstreamFailure
    from bastion.gateway.providers.base import Target
    from bastion.gateway.resilience import Resilience, Trail
    from bastion.policy.schema import ProviderConfig

    health = Health()
    target = Target(
        "m", "m", "p", ProviderConfig(kind="openai", breaker_failures=1, breaker_reset_s=0.01), None
    )
    breaker = health.deployment(target).breaker
    breaker.record_failure()
    await asyncio.sleep(0.02)  # half-open: one probe may go

    async def never(_target: Target, _left: float) -> None:
        raise AssertionError("no call past the deadline")

    loop = asyncio.get_running_loop()
    with pytest.raises(UpstreamFailure):
        await Resilience(health, max_wait_s=0).run([target], never, Trail(), loop.time() - 1)
    assert breaker.allow()  # the slot is still there for the next call


async def test_a_429_on_one_model_does_not_shut_the_providers_other_models(sdk, app) -> None:  # type: ignore[no-untyped-def]
    client = sdk()
    for _ in range(3):  # breaker_failures: 2 on this provider
        with pytest.raises(openai.RateLimitError):
            await client.chat.completions.create(model="quota", messages=hello())
    assert app.state.gateway.health.find("flappy", "429").breaker.state == "closed"


# --- reservations and what is billed -------------------------------------------------------


async def test_images_are_reserved_at_the_models_worst_case(sdk) -> None:  # type: ignore[no-untyped-def]
    picture = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            ],
        }
    ]
    # pricey: $1000 per 1M tokens; one image may cost 1,600 tokens = $1.60 > the $1 budget.
    with pytest.raises(openai.RateLimitError) as err:
        await sdk(team="capped").chat.completions.create(
            model="pricey", messages=picture, max_tokens=5
        )
    assert err.value.code == "budget_exceeded"


async def test_a_bill_above_its_reservation_is_flagged_and_counted(sdk, app, runtime) -> None:  # type: ignore[no-untyped-def]
    # The upstream reports 5,000 prompt tokens for a prompt Bastion estimates at ~10.
    answer = await sdk().chat.completions.create(model="greedy", messages=hello(), max_tokens=5)
    assert answer.usage is not None and answer.usage.prompt_tokens == 5000
    event = last_event(runtime)
    assert "reservation_exceeded" in event.flags
    assert event.details["cost_usd"] > event.details["reserved_usd"]
    metrics = runtime.metrics.render().decode()
    assert 'bastion_llm_reservation_exceeded_total{model="greedy"} 1.0' in metrics


async def test_a_stream_says_what_it_reserved_not_a_cost_it_cannot_know(sdk) -> None:  # type: ignore[no-untyped-def]
    client = sdk()
    async with client.chat.completions.with_streaming_response.create(
        model="ok", messages=hello(), stream=True
    ) as raw:
        assert float(raw.headers["x-bastion-reserved-usd"]) > 0
        assert "x-bastion-cost-usd" not in raw.headers
        async for _ in raw.iter_lines():
            pass


async def test_a_chunk_of_the_wrong_shape_ends_the_stream_as_the_upstreams_fault(  # type: ignore[no-untyped-def]
    sdk, app, runtime
) -> None:
    stream = await sdk(user="shape").chat.completions.create(
        model="bad-chunk", messages=hello("a b c d e f g h"), stream=True
    )
    with pytest.raises(openai.APIError) as err:
        async for _ in stream:
            pass
    assert "wrong shape" in str(err.value)
    event = last_event(runtime)
    assert event.details["error_code"] == "upstream_malformed_response"
    assert event.details["tokens"]["completion"] > 0  # what went out is billed
    assert event.details["cost_usd"] > 0


async def test_a_client_leaving_a_checked_stream_is_billed_for_what_was_generated(  # type: ignore[no-untyped-def]
    app, runtime, key_for, home, upstream
) -> None:
    # With response redaction the stream is read whole before it is shown; the client
    # gives up while Bastion waits (the upstream stalls after 3 chunks).
    write_policy(home / "policy.yaml", upstream.base_url, response_action="redact")
    runtime.reload_policy("system", "test")
    principal = runtime.keys.authenticate(key_for("admin", user="leaver", team="capped"))
    gateway = app.state.gateway
    reply = await gateway.chat(
        principal,
        {
            "model": "stall-priced",
            "messages": hello("a b c d e f"),
            "stream": True,
            "max_tokens": 50,
        },
    )
    assert reply.stream is not None
    body = reply.stream

    async def read() -> None:
        async for _ in body:
            pass

    task = asyncio.create_task(read())
    await asyncio.sleep(0.2)  # three chunks are in; the stall timeout (0.4 s) is not
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    event = last_event(runtime)
    assert event.outcome == "cancelled"
    assert "client_disconnected" in event.flags
    assert event.details["tokens"]["completion"] > 0

    await gateway.aclose()


# --- routing and caps ---------------------------------------------------------------------------


async def test_a_prompt_too_long_for_the_model_goes_to_a_fallback_that_holds_it(  # type: ignore[no-untyped-def]
    sdk, upstream, runtime
) -> None:
    answer = await sdk().chat.completions.create(model="narrow", messages=hello("word " * 100))
    assert answer.model == "ok"
    assert upstream.count("ok") == 1
    assert last_event(runtime).details["decisions"]["context"] == "routed to ok"


async def test_without_max_tokens_a_small_token_limit_still_admits_calls(sdk, runtime) -> None:  # type: ignore[no-untyped-def]
    from bastion.auth.principal import SYSTEM
    from bastion.policy.schema import KeyRestrictions

    key = runtime.keys.create(
        SYSTEM,
        user="frugal",
        role="admin",
        restrictions=KeyRestrictions.model_validate({"limits": {"tokens_per_minute": 3000}}),
    )
    answer = await sdk(key=key.secret).chat.completions.create(model="ok", messages=hello())
    assert answer.choices[0].message.content


async def test_the_output_cap_goes_in_the_field_the_provider_reads(sdk, upstream) -> None:  # type: ignore[no-untyped-def]
    await sdk().chat.completions.create(model="modern-ok", messages=hello())
    sent = upstream.requests[-1].body
    assert "max_tokens" not in sent and sent["max_completion_tokens"] > 0
    await sdk().chat.completions.create(model="ok", messages=hello(), max_tokens=7)
    assert upstream.requests[-1].body["max_tokens"] == 7  # an OpenAI-compatible server


def test_official_openai_and_azure_take_max_completion_tokens() -> None:
    from bastion.gateway.providers.base import Target
    from bastion.gateway.providers.openai import AzureOpenAIProvider, OpenAIProvider
    from bastion.policy.schema import ProviderConfig

    def body(provider: Any, config: ProviderConfig) -> dict[str, Any]:
        target = Target("m", "m", "p", config, None)
        return provider.chat_request(
            target, {"model": "m", "messages": [], "max_tokens": 9}, stream=False
        ).json

    official = body(OpenAIProvider(), ProviderConfig(kind="openai"))
    assert official.get("max_completion_tokens") == 9 and "max_tokens" not in official
    vllm = body(OpenAIProvider(), ProviderConfig(kind="openai", base_url="http://10.0.0.7:8000/v1"))
    assert vllm.get("max_tokens") == 9
    azure = body(
        AzureOpenAIProvider(), ProviderConfig(kind="azure", base_url="https://x.openai.azure.com")
    )
    assert azure.get("max_completion_tokens") == 9


def test_a_stream_with_a_choice_left_unfinished_is_not_complete() -> None:
    from bastion.gateway.streams import unfinished

    assert unfinished(1, {0}) == []
    assert unfinished(2, {0}) == [1]
    assert unfinished(3, set()) == [0, 1, 2]


def test_prompt_cache_reads_and_writes_are_priced_apart() -> None:
    from bastion.gateway.pricing import cost_usd, worst_case_usd
    from bastion.policy.schema import ModelConfig

    model = ModelConfig.model_validate(
        {
            "provider": "p",
            "price": {
                "input_per_1m": 3.0,
                "output_per_1m": 15.0,
                "cached_input_per_1m": 0.3,
                "cache_write_per_1m": 3.75,
            },
        }
    )
    plain = cost_usd(model, 100_000, 0)
    read = cost_usd(model, 100_000, 0, cached_tokens=100_000)
    written = cost_usd(model, 100_000, 0, cache_write_tokens=100_000)
    assert (plain, read, written) == pytest.approx((0.3, 0.03, 0.375))
    assert worst_case_usd(model, 100_000, 0) == pytest.approx(0.375)  # the dearest


# --- privacy on every part of a call -----------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_a_blocked_leak_in_tool_call_arguments_never_reaches_the_client(  # type: ignore[no-untyped-def]
    app, runtime, home, upstream, key_for, stream
) -> None:
    write_policy(home / "policy.yaml", upstream.base_url, response_action="block")
    runtime.reload_policy("system", "test")
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    tools = [
        {
            "type": "function",
            "function": {
                "name": "send_note",
                "parameters": {"type": "object", "properties": {"text": {"type": "string"}}},
            },
        }
    ]
    response = await http.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key_for('admin')}"},
        json={"model": "leaky", "messages": hello("Take a note"), "tools": tools, "stream": stream},
    )
    text = response.text
    await http.aclose()
    await app.state.gateway.aclose()
    assert "555 0132" not in text and "john.smith@example.com" not in text
    assert "pii_leak_blocked" in text


async def test_tool_call_arguments_are_scanned_for_leaks(sdk, runtime) -> None:  # type: ignore[no-untyped-def]
    tools = [
        {
            "type": "function",
            "function": {
                "name": "send_note",
                "parameters": {"type": "object", "properties": {"text": {"type": "string"}}},
            },
        }
    ]
    answer = await sdk().chat.completions.create(
        model="leaky", messages=hello("Take a note"), tools=tools
    )  # type: ignore[arg-type]
    assert answer.choices[0].message.tool_calls  # flag: it goes out, and is on record
    assert "pii_leak:PHONE_NUMBER" in last_event(runtime).flags


async def test_the_end_user_and_names_leave_as_keyed_digests(sdk, upstream) -> None:  # type: ignore[no-untyped-def]
    await sdk().chat.completions.create(
        model="ok",
        user="jane.doe@example.com",
        messages=[{"role": "user", "name": "Jane_Doe", "content": "hello"}],
    )
    sent = upstream.requests[-1].body
    assert sent["user"].startswith("user_") and "jane" not in json.dumps(sent).lower()
    assert sent["messages"][0]["name"].startswith("name_")
    await sdk().chat.completions.create(model="ok", user="jane.doe@example.com", messages=hello())
    assert upstream.requests[-1].body["user"] == sent["user"]  # stable: still one end user


# --- teams ------------------------------------------------------------------------------------


def test_a_key_for_a_team_the_policy_does_not_know_is_refused(runtime) -> None:  # type: ignore[no-untyped-def]
    from bastion.auth.errors import UnknownTeam
    from bastion.auth.principal import SYSTEM

    with pytest.raises(UnknownTeam, match="capped"):
        runtime.keys.create(SYSTEM, user="typo", role="admin", team="Capped")


async def test_a_key_whose_team_left_the_policy_may_use_no_model(
    sdk,
    runtime,
    home,  # type: ignore[no-untyped-def]
    upstream,
) -> None:
    client = sdk(team="capped")
    await client.chat.completions.create(model="local", messages=hello())
    path = home / "policy.yaml"
    path.write_text(path.read_text().replace("teams:\n  capped:", "teams:\n  other:"))
    runtime.reload_policy("system", "test")
    with pytest.raises(openai.PermissionDeniedError) as err:
        await client.chat.completions.create(model="local", messages=hello())
    assert "team 'capped' is not in the policy" in str(err.value)


# --- budgets spent until the window ends ------------------------------------------------------


async def test_a_budget_the_call_cannot_fit_tells_sdks_not_to_retry(sdk, app) -> None:  # type: ignore[no-untyped-def]
    # pricey costs $0.001 a token: 999 output tokens alone pass the team's $1 a day, so
    # retrying before the window ends cannot help (the OpenAI SDKs would, twice).
    key = sdk(team="capped").api_key
    raw = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    response = await raw.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "pricey", "messages": hello(), "max_tokens": 999},
    )
    await raw.aclose()
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "budget_exceeded"
    assert response.headers["x-should-retry"] == "false"
    assert int(response.headers["retry-after"]) > 60  # the window's end, not a second


# --- settlements Redis could not take --------------------------------------------------------


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A redis-server of this test's own, so it can be frozen mid-call."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("redis-server is not installed (CI must have it)")
        pytest.skip("redis-server is not installed")
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    import redis

    while True:
        try:
            redis.Redis(port=port, socket_timeout=0.5).ping()
            break
        except redis.RedisError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}/0", proc
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.terminate()
        proc.wait(10)


async def test_a_settlement_redis_missed_is_retried_until_it_lands(  # type: ignore[no-untyped-def]
    migrated, upstream, own_redis
) -> None:
    from bastion.app import create_app
    from bastion.auth.principal import SYSTEM
    from bastion.gateway.counters import BudgetLimit
    from bastion.runtime import open_runtime

    url, proc = own_redis
    settings = migrated.model_copy(update={"redis_url": url, "counters_timeout_s": 0.3})
    runtime = open_runtime(settings)
    try:
        app = create_app(settings, runtime=runtime)
        gateway = app.state.gateway
        principal = runtime.keys.authenticate(
            str(runtime.keys.create(SYSTEM, user="payer", role="admin", team="capped").secret)
        )
        call = asyncio.create_task(
            gateway.chat(principal, {"model": "slow", "messages": hello(), "max_tokens": 20})
        )
        await asyncio.sleep(0.2)  # admitted; the upstream answers after 0.5 s
        os.kill(proc.pid, signal.SIGSTOP)  # Redis freezes before the settlement
        reply = await call
        assert reply.body is not None
        cost = float(reply.headers["x-bastion-cost-usd"])
        os.kill(proc.pid, signal.SIGCONT)
        deadline = time.monotonic() + 10
        while True:
            [state] = await gateway.counters.budget_states([BudgetLimit("team:capped", 1.0, "day")])
            if state.reserved_usd == 0:
                break
            assert time.monotonic() < deadline, state
            await asyncio.sleep(0.2)
        assert state.spent_usd == pytest.approx(cost, abs=1e-9)  # spent, not freed
        assert "settle_deferred" in last_event(runtime).flags
        await gateway.aclose()
    finally:
        runtime.close()
