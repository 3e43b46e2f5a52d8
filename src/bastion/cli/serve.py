"""``bastion serve``: check the database and policy, make sure an admin key exists, serve."""

from __future__ import annotations

import shutil

import typer

from bastion.cli.common import console, fail, handled, load_settings


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int = typer.Option(1, min=1, max=64, help="Worker processes."),
    migrate: bool = typer.Option(False, help="Apply pending migrations before starting."),
) -> None:
    """Start Bastion's server: the OpenAI-compatible gateway (/v1), the API (/api, docs at
    /docs), metrics (/metrics) and health checks (/healthz, /readyz)."""
    import uvicorn

    from bastion.cli.status import has_env
    from bastion.db import create_database, upgrade
    from bastion.db.migrate import SchemaBehind, check_current
    from bastion.gateway.availability import model_statuses
    from bastion.observability import configure_logging
    from bastion.operations.doctor import redacted
    from bastion.policy import write_starter_policy
    from bastion.runtime import ensure_home, open_runtime
    from bastion.settings import export_to_children

    settings = load_settings()
    if workers > 1 and settings.redis_url is None:
        fail(
            f"--workers {workers} needs BASTION_REDIS_URL: with in-process counters each "
            "worker would enforce every rate limit and budget on its own, so together they "
            "could spend a budget once per worker. Point the workers at a Redis, or serve "
            "with one worker."
        )
    ensure_home(settings)
    if settings.policy is None and write_starter_policy(settings.policy_path):
        console.print(f"Wrote a starter policy to [bold]{settings.policy_path}[/]")
    db = create_database(settings.resolved_database_url)
    try:
        if migrate:
            upgrade(db.engine)
        check_current(db.engine)
    except SchemaBehind as exc:
        fail(exc.message)
    finally:
        db.dispose()
    with handled():
        rt = open_runtime(settings, label="bootstrap")
    try:
        with handled():
            created = rt.keys.ensure_admin()
        models = model_statuses(rt.policy.policy, has_env)
    finally:
        rt.close()

    url = f"http://{host}:{port}"
    console.rule("[bold]Bastion")
    console.print(f"Serving on      [bold cyan]{url}[/]   (API docs: {url}/docs)")
    console.print(f"Dashboard       [bold cyan]{url}/ui[/]   (sign in with an API key)")
    console.print(f"Home            {settings.home.resolve()}")
    console.print(f"Policy          {settings.policy_path.resolve()}")
    console.print(
        "Database        "
        + redacted(settings.resolved_database_url)
        + ("" if settings.redis_url else "\nCounters        in-process (one server process)"),
        highlight=False,
        soft_wrap=True,
    )
    for m in models:
        if m.state == "fallback":
            console.print(
                f"[yellow]Fallback[/]        {m.name} is answered by [bold]{m.answered_by}[/]: "
                f"{m.reason} (set it and restart; `bastion status` shows every model)",
                highlight=False,
                soft_wrap=True,
            )
        elif m.state == "unavailable":
            console.print(
                f"[red]Unavailable[/]     {m.name}: {m.reason}", highlight=False, soft_wrap=True
            )
    if created is not None:
        console.print(f"Admin API key   [bold green]{created.secret}[/]")
        console.print("                shown once: Bastion keeps only its digest. Try it:")
        console.print(
            f"                curl -H 'Authorization: Bearer {created.secret}' {url}/api/whoami",
            soft_wrap=True,
        )
    else:
        console.print("Admin API key   printed when it was made (`make run` prints the demo's)")
        console.print("                and never again; make another with")
        console.print("                `bastion keys create --user you --role admin`")
    console.rule()

    if workers > 1:
        metrics_dir = settings.home / "metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        export_to_children("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
        export_to_children("BASTION_METRICS_DIR", str(metrics_dir))
    configure_logging(settings.log_level, settings.log_format)
    uvicorn.run(
        "bastion.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=False,
        timeout_keep_alive=settings.keep_alive_s,
        timeout_graceful_shutdown=10,
    )
