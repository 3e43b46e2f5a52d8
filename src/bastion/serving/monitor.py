"""Monitoring straight from the prediction log: a window of a model's predictions (with
their labels), compared with what was registered with the version that made them —
its drift baseline profile, and its evaluation metrics.

    window = read_window(db, "income", parse_window("24h"))
    baseline = registered_baseline(db, "income", window.version)   # a drift Profile
    metrics = registered_metrics(db, "income", window.version)      # {"accuracy": ...}

Shadow predictions are left out (they answered no one); rows of other arms are in.
A window holding several versions is judged against the version most of its rows
came from unless a version is named.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bastion.db import Database, utcnow
from bastion.serving.config import parse_length
from bastion.serving.errors import InvalidWindow, NothingServed
from bastion.serving.repository import PredictionRepository

if TYPE_CHECKING:
    import pandas as pd

    from bastion.monitoring.profiles import Profile

LABEL = "label"
PREDICTION = "prediction"
SCORE = "score"
#: When the prediction was made (UTC), for checks by time window.
LOGGED_AT = "logged_at"
ARMS = ("production", "canary", "a", "b", "pinned")


def parse_window(text: str) -> timedelta:
    """``30m``, ``24h``, ``7d``, ``2w``."""
    length = parse_length(text)
    if length is None:
        raise InvalidWindow(
            f"window {text!r} is not a length: give a number and a unit, as 30m, 24h, 7d or 2w"
        )
    return length


@dataclass
class LogWindow:
    model: str
    since: datetime
    until: datetime
    version: int
    versions: dict[int, int]  # version -> rows
    frame: pd.DataFrame  # the logged features, prediction, score, label, logged_at
    features_kept: int  # rows whose features were logged

    @property
    def labelled(self) -> int:
        return int(self.frame[LABEL].notna().sum()) if len(self.frame) else 0


def read_window(
    db: Database,
    model: str,
    length: timedelta,
    *,
    version: int | None = None,
    now: datetime | None = None,
) -> LogWindow:
    import pandas as pd

    until = now or utcnow()
    since = until - length
    with db.session() as session:
        rows = PredictionRepository(session).window(model, since, until, arms=ARMS, version=version)
        records = []
        versions: Counter[int] = Counter()
        kept = 0
        for row, label in rows:
            versions[row.version] += 1
            features = row.features or {}
            kept += row.features is not None
            records.append(
                {
                    **features,
                    PREDICTION: row.prediction,
                    SCORE: row.score,
                    LABEL: label,
                    LOGGED_AT: row.created_at,
                }
            )
    if not records:
        raise NothingServed(
            f"the prediction log holds no prediction of {model!r} in the last {_words(length)}"
            + (f" from v{version}" if version is not None else "")
            + ": widen --window or check the model's name"
        )
    chosen = version if version is not None else versions.most_common(1)[0][0]
    return LogWindow(
        model, since, until, chosen, dict(versions), pd.DataFrame.from_records(records), kept
    )


def _words(length: timedelta) -> str:
    hours = length.total_seconds() / 3600
    return f"{hours:g} hours" if hours < 48 else f"{hours / 24:g} days"


def _version_row(session: Any, model: str, version: int) -> Any:
    from bastion.registry.repository import RegistryRepository

    return RegistryRepository(session).require_version(model, version)


def registered_baseline(db: Database, model: str, version: int) -> Profile:
    """The drift baseline profile recorded as evidence for the version."""
    from bastion.monitoring.profiles import Profile
    from bastion.registry.repository import RegistryRepository

    with db.session() as session:
        row = _version_row(session, model, version)
        evidence = RegistryRepository(session).latest_evidence(row.id, "drift_baseline")
        payload = evidence.payload if evidence is not None else None
    if payload is None:
        raise NothingServed(
            f"{model} v{version} has no drift baseline: record one with "
            "`bastion models evidence` (kind drift_baseline) when registering it"
        )
    return Profile.from_dict(payload)


def registered_metrics(db: Database, model: str, version: int) -> dict[str, float]:
    """The evaluation metrics registered with the version (from its MLflow run)."""
    with db.session() as session:
        row = _version_row(session, model, version)
        return {k: float(v) for k, v in (row.metrics or {}).items() if isinstance(v, int | float)}


def registered_fairness(
    db: Database, model: str, version: int
) -> tuple[dict[str, Any] | None, str]:
    """The fairness report recorded as evidence for the version (None when there is
    none), and when and by whom it was recorded."""
    from bastion.registry.repository import RegistryRepository

    with db.session() as session:
        row = _version_row(session, model, version)
        evidence = RegistryRepository(session).latest_evidence(row.id, "fairness")
        if evidence is None:
            return None, ""
        return dict(evidence.payload), (
            f"recorded {evidence.recorded_at:%Y-%m-%d} by {evidence.recorded_by}"
        )
