"""What comes back from an upstream: what it cost, and what the caller may see of it.

Plain functions over a call's record, shared by whole and streamed answers: a stream
that is buffered for a redact/block policy is checked exactly as a whole answer is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from bastion.gateway.calls import Call
from bastion.gateway.pricing import cost_usd
from bastion.gateway.providers.base import JSON
from bastion.gateway.tokens import count_text
from bastion.policy.schema import Policy
from bastion.privacy import PrivacyGuard, Vault
from bastion.privacy.chat import map_json_strings


def finish_completion(
    completion: JSON, call: Call, guard: PrivacyGuard, vault: Vault, policy: Policy
) -> JSON:
    """Bill a whole completion, check it for leaks, and restore the caller's values."""
    # The completion was parsed for this call alone: changed in place, never shared.
    completion["model"] = call.served_model
    messages: list[JSON] = []
    texts = []
    for choice in completion.get("choices") or []:
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            continue
        call.finish_reason = choice.get("finish_reason") or call.finish_reason
        messages.append(message)
        if isinstance(message.get("content"), str):
            texts.append(message["content"])
        for tool_call in message.get("tool_calls") or []:
            texts.append(str((tool_call.get("function") or {}).get("arguments", "")))
    call.answer_text = "\n".join(texts)
    usage = completion.get("usage")
    # Accounted before any check: the upstream has been paid whatever happens next.
    account(call, usage if isinstance(usage, dict) else None, policy)

    def check(text: str) -> str:
        checked = guard.check_response(text, vault)
        call.flags.update(checked.flags)
        return checked.text

    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            message["content"] = check(content)
        for tool_call in message.get("tool_calls") or []:
            function = tool_call.get("function") if isinstance(tool_call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                # Arguments are checked like content (flag, redact or block), value by
                # value so that a redaction keeps them JSON.
                raw = function["arguments"]
                checked_raw = map_json_strings(raw, check)
                if json.loads(checked_raw) != _loads_or(raw):
                    function["arguments"] = checked_raw
    restored, invented = guard.restore_chat(completion, vault)
    if invented:
        call.flags.add("invented_placeholder")
    if call.finish_reason == "length":
        call.flags.add("truncated_by_max_tokens")
    return restored


def account(call: Call, usage: Mapping[str, Any] | None, policy: Policy) -> None:
    """Tokens and cost: the upstream's usage when it sent one, else the text counted."""
    if usage and isinstance(usage.get("completion_tokens"), int):
        call.usage_source = "upstream"
        if isinstance(usage.get("prompt_tokens"), int):
            call.prompt_tokens = usage["prompt_tokens"]
        call.completion_tokens = usage["completion_tokens"]
    else:
        call.usage_source = "counted"
        call.completion_tokens = count_text(call.answer_text)
    details = usage.get("prompt_tokens_details") if usage else None
    cached = written = 0
    if isinstance(details, Mapping):
        cached = _count(details.get("cached_tokens"))
        written = _count(details.get("cache_write_tokens"))
    model = policy.models.get(call.served_model or "")
    if model is not None:
        call.cost_usd = cost_usd(
            model,
            call.prompt_tokens,
            call.completion_tokens,
            cached_tokens=cached,
            cache_write_tokens=written,
        )


def account_embedding(call: Call, answer: Mapping[str, Any], policy: Policy) -> None:
    usage = answer.get("usage")
    if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
        call.prompt_tokens = usage["prompt_tokens"]
        call.usage_source = "upstream"
    else:
        call.usage_source = "counted"
    call.cost_usd = cost_usd(policy.models[call.served_model or ""], call.prompt_tokens, 0)


def account_chunks(call: Call, chunks: list[JSON], policy: Policy) -> None:
    """Bill the chunks a stream delivered before it broke off (upstream usage if it
    came, else the generated text counted)."""
    texts: list[str] = []
    usage = None
    for chunk in chunks:
        if isinstance(chunk.get("usage"), dict):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            texts.append(str(delta.get("content") or ""))
            for tc in delta.get("tool_calls") or []:
                texts.append(str((tc.get("function") or {}).get("arguments") or ""))
    call.answer_text = "".join(texts)
    account(call, usage, policy)


def mask_inputs(guard: PrivacyGuard, vault: Vault, value: Any, call: Call) -> Any:
    """An embeddings ``input`` (a string or a list of them) with personal data masked."""
    if isinstance(value, str):
        protected = guard.protect_text(value, vault)
        call.flags.update(protected.flags)
        return protected.value
    if isinstance(value, list):
        return [mask_inputs(guard, vault, v, call) if isinstance(v, str) else v for v in value]
    return value


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def _loads_or(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw
