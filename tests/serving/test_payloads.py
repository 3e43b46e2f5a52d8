"""Malformed payloads, drawn by hypothesis: each is answered or refused with a 4xx naming
the field, never a server error — checked on the real income model."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.serving import payloads
from bastion.serving.cache import Served, load_served
from bastion.serving.errors import InvalidPayload

from .conftest import Model
from .test_predict import ROW

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def broken_rows(draw: st.DrawFn) -> dict[str, Any]:
    row = dict(ROW)
    for key in draw(st.lists(st.sampled_from(sorted(ROW)), max_size=3, unique=True)):
        action = draw(st.sampled_from(["drop", "retype"]))
        if action == "drop":
            row.pop(key)
        else:
            row[key] = draw(json_values)
    for key, value in draw(st.dictionaries(st.text(max_size=12), json_values, max_size=2)).items():
        row[key] = value
    return row


bodies = st.one_of(
    broken_rows().map(lambda r: {"inputs": r}),
    st.lists(broken_rows(), max_size=4).map(lambda rs: {"inputs": rs}),
    st.lists(broken_rows(), max_size=3).map(lambda rs: {"dataframe_records": rs}),
    st.builds(
        lambda cols, data: {"dataframe_split": {"columns": cols, "data": data}},
        st.lists(st.sampled_from([*ROW, "zip"]), max_size=12),
        st.lists(st.lists(json_scalars, max_size=12), max_size=3),
    ),
    json_values,
    st.dictionaries(st.sampled_from(["inputs", "dataframe_split", "x"]), json_values, max_size=2),
)


@pytest.fixture(scope="module")
def served(income_v1: Model) -> Served:
    return load_served("income", 1, income_v1.folder)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies)
def test_a_malformed_payload_is_refused_with_a_4xx_naming_the_field(
    served: Served, body: Any
) -> None:
    refused: InvalidPayload | None = None
    try:
        rows = payloads.records_of(body)
        payloads.check(rows, served.schema)
        frame = payloads.frame(rows, served.schema)
        predictions, _ = served.predict(frame)
    except InvalidPayload as exc:
        refused = exc
    if refused is not None:
        assert refused.status == 422
        assert refused.param
        return
    assert len(predictions) == len(rows)
    assert all(p in (0, 1) for p in predictions)
