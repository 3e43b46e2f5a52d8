"""Drift and performance of a served model, straight from its prediction log: what
``bastion drift check --model``, ``bastion performance check --model`` and the server's
scheduled checks (:mod:`bastion.serving.schedule`) share.

    drift = log_drift(db, "income", timedelta(hours=24))
    report = compare(drift.reference, drift.current, settings=DriftSettings())
    labelled = log_performance(db, "income", timedelta(days=7))
    judged = judge_log_performance(labelled, PerformanceSettings())

Drift compares the window's logged features with the drift baseline registered with
the version that answered most of the window, over the columns the log kept;
performance judges the labelled rows against the metrics registered with that version.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bastion.serving.errors import FeaturesNotKept, NoLabels
from bastion.serving.monitor import (
    LABEL,
    PREDICTION,
    SCORE,
    LogWindow,
    read_window,
    registered_baseline,
    registered_metrics,
)

if TYPE_CHECKING:
    import pandas as pd

    from bastion.db import Database
    from bastion.monitoring.config import DriftSettings, PerformanceSettings
    from bastion.monitoring.drift import DriftReport
    from bastion.monitoring.performance import Judged
    from bastion.monitoring.profiles import Profile

#: The registered metrics a performance check judges (higher is better).
JUDGED = ("accuracy", "f1", "roc_auc", "precision", "recall")


@dataclass(frozen=True)
class LogDrift:
    window: LogWindow
    reference: Profile  # the registered baseline, cut to the columns the log kept
    current: Profile

    def compare(
        self,
        settings: DriftSettings,
        *,
        columns: list[str] | None = None,
        prediction: list[str] | None = None,
    ) -> DriftReport:
        from bastion.monitoring.drift import compare

        return compare(
            self.reference,
            self.current,
            settings=settings,
            columns=columns,
            prediction=prediction or [],
        )


def log_drift(
    db: Database,
    model: str,
    length: timedelta,
    *,
    version: int | None = None,
    now: datetime | None = None,
) -> LogDrift:
    """The window's profile and the registered baseline it is judged against."""
    from bastion.monitoring.profiles import profile_current

    window = read_window(db, model, length, version=version, now=now)
    reference = registered_baseline(db, model, window.version)
    frame = window.frame
    kept = [c for c in reference.columns if c in frame.columns and frame[c].notna().any()]
    if not kept:
        raise FeaturesNotKept(
            f"the log of {model!r} kept no feature of the baseline (the policy's "
            "serving.features rule is digest): drift cannot be checked from it"
        )
    reference = dataclasses.replace(reference, columns={c: reference.columns[c] for c in kept})
    return LogDrift(window, reference, profile_current(frame[kept], reference))


@dataclass(frozen=True)
class LogPerformance:
    window: LogWindow
    frame: pd.DataFrame  # the labelled rows: LABEL, PREDICTION, SCORE
    baseline: dict[str, float]  # the version's registered metrics that are judged
    score: str | None  # SCORE when every labelled row has one


def log_performance(
    db: Database,
    model: str,
    length: timedelta,
    *,
    version: int | None = None,
    now: datetime | None = None,
) -> LogPerformance:
    """The window's labelled predictions and the metrics registered with its version;
    :class:`NoLabels` when none has a label yet."""
    window = read_window(db, model, length, version=version, now=now)
    registered = registered_metrics(db, model, window.version)
    frame = window.frame.dropna(subset=[LABEL])
    if frame.empty:
        raise NoLabels(
            f"none of the {len(window.frame)} predictions of {model!r} in the window has "
            "a label yet: attach them with `bastion labels add FILE` or POST /api/labels"
        )
    baseline = {k: v for k, v in registered.items() if k in JUDGED}
    score = SCORE if frame[SCORE].notna().all() else None
    return LogPerformance(window, frame[[LABEL, PREDICTION, SCORE]], baseline, score)


def judge_log_performance(labelled: LogPerformance, settings: PerformanceSettings) -> Judged:
    from bastion.monitoring.performance import judge_labelled

    return judge_labelled(
        labelled.frame,
        target=LABEL,
        prediction=PREDICTION,
        score=labelled.score,
        baseline=labelled.baseline,
        settings=settings,
    )
