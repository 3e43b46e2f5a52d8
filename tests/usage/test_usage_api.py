"""``GET /api/usage``, ``/api/usage/budgets`` and ``/api/alerts`` over real gateway calls
(the offline ``local`` model of the starter policy) on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.anyio


async def chat(client: httpx.AsyncClient, key: str, text: str, stream: bool = False) -> int:
    response = await client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={
            "model": "local",
            "messages": [{"role": "user", "content": text}],
            "stream": stream,
        },
    )
    return response.status_code


async def test_usage_counts_the_calls_the_gateway_served(
    app: Any, client: httpx.AsyncClient, key_for: Any
) -> None:
    risk = key_for("analyst", team="risk")
    loner = key_for("analyst")
    statuses = [await chat(client, risk, f"question {i}", stream=i % 2 == 0) for i in range(5)]
    statuses += [await chat(client, loner, "hello there")]
    refused = await client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {risk}"},
        json={"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert statuses == [200] * 6 and refused.status_code in (403, 404)
    app.state.usage.refresher.lag_s = 0
    app.state.usage.refresh()
    today = datetime.now(UTC).date().isoformat()

    response = await client.get(
        "/api/usage",
        params={"start": today, "end": today, "group_by": "team,model"},
        headers={"Authorization": f"Bearer {risk}"},
    )

    assert response.status_code == 200, response.text
    body = response.json()
    groups = {(g["team"], g["model"]): g for g in body["groups"]}
    assert groups[("risk", "local")]["requests"] == 5
    assert groups[("risk", "local")]["ttft_p50_ms"] is not None  # streams were timed
    assert groups[("", "local")]["requests"] == 1
    assert body["totals"]["requests"] == 7 and body["totals"]["refused"] == 1
    assert body["totals"]["prompt_tokens"] > 0
    assert body["series"][0]["day"] == today
    assert body["as_of"]["events_folded"] == 7


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"start": "2026-02-10", "end": "2026-02-01"}, "invalid_period"),
        ({"start": "2026-13-45"}, "invalid_period"),
        ({"start": "2020-01-01", "end": "2026-01-01"}, "period_too_long"),
        ({"group_by": "user"}, "invalid_group_by"),
    ],
)
async def test_a_bad_period_or_grouping_is_a_clear_400(
    client: httpx.AsyncClient, admin_headers: dict[str, str], params: dict[str, str], code: str
) -> None:
    response = await client.get("/api/usage", params=params, headers=admin_headers)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


async def test_a_guest_may_not_read_usage(client: httpx.AsyncClient, key_for: Any) -> None:
    headers = {"Authorization": f"Bearer {key_for('guest')}"}
    for path in ("/api/usage", "/api/usage/budgets", "/api/alerts"):
        assert (await client.get(path, headers=headers)).status_code == 403


async def test_budgets_burn_down_from_what_the_team_spent(
    app: Any, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    from bastion.testing.usage import SyntheticCall, event_of

    runtime = app.state.runtime
    now = datetime.now(UTC)
    spent = SyntheticCall(
        int((now - timedelta(minutes=5)).timestamp() * 1e6),
        "risk",
        "gpt-4.1-mini",
        "success",
        False,
        1000,
        1000,
        60.0,  # over the starter policy's $50 a day
        900.0,
        None,
    )
    receipt = runtime.ledger.append(event_of(spent))
    assert receipt.seq > 0
    app.state.usage.refresher.lag_s = 0
    app.state.usage.refresh()

    budgets = (await client.get("/api/usage/budgets", headers=admin_headers)).json()
    alerts = (await client.get("/api/alerts", headers=admin_headers)).json()

    day = next(b for b in budgets if b["team"] == "risk" and b["per"] == "day")
    month = next(b for b in budgets if b["team"] == "risk" and b["per"] == "month")
    assert day["spent_usd"] == pytest.approx(60.0) and day["remaining_usd"] == pytest.approx(-10)
    assert month["limit_usd"] == 1000 and month["days_left"] is not None
    assert month["burn_down"][-1][1] == pytest.approx(940.0)
    assert any(a["kind"] == "budget" and a["severity"] == "critical" for a in alerts)


async def test_open_incidents_are_alerts_for_those_who_may_read_reports(
    app: Any, client: httpx.AsyncClient, admin_headers: dict[str, str], key_for: Any
) -> None:
    from bastion.evidence.clocks import ClockService

    runtime = app.state.runtime
    ClockService(runtime.db, runtime.ledger).open(
        kind="serious_incident", title="chatbot advice harmed a customer", actor="user:admin"
    )
    analyst = {"Authorization": f"Bearer {key_for('analyst')}"}

    for_admin = (await client.get("/api/alerts", headers=admin_headers)).json()
    for_analyst = (await client.get("/api/alerts", headers=analyst)).json()

    assert [a["title"] for a in for_admin if a["kind"] == "incident"] == [
        "chatbot advice harmed a customer"
    ]
    assert [a for a in for_analyst if a["kind"] == "incident"] == []
