"""One analysis: the candidate arm against the arm serving beside it, every check at once.

Checks: the error rate (mSPRT on two proportions), latency (sequential Mann-Whitney
with the p95 tolerance), prediction drift between the arms (Jensen–Shannon), and, once
labels exist in both arms, the wrong-answer rate (the same mSPRT). The verdict is the
worst of them: any ``fail`` rolls back; all ``pass`` may advance; else ``hold``, with
the largest estimate of the candidate requests still needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bastion.delivery.config import Thresholds
from bastion.delivery.repository import ArmSamples
from bastion.delivery.statistics import (
    Check,
    Verdict,
    combine,
    drift_check,
    latency_check,
    proportion_check,
)


@dataclass(frozen=True)
class Analysis:
    verdict: Verdict
    checks: tuple[Check, ...]
    more_requests: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "more_requests": self.more_requests,
            "checks": [c.as_dict() for c in self.checks],
        }

    def reason(self) -> str:
        bad = [c for c in self.checks if c.verdict == self.verdict]
        return "; ".join(f"{c.metric}: {c.reason}" for c in bad) or self.verdict


def analyse(base: ArmSamples, cand: ArmSamples, t: Thresholds) -> Analysis:
    checks = [
        proportion_check(
            "error_rate",
            base.errors,
            base.requests,
            cand.errors,
            cand.requests,
            alpha=t.alpha,
            tolerance=t.max_error_rate_increase,
            margin=t.error_rate_margin,
            min_sample=t.min_sample,
        ),
        latency_check(
            base.latencies_ms,
            cand.latencies_ms,
            alpha=t.alpha,
            tolerance=t.latency_p95_tolerance,
            margin=t.latency_margin,
            min_sample=t.min_sample,
        ),
    ]
    if base.predictions or cand.predictions:
        checks.append(
            drift_check(
                base.predictions,
                cand.predictions,
                js_threshold=t.drift_js_threshold,
                min_sample=t.min_sample,
            )
        )
    if base.labelled and cand.labelled:
        checks.append(
            proportion_check(
                "wrong_answers",
                base.wrong,
                base.labelled,
                cand.wrong,
                cand.labelled,
                alpha=t.alpha,
                margin=t.quality_margin,
                # Labels arrive late and few: judge them on what there is.
                min_sample=min(t.min_sample, 100),
            )
        )
    verdict, more = combine(checks)
    return Analysis(verdict, tuple(checks), more)
