"""The dashboard's frame in-process: sign-in, sessions, expiry, CSRF, guards, error pages.

Runs on SQLite and PostgreSQL (the ``app`` fixture's database); the browser tests
(``test_browser_*.py``) drive the same frame through Chromium.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from bastion.auth.models import UiSession
from bastion.auth.sessions import token_digest
from bastion.db import utcnow
from bastion.testing.ui import page_token, sign_in

pytestmark = pytest.mark.anyio


def ledger_actions(app: FastAPI, prefix: str) -> list[tuple[str, str, str]]:
    runtime = app.state.runtime
    from bastion.audit import EventFilter

    page = runtime.audit.page(EventFilter(), limit=200)
    return [(e.action, e.outcome, e.resource) for e in page.events if e.action.startswith(prefix)]


async def test_pages_redirect_to_sign_in_with_next(client: httpx.AsyncClient) -> None:
    response = await client.get("/ui/audit?actor=x")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/ui/login?")
    assert "next=%2Fui%2Faudit%3Factor%3Dx" in response.headers["location"]


async def test_sign_in_opens_a_session_cookie_and_stores_only_a_digest(
    app: FastAPI, client: httpx.AsyncClient, key_for: Any
) -> None:
    key = key_for("admin", user="ada")
    response = await sign_in(client, key, "/ui/audit")
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/audit"
    cookie = response.headers["set-cookie"]
    assert "bastion_session=" in cookie
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert "Secure" not in cookie  # plain http on loopback; https gets Secure
    token = client.cookies["bastion_session"]
    with app.state.runtime.db.session() as session:
        rows = list(session.scalars(select(UiSession)))
    assert [r.digest for r in rows] == [token_digest(token)]
    assert token not in {r.digest for r in rows}
    page = await client.get("/ui/audit")
    assert page.status_code == 200
    assert "ada" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert ("ui.sign_in", "success", f"key:{key[:12]}") in ledger_actions(app, "ui.")


async def test_session_cookie_is_secure_over_tls(app: FastAPI, key_for: Any) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://bastion.test") as c:
        response = await sign_in(c, key_for("admin"))
    assert response.status_code == 303
    assert "Secure" in response.headers["set-cookie"]


async def test_a_wrong_key_is_refused_and_recorded(app: FastAPI, client: httpx.AsyncClient) -> None:
    response = await sign_in(client, "bst_AAAAAAAA_" + "B" * 32)
    assert response.status_code == 401
    assert "not valid" in response.text
    assert "bastion_session" not in client.cookies
    assert ("ui.sign_in", "failure", "key:bst_AAAAAAAA") in ledger_actions(app, "ui.")


async def test_next_never_leaves_the_dashboard(client: httpx.AsyncClient, key_for: Any) -> None:
    for target in ("https://evil.example/", "//evil.example/ui", "/ui\\evil", "/api/keys"):
        client.cookies.clear()
        response = await sign_in(client, key_for("admin"), target)
        assert response.headers["location"] == "/ui", target


async def test_logout_ends_the_session_everywhere(
    app: FastAPI, client: httpx.AsyncClient, key_for: Any
) -> None:
    await sign_in(client, key_for("admin"))
    token = client.cookies["bastion_session"]
    response = await client.post(
        "/ui/logout", data={"csrf_token": await page_token(client, "/ui/audit")}
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/login?reason=signed_out"
    # The old token no longer opens anything (another process would see the same row gone).
    client.cookies.set("bastion_session", token, path="/ui")
    again = await client.get("/ui/audit")
    assert again.status_code == 303 and "login" in again.headers["location"]
    assert any(a == ("ui.sign_out", "success", a[2]) for a in ledger_actions(app, "ui."))


@pytest.mark.parametrize("which", ["idle", "absolute"])
async def test_sessions_expire(
    app: FastAPI, client: httpx.AsyncClient, key_for: Any, which: str
) -> None:
    await sign_in(client, key_for("admin"))
    assert (await client.get("/ui/audit")).status_code == 200
    token = client.cookies["bastion_session"]
    settings = app.state.runtime.settings
    past = utcnow() - timedelta(seconds=settings.ui_session_idle_s + 1)
    values = {"last_seen_at": past} if which == "idle" else {"expires_at": utcnow()}
    with app.state.runtime.db.session() as session:
        session.execute(
            update(UiSession).where(UiSession.digest == token_digest(token)).values(**values)
        )
    response = await client.get("/ui/audit")
    assert response.status_code == 303
    assert "reason=session_expired" in response.headers["location"]
    notice = await client.get(response.headers["location"])
    assert "Your session has ended" in notice.text


async def test_revoking_the_key_ends_its_sessions(
    app: FastAPI, client: httpx.AsyncClient, key_for: Any
) -> None:
    from bastion.auth.principal import SYSTEM

    key = key_for("admin")
    await sign_in(client, key)
    app.state.runtime.keys.revoke(SYSTEM, key[:12])
    response = await client.get("/ui/audit")
    assert response.status_code == 303
    assert "reason=api_key_revoked" in response.headers["location"]


async def test_a_post_without_csrf_token_is_refused(
    app: FastAPI, client: httpx.AsyncClient, key_for: Any
) -> None:
    await sign_in(client, key_for("admin"))
    for data in ({}, {"csrf_token": "0" * 64}):
        response = await client.post("/ui/logout", data=data)
        assert response.status_code == 403
        assert "csrf_failed" in response.text
        assert "text/html" in response.headers["content-type"]
    # still signed in: the refused sign-out did nothing
    assert (await client.get("/ui/audit")).status_code == 200


async def test_another_sessions_csrf_token_does_not_fit(
    app: FastAPI, key_for: Any, client: httpx.AsyncClient
) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bastion.test") as other:
        await sign_in(other, key_for("admin"))
        foreign = await page_token(other, "/ui/audit")
    await sign_in(client, key_for("admin"))
    response = await client.post("/ui/logout", data={"csrf_token": foreign})
    assert response.status_code == 403


async def test_the_csrf_header_serves_scripts(client: httpx.AsyncClient, key_for: Any) -> None:
    await sign_in(client, key_for("admin"))
    token = await page_token(client, "/ui/audit")
    response = await client.post("/ui/logout", headers={"X-CSRF-Token": token})
    assert response.status_code == 303


async def test_sign_in_form_needs_its_token(client: httpx.AsyncClient, key_for: Any) -> None:
    await client.get("/ui/login")
    response = await client.post("/ui/login", data={"api_key": key_for("admin")})
    assert response.status_code == 403
    assert "csrf_failed" in response.text


async def test_a_missing_permission_is_a_page_that_names_it(
    client: httpx.AsyncClient, key_for: Any
) -> None:
    await sign_in(client, key_for("guest"))
    response = await client.get("/ui/admin")
    assert response.status_code == 403
    assert "text/html" in response.headers["content-type"]
    assert 'data-testid="missing-permission">keys:manage<' in response.text
    assert "Traceback" not in response.text


async def test_unknown_pages_and_bad_input_are_friendly(
    client: httpx.AsyncClient, key_for: Any
) -> None:
    await sign_in(client, key_for("admin"))
    missing = await client.get("/ui/no-such-page")
    assert missing.status_code == 404 and "no such page" in missing.text
    bad = await client.get("/ui/audit", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 400
    assert "invalid_cursor" in bad.text and "text/html" in bad.headers["content-type"]


async def test_the_nav_shows_only_what_the_role_may_see(
    client: httpx.AsyncClient, key_for: Any
) -> None:
    await sign_in(client, key_for("analyst"))
    home = await client.get("/ui/gateway")
    assert home.status_code == 200
    assert 'href="/ui/gateway"' in home.text
    assert 'href="/ui/audit"' not in home.text and 'href="/ui/admin"' not in home.text
    client.cookies.clear()
    await sign_in(client, key_for("admin"))
    page = await client.get("/ui/gateway")
    for slug in ("gateway", "audit", "admin", "documents", "evidence"):
        assert f'href="/ui/{slug}"' in page.text
    client.cookies.clear()
    await sign_in(client, key_for("auditor"))
    audit = await client.get("/ui/audit")
    for slug in ("models", "monitoring", "evidence", "audit"):
        assert f'href="/ui/{slug}"' in audit.text
    for slug in ("gateway", "documents", "admin"):
        assert f'href="/ui/{slug}"' not in audit.text


async def test_a_guest_lands_on_the_documents_a_role_with_no_page_on_a_page_that_says_so(
    client: httpx.AsyncClient, key_for: Any, runtime: Any
) -> None:
    await sign_in(client, key_for("guest"))
    landing = await client.get("/ui")
    assert landing.status_code == 303 and landing.headers["location"] == "/ui/documents"
    client.cookies.clear()

    import yaml

    policy = yaml.safe_load(runtime.settings.policy_path.read_text())
    policy["roles"]["caller"] = {"models": ["local"], "permissions": ["llm:use"]}
    runtime.settings.policy_path.write_text(yaml.safe_dump(policy))
    assert runtime.policy.reload().error is None
    await sign_in(client, key_for("caller"))
    response = await client.get("/ui")
    assert response.status_code == 200
    assert "may not see any dashboard page" in response.text


async def test_plotly_is_served_from_the_package(client: httpx.AsyncClient) -> None:
    response = await client.get("/ui/static/plotly.min.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert b"plotly.js" in response.content[:2000]
    assert (await client.get("/ui/static/..%2Fframe.py")).status_code == 404


@pytest.mark.parametrize(
    ("value", "shown"),
    [(0, "$0"), (0.0042, "$0.0042"), (1234.5, "$1,234.5"), (0.0000004, "$0"), (None, "")],
)
def test_costs_read_as_dollars(value: float | None, shown: str) -> None:
    from bastion.web.frame import money

    assert money(value) == shown
