"""Framework mappings are data: the shipped ones load, and a bad one is located by line."""

from __future__ import annotations

import pytest

from bastion.evidence.mapping import (
    FrameworkError,
    UnknownFramework,
    builtin_frameworks,
    get_framework,
    parse_framework,
)

REQUIRED = {
    "eu-ai-act": {
        "art-9",
        "art-10",
        "art-12",
        "art-13",
        "art-14",
        "art-15",
        "art-19",
        "art-26",
        "art-72",
    },
    "gdpr": {"art-5", "art-17", "art-25", "art-30", "art-32", "art-35"},
    "soc2": {"CC6.1", "CC6.2", "CC6.3", "CC7.2", "CC7.3", "CC7.4", "CC8.1"},
    "nist-ai-rmf": {"GOVERN", "MAP", "MEASURE", "MANAGE"},
    "iso42001": {"A.2", "A.5", "A.6", "A.7", "A.9"},
    "iso27001": {"A.8.15", "A.5.15"},
    "hipaa": {"164.312-b"},
}


@pytest.mark.parametrize("framework", sorted(REQUIRED))
def test_each_framework_maps_the_controls_auditors_ask_about(framework: str) -> None:
    loaded = get_framework(framework)
    ids = {c.id for c in loaded.framework.controls}
    assert REQUIRED[framework] <= ids
    assert len(loaded.digest) == 64
    for control in loaded.framework.controls:
        assert control.closes_gap.strip()


def test_every_shipped_framework_is_offered() -> None:
    assert set(builtin_frameworks()) == set(REQUIRED)


def test_an_unknown_framework_names_the_known_ones() -> None:
    with pytest.raises(UnknownFramework, match="known: eu-ai-act, gdpr"):
        get_framework("pci")


GOOD = """version: 1
framework: demo
title: Demo
mapping_version: "1"
source: here
controls:
  - id: c-1
    title: One
    requirement: something
    evidence:
      - {name: calls, actions: ["llm.*"]}
    closes_gap: do it
"""


@pytest.mark.parametrize(
    ("old", "new", "line", "key", "message"),
    [
        (
            '      - {name: calls, actions: ["llm.*"]}',
            "      - {name: calls, actions: []}",
            11,
            "controls[0].evidence[0].actions",
            "at least 1",
        ),
        (
            "    closes_gap: do it",
            "    closes_gap: do it\n    closes: typo",
            13,
            "controls[0].closes",
            "unknown key",
        ),
        ("  - id: c-1", "  - id: 'bad id'", 7, "controls[0].id", "pattern"),
        ("version: 1", "version: 2", 1, "version", "expected 1"),
        ("title: Demo", "title: Demo\ntitle: Again", 4, "title", "duplicate key"),
        (
            '      - {name: calls, actions: ["llm.*"]}',
            '      - {name: calls, actions: ["llm.*"], min_count: 0}',
            11,
            "controls[0].evidence[0].min_count",
            "greater than or equal to 1",
        ),
    ],
)
def test_a_bad_mapping_is_named_by_line_and_key(
    old: str, new: str, line: int, key: str, message: str
) -> None:
    assert old in GOOD
    with pytest.raises(FrameworkError) as caught:
        parse_framework(GOOD.replace(old, new), "demo.yaml")
    issue = caught.value.issues[0]
    assert (issue.file, issue.line, issue.key) == ("demo.yaml", line, key)
    assert message in issue.message
    assert caught.value.code == "invalid_framework"
    assert str(caught.value).startswith("the framework mapping has 1 error")


def test_a_good_mapping_loads() -> None:
    loaded = parse_framework(GOOD)
    assert loaded.framework.controls[0].evidence[0].matches("llm.chat", "success", (), "{}")
    assert not loaded.framework.controls[0].evidence[0].matches("key.create", "success", (), "{}")
