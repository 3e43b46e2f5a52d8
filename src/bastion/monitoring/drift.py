"""Column and dataset drift between a reference profile and a current one.

The default method choice reproduces Evidently's ``DataDriftPreset`` so verdicts can be
compared (``n`` counts non-missing reference values, ``distinct`` the distinct values of
reference ∪ current)::

    reference n ≤ 1000   numeric, distinct > 5   KS test             drift if p < 0.05
                         otherwise, distinct > 2 chi-square test     drift if p < 0.05
                         otherwise               two-proportion Z    drift if p < 0.05
    reference n > 1000   numeric, distinct > 5   Wasserstein / std   drift if ≥ 0.1
                         otherwise               Jensen–Shannon      drift if ≥ 0.1
    dataset drift when ≥ 50 % of the (non-prediction) columns drift.

Every choice is overridable per column (``DriftSettings.column_methods``) and every
threshold too. Whatever the method, each column also reports PSI on reference quantile
bins (read < 0.1 none, 0.1–0.25 moderate, ≥ 0.25 significant; the policy's retrain signal
is PSI > ``psi_retrain``), the Jensen–Shannon distance, the missing-rate change and new
or vanished categories. Differences from Evidently: Jensen–Shannon on a numeric column
with more than 20 distinct reference values uses the PSI quantile bins (Evidently uses
Sturges bins over both samples); PSI uses reference quantile bins (Evidently's are
equal-width over both).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import pandas as pd

from bastion.monitoring import statistics as st
from bastion.monitoring.config import DriftSettings, Severity
from bastion.monitoring.errors import ColumnNotFound, InvalidData
from bastion.monitoring.findings import Finding
from bastion.monitoring.io import DEFAULT_BATCH_ROWS, TableSource
from bastion.monitoring.profiles import Profile, Progress, fit_reference, profile_current
from bastion.monitoring.sketches import CategoricalSketch, ColumnSketch, FloatArray, NumericSketch

Role = Literal["feature", "prediction"]
P_VALUE_METHODS = frozenset({"ks", "chisquare", "z"})


@dataclass
class ColumnDrift:
    column: str
    kind: str
    role: Role
    method: str
    score: float
    threshold: float
    drifted: bool
    n_reference: int
    n_current: int
    psi: float
    psi_reading: str
    jensenshannon: float
    wasserstein_normed: float | None
    missing_reference: float
    missing_current: float
    new_categories: list[str] = field(default_factory=list)
    vanished_categories: list[str] = field(default_factory=list)
    exact: bool = True
    note: str = ""
    chart: dict[str, Any] = field(default_factory=dict)

    @property
    def score_name(self) -> str:
        return "p_value" if self.method in P_VALUE_METHODS else "distance"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["score_name"] = self.score_name
        return cast(dict[str, Any], _jsonable(out))


@dataclass
class DriftReport:
    columns: list[ColumnDrift]
    drift_share: float
    dataset_drift: bool
    settings: DriftSettings
    n_reference: int
    n_current: int
    findings: list[Finding] = field(default_factory=list)
    #: columns left out (date/time, identifiers), with the reason
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted and c.role == "feature"]

    @property
    def prediction_drift(self) -> bool:
        return any(c.drifted for c in self.columns if c.role == "prediction")

    @property
    def passed(self) -> bool:
        """The dataset rule: no dataset drift and no prediction drift."""
        return not self.dataset_drift and not self.prediction_drift

    @property
    def retrain_columns(self) -> list[str]:
        """Columns whose PSI is above the policy's retrain signal."""
        return [c.column for c in self.columns if c.psi > self.settings.psi_retrain]

    def failed(self, fail_on: Literal["column", "dataset"] = "dataset") -> bool:
        """``dataset``: dataset or prediction drift fails; ``column``: any drifted column."""
        if fail_on == "column":
            return bool(self.drifted_columns) or self.prediction_drift
        return not self.passed

    def column(self, name: str) -> ColumnDrift:
        for c in self.columns:
            if c.column == name:
                return c
        raise ColumnNotFound(f"the report has no column {name!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": "drift",
            "passed": self.passed,
            "dataset_drift": self.dataset_drift,
            "drift_share": self.drift_share,
            "dataset_drift_share": self.settings.dataset_drift_share,
            "prediction_drift": self.prediction_drift,
            "drifted_columns": self.drifted_columns,
            "retrain_columns": self.retrain_columns,
            "skipped_columns": self.skipped,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "settings": self.settings.model_dump(mode="json"),
            "columns": [c.to_dict() for c in self.columns],
            "findings": [f.to_dict() for f in self.findings],
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    return value


def psi_reading(value: float) -> str:
    if value < 0.1:
        return "none"
    return "moderate" if value < 0.25 else "significant"


# --- methods: (reference, current, settings) -> (score, drifted-at-threshold) ------------
@dataclass(frozen=True)
class _Pair:
    ref: ColumnSketch
    cur: ColumnSketch

    def counts(self) -> tuple[FloatArray, FloatArray]:
        """Counts over distinct values (categories, or a numeric column's cells)."""
        if isinstance(self.ref, NumericSketch) and isinstance(self.cur, NumericSketch):
            return st.numeric_value_counts(self.ref, self.cur)
        assert isinstance(self.ref, CategoricalSketch)
        assert isinstance(self.cur, CategoricalSketch)
        _, r, c = st.category_counts(self.ref, self.cur)
        return r, c

    def binned(self) -> tuple[FloatArray, FloatArray]:
        """Counts on the PSI bins for a numeric column; per category otherwise."""
        if isinstance(self.ref, NumericSketch) and isinstance(self.cur, NumericSketch):
            return (
                self.ref.psi_counts().astype(np.float64),
                self.cur.psi_counts().astype(np.float64),
            )
        return self.counts()

    def numeric(self) -> tuple[NumericSketch, NumericSketch]:
        if not (isinstance(self.ref, NumericSketch) and isinstance(self.cur, NumericSketch)):
            raise InvalidData(
                "this method needs a numeric column; choose chisquare or jensenshannon"
            )
        return self.ref, self.cur


def _ks(p: _Pair) -> float:
    ref, cur = p.numeric()
    return st.ks_test(ref, cur)[1]


def _chisquare(p: _Pair) -> float:
    return st.chisquare_pvalue(*p.counts())[1]


def _z(p: _Pair) -> float:
    return st.proportions_z_pvalue(*p.counts())[1]


def _wasserstein(p: _Pair) -> float:
    return st.wasserstein_normed(*p.numeric())


def _jensenshannon(p: _Pair) -> float:
    if isinstance(p.ref, NumericSketch) and p.ref.distinct_lower_bound() > 20:
        return st.jensenshannon(*p.binned())
    return st.jensenshannon(*p.counts())


def _psi(p: _Pair) -> float:
    return st.psi(*p.binned())


METHODS: dict[str, Callable[[_Pair], float]] = {
    "ks": _ks,
    "chisquare": _chisquare,
    "z": _z,
    "wasserstein": _wasserstein,
    "jensenshannon": _jensenshannon,
    "psi": _psi,
}


def _threshold(method: str, column: str, s: DriftSettings) -> float:
    if column in s.column_thresholds:
        return s.column_thresholds[column]
    if method in P_VALUE_METHODS:
        return s.p_value
    return {
        "wasserstein": s.wasserstein_threshold,
        "jensenshannon": s.jensenshannon_threshold,
        "psi": s.psi_threshold,
    }[method]


def _distinct(ref: ColumnSketch, cur: ColumnSketch) -> int:
    if isinstance(ref, NumericSketch) and isinstance(cur, NumericSketch):
        return ref.merge(cur).distinct_lower_bound()
    assert isinstance(ref, CategoricalSketch)
    assert isinstance(cur, CategoricalSketch)
    return len(set(ref.counts) | set(cur.counts))


def choose_method(ref: ColumnSketch, cur: ColumnSketch, column: str, s: DriftSettings) -> str:
    """The method for a column: the override if any, else Evidently's rule (module doc)."""
    chosen = s.column_methods.get(column, s.method)
    if chosen != "auto":
        return chosen
    distinct = _distinct(ref, cur)
    numeric = isinstance(ref, NumericSketch) and distinct > 5
    if ref.n <= s.small_reference_rows:
        if numeric:
            return "ks"
        return "chisquare" if distinct > 2 else "z"
    return "wasserstein" if numeric else "jensenshannon"


def _chart(p: _Pair) -> dict[str, Any]:
    if isinstance(p.ref, NumericSketch):
        ref, cur = p.binned()
        cuts = p.ref.bins.psi_cuts
        cur_max = p.cur.max if isinstance(p.cur, NumericSketch) and p.cur.n else p.ref.max
        bounds = [p.ref.min, *cuts.tolist(), max(p.ref.max, cur_max)]
        labels = (
            [f"≤ {b:.4g}" for b in bounds[1:-1]] + [f"> {bounds[-2]:.4g}"] if cuts.size else ["all"]
        )
    else:
        assert isinstance(p.ref, CategoricalSketch)
        assert isinstance(p.cur, CategoricalSketch)
        keys, ref, cur = st.category_counts(p.ref, p.cur)
        order = np.argsort(-(ref / max(ref.sum(), 1) + cur / max(cur.sum(), 1)))[:30]
        labels = [keys[i] for i in order]
        ref, cur = ref[order], cur[order]
    return {
        "labels": labels,
        "reference": (ref / max(ref.sum(), 1)).round(6).tolist(),
        "current": (cur / max(cur.sum(), 1)).round(6).tolist(),
    }


def _missing_rate(sketch: ColumnSketch) -> float:
    total = sketch.n + sketch.n_missing
    return sketch.n_missing / total if total else 0.0


def column_drift(
    column: str,
    ref: ColumnSketch,
    cur: ColumnSketch,
    settings: DriftSettings,
    role: Role = "feature",
) -> ColumnDrift:
    pair = _Pair(ref, cur)
    miss_r, miss_c = _missing_rate(ref), _missing_rate(cur)
    if ref.n == 0 or cur.n == 0:
        side = "reference" if ref.n == 0 else "current"
        return ColumnDrift(
            column,
            ref.kind,
            role,
            "none",
            math.nan,
            math.nan,
            False,
            ref.n,
            cur.n,
            0.0,
            "none",
            0.0,
            None,
            miss_r,
            miss_c,
            note=f"no non-missing values in the {side}; drift not judged",
        )
    method = choose_method(ref, cur, column, settings)
    if method not in METHODS:
        raise InvalidData(f"unknown drift method {method!r}; choose one of {sorted(METHODS)}")
    score = METHODS[method](pair)
    threshold = _threshold(method, column, settings)
    drifted = score < threshold if method in P_VALUE_METHODS else score >= threshold
    psi = st.psi(*pair.binned())
    new: list[str] = []
    vanished: list[str] = []
    exact = True
    wn: float | None = None
    if isinstance(ref, NumericSketch) and isinstance(cur, NumericSketch):
        wn = score if method == "wasserstein" else st.wasserstein_normed(ref, cur)
        exact = method not in ("ks", "wasserstein") or (method == "ks" and ref.exact_reference())
    else:
        assert isinstance(ref, CategoricalSketch)
        assert isinstance(cur, CategoricalSketch)
        new = sorted(set(cur.counts) - set(ref.counts))
        vanished = sorted(set(ref.counts) - set(cur.counts))
    return ColumnDrift(
        column=column,
        kind=ref.kind,
        role=role,
        method=method,
        score=float(score),
        threshold=threshold,
        drifted=bool(drifted),
        n_reference=ref.n,
        n_current=cur.n,
        psi=psi,
        psi_reading=psi_reading(psi),
        jensenshannon=_jensenshannon(pair),
        wasserstein_normed=wn,
        missing_reference=miss_r,
        missing_current=miss_c,
        new_categories=new[:100],
        vanished_categories=vanished[:100],
        exact=exact,
        chart=_chart(pair),
    )


def _findings(columns: list[ColumnDrift], report: DriftReport) -> list[Finding]:
    s = report.settings
    out: list[Finding] = []
    for c in columns:
        check: Any = "prediction" if c.role == "prediction" else "drift"
        if c.drifted:
            out.append(
                Finding(
                    check,
                    c.column,
                    "column_drift",
                    Severity.critical if c.role == "prediction" else Severity.warning,
                    f"{c.column} drifted: {c.method} {c.score_name} {c.score:.4g} "
                    f"(threshold {c.threshold:g})",
                    {"method": c.method, "score": c.score, "threshold": c.threshold},
                )
            )
        if c.psi > s.psi_retrain:
            out.append(
                Finding(
                    check,
                    c.column,
                    "retrain_signal",
                    Severity.critical if c.psi >= 0.25 else Severity.warning,
                    f"{c.column}: PSI {c.psi:.3f} is above the retrain signal "
                    f"(PSI > {s.psi_retrain:g})",
                    {"psi": c.psi, "psi_retrain": s.psi_retrain},
                )
            )
        change = c.missing_current - c.missing_reference
        if abs(change) > s.missing_rate_change:
            out.append(
                Finding(
                    check,
                    c.column,
                    "missing_rate",
                    Severity.warning,
                    f"{c.column}: missing values "
                    f"{c.missing_reference:.1%} → {c.missing_current:.1%}",
                    {"reference": c.missing_reference, "current": c.missing_current},
                )
            )
        if c.new_categories:
            out.append(
                Finding(
                    check,
                    c.column,
                    "new_categories",
                    Severity.info,
                    f"{c.column}: {len(c.new_categories)} categories unseen in the reference",
                    {"categories": c.new_categories[:20]},
                )
            )
        if c.vanished_categories:
            out.append(
                Finding(
                    check,
                    c.column,
                    "vanished_categories",
                    Severity.info,
                    f"{c.column}: {len(c.vanished_categories)} reference categories are absent",
                    {"categories": c.vanished_categories[:20]},
                )
            )
    if report.dataset_drift:
        out.append(
            Finding(
                "drift",
                "dataset",
                "dataset_drift",
                Severity.critical,
                f"dataset drift: {report.drift_share:.0%} of columns drifted "
                f"(threshold {s.dataset_drift_share:.0%}): {', '.join(report.drifted_columns)}",
                {"drift_share": report.drift_share, "columns": report.drifted_columns},
            )
        )
    return out


def compare(
    reference: Profile,
    current: Profile,
    *,
    settings: DriftSettings | None = None,
    columns: Sequence[str] | None = None,
    prediction: Sequence[str] = (),
) -> DriftReport:
    """Drift of every column (or ``columns``) of ``current`` against ``reference``."""
    s = settings or DriftSettings()
    names = list(columns) if columns else list(reference.columns)
    missing = [
        n for n in [*names, *prediction] if n not in reference.columns or n not in current.columns
    ]
    if missing:
        left_out = {n: reference.skipped[n] for n in missing if n in reference.skipped}
        if left_out:
            reasons = "; ".join(f"{n}: {r}" for n, r in left_out.items())
            raise ColumnNotFound(
                f"column(s) {sorted(left_out)} were left out of the reference profile "
                f"({reasons}); profile the reference again with --keep to compare them",
                columns=missing,
            )
        raise ColumnNotFound(f"column(s) {missing} are not in both profiles", columns=missing)
    results = [
        column_drift(n, reference.columns[n], current.columns[n], s)
        for n in names
        if n not in prediction
    ]
    results += [
        column_drift(n, reference.columns[n], current.columns[n], s, role="prediction")
        for n in prediction
    ]
    judged = [c for c in results if c.role == "feature" and c.method != "none"]
    share = sum(c.drifted for c in judged) / len(judged) if judged else 0.0
    report = DriftReport(
        columns=results,
        drift_share=share,
        dataset_drift=bool(judged) and share >= s.dataset_drift_share,
        settings=s,
        n_reference=reference.n_rows,
        n_current=current.n_rows,
        skipped=dict(reference.skipped),
    )
    report.findings = _findings(results, report)
    return report


def detect_drift(
    reference: pd.DataFrame | str | Path | TableSource | Profile,
    current: pd.DataFrame | str | Path | TableSource | Profile,
    *,
    columns: Sequence[str] | None = None,
    prediction: Sequence[str] = (),
    categorical: Sequence[str] = (),
    numerical: Sequence[str] = (),
    settings: DriftSettings | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    progress: Progress | None = None,
    keep: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> DriftReport:
    """Profile both sides (streamed in ``batch_rows`` windows) and compare them.

    Date/time and identifier columns are left out unless named (``columns``,
    ``prediction``, ``keep``); see :mod:`bastion.monitoring.columns`."""
    s = settings or DriftSettings()
    wanted = [*columns, *[p for p in prediction if p not in columns]] if columns else None
    ref = (
        reference
        if isinstance(reference, Profile)
        else fit_reference(
            reference,
            columns=wanted,
            categorical=categorical,
            numerical=numerical,
            settings=s,
            batch_rows=batch_rows,
            progress=progress,
            keep=[*keep, *prediction],
            exclude=exclude,
        )
    )
    cur = (
        current
        if isinstance(current, Profile)
        else profile_current(current, ref, batch_rows=batch_rows, progress=progress)
    )
    return compare(ref, cur, settings=s, columns=columns, prediction=prediction)


def prediction_drift(
    reference: Sequence[Any] | np.ndarray | pd.Series,
    current: Sequence[Any] | np.ndarray | pd.Series,
    *,
    settings: DriftSettings | None = None,
    categorical: bool | None = None,
) -> ColumnDrift:
    """Drift of a model's outputs (scores or labels) between two periods."""
    ref = pd.DataFrame({"prediction": pd.Series(reference)})
    cur = pd.DataFrame({"prediction": pd.Series(current)})
    cats = ["prediction"] if categorical else ()
    nums = ["prediction"] if categorical is False else ()
    report = detect_drift(
        ref, cur, prediction=["prediction"], categorical=cats, numerical=nums, settings=settings
    )
    return report.column("prediction")
