"""Route dependencies: the runtime, and the permission every route must declare.

``requires(Permission.X)`` is the only way a route gets a principal; a test walks
every registered route and fails if one declares no permission (or more than one).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from fastapi import Depends, Request
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from bastion.audit import AuditService, Signer
from bastion.auth.errors import MissingKey, PermissionDenied
from bastion.auth.permissions import Permission
from bastion.auth.principal import Principal
from bastion.auth.service import KeyService
from bastion.errors import Unauthenticated
from bastion.policy import PolicyStore
from bastion.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


# Routes take the one service they call, built once by the runtime (readiness and the
# policy reload, which span several services, take the runtime itself).
def get_audit(request: Request) -> AuditService:
    return get_runtime(request).audit


def get_keys(request: Request) -> KeyService:
    return get_runtime(request).keys


def get_signer(request: Request) -> Signer:
    return get_runtime(request).signer


def get_policy(request: Request) -> PolicyStore:
    return get_runtime(request).policy


AuditDep = Annotated[AuditService, Depends(get_audit)]
KeysDep = Annotated[KeyService, Depends(get_keys)]
SignerDep = Annotated[Signer, Depends(get_signer)]
PolicyDep = Annotated[PolicyStore, Depends(get_policy)]


def presented_key(request: Request) -> str | None:
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = request.headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


class Guard:
    """Checks that the caller holds ``permission``; returns the caller."""

    def __init__(self, permission: Permission, *, public_when: str | None = None) -> None:
        self.permission = permission
        # Name of a boolean setting that, when true, makes the route public.
        self.public_when = public_when

    def is_public(self, runtime: Runtime) -> bool:
        if self.permission is Permission.PUBLIC:
            return True
        return bool(self.public_when and getattr(runtime.settings, self.public_when))

    async def __call__(self, request: Request) -> Principal | None:
        runtime = get_runtime(request)
        if self.is_public(runtime):
            return None
        secret = presented_key(request)
        try:
            if secret is None:
                raise MissingKey(
                    "no API key: send it as `Authorization: Bearer <key>` or `X-API-Key: <key>`"
                )
            # A key seen lately is answered from memory on the loop; only a miss pays
            # for the thread hop and the database.
            principal = runtime.keys.authenticate_cached(secret)
            if principal is None:
                principal = await run_in_threadpool(runtime.keys.authenticate, secret)
            if not principal.can(self.permission):
                raise PermissionDenied(
                    f"role {principal.role!r} lacks the permission {self.permission.value!r} "
                    "this route needs: ask an admin for a key with a role that has it"
                )
        except (Unauthenticated, PermissionDenied) as exc:
            runtime.metrics.auth_failures.labels(exc.code).inc()
            raise
        source = runtime.source_of(request.client.host if request.client else None)
        if source is not None:
            principal = replace(principal, source=source)
        request.state.principal = principal
        return principal


def requires(permission: Permission, *, public_when: str | None = None) -> Guard:
    return Guard(permission, public_when=public_when)


def route_guards(route: APIRoute) -> list[Guard]:
    """The :class:`Guard` objects among a route's dependencies, nested ones included."""
    found: list[Guard] = []
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        if isinstance(dep.call, Guard):
            found.append(dep.call)
        stack.extend(dep.dependencies)
    return found


def route_guard(route: APIRoute) -> Guard:
    """The one :class:`Guard` a route declares."""
    found = route_guards(route)
    if len(found) != 1:
        raise RuntimeError(f"{route.path} declares {len(found)} permission guards, not one")
    return found[0]


def require_caller(principal: Principal | None) -> Principal:
    if principal is None:  # only public routes get None, and they do not ask for a caller
        raise RuntimeError("a public route asked for a caller")
    return principal
