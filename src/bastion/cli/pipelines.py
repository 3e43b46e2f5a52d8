"""``bastion pipelines``: validate, run (here or on the shared queue), work the queue,
resume, retry, cancel and inspect pipeline runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from bastion.cli.common import FORMAT_OPTION, OutputFormat, login_name

if TYPE_CHECKING:
    from bastion.pipelines.engine import PipelineEngine

app = typer.Typer(
    help="Pipelines whose governance steps cannot be skipped: train, evaluate, gate, "
    "register, request promotion, canary.",
    no_args_is_help=True,
)

BY = typer.Option(None, "--by", help="Who starts the run (default: the login name).")
DASK = typer.Option(
    None, "--dask", help="Dask scheduler address for `engine: dask` steps (tcp://host:8786)."
)
STATE_COLOUR = {
    "succeeded": "green",
    "failed": "red",
    "crashed": "red",
    "cancelled": "yellow",
    "skipped": "dim",
    "running": "cyan",
    "pending": "dim",
    "queued": "dim",
    "up": "green",
    "dead": "red",
    "stopped": "dim",
}


@contextmanager
def _engine(dask: str | None = None) -> Iterator[PipelineEngine]:
    from bastion.cli.common import handled, runtime
    from bastion.pipelines.engine import PipelineEngine

    with handled(), runtime(label="pipelines") as rt, PipelineEngine(rt, dask_address=dask) as e:
        yield e


def _params(values: list[str] | None) -> dict[str, Any]:
    from bastion.cli.common import fail

    out: dict[str, Any] = {}
    for value in values or []:
        key, sep, raw = value.partition("=")
        if not sep or not key:
            fail(f"--param {value!r}: give NAME=VALUE", 2, error_code="invalid_option")
        out[key] = _typed(raw)
    return out


def _typed(raw: str) -> Any:
    import json

    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    return value if isinstance(value, (int, float, bool)) else raw


@app.command()
def validate(file: Path = typer.Argument(..., help="A pipeline file.")) -> None:
    """Validate FILE; print every error with its file, line, column and key."""
    from bastion.cli.common import console, handled
    from bastion.pipelines.spec import load_pipeline

    with handled():
        loaded = load_pipeline(file)
    order = " → ".join(loaded.order())
    console.print(f"{file}: valid ({len(loaded.pipeline.steps)} steps: {order})", highlight=False)


@app.command()
def run(
    file: Path = typer.Argument(..., help="A pipeline file."),
    param: list[str] = typer.Option(None, "--param", help="NAME=VALUE (repeatable)."),
    by: str | None = BY,
    dask: str | None = DASK,
    queue: bool = typer.Option(
        False,
        "--queue",
        help="Put the run on the shared queue (PostgreSQL) and return at once; a "
        "`bastion pipelines worker` runs it.",
    ),
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Run FILE to its end and show each step; exit 1 if the run failed. A killed run
    resumes with `bastion pipelines resume`. With --queue, enqueue it and print its id."""
    from bastion.auth.principal import cli_principal
    from bastion.cli.common import handled
    from bastion.pipelines.spec import load_pipeline

    with handled():
        loaded = load_pipeline(file)
    values = _params(param)
    if queue:
        _enqueue(loaded, cli_principal(by or login_name()), values, dask, fmt)
        return
    with _engine(dask) as engine:
        run_id = engine.start(loaded, cli_principal(by or login_name()), values)
        _follow(engine, run_id, run_id, fmt)


def _enqueue(
    loaded: Any, actor: Any, values: dict[str, Any], dask: str | None, fmt: OutputFormat
) -> None:
    from bastion.cli.common import console, fail, handled, print_json, runtime
    from bastion.pipelines.engine import QUEUE, enqueue_run

    if dask is not None:
        fail("--dask is the worker's option: give it to `bastion pipelines worker`", 2,
             error_code="invalid_option")  # fmt: skip
    with handled(), runtime(label="pipelines") as rt:
        run_id = enqueue_run(rt, loaded, actor, values)
    if fmt == OutputFormat.json:
        print_json({"id": run_id, "state": "queued", "queue": QUEUE})
    else:
        console.print(f"{run_id} queued on {QUEUE}: `bastion pipelines show {run_id}`")


@app.command()
def worker(
    concurrency: int = typer.Option(
        2,
        "--concurrency",
        min=1,
        max=256,
        help="Runs at a time on each worker (kept with the queue: the last worker "
        "started sets it for all).",
    ),
    worker_id: str | None = typer.Option(
        None,
        "--id",
        help="This worker's executor id, unique among the workers (default: the host "
        "name); restarted with the same id, it takes its unfinished runs back at once.",
    ),
    dask: str | None = DASK,
) -> None:
    """Take runs from the shared queue (PostgreSQL) until stopped (SIGTERM or Ctrl-C).
    Several workers share the queue; each run is taken by one, and the runs of a worker
    that died go to another."""
    import signal
    import threading

    from bastion.cli.common import err_console, handled, runtime
    from bastion.pipelines.worker import PipelineWorker, default_worker_id

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    executor_id = worker_id or default_worker_id()

    def ready() -> None:
        err_console.print(
            f"worker {executor_id}: taking runs, {concurrency} at a time", highlight=False
        )

    with handled(), runtime(label="pipelines") as rt:
        unit = PipelineWorker(rt, executor_id=executor_id, concurrency=concurrency,
                              dask_address=dask)  # fmt: skip
        unit.serve(stop, ready)


@app.command()
def workers(fmt: OutputFormat = FORMAT_OPTION) -> None:
    """The queue workers that checked in: up, dead (its runs go to another) or stopped."""
    from bastion.cli.common import console, handled, key_table, print_json, runtime
    from bastion.pipelines.worker import list_workers

    with handled(), runtime(label="pipelines") as rt:
        found = list_workers(rt)
    if fmt == OutputFormat.json:
        print_json(found)
        return
    rows = [
        (
            w["executor"],
            f"[{STATE_COLOUR.get(w['state'], 'white')}]{w['state']}[/]",
            w["host"],
            str(w["pid"]),
            str(w["concurrency"]),
            w["seen_at"][:19],
            w["recovered_by"] or "",
        )
        for w in found
    ]
    headers = ("worker", "state", "host", "pid", "concurrency", "seen", "recovered by")
    console.print(key_table(headers, rows, key=("worker", "state"), title="Pipeline workers"))


def _follow(engine: PipelineEngine, run_id: str, workflow_id: str, fmt: OutputFormat) -> None:
    from bastion.cli.common import err_console

    with err_console.status(f"{run_id} running…"):
        engine.wait(workflow_id)
    _show(engine.run(run_id), fmt)


@app.command()
def resume(
    run_id: str | None = typer.Argument(None, help="One run (default: every unfinished run)."),
    dask: str | None = DASK,
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Continue runs whose process died, from their last finished step; no finished
    step runs again."""
    from dbos import DBOS

    from bastion.pipelines.engine import QUEUE

    with _engine(dask) as engine:
        pending = DBOS.list_workflows(status=["PENDING", "ENQUEUED"])
        # a queued run belongs to the workers (`bastion pipelines worker`), not to us
        ids = [
            w.workflow_id
            for w in pending
            if w.name == "bastion.pipeline.run" and w.queue_name != QUEUE
        ]
        runs = {}
        for workflow_id in ids:
            owner = workflow_id.split(".retry.", 1)[0]
            if run_id is None or owner == run_id:
                runs[workflow_id] = owner
        if run_id is not None and run_id not in runs.values():
            from bastion.cli.common import fail

            state = engine.run(run_id)["state"]
            fail(f"{run_id} has nothing to resume (it is {state})", error_code="nothing_to_resume")
        for workflow_id, owner in runs.items():
            _follow(engine, owner, workflow_id, fmt)


@app.command()
def retry(
    run_id: str = typer.Argument(..., help="A failed, cancelled or crashed run."),
    by: str | None = BY,
    dask: str | None = DASK,
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Run a finished run again from its failed step: steps that succeeded are kept."""
    from bastion.auth.principal import cli_principal

    with _engine(dask) as engine:
        workflow_id = engine.retry(run_id, cli_principal(by or login_name()))
        _follow(engine, run_id, workflow_id, fmt)


@app.command()
def cancel(run_id: str = typer.Argument(...), by: str | None = BY) -> None:
    """Cancel a run: no further step starts; it is marked cancelled."""
    from bastion.auth.principal import cli_principal
    from bastion.cli.common import console

    with _engine() as engine:
        engine.cancel(run_id, cli_principal(by or login_name()))
    console.print(f"{run_id} cancelled")


@app.command("list")
def list_runs(
    pipeline: str | None = typer.Option(None, help="Only this pipeline's runs."),
    limit: int = typer.Option(20, min=1, max=1000),
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Recent runs, newest first (a run whose process died shows as crashed)."""
    from bastion.cli.common import console, handled, key_table, print_json, runtime
    from bastion.pipelines.repository import recent_runs

    with handled(), runtime(label="pipelines") as rt:
        runs = recent_runs(rt.db, pipeline, limit)
    if fmt == OutputFormat.json:
        print_json(runs)
        return
    rows = [
        (
            r["id"],
            r["pipeline"],
            f"[{STATE_COLOUR.get(r['state'], 'white')}]{r['state']}[/]",
            r["started_by"],
            r["started_at"][:19],
            r["error"] or "",
        )
        for r in runs
    ]
    headers = ("run", "pipeline", "state", "by", "started", "error")
    console.print(key_table(headers, rows, key=("run", "state"), title="Pipeline runs"))


@app.command()
def show(run_id: str = typer.Argument(...), fmt: OutputFormat = FORMAT_OPTION) -> None:
    """One run: each step's state, attempts, time, criteria and error."""
    from bastion.cli.common import handled, runtime
    from bastion.pipelines.repository import run_detail

    with handled(), runtime(label="pipelines") as rt:
        detail = run_detail(rt.db, run_id)
    _show(detail, fmt)


def _show(run: dict[str, Any], fmt: OutputFormat) -> None:
    from rich.markup import escape

    from bastion.cli.common import console, key_table, print_json

    if fmt == OutputFormat.json:
        print_json(run)
    else:
        rows = []
        for s in run["steps"]:
            criteria = "; ".join(
                f"{'✓' if v['passed'] else '✗'} {v['criterion']}" for v in s["verdicts"]
            )
            seconds = f"{s['seconds']:.2f}" if s["seconds"] is not None else ""
            colour = STATE_COLOUR.get(s["state"], "white")
            rows.append(
                (
                    s["step"],
                    f"[{colour}]{s['state']}[/]",
                    str(s["attempts"]),
                    seconds,
                    escape(criteria),
                    escape(s["error"] or ""),
                )
            )
        headers = ("step", "state", "attempts", "seconds", "criteria", "error")
        colour = STATE_COLOUR.get(run["state"], "white")
        title = f"{run['id']} ({run['pipeline']}): [{colour}]{run['state']}[/]"
        console.print(
            key_table(
                headers, rows, key=("step", "state"), right=("attempts", "seconds"), title=title
            )
        )
    if run["state"] != "succeeded":
        raise typer.Exit(1)
