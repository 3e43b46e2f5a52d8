"""Monitoring: drift, performance, fairness, explanations, alerts and reports.

Plain Python over NumPy, pandas, SciPy, scikit-learn, Fairlearn and SHAP; no web
framework. The server runs the same functions on its prediction log; the CLI
(``bastion drift|fairness|explain``) runs them on files. Heavy modules (SHAP, Fairlearn,
scikit-learn, plotly) are imported inside the functions that need them.

Names load on first use (PEP 562): the policy schema imports
:mod:`bastion.monitoring.config` alone and should not pay for NumPy, pandas and SciPy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bastion.lazy import lazy_exports

if TYPE_CHECKING:
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

_EXPORTS = {
    "Alert": "bastion.monitoring.alerts",
    "AlertRouter": "bastion.monitoring.alerts",
    "AlertRule": "bastion.monitoring.config",
    "CategoricalSketch": "bastion.monitoring.sketches",
    "ColumnDrift": "bastion.monitoring.drift",
    "ColumnNotFound": "bastion.monitoring.errors",
    "Delivery": "bastion.monitoring.alerts",
    "DriftReport": "bastion.monitoring.drift",
    "DriftSettings": "bastion.monitoring.config",
    "EmbeddingDriftReport": "bastion.monitoring.embeddings",
    "EmptyData": "bastion.monitoring.errors",
    "Explainer": "bastion.monitoring.explain",
    "ExplanationReport": "bastion.monitoring.explain",
    "FairnessReport": "bastion.monitoring.fairness",
    "FairnessThresholds": "bastion.monitoring.config",
    "Finding": "bastion.monitoring.findings",
    "IncompatibleSketch": "bastion.monitoring.errors",
    "InvalidData": "bastion.monitoring.errors",
    "LogNotifier": "bastion.monitoring.alerts",
    "MonitoringError": "bastion.monitoring.errors",
    "MonitoringPolicy": "bastion.monitoring.config",
    "NotifierFailed": "bastion.monitoring.errors",
    "NumericBins": "bastion.monitoring.sketches",
    "NumericSketch": "bastion.monitoring.sketches",
    "PerformanceReport": "bastion.monitoring.performance",
    "PerformanceSettings": "bastion.monitoring.config",
    "Profile": "bastion.monitoring.profiles",
    "Severity": "bastion.monitoring.config",
    "TableSource": "bastion.monitoring.io",
    "UnsupportedModel": "bastion.monitoring.errors",
    "UnsupportedSource": "bastion.monitoring.errors",
    "WebhookNotifier": "bastion.monitoring.alerts",
    "choose_method": "bastion.monitoring.drift",
    "classification_metrics": "bastion.monitoring.performance",
    "compare": "bastion.monitoring.drift",
    "detect_drift": "bastion.monitoring.drift",
    "embedding_drift": "bastion.monitoring.embeddings",
    "evaluate_performance": "bastion.monitoring.performance",
    "explain_predictions": "bastion.monitoring.explain",
    "fairness_from_frame": "bastion.monitoring.fairness",
    "fairness_report": "bastion.monitoring.fairness",
    "fit_reference": "bastion.monitoring.profiles",
    "from_batches": "bastion.monitoring.io",
    "open_table": "bastion.monitoring.io",
    "prediction_drift": "bastion.monitoring.drift",
    "profile_current": "bastion.monitoring.profiles",
    "profile_from_sql": "bastion.monitoring.queries",
    "read_table": "bastion.monitoring.io",
    "regression_metrics": "bastion.monitoring.performance",
    "verify_signature": "bastion.monitoring.alerts",
}


__getattr__ = lazy_exports(__name__, _EXPORTS)


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
