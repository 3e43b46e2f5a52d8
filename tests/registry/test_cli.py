"""``bastion models`` and ``bastion demo seed`` as an operator runs them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from .conftest import Model, bastion


@pytest.fixture
def env(tmp_path: Path, mlflow_template: Path, database_url: str) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    shutil.copy(mlflow_template, home / "mlflow.db")
    return {"BASTION_HOME": str(home), "BASTION_DATABASE_URL": database_url}


def request_promotion(env: dict[str, str], name: str, stage: str, *who: str) -> str:
    """Ask for v1 of ``name`` to go to ``stage``; the new request's id."""
    r = bastion(
        env, "models", "request-promotion", name, "1", "--to", stage, "--reason", "release", *who
    )
    assert r.code == 0, r.err
    return r.out.split("request ")[1].split(":")[0]


def test_models_commands_from_registration_to_verify(
    env: dict[str, str], tmp_path: Path, fair_model: Model
) -> None:
    assert bastion(env, "db", "upgrade").code == 0
    name = "adult-income"  # the starter policy's gates for the worked example
    metrics = [f"--metric={k}={v}" for k, v in fair_model.trained.metrics.items()]
    r = bastion(
        env, "models", "register", name, "--path", str(fair_model.pickle), *metrics, "--by", "ana"
    )
    assert r.code == 0, r.err
    assert "registered adult-income v1" in r.out
    r = bastion(env, "models", "register", name, "--path", str(fair_model.pickle), "--by", "ana")
    assert "already registered as adult-income v1" in r.out
    r = bastion(env, "models", "register", name, "--by", "ana")
    assert r.code == 2 and "exactly one of --run" in r.err and "[model_source_required]" in r.err

    fairness, profile = tmp_path / "fairness.json", tmp_path / "profile.json"
    fairness.write_text(json.dumps(fair_model.fairness))
    profile.write_text(json.dumps(fair_model.baseline))
    r = bastion(
        env,
        "models",
        "evidence",
        name,
        "1",
        "--fairness",
        str(fairness),
        "--drift-baseline",
        str(profile),
    )
    assert r.code == 0 and "stored fairness" in r.out and "stored drift_baseline" in r.out

    r = bastion(env, "models", "gates", name, "1", "--stage", "production")
    assert r.code == 1 and "model_card" in r.out
    card = tmp_path / "card.md"
    r = bastion(
        env,
        "models",
        "card",
        name,
        "1",
        "--set",
        "intended_use=Demonstrations.",
        "--out",
        str(card),
        "--html",
        str(tmp_path / "card.html"),
    )
    assert r.code == 0, r.err
    card.write_text(
        card.read_text().replace(
            "_Not written yet: Who answers for this model._", "The platform team."
        )
    )
    assert bastion(env, "models", "card", name, "1", "--out", str(card)).code == 0
    assert "The platform team." in card.read_text() and "Demonstrations." in card.read_text()
    # --set wins over the file's older text for the same field.
    r = bastion(
        env, "models", "card", name, "1", "--set", "intended_use=Teaching.", "--out", str(card)
    )
    assert "Teaching." in card.read_text() and "The platform team." in card.read_text()
    assert "<h1>Model card: adult-income v1</h1>" in (tmp_path / "card.html").read_text()

    for stage in ("staging", "production"):
        request_id = request_promotion(env, name, stage, "--by", "ana")
        r = bastion(env, "models", "approve", request_id, "--by", "ana")
        assert r.code == 1 and "ana requested" in r.err and r.err.endswith("[self_approval]\n")
        r = bastion(env, "models", "approve", request_id, "--by", "ada", "--notes", "ok")
        assert r.code == 0 and f"now in {stage}" in r.out

    listed = json.loads(bastion(env, "models", "list", "--json").out)
    assert listed[0]["production"] == 1
    assert json.loads(bastion(env, "models", "list", "--format", "json").out) == listed
    requests = json.loads(bastion(env, "models", "requests", "--json").out)
    assert [r["decided_by"] for r in requests] == ["ada", "ada"]
    # At 80 columns the key columns stay whole: request ids, the model, digests.
    narrow = env | {"COLUMNS": "80"}
    table = bastion(narrow, "models", "requests").out
    assert all(any(r["id"] in line for line in table.splitlines()) for r in requests)
    assert max(len(line.rstrip()) for line in table.splitlines()) <= 80
    [version] = json.loads(bastion(env, "models", "show", name, "--format", "json").out)
    shown = bastion(narrow, "models", "show", name).out
    assert any(version["artifact_sha256"][:12] in line for line in shown.splitlines())
    lineage = json.loads(bastion(env, "models", "lineage", name, "1", "--json").out)
    assert [c["to_stage"] for c in lineage["stage_changes"]] == [
        "development",
        "staging",
        "production",
    ]
    assert lineage["dataset"] is None
    assert "production" in bastion(env, "models", "show", name).out
    assert bastion(env, "models", "verify").code == 0

    # Someone moves the alias with MLflow's own client: verify notices and fails.
    MlflowClient(f"sqlite:///{env['BASTION_HOME']}/mlflow.db").delete_registered_model_alias(
        name, "production"
    )
    r = bastion(env, "models", "verify")
    assert r.code == 1 and "alias_missing" in r.out
    r = bastion(env, "models", "rollback", name, "--reason", "incident")
    assert r.code == 1 and "nothing to roll back" in r.err
    # Every request, decision and alias move went into the ledger, which still verifies.
    r = bastion(env, "audit", "verify")
    assert r.code == 0, r.err + r.out
    exported = bastion(env, "audit", "export", "--action", "model.alias.move").out
    moves = [json.loads(line) for line in exported.splitlines()]
    assert [(m["details"]["alias"], m["actor"]) for m in moves] == [
        ("staging", "user:ada"),
        ("production", "user:ada"),
    ]


def test_with_a_key_the_cli_checks_its_holders_role(env: dict[str, str], fair_model: Model) -> None:
    assert bastion(env, "db", "upgrade").code == 0
    keys = {}
    for user, role in (("ana", "analyst"), ("ada", "admin"), ("gus", "guest")):
        r = bastion(env, "keys", "create", "--user", user, "--role", role)
        keys[user] = r.out.split()[-1]
    name, pickled = "income", str(fair_model.pickle)
    r = bastion(env, "models", "register", name, "--path", pickled, "--key", keys["gus"])
    assert r.code == 1 and "lacks the permission 'models:write'" in r.err
    assert "[permission_denied]" in r.err
    r = bastion(env, "models", "register", name, "--path", pickled, "--key", "-", stdin=keys["ana"])
    assert r.code == 0 and "registered income v1" in r.out, r.err
    r = bastion(
        env, "models", "card", name, "1", "--set", "intended_use=Tests.", "--key", keys["ana"]
    )
    assert r.code == 0, r.err
    request_id = request_promotion(env, name, "staging", "--key", keys["ana"])
    r = bastion(env, "models", "approve", request_id, "--key", keys["ana"])
    assert r.code == 1 and "only approvers (models:approve)" in r.err
    r = bastion(env, "models", "approve", request_id, "--key", keys["ada"], "--by", "ada")
    assert r.code == 2 and "not both" in r.err
    r = bastion(env, "models", "approve", request_id, "--key", keys["ada"])
    assert r.code == 0 and "now in staging" in r.out, r.err
    r = bastion(env, "models", "rollback", name, "--reason", "incident", "--key", keys["ana"])
    assert r.code == 1 and "only admins (models:admin)" in r.err
    r = bastion(env, "models", "verify", "--key", "bst_not_a_key")
    assert r.code == 1 and "API key" in r.err

    exported = bastion(env, "audit", "export", "--action", "model.promotion.approve").out
    attempts = [json.loads(line) for line in exported.splitlines()]
    assert [(a["actor"], a["outcome"]) for a in attempts] == [
        ("user:ana", "denied"),
        ("user:ada", "success"),
    ]


ERRORS = [
    # (command, exit code, stable code, what the message says)
    (["models", "show", "nope"], 1, "model_not_found", "`bastion models list` shows them"),
    (["models", "show", "income", "9"], 1, "model_version_not_found", "has no version 9"),
    (["models", "approve", "pr_nope", "--by", "ada"], 1, "promotion_request_not_found", ""),
    (["models", "register", "bad name!", "--path", "m.pkl"], 2, "invalid_model_name", ""),
    (["models", "register", "income", "--run", "0" * 32], 1, "mlflow_run_not_found", ""),
    (["models", "register", "x", "--path", "m", "--metric", "auc=high"], 2, "invalid_option", ""),
    (["models", "requests", "--status", "lost"], 2, "invalid_status", "use pending, approving"),
    (["models", "rollback", "income", "--reason", "why"], 1, "no_rollback_target", ""),
    (["models", "verify", "--key", "bst_not_a_key"], 1, "invalid_api_key", ""),
    (["models", "verify", "--key", "k", "--by", "ada"], 2, "conflicting_options", "not both"),
]


def test_errors_name_their_stable_code(env: dict[str, str], fair_model: Model) -> None:
    assert bastion(env, "db", "upgrade").code == 0
    r = bastion(env, "models", "register", "income", "--path", str(fair_model.pickle))
    assert r.code == 0, r.err
    documented = (Path(__file__).parents[2] / "docs" / "registry.md").read_text()
    for args, exit_code, code, says in ERRORS:
        r = bastion(env, *args)
        assert (r.code, r.out) == (exit_code, ""), (args, r.err)
        # One line: "error: MESSAGE [CODE]", as `bastion drift|fairness` mean to print it.
        assert r.err.startswith("error: ") and r.err.endswith(f" [{code}]\n"), (args, r.err)
        assert says in r.err and r.err.count("\n") == 1, (args, r.err)
        assert f"`{code}`" in documented, f"docs/registry.md does not list {code}"


# Runs ``bastion demo seed`` in a process of its own, as ``make run`` does, and reports
# every name it looked up or address it connected to that is not this machine, and
# whether MLflow started its usage reporting.
OFFLINE_SEED = """
import json, sys
LOCAL = {"127.0.0.1", "::1", "localhost", None}
reached = []
def hook(event, args):
    if event == "socket.getaddrinfo" and args[0] not in LOCAL:
        reached.append(str(args[0]))
    elif event == "socket.connect" and isinstance(args[1], tuple) and args[1][0] not in LOCAL:
        reached.append(str(args[1][0]))
sys.addaudithook(hook)
from bastion.cli.main import _register, app
_register()
try:
    app(["demo", "seed"])
except SystemExit as exit:
    code = exit.code
from mlflow.telemetry import get_telemetry_client
print(json.dumps({"code": code, "reached": reached,
                  "telemetry": get_telemetry_client() is not None}), file=sys.stderr)
"""


def test_demo_seed_twice_adds_history_and_stays_offline(env: dict[str, str]) -> None:
    assert bastion(env, "db", "upgrade").code == 0
    # MLflow reports usage unless told not to (it keeps quiet by itself only under
    # pytest or CI, hence a process without their variables).
    quiet = ("PYTEST_", "CI", "GITHUB_", "MLFLOW_", "DO_NOT_TRACK", "BASTION_")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(quiet)}
    first = subprocess.run(
        [sys.executable, "-c", OFFLINE_SEED],
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    outcome = json.loads(first.stderr.strip().splitlines()[-1])
    assert outcome == {"code": 0, "reached": [], "telemetry": False}, first.stderr
    assert "refused by the gates" in first.stdout
    for who in ("ana (analyst)", "ada (admin)", "gus (guest)", "ida (auditor)"):
        assert f"demo key for {who}" in first.stdout
    second = bastion(env, "demo", "seed")
    assert second.code == 0, second.err
    assert "registered adult-income v3" in second.out and "demo keys already present" in second.out
    [model] = json.loads(bastion(env, "models", "list", "--json").out)
    assert model["versions"] == 4 and model["production"] == 4
    assert bastion(env, "models", "verify").code == 0
    assert bastion(env, "audit", "verify").code == 0
