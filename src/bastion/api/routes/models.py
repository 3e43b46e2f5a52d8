"""The model registry over HTTP: versions, evidence, cards, promotions, rollback, verify.

Each route parses, calls one :class:`ModelRegistry` method and returns its view. The
registry is the runtime's, built on first use (opening MLflow costs seconds) and closed
with it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from bastion.api.deps import get_runtime, require_caller, requires
from bastion.api.routing import GUARDED, StrictJSONRoute, VersionPath, errors
from bastion.auth.permissions import Permission
from bastion.auth.principal import Principal
from bastion.registry.gates import GateResult
from bastion.registry.schemas import (
    EvidenceView,
    Lineage,
    ModelSummary,
    Registered,
    RequestView,
    VerifyReport,
    VersionDetail,
    VersionView,
)
from bastion.registry.service import ModelRegistry

router = APIRouter(
    tags=["models"],
    route_class=StrictJSONRoute,
    responses=errors(*GUARDED, 404, 409, 503),
)


def get_registry(request: Request) -> ModelRegistry:
    """The runtime's registry: built once, where every service is (``Runtime.registry``)."""
    return get_runtime(request).registry()


RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
Reader = Annotated[Principal | None, Depends(requires(Permission.MODELS_READ))]
Writer = Annotated[Principal | None, Depends(requires(Permission.MODELS_WRITE))]
Approver = Annotated[Principal | None, Depends(requires(Permission.MODELS_APPROVE))]
Admin = Annotated[Principal | None, Depends(requires(Permission.MODELS_ADMIN))]


class _Body(BaseModel):
    model_config = {"extra": "forbid"}


class RegisterIn(_Body):
    run_id: str = Field(min_length=1, max_length=64, description="The MLflow run to register")
    artifact_path: str | None = Field(
        None, description="The model's folder in the run when it logged several"
    )
    metrics: dict[str, float] = Field(default_factory=dict, description="Added to the run's")
    params: dict[str, str] = Field(default_factory=dict, description="Added to the run's")
    dataset: dict[str, Any] | None = Field(
        None, description="name, digest, rows, schema of the training data (default: the run's)"
    )
    training_seconds: float | None = Field(None, ge=0)
    code_version: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=4000)
    semver: str | None = Field(
        None,
        max_length=100,
        description="A semantic version label for the new version (1.2.0): unique per "
        "model and higher than its earlier labels",
    )


class EvidenceIn(_Body):
    kind: Literal["fairness", "drift_baseline"]
    report: dict[str, Any] = Field(
        description="`bastion fairness check --json` output, or a drift reference profile"
    )


class CardIn(_Body):
    kind: Literal["model", "data"] = "model"
    fields: dict[str, str]


class CardOut(BaseModel):
    kind: str
    fields: dict[str, str]


class PromotionIn(_Body):
    to: Literal["staging", "production"]
    reason: str = Field(min_length=1, max_length=4000)
    overrides: dict[str, str] = Field(
        default_factory=dict, description="gate -> written justification (admins only)"
    )


class DecisionIn(_Body):
    notes: str | None = Field(None, max_length=4000)
    overrides: dict[str, str] = Field(default_factory=dict)


class RejectIn(_Body):
    notes: str = Field(min_length=1, max_length=4000)


class ReasonIn(_Body):
    reason: str = Field(min_length=1, max_length=4000)


class GatesOut(BaseModel):
    stage: str
    passed: bool
    gates: list[GateResult]


class ModelList(BaseModel):
    data: list[ModelSummary]


class VersionList(BaseModel):
    name: str
    data: list[VersionView]


class RequestList(BaseModel):
    data: list[RequestView]


# -- models and versions ------------------------------------------------------------------


@router.get("/api/models", summary="Registered models with their staging and production")
def list_models(registry: RegistryDep, _: Reader) -> ModelList:
    return ModelList(data=registry.list_models())


@router.get("/api/models/{name}", summary="A model's versions")
def list_versions(name: str, registry: RegistryDep, _: Reader) -> VersionList:
    return VersionList(name=name, data=registry.list_versions(name))


@router.post(
    "/api/models/{name}/versions",
    status_code=201,
    summary="Register a version from an MLflow run (200 when the artifact is already registered)",
    responses={200: {"model": Registered, "description": "The artifact was already registered"}},
)
def register_version(
    name: str, body: RegisterIn, response: Response, registry: RegistryDep, principal: Writer
) -> Registered:
    result = registry.register(
        require_caller(principal),
        name,
        run_id=body.run_id,
        artifact_path=body.artifact_path,
        dataset=body.dataset,
        params=body.params,
        metrics=body.metrics,
        training_seconds=body.training_seconds,
        code_version=body.code_version,
        description=body.description,
        semver=body.semver,
    )
    if not result.created:
        response.status_code = 200
    return result


@router.get("/api/models/{name}/versions/{version}", summary="A version with its history")
def show_version(
    name: str, version: VersionPath, registry: RegistryDep, _: Reader
) -> VersionDetail:
    return registry.detail(name, version)


@router.get(
    "/api/models/{name}/versions/{version}/lineage",
    summary="Dataset → run → version → stage changes",
)
def lineage(name: str, version: VersionPath, registry: RegistryDep, _: Reader) -> Lineage:
    return registry.lineage(name, version)


@router.get(
    "/api/models/{name}/versions/{version}/gates",
    summary="The gates a version meets or fails for a stage, without asking",
)
def gates(
    name: str,
    version: VersionPath,
    registry: RegistryDep,
    _: Reader,
    stage: Literal["staging", "production"] = "production",
) -> GatesOut:
    results = registry.check_gates(name, version, stage)
    return GatesOut(stage=stage, passed=all(r.passed for r in results), gates=results)


@router.post(
    "/api/models/{name}/versions/{version}/evidence",
    status_code=201,
    summary="Store a fairness report or a drift baseline",
)
def record_evidence(
    name: str, version: VersionPath, body: EvidenceIn, registry: RegistryDep, principal: Writer
) -> EvidenceView:
    return registry.record_evidence(
        require_caller(principal), name, version, body.kind, body.report
    )


@router.get(
    "/api/models/{name}/versions/{version}/card",
    summary="The model or data card, as Markdown or HTML",
    response_class=PlainTextResponse,
)
def card(
    name: str,
    version: VersionPath,
    registry: RegistryDep,
    _: Reader,
    kind: Literal["model", "data"] = "model",
    format: Annotated[Literal["markdown", "html"], Query()] = "markdown",
) -> PlainTextResponse:
    text = registry.render_card(name, version, kind, format)
    media = "text/html" if format == "html" else "text/markdown"
    return PlainTextResponse(text, media_type=f"{media}; charset=utf-8")


@router.put(
    "/api/models/{name}/versions/{version}/card",
    summary="Write a card's editable fields (others keep their text)",
)
def update_card(
    name: str, version: VersionPath, body: CardIn, registry: RegistryDep, principal: Writer
) -> CardOut:
    fields = registry.update_card(require_caller(principal), name, version, body.kind, body.fields)
    return CardOut(kind=body.kind, fields=fields)


@router.post(
    "/api/models/{name}/versions/{version}/promotions",
    status_code=201,
    summary="Ask for promotion to staging or production (gates are checked now and at approval)",
)
def request_promotion(
    name: str, version: VersionPath, body: PromotionIn, registry: RegistryDep, principal: Writer
) -> RequestView:
    return registry.request_promotion(
        require_caller(principal), name, version, body.to, body.reason, body.overrides or None
    )


@router.post("/api/models/{name}/versions/{version}/archive", summary="Archive a version")
def archive(
    name: str, version: VersionPath, body: ReasonIn, registry: RegistryDep, principal: Writer
) -> VersionView:
    return registry.archive(require_caller(principal), name, version, body.reason)


@router.post(
    "/api/models/{name}/rollback",
    summary="Emergency: production back to the previous version, at once (admins)",
)
def rollback(name: str, body: ReasonIn, registry: RegistryDep, principal: Admin) -> VersionView:
    # Production goes back and so does the traffic: a rollout in progress is aborted.
    from bastion.delivery.service import DeliveryService, rollback_with_traffic

    delivery = DeliveryService(registry.db, registry.events.ledger, registry.policy)
    return rollback_with_traffic(registry, delivery, require_caller(principal), name, body.reason)


# -- promotion requests ------------------------------------------------------------------


@router.get("/api/promotions", summary="Promotion requests, newest first")
def list_requests(
    registry: RegistryDep,
    _: Reader,
    status: Literal["pending", "approving", "approved", "rejected"] | None = None,
    name: str | None = None,
) -> RequestList:
    return RequestList(data=registry.list_requests(status=status, name=name))


@router.get("/api/promotions/{request_id}", summary="One promotion request")
def show_request(request_id: str, registry: RegistryDep, _: Reader) -> RequestView:
    return registry.get_request(request_id)


@router.post(
    "/api/promotions/{request_id}/approve",
    summary="Approve (never your own request): gates again, then the alias moves",
)
def approve(
    request_id: str, body: DecisionIn, registry: RegistryDep, principal: Approver
) -> RequestView:
    return registry.approve(
        require_caller(principal), request_id, body.notes, body.overrides or None
    )


@router.post("/api/promotions/{request_id}/reject", summary="Reject, with notes")
def reject(
    request_id: str, body: RejectIn, registry: RegistryDep, principal: Approver
) -> RequestView:
    return registry.reject(require_caller(principal), request_id, body.notes)


@router.post(
    "/api/registry/verify",
    summary="Settle approvals left unfinished, then compare MLflow's aliases and artifacts "
    "with what Bastion approved",
)
def verify(registry: RegistryDep, principal: Reader) -> VerifyReport:
    return registry.verify(require_caller(principal))
