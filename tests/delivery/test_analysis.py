"""One analysis over both arms: each check can fail the candidate on its own."""

from __future__ import annotations

import numpy as np
import pytest

from bastion.delivery.analysis import analyse
from bastion.delivery.config import DeliveryPolicy, Thresholds
from bastion.delivery.repository import ArmSamples

T = Thresholds(min_sample=500)


def arm(
    rng: np.random.Generator,
    *,
    n: int = 4000,
    error_rate: float = 0.01,
    slow: float = 1.0,
    positive: float = 0.3,
    wrong: float | None = None,
) -> ArmSamples:
    errors = int(rng.binomial(n, error_rate))
    predictions = list((rng.random(n - errors) < positive).astype(int))
    labelled = n - errors if wrong is not None else 0
    return ArmSamples(
        requests=n,
        errors=errors,
        latencies_ms=rng.lognormal(3.0, 0.3, n) * slow,
        predictions=predictions,
        labelled=labelled,
        wrong=int(rng.binomial(labelled, wrong)) if wrong is not None else 0,
    )


@pytest.mark.parametrize(
    ("candidate", "verdict", "failing"),
    [
        ({}, "pass", set()),
        ({"error_rate": 0.11}, "fail", {"error_rate"}),
        ({"slow": 1.6}, "fail", {"latency"}),
        ({"positive": 0.8}, "fail", {"prediction_drift"}),
        ({"wrong": 0.30}, "fail", {"wrong_answers"}),
    ],
)
def test_each_check_judges_the_candidate(
    candidate: dict[str, float], verdict: str, failing: set[str]
) -> None:
    rng = np.random.default_rng(11)
    base = arm(rng, wrong=0.15)
    cand = arm(rng, **({"wrong": 0.15} | candidate))  # type: ignore[arg-type]
    result = analyse(base, cand, T)
    assert result.verdict == verdict, result.as_dict()
    assert {c.metric for c in result.checks if c.verdict == "fail"} == failing
    assert {c.metric for c in result.checks} == {
        "error_rate",
        "latency",
        "prediction_drift",
        "wrong_answers",
    }


def test_too_little_traffic_holds_with_an_estimate() -> None:
    rng = np.random.default_rng(2)
    result = analyse(arm(rng, n=2000), arm(rng, n=60), T)
    assert result.verdict == "hold"
    assert result.more_requests is not None and result.more_requests >= 440


def test_a_model_can_have_its_own_thresholds() -> None:
    policy = DeliveryPolicy.model_validate({"models": {"income": {"min_sample": 5000}}})
    assert policy.thresholds_for("income").min_sample == 5000
    assert policy.thresholds_for("other").min_sample == 500
    assert policy.thresholds_for("income").alpha == policy.alpha
