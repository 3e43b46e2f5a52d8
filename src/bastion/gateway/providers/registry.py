"""Providers by kind: what the policy's ``providers.<name>.kind`` selects."""

from __future__ import annotations

from functools import cache

from bastion.errors import InvalidInput
from bastion.gateway.providers.base import InProcessProvider, Provider


@cache
def _all() -> dict[str, Provider | InProcessProvider]:
    from bastion.gateway.providers.anthropic import AnthropicProvider
    from bastion.gateway.providers.local import LocalProvider
    from bastion.gateway.providers.openai import AzureOpenAIProvider, OpenAIProvider

    return {
        "openai": OpenAIProvider(),
        "azure": AzureOpenAIProvider(),
        "anthropic": AnthropicProvider(),
        "local": LocalProvider(),
    }


def get(kind: str) -> Provider | InProcessProvider:
    try:
        return _all()[kind]
    except KeyError:
        raise InvalidInput(f"unknown provider kind {kind!r}", code="provider_unknown") from None


def kinds() -> list[str]:
    return sorted(_all())
