"""The operator's commands, as a user runs them, on a real home and database.

In-process through Typer's runner (the same parsing, exit codes and output as the
installed command, without paying an interpreter start per call); ``test_serve.py``
runs the real executable.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from bastion.cli.main import _register, app


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """SQLite: these commands do nothing backend-specific (the round trip runs on both)."""
    home = tmp_path / "home"
    return {
        "BASTION_HOME": str(home),
        "BASTION_DATABASE_URL": f"sqlite:///{home / 'bastion.db'}",
    }


def bastion(env: dict[str, str], *args: str) -> Ran:
    _register()
    # Unset every BASTION_ variable the test does not set, as a fresh shell would.
    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("BASTION_")}
    result = CliRunner().invoke(app, list(args), env=unset | dict(env), catch_exceptions=False)
    return Ran(result.exit_code, result.stdout, result.stderr)


def test_keys_audit_round_trip(env: dict[str, str], tmp_path: Path, database_url: str) -> None:
    env = env | {"BASTION_DATABASE_URL": database_url}
    assert bastion(env, "db", "upgrade").returncode == 0
    created = bastion(
        env,
        "keys",
        "create",
        "--user",
        "ann",
        "--team",
        "risk",
        "--role",
        "analyst",
        "--expires",
        "30d",
    )
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("bst_")
    listed = json.loads(bastion(env, "keys", "list", "--json").stdout)
    [key] = listed
    assert key["user"] == "ann" and key["status"] == "active" and key["expires_at"]
    assert secret not in json.dumps(listed)
    revoked = bastion(env, "keys", "revoke", key["id"], "--by", "ops")
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    assert json.loads(bastion(env, "keys", "list", "--json").stdout) == []
    assert (
        json.loads(bastion(env, "keys", "list", "--all", "--json").stdout)[0]["status"] == "revoked"
    )

    verified = bastion(env, "audit", "verify")
    assert verified.returncode == 0, verified.stderr
    assert "2 events" in verified.stdout
    out = tmp_path / "export.jsonl"
    assert (
        bastion(
            env, "audit", "export", "--since", "2000-01-01", "--format", "jsonl", "-o", str(out)
        ).returncode
        == 0
    )
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert [e["action"] for e in events] == ["key.create", "key.revoke"]
    assert events[1]["actor"] == "user:ops"
    # each command is its own writer process, so its own chain
    assert events[0]["stream"] != events[1]["stream"]
    assert [e["seq"] for e in events] == [1, 1]
    assert bastion(env, "audit", "export", "--since", "2999-01-01").stdout == ""

    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE audit_events SET actor = 'user:someone-else' WHERE action = 'key.revoke'"
            )
        )
    engine.dispose()
    broken = bastion(env, "audit", "verify")
    assert broken.returncode == 1
    assert "first broken link" in broken.stderr
    assert f"stream {events[1]['stream']} seq 1" in broken.stderr and "edited" in broken.stderr
    report = json.loads(bastion(env, "audit", "verify", "--json").stdout)
    assert report["ok"] is False and report["problems"][0]["kind"] == "edited"


def test_bad_input_exits_2_with_advice(env: dict[str, str]) -> None:
    assert bastion(env, "db", "upgrade").returncode == 0
    unknown = bastion(env, "keys", "create", "--user", "x", "--role", "wizard")
    assert unknown.returncode == 2 and "unknown role 'wizard'" in unknown.stderr
    when = bastion(env, "keys", "create", "--user", "x", "--role", "guest", "--expires", "tomorrow")
    assert when.returncode == 2 and "30d" in when.stderr
    missing = bastion(env, "keys", "revoke", "nope")
    assert missing.returncode == 1 and "no API key 'nope'" in missing.stderr
    fmt = bastion(env, "audit", "export", "--format", "csv")
    assert fmt.returncode == 2 and "jsonl" in fmt.stderr


def test_verify_trusts_only_the_keys_it_is_given(env: dict[str, str], tmp_path: Path) -> None:
    assert bastion(env, "db", "upgrade").returncode == 0
    bastion(env, "keys", "create", "--user", "a", "--role", "guest")
    pem = tmp_path / "public.pem"
    pem.write_text(bastion(env, "audit", "public-key").stdout)
    assert bastion(env, "audit", "verify", "--public-key", str(pem)).returncode == 0
    other_env = env | {"BASTION_HOME": str(tmp_path / "other-home")}
    other = tmp_path / "other.pem"
    other.write_text(bastion(other_env, "audit", "public-key").stdout)
    untrusted = bastion(env, "audit", "verify", "--public-key", str(other))
    assert untrusted.returncode == 1 and "untrusted_checkpoint" in untrusted.stderr


def test_erasure_removes_content_and_is_itself_recorded(env: dict[str, str]) -> None:
    database_url = env["BASTION_DATABASE_URL"]
    assert bastion(env, "db", "upgrade").returncode == 0
    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO audit_content (stream, seq, field, subject, body, created_at) VALUES ('s', 1, 'prompt', 'user:alice', 'hello', CURRENT_TIMESTAMP)"
            )
        )
    result = bastion(env, "audit", "erase", "--subject", "user:alice")
    assert result.returncode == 0 and "erased 1" in result.stdout
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM audit_content")).scalar() == 0
        actions = conn.execute(sa.text("SELECT action, resource FROM audit_events")).all()
    engine.dispose()
    assert actions[0][0] == "audit.erase" and "alice" not in actions[0][1]


def test_errors_name_their_stable_code(env: dict[str, str]) -> None:
    """Scripts match the code in brackets; rich must not eat it as markup."""
    assert bastion(env, "db", "upgrade").returncode == 0
    refused = bastion(env, "keys", "create", "--user", "ann", "--role", "wizard")
    assert refused.returncode == 2
    assert "[unknown_role]" in refused.stderr
    team = bastion(env, "keys", "create", "--user", "ann", "--role", "analyst", "--team", "nope")
    assert team.returncode == 2
    assert "[unknown_team]" in team.stderr
