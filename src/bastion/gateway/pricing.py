"""What a call costs, from the policy's per-model prices (USD per million tokens)."""

from __future__ import annotations

from bastion.policy.schema import ModelConfig


def cost_usd(model: ModelConfig, prompt_tokens: int, completion_tokens: int) -> float:
    price = model.price
    if price is None:
        return 0.0
    return (
        prompt_tokens * price.input_per_1m + completion_tokens * price.output_per_1m
    ) / 1_000_000


def worst_case_usd(model: ModelConfig, prompt_tokens: int, max_tokens: int) -> float:
    """The most this call can cost: its prompt plus every token it may generate."""
    return cost_usd(model, prompt_tokens, max_tokens)
