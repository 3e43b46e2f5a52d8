"""The local provider: extractive answers from the prompt's context, and local embeddings."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bastion.gateway.errors import UpstreamFailure
from bastion.gateway.providers.base import Target
from bastion.gateway.providers.local import LocalProvider, embed_text
from bastion.gateway.tokens import count_text
from bastion.policy.schema import ProviderConfig

PROVIDER = LocalProvider()
TARGET = Target(
    model="local-chat",
    upstream_model="local-chat",
    provider="local",
    config=ProviderConfig(kind="local"),
)

CONTEXT = """The Eiffel Tower was completed in 1889 for the World's Fair in Paris.
It is 330 metres tall and was the tallest man-made structure for 41 years.
Gustave Eiffel's company designed and built the tower.
The Louvre is the world's most-visited museum and holds the Mona Lisa.
Paris hosted the Summer Olympics in 1900, 1924 and 2024."""


def user(content: Any, **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": content}], **extra}


async def answer(body: dict[str, Any]) -> dict[str, Any]:
    return await PROVIDER.complete(TARGET, body)


def content(result: dict[str, Any]) -> str:
    return str(result["choices"][0]["message"]["content"])


# --- extractive answers -----------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("question", "expected"),
    [
        (
            "Who designed the Eiffel Tower?",
            "Gustave Eiffel's company designed and built the tower.",
        ),
        (
            "Where is the Mona Lisa?",
            "The Louvre is the world's most-visited museum and holds the Mona Lisa.",
        ),
        (
            "When did Paris host the Olympics?",
            "Paris hosted the Summer Olympics in 1900, 1924 and 2024.",
        ),
    ],
)
async def test_answers_with_the_matching_sentence(question: str, expected: str) -> None:
    result = await answer(user(f"Context:\n{CONTEXT}\n\nQuestion: {question}"))
    assert expected in content(result)
    # whole sentences of the context, verbatim and in their order
    lines = CONTEXT.splitlines()
    used = [line for line in lines if line in content(result)]
    assert content(result) == " ".join(used)
    assert 1 <= len(used) <= 3


@pytest.mark.anyio
async def test_context_may_come_from_the_system_message_and_the_answer_keeps_order() -> None:
    result = await answer(
        {
            "messages": [
                {"role": "system", "content": f"Answer from this text.\n{CONTEXT}"},
                {"role": "user", "content": "How tall is the tower and when was it completed?"},
            ]
        }
    )
    text = content(result)
    assert "330 metres tall" in text
    assert "completed in 1889" in text
    assert text.index("1889") < text.index("330")  # original order, not score order
    assert "Mona Lisa" not in text


@pytest.mark.anyio
async def test_question_inside_a_longer_message_with_inline_facts() -> None:
    result = await answer(
        user("Alice's email is <EMAIL_ADDRESS_1>. Bob lives in Lyon. What is Alice's email?")
    )
    assert content(result) == "Alice's email is <EMAIL_ADDRESS_1>."


@pytest.mark.anyio
async def test_without_context_the_question_is_restated() -> None:
    result = await answer(user("Please write to <EMAIL_ADDRESS_1> about <PERSON_2>'s invoice"))
    assert content(result) == (
        "I have no context to answer: Please write to <EMAIL_ADDRESS_1> about <PERSON_2>'s invoice"
    )
    assert result["choices"][0]["finish_reason"] == "stop"


@pytest.mark.anyio
async def test_context_that_does_not_answer_says_so() -> None:
    result = await answer(user(f"Context:\n{CONTEXT}\n\nQuestion: Which whales migrate?"))
    assert content(result) == "The context does not answer: Which whales migrate?"


@pytest.mark.anyio
async def test_response_shape_and_usage() -> None:
    body = user(f"Context:\n{CONTEXT}\n\nQuestion: Who designed the tower?")
    result = await answer(body)
    assert result["object"] == "chat.completion"
    assert result["model"] == "local-chat"
    assert result["id"].startswith("chatcmpl-")
    assert result["choices"][0]["message"]["role"] == "assistant"
    usage = result["usage"]
    assert usage["completion_tokens"] == count_text(content(result))
    assert usage["prompt_tokens"] > count_text(CONTEXT)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


@pytest.mark.anyio
async def test_answers_are_deterministic() -> None:
    body = user(f"{CONTEXT}\nWho built the tower?")
    first, second = await answer(body), await answer(body)
    assert first["choices"] == second["choices"]
    assert first["usage"] == second["usage"]


@pytest.mark.anyio
async def test_max_tokens_truncates_with_finish_reason_length() -> None:
    body = user(
        f"Context:\n{CONTEXT}\n\nQuestion: How tall is the tower and when was it completed?"
    )
    full = content(await answer(body))
    result = await answer({**body, "max_tokens": 5})
    text = content(result)
    assert result["choices"][0]["finish_reason"] == "length"
    assert full.startswith(text) and len(text) < len(full)
    assert 0 < count_text(text) <= 5
    assert result["usage"]["completion_tokens"] == count_text(text)
    generous = await answer({**body, "max_completion_tokens": 500})
    assert generous["choices"][0]["finish_reason"] == "stop"


@pytest.mark.anyio
async def test_stop_sequence_cuts_the_answer() -> None:
    body = user(f"Context:\n{CONTEXT}\n\nQuestion: Who designed the tower?", stop=["and built"])
    assert content(await answer(body)) == "Gustave Eiffel's company designed "


@pytest.mark.anyio
async def test_json_response_format() -> None:
    body = user("Who?", response_format={"type": "json_object"})
    assert json.loads(content(await answer(body))) == {
        "answer": "I have no context to answer: Who?"
    }


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "message"),
    [
        (user("x", n=2), "n must be 1"),
        (user("x", max_tokens=0), "max_tokens"),
        ({"messages": []}, "non-empty"),
    ],
)
async def test_bad_requests(body: dict[str, Any], message: str) -> None:
    with pytest.raises(UpstreamFailure) as caught:
        await answer(body)
    assert caught.value.kind == "bad_request"
    assert message in caught.value.message


@pytest.mark.shared_data
@pytest.mark.anyio
async def test_answers_from_gdpr_articles(shared_data: Path) -> None:
    path = shared_data / "regulations" / "eu_regulations.jsonl"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    articles = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["regulation"] == "gdpr" and row["article"] in (5, 6, 17, 33):
            articles[row["article"]] = row["text"]
    context = "\n\n".join(articles[n] for n in sorted(articles))
    questions = {
        "Within how many hours must a personal data breach be notified to the supervisory authority?": "72 hours",
        "What does the principle of storage limitation require?": "no longer than is necessary",
        "What must the controller do when the data subject asks for erasure of personal data?": "erasure of personal data",
    }
    for question, expected in questions.items():
        result = await answer(
            {
                "messages": [
                    {"role": "system", "content": "Answer only from the context."},
                    {"role": "user", "content": f"Context:\n{context}\n\nQuestion: {question}"},
                ]
            }
        )
        assert expected in content(result), question


# --- tools ------------------------------------------------------------------------------

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"},
            },
            "required": ["city", "unit", "days"],
        },
    },
}
SEARCH = {
    "type": "function",
    "function": {
        "name": "search_docs",
        "description": "Search the documentation",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}},
            "required": ["query"],
        },
    },
}


@pytest.mark.anyio
async def test_required_tool_choice_calls_the_best_matching_tool() -> None:
    body = user(
        'What is the weather in "Paris" in fahrenheit for 3 days?',
        tools=[SEARCH, WEATHER],
        tool_choice="required",
    )
    result = await answer(body)
    choice = result["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function"
    assert call["id"].startswith("call_")
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {
        "city": "Paris",
        "unit": "fahrenheit",
        "days": 3,
    }
    assert call == (await answer(body))["choices"][0]["message"]["tool_calls"][0]


@pytest.mark.anyio
async def test_auto_calls_a_tool_only_when_the_question_names_it() -> None:
    named = await answer(user("Use search_docs for rate limits", tools=[SEARCH, WEATHER]))
    (call,) = named["choices"][0]["message"]["tool_calls"]
    assert call["function"]["name"] == "search_docs"
    assert json.loads(call["function"]["arguments"]) == {"query": "Use for rate limits"}

    plain = await answer(user("How do rate limits work?", tools=[SEARCH], tool_choice="auto"))
    assert "tool_calls" not in plain["choices"][0]["message"]
    assert plain["choices"][0]["finish_reason"] == "stop"

    none = await answer(user("Use search_docs now", tools=[SEARCH], tool_choice="none"))
    assert "tool_calls" not in none["choices"][0]["message"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("question", "tool"),
    [
        ("What is the weather in Paris?", "get_weather"),  # what the tool is about
        ("Please search docs for rate limits", "search_docs"),  # its name, spoken
        ("Use the tool to find how rate limits work", "search_docs"),  # asks for a tool
        ("Call a function: weather in Rome for 2 days", "get_weather"),
    ],
)
async def test_auto_calls_a_tool_when_the_prompt_asks_for_one(question: str, tool: str) -> None:
    body = user(question, tools=[SEARCH, WEATHER])
    result = await answer(body)
    choice = result["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["function"]["name"] == tool
    arguments = json.loads(call["function"]["arguments"])
    required = (WEATHER if tool == "get_weather" else SEARCH)["function"]["parameters"]["required"]
    assert sorted(arguments) == sorted(required)
    assert result == {**(await answer(body)), "id": result["id"], "created": result["created"]}


@pytest.mark.anyio
@pytest.mark.parametrize(
    "question",
    ["How do rate limits work?", "Call me on Monday about the invoice", "What is a tool?"],
)
async def test_auto_answers_in_text_when_no_tool_is_asked_for(question: str) -> None:
    result = await answer(user(question, tools=[SEARCH, WEATHER]))
    assert "tool_calls" not in result["choices"][0]["message"]
    assert result["choices"][0]["finish_reason"] == "stop"


@pytest.mark.anyio
async def test_after_a_tool_result_the_answer_uses_it() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "Use search_docs: how long are keys valid?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "search_docs", "arguments": "{}"},
                    }
                ],
            },
            {
                "role": "tool",
                "tool_call_id": "call_1",
                "content": "API keys are valid for 90 days. Rotation is manual.",
            },
        ],
        "tools": [SEARCH],
    }
    result = await answer(body)
    assert content(result) == "API keys are valid for 90 days."


@pytest.mark.anyio
async def test_named_tool_choice_must_be_offered() -> None:
    body = user("x", tools=[SEARCH], tool_choice={"type": "function", "function": {"name": "nope"}})
    with pytest.raises(UpstreamFailure, match="nope"):
        await answer(body)


# --- streams ----------------------------------------------------------------------------


async def collect(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [chunk async for chunk in PROVIDER.stream(TARGET, body)]


@pytest.mark.anyio
@pytest.mark.parametrize("max_tokens", [None, 7])
async def test_stream_reassembles_to_the_complete_answer(max_tokens: int | None) -> None:
    body = user(
        f"Context:\n{CONTEXT}\n\nQuestion: How tall is the tower and when was it completed?"
    )
    if max_tokens:
        body["max_tokens"] = max_tokens
    whole = await answer(body)
    chunks = await collect(body)
    assert len({c["id"] for c in chunks}) == 1
    assert all(
        c["object"] == "chat.completion.chunk" and c["model"] == "local-chat" for c in chunks
    )
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    deltas = [c["choices"][0]["delta"].get("content") or "" for c in chunks[1:-2]]
    assert len(deltas) >= 2  # a few words at a time
    assert all(len(d.split()) <= 3 for d in deltas)
    assert "".join(deltas) == content(whole)
    assert chunks[-2]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": whole["choices"][0]["finish_reason"],
    }
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == whole["usage"]


@pytest.mark.anyio
async def test_stream_of_a_tool_call() -> None:
    body = user("Call search_docs", tools=[SEARCH], tool_choice="required")
    whole = (await answer(body))["choices"][0]["message"]["tool_calls"][0]
    chunks = await collect(body)
    calls = [
        d for c in chunks if c["choices"] for d in c["choices"][0]["delta"].get("tool_calls", [])
    ]
    assert calls[0]["id"] == whole["id"]
    assert calls[0]["function"]["name"] == "search_docs"
    assert "".join(c["function"]["arguments"] for c in calls) == whole["function"]["arguments"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


# --- embeddings -------------------------------------------------------------------------


def cosine(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b))


@pytest.mark.anyio
async def test_embeddings_shape_norm_and_similarity() -> None:
    texts = [
        "The cat sat on the mat.",
        "A cat was sitting on a mat.",
        "Quarterly revenue grew by ten percent.",
    ]
    result = await PROVIDER.embed(TARGET, {"model": "local-embed", "input": texts})
    assert result["object"] == "list"
    assert result["model"] == "local-chat"
    assert [d["index"] for d in result["data"]] == [0, 1, 2]
    vectors = [d["embedding"] for d in result["data"]]
    assert all(len(v) == 256 for v in vectors)
    assert all(abs(np.linalg.norm(v) - 1.0) < 1e-5 for v in vectors)
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.2
    assert result["usage"]["prompt_tokens"] == result["usage"]["total_tokens"] > 0


@pytest.mark.anyio
async def test_embeddings_inputs_dimensions_and_base64() -> None:
    single = await PROVIDER.embed(TARGET, {"input": "hello world", "dimensions": 64})
    assert len(single["data"]) == 1 and len(single["data"][0]["embedding"]) == 64

    ids = await PROVIDER.embed(TARGET, {"input": [15339, 1917]})
    assert len(ids["data"]) == 1
    assert ids["usage"]["prompt_tokens"] == 2
    many_ids = await PROVIDER.embed(TARGET, {"input": [[1, 2], [3]]})
    assert len(many_ids["data"]) == 2

    floats = await PROVIDER.embed(TARGET, {"input": "hello world"})
    encoded = await PROVIDER.embed(TARGET, {"input": "hello world", "encoding_format": "base64"})
    raw = encoded["data"][0]["embedding"]
    assert isinstance(raw, str)
    decoded = np.frombuffer(base64.b64decode(raw), dtype="<f4")
    assert decoded.tolist() == floats["data"][0]["embedding"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    "body",
    [
        {"input": []},
        {"input": [{"x": 1}]},
        {"input": "x", "dimensions": 0},
        {"input": "x", "encoding_format": "hex"},
    ],
)
async def test_embeddings_bad_input(body: dict[str, Any]) -> None:
    with pytest.raises(UpstreamFailure) as caught:
        await PROVIDER.embed(TARGET, body)
    assert caught.value.kind == "bad_request"


def test_embeddings_are_the_same_in_another_process() -> None:
    code = (
        "from bastion.gateway.providers.local import embed_text;"
        "print(embed_text('governance of AI models', 32).tolist())"
    )
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert json.loads(other.stdout) == embed_text("governance of AI models", 32).tolist()
