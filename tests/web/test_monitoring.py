"""The Monitoring page in Chromium against ``bastion serve`` with the demo data: 600 UCI
Adult rows served by the production version through ``/predict`` and labelled through
``/api/labels``, then drift, performance, fairness, alerts and the HTML reports on the
page for each role allowed; a guest gets the 403 page.

Plus in-process checks on SQLite and PostgreSQL: a bad window is a clear 400 page, an
unknown report a 400, a report is served sandboxed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from bastion.testing.ui import sign_in

from .conftest import Server, Watched, assert_forbidden

MODEL = "adult-income"
ROWS = 600


@pytest.fixture(scope="module")
def served(server: Server) -> int:
    """Predictions of the production version, with their labels, in the log."""
    from bastion.registry import demo

    frame = demo.load_adult().sample(ROWS, random_state=7)
    features = frame[demo.NUMERIC + demo.CATEGORICAL]
    rows = [
        {k: (None if v != v else (v.item() if hasattr(v, "item") else v)) for k, v in r.items()}
        for r in features.to_dict(orient="records")
    ]
    truth = frame[demo.TARGET].astype(str).str.contains(">50K").astype(int).tolist()
    with server.api("analyst") as api:
        answer = api.post(f"/predict/{MODEL}", json={"inputs": rows}, timeout=300)
        assert answer.status_code == 200, answer.text
        ids = answer.json()["row_ids"]
        labels = api.post(
            "/api/labels",
            json={
                "labels": [{"request_id": i, "label": y} for i, y in zip(ids, truth, strict=True)]
            },
        )
        assert labels.status_code == 200 and labels.json()["matched"] == ROWS, labels.text
    return ROWS


@pytest.mark.parametrize("role", ["admin", "analyst"])
@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_monitoring_page_renders_for_each_role_allowed(
    role: str,
    served: int,
    page_as: Callable[[str], Watched],
    shoot: Callable[[Any, str], Path],
) -> None:
    page = page_as(role).page
    page.goto(f"/ui/monitoring?model={MODEL}&window=24h")
    assert page.locator("h1").inner_text() == "Monitoring"
    assert int(page.locator("[data-testid=rows]").inner_text()) >= served
    # drift per feature, drawn by plotly from the embedded data
    page.wait_for_selector("#drift-heatmap[data-drawn=true]")
    features = page.locator("[data-testid=drift] tbody tr")
    assert features.count() >= 5
    assert page.locator("[data-testid=drift] tr[data-feature=age]").count() == 1
    # performance once labels exist, against the registered metrics
    page.wait_for_selector("#performance[data-drawn=true]")
    assert page.locator("[data-testid=performance] tbody tr").count() >= 2
    # fairness by group: registered with the version, and for the window
    fairness = page.locator("[data-testid=fairness]")
    assert fairness.count() >= 2
    assert fairness.first.get_by_text("Female").count() >= 1
    assert page.locator("[data-testid=alerts], [data-testid=no-alerts]").count() == 1
    assert page.locator("[data-testid=report-drift]").count() == 1
    shoot(page, f"monitoring-{role}")


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_html_reports_open_from_the_page(
    served: int, page_as: Callable[[str], Watched], shoot: Callable[[Any, str], Path]
) -> None:
    page = page_as("analyst").page
    page.goto(f"/ui/monitoring?model={MODEL}&window=24h")
    for kind, title in (("drift", "Data drift"), ("fairness", "Fairness")):
        page.click(f"[data-testid=report-{kind}]")
        page.wait_for_load_state("load")
        assert page.locator("h1").first.inner_text().startswith(f"{title}: {MODEL}")
        shoot(page, f"monitoring-report-{kind}")
        page.go_back()


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_guest_gets_a_page_that_names_the_missing_permission(
    page_as: Callable[[str], Watched], shoot: Callable[[Any, str], Path]
) -> None:
    watched = page_as("guest")
    pages = ("/ui/monitoring", f"/ui/monitoring/{MODEL}/reports/drift")
    assert_forbidden(watched, [(path, "monitoring:read") for path in pages])
    shoot(watched.page, "monitoring-guest-403")


# -- in-process, on SQLite and PostgreSQL ------------------------------------------------


@pytest.mark.anyio
async def test_bad_input_is_a_clear_page(client: httpx.AsyncClient, key_for: Any) -> None:
    assert (await sign_in(client, key_for("analyst"))).status_code == 303
    r = await client.get("/ui/monitoring?window=forever")
    assert r.status_code == 400 and "invalid_window" in r.text
    r = await client.get("/ui/monitoring?model=nope")
    assert r.status_code == 404 and "model_not_served" in r.text
    r = await client.get(f"/ui/monitoring/{MODEL}/reports/shap")
    assert r.status_code == 400 and "invalid_report" in r.text


@pytest.mark.anyio
async def test_an_empty_registry_says_so(client: httpx.AsyncClient, key_for: Any) -> None:
    assert (await sign_in(client, key_for("analyst"))).status_code == 303
    r = await client.get("/ui/monitoring")
    assert r.status_code == 200 and "no model is registered yet" in r.text
    # this server's scripts only; inline styles for plotly.js's drawing
    assert "script-src 'self';" in r.headers["content-security-policy"]
    assert "style-src 'self' 'unsafe-inline';" in r.headers["content-security-policy"]
