"""The HTTP faces: compliance reports for auditors, and feedback on calls."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from .conftest import now

pytestmark = pytest.mark.anyio


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_an_auditor_gets_a_recorded_oscal_report(
    client: httpx.AsyncClient, key_for: Callable[..., str], write: Callable[..., None]
) -> None:
    start = now() - timedelta(minutes=1)
    write("llm.chat", 3)
    period = f"{start.isoformat()}..{now().isoformat()}"
    got = await client.get(
        "/api/reports/compliance",
        params={"framework": "soc2", "period": period},
        headers=auth(key_for("auditor")),
    )
    assert got.status_code == 200, got.text
    doc = got.json()
    digest = got.headers["x-bastion-report-digest"]
    meta = {p["name"]: p["value"] for p in doc["assessment-results"]["metadata"]["props"]}
    assert meta["report-digest"] == digest
    events = await client.get(
        "/api/audit/events",
        params={"action": "evidence.report"},
        headers=auth(key_for("auditor")),
    )
    assert events.json()["data"][0]["resource"] == f"report:{digest}"
    html = await client.get(
        "/api/reports/compliance",
        params={"framework": "soc2", "period": period, "format": "html"},
        headers=auth(key_for("auditor")),
    )
    assert html.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"framework": "soc2", "period": "2026-03-31..2026-01-01"}, 400, "invalid_period"),
        ({"framework": "soc2", "period": "last quarter"}, 400, "invalid_period"),
        ({"framework": "pci-dss", "period": "2026-01-01..2026-03-31"}, 404, "unknown_framework"),
        ({"framework": "soc2", "period": "2026-01-01..2026-03-31", "format": "docx"}, 422, None),
    ],
)
async def test_bad_report_requests_get_a_coded_error(
    client: httpx.AsyncClient,
    key_for: Callable[..., str],
    params: dict[str, str],
    status: int,
    code: str | None,
) -> None:
    got = await client.get(
        "/api/reports/compliance", params=params, headers=auth(key_for("auditor"))
    )
    assert got.status_code == status
    if code:
        assert got.json()["error"]["code"] == code


async def test_an_analyst_may_not_read_compliance_reports(
    client: httpx.AsyncClient, key_for: Callable[..., str]
) -> None:
    got = await client.get(
        "/api/reports/compliance",
        params={"framework": "soc2", "period": "2026-01-01..2026-03-31"},
        headers=auth(key_for("analyst")),
    )
    assert got.status_code == 403


async def test_feedback_comments_are_masked_and_the_ledger_holds_no_comment(
    client: httpx.AsyncClient, key_for: Callable[..., str], runtime: Any
) -> None:
    got = await client.post(
        "/api/feedback",
        json={
            "request_id": "req-42",
            "kind": "wrong",
            "rating": 2,
            "comment": "It quoted jane.doe@example.com back to me",
        },
        headers=auth(key_for("guest")),
    )
    assert got.status_code == 201, got.text
    item = got.json()
    assert "jane.doe" not in item["comment"] and "<EMAIL_ADDRESS>" in item["comment"]
    assert "pii:EMAIL_ADDRESS" in item["flags"]
    with runtime.db.engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT details, flags, request_id FROM audit_events WHERE action = 'feedback.add'"
            )
        ).one()
    assert "jane" not in row.details + row.flags
    assert row.request_id == "req-42"
    assert json.loads(row.details)["kind"] == "wrong"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"request_id": "r", "kind": "meh"}, "kind"),
        ({"request_id": "r", "kind": "helpful", "rating": 6}, "rating"),
        ({"request_id": "", "kind": "helpful"}, "request_id"),
        ({"request_id": "r", "kind": "helpful", "extra": 1}, "extra"),
        ({"kind": "helpful"}, "request_id"),
    ],
)
async def test_bad_feedback_is_refused_by_field(
    client: httpx.AsyncClient, key_for: Callable[..., str], body: dict[str, Any], param: str
) -> None:
    got = await client.post("/api/feedback", json=body, headers=auth(key_for("guest")))
    assert got.status_code in (400, 422)
    assert param in json.dumps(got.json()["error"])


async def test_feedback_exports_as_jsonl_and_csv_with_formulas_defused(
    client: httpx.AsyncClient, key_for: Callable[..., str]
) -> None:
    guest = auth(key_for("guest"))
    for rid, comment in (("a", "great"), ("b", "=HYPERLINK(1)")):
        r = await client.post(
            "/api/feedback",
            json={"request_id": rid, "kind": "other", "comment": comment},
            headers=guest,
        )
        assert r.status_code == 201
    analyst = auth(key_for("analyst"))
    lines = (await client.get("/api/feedback", params={"format": "jsonl"}, headers=analyst)).text
    assert [json.loads(x)["request_id"] for x in lines.splitlines()] == ["a", "b"]
    csv_text = (await client.get("/api/feedback", params={"format": "csv"}, headers=analyst)).text
    assert csv_text.splitlines()[0] == "id,request_id,rating,kind,comment,flags,actor,created_at"
    assert ",'=HYPERLINK(1)," in csv_text
    assert (await client.get("/api/feedback", headers=guest)).status_code == 403


async def test_incidents_and_attestations_over_http(
    client: httpx.AsyncClient, key_for: Callable[..., str]
) -> None:
    admin = auth(key_for("admin"))
    opened = await client.post(
        "/api/incidents",
        json={
            "kind": "serious_incident",
            "severity": "widespread",
            "title": "outage",
            "aware_at": "2026-03-01T00:00:00Z",
        },
        headers=admin,
    )
    assert opened.status_code == 201, opened.text
    item = opened.json()
    assert item["deadline_at"] == "2026-03-03T00:00:00+00:00" and item["status"] == "overdue"
    auditor = auth(key_for("auditor"))
    listed = (await client.get("/api/incidents", headers=auditor)).json()["data"]
    assert [i["id"] for i in listed] == [item["id"]]
    assert (
        await client.post(
            "/api/incidents", json={"kind": "subject_request", "title": "x"}, headers=auditor
        )
    ).status_code == 403
    closed = await client.post(
        f"/api/incidents/{item['id']}/close", json={"resolution": "reported"}, headers=admin
    )
    assert closed.json()["status"] == "closed_late"
    again = await client.post(f"/api/incidents/{item['id']}/close", json={}, headers=admin)
    assert again.status_code == 409 and again.json()["error"]["code"] == "incident_closed"
    missing = await client.post("/api/incidents/999/close", json={}, headers=admin)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_incident"
    attested = await client.post(
        "/api/reports/attestations",
        json={"framework": "gdpr", "control": "art-35", "by": "dpo", "note": "DPIA v3"},
        headers=admin,
    )
    assert attested.status_code == 201
    unknown = await client.post(
        "/api/reports/attestations",
        json={"framework": "gdpr", "control": "art-99", "by": "dpo", "note": "x"},
        headers=admin,
    )
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_control"
