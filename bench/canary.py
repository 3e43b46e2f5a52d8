"""Canary analysis by simulation: Bastion's sequential tests against a fixed threshold.

Each simulated canary serves ``BATCH_CANARY`` canary requests and ``BATCH_BASE``
production requests per batch (a 10 % canary weight) for up to ``BATCHES`` batches,
and is analysed after every batch. Error rates rise 0, 1, 2, 5 or 10 points over a 1 %
baseline; latencies (log-normal) shift by 0, 10, 25 or 50 %.

Analyses, each tuned or set to the same false-rollback rate (α = 1 %) over the
healthy canaries:

- **bastion**: the always-valid mixture SPRT of :mod:`bastion.delivery.statistics`
  (the controller's own function), and for latency its sequential Mann-Whitney with
  the p95 tolerance;
- **fixed threshold, per interval** (Flagger's style): roll back when one interval's
  canary error rate (p99 latency for latency) exceeds a threshold, the threshold set
  from the healthy runs so that their false-rollback rate is ≤ α;
- **fixed threshold, cumulative**: the same on the step's whole canary error rate;
- **z-test peeking**: a plain two-sample test at α read after every batch, to show
  why peeking needs a sequential test (its false-rollback rate is far above α).

Figures: canary requests until rollback (median and p95 over all runs, a run never
rolled back counting as "never"), the share rolled back, and the false-rollback rate. Run:
``uv run python bench/canary.py`` (``--quick`` for a smaller run).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import numpy.typing as npt
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import ROOT, machine
from bastion.delivery.statistics import (
    DEFAULT_TAU_LATENCY,
    log_mixture_ratio,
    proportion_log_ratio,
)

ALPHA = 0.01
BASE_RATE = 0.01
RISES = (0.0, 0.01, 0.02, 0.05, 0.10)
LATENCY_SHIFTS = (0.0, 0.10, 0.25, 0.50)
LATENCY_TOLERANCE = 0.05  # the p95 must have risen by more than this to roll back
BATCH_CANARY = 50
BATCH_BASE = 450
BATCHES = 200

Int = npt.NDArray[np.int64]
Float = npt.NDArray[np.float64]


def first_look(hit: npt.NDArray[np.bool_]) -> Int:
    """Index of the first look that rolls back, or -1."""
    return np.where(hit.any(axis=1), hit.argmax(axis=1), -1).astype(np.int64)


def summarise(first: Int, batch: int) -> dict[str, Any]:
    """Canary requests until rollback over *all* runs: a run never rolled back counts as
    never (a quantile that falls on one is None, shown as "never")."""
    caught = first >= 0
    requests = np.where(caught, (first + 1) * batch, np.inf).astype(np.float64)
    med, p95 = (float(np.quantile(requests, q, method="higher")) for q in (0.5, 0.95))
    return {
        "rolled_back": float(caught.mean()),
        "median_requests": med if math.isfinite(med) else None,
        "p95_requests": p95 if math.isfinite(p95) else None,
    }


def tune(max_stat: Float, alpha: float) -> float:
    """Smallest threshold t with P(max statistic > t) ≤ alpha over the healthy runs."""
    return float(np.quantile(max_stat, 1 - alpha, method="higher"))


def error_runs(rng: np.random.Generator, rise: float, runs: int) -> tuple[Int, Int, Int, Int]:
    c_batch = rng.binomial(BATCH_CANARY, BASE_RATE + rise, (runs, BATCHES))
    b_batch = rng.binomial(BATCH_BASE, BASE_RATE, (runs, BATCHES))
    return c_batch, np.cumsum(c_batch, axis=1), b_batch, np.cumsum(b_batch, axis=1)


def error_analyses(
    c_batch: Int, c_cum: Int, b_cum: Int, thresholds: dict[str, float] | None
) -> tuple[dict[str, Int], dict[str, Float]]:
    looks = np.arange(1, BATCHES + 1)
    nc, nb = looks * BATCH_CANARY, looks * BATCH_BASE
    ll, _, _ = proportion_log_ratio(b_cum, nb, c_cum, nc)
    window = c_batch / BATCH_CANARY
    cumulative = c_cum / nc
    pooled = (c_cum + b_cum) / (nc + nb)
    se = np.sqrt(np.maximum(pooled * (1 - pooled), 1e-12) * (1 / nc + 1 / nb))
    z = (cumulative - b_cum / nb) / se
    maxima = {"window": window.max(axis=1), "cumulative": cumulative.max(axis=1)}
    firsts = {"bastion": first_look(ll >= math.log(1 / ALPHA))}
    firsts["z-test peeking"] = first_look(z > stats.norm.isf(ALPHA))
    if thresholds is not None:
        firsts["fixed, per interval"] = first_look(window > thresholds["window"])
        firsts["fixed, cumulative"] = first_look(cumulative > thresholds["cumulative"])
    return firsts, maxima


def latency_runs(
    rng: np.random.Generator, shift: float, runs: int, batches: int, batch: int
) -> tuple[Float, Float]:
    base = rng.lognormal(math.log(40.0), 0.35, (runs, batches * batch))
    cand = rng.lognormal(math.log(40.0 * (1 + shift)), 0.35, (runs, batches * batch))
    return base, cand


def latency_analyses(
    base: Float, cand: Float, batches: int, batch: int, threshold: float | None
) -> tuple[dict[str, Int], Float]:
    runs = base.shape[0]
    hits = np.zeros((runs, batches), dtype=bool)
    p99 = np.zeros((runs, batches))
    for k in range(batches):
        n = (k + 1) * batch
        b, c = base[:, :n], cand[:, :n]
        u = stats.mannwhitneyu(c, b, axis=1, alternative="greater", method="asymptotic").statistic
        effect = u / (n * n) - 0.5
        var = (2 * n + 1) / (12.0 * n * n)
        ll = log_mixture_ratio(effect, np.full(runs, var), DEFAULT_TAU_LATENCY)
        rise = np.percentile(c, 95, axis=1) / np.percentile(b, 95, axis=1) - 1
        hits[:, k] = (ll >= math.log(1 / ALPHA)) & (rise > LATENCY_TOLERANCE)
        p99[:, k] = np.percentile(cand[:, k * batch : n], 99, axis=1)
    firsts = {"bastion": first_look(hits)}
    if threshold is not None:
        firsts["fixed p99, per interval"] = first_look(p99 > threshold)
    return firsts, p99.max(axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs (a smoke run)")
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()
    healthy_runs = 2_000 if args.quick else 10_000
    faulty_runs = 500 if args.quick else 2_000
    lat_runs, lat_batches, lat_batch = (200, 20, 50) if args.quick else (1_000, 40, 50)
    rng = np.random.default_rng(args.seed)
    console = Console()
    started = time.perf_counter()
    errors: dict[str, dict[str, Any]] = {}
    latency: dict[str, dict[str, Any]] = {}
    with Progress(console=console) as progress:
        task = progress.add_task("simulating canaries", total=len(RISES) + len(LATENCY_SHIFTS))
        # Tune the fixed thresholds on one set of healthy runs, measure on another.
        c_batch, c_cum, _, b_cum = error_runs(rng, 0.0, healthy_runs)
        _, maxima = error_analyses(c_batch, c_cum, b_cum, None)
        thresholds = {k: tune(v, ALPHA) for k, v in maxima.items()}
        for rise in RISES:
            runs = healthy_runs if rise == 0 else faulty_runs
            c_batch, c_cum, _, b_cum = error_runs(rng, rise, runs)
            firsts, _ = error_analyses(c_batch, c_cum, b_cum, thresholds)
            errors[f"+{rise * 100:g} pt"] = {
                name: summarise(f, BATCH_CANARY) | {"runs": runs} for name, f in firsts.items()
            }
            progress.advance(task)
        base, cand = latency_runs(rng, 0.0, lat_runs, lat_batches, lat_batch)
        _, p99_max = latency_analyses(base, cand, lat_batches, lat_batch, None)
        p99_threshold = tune(p99_max, ALPHA)
        for shift in LATENCY_SHIFTS:
            base, cand = latency_runs(rng, shift, lat_runs, lat_batches, lat_batch)
            firsts, _ = latency_analyses(base, cand, lat_batches, lat_batch, p99_threshold)
            latency[f"+{shift:.0%}"] = {
                name: summarise(f, lat_batch) | {"runs": lat_runs} for name, f in firsts.items()
            }
            progress.advance(task)
    elapsed = time.perf_counter() - started

    five = errors["+5 pt"]
    ratios = {
        peer: {
            q: (five[peer][q] / five["bastion"][q])
            if five[peer][q] and five["bastion"][q]
            else None
            for q in ("median_requests", "p95_requests")
        }
        for peer in ("fixed, per interval", "fixed, cumulative")
    }
    result = {
        "benchmark": "canary",
        "machine": machine(sources=("src/bastion/delivery", "bench/canary.py")),
        "setup": {
            "alpha": ALPHA,
            "base_error_rate": BASE_RATE,
            "batch_canary_requests": BATCH_CANARY,
            "batch_production_requests": BATCH_BASE,
            "batches": BATCHES,
            "healthy_runs": healthy_runs,
            "faulty_runs": faulty_runs,
            "latency_runs": lat_runs,
            "latency_batches": lat_batches,
            "latency_batch": lat_batch,
            "latency_p95_tolerance": LATENCY_TOLERANCE,
            "fixed_thresholds": thresholds | {"p99_ms": p99_threshold},
            "seed": args.seed,
            "quick": args.quick,
        },
        "error_rate": errors,
        "latency": latency,
        "plus_5pt_requests_ratio_peer_over_bastion": ratios,
        "elapsed_s": round(elapsed, 1),
    }
    out = ROOT / "bench" / "results" / "canary.json"
    out.write_text(json.dumps(result, indent=2) + "\n")

    def table(title: str, rows: dict[str, dict[str, Any]], unit: str) -> Table:
        t = Table(title=title)
        for col in (unit, "analysis", "rolled back", "median req.", "p95 req."):
            t.add_column(col, justify="right" if col != "analysis" else "left")
        for key, analyses in rows.items():
            for name, s in analyses.items():
                med = "never" if s["median_requests"] is None else f"{s['median_requests']:,.0f}"
                p95 = "never" if s["p95_requests"] is None else f"{s['p95_requests']:,.0f}"
                t.add_row(key, name, f"{s['rolled_back']:.2%}", med, p95)
        return t

    console.print(table("Error-rate rise over a 1 % baseline (canary requests)", errors, "rise"))
    console.print(table("Latency shift (canary requests)", latency, "shift"))
    console.print(
        f"fixed thresholds tuned to α={ALPHA:g} on healthy runs: "
        f"per interval > {thresholds['window']:.1%}, cumulative > "
        f"{thresholds['cumulative']:.2%}, p99 > {p99_threshold:.1f} ms"
    )
    for peer, r in ratios.items():
        console.print(
            f"+5 pt: {peer} needs {r['median_requests'] or float('nan'):.2f}x (median), "
            f"{r['p95_requests'] or float('nan'):.2f}x (p95) the canary requests bastion needs"
        )
    console.print(f"wrote {out.relative_to(ROOT)} in {elapsed:.0f} s")


if __name__ == "__main__":
    main()
