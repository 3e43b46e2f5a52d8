"""Pinned definitions and grants: the queries, nothing else."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from bastion.db import Database
from bastion.db.base import utcnow
from bastion.toolgate.models import ToolGrant, ToolPin


@dataclass(frozen=True)
class Pin:
    server: str
    tool: str
    digest: str
    definition: dict[str, Any]
    approved_by: str
    approved_at: datetime


@dataclass(frozen=True)
class Grant:
    id: int
    server: str
    tool: str
    grantee: str
    granted_by: str
    granted_at: datetime
    expires_at: datetime
    reason: str | None
    revoked_at: datetime | None


def _pin(row: ToolPin) -> Pin:
    return Pin(row.server, row.tool, row.digest, row.definition, row.approved_by, row.approved_at)


def _grant(row: ToolGrant) -> Grant:
    return Grant(
        row.id,
        row.server,
        row.tool,
        row.grantee,
        row.granted_by,
        row.granted_at,
        row.expires_at,
        row.reason,
        row.revoked_at,
    )


class ToolRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def pins_for(self, server: str) -> dict[str, Pin]:
        with self.db.session() as s:
            rows = s.scalars(select(ToolPin).where(ToolPin.server == server)).all()
            return {row.tool: _pin(row) for row in rows}

    def all_pins(self) -> list[Pin]:
        with self.db.session() as s:
            rows = s.scalars(select(ToolPin).order_by(ToolPin.server, ToolPin.tool)).all()
            return [_pin(row) for row in rows]

    def replace_pins(
        self, server: str, definitions: dict[str, tuple[str, dict[str, Any]]], by: str
    ) -> None:
        """The server's approved tools become exactly ``definitions`` (tool -> digest, def)."""
        with self.db.session() as s:
            rows = {r.tool: r for r in s.scalars(select(ToolPin).where(ToolPin.server == server))}
            for tool, old in rows.items():
                if tool not in definitions:
                    s.delete(old)
            s.flush()
            now = utcnow()
            for tool, (dig, definition) in definitions.items():
                found = rows.get(tool)
                if found is None:
                    s.add(
                        ToolPin(
                            server=server,
                            tool=tool,
                            digest=dig,
                            definition=definition,
                            approved_by=by,
                            approved_at=now,
                        )
                    )
                elif found.digest != dig:
                    found.digest, found.definition = dig, definition
                    found.approved_by, found.approved_at = by, now

    def add_grant(
        self,
        server: str,
        tool: str,
        grantee: str,
        by: str,
        expires_at: datetime,
        reason: str | None,
    ) -> Grant:
        with self.db.session() as s:
            row = ToolGrant(
                server=server,
                tool=tool,
                grantee=grantee,
                granted_by=by,
                granted_at=utcnow(),
                expires_at=expires_at,
                reason=reason,
            )
            s.add(row)
            s.flush()
            return _grant(row)

    def active_grant(self, server: str, tool: str, grantees: list[str]) -> Grant | None:
        now = utcnow()
        with self.db.session() as s:
            row = s.scalars(
                select(ToolGrant)
                .where(
                    ToolGrant.server == server,
                    ToolGrant.tool == tool,
                    ToolGrant.grantee.in_(grantees),
                    ToolGrant.revoked_at.is_(None),
                    ToolGrant.expires_at > now,
                )
                .order_by(ToolGrant.expires_at.desc())
                .limit(1)
            ).first()
            return _grant(row) if row is not None else None

    def grants(self, *, active_only: bool = True) -> list[Grant]:
        with self.db.session() as s:
            q = select(ToolGrant).order_by(ToolGrant.id)
            if active_only:
                q = q.where(ToolGrant.revoked_at.is_(None), ToolGrant.expires_at > utcnow())
            return [_grant(r) for r in s.scalars(q)]

    def revoke_grant(self, grant_id: int) -> bool:
        with self.db.session() as s:
            done = s.execute(
                update(ToolGrant)
                .where(ToolGrant.id == grant_id, ToolGrant.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
            return bool(getattr(done, "rowcount", 0))
