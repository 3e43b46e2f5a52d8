"""``bastion docs``: ingest documents into collections, list, show, remove, search."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from bastion.cli.common import (
    FORMAT_OPTION,
    OutputFormat,
    console,
    fail,
    key_table,
    print_json,
    runtime,
    short_digest,
)

if TYPE_CHECKING:
    from bastion.documents.setup import Documents

app = typer.Typer(help="Documents for retrieval: ingest, list, show, remove, search.")

T = TypeVar("T")
BY_OPTION: Any = typer.Option("cli", "--by", help="Who is acting (recorded in the ledger).")


@contextmanager
def documents(label: str = "docs") -> Iterator[tuple[Documents, Callable[[Awaitable[T]], T]]]:
    """The documents service over an in-process gateway (embeddings are governed calls)."""
    from bastion.documents.setup import build_documents
    from bastion.gateway.setup import build_gateway

    with runtime(label=label) as rt:
        gateway = build_gateway(rt)
        loop = asyncio.new_event_loop()
        try:
            yield build_documents(rt, gateway), loop.run_until_complete
        finally:
            loop.run_until_complete(gateway.aclose())
            loop.close()


def _files(paths: list[Path]) -> list[Path]:
    from bastion.documents.parsing import FORMATS

    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                p for p in sorted(path.rglob("*")) if p.is_file() and p.suffix.lower() in FORMATS
            )
        elif path.is_file():
            found.append(path)
        else:
            fail(f"{path}: no such file or directory", 2, error_code="file_not_found")
    if not found:
        fail("no documents found in the paths given", 2, error_code="empty_document")
    return found


@app.command()
def ingest(
    paths: list[Path] = typer.Argument(..., help="Files or folders (md, txt, html, pdf, jsonl)."),
    collection: str = typer.Option(..., "--collection", "-c", help="The collection to add to."),
    doc_format: str | None = typer.Option(
        None, "--as", help="Read every file as this format (markdown, text, html, pdf, jsonl)."
    ),
    by: str = BY_OPTION,
    output: OutputFormat = FORMAT_OPTION,
) -> None:
    """Add documents to a collection; changed ones replace their old chunks, unchanged
    ones are skipped."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from bastion.auth.principal import cli_principal
    from bastion.documents.service import Upload

    uploads = [Upload(p.name, p.read_bytes(), doc_format) for p in _files(paths)]
    with (
        documents() as (docs, run),
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=console,
            transient=True,
            disable=output is OutputFormat.json,
        ) as bar,
    ):
        task = bar.add_task("ingesting", total=None)

        def tick(done: int, total: int, name: str) -> None:
            bar.update(task, completed=done, total=total, description=name[:40])

        report = run(docs.service.ingest(collection, uploads, cli_principal(by), tick))
    if output is OutputFormat.json:
        print_json(
            {
                "collection": report.collection,
                "documents": [d.__dict__ for d in report.documents],
            }
        )
        return
    console.print(
        f"{collection}: {report.count('added')} added, {report.count('replaced')} replaced, "
        f"{report.count('unchanged')} unchanged "
        f"({sum(d.chunks for d in report.documents)} chunks)",
        highlight=False,
    )
    masked = {k: v for d in report.documents for k, v in d.personal_data.items()}
    if masked:
        console.print(f"personal data masked: {masked}", highlight=False)


@app.command("list")
def list_(
    collection: str | None = typer.Argument(None, help="A collection: list its documents."),
    by: str = BY_OPTION,
    output: OutputFormat = FORMAT_OPTION,
) -> None:
    """List the collections, or the documents of one."""
    from bastion.auth.principal import cli_principal

    with documents() as (docs, _):
        principal = cli_principal(by)
        if collection is None:
            found = docs.service.collections(principal)
            if output is OutputFormat.json:
                print_json([c.__dict__ for c in found])
                return
            rows = [[c.name, str(c.documents), str(c.chunks)] for c in found]
            console.print(
                key_table(
                    ["collection", "documents", "chunks"],
                    rows,
                    key=["collection"],
                    right=["documents", "chunks"],
                )
            )
            return
        rows_ = docs.service.documents(collection, principal)
    if output is OutputFormat.json:
        print_json(
            [
                {
                    "id": d.id,
                    "name": d.name,
                    "format": d.format,
                    "digest": d.digest,
                    "chunks": d.chunk_count,
                    "ingested_at": d.ingested_at,
                }
                for d in rows_
            ]
        )
        return
    table = [[d.id, d.name, d.format, str(d.chunk_count), short_digest(d.digest)] for d in rows_]
    console.print(
        key_table(
            ["id", "name", "format", "chunks", "digest"],
            table,
            key=["id", "name"],
            right=["chunks"],
        )
    )


@app.command()
def show(
    ref: str = typer.Argument(..., help="A document's id, or its name with --collection."),
    collection: str | None = typer.Option(None, "--collection", "-c"),
    by: str = BY_OPTION,
    output: OutputFormat = FORMAT_OPTION,
) -> None:
    """Show a document and its chunks with their locations."""
    from bastion.auth.principal import cli_principal

    with documents() as (docs, _):
        row, chunks = docs.service.document(ref, cli_principal(by), collection)
    if output is OutputFormat.json:
        print_json(
            {
                "id": row.id,
                "name": row.name,
                "collection": row.collection,
                "format": row.format,
                "digest": row.digest,
                "meta": row.meta,
                "personal_data": row.personal_data,
                "embedding_model": row.embedding_model,
                "chunks": [
                    {
                        "chunk_id": c.chunk_id,
                        "location": c.location,
                        "start": c.start,
                        "end": c.end,
                        "text": c.text,
                    }
                    for c in chunks
                ],
            }
        )
        return
    console.print(
        f"[bold]{row.name}[/] ({row.format}, collection {row.collection}, "
        f"digest {short_digest(row.digest)}, embeddings {row.embedding_model or 'none'})",
        highlight=False,
    )
    rows = [
        [c.chunk_id, c.location, f"{c.start}-{c.end}", " ".join(c.text.split())[:60]]
        for c in chunks
    ]
    console.print(key_table(["chunk", "location", "offsets", "text"], rows, key=["chunk"]))


@app.command()
def remove(
    ref: str = typer.Argument(..., help="A document's id, or its name with --collection."),
    collection: str | None = typer.Option(None, "--collection", "-c"),
    by: str = BY_OPTION,
) -> None:
    """Remove a document and its chunks from the index."""
    from bastion.auth.principal import cli_principal

    with documents() as (docs, _):
        row = docs.service.remove(ref, cli_principal(by), collection)
    console.print(f"removed {row.name} ({row.id}) from {row.collection}", highlight=False)


@app.command()
def search(
    query: str = typer.Argument(..., help="What to look for."),
    collection: str | None = typer.Option(None, "--collection", "-c"),
    top_k: int = typer.Option(5, "--top-k", "-k", min=1, max=100),
    method: str = typer.Option("hybrid", help="hybrid, bm25 or dense."),
    by: str = BY_OPTION,
    output: OutputFormat = FORMAT_OPTION,
) -> None:
    """Search the collections (hybrid BM25 + dense retrieval)."""
    from bastion.auth.principal import cli_principal

    with documents() as (docs, run):
        found = run(
            docs.retriever.search(collection, query, top_k, cli_principal(by), method=method)
        )
    if output is OutputFormat.json:
        print_json([p.__dict__ for p in found])
        return
    rows = [
        [str(i), p.document, p.location, f"{p.score:.4f}", " ".join(p.text.split())[:60]]
        for i, p in enumerate(found, start=1)
    ]
    console.print(
        key_table(
            ["#", "document", "location", "score", "text"],
            rows,
            key=["#", "document"],
            right=["score"],
        )
    )
