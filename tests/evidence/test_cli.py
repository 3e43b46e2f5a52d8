"""The evidence commands as an operator runs them (in-process, real home and database)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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
    home = tmp_path / "home"
    env = {"BASTION_HOME": str(home), "BASTION_DATABASE_URL": f"sqlite:///{home / 'bastion.db'}"}
    assert bastion(env, "db", "upgrade").returncode == 0
    return env


def bastion(env: dict[str, str], *args: str) -> Ran:
    _register()
    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("BASTION_")}
    result = CliRunner().invoke(app, list(args), env=unset | dict(env), catch_exceptions=False)
    return Ran(result.exit_code, result.stdout, result.stderr)


def period_until_now() -> str:
    start = datetime.now(UTC) - timedelta(hours=1)
    return f"{start.isoformat()}..{datetime.now(UTC).isoformat()}"


def test_report_attest_verify_round_trip(env: dict[str, str], tmp_path: Path) -> None:
    assert bastion(env, "keys", "create", "--user", "ann", "--role", "analyst").returncode == 0
    attested = bastion(env, "report", "attest", "gdpr/art-35", "--by", "dpo", "--note", "DPIA v3")
    assert attested.returncode == 0, attested.stderr
    out = tmp_path / "gdpr.json"
    period = period_until_now()
    made = bastion(
        env,
        "report",
        "compliance",
        "--framework",
        "gdpr",
        "--period",
        period,
        "--format",
        "json",
        "-o",
        str(out),
    )
    assert made.returncode == 0, made.stderr
    assert "controls backed by machine evidence" in made.stdout and "1 attested" in made.stdout
    ok = bastion(env, "report", "verify", str(out))
    assert ok.returncode == 0 and "report verified" in ok.stdout
    md = tmp_path / "gdpr.md"
    assert (
        bastion(
            env,
            "report",
            "compliance",
            "--framework",
            "gdpr",
            "--period",
            period,
            "--format",
            "md",
            "-o",
            str(md),
        ).returncode
        == 0
    )
    assert "attested by dpo" in md.read_text()
    with sa.create_engine(env["BASTION_DATABASE_URL"]).begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_events WHERE action = 'key.create'"))
    broken = bastion(env, "report", "verify", str(out))
    assert broken.returncode == 1
    assert "report does not verify" in broken.stderr and "art-32" in broken.stderr


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (
            ("report", "compliance", "--framework", "pci", "--period", "2026-01-01..2026-03-31"),
            "unknown_framework",
        ),
        (("report", "compliance", "--framework", "gdpr", "--period", "Q1"), "invalid_period"),
        (("report", "attest", "gdpr/art-99", "--by", "x", "--note", "y"), "unknown_control"),
        (("report", "attest", "art-35", "--by", "x", "--note", "y"), "invalid_request"),
        (("incidents", "close", "999"), "unknown_incident"),
        (("policy", "rollback", "42"), "unknown_policy_version"),
        (("feedback", "add", "req-1", "--kind", "helpful", "--rating", "9"), "invalid_feedback"),
        (("monitor", "responses", "--since", "forever"), "invalid_request"),
    ],
)
def test_bad_input_gets_a_coded_error_not_a_traceback(
    env: dict[str, str], args: tuple[str, ...], code: str
) -> None:
    ran = bastion(env, *args)
    assert ran.returncode in (1, 2)
    assert f"[{code}]" in ran.stderr and "Traceback" not in ran.stderr


def test_verify_refuses_a_file_that_is_not_a_report(env: dict[str, str], tmp_path: Path) -> None:
    junk = tmp_path / "x.json"
    junk.write_text("{}")
    ran = bastion(env, "report", "verify", str(junk))
    assert ran.returncode == 2 and "[invalid_report]" in ran.stderr


def test_incidents_open_list_close(env: dict[str, str]) -> None:
    opened = bastion(
        env,
        "incidents",
        "open",
        "wrong dosage advice",
        "--severity",
        "death",
        "--aware",
        "2026-03-01T09:00",
    )
    assert "deadline 2026-03-11 09:00 UTC" in opened.stdout
    listed = json.loads(bastion(env, "incidents", "list", "--format", "json").stdout)
    assert [(i["kind"], i["status"]) for i in listed] == [("serious_incident", "overdue")]
    closed = bastion(env, "incidents", "close", str(listed[0]["id"]), "--resolution", "reported")
    assert "closed serious_incident" in closed.stdout and "closed late" in closed.stdout
    assert "no open incidents" in bastion(env, "incidents", "list").stdout


def test_feedback_add_and_export(env: dict[str, str], tmp_path: Path) -> None:
    added = bastion(
        env,
        "feedback",
        "add",
        "req-9",
        "--kind",
        "unsafe",
        "--rating",
        "1",
        "--comment",
        "call +44 20 7946 0958 now",
    )
    assert added.returncode == 0, added.stderr
    out = tmp_path / "fb.csv"
    assert bastion(env, "feedback", "export", "--format", "csv", "-o", str(out)).returncode == 0
    text = out.read_text()
    assert "req-9" in text and "7946" not in text and "<PHONE_NUMBER>" in text
    lines = bastion(env, "feedback", "export").stdout.splitlines()
    assert json.loads(lines[0])["kind"] == "unsafe"


def test_policy_history_and_monitor_commands(env: dict[str, str], tmp_path: Path) -> None:
    history = json.loads(bastion(env, "policy", "history", "--format", "json").stdout)
    assert [v["trigger"] for v in history] == ["startup"]
    chart = tmp_path / "responses.html"
    ran = bastion(env, "monitor", "responses", "--since", "7d", "--html", str(chart))
    assert ran.returncode == 0 and "0 calls" in ran.stdout
    assert "Response monitoring" in chart.read_text()
    assert "no unusual use" in bastion(env, "monitor", "access").stdout
    assert "0 items due" in bastion(env, "monitor", "clocks").stdout
    rolled = bastion(env, "policy", "rollback", "1")
    assert rolled.returncode == 0 and "already in force" in rolled.stdout
