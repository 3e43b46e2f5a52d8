"""Answers over a real database (SQLite and PostgreSQL) and a real ingested corpus: a
slice of the GDPR and EU AI Act articles the package ships for its demo."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

POLICY = """\
version: 1
models:
  local: {provider: local}
  priced: {provider: local, price: {input_per_1m: 1000, output_per_1m: 1000}}
  hash-embed: {provider: local, kind: embedding}
roles:
  admin: {models: ["*"]}
  analyst: {models: [local, priced, hash-embed]}
  guest: {models: [local, hash-embed]}
  auditor: {models: [], permissions: [audit:read]}
  intern:
    models: [local, hash-embed]
    permissions: [llm:use, documents:read, research:run]
teams:
  risk: {}
defaults:
  limits: {requests_per_minute: 100000, tokens_per_minute: 100000000}
privacy:
  prompt: {action: mask, entities: [EMAIL_ADDRESS, PHONE_NUMBER]}
denylist:
  - {pattern: "project falcon", action: flag, name: falcon}
documents:
  embedding_model: hash-embed
  collections:
    regulations: {read: ["*"], write: [admin]}
    secret: {read: [admin], write: [admin]}
answers:
  model: local
  research:
    max_steps: 6
    budget_usd: 1.0
    tools:
      search: {roles: ["*"], max_top_k: 8}
      read: {roles: ["*"], max_chars: 6000}
      summarize: {roles: [admin, analyst]}
      risk_check: {roles: ["*"]}
      regulations_search: {kind: search, collection: regulations, roles: [admin]}
"""

#: (regulation, article) of the slice ingested: enough for real questions, fast to index.
ARTICLES = {
    ("gdpr", 5),
    ("gdpr", 6),
    ("gdpr", 7),
    ("gdpr", 17),
    ("gdpr", 21),
    ("gdpr", 33),
    ("gdpr", 83),
    ("eu-ai-act", 5),
    ("eu-ai-act", 6),
    ("eu-ai-act", 50),
    ("eu-ai-act", 99),
}


def corpus_slice() -> bytes:
    from bastion.documents.demo import corpus_bytes

    rows = [json.loads(line) for line in corpus_bytes().decode().splitlines() if line.strip()]
    chosen = [r for r in rows if (r["regulation"], r["article"]) in ARTICLES]
    return "\n".join(json.dumps(r) for r in chosen).encode()


@pytest.fixture
def rag_settings(settings: Any) -> Any:
    from bastion.db import create_database, upgrade

    settings.policy_path.write_text(POLICY)
    db = create_database(settings.resolved_database_url)
    upgrade(db.engine)
    db.dispose()
    return settings


@pytest.fixture
def rag_runtime(rag_settings: Any) -> Iterator[Any]:
    from bastion.runtime import open_runtime

    rt = open_runtime(rag_settings)
    yield rt
    rt.close()


@pytest.fixture
def rag_key(rag_runtime: Any) -> Any:
    from bastion.auth.principal import SYSTEM

    def make(role: str, *, team: str | None = None) -> dict[str, str]:
        secret = rag_runtime.keys.create(SYSTEM, user=f"{role}-user", role=role, team=team).secret
        return {"Authorization": f"Bearer {secret}"}

    return make


@pytest.fixture
async def rag_app(rag_settings: Any, rag_runtime: Any) -> AsyncIterator[Any]:
    from bastion.app import create_app
    from bastion.auth.principal import SYSTEM
    from bastion.documents.service import Upload

    app = create_app(rag_settings, runtime=rag_runtime)
    service = app.state.documents.service
    await service.ingest("regulations", [Upload("regs.jsonl", corpus_slice(), "jsonl")], SYSTEM)
    secret = b'{"id": "memo", "text": "Project Falcon memo. The falcon budget is 42 million."}'
    await service.ingest("secret", [Upload("memo.jsonl", secret, "jsonl")], SYSTEM)
    yield app
    await app.state.gateway.aclose()


@pytest.fixture
async def rag_client(rag_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=rag_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bastion.test") as c:
        yield c
