"""The registry's services on a real MLflow store and the governance database
(SQLite and PostgreSQL): registration, promotion, gates, rollback, verify, cards."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from bastion.audit import EventFilter
from bastion.auth.errors import PermissionDenied
from bastion.registry import demo
from bastion.registry.digests import model_sha256, tree_sha256
from bastion.registry.errors import (
    ArtifactIncomplete,
    ArtifactNotFound,
    GatesFailed,
    InvalidCard,
    InvalidModelName,
    InvalidTransition,
    JustificationRequired,
    MlflowUnavailable,
    NoRollbackTarget,
    OverrideNotAllowed,
    PromotionPending,
    RequestNotPending,
    RunFailed,
    RunNotFound,
    SelfApproval,
)
from bastion.registry.mlflow_store import save_sklearn_model
from bastion.registry.service import ModelRegistry

from .conftest import (
    ADA,
    ANA,
    BOB,
    Model,
    events,
    register,
    set_registry_policy,
    to_production,
    variant,
)


def test_register_from_a_run_records_its_evidence_once(
    runtime: Any, registry: ModelRegistry, adult: Any, baseline_model: Model, tmp_path: Path
) -> None:
    run_id = demo.log_to_mlflow(
        registry.store.tracking_uri, tmp_path / "art", baseline_model.trained, adult, "baseline"
    )
    first = registry.register(ANA, "income", run_id=run_id, code_version="abc123")
    v = first.version
    assert first.created and v.version == 1 and v.stage == "development"
    local = registry.store.local_dir(v.source)
    assert local is not None and v.stored_sha256 == tree_sha256(local)
    assert v.artifact_sha256 == model_sha256(local, "the run's model")
    assert v.dataset is not None
    assert v.dataset["name"] == "uci-adult" and v.dataset["rows"] == len(adult)
    assert v.dataset["digest"] and "sex" in v.dataset["schema"]
    assert v.metrics["roc_auc"] == pytest.approx(baseline_model.trained.metrics["roc_auc"])
    assert v.params["mitigation"] == "none"
    assert v.author == "ana" and v.code_version == "abc123" and v.registered_by == "ana"
    assert v.training_seconds is not None and v.training_seconds >= 0

    again = registry.register(ADA, "income", run_id=run_id)
    assert not again.created and again.version.version == 1
    assert len(events(runtime, "model.register")) == 1
    mv = MlflowClient(registry.store.tracking_uri).get_model_version("income", "1")
    assert mv.tags["bastion.artifact_sha256"] == v.artifact_sha256


def test_register_from_files(
    registry: ModelRegistry, baseline_model: Model, tmp_path: Path
) -> None:
    data = tmp_path / "train.csv"
    baseline_model.trained.train.to_csv(data, index=False)
    pickled = registry.register(
        ANA,
        "income",
        path=baseline_model.pickle,
        dataset_path=data,
        metrics={"roc_auc": 0.9},
        params={"C": 1.0},
    )
    v = pickled.version
    assert pickled.created and v.version == 1
    assert v.metrics == {"roc_auc": 0.9} and v.params == {"C": "1.0"}
    assert v.dataset is not None and v.dataset["rows"] == len(baseline_model.trained.train)
    assert v.dataset["digest_kind"] == "sha256"
    assert not registry.register(ANA, "income", path=baseline_model.pickle).created
    folder = registry.register(ANA, "income", path=baseline_model.folder)
    assert folder.created and folder.version.version == 2
    assert folder.version.artifact_sha256 == model_sha256(baseline_model.folder, "folder")
    assert folder.version.stored_sha256 == tree_sha256(baseline_model.folder)

    with pytest.raises(ArtifactNotFound):
        registry.register(ANA, "income", path=tmp_path / "nope.pkl")
    with pytest.raises(RunNotFound):
        registry.register(ANA, "income", run_id="0" * 32)
    with pytest.raises(InvalidModelName):
        registry.register(ANA, "bad name!", path=baseline_model.pickle)


def test_the_same_model_saved_twice_is_one_version(
    runtime: Any, registry: ModelRegistry, fair_model: Model, tmp_path: Path
) -> None:
    """MLflow stamps a fresh uuid and time into MLmodel on every save; the model is the
    same, and so is its version."""
    first, second = tmp_path / "first", tmp_path / "second"
    save_sklearn_model(fair_model.trained.model, first)
    save_sklearn_model(fair_model.trained.model, second)
    assert (first / "MLmodel").read_text() != (second / "MLmodel").read_text()
    runs = [
        registry.store.log_model_folder(folder, params={}, metrics={}, tags={})
        for folder in (first, second)
    ]
    v1 = registry.register(ANA, "income", run_id=runs[0].run_id)
    again = registry.register(ANA, "income", run_id=runs[1].run_id)
    assert v1.created and not again.created and again.version.version == 1
    assert not registry.register(ANA, "income", path=second).created
    assert len(events(runtime, "model.register")) == 1
    assert registry.verify(ADA).ok


def half_written(model: Model, tmp_path: Path, damage: str) -> Path:
    folder = tmp_path / f"model-{damage}"
    shutil.copytree(model.folder, folder)
    pickled = folder / "model.pkl"
    if damage == "truncated":
        pickled.write_bytes(pickled.read_bytes()[: pickled.stat().st_size // 2])
    elif damage == "missing":
        pickled.unlink()
    elif damage == "mlmodel":
        text = (folder / "MLmodel").read_text()
        (folder / "MLmodel").write_text(text[: len(text) // 3] + "\n  [unclosed")
    return folder


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        ("truncated", "model.pkl is cut short"),
        ("missing", "names model.pkl, which is missing"),
        ("mlmodel", "MLmodel cannot be read"),
    ],
)
def test_a_half_written_model_is_refused(
    runtime: Any,
    registry: ModelRegistry,
    fair_model: Model,
    tmp_path: Path,
    damage: str,
    says: str,
) -> None:
    folder = half_written(fair_model, tmp_path, damage)
    run = registry.store.log_model_folder(folder, params={}, metrics={}, tags={})
    with pytest.raises(ArtifactIncomplete, match=says):
        registry.register(ANA, "income", run_id=run.run_id)
    with pytest.raises(ArtifactIncomplete, match=says):
        registry.register(ANA, "income", path=folder)
    assert registry.list_models() == [] and events(runtime, "model.register") == []
    assert MlflowClient(registry.store.tracking_uri).search_registered_models() == []


def test_a_cut_short_pickle_and_a_failed_run_are_refused(
    registry: ModelRegistry, fair_model: Model, tmp_path: Path
) -> None:
    cut = tmp_path / "cut.joblib"
    cut.write_bytes(fair_model.pickle.read_bytes()[:-40])
    with pytest.raises(ArtifactIncomplete, match="cut short"):
        registry.register(ANA, "income", path=cut)

    client = MlflowClient(registry.store.tracking_uri)
    run = client.create_run(registry.store.experiment_id()).info.run_id
    client.log_artifacts(run, str(fair_model.folder), "model")
    client.set_terminated(run, "FAILED")
    with pytest.raises(RunFailed, match="ended FAILED"):
        registry.register(ANA, "income", run_id=run)
    assert registry.list_models() == []


def test_promotion_needs_gates_and_a_second_person(
    runtime: Any, registry: ModelRegistry, baseline_model: Model, fair_model: Model, tmp_path: Path
) -> None:
    client = MlflowClient(registry.store.tracking_uri)
    v1 = register(registry, fair_model, tmp_path, "v1", evidence=False)

    # Staging needs a model card; the request says so and is refused.
    with pytest.raises(GatesFailed, match="model_card"):
        registry.request_promotion(ANA, "income", v1, "staging", "first release")
    registry.update_card(ANA, "income", v1, "model", demo.MODEL_CARD)
    request = registry.request_promotion(ANA, "income", v1, "staging", "first release")
    assert request.status == "pending" and all(g.passed for g in request.gates)
    assert client.get_registered_model("income").aliases == {}  # nothing moves yet
    with pytest.raises(PromotionPending):
        registry.request_promotion(ANA, "income", v1, "staging", "again")
    with pytest.raises(PermissionDenied):
        registry.approve(ANA, request.id)  # an analyst is no approver
    approved = registry.approve(ADA, request.id, notes="card read")
    assert approved.status == "approved" and approved.decided_by == "ada"
    assert int(client.get_model_version_by_alias("income", "staging").version) == v1
    with pytest.raises(RequestNotPending):
        registry.approve(BOB, request.id)
    with pytest.raises(InvalidTransition):
        registry.request_promotion(ANA, "income", v1, "staging", "already there")

    # Production wants the fairness report and the drift baseline too.
    with pytest.raises(GatesFailed) as refused:
        registry.request_promotion(ANA, "income", v1, "production", "go live")
    assert "fairness" in refused.value.message and "drift_baseline" in refused.value.message
    registry.record_evidence(ANA, "income", v1, "fairness", fair_model.fairness)
    registry.record_evidence(ANA, "income", v1, "drift_baseline", fair_model.baseline)
    gates = registry.check_gates("income", v1, "production")
    assert all(g.passed for g in gates), gates
    request = registry.request_promotion(ANA, "income", v1, "production", "go live")
    registry.approve(ADA, request.id)
    aliases = client.get_registered_model("income").aliases
    assert {k: int(v) for k, v in aliases.items()} == {"production": v1}
    assert registry.get_version("income", v1).stage == "production"

    # The baseline model fails the fairness gate (selection rates by sex).
    v2 = register(registry, baseline_model, tmp_path, "v2")
    to_staging = registry.request_promotion(ANA, "income", v2, "staging", "retrained")
    registry.approve(ADA, to_staging.id)
    with pytest.raises(GatesFailed, match="four_fifths over sex"):
        registry.request_promotion(ANA, "income", v2, "production", "retrained")

    actions = [e.action for e in runtime.audit.page(EventFilter(), limit=200).events]
    for action in (
        "model.promotion.request",
        "model.promotion.approve",
        "model.alias.move",
        "model.evidence",
    ):
        assert action in actions
    denied = [e for e in events(runtime, "model.promotion.request") if e.outcome == "denied"]
    assert len(denied) == 3


def test_gates_are_evaluated_again_at_approval(
    runtime: Any, registry: ModelRegistry, fair_model: Model, tmp_path: Path
) -> None:
    v1 = register(registry, fair_model, tmp_path, "v1")
    request = registry.request_promotion(ANA, "income", v1, "staging", "first")
    set_registry_policy(runtime, {"gates": {"staging": {"metrics": {"roc_auc": {"min": 0.99}}}}})
    with pytest.raises(GatesFailed, match=r"roc_auc = 0\.9\d+, below the minimum 0\.99"):
        registry.approve(ADA, request.id)
    assert registry.get_request(request.id).status == "pending"
    with pytest.raises(JustificationRequired):
        registry.approve(ADA, request.id, overrides={"metric:roc_auc": "ok"})
    done = registry.approve(
        ADA,
        request.id,
        overrides={"metric:roc_auc": "the 0.99 floor is a typo in the draft policy"},
    )
    assert done.status == "approved"
    [gate] = [g for g in done.decision_gates or [] if g.gate == "metric:roc_auc"]
    assert gate.overridden and not gate.passed and gate.overridden_by == "ada"
    [event] = events(runtime, "model.gate.override")
    assert event.details["justification"].startswith("the 0.99 floor")


def test_only_admins_override_and_policy_can_forbid_it(
    runtime: Any, registry: ModelRegistry, fair_model: Model, tmp_path: Path
) -> None:
    v1 = register(registry, fair_model, tmp_path, "v1", evidence=False)
    why = {"model_card": "card is being written by the legal team this week"}
    with pytest.raises(OverrideNotAllowed):
        registry.request_promotion(ANA, "income", v1, "staging", "first", overrides=why)
    request = registry.request_promotion(ADA, "income", v1, "staging", "first", overrides=why)
    assert [g.gate for g in request.gates if g.overridden] == ["model_card"]
    assert request.overrides[0]["by"] == "ada"
    with pytest.raises(SelfApproval):
        registry.approve(ADA, request.id)
    [attempt] = events(runtime, "model.promotion.approve")
    assert attempt.outcome == "denied" and attempt.actor == "user:ada"
    assert attempt.details == {"request_id": request.id, "refused": "self_approval"}
    assert registry.approve(BOB, request.id).status == "approved"

    set_registry_policy(runtime, {"gates": demo.EXAMPLE_GATES, "allow_override": False})
    v2 = register(registry, fair_model, tmp_path, "v2", evidence=False)
    with pytest.raises(OverrideNotAllowed, match="allow_override"):
        registry.request_promotion(ADA, "income", v2, "staging", "second", overrides=why)


def test_reject_records_the_decision(
    runtime: Any, registry: ModelRegistry, fair_model: Model, tmp_path: Path
) -> None:
    v1 = register(registry, fair_model, tmp_path, "v1")
    request = registry.request_promotion(ANA, "income", v1, "staging", "first")
    with pytest.raises(PermissionDenied):
        registry.reject(ANA, request.id, "never mind")
    rejected = registry.reject(ADA, request.id, "wrong training window")
    assert rejected.status == "rejected" and rejected.notes == "wrong training window"
    assert registry.get_version("income", v1).stage == "development"
    refused, decided = events(runtime, "model.promotion.reject")
    assert refused.outcome == "denied" and refused.details["refused"] == "permission_denied"
    assert decided.outcome == "success" and decided.details["notes"] == "wrong training window"


def test_production_rollback_is_immediate_and_admin_only(
    runtime: Any, registry: ModelRegistry, fair_model: Model, tmp_path: Path
) -> None:
    client = MlflowClient(registry.store.tracking_uri)
    v1 = register(registry, fair_model, tmp_path, "v1")
    to_production(registry, "income", v1)
    with pytest.raises(NoRollbackTarget):
        registry.rollback(ADA, "income", "nothing before it")
    v2 = register(registry, fair_model, tmp_path, "v2")
    to_production(registry, "income", v2)
    v3 = register(registry, fair_model, tmp_path, "v3")
    to_production(registry, "income", v3)
    assert registry.get_version("income", v1).stage == "archived"

    with pytest.raises(PermissionDenied):
        registry.rollback(ANA, "income", "latency doubled")
    restored = registry.rollback(ADA, "income", "latency doubled after v3")
    assert restored.version == v2 and restored.stage == "production"
    assert int(client.get_model_version_by_alias("income", "production").version) == v2
    assert registry.get_version("income", v3).stage == "archived"
    denied, event = events(runtime, "model.rollback")
    assert denied.outcome == "denied" and denied.actor == "user:ana"
    assert event.details == {
        "from_version": v3,
        "to_version": v2,
        "reason": "latency doubled after v3",
    }
    # A second rollback goes one step further back, not forward to the bad v3.
    assert registry.rollback(ADA, "income", "v2 shows it too").version == v1
    assert int(client.get_model_version_by_alias("income", "production").version) == v1
    with pytest.raises(NoRollbackTarget):
        registry.rollback(ADA, "income", "and v1 as well")
    kinds = [c.kind for c in registry.lineage("income", v1).stage_changes]
    assert kinds == ["registration", "promotion", "promotion", "replaced", "rollback"]
    done = [e for e in events(runtime, "model.rollback") if e.outcome == "success"]
    assert [e.details["to_version"] for e in done] == [v2, v1]
    # The card tells the story: the gates each approver saw, the rollback and its reason.
    card = registry.render_card("income", v2, "model")
    assert "Gates when ada approved" in card and "`fairness`: pass" in card
    assert "archived → production (rollback, ada: latency doubled after v3)" in card
    html = registry.render_card("income", v2, "model", "html")
    assert "(rollback, ada: latency doubled after v3)" in html


def test_verify_finds_aliases_moved_behind_bastions_back(
    runtime: Any, registry: ModelRegistry, fair_model: Model, tmp_path: Path
) -> None:
    client = MlflowClient(registry.store.tracking_uri)
    v1 = register(registry, fair_model, tmp_path, "v1")
    v2 = register(registry, fair_model, tmp_path, "v2")
    to_production(registry, "income", v1)
    assert registry.verify(ADA).ok

    client.set_registered_model_alias("income", "production", str(v2))
    client.set_registered_model_alias("income", "staging", str(v2))
    found = {(f.problem, f.alias, f.version) for f in registry.verify(ADA).findings}
    assert found == {("alias_moved", "production", v2), ("alias_unexpected", "staging", v2)}

    client.delete_registered_model_alias("income", "production")
    client.delete_registered_model_alias("income", "staging")
    local = registry.store.local_dir(registry.get_version("income", v2).source)
    assert local is not None
    (local / "MLmodel").write_text("tampered")
    report = registry.verify(ADA)
    found = {(f.problem, f.version) for f in report.findings}
    assert found == {("alias_missing", v1), ("artifact_changed", v2)}
    last = events(runtime, "model.verify")[-1]
    assert last.outcome == "failure" and len(last.details["findings"]) == 2


def test_lineage_runs_from_dataset_to_stage_changes(
    registry: ModelRegistry, adult: Any, fair_model: Model, tmp_path: Path
) -> None:
    run_id = demo.log_to_mlflow(
        registry.store.tracking_uri, tmp_path / "art", fair_model.trained, adult, "fair"
    )
    v = registry.register(ANA, "income", run_id=run_id).version.version
    registry.update_card(ANA, "income", v, "model", demo.MODEL_CARD)
    registry.record_evidence(ANA, "income", v, "fairness", fair_model.fairness)
    registry.record_evidence(ANA, "income", v, "drift_baseline", fair_model.baseline)
    to_production(registry, "income", v)
    lineage = registry.lineage("income", v)
    assert lineage.dataset is not None and lineage.dataset["rows"] == len(adult)
    assert lineage.run["run_id"] == run_id
    assert lineage.model["stage"] == "production"
    assert [r.to_stage for r in lineage.requests] == ["staging", "production"]
    assert [c.to_stage for c in lineage.stage_changes] == ["development", "staging", "production"]
    assert [e.kind for e in lineage.evidence] == ["fairness", "drift_baseline"]


def test_cards_keep_what_people_wrote(
    registry: ModelRegistry, fair_model: Model, tmp_path: Path
) -> None:
    v = register(registry, fair_model, tmp_path, "v1")
    first = registry.render_card("income", v, "model", "markdown")
    assert demo.MODEL_CARD["intended_use"] in first
    assert "_Not written yet: Risks to people" in first
    assert "| four_fifths | sex |" in first
    edited = first.replace(
        "_Not written yet: Risks to people, and how they are mitigated._",
        "Trained on 1994 census data; incomes have changed since.",
    )
    again = registry.regenerate_card(ANA, "income", v, "model", edited)
    assert "Trained on 1994 census data; incomes have changed since." in again
    fields = registry.card_fields("income", v, "model")
    assert fields["ethical_considerations"].startswith("Trained on 1994")
    assert fields["limitations"] == demo.MODEL_CARD["limitations"]
    # Regenerated from nothing (the stored fields), the edit is still there.
    assert "incomes have changed since" in registry.render_card("income", v, "model")

    # A section whose marker was deleted would lose its text: refused, naming it.
    cut_end = again.replace(
        "incomes have changed since.\n<!-- bastion:end -->", "incomes have changed since."
    )
    with pytest.raises(InvalidCard, match="'ethical_considerations' has lost its end marker"):
        registry.regenerate_card(ANA, "income", v, "model", cut_end.replace("1994", "1996"))
    cut_start = again.replace("<!-- bastion:edit owners -->\n", "")
    with pytest.raises(InvalidCard, match="lost its start marker"):
        registry.regenerate_card(ANA, "income", v, "model", cut_start)
    assert registry.card_fields("income", v, "model")["ethical_considerations"].startswith(
        "Trained on 1994"
    )
    with pytest.raises(InvalidCard, match="card marker"):
        registry.update_card(ANA, "income", v, "model", {"owners": "x <!-- bastion:end --> y"})

    registry.update_card(ANA, "income", v, "model", {"owners": "<script>alert(1)</script>"})
    html = registry.render_card("income", v, "model", "html")
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    data = registry.render_card("income", v, "data", "markdown")
    assert "Data card" in data and "<!-- bastion:edit known_biases -->" in data


def test_register_a_model_logged_with_mlflow_log_model(
    registry: ModelRegistry, fair_model: Model, tmp_path: Path
) -> None:
    """MLflow 3's logged models (``log_model(name=...)``), registered while the process's
    global tracking URI points elsewhere, as in a server that never sets it."""
    import mlflow
    import mlflow.sklearn

    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(registry.store.tracking_uri)
    try:
        experiment = MlflowClient(registry.store.tracking_uri).create_experiment(
            "logged", artifact_location=(tmp_path / "logged").as_uri()
        )
        with mlflow.start_run(experiment_id=experiment) as run:
            mlflow.log_metrics(fair_model.trained.metrics)
            mlflow.sklearn.log_model(
                fair_model.trained.model,
                name="model",
                serialization_format="cloudpickle",
                pip_requirements=["scikit-learn"],
            )
    finally:
        mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'elsewhere.db'}")
    try:
        v = registry.register(ANA, "income", run_id=run.info.run_id).version
        assert v.source.startswith("models:/m-") and v.metrics["roc_auc"] > 0.85
        local = registry.store.local_dir(v.source)
        assert local is not None and (local / "MLmodel").is_file()
        assert v.stored_sha256 == tree_sha256(local)
        assert registry.verify(ADA).ok
    finally:
        mlflow.set_tracking_uri(before)


def test_two_approvers_at_once_move_the_alias_once(
    runtime: Any, registry: ModelRegistry, fair_model: Model, tmp_path: Path
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from bastion.errors import BastionError

    v1 = register(registry, fair_model, tmp_path, "v1")
    request = registry.request_promotion(ANA, "income", v1, "staging", "first")

    def decide(who: Any) -> str:
        try:
            return registry.approve(who, request.id).status
        except BastionError as exc:
            return exc.code

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(decide, [ADA, BOB]))
    assert outcomes == ["approved", "request_not_pending"]
    moves = events(runtime, "model.alias.move")
    assert len(moves) == 1
    assert [c.kind for c in registry.lineage("income", v1).stage_changes] == [
        "registration",
        "promotion",
    ]


@pytest.mark.parametrize("source", ["run", "path"])
def test_concurrent_registrations_of_one_model_make_one_version(
    runtime: Any, registry: ModelRegistry, fair_model: Model, tmp_path: Path, source: str
) -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    folder = variant(fair_model, tmp_path, "v1")
    run = registry.store.log_model_folder(folder, params={}, metrics={}, tags={})
    start = threading.Barrier(4)

    def register_it(who: Any) -> Any:
        start.wait()
        if source == "run":
            return registry.register(who, "income", run_id=run.run_id)
        return registry.register(who, "income", path=folder)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(register_it, [ANA, ADA, BOB, ANA]))
    assert sorted(r.created for r in results) == [False, False, False, True]
    assert {r.version.version for r in results} == {1}
    client = MlflowClient(registry.store.tracking_uri)
    assert [int(v.version) for v in client.search_model_versions("name='income'")] == [1]
    # A model given as files is logged as a run once, not once per caller.
    runs = client.search_runs([registry.store.experiment_id()])
    assert len(runs) == (2 if source == "path" else 1)
    assert len(events(runtime, "model.register")) == 1
    assert [v.version for v in registry.list_versions("income")] == [1]


def test_an_approval_that_mlflow_refused_is_not_left_stuck(
    runtime: Any, registry: ModelRegistry, fair_model: Model, tmp_path: Path
) -> None:
    """MLflow fails while the alias moves (here: the version was deleted in MLflow behind
    Bastion's back). Whether the alias moved is for MLflow to say: the request is left
    for the next decision or verify to settle, at once rather than after the bound."""
    v1 = register(registry, fair_model, tmp_path, "v1")
    request = registry.request_promotion(ANA, "income", v1, "staging", "first")
    MlflowClient(registry.store.tracking_uri).delete_model_version("income", str(v1))
    with pytest.raises(MlflowUnavailable, match="move the alias 'staging'"):
        registry.approve(ADA, request.id)
    assert registry.get_request(request.id).status == "approving"
    [settled] = registry.verify(BOB, artifacts=False).settled
    assert (settled.request_id, settled.status) == (request.id, "pending")
    assert "did not take effect (the alias 'staging' is not set)" in settled.detail
    assert registry.get_request(request.id).status == "pending"
    assert registry.get_version("income", v1).stage == "development"
    [recovered] = events(runtime, "model.promotion.recover")
    assert (
        recovered.details["attempt"]
        == events(runtime, "model.promotion.approve")[-1].details["attempt"]
    )


def test_an_approval_stuck_by_an_earlier_bastion_is_settled(
    runtime: Any, registry: ModelRegistry, fair_model: Model, tmp_path: Path
) -> None:
    """Before attempts had ids, a process that died mid-approval left its request
    'approving' for good; such a request is settled like any other."""
    import sqlalchemy as sa

    v1 = register(registry, fair_model, tmp_path, "v1")
    request = registry.request_promotion(ANA, "income", v1, "staging", "first")
    # What that Bastion left: the request claimed, its approval and alias move in the
    # ledger (no attempt id), the alias moved in MLflow, and nothing more.
    with runtime.db.session() as session:
        session.execute(
            sa.text("UPDATE registry_requests SET status = 'approving' WHERE id = :id"),
            {"id": request.id},
        )
    gates = [g.model_dump() for g in registry.check_gates("income", v1, "staging")]
    registry._event(
        ADA,
        "model.promotion.approve",
        f"model:income/{v1}",
        {"request_id": request.id, "to": "staging", "notes": "ok", "gates": gates},
    )
    MlflowClient(registry.store.tracking_uri).set_registered_model_alias(
        "income", "staging", str(v1)
    )
    # Nobody holds it (no lease was ever taken): settled at once, whatever the bound.
    [settled] = registry.verify(BOB, recover_after=3600).settled
    assert (settled.status, settled.approver) == ("approved", "ada")
    done = registry.get_request(request.id)
    assert done.status == "approved" and done.decided_by == "ada" and done.notes == "ok"
    assert registry.get_version("income", v1).stage == "staging"
    assert registry.verify(BOB).ok
