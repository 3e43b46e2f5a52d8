"""Bastion's own pipeline steps: evaluate, fairness, drift-baseline, register,
request-promotion, canary.

They run in the engine's process, through the same services as the CLI and the API,
as the person who started the run; each one's output is recorded with the run and
digested into the ledger. ``register`` attaches what the earlier steps found as the
version's evidence (the fairness report, the drift baseline, the evaluation's metrics),
so the registry's gates judge the release on the run's own numbers.
``request-promotion`` asks; a person approves (requester ≠ approver).

Parameters (``with:``), ``${...}`` allowed in each:

| step | with |
| --- | --- |
| evaluate | ``model`` (``runs:/ID/model`` or a path), ``data`` (CSV, Parquet), ``target`` |
| fairness | the same, and ``sensitive`` (columns) |
| drift-baseline | ``data``, ``drop`` (columns to leave out, e.g. the target) |
| register | ``model`` (the name), ``run_id``, ``semver``, ``model_card``, ``data_card`` |
| request-promotion | ``model``, ``version``, ``to`` (default staging), ``reason`` |
| canary | ``model``, ``version``, ``steps`` (e.g. ``5,25,50,100``), ``interval`` |
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bastion.pipelines.steps import StepCall, StepFailed

if TYPE_CHECKING:
    import pandas as pd

    from bastion.runtime import Runtime


def _need(call: StepCall, *keys: str) -> list[Any]:
    missing = [k for k in keys if call.with_.get(k) in (None, "")]
    if missing:
        raise StepFailed(f"{call.step}: give {', '.join(missing)} under `with`")
    return [call.with_[k] for k in keys]


def _frame(path: str) -> pd.DataFrame:
    import pandas as pd

    file = Path(path)
    if not file.exists():
        raise StepFailed(f"no data file {path}")
    if file.suffix in (".parquet", ".pq"):
        return pd.read_parquet(file)
    return pd.read_csv(file)


def _predict(model_uri: str, frame: pd.DataFrame) -> tuple[Any, Any]:
    """Labels, and scores when the model has ``predict_proba`` (scikit-learn flavour)."""
    from bastion.settings import quiet_mlflow

    quiet_mlflow()
    import mlflow

    try:
        model = mlflow.sklearn.load_model(model_uri)
    except Exception:  # not a scikit-learn model: the generic flavour has labels only
        pyfunc = mlflow.pyfunc.load_model(model_uri)
        return pyfunc.predict(frame), None
    scores = model.predict_proba(frame)[:, 1] if hasattr(model, "predict_proba") else None
    return model.predict(frame), scores


def _with_tracking(runtime: Runtime) -> None:
    from bastion.settings import quiet_mlflow

    quiet_mlflow()
    import mlflow

    mlflow.set_tracking_uri(runtime.settings.resolved_mlflow_tracking_uri)


def _labels(frame: pd.DataFrame, target: str, positive: Any) -> Any:
    if target not in frame.columns:
        raise StepFailed(f"the data has no column {target!r}")
    column = frame[target]
    values = {str(v) for v in column.unique()}
    if str(positive) not in values and len(values) > 1:
        raise StepFailed(
            f"{target} has no value {positive!r} (it has {', '.join(sorted(values)[:5])}): "
            "give `positive`"
        )
    return (column.astype(str) == str(positive)).astype(int)


def evaluate(runtime: Runtime, run: dict[str, Any], call: StepCall) -> dict[str, Any]:
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    model, data, target = _need(call, "model", "data", "target")
    frame = _frame(data)
    y = _labels(frame, target, call.with_.get("positive", 1))
    _with_tracking(runtime)
    predictions, scores = _predict(model, frame.drop(columns=[target]))
    predicted = (predictions.astype(str) == str(call.with_.get("positive", 1))).astype(int) if (
        getattr(predictions, "dtype", None) is not None and predictions.dtype.kind in "OUS"
    ) else predictions  # fmt: skip
    metrics = {
        "accuracy": float(accuracy_score(y, predicted)),
        "precision": float(precision_score(y, predicted, zero_division=0)),
        "recall": float(recall_score(y, predicted, zero_division=0)),
        "f1": float(f1_score(y, predicted, zero_division=0)),
    }
    if scores is not None and len(set(y)) == 2:
        from sklearn.metrics import roc_auc_score

        metrics["roc_auc"] = float(roc_auc_score(y, scores))
    from bastion.registry.digests import file_sha256

    return {"metrics": metrics, "rows": len(frame), "data_sha256": file_sha256(Path(data))}


def fairness(runtime: Runtime, run: dict[str, Any], call: StepCall) -> dict[str, Any]:
    from bastion.monitoring.fairness import fairness_report

    model, data, target, sensitive = _need(call, "model", "data", "target", "sensitive")
    frame = _frame(data)
    columns = [sensitive] if isinstance(sensitive, str) else list(sensitive)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise StepFailed(f"the data has no column {', '.join(missing)}")
    y = _labels(frame, target, call.with_.get("positive", 1))
    _with_tracking(runtime)
    predictions, _ = _predict(model, frame.drop(columns=[target]))
    report = fairness_report(y, predictions, frame[columns]).to_dict()
    checks = report.get("checks", [])
    return {"report": report, "passed": all(c.get("passed", True) for c in checks)}


def drift_baseline(runtime: Runtime, run: dict[str, Any], call: StepCall) -> dict[str, Any]:
    from bastion.monitoring.profiles import fit_reference

    (data,) = _need(call, "data")
    frame = _frame(data)
    drop = call.with_.get("drop") or []
    frame = frame.drop(columns=[c for c in ([drop] if isinstance(drop, str) else drop)])
    return {"profile": fit_reference(frame).to_dict(), "rows": len(frame)}


def _actor(run: dict[str, Any]) -> Any:
    from bastion.auth.principal import cli_principal

    return cli_principal(run["started_by"])


def register(runtime: Runtime, run: dict[str, Any], call: StepCall) -> dict[str, Any]:
    name, run_id = _need(call, "model", "run_id")
    registry = runtime.registry()
    actor = _actor(run)
    evaluation: dict[str, float] = {}
    for output in call.inputs.values():
        evaluation |= output.get("metrics", {}) if isinstance(output.get("metrics"), dict) else {}
    registered = registry.register(
        actor,
        name,
        run_id=str(run_id),
        semver=call.with_.get("semver"),
        description=f"registered by pipeline run {call.run_id}",
    )
    version = registered.version.version
    recorded: list[str] = []
    for step, output in call.inputs.items():
        for key, kind in (("report", "fairness"), ("profile", "drift_baseline")):
            payload = output.get(key)
            if isinstance(payload, dict) and payload.get("format"):
                registry.record_evidence(actor, name, version, kind, payload)
                recorded.append(f"{kind} from {step}")
    for kind in ("model", "data"):
        fields = call.with_.get(f"{kind}_card")
        if isinstance(fields, dict) and fields:
            registry.update_card(actor, name, version, kind, {k: str(v) for k, v in fields.items()})
            recorded.append(f"{kind} card")
    return {
        "model": name,
        "version": version,
        "created": registered.created,
        "artifact_sha256": registered.version.artifact_sha256,
        "dataset": registered.version.dataset,
        "evaluation": evaluation,
        "evidence": recorded,
    }


def request_promotion(runtime: Runtime, run: dict[str, Any], call: StepCall) -> dict[str, Any]:
    name, version = _need(call, "model", "version")
    to = call.with_.get("to", "staging")
    reason = call.with_.get("reason") or f"pipeline run {call.run_id}"
    request = runtime.registry().request_promotion(_actor(run), name, int(version), to, reason)
    return {
        "request_id": request.id,
        "status": request.status,
        "to": to,
        "gates": [{"gate": g.gate, "passed": g.passed, "reason": g.reason} for g in request.gates],
        "note": "the approval stays with a person: bastion models approve " + request.id,
    }


def canary(runtime: Runtime, run: dict[str, Any], call: StepCall) -> dict[str, Any]:
    from bastion.delivery.service import DeliveryService

    name, version = _need(call, "model", "version")
    service = DeliveryService(runtime.db, runtime.ledger, runtime.policy)
    steps = call.with_.get("steps")
    rollout = service.start(
        _actor(run),
        name,
        int(version),
        kind="canary",
        steps=",".join(str(s) for s in steps) if isinstance(steps, list) else steps,
        interval=str(call.with_.get("interval", "10m")),
        reason=f"pipeline run {call.run_id}",
    )
    return {"rollout": rollout.id, "state": rollout.state, "weight": rollout.weight}


BUILTINS: dict[str, Callable[[Runtime, dict[str, Any], StepCall], dict[str, Any]]] = {
    "evaluate": evaluate,
    "fairness": fairness,
    "drift-baseline": drift_baseline,
    "register": register,
    "request-promotion": request_promotion,
    "canary": canary,
}
