"""Group fairness of a classifier's decisions with Fairlearn's ``MetricFrame``.

Per group of each sensitive feature (and, when ``intersectional``, of their combination):
selection rate, true and false positive rates, count. Across groups: demographic parity
difference and ratio, equalized odds difference, and the four-fifths rule (lowest
selection rate ≥ 0.8 × the highest). Groups smaller than ``min_group_size`` are listed
but excluded from the judged figures, so one tiny group cannot fail a release alone.

The :class:`FairnessReport` is JSON (``to_dict``) so the model registry can store it as
evidence and require ``passed`` before promotion.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pandas as pd

from bastion.monitoring.config import FairnessThresholds, Severity
from bastion.monitoring.errors import ColumnNotFound, InvalidData
from bastion.monitoring.findings import Finding

FORMAT = "bastion.fairness/1"


@dataclass
class GroupTable:
    """Metrics by group for one sensitive feature or an intersection."""

    features: list[str]
    groups: list[dict[str, Any]]
    demographic_parity_difference: float
    demographic_parity_ratio: float
    equalized_odds_difference: float
    excluded: list[str]


@dataclass
class FairnessCheck:
    metric: str
    features: list[str]
    value: float
    threshold: float
    comparison: str
    passed: bool


@dataclass
class FairnessReport:
    tables: list[GroupTable]
    checks: list[FairnessCheck]
    thresholds: FairnessThresholds
    n_rows: int
    findings: list[Finding] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        def clean(v: Any) -> Any:
            if isinstance(v, float) and not math.isfinite(v):
                return None
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            if isinstance(v, list):
                return [clean(x) for x in v]
            return v

        return cast(
            dict[str, Any],
            clean(
                {
                    "format": FORMAT,
                    "check": "fairness",
                    "passed": self.passed,
                    "n_rows": self.n_rows,
                    "thresholds": self.thresholds.model_dump(mode="json"),
                    "checks": [c.__dict__ for c in self.checks],
                    "tables": [t.__dict__ for t in self.tables],
                    "findings": [f.to_dict() for f in self.findings],
                }
            ),
        )


def _table(
    y_true: np.ndarray, y_pred: np.ndarray, sensitive: pd.DataFrame, t: FairnessThresholds
) -> GroupTable:
    from fairlearn.metrics import (
        MetricFrame,
        count,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )

    frame = MetricFrame(
        metrics={
            "count": count,
            "selection_rate": selection_rate,
            "true_positive_rate": true_positive_rate,
            "false_positive_rate": false_positive_rate,
        },
        y_true=y_true,
        y_pred=y_pred,
        sensitive_features=sensitive,
    )
    by = frame.by_group.reset_index()
    features = list(sensitive.columns)
    by["group"] = by[features].astype(str).agg(" & ".join, axis=1)
    big = by[by["count"] >= t.min_group_size]
    excluded = by.loc[by["count"] < t.min_group_size, "group"].tolist()
    judged = big if len(big) >= 2 else by

    def spread(col: str) -> float:
        vals = judged[col].dropna()
        return float(vals.max() - vals.min()) if len(vals) else 0.0

    sel = judged["selection_rate"]
    ratio = float(sel.min() / sel.max()) if sel.max() > 0 else 1.0
    groups = [
        {
            "group": row["group"],
            **{f: str(row[f]) for f in features},
            "count": int(row["count"]),
            "selection_rate": float(row["selection_rate"]),
            "true_positive_rate": float(row["true_positive_rate"]),
            "false_positive_rate": float(row["false_positive_rate"]),
            "judged": bool(row["count"] >= t.min_group_size),
        }
        for _, row in by.iterrows()
    ]
    return GroupTable(
        features=features,
        groups=groups,
        demographic_parity_difference=spread("selection_rate"),
        demographic_parity_ratio=ratio,
        equalized_odds_difference=max(spread("true_positive_rate"), spread("false_positive_rate")),
        excluded=excluded,
    )


def fairness_report(
    y_true: Sequence[Any] | np.ndarray | pd.Series,
    y_pred: Sequence[Any] | np.ndarray | pd.Series,
    sensitive: pd.DataFrame,
    *,
    thresholds: FairnessThresholds | None = None,
    pos_label: Any = 1,
) -> FairnessReport:
    """Fairness of binary decisions ``y_pred`` (labels, not scores) across groups."""
    t = thresholds or FairnessThresholds()
    yt = np.asarray(y_true)
    yp = np.asarray(y_pred)
    if len(yt) != len(yp) or len(yt) != len(sensitive):
        raise InvalidData("labels, predictions and sensitive features must have the same length")
    if len(yt) == 0:
        raise InvalidData("no rows to judge; give labelled predictions")
    labels = set(np.unique(np.r_[yt, yp]).tolist())
    if len(labels) > 2:
        raise InvalidData(
            f"fairness needs binary decisions; found labels {sorted(map(str, labels))[:10]}"
        )
    yt = (yt == pos_label).astype(np.int64)
    yp = (yp == pos_label).astype(np.int64)
    sens = sensitive.reset_index(drop=True).astype(object).fillna("<missing>").astype(str)
    tables = [_table(yt, yp, sens[[c]], t) for c in sens.columns]
    if t.intersectional and sens.shape[1] > 1:
        tables.append(_table(yt, yp, sens, t))
    checks: list[FairnessCheck] = []
    for tab in tables:
        checks += [
            FairnessCheck(
                "demographic_parity_difference",
                tab.features,
                tab.demographic_parity_difference,
                t.demographic_parity_difference,
                "<=",
                tab.demographic_parity_difference <= t.demographic_parity_difference,
            ),
            FairnessCheck(
                "demographic_parity_ratio",
                tab.features,
                tab.demographic_parity_ratio,
                t.demographic_parity_ratio,
                ">=",
                tab.demographic_parity_ratio >= t.demographic_parity_ratio,
            ),
            FairnessCheck(
                "four_fifths",
                tab.features,
                tab.demographic_parity_ratio,
                t.four_fifths,
                ">=",
                tab.demographic_parity_ratio >= t.four_fifths,
            ),
            FairnessCheck(
                "equalized_odds_difference",
                tab.features,
                tab.equalized_odds_difference,
                t.equalized_odds_difference,
                "<=",
                tab.equalized_odds_difference <= t.equalized_odds_difference,
            ),
        ]
    findings = [
        Finding(
            "fairness",
            " & ".join(c.features),
            c.metric,
            Severity.critical,
            f"{c.metric} over {' & '.join(c.features)} is {c.value:.3f} "
            f"(must be {c.comparison} {c.threshold:g})",
            {"value": c.value, "threshold": c.threshold},
        )
        for c in checks
        if not c.passed
    ]
    return FairnessReport(tables, checks, t, len(yt), findings)


def fairness_from_frame(
    data: pd.DataFrame,
    *,
    target: str,
    prediction: str,
    sensitive: Sequence[str],
    thresholds: FairnessThresholds | None = None,
    pos_label: Any = 1,
) -> FairnessReport:
    missing = [c for c in [target, prediction, *sensitive] if c not in data.columns]
    if missing:
        raise ColumnNotFound(f"no column(s) {missing} in the data; it has {list(data.columns)}")
    if not sensitive:
        raise InvalidData("name at least one sensitive feature")
    return fairness_report(
        data[target],
        data[prediction],
        data[list(sensitive)],
        thresholds=thresholds,
        pos_label=pos_label,
    )
