"""Scoring without per-request waste: the compiled pipeline answers exactly as
scikit-learn does, and the batcher scores a lone request at once."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import numpy as np
import pytest

from bastion.registry import demo
from bastion.serving import payloads
from bastion.serving.batching import Batcher, PredictionFailed
from bastion.serving.cache import Served, load_served
from bastion.serving.compiled import compile_pipeline

from .conftest import NAME, Model, records


@pytest.fixture(scope="module")
def served(income_v1: Model) -> Served:
    return load_served(NAME, 1, income_v1.folder)


def _unknown_and_missing(rows: list[dict[str, Any]], schema: Any) -> list[dict[str, Any]]:
    optional = [c.name for c in schema if not c.required]
    out = []
    for i, row in enumerate(rows):
        row = dict(row)
        if i % 3 == 0:
            row["occupation"] = "Astronaut"  # a category the encoder never saw
        if i % 4 == 1:
            for name in optional:
                row[name] = None
        if i % 5 == 2:
            row.pop(optional[0])  # absent, as null
        out.append(row)
    return out


def test_the_compiled_pipeline_scores_exactly_as_scikit_learn(
    served: Served, income_v1: Model
) -> None:
    assert served.compiled is not None
    assert served.compiled.logistic  # one decision_function call for both answers
    rows = records(income_v1.trained.test.head(2000))
    rows = rows + _unknown_and_missing(rows[:300], served.schema)
    frame = payloads.frame(rows, served.schema)
    expected = served.predict(frame)  # scikit-learn's own Pipeline
    got = served.predict_records(rows)
    assert got[0] == expected[0]
    assert got[1] == expected[1]  # the logged scores too, to the last bit
    assert got[0] == income_v1.trained.model.predict(frame).tolist()
    # one row at a time, as the server answers one client
    for row in rows[:200] + rows[-60:]:
        assert served.predict_records([row]) == served.predict(payloads.frame([row], served.schema))


def test_a_dense_output_compiles_as_well(income_v1: Model, served: Served) -> None:
    from sklearn.base import clone

    model = clone(income_v1.trained.model)
    model.set_params(columntransformer__sparse_threshold=0.0)
    train = income_v1.trained.train
    model.fit(train[demo.NUMERIC + demo.CATEGORICAL], train[demo.TARGET])  # 0/1 already
    compiled = compile_pipeline(model, served.schema, served.background)
    assert compiled is not None and not compiled.sparse
    rows = _unknown_and_missing(records(income_v1.trained.test.head(300)), served.schema)
    frame = payloads.frame(rows, served.schema)
    expected = model[0].transform(frame)
    assert isinstance(expected, np.ndarray)
    assert np.array_equal(compiled.transform(rows), expected, equal_nan=True)
    assert (
        compiled.final.predict(compiled.transform(rows)).tolist() == model.predict(frame).tolist()
    )


def _variant(income_v1: Model, **changes: Any) -> Any:
    from sklearn.base import clone
    from sklearn.preprocessing import MinMaxScaler

    model = clone(income_v1.trained.model)
    model.set_params(**{k: MinMaxScaler() if v == "minmax" else v for k, v in changes.items()})
    train = income_v1.trained.train.head(3000)
    model.fit(train[demo.NUMERIC + demo.CATEGORICAL], train[demo.TARGET])  # 0/1 already
    return model


@pytest.mark.parametrize(
    "changes",
    [
        {"columntransformer__onehotencoder__drop": "first"},
        {"columntransformer__onehotencoder__min_frequency": 50},
        {"columntransformer__onehotencoder__dtype": np.float32},
        {"columntransformer__standardscaler": "minmax"},
        {"columntransformer__standardscaler__copy": False, "columntransformer__n_jobs": 1},
    ],
    ids=["drop", "infrequent", "float32", "another-scaler", "same-options"],
)
def test_what_the_compiler_does_not_know_scores_through_scikit_learn(
    income_v1: Model, served: Served, changes: dict[str, Any]
) -> None:
    model = _variant(income_v1, **changes)
    compiled = compile_pipeline(model, served.schema, served.background)
    known = "columntransformer__standardscaler__copy" in changes  # options that change nothing
    assert (compiled is not None) is known


def test_a_model_that_is_not_a_plain_pipeline_or_has_no_example_is_not_compiled(
    income_v1: Model, income_v2: Model, served: Served
) -> None:
    # v2 wraps its pipeline in per-group thresholds: its own predict runs
    assert compile_pipeline(income_v2.trained.model, served.schema, served.background) is None
    assert load_served(NAME, 2, income_v2.folder).compiled is None
    # nothing to check the compiled form against
    assert compile_pipeline(income_v1.trained.model, served.schema, None) is None


@pytest.mark.anyio
async def test_a_lone_request_is_scored_at_once_in_a_group_of_its_own(
    served: Served, income_v1: Model
) -> None:
    batcher = Batcher(served)
    row = records(income_v1.trained.test.head(1))
    answer = asyncio.ensure_future(batcher.score(row))
    turns = 0
    while not answer.done():
        await asyncio.sleep(0)  # one turn of the event loop; no clock moves forward
        turns += 1
        assert turns < 10, "a lone request waited for company"
    assert answer.result() == served.predict_records(row)
    assert batcher.group_sizes == Counter({1: 1})
    # and the next one, alone again, is not held back by the first
    again = await batcher.score(row)
    assert again == answer.result() and batcher.group_sizes == Counter({1: 2})


@pytest.mark.anyio
async def test_requests_that_arrive_together_are_scored_together(
    served: Served, income_v1: Model
) -> None:
    batcher = Batcher(served)
    rows = records(income_v1.trained.test.head(6))
    bad = dict(rows[3], hours_per_week=float("nan"))  # passes no model: only it fails
    parts = [[r] for r in rows[:3]] + [[bad]] + [rows[4:6]]
    answers = await asyncio.gather(*(batcher.score(p) for p in parts), return_exceptions=True)
    assert isinstance(answers[3], PredictionFailed)
    expected = [served.predict_records(p) for i, p in enumerate(parts) if i != 3]
    assert [a for i, a in enumerate(answers) if i != 3] == expected
    # one group of five (refused as a whole for the bad row, then scored request by
    # request), not five groups
    assert batcher.group_sizes == Counter({5: 1})
