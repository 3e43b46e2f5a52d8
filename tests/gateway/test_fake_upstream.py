"""The fake upstream itself: OpenAI's, Azure's and Anthropic's wire shapes, and every
failure scenario as the official ``openai`` SDK and a raw httpx client see it."""

from __future__ import annotations

import base64
import contextlib
import json
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from bastion.testing import FakeUpstream, Scenario, ScenarioError, parse

HI = [{"role": "user", "content": "Mail <EMAIL_ADDRESS_1> about the plan"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "send_mail",
            "parameters": {
                "type": "object",
                "properties": {"to": {"type": "string"}},
                "required": ["to"],
            },
        },
    }
]
ANTHROPIC = {"x-api-key": "anthropic-secret", "anthropic-version": "2023-06-01"}


@pytest.fixture
def sdk(upstream: FakeUpstream) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=upstream.base_url + "/v1", api_key="sk-test", max_retries=0, timeout=3
    ) as client:  # closed here, not whenever the collector runs (a ResourceWarning then)
        yield client


@pytest.fixture
def http(upstream: FakeUpstream) -> Any:
    with httpx.Client(base_url=upstream.base_url, timeout=3) as client:
        yield client


def chat(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": HI, **extra}


def sse(response: httpx.Response) -> list[str]:
    """The ``data:`` payloads of a stream, as far as it goes."""
    return [line[6:] for line in response.iter_lines() if line.startswith("data: ")]


def content_of(payloads: list[str]) -> list[str]:
    out = []
    for data in payloads:
        chunk = json.loads(data)
        for choice in chunk.get("choices", []):
            if choice["delta"].get("content"):
                out.append(choice["delta"]["content"])
    return out


# --- the grammar -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ok", Scenario()),
        ("gpt-4o-mini", Scenario()),
        ("delay:60", Scenario(delay_s=0.06)),
        ("429-retry-after:2", Scenario(fault="429-retry-after", param=2)),
        ("flap:0.5", Scenario(fault="flap", param=0.5)),
        ("delay:200+cut:3", Scenario(fault="cut", param=3, delay_s=0.2)),
        ("no-usage+no-done", Scenario(no_usage=True, no_done=True)),
        ("first-token-delay:300", Scenario(first_token_delay_s=0.3)),
        ("crlf+keepalive+split:3", Scenario(quirks=frozenset({"crlf", "keepalive"}), split=3)),
    ],
)
def test_scenario_names_parse(name: str, expected: Scenario) -> None:
    assert parse(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        "cutt:3",
        "delay",
        "delay:x",
        "503:1",
        "cut:3+stall:2",
        "delay:1+delay:2",
        "delay:-5",
        "llama3:8b",
    ],
)
def test_malformed_scenario_names_are_refused(name: str, sdk: openai.OpenAI) -> None:
    with pytest.raises(ScenarioError):
        parse(name)
    with pytest.raises(openai.BadRequestError) as err:
        sdk.chat.completions.create(model=name, messages=HI)
    assert err.value.code == "unknown_scenario"


# --- OpenAI shapes ---------------------------------------------------------------------------


def test_a_completion_echoes_the_prompt_in_openai_shape(
    http: httpx.Client, upstream: FakeUpstream
) -> None:
    response = http.post(
        "/v1/chat/completions",
        json=chat("ok", user="u1", x_unknown=1),
        headers={"authorization": "Bearer sk-test"},
    )
    assert response.headers["x-fake-upstream"] == "1"
    body = response.json()
    assert body["object"] == "chat.completion" and body["id"] and body["created"] > 0
    assert body["model"] == "ok"
    [choice] = body["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop"
    assert choice["message"] == {
        "role": "assistant",
        "content": "echo: Mail <EMAIL_ADDRESS_1> about the plan",
        "refusal": None,
        "annotations": [],
    }
    assert body["usage"] == {"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11}
    [seen] = upstream.requests
    assert seen.path == "/v1/chat/completions" and seen.model == "ok"
    assert seen.body["x_unknown"] == 1 and seen.body["user"] == "u1"
    assert seen.headers["authorization"] == "Bearer sk-test"
    assert seen.body_size == len(response.request.content)
    assert upstream.count("ok") == 1


def test_a_stream_splits_placeholders_and_reports_usage_when_asked(sdk: openai.OpenAI) -> None:
    chunks = list(
        sdk.chat.completions.create(
            model="ok", messages=HI, stream=True, stream_options={"include_usage": True}
        )
    )
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert "".join(pieces) == "echo: Mail <EMAIL_ADDRESS_1> about the plan"
    assert not any("<EMAIL_ADDRESS_1>" in p for p in pieces)  # split across chunks
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 11
    assert all(c.usage is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1
    unasked = list(sdk.chat.completions.create(model="ok", messages=HI, stream=True))
    assert all(c.usage is None and c.choices for c in unasked)


def test_a_stream_ends_with_done(http: httpx.Client) -> None:
    with http.stream("POST", "/v1/chat/completions", json=chat("ok", stream=True)) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        payloads = sse(response)
    assert payloads[-1] == "[DONE]"
    assert all(json.loads(p)["object"] == "chat.completion.chunk" for p in payloads[:-1])


def test_tools_are_called_with_the_prompt_as_argument(sdk: openai.OpenAI) -> None:
    answer = sdk.chat.completions.create(model="ok", messages=HI, tools=TOOLS)  # type: ignore[arg-type]
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.function.name == "send_mail"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"to": "Mail <EMAIL_ADDRESS_1> about the plan"}  # type: ignore[union-attr]
    chunks = list(sdk.chat.completions.create(model="ok", messages=HI, tools=TOOLS, stream=True))  # type: ignore[arg-type]
    calls = [t for c in chunks if c.choices for t in c.choices[0].delta.tool_calls or []]
    assert calls[0].function.name == "send_mail" and calls[0].id  # type: ignore[union-attr]
    assert "".join(t.function.arguments or "" for t in calls) == call.function.arguments  # type: ignore[union-attr]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    plain = sdk.chat.completions.create(model="ok", messages=HI, tools=TOOLS, tool_choice="none")  # type: ignore[arg-type]
    assert plain.choices[0].message.content


def test_max_tokens_truncates_and_says_so(sdk: openai.OpenAI) -> None:
    answer = sdk.chat.completions.create(model="ok", messages=HI, max_tokens=2)
    assert answer.choices[0].message.content == "echo: Mail"
    assert answer.choices[0].finish_reason == "length"


def test_embeddings_are_deterministic_in_floats_and_base64(
    sdk: openai.OpenAI, http: httpx.Client
) -> None:
    first = sdk.embeddings.create(model="ok", input=["one two", "three"])  # SDK asks base64
    again = http.post(
        "/v1/embeddings",
        json={"model": "ok", "input": ["one two", "three"], "encoding_format": "float"},
    ).json()
    assert [d.embedding for d in first.data] == [d["embedding"] for d in again["data"]]
    assert len(first.data[0].embedding) == 8 and first.data[0].embedding != first.data[1].embedding
    assert abs(sum(x * x for x in first.data[0].embedding) - 1) < 1e-5
    assert first.usage.prompt_tokens == 3
    raw = http.post(
        "/v1/embeddings", json={"model": "ok", "input": "x", "encoding_format": "base64"}
    ).json()
    assert len(struct.unpack("<8f", base64.b64decode(raw["data"][0]["embedding"]))) == 8


def test_models_are_listed(sdk: openai.OpenAI) -> None:
    assert "ok" in [m.id for m in sdk.models.list()]


# --- failures before an answer ----------------------------------------------------------------


def test_429_with_and_without_retry_after(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as bare:
        sdk.chat.completions.create(model="429", messages=HI)
    assert "retry-after" not in bare.value.response.headers
    assert bare.value.code == "rate_limit_exceeded"
    with pytest.raises(openai.RateLimitError) as told:
        sdk.chat.completions.create(model="429-retry-after:2", messages=HI)
    assert told.value.response.headers["retry-after"] == "2"


def test_500_once_per_name_then_success_and_again_after_reset(
    sdk: openai.OpenAI, upstream: FakeUpstream
) -> None:
    with pytest.raises(openai.InternalServerError):
        sdk.chat.completions.create(model="500-once", messages=HI)
    assert sdk.chat.completions.create(model="500-once", messages=HI).choices[0].message.content
    with pytest.raises(openai.InternalServerError):  # another name has its own first call
        sdk.chat.completions.create(model="500-once+no-usage", messages=HI)
    assert upstream.count("500-once") == 2
    upstream.reset()
    assert upstream.requests == [] and upstream.count("500-once") == 0
    with pytest.raises(openai.InternalServerError):
        sdk.chat.completions.create(model="500-once", messages=HI)


def test_503_forever(sdk: openai.OpenAI) -> None:
    for _ in range(3):
        with pytest.raises(openai.InternalServerError) as err:
            sdk.chat.completions.create(model="503", messages=HI)
        assert err.value.status_code == 503


def test_flap_is_down_for_a_while_then_healthy(sdk: openai.OpenAI, upstream: FakeUpstream) -> None:
    with pytest.raises(openai.InternalServerError):
        sdk.chat.completions.create(model="flap:0.3", messages=HI)
    time.sleep(0.35)
    assert sdk.chat.completions.create(model="flap:0.3", messages=HI).choices
    # a reset during an outage ends it ("the upstream recovers") ...
    with pytest.raises(openai.InternalServerError):
        sdk.chat.completions.create(model="flap:30", messages=HI)
    upstream.reset()
    assert sdk.chat.completions.create(model="flap:30", messages=HI).choices
    # ... and a full reset starts the next outage afresh
    upstream.reset(recover=False)
    with pytest.raises(openai.InternalServerError):
        sdk.chat.completions.create(model="flap:30", messages=HI)


def test_reset_drops_the_connection_before_headers(
    sdk: openai.OpenAI, http: httpx.Client, upstream: FakeUpstream
) -> None:
    with pytest.raises(openai.APIConnectionError):
        sdk.chat.completions.create(model="reset", messages=HI)
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        http.post("/v1/chat/completions", json=chat("reset"))
    assert upstream.count("reset") == 2
    assert http.post("/v1/chat/completions", json=chat("ok")).status_code == 200


def test_hang_never_answers(sdk: openai.OpenAI) -> None:
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        sdk.chat.completions.create(model="hang", messages=HI, timeout=0.3)
    assert time.monotonic() - started >= 0.3


def test_delay_waits_before_answering(sdk: openai.OpenAI) -> None:
    started = time.monotonic()
    sdk.chat.completions.create(model="delay:200", messages=HI)
    assert time.monotonic() - started >= 0.2


def test_context_length_and_content_policy(sdk: openai.OpenAI, http: httpx.Client) -> None:
    with pytest.raises(openai.BadRequestError) as long:
        sdk.chat.completions.create(model="context-length", messages=HI)
    assert long.value.code == "context_length_exceeded" and long.value.param == "messages"
    assert "maximum context length" in long.value.message
    with pytest.raises(openai.BadRequestError) as unsafe:
        sdk.chat.completions.create(model="content-policy", messages=HI)
    assert unsafe.value.code == "content_policy_violation"


# --- failures mid-stream ----------------------------------------------------------------------


def test_first_token_delay_sends_headers_then_waits(http: httpx.Client) -> None:
    with http.stream(
        "POST", "/v1/chat/completions", json=chat("first-token-delay:300", stream=True)
    ) as response:
        headers_at = time.monotonic()
        assert response.status_code == 200
        next(response.iter_lines())
        # The 300 ms wait came after the headers, not before them.
        assert time.monotonic() - headers_at >= 0.25


def read_into(payloads: list[str], http: httpx.Client, model: str, **kwargs: Any) -> None:
    """Collect a stream's ``data:`` payloads as they come, until it ends or breaks."""
    body = chat(model, stream=True)
    with http.stream("POST", "/v1/chat/completions", json=body, **kwargs) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                payloads.append(line[6:])


def test_cut_closes_the_connection_after_n_chunks(http: httpx.Client, sdk: openai.OpenAI) -> None:
    payloads: list[str] = []
    with pytest.raises(httpx.RemoteProtocolError):
        read_into(payloads, http, "cut:3")
    assert len(content_of(payloads)) == 3 and "[DONE]" not in payloads
    with pytest.raises(openai.APIConnectionError):
        list(sdk.chat.completions.create(model="cut:3", messages=HI, stream=True))


def test_stall_keeps_the_connection_open_and_silent(http: httpx.Client) -> None:
    payloads: list[str] = []
    with pytest.raises(httpx.ReadTimeout):
        read_into(payloads, http, "stall:2", timeout=httpx.Timeout(3, read=0.3))
    assert len(content_of(payloads)) == 2


def test_malformed_sends_one_chunk_that_is_not_json(http: httpx.Client) -> None:
    with http.stream(
        "POST", "/v1/chat/completions", json=chat("malformed", stream=True)
    ) as response:
        payloads = sse(response)
    bad = []
    for data in payloads[:-1]:
        try:
            json.loads(data)
        except ValueError:
            bad.append(data)
    assert len(bad) == 1 and payloads[-1] == "[DONE]"


def test_no_done_ends_cleanly_without_the_terminator(http: httpx.Client) -> None:
    with http.stream(
        "POST",
        "/v1/chat/completions",
        json=chat("no-done", stream=True, stream_options={"include_usage": True}),
    ) as response:
        payloads = sse(response)
    assert "[DONE]" not in payloads
    assert json.loads(payloads[-1])["usage"]["total_tokens"] == 11


def test_no_usage_even_when_asked(sdk: openai.OpenAI) -> None:
    assert sdk.chat.completions.create(model="no-usage", messages=HI).usage is None
    chunks = list(
        sdk.chat.completions.create(
            model="no-usage", messages=HI, stream=True, stream_options={"include_usage": True}
        )
    )
    assert all(c.usage is None and c.choices for c in chunks)


def test_error_mid_stream(sdk: openai.OpenAI, http: httpx.Client) -> None:
    with http.stream(
        "POST", "/v1/chat/completions", json=chat("error-mid-stream", stream=True)
    ) as response:
        payloads = sse(response)
    assert len(content_of(payloads[:-1])) == 2
    assert json.loads(payloads[-1])["error"]["type"] == "server_error"
    with pytest.raises(openai.APIError):
        list(sdk.chat.completions.create(model="error-mid-stream", messages=HI, stream=True))


def test_non_streaming_cut_and_malformed_bodies(http: httpx.Client) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        http.post("/v1/chat/completions", json=chat("cut:1"))
    broken = http.post("/v1/chat/completions", json=chat("malformed"))
    assert broken.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        broken.json()


# --- Azure -------------------------------------------------------------------------------------


def test_azure_deployments(upstream: FakeUpstream, http: httpx.Client) -> None:
    azure = openai.AzureOpenAI(
        azure_endpoint=upstream.base_url,
        api_key="azure-secret",
        api_version="2024-10-21",
        max_retries=0,
        timeout=3,
    )
    answer = azure.chat.completions.create(model="my-deployment", messages=HI)
    assert answer.model == "my-deployment" and answer.choices[0].message.content
    seen = upstream.requests[-1]
    assert seen.path == "/openai/deployments/my-deployment/chat/completions"
    assert seen.query == "api-version=2024-10-21" and seen.headers["api-key"] == "azure-secret"
    assert len(azure.embeddings.create(model="my-deployment", input="hi").data[0].embedding) == 8
    with pytest.raises(openai.BadRequestError) as err:
        azure.chat.completions.create(model="content-policy", messages=HI)
    assert err.value.code == "content_filter"
    assert err.value.body["innererror"]["code"] == "ResponsibleAIPolicyViolation"  # type: ignore[index]
    path = "/openai/deployments/d/chat/completions"
    assert http.post(path, json={"messages": HI}, headers={"api-key": "k"}).status_code == 404
    assert http.post(path + "?api-version=2024-10-21", json={"messages": HI}).status_code == 401


# --- Anthropic ---------------------------------------------------------------------------------


def events(response: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    out, kind = [], ""
    for line in response.iter_lines():
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            out.append((kind, json.loads(line[6:])))
    return out


def test_anthropic_messages(http: httpx.Client, upstream: FakeUpstream) -> None:
    body = {"model": "claude-test", "max_tokens": 100, "system": "Be brief", "messages": HI}
    assert http.post("/v1/messages", json=body).status_code == 401
    assert (
        http.post("/v1/messages", json=body, headers={"x-api-key": "k"}).json()["error"]["type"]
        == "invalid_request_error"
    )
    answer = http.post("/v1/messages", json=body, headers=ANTHROPIC).json()
    assert answer["type"] == "message" and answer["role"] == "assistant"
    assert answer["content"] == [
        {"type": "text", "text": "echo: Mail <EMAIL_ADDRESS_1> about the plan"}
    ]
    assert answer["stop_reason"] == "end_turn"
    assert answer["usage"] == {"input_tokens": 7, "output_tokens": 6}
    assert upstream.requests[-1].headers["x-api-key"] == "anthropic-secret"
    tools = [
        {
            "name": "send_mail",
            "input_schema": {"type": "object", "properties": {"to": {"type": "string"}}},
        }
    ]
    called = http.post("/v1/messages", json={**body, "tools": tools}, headers=ANTHROPIC).json()
    assert called["stop_reason"] == "tool_use"
    assert called["content"][0]["input"] == {"to": "Mail <EMAIL_ADDRESS_1> about the plan"}
    refused = http.post(
        "/v1/messages", json={**body, "model": "content-policy"}, headers=ANTHROPIC
    ).json()
    assert refused["stop_reason"] == "refusal"
    limited = http.post("/v1/messages", json={**body, "model": "429"}, headers=ANTHROPIC)
    assert limited.status_code == 429
    assert limited.json() == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": limited.json()["error"]["message"]},
    }


def test_anthropic_streams(http: httpx.Client) -> None:
    body = {"model": "claude-test", "max_tokens": 100, "messages": HI, "stream": True}
    with http.stream("POST", "/v1/messages", json=body, headers=ANTHROPIC) as response:
        got = events(response)
    kinds = [k for k, _ in got]
    assert kinds[:3] == ["message_start", "content_block_start", "ping"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert all(k == data["type"] for k, data in got)
    text = "".join(d["delta"]["text"] for k, d in got if k == "content_block_delta")
    assert text == "echo: Mail <EMAIL_ADDRESS_1> about the plan"
    assert got[-2][1]["delta"]["stop_reason"] == "end_turn"
    assert got[-2][1]["usage"]["output_tokens"] == 6
    tools = [{"name": "send_mail", "input_schema": {"type": "object"}}]
    with http.stream(
        "POST", "/v1/messages", json={**body, "tools": tools}, headers=ANTHROPIC
    ) as response:
        got = events(response)
    assert got[1][1]["content_block"]["type"] == "tool_use"
    partial = "".join(d["delta"]["partial_json"] for k, d in got if k == "content_block_delta")
    assert json.loads(partial) == {"input": "Mail <EMAIL_ADDRESS_1> about the plan"}
    with http.stream(
        "POST", "/v1/messages", json={**body, "model": "error-mid-stream"}, headers=ANTHROPIC
    ) as response:
        got = events(response)
    assert got[-1] == (
        "error",
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
    )


# --- control and lifecycle ---------------------------------------------------------------------


#: Far longer than anything under test takes: only what would never end reaches it.
HANG_GUARD_S = 30.0


def test_control_endpoints(http: httpx.Client, upstream: FakeUpstream) -> None:
    http.post("/v1/chat/completions", json=chat("ok"), headers={"authorization": "Bearer s"})
    [logged] = http.get("/_control/requests").json()
    assert logged["model"] == "ok" and logged["headers"]["authorization"] == "Bearer s"
    assert logged["body"]["messages"] == HI
    assert http.post("/_control/reset").status_code == 200
    assert upstream.requests == []


def test_stops_with_hung_and_stalled_clients() -> None:
    # The clients never time out: stop() returns, and they end, only if the server
    # closes their connections instead of waiting for handlers that never finish.
    with FakeUpstream() as up, httpx.Client(base_url=up.base_url, timeout=None) as client:

        def call(model: str, stream: bool) -> None:
            with contextlib.suppress(httpx.HTTPError):
                client.post("/v1/chat/completions", json=chat(model, stream=stream))

        threads = [
            threading.Thread(target=call, args=a, daemon=True)
            for a in (("hang", False), ("stall:1", True))
        ]
        for thread in threads:
            thread.start()
        while len(up.requests) < 2:
            time.sleep(0.01)
        stopper = threading.Thread(target=up.stop, daemon=True)
        stopper.start()
        stopper.join(HANG_GUARD_S)
        assert not stopper.is_alive(), "stop() waited for the hung handlers"
        for thread in threads:
            thread.join(HANG_GUARD_S)
            assert not thread.is_alive(), "a client was left waiting on a stopped server"


def test_the_command_line_serves_on_the_given_port() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bastion.testing.upstream", "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[-1]
        answer = httpx.post(url + "/v1/chat/completions", json=chat("ok"), timeout=5)
        assert answer.json()["choices"][0]["message"]["content"].startswith("echo: ")
        with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
            httpx.post(url + "/v1/chat/completions", json=chat("reset"), timeout=5)
    finally:
        proc.terminate()
        proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()
