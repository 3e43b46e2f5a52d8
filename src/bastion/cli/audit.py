"""``bastion audit``: verify the ledger, export it, erase a subject's content."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from bastion.cli.common import console, err_console, fail, load_settings, print_json, runtime

app = typer.Typer(help="The tamper-evident audit ledger.", no_args_is_help=True)


def _when(value: str | None, flag: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        fail(
            f"{flag} {value!r}: give an ISO 8601 date or time, e.g. 2026-01-31 or 2026-01-31T12:00",
            2,
        )
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@app.command()
def verify(
    public_key: list[Path] = typer.Option(
        [],
        "--public-key",
        help="PEM public keys to trust for checkpoints (default: this home's key).",
    ),
    anchors_dir: Path | None = typer.Option(
        None,
        "--anchors",
        file_okay=False,
        help="Directory of published checkpoints (BASTION_AUDIT_ANCHOR_DIR) to check the "
        "database against: truncation, missing streams, rewritten history.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Recompute every chain; exit 1 naming the first broken link."""
    from bastion.audit import AuditService, load_public_key
    from bastion.audit.anchors import AnchorError, load_anchors
    from bastion.audit.signing import key_id
    from bastion.db import create_database
    from bastion.runtime import chain_key, signer_for

    settings = load_settings()
    trusted = {}
    for path in public_key:
        try:
            pk = load_public_key(path.read_bytes())
        except (OSError, ValueError) as exc:
            fail(f"--public-key {path}: {exc}", 2)
        trusted[key_id(pk)] = pk
    if not public_key and (settings.home / "audit-signing-key.pem").exists():
        signer = signer_for(settings)
        trusted[signer.key_id] = signer.public
    anchors = None
    if anchors_dir is not None:
        try:
            anchors = load_anchors(anchors_dir)
        except AnchorError as exc:
            fail(f"--anchors: {exc}", 2)
    key = None
    if settings.audit_chain_key is not None or (settings.home / "secret.key").exists():
        key = chain_key(settings)
    db = create_database(settings.resolved_database_url)
    try:
        audit = AuditService(db)
        total = audit.count()
        with Progress(
            TextColumn("verifying"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err_console,
            transient=True,
            disable=as_json or total < 50_000,
        ) as progress:
            task = progress.add_task("verify", total=total)
            report = audit.verify(
                trusted,
                chain_key=key,
                anchors=anchors,
                on_progress=lambda n: progress.advance(task, n),
            )
    finally:
        db.dispose()
    if as_json:
        print_json(
            {
                "ok": report.ok,
                "events": report.events,
                "anchors": None if anchors is None else len(anchors),
                "uncovered_events": report.uncovered_events,
                "uncovered_seconds": report.uncovered_seconds,
                "streams": [s.__dict__ for s in report.streams],
                "problems": [p.__dict__ for p in report.problems],
            }
        )
    elif report.ok:
        checkpoints = sum(s.checkpoints for s in report.streams)
        against = f", {len(anchors)} anchored" if anchors is not None else ""
        console.print(
            f"[green]ledger verified[/]: {report.events} events in {len(report.streams)} streams, "
            f"{checkpoints} signed checkpoints{against}"
        )
        if report.uncovered_events:
            console.print(
                f"not yet covered by a signed checkpoint: {report.uncovered_events} events, "
                f"the last {report.uncovered_seconds:.0f} s (deleting or rewriting them would "
                "go unseen until the next checkpoint)"
            )
        if anchors is None:
            console.print(
                "checked without anchors: a tail deleted together with its checkpoints, or a "
                "whole stream, cannot be seen; pass --anchors DIR"
            )
    else:
        err_console.print(
            f"[bold red]ledger broken[/]: first broken link: {report.first_problem}",
            highlight=False,
        )
        for problem in report.problems[1:20]:
            err_console.print(f"  also: {problem}", highlight=False)
        if len(report.problems) > 20:
            err_console.print(f"  … and {len(report.problems) - 20} more problems")
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def export(
    since: str | None = typer.Option(None, help="ISO 8601 start (inclusive)."),
    until: str | None = typer.Option(None, help="ISO 8601 end (exclusive)."),
    fmt: str = typer.Option("jsonl", "--format", help="Only jsonl: one event per line."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="File to write (default stdout)."
    ),
    actor: str | None = typer.Option(None),
    action: str | None = typer.Option(None),
) -> None:
    """Export events oldest first, with their hashes, for auditors."""
    from bastion.audit import AuditService, EventFilter
    from bastion.db import create_database

    if fmt != "jsonl":
        fail(f"--format {fmt!r}: only jsonl is supported", 2)
    settings = load_settings()
    flt = EventFilter(
        actor=actor, action=action, since=_when(since, "--since"), until=_when(until, "--until")
    )
    db = create_database(settings.resolved_database_url)
    out = output.open("w", encoding="utf-8") if output else sys.stdout
    count = 0
    try:
        for event in AuditService(db).export(flt):
            out.write(json.dumps(event.to_dict(), ensure_ascii=False) + "\n")
            count += 1
    finally:
        db.dispose()
        if output:
            out.close()
    if output:
        console.print(f"exported {count} events to {output}")


@app.command()
def prove(
    event_id: int = typer.Argument(..., help="The event's id (`id` in exports and the API)."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="File to write (default stdout)."
    ),
) -> None:
    """Print an inclusion proof of one event: checkable without the rest of the ledger."""
    from bastion.audit import AuditService
    from bastion.audit.proofs import ProofError
    from bastion.db import create_database

    settings = load_settings()
    db = create_database(settings.resolved_database_url)
    try:
        bundle = AuditService(db).prove(event_id)
    except ProofError as exc:
        fail(str(exc), 1)
    finally:
        db.dispose()
    text = json.dumps(bundle, indent=1, ensure_ascii=False)
    if output is None:
        typer.echo(text)
    else:
        output.write_text(text + "\n", encoding="utf-8")
        console.print(f"wrote the proof of event {event_id} to {output}")


@app.command("check-proof")
def check_proof_cmd(
    proof: Path = typer.Argument(..., help="A file written by `bastion audit prove`."),
    public_key: list[Path] = typer.Option(
        [], "--public-key", help="PEM public keys to trust (default: this home's key)."
    ),
) -> None:
    """Check an inclusion proof against the signer's public key alone; exit 1 if it fails."""
    from bastion.audit import load_public_key
    from bastion.audit.proofs import check_proof
    from bastion.audit.signing import key_id
    from bastion.runtime import signer_for

    settings = load_settings()
    trusted = {}
    for path in public_key:
        try:
            pk = load_public_key(path.read_bytes())
        except (OSError, ValueError) as exc:
            fail(f"--public-key {path}: {exc}", 2)
        trusted[key_id(pk)] = pk
    if not public_key and (settings.home / "audit-signing-key.pem").exists():
        signer = signer_for(settings)
        trusted[signer.key_id] = signer.public
    try:
        bundle = json.loads(proof.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        fail(f"{proof}: {type(exc).__name__}: give a file written by `bastion audit prove`", 2)
    problem = check_proof(bundle, trusted)
    if problem is not None:
        fail(f"proof rejected: {problem}", 1)
    event = bundle["event"]
    console.print(
        f"[green]proof holds[/]: event {event['id']} (stream {event['stream']} seq "
        f"{event['seq']}) is in the signed tree of {bundle['tree_size']} events"
    )


@app.command("public-key")
def public_key_cmd() -> None:
    """Print the PEM public key that verifies this home's checkpoints."""
    from bastion.runtime import ensure_home, signer_for

    settings = load_settings()
    ensure_home(settings)
    typer.echo(signer_for(settings).public_pem(), nl=False)


@app.command()
def erase(
    subject: str = typer.Option(..., help="The data subject whose stored content to erase."),
    by: str = typer.Option("cli", help="Who asked (recorded in the ledger)."),
) -> None:
    """Erase a data subject's stored content; the chain stays verifiable.

    The intent is recorded in the ledger before anything is erased, the outcome after.
    """
    with runtime() as rt:
        done = rt.audit.erase_subject(subject, actor=f"user:{by}")
    console.print(f"erased {done.content_rows} stored content rows for the subject")


@app.command()
def purge(by: str = typer.Option("cli", help="Who ran it (recorded in the ledger).")) -> None:
    """Apply the policy's retention to stored content (content_days)."""
    with runtime() as rt:
        days = rt.policy.policy.retention.content_days
        if days is None:
            console.print("the policy sets no retention.content_days: nothing to purge")
            return
        done = rt.audit.purge_content(days, actor=f"user:{by}")
    console.print(f"purged {done.content_rows} content rows older than {days} days")
