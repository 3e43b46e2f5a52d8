"""Sketches: merging windows equals sketching everything; statistics match SciPy."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy import stats

from bastion.monitoring import statistics as S
from bastion.monitoring.errors import IncompatibleSketch
from bastion.monitoring.sketches import (
    CategoricalSketch,
    NumericBins,
    NumericSketch,
    sketch_from_dict,
)

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
values = st.lists(
    st.one_of(finite, st.just(float("nan")), st.integers(-5, 5).map(float)), max_size=200
)


@settings(max_examples=60, deadline=None)
@given(
    reference=st.lists(finite, min_size=1, max_size=300),
    parts=st.lists(values, min_size=1, max_size=5),
)
def test_merged_windows_equal_one_sketch(reference: list[float], parts: list[list[float]]) -> None:
    bins = NumericBins.fit(reference, sketch_bins=50, psi_bins=5)
    whole = NumericSketch.of(np.concatenate([np.asarray(p, dtype=float) for p in parts]), bins)
    merged = NumericSketch.empty(bins)
    for part in parts:
        merged = merged.merge(NumericSketch.of(part, bins))
    assert np.array_equal(whole.counts, merged.counts)
    assert whole.n_missing == merged.n_missing
    np.testing.assert_allclose(whole.sums, merged.sums, rtol=1e-9, atol=1e-3)
    assert whole.mean == pytest.approx(merged.mean, rel=1e-9, abs=1e-6)
    assert whole.std == pytest.approx(merged.std, rel=1e-6, abs=1e-3)
    assert np.array_equal(whole.lo, merged.lo) and np.array_equal(whole.hi, merged.hi)


@settings(max_examples=60, deadline=None)
@given(
    a=st.lists(st.sampled_from("abcdefg"), max_size=100),
    b=st.lists(st.sampled_from("abcdefg"), max_size=100),
)
def test_categorical_merge_is_addition(a: list[str], b: list[str]) -> None:
    left, right, both = CategoricalSketch(), CategoricalSketch(), CategoricalSketch()
    left.update(a)
    right.update(b)
    both.update(a + b)
    assert left.merge(right).counts == both.counts


@settings(max_examples=40, deadline=None)
@given(
    reference=st.lists(st.integers(-50, 50).map(float), min_size=5, max_size=300),
    current=st.lists(st.floats(-80, 80, allow_nan=False), min_size=5, max_size=300),
)
@example(  # a tiny value once cancelled onto the edge 0.0 in the KS surrogate
    reference=[0.0, 0.0, 1.0, 1.0, 1.0], current=[0.0, 1.0, 1.0, 1.0, 1.3588262253117188e-87]
)
def test_ks_is_exact_when_edges_hold_every_reference_value(
    reference: list[float], current: list[float]
) -> None:
    bins = NumericBins.fit(reference)
    ref, cur = NumericSketch.of(reference, bins), NumericSketch.of(current, bins)
    assert ref.exact_reference()
    d, p = S.ks_test(ref, cur)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = stats.ks_2samp(reference, current)
    assert d == pytest.approx(expected.statistic, abs=1e-12)
    assert p == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(
    "make",
    [
        lambda r: (r.normal(0, 1, 200_000), r.normal(0.1, 1.2, 150_000)),
        lambda r: (np.round(r.exponential(20, 300_000)), np.round(r.exponential(25, 200_000))),
        lambda r: (r.lognormal(0, 2, 200_000), r.lognormal(0.05, 2, 200_000)),
        lambda r: (r.normal(0, 1, 50_000), r.normal(3, 2, 50_000)),  # mostly outside the reference
    ],
    ids=["normal", "integers", "heavy-tail", "out-of-range"],
)
def test_wasserstein_from_cells_matches_scipy(make) -> None:
    ref_x, cur_x = make(np.random.default_rng(7))
    bins = NumericBins.fit(ref_x)
    ref = NumericSketch.of(ref_x, bins)
    cur = NumericSketch.empty(bins)
    for part in np.array_split(cur_x, 7):
        cur.update(part)
    assert S.wasserstein(ref, cur) == pytest.approx(
        stats.wasserstein_distance(ref_x, cur_x), rel=5e-3
    )
    assert ref.std == pytest.approx(float(np.std(ref_x)), rel=1e-9)


def test_psi_bins_are_reference_deciles() -> None:
    x = np.random.default_rng(1).normal(size=100_000)
    sketch = NumericSketch.of(x, NumericBins.fit(x))
    shares = sketch.psi_counts() / sketch.n
    np.testing.assert_allclose(shares, 0.1, atol=1e-3)


def test_missing_and_infinite_values_count_as_missing() -> None:
    bins = NumericBins.fit([1.0, 2.0, 3.0])
    sketch = NumericSketch.of([1.0, np.nan, np.inf, -np.inf, 2.0], bins)
    assert (sketch.n, sketch.n_missing) == (2, 3)


def test_sketches_round_trip_through_json() -> None:
    x = np.random.default_rng(2).normal(size=5000)
    sketch = NumericSketch.of(x, NumericBins.fit(x))
    back = sketch_from_dict(sketch.to_dict())
    assert isinstance(back, NumericSketch)
    assert np.array_equal(back.counts, sketch.counts) and back.std == sketch.std
    cats = CategoricalSketch()
    cats.update(["a", None, "b", "a"])
    assert sketch_from_dict(cats.to_dict()).counts == {"a": 2, "b": 1}


def test_sketches_of_different_references_refuse_to_merge() -> None:
    a = NumericSketch.of([1.0, 2.0], NumericBins.fit([1.0, 2.0]))
    b = NumericSketch.of([1.0, 2.0], NumericBins.fit([1.0, 5.0]))
    with pytest.raises(IncompatibleSketch):
        a.merge(b)


def test_category_cap_pools_the_rarest() -> None:
    sketch = CategoricalSketch(max_categories=3)
    sketch.update(["a"] * 5 + ["b"] * 4 + ["c"] * 2 + ["d"])
    assert sketch.counts == {"a": 5, "b": 4, "<other>": 3}
