"""The prediction log's writer: one thread, inserts in groups.

Request handlers hand a row to a bounded queue and return at once; the writer thread
takes everything queued while the previous group was being written (up to
``batch_max``) and inserts it with one statement in one transaction, as the ledger's
writer does (:mod:`bastion.audit.writer`). Unlike the ledger, an answer does not wait
for its row: a prediction log feeds monitoring, not evidence, and a prediction must not
be slower because SQLite is busy. What cannot be written (the queue full, or a group
the database refuses after one retry) is counted in
``bastion_prediction_log_rows_total{outcome="dropped"}`` and logged, never raised to
the caller. :meth:`flush` waits until everything queued so far is written (the CLI and
tests use it; shutdown calls it).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import insert

from bastion.db import Database
from bastion.serving.models import PredictionRow

log = logging.getLogger("bastion.serving")
_STOP = object()
_INSERT = insert(PredictionRow)


class PredictionLog:
    def __init__(
        self,
        db: Database,
        *,
        batch_max: int = 1000,
        queue_max: int = 100_000,
        on_rows: Callable[[str, int], None] | None = None,
    ) -> None:
        self.db = db
        self.batch_max = batch_max
        self._queue: queue.Queue[dict[str, Any] | object] = queue.Queue(maxsize=queue_max)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.on_rows = on_rows or (lambda outcome, n: None)
        self.written = 0
        self.dropped = 0

    def start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="bastion-prediction-log", daemon=True
                )
                self._thread.start()

    def append(self, row: dict[str, Any]) -> None:
        """Queue one row (``predictions``' columns); never blocks, never raises."""
        if self._thread is None:
            self.start()
        try:
            self._queue.put_nowait(row)
        except queue.Full:
            self.dropped += 1
            self.on_rows("dropped", 1)
            log.warning("prediction log queue full; a row was dropped")

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until every row queued so far is written (or dropped)."""
        if self._thread is None:
            return True
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def close(self) -> None:
        if self._thread is not None:
            self.flush()
            self._queue.put(_STOP)
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                self._queue.task_done()
                return
            group: list[dict[str, Any]] = [first]  # type: ignore[list-item]
            stop = False
            while len(group) < self.batch_max:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    self._queue.task_done()
                    break
                group.append(item)  # type: ignore[arg-type]
            self._write(group)
            for _ in group:
                self._queue.task_done()
            if stop:
                return

    def _write(self, group: list[dict[str, Any]]) -> None:
        for attempt in (1, 2):
            try:
                with self.db.engine.begin() as conn:
                    conn.execute(_INSERT, group)
            except Exception as exc:
                if attempt == 2 or len(group) == 1:
                    self._write_one_by_one(group, exc)
                    return
                time.sleep(0.05)
                continue
            self.written += len(group)
            self.on_rows("written", len(group))
            return

    def _write_one_by_one(self, group: list[dict[str, Any]], first: Exception) -> None:
        """A group the database refused as a whole (a repeated request id, say): write
        what it takes, count the rest as dropped."""
        lost = 0
        for row in group:
            try:
                with self.db.engine.begin() as conn:
                    conn.execute(_INSERT, [row])
            except Exception:
                lost += 1
            else:
                self.written += 1
                self.on_rows("written", 1)
        if lost:
            self.dropped += lost
            self.on_rows("dropped", lost)
            log.error(
                "prediction log rows could not be written",
                extra={"rows": lost, "error": type(first).__name__},
            )
