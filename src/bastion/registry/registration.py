"""Registering a model version: from an MLflow run or a saved model, with its evidence,
idempotent by the artifact's digest, also under concurrency and after a crash.

Registration reserves (model, artifact digest) in Bastion's database before it writes
to MLflow (``registry_registrations``): of concurrent registrations of one artifact,
one logs the run (for a model given as files) and creates the MLflow version, and the
others wait for it and return it, so there is one MLflow version, one run and one
``model.register`` event. The reservation goes in the transaction that records the
version. One left by a process that died is taken over once older than
``registry.recover_after_s`` (at once when its holder gave up after touching MLflow),
and an MLflow version that process had created is recorded rather than made again.
A lock held across the MLflow calls would serve as well on PostgreSQL, but on SQLite it
would hold the one write lock that the ledger's writer needs meanwhile.
"""

from __future__ import annotations

import contextlib
import secrets
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError

from bastion.audit.repository import EventFilter, EventRepository
from bastion.auth.principal import Principal
from bastion.db import utcnow
from bastion.errors import InvalidInput
from bastion.registry.config import check_name
from bastion.registry.digests import artifact_sha256, dataset_summary, model_sha256, tree_sha256
from bastion.registry.errors import (
    ArtifactIncomplete,
    ArtifactNotFound,
    ClaimLost,
    RegistrationInProgress,
    RunFailed,
    SemverTaken,
)
from bastion.registry.mlflow_store import RunEvidence
from bastion.registry.models import ModelVersionRow, RegistrationRow, StageChangeRow
from bastion.registry.repository import RegistryRepository
from bastion.registry.schemas import Registered, VersionView
from bastion.registry.versioning import check_new_label, parse_semver

if TYPE_CHECKING:
    from bastion.registry.service import ModelRegistry

#: How long a registration waits for another of the same artifact to finish.
WAIT_S = 60.0


@dataclass(frozen=True)
class _Reservation:
    name: str
    digest: str
    claim: str
    taken_over: bool  # from a registration that died or gave up


def register(
    reg: ModelRegistry,
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
    semver: str | None = None,
) -> Registered:
    """Register a version from an MLflow run or a saved scikit-learn model.

    Idempotent by the artifact's SHA-256: registering the same artifact under the same
    name again returns the existing version with ``created`` false, also when the
    registrations run at once. ``semver`` labels the new version (``1.2.0``): valid,
    unique per model and higher than the model's earlier labels
    (:mod:`bastion.registry.versioning`).
    """
    check_name(name)
    if semver is not None:
        semver = str(parse_semver(semver))
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
        run = reg.store.run_evidence(run_id, artifact_path)
        if run.status in ("FAILED", "KILLED"):
            raise RunFailed(
                f"MLflow run {run.run_id} ended {run.status}: its model and metrics may "
                "be incomplete; register a run that finished"
            )
        with reg.store.model_files(run.model_uri, run.model_dir) as folder:
            digest = model_sha256(folder, f"the model of run {run.run_id}")
            digests = (digest, tree_sha256(folder))
    existing = _existing(reg, name, *digests)
    if existing is not None:
        return _again(existing, semver)
    if semver is not None:  # before MLflow is written to
        _check_label(reg, name, semver)
    held = _reserve(reg, actor, name, digests)
    if isinstance(held, VersionView):
        return _again(held, semver)
    in_mlflow = False  # once true, MLflow may hold the version: keep the reservation
    try:
        adopted = _adopt(reg, name, digest, run) if held.taken_over else None
        if adopted is not None:
            in_mlflow = True
            number, run = adopted
        else:
            if run is None:
                assert path is not None
                run = _log_path(reg, path, params or {}, metrics or {}, name)
            in_mlflow = True
            number = _create_version(
                reg, actor, name, run, digest, given_dataset, description, semver
            )
        with reg.store.model_files(run.model_uri, run.model_dir) as folder:
            stored = tree_sha256(folder)
        ds = given_dataset or run.dataset
        if semver is not None:  # another version may have taken the label meanwhile
            _check_label(reg, name, semver)
        if adopted is None or not _recorded(reg, f"model:{name}/{number}"):
            reg._event(
                actor,
                "model.register",
                f"model:{name}/{number}",
                {
                    "artifact_sha256": digest,
                    "run_id": run.run_id,
                    "dataset_digest": ds.get("digest") if ds else None,
                    **({"semver": semver} if semver is not None else {}),
                    **({"recovered": True} if adopted is not None else {}),
                },
            )
        row = ModelVersionRow(
            name=name,
            version=number,
            semver=semver,
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
        with reg.db.session() as session:
            repo = RegistryRepository(session)
            if not repo.end_registration(name, digest, held.claim):
                raise ClaimLost(
                    f"registering {name} took longer than registry.recover_after_s "
                    f"({reg.config.recover_after_s:g} s) and another registration of the "
                    "same artifact took it over: `bastion models show` lists what stands"
                )
            try:
                repo.add(row)
            except IntegrityError as exc:
                if semver is not None and "semver" in str(exc.orig).lower():
                    raise SemverTaken(
                        f"{name} {semver} was given to another version meanwhile"
                    ) from None
                raise
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
        with contextlib.suppress(Exception), reg.db.session() as session:
            repo = RegistryRepository(session)
            if in_mlflow:  # the next registration of this artifact finishes it at once
                repo.give_up_registration(name, digest, held.claim)
            else:
                repo.end_registration(name, digest, held.claim)
        raise


def _check_label(reg: ModelRegistry, name: str, label: str) -> str:
    with reg.db.session() as session:
        return check_new_label(name, label, RegistryRepository(session).semvers(name))


def _again(existing: VersionView, semver: str | None) -> Registered:
    """The artifact is registered already: that version, unless asked to label it
    differently (a label is given once, with the version)."""
    if semver is not None and existing.semver != semver:
        held = f"labelled {existing.semver}" if existing.semver else "without a label"
        raise SemverTaken(
            f"this artifact is {existing.name} version {existing.version} already, "
            f"{held}; a version's label is given once, when it is registered"
        )
    return Registered(created=False, version=existing)


def _reserve(
    reg: ModelRegistry, actor: Principal, name: str, digests: tuple[str, str]
) -> _Reservation | VersionView:
    """Hold (name, digest) for this registration, or the version that another
    registration of the same artifact made while this one waited for it."""
    digest, waited, pause = digests[0], 0.0, 0.02
    while True:
        claim = secrets.token_hex(8)
        held = _hold(reg, actor, name, digest, claim)
        if held is not None:
            # One that finished just before we held it stands.
            existing = _existing(reg, name, *digests)
            if existing is None:
                return _Reservation(name, digest, claim, taken_over=held)
            with reg.db.session() as session:
                RegistryRepository(session).end_registration(name, digest, claim)
            return existing
        existing = _existing(reg, name, *digests)
        if existing is not None:
            return existing
        if waited >= WAIT_S:
            with reg.db.session() as session:
                holder = RegistryRepository(session).registration(name, digest)
                who = holder.claimed_by if holder is not None else "someone"
            raise RegistrationInProgress(
                f"{who} is registering this artifact as {name}: try again in a moment "
                "(a registration whose process died is taken over after "
                f"registry.recover_after_s, {reg.config.recover_after_s:g} s)"
            )
        time.sleep(pause)
        waited, pause = waited + pause, min(pause * 2, 0.5)


def _hold(reg: ModelRegistry, actor: Principal, name: str, digest: str, claim: str) -> bool | None:
    """Reserve (name, digest): False when new, True when taken over from a holder
    that died or gave up, None while another registration holds it."""
    try:
        with reg.db.session() as session:
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
    cutoff = now - timedelta(seconds=reg.config.recover_after_s)
    with reg.db.session() as session:
        taken = RegistryRepository(session).take_over_registration(
            name, digest, claim, actor.user, now, cutoff
        )
    return True if taken else None


def _create_version(
    reg: ModelRegistry,
    actor: Principal,
    name: str,
    run: RunEvidence,
    digest: str,
    dataset: dict[str, Any] | None,
    description: str | None,
    semver: str | None = None,
) -> int:
    ds = dataset or run.dataset
    return reg.store.create_version(
        name,
        run.model_uri,
        run.run_id,
        tags={
            "bastion.artifact_sha256": digest,
            "bastion.dataset_digest": str(ds.get("digest")) if ds else "",
            "bastion.stage": "development",
            "bastion.registered_by": actor.user,
            **({"bastion.semver": semver} if semver is not None else {}),
            # What _adopt needs to finish a registration that died.
            "bastion.source": run.model_uri,
        },
        description=description or "",
    )


def _adopt(
    reg: ModelRegistry, name: str, digest: str, run: RunEvidence | None
) -> tuple[int, RunEvidence] | None:
    """The MLflow version that a registration which died had made, and its run."""
    with reg.db.session() as session:
        known = {r.version for r in RegistryRepository(session).versions(name)}
    found = reg.store.unrecorded_version(name, digest, known)
    if found is None:
        return None
    number, run_id, source = found
    if run is not None and run.run_id == run_id:
        return number, run
    if run_id is None or source is None:
        return None  # not one of ours (no bastion.source tag): make a version anew
    prefix = f"runs:/{run_id}/"
    sub = source.removeprefix(prefix) if source.startswith(prefix) else None
    return number, reg.store.run_evidence(run_id, sub)


def _recorded(reg: ModelRegistry, resource: str) -> bool:
    """Whether the ledger has the registration of ``resource`` already."""
    events = EventRepository(reg.db).page(
        EventFilter(action="model.register", resource=resource), limit=1
    )
    return bool(events.events)


def _existing(reg: ModelRegistry, name: str, *digests: str) -> VersionView | None:
    with reg.db.session() as session:
        repo = RegistryRepository(session)
        for digest in dict.fromkeys(digests):
            row = repo.version_by_digest(name, digest)
            if row is not None:
                return VersionView.of(row)
        return None


def _log_path(
    reg: ModelRegistry, path: Path, params: dict[str, Any], metrics: dict[str, float], name: str
) -> RunEvidence:
    tags = {"bastion.model": name, "bastion.source": str(path)}
    str_params = {k: str(v) for k, v in params.items()}
    if path.is_dir():  # checked whole by artifact_sha256
        return reg.store.log_model_folder(path, params=str_params, metrics=metrics, tags=tags)
    model = _load_pickled(path)
    from bastion.registry.mlflow_store import save_sklearn_model

    with tempfile.TemporaryDirectory(prefix="bastion-model-") as tmp:
        folder = Path(tmp) / "model"
        save_sklearn_model(model, folder)
        return reg.store.log_model_folder(folder, params=str_params, metrics=metrics, tags=tags)


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
