"""Callables the pipeline tests run as steps (imported by the engine's worker processes)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


def flaky(marker: str, fail_times: int = 1) -> dict[str, Any]:
    """Fails the first ``fail_times`` calls (counted in ``marker``), then succeeds."""
    path = Path(marker)
    calls = int(path.read_text()) if path.exists() else 0
    path.write_text(str(calls + 1))
    if calls < fail_times:
        raise RuntimeError(f"transient failure {calls + 1}")
    return {"calls": calls + 1}


def record(log: str, name: str, value: float = 1.0) -> dict[str, Any]:
    """Appends ``name`` to ``log`` (so a test can count runs) and reports a metric."""
    with open(log, "a") as f:
        f.write(f"{name} {os.getpid()} {time.time()}\n")
    return {"metrics": {"value": value}, "name": name}


def needs_flag(flag: str) -> dict[str, Any]:
    if not Path(flag).exists():
        raise RuntimeError(f"{flag} is missing")
    return {"flag": True}


def square_sum(n: int) -> dict[str, Any]:
    """A compute step for Dask: reports the worker's process id with the result."""
    return {"sum": sum(i * i for i in range(n)), "pid": os.getpid()}
