"""The dashboard's Evidence page in-process (SQLite and PostgreSQL): the frameworks, the
open legal clocks, a report's controls and gaps on the page, and its files, recorded in
the ledger by digest as the API's are."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bastion.audit.models import AuditEvent
from bastion.testing.ui import sign_in
from bastion.web.pages.evidence import quarter_to_date

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("today", "period"),
    [
        (date(2026, 1, 1), "2026-01-01..2026-01-01"),
        (date(2026, 3, 31), "2026-01-01..2026-03-31"),
        (date(2026, 5, 17), "2026-04-01..2026-05-17"),
        (date(2026, 12, 7), "2026-10-01..2026-12-07"),
    ],
)
def test_the_period_offered_first_is_this_quarter_so_far(today: date, period: str) -> None:
    assert quarter_to_date(today) == period


async def test_auditors_see_frameworks_and_open_clocks_others_get_a_page_naming_the_permission(
    client: httpx.AsyncClient, key_for: Any
) -> None:
    auditor = key_for("auditor")
    admin = {"Authorization": f"Bearer {key_for('admin')}"}
    opened = await client.post(
        "/api/incidents",
        json={"kind": "subject_request", "title": "Access request from a customer"},
        headers=admin,
    )
    assert opened.status_code == 201, opened.text
    await sign_in(client, auditor)
    page = await client.get("/ui/evidence")
    assert page.status_code == 200
    for framework in ("eu-ai-act", "gdpr", "iso42001", "soc2", "nist-ai-rmf"):
        assert f'value="{framework}"' in page.text
    assert "Access request from a customer" in page.text
    assert re.search(r'data-testid="clock-status">open<', page.text)

    client.cookies.clear()
    await sign_in(client, key_for("analyst"))
    refused = await client.get("/ui/evidence")
    assert refused.status_code == 403 and "reports:read" in refused.text
    nav = await client.get("/ui/documents")
    assert nav.status_code == 200 and 'href="/ui/evidence"' not in nav.text


async def test_a_report_shows_controls_and_gaps_and_its_files_are_recorded(
    client: httpx.AsyncClient, key_for: Any, runtime: Any
) -> None:
    await sign_in(client, key_for("auditor"))
    today = datetime.now(UTC).date()
    period = f"{today.replace(day=1).isoformat()}..{today.isoformat()}"
    shown = await client.get("/ui/evidence/report", params={"framework": "gdpr", "period": period})
    assert shown.status_code == 200
    assert "Art. 30" in shown.text and 'data-testid="controls"' in shown.text
    gaps = re.search(r'data-testid="gaps">(\d+) gaps', shown.text)
    assert gaps is not None
    rows = re.findall(r'<tr data-control="([^"]+)">', shown.text)
    assert len(rows) >= 6 and len(rows) == len(set(rows))
    assert 'data-testid="chain">verified' in shown.text

    recorded_before = _reports(runtime)
    for fmt, media in (("html", "text/html"), ("md", "text/markdown"), ("pdf", "application/pdf")):
        got = await client.get(
            "/ui/evidence/report/file",
            params={"framework": "gdpr", "period": period, "format": fmt},
        )
        assert got.status_code == 200 and got.headers["content-type"].startswith(media)
        assert "attachment" in got.headers["content-disposition"]
        digest = got.headers["x-bastion-report-digest"]
        assert f"report:{digest}" in _reports(runtime)
    assert len(_reports(runtime)) == len(recorded_before) + 3  # the page view is not a report

    bad = await client.get("/ui/evidence/report", params={"framework": "gdpr", "period": "soon"})
    assert bad.status_code == 400 and "START..END" in bad.text
    unknown = await client.get(
        "/ui/evidence/report", params={"framework": "no-such", "period": period}
    )
    assert unknown.status_code == 404 and "gdpr" in unknown.text


def _reports(runtime: Any) -> list[str]:
    with runtime.db.session() as session:
        return list(
            session.scalars(
                select(AuditEvent.resource).where(AuditEvent.action == "evidence.report")
            )
        )
