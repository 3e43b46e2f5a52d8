"""The registry at a glance, for the dashboard's Models page: every model with its
stages, and one model in full — versions with the gates for their next stage, promotion
requests, the rollout in progress and its decisions, and a lineage graph
(dataset → MLflow run → version → alias or rollout) as nodes and edges with positions.

It reads through :class:`~bastion.registry.service.ModelRegistry` and
:class:`~bastion.delivery.service.DeliveryService` only (the services the API and the
CLI use), so it lives here, where both are in reach: delivery already builds on the
registry, never the other way round.

    page = models_overview(registry, delivery, viewer, name="adult-income")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from bastion.auth.permissions import Permission
from bastion.delivery.errors import RolloutNotFound
from bastion.delivery.schemas import RolloutHistory
from bastion.registry.gates import GateResult
from bastion.registry.mlflow_store import MANAGED_ALIASES
from bastion.registry.promotion import PROMOTE_FROM
from bastion.registry.schemas import ModelSummary, RequestView, VersionView

if TYPE_CHECKING:
    from bastion.auth.principal import Principal
    from bastion.delivery.service import DeliveryService
    from bastion.registry.service import ModelRegistry

#: The stage a version in a stage may be promoted to next.
NEXT_STAGE = {source: target for target, source in PROMOTE_FROM.items()}
#: Versions shown with their gates (newest first); older ones are listed without them.
GATED_VERSIONS = 12
#: Lineage columns, left to right.
COLUMNS = ("dataset", "run", "version", "deployment")


class GateCheck(BaseModel):
    stage: str
    passed: bool
    gates: list[GateResult]


class VersionOverview(BaseModel):
    version: VersionView
    aliases: list[str]
    next_stage: str | None = Field(description="where a promotion request would take it")
    gates: GateCheck | None = Field(description="the gates for next_stage, evaluated now")
    open_request: str | None = Field(description="the id of its undecided request, if any")


class LineageNode(BaseModel):
    id: str
    kind: str  # one of COLUMNS
    label: str
    detail: str
    x: float
    y: float


class LineageEdge(BaseModel):
    source: str
    target: str
    label: str = ""


class LineageGraph(BaseModel):
    nodes: list[LineageNode]
    edges: list[LineageEdge]
    width: float
    height: float


class ModelOverview(BaseModel):
    summary: ModelSummary
    versions: list[VersionOverview]
    requests: list[RequestView]
    rollout: RolloutHistory | None
    lineage: LineageGraph


class ModelsOverview(BaseModel):
    models: list[ModelSummary]
    pending: list[RequestView] = Field(description="undecided requests, every model")
    selected: ModelOverview | None
    may_request: bool = Field(description="the viewer holds models:write")
    may_decide: bool = Field(description="the viewer holds models:approve")
    viewer: str


def models_overview(
    registry: ModelRegistry,
    delivery: DeliveryService,
    viewer: Principal,
    name: str | None = None,
) -> ModelsOverview:
    """Every model; ``name`` (default: the first) in full. An unknown ``name`` raises
    the registry's ``model_not_found``."""
    models = sorted(registry.list_models(), key=lambda m: m.name)
    pending = registry.list_requests(status="pending") + registry.list_requests(status="approving")
    chosen = name if name is not None else (models[0].name if models else None)
    return ModelsOverview(
        models=models,
        pending=sorted(pending, key=lambda r: r.requested_at, reverse=True),
        selected=model_overview(registry, delivery, chosen) if chosen is not None else None,
        may_request=viewer.can(Permission.MODELS_WRITE),
        may_decide=viewer.can(Permission.MODELS_APPROVE),
        viewer=viewer.user,
    )


def model_overview(registry: ModelRegistry, delivery: DeliveryService, name: str) -> ModelOverview:
    versions = registry.list_versions(name)  # model_not_found when unknown
    summary = next(m for m in registry.list_models() if m.name == name)
    requests = registry.list_requests(name=name)
    open_by_version = {
        (r.version, r.to_stage): r.id for r in requests if r.status in ("pending", "approving")
    }
    try:
        rollout: RolloutHistory | None = delivery.history(name)
    except RolloutNotFound:
        rollout = None
    rows = []
    newest = sorted(versions, key=lambda v: -v.version)
    for i, v in enumerate(newest):
        target = NEXT_STAGE.get(v.stage)
        check = None
        if target is not None and i < GATED_VERSIONS:
            results = registry.check_gates(name, v.version, target)
            check = GateCheck(stage=target, passed=all(r.passed for r in results), gates=results)
        rows.append(
            VersionOverview(
                version=v,
                aliases=[v.stage] if v.stage in MANAGED_ALIASES else [],
                next_stage=target,
                gates=check,
                open_request=open_by_version.get((v.version, target or "")),
            )
        )
    return ModelOverview(
        summary=summary,
        versions=rows,
        requests=requests,
        rollout=rollout,
        lineage=lineage_graph(versions, rollout),
    )


def _short(text: str, n: int = 12) -> str:
    return text if len(text) <= n else text[:n] + "…"


def lineage_graph(versions: list[VersionView], rollout: RolloutHistory | None) -> LineageGraph:
    """Dataset (by digest) → run → version → alias / rollout, laid out in four columns."""
    columns: dict[str, list[tuple[str, str, str]]] = {c: [] for c in COLUMNS}
    edges: list[LineageEdge] = []
    seen: set[str] = set()

    def node(kind: str, node_id: str, label: str, detail: str) -> str:
        if node_id not in seen:
            seen.add(node_id)
            columns[kind].append((node_id, label, detail))
        return node_id

    for v in sorted(versions, key=lambda v: v.version):
        vid = node(
            "version",
            f"version:{v.version}",
            f"v{v.version}" + (f" ({v.semver})" if v.semver else ""),
            f"{v.stage}; registered by {v.registered_by}; artifact {_short(v.artifact_sha256)}",
        )
        upstream = vid
        if v.run_id:
            upstream = node(
                "run",
                f"run:{v.run_id}",
                f"run {_short(v.run_id, 8)}",
                f"MLflow run {v.run_id}",
            )
            edges.append(LineageEdge(source=upstream, target=vid, label="registered"))
        dataset: dict[str, Any] = v.dataset or {}
        digest = str(dataset.get("digest") or "")
        if digest:
            ds = node(
                "dataset",
                f"dataset:{digest}",
                f"{dataset.get('name') or 'dataset'} {_short(digest, 8)}",
                f"digest {digest}"
                + (f"; {dataset['rows']} rows" if dataset.get("rows") is not None else ""),
            )
            if upstream != vid:
                edges.append(LineageEdge(source=ds, target=upstream, label="trained on"))
            else:
                edges.append(LineageEdge(source=ds, target=vid, label="trained on"))
        if v.stage in MANAGED_ALIASES:
            alias = node("deployment", f"alias:{v.stage}", v.stage, f"MLflow alias → v{v.version}")
            edges.append(LineageEdge(source=vid, target=alias, label="alias"))
    if rollout is not None:
        r = rollout.rollout
        rid = node(
            "deployment",
            f"rollout:{r.id}",
            f"{r.kind} {r.state} {r.weight}%",
            f"rollout {r.id}: v{r.candidate_version} against v{r.baseline_version}",
        )
        edges.append(
            LineageEdge(source=f"version:{r.candidate_version}", target=rid, label="candidate")
        )
        if f"version:{r.baseline_version}" in seen:
            edges.append(
                LineageEdge(source=f"version:{r.baseline_version}", target=rid, label="baseline")
            )
    step_x, step_y, pad = 200.0, 56.0, 30.0
    tallest = max((len(items) for items in columns.values()), default=1) or 1
    nodes = []
    for col, kind in enumerate(COLUMNS):
        items = columns[kind]
        offset = (tallest - len(items)) * step_y / 2
        for row, (node_id, label, detail) in enumerate(items):
            nodes.append(
                LineageNode(
                    id=node_id,
                    kind=kind,
                    label=label,
                    detail=detail,
                    x=pad + 70 + col * step_x,
                    y=pad + offset + row * step_y,
                )
            )
    return LineageGraph(
        nodes=nodes,
        edges=[e for e in edges if e.source in seen and e.target in seen],
        width=2 * pad + 140 + (len(COLUMNS) - 1) * step_x,
        height=2 * pad + tallest * step_y,
    )
