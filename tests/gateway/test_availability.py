"""Which models their provider answers, which a fallback answers, and which nobody does,
from the policy and which key variables are set (what `bastion status` and the start-up
lines report)."""

from __future__ import annotations

import pytest

from bastion.gateway.availability import model_statuses, provider_statuses
from bastion.policy import STARTER_POLICY, parse_policy

POLICY = """
version: 1
providers:
  openai: {kind: openai, base_url: "https://api.openai.com/v1", api_key_env: OPENAI_API_KEY}
  claude: {kind: anthropic, base_url: "https://api.anthropic.com", api_key_env: ANTHROPIC_API_KEY}
  vllm: {kind: openai, base_url: "http://127.0.0.1:8001/v1"}
models:
  gpt: {provider: openai, fallbacks: [sonnet, local]}
  sonnet: {provider: claude}
  big-embed: {provider: openai, kind: embedding, fallbacks: [local]}
  llama: {provider: vllm}
  local: {provider: local}
roles:
  admin: {models: ["*"]}
"""


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        (
            set(),
            {
                "gpt": ("fallback", "local"),
                "sonnet": ("unavailable", None),
                # a chat fallback does not answer an embeddings model
                "big-embed": ("unavailable", None),
                "llama": ("ready", "llama"),
                "local": ("ready", "local"),
            },
        ),
        (
            {"ANTHROPIC_API_KEY"},
            {
                "gpt": ("fallback", "sonnet"),  # the first ready fallback, in order
                "sonnet": ("ready", "sonnet"),
                "big-embed": ("unavailable", None),
                "llama": ("ready", "llama"),
                "local": ("ready", "local"),
            },
        ),
        (
            {"OPENAI_API_KEY"},
            {
                "gpt": ("ready", "gpt"),
                "sonnet": ("unavailable", None),
                "big-embed": ("ready", "big-embed"),
                "llama": ("ready", "llama"),
                "local": ("ready", "local"),
            },
        ),
    ],
)
def test_what_answers_each_model(
    keys: set[str], expected: dict[str, tuple[str, str | None]]
) -> None:
    policy = parse_policy(POLICY).policy
    models = {m.name: m for m in model_statuses(policy, keys.__contains__)}
    assert {n: (m.state, m.answered_by) for n, m in models.items()} == expected
    for m in models.values():
        if m.state != "ready":  # the reason names the variable, never a value
            assert m.reason.split(" is not set")[0].endswith("_API_KEY")


def test_providers_name_their_key_variable_and_the_builtin_local() -> None:
    policy = parse_policy(STARTER_POLICY).policy
    providers = {p.name: p for p in provider_statuses(policy, lambda name: False)}
    assert providers["openai"].state == "missing_key"
    assert providers["openai"].detail == "OPENAI_API_KEY is not set"
    assert providers["local"].state == "ready" and providers["local"].kind == "local"
    ready = {p.name: p.state for p in provider_statuses(policy, lambda name: True)}
    assert ready == {"openai": "ready", "local": "ready"}
