"""Request and response bodies of Bastion's own API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bastion.audit import EventView
from bastion.auth.service import KeyView
from bastion.policy.schema import KeyRestrictions


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: str = Field(min_length=1, max_length=200)
    role: str = Field(min_length=1, max_length=100)
    team: str | None = Field(default=None, max_length=200)
    name: str | None = Field(default=None, max_length=200)
    expires_at: datetime | None = None
    restrictions: KeyRestrictions | None = Field(
        default=None,
        description="Narrow this key: models, max_tokens_per_request, limits, budgets.",
    )


class KeyOut(BaseModel):
    id: str
    prefix: str
    name: str | None
    user: str
    team: str | None
    role: str
    status: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    restrictions: dict[str, Any] | None = None
    last_used_at: datetime | None = Field(
        default=None, description="When the key last signed a call in (to within a minute)."
    )

    @classmethod
    def of(cls, key: KeyView) -> KeyOut:
        return cls.model_validate({**key.__dict__, "status": key.status})


class KeyCreated(KeyOut):
    key: str = Field(description="The key itself. Shown once; Bastion keeps only its digest.")


class KeyList(BaseModel):
    data: list[KeyOut]


class EventPage(BaseModel):
    data: list[EventView]
    next_cursor: str | None


class PolicyOut(BaseModel):
    path: str
    digest: str
    loaded_at: datetime | None
    policy: dict[str, Any]


class PolicyCheckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(max_length=1_000_000, description="The policy YAML to validate.")


class PolicyIssueOut(BaseModel):
    line: int | None
    column: int | None
    key: str
    message: str


class PolicyCheckOut(BaseModel):
    valid: bool
    issues: list[PolicyIssueOut]


class ReloadOut(BaseModel):
    changed: bool
    digest: str
    error: str | None = None


class Whoami(BaseModel):
    user: str
    team: str | None
    role: str
    key_prefix: str
    permissions: list[str]


class ErrorDetail(BaseModel):
    """Every error is ``{"error": ErrorDetail}``, in OpenAI's shape so SDKs raise their
    usual exceptions."""

    message: str
    type: str
    code: str = Field(description="Stable: branch on this, not on the message.")
    param: str | None = Field(description="The field or parameter at fault, when one is.")
    request_id: str | None
