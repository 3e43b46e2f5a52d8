"""The Gateway, Audit and Keys & policy pages in-process (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from bastion.audit.models import AuditEvent
from bastion.testing.ui import page_token, sign_in

pytestmark = pytest.mark.anyio


async def chat(client: httpx.AsyncClient, key: str, text: str, model: str = "local") -> int:
    response = await client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": model, "messages": [{"role": "user", "content": text}]},
    )
    return response.status_code


def ids_in(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'href="/ui/gateway/calls/(\d+)"', html)]


async def test_calls_list_filters_and_pages_by_cursor(
    client: httpx.AsyncClient, key_for: Any
) -> None:
    risky = key_for("analyst", user="ana", team="risk")
    plain = key_for("analyst", user="bob")
    for i in range(5):
        assert await chat(client, risky, f"question {i}") == 200
    assert await chat(client, plain, "from bob") == 200
    assert await chat(client, plain, "nope", model="no-such-model") >= 400
    await sign_in(client, key_for("admin"))

    every = await client.get("/ui/gateway/calls")
    assert every.status_code == 200
    assert len(ids_in(every.text)) == 7
    assert 'data-chart="latency-chart"' in every.text

    team = await client.get("/ui/gateway/calls", params={"team": "risk"})
    assert len(ids_in(team.text)) == 5 and "user:bob" not in team.text
    refused = await client.get("/ui/gateway/calls", params={"outcome": "refused"})
    assert len(ids_in(refused.text)) == 1
    by_model = await client.get("/ui/gateway/calls", params={"model": "local", "team": ""})
    assert len(ids_in(by_model.text)) == 6

    # keyset pages of two, filtered by team: every call once, newest first
    seen: list[int] = []
    url: str | None = "/ui/gateway/calls?team=risk&limit=2"
    while url:
        page = await client.get(url)
        assert page.status_code == 200
        seen += ids_in(page.text)
        found = re.search(r'data-testid="next-page" href="([^"]+)"', page.text)
        url = found.group(1).replace("&amp;", "&") if found else None
    assert len(seen) == 5 and seen == sorted(seen, reverse=True)


async def test_a_calls_detail_shows_decisions_and_never_content_unless_allowed(
    app: FastAPI, client: httpx.AsyncClient, key_for: Any, home: Path
) -> None:
    key = key_for("analyst", user="ana", team="risk")
    assert await chat(client, key, "my secret question") == 200
    await sign_in(client, key_for("admin"))
    listing = await client.get("/ui/gateway/calls")
    (call_id,) = ids_in(listing.text)
    detail = await client.get(f"/ui/gateway/calls/{call_id}")
    assert detail.status_code == 200
    assert 'data-testid="decisions"' in detail.text and "Content digest" in detail.text
    assert "did not store this call" in detail.text  # the starter policy stores none
    assert "my secret question" not in detail.text

    # A policy that stores content: an admin (subjects:manage) reads it, an auditor not.
    policy = home / "policy.yaml"
    policy.write_text(policy.read_text().replace("store_content: false", "store_content: true"))
    outcome = app.state.runtime.reload_policy("system", "test")
    assert outcome.error is None and outcome.changed
    assert await chat(client, key, "a stored question") == 200
    listing = await client.get("/ui/gateway/calls")
    newest = max(ids_in(listing.text))
    shown = await client.get(f"/ui/gateway/calls/{newest}")
    assert "a stored question" in shown.text

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bastion.test") as other:
        await sign_in(other, key_for("auditor"))
        hidden = await other.get(f"/ui/gateway/calls/{newest}")
    assert hidden.status_code == 200
    assert "a stored question" not in hidden.text
    assert "subjects:manage" in hidden.text
    not_a_call = await client.get("/ui/gateway/calls/999999")
    assert not_a_call.status_code == 404 and "event_not_found" in not_a_call.text


async def test_gateway_health_lists_every_deployment(
    client: httpx.AsyncClient, key_for: Any
) -> None:
    await sign_in(client, key_for("analyst"))
    page = await client.get("/ui/gateway")
    assert page.status_code == 200
    assert "gpt-4.1-mini" in page.text and "closed" in page.text
    assert "Recent calls" not in page.text  # analysts lack audit:read


async def test_audit_explorer_filters_pages_and_exports(
    app: FastAPI, client: httpx.AsyncClient, key_for: Any
) -> None:
    for i in range(6):
        key_for("guest", user=f"g{i}")
    await sign_in(client, key_for("admin"))
    page = await client.get("/ui/audit", params={"action": "key.create", "limit": 4})
    assert page.status_code == 200
    first = re.findall(r'data-event="(\d+)"', page.text)
    assert len(first) == 4
    more = re.search(r'data-testid="next-page" href="([^"]+)"', page.text)
    assert more
    rest = await client.get(more.group(1).replace("&amp;", "&"))
    second = re.findall(r'data-event="(\d+)"', rest.text)
    assert len(second) == 3 and not set(first) & set(second)  # 6 guests and the admin

    export = await client.get("/ui/audit/export", params={"action": "key.create"})
    assert export.status_code == 200
    lines = [json.loads(line) for line in export.text.splitlines()]
    assert len(lines) == 7 and {e["action"] for e in lines} == {"key.create"}
    assert all("hash" in e and "prev_hash" in e for e in lines)

    bad = await client.get("/ui/audit", params={"since": "yesterday"})
    assert bad.status_code == 400 and "invalid_time" in bad.text


async def test_verify_on_the_button_is_bounded_recorded_and_finds_tampering(
    app: FastAPI, client: httpx.AsyncClient, key_for: Any
) -> None:
    await sign_in(client, key_for("admin"))
    token = await page_token(client, "/ui/audit")
    assert "No verification recorded yet" in (await client.get("/ui/audit")).text
    done = await client.post("/ui/audit/verify", data={"csrf_token": token, "per_stream": "100"})
    assert done.status_code == 303
    page = await client.get(done.headers["location"])
    assert 'data-testid="verify-outcome">intact<' in page.text

    with app.state.runtime.db.session() as session:
        session.execute(
            update(AuditEvent).where(AuditEvent.action == "key.create").values(actor="user:mallory")
        )
    await client.post("/ui/audit/verify", data={"csrf_token": token, "per_stream": "100"})
    page = await client.get("/ui/audit")
    assert 'data-testid="verify-outcome">problems found<' in page.text
    assert "edited" in page.text
    too_many = await client.post(
        "/ui/audit/verify", data={"csrf_token": token, "per_stream": "100000000"}
    )
    assert too_many.status_code in (400, 422)


async def test_keys_are_created_once_shown_and_revoked_by_form(
    app: FastAPI, client: httpx.AsyncClient, key_for: Any
) -> None:
    await sign_in(client, key_for("admin"))
    token = await page_token(client, "/ui/admin")
    created = await client.post(
        "/ui/admin/keys",
        data={
            "csrf_token": token,
            "user": "carol",
            "role": "analyst",
            "team": "risk",
            "name": "nb",
        },
    )
    assert created.status_code == 200
    secret = re.search(r'data-testid="secret">(bst_\w+)<', created.text)
    assert secret
    whoami = await client.get("/api/whoami", headers={"Authorization": f"Bearer {secret.group(1)}"})
    assert whoami.status_code == 200
    listing = await client.get("/ui/admin")
    assert secret.group(1) not in listing.text  # shown once
    prefix = secret.group(1)[:12]
    row = re.search(rf'<tr data-key="{prefix}">(.*?)</tr>', listing.text, re.S)
    assert row and "never" not in row.group(1)  # it was used just now
    key_id = re.search(r'action="/ui/admin/keys/(\w+)/revoke"', row.group(1))
    assert key_id
    revoked = await client.post(
        f"/ui/admin/keys/{key_id.group(1)}/revoke", data={"csrf_token": token}
    )
    assert revoked.status_code == 303
    app.state.runtime.keys._cache.clear()  # another process's cache would expire in its TTL
    refused = await client.get(
        "/api/whoami", headers={"Authorization": f"Bearer {secret.group(1)}"}
    )
    assert refused.status_code == 401

    unknown = await client.post(
        "/ui/admin/keys", data={"csrf_token": token, "user": "dan", "role": "emperor"}
    )
    assert unknown.status_code == 400 and "unknown_role" in unknown.text


async def test_the_policy_page_shows_the_digest_and_a_broken_file(
    app: FastAPI, client: httpx.AsyncClient, key_for: Any, home: Path
) -> None:
    await sign_in(client, key_for("admin"))
    page = await client.get("/ui/admin/policy")
    digest = app.state.runtime.policy.current.digest
    assert page.status_code == 200 and digest in page.text
    assert "the file is what is in force" in page.text
    (home / "policy.yaml").write_text("models: [this is not a policy\n")
    broken = await client.get("/ui/admin/policy")
    assert "does not validate" in broken.text and digest in broken.text
