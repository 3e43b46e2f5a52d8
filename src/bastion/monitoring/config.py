"""The policy's ``monitoring:`` section as pydantic models.

The spine's policy schema imports :class:`MonitoringPolicy` and nests it under the key
``monitoring``; every field has a default so an empty section is valid. Example::

    monitoring:
      drift:
        method: auto               # Evidently's rule; or ks, wasserstein, psi, ...
        column_methods: {age: psi}
        psi_retrain: 0.2
      fairness:
        demographic_parity_difference: 0.1
        four_fifths: 0.8
      notifiers:
        ops-hook: {kind: webhook, url: https://hooks.example.com/bastion, secret: "..."}
        log: {kind: log}
      alert_rules:
        - {name: drift-to-ops, checks: [drift], min_severity: warning,
           notify: [ops-hook, log], cooldown_seconds: 3600}
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator


class Severity(StrEnum):
    info = "info"
    warning = "warning"
    critical = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.info: 0, Severity.warning: 1, Severity.critical: 2}

DriftMethod = Literal["auto", "ks", "chisquare", "z", "wasserstein", "jensenshannon", "psi"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DriftSettings(_Model):
    """How drift is decided. The defaults reproduce Evidently's ``DataDriftPreset``."""

    method: DriftMethod = Field(
        "auto",
        description="auto: reference <= small_reference_rows -> KS (numeric) / chi-square "
        "or Z (categorical) at p < p_value; above -> Wasserstein normed by the reference "
        "std / Jensen-Shannon distance.",
    )
    column_methods: dict[str, DriftMethod] = Field(default_factory=dict)
    column_thresholds: dict[str, float] = Field(default_factory=dict)
    small_reference_rows: int = Field(1000, ge=0)
    p_value: float = Field(0.05, gt=0, lt=1)
    wasserstein_threshold: float = Field(0.1, gt=0)
    jensenshannon_threshold: float = Field(0.1, gt=0, le=1)
    psi_threshold: float = Field(0.25, gt=0, description="PSI drift when psi is the method")
    psi_retrain: float = Field(0.2, gt=0, description="the policy's retrain signal")
    psi_bins: int = Field(10, ge=2, le=100)
    sketch_bins: int = Field(2000, ge=10, le=100_000)
    dataset_drift_share: float = Field(0.5, gt=0, le=1)
    missing_rate_change: float = Field(0.05, gt=0, le=1)
    max_categories: int = Field(10_000, ge=2)
    sample_rows: int = Field(
        1_000_000, ge=1000, description="rows sampled to fit bin edges on a streamed reference"
    )

    @model_validator(mode="after")
    def _bins_multiple(self) -> DriftSettings:
        if self.sketch_bins % self.psi_bins:
            raise ValueError("sketch_bins must be a multiple of psi_bins")
        return self


class FairnessThresholds(_Model):
    """A check fails when a metric falls on the wrong side of its threshold."""

    demographic_parity_difference: float = Field(0.1, ge=0, le=1)
    demographic_parity_ratio: float = Field(0.8, ge=0, le=1)
    equalized_odds_difference: float = Field(0.1, ge=0, le=1)
    four_fifths: float = Field(0.8, ge=0, le=1)
    min_group_size: int = Field(30, ge=1, description="smaller groups are reported, not judged")
    intersectional: bool = True


class PerformanceSettings(_Model):
    """Tolerated drop against the baseline before a finding is raised (absolute)."""

    tolerances: dict[str, float] = Field(
        default_factory=lambda: {
            "accuracy": 0.05,
            "f1": 0.05,
            "roc_auc": 0.05,
            "precision": 0.05,
            "recall": 0.05,
        }
    )
    relative_error_tolerance: float = Field(
        0.2, ge=0, description="MAE/RMSE may grow by this share of the baseline"
    )
    critical_factor: float = Field(2.0, ge=1, description="a drop this many tolerances is critical")
    calibration_bins: int = Field(10, ge=2)
    min_rows: int = Field(50, ge=1, description="smaller windows are reported, not judged")


class WebhookNotifierConfig(_Model):
    kind: Literal["webhook"] = "webhook"
    url: str
    secret: SecretStr | None = None
    timeout_seconds: float = Field(5.0, gt=0)
    max_attempts: int = Field(5, ge=1, le=20)
    backoff_initial_seconds: float = Field(0.5, ge=0)
    backoff_max_seconds: float = Field(30.0, ge=0)


class LogNotifierConfig(_Model):
    kind: Literal["log"] = "log"
    logger: str = "bastion.monitoring.alerts"


NotifierConfig = Annotated[WebhookNotifierConfig | LogNotifierConfig, Field(discriminator="kind")]


class AlertRule(_Model):
    name: str
    checks: list[
        Literal[
            "drift",
            "performance",
            "fairness",
            "embedding",
            "prediction",
            "response",
            "access",
            "clock",
        ]
    ] = Field(default_factory=list, description="empty: every check")
    subjects: list[str] = Field(default_factory=list, description="empty: every subject")
    min_severity: Severity = Severity.warning
    notify: list[str] = Field(min_length=1)
    cooldown_seconds: float = Field(3600.0, ge=0)


class MonitoringPolicy(_Model):
    drift: DriftSettings = Field(default_factory=DriftSettings)
    fairness: FairnessThresholds = Field(default_factory=FairnessThresholds)
    performance: PerformanceSettings = Field(default_factory=PerformanceSettings)
    notifiers: dict[str, NotifierConfig] = Field(default_factory=dict)
    alert_rules: list[AlertRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _rules_name_notifiers(self) -> MonitoringPolicy:
        known = set(self.notifiers) | {"log"}
        for rule in self.alert_rules:
            missing = [n for n in rule.notify if n not in known]
            if missing:
                raise ValueError(
                    f"alert rule {rule.name!r} names unknown notifiers {missing}; "
                    f"declare them under monitoring.notifiers"
                )
        return self
