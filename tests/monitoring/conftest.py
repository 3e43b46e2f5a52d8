"""Data generators for the monitoring tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def make_frame(n: int, *, shift: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """Five numeric and two categorical columns; ``shift`` moves a and b, and the
    category mix of ``colour``."""
    rng = np.random.default_rng(seed)
    mix = [0.5, 0.3, 0.2] if shift == 0 else [0.3, 0.3, 0.4]
    return pd.DataFrame(
        {
            "a": rng.normal(shift, 1, n),
            "b": rng.exponential(1 + shift, n),
            "c": rng.normal(0, 1, n),
            "d": rng.uniform(0, 1, n),
            "e": rng.poisson(4, n).astype(float),
            "colour": rng.choice(["red", "green", "blue"], n, p=mix),
            "size": rng.choice(["s", "m", "l", "xl"], n),
        }
    )


@pytest.fixture
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    return make_frame(20_000, seed=1), make_frame(20_000, shift=0.5, seed=2)
