"""The prediction log, labels, logged explanations, and the model cache's swaps, on
SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from bastion.registry.service import ModelRegistry
from bastion.serving.models import PredictionLabelRow, PredictionRow
from bastion.serving.routing import Route, Routing

from .conftest import NAME, Model, promote, records, register, set_policy
from .test_predict import ROW, bearer

pytestmark = pytest.mark.anyio


@pytest.fixture
def analyst(key_for: Any) -> dict[str, str]:
    return bearer(key_for("analyst"))


def logged(runtime: Any) -> list[PredictionRow]:
    runtime.serving().log.flush()
    with runtime.db.session() as session:
        rows = list(session.scalars(select(PredictionRow).order_by(PredictionRow.id)))
        session.expunge_all()
    return rows


def cli(runtime: Any, *args: str) -> Any:
    from bastion.cli.main import _register, app

    _register()
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("BASTION_")}
    env |= {
        "BASTION_HOME": str(runtime.settings.home),
        "BASTION_DATABASE_URL": runtime.settings.resolved_database_url,
    }
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


async def test_every_prediction_is_logged_with_its_arm_features_and_score(
    client: httpx.AsyncClient, runtime: Any, analyst: dict[str, str], served_v1: int
) -> None:
    r = await client.post(f"/predict/{NAME}", json={"inputs": [ROW, ROW]}, headers=analyst)
    bad = await client.post(f"/predict/{NAME}", json={"inputs": {"age": 3}}, headers=analyst)
    assert bad.status_code == 422
    rows = logged(runtime)
    ok = [row for row in rows if row.outcome == "ok"]
    assert [row.request_id for row in ok] == r.json()["row_ids"]
    assert all(row.arm == "production" and row.version == served_v1 for row in rows)
    assert ok[0].features == ROW and ok[0].prediction == r.json()["predictions"][0]
    assert ok[0].score is not None and 0 <= ok[0].score <= 1
    assert len(ok[0].features_digest) == 64 and ok[0].features_digest == ok[1].features_digest
    assert ok[0].created_at.tzinfo is not None
    (error,) = [row for row in rows if row.outcome == "error"]
    assert error.error_code == "invalid_payload" and error.features is None
    assert error.request_id == bad.json()["error"]["request_id"]


@pytest.mark.parametrize(
    ("rule", "kept"),
    [("full", ROW), (["age", "sex"], {"age": 39, "sex": "Male"}), ("digest", None)],
)
async def test_the_policy_decides_what_the_log_keeps_of_the_features(
    client: httpx.AsyncClient,
    runtime: Any,
    analyst: dict[str, str],
    served_v1: int,
    rule: Any,
    kept: Any,
) -> None:
    set_policy(runtime, "serving", {"models": {NAME: {"features": rule}}})
    r = await client.post(f"/predict/{NAME}", json={"inputs": ROW}, headers=analyst)
    (row,) = logged(runtime)
    assert row.features == kept
    explained = await client.get(
        f"/predict/{NAME}/explain/{r.json()['request_id']}", headers=analyst
    )
    if rule == "full":
        assert explained.status_code == 200, explained.text
        assert set(explained.json()["explanations"][0]["contributions"]) == set(ROW)
    else:
        assert explained.status_code == 409
        assert explained.json()["error"]["code"] == "features_not_kept"


async def test_a_logged_explanation_equals_the_one_given_with_the_answer(
    client: httpx.AsyncClient, runtime: Any, analyst: dict[str, str], served_v1: int
) -> None:
    r = await client.post(f"/predict/{NAME}?explain=true", json={"inputs": ROW}, headers=analyst)
    logged(runtime)
    again = await client.get(f"/predict/{NAME}/explain/{r.json()['request_id']}", headers=analyst)
    first = r.json()["explanations"][0]["contributions"]
    second = again.json()["explanations"][0]["contributions"]
    assert first == pytest.approx(second)
    missing = await client.get(f"/predict/{NAME}/explain/nope", headers=analyst)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "prediction_not_found"


async def test_labels_attach_by_request_id_over_the_api_and_the_cli(
    client: httpx.AsyncClient, runtime: Any, analyst: dict[str, str], served_v1: int, tmp_path: Path
) -> None:
    r = await client.post(f"/predict/{NAME}", json={"inputs": [ROW] * 3}, headers=analyst)
    ids = r.json()["row_ids"]
    logged(runtime)
    body = {"labels": [{"request_id": ids[0], "label": 1}, {"request_id": "later", "label": 0}]}
    added = await client.post("/api/labels", json=body, headers=analyst)
    assert added.json() == {"added": 2, "matched": 1, "unmatched": 1}
    (tmp_path / "labels.csv").write_text(f"request_id,label\n{ids[1]},0\n{ids[0]},0\n")
    (tmp_path / "labels.jsonl").write_text(json.dumps({"request_id": ids[2], "label": 1}) + "\n")
    for name in ("labels.csv", "labels.jsonl"):
        result = cli(runtime, "labels", "add", str(tmp_path / name))
        assert result.exit_code == 0, result.output
    with runtime.db.session() as session:
        labels = {r.request_id: r.label for r in session.scalars(select(PredictionLabelRow))}
    assert labels == {ids[0]: 0, ids[1]: 0, ids[2]: 1, "later": 0}
    (tmp_path / "bad.csv").write_text("id,y\nx,1\n")
    result = cli(runtime, "labels", "add", str(tmp_path / "bad.csv"))
    assert result.exit_code == 2 and "invalid_labels" in result.output
    guest = bearer(runtime.keys.create(_system(), user="g", role="guest").secret)
    assert (await client.post("/api/labels", json=body, headers=guest)).status_code == 403


async def test_a_prediction_just_answered_is_found_by_labels_and_explain_though_the_log_is_slow(
    client: httpx.AsyncClient,
    runtime: Any,
    analyst: dict[str, str],
    served_v1: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The log is written by a background thread; a slow database must not make a
    label sent straight after its prediction count as unmatched."""
    from bastion.serving.log import PredictionLog

    write = PredictionLog._write

    def slow_write(self: PredictionLog, group: list[dict[str, Any]]) -> None:
        import time

        time.sleep(0.3)  # a busy database, not a timing under test
        write(self, group)

    monkeypatch.setattr(PredictionLog, "_write", slow_write)
    for rows in (1, 7, 50):
        r = await client.post(f"/predict/{NAME}", json={"inputs": [ROW] * rows}, headers=analyst)
        ids = r.json().get("row_ids", [r.json()["request_id"]])  # one row: its request id
        body = {"labels": [{"request_id": i, "label": n % 2} for n, i in enumerate(ids)]}
        added = await client.post("/api/labels", json=body, headers=analyst)
        assert added.json() == {"added": rows, "matched": rows, "unmatched": 0}
    r = await client.post(f"/predict/{NAME}", json={"inputs": [ROW] * 3}, headers=analyst)
    explained = await client.get(
        f"/predict/{NAME}/explain/{r.json()['row_ids'][2]}", headers=analyst
    )
    assert explained.status_code == 200, explained.text


def _system() -> Any:
    from bastion.auth.principal import SYSTEM

    return SYSTEM


async def test_an_alias_move_is_picked_up_without_a_restart(
    client: httpx.AsyncClient,
    runtime: Any,
    analyst: dict[str, str],
    registry: ModelRegistry,
    served_v1: int,
    income_v2: Model,
) -> None:
    set_policy(runtime, "serving", {"alias_ttl_s": 0.001})
    rows = records(income_v2.trained.test.head(50))
    r = await client.post(f"/predict/{NAME}", json={"inputs": rows}, headers=analyst)
    assert r.json()["version"] == served_v1
    v2 = register(registry, income_v2)
    promote(registry, NAME, v2)
    r = await client.post(f"/predict/{NAME}", json={"inputs": rows}, headers=analyst)
    assert r.json()["version"] == v2
    assert (
        r.json()["predictions"]
        == income_v2.trained.model.predict(income_v2.trained.test.head(50)).tolist()
    )
    registry.rollback(_admin(), NAME, "back to v1")
    r = await client.post(f"/predict/{NAME}", json={"inputs": rows}, headers=analyst)
    assert r.json()["version"] == served_v1


def _admin() -> Any:
    from .conftest import ADA

    return ADA


async def test_a_version_that_fails_to_load_is_refused_and_the_old_one_keeps_serving(
    client: httpx.AsyncClient,
    runtime: Any,
    analyst: dict[str, str],
    registry: ModelRegistry,
    served_v1: int,
    income_v2: Model,
) -> None:
    set_policy(runtime, "serving", {"alias_ttl_s": 0.001})
    assert (await client.post(f"/predict/{NAME}", json={"inputs": ROW}, headers=analyst)).json()[
        "version"
    ] == served_v1
    v2 = register(registry, income_v2)
    folder = runtime.serving().cache.source.model_dir(NAME, v2)
    (folder / "model.pkl").write_bytes(b"not a pickle")
    promote(registry, NAME, v2)
    r = await client.post(f"/predict/{NAME}", json={"inputs": ROW}, headers=analyst)
    assert r.status_code == 200 and r.json()["version"] == served_v1
    r = await client.post(f"/predict/{NAME}?version={v2}", json={"inputs": ROW}, headers=analyst)
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "model_load_failed"
    assert f"v{v2} could not be loaded" in r.json()["error"]["message"]


class Plan:
    """A rollout's plan as the delivery package would give it: users named ``canary-*``
    go to v2, everyone's rows are also scored by v2 in the shadow."""

    def __init__(self, production: int, candidate: int) -> None:
        self.production, self.candidate = production, candidate
        self.keys: list[str] = []

    def route(self, model: str, route_key: str) -> Routing | None:
        self.keys.append(route_key)
        if route_key.startswith("canary-"):
            return Routing(Route(self.candidate, "canary", None))
        return Routing(
            Route(self.production, "production", "production"),
            shadows=(Route(self.candidate, "shadow", None),),
        )


async def test_a_traffic_plan_routes_by_key_and_shadows_are_logged_never_returned(
    client: httpx.AsyncClient,
    runtime: Any,
    analyst: dict[str, str],
    registry: ModelRegistry,
    served_v1: int,
    income_v2: Model,
) -> None:
    v2 = register(registry, income_v2)
    plan = Plan(served_v1, v2)
    runtime.serving().plan = plan
    canary = await client.post(
        f"/predict/{NAME}", json={"inputs": ROW}, headers=analyst | {"user": "canary-7"}
    )
    assert canary.json()["version"] == v2
    keyed = await client.post(
        f"/predict/{NAME}",
        json={"inputs": ROW},
        headers=analyst | {"x-bastion-route-key": "u-1", "user": "canary-7"},
    )
    plain = await client.post(f"/predict/{NAME}", json={"inputs": ROW}, headers=analyst)
    assert keyed.json()["version"] == plain.json()["version"] == served_v1
    assert set(keyed.json()) == {"predictions", "model", "version", "alias", "request_id"}
    assert plan.keys == ["canary-7", "u-1", plain.json()["request_id"]]
    rows = {row.request_id: row for row in logged(runtime)}
    assert rows[canary.json()["request_id"]].arm == "canary"
    assert rows[keyed.json()["request_id"]].arm == "production"
    shadow = rows[f"{keyed.json()['request_id']}/shadow/v{v2}"]
    assert (shadow.arm, shadow.version, shadow.outcome) == ("shadow", v2, "ok")
    assert shadow.route_key_digest == rows[keyed.json()["request_id"]].route_key_digest
    assert shadow.route_key_digest not in (None, "u-1")


def _log_row(request_id: str) -> dict[str, Any]:
    from bastion.db import utcnow

    return {
        "request_id": request_id,
        "model": NAME,
        "version": 1,
        "arm": "production",
        "created_at": utcnow(),
        "latency_ms": 1.0,
        "outcome": "ok",
        "error_code": None,
        "prediction": 1,
        "score": 0.9,
        "features": None,
        "features_digest": "d" * 64,
        "route_key_digest": None,
    }


def test_rows_queued_together_are_written_as_one_group_and_none_is_lost_on_close(
    runtime: Any,
) -> None:
    """Requests do not wake the writer row by row: what queues while it lingers is one
    insert, one transaction; flush and close end the linger."""
    from bastion.serving.log import PredictionLog

    writer = PredictionLog(runtime.db, linger_s=3600)  # only flush and close end it here
    for i in range(20):
        writer.append(_log_row(f"group-{i}"))
    assert writer.flush(30)
    assert (writer.written, writer.groups, writer.dropped) == (20, 1, 0)
    for i in range(20, 25):
        writer.append(_log_row(f"group-{i}"))
    writer.close()
    assert (writer.written, writer.groups) == (25, 2)
    with runtime.db.session() as session:
        ids = set(session.scalars(select(PredictionRow.request_id)))
    assert ids == {f"group-{i}" for i in range(25)}


def test_the_writer_writes_on_its_own_once_the_linger_is_over(runtime: Any) -> None:
    import time

    from bastion.serving.log import PredictionLog

    writer = PredictionLog(runtime.db, linger_s=0.01)
    try:
        for i in range(3):
            writer.append(_log_row(f"alone-{i}"))
        deadline = time.monotonic() + 60  # a bound on a busy machine, not a figure
        while writer.written < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert writer.written == 3  # no flush asked for it
    finally:
        writer.close()
