"""The registry over HTTP, as an analyst and two admins would use it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow import MlflowClient

from bastion.registry import demo
from bastion.registry.service import ModelRegistry

from .conftest import Model, variant

pytestmark = pytest.mark.anyio


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_register_promote_verify_over_http(
    client: httpx.AsyncClient,
    key_for: Any,
    registry: ModelRegistry,
    fair_model: Model,
    baseline_model: Model,
    tmp_path: Path,
) -> None:
    ana = bearer(key_for("analyst", user="ana"))
    ada = bearer(key_for("admin", user="ada"))
    bob = bearer(key_for("admin", user="bob"))
    run = registry.store.log_model_folder(
        variant(fair_model, tmp_path, "v1"),
        params={"C": "1.0"},
        metrics=fair_model.trained.metrics,
        tags={},
    )

    r = await client.post("/api/models/income/versions", json={"run_id": run.run_id}, headers=ana)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["created"] and body["version"]["version"] == 1
    assert (
        body["version"]["registered_by"] == "ana" and len(body["version"]["artifact_sha256"]) == 64
    )
    r = await client.post("/api/models/income/versions", json={"run_id": run.run_id}, headers=ada)
    assert r.status_code == 200 and not r.json()["created"]

    r = await client.get("/api/models/income/versions/1/gates?stage=production", headers=ana)
    assert r.status_code == 200 and not r.json()["passed"]
    failing = {g["gate"] for g in r.json()["gates"] if not g["passed"]}
    assert failing == {"fairness", "model_card", "drift_baseline"}

    for kind, report in (
        ("fairness", fair_model.fairness),
        ("drift_baseline", fair_model.baseline),
    ):
        r = await client.post(
            "/api/models/income/versions/1/evidence",
            json={"kind": kind, "report": report},
            headers=ana,
        )
        assert r.status_code == 201, r.text
    r = await client.post(
        "/api/models/income/versions/1/evidence",
        json={"kind": "fairness", "report": {"format": "something else"}},
        headers=ana,
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_evidence"
    r = await client.put(
        "/api/models/income/versions/1/card",
        json={"kind": "model", "fields": {"intended_use": "Demonstrations only."}},
        headers=ana,
    )
    assert r.status_code == 200 and r.json()["fields"] == {"intended_use": "Demonstrations only."}

    for stage in ("staging", "production"):
        r = await client.post(
            "/api/models/income/versions/1/promotions",
            json={"to": stage, "reason": "passes every gate"},
            headers=ana,
        )
        assert r.status_code == 201, r.text
        request_id = r.json()["id"]
        r = await client.post(f"/api/promotions/{request_id}/approve", json={}, headers=ana)
        assert r.status_code == 403 and r.json()["error"]["code"] == "permission_denied"
        r = await client.post(
            f"/api/promotions/{request_id}/approve", json={"notes": "ok"}, headers=ada
        )
        assert r.status_code == 200 and r.json()["status"] == "approved", r.text
    mlflow = MlflowClient(registry.store.tracking_uri)
    assert int(mlflow.get_model_version_by_alias("income", "production").version) == 1

    r = await client.get("/api/models", headers=ana)
    assert r.json()["data"] == [
        {
            "name": "income",
            "versions": 1,
            "latest": 1,
            "latest_semver": None,
            "production": 1,
            "staging": None,
            "pending_requests": 0,
        }
    ]
    r = await client.get("/api/promotions?status=approved&name=income", headers=ana)
    assert [p["to_stage"] for p in r.json()["data"]] == ["production", "staging"]
    r = await client.get("/api/models/income/versions/1/lineage", headers=ana)
    lineage = r.json()
    assert lineage["run"]["run_id"] == run.run_id
    assert [c["to_stage"] for c in lineage["stage_changes"]] == [
        "development",
        "staging",
        "production",
    ]
    r = await client.get("/api/models/income/versions/1/card?format=html", headers=ana)
    assert r.headers["content-type"].startswith("text/html") and "Demonstrations only." in r.text
    r = await client.get("/api/models/income/versions/1", headers=ana)
    assert r.json()["aliases"] == ["production"] and len(r.json()["history"]) == 3

    # An admin asks and cannot approve their own request; another admin can.
    bad = registry.store.log_model_folder(
        variant(baseline_model, tmp_path, "v2"), params={}, metrics={}, tags={}
    )
    r = await client.post("/api/models/income/versions", json={"run_id": bad.run_id}, headers=ada)
    assert r.json()["version"]["version"] == 2
    r = await client.post(
        "/api/models/income/versions/2/promotions",
        json={
            "to": "staging",
            "reason": "hotfix",
            "overrides": {
                "model_card": "the card is being written",
                "metric:roc_auc": "metrics come later",
            },
        },
        headers=ada,
    )
    assert r.status_code == 201, r.text
    request_id = r.json()["id"]
    r = await client.post(f"/api/promotions/{request_id}/approve", json={}, headers=ada)
    assert r.status_code == 403 and r.json()["error"]["code"] == "self_approval"
    r = await client.post(f"/api/promotions/{request_id}/approve", json={}, headers=bob)
    assert r.status_code == 200
    r = await client.post(
        "/api/models/income/versions/2/promotions",
        json={"to": "production", "reason": "hotfix"},
        headers=ana,
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "gates_failed"
    assert "metric:roc_auc: no metric 'roc_auc' recorded" in r.json()["error"]["message"]

    r = await client.post("/api/registry/verify", headers=ana)
    assert r.status_code == 200 and r.json()["ok"]
    mlflow.set_registered_model_alias("income", "production", "2")
    r = await client.post("/api/registry/verify", headers=ana)
    assert not r.json()["ok"]
    assert [f["problem"] for f in r.json()["findings"]] == ["alias_moved"]

    r = await client.post("/api/models/income/rollback", json={"reason": "x"}, headers=ana)
    assert r.status_code == 403
    r = await client.post("/api/models/income/rollback", json={"reason": "bad"}, headers=ada)
    assert r.status_code == 409 and r.json()["error"]["code"] == "no_rollback_target"


async def test_bad_input_gets_a_stable_code(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    registry: ModelRegistry,
    fair_model: Model,
    tmp_path: Path,
) -> None:
    r = await client.get("/api/models/nope", headers=admin_headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    r = await client.get("/api/promotions/pr_missing", headers=admin_headers)
    assert r.json()["error"]["code"] == "promotion_request_not_found"
    r = await client.post(
        "/api/models/income/versions", json={"run_id": "f" * 32}, headers=admin_headers
    )
    assert r.status_code == 404 and r.json()["error"]["code"] == "mlflow_run_not_found"
    r = await client.get("/api/models/x/versions/1/card?kind=model", headers=admin_headers)
    assert r.status_code == 404
    assert demo.MODEL_NAME not in {m.name for m in registry.list_models()}

    r = await client.get("/api/models/income/versions/one/lineage", headers=admin_headers)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    assert r.json()["error"]["param"] == "version"
    r = await client.post(
        "/api/models/income/versions",
        content=b'{"run_id": "abc"',
        headers=admin_headers | {"Content-Type": "application/json"},
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    r = await client.post("/api/models/income/versions", json={"run": "abc"}, headers=admin_headers)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"
    assert "run_id: Field required" in r.json()["error"]["message"]

    # A run whose upload stopped half way, and a run that failed.
    folder = variant(fair_model, tmp_path, "cut")
    pickled = folder / "model.pkl"
    pickled.write_bytes(pickled.read_bytes()[:100])
    cut = registry.store.log_model_folder(folder, params={}, metrics={}, tags={})
    r = await client.post(
        "/api/models/income/versions", json={"run_id": cut.run_id}, headers=admin_headers
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "model_artifact_incomplete"
    assert "model.pkl is cut short" in r.json()["error"]["message"]
    mlflow = MlflowClient(registry.store.tracking_uri)
    failed = mlflow.create_run(registry.store.experiment_id()).info.run_id
    mlflow.log_artifacts(failed, str(fair_model.folder), "model")
    mlflow.set_terminated(failed, "FAILED")
    r = await client.post(
        "/api/models/income/versions", json={"run_id": failed}, headers=admin_headers
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "mlflow_run_failed"
    r = await client.get("/api/models", headers=admin_headers)
    assert r.json()["data"] == []
