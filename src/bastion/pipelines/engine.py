"""The pipeline engine: DBOS for durable runs, Bastion's tables for the evidence.

Why DBOS (docs/pipelines.md has the comparison): it is a library, not a server; a run
is a workflow whose finished steps are checkpointed in a database (SQLite by default,
PostgreSQL for several workers), so a run whose process is killed resumes from the last
finished step when the process starts again, and no finished step runs twice. Steps
that must scale out run on Dask (``engine: dask``); DBOS stays the source of truth for
where the run is.

A run is one DBOS workflow (its id is the run id). It plans from the database which
steps are ready (every step it needs succeeded), starts each ready step as a child
workflow (so independent steps run in parallel, each checkpointed on its own), and
repeats until nothing is ready. A step is one DBOS step with the file's retries
(exponential backoff); a timeout or unmet criteria are not retried. ``retry`` starts a
new workflow for the same run: finished steps are kept, the failed ones run again.

A run can also be put on a DBOS queue on PostgreSQL (:func:`enqueue_run`), where any of
several workers (``bastion pipelines worker``, :mod:`bastion.pipelines.worker`) takes
it; DBOS hands each queued run to exactly one worker, and every run and step records
the executor id of the worker that ran it.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbos import DBOS

from bastion.db.base import utcnow
from bastion.errors import BastionError, NotFound
from bastion.pipelines.criteria import Criterion
from bastion.pipelines.models import PipelineRunRow, PipelineStepRow
from bastion.pipelines.spec import (
    LoadedPipeline,
    MissingValue,
    Step,
    parse_pipeline,
    substitute,
)
from bastion.pipelines.steps import (
    CallablePool,
    CriteriaNotMet,
    StepCall,
    StepFailed,
    run_command,
    run_on_dask,
)

if TYPE_CHECKING:
    from bastion.auth.principal import Principal
    from bastion.runtime import Runtime

FINAL_RUN_STATES = frozenset({"succeeded", "failed", "cancelled"})
#: The DBOS queue the workers share (on PostgreSQL).
QUEUE = "bastion-pipelines"
APP_NAME = "bastion"
#: How often a waiting run looks whether its steps finished (DBOS polls its tables).
POLL_S = 0.01
_ENGINE: PipelineEngine | None = None
_LOCK = threading.Lock()


class RunNotRetryable(BastionError):
    code = "run_not_retryable"
    status = 409


class QueueNeedsPostgres(BastionError):
    code = "queue_needs_postgresql"
    status = 400


def app_version() -> str:
    """DBOS only hands a queued run to workers of the same application version."""
    from bastion import __version__

    return f"bastion-{__version__}"


def system_database(settings: Any) -> str:
    """The URL of DBOS's tables for these settings."""
    return _system_url(settings.resolved_database_url, settings.home)


def require_shared_queue(settings: Any) -> None:
    """The queue lives in DBOS's tables: only PostgreSQL lets several processes share it."""
    if settings.resolved_database_url.startswith("sqlite"):
        raise QueueNeedsPostgres(
            "a shared pipeline queue needs PostgreSQL: on SQLite each run belongs to the "
            "process that started it. Set BASTION_DATABASE_URL to a PostgreSQL database, "
            "or run the pipeline in this process (`bastion pipelines run FILE`)"
        )


def _engine() -> PipelineEngine:
    if _ENGINE is None:
        raise RuntimeError("no pipeline engine in this process")
    return _ENGINE


# -- the workflow ------------------------------------------------------------------


@DBOS.workflow(name="bastion.pipeline.run")
def pipeline_workflow(run_id: str) -> str:
    # Not a step: a worker that recovers the run records itself again as its runner.
    _engine().claim(run_id)
    DBOS.run_step({"name": "begin"}, _begin, run_id)
    while True:
        ready: list[dict[str, Any]] = DBOS.run_step({"name": "plan"}, _ready_steps, run_id)
        if not ready:
            break
        if len(ready) == 1:  # nothing to run beside it: no child workflow needed
            _run_one(run_id, ready[0])
            continue
        handles = [DBOS.start_workflow(step_workflow, run_id, item) for item in ready]
        for handle in handles:
            handle.get_result(polling_interval_sec=POLL_S)
    state: str = DBOS.run_step({"name": "finish"}, _finish, run_id)
    return state


@DBOS.workflow(name="bastion.pipeline.step")
def step_workflow(run_id: str, item: dict[str, Any]) -> str:
    return _run_one(run_id, item)


def _run_one(run_id: str, options: dict[str, Any]) -> str:
    """One step as a DBOS step (checkpointed: it never runs again once it finished)."""
    name = options["name"]
    try:
        DBOS.run_step(
            {
                "name": f"step:{name}",
                "retries_allowed": options["retries"] > 0,
                "max_attempts": options["retries"] + 1,
                "interval_seconds": options["backoff_s"],
                "backoff_rate": 2.0,
                "should_retry": _retryable,
            },
            _execute,
            run_id,
            name,
        )
    except Exception as exc:  # the last attempt's error: the step failed
        DBOS.run_step({"name": f"failed:{name}"}, _step_failed, run_id, name, _message(exc))
        return "failed"
    return "succeeded"


def _retryable(exc: BaseException) -> bool:
    return bool(getattr(exc, "retryable", True))


def _message(exc: BaseException) -> str:
    cause = exc
    while cause.__cause__ is not None and not isinstance(cause, BastionError):
        cause = cause.__cause__
    text = str(cause) or type(cause).__name__
    return text[:2000]


def _begin(run_id: str) -> None:
    _engine().mark_run(run_id, state="running", host=socket.gethostname(), pid=os.getpid())


def _ready_steps(run_id: str) -> list[dict[str, Any]]:
    engine = _engine()
    steps = engine.spec(run_id).pipeline.steps
    return [
        {"name": n, "retries": steps[n].retries, "backoff_s": steps[n].backoff_s}
        for n in engine.ready_steps(run_id)
    ]


def _finish(run_id: str) -> str:
    return _engine().finish_run(run_id)


def _execute(run_id: str, name: str) -> dict[str, Any]:
    return _engine().execute(run_id, name)


def _step_failed(run_id: str, name: str, error: str) -> None:
    _engine().step_failed(run_id, name, error)


# -- the engine ----------------------------------------------------------------------


class PipelineEngine:
    """Starts, resumes, retries and cancels runs; executes steps; records everything."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        dask_address: str | None = None,
        workers: int = 2,
        builtins: dict[str, Callable[..., dict[str, Any]]] | None = None,
        executor_id: str | None = None,
        queues: Sequence[str] = (),
    ) -> None:
        """``executor_id`` names this process to DBOS (a queue worker's own id; default
        DBOS's ``local``); ``queues`` are the queues it takes runs from (none: it only
        runs what it starts)."""
        self.runtime = runtime
        self.dask_address = dask_address
        self.executor_id = executor_id
        self.queues = list(queues)
        self.pool = CallablePool(workers)
        self._builtins = builtins
        self._specs: dict[str, LoadedPipeline] = {}
        self._launched = False

    # lifecycle

    def launch(self) -> None:
        """Start DBOS in this process; it recovers the runs a dead process left."""
        global _ENGINE
        with _LOCK:
            if _ENGINE is not None and _ENGINE is not self:
                raise RuntimeError("one pipeline engine per process")
            _ENGINE = self
            settings = self.runtime.settings
            DBOS(
                config={
                    "name": APP_NAME,
                    "system_database_url": system_database(settings),
                    "dbos_system_schema": settings.pipelines_schema,
                    "application_version": app_version(),
                    "executor_id": self.executor_id,
                    "log_level": "WARNING",
                    "notification_listener_polling_interval_sec": 0.05,
                }
            )
            DBOS.listen_queues(self.queues)
            DBOS.launch()
            self._launched = True

    def close(self) -> None:
        global _ENGINE
        self.pool.close()
        with _LOCK:
            if self._launched:
                DBOS.destroy(workflow_completion_timeout_sec=0)
                self._launched = False
            if _ENGINE is self:
                _ENGINE = None

    def __enter__(self) -> PipelineEngine:
        self.launch()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def executor(self) -> str:
        """This process's executor id, as DBOS records it."""
        return str(DBOS.executor_id)

    # runs

    def start(
        self, loaded: LoadedPipeline, actor: Principal, params: dict[str, Any] | None = None
    ) -> str:
        """Record a run and start its workflow; returns the run id (wait with ``wait``)."""
        values = run_values(loaded, params)
        with self.runtime.db.session() as session:
            run_id = add_run(session, loaded, actor, values, executor=self.executor)
        self._specs[run_id] = loaded
        self._record(
            "pipeline.run.start",
            actor,
            run_id,
            {"pipeline": loaded.pipeline.name, "digest": loaded.digest, "params": values},
        )
        from dbos import SetWorkflowID

        with SetWorkflowID(run_id):
            DBOS.start_workflow(pipeline_workflow, run_id)
        return run_id

    def wait(self, workflow_id: str, timeout_s: float | None = None) -> str:
        handle: Any = DBOS.retrieve_workflow(workflow_id)
        if timeout_s is None:
            result: str = handle.get_result(polling_interval_sec=POLL_S)
            return result
        done = threading.Event()
        box: dict[str, Any] = {}

        def waiter() -> None:
            try:
                box["result"] = handle.get_result(polling_interval_sec=POLL_S)
            except BaseException as exc:
                box["error"] = exc
            done.set()

        threading.Thread(target=waiter, daemon=True).start()
        if not done.wait(timeout_s):
            raise TimeoutError(f"{workflow_id} still running after {timeout_s:g} s")
        if "error" in box:
            raise box["error"]
        return str(box["result"])

    def retry(self, run_id: str, actor: Principal) -> str:
        """Run the failed and skipped steps of a finished run again (finished ones stay)."""
        run = self.run(run_id)
        if run["state"] not in ("failed", "cancelled", "crashed"):
            raise RunNotRetryable(f"{run_id} is {run['state']}: only a failed, cancelled "
                                  "or crashed run can be retried")  # fmt: skip
        with self.runtime.db.session() as session:
            for row in session.query(PipelineStepRow).filter_by(run_id=run_id):
                if row.state in ("failed", "skipped", "running"):
                    row.state, row.error = "pending", None
            found = session.get(PipelineRunRow, run_id)
            assert found is not None
            found.state, found.finished_at, found.error = "running", None, None
        self._record("pipeline.run.retry", actor, run_id, {})
        from dbos import SetWorkflowID

        workflow_id = f"{run_id}.retry.{uuid.uuid4().hex[:8]}"
        with SetWorkflowID(workflow_id):
            DBOS.start_workflow(pipeline_workflow, run_id)
        return workflow_id

    def cancel(self, run_id: str, actor: Principal) -> None:
        run = self.run(run_id)
        if run["state"] in FINAL_RUN_STATES:
            raise RunNotRetryable(f"{run_id} is already {run['state']}")
        DBOS.cancel_workflow(run_id)
        self.mark_run(run_id, state="cancelled", finished_at=utcnow())
        with self.runtime.db.session() as session:
            for row in session.query(PipelineStepRow).filter_by(run_id=run_id):
                if row.state in ("pending", "running"):
                    row.state = "skipped"
        self._record("pipeline.run.cancel", actor, run_id, {})

    # state

    def spec(self, run_id: str) -> LoadedPipeline:
        loaded = self._specs.get(run_id)
        if loaded is None:
            with self.runtime.db.session() as session:
                row = session.get(PipelineRunRow, run_id)
                if row is None:
                    raise NotFound(f"no pipeline run {run_id}")
                loaded = parse_pipeline(row.spec, row.source)
            self._specs[run_id] = loaded
        return loaded

    def run(self, run_id: str) -> dict[str, Any]:
        with self.runtime.db.session() as session:
            row = session.get(PipelineRunRow, run_id)
            if row is None:
                raise NotFound(f"no pipeline run {run_id}")
            return run_view(row, list(session.query(PipelineStepRow).filter_by(run_id=run_id)))

    def claim(self, run_id: str) -> None:
        """Record this process as the run's runner (a queued run, or one recovered from a
        dead worker, changes hands here; the ledger says who took it)."""
        executor = self.executor
        with self.runtime.db.session() as session:
            row = session.get(PipelineRunRow, run_id)
            if row is None:
                raise NotFound(f"no pipeline run {run_id}")
            before, queued = row.executor, row.state == "queued"
            row.host, row.pid, row.executor = socket.gethostname(), os.getpid(), executor
            if queued:
                row.state = "running"
        if queued or before != executor:
            self._record(
                "pipeline.run.claim",
                None,
                run_id,
                {"executor": executor, "host": socket.gethostname(), "previous": before},
            )

    def mark_run(self, run_id: str, **values: Any) -> None:
        with self.runtime.db.session() as session:
            row = session.get(PipelineRunRow, run_id)
            if row is None:
                raise NotFound(f"no pipeline run {run_id}")
            for key, value in values.items():
                setattr(row, key, value)

    def _steps(self, run_id: str) -> dict[str, PipelineStepRow]:
        with self.runtime.db.session() as session:
            rows = list(session.query(PipelineStepRow).filter_by(run_id=run_id))
            session.expunge_all()
        return {row.step: row for row in rows}

    def ready_steps(self, run_id: str) -> list[str]:
        run = self.run(run_id)
        if run["state"] == "cancelled":
            return []
        loaded = self.spec(run_id)
        rows = self._steps(run_id)
        succeeded = {n for n, r in rows.items() if r.state == "succeeded"}
        return [
            name
            for name in loaded.order()
            if rows[name].state in ("pending", "running")
            and set(loaded.pipeline.steps[name].needs) <= succeeded
        ]

    def finish_run(self, run_id: str) -> str:
        rows = self._steps(run_id)
        if self.run(run_id)["state"] == "cancelled":
            return "cancelled"
        state = "succeeded" if all(r.state == "succeeded" for r in rows.values()) else "failed"
        failed = [n for n, r in rows.items() if r.state == "failed"]
        with self.runtime.db.session() as session:
            for row in session.query(PipelineStepRow).filter_by(run_id=run_id):
                if row.state in ("pending", "running"):
                    row.state = "skipped"
        error = f"failed: {', '.join(failed)}" if failed else None
        self.mark_run(run_id, state=state, finished_at=utcnow(), error=error)
        self._record(
            "pipeline.run.finish",
            None,
            run_id,
            {
                "state": state,
                "steps": {n: r.state for n, r in rows.items()},
            },
            outcome="success" if state == "succeeded" else "failure",
        )
        return state

    # steps

    def execute(self, run_id: str, name: str) -> dict[str, Any]:
        loaded = self.spec(run_id)
        step = loaded.pipeline.steps[name]
        run = self.run(run_id)
        rows = self._steps(run_id)
        with self.runtime.db.session() as session:
            row = session.query(PipelineStepRow).filter_by(run_id=run_id, step=name).one()
            row.state, row.attempts = "running", row.attempts + 1
            row.started_at = row.started_at or utcnow()
            row.executor = self.executor
        ancestors = {n: rows[n].output or {} for n in rows if rows[n].state == "succeeded"}
        inputs = {need: rows[need].output or {} for need in step.needs}
        values = run["params"] | {"steps": ancestors}
        try:
            return self._execute(run_id, name, step, run, values, inputs)
        except MissingValue as exc:
            raise StepFailed(str(exc.args[0])) from None

    def _execute(
        self,
        run_id: str,
        name: str,
        step: Step,
        run: dict[str, Any],
        values: dict[str, Any],
        inputs: dict[str, Any],
    ) -> dict[str, Any]:
        workdir = self.runtime.settings.home / "pipelines" / run_id / name
        call = StepCall(
            run_id=run_id,
            step=name,
            workdir=workdir,
            with_=substitute(step.with_, values),
            inputs=inputs,
            timeout_s=step.timeout_s,
            mlflow_tracking_uri=self.runtime.settings.resolved_mlflow_tracking_uri,
        )
        output = self._dispatch(step, call, values, run)
        verdicts = [Criterion.parse(substitute(t, values)).check(output) for t in step.success]
        artifacts = [_artifact(a, workdir, values) for a in step.artifacts]
        failed = [v for v in verdicts if not v.passed]
        with self.runtime.db.session() as session:
            row = session.query(PipelineStepRow).filter_by(run_id=run_id, step=name).one()
            row.output = output
            row.verdicts = [v.__dict__ | {"actual": _plain(v.actual)} for v in verdicts]
            row.artifacts = artifacts
            if not failed:
                row.state, row.finished_at, row.error = "succeeded", utcnow(), None
        if failed:
            raise CriteriaNotMet("; ".join(f"{v.criterion} not met ({v.detail})" for v in failed))
        self._record(
            "pipeline.step.finish",
            None,
            run_id,
            {
                "step": name,
                "kind": step.kind,
                "uses": step.uses,
                "output_sha256": _digest(output),
                "criteria": [v.criterion for v in verdicts],
                "artifacts": artifacts,
                "executor": self.executor,
            },
        )
        return output

    def _dispatch(
        self, step: Step, call: StepCall, values: dict[str, Any], run: dict[str, Any]
    ) -> dict[str, Any]:
        if step.run is not None:
            return run_command(substitute(step.run, values), call)
        if step.call is not None and step.engine == "dask":
            if not self.dask_address:
                raise StepFailed(
                    "this step runs on Dask: give the scheduler's address (--dask ADDRESS)"
                )
            return run_on_dask(self.dask_address, step.call, call)
        if step.call is not None:
            return self.pool.run(step.call, call)
        assert step.uses is not None
        from bastion.pipelines.builtin import BUILTINS

        builtin = (self._builtins or BUILTINS)[step.uses]
        return builtin(self.runtime, run, call)

    def step_failed(self, run_id: str, name: str, error: str) -> None:
        with self.runtime.db.session() as session:
            row = session.query(PipelineStepRow).filter_by(run_id=run_id, step=name).one()
            row.state, row.finished_at, row.error = "failed", utcnow(), error
        self._record(
            "pipeline.step.finish",
            None,
            run_id,
            {"step": name, "error": error[:500], "executor": self.executor},
            outcome="failure",
        )

    def _record(
        self,
        action: str,
        actor: Principal | None,
        run_id: str,
        details: dict[str, Any],
        outcome: str = "success",
    ) -> None:
        record_event(self.runtime, action, actor, run_id, details, outcome)


def run_values(loaded: LoadedPipeline, params: dict[str, Any] | None) -> dict[str, Any]:
    """The file's parameters with the given ones over them (an unknown one is an error)."""
    unknown = set(params or {}) - set(loaded.pipeline.params)
    if unknown:
        from bastion.errors import InvalidInput

        raise InvalidInput(
            f"no such parameter in {loaded.pipeline.name}: {', '.join(sorted(unknown))}"
        )
    return dict(loaded.pipeline.params) | dict(params or {})


def add_run(
    session: Any,
    loaded: LoadedPipeline,
    actor: Principal,
    values: dict[str, Any],
    *,
    state: str = "running",
    executor: str | None,
) -> str:
    """Add a run's row and its steps' rows to ``session``; returns the new run id."""
    run_id = f"run_{uuid.uuid4().hex[:20]}"
    session.add(
        PipelineRunRow(
            id=run_id,
            pipeline=loaded.pipeline.name,
            digest=loaded.digest,
            source=loaded.source[:1000],
            spec=loaded.text,
            params=values,
            state=state,
            started_by=actor.user,
            host=socket.gethostname(),
            pid=os.getpid(),
            executor=executor,
        )
    )
    session.flush()  # the steps' foreign key needs the run first
    for name, step in loaded.pipeline.steps.items():
        session.add(PipelineStepRow(run_id=run_id, step=name, kind=step.kind))
    return run_id


def enqueue_run(
    runtime: Runtime,
    loaded: LoadedPipeline,
    actor: Principal,
    params: dict[str, Any] | None = None,
) -> str:
    """Record a run as queued and put it on the shared queue, in one transaction; a
    worker takes it (``bastion pipelines worker``). Needs PostgreSQL."""
    from dbos import DBOSClient, EnqueueOptions

    settings = runtime.settings
    require_shared_queue(settings)
    values = run_values(loaded, params)
    url = system_database(settings)
    DBOS.migrate(url, schema=settings.pipelines_schema)  # a no-op once DBOS's tables exist
    client = DBOSClient(
        system_database_url=url,
        dbos_system_schema=settings.pipelines_schema,
        application_name=APP_NAME,
    )
    try:
        with runtime.db.session() as session:
            run_id = add_run(session, loaded, actor, values, state="queued", executor=None)
            options: EnqueueOptions = {
                "workflow_name": "bastion.pipeline.run",
                "queue_name": QUEUE,
                "workflow_id": run_id,
                "app_version": app_version(),
            }
            client.enqueue_in_transaction(session, options, run_id)
    finally:
        client.destroy()
    record_event(
        runtime,
        "pipeline.run.enqueue",
        actor,
        run_id,
        {
            "pipeline": loaded.pipeline.name,
            "digest": loaded.digest,
            "params": values,
            "queue": QUEUE,
        },
    )
    return run_id


def record_event(
    runtime: Runtime,
    action: str,
    actor: Principal | None,
    run_id: str,
    details: dict[str, Any],
    outcome: str = "success",
) -> None:
    from bastion.audit.events import EventIn

    runtime.ledger.append(
        EventIn(
            actor=actor.user if actor is not None else "system:pipelines",
            action=action,
            resource=f"pipeline-run:{run_id}",
            outcome=outcome,
            details=details,
        )
    )


def run_view(row: PipelineRunRow, steps: list[PipelineStepRow]) -> dict[str, Any]:
    state = row.state
    if state == "running" and row.host == socket.gethostname() and not pid_alive(row.pid):
        state = "crashed"  # its process is gone: `bastion pipelines resume` continues it
    return {
        "id": row.id,
        "pipeline": row.pipeline,
        "digest": row.digest,
        "state": state,
        "params": row.params,
        "executor": row.executor,
        "started_by": row.started_by,
        "started_at": row.started_at.isoformat(),
        "finished_at": row.finished_at.isoformat() if row.finished_at else None,
        "error": row.error,
        "steps": [
            {
                "step": s.step,
                "kind": s.kind,
                "state": s.state,
                "attempts": s.attempts,
                "executor": s.executor,
                "seconds": (s.finished_at - s.started_at).total_seconds()
                if s.finished_at and s.started_at
                else None,
                "output": s.output,
                "verdicts": s.verdicts,
                "artifacts": s.artifacts,
                "error": s.error,
            }
            for s in sorted(steps, key=lambda s: s.id)
        ],
    }


def pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _system_url(database_url: str, home: Path) -> str:
    """DBOS's own tables: beside Bastion's on PostgreSQL (their own schema), a file of
    their own next to Bastion's on SQLite (one writer each)."""
    if database_url.startswith("sqlite"):
        return f"sqlite:///{(home / 'pipelines.sqlite').resolve()}"
    return database_url


def _digest(value: Any) -> str:
    import json

    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def _plain(value: Any) -> Any:
    return value if isinstance(value, (int, float, str, bool, type(None))) else str(value)


def _artifact(artifact: Any, workdir: Path, values: dict[str, Any]) -> dict[str, Any]:
    if artifact.mlflow_run is not None:
        return {"mlflow_run": substitute(artifact.mlflow_run, values)}
    from bastion.registry.digests import tree_sha256

    path = Path(substitute(artifact.path, values))
    if not path.is_absolute():
        path = Path.cwd() / path
    if not path.exists():
        raise StepFailed(f"the step declares artifact {artifact.path}, which it did not leave")
    return {"path": str(path), "sha256": tree_sha256(path)}
