"""The policy file's ``serving:`` section: what the prediction log keeps of the inputs,
how soon a moved alias is noticed in other processes, and the server's scheduled
monitoring of the log. Example::

    serving:
      features: full            # full | digest | [age, hours_per_week]  (the default)
      alias_ttl_s: 2            # other processes' alias moves are noticed this soon
      checks:                   # drift and performance of each production model
        interval: 1h            # how often (one replica runs each check)
        window: 24h             # how far back the prediction log is read
        min_rows: 100           # fewer logged predictions: the run is skipped
        fail_on: dataset        # drift is the dataset rule; `column`: any drifted column
      models:
        adult-income:
          features: [age, education_num, hours_per_week]   # this model's own rule

``digest`` keeps only the SHA-256 of each row (always kept as ``features_digest``);
then a logged prediction cannot be explained again or checked for drift.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

FeatureRule = Literal["full", "digest"] | list[str]
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_length(text: str) -> timedelta | None:
    """``30m``, ``24h``, ``7d``, ``2w`` as a length; None when it is not one."""
    match = re.fullmatch(r"\s*(\d+)\s*([mhdw])\s*", text or "")
    if match is None or int(match.group(1)) == 0:
        return None
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelServing(_Strict):
    features: FeatureRule = "full"


class ServingChecks(_Strict):
    """Drift (against the version's registered baseline) and performance (against its
    registered metrics, when labels arrived) of every production model, run by the
    server (:mod:`bastion.serving.schedule`)."""

    enabled: bool = True
    interval: str = "1h"
    window: str = "24h"
    min_rows: int = Field(100, ge=1, le=10_000_000)
    fail_on: Literal["dataset", "column"] = "dataset"

    @field_validator("interval", "window")
    @classmethod
    def _a_length(cls, value: str) -> str:
        length = parse_length(value)
        if length is None:
            raise ValueError(f"{value!r} is not a length: write it as 30m, 1h, 24h or 7d")
        if not timedelta(minutes=1) <= length <= timedelta(days=30):
            raise ValueError(f"{value!r}: give a length between 1m and 30d")
        return value

    @property
    def period(self) -> timedelta:
        return parse_length(self.interval) or timedelta(hours=1)

    @property
    def length(self) -> timedelta:
        return parse_length(self.window) or timedelta(hours=24)


class ServingPolicy(_Strict):
    features: FeatureRule = "full"
    alias_ttl_s: float = Field(2.0, gt=0, le=3600)
    checks: ServingChecks = ServingChecks()
    models: dict[str, ModelServing] = Field(default_factory=dict)

    def features_for(self, model: str) -> FeatureRule:
        own = self.models.get(model)
        return own.features if own is not None else self.features
