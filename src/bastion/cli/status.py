"""``bastion status``: what this installation runs on, read without starting a server.

The database (and whether its schema is current), the policy file, where rate-limit and
budget counters live, MLflow, how many API keys are active, and for every model whether
its provider can be called or a fallback answers instead (``gpt-4.1-mini`` answered by
``local`` when ``OPENAI_API_KEY`` is not set). Exit 1 when something keeps the server
from starting (no schema, schema behind, an invalid policy).
"""

from __future__ import annotations

from typing import Any

import typer

from bastion.operations.doctor import redacted

FORMAT = typer.Option("text", "--format", help="text or json.")


def _sqlite_file_missing(url: str) -> bool:
    """A SQLite URL whose file does not exist (opening it would create an empty one)."""
    from pathlib import Path

    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return False
    return not Path(parsed.database).exists()


def has_env(name: str) -> bool:
    from bastion.settings import secret_from_env

    return secret_from_env(name) is not None


def collect() -> dict[str, Any]:
    """Everything ``bastion status`` reports, as plain data."""
    from bastion import __version__
    from bastion.cli.common import load_settings
    from bastion.gateway.availability import model_statuses, provider_statuses
    from bastion.policy import PolicyError, load_policy

    settings = load_settings()
    problems: list[str] = []
    report: dict[str, Any] = {"version": __version__, "home": str(settings.home.resolve())}

    url = settings.resolved_database_url
    database: dict[str, Any] = {
        "url": redacted(url),
        "backend": url.split(":", 1)[0].split("+", 1)[0],
        "default": settings.database_url is None,
    }
    report["database"] = database
    report["api_keys"] = None
    if _sqlite_file_missing(url):
        database["schema"] = "missing"
        problems.append("no database yet: run `bastion db upgrade`")
    else:
        database |= _schema_and_keys(url, report, problems)

    policy_path = settings.policy_path
    report["policy"] = {"path": str(policy_path.resolve()), "valid": False}
    policy = None
    try:
        loaded = load_policy(policy_path)
        policy = loaded.policy
        report["policy"] |= {"valid": True, "digest": loaded.digest}
    except PolicyError as exc:
        report["policy"]["errors"] = [str(issue) for issue in exc.issues]
        if settings.policy is None and not policy_path.exists():
            report["policy"]["errors"] = ["not written yet: `bastion serve` writes a starter"]
        else:
            problems.append(f"the policy is invalid: `bastion policy check {policy_path}`")

    report["counters"] = (
        {"backend": "redis", "url": redacted(settings.redis_url)}
        if settings.redis_url
        else {"backend": "in-process", "url": None}
    )
    report["mlflow"] = {"tracking_uri": redacted(settings.resolved_mlflow_tracking_uri)}
    report["providers"] = (
        [p.as_dict() for p in provider_statuses(policy, has_env)] if policy else []
    )
    report["models"] = [m.as_dict() for m in model_statuses(policy, has_env)] if policy else []
    report["problems"] = problems
    return report


def _schema_and_keys(url: str, report: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    from sqlalchemy import func, select
    from sqlalchemy.exc import SQLAlchemyError

    from bastion.auth.models import ApiKey
    from bastion.db import create_database
    from bastion.db.base import utcnow
    from bastion.db.revision import HEAD, stored_revision

    db = create_database(url)
    try:
        current, head = stored_revision(db.engine), HEAD
        out: dict[str, Any] = {"revision": current, "head": head}
        if current != head:
            out["schema"] = "missing" if current is None else "behind"
            problems.append(f"the schema is {out['schema']}: run `bastion db upgrade`")
            return out
        out["schema"] = "current"
        now = utcnow()
        with db.session() as session:
            rows = session.execute(
                select(ApiKey.role, func.count())
                .where(ApiKey.revoked_at.is_(None))
                .where((ApiKey.expires_at.is_(None)) | (ApiKey.expires_at > now))
                .group_by(ApiKey.role)
            ).all()
        by_role = {str(role): int(n) for role, n in rows}
        report["api_keys"] = {"active": sum(by_role.values()), "by_role": by_role}
        report |= _estate(db, now)
        return out
    except SQLAlchemyError as exc:
        problems.append(f"cannot read the database: {type(exc).__name__}")
        return {"schema": "unreachable"}
    finally:
        db.dispose()


def _estate(db: Any, now: Any) -> dict[str, Any]:
    """Models and where their aliases point, rollouts under way, the last signed
    checkpoint, and the legal clocks still open: read through the domains' services."""
    from sqlalchemy import func, select

    from bastion.audit.models import AuditCheckpoint, AuditEvent
    from bastion.delivery.repository import DeliveryRepository
    from bastion.delivery.schemas import RolloutView
    from bastion.evidence.clocks import ClockService
    from bastion.registry.repository import RegistryRepository

    with db.session() as session:
        versions = RegistryRepository(session).all_versions()
        models: dict[str, dict[str, Any]] = {}
        for v in versions:
            entry = models.setdefault(v.name, {"name": v.name, "versions": 0, "aliases": {}})
            entry["versions"] += 1
            if v.stage in ("staging", "production"):
                entry["aliases"][v.stage] = v.version
        last_ts, streams = session.execute(
            select(
                func.max(AuditCheckpoint.ts_us), func.count(func.distinct(AuditCheckpoint.stream))
            )
        ).one()
        rollouts = [
            {"model": r.model, "kind": r.kind, "version": r.candidate_version,
             "weight": r.weight, "state": r.state}
            for r in map(RolloutView.of, DeliveryRepository(session).for_model(None, 100))
            if not r.final
        ]  # fmt: skip
        uncovered = 0
        if last_ts is not None:
            uncovered = session.execute(
                select(func.count()).select_from(AuditEvent).where(AuditEvent.ts_us > last_ts)
            ).scalar_one()
    clocks = [c.to_dict(now) for c in ClockService(db).items(open_only=True)]
    from datetime import UTC, datetime

    checkpoint = (
        {
            "at": datetime.fromtimestamp(last_ts / 1e6, tz=UTC).isoformat(timespec="seconds"),
            "streams": int(streams),
            "events_after": int(uncovered),
        }
        if last_ts is not None
        else None
    )
    return {
        "registry": sorted(models.values(), key=lambda m: m["name"]),
        "rollouts": rollouts,
        "last_checkpoint": checkpoint,
        "open_clocks": clocks,
    }


def status(output: str = FORMAT) -> None:
    """What this installation runs on: database, policy, counters, keys, and which
    models are answered by their provider or by a fallback. Exit 1 if the server
    could not start."""
    from bastion.cli.common import fail, handled, print_json

    if output not in ("text", "json"):
        fail("--format must be text or json", 2, error_code="invalid_option")
    with handled():
        report = collect()
    if output == "json":
        print_json(report)
    else:
        _print(report)
    if report["problems"]:
        raise typer.Exit(1)


def _print(report: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    from bastion.cli.common import console

    db, policy, counters = report["database"], report["policy"], report["counters"]
    schema = db["schema"]
    schema_text = (
        f"schema current ({db['revision']})"
        if schema == "current"
        else f"[red]schema {schema}[/]: run `bastion db upgrade`"
    )
    lines = [
        ("Bastion", report["version"]),
        ("Home", escape(report["home"])),
        ("Database", f"{escape(db['url'])}  {schema_text}"),
        (
            "Policy",
            f"{escape(policy['path'])}  "
            + (
                "valid"
                if policy["valid"]
                else "[red]" + escape("; ".join(policy["errors"])) + "[/]"
            ),
        ),
        (
            "Counters",
            f"Redis at {escape(counters['url'])} (shared by replicas)"
            if counters["backend"] == "redis"
            else "in-process (one server process; set BASTION_REDIS_URL to share)",
        ),
        ("MLflow", escape(report["mlflow"]["tracking_uri"])),
    ]
    keys = report["api_keys"]
    if keys is not None:
        roles = ", ".join(f"{n} {role}" for role, n in sorted(keys["by_role"].items()))
        lines.append(("API keys", f"{keys['active']} active" + (f" ({roles})" if roles else "")))
    for label, value in lines:
        console.print(f"{label:<10} {value}", highlight=False, soft_wrap=True)
    if report["providers"]:
        table = Table("provider", "kind", "state", "detail", title="Providers")
        for p in report["providers"]:
            state = "[green]ready[/]" if p["state"] == "ready" else "[yellow]missing key[/]"
            table.add_row(p["name"], p["kind"], state, escape(p["detail"]))
        console.print(table)
    if report["models"]:
        table = Table("model", "kind", "provider", "answered by", "why", title="Models")
        for m in report["models"]:
            answered = m["answered_by"] or "[red]nobody[/]"
            if m["state"] == "fallback":
                answered = f"[yellow]{m['answered_by']}[/] (fallback)"
            table.add_row(m["name"], m["kind"], m["provider"], answered, escape(m["reason"]))
        console.print(table)
    _print_estate(report)
    for problem in report["problems"]:
        console.print(f"[red]problem:[/] {escape(problem)}", highlight=False)


def _print_estate(report: dict[str, Any]) -> None:
    from rich.markup import escape

    from bastion.cli.common import console

    checkpoint = report.get("last_checkpoint")
    if "last_checkpoint" in report:
        text = (
            f"{checkpoint['at']} ({checkpoint['streams']} streams); "
            f"{checkpoint['events_after']} events since"
            if checkpoint
            else "none yet (signed every BASTION_AUDIT_CHECKPOINT_EVERY events)"
        )
        console.print(f"{'Ledger':<10} last checkpoint {text}", highlight=False)
    for model in report.get("registry", []):
        aliases = ", ".join(f"{a} → v{v}" for a, v in sorted(model["aliases"].items()))
        console.print(
            f"{'Model':<10} {escape(model['name'])}: {model['versions']} version(s)"
            + (f"; {aliases}" if aliases else "; no alias yet"),
            highlight=False,
        )
    for r in report.get("rollouts", []):
        console.print(
            f"{'Rollout':<10} {escape(r['model'])} v{r['version']} {r['kind']} at "
            f"{r['weight']}%: {r['state']}",
            highlight=False,
        )
    for c in report.get("open_clocks", []):
        console.print(
            f"[yellow]{'Open':<10}[/] {escape(c['kind'])} #{c['id']} {escape(c['title'])}: "
            f"due {c['deadline_at'][:10]} ({c['status']})",
            highlight=False,
        )
