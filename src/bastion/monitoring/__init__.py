"""Monitoring: drift, performance, fairness, explanations, alerts and reports.

Plain Python over NumPy, pandas, SciPy, scikit-learn, Fairlearn and SHAP; no web
framework. The server runs the same functions on its prediction log; the CLI
(``bastion drift|fairness|explain``) runs them on files. Heavy modules (SHAP, Fairlearn,
scikit-learn, plotly) are imported inside the functions that need them.
"""

from bastion.monitoring.alerts import (
    Alert,
    AlertRouter,
    Delivery,
    LogNotifier,
    WebhookNotifier,
    verify_signature,
)
from bastion.monitoring.config import (
    AlertRule,
    DriftSettings,
    FairnessThresholds,
    MonitoringPolicy,
    PerformanceSettings,
    Severity,
)
from bastion.monitoring.drift import (
    ColumnDrift,
    DriftReport,
    choose_method,
    compare,
    detect_drift,
    prediction_drift,
)
from bastion.monitoring.embeddings import EmbeddingDriftReport, embedding_drift
from bastion.monitoring.errors import (
    ColumnNotFound,
    EmptyData,
    IncompatibleSketch,
    InvalidData,
    MonitoringError,
    NotifierFailed,
    UnsupportedModel,
    UnsupportedSource,
)
from bastion.monitoring.explain import Explainer, ExplanationReport, explain_predictions
from bastion.monitoring.fairness import FairnessReport, fairness_from_frame, fairness_report
from bastion.monitoring.findings import Finding
from bastion.monitoring.io import TableSource, from_batches, open_table, read_table
from bastion.monitoring.performance import (
    PerformanceReport,
    classification_metrics,
    evaluate_performance,
    regression_metrics,
)
from bastion.monitoring.profiles import Profile, fit_reference, profile_current
from bastion.monitoring.queries import profile_from_sql
from bastion.monitoring.sketches import CategoricalSketch, NumericBins, NumericSketch

__all__ = [
    "Alert",
    "AlertRouter",
    "AlertRule",
    "CategoricalSketch",
    "ColumnDrift",
    "ColumnNotFound",
    "Delivery",
    "DriftReport",
    "DriftSettings",
    "EmbeddingDriftReport",
    "EmptyData",
    "Explainer",
    "ExplanationReport",
    "FairnessReport",
    "FairnessThresholds",
    "Finding",
    "IncompatibleSketch",
    "InvalidData",
    "LogNotifier",
    "MonitoringError",
    "MonitoringPolicy",
    "NotifierFailed",
    "NumericBins",
    "NumericSketch",
    "PerformanceReport",
    "PerformanceSettings",
    "Profile",
    "Severity",
    "TableSource",
    "UnsupportedModel",
    "UnsupportedSource",
    "WebhookNotifier",
    "choose_method",
    "classification_metrics",
    "compare",
    "detect_drift",
    "embedding_drift",
    "evaluate_performance",
    "explain_predictions",
    "fairness_from_frame",
    "fairness_report",
    "fit_reference",
    "from_batches",
    "open_table",
    "prediction_drift",
    "profile_current",
    "profile_from_sql",
    "read_table",
    "regression_metrics",
    "verify_signature",
]
