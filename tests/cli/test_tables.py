"""Tables at 80 columns keep their key columns whole; every table has ``--format json``.

Run as a user runs them: the installed ``bastion`` executable with ``COLUMNS=80`` and
output to a pipe.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bastion.cli.common import key_table

BASTION = str(Path(sys.executable).with_name("bastion"))
LONG = "monthly_household_income_after_tax"


def bastion(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    return subprocess.run(
        [BASTION, *args],
        env=base | {"COLUMNS": "80", "NO_COLOR": "1"} | (env or {}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _whole_on_a_line(text: str, value: str) -> bool:
    return any(value in line for line in text.splitlines())


def _width(text: str) -> int:
    return max(len(line.rstrip()) for line in text.splitlines())


@pytest.fixture
def frames(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)

    def frame(shift: float) -> pd.DataFrame:
        n = 3000
        return pd.DataFrame(
            {
                LONG: rng.normal(shift, 1, n),
                "employment_sector_category": rng.choice(["private", "public", "self"], n),
                "number_of_dependants": rng.integers(0, 4, n),
            }
        )

    frame(0).to_parquet(tmp_path / "ref.parquet")
    frame(1).to_parquet(tmp_path / "cur.parquet")
    return tmp_path / "ref.parquet", tmp_path / "cur.parquet"


def test_drift_table_keeps_names_and_methods_whole_at_80_columns(frames) -> None:
    ref, cur = frames
    shown = bastion("drift", "check", "-r", str(ref), "-c", str(cur), "--fail-on", "column")
    assert shown.returncode == 1, shown.stderr
    assert _width(shown.stdout) <= 80
    for value in (LONG, "employment_sector_category", "jensenshannon", "wasserstein"):
        assert _whole_on_a_line(shown.stdout, value), shown.stdout
    assert "…" not in shown.stdout
    as_json = bastion("drift", "check", "-r", str(ref), "-c", str(cur), "--format", "json")
    assert LONG in json.loads(as_json.stdout)["drifted_columns"]


def test_fairness_and_pii_tables_at_80_columns(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    label = rng.integers(0, 2, 600)
    pd.DataFrame(
        {"y": label, "p": label, "sex": rng.choice(["f", "m"], 600)}
    ).to_csv(tmp_path / "d.csv", index=False)  # fmt: skip
    fair = bastion("fairness", "check", "-d", str(tmp_path / "d.csv"), "--target", "y",
                   "--prediction", "p", "--sensitive", "sex")  # fmt: skip
    assert fair.returncode == 0, fair.stderr
    assert _width(fair.stdout) <= 80
    assert _whole_on_a_line(fair.stdout, "demographic_parity_difference")
    assert _whole_on_a_line(fair.stdout, "equalized_odds_difference")
    notes = tmp_path / "notes.txt"
    notes.write_text("write to jane.doe@example.com or call +1 212 555 0100\n", encoding="utf-8")
    pii = bastion("pii", "scan", str(notes), "--fail-on-find")
    assert pii.returncode == 1
    assert _width(pii.stdout) <= 80
    assert _whole_on_a_line(pii.stdout, "EMAIL_ADDRESS")
    assert _whole_on_a_line(pii.stdout, "jane.doe@example.com")
    clean = tmp_path / "clean.txt"
    clean.write_text("nothing personal here\n", encoding="utf-8")
    assert bastion("pii", "scan", str(clean), "--fail-on-find").returncode == 0
    found = bastion("pii", "scan", str(notes), "--format", "json", "--fail-on-find")
    assert found.returncode == 1
    assert json.loads(found.stdout.splitlines()[0])["spans"][0]["type"] == "EMAIL_ADDRESS"
    assert bastion("pii", "scan", str(notes)).returncode == 0  # without the flag: a report


def test_keys_list_keeps_ids_whole_and_names_what_it_leaves_out(tmp_path: Path) -> None:
    env = {"BASTION_HOME": str(tmp_path / "home")}
    assert bastion("db", "upgrade", env=env).returncode == 0
    user = "someone.long.name@example.com"
    created = bastion("keys", "create", "--user", user, "--role", "analyst", env=env)
    assert created.returncode == 0, created.stderr
    listed = bastion("keys", "list", env=env)
    keys = json.loads(bastion("keys", "list", "--format", "json", env=env).stdout)
    assert _width(listed.stdout) <= 80
    for value in (keys[0]["id"], keys[0]["prefix"], user, "analyst"):
        assert _whole_on_a_line(listed.stdout, value), listed.stdout
    assert "not shown at this width" in listed.stdout and "--format json" in listed.stdout
    assert "expires" in keys[0] or "expires_at" in keys[0]


@pytest.mark.parametrize("width", [66, 80, 120])
def test_key_columns_fit_or_others_are_named(width: int) -> None:
    from rich.console import Console

    rows = [["a" * 30, "sha256:" + "f" * 20, "some long free text " * 5]]
    table = key_table(["name", "digest", "notes"], rows, key=["name", "digest"], width=width)
    with open(os.devnull, "w") as sink:
        console = Console(width=width, record=True, file=sink)
        console.print(table)
    text = console.export_text()
    assert "a" * 30 in text and "sha256:" + "f" * 20 in text
    hidden = "not shown at this width: notes" in " ".join(text.split())
    assert hidden == (width < 71)  # 30 + 27 for the keys, 6 for folded notes, 8 of rules
    assert ("some long free" in text) != hidden
