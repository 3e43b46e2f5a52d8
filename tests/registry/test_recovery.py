"""Approvals and registrations whose process dies part way, settled afterwards from what
MLflow and the ledger say happened.

The process is real and really dies (``os._exit``, no cleanup, no ``except``): a child
with Bastion's own MlflowStore, on the test's database and MLflow store, that stops at
a chosen call into MLflow, before it or right after it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from bastion.registry import demo
from bastion.registry.errors import RequestNotPending
from bastion.registry.service import ModelRegistry

from .conftest import (
    ADA,
    ANA,
    BOB,
    Model,
    bastion,
    events,
    register,
    set_registry_policy,
    variant,
)

pytestmark = pytest.mark.slow  # each test starts a Python that imports MLflow

DIES = 17
CHILD = """
import os, sys
from pathlib import Path
from bastion.registry import demo
from bastion.registry.mlflow_store import MlflowStore
from bastion.registry.service import ModelRegistry
from bastion.runtime import open_runtime
from bastion.settings import Settings

step, action, *args = sys.argv[1:]

class DiesMidway(MlflowStore):
    def set_alias(self, name, alias, version):
        if step == "after_alias":
            super().set_alias(name, alias, version)
        os._exit(DIES)

    def create_version(self, *args, **kwargs):
        super().create_version(*args, **kwargs)
        os._exit(DIES)

settings = Settings()
rt = open_runtime(settings, label="doomed")
store = DiesMidway(settings.resolved_mlflow_tracking_uri, settings.home / "mlartifacts")
registry = ModelRegistry(rt.db, rt.ledger, rt.policy, store)
if action == "approve":
    registry.approve(demo.APPROVER, args[0], notes="card and fairness report read")
else:
    registry.register(demo.ANALYST, args[0], path=Path(args[1]))
""".replace("DIES", str(DIES))


def cli_env(runtime: Any) -> dict[str, str]:
    return {
        "BASTION_HOME": str(runtime.settings.home),
        "BASTION_DATABASE_URL": runtime.settings.resolved_database_url,
    }


def die_during(runtime: Any, step: str, action: str, *args: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    child = subprocess.run(
        [sys.executable, "-c", CHILD, step, action, *args],
        env=env | cli_env(runtime),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == DIES, child.stderr


def aliases(registry: ModelRegistry) -> dict[str, int]:
    model = MlflowClient(registry.store.tracking_uri).get_registered_model("income")
    return {alias: int(v) for alias, v in model.aliases.items()}


def stage_tag(registry: ModelRegistry, version: int) -> str:
    client = MlflowClient(registry.store.tracking_uri)
    return str(client.get_model_version("income", str(version)).tags["bastion.stage"])


def ledger_verifies(runtime: Any) -> None:
    """``bastion audit verify``: the dead process's stream too."""
    r = bastion(cli_env(runtime), "audit", "verify")
    assert r.code == 0, r.err + r.out


def test_an_approval_that_died_before_the_alias_moved_is_pending_again(
    runtime: Any, registry: ModelRegistry, fair_model: Model, tmp_path: Path
) -> None:
    v1 = register(registry, fair_model, tmp_path, "v1")
    request = registry.request_promotion(ANA, "income", v1, "staging", "first release")
    die_during(runtime, "before_alias", "approve", request.id)
    assert registry.get_request(request.id).status == "approving"

    # Within the bound the approval may still be running somewhere: nobody else decides.
    with pytest.raises(RequestNotPending, match="being approved by ada"):
        registry.approve(BOB, request.id)
    assert registry.verify(BOB).settled == []
    assert registry.get_request(request.id).status == "approving"

    # Past it, the next decision settles it first: nothing moved, so it is pending again,
    # and this approval goes through.
    set_registry_policy(runtime, {"gates": demo.EXAMPLE_GATES, "recover_after_s": 0})
    done = registry.approve(BOB, request.id, notes="read it again")
    assert done.status == "approved" and done.decided_by == "bob"
    assert aliases(registry) == {"staging": v1}
    [recovered] = events(runtime, "model.promotion.recover")
    assert recovered.actor == "user:bob"
    assert recovered.details["status"] == "pending" and recovered.details["approver"] == "ada"
    assert "ada's approval did not take effect" in recovered.details["detail"]
    approvals = [e.actor for e in events(runtime, "model.promotion.approve")]
    assert approvals == ["user:ada", "user:bob"]
    kinds = [c.kind for c in registry.lineage("income", v1).stage_changes]
    assert kinds == ["registration", "promotion"]
    ledger_verifies(runtime)


def test_an_approval_that_died_after_the_alias_moved_is_completed_by_verify(
    runtime: Any, registry: ModelRegistry, fair_model: Model, tmp_path: Path
) -> None:
    v1 = register(registry, fair_model, tmp_path, "v1")
    for stage in ("staging", "production"):
        registry.approve(ADA, registry.request_promotion(ANA, "income", v1, stage, "v1").id)
    v2 = register(registry, fair_model, tmp_path, "v2")
    registry.approve(ADA, registry.request_promotion(ANA, "income", v2, "staging", "v2").id)
    request = registry.request_promotion(ANA, "income", v2, "production", "v2 is better")
    die_during(runtime, "after_alias", "approve", request.id)

    # MLflow serves v2 (its staging alias not yet removed); Bastion's tables lag behind.
    assert aliases(registry) == {"production": v2, "staging": v2}
    assert registry.get_version("income", v2).stage == "staging"
    assert registry.get_request(request.id).status == "approving"

    r = bastion(cli_env(runtime), "models", "verify", "--recover-after", "0", "--by", "bob")
    assert r.code == 0, r.err + r.out
    assert f"settled {request.id} (income v{v2} → production): approved" in r.out
    assert "after ada's approval" in r.out and "OK:" in r.out

    assert aliases(registry) == {"production": v2}
    done = registry.get_request(request.id)
    assert done.status == "approved" and done.decided_by == "ada"
    assert done.notes == "card and fairness report read"
    assert done.decision_gates and all(g.passed for g in done.decision_gates)
    assert registry.get_version("income", v2).stage == "production"
    assert registry.get_version("income", v1).stage == "archived"
    assert (stage_tag(registry, v2), stage_tag(registry, v1)) == ("production", "archived")
    [recovered] = events(runtime, "model.promotion.recover")
    assert recovered.actor == "user:bob" and recovered.details["status"] == "approved"
    # The history is whole: the emergency path still knows what came before.
    assert registry.rollback(ADA, "income", "v2 misbehaves").version == v1
    assert aliases(registry) == {"production": v1}
    ledger_verifies(runtime)


def test_a_registration_that_died_is_finished_by_the_next_one(
    runtime: Any, registry: ModelRegistry, fair_model: Model, tmp_path: Path
) -> None:
    folder = variant(fair_model, tmp_path, "v1")
    die_during(runtime, "after_version", "register", "income", str(folder))
    client = MlflowClient(registry.store.tracking_uri)
    [orphan] = client.search_model_versions("name='income'")
    assert registry.list_models() == [] and events(runtime, "model.register") == []

    set_registry_policy(runtime, {"gates": demo.EXAMPLE_GATES, "recover_after_s": 0})
    again = registry.register(ANA, "income", path=folder)
    assert again.created and again.version.version == int(orphan.version) == 1
    assert [int(v.version) for v in client.search_model_versions("name='income'")] == [1]
    # The run the dead registration logged is the version's; no second one was logged.
    assert [r.info.run_id for r in client.search_runs([registry.store.experiment_id()])] == [
        again.version.run_id
    ]
    [registered] = events(runtime, "model.register")
    assert registered.details["recovered"] is True
    assert not registry.register(BOB, "income", path=folder).created
    assert registry.verify(ADA).ok
    ledger_verifies(runtime)
