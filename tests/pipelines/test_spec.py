"""Pipeline files: every mistake named with its line, and the governed order enforced."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.pipelines.criteria import Criterion
from bastion.pipelines.spec import PipelineError, parse_pipeline, substitute

GOOD = """\
version: 1
name: p
params: {min_auc: 0.8}
steps:
  train: {run: "echo hi"}
  evaluate:
    uses: evaluate
    needs: [train]
    success: ["metrics.roc_auc >= ${min_auc}"]
  register: {uses: register, needs: [evaluate]}
"""


def test_a_good_file_loads_in_order() -> None:
    loaded = parse_pipeline(GOOD, "p.yaml")
    assert loaded.order() == ["train", "evaluate", "register"]
    assert len(loaded.digest) == 64


BAD = [
    ("steps:\n  a: {run: x, needs: [zz]}\n", 4, "no step named 'zz'"),
    ("steps:\n  a: {run: x, needs: [b]}\n  b: {run: x, needs: [a]}\n", 4, "in a circle"),
    ("steps:\n  a: {run: x, call: 'm:f'}\n", 4, "exactly one of run"),
    ("steps:\n  a: {run: x}\n  r: {uses: register, needs: [a]}\n", 5, "must come after a `uses: evaluate`"),
    ("steps:\n  r: {uses: request-promotion}\n", 4, "must come after a `uses: register`"),
    ("steps:\n  a: {run: x, success: ['metrics.auc >> 1']}\n", 4, "'> 1' is not a number"),
    ("steps:\n  a: {run: x, success: ['auc is high']}\n", 4, "expected `path op value`"),
    ("steps:\n  a: {run: x, success: ['metrics.auc >= high']}\n", 4, "is not a number"),
    ("steps:\n  a: {run: 'echo ${nope}'}\n", 4, "${nope} is not declared"),
    ("steps:\n  a: {run: x}\n  b: {run: 'echo ${steps.c.v}'}\n  c: {run: x}\n", 5, "${steps.c.v}: c is not among"),
    ("steps:\n  a: {run: x, timeout_s: -1}\n", 4, "greater than 0"),
    ("steps:\n  a: {run: x, retries: 99}\n", 4, "less than or equal to 20"),
    ("steps:\n  A B: {run: x}\n", 4, "step name"),
    ("steps:\n  a: {run: x, engine: dask}\n", 4, "engine: dask runs a callable"),
    ("steps:\n  a: {run: x, colour: red}\n", 4, "colour"),
    ("steps:\n  a: {uses: deploy-to-prod}\n", 4, "uses"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "line", "message"), BAD)
def test_each_mistake_is_named_with_its_line(body: str, line: int, message: str) -> None:
    with pytest.raises(PipelineError) as caught:
        parse_pipeline("version: 1\nname: p\n" + body, "p.yaml")
    text = str(caught.value)
    assert message in text, text
    assert any(issue.line == line for issue in caught.value.issues), text


def test_broken_yaml_is_an_error_with_a_line() -> None:
    with pytest.raises(PipelineError) as caught:
        parse_pipeline("version: 1\nname: p\nsteps:\n  a: {run: [\n", "p.yaml")
    assert caught.value.code == "invalid_pipeline"
    assert "not valid YAML" in str(caught.value)


def test_substitution_keeps_whole_references_typed() -> None:
    values = {"n": 3, "steps": {"train": {"run_id": "abc", "metrics": {"auc": 0.9}}}}
    assert substitute("${n}", values) == 3
    assert substitute("runs:/${steps.train.run_id}/model", values) == "runs:/abc/model"
    assert substitute({"x": ["${steps.train.metrics.auc}"]}, values) == {"x": [0.9]}


numbers = st.floats(allow_nan=False, allow_infinity=False, width=32)


@given(bound=numbers, actual=numbers, op=st.sampled_from([">=", ">", "<=", "<", "==", "!="]))
def test_a_criterion_compares_like_python(bound: float, actual: float, op: str) -> None:
    criterion = Criterion.parse(f"metrics.auc {op} {bound!r}")
    verdict = criterion.check({"metrics": {"auc": actual}})
    expected = {">=": actual >= bound, ">": actual > bound, "<=": actual <= bound,
                "<": actual < bound, "==": actual == bound, "!=": actual != bound}[op]  # fmt: skip
    assert verdict.passed is expected


@given(
    output=st.recursive(
        st.none() | st.booleans() | st.text(max_size=5),
        lambda c: st.dictionaries(st.text(max_size=5), c, max_size=3),
    )
)
def test_a_criterion_on_a_missing_or_wrong_value_fails_and_says_so(output: object) -> None:
    verdict = Criterion.parse("metrics.auc >= 0.5").check({"metrics": output})
    assert verdict.passed is False
    assert verdict.detail
