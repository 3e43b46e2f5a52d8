"""The Models page in Chromium against ``bastion serve`` with the demo data: each role
allowed sees it, a guest gets the 403 page, and the approval flow works by clicking —
ana (analyst) requests staging for a new version, ada (admin) approves it, the alias
moves and the ledger says so; ada approving her own request is refused on the page.

Plus in-process checks of the page's forms (CSRF) on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from bastion.testing.ui import page_token, sign_in

from .conftest import Server, Watched, assert_forbidden

MODEL = "adult-income"
#: A decision moves MLflow aliases: on a busy 2-core machine it can take a while.
SLOW_MS = 180_000


def new_version(server: Server, tmp: Path, label: str) -> int:
    """A variant of a demo version's saved model, registered by ana with a model card."""
    folders = sorted((server.home / "mlartifacts" / MODEL).glob("*/artifacts/model"))
    assert folders, "the demo seed logged no model"
    folder = tmp / label
    shutil.copytree(folders[-1], folder)
    (folder / "variant.txt").write_text(label)
    out = server.cli(
        "models",
        "register",
        MODEL,
        "--path",
        str(folder),
        "--metric",
        "roc_auc=0.9",
        "--metric",
        "accuracy=0.85",
        "--by",
        "ana",
    )
    found = re.search(rf"{MODEL} v(\d+)", out)
    assert found, out
    version = int(found.group(1))
    with server.api("analyst") as api:
        card = api.put(
            f"/api/models/{MODEL}/versions/{version}/card",
            json={"kind": "model", "fields": {"intended_use": f"A dashboard test ({label})."}},
        )
        assert card.status_code == 200, card.text
    return version


@pytest.fixture(scope="module")
def candidates(server: Server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    tmp = tmp_path_factory.mktemp("ui-models")
    return {who: new_version(server, tmp, f"ui-{who}") for who in ("ana", "ada")}


@pytest.mark.parametrize("role", ["admin", "analyst"])
@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_models_page_renders_for_each_role_allowed(
    role: str,
    page_as: Callable[[str], Watched],
    shoot: Callable[[Any, str], Path],
    candidates: dict[str, int],
) -> None:
    page = page_as(role).page
    page.goto(f"/ui/models?name={MODEL}")
    assert page.locator("h1").inner_text() == "Models"
    assert page.locator("[data-testid=models]").get_by_text(MODEL).count() == 1
    assert page.locator("[data-testid=selected]").inner_text() == MODEL
    versions = page.locator("[data-testid=versions] tbody tr")
    assert versions.count() >= 4
    assert page.locator("[data-testid=lineage] [data-node=dataset]").count() >= 1
    assert page.locator("[data-testid=lineage] [data-node=deployment]").count() >= 1
    gates = page.locator(f"tr[data-version='{candidates['ana']}'] [data-testid=gates-verdict]")
    # staging's gates, or production's once another test has moved it on
    assert re.fullmatch(r"(staging: gates pass|production: gates (pass|fail))", gates.inner_text())
    # only an approver is offered the decision buttons
    approve_buttons = page.locator("button[data-testid^=approve-]").count()
    if role == "analyst":
        assert approve_buttons == 0
    shoot(page, f"models-{role}")
    page.click(f"[data-testid=card-{candidates['ana']}]")
    assert "A dashboard test (ui-ana)." in page.content()
    shoot(page, f"models-card-{role}")


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_guest_gets_a_page_that_names_the_missing_permission(
    page_as: Callable[[str], Watched], shoot: Callable[[Any, str], Path]
) -> None:
    watched = page_as("guest")
    pages = ("/ui/models", f"/ui/models/{MODEL}/versions/1/card")
    assert_forbidden(watched, [(path, "models:read") for path in pages])
    shoot(watched.page, "models-guest-403")


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_approval_flow_by_clicking(
    server: Server,
    page_as: Callable[[str], Watched],
    shoot: Callable[[Any, str], Path],
    candidates: dict[str, int],
) -> None:
    version = candidates["ana"]
    # ana asks for staging
    ana = page_as("analyst").page
    ana.goto(f"/ui/models?name={MODEL}")
    ana.fill(f"[data-testid=reason-{version}]", "ready for staging: metrics and card reviewed")
    ana.click(f"[data-testid=request-{version}]", timeout=SLOW_MS)
    notice = ana.locator("[data-testid=page-notice]").inner_text()
    found = re.search(r"\((pr_[0-9a-f]+)\)", notice)
    assert notice.startswith("Promotion requested") and found, notice
    request_id = found.group(1)
    row = ana.locator(f"[data-testid=pending] tr[data-request={request_id}]")
    assert row.count() == 1 and row.locator("button").count() == 0
    shoot(ana, "models-requested")

    # ada approves it, with notes
    ada = page_as("admin").page
    ada.goto(f"/ui/models?name={MODEL}")
    ada.fill(f"[data-testid=notes-{request_id}]", "checked the card; go")
    ada.click(f"[data-testid=approve-{request_id}]", timeout=SLOW_MS)
    assert ada.locator("[data-testid=page-notice]").inner_text().startswith("Request approved")
    assert ada.locator(f"[data-testid=status-{request_id}]").inner_text() == "approved"
    assert ada.locator(f"[data-testid=stage-{version}]").inner_text() == "staging"
    shoot(ada, "models-approved")

    # the alias moved, as the API says, and the ledger holds both decisions
    with server.api("admin") as api:
        detail = api.get(f"/api/models/{MODEL}/versions/{version}").json()
        assert detail["aliases"] == ["staging"] and detail["version"]["stage"] == "staging"
        decided = api.get(f"/api/promotions/{request_id}").json()
        assert (decided["status"], decided["requested_by"], decided["decided_by"]) == (
            "approved",
            "ana",
            "ada",
        )
        assert decided["notes"] == "checked the card; go"
        summary = next(m for m in api.get("/api/models").json()["data"] if m["name"] == MODEL)
        assert summary["staging"] == version
        resource = f"model:{MODEL}/{version}"
        events = api.get("/api/audit/events", params={"resource": resource, "limit": 50}).json()
        seen = {(e["action"], e["actor"], e["outcome"]) for e in events["data"]}
        assert ("model.promotion.request", "user:ana", "success") in seen
        assert ("model.promotion.approve", "user:ada", "success") in seen

    # the audit page shows the approval too
    ada.goto(f"/ui/audit?action=model.promotion.approve&resource={resource}")
    assert ada.get_by_text("model.promotion.approve").count() >= 1
    shoot(ada, "models-approval-in-audit")


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_approving_ones_own_request_is_refused_on_the_page(
    server: Server,
    page_as: Callable[[str], Watched],
    shoot: Callable[[Any, str], Path],
    candidates: dict[str, int],
) -> None:
    version = candidates["ada"]
    watched = page_as("admin")
    watched.expected_statuses.add(403)
    ada = watched.page
    ada.goto(f"/ui/models?name={MODEL}")
    ada.fill(f"[data-testid=reason-{version}]", "my own candidate")
    ada.click(f"[data-testid=request-{version}]", timeout=SLOW_MS)
    request_id = re.search(
        r"\((pr_[0-9a-f]+)\)", ada.locator("[data-testid=page-notice]").inner_text()
    )
    assert request_id
    rid = request_id.group(1)
    row = ada.locator(f"[data-testid=pending] tr[data-request={rid}]")
    assert "another approver must decide" in row.inner_text()
    with ada.expect_response(lambda r: r.url.endswith(f"/{rid}/approve")) as answered:
        ada.click(f"[data-testid=approve-{rid}]", timeout=SLOW_MS)
    assert answered.value.status == 403
    error = ada.locator("[data-testid=page-error]").inner_text()
    assert "self_approval" in error and "cannot approve it: another approver must" in error
    shoot(ada, "models-self-approval-refused")
    with server.api("admin") as api:
        assert api.get(f"/api/promotions/{rid}").json()["status"] == "pending"
        denied = api.get(
            "/api/audit/events",
            params={"action": "model.promotion.approve", "outcome": "denied", "limit": 50},
        ).json()["data"]
        assert any(e["resource"] == f"model:{MODEL}/{version}" for e in denied)


# -- in-process: the forms' CSRF, on SQLite and PostgreSQL -----------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    "path",
    [
        "/ui/models/promotions/pr_000000000000/approve",
        "/ui/models/promotions/pr_000000000000/reject",
        f"/ui/models/{MODEL}/versions/1/promotions",
    ],
)
async def test_a_form_post_without_its_csrf_token_is_refused(
    client: httpx.AsyncClient, key_for: Any, path: str
) -> None:
    assert (await sign_in(client, key_for("admin"))).status_code == 303
    refused = await client.post(path, data={"notes": "x", "reason": "x", "to": "staging"})
    assert refused.status_code == 403 and "csrf_failed" in refused.text
    token = await page_token(client, "/ui/login")
    forged = await client.post(path, data={"notes": "x", "csrf_token": token + "x"})
    assert forged.status_code == 403 and "csrf_failed" in forged.text


@pytest.mark.anyio
async def test_an_unknown_request_is_a_clear_page_not_a_stack_trace(
    client: httpx.AsyncClient, key_for: Any
) -> None:
    assert (await sign_in(client, key_for("admin"))).status_code == 303
    token = await page_token(client, "/ui/login")
    r = await client.post(
        "/ui/models/promotions/pr_000000000000/approve", data={"csrf_token": token}
    )
    assert r.status_code == 404 and "request_not_found" in r.text
    r = await client.get("/ui/models?name=nope")
    assert r.status_code == 404 and "model_not_found" in r.text
