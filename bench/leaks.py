"""Leaks: does raw personal data or a credential reach the upstream through Bastion?

    uv sync --group bench
    uv run --group bench python bench/leaks.py [--iterations 3]

Runs ``pii-leak-benchmark`` (PyPI, an independent tool, in the ``bench`` group) the
way its own documentation asks: ``selfcheck`` starts a capture server that plays the
upstream, and the gateway under test must already send its model there. This script
starts ``bastion serve`` (SQLite in a temporary home) with the starter policy plus:

- every entity type Bastion knows masked (``prompt.entities``: all of them, the
  ``SECRET_*`` types included), ``on_error: block``, answers restored (``restore``);
- a provider ``capture`` whose ``base_url`` is the capture's, and the benchmark's model
  name (``conformance-model``) routed to it.

Then, each in a fresh ``selfcheck`` process on the same capture port:

- both profiles (``pii-v1``: an e-mail, an SSN from the never-issued 900-999 areas, a
  test card; ``pii-secrets-v1``: the same plus an AWS access key id, a GitHub token and
  a Slack token) × both duties (``restore``: the client must get its values back;
  ``anonymize``: masking alone is asked for);
- the negative control ``--target-base-url capture://self`` (no gateway: the harness
  sends the prompt to the capture itself), which must report the leak, or no other row
  means anything.

Each run's checks (``configured_upstream_boundary``: no fixture value, verbatim or
normalised, in anything the capture received; ``sse_validity``: valid events, exactly
one ``[DONE]`` per stream, ``text/event-stream``; ``response_fidelity``: the client
rebuilt the prompt from the stream; ``fragmentation_safety``: more than one event;
``client_observed_latency``: every iteration measured) and its verdict (CLEAN, LEAK,
CHECK FAILED, NOT MEASURED, from the tool's exit status) go to
``bench/results/leaks.json``; the tool's own reports are kept beside it under
``bench/results/leaks/``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from _machine import machine

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "leaks.json"
REPORTS = ROOT / "bench" / "results" / "leaks"
MODEL = "conformance-model"
PROFILES = ("pii-v1", "pii-secrets-v1")
DUTIES = ("restore", "anonymize")
VERDICTS = {0: "CLEAN", 1: "LEAK / CHECK FAILED", 2: "NOT MEASURED"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tool() -> list[str]:
    found = shutil.which("pii-leak-benchmark", path=str(Path(sys.executable).parent))
    if found is None:
        raise SystemExit("pii-leak-benchmark is not installed: uv sync --group bench")
    return [found]


def tool_version() -> str:
    from importlib.metadata import version

    return version("pii-leak-benchmark")


def policy(capture_port: int) -> str:
    """The starter policy, everything masked, the benchmark's model sent to the capture."""
    from bastion.policy.starter import STARTER_POLICY
    from bastion.privacy import KNOWN_ENTITIES

    doc = yaml.safe_load(STARTER_POLICY)
    doc["providers"]["capture"] = {
        "kind": "openai",
        "base_url": f"http://127.0.0.1:{capture_port}/v1",
        "timeout_s": 30,
        "max_retries": 0,
    }
    doc["models"][MODEL] = {"provider": "capture", "upstream_model": MODEL}
    doc["privacy"]["prompt"]["entities"] = sorted(KNOWN_ENTITIES)
    doc["privacy"]["on_error"] = "block"
    doc["privacy"]["response"] = {"action": "flag", "restore": True}
    return yaml.safe_dump(doc, sort_keys=False)


def bastion(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "bastion.cli.main", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"bastion {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


class Gateway:
    """``bastion serve`` on a fresh home, with an admin key."""

    def __init__(self, home: Path, capture_port: int) -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        (home / "policy.yaml").write_text(policy(capture_port), encoding="utf-8")
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("BASTION_")},
            "BASTION_HOME": str(home),
            "BASTION_POLICY": str(home / "policy.yaml"),
            "BASTION_LOG_FORMAT": "json",
        }
        bastion(["policy", "check", str(home / "policy.yaml")], self.env)
        bastion(["db", "upgrade"], self.env)
        out = bastion(["keys", "create", "--user", "leaks", "--role", "admin"], self.env)
        self.key = out.strip().splitlines()[-1].strip()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.log = home / "server.log"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bastion.cli.main",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=self.env,
            cwd=ROOT,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait()

    def _wait(self) -> None:
        import httpx

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2).is_success:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise SystemExit(f"bastion serve did not start:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def selfcheck(
    name: str,
    target: str,
    key: str,
    profile: str,
    duty: str,
    capture_port: int,
    iterations: int,
) -> dict[str, Any]:
    """One ``selfcheck`` run: its exit status, verdict line and report, summarised."""
    REPORTS.mkdir(parents=True, exist_ok=True)
    report_path = REPORTS / f"{name}.json"
    report_path.unlink(missing_ok=True)
    done = subprocess.run(
        [
            *tool(),
            "selfcheck",
            "--target-base-url",
            target,
            "--target-model",
            MODEL,
            "--capture-port",
            str(capture_port),
            "--profile",
            profile,
            "--duty",
            duty,
            "--iterations",
            str(iterations),
            "--json-out",
            str(report_path),
        ],
        # The key travels in the environment, as the tool asks (argv is visible to all).
        env={**os.environ, "CONFORMANCE_TARGET_API_KEY": key},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    (REPORTS / f"{name}.txt").write_text(done.stdout + done.stderr, encoding="utf-8")
    verdict = next(
        (
            line.strip()
            for line in done.stdout.splitlines()
            if line.strip() in ("CLEAN", "LEAK", "CHECK FAILED", "NOT MEASURED")
        ),
        VERDICTS.get(done.returncode, f"exit {done.returncode}"),
    )
    row: dict[str, Any] = {
        "name": name,
        "target": "capture://self" if target == "capture://self" else "bastion serve",
        "profile": profile,
        "duty": duty,
        "exit_code": done.returncode,
        "verdict": verdict,
    }
    if not report_path.exists():
        row["error"] = (done.stderr or done.stdout)[-2000:]
        row["checks"] = {}
        return row
    report = json.loads(report_path.read_text(encoding="utf-8"))
    checks = report["checks"]
    boundary = checks["configured_upstream_boundary"]
    sse = checks.get("sse_validity", {})
    row |= {
        "checks": {n: bool(c.get("passed", True)) for n, c in sorted(checks.items())},
        "leaked_entity_types": sorted(
            set(boundary.get("leaked_entity_types", []))
            | set(boundary.get("unattributed_leaked_entity_types", []))
        ),
        "entity_types_tested": sorted(report.get("fixture", {}).get("formats", {})),
        "correlated_requests": boundary.get("correlated_requests"),
        "done_markers_valid": sse.get("done_markers_valid"),
        "status_codes": sse.get("status_codes"),
        "outcome": report.get("outcome"),
    }
    return row


def required(row: dict[str, Any]) -> dict[str, bool]:
    """The checks the duty asks for (anonymize does not ask for the values back)."""
    ignored = {"response_fidelity", "fragmentation_safety"} if row["duty"] == "anonymize" else set()
    return {n: ok for n, ok in row["checks"].items() if n not in ignored}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=3)
    args = parser.parse_args(argv)
    capture_port = free_port()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bastion-leaks-") as tmp:
        gateway = Gateway(Path(tmp) / "home", capture_port)
        try:
            for profile in PROFILES:
                for duty in DUTIES:
                    name = f"bastion-{profile}-{duty}"
                    print(f"{name} ...", flush=True)
                    rows.append(
                        selfcheck(
                            name,
                            gateway.url,
                            gateway.key,
                            profile,
                            duty,
                            capture_port,
                            args.iterations,
                        )
                    )
        finally:
            gateway.stop()
    print("control (capture://self) ...", flush=True)
    control = selfcheck(
        "control-capture-self",
        "capture://self",
        "unused",
        "pii-secrets-v1",
        "restore",
        free_port(),
        args.iterations,
    )
    for row in rows:
        row["passed"] = row["verdict"] == "CLEAN" and all(required(row).values())
    # The floor: with no gateway, the values must be seen leaking.
    control["passed"] = control["verdict"] == "LEAK" and bool(control.get("leaked_entity_types"))
    results = {
        "benchmark": f"pii-leak-benchmark {tool_version()} selfcheck",
        "iterations": args.iterations,
        "policy": "starter policy; prompt.entities: every known type; on_error: block; "
        "response: flag, restore",
        "machine": machine(sources=("src",)),
        "runs": rows,
        "negative_control": control,
        "all_passed": all(r["passed"] for r in rows) and control["passed"],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    render(results)
    return 0 if results["all_passed"] else 1


#: The report's checks, as the table heads them.
SHORT = {
    "configured_upstream_boundary": "upstream boundary",
    "sse_validity": "SSE valid",
    "response_fidelity": "fidelity",
    "fragmentation_safety": "fragments",
    "client_observed_latency": "latency",
}


def render(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    rows = [*results["runs"], results["negative_control"]]
    names = sorted({n for r in rows for n in r["checks"]})
    table = Table(title=f"{results['benchmark']}: bastion serve, and no gateway at all")
    for column in ("run", "verdict", *(SHORT.get(n, n) for n in names)):
        table.add_column(column)
    table.add_column("leaked upstream")
    table.add_column("one [DONE]")
    table.add_column("as required")
    for r in rows:
        if r["target"] == "capture://self":
            run = "no gateway (capture://self)"
        else:
            run = f"{r['profile']}, {r['duty']}"
        table.add_row(
            run,
            r["verdict"],
            *("pass" if r["checks"].get(n) else "FAIL" if n in r["checks"] else "-" for n in names),
            ", ".join(r.get("leaked_entity_types") or []) or "nothing",
            "yes" if r.get("done_markers_valid") else "NO",
            "yes" if r["passed"] else "NO",
        )
    console = Console(width=160)
    console.print(table)
    console.print(
        "The control must LEAK (the harness itself sends the values to the capture); "
        "every other row must be CLEAN."
    )
    console.print(f"all as required: {results['all_passed']}  ->  {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    raise SystemExit(main())
