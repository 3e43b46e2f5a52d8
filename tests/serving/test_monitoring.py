"""Monitoring from the prediction log: the Adult test split served, labelled, and checked
with ``bastion performance check --model`` and ``bastion drift check --model``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import NAME, Model, records
from .test_log import cli, logged
from .test_predict import bearer

pytestmark = pytest.mark.anyio


async def serve_rows(
    client: httpx.AsyncClient, headers: dict[str, str], frame: Any, batch: int = 1000
) -> list[str]:
    ids: list[str] = []
    for start in range(0, len(frame), batch):
        chunk = records(frame.iloc[start : start + batch])
        r = await client.post(f"/predict/{NAME}", json={"inputs": chunk}, headers=headers)
        assert r.status_code == 200, r.text
        ids.extend(r.json()["row_ids"])
    return ids


async def test_log_labels_and_performance_check_reproduce_the_evaluations_accuracy(
    client: httpx.AsyncClient,
    runtime: Any,
    key_for: Any,
    served_v1: int,
    income_v1: Model,
    tmp_path: Path,
) -> None:
    trained = income_v1.trained
    ids = await serve_rows(client, bearer(key_for("analyst")), trained.test)
    logged(runtime)
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "request_id,label\n"
        + "".join(f"{rid},{int(y)}\n" for rid, y in zip(ids, trained.y_test, strict=True))
    )
    assert cli(runtime, "labels", "add", str(labels)).exit_code == 0
    result = cli(runtime, "performance", "check", "--model", NAME, "--window", "7d", "--json", "-")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["overall"]["accuracy"] == pytest.approx(trained.metrics["accuracy"], abs=1e-9)
    assert report["overall"]["roc_auc"] == pytest.approx(trained.metrics["roc_auc"], abs=1e-9)
    assert report["baseline"]["accuracy"] == pytest.approx(trained.metrics["accuracy"])
    assert report["passed"] is True
    # the same window against its training baseline: no drift
    drift = cli(runtime, "drift", "check", "--model", NAME, "--window", "24h", "--json", "-")
    assert drift.exit_code == 0, drift.output
    assert json.loads(drift.stdout)["drifted_columns"] == []


async def test_labels_that_disagree_fail_the_performance_check(
    client: httpx.AsyncClient,
    runtime: Any,
    key_for: Any,
    served_v1: int,
    income_v1: Model,
    tmp_path: Path,
) -> None:
    trained = income_v1.trained
    frame = trained.test.head(2000)
    ids = await serve_rows(client, bearer(key_for("analyst")), frame)
    logged(runtime)
    flipped = 1 - trained.y_test.head(2000)  # the world changed: every label the other way
    (tmp_path / "l.csv").write_text(
        "request_id,label\n" + "".join(f"{r},{int(y)}\n" for r, y in zip(ids, flipped, strict=True))
    )
    cli(runtime, "labels", "add", str(tmp_path / "l.csv"))
    result = cli(runtime, "performance", "check", "--model", NAME, "--window", "7d")
    assert result.exit_code == 1, result.output
    assert "FAILED" in result.stdout


async def test_a_shifted_window_is_flagged_as_drift_from_the_log(
    client: httpx.AsyncClient, runtime: Any, key_for: Any, served_v1: int, income_v1: Model
) -> None:
    shifted = income_v1.trained.test.head(3000).copy()
    shifted["age"] = shifted["age"] + 15
    shifted["hours_per_week"] = (shifted["hours_per_week"] + 20).clip(upper=99)
    await serve_rows(client, bearer(key_for("analyst")), shifted)
    logged(runtime)
    result = cli(
        runtime,
        "drift",
        "check",
        "--model",
        NAME,
        "--window",
        "24h",
        "--fail-on",
        "column",
        "--json",
        "-",
    )
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert {"age", "hours_per_week"} <= set(report["drifted_columns"])
    assert "sex" not in report["drifted_columns"]

    # with --alert (a log notifier), the check is counted on every replica's /metrics
    alerted = cli_with_alerts(runtime, "drift", "check", "--model", NAME, "--window", "24h",
                              "--alert")  # fmt: skip
    assert alerted.exit_code == 0, alerted.output
    assert "alert drift-log → log: sent" in alerted.output
    scraped = samples((await client.get("/metrics")).text)
    drifted = len(report["drifted_columns"])
    assert scraped[("bastion_drifted_features", (("model", NAME),))] == drifted
    assert scraped[("bastion_monitoring_checks_total", (("check", "drift"), ("model", NAME)))] == 2
    alerts = {k: v for k, v in scraped.items() if k[0] == "bastion_monitoring_alerts_total"}
    labels = (("check", "drift"), ("model", NAME), ("severity", "critical"))
    assert alerts == {("bastion_monitoring_alerts_total", labels): 1}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def cli_with_alerts(runtime: Any, *args: str) -> Any:
    """``cli`` under the runtime's policy with a rule sending drift findings to the log."""
    import os

    import yaml
    from typer.testing import CliRunner

    from bastion.cli.main import _register, app

    policy = yaml.safe_load(runtime.settings.policy_path.read_text())
    monitoring = policy.setdefault("monitoring", {})
    monitoring["alert_rules"] = [{"name": "drift-log", "checks": ["drift"], "notify": ["log"]}]
    path = runtime.settings.home / "alerting-policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    _register()
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("BASTION_")}
    env |= {
        "BASTION_HOME": str(runtime.settings.home),
        "BASTION_DATABASE_URL": runtime.settings.resolved_database_url,
        "BASTION_POLICY": str(path),
    }
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["drift", "check", "--model", NAME, "--window", "soon"], 2, "invalid_window"),
        (["drift", "check", "--model", "nobody"], 2, "model_not_served"),
        (["performance", "check", "--model", NAME, "--window", "7d"], 2, "no_labels"),
        (["drift", "check"], 2, "--model"),
        (["drift", "check", "--model", NAME, "--current", "x.csv"], 2, "leave out"),
    ],
)
async def test_wrong_log_checks_say_what_to_fix(
    client: httpx.AsyncClient,
    runtime: Any,
    key_for: Any,
    served_v1: int,
    income_v1: Model,
    args: list[str],
    code: int,
    words: str,
) -> None:
    await serve_rows(client, bearer(key_for("analyst")), income_v1.trained.test.head(20))
    logged(runtime)
    result = cli(runtime, *args)
    assert result.exit_code == code, result.output
    assert words in result.output
    assert "Traceback" not in result.output
