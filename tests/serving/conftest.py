"""Serving fixtures: the Adult income model (from the registry's worked example) logged
to a real MLflow store with its signature, registered, and promoted to production.

The models are trained once per session; each test gets its own home, database and
MLflow store (copied from a template built once).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from bastion.registry import demo
from bastion.registry.mlflow_store import MlflowStore, save_sklearn_model
from bastion.registry.service import ModelRegistry

ANA = demo.ANALYST
ADA = demo.APPROVER
NAME = "income"


@dataclass(frozen=True)
class Model:
    trained: demo.Trained
    folder: Path


@pytest.fixture(scope="session")
def serving_mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("serving-mlflow") / "mlflow.db"
    MlflowStore(f"sqlite:///{path}", path.parent / "art").client.search_experiments()
    return path


@pytest.fixture(scope="session")
def adult_frame() -> Any:
    return demo.load_adult()


def _model(root: Path, frame: Any, mitigate: bool, seed: int) -> Model:
    trained = demo.train(frame, mitigate=mitigate, seed=seed)
    folder = root / "model"
    save_sklearn_model(trained.model, folder, inputs=trained.test)
    return Model(trained, folder)


@pytest.fixture(scope="session")
def income_v1(tmp_path_factory: pytest.TempPathFactory, adult_frame: Any) -> Model:
    return _model(tmp_path_factory.mktemp("income-v1"), adult_frame, False, 0)


@pytest.fixture(scope="session")
def income_v2(tmp_path_factory: pytest.TempPathFactory, adult_frame: Any) -> Model:
    return _model(tmp_path_factory.mktemp("income-v2"), adult_frame, True, 1)


def set_policy(runtime: Any, section: str, value: dict[str, Any]) -> None:
    path = runtime.settings.policy_path
    policy = yaml.safe_load(path.read_text())
    policy[section] = value
    path.write_text(yaml.safe_dump(policy))
    outcome = runtime.policy.reload()
    assert outcome.error is None, outcome.error


@pytest.fixture
def registry(runtime: Any, serving_mlflow_template: Path) -> ModelRegistry:
    shutil.copy(serving_mlflow_template, runtime.settings.home / "mlflow.db")
    set_policy(runtime, "registry", {})  # no gates: these tests are about serving
    return runtime.registry()


def register(registry: ModelRegistry, model: Model, *, name: str = NAME) -> int:
    run = registry.store.log_model_folder(
        model.folder,
        params={k: str(v) for k, v in model.trained.params.items()},
        metrics=model.trained.metrics,
        tags={},
    )
    version = registry.register(ANA, name, run_id=run.run_id).version.version
    registry.record_evidence(
        ANA, name, version, "drift_baseline", demo.drift_baseline(model.trained)
    )
    return version


def promote(registry: ModelRegistry, name: str, version: int, to: str = "production") -> None:
    stages = ("staging",) if to == "staging" else ("staging", "production")
    for stage in stages:
        request = registry.request_promotion(ANA, name, version, stage, f"ship v{version}")
        registry.approve(ADA, request.id, notes="looks right")


@pytest.fixture
def served_v1(registry: ModelRegistry, income_v1: Model) -> int:
    """``income`` v1 registered and in production."""
    version = register(registry, income_v1)
    promote(registry, NAME, version)
    return version


def records(frame: Any) -> list[dict[str, Any]]:
    """Rows as a JSON client sends them: NaN as null, NumPy scalars as Python ones."""
    out = []
    for row in frame.to_dict(orient="records"):
        out.append(
            {
                k: (None if v != v else (v.item() if hasattr(v, "item") else v))
                for k, v in row.items()
            }
        )
    return out
