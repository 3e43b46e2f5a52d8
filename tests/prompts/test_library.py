"""The prompt library: line-level errors, pinning by digest, rendering, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from bastion.prompts import (
    BUILTIN_DIR,
    BUILTIN_LOCK,
    PromptChanged,
    PromptFileError,
    PromptLibrary,
    PromptNotFound,
    PromptVariablesError,
    parse_prompt,
)

GOOD = """\
name: greet
version: 1
variables:
  who: {max_chars: 20}
messages:
  - role: user
    content: |
      Say hello to {{ who }}.
"""


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        (GOOD.replace("version: 1", "version: 0"), 2, "greater than or equal to 1"),
        (GOOD.replace("version: 1", "versoin: 1"), 2, "unknown key"),
        (GOOD.replace("role: user", "role: robot"), 6, "expected 'system', 'user' or 'assistant'"),
        (GOOD.replace("{{ who }}", "{{ whom }}"), 7, "'whom', which is not declared"),
        (GOOD.replace("{{ who }}", "nobody"), 4, "declared but no template uses it"),
        (GOOD.replace("{{ who }}.", "{{ who }.\n      {% endfor %}"), 8, "template error"),
        (GOOD + "name: again\n", 9, "duplicate key"),
        ("name: [unclosed\n", 2, "not valid YAML"),
    ],
)
def test_a_bad_prompt_file_is_refused_with_its_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(PromptFileError) as caught:
        parse_prompt(text, "greet.yaml")
    issues = [str(i) for i in caught.value.issues]
    matching = [i for i in issues if fragment in i]
    assert matching, issues
    assert matching[0].startswith(f"greet.yaml:{line}:"), issues


def _library(tmp_path: Path, text: str) -> PromptLibrary:
    (tmp_path / "p").mkdir(exist_ok=True)
    (tmp_path / "p" / "greet.yaml").write_text(text)
    return PromptLibrary.load([(tmp_path / "p", tmp_path / "p.lock")])


def test_a_changed_prompt_needs_a_new_version(tmp_path: Path) -> None:
    first = _library(tmp_path, GOOD).get("greet")
    lock = json.loads((tmp_path / "p.lock").read_text())
    assert lock["prompts"] == {"greet@1": first.digest}
    # re-indenting or a comment is not a change
    _library(tmp_path, "# a comment\n" + GOOD)
    with pytest.raises(PromptChanged, match="greet@1"):
        _library(tmp_path, GOOD.replace("Say hello", "Say goodbye"))
    bumped = _library(
        tmp_path, GOOD.replace("Say hello", "Say goodbye").replace("version: 1", "version: 2")
    ).get("greet")
    assert bumped.version == 2 and bumped.digest != first.digest
    assert set(json.loads((tmp_path / "p.lock").read_text())["prompts"]) == {"greet@1", "greet@2"}


def test_the_shipped_prompts_are_valid_and_pinned() -> None:
    library = PromptLibrary.load([(BUILTIN_DIR, BUILTIN_LOCK)])
    pinned = json.loads(BUILTIN_LOCK.read_text())["prompts"]
    assert {p.ref: p.digest for p in library.all()} == pinned
    assert {"query", "research"} <= {p.name for p in library.all()}


def test_render_checks_its_variables(tmp_path: Path) -> None:
    library = _library(tmp_path, GOOD)
    assert library.render("greet", {"who": "Ada"}).messages == [
        {"role": "user", "content": "Say hello to Ada."}
    ]
    for bad, code in [({}, "needs"), ({"who": "x" * 21}, "at most 20"), ({"who": 3}, "text")]:
        with pytest.raises(PromptVariablesError, match=code):
            library.render("greet", bad)
    with pytest.raises(PromptVariablesError, match="does not declare"):
        library.render("greet", {"who": "a", "extra": 1})
    with pytest.raises(PromptNotFound):
        library.get("greet@9")


def test_a_template_cannot_reach_python_internals(tmp_path: Path) -> None:
    text = GOOD.replace("{{ who }}", "{{ who.__class__.__mro__ }}")
    library = _library(tmp_path, text)
    with pytest.raises(PromptVariablesError):
        library.render("greet", {"who": "x"})


@settings(max_examples=50, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=200))
def test_rendering_is_deterministic_and_keeps_the_text(value: str) -> None:
    prompt = parse_prompt(GOOD.replace("max_chars: 20", "max_chars: 400"), "g.yaml")
    library = PromptLibrary([prompt])
    first = library.render("greet", {"who": value}).messages
    assert first == library.render("greet", {"who": value}).messages
    assert value.strip() in first[0]["content"]


def test_cli_lists_renders_and_diffs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bastion.cli.main import app

    monkeypatch.setenv("BASTION_HOME", str(tmp_path))
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "greet.yaml").write_text(GOOD)
    (tmp_path / "prompts" / "greet2.yaml").write_text(
        GOOD.replace("version: 1", "version: 2").replace("hello", "hi")
    )
    runner = CliRunner()
    listed = runner.invoke(app, ["prompts", "list", "--format", "json"])
    assert listed.exit_code == 0, listed.output
    refs = {(r["name"], r["version"]) for r in json.loads(listed.output)}
    assert {("query", 1), ("greet", 1), ("greet", 2)} <= refs
    rendered = runner.invoke(app, ["prompts", "render", "greet@1", "--vars", '{"who": "Ada"}'])
    assert "Say hello to Ada." in rendered.output
    changed = runner.invoke(app, ["prompts", "diff", "greet@1", "greet@2"])
    assert "-    Say hello to {{ who }}." in changed.output, changed.output
    assert "+    Say hi to {{ who }}." in changed.output
    missing = runner.invoke(app, ["prompts", "render", "greet", "--vars", "{}"])
    assert missing.exit_code == 2 and "[invalid_prompt_variables]" in missing.output
    (tmp_path / "prompts" / "greet.yaml").write_text(GOOD.replace("hello", "bye"))
    refused = runner.invoke(app, ["prompts", "list"])
    assert refused.exit_code == 1 and "[prompt_changed_without_version]" in refused.output
