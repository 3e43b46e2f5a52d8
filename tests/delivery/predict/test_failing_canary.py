"""A canary whose version really fails: an MLflow pyfunc model that raises on about one
row in ten (chosen by a hash of the row, so the same rows always fail) is started as a
canary over the API, takes real ``/predict`` traffic, and the controller alone — its
one look at a time, ``POST /api/deployments/{model}/check`` — rolls it back; traffic
returns to production and the ledger holds the verdicts."""

from __future__ import annotations

import asyncio
import textwrap
import warnings
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from bastion.registry.mlflow_store import signature_of
from bastion.registry.service import ModelRegistry
from registry.conftest import events
from serving.conftest import ANA, NAME, Model, promote, records
from serving.test_predict import bearer

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.slow,
    pytest.mark.timeout(240),
    # MLflow asks every PythonModel for type hints; this one's signature is given
    pytest.mark.filterwarnings("ignore:.*Add type hints to the `predict` method:UserWarning"),
]

FLAKY = textwrap.dedent(
    '''
    """The Adult model, except that a row whose hash ends in 0 (about one in ten) raises."""
    import hashlib

    import mlflow.pyfunc
    import mlflow.sklearn
    from mlflow.models import set_model


    def fails(row) -> bool:
        key = "|".join(str(v) for v in row).encode()
        return int(hashlib.sha256(key).hexdigest(), 16) % 10 == 0


    class Flaky(mlflow.pyfunc.PythonModel):
        def load_context(self, context):
            self.inner = mlflow.sklearn.load_model(context.artifacts["inner"])

        def predict(self, context, model_input, params=None):
            for row in model_input.itertuples(index=False):
                if fails(row):
                    raise RuntimeError("flaky: this row fails")
            return self.inner.predict(model_input)


    set_model(Flaky())
    '''
)


def flaky_model(income_v1: Model, root: Path) -> Path:
    """A pyfunc model from code (no pickled class), wrapping income v1's folder."""
    import mlflow.pyfunc

    code = root / "flaky_model.py"
    code.write_text(FLAKY)
    folder = root / "flaky"
    with warnings.catch_warnings():
        # no input example (MLflow would score it at save time) and no type hints
        warnings.simplefilter("ignore", UserWarning)
        mlflow.pyfunc.save_model(
            str(folder),
            python_model=str(code),
            artifacts={"inner": str(income_v1.folder)},
            signature=signature_of(income_v1.trained.test),
            pip_requirements=["mlflow"],
        )
    return folder


def register_flaky(registry: ModelRegistry, folder: Path, metrics: dict[str, float]) -> int:
    run = registry.store.log_model_folder(folder, params={}, metrics=metrics, tags={})
    version = registry.register(ANA, NAME, run_id=run.run_id).version.version
    promote(registry, NAME, version, to="staging")
    return version


async def send(
    client: httpx.AsyncClient, headers: dict[str, str], rows: list[dict[str, Any]], first: int
) -> list[httpx.Response]:
    """One request per row, each from its own user, 50 at a time."""
    answers: list[httpx.Response] = []
    for start in range(0, len(rows), 50):
        answers += await asyncio.gather(
            *(
                client.post(
                    f"/predict/{NAME}",
                    json={"inputs": row},
                    headers=headers | {"user": f"user-{first + start + i}"},
                )
                for i, row in enumerate(rows[start : start + 50])
            )
        )
    return answers


async def test_a_canary_failing_one_request_in_ten_is_rolled_back_by_the_controller_alone(
    client: httpx.AsyncClient,
    runtime: Any,
    key_for: Any,
    registry: ModelRegistry,
    served_v1: int,
    income_v1: Model,
    tmp_path: Path,
) -> None:
    # This test is about errors: the candidate's pyfunc path is slower than v1's, and
    # latency has its own tests, so its tolerance is out of the way here.
    path = runtime.settings.policy_path
    policy = yaml.safe_load(path.read_text())
    policy["delivery"] = {"latency_p95_tolerance": 100, "min_sample": 100}
    path.write_text(yaml.safe_dump(policy))
    assert runtime.policy.reload().error is None
    flaky = register_flaky(registry, flaky_model(income_v1, tmp_path), income_v1.trained.metrics)
    analyst = bearer(key_for("analyst", user="ana"))
    r = await client.post(
        "/api/deployments",
        json={"model": NAME, "version": flaky, "steps": [50, 100], "interval": "10m"},
        headers=analyst,
    )
    assert r.status_code == 201, r.text
    serving = runtime.serving()
    serving.plan.ttl_s = 0.0  # every request reads the rollouts: no waiting out its cache
    rows = records(income_v1.trained.test)
    sent = 0
    looks: list[dict[str, Any]] = []
    by_version: dict[int, list[int]] = {}
    while len(looks) < 6:
        batch = rows[sent : sent + 200]
        for answer in await send(client, analyst, batch, sent):
            body = answer.json()
            if answer.status_code == 200:
                by_version.setdefault(body["version"], []).append(200)
            else:
                assert (answer.status_code, body["error"]["code"]) == (422, "prediction_failed")
                by_version.setdefault(flaky, []).append(422)
        sent += len(batch)
        serving.log.flush()
        r = await client.post(f"/api/deployments/{NAME}/check", headers=analyst)
        assert r.status_code == 200, r.text
        (look,) = r.json()["data"]
        looks.append(look)
        if look["action"] == "rolled_back":
            break
    assert looks[-1]["action"] == "rolled_back", looks
    assert [look["action"] for look in looks[:-1]] == ["held"] * (len(looks) - 1)
    # production never failed; the canary failed about one request in ten
    assert set(by_version[served_v1]) == {200}
    failed = by_version[flaky].count(422) / len(by_version[flaky])
    assert 0.05 < failed < 0.15, failed
    # traffic is back on production: every user, the canary's too
    for answer in await send(client, analyst, rows[sent : sent + 100], 0):
        assert (answer.status_code, answer.json()["version"]) == (200, served_v1)
    r = await client.get(f"/api/deployments/{NAME}", headers=analyst)
    assert (r.json()["state"], r.json()["weight"]) == ("failed", 0)
    # the ledger holds each verdict with its numbers, and the rollback with the reason
    verdicts = [e.details for e in events(runtime, "deploy.analysis")]
    assert verdicts and verdicts[0]["verdict"] == "hold"
    (rollback,) = events(runtime, "deploy.rollback")
    assert rollback.actor == "system:rollout-controller" and rollback.outcome == "failure"
    checks = {c["metric"]: c for c in rollback.details["analysis"]["checks"]}
    assert checks["error_rate"]["verdict"] == "fail"
    assert checks["error_rate"]["numbers"]["rate_base"] == 0.0
    assert "error_rate" in rollback.details["reason"]
