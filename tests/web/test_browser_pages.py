"""Gateway, Audit, Keys & policy, Documents and Evidence in Chromium, for every role that may see them, with
screenshots under tests/artifacts/."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import Server, Watched

# The harness seeds the demo data (the model registry too) before the first test: minutes.
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(900)]

#: Who may see which of this branch's pages (as the permission table says).
PAGES = {
    "/ui/gateway": ["admin", "analyst"],
    "/ui/gateway/calls": ["admin"],
    "/ui/audit": ["admin"],
    "/ui/admin": ["admin"],
    "/ui/admin/policy": ["admin", "analyst"],
    "/ui/documents": ["admin", "analyst", "guest"],
    "/ui/evidence": ["admin", "auditor"],
}


@pytest.mark.parametrize(("path", "role"), [(p, r) for p, roles in PAGES.items() for r in roles])
def test_page_renders_for_each_role_that_may_see_it(
    page_as: Callable[[str], Watched], shoot: Any, path: str, role: str
) -> None:
    w = page_as(role)
    response = w.page.goto(path)
    assert response is not None and response.status == 200
    assert w.page.locator("main h1").count() == 1
    shoot(w.page, f"{path.strip('/').replace('/', '-')}-{role}")


def test_calls_chart_draws_and_a_call_opens(page_as: Callable[[str], Watched], shoot: Any) -> None:
    w = page_as("admin")
    page = w.page
    page.goto("/ui/gateway/calls")
    page.wait_for_selector("#latency-chart[data-drawn=true] .main-svg")
    rows = page.locator("[data-testid=calls] tbody tr")
    assert rows.count() >= 5
    page.select_option("#outcome", "refused")
    page.click("[data-testid=call-filters] button")
    page.wait_for_url(re.compile(r".*outcome=refused"))
    # the harness made one refused call; other tests on this server may have made more
    shown = page.locator("[data-testid=calls] tbody tr").all_inner_texts()
    assert shown and all("refused" in row for row in shown)
    page.goto("/ui/gateway/calls?outcome=success")
    page.locator("[data-testid=calls] tbody tr a", has_text="detail").first.click()
    page.wait_for_url(re.compile(r".*/ui/gateway/calls/\d+$"))
    assert page.get_by_test_id("decisions").locator("tbody tr").count() >= 1
    assert "did not store this call" in page.get_by_test_id("call-content").inner_text()
    shoot(page, "gateway-call-detail-admin")


def test_verify_by_button(page_as: Callable[[str], Watched], shoot: Any) -> None:
    w = page_as("admin")
    page = w.page
    page.goto("/ui/audit")
    page.fill("#per_stream", "500")
    page.get_by_test_id("verify").click()
    page.wait_for_url(re.compile(r".*/ui/audit\?action=audit\.verify"))
    assert page.get_by_test_id("verify-outcome").inner_text() == "intact"
    shoot(page, "audit-verified-admin")


def test_export_link_downloads_jsonl(page_as: Callable[[str], Watched]) -> None:
    w = page_as("admin")
    w.downloads.add("/ui/audit/export")
    page = w.page
    page.goto("/ui/audit?action=key.create")
    with page.expect_download() as info:
        page.get_by_test_id("export").click()
    text = Path(info.value.path()).read_text()
    lines = text.splitlines()
    assert len(lines) >= 3 and all('"action": "key.create"' in line for line in lines)


def test_key_create_and_revoke_by_clicking(
    page_as: Callable[[str], Watched], server: Server, shoot: Any
) -> None:
    w = page_as("admin")
    page = w.page
    page.goto("/ui/admin")
    page.fill("#user", "zoe")
    page.select_option("#role", "guest")
    page.fill("#name", "browser test")
    page.click("[data-testid=create-key] button")
    secret = page.get_by_test_id("secret").inner_text().strip()
    assert secret.startswith("bst_")
    shoot(page, "admin-key-created")
    with server.api("admin") as api:
        api.headers["Authorization"] = f"Bearer {secret}"
        assert api.get("/api/whoami").json()["user"] == "zoe"
    page.goto("/ui/admin")
    assert secret not in page.content()  # shown once
    row = page.locator(f"tr[data-key='{secret[:12]}']")
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_test_id("revoke").click()
    page.wait_for_url(re.compile(r".*/ui/admin\?revoked="))
    assert secret[:12] in page.get_by_test_id("revoked-notice").inner_text()
    assert page.locator(f"tr[data-key='{secret[:12]}']").count() == 0
    page.goto("/ui/admin?show_revoked=true")
    assert "revoked" in page.locator(f"tr[data-key='{secret[:12]}']").inner_text()


def test_a_question_is_answered_on_the_documents_page(
    page_as: Callable[[str], Watched], shoot: Any
) -> None:
    page = page_as("analyst").page
    page.goto("/ui/documents")
    page.fill("#question", "How long does a controller have to notify a personal data breach?")
    page.get_by_test_id("ask").click()
    page.wait_for_selector("[data-testid=answer-text]")
    cited = page.get_by_test_id("citations").inner_text()
    assert "GDPR Art. 33" in cited
    shoot(page, "documents-answer-analyst")


def test_a_compliance_report_shows_its_chart_and_downloads(
    page_as: Callable[[str], Watched], shoot: Any
) -> None:
    w = page_as("auditor")
    w.downloads.add("/ui/evidence/report/file")
    page = w.page
    page.goto("/ui/evidence")
    page.select_option("#framework", "eu-ai-act")
    page.get_by_test_id("build-report").click()
    page.wait_for_url(re.compile(r".*/ui/evidence/report\?framework=eu-ai-act.*"))
    page.wait_for_selector("#chart-activity[data-drawn=true] .main-svg")
    assert page.locator("[data-testid=controls] tbody tr").count() >= 9
    with page.expect_download() as info:
        page.get_by_test_id("file-html").click()
    assert "<html" in Path(info.value.path()).read_text()[:2000].lower()
    shoot(page, "evidence-report-auditor")
