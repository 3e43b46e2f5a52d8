"""``bastion keys``: create, list and revoke API keys."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import typer

from bastion.cli.common import (
    FORMAT_OPTION,
    OutputFormat,
    console,
    fail,
    key_table,
    print_json,
    runtime,
)

if TYPE_CHECKING:
    from bastion.policy.schema import KeyRestrictions

app = typer.Typer(help="API keys.", no_args_is_help=True)

DURATION = re.compile(r"^(\d+)([hdw])$")


def parse_expiry(value: str | None) -> datetime | None:
    """``30d``, ``12h``, ``2w`` from now, or an ISO 8601 time (UTC if no zone)."""
    if value is None:
        return None
    match = DURATION.match(value)
    if match:
        n, unit = int(match.group(1)), match.group(2)
        delta = {"h": timedelta(hours=n), "d": timedelta(days=n), "w": timedelta(weeks=n)}[unit]
        return datetime.now(UTC) + delta
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--expires {value!r}: give a duration like 30d, 12h, 2w or an ISO time", 2)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


BUDGET = re.compile(r"^\s*\$?(\d+(?:\.\d+)?)\s*/\s*(day|week|month)\s*$")


def parse_restrictions(
    models: str | None,
    max_tokens: int | None,
    rpm: int | None,
    tpm: int | None,
    budgets: list[str],
    tools: str | None = None,
) -> KeyRestrictions | None:
    from pydantic import ValidationError

    from bastion.policy.schema import KeyRestrictions

    parsed = []
    for value in budgets:
        match = BUDGET.match(value)
        if match is None:
            fail(f"--budget {value!r}: give USD per window, like 5/day, 20/week or 50/month", 2)
        parsed.append({"usd": float(match.group(1)), "per": match.group(2)})
    fields: dict[str, object] = {}
    if models:
        fields["models"] = [m.strip() for m in models.split(",") if m.strip()]
    if max_tokens is not None:
        fields["max_tokens_per_request"] = max_tokens
    if rpm is not None or tpm is not None:
        fields["limits"] = {"requests_per_minute": rpm, "tokens_per_minute": tpm}
    if parsed:
        fields["budgets"] = parsed
    if tools:
        fields["tools"] = [t.strip() for t in tools.split(",") if t.strip()]
    if not fields:
        return None
    try:
        return KeyRestrictions.model_validate(fields)
    except ValidationError as exc:
        fail(f"key restrictions: {exc.errors()[0]['msg']}", 2)


@app.command()
def create(
    user: str = typer.Option(..., help="Who the key belongs to."),
    role: str = typer.Option(..., help="admin, analyst, guest, or a role from the policy."),
    team: str | None = typer.Option(None, help="The user's team (budgets and limits)."),
    name: str | None = typer.Option(None, help="A label to tell keys apart."),
    expires: str | None = typer.Option(None, help="30d, 12h, 2w, or an ISO 8601 time."),
    by: str = typer.Option("cli", help="Who is creating it (recorded in the ledger)."),
    models: str | None = typer.Option(
        None, help="Only these models (comma-separated; patterns like gpt-* allowed)."
    ),
    max_tokens: int | None = typer.Option(None, help="Most output tokens per request."),
    rpm: int | None = typer.Option(None, help="Requests per minute for this key."),
    tpm: int | None = typer.Option(None, help="Tokens per minute for this key."),
    budget: list[str] = typer.Option(
        [], help="A USD budget for this key, like 5/day, 20/week, 50/month (repeatable)."
    ),
    tools: str | None = typer.Option(
        None, help="Only these MCP tools (comma-separated; patterns like files.read_* allowed)."
    ),
) -> None:
    """Create a key and print it once (Bastion keeps only its digest)."""
    from bastion.auth.principal import cli_principal

    expires_at = parse_expiry(expires)
    restrictions = parse_restrictions(models, max_tokens, rpm, tpm, budget, tools)
    with runtime() as rt:
        created = rt.keys.create(
            cli_principal(by),
            user=user,
            role=role,
            team=team,
            name=name,
            expires_at=expires_at,
            restrictions=restrictions,
        )
    console.print(f"created {created.key.prefix} (id {created.key.id}) for {user}, role {role}")
    console.print("the key (shown once):")
    typer.echo(created.secret)


@app.command("list")
def list_keys(
    all_: bool = typer.Option(False, "--all", help="Include revoked keys."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (same as --format json)."),
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """List keys (never the keys themselves, only their prefixes)."""
    with runtime() as rt:
        keys = rt.keys.list_keys(include_revoked=all_)
    if as_json or fmt is OutputFormat.json:
        print_json([{**k.__dict__, "status": k.status} for k in keys])
        return
    rows = [
        [
            k.id,
            k.prefix,
            k.user,
            k.team or "",
            k.role,
            k.status,
            k.created_at.strftime("%Y-%m-%d %H:%M"),
            k.expires_at.strftime("%Y-%m-%d %H:%M") if k.expires_at else "",
        ]
        for k in keys
    ]
    headers = ["id", "prefix", "user", "team", "role", "status", "created", "expires"]
    console.print(key_table(headers, rows, key=["id", "prefix", "user", "role"]))


@app.command()
def revoke(
    key_id: str = typer.Argument(..., help="The key's id or prefix."),
    by: str = typer.Option("cli", help="Who is revoking it (recorded in the ledger)."),
) -> None:
    """Revoke a key at once."""
    from bastion.auth.principal import cli_principal

    with runtime() as rt:
        key = rt.keys.revoke(cli_principal(by), key_id)
    console.print(f"revoked {key.prefix} ({key.user}, {key.role})")
