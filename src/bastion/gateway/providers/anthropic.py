"""Anthropic's Messages API, spoken to clients as OpenAI chat completions.

Requests: system messages become the top-level ``system``; ``tool`` messages become
``tool_result`` blocks of a user turn; consecutive turns of one role are merged, as
Anthropic requires alternating roles; image parts become ``image`` blocks (base64 from
``data:`` URLs, by URL otherwise); ``max_tokens`` is always sent (Anthropic requires
it). ``temperature`` is clamped to Anthropic's 0–1 (OpenAI allows up to 2).
``response_format`` other than text, ``n`` above 1 and non-function tools have no
Anthropic equivalent and are refused as the client's mistake rather than dropped.

Answers and streams are turned back into OpenAI's ``chat.completion`` and
``chat.completion.chunk`` shapes, with usage (cache reads and writes count as prompt
tokens, since they are billed as input). The stream translator also ends with a usage
chunk (``choices: []``), as OpenAI's ``stream_options.include_usage`` does.

Our own code rather than a translation library: LiteLLM's adapter comes with its whole
proxy, and the transforms are small once the wire formats are pinned by tests.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from typing import Any

from bastion.gateway.errors import FailureKind, UpstreamFailure
from bastion.gateway.providers.base import (
    JSON,
    HttpRequest,
    Provider,
    StreamTranslator,
    Target,
    classify_http,
    error_fields,
)

ANTHROPIC_BASE_URL = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096

_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_STREAM_ERROR_KINDS: dict[str, FailureKind] = {
    "overloaded_error": "server_error",
    "api_error": "server_error",
    "rate_limit_error": "rate_limited",
    "authentication_error": "auth",
    "permission_error": "auth",
    "not_found_error": "not_found",
    "invalid_request_error": "bad_request",
    "request_too_large": "bad_request",
}
#: Anthropic's wording when prompt + max_tokens do not fit the model.
_CONTEXT_MESSAGES = ("prompt is too long", "exceed context limit", "context window")
_DATA_URL = re.compile(
    r"^data:(?P<media>[\w.+-]+/[\w.+-]+)(?P<params>(;[^,;]*)*),(?P<data>.*)$", re.S
)


def _bad(message: str) -> UpstreamFailure:
    return UpstreamFailure("bad_request", message)


# --- request ----------------------------------------------------------------------------


def _text_of(content: Any, where: str) -> str:
    """The text of a system or tool message's content (a string or text parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, Mapping) or part.get("type") != "text":
                raise _bad(f"{where} content may only hold text parts for an anthropic model")
            texts.append(str(part.get("text") or ""))
        return "\n".join(texts)
    raise _bad(f"{where} content must be a string or a list of parts")


def _image_block(part: Mapping[str, Any]) -> JSON:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, Mapping) else image
    if not isinstance(url, str) or not url:
        raise _bad("an image_url part needs a url")
    if url.startswith("data:"):
        match = _DATA_URL.match(url)
        if match is None or ";base64" not in match["params"]:
            raise _bad("an image data: URL must be base64-encoded (data:image/png;base64,...)")
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": match["media"], "data": match["data"]},
        }
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise _bad("an image_url must be an http(s) URL or a base64 data: URL")


def _content_blocks(content: Any, role: str) -> list[JSON]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise _bad(f"{role} message content must be a string or a list of parts")
    blocks: list[JSON] = []
    for part in content:
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text":
            text = str(part.get("text") or "")
            if text:  # Anthropic refuses empty text blocks
                blocks.append({"type": "text", "text": text})
        elif kind == "image_url" and role == "user":
            blocks.append(_image_block(part))
        elif kind == "refusal" and role == "assistant":
            blocks.append({"type": "text", "text": str(part.get("refusal") or "")})
        else:
            raise _bad(f"content part of type {kind!r} in a {role} message is not supported")
    return blocks


def _tool_use_blocks(tool_calls: Any) -> list[JSON]:
    blocks: list[JSON] = []
    for call in tool_calls or ():
        function = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping) or not function.get("name"):
            raise _bad("an assistant tool call needs a function with a name")
        raw = function.get("arguments") or "{}"
        try:
            arguments = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            raise _bad(
                f"the arguments of tool call {call.get('id')!r} ({function['name']}) are not "
                "valid JSON; send them as a JSON object string"
            ) from None
        if not isinstance(arguments, dict):
            raise _bad(
                f"the arguments of tool call {call.get('id')!r} ({function['name']}) must be "
                "a JSON object"
            )
        blocks.append(
            {"type": "tool_use", "id": call.get("id"), "name": function["name"], "input": arguments}
        )
    return blocks


def _messages(messages: Any) -> tuple[list[str], list[JSON]]:
    """(system texts, Anthropic messages with consecutive same-role turns merged)."""
    if not isinstance(messages, list) or not messages:
        raise _bad("messages must be a non-empty list")
    system: list[str] = []
    turns: list[JSON] = []
    for message in messages:
        if not isinstance(message, Mapping):
            raise _bad("each message must be an object")
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            text = _text_of(content, "system")
            if text:
                system.append(text)
            continue
        if role == "user":
            blocks = _content_blocks(content, "user")
        elif role == "assistant":
            blocks = _content_blocks(content, "assistant") + _tool_use_blocks(
                message.get("tool_calls")
            )
        elif role == "tool":
            if not message.get("tool_call_id"):
                raise _bad("a tool message needs the tool_call_id it answers")
            blocks = [
                {
                    "type": "tool_result",
                    "tool_use_id": message["tool_call_id"],
                    "content": _text_of(content, "tool"),
                }
            ]
            role = "user"
        else:
            raise _bad(f"message role {role!r} is not supported for an anthropic model")
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    if turns and turns[-1]["role"] == "assistant":
        # A prefilled answer may not end in whitespace (Anthropic refuses it).
        last = turns[-1]["content"][-1]
        if last["type"] == "text":
            last["text"] = last["text"].rstrip()
    return system, turns


def _tools(tools: Any) -> list[JSON]:
    converted: list[JSON] = []
    for tool in tools or ():
        if not isinstance(tool, Mapping) or tool.get("type", "function") != "function":
            raise _bad("only function tools can be offered to an anthropic model")
        function = tool.get("function")
        if not isinstance(function, Mapping) or not function.get("name"):
            raise _bad("a function tool needs a name")
        entry: JSON = {
            "name": function["name"],
            "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
        }
        if function.get("description"):
            entry["description"] = function["description"]
        converted.append(entry)
    return converted


def _tool_choice(choice: Any, parallel: Any) -> JSON | None:
    result: JSON | None
    if choice is None:
        result = None
    elif choice == "auto":
        result = {"type": "auto"}
    elif choice == "none":
        result = {"type": "none"}
    elif choice == "required":
        result = {"type": "any"}
    elif isinstance(choice, Mapping) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if not name:
            raise _bad("tool_choice names no function")
        result = {"type": "tool", "name": name}
    else:
        raise _bad(f"tool_choice {choice!r} is not supported")
    if parallel is False:
        result = result or {"type": "auto"}
        if result["type"] != "none":
            result["disable_parallel_tool_use"] = True
    return result


class AnthropicProvider(Provider):
    kind = "anthropic"

    def _url(self, target: Target) -> str:
        base = target.base_url or ANTHROPIC_BASE_URL
        return base + ("/messages" if base.endswith("/v1") else "/v1/messages")

    def _headers(self, target: Target) -> dict[str, str]:
        headers = {"anthropic-version": target.config.api_version or ANTHROPIC_VERSION}
        headers.update(target.config.headers)
        if target.api_key is not None:
            headers["x-api-key"] = target.api_key.get_secret_value()
        return headers

    def chat_request(self, target: Target, body: Mapping[str, Any], *, stream: bool) -> HttpRequest:
        if (body.get("n") or 1) != 1:
            raise _bad("an anthropic model returns one choice; n must be 1")
        response_format = body.get("response_format")
        if isinstance(response_format, Mapping) and response_format.get("type") != "text":
            raise _bad(
                f"response_format {response_format.get('type')!r} is not supported by "
                "anthropic models; ask for JSON in the prompt or use a tool"
            )
        system, messages = _messages(body.get("messages"))
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        payload: JSON = {
            "model": target.upstream_model,
            "messages": messages,
            "max_tokens": int(max_tokens) if max_tokens else DEFAULT_MAX_TOKENS,
        }
        if system:
            payload["system"] = "\n\n".join(system)
        if body.get("temperature") is not None:
            payload["temperature"] = min(float(body["temperature"]), 1.0)
        for name in ("top_p", "top_k"):
            if body.get(name) is not None:
                payload[name] = body[name]
        stop = body.get("stop")
        if stop:
            payload["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
        tools = _tools(body.get("tools"))
        if tools:
            payload["tools"] = tools
            choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
            if choice is not None:
                payload["tool_choice"] = choice
        if body.get("user"):
            payload["metadata"] = {"user_id": str(body["user"])}
        if stream:
            payload["stream"] = True
        return HttpRequest(self._url(target), payload, self._headers(target))

    def chat_response(self, target: Target, data: JSON) -> JSON:
        content = data.get("content")
        if not isinstance(content, list):
            raise UpstreamFailure("malformed", "the anthropic answer has no content list")
        texts: list[str] = []
        tool_calls: list[JSON] = []
        for block in content:
            if not isinstance(block, Mapping):
                raise UpstreamFailure("malformed", "the anthropic answer has a non-object block")
            if block.get("type") == "text":
                texts.append(str(block.get("text") or ""))
            elif block.get("type") == "tool_use":
                tool_calls.append(
                    {
                        "id": block.get("id"),
                        "type": "function",
                        "function": {
                            "name": block.get("name"),
                            "arguments": json.dumps(block.get("input") or {}),
                        },
                    }
                )
            # thinking and server-tool blocks have no OpenAI equivalent
        message: JSON = {
            "role": "assistant",
            "content": "".join(texts) if texts or not tool_calls else None,
            "refusal": None,
        }
        if tool_calls:
            message["tool_calls"] = tool_calls
        return {
            "id": data.get("id") or "",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": target.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": _finish_reason(data.get("stop_reason")),
                }
            ],
            "usage": _usage(data.get("usage")),
        }

    def chat_stream(self, target: Target) -> StreamTranslator:
        return AnthropicStream(target.model)

    def classify_error(
        self, status: int, body: bytes, headers: Mapping[str, str]
    ) -> UpstreamFailure:
        """:func:`classify_http`, plus Anthropic's wording for an overlong prompt.

        (529 ``overloaded_error`` is a server error there already.)
        """
        failure = classify_http(status, body, headers)
        message, code = error_fields(body)
        if failure.kind != "context_length_exceeded" and _is_context_error(message):
            return UpstreamFailure(
                "context_length_exceeded",
                message,
                upstream_status=status,
                retry_after=failure.retry_after,
                upstream_code=code,
            )
        return failure


def _is_context_error(message: str) -> bool:
    lowered = message.lower()
    return any(marker in lowered for marker in _CONTEXT_MESSAGES)


def _finish_reason(stop_reason: Any) -> str:
    return _FINISH_REASONS.get(str(stop_reason), "stop")


def _usage(raw: Any) -> JSON:
    usage = raw if isinstance(raw, Mapping) else {}
    cached = int(usage.get("cache_read_input_tokens") or 0)
    written = int(usage.get("cache_creation_input_tokens") or 0)
    prompt = int(usage.get("input_tokens") or 0) + written + cached
    completion = int(usage.get("output_tokens") or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        # Cache reads and writes are priced apart (``price.cached_input_per_1m`` and
        # ``cache_write_per_1m``); OpenAI's shape has no field for writes.
        "prompt_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
    }


# --- stream -----------------------------------------------------------------------------


class AnthropicStream(StreamTranslator):
    """Anthropic's stream events → OpenAI chunks.

    Content blocks are numbered across the whole message (text and tool use alike);
    OpenAI numbers tool calls alone, so tool-use blocks are renumbered from 0.
    """

    def __init__(self, model: str) -> None:
        self.model = model
        self.done = False
        self._id: str | None = None
        self._created = int(time.time())
        self._usage: dict[str, int] = {}
        self._tool_index: dict[int, int] = {}
        self._finished = False

    def _chunk(self, delta: JSON, finish_reason: str | None = None) -> JSON:
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self.model,
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }

    def _add_usage(self, raw: Any) -> None:
        if isinstance(raw, Mapping):
            for key, value in raw.items():
                if isinstance(value, int) and not isinstance(value, bool):
                    self._usage[key] = value  # Anthropic's counts are cumulative

    def feed(self, event: str | None, data: str) -> list[JSON]:
        try:
            payload = json.loads(data)
        except ValueError:
            raise UpstreamFailure(
                "malformed", "the anthropic stream sent an event that is not JSON"
            ) from None
        if not isinstance(payload, dict):
            raise UpstreamFailure("malformed", "the anthropic stream sent a non-object event")
        kind = payload.get("type") or event
        if kind == "error" or event == "error":
            raise _stream_error(payload)
        if kind == "ping" or self.done:
            return []
        if kind == "message_start":
            message = payload.get("message")
            if not isinstance(message, Mapping):
                raise UpstreamFailure("malformed", "message_start carries no message")
            self._id = str(message.get("id") or "")
            self._add_usage(message.get("usage"))
            return [self._chunk({"role": "assistant", "content": ""})]
        if self._id is None:
            raise UpstreamFailure(
                "malformed", f"the anthropic stream sent {kind!r} before message_start"
            )
        if kind == "content_block_start":
            return self._block_start(payload)
        if kind == "content_block_delta":
            return self._block_delta(payload)
        if kind == "message_delta":
            self._add_usage(payload.get("usage"))
            delta = payload.get("delta")
            stop_reason = delta.get("stop_reason") if isinstance(delta, Mapping) else None
            if stop_reason and not self._finished:
                self._finished = True
                return [self._chunk({}, _finish_reason(stop_reason))]
            return []
        if kind == "message_stop":
            self.done = True
            chunks = [] if self._finished else [self._chunk({}, "stop")]
            self._finished = True
            usage_chunk = self._chunk({})
            usage_chunk["choices"] = []
            usage_chunk["usage"] = _usage(self._usage)
            return [*chunks, usage_chunk]
        # content_block_stop, and event types Anthropic may add later
        return []

    def _block_index(self, payload: Mapping[str, Any]) -> int:
        index = payload.get("index")
        if not isinstance(index, int):
            raise UpstreamFailure("malformed", "a content block event has no index")
        return index

    def _block_start(self, payload: Mapping[str, Any]) -> list[JSON]:
        index = self._block_index(payload)
        block = payload.get("content_block")
        if not isinstance(block, Mapping):
            raise UpstreamFailure("malformed", "content_block_start carries no content_block")
        if block.get("type") == "text":
            text = block.get("text")
            return [self._chunk({"content": text})] if text else []
        if block.get("type") == "tool_use":
            position = len(self._tool_index)
            self._tool_index[index] = position
            call = {
                "index": position,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": ""},
            }
            return [self._chunk({"tool_calls": [call]})]
        return []

    def _block_delta(self, payload: Mapping[str, Any]) -> list[JSON]:
        index = self._block_index(payload)
        delta = payload.get("delta")
        if not isinstance(delta, Mapping):
            raise UpstreamFailure("malformed", "content_block_delta carries no delta")
        if delta.get("type") == "text_delta":
            text = delta.get("text")
            if not isinstance(text, str):
                raise UpstreamFailure("malformed", "a text_delta carries no text")
            return [self._chunk({"content": text})] if text else []
        if delta.get("type") == "input_json_delta":
            if index not in self._tool_index:
                raise UpstreamFailure(
                    "malformed", "an input_json_delta for a block that is not tool use"
                )
            partial = delta.get("partial_json")
            if not isinstance(partial, str):
                raise UpstreamFailure("malformed", "an input_json_delta carries no partial_json")
            if not partial:
                return []
            call = {"index": self._tool_index[index], "function": {"arguments": partial}}
            return [self._chunk({"tool_calls": [call]})]
        # thinking, signature and citation deltas have no OpenAI equivalent
        return []


def _stream_error(payload: Mapping[str, Any]) -> UpstreamFailure:
    error = payload.get("error")
    if not isinstance(error, Mapping):
        return UpstreamFailure("malformed", "the anthropic stream sent an error without details")
    code = str(error.get("type") or "")
    message = str(error.get("message") or code or "the anthropic stream failed")
    kind: FailureKind
    if _is_context_error(message):
        kind = "context_length_exceeded"
    else:
        kind = _STREAM_ERROR_KINDS.get(code, "server_error")
    return UpstreamFailure(kind, message, upstream_code=code or None)
