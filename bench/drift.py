"""Data drift: Bastion vs Evidently's ``DataDriftPreset``, side by side in one run.

    uv sync --group bench
    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 \
        uv run --group bench python bench/drift.py [--quick] [--runs 3] [--evidently-1m-runs 1]

Data: 20 numeric columns (normal, log-normal, exponential, integer counts, uniform) and
5 categorical ones, reference and current of equal size; 7 numeric and 2 categorical
columns are shifted by amounts from clearly-drifted to just-below the thresholds, so the
verdicts are a real test. Each side is written once to Parquet; every variant then runs
in a fresh subprocess that reads it, computes the per-column verdicts and reports wall
time, CPU time and peak RSS (``ru_maxrss``, which includes the loaded data) for the
computation, plus the resident memory just before the run (``VmRSS``) and the peak above
it (an upper bound on what the run itself added: the high-water mark may be the load's).
Both tools get pandas DataFrames with the column types declared.

Sizes: 100,000 and 1,000,000 rows a side (variants alternated, ``--runs`` each; Evidently
at 1M takes about 100 s a run here, so ``--evidently-1m-runs`` defaults to 1), then
Bastion alone at 10,000,000 rows a side, streamed from Parquet in 1,000,000-row windows.

Writes ``bench/results/drift.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "drift.json"
NUMERIC = [f"num_{i:02d}" for i in range(20)]
CATEGORICAL = [f"cat_{i}" for i in range(5)]
# column -> shift applied to the current side (in reference standard deviations)
SHIFTS = {
    "num_00": 0.5,
    "num_01": 0.2,
    "num_02": 0.12,
    "num_03": 0.08,
    "num_04": 0.05,
    "num_05": 0.3,
    "num_06": 0.15,
}
CHUNK = 1_000_000


def _chunk(n: int, seed: int, current: bool) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    cols: dict[str, Any] = {}
    for i, name in enumerate(NUMERIC):
        kind = i % 5
        shift = SHIFTS.get(name, 0.0) if current else 0.0
        if kind == 0:
            x = rng.normal(0, 1, n) + shift
        elif kind == 1:
            x = rng.lognormal(0, 0.5, n) * (1 + shift)
        elif kind == 2:
            x = rng.exponential(1, n) + shift
        elif kind == 3:
            x = rng.poisson(10 * (1 + shift), n).astype(np.float64)
        else:
            x = rng.uniform(0, 1, n) + shift * 0.29
        cols[name] = x
    levels = [
        list("ab"),
        list("abc"),
        list("abcdef"),
        [f"k{j}" for j in range(20)],
        [f"z{j}" for j in range(50)],
    ]
    for i, name in enumerate(CATEGORICAL):
        k = len(levels[i])
        p = np.arange(1, k + 1, dtype=float)[::-1]
        if current and i in (1, 3):
            p = p ** (0.2 if i == 1 else 0.8)
        cols[name] = pd.Categorical(rng.choice(levels[i], n, p=p / p.sum()), categories=levels[i])
    return pd.DataFrame(cols)


def write_data(directory: Path, n: int) -> tuple[Path, Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = []
    for side, current in (("reference", False), ("current", True)):
        path = directory / f"{side}_{n}.parquet"
        paths.append(path)
        if path.exists():
            continue
        writer = None
        for k, start in enumerate(range(0, n, CHUNK)):
            frame = _chunk(
                min(CHUNK, n - start), seed=(1000 if current else 0) + k, current=current
            )
            table = pa.Table.from_pandas(frame, preserve_index=False)
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table, row_group_size=CHUNK)
        assert writer is not None
        writer.close()
    return paths[0], paths[1]


# --- workers (run in fresh subprocesses) -------------------------------------------------
def _evidently(ref: Any, cur: Any) -> dict[str, Any]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
    report = Report([DataDriftPreset()])
    result = report.run(
        Dataset.from_pandas(cur, data_definition=definition),
        Dataset.from_pandas(ref, data_definition=definition),
    )
    out: dict[str, Any] = {}
    for metric in result.dict()["metrics"]:
        cfg = metric["config"]
        if cfg.get("type", "").endswith("ValueDrift"):
            method, threshold = cfg["method"], cfg["threshold"]
            value = float(metric["value"])
            p_value = "p_value" in method
            out[cfg["column"]] = {
                "method": method,
                "score": value,
                "drifted": value < threshold if p_value else value >= threshold,
            }
    return out


def _bastion(ref: Any, cur: Any) -> dict[str, Any]:
    from bastion.monitoring import detect_drift

    report = detect_drift(ref, cur, categorical=CATEGORICAL, numerical=NUMERIC)
    return {
        c.column: {"method": c.method, "score": c.score, "drifted": c.drifted}
        for c in report.columns
    }


def _rss_now_mb() -> float:
    """Resident memory now (VmRSS), as opposed to ``ru_maxrss``'s high-water mark."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def worker(variant: str, ref_path: str, cur_path: str) -> None:
    import pandas as pd

    if variant == "bastion-stream":
        from bastion.monitoring import detect_drift

        rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rss_now = _rss_now_mb()
        t0, c0 = time.perf_counter(), time.process_time()
        report = detect_drift(ref_path, cur_path, categorical=CATEGORICAL, numerical=NUMERIC)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        columns = {
            c.column: {"method": c.method, "score": c.score, "drifted": c.drifted}
            for c in report.columns
        }
    else:
        ref, cur = pd.read_parquet(ref_path), pd.read_parquet(cur_path)
        rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        run = _evidently if variant == "evidently" else _bastion
        # import the tool before timing: both pay their import cost outside the figure
        if variant == "evidently":
            import evidently.presets  # noqa: F401
        else:
            import bastion.monitoring.drift  # noqa: F401
        rss_now = _rss_now_mb()
        t0, c0 = time.perf_counter(), time.process_time()
        columns = run(ref, cur)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    json.dump(
        {
            "wall_s": wall,
            "cpu_s": cpu,
            "peak_rss_mb": peak,
            "rss_after_load_mb": rss_loaded,
            "rss_before_run_mb": rss_now,
            "columns": columns,
        },
        sys.stdout,
    )


def run_variant(variant: str, ref: Path, cur: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", variant, str(ref), str(cur)],
        capture_output=True,
        text=True,
        check=False,
        env=os.environ.copy(),
    )
    if proc.returncode != 0:
        raise SystemExit(f"{variant} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "runs": len(runs),
        "wall_s_median": statistics.median(r["wall_s"] for r in runs),
        "wall_s_all": [round(r["wall_s"], 3) for r in runs],
        "cpu_s_median": statistics.median(r["cpu_s"] for r in runs),
        "peak_rss_mb_median": statistics.median(r["peak_rss_mb"] for r in runs),
        "rss_after_load_mb": statistics.median(r["rss_after_load_mb"] for r in runs),
        "rss_before_run_mb": statistics.median(r["rss_before_run_mb"] for r in runs),
        # what the run itself added above the memory resident when it started
        "added_above_start_mb": statistics.median(
            r["peak_rss_mb"] - r["rss_before_run_mb"] for r in runs
        ),
    }


def agreement(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    same_method = [c for c in a if _same_method(a[c]["method"], b[c]["method"])]
    agree = [c for c in same_method if a[c]["drifted"] == b[c]["drifted"]]
    return {
        "columns": len(a),
        "same_method": len(same_method),
        "verdicts_agree": len(agree),
        "disagreements": [c for c in same_method if c not in agree],
        "max_score_rel_diff": max(
            (
                abs(a[c]["score"] - b[c]["score"]) / max(abs(b[c]["score"]), 1e-12)
                for c in same_method
                if "p_value" not in b[c]["method"]
            ),
            default=0.0,
        ),
        "drifted_bastion": sorted(c for c in a if a[c]["drifted"]),
        "drifted_evidently": sorted(c for c in b if b[c]["drifted"]),
    }


def _same_method(ours: str, theirs: str) -> bool:
    names = {
        "wasserstein": "Wasserstein",
        "jensenshannon": "Jensen-Shannon",
        "ks": "K-S",
        "chisquare": "chi-square",
        "z": "Z-test",
        "psi": "PSI",
    }
    return theirs.startswith(names.get(ours, "?"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", nargs=3, metavar=("VARIANT", "REF", "CUR"))
    parser.add_argument("--quick", action="store_true", help="100k only, one run each, no 10M")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--evidently-1m-runs", type=int, default=1)
    parser.add_argument(
        "--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "bastion-bench-drift"
    )
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return

    from rich.console import Console
    from rich.table import Table

    console = Console()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    sizes = [100_000] if args.quick else [100_000, 1_000_000]
    results: dict[str, Any] = {
        "benchmark": "drift",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "threads": {
            v: os.environ.get(v)
            for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
        },
        "columns": {
            "numeric": len(NUMERIC),
            "categorical": len(CATEGORICAL),
            "shifted": [*sorted(SHIFTS), "cat_1", "cat_3"],
        },
        "sizes": {},
    }
    for n in sizes:
        ref, cur = write_data(args.data_dir, n)
        runs = 1 if args.quick else args.runs
        ev_runs = args.evidently_1m_runs if n >= 1_000_000 else runs
        bastion_runs: list[dict[str, Any]] = []
        evidently_runs: list[dict[str, Any]] = []
        for i in range(max(runs, ev_runs)):
            if i < ev_runs:
                console.print(f"{n:,} rows: Evidently run {i + 1}")
                evidently_runs.append(run_variant("evidently", ref, cur))
            if i < runs:
                console.print(f"{n:,} rows: Bastion run {i + 1}")
                bastion_runs.append(run_variant("bastion", ref, cur))
        b, e = summarise(bastion_runs), summarise(evidently_runs)
        results["sizes"][str(n)] = {
            "bastion": b,
            "evidently": e,
            "speedup_wall": e["wall_s_median"] / b["wall_s_median"],
            "memory_ratio": b["peak_rss_mb_median"] / e["peak_rss_mb_median"],
            "agreement": agreement(bastion_runs[0]["columns"], evidently_runs[0]["columns"]),
        }
    if not args.quick:
        n = 10_000_000
        console.print("writing 10,000,000 rows a side to Parquet (not timed)")
        ref, cur = write_data(args.data_dir, n)
        console.print(f"{n:,} rows: Bastion streamed")
        stream = run_variant("bastion-stream", ref, cur)
        results["sizes"][str(n)] = {
            "bastion_streamed": summarise([stream]),
            "drifted": sorted(c for c, v in stream["columns"].items() if v["drifted"]),
            "note": "read from Parquet in 1,000,000-row windows; wall time includes reading",
        }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")

    table = Table(title="Drift: 20 numeric + 5 categorical columns, rows a side")
    for col in (
        "rows",
        "tool",
        "runs",
        "wall s (median)",
        "CPU s",
        "peak RSS MB",
        "speed-up",
        "memory",
        "verdicts agree",
    ):
        table.add_column(col, justify="right")
    for n, r in results["sizes"].items():
        if "bastion" in r:
            ag = r["agreement"]
            table.add_row(
                f"{int(n):,}",
                "Evidently",
                str(r["evidently"]["runs"]),
                f"{r['evidently']['wall_s_median']:.2f}",
                f"{r['evidently']['cpu_s_median']:.2f}",
                f"{r['evidently']['peak_rss_mb_median']:.0f}",
                "1×",
                "1×",
                "",
            )
            table.add_row(
                "",
                "Bastion",
                str(r["bastion"]["runs"]),
                f"{r['bastion']['wall_s_median']:.2f}",
                f"{r['bastion']['cpu_s_median']:.2f}",
                f"{r['bastion']['peak_rss_mb_median']:.0f}",
                f"{r['speedup_wall']:.0f}×",
                f"{r['memory_ratio']:.2f}×",
                f"{ag['verdicts_agree']}/{ag['same_method']} "
                f"(same method {ag['same_method']}/{ag['columns']})",
            )
        else:
            s = r["bastion_streamed"]
            table.add_row(
                f"{int(n):,}",
                "Bastion (streamed)",
                "1",
                f"{s['wall_s_median']:.2f}",
                f"{s['cpu_s_median']:.2f}",
                f"{s['peak_rss_mb_median']:.0f}",
                "",
                "",
                "",
            )
    console.print(table)
    console.print(f"written to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
