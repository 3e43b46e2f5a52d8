"""Real data from ../shared/data/tabular (skipped where absent)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bastion.monitoring import detect_drift, fairness_from_frame

pytestmark = pytest.mark.shared_data

ADULT_COLUMNS = [
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education_num",
    "marital_status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital_gain",
    "capital_loss",
    "hours_per_week",
    "native_country",
    "income",
]
FLIGHT_COLUMNS = ["dep_delay", "arr_delay", "distance", "air_time", "carrier", "origin", "month"]


@pytest.fixture(scope="module")
def flights(shared_data) -> pd.DataFrame:
    return pd.read_parquet(
        shared_data / "tabular" / "nycflights13_flights.parquet", columns=FLIGHT_COLUMNS
    )


def test_flights_winter_vs_summer_drift_in_delays_not_distance(flights) -> None:
    winter = flights[flights.month.isin([1, 2])]
    summer = flights[flights.month.isin([7, 8])]
    report = detect_drift(
        winter, summer, columns=["dep_delay", "arr_delay", "distance", "carrier", "origin"]
    )
    assert report.column("dep_delay").drifted and report.column("arr_delay").drifted
    assert not report.column("distance").drifted
    assert report.column("dep_delay").method == "wasserstein"


def test_flights_same_month_split_at_random_does_not_drift(flights) -> None:
    june = flights[flights.month == 6]
    mask = np.random.default_rng(0).random(len(june)) < 0.5
    report = detect_drift(june[mask], june[~mask], columns=FLIGHT_COLUMNS[:-1])
    assert report.drifted_columns == []
    assert all(c.psi < 0.1 for c in report.columns)
    assert report.passed


def _adult(shared_data) -> pd.DataFrame:
    frame = pd.read_csv(
        shared_data / "tabular" / "adult.data",
        names=ADULT_COLUMNS,
        skipinitialspace=True,
        na_values="?",
    )
    return frame.dropna()


@pytest.mark.slow
def test_adult_income_model_is_judged_unfair_on_sex(shared_data) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    frame = _adult(shared_data)
    y = (frame["income"] == ">50K").astype(int)
    features = [
        "age",
        "education_num",
        "hours_per_week",
        "capital_gain",
        "relationship",
        "marital_status",
        "sex",
    ]
    x = pd.get_dummies(frame[features], dtype=float)
    half = len(frame) // 2
    model = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(
        x.iloc[:half], y.iloc[:half]
    )
    test = frame.iloc[half:].assign(label=y.iloc[half:], decision=model.predict(x.iloc[half:]))
    report = fairness_from_frame(
        test, target="label", prediction="decision", sensitive=["sex", "race"]
    )
    sex = next(t for t in report.tables if t.features == ["sex"])
    rates = {g["sex"]: g["selection_rate"] for g in sex.groups}
    assert rates["Male"] > 2 * rates["Female"]  # the well-known gap in Adult
    assert not report.passed
    failed = {(c.metric, tuple(c.features)) for c in report.checks if not c.passed}
    assert ("four_fifths", ("sex",)) in failed
    assert any(t.features == ["sex", "race"] for t in report.tables)  # intersectional
    assert report.to_dict()["passed"] is False


def test_german_credit_fairness_by_sex_and_age(shared_data) -> None:
    raw = pd.read_csv(shared_data / "tabular" / "german.data", sep=" ", header=None)
    frame = pd.DataFrame(
        {
            "good": (raw[20] == 1).astype(int),
            "sex": raw[8].map(
                {"A91": "male", "A92": "female", "A93": "male", "A94": "male", "A95": "female"}
            ),
            "age_group": np.where(raw[12] < 25, "under 25", "25 and over"),
        }
    )
    # A rule a naive lender might use: approve only applicants 25 and over.
    frame["approved"] = (frame["age_group"] == "25 and over").astype(int)
    report = fairness_from_frame(
        frame, target="good", prediction="approved", sensitive=["age_group", "sex"]
    )
    age = next(
        c for c in report.checks if c.metric == "four_fifths" and c.features == ["age_group"]
    )
    assert age.value == 0.0 and not age.passed
    fair = frame.assign(approved=frame["good"])
    by_sex = fairness_from_frame(fair, target="good", prediction="approved", sensitive=["sex"])
    eo = next(c for c in by_sex.checks if c.metric == "equalized_odds_difference")
    assert eo.value == 0.0 and eo.passed  # a perfect predictor has equal error rates
