"""Progressive delivery over HTTP: start a canary, an A/B split or a shadow; status,
history, pause, resume, abort, and one controller look on demand.

Each route parses, calls one :class:`DeliveryService` (or controller) method and
returns its view.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from bastion.api.deps import get_runtime, require_caller, requires
from bastion.api.routing import GUARDED, StrictJSONRoute, errors
from bastion.auth.permissions import Permission
from bastion.auth.principal import Principal
from bastion.delivery.controller import RolloutController
from bastion.delivery.schemas import ReasonBody, RolloutHistory, RolloutView, StartRollout
from bastion.delivery.service import DeliveryService, Outcome

router = APIRouter(
    tags=["deployments"],
    route_class=StrictJSONRoute,
    responses=errors(*GUARDED, 404, 409),
)


def get_delivery(request: Request) -> DeliveryService:
    runtime = get_runtime(request)
    return DeliveryService(runtime.db, runtime.ledger, runtime.policy)


def get_controller(request: Request) -> RolloutController:
    """The app's controller: an on-demand look shares the background loop's lease."""
    controller: RolloutController = request.app.state.rollout_controller
    return controller


DeliveryDep = Annotated[DeliveryService, Depends(get_delivery)]
ControllerDep = Annotated[RolloutController, Depends(get_controller)]
Reader = Annotated[Principal | None, Depends(requires(Permission.MODELS_READ))]
Writer = Annotated[Principal | None, Depends(requires(Permission.MODELS_WRITE))]


class RolloutList(BaseModel):
    data: list[RolloutView]


class LookView(BaseModel):
    rollout_id: str
    action: str
    state: str
    weight: int
    verdict: str | None

    @classmethod
    def of(cls, outcome: Outcome) -> LookView:
        return cls(
            rollout_id=outcome.rollout_id,
            action=outcome.action,
            state=outcome.state,
            weight=outcome.weight,
            verdict=outcome.analysis.verdict if outcome.analysis else None,
        )


class LookList(BaseModel):
    data: list[LookView]


@router.post(
    "/api/deployments",
    summary="Start a canary, an A/B split or a shadow of a staging version",
    status_code=201,
)
def start(body: StartRollout, delivery: DeliveryDep, principal: Writer) -> RolloutView:
    return delivery.start(
        require_caller(principal),
        body.model,
        body.version,
        kind=body.kind,
        steps=body.steps,
        interval=body.interval,
        reason=body.reason,
    )


@router.get("/api/deployments", summary="Rollouts, newest first")
def list_rollouts(
    delivery: DeliveryDep,
    _: Reader,
    model: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> RolloutList:
    return RolloutList(data=delivery.rollouts(model, limit))


@router.get("/api/deployments/{model}", summary="A model's latest rollout and its last analysis")
def status(model: str, delivery: DeliveryDep, _: Reader) -> RolloutView:
    return delivery.status(model)


@router.get("/api/deployments/{model}/history", summary="Every decision on the latest rollout")
def history(model: str, delivery: DeliveryDep, _: Reader) -> RolloutHistory:
    return delivery.history(model)


@router.post("/api/deployments/{model}/pause", summary="Stop the steps; traffic stays")
def pause(model: str, body: ReasonBody, delivery: DeliveryDep, principal: Writer) -> RolloutView:
    return delivery.pause(require_caller(principal), model, body.reason)


@router.post("/api/deployments/{model}/resume", summary="Resume a paused rollout")
def resume(model: str, body: ReasonBody, delivery: DeliveryDep, principal: Writer) -> RolloutView:
    return delivery.resume(require_caller(principal), model, body.reason)


@router.post("/api/deployments/{model}/abort", summary="End the rollout; traffic to production")
def abort(model: str, body: ReasonBody, delivery: DeliveryDep, principal: Writer) -> RolloutView:
    return delivery.abort(require_caller(principal), model, body.reason)


@router.post(
    "/api/deployments/{model}/check",
    summary="Analyse the rollout now and act on the verdict (when this replica holds the "
    "controller lease; an empty list when another does)",
)
def check(model: str, controller: ControllerDep, _: Writer) -> LookList:
    return LookList(data=[LookView.of(o) for o in controller.tick(model=model)])
