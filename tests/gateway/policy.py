"""The policy the gateway tests run under: every fake-upstream behaviour as a model."""

from __future__ import annotations

from pathlib import Path

TEMPLATE = """\
version: 1
providers:
  fake:
    kind: openai
    base_url: "{base}/v1"
    timeout_s: 2
    connect_timeout_s: 1
    first_token_timeout_s: 1
    stall_timeout_s: 0.4
    max_retries: 2
    breaker_failures: 50
  flappy:
    kind: openai
    base_url: "{base}/v1"
    timeout_s: 2
    max_retries: 0
    breaker_failures: 2
    breaker_reset_s: 0.6
  azure-fake:
    kind: azure
    base_url: "{base}"
    api_key_env: BASTION_TEST_AZURE_KEY
    api_version: "2024-10-21"
  anthropic-fake:
    kind: anthropic
    base_url: "{base}"
    api_key_env: BASTION_TEST_ANTHROPIC_KEY
  keyless:
    kind: openai
    base_url: "{base}/v1"
    api_key_env: BASTION_TEST_MISSING_KEY
  modern:
    kind: openai
    base_url: "{base}/v1"
    max_tokens_field: max_completion_tokens
models:
  ok: {{provider: fake, upstream_model: ok, price: {{input_per_1m: 1.0, output_per_1m: 2.0}},
        context_window: 8000}}
  small: {{provider: fake, upstream_model: context-length, context_window: 8000,
           fallbacks: [ok]}}
  tiny-window: {{provider: fake, upstream_model: ok, context_window: 50}}
  strict: {{provider: fake, upstream_model: content-policy, fallbacks: [ok]}}
  once: {{provider: fake, upstream_model: 500-once, price: {{input_per_1m: 1.0, output_per_1m: 2.0}}}}
  down: {{provider: fake, upstream_model: "503", fallbacks: [local]}}
  busy: {{provider: fake, upstream_model: "429-retry-after:1"}}
  busy-bare: {{provider: fake, upstream_model: "429", fallbacks: [ok]}}
  reset: {{provider: fake, upstream_model: reset, fallbacks: [ok]}}
  hang: {{provider: fake, upstream_model: hang, fallbacks: [ok]}}
  slow-first: {{provider: fake, upstream_model: "first-token-delay:3000", fallbacks: [ok]}}
  cut: {{provider: fake, upstream_model: "cut:3", price: {{input_per_1m: 1.0, output_per_1m: 2.0}}}}
  stall: {{provider: fake, upstream_model: "stall:3"}}
  malformed: {{provider: fake, upstream_model: malformed}}
  no-done: {{provider: fake, upstream_model: no-done}}
  no-usage: {{provider: fake, upstream_model: no-usage,
              price: {{input_per_1m: 1.0, output_per_1m: 2.0}}}}
  mid-error: {{provider: fake, upstream_model: error-mid-stream}}
  flap: {{provider: flappy, upstream_model: "flap:30", fallbacks: [local]}}
  az: {{provider: azure-fake, upstream_model: my-deployment}}
  claude: {{provider: anthropic-fake, upstream_model: claude-test}}
  nokey: {{provider: keyless, upstream_model: ok, fallbacks: [local]}}
  pricey: {{provider: fake, upstream_model: ok, price: {{input_per_1m: 1000, output_per_1m: 1000}},
            context_window: 8000}}
  embed: {{provider: fake, upstream_model: ok, kind: embedding,
           price: {{input_per_1m: 0.1, output_per_1m: 0}}}}
  narrow: {{provider: fake, upstream_model: ok, context_window: 60, fallbacks: [ok]}}
  quota: {{provider: flappy, upstream_model: "429"}}
  leaky: {{provider: fake, upstream_model: leak}}
  bad-chunk: {{provider: fake, upstream_model: bad-chunk,
               price: {{input_per_1m: 1.0, output_per_1m: 2.0}}}}
  greedy: {{provider: fake, upstream_model: "prompt-tokens:5000",
            price: {{input_per_1m: 1.0, output_per_1m: 2.0}}}}
  modern-ok: {{provider: modern, upstream_model: ok}}
  stall-priced: {{provider: fake, upstream_model: "stall:3",
                  price: {{input_per_1m: 1.0, output_per_1m: 2.0}}}}
  slow: {{provider: fake, upstream_model: "delay:500", price: {{input_per_1m: 1.0, output_per_1m: 2.0}}}}
  local: {{provider: local}}
  local-embed: {{provider: local, kind: embedding}}
roles:
  admin: {{models: ["*"]}}
  analyst: {{models: ["*"], max_tokens_per_request: 1000}}
  guest: {{models: [local]}}
teams:
  capped:
    budgets: [{{usd: {team_budget}, per: day}}]
defaults:
  limits: {{requests_per_minute: 100000, tokens_per_minute: 100000000}}
  on_counter_error: {on_counter_error}
privacy:
  prompt: {{action: mask}}
  response: {{action: {response_action}}}
  on_error: block
denylist:
  - {{term: PHI, action: flag}}
  - {{term: "project bluebird", action: block}}
audit: {{store_content: {store_content}}}
"""


def write_policy(
    path: Path,
    base_url: str,
    *,
    team_budget: float = 1.0,
    on_counter_error: str = "refuse",
    store_content: bool = False,
    response_action: str = "flag",
) -> Path:
    path.write_text(
        TEMPLATE.format(
            base=base_url.rstrip("/"),
            team_budget=team_budget,
            on_counter_error=on_counter_error,
            store_content=str(store_content).lower(),
            response_action=response_action,
        ),
        encoding="utf-8",
    )
    return path
