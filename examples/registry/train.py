"""Train a small classifier and log it to MLflow, as a data scientist would; print the run id.

    RUN_ID=$(uv run python examples/registry/train.py)
    uv run bastion models register cancer --run "$RUN_ID" --semver 1.0.0 --by you

Offline: the data (breast cancer, 569 rows) ships with scikit-learn. The run goes to
the MLflow store Bastion reads (``BASTION_MLFLOW_TRACKING_URI``, by default the SQLite
store under ``BASTION_HOME``, ``./.bastion``), so ``bastion models register --run``
finds it. The run id is the only line on stdout; the rest goes to stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from bastion.settings import Settings, quiet_mlflow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--c", type=float, default=1.0, help="inverse regularisation strength")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--runs", type=int, default=1, help="log this many runs (seeds SEED, SEED+1, ...)"
    )
    args = parser.parse_args()

    settings = Settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    quiet_mlflow()  # before MLflow's first import: it reports usage unless told not to
    import mlflow
    from sklearn.datasets import load_breast_cancer

    logging.getLogger("mlflow").setLevel(logging.ERROR)  # its notes on pickling are noise here
    mlflow.set_tracking_uri(settings.resolved_mlflow_tracking_uri)
    experiment = "examples"
    if mlflow.get_experiment_by_name(experiment) is None:
        # Artifacts under Bastion's home, not ./mlruns wherever this happens to run.
        location = (settings.home / "mlartifacts" / experiment).resolve().as_uri()
        mlflow.create_experiment(experiment, artifact_location=location)
    mlflow.set_experiment(experiment)

    frame = load_breast_cancer(as_frame=True).frame
    X, y = frame.drop(columns="target"), frame["target"]
    for seed in range(args.seed, args.seed + args.runs):
        print(train_and_log(frame, X, y, args.c, seed))


def train_and_log(frame: Any, X: Any, y: Any, c: float, seed: int) -> str:
    """One run: fit, log params, metrics, the training data and the model; its id."""
    import mlflow
    import mlflow.sklearn
    import sklearn
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=seed, stratify=y
    )
    with mlflow.start_run(run_name=f"logreg C={c} seed={seed}") as run:
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000))
        model.fit(X_train, y_train)
        mlflow.log_params({"C": c, "seed": seed, "model": "logistic_regression"})
        mlflow.log_metrics(
            {
                "accuracy": float(accuracy_score(y_test, model.predict(X_test))),
                "roc_auc": float(roc_auc_score(y_test, model.predict_proba(X_test)[:, 1])),
            }
        )
        dataset = mlflow.data.from_pandas(  # type: ignore[attr-defined]
            frame.astype("float64"), name="breast-cancer", targets="target"
        )
        mlflow.log_input(dataset, context="training")
        mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(X_test, model.predict(X_test)),
            # cloudpickle and written-out requirements: no package-manager call, offline
            serialization_format="cloudpickle",
            pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
        )
        print(f"logged run {run.info.run_id} to {mlflow.get_tracking_uri()}", file=sys.stderr)
        return str(run.info.run_id)


if __name__ == "__main__":
    main()
