"""Model registry: register and promote through Bastion's warm API vs MLflow's own calls.

    uv run python bench/registry.py [--iterations 20]

One fresh Bastion home (SQLite governance database, MLflow SQLite store), a real
``bastion serve`` on 127.0.0.1 started once and warmed (one full cycle on a warm-up
model first, which loads MLflow and scikit-learn in the server). The model is the
worked example's income classifier (UCI Adult, per-sex thresholds), trained once.

Each iteration, the same fitted model:

* MLflow alone: ``mlflow.sklearn.log_model`` in a run, ``mlflow.register_model`` on
  it, and ``set_registered_model_alias(..., "production")`` — a promotion with no
  approval, no gates and no record of who did it.
* Bastion: the same ``log_model`` (a data scientist logs as before), then over HTTP
  ``POST /api/models/{name}/versions`` (digest of the artifact, the run's evidence, an
  MLflow version, a ledger event), the evidence and card (not timed: written once per
  version by people), then promotion to staging and to production, each a request
  (gates evaluated) by one user and an approval (gates evaluated again, alias moved,
  ledger events) by another.

Wall time per step from the client's side (the server's time plus HTTP on loopback);
medians and 95th percentiles over ``--iterations``. Writes ``bench/results/registry.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import httpx

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "registry.json"
AIM_S = 0.5
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare_home(home: Path) -> dict[str, str]:
    """Migrate, write the policy with the bench gates, create three keys."""
    import yaml

    from bastion.auth.principal import SYSTEM
    from bastion.db import create_database, upgrade
    from bastion.runtime import open_runtime
    from bastion.settings import Settings

    settings = Settings(home=home)
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
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    env |= {"BASTION_HOME": str(home), "BASTION_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bastion.cli.main", "serve", "--port", str(port)],
        env=env,
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


def log_run(trained: Any, experiment_id: str) -> tuple[str, str, float]:
    """``mlflow.sklearn.log_model`` in a run: returns run id, model URI, seconds."""
    import cloudpickle
    import mlflow
    import mlflow.sklearn
    import sklearn

    started = time.perf_counter()
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
    return run.info.run_id, info.model_uri, time.perf_counter() - started


def timed(fn: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - started


def ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    if response.status_code != status:
        raise SystemExit(f"{response.request.url}: {response.status_code} {response.text[:500]}")
    body: dict[str, Any] = response.json()
    return body


def bastion_cycle(
    http: httpx.Client, keys: dict[str, str], run_id: str, evidence: dict[str, Any]
) -> dict[str, float]:
    ana = {"Authorization": f"Bearer {keys['ana']}"}
    ada = {"Authorization": f"Bearer {keys['ada']}"}
    reg, t_register = timed(
        lambda: ok(
            http.post(f"/api/models/{MODEL}/versions", json={"run_id": run_id}, headers=ana), 201
        )
    )
    v = reg["version"]["version"]
    base = f"/api/models/{MODEL}/versions/{v}"
    for kind in ("fairness", "drift_baseline"):
        ok(
            http.post(
                f"{base}/evidence", json={"kind": kind, "report": evidence[kind]}, headers=ana
            ),
            201,
        )
    ok(http.put(f"{base}/card", json={"fields": {"intended_use": "Benchmarking."}}, headers=ana))
    out = {"register_s": t_register}
    for stage in ("staging", "production"):
        request, t_request = timed(
            lambda stage=stage: ok(
                http.post(f"{base}/promotions", json={"to": stage, "reason": "bench"}, headers=ana),
                201,
            )
        )
        _, t_approve = timed(
            lambda request=request: ok(
                http.post(f"/api/promotions/{request['id']}/approve", json={}, headers=ada)
            )
        )
        out[f"promote_{stage}_s"] = t_request + t_approve
    out["register_and_promote_s"] = (
        out["register_s"] + out["promote_staging_s"] + out["promote_production_s"]
    )
    return out


def mlflow_cycle(client: Any, model_uri: str) -> dict[str, float]:
    import mlflow

    with contextlib.redirect_stderr(io.StringIO()):  # "Created version ..." on every call
        version, t_register = timed(lambda: mlflow.register_model(model_uri, f"{MODEL}-mlflow"))
    _, t_alias = timed(
        lambda: client.set_registered_model_alias(f"{MODEL}-mlflow", "production", version.version)
    )
    return {
        "register_s": t_register,
        "promote_production_s": t_alias,
        "register_and_promote_s": t_register + t_alias,
    }


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"median": statistics.median(values), "p95": p95, "min": ordered[0]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=20)
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    console = Console()
    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    from bastion.registry import demo

    console.print("training the income model on UCI Adult (not timed)")
    trained = demo.train(demo.load_adult(), mitigate=True)
    evidence = {"fairness": demo.fairness(trained), "drift_baseline": demo.drift_baseline(trained)}

    with tempfile.TemporaryDirectory(prefix="bastion-bench-registry-") as tmp:
        home = Path(tmp) / "home"
        keys = prepare_home(home)
        port = free_port()
        console.print(f"starting bastion serve on 127.0.0.1:{port}")
        server = start_server(home, port)
        try:
            import mlflow
            from mlflow import MlflowClient

            logging.getLogger("mlflow").setLevel(logging.ERROR)  # MLflow resets it on import
            uri = f"sqlite:///{home / 'mlflow.db'}"
            mlflow.set_tracking_uri(uri)
            mlflow.set_registry_uri(uri)
            client = MlflowClient(uri)
            experiment = client.create_experiment(
                "bench", artifact_location=(home / "bench-artifacts").resolve().as_uri()
            )
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
                # Warm-up: the server loads MLflow and scikit-learn on its first registry call.
                run_id, uri_, _ = log_run(trained, experiment)
                bastion_cycle(http, keys, run_id, evidence)
                mlflow_cycle(client, uri_)
                rows: list[dict[str, Any]] = []
                for i in range(args.iterations):
                    run_id, _, t_log = log_run(trained, experiment)
                    b = bastion_cycle(http, keys, run_id, evidence)
                    _, model_uri2, t_log2 = log_run(trained, experiment)
                    m = mlflow_cycle(client, model_uri2)
                    rows.append({"log_model_s": (t_log + t_log2) / 2, "bastion": b, "mlflow": m})
                    console.print(
                        f"iteration {i + 1}: Bastion register+promote "
                        f"{b['register_and_promote_s'] * 1000:.0f} ms, MLflow register+alias "
                        f"{m['register_and_promote_s'] * 1000:.0f} ms"
                    )
                verify = ok(
                    http.post(
                        "/api/registry/verify", headers={"Authorization": f"Bearer {keys['ops']}"}
                    )
                )
        finally:
            server.terminate()
            server.wait(timeout=30)

    def col(side: str, key: str) -> dict[str, float]:
        return summary([r[side][key] for r in rows])

    bastion = {k: col("bastion", k) for k in rows[0]["bastion"]}
    mlflow_side = {k: col("mlflow", k) for k in rows[0]["mlflow"]}
    log_model = summary([r["log_model_s"] for r in rows])
    results = {
        "benchmark": "registry",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "iterations": args.iterations,
        "model": "UCI Adult income, logistic regression with per-sex thresholds",
        "mlflow_log_model_s": log_model,
        "bastion_api": bastion,
        "mlflow_direct": mlflow_side,
        "aim_register_and_promote_s": AIM_S,
        "meets_aim": bastion["register_and_promote_s"]["median"] < AIM_S,
        "verify_after": {"ok": verify["ok"], "versions_checked": verify["versions_checked"]},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")

    table = Table(title=f"Register and promote, {args.iterations} iterations (median / p95, ms)")
    table.add_column("step")
    table.add_column("Bastion API (warm server)", justify="right")
    table.add_column("MLflow directly", justify="right")

    def ms(s: dict[str, float] | None) -> str:
        return "–" if s is None else f"{s['median'] * 1000:.0f} / {s['p95'] * 1000:.0f}"

    table.add_row("log_model (both, before registering)", ms(log_model), ms(log_model))
    table.add_row("register", ms(bastion["register_s"]), ms(mlflow_side["register_s"]))
    table.add_row("promote to staging (request + approval)", ms(bastion["promote_staging_s"]), "–")
    table.add_row(
        "promote to production",
        ms(bastion["promote_production_s"]) + " (request + approval)",
        ms(mlflow_side["promote_production_s"]) + " (alias, no approval)",
    )
    table.add_row(
        "register + promote",
        ms(bastion["register_and_promote_s"]),
        ms(mlflow_side["register_and_promote_s"]),
    )
    console.print(table)
    verdict = "meets" if results["meets_aim"] else "misses"
    console.print(f"Bastion register + promote {verdict} the {AIM_S} s aim; wrote {RESULTS}")


if __name__ == "__main__":
    main()
