"""Test helpers for the ledger's rights: a migrated, anchored installation, a chat event
that stores its content for a subject, and the CLI run against an installation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bastion.audit import EventIn

if TYPE_CHECKING:
    from bastion.runtime import Runtime
    from bastion.settings import Settings


def anchored_settings(settings: Settings, anchor_dir: object) -> Settings:
    """``settings`` publishing anchors to ``anchor_dir``, its database migrated."""
    from bastion.db import create_database, upgrade

    settings = settings.model_copy(update={"audit_anchor_dir": anchor_dir})
    db = create_database(settings.resolved_database_url)
    upgrade(db.engine)
    db.dispose()
    return settings


def record_chat(rt: Runtime, user: str, prompt: str) -> None:
    """One ``llm.chat`` event by ``user`` whose prompt and response are stored content."""
    rt.ledger.append(
        EventIn(
            f"user:{user}",
            "llm.chat",
            "model:m",
            "success",
            {"tokens": 3},
            content={"prompt": prompt, "response": f"answer to {prompt}"},
            store_content=True,
            subject=user,
        )
    )


def run_cli(settings: Settings, *args: str) -> tuple[int, str, str]:
    """``bastion ARGS`` against ``settings``' installation: exit code, stdout, stderr."""
    from typer.testing import CliRunner

    from bastion.cli.main import app
    from bastion.settings import Settings

    # Every setting's variable unset: the run sees this installation only, whatever the
    # caller's environment holds.
    env: dict[str, str | None] = {f"BASTION_{name.upper()}": None for name in Settings.model_fields}
    env |= {
        "BASTION_HOME": str(settings.home),
        "BASTION_DATABASE_URL": settings.resolved_database_url,
    }
    result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr
