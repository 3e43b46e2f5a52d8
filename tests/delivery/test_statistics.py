"""The sequential tests: never NaN, bounded, monotone, and at their level when peeked at."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.delivery.statistics import (
    always_valid_p,
    combine,
    confidence_radius,
    drift_check,
    latency_check,
    proportion_check,
    proportion_log_ratio,
)

counts = st.integers(min_value=0, max_value=100_000)
sizes = st.integers(min_value=1, max_value=100_000)


@st.composite
def arm(draw: st.DrawFn) -> tuple[int, int]:
    n = draw(sizes)
    return draw(st.integers(min_value=0, max_value=n)), n


@given(arm(), arm(), st.floats(min_value=0.001, max_value=0.2))
def test_the_proportion_test_is_never_nan_and_its_numbers_are_bounded(
    base: tuple[int, int], cand: tuple[int, int], alpha: float
) -> None:
    check = proportion_check("error_rate", *base, *cand, alpha=alpha, margin=0.02, min_sample=100)
    assert check.verdict in ("pass", "hold", "fail")
    for key in ("log_likelihood_ratio", "upper_bound", "p_value", "difference"):
        value = check.numbers[key]
        assert value is not None and math.isfinite(value), key
    p = check.numbers["p_value"]
    assert p is not None and 0.0 <= p <= 1.0
    if check.verdict == "hold":
        assert check.more_requests is not None and check.more_requests >= 1
    if check.verdict == "fail":
        assert p <= alpha + 1e-6


@given(st.integers(100, 50_000), st.integers(0, 200), st.integers(1, 50))
def test_more_candidate_errors_never_weaken_the_evidence(
    n: int, base_errors: int, extra: int
) -> None:
    base_errors = min(base_errors, n)
    fewer = min(base_errors, n)
    more = min(fewer + extra, n)
    ll_few, _, _ = proportion_log_ratio(base_errors, n, fewer, n)
    ll_more, _, _ = proportion_log_ratio(base_errors, n, more, n)
    assert float(ll_more) >= float(ll_few) - 1e-9


@given(st.floats(1e-8, 1.0), st.floats(1e-8, 1.0), st.floats(0.001, 0.2))
def test_the_confidence_radius_shrinks_with_the_variance(
    v1: float, v2: float, alpha: float
) -> None:
    small, large = sorted((v1, v2))
    assert (
        float(confidence_radius(small, 0.02, alpha))
        <= float(confidence_radius(large, 0.02, alpha)) + 1e-12
    )


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_an_always_valid_p_value_is_a_probability(log_ratio: float) -> None:
    assert 0.0 <= always_valid_p(log_ratio) <= 1.0


@given(
    st.lists(st.floats(0.1, 1e4), min_size=0, max_size=300),
    st.lists(st.floats(0.1, 1e4), min_size=0, max_size=300),
)
@settings(max_examples=60, deadline=None)
def test_the_latency_test_never_gives_nan(base: list[float], cand: list[float]) -> None:
    check = latency_check(base, cand, alpha=0.01, tolerance=0.2, margin=0.1, min_sample=20)
    assert check.verdict in ("pass", "hold", "fail")
    assert all(v is None or math.isfinite(v) for v in check.numbers.values())
    if check.verdict == "hold":
        assert check.more_requests is not None and check.more_requests >= 1


def test_peeking_after_every_batch_keeps_a_healthy_canary_at_alpha() -> None:
    """2,000 healthy canaries, 100 looks each: false rollbacks stay under α (1 %).
    A plain z-test read the same way rolls back far more (the reason for the mSPRT)."""
    rng = np.random.default_rng(7)
    runs, looks, bc, bb = 2_000, 100, 50, 450
    c = np.cumsum(rng.binomial(bc, 0.01, (runs, looks)), axis=1)
    b = np.cumsum(rng.binomial(bb, 0.01, (runs, looks)), axis=1)
    nc, nb = bc * np.arange(1, looks + 1), bb * np.arange(1, looks + 1)
    ll, diff, var = proportion_log_ratio(b, nb, c, nc)
    msprt = (ll >= math.log(100)).any(axis=1).mean()
    z = diff / np.sqrt(var)
    peeking = (z > 2.326).any(axis=1).mean()
    assert msprt <= 0.01
    assert peeking > 5 * 0.01


@pytest.mark.parametrize(
    ("rate", "verdict"),
    [(0.01, "pass"), (0.06, "fail"), (0.11, "fail")],
)
def test_the_verdict_follows_the_candidate_error_rate(rate: float, verdict: str) -> None:
    rng = np.random.default_rng(3)
    n = 3000
    check = proportion_check(
        "error_rate",
        int(rng.binomial(n, 0.01)),
        n,
        int(rng.binomial(n, rate)),
        n,
        alpha=0.01,
        margin=0.02,
        min_sample=500,
    )
    assert check.verdict == verdict


def test_too_few_requests_hold_and_say_how_many_more() -> None:
    check = proportion_check("error_rate", 1, 100, 1, 100, alpha=0.01, margin=0.02, min_sample=500)
    assert check.verdict == "hold"
    assert check.more_requests is not None and check.more_requests >= 400


@pytest.mark.parametrize(
    ("shift", "verdict"),
    [(1.0, "pass"), (1.5, "fail")],
)
def test_latency_fails_only_a_clearly_slower_candidate(shift: float, verdict: str) -> None:
    rng = np.random.default_rng(5)
    base = rng.lognormal(3.0, 0.3, 2000)
    cand = rng.lognormal(3.0, 0.3, 2000) * shift
    check = latency_check(base, cand, alpha=0.01, tolerance=0.2, margin=0.1, min_sample=500)
    assert check.verdict == verdict


@pytest.mark.parametrize(
    ("cand", "verdict"),
    [(["yes"] * 300 + ["no"] * 700, "pass"), (["yes"] * 800 + ["no"] * 200, "fail")],
)
def test_prediction_drift_between_the_arms(cand: list[str], verdict: str) -> None:
    base = ["yes"] * 300 + ["no"] * 700
    check = drift_check(base, cand, js_threshold=0.2, min_sample=500)
    assert check.verdict == verdict
    assert check.numbers["psi"] is not None


def test_any_fail_fails_and_holds_take_the_largest_estimate() -> None:
    hold_a = proportion_check("e", 0, 10, 0, 10, alpha=0.01, margin=0.02, min_sample=100)
    hold_b = proportion_check("e", 0, 50, 0, 50, alpha=0.01, margin=0.02, min_sample=100)
    verdict, more = combine([hold_a, hold_b])
    assert verdict == "hold" and more == max(hold_a.more_requests or 0, hold_b.more_requests or 0)
    fail = proportion_check("e", 10, 1000, 100, 1000, alpha=0.01, margin=0.02, min_sample=100)
    assert combine([hold_a, fail]) == ("fail", None)
