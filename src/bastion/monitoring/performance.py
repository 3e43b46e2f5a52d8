"""Model performance once labels arrive, by time window and segment, against a baseline.

Classification: accuracy, precision, recall, F1 (binary, or macro for multiclass), ROC AUC
when scores are given, and calibration (Brier score and expected calibration error over
``calibration_bins`` equal-width bins). Regression: MAE, RMSE. All metrics come from
``sklearn.metrics``. A window or segment whose metric falls more than its tolerance
below the baseline (or whose error grows by more than ``relative_error_tolerance``)
raises a finding; windows smaller than ``min_rows`` are reported but not judged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from bastion.monitoring.config import PerformanceSettings, Severity
from bastion.monitoring.errors import ColumnNotFound, InvalidData
from bastion.monitoring.findings import Finding

Task = Literal["classification", "regression"]
HIGHER_IS_BETTER = {"accuracy", "precision", "recall", "f1", "roc_auc"}
LOWER_IS_BETTER = {"mae", "rmse", "brier", "ece"}


def expected_calibration_error(
    y_true: npt.ArrayLike, y_score: npt.ArrayLike, bins: int = 10
) -> float:
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_score, dtype=np.float64)
    idx = np.minimum((p * bins).astype(np.int64), bins - 1)
    count = np.bincount(idx, minlength=bins)
    conf = np.bincount(idx, weights=p, minlength=bins)
    acc = np.bincount(idx, weights=y, minlength=bins)
    used = count > 0
    return float(np.sum(np.abs(acc[used] - conf[used])) / max(len(y), 1))


def classification_metrics(
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike,
    y_score: npt.ArrayLike | None = None,
    *,
    pos_label: Any = 1,
    calibration_bins: int = 10,
) -> dict[str, float]:
    from sklearn import metrics

    yt, yp = np.asarray(y_true), np.asarray(y_pred)
    labels = np.unique(np.r_[yt, yp])
    binary = len(labels) <= 2 and pos_label in labels
    avg = "binary" if binary else "macro"
    kw: dict[str, Any] = {"average": avg, "zero_division": 0}
    if binary:
        kw["pos_label"] = pos_label
    out = {
        "accuracy": float(metrics.accuracy_score(yt, yp)),
        "precision": float(metrics.precision_score(yt, yp, **kw)),
        "recall": float(metrics.recall_score(yt, yp, **kw)),
        "f1": float(metrics.f1_score(yt, yp, **kw)),
    }
    if y_score is not None and binary:
        ys = np.asarray(y_score, dtype=np.float64)
        positive = (yt == pos_label).astype(np.int64)
        if 0 < positive.sum() < len(positive):
            out["roc_auc"] = float(metrics.roc_auc_score(positive, ys))
        if ys.min() >= 0 and ys.max() <= 1:
            out["brier"] = float(metrics.brier_score_loss(positive, ys))
            out["ece"] = expected_calibration_error(positive, ys, calibration_bins)
    return out


def regression_metrics(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> dict[str, float]:
    from sklearn import metrics

    return {
        "mae": float(metrics.mean_absolute_error(y_true, y_pred)),
        "rmse": float(math.sqrt(metrics.mean_squared_error(y_true, y_pred))),
    }


@dataclass
class PerformanceReport:
    task: Task
    baseline: dict[str, float]
    overall: dict[str, float]
    windows: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not any(f.severity != Severity.info for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": "performance",
            "task": self.task,
            "passed": self.passed,
            "baseline": self.baseline,
            "overall": self.overall,
            "windows": self.windows,
            "findings": [f.to_dict() for f in self.findings],
        }


def _metrics(
    frame: pd.DataFrame,
    task: Task,
    target: str,
    prediction: str,
    score: str | None,
    settings: PerformanceSettings,
    pos_label: Any,
) -> dict[str, float]:
    if task == "regression":
        return regression_metrics(frame[target], frame[prediction])
    return classification_metrics(
        frame[target],
        frame[prediction],
        frame[score] if score else None,
        pos_label=pos_label,
        calibration_bins=settings.calibration_bins,
    )


def degradation(
    name: str, metrics: dict[str, float], baseline: dict[str, float], settings: PerformanceSettings
) -> list[Finding]:
    """Findings for every metric worse than the baseline by more than its tolerance."""
    out = []
    for metric, base in baseline.items():
        if metric not in metrics or not math.isfinite(base):
            continue
        now = metrics[metric]
        if metric in HIGHER_IS_BETTER:
            tol = settings.tolerances.get(metric)
            if tol is None:
                continue
            drop = base - now
        elif metric in ("mae", "rmse"):
            tol = settings.relative_error_tolerance * abs(base)
            drop = now - base
        else:
            continue
        if drop > tol:
            severity = (
                Severity.critical if drop > settings.critical_factor * tol else Severity.warning
            )
            out.append(
                Finding(
                    "performance",
                    name,
                    f"{metric}_degraded",
                    severity,
                    f"{name}: {metric} {now:.4g} vs baseline {base:.4g} (tolerance {tol:.3g})",
                    {"metric": metric, "value": now, "baseline": base, "tolerance": tol},
                )
            )
    return out


def evaluate_performance(
    current: pd.DataFrame,
    *,
    target: str,
    prediction: str,
    score: str | None = None,
    baseline: pd.DataFrame | dict[str, float] | None = None,
    task: Task | None = None,
    time_column: str | None = None,
    window: str = "W",
    segments: Sequence[str] = (),
    pos_label: Any = 1,
    settings: PerformanceSettings | None = None,
) -> PerformanceReport:
    """Metrics overall, per time window (pandas offset alias, e.g. ``D``, ``W``, ``MS``)
    and per segment value, each judged against the baseline metrics."""
    s = settings or PerformanceSettings()
    needed = [
        target,
        prediction,
        *([score] if score else []),
        *([time_column] if time_column else []),
        *segments,
    ]
    missing = [c for c in needed if c not in current.columns]
    if missing:
        raise ColumnNotFound(f"no column(s) {missing} in the data; it has {list(current.columns)}")
    data = current.dropna(subset=[target, prediction])
    if data.empty:
        raise InvalidData("no rows with both a label and a prediction; wait for labels")
    if task is None:
        numeric = pd.api.types.is_float_dtype(data[target]) and data[target].nunique() > 20
        task = "regression" if numeric else "classification"
    if isinstance(baseline, pd.DataFrame):
        base = _metrics(
            baseline.dropna(subset=[target, prediction]),
            task,
            target,
            prediction,
            score,
            s,
            pos_label,
        )
    else:
        base = dict(baseline or {})
    overall = _metrics(data, task, target, prediction, score, s, pos_label)
    findings = degradation("overall", overall, base, s) if base else []
    windows: list[dict[str, Any]] = []
    groups: list[tuple[str, str, pd.DataFrame]] = []
    if time_column:
        times = pd.to_datetime(data[time_column])
        for key, part in data.groupby(times.dt.to_period(window).astype(str), sort=True):
            groups.append(("window", str(key), part))
    for seg in segments:
        for key, part in data.groupby(seg, sort=True, observed=True):
            groups.append((seg, str(key), part))
    for kind, key, part in groups:
        judged = len(part) >= s.min_rows
        m = _metrics(part, task, target, prediction, score, s, pos_label)
        label = f"{kind}={key}"
        windows.append({"by": kind, "key": key, "rows": len(part), "judged": judged, "metrics": m})
        if judged and base:
            findings += degradation(label, m, base, s)
    return PerformanceReport(task, base, overall, windows, findings)


@dataclass
class Judged:
    """A performance check's report, with the positive class each column was read with
    (None for a regression or a multiclass task) and the rows left out for a missing
    label or prediction."""

    report: PerformanceReport
    positive: dict[str, Any]
    dropped: int = 0


def judge_labelled(
    current: pd.DataFrame,
    *,
    target: str,
    prediction: str,
    score: str | None = None,
    baseline: pd.DataFrame | dict[str, float] | None = None,
    task: Task | None = None,
    positive: str | None = None,
    prediction_positive: str | None = None,
    time_column: str | None = None,
    window: str = "W",
    segments: Sequence[str] = (),
    settings: PerformanceSettings | None = None,
) -> Judged:
    """:func:`evaluate_performance` on labels as they come: the task guessed when not
    given, binary labels resolved to 0/1 on both sides (``>50K`` against 0/1), a
    multiclass task compared as text. ``bastion performance check`` and the server's
    scheduled checks both judge through here."""
    from bastion.monitoring.labels import binary_or_multiclass

    if task is None:
        numeric = pd.api.types.is_float_dtype(current[target]) and current[target].nunique() > 20
        task = "regression" if numeric else "classification"
    positive_of: dict[str, Any] = {}
    dropped = 0
    if task == "classification":
        current, t_label, p_label, dropped = binary_or_multiclass(
            current, target, prediction, positive, prediction_positive
        )
        positive_of = {target: t_label, prediction: p_label}
        if isinstance(baseline, pd.DataFrame):
            baseline = binary_or_multiclass(
                baseline, target, prediction, positive, prediction_positive
            )[0]
    report = evaluate_performance(
        current,
        target=target,
        prediction=prediction,
        score=score,
        baseline=baseline,
        task=task,
        time_column=time_column,
        window=window,
        segments=segments,
        pos_label=1,
        settings=settings,
    )
    return Judged(report, positive_of, dropped)
