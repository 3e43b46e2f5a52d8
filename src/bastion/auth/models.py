"""API key table. Only a SHA-256 digest of each key is stored, never the key."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from bastion.db.base import Base, utcnow


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    digest: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(200))
    user: Mapped[str] = mapped_column(String(200), index=True)
    team: Mapped[str | None] = mapped_column(String(200), index=True)
    role: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(String(200))
    #: Narrowing of models, limits and budgets (``KeyRestrictions``); None: the policy's.
    restrictions: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    #: When the key last authenticated, to within ``LAST_USE_EVERY_S`` (written only
    #: when the key is looked up in the database, never on the cached hot path).
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)


class UiSession(Base):
    """A dashboard sign-in: an API key exchanged for a session (``bastion.auth.sessions``).

    Only a SHA-256 digest of the session token is stored; the row names the key it was
    opened with, so revoking the key ends its sessions at their next request.
    """

    __tablename__ = "ui_sessions"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: The absolute end (``ui_session_max_s`` after sign-in); idleness ends it sooner.
    expires_at: Mapped[datetime] = mapped_column(index=True)
