"""Serving: ``POST /predict`` on ``bastion serve`` vs MLflow's own scoring server.

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 \\
        uv run python bench/serving.py [--rounds 3] [--seconds 10] [--concurrency 8]
                                       [--no-sequential] [--quick]

(``--quick``: one round of 3 s, for iterating; not for the committed figures.)

The model is the worked example's income classifier (UCI Adult, logistic regression in a
scikit-learn pipeline), saved once as an MLflow model folder with its signature. Bastion
serves it from its registry, in production, with the prediction log on (every row
written through the batched writer into SQLite, with its features, score and route) and
its traffic plan consulted (none configured: production); the pipeline's preprocessing
runs compiled from its fitted transformers (:mod:`bastion.serving.compiled`, checked bit
for bit against scikit-learn when the model loads; the result says whether it was used),
its LogisticRegression as itself. MLflow serves the same folder
with ``mlflow models serve --env-manager local -w 1`` (one uvicorn worker, as Bastion's
one process). Both answer the same rows, one row per request, from the Adult test split;
the bench checks that both give the same predictions before timing.

Closed loop: ``--concurrency`` clients (one aiohttp session, keep-alive) each send a
request as soon as the previous one is answered, for ``--seconds``. Throughput is
answered requests per second; latency is per request from the client's side. Each round
times MLflow and Bastion one after the other, alternating which goes first; the table
gives medians over the rounds, with CPU time of each server's process tree (user +
system, from /proc) per request. Then the same with one client (``--sequential``, on by
default): no two requests overlap, so Bastion's adaptive batching has nothing to batch.
The client runs on the same two cores as the servers; the 1-minute load average is
recorded before each timed run (the machine is shared: compare CPU per request too).
Writes ``bench/results/serving.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from _machine import machine  # noqa: E402

THREADS = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
TICK = os.sysconf("SC_CLK_TCK")
NAME = "income"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _own_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def cpu_ticks(pid: int) -> int:
    total = _own_ticks(pid)
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    for child in children:
        total += cpu_ticks(int(child))
    return total


def records(frame: Any) -> list[dict[str, Any]]:
    out = []
    for row in frame.to_dict(orient="records"):
        out.append(
            {
                k: (None if v != v else (v.item() if hasattr(v, "item") else v))
                for k, v in row.items()
            }
        )
    return out


def prepare(home: Path) -> tuple[Path, str, Any]:
    """Train, save, register and promote the model; an analyst key for the requests."""
    from bastion.auth.principal import SYSTEM
    from bastion.db import create_database, upgrade
    from bastion.registry import demo
    from bastion.registry.mlflow_store import save_sklearn_model
    from bastion.runtime import open_runtime
    from bastion.settings import Settings

    settings = Settings(home=home)
    home.mkdir(parents=True, exist_ok=True)
    db = create_database(settings.resolved_database_url)
    upgrade(db.engine)
    db.dispose()
    trained = demo.train(demo.load_adult(), seed=0)
    folder = home / "model-folder"
    save_sklearn_model(trained.model, folder, inputs=trained.test)
    runtime = open_runtime(settings, write_policy=True)
    try:
        import yaml

        # No release gates: this bench is about serving, not about the release process.
        policy = yaml.safe_load(settings.policy_path.read_text())
        policy["registry"] = {}
        settings.policy_path.write_text(yaml.safe_dump(policy))
        runtime.policy.reload()
        registry = runtime.registry()
        run = registry.store.log_model_folder(folder, params={}, metrics=trained.metrics, tags={})
        version = registry.register(demo.ANALYST, NAME, run_id=run.run_id).version.version
        for stage in ("staging", "production"):
            request = registry.request_promotion(demo.ANALYST, NAME, version, stage, "bench")
            registry.approve(demo.APPROVER, request.id, notes="bench")
        key = str(runtime.keys.create(SYSTEM, user="bench", role="analyst").secret)
    finally:
        runtime.close()
    return folder, key, trained.test


class Server:
    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.log = log

    def stop(self) -> None:
        with _suppress():
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return True


def wait_ready(url: str, server: Server, timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise SystemExit(f"{server.name} exited: {server.log.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise SystemExit(f"{server.name} did not start: {server.log.read_text()[-2000:]}")


async def closed_loop(
    url: str, bodies: list[bytes], headers: dict[str, str], concurrency: int, seconds: float
) -> tuple[list[float], int]:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client(start: int) -> None:
            nonlocal errors
            i = start
            while time.perf_counter() < stop_at:
                body = bodies[i % len(bodies)]
                i += concurrency
                t0 = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as r:
                    await r.read()
                    if r.status != 200:
                        errors += 1
                        continue
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(client(i) for i in range(concurrency)))
    return latencies, errors


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(
    server: Server,
    url: str,
    bodies: list[bytes],
    headers: dict[str, str],
    concurrency: int,
    seconds: float,
) -> dict[str, Any]:
    # warm-up: a short burst not timed
    asyncio.run(closed_loop(url, bodies, headers, concurrency, 1.0))
    load = os.getloadavg()[0]
    before = cpu_ticks(server.proc.pid)
    started = time.perf_counter()
    latencies, errors = asyncio.run(closed_loop(url, bodies, headers, concurrency, seconds))
    wall = time.perf_counter() - started
    cpu_s = (cpu_ticks(server.proc.pid) - before) / TICK
    return {
        "requests": len(latencies),
        "errors": errors,
        "throughput_rps": len(latencies) / wall,
        "p50_ms": pct(latencies, 0.50) * 1000,
        "p99_ms": pct(latencies, 0.99) * 1000,
        "server_cpu_ms_per_request": cpu_s * 1000 / max(1, len(latencies)),
        "loadavg_1m_before": load,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rows", type=int, default=1000, help="distinct rows sent")
    parser.add_argument(
        "--sequential",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time one client at a time (nothing to batch)",
    )
    parser.add_argument("--quick", action="store_true", help="one round of 3 s (iterating)")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds = 1, 3.0
    os.environ.update(THREADS)
    load_before = os.getloadavg()

    import httpx

    from bastion.settings import quiet_mlflow

    quiet_mlflow()
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        home = Path(tmp) / "home"
        folder, key, test = prepare(home)
        rows = records(test.head(args.rows))
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
        base_env |= THREADS
        b_port, m_port = free_port(), free_port()
        bastion = Server(
            "bastion",
            [sys.executable, "-m", "bastion.cli.main", "serve", "--port", str(b_port)],
            base_env | {"BASTION_HOME": str(home), "BASTION_LOG_LEVEL": "WARNING"},
            Path(tmp) / "bastion.log",
        )
        mlflow_bin = str(Path(sys.executable).with_name("mlflow"))
        mlflow = Server(
            "mlflow",
            [
                mlflow_bin,
                "models",
                "serve",
                "-m",
                str(folder),
                "--env-manager",
                "local",
                "-p",
                str(m_port),
                "-w",
                "1",
            ],
            base_env,
            Path(tmp) / "mlflow.log",
        )
        try:
            wait_ready(f"http://127.0.0.1:{b_port}/readyz", bastion)
            wait_ready(f"http://127.0.0.1:{m_port}/ping", mlflow)
            b_url = f"http://127.0.0.1:{b_port}/predict/{NAME}"
            m_url = f"http://127.0.0.1:{m_port}/invocations"
            b_headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
            m_headers = {"Content-Type": "application/json"}
            # the same answers, checked on every row before timing
            b_pred = httpx.post(b_url, json={"inputs": rows}, headers=b_headers, timeout=60)
            m_pred = httpx.post(m_url, json={"dataframe_records": rows}, timeout=60)
            b_pred.raise_for_status()
            m_pred.raise_for_status()
            # MLflow's pyfunc.predict on the DataFrame is the reference answer.
            from mlflow.pyfunc import load_model

            frame = test.head(args.rows)
            reference = load_model(str(folder)).predict(frame).tolist()
            b_list, m_list = b_pred.json()["predictions"], m_pred.json()["predictions"]
            agreement = {
                "rows": len(reference),
                "bastion_differs_from_pyfunc": sum(
                    b != r for b, r in zip(b_list, reference, strict=True)
                ),
                "mlflow_server_differs_from_pyfunc": sum(
                    m != r for m, r in zip(m_list, reference, strict=True)
                ),
                "mlflow_server_differs_on_rows_with_missing_values": sum(
                    bool(m != r and frame.iloc[i].isna().any())
                    for i, (m, r) in enumerate(zip(m_list, reference, strict=True))
                ),
            }
            from bastion.serving.cache import load_served

            compiled = load_served(NAME, 1, folder).compiled
            agreement["bastion_compiled_pipeline"] = compiled is not None
            agreement["bastion_compiled_logistic"] = bool(compiled and compiled.logistic)
            print(f"agreement: {agreement}", file=sys.stderr)
            if agreement["bastion_differs_from_pyfunc"]:
                raise SystemExit("Bastion's predictions differ from MLflow's pyfunc.predict")
            b_bodies = [json.dumps({"inputs": r}).encode() for r in rows]
            m_bodies = [json.dumps({"dataframe_records": [r]}).encode() for r in rows]

            def rounds(concurrency: int) -> dict[str, list[dict[str, Any]]]:
                runs: dict[str, list[dict[str, Any]]] = {"bastion": [], "mlflow": []}
                for i in range(args.rounds):
                    order = ["mlflow", "bastion"] if i % 2 == 0 else ["bastion", "mlflow"]
                    for name in order:
                        if name == "bastion":
                            result = measure(
                                bastion, b_url, b_bodies, b_headers, concurrency, args.seconds
                            )
                        else:
                            result = measure(
                                mlflow, m_url, m_bodies, m_headers, concurrency, args.seconds
                            )
                        runs[name].append(result)
                        print(f"c={concurrency} round {i + 1} {name}: {result}", file=sys.stderr)
                return runs

            runs = rounds(args.concurrency)
            sequential = rounds(1) if args.sequential else None
            logged = _logged_rows(home)
        finally:
            bastion.stop()
            mlflow.stop()

    keys = ("throughput_rps", "p50_ms", "p99_ms", "server_cpu_ms_per_request")

    def summarise(runs: dict[str, list[dict[str, Any]]]) -> tuple[dict[str, Any], dict[str, float]]:
        summary = {
            name: {k: statistics.median(r[k] for r in runs[name]) for k in keys} for name in runs
        }
        b, m = summary["bastion"], summary["mlflow"]
        ratios = {
            "throughput": b["throughput_rps"] / m["throughput_rps"],
            "p50": b["p50_ms"] / m["p50_ms"],
            "p99": b["p99_ms"] / m["p99_ms"],
            "cpu_per_request": b["server_cpu_ms_per_request"] / m["server_cpu_ms_per_request"],
        }
        return summary, ratios

    summary, ratios = summarise(runs)
    result = {
        "benchmark": "serving",
        "machine": machine(sources=("src/bastion/serving", "src/bastion/api/routes/serving.py")),
        "settings": vars(args) | {"threads": THREADS, "request_rows": 1},
        "agreement": agreement,
        "bastion_rows_logged": logged,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "summary": summary,
        "ratios_bastion_over_mlflow": ratios,
        "aims": {
            "throughput_at_least_3x": ratios["throughput"] >= 3.0,
            "lower_p99": ratios["p99"] < 1.0,
        },
        "runs": runs,
    }
    tables = [(f"{args.concurrency} concurrent clients", summary, ratios)]
    if sequential is not None:
        seq_summary, seq_ratios = summarise(sequential)
        result["sequential"] = {
            "note": "one client: no two requests overlap, so nothing is batched",
            "summary": seq_summary,
            "ratios_bastion_over_mlflow": seq_ratios,
            "runs": sequential,
        }
        tables.append(("1 client (no batching possible)", seq_summary, seq_ratios))
    out = ROOT / "bench" / "results" / "serving.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    for title, table, ratio in tables:
        print(title)
        print(f"{'':<10}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'CPU ms/req':>12}")
        for name in ("mlflow", "bastion"):
            row = table[name]
            print(
                f"{name:<10}{row['throughput_rps']:>10.0f}{row['p50_ms']:>10.2f}"
                f"{row['p99_ms']:>10.2f}{row['server_cpu_ms_per_request']:>12.2f}"
            )
        print(
            f"{'ratio':<10}{ratio['throughput']:>9.2f}x{ratio['p50']:>9.2f}x{ratio['p99']:>9.2f}x"
            f"{ratio['cpu_per_request']:>11.2f}x   (Bastion / MLflow; prediction log on)"
        )
    print(f"{logged} prediction log rows written by Bastion during the run")
    print(
        "1-min load average before/after: "
        f"{result['loadavg_before'][0]:.1f} / {result['loadavg_after'][0]:.1f} (2 shared cores)"
    )


def _logged_rows(home: Path) -> int:
    import sqlite3

    time.sleep(1.0)  # the writer's last group
    with sqlite3.connect(home / "bastion.db") as conn:
        return int(conn.execute("SELECT count(*) FROM predictions").fetchone()[0])


if __name__ == "__main__":
    main()
