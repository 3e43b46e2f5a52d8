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

Registration reserves (model, artifact digest) in Bastion's database before it writes
to MLflow: of concurrent registrations of one artifact, one creates the MLflow version
and the others wait for it and return it. A reservation left by a process that died is
taken over once older than ``registry.recover_after_s``, and an MLflow version that
process had created is recorded rather than made again.
"""

from __future__ import annotations

import contextlib
import secrets
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy.exc import IntegrityError

from bastion.audit.events import EventIn, Ledger
from bastion.audit.repository import EventFilter, EventRepository
from bastion.auth.principal import Principal
from bastion.db import Database, utcnow
from bastion.errors import InvalidInput
from bastion.registry import promotion
from bastion.registry.cards import CardKind, check_fields, read_edits, render
from bastion.registry.config import check_name
from bastion.registry.digests import (
    artifact_sha256,
    dataset_summary,
    json_sha256,
    model_sha256,
    tree_sha256,
)
from bastion.registry.errors import (
    ArtifactIncomplete,
    ArtifactNotFound,
    ClaimLost,
    InvalidEvidence,
    InvalidTransition,
    ModelNotFound,
    RegistrationInProgress,
    RequestNotFound,
    RunFailed,
    VersionNotFound,
)
from bastion.registry.gates import Evidence, GateResult, evaluate
from bastion.registry.mlflow_store import MANAGED_ALIASES, MlflowStore, RunEvidence
from bastion.registry.models import (
    CardRow,
    EvidenceRow,
    ModelVersionRow,
    PromotionRequestRow,
    RegistrationRow,
    StageChangeRow,
)
from bastion.registry.promotion import PROMOTE_FROM
from bastion.registry.recovery import settle_unfinished
from bastion.registry.repository import RegistryRepository
from bastion.registry.schemas import (
    EvidenceView,
    Lineage,
    ModelSummary,
    Registered,
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
    from bastion.runtime import Runtime

EVIDENCE_FORMATS = {"fairness": "bastion.fairness/1", "drift_baseline": "bastion.profile/1"}
#: How long a registration waits for another of the same artifact to finish.
REGISTRATION_WAIT_S = 60.0


@dataclass(frozen=True)
class _Reservation:
    name: str
    digest: str
    claim: str
    taken_over: bool  # from a registration that died or gave up


class ModelRegistry:
    def __init__(
        self, db: Database, ledger: Ledger, policy: PolicyStore, store: MlflowStore
    ) -> None:
        self.db = db
        self.ledger = ledger
        self.policy = policy
        self.store = store

    @classmethod
    def from_runtime(cls, runtime: Runtime) -> ModelRegistry:
        settings = runtime.settings
        store = MlflowStore(settings.resolved_mlflow_tracking_uri, settings.home / "mlartifacts")
        return cls(runtime.db, runtime.ledger, runtime.policy, store)

    @property
    def config(self) -> RegistryPolicy:
        return self.policy.policy.registry

    def _event(
        self,
        actor: Principal,
        action: str,
        resource: str,
        details: dict[str, Any],
        outcome: str = "success",
    ) -> None:
        self.ledger.append(
            EventIn(
                actor=actor.actor,
                action=action,
                resource=resource,
                outcome=outcome,
                details=details,
            )
        )

    # -- registration ---------------------------------------------------------------------

    def register(
        self,
        actor: Principal,
        name: str,
        *,
        run_id: str | None = None,
        path: Path | None = None,
        artifact_path: str | None = None,
        dataset_path: Path | None = None,
        dataset: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        metrics: dict[str, float] | None = None,
        training_seconds: float | None = None,
        author: str | None = None,
        code_version: str | None = None,
        description: str | None = None,
    ) -> Registered:
        """Register a version from an MLflow run or a saved scikit-learn model.

        Idempotent by the artifact's SHA-256: registering the same artifact under the same
        name again returns the existing version with ``created`` false, also when the
        registrations run at once (see the module's docstring).
        """
        check_name(name)
        if (run_id is None) == (path is None):
            raise InvalidInput(
                "give exactly one of a run id or a model path", code="model_source_required"
            )
        given_dataset = dataset_summary(dataset_path) if dataset_path is not None else dataset
        run: RunEvidence | None = None
        if path is not None:
            digest = artifact_sha256(path)
            # Versions registered before MLmodel's stamps were left out of the key.
            digests = (digest, tree_sha256(path) if path.is_dir() else digest)
        else:
            assert run_id is not None
            run = self.store.run_evidence(run_id, artifact_path)
            if run.status in ("FAILED", "KILLED"):
                raise RunFailed(
                    f"MLflow run {run.run_id} ended {run.status}: its model and metrics may "
                    "be incomplete; register a run that finished"
                )
            with self.store.model_files(run.model_uri, run.model_dir) as folder:
                digest = model_sha256(folder, f"the model of run {run.run_id}")
                digests = (digest, tree_sha256(folder))
        existing = self._existing(name, *digests)
        if existing is not None:
            return Registered(created=False, version=existing)
        held = self._reserve(actor, name, digests)
        if isinstance(held, VersionView):
            return Registered(created=False, version=held)
        in_mlflow = False  # once true, MLflow may hold the version: keep the reservation
        try:
            adopted = self._adopt(name, digest, run) if held.taken_over else None
            if adopted is not None:
                in_mlflow = True
                number, run = adopted
            else:
                if run is None:
                    assert path is not None
                    run = self._log_path(path, params or {}, metrics or {}, name)
                in_mlflow = True
                number = self._create_version(actor, name, run, digest, given_dataset, description)
            with self.store.model_files(run.model_uri, run.model_dir) as folder:
                stored = tree_sha256(folder)
            ds = given_dataset or run.dataset
            if adopted is None or not self._recorded(f"model:{name}/{number}"):
                self._event(
                    actor,
                    "model.register",
                    f"model:{name}/{number}",
                    {
                        "artifact_sha256": digest,
                        "run_id": run.run_id,
                        "dataset_digest": ds.get("digest") if ds else None,
                        **({"recovered": True} if adopted is not None else {}),
                    },
                )
            row = ModelVersionRow(
                name=name,
                version=number,
                run_id=run.run_id,
                source=run.model_uri,
                artifact_sha256=digest,
                stored_sha256=stored,
                dataset=ds,
                params={**run.params, **{k: str(v) for k, v in (params or {}).items()}},
                metrics={**run.metrics, **(metrics or {})},
                training_seconds=training_seconds
                if training_seconds is not None
                else run.training_seconds,
                author=author or run.author or actor.user,
                code_version=code_version or run.code_version,
                description=description,
                registered_by=actor.user,
                registered_at=utcnow(),
                stage="development",
                stage_changed_at=utcnow(),
            )
            with self.db.session() as session:
                repo = RegistryRepository(session)
                if not repo.end_registration(name, digest, held.claim):
                    raise ClaimLost(
                        f"registering {name} took longer than registry.recover_after_s "
                        f"({self.config.recover_after_s:g} s) and another registration of the "
                        "same artifact took it over: `bastion models show` lists what stands"
                    )
                repo.add(row)
                repo.add(
                    StageChangeRow(
                        version_id=row.id,
                        name=name,
                        version=number,
                        from_stage=None,
                        to_stage="development",
                        kind="registration",
                        actor=actor.user,
                        at=utcnow(),
                        details={},
                    )
                )
                return Registered(created=True, version=VersionView.of(row))
        except ClaimLost:
            raise
        except BaseException:
            # The error that stopped it is the one to report, not this clean-up's.
            with contextlib.suppress(Exception), self.db.session() as session:
                repo = RegistryRepository(session)
                if in_mlflow:  # the next registration of this artifact finishes it at once
                    repo.give_up_registration(name, digest, held.claim)
                else:
                    repo.end_registration(name, digest, held.claim)
            raise

    def _reserve(
        self, actor: Principal, name: str, digests: tuple[str, str]
    ) -> _Reservation | VersionView:
        """Hold (name, digest) for this registration, or the version that another
        registration of the same artifact made while this one waited for it."""
        digest, waited, pause = digests[0], 0.0, 0.02
        while True:
            claim = secrets.token_hex(8)
            held = self._hold(actor, name, digest, claim)
            if held is not None:
                # Recorded before we held it: theirs stands.
                existing = self._existing(name, *digests)
                if existing is None:
                    return _Reservation(name, digest, claim, taken_over=held)
                with self.db.session() as session:
                    RegistryRepository(session).end_registration(name, digest, claim)
                return existing
            existing = self._existing(name, *digests)
            if existing is not None:
                return existing
            if waited >= REGISTRATION_WAIT_S:
                with self.db.session() as session:
                    holder = RegistryRepository(session).registration(name, digest)
                    who = holder.claimed_by if holder is not None else "someone"
                raise RegistrationInProgress(
                    f"{who} is registering this artifact as {name}: try again in a moment "
                    "(a registration whose process died is taken over after "
                    f"registry.recover_after_s, {self.config.recover_after_s:g} s)"
                )
            time.sleep(pause)
            waited, pause = waited + pause, min(pause * 2, 0.5)

    def _hold(self, actor: Principal, name: str, digest: str, claim: str) -> bool | None:
        """Reserve (name, digest): False when new, True when taken over from a holder
        that died or gave up, None while another registration holds it."""
        try:
            with self.db.session() as session:
                session.add(
                    RegistrationRow(
                        name=name,
                        artifact_sha256=digest,
                        claim_id=claim,
                        claimed_by=actor.user,
                        claimed_at=utcnow(),
                    )
                )
            return False
        except IntegrityError:
            pass
        now = utcnow()
        cutoff = now - timedelta(seconds=self.config.recover_after_s)
        with self.db.session() as session:
            taken = RegistryRepository(session).take_over_registration(
                name, digest, claim, actor.user, now, cutoff
            )
        return True if taken else None

    def _create_version(
        self,
        actor: Principal,
        name: str,
        run: RunEvidence,
        digest: str,
        dataset: dict[str, Any] | None,
        description: str | None,
    ) -> int:
        ds = dataset or run.dataset
        return self.store.create_version(
            name,
            run.model_uri,
            run.run_id,
            tags={
                "bastion.artifact_sha256": digest,
                "bastion.dataset_digest": str(ds.get("digest")) if ds else "",
                "bastion.stage": "development",
                "bastion.registered_by": actor.user,
                # What :meth:`_adopt` needs to finish a registration that died.
                "bastion.source": run.model_uri,
            },
            description=description or "",
        )

    def _adopt(
        self, name: str, digest: str, run: RunEvidence | None
    ) -> tuple[int, RunEvidence] | None:
        """The MLflow version that a registration which died had made, and its run."""
        with self.db.session() as session:
            known = {r.version for r in RegistryRepository(session).versions(name)}
        found = self.store.unrecorded_version(name, digest, known)
        if found is None:
            return None
        number, run_id, source = found
        if run is not None and run.run_id == run_id:
            return number, run
        if run_id is None or source is None:
            return None  # not one of ours (no bastion.source tag): make a version anew
        prefix = f"runs:/{run_id}/"
        sub = source.removeprefix(prefix) if source.startswith(prefix) else None
        return number, self.store.run_evidence(run_id, sub)

    def _recorded(self, resource: str) -> bool:
        """Whether the ledger has the registration of ``resource`` already."""
        events = EventRepository(self.db).page(
            EventFilter(action="model.register", resource=resource), limit=1
        )
        return bool(events.events)

    def _existing(self, name: str, *digests: str) -> VersionView | None:
        with self.db.session() as session:
            repo = RegistryRepository(session)
            for digest in dict.fromkeys(digests):
                row = repo.version_by_digest(name, digest)
                if row is not None:
                    return VersionView.of(row)
            return None

    def _log_path(
        self, path: Path, params: dict[str, Any], metrics: dict[str, float], name: str
    ) -> RunEvidence:
        tags = {"bastion.model": name, "bastion.source": str(path)}
        str_params = {k: str(v) for k, v in params.items()}
        if path.is_dir():  # checked whole by artifact_sha256
            return self.store.log_model_folder(path, params=str_params, metrics=metrics, tags=tags)
        model = _load_pickled(path)
        from bastion.registry.mlflow_store import save_sklearn_model

        with tempfile.TemporaryDirectory(prefix="bastion-model-") as tmp:
            folder = Path(tmp) / "model"
            save_sklearn_model(model, folder)
            return self.store.log_model_folder(
                folder, params=str_params, metrics=metrics, tags=tags
            )

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

    def _row(self, repo: RegistryRepository, name: str, version: int) -> ModelVersionRow:
        row = repo.version(name, version)
        if row is None:
            if not repo.versions(name):
                raise ModelNotFound(
                    f"no model {name!r} in the registry: `bastion models list` shows them"
                )
            raise VersionNotFound(
                f"model {name!r} has no version {version}: `bastion models show {name}` "
                "lists its versions"
            )
        return row

    def get_version(self, name: str, version: int) -> VersionView:
        with self.db.session() as session:
            return VersionView.of(self._row(RegistryRepository(session), name, version))

    def detail(self, name: str, version: int) -> VersionDetail:
        with self.db.session() as session:
            repo = RegistryRepository(session)
            row = self._row(repo, name, version)
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
            row = self._row(repo, name, version)
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
            return RequestView.of(self._request(RegistryRepository(session), request_id))

    def _request(self, repo: RegistryRepository, request_id: str) -> PromotionRequestRow:
        row = repo.request(request_id)
        if row is None:
            raise RequestNotFound(
                f"no promotion request {request_id!r}: `bastion models requests` lists them"
            )
        return row

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
            row_id = self._row(RegistryRepository(session), name, version).id
        self._event(
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

    def _evidence(self, repo: RegistryRepository, row: ModelVersionRow) -> Evidence:
        prod = repo.holder(row.name, "production")
        fairness = repo.latest_evidence(row.id, "fairness")
        drift = repo.latest_evidence(row.id, "drift_baseline")
        card = repo.card(row.id, "model")
        return Evidence(
            metrics=row.metrics or {},
            production_version=prod.version if prod is not None and prod.id != row.id else None,
            production_metrics=(prod.metrics or {})
            if prod is not None and prod.id != row.id
            else None,
            fairness=fairness.payload if fairness is not None else None,
            card_fields=card.fields if card is not None else None,
            drift_baseline=drift.payload if drift is not None else None,
        )

    def check_gates(self, name: str, version: int, stage: str) -> list[GateResult]:
        """The gates a version would meet or fail for ``stage``, without asking."""
        if stage not in PROMOTE_FROM:
            raise InvalidTransition(f"no gates for stage {stage!r}: use staging or production")
        with self.db.session() as session:
            repo = RegistryRepository(session)
            row = self._row(repo, name, version)
            return evaluate(self.config.gates_for(stage, name), self._evidence(repo, row))

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
        return promotion.request_promotion(self, actor, name, version, to, reason, overrides)

    def approve(
        self,
        actor: Principal,
        request_id: str,
        notes: str | None = None,
        overrides: dict[str, str] | None = None,
    ) -> RequestView:
        """Approve (never one's own request): gates again, then the alias moves."""
        return promotion.approve(self, actor, request_id, notes, overrides)

    def reject(self, actor: Principal, request_id: str, notes: str) -> RequestView:
        return promotion.reject(self, actor, request_id, notes)

    def rollback(self, actor: Principal, name: str, reason: str) -> VersionView:
        """Emergency: production goes back to the version that was there before, at once."""
        return promotion.rollback(self, actor, name, reason)

    def archive(self, actor: Principal, name: str, version: int, reason: str) -> VersionView:
        return promotion.archive(self, actor, name, version, reason)

    # -- cards --------------------------------------------------------------------------

    def card_fields(self, name: str, version: int, kind: str) -> dict[str, str]:
        check_fields(kind, {})
        with self.db.session() as session:
            repo = RegistryRepository(session)
            card = repo.card(self._row(repo, name, version).id, kind)
            return dict(card.fields) if card is not None else {}

    def update_card(
        self, actor: Principal, name: str, version: int, kind: str, fields: dict[str, str]
    ) -> dict[str, str]:
        """Write editable fields of a card (others keep their text)."""
        fields = check_fields(kind, fields)
        with self.db.session() as session:
            repo = RegistryRepository(session)
            row = self._row(repo, name, version)
            card = repo.card(row.id, kind)
            current = dict(card.fields) if card is not None else {}
            merged = {**current, **fields}
            if merged == current and card is not None:
                return current
            row_id = row.id
        self._event(
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
            row = self._row(repo, name, version)
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
        settled = settle_unfinished(self, actor, recover_after=recover_after)
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
        self._event(
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


def _load_pickled(path: Path) -> Any:
    """A pickled or joblib-dumped scikit-learn model. Unpickling runs code from the file:
    register only models your own pipelines produced."""
    suffix = path.suffix.lower()
    if suffix not in (".pkl", ".pickle", ".joblib"):
        raise ArtifactNotFound(
            f"cannot read {path.name}: give a .pkl/.joblib file or an MLflow model folder"
        )
    import joblib  # type: ignore[import-untyped]

    try:
        model = joblib.load(path)
    except EOFError as exc:
        raise ArtifactIncomplete(
            f"{path} ends before the model does: the file is cut short (a copy or upload "
            "that stopped half way?)"
        ) from exc
    except Exception as exc:
        raise ArtifactNotFound(f"could not load a model from {path}: {exc}") from exc
    if not hasattr(model, "predict"):
        raise ArtifactNotFound(f"{path} holds a {type(model).__name__}, not a fitted model")
    return model
