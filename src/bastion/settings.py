"""The one place Bastion reads its environment.

Every setting is a field of :class:`Settings` (environment prefix ``BASTION_``) and is
documented in ``docs/settings.md``; a test fails when one is not. Build the object once
(``create_app`` and the CLI entry point do) and pass it down.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Bastion's configuration, from ``BASTION_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="BASTION_", extra="ignore")

    home: Path = Field(
        default=Path(".bastion"),
        description="Directory for the embedded database, policy, keys and artifacts.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the governance database; default SQLite in `home`.",
    )
    policy: Path | None = Field(
        default=None,
        description="Path of the governance policy YAML; default `home/policy.yaml`.",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis URL for counters shared by several gateway replicas.",
    )
    redis_prefix: str = Field(
        default="bastion:counters:",
        min_length=1,
        max_length=100,
        description="Prefix of every Redis key the counters use (separates deployments "
        "sharing one Redis).",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Key for keyed digests in the audit ledger; default a key file in `home`.",
    )
    mlflow_tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking URI; default an MLflow SQLite store in `home`.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Minimum level of log records."
    )
    log_format: Literal["json", "text"] = Field(
        default="json", description="`json` (one object per line) or `text` for people."
    )
    policy_reload_interval_s: float = Field(
        default=1.0,
        gt=0,
        description="How often the server checks the policy file for changes (seconds).",
    )
    audit_batch_max: int = Field(
        default=1024, ge=1, description="Most ledger events committed in one group."
    )
    audit_checkpoint_every: int = Field(
        default=10_000,
        ge=1,
        description="Write a signed checkpoint after this many events on a stream.",
    )
    audit_checkpoint_interval_s: float = Field(
        default=60.0,
        gt=0,
        description="Write a signed checkpoint at the first commit this long after the last "
        "one (seconds); one is also written at shutdown.",
    )
    audit_chain_key: SecretStr | None = Field(
        default=None,
        description="Key of the ledger's keyed chain (HMAC); keep it out of the database's "
        "reach. Default derived from the secret key.",
    )
    audit_anchor_dir: Path | None = Field(
        default=None,
        description="Directory (outside the database's reach) where every signed checkpoint "
        "is published as one append-only file; `bastion audit verify --anchors` reads it.",
    )
    audit_witness_url: str | None = Field(
        default=None,
        description="URL a JSON copy of every signed checkpoint is POSTed to (an external "
        "witness).",
    )
    content_key: SecretStr | None = Field(
        default=None,
        description="Key (32 bytes, hex) that wraps each data subject's content key; default "
        "derived from the secret key.",
    )
    retention_sweep_interval_s: float = Field(
        default=3600.0,
        gt=0,
        description="How often the server applies the policy's retention (seconds).",
    )
    usage_refresh_interval_s: float = Field(
        default=60.0,
        ge=0,
        description="How often the server folds new gateway events into the usage rollups "
        "the dashboard and GET /api/usage read (seconds; 0 turns it off: run "
        "`bastion usage refresh` instead).",
    )
    usage_refresh_batch: int = Field(
        default=50_000,
        ge=1,
        description="Most ledger events one usage refresh transaction reads.",
    )
    clock_check_interval_s: float = Field(
        default=900.0,
        gt=0,
        description="How often the server checks legal clocks and alerts on those due "
        "(seconds); each alert is sent once, across replicas.",
    )
    audit_queue_max: int = Field(
        default=50_000,
        ge=1,
        description="Ledger events that may wait for the writer before appends are refused.",
    )
    max_body_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1024, description="Largest request body accepted (bytes)."
    )
    keep_alive_s: int = Field(
        default=75,
        ge=1,
        description="How long an idle client connection is kept open (seconds). Keep it "
        "above the idle timeout of whatever pools connections in front of Bastion (a load "
        "balancer's 60 s, an SDK's pool): when the server closes first, a request sent on "
        "the closing connection meets a reset. uvicorn's own default is 5 s.",
    )
    key_cache_ttl_s: float = Field(
        default=5.0,
        ge=0,
        description="How long a verified API key is trusted before it is looked up again.",
    )
    ui_session_idle_s: float = Field(
        default=1800.0,
        gt=0,
        description="A dashboard session unused this long ends; the next page asks to sign "
        "in again (seconds).",
    )
    ui_session_max_s: float = Field(
        default=43200.0,
        gt=0,
        description="A dashboard session ends this long after sign-in, however busy (seconds).",
    )
    metrics_public: bool = Field(
        default=True,
        description="Serve `/metrics` without an API key (for Prometheus scrapes).",
    )
    metrics_dir: Path | None = Field(
        default=None,
        description="Directory shared by worker processes for Prometheus metrics; set by "
        "`bastion serve --workers N`.",
    )

    gateway_request_timeout_s: float = Field(
        default=600.0,
        gt=0,
        description="Longest a gateway call may take, all retries and fallbacks included "
        "(seconds).",
    )
    gateway_max_retry_wait_s: float = Field(
        default=20.0,
        ge=0,
        description="Longest wait before a retry (an upstream's `Retry-After` beyond this "
        "moves on to the next fallback instead).",
    )
    counters_timeout_s: float = Field(
        default=2.0,
        gt=0,
        description="Socket timeout for Redis counters; past it, `defaults.on_counter_error` "
        "decides (a busy event loop's lag counts against it: keep it well above 0.5 s).",
    )
    pipelines_schema: str = Field(
        default="dbos",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="PostgreSQL schema of the pipeline engine's own tables (DBOS); on "
        "SQLite they live in `pipelines.sqlite` in the home.",
    )
    pipelines_worker_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="A pipeline queue worker not seen for this long is taken for dead: "
        "another worker recovers its unfinished runs (each worker checks in four times "
        "in this period).",
    )
    privacy_hmac_key: SecretStr | None = Field(
        default=None,
        description="Key of the privacy `hash` operator (at least 16 bytes, hex); default "
        "derived from the secret key.",
    )
    privacy_encryption_key: SecretStr | None = Field(
        default=None,
        description="AES-GCM key of the privacy `encrypt` operator (32 bytes, hex); default "
        "derived from the secret key.",
    )

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'bastion.db').resolve()}"

    @property
    def policy_path(self) -> Path:
        return self.policy if self.policy is not None else self.home / "policy.yaml"

    @property
    def resolved_mlflow_tracking_uri(self) -> str:
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{(self.home / 'mlflow.db').resolve()}"


def secret_from_env(name: str) -> SecretStr | None:
    """The value of the environment variable a policy names for a provider's key."""
    value = os.environ.get(name)
    return SecretStr(value) if value else None


def child_environment(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment plus ``extra``, for a command Bastion starts."""
    return dict(os.environ) | extra


def export_to_children(name: str, value: str) -> None:
    """Set a variable for worker processes that the server is about to spawn."""
    os.environ[name] = value


def quiet_mlflow() -> None:
    """MLflow reports usage to its makers unless its own environment switch says not
    to; Bastion runs offline and tells no one about its users. Set before MLflow loads.
    With a tracking server MLflow also prints run links and download progress bars
    into the output of commands (``--json`` among them)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
