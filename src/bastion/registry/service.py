"""The model registry's front door: register, read, store evidence, check gates, cards,
verify; promotion requests, decisions and alias moves are in
:mod:`bastion.registry.promotion`, reached through the same :class:`ModelRegistry`.

Stages and MLflow aliases: a version enters ``development`` when registered; the
version in ``staging`` holds the MLflow alias ``staging`` and the one in
``production`` holds ``production``; a version replaced in production becomes
``archived``. Bastion moves these aliases only when a promotion request is approved
(or an admin rolls back), and ``verify`` reports aliases moved outside Bastion.

Every request, decision, override, alias move, rollback and piece of evidence is a
ledger event, appended before the database records the change: a change that is not
in the ledger never happened. MLflow is written first where it takes part, so a
failure there leaves Bastion's tables untouched and the caller can retry.

Registration is in :mod:`bastion.registry.registration`: idempotent by the artifact's
digest, also when two registrations of one artifact run at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from bastion.audit.events import Ledger
from bastion.auth.principal import Principal
from bastion.db import Database, utcnow
from bastion.errors import InvalidInput
from bastion.registry import promotion, registration
from bastion.registry.cards import CardKind, check_fields, read_edits, render
from bastion.registry.digests import (
    json_sha256,
    tree_sha256,
)
from bastion.registry.errors import (
    ArtifactNotFound,
    InvalidEvidence,
    InvalidTransition,
    ModelNotFound,
)
from bastion.registry.gates import GateResult, evaluate
from bastion.registry.mlflow_store import MANAGED_ALIASES, MlflowStore
from bastion.registry.models import (
    CardRow,
    EvidenceRow,
    ModelVersionRow,
)
from bastion.registry.parts import EventRecorder, RegistryParts, on_parts
from bastion.registry.promotion import PROMOTE_FROM
from bastion.registry.recovery import settle_unfinished
from bastion.registry.repository import RegistryRepository
from bastion.registry.schemas import (
    EvidenceView,
    Lineage,
    ModelSummary,
    RequestView,
    StageChangeView,
    VerifyFinding,
    VerifyReport,
    VersionDetail,
    VersionView,
)

if TYPE_CHECKING:
    from bastion.policy import PolicyStore
    from bastion.registry.config import RegistryPolicy

EVIDENCE_FORMATS = {"fairness": "bastion.fairness/1", "drift_baseline": "bastion.profile/1"}


class ModelRegistry:
    def __init__(
        self, db: Database, ledger: Ledger, policy: PolicyStore, store: MlflowStore
    ) -> None:
        self.db = db
        self.policy = policy
        self.store = store
        self.events = EventRecorder(ledger)
        #: What the workflows (registration, promotion, moves, recovery) work with.
        self.parts = RegistryParts(db, store, self.events, policy)

    def close(self) -> None:
        """Release what the registry holds (the MLflow store's clients and engines)."""
        self.store.close()

    @property
    def config(self) -> RegistryPolicy:
        return self.policy.policy.registry

    # -- registration (bastion.registry.registration) -----------------------------------

    #: Register a version from an MLflow run or a saved model, idempotent by the
    #: artifact's digest (:func:`bastion.registry.registration.register`).
    register = on_parts(registration.register)

    # -- reading --------------------------------------------------------------------------

    def list_models(self) -> list[ModelSummary]:
        with self.db.session() as session:
            repo = RegistryRepository(session)
            pending = repo.pending_counts()
            by_name: dict[str, list[ModelVersionRow]] = {}
            for row in repo.all_versions():
                by_name.setdefault(row.name, []).append(row)
        out = []
        for name, rows in by_name.items():
            stage = {r.stage: r.version for r in rows if r.stage in MANAGED_ALIASES}
            out.append(
                ModelSummary(
                    name=name,
                    versions=len(rows),
                    latest=max(r.version for r in rows),
                    # Labels rise with versions: the newest label is the highest.
                    latest_semver=next(
                        (r.semver for r in sorted(rows, key=lambda r: -r.version) if r.semver),
                        None,
                    ),
                    production=stage.get("production"),
                    staging=stage.get("staging"),
                    pending_requests=pending.get(name, 0),
                )
            )
        return out

    def list_versions(self, name: str) -> list[VersionView]:
        with self.db.session() as session:
            rows = RegistryRepository(session).versions(name)
            if not rows:
                raise ModelNotFound(
                    f"no model {name!r} in the registry: `bastion models list` shows them"
                )
            return [VersionView.of(r) for r in rows]

    def get_version(self, name: str, version: int) -> VersionView:
        with self.db.session() as session:
            return VersionView.of(RegistryRepository(session).require_version(name, version))

    def detail(self, name: str, version: int) -> VersionDetail:
        with self.db.session() as session:
            repo = RegistryRepository(session)
            row = repo.require_version(name, version)
            return VersionDetail(
                version=VersionView.of(row),
                aliases=[row.stage] if row.stage in MANAGED_ALIASES else [],
                evidence=[EvidenceView.of(e) for e in repo.evidence(row.id)],
                requests=[RequestView.of(r) for r in repo.requests(version_id=row.id)],
                history=[StageChangeView.of(c) for c in repo.stage_changes(name, row.id)],
            )

    def lineage(self, name: str, version: int) -> Lineage:
        with self.db.session() as session:
            repo = RegistryRepository(session)
            row = repo.require_version(name, version)
            return Lineage(
                name=name,
                version=version,
                dataset=row.dataset,
                run={
                    "run_id": row.run_id,
                    "tracking_uri": self.store.tracking_uri,
                    "params": row.params,
                    "metrics": row.metrics,
                    "training_seconds": row.training_seconds,
                    "author": row.author,
                    "code_version": row.code_version,
                },
                model={
                    "semver": row.semver,
                    "source": row.source,
                    "artifact_sha256": row.artifact_sha256,
                    "stored_sha256": row.stored_sha256,
                    "registered_by": row.registered_by,
                    "registered_at": row.registered_at.isoformat(),
                    "stage": row.stage,
                },
                evidence=[EvidenceView.of(e) for e in repo.evidence(row.id)],
                requests=[RequestView.of(r) for r in reversed(repo.requests(version_id=row.id))],
                stage_changes=[StageChangeView.of(c) for c in repo.stage_changes(name, row.id)],
            )

    def list_requests(
        self, *, status: str | None = None, name: str | None = None
    ) -> list[RequestView]:
        if status is not None and status not in ("pending", "approving", "approved", "rejected"):
            raise InvalidInput(
                f"unknown status {status!r}: use pending, approving, approved or rejected",
                code="invalid_status",
            )
        with self.db.session() as session:
            rows = RegistryRepository(session).requests(status=status, name=name)
            return [RequestView.of(r) for r in rows]

    def get_request(self, request_id: str) -> RequestView:
        with self.db.session() as session:
            return RequestView.of(RegistryRepository(session).require_request(request_id))

    # -- evidence -------------------------------------------------------------------------

    def record_evidence(
        self, actor: Principal, name: str, version: int, kind: str, payload: dict[str, Any]
    ) -> EvidenceView:
        """Store a fairness report or a drift baseline (reference profile) as evidence."""
        expected = EVIDENCE_FORMATS.get(kind)
        if expected is None:
            raise InvalidEvidence(
                f"unknown evidence kind {kind!r}: use one of {', '.join(EVIDENCE_FORMATS)}"
            )
        if not isinstance(payload, dict) or payload.get("format") != expected:
            got = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
            raise InvalidEvidence(
                f"{kind} evidence must be a {expected} document (got {got!r}): produce it with "
                + (
                    "`bastion fairness check --json FILE`"
                    if kind == "fairness"
                    else "`bastion drift check --save-reference FILE`"
                )
            )
        passed: bool | None = None
        if kind == "fairness":
            checks = payload.get("checks")
            if not isinstance(checks, list) or not isinstance(payload.get("passed"), bool):
                raise InvalidEvidence("the fairness report has no checks or no verdict")
            passed = bool(payload["passed"])
        elif not isinstance(payload.get("n_rows"), int) or payload["n_rows"] <= 0:
            raise InvalidEvidence("the drift baseline profile has no rows")
        digest = json_sha256(payload)
        with self.db.session() as session:
            row_id = RegistryRepository(session).require_version(name, version).id
        self.events.record(
            actor,
            "model.evidence",
            f"model:{name}/{version}",
            {"kind": kind, "sha256": digest, "passed": passed},
        )
        with self.db.session() as session:
            evidence = EvidenceRow(
                version_id=row_id,
                kind=kind,
                payload=payload,
                passed=passed,
                sha256=digest,
                recorded_by=actor.user,
                recorded_at=utcnow(),
            )
            RegistryRepository(session).add(evidence)
            return EvidenceView.of(evidence)

    # -- gates ----------------------------------------------------------------------------

    def check_gates(self, name: str, version: int, stage: str) -> list[GateResult]:
        """The gates a version would meet or fail for ``stage``, without asking."""
        if stage not in PROMOTE_FROM:
            raise InvalidTransition(f"no gates for stage {stage!r}: use staging or production")
        with self.db.session() as session:
            repo = RegistryRepository(session)
            row = repo.require_version(name, version)
            return evaluate(self.config.gates_for(stage, name), repo.evidence_for(row))

    # -- promotion requests and alias moves (bastion.registry.promotion) -----------------

    def request_promotion(
        self,
        actor: Principal,
        name: str,
        version: int,
        to: str,
        reason: str,
        overrides: dict[str, str] | None = None,
    ) -> RequestView:
        """Ask for ``to``; refused with every failing gate's reason unless overridden."""
        return promotion.request_promotion(self.parts, actor, name, version, to, reason, overrides)

    def approve(
        self,
        actor: Principal,
        request_id: str,
        notes: str | None = None,
        overrides: dict[str, str] | None = None,
    ) -> RequestView:
        """Approve (never one's own request): gates again, then the alias moves."""
        return promotion.approve(self.parts, actor, request_id, notes, overrides)

    def reject(self, actor: Principal, request_id: str, notes: str) -> RequestView:
        return promotion.reject(self.parts, actor, request_id, notes)

    def rollback(self, actor: Principal, name: str, reason: str) -> VersionView:
        """Emergency: production goes back to the version that was there before, at once."""
        return promotion.rollback(self.parts, actor, name, reason)

    def archive(self, actor: Principal, name: str, version: int, reason: str) -> VersionView:
        return promotion.archive(self.parts, actor, name, version, reason)

    # -- cards --------------------------------------------------------------------------

    def card_fields(self, name: str, version: int, kind: str) -> dict[str, str]:
        check_fields(kind, {})
        with self.db.session() as session:
            repo = RegistryRepository(session)
            card = repo.card(repo.require_version(name, version).id, kind)
            return dict(card.fields) if card is not None else {}

    def update_card(
        self, actor: Principal, name: str, version: int, kind: str, fields: dict[str, str]
    ) -> dict[str, str]:
        """Write editable fields of a card (others keep their text)."""
        fields = check_fields(kind, fields)
        with self.db.session() as session:
            repo = RegistryRepository(session)
            row = repo.require_version(name, version)
            card = repo.card(row.id, kind)
            current = dict(card.fields) if card is not None else {}
            merged = {**current, **fields}
            if merged == current and card is not None:
                return current
            row_id = row.id
        self.events.record(
            actor,
            "model.card.update",
            f"model:{name}/{version}",
            {"kind": kind, "fields": sorted(fields), "sha256": json_sha256(merged)},
        )
        with self.db.session() as session:
            repo = RegistryRepository(session)
            card = repo.card(row_id, kind)
            if card is None:
                card = CardRow(version_id=row_id, kind=kind, fields={})
                session.add(card)
            card.fields = merged
            card.updated_by = actor.user
            card.updated_at = utcnow()
        return merged

    def render_card(
        self,
        name: str,
        version: int,
        kind: CardKind = "model",
        fmt: Literal["markdown", "html"] = "markdown",
    ) -> str:
        import datetime as dt

        from bastion import __version__

        with self.db.session() as session:
            repo = RegistryRepository(session)
            row = repo.require_version(name, version)
            card = repo.card(row.id, kind)
            fairness = repo.latest_evidence(row.id, "fairness")
            drift = repo.latest_evidence(row.id, "drift_baseline")
            context: dict[str, Any] = {
                "v": VersionView.of(row),
                "fields": dict(card.fields) if card is not None else {},
                "fairness": (
                    {
                        **fairness.payload,
                        "recorded": f"{fairness.recorded_at:%Y-%m-%d} by {fairness.recorded_by}",
                    }
                    if fairness is not None
                    else None
                ),
                "drift_rows": drift.payload.get("n_rows") if drift is not None else None,
                "requests": [RequestView.of(r) for r in reversed(repo.requests(version_id=row.id))],
                "history": [StageChangeView.of(c) for c in repo.stage_changes(name, row.id)],
                "bastion_version": __version__,
                "generated_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            }
        return render(kind, fmt, context)

    def regenerate_card(
        self,
        actor: Principal,
        name: str,
        version: int,
        kind: CardKind,
        existing: str | None,
        fields: dict[str, str] | None = None,
        fmt: Literal["markdown", "html"] = "markdown",
    ) -> str:
        """Render a card again, first keeping what people wrote into ``existing``;
        ``fields`` given explicitly win over the file's text."""
        edits = read_edits(kind, existing) if existing else {}
        edits |= fields or {}
        if edits:
            stored = self.card_fields(name, version, kind)
            changed = {k: v for k, v in edits.items() if v != stored.get(k, "")}
            if changed:
                self.update_card(actor, name, version, kind, changed)
        return self.render_card(name, version, kind, fmt)

    # -- verification ---------------------------------------------------------------------

    def verify(
        self, actor: Principal, *, artifacts: bool = True, recover_after: float | None = None
    ) -> VerifyReport:
        """Settle approvals left unfinished (older than ``recover_after`` seconds, default
        the policy's ``recover_after_s``), then compare MLflow's aliases (and artifacts)
        with what Bastion recorded."""
        settled = settle_unfinished(self.parts, actor, recover_after=recover_after)
        with self.db.session() as session:
            rows = [VersionView.of(r) for r in RegistryRepository(session).all_versions()]
        findings: list[VerifyFinding] = []
        names = sorted({r.name for r in rows})
        for name in names:
            expected = {
                r.stage: r.version for r in rows if r.name == name and r.stage in MANAGED_ALIASES
            }
            actual = self.store.aliases(name)
            for alias in MANAGED_ALIASES:
                want, got = expected.get(alias), actual.get(alias)
                if want == got:
                    continue
                if want is None:
                    findings.append(
                        VerifyFinding(
                            name=name,
                            problem="alias_unexpected",
                            alias=alias,
                            version=got,
                            detail=f"alias {alias!r} points at v{got} in MLflow, but Bastion "
                            "approved no version for it",
                        )
                    )
                elif got is None:
                    findings.append(
                        VerifyFinding(
                            name=name,
                            problem="alias_missing",
                            alias=alias,
                            version=want,
                            detail=f"alias {alias!r} was removed in MLflow; Bastion has "
                            f"v{want} there",
                        )
                    )
                else:
                    findings.append(
                        VerifyFinding(
                            name=name,
                            problem="alias_moved",
                            alias=alias,
                            version=got,
                            detail=f"alias {alias!r} points at v{got} in MLflow; Bastion "
                            f"approved v{want}",
                        )
                    )
        checked = 0
        if artifacts:
            for r in rows:
                try:
                    with self.store.model_files(r.source, self.store.local_dir(r.source)) as folder:
                        digest = tree_sha256(folder)
                except ArtifactNotFound:
                    digest = "missing"
                checked += 1
                if digest != r.stored_sha256:
                    findings.append(
                        VerifyFinding(
                            name=r.name,
                            problem="artifact_changed",
                            version=r.version,
                            detail=f"v{r.version}'s files in MLflow no longer match the "
                            f"digest recorded at registration ({r.stored_sha256[:12]}…, now "
                            f"{digest[:12]}…)",
                        )
                    )
        report = VerifyReport(
            models=len(names), versions_checked=checked, findings=findings, settled=settled
        )
        self.events.record(
            actor,
            "model.verify",
            "registry",
            {
                "models": len(names),
                "versions_checked": checked,
                "findings": [f.model_dump() for f in findings[:50]],
                "settled": [a.request_id for a in settled],
            },
            outcome="success" if report.ok else "failure",
        )
        return report
