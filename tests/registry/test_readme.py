"""The README's registry walk-through, run as written: train with MLflow, register the run
with a label, write the card, ask, approve, verify (offline, a fresh home)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def readme_block() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Govern model releases", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```bash\n(.*?)```", section, re.S)
    return str(block)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_readme_registry_walk_through_runs_as_written(tmp_path: Path) -> None:
    block = readme_block()
    assert "RUN_ID=$(uv run python examples/registry/train.py)" in block
    # `uv run X` is this interpreter's X; `pr_...` is the id the request printed.
    script = block.replace(
        "examples/registry/train.py", str(ROOT / "examples" / "registry" / "train.py")
    ).replace(
        "pr_...",
        '"$(uv run bastion models requests --status pending --json '
        '| python -c \'import json, sys; print(json.load(sys.stdin)[0]["id"])\')"',
    )
    prelude = (
        "set -euo pipefail\n"
        f'python() {{ "{sys.executable}" "$@"; }}\n'
        'uv() { shift; if [ "$1" = bastion ]; then shift; '
        f'"{sys.executable}" -m bastion.cli.main "$@"; else "$@"; fi; }}\n'
        "uv run bastion db upgrade\n"  # what `make run` did first
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BASTION_", "MLFLOW_"))}
    env |= {"BASTION_HOME": str(tmp_path / ".bastion")}
    done = subprocess.run(
        ["bash", "-c", prelude + script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert re.search(r"registered cancer v1 1\.0\.0 \(sha256 [0-9a-f]{16}…\) by ana", out)
    assert re.search(r"^ *1 +1\.0\.0 +development ", out, re.MULTILINE)  # `models show`
    assert "wrote card.md" in out and "Demonstrations only." in (tmp_path / "card.md").read_text()
    assert "approved pr_" in out and "cancer v1 is now in staging" in out
    assert "OK: 1 model(s)" in out
    assert "acted as" not in done.stderr  # every step named its actor
