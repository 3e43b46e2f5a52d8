"""Adaptive batching: the requests for one model version that arrive while it is busy
are scored together, in one call to the model.

A scikit-learn pipeline spends most of a one-row prediction in per-call overhead
(validation, column selection, encoders); eight rows cost little more than one. As the
ledger's writer commits in groups, the batcher scores in groups: a request's rows join
the pending group; the first request of a group schedules the scoring task, which
yields once to the event loop (so every request already read joins in) and scores all
pending rows in one call (:meth:`Served.predict_records`: the compiled pipeline, or one
DataFrame), then hands each request its slice. No timer, no waiting
for a batch to fill: an idle server scores a lone request at once.

A batch the model refuses as a whole is scored again request by request, so one
request's bad rows fail only that request (:class:`PredictionFailed`, 422).
:attr:`Batcher.group_sizes` counts the groups scored by their number of requests.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bastion.errors import BastionError

if TYPE_CHECKING:
    import pandas as pd

    from bastion.serving.cache import Served

#: The most rows scored in one call.
BATCH_ROWS = 256

Scored = tuple[list[Any], list[float] | None]


class PredictionFailed(BastionError):
    """The model raised on rows that passed the signature check."""

    status = 422
    code = "prediction_failed"
    type = "invalid_request_error"


def scored(served: Served, frame: pd.DataFrame) -> Scored:
    return _guarded(served, served.predict, frame)


def scored_records(served: Served, rows: list[dict[str, Any]]) -> Scored:
    """Score rows already checked against ``served.schema``."""
    return _guarded(served, served.predict_records, rows)


def _guarded(served: Served, predict: Callable[[Any], Scored], data: Any) -> Scored:
    try:
        return predict(data)
    except Exception as exc:
        raise PredictionFailed(
            f"{served.name} v{served.version} could not score these rows "
            f"({type(exc).__name__}: {str(exc)[:300]})"
        ) from exc


class Batcher:
    def __init__(self, served: Served) -> None:
        self.served = served
        self._pending: list[tuple[list[dict[str, Any]], asyncio.Future[Scored]]] = []
        self._running = False
        self._task: asyncio.Task[None] | None = None
        #: How many groups of each size (requests scored together) were scored.
        self.group_sizes: Counter[int] = Counter()

    async def score(self, rows: list[dict[str, Any]]) -> Scored:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Scored] = loop.create_future()
        self._pending.append((rows, future))
        if not self._running:
            self._running = True
            self._task = loop.create_task(self._drain())  # kept: the loop holds weak refs
        return await future

    async def _drain(self) -> None:
        try:
            await asyncio.sleep(0)  # let the requests already read join this group
            while self._pending:
                group: list[tuple[list[dict[str, Any]], asyncio.Future[Scored]]] = []
                size = 0
                while self._pending and (
                    not group or size + len(self._pending[0][0]) <= BATCH_ROWS
                ):
                    item = self._pending.pop(0)
                    group.append(item)
                    size += len(item[0])
                self._score(group)
                await asyncio.sleep(0)
        finally:
            self._running = False

    def _score(self, group: list[tuple[list[dict[str, Any]], asyncio.Future[Scored]]]) -> None:
        self.group_sizes[len(group)] += 1
        if len(group) > 1:
            rows = [row for part, _ in group for row in part]
            try:
                predictions, scores = scored_records(self.served, rows)
            except PredictionFailed:
                pass  # one request's rows, probably: each on its own below
            else:
                start = 0
                for part, future in group:
                    end = start + len(part)
                    if not future.done():
                        future.set_result(
                            (predictions[start:end], scores[start:end] if scores else None)
                        )
                    start = end
                return
        for part, future in group:
            if future.done():
                continue
            try:
                future.set_result(scored_records(self.served, part))
            except BastionError as exc:
                future.set_exception(exc)
