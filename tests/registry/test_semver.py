"""Semantic version labels on model versions: validated, unique per model, rising with
the version, and shown wherever the version is (service, API, CLI, cards, MLflow)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow import MlflowClient

from bastion.registry.errors import InvalidSemver, SemverNotIncreasing, SemverTaken
from bastion.registry.service import ModelRegistry
from bastion.registry.versioning import check_new_label, parse_semver

from .conftest import ANA, Model, bastion, events, variant


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("1.2", "MAJOR.MINOR.PATCH"),
        ("v1.2.0", "without the leading 'v'"),
        ("1.2.0.1", "not a semantic version"),
        ("01.2.0", "not a semantic version"),
        ("1.2.0-", "not a semantic version"),
        ("", "not a semantic version"),
        ("1." + "0" * 200 + ".0", "not a semantic version"),
    ],
)
def test_labels_that_are_not_semantic_versions_are_refused(text: str, says: str) -> None:
    with pytest.raises(InvalidSemver, match=says) as raised:
        parse_semver(text)
    assert raised.value.code == "invalid_semver"


def test_order_is_semver_order_not_text_order() -> None:
    existing = [(1, "1.9.0"), (2, None), (3, "1.10.0-rc.1")]
    assert check_new_label("m", "1.10.0", existing) == "1.10.0"  # a release after its rc
    with pytest.raises(SemverNotIncreasing, match=r"1\.9\.1 is not higher than 1\.10\.0-rc\.1"):
        check_new_label("m", "1.9.1", existing)
    with pytest.raises(SemverTaken, match="already version 1"):
        check_new_label("m", "1.9.0", existing)
    with pytest.raises(SemverNotIncreasing):  # build metadata does not order
        check_new_label("m", "1.10.0-rc.1+build.2", existing)


def _run(registry: ModelRegistry, model: Model, tmp_path: Path, label: str) -> str:
    run = registry.store.log_model_folder(
        variant(model, tmp_path, label), params={}, metrics=model.trained.metrics, tags={}
    )
    return run.run_id


def test_registration_labels_versions_in_rising_order(
    runtime: Any, registry: ModelRegistry, fair_model: Model, tmp_path: Path
) -> None:
    r1 = _run(registry, fair_model, tmp_path, "a")
    v1 = registry.register(ANA, "income", run_id=r1, semver="1.0.0").version
    assert (v1.version, v1.semver) == (1, "1.0.0")
    # The same artifact again: the same version, with or without its label.
    assert not registry.register(ANA, "income", run_id=r1).created
    assert not registry.register(ANA, "income", run_id=r1, semver="1.0.0").created
    with pytest.raises(SemverTaken, match="label is given once"):
        registry.register(ANA, "income", run_id=r1, semver="1.0.1")

    r2 = _run(registry, fair_model, tmp_path, "b")
    for label, error in (
        ("1.0.0", SemverTaken),
        ("0.9.0", SemverNotIncreasing),
        ("1.0", InvalidSemver),
    ):
        with pytest.raises(error):
            registry.register(ANA, "income", run_id=r2, semver=label)
    # Refused before MLflow was touched: no version made, nothing in the ledger.
    assert len(events(runtime, "model.register")) == 1
    assert [m.latest for m in registry.list_models()] == [1]

    v2 = registry.register(ANA, "income", run_id=r2).version  # a label is optional
    v3 = registry.register(
        ANA, "income", run_id=_run(registry, fair_model, tmp_path, "c"), semver="1.10.0"
    ).version
    assert [(v.version, v.semver) for v in registry.list_versions("income")] == [
        (1, "1.0.0"),
        (2, None),
        (3, "1.10.0"),
    ]
    assert v2.semver is None and v3.version == 3
    (summary,) = registry.list_models()
    assert (summary.latest, summary.latest_semver) == (3, "1.10.0")
    # Another model keeps labels of its own.
    other = registry.register(
        ANA, "churn", run_id=_run(registry, fair_model, tmp_path, "d"), semver="1.0.0"
    )
    assert other.version.semver == "1.0.0"

    # Everywhere the version is: ledger, lineage, cards, MLflow.
    (latest_event,) = [
        e for e in events(runtime, "model.register") if e.resource == "model:income/3"
    ]
    assert latest_event.details["semver"] == "1.10.0"
    assert registry.lineage("income", 3).model["semver"] == "1.10.0"
    card = registry.render_card("income", 3, "model", "markdown")
    assert card.startswith("# Model card: income v3 (1.10.0)")
    assert "| semantic version | 1.10.0 |" in card
    assert "(1.10.0)</h1>" in registry.render_card("income", 3, "model", "html")
    tags = MlflowClient(registry.store.tracking_uri).get_model_version("income", "3").tags
    assert tags["bastion.semver"] == "1.10.0"


@pytest.mark.anyio
async def test_the_api_takes_a_label_and_records_the_keys_holder(
    client: httpx.AsyncClient,
    key_for: Any,
    registry: ModelRegistry,
    fair_model: Model,
    tmp_path: Path,
) -> None:
    ana = {"Authorization": f"Bearer {key_for('analyst', user='ana')}"}
    run_id = _run(registry, fair_model, tmp_path, "api")
    r = await client.post(
        "/api/models/income/versions", json={"run_id": run_id, "semver": "2.0"}, headers=ana
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_semver"
    r = await client.post(
        "/api/models/income/versions", json={"run_id": run_id, "semver": "2.0.0"}, headers=ana
    )
    assert r.status_code == 201, r.text
    version = r.json()["version"]
    assert (version["semver"], version["registered_by"]) == ("2.0.0", "ana")
    r = await client.get("/api/models/income", headers=ana)
    assert [v["semver"] for v in r.json()["data"]] == ["2.0.0"]
    r = await client.get("/api/models", headers=ana)
    assert r.json()["data"][0]["latest_semver"] == "2.0.0"
    r = await client.post(
        "/api/models/income/versions",
        json={"run_id": _run(registry, fair_model, tmp_path, "api2"), "semver": "1.0.0"},
        headers=ana,
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "semver_not_increasing"


def test_the_cli_labels_shows_and_says_who_acts(
    tmp_path: Path, mlflow_template: Path, database_url: str, fair_model: Model
) -> None:

    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(mlflow_template, home / "mlflow.db")
    env = {"BASTION_HOME": str(home), "BASTION_DATABASE_URL": database_url}
    assert bastion(env, "db", "upgrade").code == 0
    path = str(variant(fair_model, tmp_path, "cli"))
    r = bastion(env, "models", "register", "income", "--path", path, "--semver", "1.2")
    assert r.code == 2 and "[invalid_semver]" in r.err and "MAJOR.MINOR.PATCH" in r.err
    r = bastion(env, "models", "register", "income", "--path", path, "--semver", "1.2.0")
    assert r.code == 0, r.err
    assert "registered income v1 1.2.0" in r.out
    # No --by and no --key: the login name is used, and the command says so.
    assert "acted as" in r.err and "--by NAME" in r.err
    r = bastion(env, "models", "show", "income", "--json")
    assert [v["semver"] for v in json.loads(r.out)] == ["1.2.0"]
    r = bastion(env, "models", "show", "income", "1")
    assert "income v1 (1.2.0)" in r.out
    r = bastion(env, "models", "list")
    assert "1 (1.2.0)" in r.out
    r = bastion(
        env,
        "models",
        "register",
        "income",
        "--path",
        str(variant(fair_model, tmp_path, "cli2")),
        "--semver",
        "1.3.0",
        "--by",
        "ana",
    )
    assert r.code == 0 and "by ana" in r.out and "acted as" not in r.err
