"""A run whose process is killed (SIGKILL) mid-step resumes from that step when started
again, and no step that had finished runs twice; meanwhile it is shown as crashed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

BASTION = str(Path(sys.executable).parent / "bastion")


def cli(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BASTION, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_killed_run_resumes_from_the_step_it_was_in(
    pipeline_settings: Any, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")} | {
        "BASTION_HOME": str(pipeline_settings.home),
        "BASTION_DATABASE_URL": pipeline_settings.resolved_database_url,
        "BASTION_PIPELINES_SCHEMA": pipeline_settings.pipelines_schema,
    }
    log, started = tmp_path / "log", tmp_path / "b-started"
    pipeline = tmp_path / "crash.yaml"
    pipeline.write_text(
        f"""
version: 1
name: crash
steps:
  a: {{run: ["sh", "-c", "echo a >> {log}"]}}
  b:
    # the first try waits long (it is killed); the resumed one goes straight on
    run: ["sh", "-c", "echo b >> {started}; [ $(wc -l < {started}) -gt 1 ] || sleep 300; echo b >> {log}"]
    needs: [a]
  c: {{run: ["sh", "-c", "echo c >> {log}"], needs: [b]}}
"""
    )
    first = subprocess.Popen(
        [BASTION, "pipelines", "run", str(pipeline), "--by", "ana"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not started.exists() and time.monotonic() < deadline:
        assert first.poll() is None, "the run ended before its step b started"
        time.sleep(0.1)
    assert started.exists()
    os.killpg(first.pid, signal.SIGKILL)  # the engine dies mid-step
    first.wait()

    listed = json.loads(cli(env, "pipelines", "list", "--format", "json").stdout)
    assert [r["state"] for r in listed] == ["crashed"]
    run_id = listed[0]["id"]

    resumed = cli(env, "pipelines", "resume", "--format", "json")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    detail = json.loads(cli(env, "pipelines", "show", run_id, "--format", "json").stdout)
    assert detail["state"] == "succeeded"
    assert log.read_text().split() == ["a", "b", "c"]  # a did not run twice; b's first try
    assert started.read_text().split() == ["b", "b"]  # was stopped and b ran again
    steps = {s["step"]: s for s in detail["steps"]}
    assert steps["a"]["attempts"] == 1

    again = cli(env, "pipelines", "resume", run_id)
    assert again.returncode == 1 and "nothing_to_resume" in again.stderr
