"""``bastion report``: compliance reports from the ledger, attestations, verification."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from bastion.cli.common import console, err_console, fail, handled, runtime

if TYPE_CHECKING:
    from bastion.evidence.service import EvidenceService
    from bastion.runtime import Runtime

app = typer.Typer(
    help="Compliance reports built from the ledger, with proofs.", no_args_is_help=True
)


class ReportFormat(StrEnum):
    html = "html"
    json = "json"
    pdf = "pdf"
    md = "md"


def _service(rt: Runtime) -> EvidenceService:
    from bastion.evidence.service import EvidenceService

    return EvidenceService(rt.db, {rt.signer.key_id: rt.signer.public}, rt.ledger)


@app.command()
def compliance(
    framework: str = typer.Option(
        ..., help="eu-ai-act, gdpr, iso42001, iso27001, soc2, hipaa or nist-ai-rmf."
    ),
    period: str = typer.Option(
        ..., help="START..END, e.g. 2026-01-01..2026-03-31 (the end day included)."
    ),
    fmt: ReportFormat = typer.Option(
        ReportFormat.html, "--format", help="html (charts), json (OSCAL), md or pdf."
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="File to write (default stdout)."
    ),
    by: str = typer.Option("cli", help="Who asked (recorded in the ledger)."),
) -> None:
    """Build a compliance report for FRAMEWORK over PERIOD; its digest goes into the ledger."""
    with runtime() as rt:
        done = _service(rt).generate(framework, period, fmt.value, actor=f"user:{by}")
    if output is None:
        sys.stdout.buffer.write(done.content)
        sys.stdout.buffer.flush()
    else:
        output.write_bytes(done.content)
        s = done.body["summary"]
        console.print(
            f"{output}: {s['evidenced']} of {s['controls']} controls backed by machine evidence "
            f"({s['machine_evidence_share']:.0%}), {s['attested']} attested, {s['gap']} gaps; "
            f"digest {done.digest[:12]} recorded in the ledger"
        )


@app.command()
def verify(report: Path = typer.Argument(..., help="A report file (.json, .html or .md).")) -> None:
    """Re-check REPORT against the ledger; exit 1 naming what no longer matches."""
    try:
        data = report.read_bytes()
    except OSError as exc:
        fail(f"{report}: {exc.strerror or exc}", 2)
    with runtime() as rt:
        result = _service(rt).verify(data)
    if result.ok:
        console.print(
            f"[green]report verified[/]: digest {result.digest[:12]} is recorded in the ledger "
            "and the ledger still gives the same evidence"
        )
        return
    err_console.print(f"[bold red]report does not verify[/] (digest {result.digest[:12]}):")
    for problem in result.problems:
        err_console.print(f"  {problem}", highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(1)


@app.command()
def attest(
    control: str = typer.Argument(..., help="FRAMEWORK/CONTROL, e.g. gdpr/art-35."),
    by: str = typer.Option(..., help="Who attests (named in the report)."),
    note: str = typer.Option(..., help="What is attested, and where the document is."),
) -> None:
    """Attest a control manually; the report lists it with who attested."""
    framework, sep, control_id = control.partition("/")
    if not sep:
        fail(f"{control!r}: write FRAMEWORK/CONTROL, e.g. gdpr/art-35", 2)
    with runtime() as rt:
        _service(rt).attest(framework, control_id, by=by, note=note, actor=f"user:{by}")
    console.print(f"attested {framework}/{control_id} by {by}")


@app.command()
def frameworks(
    check: Path | None = typer.Option(None, "--check", help="Validate a mapping YAML file."),
) -> None:
    """List the framework mappings shipped (or validate one with --check)."""
    from bastion.evidence.mapping import FrameworkError, builtin_frameworks, load_framework_file

    if check is not None:
        try:
            with handled():
                loaded = load_framework_file(check)
        except FrameworkError as exc:  # pragma: no cover - handled() exits first
            raise typer.Exit(1) from exc
        console.print(f"{check}: valid ({len(loaded.framework.controls)} controls)")
        return
    for name, loaded in builtin_frameworks().items():
        fw = loaded.framework
        console.print(
            f"{name:12} {fw.mapping_version:10} {len(fw.controls):3} controls  {fw.title}"
        )
