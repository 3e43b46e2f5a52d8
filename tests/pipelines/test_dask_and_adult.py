"""The compute-heavy step on a Dask scheduler started on loopback (separate worker
processes), and the Adult pipeline end to end through Bastion's own steps."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bastion.auth.principal import cli_principal
from bastion.pipelines.spec import load_pipeline, parse_pipeline

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    from distributed import LocalCluster

    cluster = LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None, silence_logs=40,
    )  # fmt: skip
    yield cluster.scheduler_address
    cluster.close()


def test_a_step_runs_on_the_dask_scheduler_with_the_same_records(
    engine: Any, scheduler: str
) -> None:
    engine.dask_address = scheduler
    loaded = parse_pipeline(
        """
version: 1
name: scale
steps:
  prepare: {run: "true"}
  heavy:
    call: tests.pipelines.helpers:square_sum
    engine: dask
    with: {n: 1000}
    needs: [prepare]
    success: ["sum == 332833500"]
""",
        "scale.yaml",
    )
    run_id = engine.start(loaded, cli_principal("ana"), {})
    engine.wait(run_id, timeout_s=180)
    result = engine.run(run_id)
    heavy = {s["step"]: s for s in result["steps"]}["heavy"]
    assert result["state"] == "succeeded", heavy["error"]
    assert heavy["output"]["sum"] == 332833500
    assert heavy["output"]["pid"] != os.getpid()  # a worker process of the cluster
    assert heavy["verdicts"][0]["passed"] is True


def test_a_dask_step_without_a_scheduler_fails_clearly(engine: Any) -> None:
    loaded = parse_pipeline(
        "version: 1\nname: s\nsteps:\n  h: {call: 'm:f', engine: dask}\n", "s.yaml"
    )
    run_id = engine.start(loaded, cli_principal("ana"), {})
    engine.wait(run_id, timeout_s=120)
    step = engine.run(run_id)["steps"][0]
    assert step["state"] == "failed" and "--dask ADDRESS" in step["error"]


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("min_auc", [0.85, 0.99])
def test_the_adult_pipeline_registers_only_what_passed(engine: Any, min_auc: float) -> None:
    loaded = load_pipeline(ROOT / "pipelines" / "adult-income.yaml")
    run_id = engine.start(loaded, cli_principal("ana"), {"rows": 8000, "min_auc": min_auc})
    engine.wait(run_id, timeout_s=600)
    result = engine.run(run_id)
    steps = {s["step"]: s for s in result["steps"]}
    registry = engine.runtime.registry()
    if min_auc == 0.99:  # the gate fails: nothing is registered
        assert result["state"] == "failed"
        assert steps["evaluate"]["state"] == "failed"
        assert "metrics.roc_auc >= 0.99 not met" in steps["evaluate"]["error"]
        assert steps["register"]["state"] == "skipped"
        assert [m.name for m in registry.list_models()] == []
        return
    assert result["state"] == "succeeded", {n: s["error"] for n, s in steps.items()}
    auc = steps["evaluate"]["output"]["metrics"]["roc_auc"]
    assert abs(auc - steps["train"]["output"]["metrics"]["roc_auc"]) < 1e-9
    version = steps["register"]["output"]["version"]
    detail = registry.detail("adult-income", version)
    kinds = {e.kind for e in detail.evidence}
    assert {"fairness", "drift_baseline"} <= kinds
    assert detail.version.run_id == steps["train"]["output"]["run_id"]
    request = registry.get_request(steps["request-promotion"]["output"]["request_id"])
    assert request.status == "pending"  # the approval stays with a person
    assert request.requested_by == "ana"
