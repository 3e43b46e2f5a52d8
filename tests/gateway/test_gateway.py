"""The gateway's behaviour through its HTTP API, with the official ``openai`` SDK as the
client (over ASGI, in-process) and the fake upstream on loopback; SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from .policy import write_policy

pytestmark = pytest.mark.anyio

EMAIL = "jane.doe@example.com"


@pytest.fixture
def settings(home: Path, database_url: str, upstream, monkeypatch):  # type: ignore[no-untyped-def]
    from bastion.settings import Settings

    monkeypatch.setenv("BASTION_TEST_AZURE_KEY", "azure-secret")
    monkeypatch.setenv("BASTION_TEST_ANTHROPIC_KEY", "anthropic-secret")
    monkeypatch.delenv("BASTION_TEST_MISSING_KEY", raising=False)
    write_policy(home / "policy.yaml", upstream.base_url)
    return Settings(
        home=home,
        database_url=database_url,
        policy_reload_interval_s=0.1,
        gateway_max_retry_wait_s=2.0,
    )


@pytest.fixture
async def sdk(app, key_for) -> AsyncIterator[Callable[..., openai.AsyncOpenAI]]:  # type: ignore[no-untyped-def]
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), timeout=30)
    made: list[openai.AsyncOpenAI] = []

    def make(
        role: str = "admin",
        *,
        key: str | None = None,
        team: str | None = None,
        user: str | None = None,
    ) -> openai.AsyncOpenAI:
        client = openai.AsyncOpenAI(
            base_url="http://bastion.test/v1",
            api_key=key or key_for(role, team=team, user=user),
            http_client=http,
            max_retries=0,
        )
        made.append(client)
        return client

    yield make
    await http.aclose()
    await app.state.gateway.aclose()  # no lifespan over ASGI: close its upstream pools


def chat_events(runtime) -> list[Any]:  # type: ignore[no-untyped-def]
    from bastion.audit import EventFilter

    return list(runtime.audit.page(EventFilter(action="llm.chat"), limit=1000, order="asc").events)


def hello(text: str = "Say hello") -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


# --- the happy path ------------------------------------------------------------------


async def test_a_chat_call_is_masked_restored_billed_and_audited(sdk, upstream, runtime) -> None:  # type: ignore[no-untyped-def]
    client = sdk("admin")
    raw = await client.chat.completions.with_raw_response.create(
        model="ok",
        messages=hello(f"Write to {EMAIL} please"),
        temperature=0.2,
        extra_body={"seed": 7, "vendor_field": {"x": 1}},
    )
    completion = raw.parse()
    assert completion.model == "ok"
    # The fake echoes what it received: the placeholder came back and was restored.
    assert EMAIL in (completion.choices[0].message.content or "")
    sent = upstream.requests[-1].body
    assert EMAIL not in json.dumps(sent)
    assert sent["messages"][0]["content"] == "Write to <EMAIL_1> please"
    assert sent["vendor_field"] == {"x": 1} and sent["seed"] == 7  # passed through
    assert sent["model"] == "ok"
    headers = raw.headers
    assert headers["x-request-id"]
    assert float(headers["x-bastion-cost-usd"]) > 0
    assert float(headers["x-bastion-overhead-ms"]) >= 0
    assert int(headers["x-ratelimit-remaining-requests"]) >= 0
    [event] = chat_events(runtime)
    d = event.details
    assert event.outcome == "success"
    assert event.request_id == headers["x-request-id"]
    assert d["served_model"] == "ok" and d["requested_model"] == "ok"
    assert d["tokens"]["source"] == "upstream"
    assert d["tokens"]["prompt"] == completion.usage.prompt_tokens  # type: ignore[union-attr]
    assert d["cost_usd"] == pytest.approx(float(headers["x-bastion-cost-usd"]), abs=1e-8)
    assert d["attempts"] == [
        {"model": "ok", "provider": "fake", "outcome": "ok", "ms": d["attempts"][0]["ms"]}
    ]
    assert "pii:EMAIL_ADDRESS" in event.flags
    assert event.content_digest  # prompt and answer digested into the chain
    assert EMAIL not in json.dumps(d)


async def test_models_lists_only_what_the_key_may_use(sdk) -> None:  # type: ignore[no-untyped-def]
    guest = [m.id async for m in sdk("guest").models.list()]
    assert guest == ["local"]
    admin = {m.id async for m in sdk("admin").models.list()}
    assert {"ok", "local", "embed"} <= admin
    assert (await sdk("guest").models.retrieve("local")).id == "local"
    with pytest.raises(openai.NotFoundError):
        await sdk("guest").models.retrieve("ok")


async def test_a_key_narrowed_at_creation(sdk, runtime, app) -> None:  # type: ignore[no-untyped-def]
    from bastion.auth.principal import SYSTEM
    from bastion.policy.schema import KeyRestrictions

    created = runtime.keys.create(
        SYSTEM,
        user="narrow",
        role="admin",
        restrictions=KeyRestrictions.model_validate({"models": ["local"]}),
    )
    client = sdk(key=created.secret)
    assert [m.id async for m in client.models.list()] == ["local"]
    with pytest.raises(openai.PermissionDeniedError) as err:
        await client.chat.completions.create(model="ok", messages=hello())
    assert err.value.code == "model_not_allowed"


# --- refusals before any upstream call ---------------------------------------------------


async def test_refusals_happen_before_the_upstream_is_called(sdk, upstream, runtime) -> None:  # type: ignore[no-untyped-def]
    client = sdk("analyst")
    with pytest.raises(openai.NotFoundError) as nf:
        await client.chat.completions.create(model="no-such-model", messages=hello())
    assert nf.value.code == "model_not_found"
    with pytest.raises(openai.PermissionDeniedError) as denied:
        await sdk("guest").chat.completions.create(model="ok", messages=hello())
    assert denied.value.code == "model_not_allowed"
    with pytest.raises(openai.BadRequestError) as cap:
        await client.chat.completions.create(model="ok", messages=hello(), max_tokens=5000)
    assert cap.value.code == "max_tokens_exceeded"
    with pytest.raises(openai.BadRequestError) as window:
        await client.chat.completions.create(model="tiny-window", messages=hello("word " * 80))
    assert window.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as kind:
        await client.chat.completions.create(model="embed", messages=hello())
    assert kind.value.code == "model_kind_mismatch"
    assert upstream.requests == []
    outcomes = [(e.outcome, e.details.get("error_code")) for e in chat_events(runtime)]
    assert outcomes == [
        ("refused", "model_not_found"),
        ("refused", "model_not_allowed"),
        ("refused", "max_tokens_exceeded"),
        ("refused", "context_length_exceeded"),
        ("refused", "model_kind_mismatch"),
    ]
    # A caller's free text never becomes a resource or a metric label.
    assert chat_events(runtime)[0].resource == "model:unknown"


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        (b"{not json", "invalid_json", None),
        (b"[]", "invalid_request", "body"),
        (b'{"model": 3, "messages": []}', "invalid_request", "model"),
        (b'{"model": "ok", "messages": []}', "invalid_request", "messages"),
        (
            b'{"model": "ok", "messages": [{"role": "wizard", "content": "x"}]}',
            "invalid_request",
            "messages[0].role",
        ),
        (
            b'{"model": "ok", "messages": [{"role": "user", "content": 5}]}',
            "invalid_request",
            "messages[0].content",
        ),
        (
            b'{"model": "ok", "messages": [{"role": "user", "content": "x"}], "max_tokens": "9"}',
            "invalid_request",
            "max_tokens",
        ),
        (
            b'{"model": "ok", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}',
            "invalid_request",
            "stream",
        ),
    ],
)
async def test_malformed_requests_get_a_clear_error(
    client,
    key_for,
    upstream,
    body,
    code,  # type: ignore[no-untyped-def]
    param,
) -> None:
    response = await client.post(
        "/v1/chat/completions",
        content=body,
        headers={"Authorization": f"Bearer {key_for('admin')}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == code
    assert error["param"] == param
    assert error["request_id"] == response.headers["x-request-id"]
    assert upstream.requests == []


async def test_without_a_key_the_gateway_answers_401_in_openai_shape(app) -> None:  # type: ignore[no-untyped-def]
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    client = openai.AsyncOpenAI(
        base_url="http://bastion.test/v1", api_key="bst_wrong_key", http_client=http, max_retries=0
    )
    with pytest.raises(openai.AuthenticationError):
        await client.chat.completions.create(model="ok", messages=hello())
    await http.aclose()


# --- limits and budgets --------------------------------------------------------------------


async def test_rate_limit_refuses_with_retry_after(sdk, runtime) -> None:  # type: ignore[no-untyped-def]
    from bastion.auth.principal import SYSTEM
    from bastion.policy.schema import KeyRestrictions

    created = runtime.keys.create(
        SYSTEM,
        user="rl",
        role="admin",
        restrictions=KeyRestrictions.model_validate({"limits": {"requests_per_minute": 2}}),
    )
    client = sdk(key=created.secret)
    for _ in range(2):
        await client.chat.completions.create(model="local", messages=hello())
    with pytest.raises(openai.RateLimitError) as err:
        await client.chat.completions.create(model="local", messages=hello())
    assert err.value.code == "rate_limit_exceeded"
    assert int(err.value.response.headers["retry-after"]) >= 1
    assert chat_events(runtime)[-1].details["decisions"]["limits"] == "refused"


async def test_budget_refuses_when_the_worst_case_would_overrun(sdk, runtime) -> None:  # type: ignore[no-untyped-def]
    client = sdk("admin", team="capped")  # team budget: $1/day; pricey: $1000 per 1M tokens
    # Worst case = (prompt + 400) tokens at $1000/1M ≈ $0.41: two fit, the third does not.
    for _ in range(2):
        await client.chat.completions.create(model="pricey", messages=hello(), max_tokens=400)
    with pytest.raises(openai.RateLimitError) as err:
        await client.chat.completions.create(model="pricey", messages=hello(), max_tokens=990)
    assert err.value.code == "budget_exceeded"
    assert int(err.value.response.headers["retry-after"]) >= 1


async def test_two_hundred_concurrent_calls_never_overspend(sdk, runtime, app) -> None:  # type: ignore[no-untyped-def]
    from bastion.gateway.counters import BudgetLimit

    client = sdk("admin", team="capped")

    # Each worst case ≈ (prompt + 18) tokens at $1000/1M; $1 fits about 50 of them.
    async def one() -> str:
        try:
            await client.chat.completions.create(
                model="pricey", messages=hello("hi"), max_tokens=18
            )
            return "ok"
        except openai.RateLimitError as exc:
            return str(exc.code)

    results = await asyncio.gather(*(one() for _ in range(200)))
    assert set(results) <= {"ok", "budget_exceeded"}
    served = results.count("ok")
    assert 10 <= served < 200
    gateway = app.state.gateway
    [state] = await gateway.counters.budget_states([BudgetLimit("team:capped", 1.0, "day")])
    assert state.spent_usd <= 1.0
    assert state.reserved_usd == pytest.approx(0.0, abs=1e-9)
    events = chat_events(runtime)
    billed = sum(e.details["cost_usd"] for e in events if e.outcome == "success")
    assert billed == pytest.approx(state.spent_usd, rel=1e-6)
    assert len(events) == 200  # every call recorded, refused ones too
    # On SQLite the loop commits its own events when the writer is free; PostgreSQL's
    # round trips stay on the writer thread.
    assert (runtime.ledger.groups_inline > 0) == runtime.db.is_sqlite


async def test_metrics_show_each_team_budget_left_and_no_caller_ids(sdk, app, runtime) -> None:  # type: ignore[no-untyped-def]
    client = sdk("admin", team="capped", user="ann.secret-user")
    answer = await client.chat.completions.with_raw_response.create(
        model="pricey", messages=hello(), max_tokens=20
    )
    cost = float(answer.headers["x-bastion-cost-usd"])
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    text = (await http.get("/metrics")).text
    await http.aclose()
    [line] = [
        x
        for x in text.splitlines()
        if x.startswith('bastion_llm_budget_remaining_usd{per="day",team="capped"}')
    ]
    assert float(line.split()[-1]) == pytest.approx(1.0 - cost, abs=1e-6)
    assert (
        'bastion_llm_requests_total{endpoint="chat",model="pricey",outcome="success"} 1.0' in text
    )
    assert "ann.secret-user" not in text and answer.headers["x-request-id"] not in text


async def test_counters_down_refuse_or_allow_by_policy(sdk, app, runtime, home, upstream) -> None:  # type: ignore[no-untyped-def]
    from bastion.gateway.counters import create_counters

    closed = "redis://127.0.0.1:1/0"  # nothing listens there
    client = sdk("admin")
    await client.models.list()  # builds the gateway
    gateway = app.state.gateway
    await gateway.counters.aclose()
    gateway.counters = create_counters(closed)
    with pytest.raises(openai.InternalServerError) as err:
        await client.chat.completions.create(model="local", messages=hello())
    assert err.value.status_code == 503
    assert err.value.code == "counters_unavailable"
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    ready = await http.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["counters"] == "unreachable: counters_unavailable"
    assert (await http.get("/metrics")).status_code == 200  # the rest still goes out
    write_policy(home / "policy.yaml", upstream.base_url, on_counter_error="allow")
    runtime.reload_policy("system", "test")
    answer = await client.chat.completions.create(model="local", messages=hello())
    assert answer.choices[0].message.content
    assert "counters_unavailable" in chat_events(runtime)[-1].flags
    assert (await http.get("/readyz")).status_code == 200  # allowed without counters
    await http.aclose()


# --- resilience -------------------------------------------------------------------------------


async def test_a_500_is_retried_and_the_retry_is_billed_once(sdk, upstream, runtime) -> None:  # type: ignore[no-untyped-def]
    answer = await sdk().chat.completions.create(model="once", messages=hello())
    assert answer.model == "once"
    assert upstream.count("500-once") == 2
    [event] = chat_events(runtime)
    assert [a["outcome"] for a in event.details["attempts"]] == ["server_error", "ok"]
    assert event.details["cost_usd"] > 0


async def test_retry_after_is_honoured(sdk, upstream, runtime) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(openai.RateLimitError):
        await sdk().chat.completions.create(model="busy", messages=hello())
    assert upstream.count("429-retry-after:1") == 3  # 1 + max_retries
    times = [r.time for r in upstream.requests]
    assert times[1] - times[0] >= 1.0 and times[2] - times[1] >= 1.0
    attempts = chat_events(runtime)[-1].details["attempts"]
    assert [a["outcome"] for a in attempts] == ["rate_limited"] * 3
    assert attempts[0]["retry_after_s"] == 1


async def test_429_without_retry_after_backs_off_then_falls_back(sdk, upstream, runtime) -> None:  # type: ignore[no-untyped-def]
    answer = await sdk().chat.completions.create(model="busy-bare", messages=hello())
    assert answer.model == "ok"  # the fallback answered, and says so
    assert upstream.count("429") == 3


async def test_unavailable_upstream_falls_back_to_local(sdk, runtime) -> None:  # type: ignore[no-untyped-def]
    answer = await sdk().chat.completions.create(model="down", messages=hello("What is 2+2?"))
    assert answer.model == "local"
    event = chat_events(runtime)[-1]
    assert event.details["served_model"] == "local"
    assert event.details["requested_model"] == "down"
    assert [a["model"] for a in event.details["attempts"]] == ["down"] * 3 + ["local"]


async def test_reset_connections_and_hangs_fall_back(sdk, upstream) -> None:  # type: ignore[no-untyped-def]
    assert (await sdk().chat.completions.create(model="reset", messages=hello())).model == "ok"
    assert upstream.count("reset") == 3
    assert (await sdk().chat.completions.create(model="hang", messages=hello())).model == "ok"


async def test_context_length_is_not_retried_but_routed_to_a_larger_model(
    sdk,
    upstream,  # type: ignore[no-untyped-def]
    runtime,
) -> None:
    answer = await sdk().chat.completions.create(model="small", messages=hello())
    assert answer.model == "ok"
    assert upstream.count("context-length") == 1


async def test_content_policy_returns_the_providers_reason_at_once(sdk, upstream) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(openai.BadRequestError) as err:
        await sdk().chat.completions.create(model="strict", messages=hello())
    assert err.value.code == "content_policy_violation"
    assert upstream.count("content-policy") == 1
    assert upstream.count("ok") == 0  # no fallback around a safety refusal


async def test_missing_provider_credentials_skip_to_the_fallback(sdk, upstream, runtime) -> None:  # type: ignore[no-untyped-def]
    answer = await sdk().chat.completions.create(model="nokey", messages=hello())
    assert answer.model == "local"
    assert upstream.requests == []


async def test_circuit_breaker_opens_serves_fallbacks_probes_and_closes(sdk, upstream, app) -> None:  # type: ignore[no-untyped-def]
    client = sdk()
    for _ in range(2):  # two failures open the breaker (breaker_failures: 2)
        assert (
            await client.chat.completions.create(model="flap", messages=hello())
        ).model == "local"
    assert upstream.count("flap:30") == 2
    breaker = app.state.gateway.health.find("flappy", "flap:30").breaker
    assert breaker.state == "open"
    assert (await client.chat.completions.create(model="flap", messages=hello())).model == "local"
    assert upstream.count("flap:30") == 2  # not called while open
    upstream.reset()  # the upstream recovers
    await asyncio.sleep(0.7)
    answer = await client.chat.completions.create(model="flap", messages=hello())
    assert breaker.state == "closed"
    assert answer.model == "flap"  # the probe succeeded


# --- streams -----------------------------------------------------------------------------------


async def collect(stream: Any) -> tuple[str, list[Any]]:
    text, chunks = "", []
    async for chunk in stream:
        chunks.append(chunk)
        for choice in chunk.choices:
            text += choice.delta.content or ""
    return text, chunks


async def test_a_stream_is_restored_across_chunks_and_billed_from_usage(sdk, runtime) -> None:  # type: ignore[no-untyped-def]
    stream = await sdk().chat.completions.create(
        model="ok",
        messages=hello(f"Mail {EMAIL} now"),
        stream=True,
        stream_options={"include_usage": True},
    )
    text, chunks = await collect(stream)
    assert EMAIL in text
    assert chunks[-1].usage is not None and chunks[-1].choices == []
    assert all(c.model == "ok" for c in chunks)
    event = chat_events(runtime)[-1]
    assert event.outcome == "success"
    assert event.details["tokens"]["source"] == "upstream"
    assert event.details["tokens"]["completion"] == chunks[-1].usage.completion_tokens
    assert "ttft_ms" in event.details


async def test_usage_is_not_sent_unless_the_client_asked(sdk) -> None:  # type: ignore[no-untyped-def]
    stream = await sdk().chat.completions.create(model="ok", messages=hello(), stream=True)
    _, chunks = await collect(stream)
    assert all(c.usage is None for c in chunks)


async def test_a_stream_without_usage_is_counted_with_the_tokenizer(sdk, runtime) -> None:  # type: ignore[no-untyped-def]
    stream = await sdk().chat.completions.create(
        model="no-usage", messages=hello("Count me"), stream=True
    )
    text, _ = await collect(stream)
    event = chat_events(runtime)[-1]
    from bastion.gateway.tokens import count_text

    assert event.details["tokens"]["source"] == "counted"
    assert event.details["tokens"]["completion"] == count_text(text)
    assert event.details["cost_usd"] > 0


@pytest.mark.parametrize("model", ["cut", "stall", "malformed", "mid-error"])
async def test_a_stream_that_breaks_ends_with_an_explicit_error(sdk, runtime, model) -> None:  # type: ignore[no-untyped-def]
    stream = await sdk().chat.completions.create(
        model=model, messages=hello("a b c d e f g"), stream=True
    )
    with pytest.raises(openai.APIError):
        await collect(stream)
    event = chat_events(runtime)[-1]
    assert event.outcome == "failure"
    assert "stream_interrupted" in event.flags
    if model == "cut":
        assert event.details["tokens"]["completion"] > 0  # billed for what was generated
        assert event.details["cost_usd"] > 0


async def test_a_stream_without_done_but_finished_is_complete(sdk, runtime) -> None:  # type: ignore[no-untyped-def]
    stream = await sdk().chat.completions.create(model="no-done", messages=hello(), stream=True)
    text, _ = await collect(stream)
    assert text
    event = chat_events(runtime)[-1]
    assert event.outcome == "success"
    assert "upstream_missing_done" in event.flags


async def test_a_slow_first_token_falls_back_before_anything_is_sent(sdk, runtime) -> None:  # type: ignore[no-untyped-def]
    stream = await sdk().chat.completions.create(model="slow-first", messages=hello(), stream=True)
    _, chunks = await collect(stream)
    assert chunks[0].model == "ok"
    attempts = chat_events(runtime)[-1].details["attempts"]
    assert attempts[0]["outcome"] == "first_token_timeout"


# --- other providers and endpoints ----------------------------------------------------------------


async def test_azure_and_anthropic_upstreams(sdk, upstream) -> None:  # type: ignore[no-untyped-def]
    az = await sdk().chat.completions.create(model="az", messages=hello("Hi Azure"))
    assert az.model == "az" and az.choices[0].message.content
    request = upstream.requests[-1]
    assert "my-deployment" in request.path
    assert request.headers.get("api-key") == "azure-secret"
    claude = await sdk().chat.completions.create(
        model="claude", messages=[{"role": "system", "content": "Be brief"}, *hello("Hi Claude")]
    )
    assert claude.model == "claude" and claude.choices[0].message.content
    assert upstream.requests[-1].headers.get("x-api-key") == "anthropic-secret"
    assert upstream.requests[-1].body["system"]
    stream = await sdk().chat.completions.create(
        model="claude", messages=hello("Stream it"), stream=True
    )
    text, _ = await collect(stream)
    assert text


async def test_tool_calls_round_trip(sdk) -> None:  # type: ignore[no-untyped-def]
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "description": "Find a customer",
                "parameters": {
                    "type": "object",
                    "properties": {"email": {"type": "string"}},
                    "required": ["email"],
                },
            },
        }
    ]
    for model in ("ok", "claude"):
        answer = await sdk().chat.completions.create(
            model=model,
            messages=hello(f"Find {EMAIL}"),
            tools=tools,  # type: ignore[arg-type]
        )
        call = answer.choices[0].message.tool_calls[0]  # type: ignore[index]
        assert call.function.name == "lookup"
        json.loads(call.function.arguments)


async def test_embeddings_through_an_upstream_and_locally(sdk, runtime) -> None:  # type: ignore[no-untyped-def]
    client = sdk()
    remote = await client.embeddings.create(model="embed", input=["one", "two"])
    assert len(remote.data) == 2 and remote.model == "embed"
    local = await client.embeddings.create(model="local-embed", input="offline text")
    assert len(local.data[0].embedding) > 0
    with pytest.raises(openai.BadRequestError):
        await client.embeddings.create(model="ok", input="x")


async def test_denylist_flags_and_blocks(sdk, runtime, upstream) -> None:  # type: ignore[no-untyped-def]
    await sdk().chat.completions.create(model="ok", messages=hello("this is PHI data"))
    assert any(f.startswith("denylist") for f in chat_events(runtime)[-1].flags)
    with pytest.raises(openai.BadRequestError) as err:
        await sdk().chat.completions.create(model="ok", messages=hello("about Project Bluebird"))
    assert err.value.code == "denylist_blocked"
    assert upstream.count("ok") == 1


async def test_detection_failure_refuses_and_forwards_nothing(
    sdk,
    app,
    upstream,
    runtime,  # type: ignore[no-untyped-def]
    monkeypatch,
) -> None:
    client = sdk()
    await client.models.list()
    guard = app.state.gateway.guard(runtime.policy.policy)

    def broken(text: str) -> list[Any]:
        raise RuntimeError("detector crashed")

    monkeypatch.setattr(guard.analyzer, "analyze", broken)
    with pytest.raises(openai.InternalServerError) as err:
        await client.chat.completions.create(model="ok", messages=hello(f"mail {EMAIL}"))
    assert err.value.code == "privacy_detection_failed"
    assert upstream.requests == []
    assert chat_events(runtime)[-1].outcome == "refused"


async def test_no_answer_goes_out_unrecorded_when_the_ledger_is_down(sdk, app, runtime) -> None:  # type: ignore[no-untyped-def]
    from bastion.gateway.counters import BudgetLimit

    client = sdk("admin", team="capped")
    await client.models.list()
    runtime.ledger.close()  # the database behind the ledger is gone, say
    with pytest.raises(openai.InternalServerError) as err:
        await client.chat.completions.create(model="pricey", messages=hello(), max_tokens=20)
    assert err.value.status_code == 503
    assert err.value.code == "audit_unavailable"
    stream = await client.chat.completions.create(
        model="pricey", messages=hello("a b c"), max_tokens=20, stream=True
    )
    with pytest.raises(openai.APIError) as streamed:
        await collect(stream)
    assert "ledger" in str(streamed.value)
    [state] = await app.state.gateway.counters.budget_states(
        [BudgetLimit("team:capped", 1.0, "day")]
    )
    assert state.reserved_usd == pytest.approx(0.0, abs=1e-9)  # nothing left reserved


async def test_an_answer_that_cannot_be_checked_is_withheld_but_billed(
    sdk,
    app,
    upstream,  # type: ignore[no-untyped-def]
    runtime,
    monkeypatch,
) -> None:
    client = sdk()
    await client.models.list()
    guard = app.state.gateway.guard(runtime.policy.policy)
    analyze = guard.analyzer.analyze

    def broken_on_answers(text: str) -> list[Any]:
        if text.startswith("echo"):  # the fake upstream's answers; prompts pass
            raise RuntimeError("detector crashed")
        return analyze(text)

    monkeypatch.setattr(guard.analyzer, "analyze", broken_on_answers)
    with pytest.raises(openai.InternalServerError) as err:
        await client.chat.completions.create(model="once", messages=hello("Say hi"))
    assert err.value.code == "privacy_detection_failed"
    assert upstream.count("500-once") == 2  # the upstream answered (after one retry)
    event = chat_events(runtime)[-1]
    assert event.outcome == "failure"
    assert event.details["cost_usd"] > 0  # the upstream was paid: so is the call


async def test_a_conversation_keeps_its_placeholders_and_no_one_else_gets_them(sdk) -> None:  # type: ignore[no-untyped-def]
    conversation = {"x-bastion-conversation-id": "thread-42"}
    ann = sdk("admin", user="ann")
    first = await ann.chat.completions.create(
        model="ok", messages=hello(f"Mail {EMAIL}"), extra_headers=conversation
    )
    assert EMAIL in (first.choices[0].message.content or "")
    # Later in the same conversation the same value is the same placeholder, restored.
    again = await ann.chat.completions.create(
        model="ok", messages=hello("Reply to <EMAIL_1> again"), extra_headers=conversation
    )
    assert EMAIL in (again.choices[0].message.content or "")
    # Another user naming the same conversation id gets nothing of ann's back.
    eve = await sdk("admin", user="eve").chat.completions.create(
        model="ok", messages=hello("Repeat <EMAIL_1>"), extra_headers=conversation
    )
    assert EMAIL not in (eve.choices[0].message.content or "")


async def test_a_reload_to_a_privacy_section_that_cannot_run_keeps_the_old_policy(  # type: ignore[no-untyped-def]
    sdk, runtime, home
) -> None:
    client = sdk()
    await client.models.list()
    path = home / "policy.yaml"
    before = runtime.policy.current.digest
    path.write_text(
        path.read_text().replace(
            "  on_error: block\n",
            "  on_error: block\n  ner: {backend: gliner, model: /nowhere/gliner-model}\n",
        )
    )
    outcome = runtime.reload_policy("system", "test")
    assert outcome.error is not None
    assert "gliner" in str(outcome.error)
    assert runtime.policy.current.digest == before  # still in force
    answer = await client.chat.completions.create(model="local", messages=hello())
    assert answer.choices[0].message.content  # and calls go on as before


def test_idle_upstream_connections_are_closed_before_the_servers_close_them() -> None:
    """A pooled connection the upstream closes while Bastion sends on it resets the call
    (a retry and a breaker failure for nothing), so Bastion's pool lets go first: under
    uvicorn's 5 s, the keep-alive of vLLM and of the fake upstream. The pool is checked
    as built, not just the constant."""
    import inspect

    import uvicorn

    from bastion.gateway import upstream

    server_keeps = inspect.signature(uvicorn.Config).parameters["timeout_keep_alive"].default
    assert server_keeps > upstream.KEEPALIVE_S

    async def built() -> float:
        transport = upstream.Transport()
        try:
            connector = transport.session().connector
            assert connector is not None
            return float(connector._keepalive_timeout)  # type: ignore[attr-defined]
        finally:
            await transport.aclose()

    assert asyncio.run(built()) == upstream.KEEPALIVE_S
