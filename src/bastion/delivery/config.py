"""The policy file's ``delivery:`` section: how a rollout is judged and how fast it moves.

Example (every key optional; these are the defaults)::

    delivery:
      alpha: 0.01                   # false-rollback rate a healthy canary may see
      min_sample: 500               # candidate requests each step needs before passing
      max_error_rate_increase: 0.0  # a rise in the error rate beyond this fails
      error_rate_margin: 0.02       # pass once the rise is bounded below this
      latency_p95_tolerance: 0.2    # a slower candidate fails only past +20 % at p95
      latency_margin: 0.1           # pass once P(slower) − ½ is bounded below this
      drift_js_threshold: 0.2       # Jensen–Shannon distance between the arms' predictions
      quality_margin: 0.02          # with labels: the wrong-answer rate's rise, as errors
      controller_interval_s: 15     # how often the server's controller looks
      lease_s: 60                   # how long one replica's turn lasts
      models:                       # a model's own thresholds (same keys, no nesting)
        income: {min_sample: 1000}
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Rate = Annotated[float, Field(ge=0, le=1)]


class Thresholds(_Strict):
    alpha: Annotated[float, Field(gt=0, lt=0.5)] = 0.01
    min_sample: Annotated[int, Field(ge=1, le=10_000_000)] = 500
    max_error_rate_increase: Rate = 0.0
    error_rate_margin: Annotated[float, Field(gt=0, le=1)] = 0.02
    latency_p95_tolerance: Annotated[float, Field(ge=0)] = 0.2
    latency_margin: Annotated[float, Field(gt=0, le=0.5)] = 0.1
    drift_js_threshold: Annotated[float, Field(gt=0, le=1)] = 0.2
    quality_margin: Annotated[float, Field(gt=0, le=1)] = 0.02


class ThresholdOverrides(_Strict):
    alpha: Annotated[float, Field(gt=0, lt=0.5)] | None = None
    min_sample: Annotated[int, Field(ge=1, le=10_000_000)] | None = None
    max_error_rate_increase: Rate | None = None
    error_rate_margin: Annotated[float, Field(gt=0, le=1)] | None = None
    latency_p95_tolerance: Annotated[float, Field(ge=0)] | None = None
    latency_margin: Annotated[float, Field(gt=0, le=0.5)] | None = None
    drift_js_threshold: Annotated[float, Field(gt=0, le=1)] | None = None
    quality_margin: Annotated[float, Field(gt=0, le=1)] | None = None


class DeliveryPolicy(Thresholds):
    controller_interval_s: Annotated[float, Field(gt=0, le=3600)] = 15.0
    lease_s: Annotated[float, Field(gt=0, le=3600)] = 60.0
    models: dict[str, ThresholdOverrides] = Field(default_factory=dict)

    def thresholds_for(self, model: str) -> Thresholds:
        base = Thresholds.model_validate(self.model_dump(include=set(Thresholds.model_fields)))
        own = self.models.get(model)
        if own is None:
            return base
        return base.model_copy(update=own.model_dump(exclude_none=True))
