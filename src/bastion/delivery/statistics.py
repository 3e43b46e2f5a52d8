"""Sequential comparisons of a candidate arm with the arm serving beside it.

A rollout looks at its numbers after every batch, for as long as it runs. A fixed-sample
test read that way raises false alarms far above its nominal level (five looks at a
5 % test give about 14 %), so every test that can *fail* a rollout here is an
**always-valid** one: its false-alarm rate stays below ``alpha`` however often it is
looked at.

- **Proportions** (error rate; misclassification rate once labels arrive): the
  normal-mixture sequential probability ratio test (mSPRT) of Johari, Pekelis & Walsh,
  *Always valid inference* (2017/2022), on the difference of two proportions, with a
  half-normal mixture so that only a *rise* fails the candidate. The variance is the
  pooled one under the null, which keeps the test at its level at the 1 % error rates
  a healthy model has (the bench, ``bench/canary.py``, measures it on 10,000 healthy
  canaries looked at after every batch). One candidate event is set aside before the
  test (a continuity correction): without it the normal approximation fails a healthy
  canary too often while its first few errors arrive (1.9 % instead of 1 % at α = 1 %
  in that simulation; 0.7 % with it).
- **Latency**: Mann-Whitney U, as Kayenta compares latency, made sequential by the same
  mixture on its effect size ``P(candidate slower) − ½`` with the null variance
  ``(n₁ + n₂ + 1) / (12 n₁ n₂)``. A U-statistic's path is asymptotically a Brownian
  motion, which is the condition the mixture martingale needs; we chose this over
  alpha-spending because a rollout has no planned number of looks to spend over.
  SciPy computes U; a latency regression also needs the p95 to have risen by more
  than the policy's tolerance, so that a statistically clear but tiny shift does not
  roll back a release.
- **Prediction drift** between the arms: PSI and Jensen–Shannon distance from
  :mod:`bastion.monitoring.statistics` over bins of the baseline's predictions. These
  are distances, not tests: they judge only once each arm has the step's minimum
  sample, which bounds their noise.

Each check says ``pass`` (the always-valid confidence bound excludes a regression
larger than the margin), ``fail`` (the sequential test rejects "no regression"), or
``hold`` with an estimate of how many more candidate requests a decision needs.
Only the mixture formulas are written here (SciPy has no mSPRT); the distributions
come from SciPy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import stats

from bastion.monitoring.statistics import jensenshannon, psi

FloatArray = npt.NDArray[np.float64]
Verdict = Literal["pass", "hold", "fail"]

#: Mixing scale of the mixture on a difference of proportions (about the size of the
#: rise worth catching: Johari et al. advise τ near the effects one expects).
DEFAULT_TAU_PROPORTION = 0.02
#: Mixing scale on the Mann-Whitney effect size ``P(slower) − ½``.
DEFAULT_TAU_LATENCY = 0.1
#: Most requests a hold estimate will name (past it, "more than this").
MAX_ESTIMATE = 10_000_000


def log_mixture_ratio(
    theta: float | FloatArray, variance: float | FloatArray, tau: float
) -> FloatArray:
    """log Λ of the one-sided normal-mixture SPRT for H₀: effect ≤ 0.

    Λ = 2·√(V/(V+τ²))·exp(τ²θ²/(2V(V+τ²)))·Φ(τθ/√(V(V+τ²))), the likelihood ratio of an
    estimate ``theta`` with variance ``variance`` integrated over a half-normal(τ) prior
    on the effect. Vectorised; a non-positive variance gives log Λ = 0 (no evidence).
    """
    th = np.asarray(theta, dtype=np.float64)
    v = np.asarray(variance, dtype=np.float64)
    t2 = tau * tau
    ok = v > 0
    vs = np.where(ok, v, 1.0)
    total = vs + t2
    z = tau * th / np.sqrt(vs * total)
    out = (
        math.log(2.0)
        + 0.5 * np.log(vs / total)
        + t2 * th * th / (2.0 * vs * total)
        + stats.norm.logcdf(z)
    )
    return np.where(ok & np.isfinite(th), out, 0.0)


def confidence_radius(variance: float | FloatArray, tau: float, alpha: float) -> FloatArray:
    """Half-width of the two-sided always-valid confidence sequence of the same mixture:
    √((V(V+τ²)/τ²)·(2 ln(1/α) + ln((V+τ²)/V)))."""
    v = np.maximum(np.asarray(variance, dtype=np.float64), 1e-300)
    t2 = tau * tau
    return np.asarray(
        np.sqrt(v * (v + t2) / t2 * (2.0 * math.log(1.0 / alpha) + np.log((v + t2) / v)))
    )


def always_valid_p(log_ratio: float) -> float:
    """The always-valid p-value of one look: min(1, 1/Λ)."""
    return float(min(1.0, math.exp(-log_ratio))) if math.isfinite(log_ratio) else 0.0


@dataclass(frozen=True)
class Check:
    """One comparison's outcome, with the numbers the ledger keeps."""

    metric: str
    test: str
    verdict: Verdict
    numbers: dict[str, float | int | None] = field(default_factory=dict)
    reason: str = ""
    #: Candidate requests a decision is expected to need, when holding.
    more_requests: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "test": self.test,
            "verdict": self.verdict,
            "numbers": self.numbers,
            "reason": self.reason,
            "more_requests": self.more_requests,
        }


def _finite(x: float) -> float | None:
    return round(float(x), 6) if math.isfinite(x) else None


def proportion_log_ratio(
    base_events: FloatArray | float,
    base_n: FloatArray | float,
    cand_events: FloatArray | float,
    cand_n: FloatArray | float,
    *,
    tolerance: float = 0.0,
    tau: float = DEFAULT_TAU_PROPORTION,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(log Λ, difference, pooled null variance) of the rise in a rate, vectorised (the
    controller and ``bench/canary.py`` run this same function).

    The variance is pooled under the null and floored (with no events yet in either arm
    the estimate is 0/0); one candidate event is set aside before the test (a
    continuity correction): the normal mixture is otherwise too quick at the few events
    a 1 % rate gives early on.
    """
    eb = np.asarray(base_events, dtype=np.float64)
    nb = np.asarray(base_n, dtype=np.float64)
    ec = np.asarray(cand_events, dtype=np.float64)
    nc = np.asarray(cand_n, dtype=np.float64)
    pooled = (eb + ec) / (nb + nc)
    pooled = np.clip(np.maximum(pooled, 0.5 / (nb + nc)), 0.0, 1.0)
    v = pooled * (1.0 - pooled) * (1.0 / nb + 1.0 / nc)
    diff = ec / nc - eb / nb
    return log_mixture_ratio(diff - tolerance - 1.0 / nc, v, tau), diff, v


def proportion_check(
    metric: str,
    base_events: int,
    base_n: int,
    cand_events: int,
    cand_n: int,
    *,
    alpha: float,
    tolerance: float = 0.0,
    margin: float,
    min_sample: int,
    tau: float = DEFAULT_TAU_PROPORTION,
) -> Check:
    """Is the candidate's rate of ``events`` (errors, wrong answers) higher than the
    baseline's by more than ``tolerance``? Fail when the mSPRT says so at ``alpha``; pass
    once both arms have ``min_sample`` and the confidence sequence's upper bound on the
    rise is below ``margin``; hold otherwise."""
    if base_n <= 0 or cand_n <= 0:
        need = max(min_sample - max(cand_n, 0), 1)
        return Check(
            metric,
            "msprt-2prop",
            "hold",
            {"n_base": base_n, "n_candidate": cand_n},
            "no requests yet in one of the arms",
            need,
        )
    p_b, p_c = base_events / base_n, cand_events / cand_n
    ll, d, var = proportion_log_ratio(
        base_events, base_n, cand_events, cand_n, tolerance=tolerance, tau=tau
    )
    log_l, diff, v = float(ll), float(d), float(var)
    radius = float(confidence_radius(v, tau, alpha))
    upper = diff + radius
    numbers: dict[str, float | int | None] = {
        "n_base": base_n,
        "n_candidate": cand_n,
        "rate_base": _finite(p_b),
        "rate_candidate": _finite(p_c),
        "difference": _finite(diff),
        "upper_bound": _finite(upper),
        "log_likelihood_ratio": _finite(log_l),
        "threshold": _finite(math.log(1.0 / alpha)),
        "p_value": _finite(always_valid_p(log_l)),
    }
    if log_l >= math.log(1.0 / alpha):
        return Check(
            metric,
            "msprt-2prop",
            "fail",
            numbers,
            f"{metric} {p_c:.2%} vs {p_b:.2%}: a rise beyond {tolerance:.2%} at α={alpha:g}",
        )
    enough = min(base_n, cand_n) >= min_sample
    if enough and upper < margin:
        return Check(
            metric,
            "msprt-2prop",
            "pass",
            numbers,
            f"{metric} rise at most {upper:.2%} (< {margin:.2%})",
        )
    more = _more_for_proportions(p_b, p_c, base_n, cand_n, alpha, margin, tau, min_sample)
    why = "below the minimum sample" if not enough else "not yet conclusive"
    return Check(metric, "msprt-2prop", "hold", numbers, why, more)


def _more_for_proportions(
    p_b: float,
    p_c: float,
    base_n: int,
    cand_n: int,
    alpha: float,
    margin: float,
    tau: float,
    min_sample: int,
) -> int:
    """Candidate requests until the bound would settle it if today's rates held: the
    smallest growth factor k (both arms growing together) at which the upper bound
    falls below ``margin`` or the test rejects."""
    ratio = base_n / cand_n
    pooled = max((p_b * base_n + p_c * cand_n) / (base_n + cand_n), 1e-4)
    diff = p_c - p_b
    ks = np.geomspace(1.0, MAX_ESTIMATE / max(cand_n, 1), 400)
    nc = cand_n * ks
    v = pooled * (1 - pooled) * (1 / (nc * ratio) + 1 / nc)
    upper = diff + confidence_radius(v, tau, alpha)
    reject = log_mixture_ratio(diff - 1.0 / nc, v, tau) >= math.log(1 / alpha)
    settled = ((upper < margin) & (np.minimum(nc, nc * ratio) >= min_sample)) | reject
    if not settled.any():
        return MAX_ESTIMATE
    target = float(nc[int(np.argmax(settled))])
    return max(math.ceil(target - cand_n), 1)


def _mw_effect(base: FloatArray, cand: FloatArray) -> tuple[float, float]:
    """(P(candidate > baseline) + ½P(tie) − ½, its null variance) from SciPy's U."""
    n1, n2 = cand.size, base.size
    u = float(stats.mannwhitneyu(cand, base, alternative="greater", method="asymptotic").statistic)
    return u / (n1 * n2) - 0.5, (n1 + n2 + 1) / (12.0 * n1 * n2)


def latency_check(
    base_ms: Sequence[float] | FloatArray,
    cand_ms: Sequence[float] | FloatArray,
    *,
    alpha: float,
    tolerance: float,
    margin: float,
    min_sample: int,
    tau: float = DEFAULT_TAU_LATENCY,
) -> Check:
    """Is the candidate slower? Fail when the sequential Mann-Whitney rejects "not
    slower" at ``alpha`` *and* its p95 is more than ``tolerance`` (relative) above the
    baseline's; pass when both arms have ``min_sample`` and the bound on ``P(slower) −
    ½`` is below ``margin`` or the p95 is within tolerance; hold otherwise."""
    base = np.asarray(base_ms, dtype=np.float64)
    cand = np.asarray(cand_ms, dtype=np.float64)
    base, cand = base[np.isfinite(base)], cand[np.isfinite(cand)]
    if base.size == 0 or cand.size == 0:
        return Check(
            "latency",
            "msprt-mann-whitney",
            "hold",
            {"n_base": int(base.size), "n_candidate": int(cand.size)},
            "no latencies yet in one of the arms",
            max(min_sample - int(cand.size), 1),
        )
    effect, v = _mw_effect(base, cand)
    log_l = float(log_mixture_ratio(effect, v, tau))
    upper = effect + float(confidence_radius(v, tau, alpha))
    p95_b = float(np.percentile(base, 95))
    p95_c = float(np.percentile(cand, 95))
    rise = (p95_c - p95_b) / p95_b if p95_b > 0 else (0.0 if p95_c <= 0 else math.inf)
    numbers: dict[str, float | int | None] = {
        "n_base": int(base.size),
        "n_candidate": int(cand.size),
        "p95_base_ms": _finite(p95_b),
        "p95_candidate_ms": _finite(p95_c),
        "p95_rise": _finite(rise),
        "effect": _finite(effect),
        "upper_bound": _finite(upper),
        "log_likelihood_ratio": _finite(log_l),
        "threshold": _finite(math.log(1.0 / alpha)),
        "p_value": _finite(always_valid_p(log_l)),
    }
    significant = log_l >= math.log(1.0 / alpha)
    if significant and rise > tolerance:
        return Check(
            "latency",
            "msprt-mann-whitney",
            "fail",
            numbers,
            f"p95 {p95_c:.1f} ms vs {p95_b:.1f} ms (+{rise:.0%}), slower at α={alpha:g}",
        )
    enough = min(base.size, cand.size) >= min_sample
    if enough and (upper < margin or rise <= tolerance):
        return Check("latency", "msprt-mann-whitney", "pass", numbers, "not slower")
    # The bound shrinks like √(1/n): the growth that brings it under the margin.
    radius = upper - effect
    room = margin - effect
    if room > 0 and radius > 0:
        factor = (radius / room) ** 2
        more = math.ceil(cand.size * max(factor - 1, 0))
    else:
        more = MAX_ESTIMATE
    more = max(more, min_sample - int(cand.size), 1)
    why = "below the minimum sample" if not enough else "not yet conclusive"
    return Check("latency", "msprt-mann-whitney", "hold", numbers, why, min(more, MAX_ESTIMATE))


def _bins(base: FloatArray, cand: FloatArray, n_bins: int) -> tuple[FloatArray, FloatArray]:
    edges = np.unique(np.quantile(base, np.linspace(0, 1, n_bins + 1)[1:-1]))
    b = np.bincount(np.searchsorted(edges, base, side="right"), minlength=edges.size + 1)
    c = np.bincount(np.searchsorted(edges, cand, side="right"), minlength=edges.size + 1)
    return b.astype(np.float64), c.astype(np.float64)


def drift_check(
    base: Sequence[Any],
    cand: Sequence[Any],
    *,
    js_threshold: float,
    min_sample: int,
    n_bins: int = 10,
) -> Check:
    """Jensen–Shannon distance (and PSI, reported) between the arms' predictions:
    numbers binned at the baseline's deciles, anything else counted per value."""
    nb, nc = len(base), len(cand)
    if min(nb, nc) < min_sample:
        return Check(
            "prediction_drift",
            "jensen-shannon",
            "hold",
            {"n_base": nb, "n_candidate": nc},
            "below the minimum sample",
            max(min_sample - nc, 1),
        )
    numeric = all(
        isinstance(x, int | float) and not isinstance(x, bool) for x in (*base[:50], *cand[:50])
    )
    if numeric:
        b_arr = np.asarray(base, dtype=np.float64)
        c_arr = np.asarray(cand, dtype=np.float64)
        b_arr, c_arr = b_arr[np.isfinite(b_arr)], c_arr[np.isfinite(c_arr)]
        if b_arr.size == 0 or c_arr.size == 0:
            return Check("prediction_drift", "jensen-shannon", "hold", {}, "no finite values", 1)
        bc, cc = _bins(b_arr, c_arr, n_bins)
    else:
        keys = sorted({repr(x) for x in base} | {repr(x) for x in cand})
        index = {k: i for i, k in enumerate(keys)}
        bc = np.bincount([index[repr(x)] for x in base], minlength=len(keys)).astype(np.float64)
        cc = np.bincount([index[repr(x)] for x in cand], minlength=len(keys)).astype(np.float64)
    js = jensenshannon(bc, cc)
    numbers: dict[str, float | int | None] = {
        "n_base": nb,
        "n_candidate": nc,
        "js_distance": _finite(js),
        "psi": _finite(psi(bc, cc)),
        "threshold": js_threshold,
    }
    if js > js_threshold:
        return Check(
            "prediction_drift",
            "jensen-shannon",
            "fail",
            numbers,
            f"predictions differ: JS {js:.3f} > {js_threshold:g}",
        )
    return Check("prediction_drift", "jensen-shannon", "pass", numbers, "predictions alike")


def combine(checks: Sequence[Check]) -> tuple[Verdict, int | None]:
    """Any fail fails; all pass passes; else hold with the largest estimate."""
    if any(c.verdict == "fail" for c in checks):
        return "fail", None
    holds = [c for c in checks if c.verdict == "hold"]
    if not holds:
        return "pass", None
    return "hold", max((c.more_requests or 1) for c in holds)
