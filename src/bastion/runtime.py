"""Build Bastion's services from :class:`Settings`: what the server and the CLI share.

Nothing here runs at import; :func:`open_runtime` does the I/O (home directory, key
files, database, policy) and :meth:`Runtime.close` undoes it.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bastion.audit import (
    AuditService,
    ChainKey,
    Digester,
    EventIn,
    LedgerUnavailable,
    LedgerWriter,
    Signer,
    load_or_create_signer,
)
from bastion.audit.anchors import AnchorPublisher
from bastion.audit.vault import ContentVault
from bastion.auth.principal import Principal
from bastion.auth.service import KeyService
from bastion.db import Database, create_database
from bastion.evidence.sources import SourceDigester
from bastion.files import create_private_file
from bastion.observability import Metrics
from bastion.policy import PolicyStore, ReloadOutcome, write_starter_policy
from bastion.policy.history import PolicyHistory, write_policy_text
from bastion.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Callable

    from bastion.audit.retention import RetentionSweeper
    from bastion.auth.sessions import SessionService
    from bastion.gateway.health import HealthReport
    from bastion.registry.service import ModelRegistry
    from bastion.serving.service import PredictionService
    from bastion.subjects.service import SubjectService
    from bastion.usage.service import UsageService

log = logging.getLogger("bastion")


def ensure_home(settings: Settings) -> Path:
    home = settings.home
    # The home holds the database, content and keys: for its owner only.
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    return home


def secret_key(settings: Settings) -> bytes:
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    path = settings.home / "secret.key"
    if not path.exists():
        create_private_file(path, secrets.token_hex(32).encode())
    return path.read_text().strip().encode()


def chain_key(settings: Settings) -> ChainKey:
    """The keyed chain's key: from settings, else derived from the secret key (a file in
    the home directory, not in the database)."""
    if settings.audit_chain_key is not None:
        return ChainKey(settings.audit_chain_key.get_secret_value().encode())
    return ChainKey(hmac.digest(secret_key(settings), b"bastion-audit-chain-key", "sha256"))


def content_kek(settings: Settings) -> bytes:
    if settings.content_key is not None:
        try:
            key = bytes.fromhex(settings.content_key.get_secret_value())
        except ValueError:
            key = b""
        if len(key) != 32:
            raise ValueError("BASTION_CONTENT_KEY must be 32 bytes written as 64 hex digits")
        return key
    return hmac.digest(secret_key(settings), b"bastion-content-kek", "sha256")


def vault_for(settings: Settings, db: Database, key: ChainKey) -> ContentVault:
    return ContentVault(db, content_kek(settings), key.digest_of)


def publisher_for(settings: Settings) -> AnchorPublisher:
    return AnchorPublisher(settings.audit_anchor_dir, settings.audit_witness_url)


def signer_for(settings: Settings) -> Signer:
    return load_or_create_signer(settings.home / "audit-signing-key.pem")


@dataclass
class Runtime:
    settings: Settings
    db: Database
    policy: PolicyStore
    ledger: LedgerWriter
    keys: KeyService
    audit: AuditService
    metrics: Metrics
    signer: Signer
    closed: bool = field(default=False)
    _registry: ModelRegistry | None = field(default=None, repr=False)
    _serving: PredictionService | None = field(default=None, repr=False)
    _sessions: SessionService | None = field(default=None, repr=False)
    _building: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _sources: SourceDigester | None = field(default=None, repr=False)

    def source_of(self, host: str | None) -> str | None:
        """The keyed digest a call from ``host`` is recorded under (the policy says how
        much of the address counts, or that none is recorded)."""
        if self._sources is None:
            key = self.ledger.chain_key or chain_key(self.settings)
            self._sources = SourceDigester(key.digest_of)
        return self._sources.digest(host, self.policy.policy.evidence.access)

    def registry(self) -> ModelRegistry:
        """The model registry, built once on first use (opening MLflow costs seconds, and
        the gateway never needs it) and closed with the runtime."""
        registry = self._registry
        if registry is None:
            with self._building:
                registry = self._registry
                if registry is None:
                    registry = self._registry = build_registry(self)
        return registry

    def serving(self) -> PredictionService:
        """The prediction service (model cache, prediction log), built once on first use
        over the registry's MLflow store and closed with the runtime."""
        serving = self._serving
        if serving is None:
            registry = self.registry()
            with self._building:
                serving = self._serving
                if serving is None:
                    from bastion.serving.setup import build_serving

                    serving = self._serving = build_serving(
                        self.db,
                        self.policy,
                        self.metrics,
                        registry,
                        home=self.settings.home,
                        secret=secret_key(self.settings),
                    )
        return serving

    def sessions(self) -> SessionService:
        """The dashboard's sessions (sign-in, expiry, CSRF tokens), built on first use."""
        sessions = self._sessions
        if sessions is None:
            from bastion.auth.sessions import SessionService

            with self._building:
                sessions = self._sessions
                if sessions is None:
                    sessions = self._sessions = SessionService(
                        self.db,
                        self.keys,
                        self.ledger,
                        idle_s=self.settings.ui_session_idle_s,
                        max_s=self.settings.ui_session_max_s,
                        secret=secret_key(self.settings),
                    )
        return sessions

    def reload_policy(self, actor: Principal | str, trigger: str) -> ReloadOutcome:
        """Reload the policy file; record the attempt in the ledger, the log and metrics."""
        outcome = self.policy.reload()
        who = actor if isinstance(actor, str) else actor.actor
        if outcome.error is not None:
            self.metrics.policy_reloads.labels("error").inc()
            log.error(
                "policy reload rejected; the previous policy stays in force",
                extra={"trigger": trigger, "errors": [str(i) for i in outcome.error.issues]},
            )
            result, details = "failure", {"trigger": trigger, "errors": len(outcome.error.issues)}
        elif outcome.changed:
            self.metrics.policy_reloads.labels("success").inc()
            self.metrics.policy_loaded_timestamp.set_to_current_time()
            log.info("policy reloaded", extra={"trigger": trigger, "digest": outcome.digest})
            _log_notices(self.policy)
            result, details = "success", {"trigger": trigger}
        else:
            self.metrics.policy_reloads.labels("unchanged").inc()
            return outcome
        details |= {"digest": outcome.digest, "previous_digest": outcome.previous_digest}
        if result == "success":
            self.record_policy(who, trigger, outcome.previous_digest)
        try:
            self.ledger.append(
                EventIn(
                    actor=who,
                    action="policy.reload",
                    resource="policy",
                    outcome=result,
                    details=details,
                )
            )
        except LedgerUnavailable:
            log.error("policy reload could not be recorded in the ledger")
        return outcome

    def record_policy(self, who: str, trigger: str, previous: str | None = None) -> None:
        """Keep the policy in force in the history (a failure is logged, never raised:
        the policy is in force whether or not its history row could be written)."""
        try:
            PolicyHistory(self.db).record(
                self.policy.current, by=who, trigger=trigger, previous=previous
            )
        except Exception:
            log.exception("the policy version could not be recorded in the history")

    def rollback_policy(self, version: int, actor: str) -> ReloadOutcome:
        """Restore policy ``version``: write its text to the file, reload, record both."""
        text = PolicyHistory(self.db).text_of(version)
        write_policy_text(self.policy.path, text)
        self.ledger.append(
            EventIn(
                actor=actor,
                action="policy.rollback",
                resource="policy",
                outcome="success",
                details={"version": version},
            )
        )
        return self.reload_policy(actor, f"rollback:{version}")

    def retention(self) -> RetentionSweeper:
        from bastion.audit.retention import RetentionSweeper

        publisher = publisher_for(self.settings)
        return RetentionSweeper(self.db, self.signer, self.ledger, publisher)

    def subjects(self) -> SubjectService:
        from bastion.subjects.service import SubjectService

        key = chain_key(self.settings)
        return SubjectService(self.db, self.ledger, key, vault_for(self.settings, self.db, key))

    def usage(self, health: Callable[[], HealthReport] | None = None) -> UsageService:
        """Usage rollups and what they show (``health``: a gateway's breakers, for alerts)."""
        from bastion.evidence.clocks import ClockService
        from bastion.usage.service import UsageService

        return UsageService(
            self.db,
            self.policy,
            clocks=ClockService(self.db, self.ledger),
            health=health,
            refresh_batch=self.settings.usage_refresh_batch,
        )

    def close(self) -> None:
        if not self.closed:
            if self._serving is not None:
                self._serving.close()
            if self._registry is not None:
                self._registry.close()
            self.ledger.close()
            self.db.dispose()
            self.closed = True


def build_registry(runtime: Runtime) -> ModelRegistry:
    from bastion.registry.mlflow_store import MlflowStore
    from bastion.registry.service import ModelRegistry

    settings = runtime.settings
    store = MlflowStore(settings.resolved_mlflow_tracking_uri, settings.home / "mlartifacts")
    return ModelRegistry(runtime.db, runtime.ledger, runtime.policy, store)


def _log_notices(policy: PolicyStore) -> None:
    for note in policy.policy.notices():
        log.warning("policy notice: %s", note, extra={"path": str(policy.path)})


def open_runtime(
    settings: Settings,
    *,
    label: str = "server",
    write_policy: bool = False,
    metrics: Metrics | None = None,
) -> Runtime:
    """Open everything; raises :class:`SchemaBehind` or :class:`PolicyError` with advice."""
    ensure_home(settings)
    # Only at the default path: a BASTION_POLICY that names a missing file is an error.
    if write_policy and settings.policy is None and write_starter_policy(settings.policy_path):
        log.info("wrote a starter policy", extra={"path": str(settings.policy_path)})
    db = create_database(settings.resolved_database_url)
    try:
        from bastion.db.revision import is_current

        if not is_current(db.engine):  # Alembic only to explain what is wrong
            from bastion.db.migrate import check_current

            check_current(db.engine)
        policy = PolicyStore(settings.policy_path)
        policy.load()
        _log_notices(policy)
        signer = signer_for(settings)
        key = chain_key(settings)
        ledger = LedgerWriter(
            db,
            Digester(secret_key(settings)),
            signer,
            label=label,
            batch_max=settings.audit_batch_max,
            queue_max=settings.audit_queue_max,
            checkpoint_every=settings.audit_checkpoint_every,
            checkpoint_interval_s=settings.audit_checkpoint_interval_s,
            chain_key=key,
            publisher=publisher_for(settings),
            vault=vault_for(settings, db, key),
        )
        ledger.start()
    except BaseException:
        db.dispose()
        raise
    metrics = metrics or Metrics(settings.metrics_dir)
    metrics.policy_loaded_timestamp.set_to_current_time()
    keys = KeyService(db, policy, ledger, cache_ttl_s=settings.key_cache_ttl_s)
    runtime = Runtime(
        settings=settings,
        db=db,
        policy=policy,
        ledger=ledger,
        keys=keys,
        audit=AuditService(db, ledger, ledger.digester, ledger.vault, chain_key=key),
        metrics=metrics,
        signer=signer,
    )
    runtime.record_policy("system", "startup")
    return runtime
