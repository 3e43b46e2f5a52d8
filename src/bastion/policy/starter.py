"""The policy written on first start, so a new user has a working, commented example."""

from __future__ import annotations

from pathlib import Path

STARTER_POLICY = """\
# Bastion governance policy. `bastion policy check FILE` validates it; the server
# reloads it when it changes (or on SIGHUP) and keeps the old one if the new one is bad.
version: 1

providers:
  openai:
    kind: openai
    base_url: "https://api.openai.com/v1"
    api_key_env: OPENAI_API_KEY       # read from the environment, never stored
    timeout_s: 30

models:
  gpt-4.1-mini:
    provider: openai
    upstream_model: gpt-4.1-mini
    price: {input_per_1m: 0.40, output_per_1m: 1.60}
    context_window: 128000
    fallbacks: [local]
  local: {provider: local}          # offline, deterministic: answers from the prompt
  local-embed: {provider: local, kind: embedding}   # offline embeddings (hashed words)
  minilm:                           # offline sentence embeddings: all-MiniLM-L6-v2, int8 ONNX
    provider: local
    kind: embedding
    upstream_model: all-MiniLM-L6-v2

roles:
  admin: {models: ["*"]}
  analyst: {models: [gpt-4.1-mini, local, local-embed, minilm], max_tokens_per_request: 4096}
  guest: {models: [local, minilm]}
  auditor:
    models: []
    permissions: [audit:read, reports:read, policy:read, models:read, monitoring:read]
    description: Risk and compliance officers who read the evidence.

teams:
  risk:
    budgets: [{usd: 50, per: day}, {usd: 1000, per: month}]
    limits: {requests_per_minute: 600, tokens_per_minute: 200000}

defaults:
  limits: {requests_per_minute: 60, tokens_per_minute: 100000}
  budgets: [{usd: 10, per: day}]

privacy:
  prompt:
    action: mask
    # SECRET: every SECRET_* type (API keys, tokens, private keys, passwords)
    entities: [EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD, US_SSN, IBAN_CODE, IP_ADDRESS, PERSON,
               SECRET]
  response: {action: flag}
  on_error: block

denylist:
  - {pattern: "\\\\bSSN\\\\b", action: flag}

# Documents for retrieval (`bastion docs ingest`, POST /api/collections/NAME/documents).
# Searches embed the question with embedding_model through the gateway (budgeted and
# recorded like any call); without one, retrieval is BM25 alone.
documents:
  embedding_model: minilm
  personal_data: mask               # index | mask | refuse, per collection if need be
  collections:
    regulations:                    # the demo corpus: GDPR and EU AI Act articles
      read: ["*"]
      personal_data: index          # public law: nothing to mask
      description: GDPR and EU AI Act articles (EUR-Lex, © European Union)

audit: {store_content: false}
retention: {content_days: 30}

# Served models (POST /predict/NAME): what the prediction log keeps of the inputs, and
# the server's own monitoring of it — drift of each production model's recent window
# against its registered baseline, and performance once labels arrive (each run is a
# ledger event; findings go through monitoring.alert_rules when you add some).
serving:
  features: full                    # full | digest | [age, hours_per_week]
  checks: {interval: 1h, window: 24h, min_rows: 100, fail_on: dataset}

# Model releases: the evidence a version needs before it may enter a stage. Checked
# when a promotion is requested and again when it is approved; an admin may override
# a failing gate only with a written justification (recorded in the ledger).
registry:
  gates:
    staging:
      model_card: true              # the card's intended use is written
    production:
      model_card: true
      drift_baseline: true          # a reference profile is stored for monitoring
      fairness: {checks: [four_fifths]}   # a stored Fairlearn report passes these checks
      # metrics: {roc_auc: {min: 0.80}}             # absolute thresholds on run metrics
      # no_worse_than_production: {roc_auc: {margin: 0.01}}
  models:
    adult-income:                   # the worked example (`bastion demo seed`)
      gates:
        staging:
          metrics: {roc_auc: {min: 0.80}}
          model_card: true
        production:
          metrics: {roc_auc: {min: 0.85}, accuracy: {min: 0.80}}
          no_worse_than_production: {roc_auc: {margin: 0.02}}
          # Demographic parity by sex; race groups are reported but too small to judge.
          fairness: {checks: [demographic_parity_ratio, four_fifths], features: [sex]}
          model_card: true
          drift_baseline: true
  allow_override: true
"""


def write_starter_policy(path: Path) -> bool:
    """Write the starter policy if there is none; True when written."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(STARTER_POLICY, encoding="utf-8")
    return True
