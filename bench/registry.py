"""Model registry: register and promote through Bastion's warm API vs MLflow's own calls.

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 \\
        uv run --group bench python bench/registry.py [--rounds 3] [--iterations 10]

The model is the worked example's income classifier (UCI Adult, per-sex thresholds).
Distinct models are trained first (one seed each, not timed): registration is
idempotent by the model's content, so registering one fitted model twenty times would
measure a look-up, not a registration.

Each round is a fresh Bastion home (SQLite governance database, MLflow SQLite store)
and a fresh ``bastion serve`` on 127.0.0.1, warmed by one full cycle (which loads
MLflow and scikit-learn in the server). Then ``--iterations`` times, alternating which
side goes first:

* MLflow alone: ``mlflow.sklearn.log_model`` in a run, ``mlflow.register_model`` on
  it, and ``set_registered_model_alias(..., "production")``: a promotion with no
  approval, no gates and no record of who did it.
* Bastion: the same ``log_model`` (a data scientist logs as before), then over HTTP
  ``POST /api/models/{name}/versions`` (the model folder checked whole and hashed, the
  run's evidence, an MLflow version, a ledger event), the evidence and card (not timed:
  written once per version by people), then promotion to staging and to production,
  each a request (gates evaluated) by one user and an approval (gates evaluated again,
  alias moved, ledger events) by another.

Cold, three times a round, alternating: ``bastion models register NAME --run RUN`` as a
fresh process, against a fresh ``python -c 'mlflow.register_model(...)'``; both pay
for starting Python and importing MLflow.

Wall time per step from the client's side (the server's time plus HTTP on loopback),
medians and 95th percentiles pooled over the rounds, with each round's median beside
them. CPU time: the bench process's own (``time.process_time``) for MLflow; for
Bastion the server process's user + system time read from ``/proc`` around each
timed request, plus the client's. ``/proc`` counts in 10 ms ticks, so CPU is given as
a mean per step over all iterations, not a median. Writes
``bench/results/registry.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "registry.json"
AIM_S = 0.5
COLD_RUNS = 3
MODEL = "bench-income"
POLICY = {
    "gates": {
        "staging": {"model_card": True, "metrics": {"roc_auc": {"min": 0.8}}},
        "production": {
            "model_card": True,
            "drift_baseline": True,
            "metrics": {"roc_auc": {"min": 0.85}},
            "no_worse_than_production": {"roc_auc": {"margin": 0.02}},
            "fairness": {"checks": ["four_fifths"], "features": ["sex"]},
        },
    }
}
MLFLOW_COLD = """
import sys, mlflow
mlflow.set_tracking_uri(sys.argv[1])
mlflow.register_model(sys.argv[2], sys.argv[3])
"""
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    return env | {"BASTION_HOME": str(home), "BASTION_LOG_LEVEL": "WARNING"}


def prepare_home(home: Path) -> dict[str, str]:
    """Migrate, write the policy with the bench gates, create three keys."""
    import yaml

    from bastion.auth.principal import SYSTEM
    from bastion.db import create_database, upgrade
    from bastion.runtime import open_runtime
    from bastion.settings import Settings

    settings = Settings(home=home, database_url=None, mlflow_tracking_uri=None)
    db = create_database(settings.resolved_database_url)
    upgrade(db.engine)
    db.dispose()
    rt = open_runtime(settings, write_policy=True)
    try:
        policy = yaml.safe_load(settings.policy_path.read_text())
        policy["registry"] = POLICY
        settings.policy_path.write_text(yaml.safe_dump(policy))
        keys = {
            user: rt.keys.create(SYSTEM, user=user, role=role).secret
            for user, role in (("ana", "analyst"), ("ada", "admin"), ("ops", "admin"))
        }
    finally:
        rt.close()
    return keys


def start_server(home: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bastion.cli.main", "serve", "--port", str(port)],
        env=clean_env(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not become ready within 60 s")


def proc_cpu(pid: int) -> float:
    """User + system seconds of a process so far (``/proc/PID/stat``, in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class Clock:
    """Wall and CPU time of one step; CPU includes the server's when ``pid`` is set."""

    def __init__(self, pid: int | None = None) -> None:
        self.pid = pid

    def __call__(self, fn: Callable[[], Any]) -> tuple[Any, float, float]:
        server0 = proc_cpu(self.pid) if self.pid else 0.0
        cpu0, wall0 = time.process_time(), time.perf_counter()
        out = fn()
        wall = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0
        if self.pid:
            cpu += proc_cpu(self.pid) - server0
        return out, wall, cpu


def log_run(trained: Any, experiment_id: str) -> tuple[str, str, float, float]:
    """``mlflow.sklearn.log_model`` in a run: run id, model URI, wall and CPU seconds."""
    import cloudpickle
    import mlflow
    import mlflow.sklearn
    import sklearn

    def log() -> tuple[str, str]:
        with mlflow.start_run(experiment_id=experiment_id) as run:
            mlflow.log_params({k: str(v) for k, v in trained.params.items()})
            mlflow.log_metrics(trained.metrics)
            info = mlflow.sklearn.log_model(
                trained.model,
                name="model",
                serialization_format="cloudpickle",
                pip_requirements=[
                    f"scikit-learn=={sklearn.__version__}",
                    f"cloudpickle=={cloudpickle.__version__}",
                ],
            )
        return run.info.run_id, info.model_uri

    (run_id, uri), wall, cpu = Clock()(log)
    return run_id, uri, wall, cpu


def ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    if response.status_code != status:
        raise SystemExit(f"{response.request.url}: {response.status_code} {response.text[:500]}")
    body: dict[str, Any] = response.json()
    return body


def bastion_cycle(
    http: httpx.Client, keys: dict[str, str], run_id: str, evidence: dict[str, Any], pid: int
) -> dict[str, tuple[float, float]]:
    """Register and promote over HTTP: {step: (wall, cpu)}."""
    clock = Clock(pid)
    ana = {"Authorization": f"Bearer {keys['ana']}"}
    ada = {"Authorization": f"Bearer {keys['ada']}"}
    reg, wall, cpu = clock(
        lambda: ok(
            http.post(f"/api/models/{MODEL}/versions", json={"run_id": run_id}, headers=ana), 201
        )
    )
    out = {"register": (wall, cpu)}
    base = f"/api/models/{MODEL}/versions/{reg['version']['version']}"
    for kind in ("fairness", "drift_baseline"):
        ok(
            http.post(
                f"{base}/evidence", json={"kind": kind, "report": evidence[kind]}, headers=ana
            ),
            201,
        )
    ok(http.put(f"{base}/card", json={"fields": {"intended_use": "Benchmarking."}}, headers=ana))
    for stage in ("staging", "production"):
        request, w1, c1 = clock(
            lambda stage=stage: ok(
                http.post(f"{base}/promotions", json={"to": stage, "reason": "bench"}, headers=ana),
                201,
            )
        )
        _, w2, c2 = clock(
            lambda request=request: ok(
                http.post(f"/api/promotions/{request['id']}/approve", json={}, headers=ada)
            )
        )
        out[f"promote_{stage}"] = (w1 + w2, c1 + c2)
    return out


def mlflow_cycle(client: Any, model_uri: str) -> dict[str, tuple[float, float]]:
    import mlflow

    clock = Clock()
    with contextlib.redirect_stderr(io.StringIO()):  # "Created version ..." on every call
        version, wall, cpu = clock(lambda: mlflow.register_model(model_uri, f"{MODEL}-mlflow"))
    _, w2, c2 = clock(
        lambda: client.set_registered_model_alias(f"{MODEL}-mlflow", "production", version.version)
    )
    return {"register": (wall, cpu), "promote_production": (w2, c2)}


def cold(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user + system of the child) of one fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{command[:4]} failed: {done.stderr[-800:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"median": statistics.median(values), "p95": p95, "min": ordered[0]}


def one_round(
    number: int, args: Any, models: list[Any], evidence: dict[str, Any], console: Any
) -> dict[str, Any]:
    import mlflow
    from mlflow import MlflowClient

    with tempfile.TemporaryDirectory(prefix="bastion-bench-registry-") as tmp:
        home = Path(tmp) / "home"
        keys = prepare_home(home)
        port = free_port()
        server = start_server(home, port)
        rows: list[dict[str, Any]] = []
        cold_rows: list[dict[str, tuple[float, float]]] = []
        try:
            logging.getLogger("mlflow").setLevel(logging.ERROR)  # MLflow resets it on import
            uri = f"sqlite:///{home / 'mlflow.db'}"
            mlflow.set_tracking_uri(uri)
            mlflow.set_registry_uri(uri)
            client = MlflowClient(uri)
            experiment = client.create_experiment(
                "bench", artifact_location=(home / "bench-artifacts").resolve().as_uri()
            )
            fresh = iter(models)
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
                # Warm-up: the server loads MLflow and scikit-learn on its first registry call.
                run_id, model_uri, _, _ = log_run(next(fresh), experiment)
                bastion_cycle(http, keys, run_id, evidence, server.pid)
                mlflow_cycle(client, model_uri)
                for i in range(args.iterations):
                    trained = next(fresh)
                    row: dict[str, Any] = {}
                    for side in ("bastion", "mlflow") if i % 2 == 0 else ("mlflow", "bastion"):
                        run_id, model_uri, t_log, c_log = log_run(trained, experiment)
                        steps = (
                            bastion_cycle(http, keys, run_id, evidence, server.pid)
                            if side == "bastion"
                            else mlflow_cycle(client, model_uri)
                        )
                        row[side] = {"log_model": (t_log, c_log), **steps}
                    rows.append(row)
                    b = sum(w for k, (w, _) in row["bastion"].items() if k != "log_model")
                    m = sum(w for k, (w, _) in row["mlflow"].items() if k != "log_model")
                    console.print(
                        f"round {number} iteration {i + 1}: Bastion register+promote "
                        f"{b * 1000:.0f} ms, MLflow register+alias {m * 1000:.0f} ms"
                    )
                for j in range(COLD_RUNS):
                    trained = next(fresh)
                    row_cold: dict[str, tuple[float, float]] = {}
                    for side in ("bastion", "mlflow") if j % 2 == 0 else ("mlflow", "bastion"):
                        run_id, model_uri, _, _ = log_run(trained, experiment)
                        if side == "bastion":
                            command = [sys.executable, "-m", "bastion.cli.main", "models"]
                            command += ["register", MODEL, "--run", run_id, "--json"]
                        else:
                            command = [sys.executable, "-c", MLFLOW_COLD, uri, model_uri]
                            command.append(f"{MODEL}-mlflow")
                        row_cold[side] = cold(command, clean_env(home))
                    cold_rows.append(row_cold)
                    console.print(
                        f"round {number} cold {j + 1}: bastion models register "
                        f"{row_cold['bastion'][0]:.2f} s, MLflow register_model "
                        f"{row_cold['mlflow'][0]:.2f} s"
                    )
                verify = ok(
                    http.post(
                        "/api/registry/verify", headers={"Authorization": f"Bearer {keys['ops']}"}
                    )
                )
        finally:
            server.terminate()
            server.wait(timeout=30)
    return {"rows": rows, "cold": cold_rows, "verify": verify}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3, help="fresh homes and servers")
    parser.add_argument("--iterations", type=int, default=10, help="cycles per round")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    console = Console()
    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    from bastion.registry import demo

    needed = 1 + args.iterations + COLD_RUNS
    console.print(f"training {needed} income models on UCI Adult, one seed each (not timed)")
    frame = demo.load_adult()
    models = [demo.train(frame, mitigate=True, seed=seed) for seed in range(needed)]
    evidence = {
        "fairness": demo.fairness(models[0]),
        "drift_baseline": demo.drift_baseline(models[0]),
    }

    rounds = [one_round(r + 1, args, models, evidence, console) for r in range(args.rounds)]
    rows = [row for r in rounds for row in r["rows"]]

    def totals(row: dict[str, Any], side: str, keys: tuple[str, ...]) -> tuple[float, float]:
        return (sum(row[side][k][0] for k in keys), sum(row[side][k][1] for k in keys))

    composite = {
        "register_and_promote": {
            "bastion": ("register", "promote_staging", "promote_production"),
            "mlflow": ("register", "promote_production"),
        },
        "log_model_and_register": {
            "bastion": ("log_model", "register"),
            "mlflow": ("log_model", "register"),
        },
        "log_model_register_and_promote": {
            "bastion": ("log_model", "register", "promote_staging", "promote_production"),
            "mlflow": ("log_model", "register", "promote_production"),
        },
    }

    def side_stats(side: str) -> dict[str, Any]:
        steps: dict[str, list[tuple[float, float]]] = {k: [] for k in rows[0][side]}
        for row in rows:
            for key, value in row[side].items():
                steps[key].append(value)
        for name, by_side in composite.items():
            steps[name] = [totals(row, side, by_side[side]) for row in rows]
        out = {}
        for key, values in steps.items():
            walls = [w for w, _ in values]
            out[key] = {
                "wall_s": summary(walls),
                "cpu_mean_s": statistics.fmean(c for _, c in values),
                "round_medians_s": [
                    statistics.median(
                        (
                            totals(row, side, composite[key][side])
                            if key in composite
                            else row[side][key]
                        )[0]
                        for row in r["rows"]
                    )
                    for r in rounds
                ],
            }
        return out

    bastion, mlflow_side = side_stats("bastion"), side_stats("mlflow")
    cold_stats = {
        side: {
            "wall_s": summary([c[side][0] for r in rounds for c in r["cold"]]),
            "cpu_s": summary([c[side][1] for r in rounds for c in r["cold"]]),
        }
        for side in ("bastion", "mlflow")
    }
    results = {
        "benchmark": "registry",
        "command": "OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 uv run --group "
        f"bench python bench/registry.py --rounds {args.rounds} --iterations {args.iterations}",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_1m": os.getloadavg()[0],
        },
        "rounds": args.rounds,
        "iterations_per_round": args.iterations,
        "model": "UCI Adult income, logistic regression with per-sex thresholds; "
        "a distinct fitted model (seed) per iteration",
        "warm_server": {"bastion_api": bastion, "mlflow_direct": mlflow_side},
        "cold_process_register": {
            "bastion_cli": cold_stats["bastion"],
            "mlflow_register_model": cold_stats["mlflow"],
            "runs": args.rounds * COLD_RUNS,
        },
        "aim_register_and_promote_s": AIM_S,
        "meets_aim": bastion["register_and_promote"]["wall_s"]["median"] < AIM_S,
        "verify_after": [
            {"ok": r["verify"]["ok"], "versions_checked": r["verify"]["versions_checked"]}
            for r in rounds
        ],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")

    n = len(rows)
    table = Table(
        title=f"Warm: {args.rounds} rounds x {args.iterations} iterations, wall median / p95 "
        "(CPU mean), ms"
    )
    table.add_column("step")
    table.add_column("Bastion API (warm server)", justify="right")
    table.add_column("MLflow directly", justify="right")

    def ms(stats: dict[str, Any] | None) -> str:
        if stats is None:
            return "–"
        wall = stats["wall_s"]
        return (
            f"{wall['median'] * 1000:.0f} / {wall['p95'] * 1000:.0f} "
            f"({stats['cpu_mean_s'] * 1000:.0f})"
        )

    table.add_row("log_model (both)", ms(bastion["log_model"]), ms(mlflow_side["log_model"]))
    table.add_row("register", ms(bastion["register"]), ms(mlflow_side["register"]))
    table.add_row(
        "log_model + register", *(ms(s["log_model_and_register"]) for s in (bastion, mlflow_side))
    )
    table.add_row("promote to staging (request + approval)", ms(bastion["promote_staging"]), "–")
    table.add_row(
        "promote to production",
        ms(bastion["promote_production"]) + " request + approval",
        ms(mlflow_side["promote_production"]) + " alias only",
    )
    table.add_row(
        "register + promote",
        ms(bastion["register_and_promote"]),
        ms(mlflow_side["register_and_promote"]),
    )
    table.add_row(
        "log_model + register + promote",
        ms(bastion["log_model_register_and_promote"]),
        ms(mlflow_side["log_model_register_and_promote"]),
    )
    console.print(table)

    cold_table = Table(
        title=f"Cold: a fresh process per registration, {args.rounds * COLD_RUNS} "
        "runs, median (p95), s"
    )
    cold_table.add_column("")
    cold_table.add_column("bastion models register --run", justify="right")
    cold_table.add_column("python -c mlflow.register_model", justify="right")
    for what in ("wall_s", "cpu_s"):
        cold_table.add_row(
            what.removesuffix("_s"),
            *(
                f"{cold_stats[s][what]['median']:.2f} ({cold_stats[s][what]['p95']:.2f})"
                for s in ("bastion", "mlflow")
            ),
        )
    console.print(cold_table)
    verdict = "meets" if results["meets_aim"] else "misses"
    console.print(
        f"{n} warm cycles: Bastion register + promote {verdict} the {AIM_S} s aim; wrote {RESULTS}"
    )


if __name__ == "__main__":
    main()
