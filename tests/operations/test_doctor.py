"""``bastion doctor`` names each broken setting on its own and says what to do."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bastion.cli.main import app


def run(env: dict[str, str], *args: str) -> tuple[int, str]:
    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("BASTION_")}
    unset |= {"OPENAI_API_KEY": None}
    result = CliRunner().invoke(app, list(args), env=unset | env, catch_exceptions=False)
    return result.exit_code, result.stdout


def findings(env: dict[str, str]) -> tuple[int, dict[str, dict[str, str]]]:
    code, out = run(env, "doctor", "--format", "json")
    report = json.loads(out)
    assert report["ok"] is (code == 0)
    return code, {f["check"]: f for f in report["findings"]}


@pytest.fixture
def installed(tmp_path: Path, database_url: str) -> dict[str, str]:
    """A home as `bastion keys create` leaves it: schema, policy, signing and secret keys."""
    env = {"BASTION_HOME": str(tmp_path / "home"), "BASTION_DATABASE_URL": database_url}
    assert run(env, "db", "upgrade")[0] == 0
    assert run(env, "keys", "create", "--user", "ann", "--role", "admin")[0] == 0
    return env


def test_a_healthy_installation_has_nothing_to_fix(installed: dict[str, str]) -> None:
    code, found = findings(installed)
    assert code == 0
    assert [name for name, f in found.items() if f["state"] == "fail"] == []
    assert found["migrations"]["state"] == "ok"
    assert found["signing key"]["state"] == "ok"
    # gpt-4.1-mini is answered by the local fallback without OPENAI_API_KEY: a warning
    assert found["provider keys"]["state"] == "warn"
    assert "OPENAI_API_KEY" in found["provider keys"]["fix"]
    code, text = run(installed, "doctor")
    assert code == 0 and "nothing to fix" in text


def _wrong_database(env: dict[str, str], home: Path) -> None:
    env["BASTION_DATABASE_URL"] = "postgresql+psycopg://nobody@127.0.0.1:1/none"


def _missing_sqlite(env: dict[str, str], home: Path) -> None:
    env["BASTION_DATABASE_URL"] = f"sqlite:///{home / 'elsewhere' / 'b.db'}"


def _open_signing_key(env: dict[str, str], home: Path) -> None:
    (home / "audit-signing-key.pem").chmod(0o644)


def _corrupt_signing_key(env: dict[str, str], home: Path) -> None:
    (home / "audit-signing-key.pem").write_text("-----BEGIN PRIVATE KEY-----\nnope\n")


def _invalid_policy(env: dict[str, str], home: Path) -> None:
    (home / "policy.yaml").write_text("version: 1\nmodels: {x: {provider: nowhere}}\n")


def _unreachable_redis(env: dict[str, str], home: Path) -> None:
    env["BASTION_REDIS_URL"] = "redis://127.0.0.1:1/0"


def _behind_schema(env: dict[str, str], home: Path) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(env["BASTION_DATABASE_URL"])
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    engine.dispose()


def _open_secret_key(env: dict[str, str], home: Path) -> None:
    (home / "secret.key").chmod(0o640)


def _short_secret(env: dict[str, str], home: Path) -> None:
    env["BASTION_SECRET_KEY"] = "short"


def _unreachable_mlflow(env: dict[str, str], home: Path) -> None:
    env["BASTION_MLFLOW_TRACKING_URI"] = "http://127.0.0.1:1"


BREAKAGES: list[tuple[Callable[[dict[str, str], Path], None], str, str]] = [
    (_wrong_database, "database", "BASTION_DATABASE_URL"),
    (_missing_sqlite, "database", "bastion db upgrade"),
    (_behind_schema, "migrations", "bastion db upgrade"),
    (_open_signing_key, "signing key", "chmod 600"),
    (_corrupt_signing_key, "signing key", "restore the key"),
    (_invalid_policy, "policy", "bastion policy check"),
    (_unreachable_redis, "redis", "BASTION_REDIS_URL"),
    (_open_secret_key, "secret key", "chmod 600"),
    (_short_secret, "secret key", "openssl rand"),
    (_unreachable_mlflow, "mlflow", "BASTION_MLFLOW_TRACKING_URI"),
]


@pytest.mark.parametrize(
    ("breakage", "check", "advice"), BREAKAGES, ids=[b[0].__name__[1:] for b in BREAKAGES]
)
def test_each_broken_setting_is_reported_on_its_own(
    installed: dict[str, str],
    breakage: Callable[[dict[str, str], Path], None],
    check: str,
    advice: str,
) -> None:
    env = dict(installed)
    breakage(env, Path(env["BASTION_HOME"]))
    code, found = findings(env)
    assert code == 1
    failed = {name for name, f in found.items() if f["state"] == "fail"}
    # a database that cannot be reached cannot say its schema either: the one follows
    expected = {check, "migrations"} if check == "database" else {check}
    assert failed == expected
    assert advice in found[check]["fix"]
    # every check still ran
    assert set(found) >= {"database", "policy", "signing key", "redis", "mlflow", "clock"}


def test_invalid_settings_are_a_finding_not_a_traceback(tmp_path: Path) -> None:
    code, out = run({"BASTION_HOME": str(tmp_path), "BASTION_AUDIT_BATCH_MAX": "lots"}, "doctor")
    assert code == 1
    assert "audit_batch_max" in out and "Traceback" not in out


def test_a_wrong_format_is_refused() -> None:
    assert run({}, "doctor", "--format", "yaml")[0] == 2


@pytest.mark.parametrize(("offset_s", "state"), [(0.0, "ok"), (3.0, "ok"), (60.0, "fail")])
def test_a_clock_that_disagrees_with_the_database_fails(
    tmp_path: Path, offset_s: float, state: str
) -> None:
    from datetime import UTC, datetime, timedelta

    from bastion.operations.doctor import Context, check_clock
    from bastion.settings import Settings

    ctx = Context(Settings(home=tmp_path), lambda _: False)
    ctx.database_now = datetime.now(UTC) - timedelta(seconds=offset_s)
    finding = check_clock(ctx)
    assert finding.state == state
    if state == "fail":
        assert "ahead of the database" in finding.detail and "NTP" in finding.fix
