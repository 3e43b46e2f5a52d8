"""Shared for the evidence tests: a runtime with events written by its real ledger."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from bastion.audit import EventIn


@pytest.fixture
def write(runtime: Any) -> Callable[..., None]:
    """``write(action, n=1, outcome=..., flags=..., actor=..., details=...)`` through the
    runtime's ledger, then wait until it is committed."""

    def append(
        action: str,
        n: int = 1,
        *,
        outcome: str = "success",
        flags: tuple[str, ...] = (),
        actor: str = "user:ann",
        details: dict[str, Any] | None = None,
        resource: str = "model:local",
        request_id: str | None = None,
    ) -> None:
        for i in range(n):
            runtime.ledger.append(
                EventIn(
                    actor,
                    action,
                    resource,
                    outcome,
                    details=details or {},
                    flags=flags,
                    request_id=request_id or f"req-{action}-{i}",
                )
            )

    return append


def now() -> datetime:
    return datetime.now(UTC)
