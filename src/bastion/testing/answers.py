"""What the fake upstream answers: deterministic text, tool calls, token counts and
embeddings, in OpenAI's and Anthropic's wire shapes.

The answer to a chat is ``"echo: "`` + the text of the last user message (so a
placeholder the gateway put in the prompt comes back in the answer), or, when the
request offers tools and does not forbid them, one call of the first tool (or the one
``tool_choice`` names) whose single argument is that text. Tokens are words
(whitespace-separated); ``max_tokens`` truncates the answer to that many words and the
finish reason says so. Streams split text into pieces of ``PIECE`` characters.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]
PIECE = 4
EMBEDDING_DIMENSION = 8


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def words(text: str) -> int:
    return len(text.split())


def _texts(content: Any) -> Iterable[str]:
    """Text of an OpenAI or Anthropic message content (a string or a list of parts)."""
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, Mapping):
                if isinstance(part.get("text"), str):
                    yield part["text"]
                elif part.get("type") == "tool_result":
                    yield from _texts(part.get("content"))


def last_user_text(messages: Any) -> str:
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return " ".join(_texts(message.get("content")))
    return ""


def prompt_tokens(body: Mapping[str, Any]) -> int:
    count = sum(words(t) for t in _texts(body.get("system")))
    for message in body.get("messages") or []:
        if isinstance(message, Mapping):
            count += sum(words(t) for t in _texts(message.get("content")))
    return max(count, 1)


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    arguments: str  # JSON text


@dataclass(frozen=True, slots=True)
class Answer:
    text: str | None
    tool: ToolCall | None
    prompt_tokens: int
    completion_tokens: int
    truncated: bool


def _tool_spec(tool: Any) -> tuple[str, Any] | None:
    """(name, JSON schema) of an OpenAI tool ({type, function{}}) or an Anthropic one."""
    if not isinstance(tool, Mapping):
        return None
    function = tool.get("function")
    spec = function if isinstance(function, Mapping) else tool
    name = spec.get("name")
    if not isinstance(name, str):
        return None
    return name, spec.get("parameters", spec.get("input_schema"))


def _chosen_tool(tools: Any, choice: Any) -> tuple[str, Any] | None:
    if not isinstance(tools, list) or not tools:
        return None
    if choice == "none" or (isinstance(choice, Mapping) and choice.get("type") == "none"):
        return None
    specs = [s for s in map(_tool_spec, tools) if s is not None]
    wanted = None
    if isinstance(choice, Mapping):
        function = choice.get("function")
        wanted = function.get("name") if isinstance(function, Mapping) else choice.get("name")
    for spec in specs:
        if wanted is None or spec[0] == wanted:
            return spec
    return specs[0] if specs else None


def _argument_name(schema: Any) -> str:
    if isinstance(schema, Mapping):
        required = schema.get("required")
        if isinstance(required, list) and required and isinstance(required[0], str):
            return required[0]
        properties = schema.get("properties")
        if isinstance(properties, Mapping) and properties:
            return str(next(iter(properties)))
    return "input"


def answer(body: Mapping[str, Any]) -> Answer:
    """The deterministic answer to a chat request (OpenAI or Anthropic shaped)."""
    said = last_user_text(body.get("messages"))
    prompt = prompt_tokens(body)
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    tool = _chosen_tool(body.get("tools"), body.get("tool_choice"))
    if tool is not None:
        arguments = json.dumps({_argument_name(tool[1]): said}, ensure_ascii=False)
        return Answer(None, ToolCall(tool[0], arguments), prompt, max(words(arguments), 1), False)
    text = "echo: " + said
    truncated = isinstance(limit, int) and 0 < limit < words(text)
    if truncated:
        text = " ".join(text.split()[:limit])
    return Answer(text, None, prompt, words(text), truncated)


#: What the ``leak`` scenario answers with: personal data the prompt never held.
LEAK = "Call John Smith at +1 415 555 0132 or john.smith@example.com, card 4111 1111 1111 1111"


def leaking(a: Answer) -> Answer:
    """The same answer with personal data of its own (in the text, or the tool call)."""
    if a.tool is not None:
        name = next(iter(json.loads(a.tool.arguments)), "input")
        arguments = json.dumps({name: LEAK})
        return Answer(None, ToolCall(a.tool.name, arguments), a.prompt_tokens, words(LEAK), False)
    return Answer(LEAK, None, a.prompt_tokens, words(LEAK), False)


def pieces(text: str) -> list[str]:
    return [text[i : i + PIECE] for i in range(0, len(text), PIECE)] or [""]


# --- OpenAI ---------------------------------------------------------------------------------


def openai_usage(a: Answer) -> JSON:
    return {
        "prompt_tokens": a.prompt_tokens,
        "completion_tokens": a.completion_tokens,
        "total_tokens": a.prompt_tokens + a.completion_tokens,
    }


def _finish(a: Answer) -> str:
    return "tool_calls" if a.tool else "length" if a.truncated else "stop"


def openai_completion(cid: str, model: str, a: Answer, *, usage: bool) -> JSON:
    message: JSON = {"role": "assistant", "content": a.text, "refusal": None, "annotations": []}
    if a.tool:
        message["tool_calls"] = [
            {
                "id": "call_" + cid,
                "type": "function",
                "function": {"name": a.tool.name, "arguments": a.tool.arguments},
            }
        ]
    out: JSON = {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": _finish(a)}
        ],
    }
    if usage:
        out["usage"] = openai_usage(a)
    return out


@dataclass(frozen=True, slots=True)
class Frames:
    """An SSE stream: frames[first:first + content] are the content pieces; the last
    frame is the terminator (``[DONE]`` or ``message_stop``)."""

    frames: list[bytes]
    first: int
    content: int


def openai_stream(cid: str, model: str, a: Answer, *, usage: bool, usage_asked: bool) -> Frames:
    created = int(time.time())

    def chunk(delta: JSON, finish: str | None = None) -> bytes:
        out: JSON = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if usage_asked:
            out["usage"] = None
        return b"data: " + dumps(out) + b"\n\n"

    if a.tool:
        head: JSON = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_" + cid,
                    "type": "function",
                    "function": {"name": a.tool.name, "arguments": ""},
                }
            ],
        }
        body = [
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]})
            for p in pieces(a.tool.arguments)
        ]
    else:
        head = {"role": "assistant", "content": "", "refusal": None}
        body = [chunk({"content": p}) for p in pieces(a.text or "")]
    frames = [chunk(head), *body, chunk({}, _finish(a))]
    if usage:
        last: JSON = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [],
            "usage": openai_usage(a),
        }
        frames.append(b"data: " + dumps(last) + b"\n\n")
    frames.append(b"data: [DONE]\n\n")
    return Frames(frames, 1, len(body))


OPENAI_MALFORMED = (
    b'data: {"id":"chatcmpl-broken","object":"chat.completion.chunk","choices":[{\n\n'
)
#: Valid JSON of the wrong shape: a delta that is not an object.
OPENAI_BAD_CHUNK = (
    b'data: {"id":"chatcmpl-bad","object":"chat.completion.chunk",'
    b'"choices":[{"index":0,"delta":"oops"}]}\n\n'
)


def openai_error(
    message: str, type_: str | None, code: str | None = None, param: str | None = None
) -> JSON:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def openai_stream_error() -> bytes:
    body = openai_error(
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
    )
    return b"data: " + dumps(body) + b"\n\n"


# --- embeddings ------------------------------------------------------------------------------


def embed(item: Any) -> list[float]:
    """A unit vector of EMBEDDING_DIMENSION float32 values from a hash of the input."""
    text = item if isinstance(item, str) else json.dumps(item)
    digest = hashlib.sha256(text.encode()).digest()
    raw = [int.from_bytes(digest[i : i + 4], "little") / 2**31 - 1.0 for i in range(0, 32, 4)]
    norm = sum(x * x for x in raw) ** 0.5 or 1.0
    packed = struct.pack(f"<{EMBEDDING_DIMENSION}f", *(x / norm for x in raw))
    return list(struct.unpack(f"<{EMBEDDING_DIMENSION}f", packed))


def embeddings(model: str, body: Mapping[str, Any]) -> JSON:
    raw = body.get("input")
    # a string, a list of strings, a list of token ids, or a list of lists of token ids
    items: list[Any] = (
        raw if isinstance(raw, list) and raw and not isinstance(raw[0], int) else [raw]
    )
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, item in enumerate(items):
        vector = embed(item)
        value: Any = vector
        if as_base64:
            value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": value})
    tokens = max(sum(words(i) if isinstance(i, str) else len(i) for i in items if i), 1)
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


# --- Anthropic -------------------------------------------------------------------------------


def _stop_reason(a: Answer) -> str:
    return "tool_use" if a.tool else "max_tokens" if a.truncated else "end_turn"


def _tool_block(mid: str, a: Answer) -> JSON:
    assert a.tool is not None
    return {
        "type": "tool_use",
        "id": "toolu_" + mid,
        "name": a.tool.name,
        "input": json.loads(a.tool.arguments),
    }


def anthropic_message(mid: str, model: str, a: Answer, *, refusal: bool = False) -> JSON:
    content = [_tool_block(mid, a)] if a.tool else [{"type": "text", "text": a.text or ""}]
    return {
        "id": mid,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [] if refusal else content,
        "stop_reason": "refusal" if refusal else _stop_reason(a),
        "stop_sequence": None,
        "usage": {"input_tokens": a.prompt_tokens, "output_tokens": a.completion_tokens},
    }


def _event(kind: str, data: JSON) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + dumps({"type": kind, **data}) + b"\n\n"


def anthropic_stream(mid: str, model: str, a: Answer) -> Frames:
    start: JSON = {
        "id": mid,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": a.prompt_tokens, "output_tokens": 1},
    }
    if a.tool:
        block = {**_tool_block(mid, a), "input": {}}
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in pieces(a.tool.arguments)]
    else:
        block = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": p} for p in pieces(a.text or "")]
    frames = [
        _event("message_start", {"message": start}),
        _event("content_block_start", {"index": 0, "content_block": block}),
        _event("ping", {}),
        *(_event("content_block_delta", {"index": 0, "delta": d}) for d in deltas),
        _event("content_block_stop", {"index": 0}),
        _event(
            "message_delta",
            {
                "delta": {"stop_reason": _stop_reason(a), "stop_sequence": None},
                "usage": {"output_tokens": a.completion_tokens},
            },
        ),
        _event("message_stop", {}),
    ]
    return Frames(frames, 3, len(deltas))


ANTHROPIC_MALFORMED = (
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,\n\n'
)


def anthropic_error(type_: str, message: str) -> JSON:
    return {"type": "error", "error": {"type": type_, "message": message}}


def anthropic_stream_error() -> bytes:
    return (
        b"event: error\ndata: " + dumps(anthropic_error("overloaded_error", "Overloaded")) + b"\n\n"
    )
