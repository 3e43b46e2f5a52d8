"""``bastion drift|fairness|explain``: exit codes, JSON and self-contained HTML."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bastion.cli.main import _register, app

from .conftest import make_frame

_register()
runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {
        "ref": tmp_path / "ref.parquet",
        "same": tmp_path / "same.csv",
        "shifted": tmp_path / "shifted.parquet",
    }
    make_frame(5000, seed=1).to_parquet(paths["ref"])
    make_frame(5000, seed=2).to_csv(paths["same"], index=False)
    shifted = make_frame(5000, seed=3, shift=1.0)
    shifted["c"] += 1.0
    shifted["d"] += 0.5
    shifted.to_parquet(paths["shifted"])
    return paths


def test_drift_check_passes_on_similar_data(files, tmp_path) -> None:
    result = run(
        "drift",
        "check",
        "-r",
        str(files["ref"]),
        "-c",
        str(files["same"]),
        "--json",
        str(tmp_path / "o.json"),
    )
    assert result.exit_code == 0, result.output
    assert "PASSED" in result.output
    assert json.loads((tmp_path / "o.json").read_text())["passed"] is True


def test_parquet_saved_from_a_filtered_frame_keeps_its_index_out(tmp_path) -> None:
    # ``df[mask].to_parquet()`` stores the index as a column; it is not data to compare
    frame = make_frame(4000, seed=1)
    frame[frame.index % 2 == 0].to_parquet(tmp_path / "even.parquet")
    frame[frame.index % 2 == 1].to_parquet(tmp_path / "odd.parquet")
    result = run(
        "drift",
        "check",
        "-r",
        str(tmp_path / "even.parquet"),
        "-c",
        str(tmp_path / "odd.parquet"),
        "--json",
        "-",
    )
    assert result.exit_code == 0, result.output
    assert "__index_level_0__" not in result.output


def test_drift_check_fails_with_exit_1_and_writes_a_self_contained_report(files, tmp_path) -> None:
    html = tmp_path / "report.html"
    result = run(
        "drift",
        "check",
        "-r",
        str(files["ref"]),
        "-c",
        str(files["shifted"]),
        "--report",
        str(html),
    )
    assert result.exit_code == 1, result.output
    assert "FAILED" in result.output
    text = html.read_text()
    assert "Plotly.newPlot" in text and "dataset drift" in text
    assert not re.search(r"<script[^>]*\bsrc\s*=", text, re.I)  # nothing fetched from a CDN
    assert not re.search(r"<link[^>]*href\s*=\s*[\"']https?:", text, re.I)


def test_drift_check_json_to_stdout(files) -> None:
    result = run(
        "drift",
        "check",
        "-r",
        str(files["ref"]),
        "-c",
        str(files["shifted"]),
        "--columns",
        "a,colour",
        "--json",
        "-",
    )
    payload = json.loads(result.stdout)
    assert [c["column"] for c in payload["columns"]] == ["a", "colour"]
    assert payload["dataset_drift"] is True and result.exit_code == 1


def test_drift_check_with_a_stored_reference_profile(files, tmp_path) -> None:
    profile = tmp_path / "ref-profile.json"
    first = run(
        "drift",
        "check",
        "-r",
        str(files["ref"]),
        "-c",
        str(files["same"]),
        "--save-reference",
        str(profile),
    )
    assert first.exit_code == 0 and profile.exists()
    again = run("drift", "check", "-r", str(profile), "-c", str(files["shifted"]))
    assert again.exit_code == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-r", "missing.parquet", "-c", "missing.csv"], "does not exist"),
        (["--columns", "nope"], "nope"),
        (["--method", "magic"], "bad drift settings"),
    ],
)
def test_drift_check_bad_input_exits_2(files, args, message) -> None:
    base = ["-r", str(files["ref"]), "-c", str(files["same"])]
    result = run("drift", "check", *base, *args)
    assert result.exit_code == 2
    assert message in result.output


def test_unsupported_file_type_exits_2(files, tmp_path) -> None:
    bad = tmp_path / "data.xlsx"
    bad.write_text("x")
    result = run("drift", "check", "-r", str(files["ref"]), "-c", str(bad))
    assert result.exit_code == 2 and ".parquet or .csv" in result.output


@pytest.fixture
def decisions(tmp_path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    n = 4000
    group = rng.choice(["a", "b"], n)
    label = rng.integers(0, 2, n)
    fair = pd.DataFrame({"group": group, "label": label, "decision": label})
    unfair = fair.assign(decision=np.where(group == "a", label, 0))
    fair.to_csv(tmp_path / "fair.csv", index=False)
    unfair.to_parquet(tmp_path / "unfair.parquet")
    return tmp_path / "fair.csv", tmp_path / "unfair.parquet"


def test_fairness_check_exit_codes(decisions, tmp_path) -> None:
    fair, unfair = decisions
    ok = run(
        "fairness",
        "check",
        "-d",
        str(fair),
        "--target",
        "label",
        "--prediction",
        "decision",
        "--sensitive",
        "group",
    )
    assert ok.exit_code == 0, ok.output
    html = tmp_path / "f.html"
    bad = run(
        "fairness",
        "check",
        "-d",
        str(unfair),
        "--target",
        "label",
        "--prediction",
        "decision",
        "--sensitive",
        "group",
        "--report",
        str(html),
        "--json",
        str(tmp_path / "f.json"),
    )
    assert bad.exit_code == 1 and "FAIL" in bad.output
    assert json.loads((tmp_path / "f.json").read_text())["passed"] is False
    assert "Rates by group" in html.read_text()
    missing = run(
        "fairness",
        "check",
        "-d",
        str(fair),
        "--target",
        "label",
        "--prediction",
        "decision",
        "--sensitive",
        "sex",
    )
    assert missing.exit_code == 2 and "sex" in missing.output


def test_explain_a_saved_model(tmp_path) -> None:
    import joblib
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    x = pd.DataFrame(
        {
            "income": rng.normal(size=500),
            "debt": rng.normal(size=500),
            "noise": rng.normal(size=500),
        }
    )
    y = (x["income"] - x["debt"] > 0).astype(int)
    joblib.dump(
        RandomForestClassifier(n_estimators=20, random_state=0).fit(x, y), tmp_path / "m.joblib"
    )
    x.assign(label=y).to_parquet(tmp_path / "x.parquet")
    result = run(
        "explain",
        "-m",
        str(tmp_path / "m.joblib"),
        "-d",
        str(tmp_path / "x.parquet"),
        "--drop",
        "label",
        "--row",
        "3",
        "--json",
        str(tmp_path / "e.json"),
        "--report",
        str(tmp_path / "e.html"),
    )
    assert result.exit_code == 0, result.output
    payload = json.loads((tmp_path / "e.json").read_text())
    assert payload["explainer"] == "tree"
    assert payload["global_importance"][-1]["feature"] == "noise"
    assert (
        run(
            "explain", "-m", str(tmp_path / "nope.joblib"), "-d", str(tmp_path / "x.parquet")
        ).exit_code
        == 2
    )
    assert (
        run(
            "explain",
            "-m",
            str(tmp_path / "m.joblib"),
            "-d",
            str(tmp_path / "x.parquet"),
            "--row",
            "9999",
        ).exit_code
        == 2
    )
