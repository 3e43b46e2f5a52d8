"""``POST /predict/{model}`` on the Adult income model, as an application calls it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from .conftest import NAME, Model, records

pytestmark = pytest.mark.anyio


async def test_predictions_equal_mlflows_own_pyfunc(
    client: httpx.AsyncClient, key_for: Any, served_v1: int, income_v1: Model
) -> None:
    import mlflow.pyfunc

    rows = income_v1.trained.test.head(200)
    expected = mlflow.pyfunc.load_model(str(income_v1.folder)).predict(rows).tolist()
    headers = {"Authorization": f"Bearer {key_for('analyst')}"}
    r = await client.post(f"/predict/{NAME}", json={"inputs": records(rows)}, headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["predictions"] == expected
    assert (body["model"], body["version"], body["alias"]) == (NAME, served_v1, "production")
    assert len(body["row_ids"]) == 200 and body["row_ids"][0] == f"{body['request_id']}.0"
