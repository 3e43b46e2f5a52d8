"""Registry fixtures: a real MLflow store (SQLite) per test, models trained once.

MLflow builds its schema in about two seconds; it is built once per session and the
file copied into each test's home. The income models are trained once on the UCI Adult
copy that ships with Bastion.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from bastion.audit import EventFilter
from bastion.auth.principal import Principal
from bastion.cli.main import _register, app
from bastion.registry import demo
from bastion.registry.mlflow_store import MlflowStore, save_sklearn_model
from bastion.registry.service import ModelRegistry

ANA = demo.ANALYST  # analyst: registers and requests
ADA = demo.APPROVER  # admin: approves, overrides, rolls back
BOB = demo.person("bob", "admin")  # a second admin


@dataclass(frozen=True)
class Model:
    trained: demo.Trained
    folder: Path  # an MLflow model folder
    pickle: Path
    fairness: dict[str, Any]
    baseline: dict[str, Any]


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    MlflowStore(f"sqlite:///{path}", path.parent / "art").client.search_experiments()
    return path


@pytest.fixture(scope="session")
def adult() -> Any:
    return demo.load_adult()


def _model(root: Path, adult: Any, mitigate: bool) -> Model:
    import joblib

    trained = demo.train(adult, mitigate=mitigate)
    folder = root / "model"
    save_sklearn_model(trained.model, folder)
    pickle = root / "model.joblib"
    joblib.dump(trained.model, pickle)
    return Model(trained, folder, pickle, demo.fairness(trained), demo.drift_baseline(trained))


@pytest.fixture(scope="session")
def baseline_model(tmp_path_factory: pytest.TempPathFactory, adult: Any) -> Model:
    return _model(tmp_path_factory.mktemp("baseline"), adult, False)


@pytest.fixture(scope="session")
def fair_model(tmp_path_factory: pytest.TempPathFactory, adult: Any) -> Model:
    return _model(tmp_path_factory.mktemp("fair"), adult, True)


@pytest.fixture
def registry(runtime: Any, mlflow_template: Path) -> ModelRegistry:
    """A registry whose policy asks for the worked example's gates."""
    shutil.copy(mlflow_template, runtime.settings.home / "mlflow.db")
    set_registry_policy(runtime, {"gates": demo.EXAMPLE_GATES})
    return runtime.registry()


def events(runtime: Any, action: str) -> list[Any]:
    """The ledger's events of ``action``, oldest first."""
    return runtime.audit.page(EventFilter(action=action), limit=100, order="asc").events


def set_registry_policy(runtime: Any, section: dict[str, Any]) -> None:
    """Replace the policy's ``registry`` section and reload it."""
    path = runtime.settings.policy_path
    policy = yaml.safe_load(path.read_text())
    policy["registry"] = section
    path.write_text(yaml.safe_dump(policy))
    outcome = runtime.policy.reload()
    assert outcome.error is None, outcome.error


def variant(model: Model, tmp_path: Path, label: str) -> Path:
    """The same model with one extra file: another artifact, another digest."""
    folder = tmp_path / f"model-{label}"
    shutil.copytree(model.folder, folder)
    (folder / "variant.txt").write_text(label)
    return folder


def register(
    registry: ModelRegistry,
    model: Model,
    tmp_path: Path,
    label: str,
    *,
    name: str = "income",
    who: Principal = ANA,
    evidence: bool = True,
) -> int:
    """Log a variant of ``model`` as an MLflow run, register it, and record its evidence."""
    run = registry.store.log_model_folder(
        variant(model, tmp_path, label),
        params={k: str(v) for k, v in model.trained.params.items()},
        metrics=model.trained.metrics,
        tags={},
    )
    number = registry.register(who, name, run_id=run.run_id).version.version
    if evidence:
        registry.record_evidence(who, name, number, "fairness", model.fairness)
        registry.record_evidence(who, name, number, "drift_baseline", model.baseline)
        registry.update_card(who, name, number, "model", demo.MODEL_CARD)
    return number


def to_production(registry: ModelRegistry, name: str, version: int) -> None:
    for stage in ("staging", "production"):
        request = registry.request_promotion(ANA, name, version, stage, f"ship v{version}")
        registry.approve(ADA, request.id, notes="looks right")


@dataclass
class Ran:
    code: int
    out: str
    err: str


def bastion(env: dict[str, str], *args: str, stdin: str | None = None) -> Ran:
    """Run ``bastion ARGS`` in this process with only ``env``'s BASTION_ variables."""
    _register()
    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("BASTION_")}
    result = CliRunner().invoke(
        app, list(args), env=unset | env, catch_exceptions=False, input=stdin
    )
    return Ran(result.exit_code, result.stdout, result.stderr)
