"""Performance, fairness, explanations and embedding drift on generated data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bastion.monitoring import (
    FairnessThresholds,
    classification_metrics,
    embedding_drift,
    evaluate_performance,
    explain_predictions,
    fairness_report,
    regression_metrics,
)
from bastion.monitoring.errors import InvalidData
from bastion.monitoring.explain import explainer_kind


def _scored(n: int, noise: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    score = np.clip(y * 0.6 + 0.2 + rng.normal(0, noise, n), 0, 1)
    return pd.DataFrame(
        {
            "y": y,
            "score": score,
            "pred": (score > 0.5).astype(int),
            "day": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 28, n), unit="D"),
            "region": rng.choice(["north", "south"], n),
        }
    )


def test_classification_metrics_match_known_values() -> None:
    m = classification_metrics([1, 0, 1, 1], [1, 0, 0, 1], [0.9, 0.2, 0.4, 0.8])
    assert m["accuracy"] == 0.75 and m["precision"] == 1.0 and m["recall"] == pytest.approx(2 / 3)
    assert m["roc_auc"] == 1.0 and 0 <= m["ece"] <= 1
    r = regression_metrics([1.0, 2.0, 3.0], [1.0, 2.0, 5.0])
    assert r["mae"] == pytest.approx(2 / 3) and r["rmse"] == pytest.approx(np.sqrt(4 / 3))


def test_degradation_against_baseline_raises_findings() -> None:
    baseline = _scored(3000, 0.1, 0)
    current = _scored(3000, 0.45, 1)
    report = evaluate_performance(
        current,
        target="y",
        prediction="pred",
        score="score",
        baseline=baseline,
        time_column="day",
        window="W",
        segments=["region"],
    )
    assert not report.passed
    kinds = {f.kind for f in report.findings}
    assert {"accuracy_degraded", "roc_auc_degraded"} <= kinds
    assert {w["by"] for w in report.windows} == {"window", "region"}
    same = evaluate_performance(
        _scored(3000, 0.1, 2), target="y", prediction="pred", score="score", baseline=baseline
    )
    assert same.passed


def test_regression_error_growth_is_a_finding() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=2000)
    base = pd.DataFrame({"y": y, "p": y + rng.normal(0, 0.1, 2000)})
    cur = pd.DataFrame({"y": y, "p": y + rng.normal(0, 0.5, 2000)})
    report = evaluate_performance(cur, target="y", prediction="p", baseline=base, task="regression")
    assert {f.kind for f in report.findings} == {"mae_degraded", "rmse_degraded"}


def test_fairness_thresholds_and_small_groups() -> None:
    rng = np.random.default_rng(0)
    n = 2000
    sex = rng.choice(["f", "m"], n)
    y = rng.integers(0, 2, n)
    pred = np.where(sex == "m", y, y * (rng.random(n) < 0.6))
    sens = pd.DataFrame({"sex": sex, "site": np.where(np.arange(n) < 10, "tiny", "main")})
    report = fairness_report(y, pred, sens)
    by_sex = next(t for t in report.tables if t.features == ["sex"])
    assert by_sex.demographic_parity_ratio == pytest.approx(0.6, abs=0.06)
    assert not report.passed
    site = next(t for t in report.tables if t.features == ["site"])
    assert site.excluded == ["tiny"]
    lenient = fairness_report(
        y,
        pred,
        sens[["sex"]],
        thresholds=FairnessThresholds(
            demographic_parity_difference=0.5,
            demographic_parity_ratio=0.5,
            equalized_odds_difference=0.5,
            four_fifths=0.5,
        ),
    )
    assert lenient.passed
    with pytest.raises(InvalidData, match="binary"):
        fairness_report([0, 1, 2], [0, 1, 2], pd.DataFrame({"g": ["a", "b", "c"]}))


def test_explainer_follows_the_model() -> None:
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    x = pd.DataFrame(
        {"up": rng.normal(size=400), "down": rng.normal(size=400), "noise": rng.normal(size=400)}
    )
    y = (x["up"] - x["down"] + rng.normal(0, 0.3, 400) > 0).astype(int)
    for model, kind in (
        (GradientBoostingClassifier(n_estimators=30, random_state=0), "tree"),
        (LogisticRegression(), "linear"),
        (make_pipeline(StandardScaler(), LogisticRegression()), "permutation"),
    ):
        model.fit(x, y)
        assert explainer_kind(model) == kind
        # the permutation explainer calls the pipeline ~70 times a row: keep the sample small
        report = explain_predictions(model, x, [0, 1], max_background=20, max_importance_rows=16)
        top = [f for f, _ in report.global_importance]
        assert top[-1] == "noise", (kind, report.global_importance)
        row = report.rows[0]
        values = {c.feature: c.shap for c in row.contributions}
        if x.loc[0, "up"] > x["up"].mean():
            assert values["up"] > 0
        assert all(c.shap > 0 for c in row.top_positive) and all(
            c.shap < 0 for c in row.top_negative
        )


@pytest.mark.slow
def test_embedding_drift_detects_a_new_topic_and_not_a_resample() -> None:
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(8, 32))
    ref = rng.normal(size=(600, 8)) @ basis + rng.normal(0, 0.05, (600, 32))
    same = rng.normal(size=(600, 8)) @ basis + rng.normal(0, 0.05, (600, 32))
    novel = same + rng.normal(0, 1, (1, 32)) * 0.8 + rng.normal(0, 0.3, (600, 32))
    quiet = embedding_drift(ref, same)
    loud = embedding_drift(ref, novel)
    assert quiet.passed, quiet.to_dict()
    assert {c.method for c in loud.checks if c.drifted} == {
        "domain_classifier",
        "mmd",
        "pca_reconstruction",
    }
    with pytest.raises(InvalidData, match="dimensions"):
        embedding_drift(ref, same[:, :10])
