"""Where each command group is attached to the ``bastion`` app (one line a group)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    from bastion.cli import audit, db, demo, gateway, keys, policy, serve

    app.command()(serve.serve)
    app.add_typer(db.app, name="db")
    app.add_typer(policy.app, name="policy")
    app.add_typer(keys.app, name="keys")
    app.add_typer(audit.app, name="audit")
    app.add_typer(demo.app, name="demo")
    app.add_typer(gateway.app, name="gateway")

    from bastion.cli import monitoring

    app.add_typer(monitoring.drift_app, name="drift")
    app.add_typer(monitoring.fairness_app, name="fairness")
    app.command("explain")(monitoring.explain)

    from bastion.cli.pii import app as pii_app

    app.add_typer(pii_app, name="pii")

    from bastion.cli.models import app as models_app

    app.add_typer(models_app, name="models", no_args_is_help=True)
