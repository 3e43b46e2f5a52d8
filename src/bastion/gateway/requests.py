"""Checking the shape of what clients send, before anything else looks at it.

Only what the gateway itself relies on is checked (model, messages, stream, token
caps, n, input); every other field passes through to OpenAI-compatible upstreams
untouched, as clients expect. Errors name the offending field (``param``) as OpenAI does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bastion.errors import InvalidInput

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def _bad(param: str, message: str) -> InvalidInput:
    return InvalidInput(message, param=param)


def _positive_int(body: Mapping[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _bad(name, f"'{name}' must be a positive integer")
    return value


def _model(body: Mapping[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise _bad("model", "'model' is required and must be a non-empty string")
    return model


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: list[dict[str, Any]]
    stream: bool
    include_usage: bool
    max_tokens: int | None  # the client's cap, whichever field carried it
    max_tokens_field: str
    n: int
    tools: Any


def parse_chat(body: Any) -> ChatRequest:
    if not isinstance(body, dict):
        raise _bad("body", "the request body must be a JSON object")
    model = _model(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("messages", "'messages' is required and must be a non-empty array")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _bad(f"messages[{i}]", f"messages[{i}] must be an object")
        role = message.get("role")
        if role not in ROLES:
            raise _bad(
                f"messages[{i}].role",
                f"messages[{i}].role must be one of {', '.join(sorted(ROLES))}",
            )
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise _bad(
                f"messages[{i}].content",
                f"messages[{i}].content must be a string or an array of parts",
            )
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise _bad("stream", "'stream' must be a boolean")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise _bad("stream_options", "'stream_options' must be an object")
    legacy = _positive_int(body, "max_tokens")
    modern = _positive_int(body, "max_completion_tokens")
    n = _positive_int(body, "n") or 1
    if n > 16:
        raise _bad("n", "'n' must be at most 16")
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise _bad("tools", "'tools' must be an array")
    return ChatRequest(
        model=model,
        messages=messages,
        stream=bool(stream),
        include_usage=bool((options or {}).get("include_usage")),
        max_tokens=modern or legacy,
        max_tokens_field="max_completion_tokens" if modern else "max_tokens",
        n=n,
        tools=tools,
    )


@dataclass(frozen=True)
class EmbeddingsRequest:
    model: str
    input: Any


def parse_embeddings(body: Any) -> EmbeddingsRequest:
    if not isinstance(body, dict):
        raise _bad("body", "the request body must be a JSON object")
    model = _model(body)
    value = body.get("input")
    ok = isinstance(value, str) or (
        isinstance(value, list)
        and value
        and all(
            isinstance(v, str | int) or (isinstance(v, list) and all(isinstance(t, int) for t in v))
            for v in value
        )
    )
    if not ok:
        raise _bad("input", "'input' must be a string, an array of strings, or token arrays")
    if isinstance(value, list) and len(value) > 2048:
        raise _bad("input", "'input' may hold at most 2048 items")
    return EmbeddingsRequest(model, value)
