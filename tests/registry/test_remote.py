"""``bastion models register --server``: registering through a running server's API.

The server is a real ``bastion serve`` on loopback (SQLite and PostgreSQL), with MLflow
open already; the command sends the registration there and loads no MLflow itself. It
must come out as registering in the command's own process does: the same version view,
the same ledger event, the same errors with the same codes and exit codes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bastion.registry.service import ModelRegistry
from gateway.serving import Server

from .conftest import Model, bastion, events, variant


@pytest.fixture
def served(
    registry: ModelRegistry, runtime: Any, database_url: str, tmp_path: Path
) -> Iterator[Server]:
    """``bastion serve`` on the test's home and database (MLflow included)."""
    home = runtime.settings.home
    env = {
        "BASTION_HOME": str(home),
        "BASTION_DATABASE_URL": database_url,
        "BASTION_POLICY_RELOAD_INTERVAL_S": "60",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")} | env
    server = Server(home, env, tmp_path / "serve.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def log_run(registry: ModelRegistry, model: Model, tmp_path: Path, label: str) -> str:
    """An MLflow run holding a variant of ``model`` (its own artifact digest)."""
    return registry.store.log_model_folder(
        variant(model, tmp_path, label), params={}, metrics=model.trained.metrics, tags={}
    ).run_id


def home_env(runtime: Any) -> dict[str, str]:
    return {
        "BASTION_HOME": str(runtime.settings.home),
        "BASTION_DATABASE_URL": runtime.settings.resolved_database_url,
    }


def test_a_registration_through_the_server_is_the_one_made_here(
    served: Server,
    registry: ModelRegistry,
    runtime: Any,
    key_for: Any,
    fair_model: Model,
    tmp_path: Path,
) -> None:
    key = key_for("analyst", user="ana")
    env = home_env(runtime)
    remote_run, local_run = (log_run(registry, fair_model, tmp_path, x) for x in "rl")

    far = bastion(
        env, "models", "register", "income", "--run", remote_run, "--server", served.url,
        "--key", key, "--semver", "1.0.0", "--metric", "auc=0.9", "--format", "json",
    )  # fmt: skip
    assert far.code == 0, far.err
    here = bastion(
        env, "models", "register", "income", "--run", local_run, "--key", key,
        "--semver", "1.1.0", "--metric", "auc=0.9", "--format", "json",
    )  # fmt: skip
    assert here.code == 0, here.err
    far_view, here_view = json.loads(far.out), json.loads(here.out)
    assert far_view["created"] and here_view["created"]
    assert far_view.keys() == here_view.keys()
    assert far_view["version"].keys() == here_view["version"].keys()
    for view, number, label, run in ((far_view, 1, "1.0.0", remote_run), (here_view, 2, "1.1.0", local_run)):  # fmt: skip
        v = view["version"]
        assert (v["version"], v["semver"], v["run_id"]) == (number, label, run)
        assert (v["registered_by"], v["stage"], v["metrics"]["auc"]) == ("ana", "development", 0.9)

    # Registering again answers from the same version, with or without the server.
    again = bastion(
        env, "models", "register", "income", "--run", remote_run, "--server", served.url,
        "--key", key,
    )  # fmt: skip
    assert again.code == 0, again.err
    assert f"already registered as income v1 1.0.0 (sha256 {far_view['version']['artifact_sha256'][:16]}…) by ana" in again.out  # fmt: skip
    assert registry.get_version("income", 1).run_id == remote_run

    # One ledger event per new version, alike but for what differs between them.
    recorded = events(runtime, "model.register")
    assert [e.resource for e in recorded] == ["model:income/1", "model:income/2"]
    far_event, here_event = recorded
    alike = ("actor", "action", "outcome", "flags")  # each process writes its own stream
    assert [getattr(far_event, a) for a in alike] == [getattr(here_event, a) for a in alike]
    assert far_event.details.keys() == here_event.details.keys()
    assert far_event.details["artifact_sha256"] == far_view["version"]["artifact_sha256"]
    assert (far_event.details["run_id"], far_event.details["semver"]) == (remote_run, "1.0.0")
    verified = bastion(env, "audit", "verify")
    assert verified.code == 0, verified.out + verified.err


ERRORS = [
    # (what is wrong, arguments after the run, role of the key, code, exit code)
    ("unknown run", {"run": "0" * 32}, "analyst", "mlflow_run_not_found", 1),
    ("bad label", {"extra": ["--semver", "1.x"]}, "analyst", "invalid_semver", 2),
    ("bad name", {"name": "no pe"}, "analyst", "invalid_model_name", 2),
    ("guest role", {}, "guest", "permission_denied", 1),
    ("unknown key", {"key": "bst_" + "x" * 40}, None, "invalid_api_key", 1),
]


def test_errors_carry_the_same_code_through_the_server(
    served: Server,
    registry: ModelRegistry,
    runtime: Any,
    key_for: Any,
    fair_model: Model,
    tmp_path: Path,
) -> None:
    # One server for the whole table: starting one costs seconds.
    env = home_env(runtime)
    for case, change, role, code, exit_code in ERRORS:
        key = change.get("key") or key_for(role or "analyst")
        run = change.get("run") or log_run(registry, fair_model, tmp_path, case)
        argv = ["models", "register", change.get("name", "income"), "--run", run, "--key", key]
        argv += change.get("extra", [])
        here = bastion(env, *argv)
        far = bastion(env, *argv, "--server", served.url)
        for ran in (here, far):
            assert (ran.code, f"[{code}]" in ran.err) == (exit_code, True), (case, ran.err)
    assert not events(runtime, "model.register")


def test_errors_of_the_server_route_itself(
    registry: ModelRegistry, runtime: Any, key_for: Any, fair_model: Model, tmp_path: Path
) -> None:
    from gateway.serving import free_port

    run = log_run(registry, fair_model, tmp_path, "x")
    key = key_for("analyst")
    env = home_env(runtime)
    nowhere = f"http://127.0.0.1:{free_port()}"
    cases = [
        (["--server", nowhere, "--key", key], "server_unreachable", 1),
        (["--server", nowhere], "missing_api_key", 2),
        (["--server", nowhere, "--by", "ana", "--key", key], "conflicting_options", 2),
    ]
    for extra, code, exit_code in cases:
        ran = bastion(env, "models", "register", "income", "--run", run, *extra)
        assert (ran.code, f"[{code}]" in ran.err) == (exit_code, True), (extra, ran.err)
    # BASTION_URL and BASTION_API_KEY name the server and the key; --local overrides.
    ran = bastion(env | {"BASTION_URL": nowhere, "BASTION_API_KEY": key}, "models", "register",
                  "income", "--run", run)  # fmt: skip
    assert (ran.code, "[server_unreachable]" in ran.err) == (1, True), ran.err
    ran = bastion(env | {"BASTION_URL": nowhere}, "models", "register", "income", "--run", run,
                  "--local", "--by", "ana")  # fmt: skip
    assert ran.code == 0, ran.err
    assert "registered income v1" in ran.out


PROBE = """
import runpy, sys
sys.argv = ["bastion", *sys.argv[1:]]
try:
    runpy.run_module("bastion.cli.main", run_name="__main__")
except SystemExit as done:
    code = done.code
print("\\nLOADED", code, sorted({m.split(".")[0] for m in sys.modules} & {"mlflow", "sqlalchemy", "pandas", "sklearn"}))
"""


def test_through_the_server_the_command_loads_no_mlflow(
    served: Server,
    registry: ModelRegistry,
    runtime: Any,
    key_for: Any,
    fair_model: Model,
    tmp_path: Path,
) -> None:
    run = log_run(registry, fair_model, tmp_path, "p")
    argv = ["models", "register", "income", "--run", run, "--key", key_for("analyst")]
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv, "--server", served.url],
        env=served.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "registered income v1" in done.stdout, done.stderr
    assert done.stdout.rstrip().endswith("LOADED 0 []"), done.stdout
