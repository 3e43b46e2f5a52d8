"""Policy history: every version of the policy that was in force.

A row is written each time the digest in force changes (at startup when it differs
from the last row, on a reload, on a rollback), with the whole text so that
``bastion policy rollback VERSION`` can restore it and ``bastion policy history`` can
show the diff between consecutive versions. The version number is the row id.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bastion.db.base import Base, utcnow


class PolicyVersionRow(Base):
    __tablename__ = "policy_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    digest: Mapped[str] = mapped_column(String(64), index=True)
    previous_digest: Mapped[str | None] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(1000))
    loaded_by: Mapped[str] = mapped_column(String(200))
    trigger: Mapped[str] = mapped_column(String(50))
    loaded_at: Mapped[datetime] = mapped_column(default=utcnow)
