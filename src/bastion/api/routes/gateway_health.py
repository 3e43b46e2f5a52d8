"""``GET /api/gateway/health``: every deployment's circuit breaker, and each provider's."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from bastion.api.deps import requires
from bastion.api.routing import GUARDED, StrictJSONRoute, errors
from bastion.auth.permissions import Permission
from bastion.auth.principal import Principal
from bastion.gateway.breaker import BreakerView
from bastion.gateway.service import Gateway

router = APIRouter(
    prefix="/api/gateway",
    tags=["gateway"],
    route_class=StrictJSONRoute,
    responses=errors(*GUARDED),
)


class BreakerOut(BaseModel):
    state: Literal["closed", "open", "half_open"] = Field(
        description="closed: served; open: refused until the next probe (fallbacks "
        "serve); half_open: one probe call at a time"
    )
    failures: int = Field(description="failed calls in a row (retries count once)")
    threshold: int = Field(description="the failures that open it (breaker_failures)")
    cool_down_s: float = Field(description="how long it stays open (breaker_reset_s)")
    last_failure: str | None = Field(description="the kind of the last failure counted")
    last_failure_at: datetime | None
    opened_at: datetime | None
    next_probe_at: datetime | None = Field(description="when the next probe call may go")
    next_probe_in_s: float | None
    probing: bool = Field(description="a probe call is in flight")


class DeploymentOut(BreakerOut):
    provider: str
    upstream_model: str
    credential: str | None = Field(
        description="the environment variable holding its key (never the key)"
    )
    models: list[str] = Field(description="the policy's models it serves")


class ProviderOut(BreakerOut):
    provider: str
    failing_deployments: int = Field(
        description="deployments whose connections failed in the current run of failures"
    )


class GatewayHealthOut(BaseModel):
    at: datetime
    deployments: list[DeploymentOut]
    providers: list[ProviderOut]


def _when(unix: float | None) -> datetime | None:
    return None if unix is None else datetime.fromtimestamp(unix, UTC)


def _breaker(view: BreakerView, now: float) -> dict[str, object]:
    return {
        "state": view.state,
        "failures": view.failures,
        "threshold": view.threshold,
        "cool_down_s": view.cool_down_s,
        "last_failure": view.last_failure,
        "last_failure_at": _when(view.last_failure_at),
        "opened_at": _when(view.opened_at),
        "next_probe_at": _when(view.next_probe_at),
        "next_probe_in_s": (
            None if view.next_probe_at is None else round(max(0.0, view.next_probe_at - now), 3)
        ),
        "probing": view.probing,
    }


@router.get("/health", summary="Circuit breakers: every deployment's state, failures, next probe")
async def gateway_health(
    request: Request,
    _: Annotated[Principal | None, Depends(requires(Permission.METRICS_READ))],
) -> GatewayHealthOut:
    gateway: Gateway = request.app.state.gateway
    found = gateway.health_report()
    return GatewayHealthOut(
        at=datetime.fromtimestamp(found.at, UTC),
        deployments=[
            DeploymentOut.model_validate(
                {
                    "provider": d.provider,
                    "upstream_model": d.upstream_model,
                    "credential": d.credential,
                    "models": list(d.models),
                    **_breaker(d.breaker, found.at),
                }
            )
            for d in found.deployments
        ],
        providers=[
            ProviderOut.model_validate(
                {
                    "provider": p.provider,
                    "failing_deployments": p.breaker.failing_deployments,
                    **_breaker(p.breaker, found.at),
                }
            )
            for p in found.providers
        ],
    )
