"""The engine on SQLite and PostgreSQL: order, parallel steps, retries, timeouts,
criteria that stop a run, retry from the failed step, cancellation, the ledger."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from bastion.auth.principal import cli_principal
from bastion.pipelines.spec import parse_pipeline

ANA = cli_principal("ana")
HELPERS = "tests.pipelines.helpers"


def run(engine: Any, text: str, **params: Any) -> dict[str, Any]:
    run_id = engine.start(parse_pipeline(text, "test.yaml"), ANA, params)
    engine.wait(run_id, timeout_s=120)
    result: dict[str, Any] = engine.run(run_id)
    return result


def steps(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["step"]: s for s in result["steps"]}


def test_steps_run_in_order_in_parallel_and_pass_outputs_on(engine: Any, tmp_path: Path) -> None:
    log = tmp_path / "log"
    result = run(
        engine,
        f"""
version: 1
name: fan
params: {{log: "{log}"}}
steps:
  a: {{call: "{HELPERS}:record", with: {{log: "${{log}}", name: a, value: 0.9}}}}
  b: {{call: "{HELPERS}:record", with: {{log: "${{log}}", name: b}}, needs: [a]}}
  c: {{call: "{HELPERS}:record", with: {{log: "${{log}}", name: c}}, needs: [a]}}
  d:
    run: ["python3", "-c", "import json,os,sys; json.dump({{'got': sys.argv[1]}}, open(os.environ['BASTION_STEP_OUTPUT'],'w'))", "${{steps.a.metrics.value}}"]
    needs: [b, c]
    success: ["got == '0.9'"]
""",
    )
    assert result["state"] == "succeeded", [(s["step"], s["error"]) for s in result["steps"]]
    names = [line.split()[0] for line in log.read_text().splitlines()]
    assert names[0] == "a" and sorted(names[1:]) == ["b", "c"]
    assert steps(result)["d"]["output"] == {"got": "0.9"}
    assert all(s["attempts"] == 1 for s in result["steps"])


def test_a_step_that_fails_once_is_retried(engine: Any, tmp_path: Path) -> None:
    marker = tmp_path / "calls"
    result = run(
        engine,
        f"""
version: 1
name: flaky
steps:
  a: {{call: "{HELPERS}:flaky", with: {{marker: "{marker}"}}, retries: 2, backoff_s: 0.05}}
""",
    )
    assert result["state"] == "succeeded"
    assert steps(result)["a"]["attempts"] == 2
    assert marker.read_text() == "2"


def test_a_step_past_its_timeout_is_killed_and_the_run_fails(engine: Any, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    result = run(
        engine,
        f"""
version: 1
name: slow
steps:
  a:
    run: ["sh", "-c", "echo $$ > {pidfile}; sleep 60"]
    timeout_s: 1
    retries: 3
  b: {{run: "true", needs: [a]}}
""",
    )
    assert result["state"] == "failed"
    a, b = steps(result)["a"], steps(result)["b"]
    assert a["state"] == "failed" and "timeout of 1 s and was killed" in a["error"]
    assert a["attempts"] == 1  # a timeout is not retried
    assert b["state"] == "skipped"
    pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_callable_past_its_timeout_is_killed(engine: Any) -> None:
    result = run(
        engine,
        """
version: 1
name: slowcall
steps:
  a: {call: "bastion.pipelines.demo:slow", with: {seconds: 30}, timeout_s: 1}
""",
    )
    assert result["state"] == "failed"
    assert "timeout of 1 s" in steps(result)["a"]["error"]


def test_unmet_criteria_stop_the_run_before_the_next_step(engine: Any) -> None:
    result = run(
        engine,
        f"""
version: 1
name: gated
params: {{min: 0.95}}
steps:
  evaluate:
    call: "{HELPERS}:record"
    with: {{log: /dev/null, name: e, value: 0.7}}
    success: ["metrics.value >= ${{min}}"]
  fairness: {{call: "{HELPERS}:record", with: {{log: /dev/null, name: f}}}}
  register: {{run: "true", needs: [evaluate, fairness]}}
""",
    )
    by = steps(result)
    assert result["state"] == "failed"
    assert by["evaluate"]["state"] == "failed"
    assert "metrics.value >= 0.95 not met (metrics.value = 0.7)" in by["evaluate"]["error"]
    assert by["evaluate"]["attempts"] == 1  # unmet criteria are not retried
    assert by["register"]["state"] == "skipped" and by["register"]["attempts"] == 0


def test_retry_continues_from_the_failed_step(engine: Any, tmp_path: Path) -> None:
    log, flag = tmp_path / "log", tmp_path / "flag"
    text = f"""
version: 1
name: again
steps:
  a: {{call: "{HELPERS}:record", with: {{log: "{log}", name: a}}}}
  b: {{call: "{HELPERS}:needs_flag", with: {{flag: "{flag}"}}, needs: [a]}}
  c: {{call: "{HELPERS}:record", with: {{log: "{log}", name: c}}, needs: [b]}}
"""
    first = run(engine, text)
    assert first["state"] == "failed" and "flag is missing" in steps(first)["b"]["error"]
    flag.touch()
    workflow = engine.retry(first["id"], ANA)
    engine.wait(workflow, timeout_s=120)
    again = engine.run(first["id"])
    assert again["state"] == "succeeded"
    assert [line.split()[0] for line in log.read_text().splitlines()] == ["a", "c"]
    assert steps(again)["a"]["attempts"] == 1  # a finished step is not run twice
    with pytest.raises(Exception, match="only a failed"):
        engine.retry(first["id"], ANA)


def test_every_run_and_step_is_in_the_ledger(engine: Any) -> None:
    result = run(
        engine,
        """
version: 1
name: ledger
steps:
  a: {run: "true"}
  b: {run: "false", needs: [a]}
""",
    )
    assert result["state"] == "failed"
    events = [
        e
        for e in engine.runtime.audit.export(_filter())
        if e.resource == f"pipeline-run:{result['id']}"
    ]
    actions = [(e.action, e.outcome) for e in events]
    assert ("pipeline.run.start", "success") in actions
    assert ("pipeline.step.finish", "success") in actions
    assert ("pipeline.step.finish", "failure") in actions
    assert actions[-1] == ("pipeline.run.finish", "failure")
    signer = engine.runtime.signer
    assert engine.runtime.audit.verify({signer.key_id: signer.public}).ok


def _filter() -> Any:
    from bastion.audit.repository import EventFilter

    return EventFilter()
