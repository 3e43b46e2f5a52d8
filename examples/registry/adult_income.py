"""A model release governed by Bastion, from training to production.

    uv run python examples/registry/adult_income.py [--home .bastion] [--data adult.data]

Trains an income classifier on UCI Adult (the copy that ships with Bastion, or
``--data``), with ``sex`` and ``race`` as protected attributes, logs it to MLflow the
way a data scientist would, and takes it through Bastion's registry as two people:
``ana`` (an analyst) registers and asks; ``ada`` (an admin, an approver) decides.

1. v1, a plain logistic regression: registered with its evidence (artifact SHA-256,
   dataset digest, metrics), a fairness report and a drift baseline stored, its card
   written, approved into staging, and refused for production by the fairness gate.
2. v2, the same model with one decision threshold per sex group: passes every gate
   and, approved by ada, becomes production (MLflow alias ``production``).

Run it again on the same home and it adds two more versions: the history grows.
Afterwards: ``bastion models list``, ``bastion models show adult-income 2``,
``bastion models lineage adult-income 2``, ``bastion audit verify``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bastion.db import create_database, upgrade
from bastion.registry import demo
from bastion.registry.errors import GatesFailed
from bastion.registry.service import ModelRegistry
from bastion.runtime import open_runtime
from bastion.settings import Settings

NAME = demo.MODEL_NAME
ANA, ADA = demo.ANALYST, demo.APPROVER


def release(registry: ModelRegistry, frame: object, *, mitigate: bool, seed: int) -> int:
    label = "per-sex thresholds" if mitigate else "baseline"
    print(f"\n== {label}")
    trained = demo.train(frame, mitigate=mitigate, seed=seed)
    print("trained:", ", ".join(f"{k} {v:.3f}" for k, v in trained.metrics.items()))

    # The data scientist's side: an ordinary MLflow run with params, metrics, the
    # training dataset (MLflow computes its digest) and the model.
    run_id = demo.log_to_mlflow(
        registry.store.tracking_uri,
        registry.store.artifact_root,
        trained,
        frame,
        label,
    )
    version = registry.register(ANA, NAME, run_id=run_id).version
    v = version.version
    dataset = version.dataset or {}
    print(
        f"registered v{v}: artifact sha256 {version.artifact_sha256[:16]}…, "
        f"dataset digest {dataset.get('digest')} ({dataset.get('rows')} rows)"
    )

    # Evidence the gates consult: a Fairlearn report on held-out data, the training
    # data's reference profile for drift monitoring, and the card's written fields.
    report = demo.fairness(trained)
    registry.record_evidence(ANA, NAME, v, "fairness", report)
    registry.record_evidence(ANA, NAME, v, "drift_baseline", demo.drift_baseline(trained))
    registry.update_card(ANA, NAME, v, "model", demo.MODEL_CARD)
    registry.update_card(ANA, NAME, v, "data", demo.DATA_CARD)
    for check in report["checks"]:
        if check["metric"] == "four_fifths":
            verdict = "pass" if check["passed"] else "FAIL"
            over = " & ".join(check["features"])
            print(f"  four-fifths over {over}: {check['value']:.2f} {verdict}")

    request = registry.request_promotion(ANA, NAME, v, "staging", "candidate for release")
    registry.approve(ADA, request.id, notes="metrics and card reviewed")
    print(f"staging: {request.id} asked by ana, approved by ada")
    try:
        request = registry.request_promotion(ANA, NAME, v, "production", "ready for customers")
    except GatesFailed as refused:
        print(f"production refused: {refused.message}")
        registry.archive(ANA, NAME, v, "fails the fairness gate")
        return v
    for gate in request.gates:
        print(f"  gate {gate.gate}: {'pass' if gate.passed else 'FAIL'} ({gate.reason})")
    registry.approve(ADA, request.id, notes="fairness report and drift baseline reviewed")
    print(f"production: {request.id} asked by ana, approved by ada")
    return v


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--home", type=Path, help="Bastion home (default: BASTION_HOME or .bastion)"
    )
    parser.add_argument("--data", type=Path, help="UCI adult.data or adult.test (default: bundled)")
    args = parser.parse_args()
    settings = Settings(home=args.home) if args.home else Settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    db = create_database(settings.resolved_database_url)
    upgrade(db.engine)
    db.dispose()
    runtime = open_runtime(settings, label="example", write_policy=True)
    try:
        registry = runtime.registry()
        gates = registry.config.gates_for("production", NAME)
        print(f"production gates for {NAME}: {gates.model_dump(exclude_defaults=True)}")
        frame = demo.load_adult(args.data)
        print(f"UCI Adult: {len(frame):,} rows; protected attributes: {', '.join(demo.PROTECTED)}")
        runs = sum(1 for m in registry.list_models() if m.name == NAME) and len(
            registry.list_versions(NAME)
        )
        release(registry, frame, mitigate=False, seed=runs)
        v = release(registry, frame, mitigate=True, seed=runs)

        lineage = registry.lineage(NAME, v)
        print(
            f"\nlineage of v{v}: dataset {lineage.dataset and lineage.dataset['digest']} → run "
            f"{lineage.run['run_id']} → v{v} → "
            + " → ".join(c.to_stage for c in lineage.stage_changes)
        )
        cards = settings.home / "cards"
        cards.mkdir(exist_ok=True)
        for kind in ("model", "data"):
            for fmt, suffix in (("markdown", "md"), ("html", "html")):
                path = cards / f"{NAME}-v{v}-{kind}-card.{suffix}"
                path.write_text(registry.render_card(NAME, v, kind, fmt), encoding="utf-8")
        print(f"cards written to {cards}")
        report = registry.verify(ADA)
        print(f"verify: {'OK' if report.ok else report.findings}")
    finally:
        runtime.close()


if __name__ == "__main__":
    main()
