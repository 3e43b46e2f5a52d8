"""Command-line start-up: how long ``bastion …`` takes end to end, as a user waits for it.

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 \\
        uv run python bench/cli.py [--repeats 10]

Each command runs as a fresh process (``.venv/bin/bastion`` through ``subprocess``,
as ``hyperfine`` would), once to warm the file cache and then ``--repeats`` times;
the wall time of each run is recorded, and the median, 90th percentile and extremes
reported. The home is a fresh temporary one: a migrated SQLite database, the starter
policy, three demo keys. For ``models register``, distinct MLflow runs are logged
first by ``examples/registry/train.py --runs N`` (not timed), so every timed run is a
real registration (a new MLflow version, its digest, a ledger event), not the
idempotent look-up that registering one run twice would be; the look-up is measured
separately.

``models register`` is measured both ways a user can run it: in the command's own
process (it imports MLflow and opens its store: seconds), and through a running
``bastion serve`` (``--server URL --key KEY``: the command posts the run to
``POST /api/models/{name}/versions`` and loads no MLflow; the server has it open). The
server is started on a free loopback port in the same home before the timed runs; its
first registration opens MLflow there and is reported apart (``server first
registration``), as the cost paid once per server start. The two ways alternate run by
run, each on its own fresh MLflow run.

Two baselines run beside them: ``python -c pass`` (the interpreter alone) and
``python -c 'import mlflow'`` (the floor for any command that talks to MLflow). The
1-minute load average is recorded: on a shared machine it says how far to trust the
figures.

Aims (issue 15): ``bastion --help`` under 0.3 s, ``bastion models register`` under 2 s.
Writes ``bench/results/cli.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from _machine import ROOT, machine

BASTION = str(Path(sys.executable).parent / "bastion")
AIMS_S = {"--help": 0.3, "models register (server)": 2.0}
#: Before the lazy commands (issue 15's measurements on this kind of machine).
BEFORE_S = {"any command, start-up": "1.3-1.8", "models register": "5.2"}
#: ``models register`` in its own process has MLflow's import and store to load.


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BASTION_", "OPENAI_"))}
    return env | {"BASTION_HOME": str(home)}


def children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def process_cpu(pid: int) -> float:
    """CPU seconds a running process has used (``/proc/PID/stat``: utime + stime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds of one run, and the CPU seconds its process used."""
    cpu = children_cpu()
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr}")
    return seconds, children_cpu() - cpu


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(env: dict[str, str], log: Path) -> Iterator[tuple[str, int]]:
    """``bastion serve`` on a free loopback port, until the block ends."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [BASTION, "serve", "--port", str(port)], env=env, stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"bastion serve exited {proc.returncode}: {log.read_text()}")
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("bastion serve did not become ready in 120 s")
            time.sleep(0.2)
        yield url, proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def summary(runs: list[tuple[float, float]]) -> dict[str, Any]:
    ordered = sorted(wall for wall, _ in runs)
    p90 = statistics.quantiles(ordered, n=10, method="inclusive")[-1] if len(ordered) > 1 else 0
    return {
        "median_s": round(statistics.median(ordered), 4),
        "p90_s": round(p90 or ordered[-1], 4),
        "min_s": round(ordered[0], 4),
        "max_s": round(ordered[-1], 4),
        "runs": len(ordered),
        "cpu_median_s": round(statistics.median(cpu for _, cpu in runs), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    console = Console()
    home = Path(tempfile.mkdtemp(prefix="bastion-bench-cli-"))
    try:
        env = env_for(home)
        timed([BASTION, "db", "upgrade"], env)
        seeded = subprocess.run(
            [BASTION, "demo", "seed", "--no-models"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        found = re.search(r"demo key for ana \(analyst\): (bst_\S+)", seeded.stdout)
        if found is None:
            raise SystemExit(f"no analyst key in `demo seed`'s output:\n{seeded.stdout}")
        key = found.group(1)
        n = args.repeats + 1
        console.print(f"logging {2 * n + 1} MLflow runs to register (not timed)…")
        trained = subprocess.run(
            [
                sys.executable,
                str(ROOT / "examples" / "registry" / "train.py"),
                "--runs",
                str(2 * n + 1),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        runs = trained.stdout.split()
        local_runs, server_runs, first_run = runs[:n], runs[n : 2 * n], runs[2 * n]
        # Baselines on the same machine at the same time: the interpreter alone, and
        # MLflow's import alone (which `models register` cannot do without).
        baselines = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "python -c 'import mlflow'": [sys.executable, "-c", "import mlflow"],
        }
        commands: dict[str, list[list[str]]] = {
            "--help": [["--help"]] * n,
            "--version": [["--version"]] * n,
            "models --help": [["models", "--help"]] * n,
            "status": [["status", "--format", "json"]] * n,
            "keys list": [["keys", "list"]] * n,
            "models list": [["models", "list"]] * n,
        }
        register = ["models", "register", "cancer", "--run"]
        results: dict[str, Any] = {}
        for name, argv in baselines.items():
            samples = [timed(argv, env) for _ in range(n)]
            results[name] = summary(samples[1:]) | {"argv": argv[1:], "baseline": True}
            console.print(f"{name}: median {results[name]['median_s']:.3f} s")
        for name, argvs in commands.items():
            samples = [timed([BASTION, *argv], env) for argv in argvs]
            results[name] = summary(samples[1:])  # the first warms the file cache
            results[name]["argv"] = argvs[0]
            console.print(f"{name}: median {results[name]['median_s']:.3f} s")
        with serving(env, home / "serve.log") as (url, server_pid):
            remote = ["--server", url, "--key", key]
            served = process_cpu(server_pid)
            first, _ = timed([BASTION, *register, first_run, *remote], env)
            results["server first registration"] = {
                "seconds": round(first, 4),
                "server_cpu_s": round(process_cpu(server_pid) - served, 4),
                "note": "the server opens MLflow on its first registration, once per start",
            }
            console.print(f"server first registration: {first:.3f} s")
            ways: dict[str, list[tuple[list[str], tuple[float, float], float]]] = {
                "models register (local)": [],
                "models register (server)": [],
                "models register again (local)": [],
                "models register again (server)": [],
            }
            for local_run, server_run in zip(local_runs, server_runs, strict=True):
                # A and B alternate, each on a fresh run; then each registers one again.
                for way, argv in (
                    ("models register (local)", [*register, local_run, "--by", "bench"]),
                    ("models register (server)", [*register, server_run, *remote]),
                    ("models register again (local)", [*register, local_runs[0], "--by", "bench"]),
                    ("models register again (server)", [*register, server_runs[0], *remote]),
                ):
                    served = process_cpu(server_pid)
                    ran = timed([BASTION, *argv], env)
                    ways[way].append((argv, ran, process_cpu(server_pid) - served))
            for way, done in ways.items():
                results[way] = summary([r for _, r, _ in done[1:]])
                if "server" in way:  # the work the command handed to the server
                    results[way]["server_cpu_median_s"] = round(
                        statistics.median(c for _, _, c in done[1:]), 4
                    )
                results[way]["argv"] = [a if a != key else "<analyst key>" for a in done[0][0]]
                console.print(f"{way}: median {results[way]['median_s']:.3f} s")
    finally:
        shutil.rmtree(home, ignore_errors=True)

    out = {
        "benchmark": "cli",
        "machine": machine(sources=("src", "bench/cli.py")),
        "load_average": os.getloadavg(),
        "method": "fresh process per run via subprocess; first run discarded (cache warm-up); "
        "cpu_median_s is the command's own CPU time (user + system), server_cpu_median_s "
        "the server's during the command",
        "aims_s": AIMS_S,
        "before_s": BEFORE_S,
        "commands": results,
    }
    path = ROOT / "bench" / "results" / "cli.json"
    path.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")

    table = Table(
        "command",
        "median s",
        "p90 s",
        "min s",
        "max s",
        "CPU s",
        "server CPU s",
        "aim s",
        title="bastion start-up",
    )
    for name, r in results.items():
        if "median_s" not in r:
            continue
        aim = AIMS_S.get(name)
        met = "" if aim is None else ("[green]" if r["median_s"] <= aim else "[red]") + f"{aim}"
        table.add_row(
            name,
            f"{r['median_s']:.3f}",
            f"{r['p90_s']:.3f}",
            f"{r['min_s']:.3f}",
            f"{r['max_s']:.3f}",
            f"{r['cpu_median_s']:.3f}",
            f"{r['server_cpu_median_s']:.3f}" if "server_cpu_median_s" in r else "",
            met,
        )
    console.print(table)
    console.print(f"load average during the run: {out['load_average']}; wrote {path}")


if __name__ == "__main__":
    main()
