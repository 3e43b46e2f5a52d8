"""Evidence gates, table by table: what passes, what fails, and the reason a person reads."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from bastion.policy import PolicyError, parse_policy
from bastion.policy.starter import STARTER_POLICY
from bastion.registry.config import RegistryPolicy, StageGates
from bastion.registry.gates import Evidence, apply_overrides, evaluate


def evidence(**changes: Any) -> Evidence:
    base: dict[str, Any] = {
        "metrics": {"roc_auc": 0.90, "log_loss": 0.40},
        "production_version": None,
        "production_metrics": None,
        "fairness": None,
        "card_fields": None,
        "drift_baseline": None,
    }
    return Evidence(**(base | changes))


FAIR = {
    "format": "bastion.fairness/1",
    "passed": False,
    "checks": [
        {
            "metric": "four_fifths",
            "features": ["sex"],
            "value": 0.9,
            "threshold": 0.8,
            "comparison": ">=",
            "passed": True,
        },
        {
            "metric": "four_fifths",
            "features": ["race"],
            "value": 0.3,
            "threshold": 0.8,
            "comparison": ">=",
            "passed": False,
        },
        {
            "metric": "equalized_odds_difference",
            "features": ["sex"],
            "value": 0.3,
            "threshold": 0.1,
            "comparison": "<=",
            "passed": False,
        },
    ],
}


@pytest.mark.parametrize(
    ("gates", "ev", "passed", "reason"),
    [
        ({"metrics": {"roc_auc": {"min": 0.85}}}, {}, True, "roc_auc = 0.9"),
        ({"metrics": {"roc_auc": {"min": 0.95}}}, {}, False, "below the minimum 0.95"),
        ({"metrics": {"log_loss": {"max": 0.3}}}, {}, False, "above the maximum 0.3"),
        ({"metrics": {"f1": {"min": 0.5}}}, {}, False, "no metric 'f1' recorded"),
        (
            {"metrics": {"roc_auc": {"min": 0.5}}},
            {"metrics": {"roc_auc": float("nan")}},
            False,
            "no metric",
        ),
        (
            {"no_worse_than_production": {"roc_auc": {"margin": 0.01}}},
            {},
            True,
            "no version in production",
        ),
        (
            {"no_worse_than_production": {"roc_auc": {"margin": 0.01}}},
            {"production_version": 3, "production_metrics": {"roc_auc": 0.92}},
            False,
            "worse by 0.02, more than the margin 0.01",
        ),
        (
            {"no_worse_than_production": {"roc_auc": {"margin": 0.03}}},
            {"production_version": 3, "production_metrics": {"roc_auc": 0.92}},
            True,
            "within the margin",
        ),
        (
            {"no_worse_than_production": {"log_loss": {"margin": 0.0, "higher_is_better": False}}},
            {"production_version": 3, "production_metrics": {"log_loss": 0.35}},
            False,
            "worse by 0.05",
        ),
        ({"fairness": {}}, {}, False, "no fairness report stored"),
        (
            {"fairness": {"checks": ["four_fifths"], "features": ["sex"]}},
            {"fairness": FAIR},
            True,
            "1 judged",
        ),
        (
            {"fairness": {"checks": ["four_fifths"]}},
            {"fairness": FAIR},
            False,
            "four_fifths over race = 0.300",
        ),
        (
            {"fairness": {"features": ["sex"]}},
            {"fairness": FAIR},
            False,
            "equalized_odds_difference",
        ),
        ({"fairness": {"features": ["age"]}}, {"fairness": FAIR}, False, "none of the checks"),
        ({"model_card": True}, {}, False, "no intended use"),
        ({"model_card": True}, {"card_fields": {"intended_use": "  "}}, False, "no intended use"),
        ({"model_card": True}, {"card_fields": {"intended_use": "Scoring."}}, True, "present"),
        ({"drift_baseline": True}, {}, False, "no drift baseline"),
        ({"drift_baseline": True}, {"drift_baseline": {"n_rows": 7}}, True, "7 rows"),
    ],
)
def test_gate(gates: dict[str, Any], ev: dict[str, Any], passed: bool, reason: str) -> None:
    [result] = evaluate(StageGates.model_validate(gates), evidence(**ev))
    assert result.passed is passed
    assert reason in result.reason


def test_no_gates_no_results_and_overrides_mark_only_failures() -> None:
    assert evaluate(StageGates(), evidence()) == []
    results = evaluate(
        StageGates.model_validate({"metrics": {"roc_auc": {"min": 0.5}, "f1": {"min": 0.5}}}),
        evidence(),
    )
    marked = apply_overrides(
        results, {"metric:f1": "f1 is not computed for this model", "metric:roc_auc": "x"}, "ada"
    )
    assert [(r.gate, r.overridden, r.blocking) for r in marked] == [
        ("metric:roc_auc", False, False),
        ("metric:f1", True, False),
    ]


def test_a_models_own_gates_replace_the_defaults_stage_by_stage() -> None:
    policy = RegistryPolicy.model_validate(
        {
            "gates": {"staging": {"model_card": True}, "production": {"drift_baseline": True}},
            "models": {"special": {"gates": {"production": {"model_card": True}}}},
        }
    )
    assert policy.gates_for("production", "special") == StageGates(model_card=True)
    assert policy.gates_for("staging", "special") == StageGates(model_card=True)
    assert policy.gates_for("production", "other") == StageGates(drift_baseline=True)
    assert policy.gates_for("production") == StageGates(drift_baseline=True)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"gates": {"production": {"metrics": {"auc": {}}}}}, "give min, max or both"),
        (
            {"gates": {"production": {"metrics": {"auc": {"min": 0.9, "max": 0.8}}}}},
            "min is above max",
        ),
        ({"gates": {"canary": {"model_card": True}}}, "registry.gates.canary"),
        (
            {"gates": {"production": {"fairness": {"checks": ["parity"]}}}},
            "registry.gates.production.fairness.checks",
        ),
        ({"gates": {"production": {"model_crd": True}}}, "model_crd"),
        ({"allow_overide": False}, "allow_overide"),
    ],
)
def test_policy_rejects_a_bad_registry_section(section: dict[str, Any], message: str) -> None:
    policy = yaml.safe_load(STARTER_POLICY)
    policy["registry"] = section
    with pytest.raises(PolicyError) as raised:
        parse_policy(yaml.safe_dump(policy))
    assert message in "\n".join(str(issue) for issue in raised.value.issues)
