"""What a call costs, from the policy's per-model prices (USD per million tokens)."""

from __future__ import annotations

from bastion.policy.schema import ModelConfig


def cost_usd(
    model: ModelConfig,
    prompt_tokens: int,
    completion_tokens: int,
    *,
    cached_tokens: int = 0,
    cache_write_tokens: int = 0,
) -> float:
    """``prompt_tokens`` includes the cached and cache-written ones, priced apart."""
    price = model.price
    if price is None:
        return 0.0
    cached = min(max(cached_tokens, 0), prompt_tokens)
    written = min(max(cache_write_tokens, 0), prompt_tokens - cached)
    plain = prompt_tokens - cached - written
    read_price = (
        price.input_per_1m if price.cached_input_per_1m is None else price.cached_input_per_1m
    )
    write_price = (
        price.input_per_1m if price.cache_write_per_1m is None else price.cache_write_per_1m
    )
    return (
        plain * price.input_per_1m
        + cached * read_price
        + written * write_price
        + completion_tokens * price.output_per_1m
    ) / 1_000_000


def worst_case_usd(model: ModelConfig, prompt_tokens: int, max_tokens: int) -> float:
    """The most this call can cost: its prompt at the dearest prompt price (a cache
    write may cost more than plain input) plus every token it may generate."""
    price = model.price
    if price is None:
        return 0.0
    prompt_price = max(price.input_per_1m, price.cache_write_per_1m or 0.0)
    return (prompt_tokens * prompt_price + max_tokens * price.output_per_1m) / 1_000_000
