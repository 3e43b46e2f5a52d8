"""The same rollout over the API and the CLI: start, status, pause, resume, check, abort,
history; clear errors with stable codes; roles checked; a models rollback resets it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from registry.conftest import bastion

from .conftest import MODEL, Income, Simulator

pytestmark = pytest.mark.anyio


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_a_rollout_over_the_api(
    client: httpx.AsyncClient, key_for: Any, income: Income, simulate: Simulator
) -> None:
    analyst, guest, admin = key_for("analyst"), key_for("guest"), key_for("admin")
    body = {"model": MODEL, "version": income.candidate, "steps": [5, 50, 100]}
    r = await client.post("/api/deployments", json=body, headers=auth(guest))
    assert r.status_code == 403
    bad = await client.post(
        "/api/deployments", json=body | {"steps": [50, 5]}, headers=auth(analyst)
    )
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "invalid_steps")
    bad = await client.post(
        "/api/deployments", json=body | {"interval": "soon"}, headers=auth(analyst)
    )
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "invalid_interval")
    bad = await client.post(
        "/api/deployments", json=body | {"version": income.production}, headers=auth(analyst)
    )
    assert (bad.status_code, bad.json()["error"]["code"]) == (409, "not_a_candidate")
    r = await client.post("/api/deployments", json=body, headers=auth(analyst))
    assert r.status_code == 201, r.text
    assert (r.json()["state"], r.json()["weight"]) == ("running", 5)
    again = await client.post("/api/deployments", json=body, headers=auth(analyst))
    assert (again.status_code, again.json()["error"]["code"]) == (409, "rollout_active")

    simulate.production = income.production
    simulate.send(300)
    r = await client.post(f"/api/deployments/{MODEL}/check", headers=auth(analyst), json={})
    assert r.status_code == 200 and r.json()["data"][0]["verdict"] == "hold"
    r = await client.get(f"/api/deployments/{MODEL}", headers=auth(guest))
    assert r.status_code == 403
    r = await client.get(f"/api/deployments/{MODEL}", headers=auth(analyst))
    analysis = r.json()["last_analysis"]
    assert analysis["verdict"] == "hold" and analysis["more_requests"] > 0

    for verb, state in (("pause", "paused"), ("resume", "running")):
        r = await client.post(
            f"/api/deployments/{MODEL}/{verb}", json={"reason": "look"}, headers=auth(analyst)
        )
        assert r.json()["state"] == state
    r = await client.post(f"/api/deployments/{MODEL}/resume", json={}, headers=auth(analyst))
    assert r.status_code == 409
    # An admin's emergency rollback of production also sends the traffic back.
    r = await client.post(
        f"/api/models/{MODEL}/rollback", json={"reason": "incident"}, headers=auth(admin)
    )
    assert r.status_code == 409  # v1 was the only version in production: nothing to do
    r = await client.post(
        f"/api/deployments/{MODEL}/abort", json={"reason": "enough"}, headers=auth(analyst)
    )
    assert r.json()["state"] == "aborted" and r.json()["weight"] == 0
    r = await client.get(f"/api/deployments/{MODEL}/history", headers=auth(analyst))
    assert [d["action"] for d in r.json()["decisions"]] == [
        "start",
        "analysis",
        "pause",
        "resume",
        "abort",
    ]
    r = await client.get("/api/deployments/nothing-here", headers=auth(analyst))
    assert (r.status_code, r.json()["error"]["code"]) == (404, "rollout_not_found")


def test_a_rollout_over_the_cli(runtime: Any, income: Income, simulate: Simulator) -> None:
    env = {
        "BASTION_HOME": str(runtime.settings.home),
        "BASTION_DATABASE_URL": runtime.settings.resolved_database_url,
    }
    r = bastion(env, "deploy", "canary", MODEL, str(income.candidate), "--steps", "5,x")
    assert r.code == 2 and "invalid_steps" in r.err
    r = bastion(
        env,
        "deploy",
        "canary",
        MODEL,
        str(income.candidate),
        "--steps",
        "10,50,100",
        "--interval",
        "5m",
        "--by",
        "ana",
    )
    assert r.code == 0, r.err
    assert "running, 10 %" in r.out
    simulate.production = income.production
    simulate.send(200)
    r = bastion(env, "deploy", "check", MODEL)
    assert r.code == 0 and "hold" in r.out
    r = bastion(env, "deploy", "pause", MODEL, "--reason", "lunch", "--by", "ana")
    assert r.code == 0 and "paused" in r.out
    r = bastion(env, "deploy", "status", MODEL, "--format", "json")
    assert '"state": "paused"' in r.out
    r = bastion(env, "deploy", "abort", MODEL, "--by", "ana")
    assert r.code == 0 and "aborted" in r.out
    r = bastion(env, "deploy", "history", MODEL)
    assert r.code == 0
    for action in ("start", "analysis", "pause", "abort"):
        assert action in r.out
    r = bastion(env, "deploy", "status", "nothing-here")
    assert r.code == 1 and "rollout_not_found" in r.err
