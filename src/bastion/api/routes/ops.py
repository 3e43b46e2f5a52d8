"""Health, readiness, metrics and whoami."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from bastion.api.deps import RuntimeDep, require_caller, requires
from bastion.api.routing import GUARDED, StrictJSONRoute, errors
from bastion.api.schemas import Whoami
from bastion.auth.permissions import Permission
from bastion.auth.principal import Principal
from bastion.db.migrate import current_revision, head_revision
from bastion.errors import BastionError
from bastion.gateway.service import Gateway

router = APIRouter(route_class=StrictJSONRoute)


@router.get(
    "/healthz", tags=["operations"], summary="The process is alive", responses=errors(400, 413)
)
async def healthz(_: Annotated[None, Depends(requires(Permission.PUBLIC))]) -> dict[str, str]:
    return {"status": "ok"}


def _readiness(runtime: Any) -> dict[str, str]:
    checks: dict[str, str] = {}
    try:
        runtime.db.ping()
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
    if checks["database"] == "ok":
        try:
            current = current_revision(runtime.db.engine)
            head = head_revision()
            checks["schema"] = (
                "ok" if current == head else f"at {current}, needs {head}: run `bastion db upgrade`"
            )
        except Exception as exc:
            checks["schema"] = f"unknown: {type(exc).__name__}"
    else:
        checks["schema"] = "unknown: database unreachable"
    checks["policy"] = "ok" if runtime.policy.is_loaded else "not loaded"
    # The writer's health is its thread; whether it can write is the database check
    # above (a past failure must not keep the replica out of rotation once it passes).
    checks["ledger"] = "ok" if runtime.ledger.alive else "failing: the writer has stopped"
    return checks


@router.get(
    "/readyz",
    tags=["operations"],
    summary="Ready to serve: database, schema, policy, ledger",
    responses={**errors(400, 413), 503: {"description": "Not ready: the failing check says why"}},
)
async def readyz(
    request: Request, runtime: RuntimeDep, _: Annotated[None, Depends(requires(Permission.PUBLIC))]
) -> JSONResponse:
    checks = await run_in_threadpool(_readiness, runtime)
    checks["counters"] = await _counters_check(request.app.state.gateway)
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )


@router.get(
    "/metrics",
    tags=["operations"],
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses=errors(*GUARDED),
)
async def metrics(
    request: Request,
    runtime: RuntimeDep,
    _: Annotated[
        Principal | None, Depends(requires(Permission.METRICS_READ, public_when="metrics_public"))
    ],
) -> Response:
    gateway = request.app.state.gateway
    gateway.health_report()  # breaker gauges: a breaker turns half-open by the clock
    try:
        # Remaining budgets are read at scrape time: they change with every call.
        await gateway.publish_budgets()
    except BastionError:  # counters unreachable: the other figures still go out
        runtime.metrics.llm_counter_errors.labels("metrics").inc()
    return Response(runtime.metrics.render(), media_type=CONTENT_TYPE_LATEST)


async def _counters_check(gateway: Gateway) -> str:
    """Rate-limit and budget counters: in-process always answer; Redis must. Counted as
    not ready only when the policy refuses calls without them."""
    try:
        await gateway.counters.ping()
    except BastionError as exc:
        if gateway.policy.defaults.on_counter_error == "allow":
            return "ok"
        return f"unreachable: {exc.code}"
    return "ok"


@router.get(
    "/api/whoami",
    tags=["auth"],
    summary="The caller behind the presented key",
    responses=errors(*GUARDED),
)
async def whoami(
    principal: Annotated[Principal | None, Depends(requires(Permission.AUTHENTICATED))],
) -> Whoami:
    caller = require_caller(principal)
    return Whoami(
        user=caller.user,
        team=caller.team,
        role=caller.role,
        key_prefix=caller.key_prefix,
        permissions=sorted(p.value for p in caller.permissions),
    )
