"""``bastion pii scan`` and ``bastion pii mask`` through Typer's runner."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from bastion.cli.pii import app

TEXT = "Mail jane@corp.com or call +44 20 7946 0958.\nNothing here.\nJörg: jane@corp.com\n"


def test_scan_json_has_one_object_per_line_with_line_offsets(tmp_path: Path) -> None:
    f = tmp_path / "in.txt"
    f.write_text(TEXT, encoding="utf-8")
    result = CliRunner().invoke(app, ["scan", str(f), "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [r["line"] for r in rows] == [1, 2, 3]
    assert rows[1]["spans"] == []
    lines = TEXT.splitlines()
    for row in rows:
        for span in row["spans"]:
            assert set(span) == {"type", "start", "end", "score", "text"}
            assert lines[row["line"] - 1][span["start"] : span["end"]] == span["text"]
    assert {s["type"] for s in rows[0]["spans"]} == {"EMAIL_ADDRESS", "PHONE_NUMBER"}
    assert rows[2]["spans"][-1]["start"] == 6


def test_scan_table(tmp_path: Path) -> None:
    f = tmp_path / "in.txt"
    f.write_text(TEXT, encoding="utf-8")
    result = CliRunner().invoke(app, ["scan", str(f)])
    assert result.exit_code == 0
    assert "EMAIL_ADDRESS" in result.output and "3 findings" in result.output


def test_mask_prints_placeholders_stable_across_lines(tmp_path: Path) -> None:
    f = tmp_path / "in.txt"
    f.write_text(TEXT, encoding="utf-8")
    result = CliRunner().invoke(app, ["mask", str(f)])
    assert result.exit_code == 0
    assert result.output.splitlines() == [
        "Mail <EMAIL_1> or call <PHONE_1>.",
        "Nothing here.",
        "Jörg: <EMAIL_1>",
    ]


def test_bad_input_exits_2(tmp_path: Path) -> None:
    assert CliRunner().invoke(app, ["scan", str(tmp_path / "missing.txt")]).exit_code == 2
    f = tmp_path / "in.txt"
    f.write_text("x", encoding="utf-8")
    result = CliRunner().invoke(app, ["scan", str(f), "-e", "EMAIL"])
    assert result.exit_code == 2
    assert "unknown entity type" in result.output


def test_scan_reads_the_line_before_as_context(tmp_path: Path) -> None:
    f = tmp_path / "in.txt"
    f.write_text("Phone:\n9691 2587\nTicket\n9691 2588\nPhone:\\n9691 2589\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["scan", str(f), "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    found = [(r["line"], s["type"], s["start"], s["text"]) for r in rows for s in r["spans"]]
    assert found == [(2, "PHONE_NUMBER", 0, "9691 2587"), (5, "PHONE_NUMBER", 8, "9691 2589")]
