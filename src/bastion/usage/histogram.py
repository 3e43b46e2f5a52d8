"""Fixed log-bucket histograms: latencies folded into counts, percentiles read back.

A bucket ``i`` below the last holds values ``<= 2 ** (i / 2)`` milliseconds and above
the bucket before it (bucket 0 holds everything up to 1 ms); the last bucket holds
what is above ``2 ** 19`` ms (about 8.7 minutes). Neighbouring bounds differ by a factor
of √2, so a percentile read from merged counts is within one bucket of the exact value.
Counts of any rows (days, teams, models) merge by adding them, bucket by bucket.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

#: Buckets per histogram; the migration that made the columns (0015) has its own copy.
BUCKETS = 40
#: Upper bounds (ms) of every bucket but the last, which is open.
BOUNDS_MS: tuple[float, ...] = tuple(2 ** (i / 2) for i in range(BUCKETS - 1))


def bucket_of(ms: float) -> int:
    """The bucket a value in milliseconds falls into."""
    return bisect.bisect_left(BOUNDS_MS, ms)


def empty() -> list[int]:
    return [0] * BUCKETS


def merge(into: list[int], counts: Sequence[int]) -> list[int]:
    for i, n in enumerate(counts):
        into[i] += n
    return into


def quantile(counts: Sequence[int], q: float) -> float | None:
    """The ``q`` quantile (0..1) in ms, interpolated linearly inside its bucket; None when
    there are no values. The open last bucket answers its lower bound."""
    total = sum(counts)
    if total == 0:
        return None
    rank = max(q * total, 1e-9)
    seen = 0
    for i, n in enumerate(counts):
        if n and seen + n >= rank:
            lower = BOUNDS_MS[i - 1] if i > 0 else 0.0
            if i == BUCKETS - 1:
                return lower
            upper = BOUNDS_MS[i]
            return lower + (upper - lower) * (rank - seen) / n
        seen += n
    return BOUNDS_MS[-1]  # unreachable: the loop ends on the last non-empty bucket


def width_ratio() -> float:
    """How far apart neighbouring bounds are (a factor): the error a percentile may have."""
    return math.sqrt(2)


def quantiles(counts: npt.NDArray[np.int64], q: float) -> list[float | None]:
    """:func:`quantile` of every row of ``counts`` (rows × :data:`BUCKETS`) at once."""
    if counts.shape[0] == 0:
        return []
    total = counts.sum(axis=1)
    rank = np.maximum(q * total, 1e-9)
    cum = counts.cumsum(axis=1)
    index = np.minimum((cum < rank[:, None]).sum(axis=1), BUCKETS - 1)
    rows = np.arange(counts.shape[0])
    before = np.where(index > 0, cum[rows, np.maximum(index - 1, 0)], 0)
    here = np.maximum(counts[rows, index], 1)
    uppers = np.array((*BOUNDS_MS, BOUNDS_MS[-1]))
    lowers = np.array((0.0, *BOUNDS_MS))
    lower, upper = lowers[index], uppers[index]
    value = lower + (upper - lower) * (rank - before) / here
    value = np.where(index == BUCKETS - 1, lower, value)
    return [None if t == 0 else float(v) for v, t in zip(value, total, strict=True)]
