"""What every benchmark records about the machine it ran on (not a benchmark itself:
``make bench`` runs the ``bench/*.py`` files that do not start with ``_``)."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def git(*args: str) -> str:
    out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return out.stdout.strip()


def machine(*, sources: tuple[str, ...] = (), dirty_key: str = "sources_dirty") -> dict[str, Any]:
    """CPU, platform, Python, the commit, whether ``sources`` had uncommitted changes."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "platform": platform.platform(),
        "python": platform.python_version(),
        "git_commit": git("rev-parse", "HEAD"),
    }
    if sources:
        info[dirty_key] = bool(git("status", "--porcelain", "--", *sources))
    info["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    return info
