"""The rollout controller: one replica at a time looks at every rollout in progress.

Each tick takes (or renews) the ``rollout-controller`` lease — one conditional UPDATE
on a database row, the same on SQLite and PostgreSQL, no consensus of our own — and
only its holder analyses and moves rollouts. A replica that dies stops renewing; after
``lease_s`` another takes over, and since every rollout's state is in the database it
resumes where the last one stopped. The server runs :func:`run_controller` as a
background task; ``bastion deploy check`` and ``POST /api/deployments/{model}/check``
run one tick on demand.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from dataclasses import dataclass, field
from datetime import datetime

from bastion.db import utcnow
from bastion.delivery.errors import RolloutFinished
from bastion.delivery.service import DeliveryService, Outcome

log = logging.getLogger("bastion.delivery")


def holder_name() -> str:
    """This process's name in the lease: host, pid and a random tag."""
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass
class RolloutController:
    service: DeliveryService
    holder: str = field(default_factory=holder_name)

    def tick(self, now: datetime | None = None, *, model: str | None = None) -> list[Outcome]:
        """Look at every due rollout (or ``model``'s, due or not) if we hold the lease;
        [] when another replica does."""
        now = now or utcnow()
        if not self.service.take_lease(self.holder, now, self.service.config.lease_s):
            return []
        ids = [self.service.active_id(model)] if model is not None else self.service.due(now)
        outcomes = []
        for rollout_id in ids:
            try:
                outcomes.append(self.service.look(rollout_id, now))
            except RolloutFinished:  # ended by hand between the query and the look
                continue
        return outcomes

    def release(self) -> None:
        self.service.drop_lease(self.holder)


async def run_controller(controller: RolloutController, interval_s: float) -> None:
    """The server's background loop: a tick every ``interval_s``, errors logged."""
    from starlette.concurrency import run_in_threadpool

    while True:
        try:
            for outcome in await run_in_threadpool(controller.tick):
                if outcome.action not in ("analysed", "held", "waiting", "paused"):
                    log.info(
                        "rollout %s: %s",
                        outcome.rollout_id,
                        outcome.action,
                        extra={"state": outcome.state, "weight": outcome.weight},
                    )
        except Exception:
            log.exception("rollout controller tick failed; it tries again")
        await asyncio.sleep(interval_s)
