"""The policy file: what it accepts, and errors that say where and what."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bastion.policy import STARTER_POLICY, PolicyError, parse_policy

ISSUE_EXAMPLE = """\
version: 1
providers:
  upstream-a: {kind: openai, base_url: "http://127.0.0.1:9100/v1", api_key_env: UPSTREAM_A_KEY, timeout_s: 30}
models:
  gpt-4.1-mini:
    provider: upstream-a
    upstream_model: gpt-4.1-mini
    price: {input_per_1m: 0.40, output_per_1m: 1.60}
    context_window: 128000
    fallbacks: [local]
  local: {provider: local}
roles:
  admin: {models: ["*"]}
  analyst: {models: [gpt-4.1-mini, local], max_tokens_per_request: 4096}
  guest: {models: [local]}
teams:
  risk:
    budgets: [{usd: 50, per: day}, {usd: 1000, per: month}]
    limits: {requests_per_minute: 600, tokens_per_minute: 200000}
defaults:
  limits: {requests_per_minute: 60, tokens_per_minute: 100000}
  budgets: [{usd: 10, per: day}]
privacy:
  prompt: {action: mask, entities: [EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD, US_SSN, IBAN_CODE, IP_ADDRESS, PERSON]}
  response: {action: flag}
  on_error: block
denylist:
  - {pattern: "\\\\bSSN\\\\b", action: flag}
audit: {store_content: false}
retention: {content_days: 30, events_days: 365}
"""


def test_the_issue_example_is_accepted_whole() -> None:
    policy = parse_policy(ISSUE_EXAMPLE).policy
    assert policy.models["gpt-4.1-mini"].price is not None
    assert policy.models["gpt-4.1-mini"].price.output_per_1m == 1.60
    assert policy.models["gpt-4.1-mini"].fallbacks == ["local"]
    assert policy.roles["analyst"].max_tokens_per_request == 4096
    assert [b.per for b in policy.teams["risk"].budgets] == ["day", "month"]
    assert policy.denylist[0].pattern == r"\bSSN\b"
    assert policy.privacy.prompt.entities[0] == "EMAIL_ADDRESS"
    assert policy.privacy.on_error == "block"
    assert policy.models_for_role("guest") == ["local"]
    assert policy.models_for_role("admin") == ["gpt-4.1-mini", "local"]


def test_monitoring_rules_live_in_the_same_file() -> None:
    text = (
        ISSUE_EXAMPLE
        + """\
monitoring:
  fairness: {four_fifths: 0.8}
  notifiers:
    log: {kind: log}
  alert_rules:
    - {name: drift-to-log, checks: [drift], min_severity: warning, notify: [log]}
"""
    )
    policy = parse_policy(text).policy
    assert policy.monitoring.alert_rules[0].notify == ["log"]
    with pytest.raises(PolicyError) as caught:
        parse_policy(text.replace("min_severity: warning", "min_severity: loud"), "p.yaml")
    [issue] = caught.value.issues
    assert issue.line == 36
    assert issue.key == "monitoring.alert_rules[0].min_severity"


def test_the_starter_policy_is_valid() -> None:
    assert "auditor" in parse_policy(STARTER_POLICY).policy.roles


def _edit(old: str, new: str) -> str:
    assert old in ISSUE_EXAMPLE
    return ISSUE_EXAMPLE.replace(old, new, 1)


@pytest.mark.parametrize(
    ("text", "line", "key", "message"),
    [
        (
            _edit("max_tokens_per_request: 4096", "max_tokens_per_request: lots"),
            14,
            "roles.analyst.max_tokens_per_request",
            "expected a valid integer",
        ),
        (
            _edit("timeout_s: 30}", "timeout_s: 30, tmeout: 5}"),
            3,
            "providers.upstream-a.tmeout",
            "unknown key; expected one of: kind, base_url",
        ),
        (_edit("per: month}", "per: fortnight}"), 18, "teams.risk.budgets[1].per", "expected 'day', 'week' or 'month'"),
        (_edit("usd: 50", "usd: -5"), 18, "teams.risk.budgets[0].usd", "greater than 0"),
        (_edit("kind: openai", "kind: openia"), 3, "providers.upstream-a.kind", "'openai'"),
        (_edit("    provider: upstream-a\n", "    provider: upstream-b\n"), 6, "models.gpt-4.1-mini.provider", "unknown provider 'upstream-b'"),
        (_edit("fallbacks: [local]", "fallbacks: [lokal]"), 10, "models.gpt-4.1-mini.fallbacks[0]", "unknown model 'lokal'"),
        (_edit("guest: {models: [local]}", "guest: {models: [gpt-5]}"), 15, "roles.guest.models[0]", "unknown model 'gpt-5'"),
        (_edit('pattern: "\\\\bSSN\\\\b"', 'pattern: "(unclosed"'), 28, "denylist[0]", "not a valid regex"),
        (_edit("version: 1", "version: 2"), 1, "version", "expected 1"),
        (_edit("entities: [EMAIL_ADDRESS,", "entities: [EMAIL,"), 24, "privacy.prompt.entities", "unknown entity type(s) EMAIL"),
        (_edit("version: 1\n", ""), 1, "version", "required key is missing"),
        (_edit("  local: {provider: local}\n", "  local: {provider: local}\n  local: {provider: local}\n"), 12, "models.local", "duplicate key"),
        (_edit("    upstream_model: gpt-4.1-mini\n", "    upstream_model: [gpt-4.1-mini\n"), None, "", "not valid YAML"),
    ],
    ids=[
        "wrong-type", "unknown-key", "bad-enum", "negative-budget", "bad-provider-kind", "unknown-provider",
        "unknown-fallback", "unknown-role-model", "bad-regex", "wrong-version", "unknown-entity", "missing-version", "duplicate-key",
        "yaml-syntax",
    ],
)  # fmt: skip
def test_each_error_names_file_line_key_and_expectation(
    text: str, line: int | None, key: str, message: str
) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "policy.yaml")
    issues = caught.value.issues
    assert len(issues) == 1, [str(i) for i in issues]
    issue = issues[0]
    assert issue.file == "policy.yaml"
    if line is not None:
        assert issue.line == line
    else:
        assert issue.line is not None
    assert issue.key == key
    assert message in issue.message
    assert str(issue).startswith(f"policy.yaml:{issue.line}:")


def test_all_errors_are_reported_at_once() -> None:
    text = _edit("max_tokens_per_request: 4096", "max_tokens_per_request: lots")
    text = text.replace("per: month}", "per: fortnight}").replace("timeout_s: 30}", "timeout_s: 0}")
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "p.yaml")
    assert len(caught.value.issues) == 3


@pytest.mark.parametrize("text", ["", "- a list\n", "just a string\n"])
def test_a_file_that_is_not_a_mapping_is_refused(text: str) -> None:
    with pytest.raises(PolicyError, match="expected a mapping"):
        parse_policy(text, "p.yaml")


def test_policy_check_command_prints_every_error_and_exits_1(tmp_path: Path) -> None:
    from bastion.cli.main import _register, app

    _register()
    bad = tmp_path / "policy.yaml"
    bad.write_text(
        _edit("max_tokens_per_request: 4096", "max_tokens_per_request: lots").replace(
            "kind: openai", "kind: x"
        )
    )
    result = CliRunner().invoke(app, ["policy", "check", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:14:" in result.output and "roles.analyst.max_tokens_per_request" in result.output
    assert f"{bad}:3:" in result.output and "providers.upstream-a.kind" in result.output
    good = tmp_path / "good.yaml"
    good.write_text(ISSUE_EXAMPLE)
    result = CliRunner().invoke(app, ["policy", "check", str(good)])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output


def test_policy_check_on_a_missing_file_says_so(tmp_path: Path) -> None:
    from bastion.cli.main import _register, app

    _register()
    result = CliRunner().invoke(app, ["policy", "check", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 1
    assert "file not found" in result.output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "version: 1\na: &a [x, x, x, x, x, x, x, x]\nb: [*a, *a, *a, *a, *a, *a, *a, *a]\n",
            "aliases",
        ),
        ("version: 1\nx: " + "[" * 5000, "nested deeper"),
    ],
    ids=["alias-bomb", "deep-nesting"],
)
def test_hostile_yaml_is_refused_quickly(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_policy(text, "p.yaml")


def test_off_and_yes_are_words_not_booleans() -> None:
    """YAML 1.1 reads `off` as false; a policy reads it as the word users wrote."""
    text = ISSUE_EXAMPLE.replace("response: {action: flag}", "response: {action: off}")
    text = text.replace("prompt: {action: mask,", "prompt: {action: off,")
    policy = parse_policy(text).policy
    assert policy.privacy.response.action == "off"
    assert policy.privacy.prompt.action == "off"
    assert (
        parse_policy(
            ISSUE_EXAMPLE.replace("store_content: false", "store_content: true")
        ).policy.audit.store_content
        is True
    )


@pytest.mark.parametrize(
    ("checks", "key", "message"),
    [
        ("{interval: soon}", "serving.checks.interval", "'soon' is not a length"),
        ("{window: 10s}", "serving.checks.window", "is not a length"),
        ("{interval: 90d}", "serving.checks.interval", "between 1m and 30d"),
        ("{min_rows: 0}", "serving.checks.min_rows", "greater than or equal to 1"),
        ("{fail_on: everything}", "serving.checks.fail_on", "'dataset' or 'column'"),
        ("{every: 1h}", "serving.checks.every", "unknown key"),
    ],
)
def test_a_bad_serving_checks_schedule_names_its_line(checks: str, key: str, message: str) -> None:
    text = ISSUE_EXAMPLE + f"serving:\n  features: full\n  checks: {checks}\n"
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "policy.yaml")
    (issue,) = caught.value.issues
    assert issue.key == key
    assert issue.line == len(ISSUE_EXAMPLE.splitlines()) + 3
    assert message in issue.message
