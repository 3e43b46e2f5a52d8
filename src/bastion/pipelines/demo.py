"""The Adult income pipeline's own steps (what a team writes; Bastion's steps do the rest).

``train`` fits the income classifier on UCI Adult (the copy that ships with Bastion),
logs the run to MLflow as a data scientist would, and leaves the held-out rows and the
training rows as CSV files for the ``evaluate``, ``fairness`` and ``drift-baseline``
steps. ``pipelines/adult-income.yaml`` wires them together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def train(
    workdir: str,
    mlflow_tracking_uri: str,
    seed: int = 0,
    mitigate: bool = True,
    rows: int | None = None,
) -> dict[str, Any]:
    from bastion.registry import demo

    frame = demo.load_adult()
    if rows is not None:
        frame = frame.sample(n=min(rows, len(frame)), random_state=seed)
    trained = demo.train(frame, mitigate=mitigate, seed=seed)
    folder = Path(workdir)
    artifacts = folder / "mlartifacts"
    run_id = demo.log_to_mlflow(
        mlflow_tracking_uri, artifacts, trained, frame, "pipeline " + folder.parent.name
    )
    holdout = trained.test.assign(**{demo.TARGET: trained.y_test.to_numpy()})
    holdout_path, train_path = folder / "holdout.csv", folder / "train.csv"
    holdout.to_csv(holdout_path, index=False)
    trained.train.to_csv(train_path, index=False)
    return {
        "run_id": run_id,
        "model_uri": f"runs:/{run_id}/model",
        "metrics": trained.metrics,
        "holdout": str(holdout_path),
        "train": str(train_path),
        "rows": len(frame),
    }


def slow(seconds: float = 0.0, **_: Any) -> dict[str, Any]:
    """A no-op step (for engine overhead and timeouts): sleeps, returns its argument."""
    import time

    time.sleep(seconds)
    return {"slept": seconds}
