"""Serving over HTTP: ``POST /predict/{model}``, explanations of logged predictions, and
labels attached later (``POST /api/labels``).

The model part runs on the event loop once the version is loaded, in batches of the
requests that arrive together (:mod:`bastion.serving.batching`; scoring a few rows is
CPU work of a millisecond or two, less than a hop to a worker thread would add);
loading a version, re-reading aliases, explaining and writing labels run in worker
threads.
"""

from __future__ import annotations

from json import JSONDecodeError
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from bastion import jsonio
from bastion.api.deps import get_runtime, require_caller, requires
from bastion.api.routing import GUARDED, INT32_MAX, StrictJSONRoute, errors
from bastion.auth.permissions import Permission
from bastion.auth.principal import Principal
from bastion.errors import BastionError, InvalidInput
from bastion.observability import current_request_id
from bastion.serving.errors import PinNotAllowed
from bastion.serving.labels import add_labels
from bastion.serving.service import PredictionService

router = APIRouter(
    tags=["serving"],
    route_class=StrictJSONRoute,
    responses=errors(*GUARDED, 404, 409, 503),
)

Predictor = Annotated[Principal | None, Depends(requires(Permission.MODELS_PREDICT))]
Monitor = Annotated[Principal | None, Depends(requires(Permission.MONITORING_READ))]
Labeller = Annotated[Principal | None, Depends(requires(Permission.PREDICTIONS_LABEL))]
ModelPath = Annotated[
    str, Path(min_length=1, max_length=200, description="The registered model's name")
]

_PREDICT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "description": "One of `inputs` (a record or a list of records), "
                    "`dataframe_records`, or `dataframe_split` ({columns, data})",
                    "properties": {
                        "inputs": {
                            "oneOf": [
                                {"type": "object"},
                                {"type": "array", "items": {"type": "object"}},
                            ]
                        },
                        "dataframe_records": {"type": "array", "items": {"type": "object"}},
                        "dataframe_split": {
                            "type": "object",
                            "properties": {
                                "columns": {"type": "array", "items": {"type": "string"}},
                                "data": {"type": "array", "items": {"type": "array"}},
                            },
                        },
                    },
                }
            }
        },
    }
}


async def serving_service(request: Request) -> PredictionService:
    runtime = get_runtime(request)
    if runtime._serving is not None:
        return runtime._serving
    return await run_in_threadpool(runtime.serving)  # opening MLflow takes seconds


ServingDep = Annotated[PredictionService, Depends(serving_service)]


@router.post("/predict/{model}", openapi_extra=_PREDICT_BODY)
async def predict(
    model: ModelPath,
    request: Request,
    background: BackgroundTasks,
    principal: Predictor,
    service: ServingDep,
    alias: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=100,
            pattern=r"^[A-Za-z0-9_-]+$",
            description="Serve this alias (default production)",
        ),
    ] = None,
    version: Annotated[
        int | None, Query(ge=1, le=INT32_MAX, description="Serve this version number")
    ] = None,
    explain: Annotated[bool, Query(description="Add per-feature SHAP contributions")] = False,
) -> Response:
    """Score rows with the version behind ``production`` (or a rollout's route)."""
    caller = require_caller(principal)
    if (version is not None or (alias is not None and alias != "production")) and not caller.can(
        Permission.MODELS_PIN
    ):
        raise PinNotAllowed(
            f"role {caller.role!r} may call the version in production only; "
            "?alias= and ?version= need the permission 'models:pin'"
        )
    try:
        body = await request.json()
    except JSONDecodeError as exc:
        raise InvalidInput(
            f"the request body is not valid JSON ({exc.msg}): send a JSON object",
            code="invalid_json",
        ) from exc
    request_id = current_request_id() or ""
    route_key = (
        request.headers.get("x-bastion-route-key") or request.headers.get("user") or request_id
    )
    routing = service.routing(model, alias=alias, version=version, route_key=route_key)
    try:
        served = service.fast_target(model, routing.primary)
        if served is None:
            served = await run_in_threadpool(service.target, model, routing.primary)
    except BastionError as exc:
        if service.metrics is not None:
            service.metrics.prediction_errors.labels("unknown", exc.code).inc()
        raise
    args = (served, routing.primary, body)
    kwargs: dict[str, Any] = {
        "request_id": request_id,
        "route_key": route_key,
        "shadows": routing.shadows,
    }
    if explain:
        answer = await run_in_threadpool(service.predict, *args, explain=True, **kwargs)
    else:
        answer = await service.predict_async(*args, **kwargs)
    if answer.shadows:
        background.add_task(run_in_threadpool, service.shadow, answer)
    return Response(
        jsonio.dumps(answer.body()), media_type="application/json", background=background
    )


@router.get("/predict/{model}/explain/{request_id}")
async def explain_logged(
    model: ModelPath,
    request_id: Annotated[str, Path(min_length=1, max_length=64)],
    principal: Monitor,
    service: ServingDep,
) -> dict[str, Any]:
    """SHAP contributions of a logged prediction, recomputed from its logged features."""
    return await run_in_threadpool(service.explain_logged, model, request_id)


class LabelIn(BaseModel):
    model_config = {"extra": "forbid"}
    request_id: str = Field(min_length=1, max_length=64)
    label: bool | int | float | str


class LabelsIn(BaseModel):
    model_config = {"extra": "forbid"}
    labels: list[LabelIn] = Field(min_length=1, max_length=100_000)


class LabelsOut(BaseModel):
    added: int
    matched: int = Field(description="How many name a logged prediction")
    unmatched: int


@router.post("/api/labels")
async def labels(body: LabelsIn, request: Request, principal: Labeller) -> LabelsOut:
    """Attach ground truth to logged predictions by request id (a later label replaces)."""
    runtime = get_runtime(request)
    items = [item.model_dump() for item in body.labels]
    if runtime._serving is not None:
        # Predictions this server answered are written by a background thread; a label
        # posted right after its prediction must find it, so wait for what is queued.
        await run_in_threadpool(runtime._serving.log.flush, 10.0)
    added = await run_in_threadpool(add_labels, runtime.db, items)
    return LabelsOut(added=added.added, matched=added.matched, unmatched=added.unmatched)
