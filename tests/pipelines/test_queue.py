"""Several workers share one queue on PostgreSQL: each queued run is run once, by one
worker, whose executor id the run, its steps and the ledger record; a worker killed
mid-step (SIGKILL) has its run finished by another, no finished step running twice.
On SQLite the queue commands say that a shared queue needs PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bastion.auth.principal import cli_principal
from bastion.pipelines.spec import parse_pipeline

BASTION = str(Path(sys.executable).parent / "bastion")
ON_POSTGRES = pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)


def environment(settings: Any) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")} | {
        "BASTION_HOME": str(settings.home),
        "BASTION_DATABASE_URL": settings.resolved_database_url,
        "BASTION_PIPELINES_SCHEMA": settings.pipelines_schema,
        "BASTION_PIPELINES_WORKER_TIMEOUT_S": "2",
    }


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BASTION, *args], env=env, capture_output=True, text=True, timeout=180, check=False
    )


def wait_for(what: str, check: Callable[[], bool], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.2)


class Workers:
    """Worker processes started by a test, each in a session of its own."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, concurrency: int = 1) -> None:
        with (self.logs / f"{name}.err").open("ab") as err:
            self.procs[name] = subprocess.Popen(
                [BASTION, "pipelines", "worker", "--id", name, "--concurrency", str(concurrency)],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )
        wait_for(f"worker {name}", lambda: "taking runs" in self.stderr(name))

    def stderr(self, name: str) -> str:
        proc = self.procs[name]
        text = (self.logs / f"{name}.err").read_text()
        assert proc.poll() is None, f"worker {name} exited: {text}"
        return text

    def kill(self, name: str) -> None:
        os.killpg(self.procs[name].pid, signal.SIGKILL)
        self.procs.pop(name).wait()

    def stop_all(self) -> None:
        for name, proc in self.procs.items():
            proc.send_signal(signal.SIGTERM)
            try:
                assert proc.wait(timeout=60) == 0, (self.logs / f"{name}.err").read_text()
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
        self.procs.clear()


@pytest.fixture
def workers(pipeline_settings: Any, tmp_path: Path) -> Iterator[Workers]:
    started = Workers(environment(pipeline_settings), tmp_path)
    try:
        yield started
    finally:
        for proc in started.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture
def queue_runtime(pipeline_settings: Any) -> Iterator[Any]:
    from bastion.runtime import open_runtime

    rt = open_runtime(pipeline_settings)
    yield rt
    rt.close()


def show(env: dict[str, str], run_id: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(
        cli(env, "pipelines", "show", run_id, "--format", "json").stdout
    )
    return result


def run_state(runtime: Any, run_id: str) -> str:
    from bastion.pipelines.repository import run_detail

    return str(run_detail(runtime.db, run_id)["state"])


def ledger(runtime: Any) -> list[Any]:
    from bastion.audit.repository import EventFilter

    return list(runtime.audit.export(EventFilter()))


@ON_POSTGRES
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_two_workers_share_the_queue_and_run_each_run_once(
    pipeline_settings: Any, queue_runtime: Any, workers: Workers, tmp_path: Path
) -> None:
    from bastion.pipelines.engine import enqueue_run

    env = environment(pipeline_settings)
    log = tmp_path / "log"
    pipeline = tmp_path / "queued.yaml"
    pipeline.write_text(
        f"""
version: 1
name: queued
params: {{n: 0}}
steps:
  first: {{run: ["sh", "-c", "echo first-${{n}} >> {log}; sleep 1"]}}
  second: {{run: ["sh", "-c", "echo second-${{n}} >> {log}"], needs: [first]}}
"""
    )
    workers.start("w1")
    workers.start("w2")

    queued = cli(env, "pipelines", "run", str(pipeline), "--queue", "--param", "n=0",
                 "--format", "json")  # fmt: skip
    assert queued.returncode == 0, queued.stderr
    ids = [json.loads(queued.stdout)["id"]]
    assert json.loads(queued.stdout)["state"] == "queued"
    loaded = parse_pipeline(pipeline.read_text(), str(pipeline))
    ana = cli_principal("ana")
    ids += [enqueue_run(queue_runtime, loaded, ana, {"n": n}) for n in range(1, 8)]

    wait_for(
        "the queued runs",
        lambda: all(run_state(queue_runtime, r) == "succeeded" for r in ids),
        seconds=300,
    )
    # each run ran once, each of its steps once
    assert Counter(log.read_text().split()) == Counter(
        [f"first-{n}" for n in range(8)] + [f"second-{n}" for n in range(8)]
    )
    details = [show(env, r) for r in ids]
    by_executor = Counter(d["executor"] for d in details)
    assert set(by_executor) == {"w1", "w2"}, by_executor  # both took runs
    for d in details:
        assert {s["executor"] for s in d["steps"]} == {d["executor"]}
        assert [s["attempts"] for s in d["steps"]] == [1, 1]

    events = ledger(queue_runtime)
    claims = {
        e.resource.removeprefix("pipeline-run:"): e.details["executor"]
        for e in events
        if e.action == "pipeline.run.claim"
    }
    assert claims == {d["id"]: d["executor"] for d in details}
    step_executors = {
        (e.resource.removeprefix("pipeline-run:"), e.details["step"]): e.details["executor"]
        for e in events
        if e.action == "pipeline.step.finish"
    }
    assert len(step_executors) == 16
    assert all(step_executors[(d["id"], "first")] == d["executor"] for d in details)
    assert sum(e.action == "pipeline.run.enqueue" for e in events) == 8

    listed = json.loads(cli(env, "pipelines", "workers", "--format", "json").stdout)
    assert {(w["executor"], w["state"]) for w in listed} == {("w1", "up"), ("w2", "up")}
    workers.stop_all()
    listed = json.loads(cli(env, "pipelines", "workers", "--format", "json").stdout)
    assert {w["state"] for w in listed} == {"stopped"}


@ON_POSTGRES
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_killed_workers_run_is_finished_by_another(
    pipeline_settings: Any, queue_runtime: Any, workers: Workers, tmp_path: Path
) -> None:
    from bastion.pipelines.engine import enqueue_run

    log, started = tmp_path / "log", tmp_path / "b-started"
    loaded = parse_pipeline(
        f"""
version: 1
name: killed
steps:
  a: {{run: ["sh", "-c", "echo a >> {log}"]}}
  b:
    # the first try waits long (its worker is killed); the recovered one goes on
    run: ["sh", "-c", "echo b >> {started}; [ $(wc -l < {started}) -gt 1 ] || sleep 300; echo b >> {log}"]
    needs: [a]
  c: {{run: ["sh", "-c", "echo c >> {log}"], needs: [b]}}
""",
        "killed.yaml",
    )
    workers.start("w1")
    workers.start("w2")
    run_id = enqueue_run(queue_runtime, loaded, cli_principal("ana"), {})
    wait_for("step b", started.exists)
    first = show(environment(pipeline_settings), run_id)
    assert first["state"] == "running"
    victim = first["executor"]
    survivor = ({"w1", "w2"} - {victim}).pop()
    workers.kill(victim)  # the worker dies mid-step, its step's command with it

    wait_for("the run", lambda: run_state(queue_runtime, run_id) == "succeeded", seconds=300)
    detail = show(environment(pipeline_settings), run_id)
    steps = {s["step"]: s for s in detail["steps"]}
    assert detail["executor"] == survivor
    assert steps["a"]["executor"] == victim and steps["a"]["attempts"] == 1
    assert steps["b"]["executor"] == survivor and steps["c"]["executor"] == survivor
    assert log.read_text().split() == ["a", "b", "c"]  # a did not run again
    assert started.read_text().split() == ["b", "b"]  # b's first try died with w1

    events = ledger(queue_runtime)
    recover = [e for e in events if e.action == "pipeline.worker.recover"]
    assert [(e.details["dead"], e.details["executor"]) for e in recover] == [(victim, survivor)]
    assert run_id in recover[0].details["workflows"]
    claims = [e.details for e in events if e.action == "pipeline.run.claim"]
    assert [(c["previous"], c["executor"]) for c in claims] == [(None, victim), (victim, survivor)]
    listed = json.loads(
        cli(environment(pipeline_settings), "pipelines", "workers", "--format", "json").stdout
    )
    assert {w["executor"]: (w["state"], w["recovered_by"]) for w in listed} == {
        victim: ("dead", survivor),
        survivor: ("up", None),
    }


@ON_POSTGRES
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_worker_restarted_with_its_id_takes_its_run_back(
    pipeline_settings: Any, queue_runtime: Any, workers: Workers, tmp_path: Path
) -> None:
    from bastion.pipelines.engine import enqueue_run

    log, started = tmp_path / "log", tmp_path / "started"
    loaded = parse_pipeline(
        f"""
version: 1
name: restarted
steps:
  a: {{run: ["sh", "-c", "echo a >> {log}"]}}
  b:
    run: ["sh", "-c", "echo b >> {started}; [ $(wc -l < {started}) -gt 1 ] || sleep 300; echo b >> {log}"]
    needs: [a]
""",
        "restarted.yaml",
    )
    workers.start("w1")
    run_id = enqueue_run(queue_runtime, loaded, cli_principal("ana"), {})
    wait_for("step b", started.exists)
    workers.kill("w1")
    assert run_state(queue_runtime, run_id) == "crashed"  # its worker is gone
    workers.start("w1")
    wait_for("the run", lambda: run_state(queue_runtime, run_id) == "succeeded", seconds=300)
    assert log.read_text().split() == ["a", "b"]
    assert started.read_text().split() == ["b", "b"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_on_sqlite_the_queue_commands_say_it_needs_postgresql(
    pipeline_settings: Any, tmp_path: Path
) -> None:
    env = environment(pipeline_settings)
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text('version: 1\nname: p\nsteps:\n  a: {run: "true"}\n')
    for args in (("run", str(pipeline), "--queue"), ("worker",)):
        result = cli(env, "pipelines", *args)
        assert result.returncode == 1
        assert "[queue_needs_postgresql]" in result.stderr
        assert "needs PostgreSQL" in " ".join(result.stderr.split())
    listed = json.loads(cli(env, "pipelines", "list", "--format", "json").stdout)
    assert listed == []  # nothing was recorded as queued
