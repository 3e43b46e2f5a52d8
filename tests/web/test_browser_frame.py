"""The frame in Chromium against a real ``bastion serve``: sign-in, sign-out, expiry,
CSRF, the guest's 403 page, the nav per role."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from .conftest import Server, Watched, assert_forbidden

# The harness seeds the demo data (the model registry too) before the first test: minutes.
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(900)]


def test_sign_in_then_out(page_as: Callable[[str], Watched], server: Server, shoot: Any) -> None:
    w = page_as("admin")
    page = w.page
    assert page.get_by_test_id("who").inner_text().startswith("ada")
    nav = page.locator("header nav a").all_inner_texts()
    assert {"Gateway", "Audit", "Keys & policy"} <= set(nav)
    page.get_by_test_id("logout").click()
    page.wait_for_url(re.compile(r".*/ui/login\?reason=signed_out"))
    assert "You are signed out" in page.content()
    shoot(page, "login-signed-out")
    page.goto("/ui/audit")
    page.wait_for_url(re.compile(r".*/ui/login\?.*next=%2Fui%2Faudit"))


def test_a_wrong_key_says_so(open_page: Callable[[], Watched], server: Server) -> None:
    w = open_page()
    w.expected_statuses.add(401)
    page = w.page
    page.goto("/ui/login")
    page.fill("#api_key", "bst_AAAAAAAA_" + "B" * 32)
    page.click("button[type=submit]")
    assert "not valid" in page.locator(".error").inner_text()


def test_sign_in_returns_to_the_page_asked_for(
    open_page: Callable[[], Watched], server: Server
) -> None:
    w = open_page()
    page = w.page
    page.goto("/ui/audit?action=key.create")
    page.fill("#api_key", server.keys["admin"])
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/ui/audit\?action=key\.create$"))
    assert page.locator("[data-testid=events] tbody tr").count() >= 3


def test_an_expired_session_asks_to_sign_in_again(
    page_as: Callable[[str], Watched], server: Server
) -> None:
    w = page_as("analyst")
    page = w.page
    page.goto("/ui/gateway")
    # End every session as the clock would (the server reads the same database).
    with sqlite3.connect(server.home / "bastion.db") as db:
        db.execute("UPDATE ui_sessions SET expires_at = '2000-01-01 00:00:00.000000'")
    page.goto("/ui/gateway")
    page.wait_for_url(re.compile(r".*/ui/login\?reason=session_expired"))
    assert "Your session has ended" in page.content()


def test_a_guest_gets_a_clear_403_page_on_admin_pages(
    page_as: Callable[[str], Watched], shoot: Any
) -> None:
    w = page_as("guest")
    assert w.page.locator("header nav a").all_inner_texts() == ["Documents"]
    assert_forbidden(
        w,
        [
            ("/ui/admin", "keys:manage"),
            ("/ui/audit", "audit:read"),
            ("/ui/admin/policy", "policy:read"),
            ("/ui/evidence", "reports:read"),
        ],
    )
    shoot(w.page, "guest-403-admin")


def test_a_post_without_csrf_token_is_refused(server: Server, page_as: Any) -> None:
    w = page_as("admin")
    cookies = {c["name"]: c["value"] for c in w.page.context.cookies()}
    with httpx.Client(base_url=server.url, cookies=cookies) as client:
        response = client.post("/ui/admin/keys", data={"user": "eve", "role": "admin"})
        assert response.status_code == 403
        assert "csrf_failed" in response.text
        # the browser's own form (with its token) works: the session is still good
    w.page.goto("/ui/admin")
    # no key of a user eve (as a word: "never", a last use, holds the letters)
    assert not re.search(r"\beve\b", w.page.locator("[data-testid=keys]").inner_text())
