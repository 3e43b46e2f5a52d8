"""The Anthropic provider: OpenAI requests in, Messages API out, and back again."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import SecretStr

from bastion.gateway.errors import UpstreamFailure
from bastion.gateway.providers.anthropic import AnthropicProvider
from bastion.gateway.providers.base import Target
from bastion.policy.schema import ProviderConfig

PROVIDER = AnthropicProvider()


def target(**config: Any) -> Target:
    return Target(
        model="claude",
        upstream_model="claude-sonnet-4-5",
        provider="anthropic",
        config=ProviderConfig(kind="anthropic", **config),
        api_key=SecretStr("sk-ant-test"),
    )


def request(body: dict[str, Any], *, stream: bool = False, **config: Any) -> dict[str, Any]:
    return PROVIDER.chat_request(target(**config), body, stream=stream).json


def sse(text: str) -> list[tuple[str | None, str]]:
    """(event, data) pairs of a server-sent event stream, as the transport reads them."""
    events = []
    for block in text.strip().split("\n\n"):
        event, data = None, []
        for line in block.splitlines():
            field, _, value = line.partition(": ")
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)
        events.append((event, "\n".join(data)))
    return events


def run(stream_text: str) -> tuple[list[dict[str, Any]], bool]:
    translator = PROVIDER.chat_stream(target())
    chunks = []
    for event, data in sse(stream_text):
        chunks.extend(translator.feed(event, data))
    return chunks, translator.done


# --- requests ---------------------------------------------------------------------------


def test_url_headers_and_required_fields() -> None:
    built = PROVIDER.chat_request(
        target(headers={"anthropic-beta": "x"}),
        {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "Hi"}]},
        stream=False,
    )
    assert built.url == "https://api.anthropic.com/v1/messages"
    assert built.headers == {
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "x",
        "x-api-key": "sk-ant-test",
    }
    assert built.json == {
        "model": "claude-sonnet-4-5",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
        "max_tokens": 4096,
    }


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("https://proxy.example/anthropic", "https://proxy.example/anthropic/v1/messages"),
        ("https://proxy.example/v1/", "https://proxy.example/v1/messages"),
    ],
)
def test_base_url_and_api_version(base_url: str, expected: str) -> None:
    built = PROVIDER.chat_request(
        target(base_url=base_url, api_version="2024-01-01"),
        {"messages": [{"role": "user", "content": "Hi"}]},
        stream=True,
    )
    assert built.url == expected
    assert built.headers["anthropic-version"] == "2024-01-01"
    assert built.json["stream"] is True


def test_sampling_fields_and_user() -> None:
    body = request(
        {
            "messages": [{"role": "user", "content": "Hi"}],
            "max_completion_tokens": 300,
            "max_tokens": 999,
            "temperature": 1.6,
            "top_p": 0.9,
            "stop": "END",
            "user": "alice",
        }
    )
    assert body["max_tokens"] == 300
    assert body["temperature"] == 1.0  # clamped to Anthropic's range
    assert body["top_p"] == 0.9
    assert body["stop_sequences"] == ["END"]
    assert body["metadata"] == {"user_id": "alice"}
    assert request({"messages": [{"role": "user", "content": "x"}], "stop": ["a", "b"]})[
        "stop_sequences"
    ] == ["a", "b"]


def test_system_messages_are_lifted_and_joined() -> None:
    body = request(
        {
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "system", "content": [{"type": "text", "text": "Cite articles."}]},
                {"role": "user", "content": "What is GDPR?"},
            ]
        }
    )
    assert body["system"] == "You are terse.\n\nCite articles."
    assert [m["role"] for m in body["messages"]] == ["user"]


def test_multipart_content_and_images() -> None:
    body = request(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is in these?"},
                        {
                            "type": "image_url",
                            "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
                        },
                        {
                            "type": "image_url",
                            "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"},
                        },
                    ],
                }
            ]
        }
    )
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "What is in these?"},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
        },
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


def test_consecutive_same_role_messages_are_merged() -> None:
    body = request(
        {
            "messages": [
                {"role": "user", "content": "First."},
                {"role": "user", "content": "Second."},
                {"role": "assistant", "content": "Reply. "},
            ]
        }
    )
    assert body["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "First."}, {"type": "text", "text": "Second."}],
        },
        # a final (prefilled) assistant turn may not end in whitespace
        {"role": "assistant", "content": [{"type": "text", "text": "Reply."}]},
    ]


def test_tool_round_trip_request() -> None:
    body = request(
        {
            "messages": [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "toolu_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                        },
                        {
                            "id": "toolu_2",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
                {
                    "role": "tool",
                    "tool_call_id": "toolu_2",
                    "content": [{"type": "text", "text": "24C"}],
                },
                {"role": "user", "content": "Which is warmer?"},
            ],
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "description": "Current weather",
                        "parameters": {
                            "type": "object",
                            "properties": {"city": {"type": "string"}},
                            "required": ["city"],
                        },
                    },
                }
            ],
            "tool_choice": "required",
            "parallel_tool_calls": False,
        }
    )
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {
                    "type": "tool_use",
                    "id": "toolu_2",
                    "name": "get_weather",
                    "input": {"city": "Rome"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "24C"},
                {"type": "text", "text": "Which is warmer?"},
            ],
        },
    ]
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Current weather",
            "input_schema": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        }
    ]
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ("required", {"type": "any"}),
        ({"type": "function", "function": {"name": "f"}}, {"type": "tool", "name": "f"}),
    ],
)
def test_tool_choice(choice: Any, expected: dict[str, Any]) -> None:
    body = request(
        {
            "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "tool_choice": choice,
        }
    )
    assert body["tool_choice"] == expected
    assert body["tools"] == [{"name": "f", "input_schema": {"type": "object", "properties": {}}}]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "t1",
                                "type": "function",
                                "function": {"name": "f", "arguments": "{oops"},
                            }
                        ],
                    }
                ]
            },
            "not valid JSON",
        ),
        ({"messages": [{"role": "user", "content": "x"}], "n": 2}, "n must be 1"),
        (
            {
                "messages": [{"role": "user", "content": "x"}],
                "response_format": {"type": "json_object"},
            },
            "response_format",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}],
                    }
                ]
            },
            "image_url",
        ),
        ({"messages": [{"role": "tool", "content": "x"}]}, "tool_call_id"),
        ({"messages": []}, "non-empty"),
    ],
)
def test_requests_anthropic_cannot_serve_are_refused_clearly(
    body: dict[str, Any], message: str
) -> None:
    with pytest.raises(UpstreamFailure) as caught:
        request(body)
    assert caught.value.kind == "bad_request"
    assert caught.value.status == 400
    assert message in caught.value.message


# --- responses --------------------------------------------------------------------------


def test_text_response() -> None:
    data = {
        "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "Hi! "}, {"type": "text", "text": "I'm Claude."}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 10,
            "cache_creation_input_tokens": 5,
            "cache_read_input_tokens": 20,
            "output_tokens": 7,
        },
    }
    answer = PROVIDER.chat_response(target(), data)
    assert answer["object"] == "chat.completion"
    assert answer["model"] == "claude"
    assert answer["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hi! I'm Claude.", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert answer["usage"] == {
        "prompt_tokens": 35,
        "completion_tokens": 7,
        "total_tokens": 42,
        "prompt_tokens_details": {"cached_tokens": 20, "cache_write_tokens": 5},
    }


def test_tool_use_response() -> None:
    data = {
        "id": "msg_01Aq9w938a90dw8q",
        "type": "message",
        "role": "assistant",
        "content": [
            {"type": "text", "text": "I'll check."},
            {
                "type": "tool_use",
                "id": "toolu_01A09q90qw90lq917835lq9",
                "name": "get_weather",
                "input": {"location": "San Francisco, CA", "unit": "celsius"},
            },
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 472, "output_tokens": 89},
    }
    choice = PROVIDER.chat_response(target(), data)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "I'll check."
    (call,) = choice["message"]["tool_calls"]
    assert call["id"] == "toolu_01A09q90qw90lq917835lq9"
    assert call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {
        "location": "San Francisco, CA",
        "unit": "celsius",
    }


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
    ],
)
def test_finish_reasons(stop_reason: str, finish_reason: str) -> None:
    data = {"id": "m", "content": [], "stop_reason": stop_reason, "usage": {}}
    assert PROVIDER.chat_response(target(), data)["choices"][0]["finish_reason"] == finish_reason


def test_response_without_content_is_malformed() -> None:
    with pytest.raises(UpstreamFailure) as caught:
        PROVIDER.chat_response(target(), {"type": "message"})
    assert caught.value.kind == "malformed"


# --- errors -----------------------------------------------------------------------------


def error_body(kind: str, message: str) -> bytes:
    return json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()


@pytest.mark.parametrize(
    ("status", "kind", "message", "expected"),
    [
        (529, "overloaded_error", "Overloaded", "server_error"),
        (
            429,
            "rate_limit_error",
            "Number of request tokens has exceeded your rate limit",
            "rate_limited",
        ),
        (
            400,
            "invalid_request_error",
            "prompt is too long: 210000 tokens > 200000 maximum",
            "context_length_exceeded",
        ),
        (
            400,
            "invalid_request_error",
            "input length and `max_tokens` exceed context limit: 188240 + 21333 > 200000",
            "context_length_exceeded",
        ),
        (400, "invalid_request_error", "messages: roles must alternate", "bad_request"),
        (401, "authentication_error", "invalid x-api-key", "auth"),
        (500, "api_error", "Internal server error", "server_error"),
    ],
)
def test_error_bodies_are_classified(status: int, kind: str, message: str, expected: str) -> None:
    failure = PROVIDER.classify_error(status, error_body(kind, message), {"retry-after": "7"})
    assert failure.kind == expected
    assert failure.message == message
    assert failure.upstream_status == status
    assert failure.retry_after == 7.0


# --- streams (the example streams of Anthropic's streaming documentation) ----------------

TEXT_STREAM = """
event: message_start
data: {"type": "message_start", "message": {"id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY", "type": "message", "role": "assistant", "content": [], "model": "claude-sonnet-4-5", "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 25, "output_tokens": 1}}}

event: content_block_start
data: {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}

event: content_block_delta
data: {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "!"}}

event: content_block_stop
data: {"type": "content_block_stop", "index": 0}

event: message_delta
data: {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence":null}, "usage": {"output_tokens": 15}}

event: message_stop
data: {"type": "message_stop"}
"""

TOOL_STREAM = """
event: message_start
data: {"type":"message_start","message":{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","type":"message","role":"assistant","model":"claude-sonnet-4-5","stop_sequence":null,"usage":{"input_tokens":472,"output_tokens":2},"content":[],"stop_reason":null}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Okay"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":", let's check the weather for San Francisco, CA:"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\\"location\\":"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":" \\"San Francisc"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"o, CA\\", \\"unit\\": \\"fah"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"renheit\\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}

event: message_stop
data: {"type":"message_stop"}
"""


def test_text_stream_becomes_openai_chunks() -> None:
    chunks, done = run(TEXT_STREAM)
    assert done
    for chunk in chunks:
        assert chunk["id"] == "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY"
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["model"] == "claude"
        assert isinstance(chunk["created"], int)
    assert [c["choices"][0]["delta"] for c in chunks[:-1]] == [
        {"role": "assistant", "content": ""},
        {"content": "Hello"},
        {"content": "!"},
        {},
    ]
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]] == [None, None, None, "stop"]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 25,
        "completion_tokens": 15,
        "total_tokens": 40,
        "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
    }


def test_tool_use_stream_becomes_tool_call_deltas() -> None:
    chunks, done = run(TOOL_STREAM)
    assert done
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert content == "Okay, let's check the weather for San Francisco, CA:"
    calls = [
        d for c in chunks if c["choices"] for d in c["choices"][0]["delta"].get("tool_calls", [])
    ]
    assert calls[0] == {
        "index": 0,  # OpenAI numbers tool calls alone; Anthropic's block index was 1
        "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    assert all(call["index"] == 0 for call in calls)
    arguments = "".join(call["function"]["arguments"] for call in calls)
    assert json.loads(arguments) == {"location": "San Francisco, CA", "unit": "fahrenheit"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"]["prompt_tokens"] == 472
    assert chunks[-1]["usage"]["completion_tokens"] == 89


def test_stream_ending_without_stop_reason_still_finishes() -> None:
    lines = [block for block in TEXT_STREAM.strip().split("\n\n") if "message_delta" not in block]
    chunks, done = run("\n\n".join(lines))
    assert done
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


def test_stream_is_not_done_before_message_stop() -> None:
    cut = TEXT_STREAM.split("event: message_delta")[0]
    chunks, done = run(cut)
    assert not done
    assert all(c["choices"] and c["choices"][0]["finish_reason"] is None for c in chunks)


@pytest.mark.parametrize(
    ("error_type", "kind"),
    [
        ("overloaded_error", "server_error"),
        ("rate_limit_error", "rate_limited"),
        ("api_error", "server_error"),
        ("something_new", "server_error"),
    ],
)
def test_error_event_mid_stream_raises(error_type: str, kind: str) -> None:
    translator = PROVIDER.chat_stream(target())
    first_two = sse(TEXT_STREAM)[:4]
    for event, data in first_two:
        translator.feed(event, data)
    with pytest.raises(UpstreamFailure) as caught:
        translator.feed(
            "error",
            json.dumps({"type": "error", "error": {"type": error_type, "message": "Overloaded"}}),
        )
    assert caught.value.kind == kind
    assert caught.value.upstream_code == error_type
    assert not translator.done


@pytest.mark.parametrize(
    "data",
    [
        "{not json",
        "[1, 2]",
        '{"type": "error"}',
        '{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "x"}}',
    ],
    ids=["not-json", "not-object", "error-without-details", "delta-before-message-start"],
)
def test_malformed_events_raise(data: str) -> None:
    translator = PROVIDER.chat_stream(target())
    with pytest.raises(UpstreamFailure) as caught:
        translator.feed(None, data)
    assert caught.value.kind == "malformed"


def test_input_json_delta_for_a_text_block_is_malformed() -> None:
    translator = PROVIDER.chat_stream(target())
    for event, data in sse(TEXT_STREAM)[:2]:
        translator.feed(event, data)
    bad = {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "input_json_delta", "partial_json": "{"},
    }
    with pytest.raises(UpstreamFailure) as caught:
        translator.feed("content_block_delta", json.dumps(bad))
    assert caught.value.kind == "malformed"
