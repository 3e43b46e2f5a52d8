"""The prediction log's writer: one thread, inserts in groups.

Request handlers append a row to an in-memory queue and return at once; the writer
thread wakes when a group begins, lingers ``linger_s`` (50 ms) so the rows of the
requests answered meanwhile join it, and inserts them with one statement in one
transaction (up to ``batch_max`` rows a statement), as the ledger's writer does
(:mod:`bastion.audit.writer`). Unlike the ledger, an answer does not wait for its row: a
prediction log feeds monitoring, not evidence, and a prediction must not be slower
because SQLite is busy. Nor is the writer woken for every row: waking a thread hands it
the GIL, and on a server answering one request at a time that hand-off, and the insert
it starts, used to sit inside every request. What cannot be written (the queue full, or
a group the database refuses after one retry) is counted in
``bastion_prediction_log_rows_total{outcome="dropped"}`` and logged, never raised to
the caller. :meth:`flush` cuts the linger short and waits until everything queued so
far is written (labels, explanations, the CLI and tests use it; shutdown calls it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from sqlalchemy import insert

from bastion.db import Database
from bastion.serving.models import PredictionRow

log = logging.getLogger("bastion.serving")
_INSERT = insert(PredictionRow)


class _Mark:
    """Put in the queue by :meth:`PredictionLog.flush`: set once every row before it
    is written."""

    def __init__(self) -> None:
        self.done = threading.Event()


class PredictionLog:
    def __init__(
        self,
        db: Database,
        *,
        batch_max: int = 1000,
        queue_max: int = 100_000,
        linger_s: float = 0.05,
        on_rows: Callable[[str, int], None] | None = None,
    ) -> None:
        self.db = db
        self.batch_max = batch_max
        self.queue_max = queue_max
        self.linger_s = linger_s
        # deque.append and popleft are atomic: the event loop, worker threads (shadows)
        # and the writer share it without a lock.
        self._rows: deque[dict[str, Any] | _Mark] = deque()
        self._wake = threading.Event()  # a group has begun
        self._hurry = threading.Event()  # flush or close: do not linger
        self._stop = False
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.on_rows = on_rows or (lambda outcome, n: None)
        self.written = 0
        self.dropped = 0
        #: How many groups were written (each one transaction, up to ``batch_max`` rows).
        self.groups = 0

    def start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._stop = False
                self._thread = threading.Thread(
                    target=self._run, name="bastion-prediction-log", daemon=True
                )
                self._thread.start()

    def append(self, row: dict[str, Any]) -> None:
        """Queue one row (``predictions``' columns); never blocks, never raises."""
        if self._thread is None:
            self.start()
        if len(self._rows) >= self.queue_max:
            self.dropped += 1
            self.on_rows("dropped", 1)
            log.warning("prediction log queue full; a row was dropped")
            return
        self._rows.append(row)
        if not self._wake.is_set():
            self._wake.set()

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until every row queued so far is written (or dropped)."""
        if self._thread is None:
            return True
        mark = _Mark()
        self._rows.append(mark)
        self._hurry.set()
        self._wake.set()
        return mark.done.wait(timeout_s)

    def close(self) -> None:
        if self._thread is not None:
            self.flush()
            self._stop = True
            self._hurry.set()
            self._wake.set()
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._hurry.wait(self.linger_s)  # let the next requests' rows join the group
            self._wake.clear()
            self._hurry.clear()
            self._drain()
            if self._stop:
                self._drain()
                return

    def _drain(self) -> None:
        group: list[dict[str, Any]] = []
        while self._rows:
            item = self._rows.popleft()
            if isinstance(item, _Mark):
                self._write_group(group)
                group = []
                item.done.set()
                continue
            group.append(item)
            if len(group) >= self.batch_max:
                self._write_group(group)
                group = []
        self._write_group(group)

    def _write_group(self, group: list[dict[str, Any]]) -> None:
        if not group:
            return
        try:
            self._write(group)
        except Exception:  # the writer thread must outlive any one group
            self.dropped += len(group)
            self.on_rows("dropped", len(group))
            log.exception("prediction log group could not be written")
        self.groups += 1

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
