"""``POST /predict/{model}`` on the Adult income model, as an application calls it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from bastion.registry.service import ModelRegistry

from .conftest import NAME, Model, records, set_policy

pytestmark = pytest.mark.anyio


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def analyst(key_for: Any) -> dict[str, str]:
    return bearer(key_for("analyst"))


async def test_predictions_equal_mlflows_own_pyfunc(
    client: httpx.AsyncClient, analyst: dict[str, str], served_v1: int, income_v1: Model
) -> None:
    import mlflow.pyfunc

    rows = income_v1.trained.test.head(300)
    expected = mlflow.pyfunc.load_model(str(income_v1.folder)).predict(rows).tolist()
    r = await client.post(f"/predict/{NAME}", json={"inputs": records(rows)}, headers=analyst)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["predictions"] == expected
    assert (body["model"], body["version"], body["alias"]) == (NAME, served_v1, "production")
    assert len(body["row_ids"]) == 300 and body["row_ids"][0] == f"{body['request_id']}.0"


async def test_the_three_payload_shapes_answer_alike(
    client: httpx.AsyncClient, analyst: dict[str, str], served_v1: int, income_v1: Model
) -> None:
    rows = records(income_v1.trained.test.head(5))
    columns = list(rows[0])
    split = {"columns": columns, "data": [[row[c] for c in columns] for row in rows]}
    answers = []
    for body in ({"inputs": rows}, {"dataframe_records": rows}, {"dataframe_split": split}):
        r = await client.post(f"/predict/{NAME}", json=body, headers=analyst)
        assert r.status_code == 200, r.text
        answers.append(r.json()["predictions"])
    one = await client.post(f"/predict/{NAME}", json={"inputs": rows[0]}, headers=analyst)
    assert answers[0] == answers[1] == answers[2]
    assert one.json()["predictions"] == answers[0][:1] and "row_ids" not in one.json()


ROW = {
    "age": 39,
    "education_num": 13,
    "capital_gain": 2174,
    "capital_loss": 0,
    "hours_per_week": 40,
    "workclass": "State-gov",
    "marital_status": "Never-married",
    "occupation": "Adm-clerical",
    "relationship": "Not-in-family",
    "race": "White",
    "sex": "Male",
}


def without(key: str) -> dict[str, Any]:
    return {k: v for k, v in ROW.items() if k != key}


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"inputs": without("age")}, "inputs[0].age", "missing"),
        ({"inputs": ROW | {"age": None}}, "inputs[0].age", "null"),
        ({"inputs": ROW | {"age": "39"}}, "inputs[0].age", "integer"),
        ({"inputs": ROW | {"age": 39.5}}, "inputs[0].age", "integer"),
        ({"inputs": ROW | {"age": True}}, "inputs[0].age", "integer"),
        ({"inputs": ROW | {"sex": 1}}, "inputs[0].sex", "string"),
        ({"inputs": ROW | {"zip": "10001"}}, "inputs[0].zip", "not in the model's signature"),
        ({"inputs": [ROW, without("race")]}, "inputs[1].race", "missing"),
        ({"inputs": []}, "inputs", "no rows"),
        ({"inputs": "x"}, "inputs", "record"),
        ({"inputs": [ROW, 3]}, "inputs[1]", "JSON object"),
        ({"rows": [ROW]}, "body", "inputs"),
        ({"inputs": ROW, "extra": 1}, "extra", "unknown"),
        (
            {"dataframe_split": {"columns": ["age"], "data": [[1, 2]]}},
            "dataframe_split.data[0]",
            "1 values",
        ),
    ],
)
async def test_a_payload_that_breaks_the_signature_is_a_422_naming_the_field(
    client: httpx.AsyncClient,
    analyst: dict[str, str],
    served_v1: int,
    body: dict[str, Any],
    param: str,
    words: str,
) -> None:
    r = await client.post(f"/predict/{NAME}", json=body, headers=analyst)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_payload"
    assert error["param"] == param
    assert words in error["message"]


async def test_optional_features_may_be_null_or_absent(
    client: httpx.AsyncClient, analyst: dict[str, str], served_v1: int
) -> None:
    # workclass and occupation hold missing values in the training data
    for row in (ROW | {"workclass": None}, without("occupation")):
        r = await client.post(f"/predict/{NAME}", json={"inputs": row}, headers=analyst)
        assert r.status_code == 200, r.text


async def test_a_body_that_is_not_json_is_a_400(
    client: httpx.AsyncClient, analyst: dict[str, str], served_v1: int
) -> None:
    r = await client.post(
        f"/predict/{NAME}",
        content=b"{not json",
        headers=analyst | {"content-type": "application/json"},
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"


async def test_a_model_nothing_serves_is_a_404(
    client: httpx.AsyncClient, analyst: dict[str, str], served_v1: int
) -> None:
    r = await client.post("/predict/nobody", json={"inputs": ROW}, headers=analyst)
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_served"
    r = await client.post(f"/predict/{NAME}?alias=staging", json={"inputs": ROW}, headers=analyst)
    assert r.status_code == 404 and "staging" in r.json()["error"]["message"]
    r = await client.post(f"/predict/{NAME}?version=99", json={"inputs": ROW}, headers=analyst)
    assert r.status_code == 404


async def test_guests_are_refused_unless_the_policy_lets_them(
    client: httpx.AsyncClient, runtime: Any, key_for: Any, served_v1: int
) -> None:
    guest = bearer(key_for("guest"))
    r = await client.post(f"/predict/{NAME}", json={"inputs": ROW}, headers=guest)
    assert r.status_code == 403
    set_policy(runtime, "roles", {"guest": {"permissions": ["llm:use", "models:predict"]}})
    r = await client.post(f"/predict/{NAME}", json={"inputs": ROW}, headers=guest)
    assert r.status_code == 200, r.text
    # ... the version in production only
    r = await client.post(f"/predict/{NAME}?version=1", json={"inputs": ROW}, headers=guest)
    assert r.status_code == 403 and r.json()["error"]["code"] == "pin_not_allowed"


async def test_an_analyst_may_pin_a_version_or_an_alias(
    client: httpx.AsyncClient,
    analyst: dict[str, str],
    registry: ModelRegistry,
    served_v1: int,
    income_v2: Model,
) -> None:
    from .conftest import promote, register

    v2 = register(registry, income_v2)
    promote(registry, NAME, v2, "staging")
    r = await client.post(f"/predict/{NAME}?version={v2}", json={"inputs": ROW}, headers=analyst)
    assert (r.json()["version"], r.json()["alias"]) == (v2, None)
    r = await client.post(f"/predict/{NAME}?alias=staging", json={"inputs": ROW}, headers=analyst)
    assert (r.json()["version"], r.json()["alias"]) == (v2, "staging")
    r = await client.post(f"/predict/{NAME}", json={"inputs": ROW}, headers=analyst)
    assert (r.json()["version"], r.json()["alias"]) == (served_v1, "production")


async def test_explain_adds_each_features_shap_contribution(
    client: httpx.AsyncClient, analyst: dict[str, str], served_v1: int
) -> None:
    rows = [ROW, ROW | {"age": 60, "capital_gain": 15000}]
    r = await client.post(f"/predict/{NAME}?explain=true", json={"inputs": rows}, headers=analyst)
    assert r.status_code == 200, r.text
    explanations = r.json()["explanations"]
    assert len(explanations) == 2
    assert set(explanations[0]["contributions"]) == set(ROW)
    # the richer, older person leans further towards >50K through capital_gain
    assert (
        explanations[1]["contributions"]["capital_gain"]
        > explanations[0]["contributions"]["capital_gain"]
    )


async def test_every_call_is_counted_in_prometheus(
    client: httpx.AsyncClient, analyst: dict[str, str], admin_headers: Any, served_v1: int
) -> None:
    await client.post(f"/predict/{NAME}", json={"inputs": ROW}, headers=analyst)
    await client.post(f"/predict/{NAME}", json={"inputs": without("age")}, headers=analyst)
    text = (await client.get("/metrics", headers=admin_headers)).text
    assert f'bastion_predictions_total{{arm="production",model="{NAME}",outcome="ok"}} 1.0' in text
    assert f'bastion_prediction_errors_total{{code="invalid_payload",model="{NAME}"}} 1.0' in text
    assert f'bastion_serving_version{{alias="production",model="{NAME}"}} {served_v1}.0' in text
    assert "bastion_prediction_duration_seconds_bucket" in text


async def test_concurrent_requests_scored_together_each_get_their_own_rows(
    client: httpx.AsyncClient, analyst: dict[str, str], served_v1: int, income_v1: Model
) -> None:
    import asyncio

    import mlflow.pyfunc

    frame = income_v1.trained.test.head(40)
    expected = mlflow.pyfunc.load_model(str(income_v1.folder)).predict(frame).tolist()
    rows = records(frame)
    bodies: list[Any] = [{"inputs": row} for row in rows]
    bodies[7] = {"inputs": ROW | {"age": "x"}}  # one bad request among them
    answers = await asyncio.gather(
        *(client.post(f"/predict/{NAME}", json=body, headers=analyst) for body in bodies)
    )
    assert answers[7].status_code == 422
    got = [a.json()["predictions"][0] for i, a in enumerate(answers) if i != 7]
    assert got == [p for i, p in enumerate(expected) if i != 7]
    ids = {a.json().get("request_id") or a.json()["error"]["request_id"] for a in answers}
    assert len(ids) == 40


async def test_an_alias_moved_through_the_api_answers_the_very_next_request(
    client: httpx.AsyncClient,
    runtime: Any,
    key_for: Any,
    registry: ModelRegistry,
    served_v1: int,
    income_v2: Model,
) -> None:
    from .conftest import register

    # An hour's TTL: only the registry's in-process notice can explain the pickup.
    set_policy(runtime, "serving", {"alias_ttl_s": 3600})
    analyst = bearer(key_for("analyst", user="ana"))
    admin = bearer(key_for("admin", user="ada"))
    r = await client.post(f"/predict/{NAME}", json={"inputs": ROW}, headers=analyst)
    assert r.json()["version"] == served_v1
    v2 = register(registry, income_v2)
    for stage in ("staging", "production"):
        r = await client.post(
            f"/api/models/{NAME}/versions/{v2}/promotions",
            json={"to": stage, "reason": "v2 is better"},
            headers=analyst,
        )
        assert r.status_code == 201, r.text
        r = await client.post(
            f"/api/promotions/{r.json()['id']}/approve", json={"notes": "ok"}, headers=admin
        )
        assert r.status_code == 200 and r.json()["status"] == "approved", r.text
    r = await client.post(f"/predict/{NAME}", json={"inputs": ROW}, headers=analyst)
    assert (r.json()["version"], r.json()["alias"]) == (v2, "production")
    r = await client.post(
        f"/api/models/{NAME}/rollback", json={"reason": "v2 misbehaves"}, headers=admin
    )
    assert r.status_code == 200, r.text
    r = await client.post(f"/predict/{NAME}", json={"inputs": ROW}, headers=analyst)
    assert r.json()["version"] == served_v1
