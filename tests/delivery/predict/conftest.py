"""Rollouts through ``POST /predict``: serving's fixtures (a real MLflow model behind the
``production`` alias) with the rollouts' own traffic plan."""

from __future__ import annotations

from serving.conftest import (  # noqa: F401  (fixtures)
    adult_frame,
    income_v1,
    income_v2,
    registry,
    served_v1,
    serving_mlflow_template,
)
