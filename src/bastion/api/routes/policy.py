"""The policy in force: show it, check a candidate, reload the file."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from fastapi import APIRouter, Depends

from bastion.api.deps import PolicyDep, RuntimeDep, require_caller, requires
from bastion.api.routing import GUARDED, StrictJSONRoute, errors
from bastion.api.schemas import PolicyCheckIn, PolicyCheckOut, PolicyIssueOut, PolicyOut, ReloadOut
from bastion.auth.permissions import Permission
from bastion.auth.principal import Principal
from bastion.policy import PolicyError, parse_policy

router = APIRouter(
    prefix="/api/policy",
    tags=["policy"],
    route_class=StrictJSONRoute,
    responses=errors(*GUARDED, 503),
)


@router.get("", summary="The policy in force")
def show_policy(
    store: PolicyDep, _: Annotated[Principal | None, Depends(requires(Permission.POLICY_READ))]
) -> PolicyOut:
    loaded = store.current
    return PolicyOut(
        path=str(store.path),
        digest=loaded.digest,
        loaded_at=store.loaded_at,
        policy=redacted(loaded.policy.model_dump(mode="json")),
    )


def redacted(policy: dict[str, Any]) -> dict[str, Any]:
    """The policy as readers may see it: header values and URL credentials hidden."""
    for provider in policy.get("providers", {}).values():
        provider["headers"] = {name: "***" for name in provider.get("headers", {})}
        url = provider.get("base_url")
        if url:
            parts = urlsplit(url)
            if parts.username or parts.password:
                host = parts.hostname or ""
                netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
                provider["base_url"] = urlunsplit(parts._replace(netloc=netloc))
    return policy


@router.post("/check", summary="Validate a policy without applying it")
def check_policy(
    body: PolicyCheckIn, _: Annotated[Principal | None, Depends(requires(Permission.POLICY_READ))]
) -> PolicyCheckOut:
    try:
        parse_policy(body.text, "<request>")
    except PolicyError as exc:
        return PolicyCheckOut(
            valid=False,
            issues=[
                PolicyIssueOut(line=i.line, column=i.column, key=i.key, message=i.message)
                for i in exc.issues
            ],
        )
    return PolicyCheckOut(valid=True, issues=[])


@router.post("/reload", summary="Reload the policy file now")
def reload_policy(
    runtime: RuntimeDep,
    principal: Annotated[Principal | None, Depends(requires(Permission.POLICY_MANAGE))],
) -> ReloadOut:
    outcome = runtime.reload_policy(require_caller(principal), trigger="api")
    if outcome.error is not None:
        raise outcome.error
    return ReloadOut(changed=outcome.changed, digest=outcome.digest)
