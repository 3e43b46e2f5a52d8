"""A pipeline file (``pipelines/*.yaml``): steps, their order, and what makes each pass.

```yaml
version: 1
name: adult-income
params: {model: adult-income, min_auc: 0.85}
steps:
  train:
    call: examples.adult.pipeline:train        # a Python callable (module:function)
    timeout_s: 600
    retries: 2                                 # attempts after the first
    artifacts: [{path: out/model}]             # digests recorded with the step
  evaluate:
    uses: evaluate                             # one of Bastion's own steps
    needs: [train]
    success: ["metrics.roc_auc >= ${min_auc}"] # read from the step's output
  register:
    uses: register
    needs: [evaluate]
```

A step is exactly one of ``run`` (a command), ``call`` (a callable by import path) or
``uses`` (a built-in step). Errors carry the file, line and column, as the policy's do
(the same loader). ``${name}`` in a step's ``with``, ``run`` or ``success`` is replaced
by the run's parameters.

Bastion's own steps cannot be bypassed by the file: ``register`` must come after an
``evaluate`` step (directly or not), and ``request-promotion`` and ``canary`` after
``register``; the approval of a promotion stays with a person.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bastion.pipelines.criteria import Criterion
from bastion.policy.loader import Loc, PolicyError, issue_at, parse_document

BUILTIN_STEPS = (
    "evaluate",
    "fairness",
    "drift-baseline",
    "register",
    "request-promotion",
    "canary",
)
Builtin = Literal[
    "evaluate", "fairness", "drift-baseline", "register", "request-promotion", "canary"
]
#: A built-in step and the built-in step that must come before it.
GOVERNED_ORDER = {"register": "evaluate", "request-promotion": "register", "canary": "register"}
NAME = r"^[a-z][a-z0-9_-]{0,62}$"
PARAM = re.compile(r"\$\{([A-Za-z_][\w]*(?:\.[\w-]+)*)\}")


class PipelineError(PolicyError):
    code = "invalid_pipeline"
    what = "the pipeline"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Artifact(Strict):
    """A file or folder a step leaves behind (digest recorded), or an MLflow run."""

    path: str | None = None
    mlflow_run: str | None = Field(default=None, description="run id, or ${param}")

    @model_validator(mode="after")
    def _one(self) -> Artifact:
        if (self.path is None) == (self.mlflow_run is None):
            raise ValueError("give exactly one of path or mlflow_run")
        return self


class Step(Strict):
    run: list[str] | str | None = None
    call: str | None = Field(default=None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    uses: Builtin | None = None
    needs: list[str] = []
    with_: dict[str, Any] = Field(default={}, alias="with")
    retries: int = Field(default=0, ge=0, le=20)
    backoff_s: float = Field(default=1.0, ge=0, le=3600)
    timeout_s: float = Field(default=3600, gt=0, le=7 * 24 * 3600)
    artifacts: list[Artifact] = []
    success: list[str] = []
    engine: Literal["local", "dask"] = "local"
    description: str = ""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        kinds = [k for k in ("run", "call", "uses") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("a step is exactly one of run (a command), call or uses")
        if self.engine == "dask" and self.call is None:
            raise ValueError("engine: dask runs a callable: give call")
        return self

    @field_validator("success")
    @classmethod
    def _criteria(cls, value: list[str]) -> list[str]:
        for text in value:
            Criterion.parse(PARAM.sub("0", text))  # raises ValueError with what is wrong
        return value

    @property
    def kind(self) -> str:
        return "run" if self.run is not None else "call" if self.call is not None else "uses"


class Pipeline(Strict):
    version: Literal[1]
    name: str = Field(pattern=NAME)
    description: str = ""
    params: dict[str, str | int | float | bool] = {}
    steps: dict[str, Step] = Field(min_length=1)

    @field_validator("steps")
    @classmethod
    def _names(cls, value: dict[str, Step]) -> dict[str, Step]:
        for name in value:
            if not re.match(NAME, name):
                raise ValueError(f"step name {name!r}: lower-case letters, digits, - and _")
        return value


@dataclass(frozen=True)
class LoadedPipeline:
    pipeline: Pipeline
    digest: str
    source: str
    text: str

    def order(self) -> list[str]:
        graph = {name: set(step.needs) for name, step in self.pipeline.steps.items()}
        return list(TopologicalSorter(graph).static_order())


def load_pipeline(path: Path) -> LoadedPipeline:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PipelineError([_issue(str(path), f"cannot read the file: {exc}")]) from None
    return parse_pipeline(text, str(path))


def parse_pipeline(text: str, source: str = "<pipeline>") -> LoadedPipeline:
    pipeline, root = parse_document(text, source, Pipeline, error=PipelineError)
    problems = check_graph(pipeline)
    if problems:
        raise PipelineError([issue_at(root, loc, source, message) for loc, message in problems])
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return LoadedPipeline(pipeline, digest, source, text)


def _issue(source: str, message: str) -> Any:
    from bastion.policy.loader import PolicyIssue

    return PolicyIssue(source, None, None, "", message)


def _ancestors(pipeline: Pipeline, name: str) -> set[str]:
    seen: set[str] = set()
    todo = list(pipeline.steps[name].needs)
    while todo:
        current = todo.pop()
        if current in seen or current not in pipeline.steps:
            continue
        seen.add(current)
        todo.extend(pipeline.steps[current].needs)
    return seen


def check_graph(pipeline: Pipeline) -> list[tuple[Loc, str]]:
    """Unknown needs, cycles, undeclared parameters and the governed order of Bastion's
    own steps: each problem at the key it concerns."""
    problems: list[tuple[Loc, str]] = []
    steps = pipeline.steps
    for name, step in steps.items():
        for i, need in enumerate(step.needs):
            if need not in steps:
                problems.append((("steps", name, "needs", i), f"no step named {need!r}"))
            elif need == name:
                problems.append((("steps", name, "needs", i), "a step cannot need itself"))
        for key, text in _templated(step):
            for param in PARAM.findall(text):
                where = ("steps", name, *key)
                if param.startswith("steps."):
                    parts = param.split(".")
                    if len(parts) < 3 or parts[1] not in steps:
                        problems.append(
                            (where, f"${{{param}}}: name a step and a key of its output")
                        )
                    elif parts[1] not in _ancestors(pipeline, name):
                        problems.append(
                            (where, f"${{{param}}}: {parts[1]} is not among this step's needs")
                        )
                elif param not in pipeline.params:
                    problems.append((where, f"${{{param}}} is not declared under params"))
    if problems:
        return problems
    try:
        TopologicalSorter({n: set(s.needs) for n, s in steps.items()}).prepare()
    except CycleError as exc:
        circle = " -> ".join(exc.args[1])
        first = exc.args[1][0]
        return [(("steps", first, "needs"), f"the steps need each other in a circle: {circle}")]
    for name, step in steps.items():
        before = GOVERNED_ORDER.get(step.uses or "")
        if before is None:
            continue
        if not any(steps[a].uses == before for a in _ancestors(pipeline, name)):
            problems.append(
                (
                    ("steps", name, "uses"),
                    f"{step.uses} must come after a `uses: {before}` step (in its needs, "
                    "directly or not): Bastion's governance steps cannot be skipped",
                )
            )
    return problems


def _templated(step: Step) -> list[tuple[Loc, str]]:
    out: list[tuple[Loc, str]] = []
    if isinstance(step.run, str):
        out.append((("run",), step.run))
    elif step.run is not None:
        out.extend((("run", i), part) for i, part in enumerate(step.run))
    out.extend((("success", i), text) for i, text in enumerate(step.success))
    out.extend((("with", key), v) for key, v in step.with_.items() if isinstance(v, str))
    return out


class MissingValue(KeyError):
    """A ``${steps.NAME.key}`` whose step did not report that key."""


def lookup(values: dict[str, Any], reference: str) -> Any:
    current: Any = values
    for part in reference.split("."):
        if not isinstance(current, dict) or part not in current:
            raise MissingValue(f"${{{reference}}} is not in the run's values or outputs")
        current = current[part]
    return current


def substitute(value: Any, params: dict[str, Any]) -> Any:
    """``${name}`` replaced by the run's parameter and ``${steps.NAME.key}`` by a key of a
    step's output (a whole-string reference keeps its type)."""
    if isinstance(value, str):
        whole = PARAM.fullmatch(value)
        if whole:
            return lookup(params, whole.group(1))
        return PARAM.sub(lambda m: str(lookup(params, m.group(1))), value)
    if isinstance(value, list):
        return [substitute(v, params) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, params) for k, v in value.items()}
    return value
