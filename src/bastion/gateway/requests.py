"""Checking the shape of what clients send, before anything else looks at it.

Only what the gateway itself relies on is checked (model, messages, stream, token
caps, n, input); every other top-level field passes through to OpenAI-compatible
upstreams untouched, as clients expect. Errors name the offending field (``param``) as
OpenAI does.

Messages are checked to the leaf, because the privacy guard masks only what it can
read: text content, text parts, and tool-call and function-call arguments. What it
cannot read is refused, not sent (fail closed): a content part of an unknown type or
that is not an object, a text part whose ``text`` is not a string, a tool call that is
not ``{"function": {"name": ..., "arguments": "..."}}``, and any other message field
that carries text. Images and audio pass as the guard documents.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bastion import jsonio
from bastion.errors import InvalidInput

#: The largest integer a client's token cap may be (the counters and PostgreSQL keep
#: signed 32- and 64-bit numbers; no model has a window near it).
MAX_INT = 2**31 - 1
ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
#: Content part types and the fields each may carry besides ``type``; a text part's
#: text is masked, images and audio pass as they are.
PARTS: dict[str, frozenset[str]] = {
    "text": frozenset({"text", "cache_control"}),
    "image_url": frozenset({"image_url", "cache_control"}),
    "input_audio": frozenset({"input_audio"}),
    "refusal": frozenset({"refusal"}),
}
#: Message fields the guard reads or that carry no free text; any other field may
#: hold only values without text (``null``, ``[]``, numbers), as SDKs echo back.
MESSAGE_FIELDS = frozenset(
    {"role", "content", "name", "tool_calls", "tool_call_id", "function_call", "cache_control"}
)


def read_json(raw: bytes | bytearray | str) -> Any:
    """A client's request body, parsed strictly (:func:`bastion.jsonio.loads_request`)."""
    try:
        return jsonio.loads_request(raw)
    except jsonio.JSONDecodeError as exc:
        raise InvalidInput(
            f"the request body is not valid JSON ({exc.msg}): send a JSON object",
            code="invalid_json",
        ) from None
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput(
            "the request body is not valid JSON (not UTF-8 text): send a JSON object",
            code="invalid_json",
        ) from None


def _bad(param: str, message: str) -> InvalidInput:
    return InvalidInput(message, param=param)


def _positive_int(body: Mapping[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_INT:
        raise _bad(name, f"'{name}' must be a positive integer, at most {MAX_INT}")
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
        if not isinstance(role, str) or role not in ROLES:
            raise _bad(
                f"messages[{i}].role",
                f"messages[{i}].role must be one of {', '.join(sorted(ROLES))}",
            )
        _check_message(message, f"messages[{i}]")
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


def _has_text(value: Any) -> bool:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            return True
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def _uninspectable(where: str) -> InvalidInput:
    return _bad(
        where,
        f"{where} carries text the privacy guard cannot inspect, so it is not sent: "
        "remove it, or send the text as content",
    )


def _check_message(message: Mapping[str, Any], where: str) -> None:
    for key, value in message.items():
        if key not in MESSAGE_FIELDS and _has_text(value):
            raise _uninspectable(f"{where}.{key}")
    content = message.get("content")
    if isinstance(content, list):
        for j, part in enumerate(content):
            _check_part(part, f"{where}.content[{j}]")
    elif content is not None and not isinstance(content, str):
        raise _bad(f"{where}.content", f"{where}.content must be a string or an array of parts")
    name = message.get("name")
    if name is not None and not isinstance(name, str):
        raise _bad(f"{where}.name", f"{where}.name must be a string")
    tool_call_id = message.get("tool_call_id")
    if tool_call_id is not None and not isinstance(tool_call_id, str):
        raise _bad(f"{where}.tool_call_id", f"{where}.tool_call_id must be a string")
    tool_calls = message.get("tool_calls")
    if tool_calls is not None:
        if not isinstance(tool_calls, list):
            raise _bad(f"{where}.tool_calls", f"{where}.tool_calls must be an array of objects")
        for j, call in enumerate(tool_calls):
            _check_tool_call(call, f"{where}.tool_calls[{j}]")
    function_call = message.get("function_call")
    if function_call is not None:
        _check_function(function_call, f"{where}.function_call")


def _check_part(part: Any, where: str) -> None:
    if not isinstance(part, dict):
        raise _bad(where, f"{where} must be an object with a 'type'")
    kind = part.get("type")
    allowed = PARTS.get(kind) if isinstance(kind, str) else None
    if allowed is None:
        raise _bad(
            f"{where}.type",
            f"{where}.type must be one of {', '.join(sorted(PARTS))}: Bastion refuses content "
            "it cannot inspect for personal data",
        )
    for key, value in part.items():
        if key != "type" and key not in allowed and _has_text(value):
            raise _uninspectable(f"{where}.{key}")
    if kind in ("text", "refusal") and not isinstance(part.get(kind), str):
        raise _bad(f"{where}.{kind}", f"{where}.{kind} must be a string")
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if not isinstance(url, str):
            raise _bad(f"{where}.image_url", f"{where}.image_url must be an object with a 'url'")
    if kind == "input_audio" and not isinstance(part.get("input_audio"), dict):
        raise _bad(f"{where}.input_audio", f"{where}.input_audio must be an object")


def _check_tool_call(call: Any, where: str) -> None:
    if not isinstance(call, dict):
        raise _bad(where, f"{where} must be an object with a 'function'")
    for key in ("id", "type"):
        if call.get(key) is not None and not isinstance(call[key], str):
            raise _bad(f"{where}.{key}", f"{where}.{key} must be a string")
    for key, value in call.items():
        if key not in ("id", "type", "function", "index") and _has_text(value):
            raise _uninspectable(f"{where}.{key}")
    _check_function(call.get("function"), f"{where}.function")


def _check_function(function: Any, where: str) -> None:
    if not isinstance(function, dict):
        raise _bad(where, f"{where} must be an object with 'name' and 'arguments'")
    if not isinstance(function.get("name"), str):
        raise _bad(f"{where}.name", f"{where}.name must be a string")
    arguments = function.get("arguments")
    if arguments is not None and not isinstance(arguments, str):
        raise _bad(f"{where}.arguments", f"{where}.arguments must be a string (JSON text)")
    for key, value in function.items():
        if key not in ("name", "arguments") and _has_text(value):
            raise _uninspectable(f"{where}.{key}")


def _tokens(values: list[Any]) -> bool:
    return all(isinstance(t, int) and not isinstance(t, bool) and 0 <= t <= MAX_INT for t in values)


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
        and bool(value)
        and (
            all(isinstance(v, str) for v in value)
            or _tokens(value)
            or all(isinstance(v, list) and v and _tokens(v) for v in value)
        )
    )
    if not ok:
        raise _bad(
            "input",
            "'input' must be a string, an array of strings, an array of token ids, or an "
            "array of token-id arrays",
        )
    if isinstance(value, list) and len(value) > 2048:
        raise _bad("input", "'input' may hold at most 2048 items")
    return EmbeddingsRequest(model, value)
