"""Data-subject rights over HTTP: export and erase a person's data (role-checked)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from bastion.api.deps import get_runtime, require_caller, requires
from bastion.api.routing import GUARDED, StrictJSONRoute, errors
from bastion.auth.permissions import Permission
from bastion.auth.principal import Principal

router = APIRouter(
    prefix="/api/subjects",
    tags=["subjects"],
    route_class=StrictJSONRoute,
    responses=errors(*GUARDED, 503),
)
Officer = Annotated[Principal | None, Depends(requires(Permission.SUBJECTS_MANAGE))]


class EraseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500, description="Why, e.g. the request's ticket.")
    requested_by: str = Field(
        default="the data subject", min_length=1, max_length=200, description="Who asked."
    )


class EraseOut(BaseModel):
    subject: str = Field(description="The keyed digest the erasure is recorded under.")
    removed: dict[str, dict[str, int]]


@router.get("/{user}/export", summary="Everything held about a person, as one JSON bundle")
async def export(user: str, request: Request, principal: Officer) -> dict[str, Any]:
    caller = require_caller(principal)
    subjects = get_runtime(request).subjects()
    return await run_in_threadpool(subjects.export, user, actor=caller.actor)


@router.post("/{user}/erase", summary="Erase a person's content and keys; pseudonymise events")
async def erase(
    user: str, body: EraseIn, request: Request, principal: Officer, background: BackgroundTasks
) -> EraseOut:
    caller = require_caller(principal)
    subjects = get_runtime(request).subjects()
    done = await run_in_threadpool(
        lambda: subjects.erase(
            user, reason=body.reason, requested_by=body.requested_by, actor=caller.actor
        )
    )
    # Answered once the data is unreadable and the erasure recorded; the rows it left
    # unreadable are deleted after the response (recorded as subject.cleanup).
    background.add_task(subjects.clean_up, done, actor=caller.actor)
    return EraseOut(subject=done.subject, removed=done.removed)
