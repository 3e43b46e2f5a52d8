"""The worked example: an income model on UCI Adult, governed from training to production.

Used by ``examples/registry/adult_income.py`` (which narrates it) and by
``bastion demo seed`` (so a new user opens a registry with history). The data is UCI
Adult's training file (32,561 people) shipped in this package (``data/adult.csv.gz``,
CC BY 4.0, Becker & Kohavi 1996), so the example runs offline from a fresh clone;
``--data`` takes ``adult.data`` or ``adult.test`` as UCI ships them.

The story, each step through the registry's services as two different people:

1. ``ana`` (analyst) trains a logistic regression, logs it to MLflow with its dataset,
   registers it, records its fairness report and drift baseline, writes its card, and
   asks for staging, which ``ada`` (admin, an approver) grants.
2. ana asks for production; the fairness gate fails (selection rates by sex differ by a
   factor of three) and the request is refused, with the reason, in the ledger.
3. ana trains v2 with one decision threshold per sex group (post-processing for
   demographic parity), which passes; it goes to staging and, approved by ada, to
   production.

Demographic parity on ``race`` is reported but not judged: several race groups hold a
few hundred people, too few for per-group thresholds to generalise, and the card says
so under limitations.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bastion.auth.permissions import DEFAULT_ROLE_PERMISSIONS
from bastion.auth.principal import Principal

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from bastion.registry.service import ModelRegistry

MODEL_NAME = "adult-income"
COLUMNS = [
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education_num",
    "marital_status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital_gain",
    "capital_loss",
    "hours_per_week",
    "native_country",
    "income",
]
NUMERIC = ["age", "education_num", "capital_gain", "capital_loss", "hours_per_week"]
CATEGORICAL = ["workclass", "marital_status", "occupation", "relationship", "race", "sex"]
PROTECTED = ["sex", "race"]
TARGET = "income"

#: The gates the example's policy sets (also written into the starter policy, commented).
EXAMPLE_GATES: dict[str, Any] = {
    "staging": {"metrics": {"roc_auc": {"min": 0.8}}, "model_card": True},
    "production": {
        "metrics": {"roc_auc": {"min": 0.85}, "accuracy": {"min": 0.8}},
        "no_worse_than_production": {"roc_auc": {"margin": 0.02}},
        "fairness": {
            "checks": ["demographic_parity_ratio", "four_fifths"],
            "features": ["sex"],
        },
        "model_card": True,
        "drift_baseline": True,
    },
}

MODEL_CARD = {
    "intended_use": "Illustrates Bastion's release process: predicts whether a 1994 US "
    "census respondent earned over $50K. Not for decisions about real people.",
    "out_of_scope": "Credit, hiring, insurance or any decision about a person.",
    "limitations": "Demographic parity is enforced by sex only. Across race groups the "
    "selection rates still differ (four-fifths ratio near 0.3): several groups hold a few "
    "hundred people, too few for thresholds of their own. Census data from 1994.",
    "owners": "ML platform team (example).",
}
DATA_CARD = {
    "motivation": "UCI Adult (Becker & Kohavi, 1996), extracted from the 1994 US Census "
    "database; a standard benchmark for fairness work.",
    "license": "CC BY 4.0, UCI Machine Learning Repository.",
    "known_biases": "Women are a third of the rows and far fewer of the >50K labels; "
    "several race groups have only a few hundred rows.",
}


def person(user: str, role: str) -> Principal:
    """Someone acting through the services directly (the example's two people)."""
    return Principal("-", "-", user, None, role, DEFAULT_ROLE_PERMISSIONS[role])


ANALYST = person("ana", "analyst")
APPROVER = person("ada", "admin")


def load_adult(path: Path | None = None) -> pd.DataFrame:
    """UCI Adult: the packaged copy, or ``adult.data``/``adult.test`` as UCI ships them."""
    import pandas as pd

    if path is None:
        source = files("bastion.registry") / "data" / "adult.csv.gz"
        with source.open("rb") as handle:
            frame = pd.read_csv(handle, compression="gzip")
    else:
        frame = pd.read_csv(
            path,
            names=COLUMNS,
            skipinitialspace=True,
            na_values="?",
            comment="|",  # adult.test opens with a "|1x3 Cross validator" line
        )
    frame[TARGET] = frame[TARGET].astype(str).str.rstrip(".")  # adult.test ends labels with "."
    return frame.dropna(subset=[TARGET]).reset_index(drop=True)


def _group_thresholds(scores: np.ndarray, groups: pd.Series, rate: float) -> dict[str, float]:
    import numpy as np

    out = {}
    for group in groups.unique():
        mask = (groups == group).to_numpy()
        out[str(group)] = float(np.quantile(scores[mask], 1 - rate))
    return out


class GroupThresholdClassifier:
    """Post-processing for demographic parity: one decision threshold per group.

    Each group's threshold on the wrapped model's score is set so that the group's
    selection rate on the training data equals the overall rate at 0.5. Like
    Fairlearn's ``ThresholdOptimizer`` but deterministic and free of extra arguments
    at prediction time (the group column is read from the input), so the model
    serves as a plain scikit-learn model through MLflow.
    """

    def __init__(self, estimator: Any, group_column: str = "sex") -> None:
        self.estimator = estimator
        self.group_column = group_column
        self.thresholds_: dict[str, float] = {}
        self.classes_: Any = None

    def fit(self, X: pd.DataFrame, y: Any) -> GroupThresholdClassifier:
        self.estimator.fit(X, y)
        self.classes_ = self.estimator.classes_
        scores = self.estimator.predict_proba(X)[:, 1]
        rate = float((scores >= 0.5).mean())
        self.thresholds_ = _group_thresholds(scores, X[self.group_column].astype(str), rate)
        return self

    def predict_proba(self, X: pd.DataFrame) -> Any:
        return self.estimator.predict_proba(X)

    def predict(self, X: pd.DataFrame) -> Any:
        scores = self.estimator.predict_proba(X)[:, 1]
        cut = X[self.group_column].astype(str).map(self.thresholds_).fillna(0.5).to_numpy()
        return (scores >= cut).astype(int)


@dataclass
class Trained:
    model: Any
    metrics: dict[str, float]
    params: dict[str, Any]
    train: pd.DataFrame
    test: pd.DataFrame
    y_test: Any
    predictions: Any
    seconds: float


def train(frame: pd.DataFrame, *, mitigate: bool = False, seed: int = 0) -> Trained:
    """Fit the income model; ``mitigate`` adds per-sex thresholds."""
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X = frame[NUMERIC + CATEGORICAL]
    y = (frame[TARGET] == ">50K").astype(int)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, random_state=seed, stratify=y
    )
    started = time.perf_counter()
    base = make_pipeline(
        make_column_transformer(
            (StandardScaler(), NUMERIC),
            (OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
        ),
        LogisticRegression(max_iter=1000, C=1.0),
    )
    model: Any = GroupThresholdClassifier(base, "sex") if mitigate else base
    model.fit(X_train, y_train)
    seconds = time.perf_counter() - started
    predictions = model.predict(X_test)
    scores = model.predict_proba(X_test)[:, 1]
    metrics = {
        "accuracy": float(accuracy_score(y_test, predictions)),
        "roc_auc": float(roc_auc_score(y_test, scores)),
        "f1": float(f1_score(y_test, predictions)),
    }
    params = {
        "model": "logistic_regression",
        "C": 1.0,
        "mitigation": "per-sex thresholds (demographic parity)" if mitigate else "none",
        "features": ",".join(NUMERIC + CATEGORICAL),
    }
    return Trained(
        model, metrics, params, X_train.assign(income=y_train), X_test, y_test, predictions, seconds
    )


def fairness(trained: Trained) -> dict[str, Any]:
    from bastion.monitoring.fairness import fairness_report

    report = fairness_report(trained.y_test, trained.predictions, trained.test[PROTECTED])
    return report.to_dict()


def drift_baseline(trained: Trained) -> dict[str, Any]:
    from bastion.monitoring.profiles import fit_reference

    return fit_reference(trained.train.drop(columns=[TARGET])).to_dict()


def log_to_mlflow(
    tracking_uri: str, artifact_root: Path, trained: Trained, frame: pd.DataFrame, run_name: str
) -> str:
    """Log the run as a data scientist would: params, metrics, the dataset, the model."""
    from bastion.settings import quiet_mlflow

    quiet_mlflow()  # before MLflow's first import: it phones home unless told not to
    from mlflow import MlflowClient
    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.types.utils import _infer_schema

    from bastion.registry.mlflow_store import local_store, save_sklearn_model

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # MLflow resets it on import
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name("adult-income")
    if experiment is not None:
        experiment_id = experiment.experiment_id
    elif local_store(tracking_uri):
        location = (artifact_root / "adult-income").resolve().as_uri()
        experiment_id = client.create_experiment("adult-income", artifact_location=location)
    else:  # a tracking server keeps the artifacts where it is configured to
        experiment_id = client.create_experiment("adult-income")
    run = client.create_run(experiment_id, run_name=run_name, tags={"mlflow.user": ANALYST.user})
    run_id: str = run.info.run_id
    try:
        for key, value in trained.params.items():
            client.log_param(run_id, key, value)
        for key, number in trained.metrics.items():
            client.log_metric(run_id, key, number)
        client.log_metric(run_id, "training_seconds", trained.seconds)
        # Integer columns as floats: MLflow warns that ints cannot hold missing values.
        as_float = {c: "float64" for c in frame.select_dtypes("integer").columns}
        dataset = from_pandas(frame.astype(as_float), name="uci-adult", targets=TARGET)
        # MLflow infers the schema by testing every cell (2.5 s on Adult); the first
        # thousand rows have the same columns and types.
        dataset.__dict__["schema"] = _infer_schema(frame.astype(as_float).head(1000))
        context = InputTag("mlflow.data.context", "training")
        client.log_inputs(
            run_id, datasets=[DatasetInput(dataset._to_mlflow_entity(), tags=[context])]
        )
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "model"
            save_sklearn_model(trained.model, folder, inputs=trained.test)
            client.log_artifacts(run_id, str(folder), "model")
    finally:
        client.set_terminated(run_id)
    return run_id


def seed(registry: ModelRegistry, artifact_root: Path, data: Path | None = None) -> list[str]:
    """Run the story once more on this registry; each run adds two versions of history.

    Returns one line per step for the caller to print.
    """
    from bastion.errors import BastionError
    from bastion.registry.errors import GatesFailed

    lines: list[str] = []
    frame = load_adult(data)
    uri = registry.store.tracking_uri
    # Each seeding run samples a different split, so versions differ and register anew.
    runs = len(registry.list_versions(MODEL_NAME)) // 2 if _exists(registry) else 0
    for mitigate in (False, True):
        holder = next((m.production for m in registry.list_models() if m.name == MODEL_NAME), None)
        trained = train(frame, mitigate=mitigate, seed=runs)
        run_id = log_to_mlflow(
            uri, artifact_root, trained, frame, "mitigated" if mitigate else "baseline"
        )
        reg = registry.register(ANALYST, MODEL_NAME, run_id=run_id)
        v = reg.version.version
        lines.append(
            f"registered {MODEL_NAME} v{v} (roc_auc {trained.metrics['roc_auc']:.3f}, "
            f"{'per-sex thresholds' if mitigate else 'baseline'})"
        )
        registry.record_evidence(ANALYST, MODEL_NAME, v, "fairness", fairness(trained))
        registry.record_evidence(ANALYST, MODEL_NAME, v, "drift_baseline", drift_baseline(trained))
        registry.update_card(ANALYST, MODEL_NAME, v, "model", MODEL_CARD)
        registry.update_card(ANALYST, MODEL_NAME, v, "data", DATA_CARD)
        req = registry.request_promotion(
            ANALYST, MODEL_NAME, v, "staging", "candidate for the quarterly release"
        )
        registry.approve(APPROVER, req.id, notes="metrics and card reviewed")
        lines.append(f"  staging: {req.id} requested by ana, approved by ada")
        try:
            req = registry.request_promotion(
                ANALYST, MODEL_NAME, v, "production", "beats the current model on held-out data"
            )
        except GatesFailed as exc:
            lines.append(f"  production refused by the gates: {exc.message}")
            registry.archive(ANALYST, MODEL_NAME, v, "fails the fairness gate; superseded")
            continue
        try:
            registry.approve(APPROVER, req.id, notes="fairness report and baseline reviewed")
            was = f"replacing v{holder}" if holder is not None else "the first in production"
            lines.append(f"  production: {req.id} approved by ada ({was})")
        except BastionError as exc:
            registry.reject(APPROVER, req.id, notes=f"not approved: {exc.message[:200]}")
            lines.append(f"  production: {req.id} rejected: {exc.message[:160]}")
    return lines


def _exists(registry: ModelRegistry) -> bool:
    return any(m.name == MODEL_NAME for m in registry.list_models())
