"""Per-prediction explanations and global importance with SHAP.

The explainer follows the model:

* tree ensembles (scikit-learn trees and forests, gradient boosting, XGBoost, LightGBM,
  CatBoost) → ``shap.TreeExplainer`` (exact, fast); classifiers are explained in the
  model's own output space (probability for forests, log-odds for boosting);
* linear models (``sklearn.linear_model``) → ``shap.LinearExplainer`` over a background
  sample (log-odds for logistic regression);
* anything else with ``predict_proba``/``predict`` (pipelines included) →
  ``shap.PermutationExplainer`` on the positive-class probability, with a sampled
  background; its cost grows with features × background rows, so both are capped.

For each row: the base value, the prediction, every feature's contribution, and the top
positive and negative contributors. Global importance is the mean |SHAP| per feature
over a sample, the figure a model card shows.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from bastion.monitoring.errors import InvalidData, UnsupportedModel

ExplainerKind = Literal["tree", "linear", "permutation"]
TREE_MODULES = ("sklearn.ensemble", "sklearn.tree", "xgboost", "lightgbm", "catboost")


@dataclass
class Contribution:
    feature: str
    value: Any
    shap: float


@dataclass
class PredictionExplanation:
    row: Any
    prediction: float
    base_value: float
    contributions: list[Contribution]
    top_positive: list[Contribution]
    top_negative: list[Contribution]


@dataclass
class ExplanationReport:
    explainer: ExplainerKind
    output: str
    rows: list[PredictionExplanation] = field(default_factory=list)
    global_importance: list[tuple[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": "explanation",
            "explainer": self.explainer,
            "output": self.output,
            "rows": [asdict(r) for r in self.rows],
            "global_importance": [
                {"feature": f, "mean_abs_shap": v} for f, v in self.global_importance
            ],
        }


def explainer_kind(model: Any) -> ExplainerKind:
    module = type(model).__module__
    if module.startswith(TREE_MODULES) and hasattr(model, "predict"):
        name = type(model).__name__
        if "Tree" in name or "Forest" in name or "Boost" in name or "LGBM" in name or "XGB" in name:
            return "tree"
    if module.startswith("sklearn.linear_model") and hasattr(model, "coef_"):
        return "linear"
    if hasattr(model, "predict_proba") or hasattr(model, "predict"):
        return "permutation"
    raise UnsupportedModel(
        f"{type(model).__name__} has neither predict_proba nor predict; cannot explain it"
    )


def _class_index(model: Any, pos_label: Any) -> int:
    classes = list(getattr(model, "classes_", []))
    if pos_label is not None and pos_label in classes:
        return classes.index(pos_label)
    return len(classes) - 1 if classes else 0


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v if isinstance(v, int | float | str | bool) or v is None else str(v)


class Explainer:
    """Wraps the SHAP explainer chosen for ``model``; build once, explain many rows."""

    def __init__(
        self,
        model: Any,
        background: pd.DataFrame,
        *,
        pos_label: Any = None,
        max_background: int = 100,
        seed: int = 0,
    ) -> None:
        import shap

        if background.empty:
            raise InvalidData("the background data is empty; pass the training data or a sample")
        self.model = model
        self.features = [str(c) for c in background.columns]
        self.kind = explainer_kind(model)
        self.class_index = _class_index(model, pos_label)
        bg = background.sample(min(max_background, len(background)), random_state=seed)
        self.output = "raw"
        if self.kind == "tree":
            self._explainer = shap.TreeExplainer(model)
            self.output = "model output (probability or log-odds) of class index " + str(
                self.class_index
            )
        elif self.kind == "linear":
            self._explainer = shap.LinearExplainer(model, shap.maskers.Independent(bg))
            self.output = "margin (log-odds for logistic models)"
        else:
            columns = list(background.columns)
            if hasattr(model, "predict_proba"):
                idx = self.class_index

                def f(x: np.ndarray) -> np.ndarray:
                    return np.asarray(model.predict_proba(pd.DataFrame(x, columns=columns)))[:, idx]

                self.output = f"probability of class index {idx}"
            else:

                def f(x: np.ndarray) -> np.ndarray:
                    return np.asarray(model.predict(pd.DataFrame(x, columns=columns)), dtype=float)

                self.output = "prediction"
            self._explainer = shap.PermutationExplainer(
                f, shap.maskers.Independent(bg.to_numpy(), max_samples=max_background), seed=seed
            )

    def _values(self, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        data = rows if self.kind != "permutation" else rows.to_numpy()
        try:
            exp = self._explainer(data)
        except Exception as exc:  # SHAP raises many types on a model/data mismatch
            raise UnsupportedModel(
                f"SHAP could not explain this model on these rows ({type(exc).__name__}: {exc}); "
                "check the columns match the model's training data"
            ) from exc
        values = np.asarray(exp.values, dtype=np.float64)
        base = np.asarray(exp.base_values, dtype=np.float64)
        if values.ndim == 3:
            values = values[:, :, self.class_index]
            base = base[:, self.class_index] if base.ndim == 2 else base
        base = np.broadcast_to(base.reshape(-1) if base.ndim else base, (len(rows),))
        return values, base

    def explain(self, rows: pd.DataFrame, *, top_k: int = 5) -> list[PredictionExplanation]:
        values, base = self._values(rows)
        out = []
        for i, (label, row) in enumerate(rows.iterrows()):
            contribs = [
                Contribution(f, _jsonable(row.iloc[j]), float(values[i, j]))
                for j, f in enumerate(self.features)
            ]
            contribs.sort(key=lambda c: -abs(c.shap))
            pos = sorted((c for c in contribs if c.shap > 0), key=lambda c: -c.shap)[:top_k]
            neg = sorted((c for c in contribs if c.shap < 0), key=lambda c: c.shap)[:top_k]
            out.append(
                PredictionExplanation(
                    row=_jsonable(label),
                    prediction=float(base[i] + values[i].sum()),
                    base_value=float(base[i]),
                    contributions=contribs,
                    top_positive=pos,
                    top_negative=neg,
                )
            )
        return out

    def global_importance(
        self, data: pd.DataFrame, *, max_rows: int = 500, seed: int = 0
    ) -> list[tuple[str, float]]:
        sample = data.sample(min(max_rows, len(data)), random_state=seed)
        values, _ = self._values(sample)
        mean_abs = np.abs(values).mean(axis=0)
        order = np.argsort(-mean_abs)
        return [(self.features[i], float(mean_abs[i])) for i in order]


def explain_predictions(
    model: Any,
    data: pd.DataFrame,
    rows: list[Any] | None = None,
    *,
    top_k: int = 5,
    pos_label: Any = None,
    importance: bool = True,
    max_background: int = 100,
    max_importance_rows: int = 500,
) -> ExplanationReport:
    """Explain the rows labelled ``rows`` (index labels) of ``data``; ``data`` is also the
    background and the sample for global importance."""
    explainer = Explainer(model, data, pos_label=pos_label, max_background=max_background)
    report = ExplanationReport(explainer.kind, explainer.output)
    if rows:
        missing = [r for r in rows if r not in data.index]
        if missing:
            raise InvalidData(f"row(s) {missing} are not in the data (it has {len(data)} rows)")
        report.rows = explainer.explain(data.loc[rows], top_k=top_k)
    if importance:
        report.global_importance = explainer.global_importance(data, max_rows=max_importance_rows)
    return report
