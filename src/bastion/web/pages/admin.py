"""Keys & policy (admins): keys with their last use, create (the secret shown once) and
revoke by form; the policy in force, whether the file on disk validates, its history.

The key routes need ``keys:manage`` and the policy page ``policy:read``, as the API's
``/api/keys`` and ``/api/policy`` do; creating a key goes through the same
:meth:`KeyService.create` (an admin cannot mint a role stronger than their own).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from bastion.api.deps import KeysDep, PolicyDep, RuntimeDep
from bastion.auth.permissions import Permission
from bastion.auth.principal import Principal
from bastion.auth.service import CreatedKey, KeyService
from bastion.policy.history import PolicyHistory
from bastion.policy.status import policy_status
from bastion.web.frame import render, text_or_none, ui_requires

router = APIRouter(include_in_schema=False)

KeyAdmin = Annotated[Principal, Depends(ui_requires(Permission.KEYS_MANAGE))]
PolicyReader = Annotated[Principal, Depends(ui_requires(Permission.POLICY_READ))]


def _keys_page(
    request: Request,
    keys: KeyService,
    *,
    show_revoked: bool,
    created: CreatedKey | None = None,
    revoked: str | None = None,
) -> HTMLResponse:
    policy = keys.policy.policy
    return render(
        request,
        "admin.html",
        {
            "keys": keys.list_keys(include_revoked=show_revoked),
            "show_revoked": show_revoked,
            "roles": sorted(policy.role_names()),
            "teams": sorted(policy.teams),
            "created": created,
            "revoked": revoked,
        },
    )


@router.get("/ui/admin")
def keys_page(
    request: Request,
    keys: KeysDep,
    _: KeyAdmin,
    revoked: Annotated[str | None, Query(max_length=40)] = None,
    show_revoked: bool = False,
) -> HTMLResponse:
    return _keys_page(request, keys, show_revoked=show_revoked, revoked=revoked)


@router.post("/ui/admin/keys")
async def create_key(
    request: Request,
    keys: KeysDep,
    who: KeyAdmin,
    user: Annotated[str, Form(min_length=1, max_length=200)],
    role: Annotated[str, Form(min_length=1, max_length=100)],
    team: Annotated[str, Form(max_length=200)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
) -> HTMLResponse:
    created = await run_in_threadpool(
        lambda: keys.create(
            who,
            user=user.strip(),
            role=role,
            team=text_or_none(team),
            name=text_or_none(name),
        )
    )
    # Rendered here, not redirected: the secret is shown this once and never again.
    return _keys_page(request, keys, show_revoked=False, created=created)


@router.post("/ui/admin/keys/{key_id}/revoke")
async def revoke_key(keys: KeysDep, who: KeyAdmin, key_id: str) -> Response:
    key = await run_in_threadpool(keys.revoke, who, key_id)
    return RedirectResponse(f"/ui/admin?revoked={key.prefix}", status_code=303)


@router.get("/ui/admin/policy")
def policy_page(
    request: Request, runtime: RuntimeDep, policy: PolicyDep, _: PolicyReader
) -> HTMLResponse:
    status = policy_status(policy, PolicyHistory(runtime.db))
    return render(request, "admin_policy.html", {"status": status})
