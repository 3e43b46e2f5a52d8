"""What the registry returns: pydantic views shared by the API, the CLI and the cards."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, computed_field

from bastion.registry.gates import GateResult
from bastion.registry.models import (
    EvidenceRow,
    ModelVersionRow,
    PromotionRequestRow,
    StageChangeRow,
)


class VersionView(BaseModel):
    name: str
    version: int
    semver: str | None = Field(
        None, description="the semantic version label given at registration (1.2.0), if any"
    )
    stage: str
    run_id: str | None
    source: str
    artifact_sha256: str
    stored_sha256: str
    dataset: dict[str, Any] | None
    params: dict[str, Any]
    metrics: dict[str, Any]
    training_seconds: float | None
    author: str | None
    code_version: str | None
    description: str | None
    registered_by: str
    registered_at: datetime
    stage_changed_at: datetime

    @classmethod
    def of(cls, row: ModelVersionRow) -> VersionView:
        return cls(
            name=row.name,
            version=row.version,
            semver=row.semver,
            stage=row.stage,
            run_id=row.run_id,
            source=row.source,
            artifact_sha256=row.artifact_sha256,
            stored_sha256=row.stored_sha256,
            dataset=row.dataset,
            params=row.params or {},
            metrics=row.metrics or {},
            training_seconds=row.training_seconds,
            author=row.author,
            code_version=row.code_version,
            description=row.description,
            registered_by=row.registered_by,
            registered_at=row.registered_at,
            stage_changed_at=row.stage_changed_at,
        )


class Registered(BaseModel):
    created: bool = Field(description="false when this artifact was already registered")
    version: VersionView


class ModelSummary(BaseModel):
    name: str
    versions: int
    latest: int
    latest_semver: str | None = Field(None, description="the highest semantic version label")
    production: int | None
    staging: int | None
    pending_requests: int


class RequestView(BaseModel):
    id: str
    name: str
    version: int
    from_stage: str
    to_stage: str
    reason: str
    requested_by: str
    requested_at: datetime
    status: Literal["pending", "approving", "approved", "rejected"]
    gates: list[GateResult]
    decided_by: str | None
    decided_at: datetime | None
    notes: str | None
    decision_gates: list[GateResult] | None
    overrides: list[dict[str, Any]]

    @classmethod
    def of(cls, row: PromotionRequestRow) -> RequestView:
        return cls(
            id=row.id,
            name=row.name,
            version=row.version,
            from_stage=row.from_stage,
            to_stage=row.to_stage,
            reason=row.reason,
            requested_by=row.requested_by,
            requested_at=row.requested_at,
            status=row.status,
            gates=[GateResult(**g) for g in row.gates or []],
            decided_by=row.decided_by,
            decided_at=row.decided_at,
            notes=row.notes,
            decision_gates=(
                [GateResult(**g) for g in row.decision_gates]
                if row.decision_gates is not None
                else None
            ),
            overrides=row.overrides or [],
        )


class StageChangeView(BaseModel):
    version: int
    from_stage: str | None
    to_stage: str
    kind: str
    request_id: str | None
    actor: str
    at: datetime
    details: dict[str, Any]

    @classmethod
    def of(cls, row: StageChangeRow) -> StageChangeView:
        return cls(
            version=row.version,
            from_stage=row.from_stage,
            to_stage=row.to_stage,
            kind=row.kind,
            request_id=row.request_id,
            actor=row.actor,
            at=row.at,
            details=row.details or {},
        )


class EvidenceView(BaseModel):
    id: int
    kind: str
    passed: bool | None
    sha256: str
    recorded_by: str
    recorded_at: datetime

    @classmethod
    def of(cls, row: EvidenceRow) -> EvidenceView:
        return cls(
            id=row.id,
            kind=row.kind,
            passed=row.passed,
            sha256=row.sha256,
            recorded_by=row.recorded_by,
            recorded_at=row.recorded_at,
        )


class VersionDetail(BaseModel):
    version: VersionView
    aliases: list[str]
    evidence: list[EvidenceView]
    requests: list[RequestView]
    history: list[StageChangeView]


class Lineage(BaseModel):
    """dataset -> run -> model version -> stage changes (-> deployments, later)."""

    name: str
    version: int
    dataset: dict[str, Any] | None
    run: dict[str, Any]
    model: dict[str, Any]
    evidence: list[EvidenceView]
    requests: list[RequestView]
    stage_changes: list[StageChangeView]
    deployments: list[dict[str, Any]] = Field(default_factory=list)


class VerifyFinding(BaseModel):
    name: str
    problem: Literal["alias_moved", "alias_missing", "alias_unexpected", "artifact_changed"]
    detail: str
    alias: str | None = None
    version: int | None = None


class SettledApproval(BaseModel):
    """An approval whose process died (or gave up) part way, settled from MLflow and the
    ledger: ``approved`` when the alias had moved after a recorded approval, else back
    to ``pending`` for an approver to decide again."""

    request_id: str
    name: str
    version: int
    to_stage: str
    status: Literal["approved", "pending"]
    approver: str | None
    detail: str


class VerifyReport(BaseModel):
    models: int
    versions_checked: int
    findings: list[VerifyFinding]
    settled: list[SettledApproval] = Field(
        default_factory=list, description="approvals left unfinished, settled before checking"
    )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return not self.findings
