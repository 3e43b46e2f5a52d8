"""``bastion demo``: seed the embedded defaults with something to look at."""

from __future__ import annotations

import typer

from bastion.cli.common import console, runtime

app = typer.Typer(help="Demo data for a first look.", no_args_is_help=True)


@app.command()
def seed(
    models: bool = typer.Option(
        True, help="Also run the model-registry example (adds two versions each time)."
    ),
    documents: bool = typer.Option(
        True,
        help="Also ingest the demo corpus (GDPR and EU AI Act articles, shipped with "
        "Bastion) into the 'regulations' collection; unchanged articles are skipped.",
    ),
) -> None:
    """Create demo keys (once) for the example's two people, ana (analyst, asks) and ada
    (admin, approves), and a guest, so roles can be tried; and take the worked income
    model through the registry's gates and approvals; ingest the demo corpus."""
    from bastion.auth.principal import cli_principal

    if documents:
        _seed_documents()

    with runtime(label="demo") as rt:
        if models:
            from bastion.registry import demo

            registry = rt.registry()
            for line in demo.seed(registry, rt.settings.home / "mlartifacts"):
                console.print(line, highlight=False)
        existing = {(k.user, k.role) for k in rt.keys.list_keys()}
        roles = rt.policy.policy.roles
        made = []
        for user, role, team in (
            ("ana", "analyst", "risk"),
            ("ada", "admin", "risk"),
            ("gus", "guest", None),
            ("ida", "auditor", None),  # reads the evidence; only where the policy has the role
        ):
            if (user, role) not in existing and (role in roles or role != "auditor"):
                made.append(
                    rt.keys.create(
                        cli_principal("demo"), user=user, role=role, team=team, name="demo"
                    )
                )
    if not made:
        console.print("demo keys already present")
        return
    for created in made:
        console.print(
            f"demo key for {created.key.user} ({created.key.role}): [bold]{created.secret}[/]"
        )


def _seed_documents() -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from bastion.auth.principal import cli_principal
    from bastion.cli.docs import documents as open_documents
    from bastion.documents import demo

    with (
        open_documents("demo") as (docs, run),
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=console,
            transient=True,
        ) as bar,
    ):
        task = bar.add_task("demo corpus", total=None)

        def tick(done: int, total: int, name: str) -> None:
            bar.update(task, completed=done, total=total, description=f"demo corpus: {name}")

        report = run(
            docs.service.ingest(
                demo.COLLECTION, [demo.corpus_upload()], cli_principal("demo"), tick
            )
        )
    console.print(
        f"demo corpus ({demo.ATTRIBUTION}): {report.count('added')} articles added, "
        f"{report.count('replaced')} replaced, {report.count('unchanged')} unchanged in "
        f"the '{demo.COLLECTION}' collection",
        highlight=False,
    )
