"""``bastion prompts``: the versioned prompt templates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from bastion.cli.common import (
    FORMAT_OPTION,
    OutputFormat,
    console,
    err_console,
    fail,
    handled,
    key_table,
    load_settings,
    print_json,
    short_digest,
)

app = typer.Typer(
    help="Versioned prompt templates: list, show, diff, render.", no_args_is_help=True
)


def _library() -> Any:
    from bastion.prompts import PromptFileError, PromptLibrary, sources_for

    settings = load_settings()
    try:
        return PromptLibrary.load(sources_for(settings.home))
    except PromptFileError as exc:
        for issue in exc.issues:
            err_console.print(str(issue), highlight=False, soft_wrap=True, markup=False)
        fail(f"{len(exc.issues)} prompt error(s)", 2, error_code=exc.code)


@app.command("list")
def list_prompts(output: OutputFormat = FORMAT_OPTION) -> None:
    """Every prompt version, with its digest and where it is defined."""
    with handled():
        prompts = _library().all()
    rows = [
        {
            "name": p.name,
            "version": p.version,
            "digest": p.digest,
            "variables": sorted(p.spec.variables),
            "source": p.source,
        }
        for p in prompts
    ]
    if output is OutputFormat.json:
        print_json(rows)
        return
    console.print(
        key_table(
            ["name", "version", "digest", "variables", "source"],
            [
                [
                    r["name"],
                    str(r["version"]),
                    short_digest(r["digest"]),
                    ", ".join(r["variables"]),
                    Path(r["source"]).name,
                ]
                for r in rows
            ],
            key=["name", "version", "digest"],
            right=["version"],
        )
    )


@app.command()
def show(ref: str = typer.Argument(..., help="name (latest version) or name@version")) -> None:
    """One prompt: its version, digest, variables, model hints and templates."""
    from bastion.prompts.library import as_yaml

    with handled():
        prompt = _library().get(ref)
    typer.echo(f"# {prompt.ref}  digest {prompt.digest}  ({prompt.source})")
    typer.echo(as_yaml(prompt), nl=False)


@app.command()
def diff(
    old: str = typer.Argument(..., help="name@version"),
    new: str = typer.Argument(..., help="name@version (or name: the latest)"),
) -> None:
    """What changed between two prompt versions (unified diff)."""
    from bastion.prompts import diff as prompt_diff

    with handled():
        library = _library()
        text = prompt_diff(library.get(old), library.get(new))
    typer.echo(text or "(no difference)", nl=not text)


@app.command("render")
def render_prompt(
    ref: str = typer.Argument(..., help="name (latest version) or name@version"),
    variables: str = typer.Option(
        "{}", "--vars", help='The variables as a JSON object, e.g. \'{"question": "..."}\'.'
    ),
) -> None:
    """Render a prompt's messages for the given variables (JSON) and print them."""
    try:
        values = json.loads(variables)
    except ValueError as exc:
        fail(f"--vars is not valid JSON: {exc}", 2)
    if not isinstance(values, dict):
        fail("--vars must be a JSON object", 2)
    with handled():
        rendered = _library().render(ref, values)
    print_json({"prompt": rendered.evidence(), "messages": rendered.messages})
