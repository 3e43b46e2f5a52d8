"""The Monitoring page's service: three days of the income model's prediction log (the
last one with older, longer-working people), checked against what v1 registered."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from bastion.db import utcnow
from bastion.errors import InvalidInput
from bastion.registry import demo
from bastion.registry.service import ModelRegistry
from bastion.serving.errors import InvalidWindow, NothingServed
from bastion.serving.models import PredictionLabelRow, PredictionRow
from bastion.serving.watch import ReportNotAvailable, report_html, watch_model

from .conftest import ANA, NAME, Model, records, set_policy

DAYS = 3


def log_day(runtime: Any, model: Model, version: int, when: Any, *, shift: bool) -> None:
    """The test split as the prediction log holds it, labelled; ``shift`` ages everyone
    by 25 years and adds 20 hours of work a week."""
    trained = model.trained
    features = trained.test.copy()
    if shift:
        features["age"] = features["age"] + 25
        features["hours_per_week"] = features["hours_per_week"] + 20
    scores = trained.model.predict_proba(trained.test)[:, 1]
    rows: list[Any] = []
    for i, (row, pred, score, label) in enumerate(
        zip(records(features), trained.predictions, scores, trained.y_test, strict=True)
    ):
        if i >= 1500:
            break
        rid = f"req-{uuid.uuid4().hex}"
        rows.append(
            PredictionRow(
                request_id=rid,
                model=NAME,
                version=version,
                arm="production",
                created_at=when,
                latency_ms=5.0,
                outcome="ok",
                prediction=int(pred),
                score=float(score),
                features=row,
                features_digest="0" * 64,
            )
        )
        rows.append(PredictionLabelRow(request_id=rid, label=int(label)))
    with runtime.db.session() as session:
        session.add_all(rows)


@pytest.fixture
def watched(runtime: Any, registry: ModelRegistry, served_v1: int, income_v1: Model) -> Any:
    registry.record_evidence(ANA, NAME, served_v1, "fairness", demo.fairness(income_v1.trained))
    set_policy(
        runtime,
        "monitoring",
        {
            "alert_rules": [
                {"name": "drift-to-log", "checks": ["drift"], "notify": ["log"]},
            ]
        },
    )
    # A day apart, the last a minute ago: three calendar days whatever the time of day,
    # none in the future (noon today was ahead of a run before noon, and left out).
    start = utcnow() - timedelta(minutes=1) - timedelta(days=DAYS - 1)
    for day in range(DAYS):
        log_day(runtime, income_v1, served_v1, start + timedelta(days=day), shift=day == DAYS - 1)
    return served_v1


def test_drift_per_feature_by_day_shows_the_shift_on_the_last_day_only(
    runtime: Any, watched: int
) -> None:
    view = watch_model(runtime.db, runtime.policy.policy.monitoring, NAME, "7d")
    assert view.model == NAME and view.version == watched
    assert view.rows == DAYS * 1500 and view.labelled == DAYS * 1500
    assert len(view.buckets) == DAYS and view.rows_by_bucket == [1500] * DAYS
    by_feature = {d.feature: d for d in view.drift}
    age = by_feature["age"]
    assert age.drifted_by_bucket == [False, False, True]
    assert age.psi_by_bucket[0] is not None and age.psi_by_bucket[0] < 0.01
    assert age.psi_by_bucket[-1] is not None and age.psi_by_bucket[-1] > 0.25
    assert by_feature["education_num"].drifted_by_bucket == [False, False, False]
    # the drifted features come first, and the whole window's verdict is kept
    assert view.drift[0].drifted and not by_feature["education_num"].drifted
    assert "drift" in view.reports


def test_performance_by_day_against_the_registered_metrics(
    runtime: Any, watched: int, income_v1: Model
) -> None:
    view = watch_model(runtime.db, runtime.policy.policy.monitoring, NAME, "7d")
    assert view.performance_baseline["accuracy"] == pytest.approx(
        income_v1.trained.metrics["accuracy"]
    )
    assert [p.rows for p in view.performance] == [1500] * DAYS
    first = view.performance[0].metrics
    assert first["accuracy"] is not None and 0.75 < first["accuracy"] < 0.95


def test_fairness_by_group_registered_and_for_the_window(runtime: Any, watched: int) -> None:
    view = watch_model(runtime.db, runtime.policy.policy.monitoring, NAME, "7d")
    sources = {f.source.split(" ")[0] for f in view.fairness}
    assert sources == {"registered", "prediction"}
    window_sex = next(
        f for f in view.fairness if f.source.startswith("prediction") and f.features == ["sex"]
    )
    groups = {g["group"] for g in window_sex.groups}
    assert groups == {"Female", "Male"}
    assert all(0 <= g["selection_rate"] <= 1 for g in window_sex.groups)
    assert "fairness" in view.reports


def test_alerts_carry_their_evidence_and_the_rules_that_route_them(
    runtime: Any, watched: int
) -> None:
    view = watch_model(runtime.db, runtime.policy.policy.monitoring, NAME, "7d")
    drift = [a for a in view.alerts if a.check == "drift"]
    assert drift, [a.message for a in view.alerts]
    routed = [a for a in drift if a.severity != "info"]
    assert routed, "a 25-year shift in age is worth more than an info finding"
    assert all(a.rules == ["drift-to-log"] and a.notify == ["log"] for a in routed)
    # the rule's minimum severity (warning) leaves info findings unrouted
    assert all(a.rules == [] for a in drift if a.severity == "info")
    assert view.alerts[0].severity != "info"
    assert all(a.evidence["model"] == NAME and a.evidence["version"] == watched for a in drift)
    assert all(a.report == "drift" for a in drift)


def test_reports_render_as_self_contained_html(runtime: Any, watched: int) -> None:
    policy = runtime.policy.policy.monitoring
    html = report_html(runtime.db, policy, NAME, "drift", "7d")
    assert html.startswith("<!") and "Data drift: income v1, last 7d" in html
    assert "<script src=" not in html  # plotly.js inlined, nothing fetched
    fairness = report_html(runtime.db, policy, NAME, "fairness", "7d")
    assert "Fairness: income" in fairness
    with pytest.raises(InvalidInput) as bad:
        report_html(runtime.db, policy, NAME, "shap", "7d")
    assert bad.value.code == "invalid_report"


def test_a_model_without_predictions_says_so_instead_of_failing(
    runtime: Any, served_v1: int
) -> None:
    policy = runtime.policy.policy.monitoring
    view = watch_model(runtime.db, policy, None, "24h")
    assert view.model == NAME and view.rows == 0 and view.drift == []
    assert any("holds no prediction" in n for n in view.notes)
    with pytest.raises(NothingServed):
        watch_model(runtime.db, policy, "nope", "24h")
    with pytest.raises(InvalidWindow):
        watch_model(runtime.db, policy, NAME, "forever")
    with pytest.raises(NothingServed):
        report_html(runtime.db, policy, NAME, "drift", "24h")


def test_without_labels_drift_is_still_shown(
    runtime: Any, served_v1: int, income_v1: Model
) -> None:
    log_day(runtime, income_v1, served_v1, utcnow() - timedelta(hours=1), shift=False)
    with runtime.db.session() as session:
        session.query(PredictionLabelRow).delete()
    policy = runtime.policy.policy.monitoring
    view = watch_model(runtime.db, policy, NAME, "24h")
    assert view.labelled == 0 and view.performance == []
    assert view.drift and not any(d.drifted for d in view.drift)
    assert any("has a label yet" in n for n in view.notes)
    assert any("no fairness report" in n for n in view.notes)
    with pytest.raises(ReportNotAvailable):
        report_html(runtime.db, policy, NAME, "fairness", "24h")
