"""Model lifecycle governance over MLflow: registration with evidence, stages mapped to
MLflow aliases, promotion requests approved by someone other than the requester,
evidence gates from the policy, lineage, model and data cards, rollback.

Plain Python: no web framework. MLflow is imported on first use (it costs seconds), and
names load on first use (PEP 562) so the policy schema can import
:mod:`bastion.registry.config` alone.

    from bastion.registry import ModelRegistry
    registry = runtime.registry()
    registry.register(principal, "income", run_id=run_id)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bastion.lazy import lazy_exports

if TYPE_CHECKING:
    from bastion.registry.config import RegistryPolicy, StageGates
    from bastion.registry.gates import GateResult
    from bastion.registry.mlflow_store import MlflowStore
    from bastion.registry.schemas import (
        Lineage,
        ModelSummary,
        Registered,
        RequestView,
        VerifyReport,
        VersionView,
    )
    from bastion.registry.service import ModelRegistry

_EXPORTS = {
    "GateResult": "bastion.registry.gates",
    "Lineage": "bastion.registry.schemas",
    "MlflowStore": "bastion.registry.mlflow_store",
    "ModelRegistry": "bastion.registry.service",
    "ModelSummary": "bastion.registry.schemas",
    "Registered": "bastion.registry.schemas",
    "RegistryPolicy": "bastion.registry.config",
    "RequestView": "bastion.registry.schemas",
    "StageGates": "bastion.registry.config",
    "VerifyReport": "bastion.registry.schemas",
    "VersionView": "bastion.registry.schemas",
}

__getattr__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "GateResult",
    "Lineage",
    "MlflowStore",
    "ModelRegistry",
    "ModelSummary",
    "Registered",
    "RegistryPolicy",
    "RequestView",
    "StageGates",
    "VerifyReport",
    "VersionView",
]
