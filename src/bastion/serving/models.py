"""Prediction log tables: one row per scored request and arm, and ground truth later.

The rollout controller (:mod:`bastion.delivery`) and monitoring read ``predictions``;
its columns are a contract between them and serving, so change them only with both.

- ``arm`` is ``production`` | ``canary`` | ``shadow`` | ``a`` | ``b`` | ``pinned``
  (pinned: the caller asked for ``?version=`` or a non-production ``?alias=``).
- ``features`` holds what the policy allows (all columns, some, or nothing);
  ``features_digest`` is always the SHA-256 of the row's canonical JSON.
- ``route_key_digest`` is a keyed digest of the route key, never the key itself.
- ``prediction_labels`` holds ground truth attached by request id; it has no foreign
  key so a label may arrive before its prediction's batch is written.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from bastion.db.base import Base, utcnow


class PredictionRow(Base):
    __tablename__ = "predictions"
    __table_args__ = (Index("ix_predictions_model_created_at", "model", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    model: Mapped[str] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer)
    arm: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    latency_ms: Mapped[float] = mapped_column(Float)
    outcome: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(64))
    prediction: Mapped[Any | None] = mapped_column(JSON)
    score: Mapped[float | None] = mapped_column(Float)
    features: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    features_digest: Mapped[str] = mapped_column(String(64))
    route_key_digest: Mapped[str | None] = mapped_column(String(64))


class PredictionLabelRow(Base):
    __tablename__ = "prediction_labels"

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    label: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
