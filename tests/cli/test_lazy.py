"""Commands load lazily: listing them imports none of the heavy libraries, and each
command imports only what it needs. Checked by module, in fresh interpreters (timings
are in ``bench/cli.py``, not here)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from bastion.cli.commands import COMMANDS, load, summary
from bastion.cli.main import app

#: Libraries that cost a large share of a second or more to import.
HEAVY = (
    "mlflow",
    "pandas",
    "numpy",
    "scipy",
    "sklearn",
    "sqlalchemy",
    "alembic",
    "fastapi",
    "starlette",
    "uvicorn",
    "httpx",
    "pydantic",
    "pydantic_settings",
    "prometheus_client",
    "rich",
    "presidio_analyzer",
    "bastion.privacy",
    "bastion.registry",
    "bastion.db",
    "bastion.gateway",
    "bastion.monitoring",
)


def imported_by(*code_or_args: str, run_cli: bool = False) -> set[str]:
    """The modules a fresh interpreter holds after ``import bastion.cli.main`` (and,
    with ``run_cli``, after running ``bastion ARGS``)."""
    script = (
        "import json, sys\n"
        "import bastion.cli.main as m\n"
        + (
            f"sys.argv = ['bastion', *{list(code_or_args)!r}]\n"
            "try:\n    m.app()\nexcept SystemExit:\n    pass\n"
            if run_cli
            else ""
        )
        + "print('\\n' + json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(h for h in HEAVY if any(m == h or m.startswith(h + ".") for m in modules))


def test_importing_the_cli_imports_no_heavy_module() -> None:
    assert heavy_in(imported_by()) == []


def test_the_command_list_imports_no_command_module() -> None:
    modules = imported_by("--help", run_cli=True)
    assert heavy_in(modules) == []
    assert not {e.module for e in COMMANDS.values()} & modules


def test_a_command_imports_its_own_module_only() -> None:
    modules = imported_by("models", "register", "--help", run_cli=True)
    assert "bastion.cli.models" in modules
    assert {e.module for e in COMMANDS.values()} & modules == {"bastion.cli.models"}
    # Only the light parts of the shared CLI helpers (rich for output, pydantic for
    # option types) may load for a command's help: MLflow, pandas and the database load
    # when the command runs.
    assert set(heavy_in(modules)) <= {"prometheus_client", "pydantic", "pydantic_settings", "rich"}
    assert "rich" in heavy_in(modules)  # the command's module itself was imported


@pytest.mark.parametrize("name", list(COMMANDS))
def test_the_listing_says_what_the_command_says(name: str) -> None:
    assert COMMANDS[name].help == summary(load(name).help)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_command_answers_help(name: str) -> None:
    result = CliRunner().invoke(app, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: bastion " + name in " ".join(result.output.split())


def test_the_root_help_lists_every_command_and_an_unknown_one_is_refused() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert f"\n  {name} " in result.output
    wrong = CliRunner().invoke(app, ["modles"])
    assert wrong.exit_code == 2 and "No such command 'modles'" in wrong.output
