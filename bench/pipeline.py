"""Engine overhead per pipeline step: 50 no-op steps on the local engine and on Dask.

    uv run python bench/pipeline.py [--steps 50] [--repeat 3]

A pipeline of N no-op callable steps (``bastion.pipelines.demo:slow`` with 0 s), run
once as a chain (each step needs the one before) and once as a fan (independent steps),
on the local engine (DBOS on SQLite, callables in the worker pool) and with
``engine: dask`` on a ``LocalCluster`` started on loopback. What is timed: from the
run's start to its end, divided by the number of steps; a warm-up run first (worker
processes and imports), then the median of ``--repeat`` runs. Every step of every run
is recorded (database rows and ledger events), as in production.

Aim (the pipelines issue): under 50 ms a step on the local engine. Writes
``bench/results/pipeline.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from _machine import machine  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "pipeline.json"
AIM_MS = 50.0


def pipeline(n: int, shape: str, engine: str) -> str:
    lines = ["version: 1", f"name: bench-{shape}-{engine}", "steps:"]
    for i in range(n):
        needs = f", needs: [s{i - 1}]" if shape == "chain" and i else ""
        where = ", engine: dask" if engine == "dask" else ""
        lines.append(f"  s{i}: {{call: 'bastion.pipelines.demo:slow'{where}{needs}}}")
    return "\n".join(lines) + "\n"


def timed(eng: Any, text: str) -> float:
    from bastion.auth.principal import cli_principal
    from bastion.pipelines.spec import parse_pipeline

    started = time.perf_counter()
    run_id = eng.start(parse_pipeline(text, "bench.yaml"), cli_principal("bench"), {})
    eng.wait(run_id, timeout_s=600)
    seconds = time.perf_counter() - started
    state = eng.run(run_id)["state"]
    if state != "succeeded":
        raise SystemExit(f"bench run {run_id} ended {state}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from distributed import LocalCluster
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from bastion.db import create_database, upgrade
    from bastion.pipelines.engine import PipelineEngine
    from bastion.runtime import open_runtime
    from bastion.settings import Settings

    console = Console()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp))
        db = create_database(settings.resolved_database_url)
        upgrade(db.engine)
        db.dispose()
        cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=None, silence_logs=40,
        )  # fmt: skip
        rt = open_runtime(settings, write_policy=True)
        eng = PipelineEngine(rt, dask_address=cluster.scheduler_address)
        eng.launch()
        try:
            cases = [(e, s) for e in ("local", "dask") for s in ("chain", "fan")]
            with Progress(console=console, transient=True) as progress:
                task = progress.add_task("pipelines", total=len(cases) * (args.repeat + 1))
                for engine, shape in cases:
                    text = pipeline(args.steps, shape, engine)
                    timed(eng, text)  # warm-up
                    progress.advance(task)
                    runs = []
                    for _ in range(args.repeat):
                        runs.append(timed(eng, text))
                        progress.advance(task)
                    median = statistics.median(runs)
                    rows.append(
                        {
                            "engine": engine,
                            "shape": shape,
                            "steps": args.steps,
                            "runs_s": [round(r, 3) for r in runs],
                            "median_s": round(median, 3),
                            "per_step_ms": round(1000 * median / args.steps, 1),
                        }
                    )
        finally:
            eng.close()
            rt.close()
            cluster.close()

    local = [r["per_step_ms"] for r in rows if r["engine"] == "local"]
    results = {
        "benchmark": "pipeline",
        "machine": machine(sources=("src/bastion/pipelines",)),
        "method": __doc__.split("\n\n")[1].replace("\n", " "),
        "aim_ms_per_step_local": AIM_MS,
        "cases": rows,
        "meets_aim": max(local) < AIM_MS,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    table = Table("engine", "shape", "steps", "median s", "ms / step", title="Pipeline engine")
    for r in rows:
        table.add_row(
            r["engine"], r["shape"], str(r["steps"]), f"{r['median_s']:.2f}",
            f"{r['per_step_ms']:.1f}",
        )  # fmt: skip
    console.print(table)
    verdict = "meets" if results["meets_aim"] else "misses"
    console.print(
        f"local engine: {max(local):.1f} ms a step at most: {verdict} the aim of <{AIM_MS:g} ms"
    )


if __name__ == "__main__":
    main()
