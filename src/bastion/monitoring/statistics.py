"""Drift statistics computed from two sketches that share the reference's cells.

Each function takes the reference sketch first. SciPy does the distribution work
(``ks_2samp``, ``kstwo``, ``chisquare``, ``jensenshannon``, ``norm``); what is computed
here is only the bookkeeping from cells to CDFs. See :mod:`bastion.monitoring.sketches`
for which results are exact and which are approximations.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import numpy.typing as npt
from scipy import stats
from scipy.spatial import distance

from bastion.monitoring.sketches import CategoricalSketch, FloatArray, NumericSketch

PSI_EPSILON = 1e-4


def _cdfs(ref: NumericSketch, cur: NumericSketch) -> tuple[FloatArray, FloatArray]:
    """Cumulative shares at the end of every cell."""
    return np.cumsum(ref.counts) / ref.n, np.cumsum(cur.counts) / cur.n


def ks_statistic(ref: NumericSketch, cur: NumericSketch) -> float:
    fr, fc = _cdfs(ref, cur)
    return float(np.max(np.abs(fr - fc))) if fr.size else 0.0


def ks_test(ref: NumericSketch, cur: NumericSketch) -> tuple[float, float]:
    """(statistic, two-sided p-value), as ``scipy.stats.ks_2samp(method='auto')`` gives.

    Small samples are rebuilt as surrogates (each interval's values collapsed to one
    interior value, which leaves the statistic unchanged when the reference has no
    value inside intervals) and handed to SciPy's exact test; large ones use the same
    asymptotic distribution SciPy uses.
    """
    n1, n2 = ref.n, cur.n
    if max(n1, n2) <= 10_000:
        a, b = _surrogate(ref), _surrogate(cur)
        with warnings.catch_warnings():
            # SciPy falls back to the asymptotic p-value (and says so) when exact fails
            warnings.simplefilter("ignore", RuntimeWarning)
            result = stats.ks_2samp(a, b)
        return float(result.statistic), float(result.pvalue)
    d = ks_statistic(ref, cur)
    big, small = max(n1, n2), min(n1, n2)
    en = big * small / (big + small)
    return d, float(stats.kstwo.sf(d, np.round(en)))


def _surrogate(sketch: NumericSketch) -> FloatArray:
    values = np.empty(sketch.counts.size, dtype=np.float64)
    occupied = sketch.counts > 0
    # Each interval cell's observed minimum: a real value strictly inside the interval.
    # (The mean, rebuilt from centred sums, can cancel onto an edge for tiny values.)
    values[occupied] = sketch.lo[occupied]
    points = np.arange(1, sketch.counts.size, 2)
    values[points] = sketch.bins.edges
    return np.repeat(values, sketch.counts)


def wasserstein(ref: NumericSketch, cur: NumericSketch) -> float:
    """First Wasserstein distance ∫|F_ref − F_cur| from cells (see module docstring)."""
    e = ref.bins.edges
    m = e.size
    if m == 0:
        return 0.0
    c = ref.bins.center
    nr, nc = ref.n, cur.n
    fr, fc = _cdfs(ref, cur)
    # outer cells: the integral of each CDF there is exact from the sums
    low = abs(
        (ref.counts[0] * (e[0] - c) - ref.sums[0]) / nr
        - (cur.counts[0] * (e[0] - c) - cur.sums[0]) / nc
    )
    high = abs(
        (ref.sums[-1] - ref.counts[-1] * (e[-1] - c)) / nr
        - (cur.sums[-1] - cur.counts[-1] * (e[-1] - c)) / nc
    )
    if m == 1:
        return float(low + high)
    a, b = e[:-1], e[1:]
    width = b - a
    idx = np.arange(2, 2 * m, 2)  # interior interval cells
    # CDF values just after the left edge (after its point) and just before the right one
    fa_r, fa_c = fr[idx - 1], fc[idx - 1]
    fb_r, fb_c = fr[idx], fc[idx]
    int_r = fa_r * width + (ref.counts[idx] * (b - c) - ref.sums[idx]) / nr
    int_c = fa_c * width + (cur.counts[idx] * (b - c) - cur.sums[idx]) / nc
    exact = np.abs(int_r - int_c)
    da, db = fa_r - fa_c, fb_r - fb_c
    inner = exact.copy()
    crossing = np.flatnonzero(da * db < 0)
    if crossing.size:
        inner[crossing] = np.maximum(
            exact[crossing], _crossing_estimate(ref, cur, idx[crossing], fr, fc)
        )
    return float(low + high + inner.sum())


def _abs_linear_integral(d0: FloatArray, d1: FloatArray, w: FloatArray) -> FloatArray:
    """∫|d| over segments where d is linear from d0 to d1 over width w."""
    same = d0 * d1 >= 0
    with np.errstate(invalid="ignore", divide="ignore"):
        cross = w * (d0 * d0 + d1 * d1) / (2 * (np.abs(d0) + np.abs(d1)))
    out: FloatArray = np.where(same, w * (np.abs(d0) + np.abs(d1)) / 2, np.nan_to_num(cross))
    return out


def _crossing_estimate(
    ref: NumericSketch,
    cur: NumericSketch,
    cells: npt.NDArray[np.int64],
    fr: FloatArray,
    fc: FloatArray,
) -> FloatArray:
    """In cells where the CDFs cross, spread each side's mass uniformly over its own
    [min, max] inside the cell (not the whole cell) and integrate |F_ref − F_cur| exactly
    over the piecewise-linear CDFs that gives."""
    e = ref.bins.edges
    k = cells // 2
    a, b = e[k - 1], e[k]

    def cdf(s: NumericSketch, f: FloatArray, x: FloatArray) -> FloatArray:
        start = f[cells - 1][:, None]
        mass = (f[cells] - f[cells - 1])[:, None]
        lo = np.where(s.counts[cells] > 0, s.lo[cells], a)[:, None]
        hi = np.where(s.counts[cells] > 0, s.hi[cells], a)[:, None]
        span = np.maximum(hi - lo, 1e-300)
        value: FloatArray = start + mass * np.clip((x - lo) / span, 0.0, 1.0) * (x >= lo)
        return value

    points = np.sort(
        np.stack([a, b, ref.lo[cells], ref.hi[cells], cur.lo[cells], cur.hi[cells]], axis=1), axis=1
    )
    points = np.clip(np.nan_to_num(points, nan=0.0, posinf=0.0, neginf=0.0), a[:, None], b[:, None])
    points = np.sort(points, axis=1)
    d = cdf(ref, fr, points) - cdf(cur, fc, points)
    # a point mass at x (hi == lo) jumps at x: evaluate just left of each breakpoint too
    left = cdf(ref, fr, np.nextafter(points, -np.inf)) - cdf(cur, fc, np.nextafter(points, -np.inf))
    w = np.diff(points, axis=1)
    total: FloatArray = _abs_linear_integral(d[:, :-1], left[:, 1:], w).sum(axis=1)
    return total


def wasserstein_normed(ref: NumericSketch, cur: NumericSketch) -> float:
    """Wasserstein divided by the reference std (floored at 0.001, as Evidently does)."""
    return wasserstein(ref, cur) / max(ref.std, 0.001)


def psi(ref_counts: FloatArray, cur_counts: FloatArray) -> float:
    """Population stability index Σ (c − r)·ln(c / r) over shares, empty bins floored."""
    r = np.maximum(ref_counts / max(ref_counts.sum(), 1), PSI_EPSILON)
    q = np.maximum(cur_counts / max(cur_counts.sum(), 1), PSI_EPSILON)
    return float(np.sum((q - r) * np.log(q / r)))


def jensenshannon(ref_counts: FloatArray, cur_counts: FloatArray) -> float:
    """Jensen–Shannon distance (natural log) of two count vectors over the same keys."""
    if ref_counts.sum() == 0 or cur_counts.sum() == 0:
        return 0.0
    value = distance.jensenshannon(ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum())
    return float(value) if math.isfinite(value) else 0.0


def numeric_value_counts(ref: NumericSketch, cur: NumericSketch) -> tuple[FloatArray, FloatArray]:
    """Counts over the occupied cells: per distinct value for points."""
    keep = (ref.counts > 0) | (cur.counts > 0)
    return ref.counts[keep].astype(np.float64), cur.counts[keep].astype(np.float64)


def category_counts(
    ref: CategoricalSketch, cur: CategoricalSketch
) -> tuple[list[str], FloatArray, FloatArray]:
    keys = sorted(set(ref.counts) | set(cur.counts))
    r = np.array([ref.counts.get(k, 0) for k in keys], dtype=np.float64)
    c = np.array([cur.counts.get(k, 0) for k in keys], dtype=np.float64)
    return keys, r, c


def chisquare_pvalue(ref_counts: FloatArray, cur_counts: FloatArray) -> tuple[float, float]:
    """Chi-square goodness of fit of the current counts to the reference shares
    (Evidently's form: expected = reference counts × n_cur / n_ref)."""
    expected = ref_counts * cur_counts.sum() / ref_counts.sum()
    if (expected == 0).any():
        # a category unseen in the reference: the test is undefined, drift is certain
        if (cur_counts[expected == 0] > 0).any():
            return math.inf, 0.0
        keep = expected > 0
        expected, cur_counts = expected[keep], cur_counts[keep]
    if expected.size < 2:
        return 0.0, 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        result = stats.chisquare(cur_counts, expected)
    return float(result.statistic), float(result.pvalue)


def proportions_z_pvalue(ref_counts: FloatArray, cur_counts: FloatArray) -> tuple[float, float]:
    """Two-proportion Z-test (pooled) on the share of the first key."""
    n1, n2 = ref_counts.sum(), cur_counts.sum()
    if ref_counts.size < 2 and cur_counts.size < 2:
        return 0.0, 1.0
    p1, p2 = ref_counts[0] / n1, cur_counts[0] / n2
    pooled = (ref_counts[0] + cur_counts[0]) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0, 1.0
    z = (p1 - p2) / se
    return float(z), float(2 * stats.norm.sf(abs(z)))
