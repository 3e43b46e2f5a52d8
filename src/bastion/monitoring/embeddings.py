"""Drift of embeddings (text, RAG queries, images): three complementary checks.

* **Domain classifier**: a logistic regression (scikit-learn) learns to tell reference
  rows from current rows; cross-validated ROC AUC near 0.5 means it cannot, so no drift.
  Drift when AUC ≥ ``auc_threshold`` (0.55, Evidently's default for its embedding model
  method).
* **MMD** with an RBF kernel (bandwidth by the median heuristic) and a permutation test:
  drift when the p-value < ``p_value``. Quadratic in rows, so at most ``max_rows`` a side
  are sampled.
* **PCA reconstruction error**: PCA fitted on the reference keeps ``variance`` of its
  variance; current rows the reference's subspace cannot reconstruct (mean error more
  than ``error_ratio`` × the reference's own held-out error) are new territory.

The MMD statistic and its permutation loop are written here (a few NumPy lines): the
maintained implementations live in alibi-detect (Business Source License) or torch-based
packages, neither acceptable as a dependency.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from bastion.monitoring.config import Severity
from bastion.monitoring.errors import InvalidData
from bastion.monitoring.findings import Finding


@dataclass(frozen=True)
class EmbeddingCheck:
    method: str
    score: float
    threshold: float
    drifted: bool
    details: dict[str, Any]


@dataclass(frozen=True)
class EmbeddingDriftReport:
    checks: list[EmbeddingCheck]
    n_reference: int
    n_current: int
    dimensions: int

    @property
    def drifted(self) -> bool:
        return any(c.drifted for c in self.checks)

    @property
    def passed(self) -> bool:
        return not self.drifted

    @property
    def findings(self) -> list[Finding]:
        return [
            Finding(
                "embedding",
                c.method,
                "embedding_drift",
                Severity.warning,
                f"embedding drift by {c.method}: {c.score:.4g} (threshold {c.threshold:g})",
                {"score": c.score, "threshold": c.threshold},
            )
            for c in self.checks
            if c.drifted
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": "embedding",
            "passed": self.passed,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "dimensions": self.dimensions,
            "checks": [asdict(c) for c in self.checks],
            "findings": [f.to_dict() for f in self.findings],
        }


def _matrix(x: npt.ArrayLike, name: str) -> npt.NDArray[np.float64]:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] < 10:
        raise InvalidData(f"{name} embeddings must be a 2-D array with at least 10 rows")
    if not np.isfinite(arr).all():
        raise InvalidData(f"{name} embeddings hold NaN or infinite values; clean them first")
    return arr


def _sample(
    x: npt.NDArray[np.float64], n: int, rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    return x if len(x) <= n else x[rng.choice(len(x), n, replace=False)]


def domain_classifier_auc(
    reference: npt.ArrayLike,
    current: npt.ArrayLike,
    *,
    auc_threshold: float = 0.55,
    max_rows: int = 20_000,
    seed: int = 0,
) -> EmbeddingCheck:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    a = _sample(_matrix(reference, "reference"), max_rows, rng)
    b = _sample(_matrix(current, "current"), max_rows, rng)
    x = np.vstack([a, b])
    y = np.r_[np.zeros(len(a)), np.ones(len(b))]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    proba = cross_val_predict(model, x, y, cv=folds, method="predict_proba")[:, 1]
    auc = float(roc_auc_score(y, proba))
    return EmbeddingCheck(
        "domain_classifier", auc, auc_threshold, auc >= auc_threshold, {"folds": 5}
    )


def _sq_dists(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    sq = np.einsum("ij,ij->i", x, x)
    d = sq[:, None] + sq[None, :] - 2 * x @ x.T
    out: npt.NDArray[np.float64] = np.maximum(d, 0.0)
    return out


def mmd_test(
    reference: npt.ArrayLike,
    current: npt.ArrayLike,
    *,
    p_value: float = 0.05,
    permutations: int = 200,
    max_rows: int = 1000,
    seed: int = 0,
) -> EmbeddingCheck:
    rng = np.random.default_rng(seed)
    a = _sample(_matrix(reference, "reference"), max_rows, rng)
    b = _sample(_matrix(current, "current"), max_rows, rng)
    x = np.vstack([a, b])
    d = _sq_dists(x)
    off = d[np.triu_indices_from(d, k=1)]
    bandwidth = float(np.median(off[off > 0])) if (off > 0).any() else 1.0
    k = np.exp(-d / bandwidth)
    n, m = len(a), len(b)

    def stat(idx: npt.NDArray[np.intp]) -> float:
        kk = k[np.ix_(idx, idx)]
        kxx, kyy, kxy = kk[:n, :n], kk[n:, n:], kk[:n, n:]
        return float(
            (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
            + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
            - 2 * kxy.mean()
        )

    observed = stat(np.arange(n + m))
    null = np.array([stat(rng.permutation(n + m)) for _ in range(permutations)])
    p = float((1 + (null >= observed).sum()) / (1 + permutations))
    return EmbeddingCheck(
        "mmd", p, p_value, p < p_value, {"mmd2": observed, "permutations": permutations}
    )


def pca_reconstruction(
    reference: npt.ArrayLike,
    current: npt.ArrayLike,
    *,
    variance: float = 0.9,
    error_ratio: float = 1.2,
    seed: int = 0,
) -> EmbeddingCheck:
    from sklearn.decomposition import PCA

    ref = _matrix(reference, "reference")
    cur = _matrix(current, "current")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(ref))
    fit, held = ref[order[: len(ref) // 2]], ref[order[len(ref) // 2 :]]
    pca = PCA(n_components=variance, svd_solver="full", random_state=seed).fit(fit)

    def error(x: npt.NDArray[np.float64]) -> float:
        back = pca.inverse_transform(pca.transform(x))
        return float(np.mean(np.sum((x - back) ** 2, axis=1)))

    base, now = error(held), error(cur)
    ratio = now / base if base > 0 else (np.inf if now > 0 else 1.0)
    return EmbeddingCheck(
        "pca_reconstruction",
        float(ratio),
        error_ratio,
        bool(ratio >= error_ratio),
        {"components": int(pca.n_components_), "reference_error": base, "current_error": now},
    )


def embedding_drift(
    reference: npt.ArrayLike,
    current: npt.ArrayLike,
    *,
    methods: tuple[str, ...] = ("domain_classifier", "mmd", "pca_reconstruction"),
    seed: int = 0,
) -> EmbeddingDriftReport:
    ref = _matrix(reference, "reference")
    cur = _matrix(current, "current")
    if ref.shape[1] != cur.shape[1]:
        raise InvalidData(
            f"reference has {ref.shape[1]} dimensions and current {cur.shape[1]}; "
            "embed both with the same model"
        )
    runners: dict[str, Callable[..., EmbeddingCheck]] = {
        "domain_classifier": domain_classifier_auc,
        "mmd": mmd_test,
        "pca_reconstruction": pca_reconstruction,
    }
    unknown = [m for m in methods if m not in runners]
    if unknown:
        raise InvalidData(f"unknown embedding method(s) {unknown}; choose from {sorted(runners)}")
    checks = [runners[m](ref, cur, seed=seed) for m in methods]
    return EmbeddingDriftReport(checks, len(ref), len(cur), ref.shape[1])
