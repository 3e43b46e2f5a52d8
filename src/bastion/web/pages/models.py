"""The Models page: the registry with stages, versions, pending promotion requests (with
approve and reject from the page), gate results, the rollout, the lineage graph and the
model card.

Each handler calls one service: the page reads :func:`~bastion.delivery.overview.
models_overview`; the forms call the registry's ``request_promotion``, ``approve`` and
``reject``, the very methods the API calls, so requester ≠ approver and the gates hold
here exactly as there. A refusal is shown on the page, with the registry's message.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bastion.api.routes.deployments import get_delivery
from bastion.api.routes.models import get_registry
from bastion.api.routing import VersionPath
from bastion.auth.permissions import Permission
from bastion.auth.principal import Principal
from bastion.delivery.overview import models_overview
from bastion.delivery.service import DeliveryService
from bastion.errors import BastionError
from bastion.registry.service import ModelRegistry
from bastion.web.frame import render, ui_requires

router = APIRouter(include_in_schema=False)

RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
DeliveryDep = Annotated[DeliveryService, Depends(get_delivery)]
Reader = Annotated[Principal, Depends(ui_requires(Permission.MODELS_READ))]
Writer = Annotated[Principal, Depends(ui_requires(Permission.MODELS_WRITE))]
Approver = Annotated[Principal, Depends(ui_requires(Permission.MODELS_APPROVE))]

#: A model card is a document of its own: styled inline, no script, nothing fetched.
CARD_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'"
DONE = {
    "requested": "Promotion requested",
    "approved": "Request approved: the alias has moved",
    "rejected": "Request rejected",
}


def _page(
    request: Request,
    registry: ModelRegistry,
    delivery: DeliveryService,
    who: Principal,
    name: str | None,
    *,
    error: BastionError | None = None,
) -> HTMLResponse:
    overview = models_overview(registry, delivery, who, name)
    done = request.query_params.get("done")
    return render(
        request,
        "models.html",
        {
            "o": overview,
            "done": DONE.get(done or ""),
            "done_id": request.query_params.get("request", ""),
            "error": error,
        },
        status=error.status if error is not None else 200,
    )


def _back(name: str, done: str, request_id: str) -> RedirectResponse:
    query = urlencode({"name": name, "done": done, "request": request_id})
    return RedirectResponse(f"/ui/models?{query}", status_code=303)


@router.get("/ui/models")
def models_page(
    request: Request,
    registry: RegistryDep,
    delivery: DeliveryDep,
    who: Reader,
    name: str | None = None,
) -> HTMLResponse:
    return _page(request, registry, delivery, who, name)


@router.get("/ui/models/{name}/versions/{version}/card")
def model_card(name: str, version: VersionPath, registry: RegistryDep, _: Reader) -> Response:
    html = registry.render_card(name, version, "model", "html")
    return HTMLResponse(
        html,
        headers={
            "Content-Security-Policy": CARD_CSP,
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )


@router.post("/ui/models/{name}/versions/{version}/promotions")
def request_promotion(
    request: Request,
    name: str,
    version: VersionPath,
    registry: RegistryDep,
    delivery: DeliveryDep,
    who: Writer,
    to: Annotated[str, Form(max_length=20)] = "",
    reason: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    try:
        made = registry.request_promotion(who, name, version, to, reason)
    except BastionError as exc:
        return _page(request, registry, delivery, who, name, error=exc)
    return _back(name, "requested", made.id)


@router.post("/ui/models/promotions/{request_id}/approve")
def approve(
    request: Request,
    request_id: str,
    registry: RegistryDep,
    delivery: DeliveryDep,
    who: Approver,
    notes: Annotated[str, Form(max_length=4000)] = "",
    name: Annotated[str | None, Form(max_length=200)] = None,
) -> Response:
    try:
        decided = registry.approve(who, request_id, notes.strip() or None)
    except BastionError as exc:
        return _page(request, registry, delivery, who, name, error=exc)
    return _back(decided.name, "approved", decided.id)


@router.post("/ui/models/promotions/{request_id}/reject")
def reject(
    request: Request,
    request_id: str,
    registry: RegistryDep,
    delivery: DeliveryDep,
    who: Approver,
    notes: Annotated[str, Form(max_length=4000)] = "",
    name: Annotated[str | None, Form(max_length=200)] = None,
) -> Response:
    try:
        decided = registry.reject(who, request_id, notes)
    except BastionError as exc:
        return _page(request, registry, delivery, who, name, error=exc)
    return _back(decided.name, "rejected", decided.id)
