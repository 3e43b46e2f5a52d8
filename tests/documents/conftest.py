"""Documents on a real database (SQLite and PostgreSQL) with a policy of our own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

POLICY = """\
version: 1
models:
  local: {provider: local}
  hash-embed: {provider: local, kind: embedding}
roles:
  admin: {models: ["*"]}
  analyst: {models: [local, hash-embed]}
  guest: {models: [local, hash-embed]}
teams:
  legal: {}
  risk: {}
defaults:
  limits: {requests_per_minute: 100000, tokens_per_minute: 100000000}
privacy:
  prompt: {action: mask, entities: [EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD, IBAN_CODE]}
documents:
  embedding_model: hash-embed
  personal_data: mask
  chunk_chars: 400
  overlap_chars: 60
  collections:
    public: {read: ["*"], write: [analyst]}
    legal: {read: [analyst], teams: [legal], write: [analyst]}
    strict: {personal_data: refuse}
    raw: {personal_data: index}
"""


@pytest.fixture
def docs_settings(settings: Any) -> Any:
    from bastion.db import create_database, upgrade

    settings.policy_path.write_text(POLICY)
    db = create_database(settings.resolved_database_url)
    upgrade(db.engine)
    db.dispose()
    return settings


@pytest.fixture
def docs_runtime(docs_settings: Any) -> Iterator[Any]:
    from bastion.runtime import open_runtime

    rt = open_runtime(docs_settings)
    yield rt
    rt.close()


@pytest.fixture
async def docs(docs_runtime: Any) -> AsyncIterator[Any]:
    from bastion.documents.setup import build_documents
    from bastion.gateway.setup import build_gateway

    gateway = build_gateway(docs_runtime)
    yield build_documents(docs_runtime, gateway)
    await gateway.aclose()


@pytest.fixture
async def docs_client(docs_settings: Any, docs_runtime: Any) -> AsyncIterator[httpx.AsyncClient]:
    from bastion.app import create_app

    app = create_app(docs_settings, runtime=docs_runtime)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bastion.test") as c:
        c.app = app  # type: ignore[attr-defined]
        yield c
    await app.state.gateway.aclose()


@pytest.fixture
def docs_key(docs_runtime: Any) -> Any:
    from bastion.auth.principal import SYSTEM

    def make(role: str, *, team: str | None = None) -> dict[str, str]:
        created = docs_runtime.keys.create(SYSTEM, user=f"{role}-{team}", role=role, team=team)
        return {"Authorization": f"Bearer {created.secret}"}

    return make


def principal(role: str, team: str | None = None) -> Any:
    from bastion.auth.permissions import DEFAULT_ROLE_PERMISSIONS
    from bastion.auth.principal import Principal

    return Principal("k", "k", f"{role}-user", team, role, DEFAULT_ROLE_PERMISSIONS[role])
