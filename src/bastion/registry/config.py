"""The policy file's ``registry:`` section: the evidence a version needs for each stage.

The spine's policy schema imports :class:`RegistryPolicy` and nests it under
``registry``; an empty section (the default) asks for no evidence. Example::

    registry:
      gates:
        staging:
          model_card: true
        production:
          metrics:                          # absolute thresholds on the run's metrics
            roc_auc: {min: 0.80}
            log_loss: {max: 0.45}
          no_worse_than_production:         # against the version now in production
            roc_auc: {margin: 0.01}
            log_loss: {margin: 0.02, higher_is_better: false}
          fairness:                         # a stored Fairlearn report must pass
            checks: [four_fifths, demographic_parity_difference]
            features: [sex]
          model_card: true                  # a card whose intended use is written
          drift_baseline: true              # a reference profile is stored
      models:                               # a model's own gates, stage by stage
        adult-income:
          gates: {staging: {model_card: true}}
      allow_override: true                  # admins may override a failing gate
      recover_after_s: 600                  # an approval or registration unfinished
                                            # this long (its process died) is settled

Gates are evaluated when a promotion is requested and again when it is approved.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bastion.registry.errors import InvalidModelName

MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")

Stage = Literal["development", "staging", "production", "archived"]
PromotableStage = Literal["staging", "production"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MetricThreshold(_Strict):
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> MetricThreshold:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min is above max")
        return self


class BaselineMargin(_Strict):
    """How much worse than production a metric may be (absolute)."""

    margin: float = Field(0.0, ge=0)
    higher_is_better: bool = True


class FairnessGate(_Strict):
    """A stored fairness report must exist and these of its checks must pass.

    Demographic parity and equalized odds cannot both hold when base rates differ
    between groups, so a policy names the checks (and features) that it judges by;
    empty lists mean every check of the report.
    """

    checks: list[
        Literal[
            "demographic_parity_difference",
            "demographic_parity_ratio",
            "four_fifths",
            "equalized_odds_difference",
        ]
    ] = Field(default_factory=list)
    features: list[str] = Field(default_factory=list)


class StageGates(_Strict):
    metrics: dict[str, MetricThreshold] = Field(default_factory=dict)
    no_worse_than_production: dict[str, BaselineMargin] = Field(default_factory=dict)
    fairness: FairnessGate | None = None
    model_card: bool = False
    drift_baseline: bool = False


class ModelRules(_Strict):
    gates: dict[PromotableStage, StageGates] = Field(default_factory=dict)


class RegistryPolicy(_Strict):
    gates: dict[PromotableStage, StageGates] = Field(default_factory=dict)
    models: dict[str, ModelRules] = Field(default_factory=dict)
    allow_override: bool = Field(
        True, description="admins may override a failing gate with a written justification"
    )
    recover_after_s: float = Field(
        600,
        ge=0,
        description="an approval or registration still unfinished after this many seconds "
        "is taken to have died with its process, and is settled by the next one that meets "
        "it (or `bastion models verify`)",
    )

    def gates_for(self, stage: str, model: str | None = None) -> StageGates:
        """The model's own gates for ``stage`` when the policy names them, else the defaults."""
        rules = self.models.get(model) if model is not None else None
        for source in (rules.gates if rules is not None else {}, self.gates):
            for key, gates in source.items():
                if key == stage:
                    return gates
        return StageGates()


def check_name(name: str) -> str:
    if not MODEL_NAME.match(name):
        raise InvalidModelName(
            f"invalid model name {name!r}: use letters, digits, '.', '_' and '-' "
            "(up to 200, starting with a letter or digit)"
        )
    return name
