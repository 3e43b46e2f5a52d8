"""Evidence gates: what the policy asks of a version before it may enter a stage.

Each gate reports pass or fail with a reason a person can act on. Gates never raise:
missing evidence is a failing gate, not an error, so a request shows everything that
is missing at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from bastion.registry.config import StageGates

#: The model-card field a card must have written for the ``model_card`` gate.
CARD_REQUIRED_FIELD = "intended_use"


class GateResult(BaseModel):
    gate: str
    passed: bool
    reason: str
    overridden: bool = False
    justification: str | None = None
    overridden_by: str | None = None

    @property
    def blocking(self) -> bool:
        return not self.passed and not self.overridden


@dataclass(frozen=True)
class Evidence:
    """What the registry knows about one version, gathered for the gates."""

    metrics: dict[str, float]
    production_version: int | None
    production_metrics: dict[str, float] | None
    fairness: dict[str, Any] | None
    card_fields: dict[str, str] | None
    drift_baseline: dict[str, Any] | None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _metric_gates(gates: StageGates, ev: Evidence) -> list[GateResult]:
    out = []
    for name, bound in gates.metrics.items():
        gate = f"metric:{name}"
        value = _number(ev.metrics.get(name))
        if value is None:
            out.append(GateResult(gate=gate, passed=False, reason=f"no metric {name!r} recorded"))
            continue
        problems = []
        if bound.min is not None and value < bound.min:
            problems.append(f"below the minimum {bound.min:g}")
        if bound.max is not None and value > bound.max:
            problems.append(f"above the maximum {bound.max:g}")
        reason = f"{name} = {value:.4g}" + (f", {' and '.join(problems)}" if problems else "")
        out.append(GateResult(gate=gate, passed=not problems, reason=reason))
    return out


def _baseline_gates(gates: StageGates, ev: Evidence) -> list[GateResult]:
    out = []
    for name, rule in gates.no_worse_than_production.items():
        gate = f"baseline:{name}"
        value = _number(ev.metrics.get(name))
        if value is None:
            out.append(GateResult(gate=gate, passed=False, reason=f"no metric {name!r} recorded"))
            continue
        if ev.production_version is None or ev.production_metrics is None:
            out.append(
                GateResult(gate=gate, passed=True, reason="no version in production to compare")
            )
            continue
        base = _number(ev.production_metrics.get(name))
        if base is None:
            out.append(
                GateResult(
                    gate=gate,
                    passed=True,
                    reason=f"production v{ev.production_version} recorded no {name!r}",
                )
            )
            continue
        worse_by = (base - value) if rule.higher_is_better else (value - base)
        passed = worse_by <= rule.margin + 1e-12
        verdict = (
            f"worse by {worse_by:.4g}, more than the margin {rule.margin:g}"
            if not passed
            else "within the margin"
        )
        out.append(
            GateResult(
                gate=gate,
                passed=passed,
                reason=f"{name} = {value:.4g} vs production v{ev.production_version} "
                f"{base:.4g}: {verdict}",
            )
        )
    return out


def _fairness_gate(gates: StageGates, ev: Evidence) -> list[GateResult]:
    rule = gates.fairness
    if rule is None:
        return []
    if ev.fairness is None:
        return [
            GateResult(
                gate="fairness",
                passed=False,
                reason="no fairness report stored: run `bastion fairness check ... --json "
                "report.json` and `bastion models evidence NAME VERSION --fairness report.json`",
            )
        ]
    checks = [
        c
        for c in ev.fairness.get("checks", [])
        if (not rule.checks or c.get("metric") in rule.checks)
        and (not rule.features or set(c.get("features", [])) <= set(rule.features))
    ]
    if not checks:
        return [
            GateResult(
                gate="fairness",
                passed=False,
                reason="the stored fairness report has none of the checks the policy judges "
                f"(checks {rule.checks or 'any'}, features {rule.features or 'any'})",
            )
        ]
    failed = [c for c in checks if not c.get("passed")]
    if failed:
        detail = "; ".join(
            f"{c['metric']} over {' & '.join(c.get('features', []))} = "
            f"{_number(c.get('value')) or 0:.3f} (must be {c.get('comparison')} "
            f"{c.get('threshold')})"
            for c in failed[:5]
        )
        return [GateResult(gate="fairness", passed=False, reason=f"failed: {detail}")]
    return [
        GateResult(
            gate="fairness", passed=True, reason=f"{len(checks)} judged fairness checks passed"
        )
    ]


def _card_gate(gates: StageGates, ev: Evidence) -> list[GateResult]:
    if not gates.model_card:
        return []
    written = (ev.card_fields or {}).get(CARD_REQUIRED_FIELD, "").strip()
    if not written:
        return [
            GateResult(
                gate="model_card",
                passed=False,
                reason="the model card has no intended use: write it with `bastion models card "
                "NAME VERSION --set intended_use='...'`",
            )
        ]
    return [GateResult(gate="model_card", passed=True, reason="model card present")]


def _drift_gate(gates: StageGates, ev: Evidence) -> list[GateResult]:
    if not gates.drift_baseline:
        return []
    if ev.drift_baseline is None:
        return [
            GateResult(
                gate="drift_baseline",
                passed=False,
                reason="no drift baseline stored: save one with `bastion drift check "
                "--save-reference profile.json ...` and record it with `bastion models "
                "evidence NAME VERSION --drift-baseline profile.json`",
            )
        ]
    rows = ev.drift_baseline.get("n_rows")
    return [GateResult(gate="drift_baseline", passed=True, reason=f"baseline of {rows} rows")]


def evaluate(gates: StageGates, evidence: Evidence) -> list[GateResult]:
    return [
        *_metric_gates(gates, evidence),
        *_baseline_gates(gates, evidence),
        *_fairness_gate(gates, evidence),
        *_card_gate(gates, evidence),
        *_drift_gate(gates, evidence),
    ]


def apply_overrides(
    results: list[GateResult], overrides: dict[str, str], by: str
) -> list[GateResult]:
    """Mark the named failing gates overridden (the caller has checked the right)."""
    out = []
    for result in results:
        if not result.passed and result.gate in overrides:
            result = result.model_copy(
                update={
                    "overridden": True,
                    "justification": overrides[result.gate],
                    "overridden_by": by,
                }
            )
        out.append(result)
    return out


def overrides_by(results: list[GateResult], user: str) -> list[dict[str, Any]]:
    """The overrides ``user`` made among ``results``, as a request records them."""
    return [
        {"gate": r.gate, "justification": r.justification, "by": user}
        for r in results
        if r.overridden and r.overridden_by == user
    ]


def summary(results: list[GateResult]) -> str:
    blocking = [r for r in results if r.blocking]
    return "; ".join(f"{r.gate}: {r.reason}" for r in blocking)
