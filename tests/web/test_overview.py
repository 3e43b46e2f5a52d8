"""The Overview page: the same figures as ``GET /api/usage`` for the same period, read
off the page; links from each number to the calls behind it; budgets and alerts.

In-process (SQLite and PostgreSQL) and in Chromium against ``bastion serve`` with the
demo data (``@pytest.mark.browser``)."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from bastion.testing.ui import sign_in


def number(text: str) -> float:
    """A figure as the page prints it ("1,234", "$0.000120", "655.7 ms") as a number."""
    cleaned = re.sub(r"[^0-9.\-]", "", text.replace("ms", ""))
    return float(cleaned)


@pytest.mark.anyio
async def test_the_overview_shows_the_api_figures_and_links_to_the_calls(
    app: Any, client: httpx.AsyncClient, key_for: Any
) -> None:
    admin = key_for("admin", user="ada", team="risk")
    for i in range(3):
        response = await client.post(
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer {admin}"},
            json={"model": "local", "messages": [{"role": "user", "content": f"q {i}"}]},
        )
        assert response.status_code == 200
    app.state.usage.refresher.lag_s = 0
    app.state.usage.refresh()
    today = datetime.now(UTC).date().isoformat()
    assert (await sign_in(client, admin, "/ui/overview")).status_code == 303

    page = await client.get("/ui/overview", params={"start": today, "end": today})
    api = await client.get(
        "/api/usage",
        params={"start": today, "end": today, "group_by": "team"},
        headers={"Authorization": f"Bearer {admin}"},
    )

    assert page.status_code == 200, page.text[:1000]
    totals = api.json()["totals"]
    assert totals["requests"] == 3
    found = re.search(r'data-testid="total-requests">([^<]+)<', page.text)
    assert found and number(found.group(1)) == totals["requests"]
    assert f"/ui/gateway/calls?since={today}T00%3A00" in page.text  # the number links to its calls
    assert 'data-team="risk"' in page.text
    assert 'data-testid="budget-row"' in page.text  # the starter policy's team budgets


@pytest.mark.anyio
async def test_a_bad_period_is_a_page_that_says_so(client: httpx.AsyncClient, key_for: Any) -> None:
    await sign_in(client, key_for("analyst"), "/ui/overview")
    page = await client.get("/ui/overview", params={"start": "2026-03-02", "end": "2026-03-01"})
    assert page.status_code == 400
    assert "after it ends" in page.text


# --- in Chromium --------------------------------------------------------------------------


def refreshed(server: Any) -> None:
    """Fold the fixture's traffic into the rollups (events younger than the refresh lag,
    5 s, wait for the next run)."""
    time.sleep(5.5)
    server.cli("usage", "refresh")


def figure(page: Any, testid: str) -> float:
    return number(page.get_by_test_id(testid).inner_text())


@pytest.mark.browser
@pytest.mark.timeout(300)
@pytest.mark.parametrize("role", ["admin", "analyst"])
def test_the_overview_renders_and_equals_the_api(page_as: Any, server: Any, role: str) -> None:
    from .conftest import ARTIFACTS

    refreshed(server)
    today = datetime.now(UTC).date().isoformat()
    watched = page_as(role)
    page = watched.page
    page.goto(f"/ui/overview?start={today}&end={today}&group_by=team")
    page.get_by_test_id("chart-requests").locator(".main-svg").first.wait_for()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"overview-{role}.png"), full_page=True)
    with server.api(role) as api:
        body = api.get(
            "/api/usage", params={"start": today, "end": today, "group_by": "team"}
        ).json()

    totals = body["totals"]
    assert totals["requests"] > 0
    assert figure(page, "total-requests") == totals["requests"]
    assert figure(page, "total-errors") == totals["errors"]
    assert figure(page, "total-refused") == totals["refused"]
    assert figure(page, "total-prompt-tokens") == totals["prompt_tokens"]
    assert figure(page, "total-completion-tokens") == totals["completion_tokens"]
    assert figure(page, "total-cost") == pytest.approx(totals["cost_usd"], abs=5e-7)
    assert figure(page, "total-p50") == pytest.approx(totals["latency_p50_ms"], abs=0.05)
    assert figure(page, "total-p95") == pytest.approx(totals["latency_p95_ms"], abs=0.05)
    rows = page.get_by_test_id("group-row")
    assert rows.count() == len(body["groups"])
    for group in body["groups"]:
        row = page.locator(f'[data-testid="group-row"][data-team="{group["team"]}"]')
        assert number(row.locator('[data-metric="requests"]').inner_text()) == group["requests"]
        assert number(row.locator('[data-metric="cost"]').inner_text()) == pytest.approx(
            group["cost_usd"], abs=5e-7
        )
    linked = page.get_by_test_id("total-requests")
    if role == "admin":  # may read the ledger: the number leads to its calls
        href = linked.get_attribute("href", timeout=1000)
        assert href.startswith(f"/ui/gateway/calls?since={today}T00%3A00")
        calls = page.request.get(href)  # fetched in the signed-in session
        assert calls.status == 200 and "Recent gateway calls" in calls.text()
    else:
        assert linked.evaluate("el => el.tagName") == "SPAN"
