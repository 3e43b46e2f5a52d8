"""Queue workers: several processes share one queue of pipeline runs on PostgreSQL.

    bastion pipelines run FILE --queue   records the run as queued and enqueues it
    bastion pipelines worker             takes runs from the queue, N at a time

The queue is DBOS's (its tables, in ``BASTION_PIPELINES_SCHEMA``). Each worker has an
executor id of its own; DBOS hands a queued run to one worker only (an atomic
ENQUEUED → PENDING claim in the database) and checkpoints every finished step. A
worker's unfinished runs go back on the queue when it is recovered: by itself when it
starts again with the same id (DBOS does that at launch), or by another worker once it
is taken for dead. Without DBOS's Conductor service nothing watches executors, so the
workers check in here (``pipeline_workers``) and watch each other: a worker whose
process is gone (same host) or that was not seen for ``pipelines_worker_timeout_s`` is
dead, and the first live worker to notice asks DBOS to recover its runs. A recovered run
continues from its last finished step; no finished step runs again.

    WorkerIdInUse (409)   another live worker has this executor id
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from dbos import DBOS
from sqlalchemy import select, update

from bastion.db.base import utcnow
from bastion.errors import Conflict
from bastion.pipelines.engine import QUEUE, PipelineEngine, pid_alive, require_shared_queue
from bastion.pipelines.models import PipelineWorkerRow

if TYPE_CHECKING:
    from bastion.runtime import Runtime

#: How often an idle worker looks at the queue (DBOS backs off under contention).
QUEUE_POLL_S = 0.5
#: Check-ins per ``pipelines_worker_timeout_s``.
BEATS_PER_TIMEOUT = 4


class WorkerIdInUse(Conflict):
    code = "worker_id_in_use"


def default_worker_id() -> str:
    """The host name: stable across restarts of a container or pod, so a restarted
    worker takes its own unfinished runs back at once."""
    return socket.gethostname()[:100]


class PipelineWorker:
    """One queue worker: checks in, runs what DBOS hands it, recovers dead peers."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        executor_id: str,
        concurrency: int,
        dask_address: str | None = None,
    ) -> None:
        require_shared_queue(runtime.settings)
        self.runtime = runtime
        self.executor_id = executor_id
        self.concurrency = concurrency
        self.dask_address = dask_address
        self.timeout = timedelta(seconds=runtime.settings.pipelines_worker_timeout_s)
        self.host = socket.gethostname()

    def serve(self, stop: threading.Event, on_ready: Callable[[], None] | None = None) -> None:
        """Work until ``stop`` is set; ``on_ready`` is called once the worker takes runs."""
        self._check_in()
        engine = PipelineEngine(
            self.runtime,
            dask_address=self.dask_address,
            workers=self.concurrency,
            executor_id=self.executor_id,
            queues=[QUEUE],
        )
        engine.launch()
        try:
            # The queue's settings live in the database; every worker applies the last
            # worker's concurrency (DBOS reloads it on each poll).
            DBOS.register_queue(
                QUEUE,
                worker_concurrency=self.concurrency,
                polling_interval_sec=QUEUE_POLL_S,
                on_conflict="always_update",
            )
            self._event("pipeline.worker.start", {"concurrency": self.concurrency})
            if on_ready is not None:
                on_ready()
            interval = self.timeout.total_seconds() / BEATS_PER_TIMEOUT
            while True:
                self._beat()
                self.recover_dead()
                if stop.wait(interval):
                    break
        finally:
            engine.close()
            self._stopped()

    # the registry

    def _check_in(self) -> None:
        now = utcnow()
        with self.runtime.db.session() as session:
            row = session.get(PipelineWorkerRow, self.executor_id, with_for_update=True)
            if row is not None and row.stopped_at is None and self._is_alive(row, now):
                raise WorkerIdInUse(
                    f"worker {self.executor_id} is already running (pid {row.pid} on "
                    f"{row.host}): give this one another id (--id NAME)"
                )
            if row is None:
                row = PipelineWorkerRow(executor=self.executor_id)
                session.add(row)
            row.host, row.pid, row.concurrency = self.host, os.getpid(), self.concurrency
            row.started_at = row.seen_at = now
            row.stopped_at = row.recovered_at = row.recovered_by = None

    def _beat(self) -> None:
        with self.runtime.db.session() as session:
            session.execute(
                update(PipelineWorkerRow)
                .where(PipelineWorkerRow.executor == self.executor_id)
                .values(seen_at=utcnow())
            )

    def _stopped(self) -> None:
        with self.runtime.db.session() as session:
            session.execute(
                update(PipelineWorkerRow)
                .where(
                    PipelineWorkerRow.executor == self.executor_id,
                    PipelineWorkerRow.pid == os.getpid(),
                )
                .values(stopped_at=utcnow(), seen_at=utcnow())
            )
        self._event("pipeline.worker.stop", {})

    def _is_alive(self, row: PipelineWorkerRow, now: Any) -> bool:
        if row.host == self.host:
            return pid_alive(row.pid)
        return bool(now - row.seen_at < self.timeout)

    # recovery

    def recover_dead(self) -> list[str]:
        """Put the unfinished runs of every dead worker back on the queue; returns the
        ids of the workflows recovered. Only one live worker recovers a given death."""
        now = utcnow()
        with self.runtime.db.session() as session:
            peers = (
                session.execute(
                    select(PipelineWorkerRow).where(
                        PipelineWorkerRow.executor != self.executor_id,
                        PipelineWorkerRow.recovered_at.is_(None),
                    )
                )
                .scalars()
                .all()
            )
            session.expunge_all()
        recovered: list[str] = []
        for peer in peers:
            if self._is_alive(peer, now):
                continue
            with self.runtime.db.session() as session:
                won = session.execute(  # type: ignore[attr-defined]
                    update(PipelineWorkerRow)
                    .where(
                        PipelineWorkerRow.executor == peer.executor,
                        PipelineWorkerRow.pid == peer.pid,
                        PipelineWorkerRow.started_at == peer.started_at,
                        PipelineWorkerRow.recovered_at.is_(None),
                    )
                    .values(recovered_at=now, recovered_by=self.executor_id)
                ).rowcount
            if not won:
                continue  # another worker took it, or it came back
            handles = DBOS._recover_pending_workflows([peer.executor])
            ids = [h.workflow_id for h in handles]
            recovered += ids
            if ids:
                self._event(
                    "pipeline.worker.recover",
                    {"dead": peer.executor, "host": peer.host, "workflows": ids[:50]},
                    resource=f"pipeline-worker:{peer.executor}",
                )
        return recovered

    def _event(self, action: str, details: dict[str, Any], resource: str | None = None) -> None:
        from bastion.audit.events import EventIn

        self.runtime.ledger.append(
            EventIn(
                actor=f"system:pipelines:{self.executor_id}",
                action=action,
                resource=resource or f"pipeline-worker:{self.executor_id}",
                outcome="success",
                details=details | {"executor": self.executor_id, "host": self.host},
            )
        )


def list_workers(runtime: Runtime) -> list[dict[str, Any]]:
    """The workers that checked in, newest first, each with its state as seen now."""

    timeout = timedelta(seconds=runtime.settings.pipelines_worker_timeout_s)
    host, now = socket.gethostname(), utcnow()
    with runtime.db.session() as session:
        rows = (
            session.execute(select(PipelineWorkerRow).order_by(PipelineWorkerRow.started_at.desc()))
            .scalars()
            .all()
        )
        out = []
        for row in rows:
            if row.stopped_at is not None:
                state = "stopped"
            elif (row.host == host and not pid_alive(row.pid)) or now - row.seen_at >= timeout:
                state = "dead"
            else:
                state = "up"
            out.append(
                {
                    "executor": row.executor,
                    "state": state,
                    "host": row.host,
                    "pid": row.pid,
                    "concurrency": row.concurrency,
                    "started_at": row.started_at.isoformat(),
                    "seen_at": row.seen_at.isoformat(),
                    "recovered_by": row.recovered_by,
                }
            )
        return out
