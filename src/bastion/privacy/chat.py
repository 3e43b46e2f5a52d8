"""Every piece of text in an OpenAI chat request or response, masked or restored.

Covered in a request: system, user, assistant, tool and function messages; string and
multi-part content (``{"type": "text", "text": ...}`` parts; images and audio pass as
they are); assistant tool-call and function-call arguments (JSON: string values are
transformed and the JSON re-encoded, so a replacement can never break the syntax); and
the legacy completions ``prompt``. In a response: message content and tool-call
arguments, and the same fields of streamed ``delta`` chunks.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from bastion import jsonio
from bastion.privacy.restore import StreamRestorer, restore
from bastion.privacy.vault import Vault

TextFn = Callable[[str], str]


def json_string_escape(value: str) -> str:
    """``value`` as it must appear inside a JSON string literal."""
    return json.dumps(value, ensure_ascii=False)[1:-1]


def map_json_strings(raw: str, fn: TextFn) -> str:
    """``fn`` applied to every string value inside the JSON text ``raw``.

    Text that is not JSON (a model may stream half an object) is transformed as a whole.
    """
    try:
        data = json.loads(raw)
    except ValueError:
        return fn(raw)
    return json.dumps(_map_values(data, fn), ensure_ascii=False)


def _map_values(data: Any, fn: TextFn) -> Any:
    if isinstance(data, str):
        return fn(data)
    if isinstance(data, list):
        return [_map_values(v, fn) for v in data]
    if isinstance(data, dict):
        return {k: _map_values(v, fn) for k, v in data.items()}
    return data


def _map_content(content: Any, fn: TextFn) -> Any:
    if isinstance(content, str):
        return fn(content)
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                part = {**part, "text": fn(part["text"])}
            elif isinstance(part, dict) and isinstance(part.get("refusal"), str):
                part = {**part, "refusal": fn(part["refusal"])}
            elif isinstance(part, str):
                part = fn(part)
            out.append(part)
        return out
    return content


def _map_message(message: dict[str, Any], fn: TextFn, args_fn: TextFn) -> None:
    if "content" in message:
        message["content"] = _map_content(message["content"], fn)
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("arguments"), str):
            function["arguments"] = args_fn(function["arguments"])
    function_call = message.get("function_call")
    if isinstance(function_call, dict) and isinstance(function_call.get("arguments"), str):
        function_call["arguments"] = args_fn(function_call["arguments"])


def map_request_texts(body: Mapping[str, Any], fn: TextFn) -> dict[str, Any]:
    """A copy of a chat (or completions) request with ``fn`` applied to every text."""
    out = jsonio.copy(dict(body))

    def args_fn(raw: str) -> str:
        return map_json_strings(raw, fn)

    for message in out.get("messages") or ():
        if isinstance(message, dict):
            _map_message(message, fn, args_fn)
    prompt = out.get("prompt")
    if isinstance(prompt, str):
        out["prompt"] = fn(prompt)
    elif isinstance(prompt, list):
        out["prompt"] = [fn(p) if isinstance(p, str) else p for p in prompt]
    return out


def request_texts(body: Mapping[str, Any]) -> list[str]:
    """Every text of a request, in order (for deny-list checks and audits)."""
    texts: list[str] = []

    def collect(text: str) -> str:
        texts.append(text)
        return text

    map_request_texts(body, collect)
    return texts


def restore_response(body: Mapping[str, Any], vault: Vault) -> tuple[dict[str, Any], list[str]]:
    """A non-streamed chat completion with placeholders restored; and invented ones."""
    out = jsonio.copy(dict(body))
    invented: list[str] = []

    def fn(text: str) -> str:
        result = restore(text, vault)
        invented.extend(result.invented)
        return result.text

    def args_fn(raw: str) -> str:
        try:
            json.loads(raw)
        except ValueError:
            result = restore(raw, vault, encode=json_string_escape)
            invented.extend(result.invented)
            return result.text
        return map_json_strings(raw, fn)

    for choice in out.get("choices") or ():
        if isinstance(choice, dict):
            if isinstance(choice.get("message"), dict):
                _map_message(choice["message"], fn, args_fn)
            if isinstance(choice.get("text"), str):
                choice["text"] = fn(choice["text"])
    return out, invented


class ChatStreamRestorer:
    """Restores placeholders in streamed chat-completion chunks (one per stream).

    Each choice's content, and each of its tool calls' arguments, has its own
    :class:`StreamRestorer`; what they hold back is released in the chunk that carries
    the choice's ``finish_reason``, or by :meth:`flush` if the stream ends without one.
    """

    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        self._content: dict[int, StreamRestorer] = {}
        self._args: dict[tuple[int, int], StreamRestorer] = {}

    @property
    def invented(self) -> list[str]:
        out: list[str] = []
        for r in (*self._content.values(), *self._args.values()):
            out.extend(r.invented)
        return out

    def restore_chunk(self, chunk: Mapping[str, Any]) -> dict[str, Any]:
        out = jsonio.copy(dict(chunk))
        for choice in out.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            index = int(choice.get("index", 0))
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                if not choice.get("finish_reason"):
                    continue
                delta = choice["delta"] = {}
            if isinstance(delta.get("content"), str):
                delta["content"] = self._content_restorer(index).feed(delta["content"])
            for call in delta.get("tool_calls") or ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                    r = self._args_restorer(index, int(call.get("index", 0)))
                    function["arguments"] = r.feed(function["arguments"])
            if choice.get("finish_reason"):
                self._release(index, delta)
        return out

    def flush(self) -> dict[int, dict[str, Any]]:
        """Deltas holding whatever is still held back, by choice index."""
        out: dict[int, dict[str, Any]] = {}
        for index in sorted({*self._content, *(i for i, _ in self._args)}):
            delta: dict[str, Any] = {}
            self._release(index, delta)
            if delta:
                out[index] = delta
        return out

    def _release(self, index: int, delta: dict[str, Any]) -> None:
        content = self._content.pop(index, None)
        if content is not None:
            rest = content.flush()
            if rest:
                delta["content"] = (delta.get("content") or "") + rest
        for key in sorted(k for k in self._args if k[0] == index):
            rest = self._args.pop(key).flush()
            if not rest:
                continue
            calls = delta.setdefault("tool_calls", [])
            for call in calls:
                if call.get("index", 0) == key[1]:
                    function = call.setdefault("function", {})
                    function["arguments"] = (function.get("arguments") or "") + rest
                    break
            else:
                calls.append({"index": key[1], "function": {"arguments": rest}})

    def _content_restorer(self, index: int) -> StreamRestorer:
        r = self._content.get(index)
        if r is None:
            r = self._content[index] = StreamRestorer(self.vault)
        return r

    def _args_restorer(self, index: int, call: int) -> StreamRestorer:
        r = self._args.get((index, call))
        if r is None:
            r = self._args[(index, call)] = StreamRestorer(self.vault, encode=json_string_escape)
        return r
