"""The Models page's service: ``income`` v1 in production, v2 in staging with a canary,
and a v3 just registered, read in one call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bastion.delivery.overview import models_overview
from bastion.delivery.service import DeliveryService
from bastion.registry import demo
from bastion.registry.errors import ModelNotFound
from bastion.registry.service import ModelRegistry
from registry.conftest import register

from .conftest import ADA, ANA, MODEL, Income


@pytest.fixture
def overview_state(
    runtime: Any, income: Income, delivery: DeliveryService, baseline_model: Any, tmp_path: Path
) -> tuple[Income, int, str]:
    delivery.start(ANA, MODEL, income.candidate, steps="10,50,100", interval="10m")
    v3 = register(income.registry, baseline_model, tmp_path, "three")
    pending = income.registry.request_promotion(ANA, MODEL, v3, "staging", "try v3")
    return income, v3, pending.id


def test_every_model_with_stages_pending_requests_and_gates(
    runtime: Any, delivery: DeliveryService, overview_state: tuple[Income, int, str]
) -> None:
    income, v3, pending = overview_state
    page = models_overview(income.registry, delivery, ADA)
    assert [m.name for m in page.models] == [MODEL]
    summary = page.models[0]
    assert (summary.production, summary.staging, summary.pending_requests) == (
        income.production,
        income.candidate,
        1,
    )
    assert [r.id for r in page.pending] == [pending]
    assert page.may_decide and page.may_request and page.viewer == ADA.user
    selected = page.selected
    assert selected is not None and selected.summary.name == MODEL
    by_version = {row.version.version: row for row in selected.versions}
    assert [row.version.version for row in selected.versions] == [v3, income.candidate, 1]
    assert by_version[income.production].aliases == ["production"]
    assert by_version[income.production].next_stage is None
    assert by_version[income.candidate].aliases == ["staging"]
    # v2 in staging is judged for production; v3 waits on its request for staging
    gates = by_version[income.candidate].gates
    assert gates is not None and gates.stage == "production"
    assert by_version[v3].open_request == pending
    assert by_version[v3].next_stage == "staging"


def test_the_rollout_and_the_request_history_are_there(
    runtime: Any, delivery: DeliveryService, overview_state: tuple[Income, int, str]
) -> None:
    income, v3, _pending = overview_state
    selected = models_overview(income.registry, delivery, ANA, MODEL).selected
    assert selected is not None and selected.rollout is not None
    rollout = selected.rollout.rollout
    assert (rollout.kind, rollout.state, rollout.weight) == ("canary", "running", 10)
    assert rollout.candidate_version == income.candidate
    assert selected.rollout.decisions[0].action == "start"
    statuses = {(r.version, r.to_stage): r.status for r in selected.requests}
    assert statuses[(v3, "staging")] == "pending"
    assert statuses[(income.production, "production")] == "approved"


def test_the_lineage_runs_from_dataset_to_alias_and_rollout(
    runtime: Any, delivery: DeliveryService, overview_state: tuple[Income, int, str]
) -> None:
    income, _v3, _ = overview_state
    selected = models_overview(income.registry, delivery, ANA, MODEL).selected
    assert selected is not None
    graph = selected.lineage
    kinds = {n.id: n.kind for n in graph.nodes}
    edges = {(e.source, e.target) for e in graph.edges}
    versions = income.registry.list_versions(MODEL)
    for v in versions:
        run = f"run:{v.run_id}"
        assert kinds[run] == "run" and (run, f"version:{v.version}") in edges
        digest = (v.dataset or {}).get("digest")
        if digest:
            assert (f"dataset:{digest}", run) in edges
    assert (f"version:{income.production}", "alias:production") in edges
    assert (f"version:{income.candidate}", "alias:staging") in edges
    rollout = [n.id for n in graph.nodes if n.id.startswith("rollout:")]
    assert len(rollout) == 1
    assert (f"version:{income.candidate}", rollout[0]) in edges
    assert (f"version:{income.production}", rollout[0]) in edges
    # laid out left to right: dataset, run, version, deployment
    x = {n.kind: n.x for n in graph.nodes}
    assert x["run"] < x["version"] < x["deployment"]
    assert all(0 < n.x < graph.width and 0 < n.y < graph.height for n in graph.nodes)


def test_a_viewer_without_approval_rights_is_told_so(
    runtime: Any, delivery: DeliveryService, overview_state: tuple[Income, int, str]
) -> None:
    income, _, _ = overview_state
    page = models_overview(income.registry, delivery, ANA)
    assert page.may_request and not page.may_decide
    guest = models_overview(income.registry, delivery, demo.person("gus", "guest"))
    assert not guest.may_request and not guest.may_decide and guest.viewer == "gus"


def test_an_empty_registry_and_an_unknown_model(
    registry: ModelRegistry, delivery: DeliveryService
) -> None:
    page = models_overview(registry, delivery, ADA)
    assert page.models == [] and page.pending == [] and page.selected is None
    with pytest.raises(ModelNotFound):
        models_overview(registry, delivery, ADA, "nope")
