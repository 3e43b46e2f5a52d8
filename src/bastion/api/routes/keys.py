"""API keys: create, list, show, revoke (admins)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from bastion.api.deps import KeysDep, require_caller, requires
from bastion.api.routing import GUARDED, StrictJSONRoute, errors
from bastion.api.schemas import KeyCreate, KeyCreated, KeyList, KeyOut
from bastion.auth.permissions import Permission
from bastion.auth.principal import Principal

router = APIRouter(
    prefix="/api/keys",
    tags=["keys"],
    route_class=StrictJSONRoute,
    responses=errors(*GUARDED, 503),
)
Admin = Annotated[Principal | None, Depends(requires(Permission.KEYS_MANAGE))]


@router.post("", status_code=201, summary="Create a key (shown once)")
def create_key(body: KeyCreate, keys: KeysDep, principal: Admin) -> KeyCreated:
    created = keys.create(
        require_caller(principal),
        user=body.user,
        role=body.role,
        team=body.team,
        name=body.name,
        expires_at=body.expires_at,
        restrictions=body.restrictions,
    )
    return KeyCreated(**KeyOut.of(created.key).model_dump(), key=created.secret)


@router.get("", summary="List keys")
def list_keys(
    keys: KeysDep, _: Admin, include_revoked: Annotated[bool, Query()] = False
) -> KeyList:
    return KeyList(data=[KeyOut.of(k) for k in keys.list_keys(include_revoked=include_revoked)])


@router.get("/{key_id}", summary="Show one key", responses=errors(404))
def get_key(key_id: str, keys: KeysDep, _: Admin) -> KeyOut:
    return KeyOut.of(keys.get(key_id))


@router.delete("/{key_id}", summary="Revoke a key", responses=errors(404, 409))
def revoke_key(key_id: str, keys: KeysDep, principal: Admin) -> KeyOut:
    return KeyOut.of(keys.revoke(require_caller(principal), key_id))
