"""``bastion doctor``: check the environment and the configuration, one finding a check.

Each check runs on its own and never stops the others: a wrong database URL is reported
as such, and the policy, the signing key, Redis and the clock are still looked at. A
finding says what is wrong and what to do about it.

Findings are ``ok``, ``warn`` (works, but not as a production deployment should) or
``fail`` (something a server or a command will trip over); ``bastion doctor`` exits 1
when any check fails.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from bastion.settings import Settings

State = Literal["ok", "warn", "fail"]

#: Allowed difference between this machine's clock and the database's or Redis's.
CLOCK_TOLERANCE_S = 5.0
#: A clock before this is not set (a machine that booted at the epoch, a dead RTC).
EARLIEST_SANE = datetime(2025, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Finding:
    check: str
    state: State
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"check": self.check, "state": self.state, "detail": self.detail, "fix": self.fix}


@dataclass
class Context:
    """What the checks share: settings, and what earlier checks learnt."""

    settings: Settings
    has_env: Callable[[str], bool]
    database_ok: bool = False
    database_now: datetime | None = None
    redis_now: datetime | None = None


def redacted(url: str) -> str:
    """A URL without its password (for SQLAlchemy and Redis URLs alike)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{netloc[-1]}"))


def _reason(exc: BaseException) -> str:
    """The first line of an exception, short enough for a table cell."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first[:200]}" if first else type(exc).__name__


def _private(path: Path) -> str | None:
    """Why a file of secrets is not private to its owner, or None when it is."""
    info = path.stat()
    if info.st_uid != os.getuid():
        return f"{path} belongs to uid {info.st_uid}, not to this user ({os.getuid()})"
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        return f"{path} has mode {mode:o}: group or others can read it"
    return None


def check_home(ctx: Context) -> Finding:
    home = ctx.settings.home
    if not home.exists():
        return Finding(
            "home",
            "warn",
            f"{home} does not exist yet",
            "`bastion db upgrade` or `bastion serve` creates it (mode 700)",
        )
    if not os.access(home, os.W_OK):
        return Finding("home", "fail", f"{home} is not writable", f"chown or chmod u+w {home}")
    mode = stat.S_IMODE(home.stat().st_mode)
    if mode & 0o077:
        return Finding(
            "home",
            "warn",
            f"{home} has mode {mode:o}: it holds the database, content and keys",
            f"chmod 700 {home}",
        )
    return Finding("home", "ok", str(home))


def check_database(ctx: Context) -> Finding:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    url = ctx.settings.resolved_database_url
    shown = redacted(url)
    fix = "set BASTION_DATABASE_URL to a reachable database (see docs/settings.md)"
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        return Finding("database", "fail", f"{shown} is not a database URL: {exc}", fix)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        path = Path(str(parsed.database))
        if not path.exists():
            return Finding(
                "database", "fail", f"{path} does not exist yet", "run `bastion db upgrade`"
            )
    connect_args = {"connect_timeout": 3} if parsed.get_backend_name() == "postgresql" else {}
    try:
        engine = create_engine(url, connect_args=connect_args)
    except (ArgumentError, ImportError, SQLAlchemyError) as exc:
        return Finding("database", "fail", f"{shown}: {_reason(exc)}", fix)
    try:
        with engine.connect() as conn:
            if parsed.get_backend_name() == "postgresql":
                ctx.database_now = conn.execute(text("SELECT now()")).scalar_one()
            else:
                conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        return Finding("database", "fail", f"cannot connect to {shown}: {_reason(exc)}", fix)
    finally:
        engine.dispose()
    ctx.database_ok = True
    return Finding("database", "ok", f"{shown} reachable")


def check_migrations(ctx: Context) -> Finding:
    from bastion.db import create_database
    from bastion.db.revision import HEAD, stored_revision

    if not ctx.database_ok:
        return Finding("migrations", "fail", "not checked: the database is not reachable")
    db = create_database(ctx.settings.resolved_database_url)
    try:
        current = stored_revision(db.engine)
    finally:
        db.dispose()
    if current == HEAD:
        return Finding("migrations", "ok", f"schema current ({HEAD})")
    state = "missing" if current is None else f"at {current}, the code needs {HEAD}"
    return Finding("migrations", "fail", f"schema {state}", "run `bastion db upgrade`")


def check_redis(ctx: Context) -> Finding:
    url = ctx.settings.redis_url
    if not url:
        return Finding(
            "redis", "ok", "not configured: counters are in-process (one server process)"
        )
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        seconds, micros = client.time()
    except (redis.RedisError, OSError, ValueError) as exc:
        return Finding(
            "redis",
            "fail",
            f"cannot reach {redacted(url)}: {_reason(exc)}",
            "start Redis or fix BASTION_REDIS_URL (unset it for in-process counters)",
        )
    finally:
        client.close()
    ctx.redis_now = datetime.fromtimestamp(seconds + micros / 1e6, tz=UTC)
    return Finding("redis", "ok", f"{redacted(url)} reachable")


def check_policy(ctx: Context) -> Finding:
    from bastion.policy import PolicyError, load_policy

    path = ctx.settings.policy_path
    if not path.exists():
        if ctx.settings.policy is not None:
            return Finding(
                "policy", "fail", f"{path} does not exist", "fix BASTION_POLICY or write the file"
            )
        return Finding(
            "policy", "warn", f"{path} not written yet", "`bastion serve` writes a starter"
        )
    try:
        loaded = load_policy(path)
    except PolicyError as exc:
        issues = "; ".join(str(issue) for issue in exc.issues[:3])
        more = f" (and {len(exc.issues) - 3} more)" if len(exc.issues) > 3 else ""
        return Finding(
            "policy", "fail", f"{path} is invalid: {issues}{more}", f"bastion policy check {path}"
        )
    return Finding("policy", "ok", f"{path} valid ({loaded.digest[:19]})")


def check_signing_key(ctx: Context) -> Finding:
    from bastion.audit.signing import load_or_create_signer

    path = ctx.settings.home / "audit-signing-key.pem"
    if not path.exists():
        return Finding(
            "signing key", "warn", f"{path} not created yet", "`bastion serve` creates it"
        )
    if not os.access(path, os.R_OK):
        return Finding(
            "signing key",
            "fail",
            f"{path} cannot be read by this user",
            f"run Bastion as the key's owner, or `chown $(id -u) {path}`",
        )
    if problem := _private(path):
        return Finding("signing key", "fail", problem, f"chmod 600 {path}")
    try:
        signer = load_or_create_signer(path)
    except (ValueError, TypeError) as exc:
        return Finding(
            "signing key",
            "fail",
            f"{path} is not an Ed25519 private key: {_reason(exc)}",
            "restore the key from its backup (checkpoints signed with it must stay verifiable)",
        )
    return Finding("signing key", "ok", f"{path} (key {signer.key_id})")


def check_secret_key(ctx: Context) -> Finding:
    if ctx.settings.secret_key is not None:
        if len(ctx.settings.secret_key.get_secret_value()) < 32:
            return Finding(
                "secret key",
                "fail",
                "BASTION_SECRET_KEY is shorter than 32 characters",
                "set it to `openssl rand -hex 32`",
            )
        return Finding("secret key", "ok", "from BASTION_SECRET_KEY")
    path = ctx.settings.home / "secret.key"
    if not path.exists():
        return Finding(
            "secret key", "warn", f"{path} not created yet", "`bastion serve` creates it"
        )
    if problem := _private(path):
        return Finding("secret key", "fail", problem, f"chmod 600 {path}")
    return Finding("secret key", "ok", str(path))


def check_mlflow(ctx: Context) -> Finding:
    uri = ctx.settings.resolved_mlflow_tracking_uri
    shown = redacted(uri)
    fix = "set BASTION_MLFLOW_TRACKING_URI to a reachable tracking store"
    if uri.startswith(("http://", "https://")):
        import httpx

        try:
            response = httpx.get(uri.rstrip("/") + "/health", timeout=3)
        except httpx.HTTPError as exc:
            return Finding("mlflow", "fail", f"cannot reach {shown}: {_reason(exc)}", fix)
        if response.status_code != 200:
            return Finding("mlflow", "fail", f"{shown}/health answered {response.status_code}", fix)
        return Finding("mlflow", "ok", f"{shown} reachable")
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        if not path.is_absolute():
            path = Path.cwd() / path
        folder = path.parent
        if folder == ctx.settings.home.resolve() and not folder.exists():
            return Finding("mlflow", "ok", f"{shown} (created with the home)")
        if not folder.exists() or not os.access(folder, os.W_OK):
            return Finding("mlflow", "fail", f"{folder} is missing or not writable", fix)
        where = "exists" if path.exists() else "is created on first registration"
        return Finding("mlflow", "ok", f"{shown} ({where})")
    if uri.startswith("file:") or "://" not in uri:
        path = Path(uri.removeprefix("file://").removeprefix("file:"))
        if path.exists() and not os.access(path, os.W_OK):
            return Finding("mlflow", "fail", f"{path} is not writable", fix)
        return Finding("mlflow", "ok", shown)
    return Finding("mlflow", "ok", f"{shown} (not probed: {uri.split(':', 1)[0]} store)")


def check_providers(ctx: Context) -> Finding:
    from bastion.gateway.availability import model_statuses, provider_statuses
    from bastion.policy import PolicyError, load_policy

    try:
        policy = load_policy(ctx.settings.policy_path).policy
    except (PolicyError, OSError):
        return Finding("provider keys", "warn", "not checked: no valid policy")
    missing = [p for p in provider_statuses(policy, ctx.has_env) if p.state != "ready"]
    models = model_statuses(policy, ctx.has_env)
    unanswered = [m.name for m in models if m.answered_by is None]
    fallbacks = [f"{m.name} → {m.answered_by}" for m in models if m.state == "fallback"]
    if unanswered:
        variables = ", ".join(sorted({p.detail for p in missing})) or "the providers' keys"
        return Finding(
            "provider keys",
            "fail",
            f"no provider can answer {', '.join(unanswered)}",
            f"set {variables}, or give those models a fallback in the policy",
        )
    if fallbacks:
        return Finding(
            "provider keys",
            "warn",
            f"answered by a fallback: {', '.join(fallbacks)}",
            "; ".join(p.detail for p in missing),
        )
    return Finding("provider keys", "ok", f"{len(models)} models answered by their provider")


def check_clock(ctx: Context) -> Finding:
    now = datetime.now(UTC)
    if now < EARLIEST_SANE:
        return Finding(
            "clock", "fail", f"this machine says it is {now:%Y-%m-%d}", "set the clock (NTP)"
        )
    skews: list[str] = []
    for name, other in (("database", ctx.database_now), ("Redis", ctx.redis_now)):
        if other is None:
            continue
        if other.tzinfo is None:
            other = other.replace(tzinfo=UTC)
        skew = (now - other).total_seconds()
        if abs(skew) > CLOCK_TOLERANCE_S:
            skews.append(f"{abs(skew):.1f} s {'ahead of' if skew > 0 else 'behind'} the {name}")
    if skews:
        return Finding(
            "clock",
            "fail",
            "this machine's clock is " + " and ".join(skews),
            "synchronise the clocks (NTP): ledger times and rate windows depend on them",
        )
    compared = [n for n, o in (("database", ctx.database_now), ("Redis", ctx.redis_now)) if o]
    against = (
        f", within {CLOCK_TOLERANCE_S:g} s of the {' and '.join(compared)}" if compared else ""
    )
    return Finding("clock", "ok", f"{now:%Y-%m-%d %H:%M:%S} UTC{against}")


CHECKS: tuple[Callable[[Context], Finding], ...] = (
    check_home,
    check_database,
    check_migrations,
    check_redis,
    check_policy,
    check_signing_key,
    check_secret_key,
    check_mlflow,
    check_providers,
    check_clock,
)


def diagnose(settings: Settings, has_env: Callable[[str], bool]) -> Iterator[Finding]:
    """Every check's finding, in order; a check that crashes is a finding too."""
    ctx = Context(settings, has_env)
    for check in CHECKS:
        name = check.__name__.removeprefix("check_").replace("_", " ")
        try:
            yield check(ctx)
        except Exception as exc:  # one broken check must not hide the others
            yield Finding(name, "fail", f"the check itself failed: {_reason(exc)}")
