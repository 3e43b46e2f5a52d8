"""Column and dataset drift: method choice, verdicts, findings, streaming."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bastion.monitoring import (
    DriftSettings,
    Profile,
    compare,
    detect_drift,
    fit_reference,
    from_batches,
    prediction_drift,
    profile_current,
)
from bastion.monitoring.errors import ColumnNotFound, EmptyData, InvalidData

from .conftest import make_frame


@pytest.mark.parametrize(
    ("n_ref", "values", "expected"),
    [
        (500, lambda r, n: r.normal(size=n), "ks"),
        (500, lambda r, n: r.integers(0, 4, n).astype(float), "chisquare"),
        (500, lambda r, n: r.integers(0, 2, n).astype(float), "z"),
        (500, lambda r, n: r.choice(["x", "y", "z"], n), "chisquare"),
        (500, lambda r, n: r.choice(["x", "y"], n), "z"),
        (5000, lambda r, n: r.normal(size=n), "wasserstein"),
        (5000, lambda r, n: r.integers(0, 4, n).astype(float), "jensenshannon"),
        (5000, lambda r, n: r.choice(["x", "y", "z"], n), "jensenshannon"),
    ],
)
def test_default_method_follows_evidently_rule(n_ref, values, expected) -> None:
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"x": values(rng, n_ref)})
    cur = pd.DataFrame({"x": values(rng, 3000)})
    assert detect_drift(ref, cur).column("x").method == expected


def test_shifted_columns_drift_and_others_do_not(frames) -> None:
    ref, cur = frames
    report = detect_drift(ref, cur)
    assert set(report.drifted_columns) == {"a", "b", "colour"}
    assert report.drift_share == pytest.approx(3 / 7)
    assert not report.dataset_drift and report.passed
    a = report.column("a")
    assert a.method == "wasserstein" and a.psi_reading in ("moderate", "significant")
    assert any(f.kind == "column_drift" and f.subject == "a" for f in report.findings)


def test_same_distribution_does_not_drift() -> None:
    report = detect_drift(make_frame(20_000, seed=3), make_frame(20_000, seed=4))
    assert report.drifted_columns == []
    assert all(c.psi < 0.1 for c in report.columns)


def test_dataset_drift_when_half_the_columns_drift(frames) -> None:
    ref, cur = frames
    report = detect_drift(ref, cur, columns=["a", "b", "c", "colour"])
    assert report.drift_share == 0.75 and report.dataset_drift and not report.passed
    assert any(f.kind == "dataset_drift" for f in report.findings)


def test_methods_and_thresholds_are_overridable(frames) -> None:
    ref, cur = frames
    settings = DriftSettings(column_methods={"a": "psi", "c": "ks"}, column_thresholds={"b": 10.0})
    report = detect_drift(ref, cur, settings=settings)
    assert report.column("a").method == "psi" and report.column("a").drifted
    assert report.column("c").method == "ks" and not report.column("c").drifted
    assert not report.column("b").drifted


def test_missing_rate_and_new_categories_are_findings() -> None:
    ref = make_frame(5000, seed=5)
    cur = make_frame(5000, seed=6)
    cur.loc[cur.index[:1000], "c"] = np.nan
    cur.loc[cur.index[:50], "colour"] = "purple"
    report = detect_drift(ref, cur)
    kinds = {(f.subject, f.kind) for f in report.findings}
    assert ("c", "missing_rate") in kinds
    assert ("colour", "new_categories") in kinds
    assert report.column("colour").new_categories == ["purple"]
    assert report.column("c").missing_current == pytest.approx(0.2)


def test_retrain_signal_on_psi_above_policy_value(frames) -> None:
    ref, cur = frames
    report = detect_drift(ref, cur, settings=DriftSettings(psi_retrain=0.05))
    assert {f.subject for f in report.findings if f.kind == "retrain_signal"} >= {"a", "b"}


def test_prediction_drift_fails_the_check() -> None:
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"x": rng.normal(size=5000), "score": rng.beta(2, 5, 5000)})
    cur = pd.DataFrame({"x": rng.normal(size=5000), "score": rng.beta(5, 2, 5000)})
    report = detect_drift(ref, cur, prediction=["score"])
    assert report.drifted_columns == [] and report.prediction_drift and not report.passed
    assert prediction_drift(ref["score"], cur["score"]).drifted
    assert not prediction_drift(ref["x"], cur["x"]).drifted


def test_streamed_windows_give_the_same_report_as_one_frame(frames) -> None:
    ref, cur = frames
    whole = detect_drift(ref, cur).to_dict()
    windows = from_batches(
        lambda: (cur.iloc[i : i + 3000] for i in range(0, len(cur), 3000)), list(cur.columns)
    )
    streamed = detect_drift(ref, windows, batch_rows=3000).to_dict()
    for a, b in zip(whole["columns"], streamed["columns"], strict=True):
        assert a["score"] == pytest.approx(b["score"], rel=1e-9), a["column"]
        assert a["psi"] == pytest.approx(b["psi"], rel=1e-9)


def test_sampled_reference_edges_give_the_same_verdicts(frames) -> None:
    ref, cur = frames
    exact = detect_drift(ref, cur)
    sampled = detect_drift(ref, cur, settings=DriftSettings(sample_rows=2000), batch_rows=5000)
    assert sampled.drifted_columns == exact.drifted_columns
    for a, b in zip(exact.columns, sampled.columns, strict=True):
        assert a.score == pytest.approx(b.score, rel=0.02, abs=1e-3), a.column


def test_stored_reference_profile_round_trips(tmp_path, frames) -> None:
    ref, cur = frames
    profile = fit_reference(ref)
    profile.save(tmp_path / "ref.json")
    loaded = Profile.load(tmp_path / "ref.json")
    before = compare(profile, profile_current(cur, profile)).to_dict()
    after = compare(loaded, profile_current(cur, loaded)).to_dict()
    assert before["columns"] == after["columns"]


def test_report_is_json_serialisable(frames) -> None:
    import json

    ref, cur = frames
    text = json.dumps(detect_drift(ref, cur).to_dict(), allow_nan=False)
    assert '"check": "drift"' in text


def test_bad_inputs_raise_domain_errors(frames) -> None:
    ref, cur = frames
    with pytest.raises(ColumnNotFound):
        detect_drift(ref, cur, columns=["nope"])
    with pytest.raises(EmptyData):
        detect_drift(ref.iloc[:0], cur)
    with pytest.raises(InvalidData):
        detect_drift(ref, cur, settings=DriftSettings(column_methods={"colour": "wasserstein"}))


def test_all_missing_column_is_reported_not_judged() -> None:
    ref = pd.DataFrame({"x": [np.nan] * 100, "y": np.arange(100.0)})
    cur = pd.DataFrame({"x": np.arange(100.0), "y": np.arange(100.0)})
    col = detect_drift(ref, cur).column("x")
    assert col.method == "none" and not col.drifted and "not judged" in col.note
