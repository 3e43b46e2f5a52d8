"""What the monitoring checks on a model's prediction log found, one row a check run.

- ``monitoring_check_results``: the check (``drift``, ``performance``), the model, how
  many features drifted (or metrics fell) in it, the highest severity found (``none``
  when nothing was), and whether an alert was sent. The checks run as commands (cron,
  a pipeline step); the server reads this table when Prometheus scrapes it, so drift
  alerts reach the dashboard though no server raised them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from bastion.db.base import Base, utcnow


class CheckResultRow(Base):
    __tablename__ = "monitoring_check_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    check: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(100), index=True)
    flagged: Mapped[int] = mapped_column(Integer)
    severity: Mapped[str] = mapped_column(String(16))
    alerted: Mapped[bool] = mapped_column(Boolean)
    checked_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
