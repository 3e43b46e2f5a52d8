"""Queries on the ``api_keys`` table."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bastion.auth.models import ApiKey


class KeyRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, key: ApiKey) -> None:
        self.session.add(key)
        self.session.flush()

    def by_prefix(self, prefix: str) -> ApiKey | None:
        return self.session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))

    def by_id(self, key_id: str) -> ApiKey | None:
        return self.session.get(ApiKey, key_id)

    def list_keys(self, *, include_revoked: bool = False) -> list[ApiKey]:
        query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
        if not include_revoked:
            query = query.where(ApiKey.revoked_at.is_(None))
        return list(self.session.scalars(query))

    def count_keys(self) -> int:
        return int(self.session.scalar(select(func.count()).select_from(ApiKey)) or 0)
