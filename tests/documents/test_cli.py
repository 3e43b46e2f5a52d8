"""``bastion docs`` as an operator runs it: ingest, list, show, search, remove, errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bastion.cli.main import _register, app

from .conftest import POLICY


def bastion(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    _register()
    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("BASTION_")}
    result = CliRunner().invoke(app, list(args), env=unset | env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / "policy.yaml").write_text(POLICY)
    env = {"BASTION_HOME": str(home), "BASTION_DATABASE_URL": database_url}
    assert bastion(env, "db", "upgrade")[0] == 0
    return env


def test_docs_round_trip(env: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "handbook.md").write_text("# Handbook\n\n## Retention\n\nInvoices: ten years.\n")
    (folder / "notes.txt").write_text("Article 3\nLaptops are encrypted.\n")
    (folder / "ignored.bin").write_bytes(b"\x00\x01")
    code, out, err = bastion(env, "docs", "ingest", str(folder), "--collection", "public")
    assert code == 0, err
    assert "2 added" in out
    code, out, _ = bastion(env, "docs", "ingest", str(folder), "-c", "public")
    assert "2 unchanged" in out
    code, out, _ = bastion(env, "docs", "list", "--format", "json")
    listed = {c["name"]: c for c in json.loads(out)}
    assert listed["public"]["documents"] == 2
    assert {"legal", "strict", "raw"} <= set(listed)  # the policy's collections, even empty
    code, out, _ = bastion(env, "docs", "show", "handbook.md", "-c", "public", "--format", "json")
    shown = json.loads(out)
    assert [c["location"] for c in shown["chunks"]] == ["## Retention"] or shown["chunks"][-1][
        "location"
    ] == "## Retention"
    code, out, _ = bastion(env, "docs", "search", "encrypted laptops", "--format", "json")
    hits = json.loads(out)
    assert hits[0]["document"] == "notes.txt" and hits[0]["location"] == "Art. 3"
    code, out, _ = bastion(env, "docs", "remove", "notes.txt", "-c", "public")
    assert code == 0 and "removed notes.txt" in out
    code, out, _ = bastion(env, "docs", "list", "public", "--format", "json")
    assert [d["name"] for d in json.loads(out)] == ["handbook.md"]


@pytest.mark.parametrize(
    ("name", "content", "code_text"),
    [
        ("bad.jsonl", b"{oops\n", "[malformed_document]"),
        ("bad.docx", b"PK", "[unsupported_format]"),
        ("empty.md", b"  \n", "[empty_document]"),
    ],
)
def test_bad_files_are_coded_errors(
    env: dict[str, str], tmp_path: Path, name: str, content: bytes, code_text: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    code, out, err = bastion(env, "docs", "ingest", str(path), "-c", "public")
    assert code == 2
    assert code_text in err and "Traceback" not in err + out


def test_unknown_document_and_missing_path(env: dict[str, str], tmp_path: Path) -> None:
    code, _, err = bastion(env, "docs", "show", "nope")
    assert code == 1 and "[document_not_found]" in err
    code, _, err = bastion(env, "docs", "ingest", str(tmp_path / "missing.md"), "-c", "x")
    assert code == 2 and "[file_not_found]" in err
