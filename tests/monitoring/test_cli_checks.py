"""What a new user ran into with the monitoring commands (issue 15, section 4).

Fairness with text labels against 0/1 predictions, drift with timestamp and id columns,
a verdict that cannot contradict its own lines, ``--fail-on``, performance and embedding
drift from the CLI, and ``--alert`` delivering to a real webhook receiver on loopback.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bastion.cli.main import _register, app
from bastion.monitoring import verify_signature
from bastion.monitoring.alerts import SIGNATURE_HEADER, TIMESTAMP_HEADER
from bastion.monitoring.columns import time_or_id_reason
from bastion.monitoring.labels import AmbiguousLabel, resolve_positive

from .conftest import Receiver
from .test_real_data import ADULT_COLUMNS

_register()


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, list(args), env=env)


# --- labels ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "given", "positive", "how"),
    [
        ([0, 1, 1, 0], None, 1, "inferred"),
        ([0.0, 1.0], None, 1.0, "inferred"),
        ([True, False], None, True, "inferred"),
        (["yes", "no", "no"], None, "yes", "inferred"),
        (["N", "Y"], None, "Y", "inferred"),
        ([" >50K", " <=50K"], ">50K", " >50K", "given"),
        ([1, 2, 1], "2", 2, "given"),
        (["a", "b", "c"], "c", "c", "given"),
        ([0, 1], ">50K", 1, "inferred"),  # predictions coded 0/1 next to text labels
    ],
)
def test_the_positive_class_is_named_or_plainly_inferred(values, given, positive, how) -> None:
    label = resolve_positive(pd.Series(values), given, "y")
    assert label.positive == positive and label.how == how


@pytest.mark.parametrize(
    ("values", "given", "says"),
    [
        ([">50K", "<=50K"], None, "pass --positive-label"),
        (["a", "b", "c"], None, "3 values"),
        ([">50K", "<=50K"], "nope", "'nope' is not a value of y"),
        ([1, 2], None, "pass --positive-label"),
    ],
)
def test_an_ambiguous_label_is_a_coded_error(values, given, says) -> None:
    with pytest.raises(AmbiguousLabel, match=says) as caught:
        resolve_positive(pd.Series(values), given, "y")
    assert caught.value.code == "monitoring_ambiguous_label"


@pytest.fixture(scope="module")
def adult(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    frame = pd.read_csv(
        shared_data / "tabular" / "adult.data", names=ADULT_COLUMNS, skipinitialspace=True
    )
    frame["decision"] = ((frame.education_num >= 13) | (frame.capital_gain > 5000)).astype(int)
    path = tmp_path_factory.mktemp("adult") / "adult.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.shared_data
def test_fairness_on_adult_with_text_labels_and_01_predictions(adult: Path) -> None:
    base = ["fairness", "check", "-d", str(adult), "--target", "income"]
    base += ["--prediction", "decision", "--sensitive", "sex,race"]
    ambiguous = run(*base)
    assert ambiguous.exit_code == 2
    assert "[monitoring_ambiguous_label]" in ambiguous.output
    assert "Traceback" not in ambiguous.output and "--positive-label" in ambiguous.output

    judged = run(*base, "--positive-label", ">50K", "--format", "json")
    assert judged.exit_code == 1, judged.output  # the rule-based decisions are unfair by race
    payload = json.loads(judged.output)
    assert payload["positive"] == {"income": ">50K", "decision": 1}
    sex = next(t for t in payload["tables"] if t["features"] == ["sex"])
    rates = {g["group"]: g["selection_rate"] for g in sex["groups"]}
    assert 0.2 < rates["Female"] < rates["Male"] < 0.35


# --- drift: dates, times and ids -------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "values", "reason"),
    [
        ("when", pd.date_range("2024-01-01", periods=200, freq="h"), "date/time"),
        ("time_hour", ["2013-01-01T10:00:00Z"] * 150 + ["2013-01-02T11:00:00Z"] * 50, "date/time"),
        ("stamp", ["01/31/2024 08:15"] * 200, "date/time"),
        ("day", list(range(1, 32)) * 7, "calendar part"),
        ("month", [1, 7] * 100, "calendar part"),
        ("customer_id", ["a", "b"] * 100, "identifier"),
        ("requestId", [1, 2] * 100, "identifier"),
        ("row", list(range(200)), "identifier"),
        ("token", [f"t{i}" for i in range(200)], "identifier"),
        # stay in: real features that look a little like the above
        ("hour", list(range(24)) * 9, ""),
        ("price", np.linspace(0, 1, 200), ""),
        ("size", ["s", "m", "l", "xl"] * 50, ""),
        ("version", ["1.2", "1.3"] * 100, ""),
        ("paid", [0, 1] * 100, ""),
        ("day", [0, 45] * 100, ""),  # not a day of the month
    ],
)
def test_time_and_id_columns_are_recognised(name, values, reason) -> None:
    assert time_or_id_reason(name, pd.Series(values)).startswith(reason)


@pytest.fixture(scope="module")
def flights(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    frame = pd.read_parquet(shared_data / "tabular" / "nycflights13_flights.parquet")
    out = tmp_path_factory.mktemp("flights")
    january = frame[frame.month == 1]
    parts = {
        "jan_a": january[january.day <= 15],
        "jan_b": january[january.day > 15],
        "jan": january,
        "jul": frame[frame.month == 7],
    }
    for name, part in parts.items():
        part.to_parquet(out / f"{name}.parquet", index=False)
    return {name: out / f"{name}.parquet" for name in parts}


@pytest.mark.shared_data
def test_two_halves_of_a_month_do_not_drift_by_their_timestamps(flights, tmp_path) -> None:
    html = tmp_path / "drift.html"
    result = run("drift", "check", "-r", str(flights["jan_a"]), "-c", str(flights["jan_b"]),
                 "--report", str(html))  # fmt: skip
    assert result.exit_code == 0, result.output
    page = html.read_text(encoding="utf-8")
    assert "Left out" in page and "time_hour (date/time" in page and "no dataset drift" in page
    report = json.loads(
        run(
            "drift",
            "check",
            "-r",
            str(flights["jan_a"]),
            "-c",
            str(flights["jan_b"]),
            "--json",
            "-",
        ).output
    )
    skipped = report["skipped_columns"]
    assert skipped["time_hour"].startswith("date/time")
    assert skipped["day"] == "calendar part" and skipped["tailnum"].startswith("identifier")
    compared = {c["column"] for c in report["columns"]}
    assert not compared & {"time_hour", "day", "month", "year", "tailnum"}
    assert {"dep_delay", "carrier", "hour"} <= compared
    assert report["dataset_drift"] is False
    assert "left out: " in result.output and "time_hour (date/time" in result.output
    # and the user can still ask for it
    kept = run(
        "drift",
        "check",
        "-r",
        str(flights["jan_a"]),
        "-c",
        str(flights["jan_b"]),
        "--keep",
        "time_hour",
        "--format",
        "json",
    )
    assert any(c["column"] == "time_hour" for c in json.loads(kept.output)["columns"])


@pytest.mark.shared_data
def test_january_against_july_says_what_drifted_and_which_rule_decides(flights) -> None:
    args = ["drift", "check", "-r", str(flights["jan"]), "-c", str(flights["jul"])]
    dataset = run(*args)
    text = " ".join(dataset.output.split())
    assert dataset.exit_code == 0, dataset.output
    assert "dep_delay" in text and "drifted (" in text
    assert "dataset rule: dataset drift when ≥ 50% of the columns drift" in text
    assert "verdict (--fail-on dataset): PASSED, no dataset drift" in text
    assert "drifted below the rule" in text
    assert "exceeds the retrain signal" not in text
    column = run(*args, "--fail-on", "column", "--format", "json")
    assert column.exit_code == 1
    payload = json.loads(column.output)
    assert payload["failed"] is True and payload["fail_on"] == "column"
    assert "dep_delay" in payload["drifted_columns"]


def test_fail_on_column_passes_when_nothing_drifts(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        pd.DataFrame({"x": rng.normal(size=3000), "k": rng.choice(["p", "q"], 3000)}).to_csv(
            tmp_path / f"{name}.csv", index=False
        )
    result = run(
        "drift", "check", "-r", str(tmp_path / "a.csv"), "-c", str(tmp_path / "b.csv"),
        "--fail-on", "column",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "PASSED, no column drifted" in " ".join(result.output.split())


# --- performance and embeddings --------------------------------------------------------
@pytest.fixture
def labelled(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    n = 2000
    truth = rng.choice([">50K", "<=50K"], n, p=[0.3, 0.7])
    good = np.where(rng.random(n) < 0.9, truth == ">50K", truth != ">50K").astype(int)
    bad = np.where(rng.random(n) < 0.7, truth == ">50K", truth != ">50K").astype(int)
    score = np.clip(good * 0.7 + rng.random(n) * 0.3, 0, 1)
    ref = pd.DataFrame({"income": truth, "pred": good, "p": score, "g": rng.choice(["a", "b"], n)})
    ref.to_csv(tmp_path / "ref.csv", index=False)
    ref.assign(pred=bad).to_parquet(tmp_path / "worse.parquet")
    ref.iloc[::-1].to_parquet(tmp_path / "same.parquet")
    return {"ref": tmp_path / "ref.csv", "worse": tmp_path / "worse.parquet",
            "same": tmp_path / "same.parquet"}  # fmt: skip


def test_performance_check_fails_when_accuracy_falls(labelled) -> None:
    args = ["performance", "check", "-r", str(labelled["ref"]), "--target", "income"]
    args += ["--prediction", "pred", "--positive-label", ">50K"]
    same = run(*args, "-c", str(labelled["same"]))
    assert same.exit_code == 0, same.output
    assert "PASSED" in same.output
    worse = run(*args, "-c", str(labelled["worse"]), "--segment", "g", "--format", "json")
    assert worse.exit_code == 1, worse.output
    payload = json.loads(worse.output)
    assert payload["baseline"]["accuracy"] - payload["overall"]["accuracy"] > 0.15
    assert {f["subject"] for f in payload["findings"]} >= {"overall", "g=a", "g=b"}
    assert payload["positive"] == {"income": ">50K", "pred": 1}
    ambiguous = run("performance", "check", "-c", str(labelled["same"]), "--target", "income",
                    "--prediction", "pred")  # fmt: skip
    assert ambiguous.exit_code == 2 and "[monitoring_ambiguous_label]" in ambiguous.output


@pytest.fixture
def vectors(tmp_path: Path) -> dict[str, Path]:
    tmp_path = tmp_path / "vectors"
    tmp_path.mkdir()
    rng = np.random.default_rng(3)
    ref, same = rng.normal(size=(300, 8)), rng.normal(size=(300, 8))
    moved = rng.normal(size=(300, 8)) + np.r_[1.0, np.zeros(7)]
    np.save(tmp_path / "ref.npy", ref)
    np.save(tmp_path / "moved.npy", moved)
    pd.DataFrame({"id": range(300), "emb": list(same)}).to_parquet(tmp_path / "same.parquet")
    pd.DataFrame({"emb": [json.dumps(v.tolist()) for v in ref]}).to_csv(
        tmp_path / "ref.csv", index=False
    )
    pd.DataFrame(moved, columns=[f"d{i}" for i in range(8)]).to_csv(
        tmp_path / "moved.csv", index=False
    )
    return {p.stem + p.suffix: p for p in tmp_path.iterdir()}


def test_drift_embeddings_from_npy_parquet_and_csv(vectors) -> None:
    moved = run("drift", "embeddings", "-r", str(vectors["ref.npy"]), "-c",
                str(vectors["moved.npy"]), "--format", "json")  # fmt: skip
    assert moved.exit_code == 1, moved.output
    checks = {c["method"]: c for c in json.loads(moved.output)["checks"]}
    assert checks["domain_classifier"]["drifted"] and checks["mmd"]["drifted"]
    same = run("drift", "embeddings", "-r", str(vectors["ref.csv"]), "-c",
               str(vectors["same.parquet"]), "--column", "emb")  # fmt: skip
    assert same.exit_code == 0, same.output
    assert "PASSED" in same.output
    columns = run("drift", "embeddings", "-r", str(vectors["ref.npy"]), "-c",
                  str(vectors["moved.csv"]), "--method", "mmd")  # fmt: skip
    assert columns.exit_code == 1 and "mmd" in columns.output
    wrong = run("drift", "embeddings", "-r", str(vectors["ref.npy"]), "-c",
                str(vectors["moved.npy"]), "--method", "magic")  # fmt: skip
    assert wrong.exit_code == 2 and "[invalid_option]" in wrong.output


# --- alerts ----------------------------------------------------------------------------
def _policy(tmp_path: Path, url: str, checks: str) -> dict[str, str]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\n"
        "monitoring:\n"
        "  notifiers:\n"
        f"    ops: {{kind: webhook, url: '{url}', secret: hook-secret, max_attempts: 1}}\n"
        "  alert_rules:\n"
        f"    - {{name: to-ops, checks: [{checks}], min_severity: warning, notify: [ops]}}\n",
        encoding="utf-8",
    )
    return {"BASTION_POLICY": str(policy), "BASTION_HOME": str(tmp_path / "home")}


def test_alert_sends_the_findings_to_the_policy_webhook(
    receiver: Receiver, labelled, vectors, tmp_path: Path
) -> None:
    env = _policy(tmp_path, receiver.url, "performance, embedding")
    result = run("performance", "check", "-r", str(labelled["ref"]), "-c",
                 str(labelled["worse"]), "--target", "income", "--prediction", "pred",
                 "--positive-label", ">50K", "--alert", env=env)  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "alert to-ops → ops: sent" in result.output
    assert len(receiver.requests) == 1
    headers, body = receiver.requests[0]
    assert verify_signature("hook-secret", headers[TIMESTAMP_HEADER], body,
                            headers[SIGNATURE_HEADER])  # fmt: skip
    alert = json.loads(body)
    assert alert["type"] == "bastion.alert" and alert["rule"] == "to-ops"
    assert {f["check"] for f in alert["findings"]} == {"performance"}
    assert any(f["kind"] == "accuracy_degraded" for f in alert["findings"])

    quiet = run("drift", "embeddings", "-r", str(vectors["ref.csv"]), "-c",
                str(vectors["same.parquet"]), "--column", "emb", "--alert", env=env)  # fmt: skip
    assert quiet.exit_code == 0 and "no finding matched" in quiet.output
    assert len(receiver.requests) == 1


def test_alert_without_rules_or_with_a_dead_webhook_says_so(labelled, tmp_path: Path) -> None:
    args = ["performance", "check", "-r", str(labelled["ref"]), "-c", str(labelled["worse"]),
            "--target", "income", "--prediction", "pred", "--positive-label", ">50K", "--alert"]  # fmt: skip
    empty = tmp_path / "empty.yaml"
    empty.write_text("version: 1\n", encoding="utf-8")
    none = run(*args, env={"BASTION_POLICY": str(empty), "BASTION_HOME": str(tmp_path / "h")})
    assert none.exit_code == 2 and "[monitoring_no_alert_rules]" in none.output
    dead = run(*args, env=_policy(tmp_path, "http://127.0.0.1:9/hook", "performance"))
    assert dead.exit_code == 1  # the check's own verdict still decides the exit code
    assert "[monitoring_notifier_failed]" in dead.output and "Traceback" not in dead.output
