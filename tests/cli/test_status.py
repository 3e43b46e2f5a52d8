"""``bastion status`` on a fresh home, a migrated one, a bad policy, and PostgreSQL."""

from __future__ import annotations

import json
import os
from pathlib import Path

from typer.testing import CliRunner

from bastion.cli.main import app


def status(env: dict[str, str], *args: str) -> tuple[int, str]:
    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("BASTION_")}
    unset |= {"OPENAI_API_KEY": None}
    result = CliRunner().invoke(app, list(args), env=unset | env, catch_exceptions=False)
    return result.exit_code, result.stdout


def test_status_follows_the_installation_from_empty_to_running(
    tmp_path: Path, database_url: str
) -> None:
    home = tmp_path / "home"
    env = {"BASTION_HOME": str(home)}
    code, out = status(env, "status", "--format", "json")
    report = json.loads(out)
    assert code == 1 and report["database"]["schema"] == "missing"
    assert report["problems"] == ["no database yet: run `bastion db upgrade`"]
    assert not (home / "bastion.db").exists()  # looking does not create it

    env["BASTION_DATABASE_URL"] = database_url
    assert status(env, "db", "upgrade")[0] == 0
    assert status(env, "keys", "create", "--user", "ann", "--role", "analyst")[0] == 0
    code, out = status(env, "status", "--format", "json")
    report = json.loads(out)
    assert code == 0 and report["problems"] == []
    assert report["database"]["backend"] == database_url.split("+")[0].split(":")[0]
    assert report["database"]["schema"] == "current"
    assert report["api_keys"] == {"active": 1, "by_role": {"analyst": 1}}
    assert report["policy"]["valid"] is True
    assert {m["name"]: m["state"] for m in report["models"]}["gpt-4.1-mini"] == "fallback"
    # the estate: nothing registered, no rollout, no open clock; keys create signed events
    assert report["registry"] == [] and report["rollouts"] == [] and report["open_clocks"] == []
    assert report["last_checkpoint"] is None or report["last_checkpoint"]["streams"] >= 1

    (home / "policy.yaml").write_text("version: 1\nmodels: {x: {provider: nowhere}}\n")
    code, out = status(env, "status")
    assert code == 1
    assert "problem: the policy is invalid: `bastion policy check" in " ".join(out.split())

    code, out = status(env, "status", "--format", "yaml")
    assert code == 2


def test_a_password_in_a_url_is_not_shown() -> None:
    from bastion.operations.doctor import redacted

    assert redacted("postgresql+psycopg://bastion:s3cr3t@db:5432/b") == (
        "postgresql+psycopg://bastion:***@db:5432/b"
    )
    assert redacted("redis://:pw@cache:6379/0") == "redis://:***@cache:6379/0"
    assert redacted("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
