"""A served model watched over time, for the dashboard's Monitoring page.

From the prediction log, against what was registered with the version that served:

- drift per feature per time bucket (an hour for windows up to two days, else a day),
  each bucket profiled on the registered baseline's bins, and over the whole window;
- performance per bucket once labels arrived, against the version's registered metrics;
- fairness by group: the report registered as evidence, and the window's own when the
  log kept the sensitive features and labels arrived;
- the findings of those checks, each with its evidence and the policy's alert rules
  that route it;
- the HTML reports of :mod:`bastion.monitoring.reports` for the same window.

Nothing is stored: the checks run on request with the functions that
``bastion drift|performance check --model`` runs, so the page and the CLI agree.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from bastion.db import Database
from bastion.errors import InvalidInput, NotFound
from bastion.monitoring.errors import MonitoringError
from bastion.serving.errors import NothingServed
from bastion.serving.monitor import (
    LABEL,
    LOGGED_AT,
    PREDICTION,
    SCORE,
    LogWindow,
    parse_window,
    read_window,
    registered_baseline,
    registered_fairness,
    registered_metrics,
)

if TYPE_CHECKING:
    import pandas as pd

    from bastion.monitoring.config import MonitoringPolicy
    from bastion.monitoring.drift import DriftReport
    from bastion.monitoring.fairness import FairnessReport
    from bastion.monitoring.findings import Finding
    from bastion.monitoring.performance import PerformanceReport

#: A bucket with fewer rows is shown but its drift is not judged (too few to tell).
MIN_BUCKET_ROWS = 30
JUDGED_METRICS = ("accuracy", "f1", "roc_auc", "precision", "recall")
ReportKind = Literal["drift", "fairness"]
REPORT_KINDS: tuple[ReportKind, ...] = ("drift", "fairness")


class ReportNotAvailable(NotFound):
    code = "report_not_available"


class FeatureDrift(BaseModel):
    feature: str
    method: str
    score: float | None = Field(description="over the whole window")
    threshold: float | None
    drifted: bool
    psi: float | None
    psi_by_bucket: list[float | None] = Field(description="None: too few rows to judge")
    drifted_by_bucket: list[bool | None]


class PerformancePoint(BaseModel):
    bucket: str
    rows: int
    judged: bool
    metrics: dict[str, float | None]


class GroupFairness(BaseModel):
    source: str
    features: list[str]
    groups: list[dict[str, Any]]
    checks: list[dict[str, Any]]
    passed: bool | None


class AlertView(BaseModel):
    check: str
    subject: str
    kind: str
    severity: str
    message: str
    fingerprint: str
    evidence: dict[str, Any]
    rules: list[str] = Field(description="the policy's alert rules that route this finding")
    notify: list[str]
    report: str | None = Field(description="the report that shows it (drift or fairness)")


class WatchView(BaseModel):
    models: list[str]
    model: str | None
    window: str
    since: datetime | None = None
    until: datetime | None = None
    version: int | None = None
    versions: dict[int, int] = Field(default_factory=dict)
    rows: int = 0
    labelled: int = 0
    buckets: list[str] = Field(default_factory=list)
    rows_by_bucket: list[int] = Field(default_factory=list)
    drift: list[FeatureDrift] = Field(default_factory=list)
    dataset_drift: bool | None = None
    drift_share: float | None = None
    performance_baseline: dict[str, float] = Field(default_factory=dict)
    performance_overall: dict[str, float | None] = Field(default_factory=dict)
    performance: list[PerformancePoint] = Field(default_factory=list)
    fairness: list[GroupFairness] = Field(default_factory=list)
    alerts: list[AlertView] = Field(default_factory=list)
    reports: list[str] = Field(default_factory=list, description="report kinds available")
    notes: list[str] = Field(default_factory=list, description="what could not be checked")


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str):  # NumPy scalars
        return _clean(value.item())
    return value


def _bucket_rule(length: timedelta) -> tuple[str, str]:
    """(pandas period alias, label format) for a window's buckets."""
    return ("h", "%Y-%m-%d %H:00") if length <= timedelta(days=2) else ("D", "%Y-%m-%d")


def _periods(frame: pd.DataFrame, alias: str) -> pd.Series:
    """Each row's bucket."""
    return frame[LOGGED_AT].dt.to_period(alias)


def served_models(db: Database) -> list[str]:
    from bastion.registry.repository import RegistryRepository

    with db.session() as session:
        return sorted({row.name for row in RegistryRepository(session).all_versions()})


@dataclasses.dataclass
class _Checks:
    window: LogWindow
    drift: DriftReport | None = None
    performance: PerformanceReport | None = None
    fairness: FairnessReport | None = None


def _drift(db: Database, policy: MonitoringPolicy, win: LogWindow, view: WatchView) -> DriftReport:
    from bastion.monitoring.drift import compare
    from bastion.monitoring.profiles import profile_current

    ref = registered_baseline(db, win.model, win.version)
    frame = win.frame
    kept = [c for c in ref.columns if c in frame.columns and frame[c].notna().any()]
    if not kept:
        raise NothingServed(
            f"the log of {win.model!r} kept no feature of the baseline (the policy's "
            "serving.features rule is digest): drift cannot be checked from it"
        )
    ref = dataclasses.replace(ref, columns={c: ref.columns[c] for c in kept})
    report = compare(ref, profile_current(frame[kept], ref), settings=policy.drift)
    periods = _periods(frame, _bucket_rule(win.until - win.since)[0])
    by_bucket: list[DriftReport | None] = []
    for _, part in frame.groupby(periods, sort=True):
        if len(part) < MIN_BUCKET_ROWS:
            by_bucket.append(None)
            continue
        by_bucket.append(compare(ref, profile_current(part[kept], ref), settings=policy.drift))
    for col in report.columns:
        if col.role != "feature":
            continue
        buckets = [b.column(col.column) if b is not None else None for b in by_bucket]
        view.drift.append(
            FeatureDrift(
                feature=col.column,
                method=col.method,
                score=_clean(col.score),
                threshold=_clean(col.threshold),
                drifted=col.drifted,
                psi=_clean(col.psi),
                psi_by_bucket=[_clean(b.psi) if b is not None else None for b in buckets],
                drifted_by_bucket=[b.drifted if b is not None else None for b in buckets],
            )
        )
    view.drift.sort(key=lambda d: (not d.drifted, -(d.psi or 0.0)))
    view.dataset_drift = report.dataset_drift
    view.drift_share = report.drift_share
    return report


def _labelled(win: LogWindow) -> pd.DataFrame:
    from bastion.monitoring.labels import binary_columns

    frame = win.frame.dropna(subset=[LABEL])
    return binary_columns(frame, LABEL, PREDICTION)[0]


def _performance(
    db: Database, policy: MonitoringPolicy, win: LogWindow, data: pd.DataFrame, view: WatchView
) -> PerformanceReport:
    from bastion.monitoring.performance import evaluate_performance

    registered = registered_metrics(db, win.model, win.version)
    base = {k: v for k, v in registered.items() if k in JUDGED_METRICS}
    alias, _ = _bucket_rule(win.until - win.since)
    score = SCORE if data[SCORE].notna().all() else None
    report = evaluate_performance(
        data,
        target=LABEL,
        prediction=PREDICTION,
        score=score,
        baseline=base,
        task="classification",
        time_column=LOGGED_AT,
        window=alias,
        pos_label=1,
        settings=policy.performance,
    )
    view.performance_baseline = base
    view.performance_overall = _clean(report.overall)
    view.performance = [
        PerformancePoint(
            bucket=w["key"], rows=w["rows"], judged=w["judged"], metrics=_clean(w["metrics"])
        )
        for w in report.windows
    ]
    return report


def _registered_fairness(db: Database, win: LogWindow, view: WatchView) -> list[str]:
    """The fairness evidence of the version, by group; the features it judged."""
    payload, recorded = registered_fairness(db, win.model, win.version)
    if payload is None:
        view.notes.append(f"v{win.version} has no fairness report registered as evidence")
        return []
    checks = payload.get("checks") or []
    for table in payload.get("tables") or []:
        features = list(table.get("features") or [])
        view.fairness.append(
            GroupFairness(
                source=f"registered with v{win.version} ({recorded})",
                features=features,
                groups=_clean(table.get("groups") or []),
                checks=[c for c in checks if list(c.get("features") or []) == features],
                passed=all(c.get("passed") for c in checks if c.get("features") == features),
            )
        )
    return sorted(
        {
            f
            for t in payload.get("tables") or []
            if len(t.get("features") or []) == 1
            for f in t["features"]
        }
    )


def _window_fairness(
    policy: MonitoringPolicy,
    data: pd.DataFrame,
    sensitive: list[str],
    label: str,
    view: WatchView,
) -> FairnessReport | None:
    from bastion.monitoring.fairness import fairness_from_frame

    kept = [f for f in sensitive if f in data.columns and data[f].notna().all()]
    if not kept:
        if sensitive:
            view.notes.append(
                f"the log kept none of the sensitive features ({', '.join(sensitive)}): "
                "fairness is shown as registered, not for the window"
            )
        return None
    report = fairness_from_frame(
        data, target=LABEL, prediction=PREDICTION, sensitive=kept, thresholds=policy.fairness
    )
    for table in report.tables:
        features = list(table.features)
        view.fairness.append(
            GroupFairness(
                source=label,
                features=features,
                groups=_clean(table.groups),
                checks=[
                    _clean(dataclasses.asdict(c)) for c in report.checks if c.features == features
                ],
                passed=all(c.passed for c in report.checks if c.features == features),
            )
        )
    return report


def _run_checks(
    db: Database,
    policy: MonitoringPolicy,
    model: str,
    window: str,
    view: WatchView,
    now: datetime | None,
) -> _Checks:
    import pandas as pd

    win = read_window(db, model, parse_window(window), now=now)
    # Naive UTC: PostgreSQL hands times back zone-aware, and periods drop the zone.
    win.frame[LOGGED_AT] = pd.to_datetime(win.frame[LOGGED_AT], utc=True).dt.tz_localize(None)
    checks = _Checks(win)
    view.since, view.until, view.version = win.since, win.until, win.version
    view.versions, view.rows, view.labelled = win.versions, len(win.frame), win.labelled
    alias, fmt = _bucket_rule(win.until - win.since)
    counts = win.frame.groupby(_periods(win.frame, alias), sort=True).size()
    view.buckets = [p.start_time.strftime(fmt) for p in counts.index]
    view.rows_by_bucket = [int(n) for n in counts.to_numpy()]
    try:
        checks.drift = _drift(db, policy, win, view)
        view.reports.append("drift")
    except (NothingServed, MonitoringError) as exc:
        view.notes.append(f"drift: {exc.message}")
    sensitive = _registered_fairness(db, win, view)
    if not win.labelled:
        view.notes.append(
            f"none of the {len(win.frame)} predictions has a label yet: performance and the "
            "window's fairness wait for labels (`bastion labels add FILE` or POST /api/labels)"
        )
        return checks
    try:
        data = _labelled(win)
        checks.performance = _performance(db, policy, win, data, view)
        checks.fairness = _window_fairness(
            policy, data, sensitive, f"prediction log, last {window} ({len(data)} labelled)", view
        )
        if checks.fairness is not None:
            view.reports.append("fairness")
    except MonitoringError as exc:
        view.notes.append(f"labels: {exc.message}")
    return checks


def _alerts(policy: MonitoringPolicy, checks: _Checks, view: WatchView) -> None:
    from bastion.monitoring.alerts import AlertRouter

    found: list[tuple[Finding, str | None]] = []
    if checks.drift is not None:
        found += [(f, "drift") for f in checks.drift.findings]
    if checks.performance is not None:
        found += [(f, None) for f in checks.performance.findings]
    if checks.fairness is not None:
        found += [(f, "fairness") for f in checks.fairness.findings]
    order = {"critical": 0, "warning": 1, "info": 2}
    for finding, report in found:
        rules = [r for r in policy.alert_rules if AlertRouter.matches(r, finding)]
        view.alerts.append(
            AlertView(
                check=finding.check,
                subject=finding.subject,
                kind=finding.kind,
                severity=finding.severity.value,
                message=finding.message,
                fingerprint=finding.fingerprint,
                evidence=_clean(
                    {
                        **finding.details,
                        "model": view.model,
                        "version": view.version,
                        "window": view.window,
                        "rows": view.rows,
                    }
                ),
                rules=[r.name for r in rules],
                notify=sorted({n for r in rules for n in r.notify}),
                report=report,
            )
        )
    view.alerts.sort(key=lambda a: order.get(a.severity, 3))


def watch_model(
    db: Database,
    policy: MonitoringPolicy,
    model: str | None = None,
    window: str = "7d",
    *,
    now: datetime | None = None,
) -> WatchView:
    """What the Monitoring page shows for ``model`` (default: the first registered)
    over the last ``window``; what cannot be checked is said in ``notes``."""
    parse_window(window)  # invalid_window before anything is read
    models = served_models(db)
    chosen = model if model is not None else (models[0] if models else None)
    if model is not None and model not in models:
        raise NothingServed(f"no model {model!r} in the registry: the page lists them")
    view = WatchView(models=models, model=chosen, window=window)
    if chosen is None:
        view.notes.append("no model is registered yet")
        return view
    try:
        checks = _run_checks(db, policy, chosen, window, view, now)
    except NothingServed as exc:
        view.notes.append(exc.message)
        return view
    _alerts(policy, checks, view)
    return view


def report_html(
    db: Database,
    policy: MonitoringPolicy,
    model: str,
    kind: str,
    window: str = "7d",
    *,
    now: datetime | None = None,
) -> str:
    """The self-contained HTML report (drift or fairness) of ``model``'s last ``window``."""
    from bastion.monitoring.reports import drift_html, fairness_html

    if kind not in REPORT_KINDS:
        raise InvalidInput(
            f"no {kind!r} report: the reports are {', '.join(REPORT_KINDS)}", code="invalid_report"
        )
    parse_window(window)
    if model not in served_models(db):
        raise NothingServed(f"no model {model!r} in the registry")
    view = WatchView(models=[model], model=model, window=window)
    checks = _run_checks(db, policy, model, window, view, now)
    title = f"{model} v{view.version}, last {window}"
    if kind == "drift" and checks.drift is not None:
        return drift_html(checks.drift, title=f"Data drift: {title}")
    if kind == "fairness" and checks.fairness is not None:
        return fairness_html(checks.fairness, title=f"Fairness: {title}")
    raise ReportNotAvailable(
        f"no {kind} report for {model} in the last {window}: "
        + ("; ".join(view.notes) or "nothing to report")
    )
