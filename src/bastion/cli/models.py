"""``bastion models``: the model registry at the command line.

Whoever runs these commands has the database in hand, so by default they act with
every permission; ``--by`` names them in the ledger. Without ``--by`` (or ``--key``) the
login name is recorded, and the command says so on stderr: a shared machine account
(``root``, ``runner``) names nobody. A request and its approval must carry different
names: that is the point of an approval.
``--key`` acts as an API key's holder instead, with that key's role: a CI job or a
person whose rights should be checked (an analyst cannot approve, only admins roll back).

Errors name their stable code after the message, as ``bastion drift|fairness`` do
(``error: no model 'x' in the registry: … [model_not_found]``); exit 2 for bad input,
1 otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.markup import escape

from bastion.auth.permissions import Permission
from bastion.cli.common import (
    FORMAT_OPTION,
    OutputFormat,
    console,
    err_console,
    fail,
    key_table,
    login_name,
    print_json,
    runtime,
    short_digest,
)
from bastion.errors import BastionError, InvalidInput

if TYPE_CHECKING:
    from bastion.auth.principal import Principal
    from bastion.registry.cards import CardKind
    from bastion.registry.gates import GateResult
    from bastion.registry.service import ModelRegistry

app = typer.Typer(help="Model registry: versions, approvals, gates, lineage, cards.")
EXIT_FAILED = 1


BY = typer.Option(
    None,
    "--by",
    help="Who is acting, as recorded in the registry and the ledger (default: the login "
    "name, and the command says so).",
)
KEY = typer.Option(
    None,
    "--key",
    help="Act as this API key's holder, with its role ('-' reads the key from stdin); "
    "default: the operator, with every permission.",
)
JSON = typer.Option(False, "--json", help="Print JSON (the same as --format json).")


def _refuse(message: str, code: str, exit_code: int = 2) -> NoReturn:
    fail(message, exit_code, error_code=code)


@contextmanager
def _coded() -> Iterator[None]:
    try:
        yield
    except BastionError as exc:
        _refuse(exc.message, exc.code, 2 if isinstance(exc, InvalidInput) else 1)


@contextmanager
def _registry() -> Iterator[ModelRegistry]:

    with runtime(label="models") as rt, _coded():
        yield rt.registry()


@contextmanager
def _acting(
    by: str | None, key: str | None, needs: Permission = Permission.MODELS_WRITE
) -> Iterator[tuple[ModelRegistry, Principal]]:
    """The registry and who acts: the key's holder with ``--key``, else the operator."""
    from bastion.auth.errors import PermissionDenied
    from bastion.auth.principal import cli_principal

    if key is not None and by is not None:
        _refuse("give --by or --key, not both: a key names its holder", "conflicting_options")
    secret = typer.get_text_stream("stdin").readline().strip() if key == "-" else key
    with runtime(label="models") as rt, _coded():
        actor = rt.keys.authenticate(secret) if secret else cli_principal(by or login_name())
        if not actor.can(needs):
            raise PermissionDenied(
                f"role {actor.role!r} lacks the permission {needs.value!r} this command "
                "needs: ask an admin for a key with a role that has it"
            )
        yield rt.registry(), actor
    if not secret and by is None:  # said once it acted: a refusal prints its error alone
        err_console.print(
            f"[yellow]note:[/] acted as {escape(repr(login_name()))}, the login name: name "
            "yourself with --by NAME, or act as an API key's holder with --key",
            highlight=False,
        )


def _pairs(values: list[str] | None, what: str) -> dict[str, str]:
    out = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            _refuse(f"{what} {item!r}: write KEY=VALUE", "invalid_option")
        out[key.strip()] = value.strip()
    return out


def _numbers(values: list[str] | None) -> dict[str, float]:
    out = {}
    for key, value in _pairs(values, "--metric").items():
        try:
            out[key] = float(value)
        except ValueError:
            _refuse(f"--metric {key}={value}: the value must be a number", "invalid_option")
    return out


def _read_json(path: Path) -> dict[str, Any]:
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        _refuse(f"cannot read {path} as JSON: {exc}", "invalid_json")
    if not isinstance(data, dict):
        _refuse(f"{path} does not hold a JSON object", "invalid_json")
    return data


def _print_gates(results: list[GateResult]) -> None:
    rows = []
    for r in results:
        verdict = (
            "[yellow]overridden[/]"
            if r.overridden
            else "[green]pass[/]"
            if r.passed
            else "[red]FAIL[/]"
        )
        reason = r.reason + (f" — {r.justification}" if r.justification else "")
        rows.append([escape(r.gate), verdict, escape(reason)])
    console.print(key_table(["gate", "verdict", "reason"], rows, key=["gate", "verdict"]))


@app.command("list")
def list_models(as_json: bool = JSON, fmt: OutputFormat = FORMAT_OPTION) -> None:
    """Registered models, with the versions in staging and production."""
    with _registry() as registry:
        models = registry.list_models()
    if as_json or fmt is OutputFormat.json:
        print_json([m.model_dump() for m in models])
        return
    rows = [
        [
            escape(m.name),
            str(m.versions),
            f"{m.latest} ({m.latest_semver})" if m.latest_semver else str(m.latest),
            str(m.staging or ""),
            str(m.production or ""),
            str(m.pending_requests or ""),
        ]
        for m in models
    ]
    headers = ["model", "versions", "latest", "staging", "production", "pending requests"]
    console.print(key_table(headers, rows, key=["model", "latest"]))


@app.command()
def show(
    name: str = typer.Argument(..., help="The model."),
    version: int | None = typer.Argument(None, help="One version (default: all)."),
    as_json: bool = JSON,
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """A model's versions, or one version with its evidence, requests and history."""
    with _registry() as registry:
        if version is None:
            versions = registry.list_versions(name)
            if as_json or fmt is OutputFormat.json:
                print_json([v.model_dump(mode="json") for v in versions])
                return
            rows = [
                [
                    str(v.version),
                    v.semver or "",
                    v.stage,
                    f"{v.registered_at:%Y-%m-%d %H:%M}",
                    escape(v.registered_by),
                    v.run_id or "",
                    short_digest(v.artifact_sha256),
                ]
                for v in versions
            ]
            headers = ["version", "semver", "stage", "registered", "by", "run", "artifact sha256"]
            console.print(
                key_table(headers, rows, key=["version", "semver", "stage", "artifact sha256"])
            )
            return
        detail = registry.detail(name, version)
    if as_json or fmt is OutputFormat.json:
        print_json(detail.model_dump(mode="json"))
        return
    v = detail.version
    label = f" ({v.semver})" if v.semver else ""
    console.print(f"[bold]{v.name} v{v.version}{label}[/] — {v.stage}", highlight=False)
    console.print(
        f"registered {v.registered_at:%Y-%m-%d %H:%M} by {v.registered_by}; run {v.run_id}"
    )
    console.print(f"artifact sha256 {v.artifact_sha256}", highlight=False)
    if v.dataset:
        console.print(
            f"dataset {v.dataset.get('name')} ({v.dataset.get('rows')} rows) "
            f"digest {v.dataset.get('digest')}",
            highlight=False,
        )
    if v.metrics:
        console.print(
            "metrics " + ", ".join(f"{k} {val:.4g}" for k, val in sorted(v.metrics.items()))
        )
    for e in detail.evidence:
        passed = "" if e.passed is None else (" passed" if e.passed else " FAILED")
        console.print(f"evidence {e.kind}{passed}, {e.recorded_at:%Y-%m-%d} by {e.recorded_by}")
    for c in detail.history:
        console.print(
            f"  {c.at:%Y-%m-%d %H:%M} {c.from_stage or 'registered'} → {c.to_stage} "
            f"({c.kind}, {c.actor}{', ' + c.request_id if c.request_id else ''})",
            highlight=False,
        )


@app.command()
def register(
    name: str = typer.Argument(..., help="The model's name in the registry."),
    run: str | None = typer.Option(None, "--run", help="An MLflow run that logged the model."),
    path: Path | None = typer.Option(
        None, "--path", help="A saved scikit-learn model (.pkl/.joblib) or MLflow model folder."
    ),
    artifact_path: str | None = typer.Option(
        None, help="The model's folder in the run, when it logged several."
    ),
    data: Path | None = typer.Option(
        None, "--data", help="The training data (.csv/.parquet): digest, rows and schema."
    ),
    metric: list[str] | None = typer.Option(None, "--metric", help="NAME=VALUE, repeatable."),
    param: list[str] | None = typer.Option(None, "--param", help="NAME=VALUE, repeatable."),
    code_version: str | None = typer.Option(None, help="The code's version (a git commit)."),
    training_seconds: float | None = typer.Option(None, help="How long training took."),
    description: str | None = typer.Option(None, help="A line about this version."),
    semver: str | None = typer.Option(
        None,
        "--semver",
        help="A semantic version label for this version (1.2.0, 2.0.0-rc.1): unique per "
        "model and higher than its earlier labels.",
    ),
    by: str | None = BY,
    key: str | None = KEY,
    server: str | None = typer.Option(
        None,
        "--server",
        envvar="BASTION_URL",
        show_default=False,
        help="A running Bastion server's base URL: register a --run through its API as "
        "the holder of --key (or BASTION_API_KEY), without loading MLflow here.",
    ),
    env_key: str | None = typer.Option(
        None, "--api-key", envvar="BASTION_API_KEY", hidden=True, show_default=False
    ),
    local: bool = typer.Option(
        False, "--local", help="Register in this process even when BASTION_URL names a server."
    ),
    as_json: bool = JSON,
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Register a version with its evidence (idempotent by the artifact's SHA-256)."""
    if (run is None) == (path is None):
        _refuse("give exactly one of --run RUN_ID or --path PATH", "model_source_required")
    metrics, params = _numbers(metric), _pairs(param, "--param")
    if server and run is not None and not local:
        # A file given with --path is on this machine: it is logged here, not sent.
        body: dict[str, Any] = {
            "run_id": run,
            "artifact_path": artifact_path,
            "metrics": metrics,
            "params": params,
            "training_seconds": training_seconds,
            "code_version": code_version,
            "description": description,
            "semver": semver,
        }
        if data is not None:
            from bastion.registry.digests import dataset_summary

            with _coded():
                body["dataset"] = dataset_summary(data)
        if by is not None:
            _refuse(
                "--by names the actor of a registration made here; the server records the "
                "holder of the key instead: give --key (or --local with --by)",
                "conflicting_options",
            )
        answer = _remote_register(server, key or env_key, name, body)
        _print_registered(answer, as_json or fmt is OutputFormat.json)
        return
    with _acting(by, key) as (registry, actor):
        result = registry.register(
            actor,
            name,
            run_id=run,
            path=path,
            artifact_path=artifact_path,
            dataset_path=data,
            params=params,
            metrics=metrics,
            training_seconds=training_seconds,
            code_version=code_version,
            description=description,
            semver=semver,
        )
    _print_registered(result.model_dump(mode="json"), as_json or fmt is OutputFormat.json)


def _print_registered(result: dict[str, Any], as_json: bool) -> None:
    """A registration's outcome, the same whether made here or by the server."""
    if as_json:
        print_json(result)
        return
    v = result["version"]
    verb = "registered" if result["created"] else "already registered as"
    label = f" {v['semver']}" if v.get("semver") else ""
    console.print(
        f"{verb} {v['name']} v{v['version']}{label} (sha256 {v['artifact_sha256'][:16]}…) "
        f"by {v['registered_by']}",
        highlight=False,
    )


#: Connecting is quick or the server is not there; registering may wait for MLflow and
#: for another registration of the same artifact (a minute at most).
SERVER_TIMEOUT_S = (5.0, 120.0)


def _remote_register(
    server: str, key: str | None, name: str, body: dict[str, Any]
) -> dict[str, Any]:
    """``POST /api/models/{name}/versions`` on a running server, which has MLflow open
    already: the same registration, checks and ledger event as in this process, with
    the key's holder as the actor."""
    if key == "-":
        key = typer.get_text_stream("stdin").readline().strip()
    if not key:
        _refuse(
            f"registering through the server at {server} needs an API key with "
            "models:write: give --key (or BASTION_API_KEY), or --local to register here",
            "missing_api_key",
        )
    from urllib.parse import quote

    import httpx

    url = f"{server.rstrip('/')}/api/models/{quote(name, safe='')}/versions"
    timeout = httpx.Timeout(SERVER_TIMEOUT_S[1], connect=SERVER_TIMEOUT_S[0])
    try:
        response = httpx.post(
            url,
            json={k: v for k, v in body.items() if v is not None},
            headers={"Authorization": f"Bearer {key}"},
            timeout=timeout,
        )
    except httpx.HTTPError as exc:
        _refuse(
            f"could not reach the Bastion server at {server} ({type(exc).__name__}): is "
            "`bastion serve` running there? (--server or BASTION_URL; --local registers "
            "in this process)",
            "server_unreachable",
            EXIT_FAILED,
        )
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if response.status_code in (200, 201) and isinstance(answer, dict):
        return answer
    error = answer.get("error") if isinstance(answer, dict) else None
    if isinstance(error, dict) and error.get("code"):
        # Bad input is exit 2 here as it is locally; everything else (401, 403, 404,
        # 409, 503 …) is 1.
        _refuse(
            str(error.get("message")),
            str(error["code"]),
            2 if response.status_code in (400, 422) else EXIT_FAILED,
        )
    _refuse(
        f"the server at {server} answered {response.status_code} without a Bastion error: "
        "is it a Bastion server?",
        "unexpected_response",
        EXIT_FAILED,
    )


@app.command()
def evidence(
    name: str = typer.Argument(...),
    version: int = typer.Argument(...),
    fairness: Path | None = typer.Option(
        None, help="A fairness report: `bastion fairness check --json FILE`."
    ),
    drift_baseline: Path | None = typer.Option(
        None, help="A reference profile: `bastion drift check --save-reference FILE`."
    ),
    by: str | None = BY,
    key: str | None = KEY,
) -> None:
    """Store a fairness report and/or a drift baseline for a version."""
    if fairness is None and drift_baseline is None:
        _refuse("give --fairness FILE, --drift-baseline FILE, or both", "evidence_required")
    with _acting(by, key) as (registry, actor):
        for kind, path in (("fairness", fairness), ("drift_baseline", drift_baseline)):
            if path is not None:
                stored = registry.record_evidence(actor, name, version, kind, _read_json(path))
                passed = (
                    "" if stored.passed is None else (" (passed)" if stored.passed else " (FAILED)")
                )
                console.print(f"stored {kind}{passed} for {name} v{version}", highlight=False)


@app.command()
def gates(
    name: str = typer.Argument(...),
    version: int = typer.Argument(...),
    stage: str = typer.Option("production", "--stage", help="staging or production."),
) -> None:
    """Show which gates a version meets for a stage; exit 1 if any fails."""
    with _registry() as registry:
        results = registry.check_gates(name, version, stage)
    _print_gates(results)
    if not all(r.passed for r in results):
        raise typer.Exit(EXIT_FAILED)


@app.command("request-promotion")
def request_promotion(
    name: str = typer.Argument(...),
    version: int = typer.Argument(...),
    to: str = typer.Option(..., "--to", help="staging or production."),
    reason: str = typer.Option(..., "--reason", help="Why this version should move."),
    override: list[str] | None = typer.Option(
        None, "--override", help="GATE=JUSTIFICATION for a failing gate (admins), repeatable."
    ),
    by: str | None = BY,
    key: str | None = KEY,
) -> None:
    """Ask for promotion; gates are checked now and again at approval."""
    with _acting(by, key) as (registry, actor):
        request = registry.request_promotion(
            actor, name, version, to, reason, _pairs(override, "--override") or None
        )
    _print_gates(request.gates)
    console.print(
        f"request [bold]{request.id}[/]: {name} v{version} → {to}, waiting for an approver "
        f"(`bastion models approve {request.id}`)",
        highlight=False,
    )


@app.command()
def approve(
    request_id: str = typer.Argument(...),
    notes: str | None = typer.Option(None, help="What was checked."),
    override: list[str] | None = typer.Option(
        None, "--override", help="GATE=JUSTIFICATION for a failing gate, repeatable."
    ),
    by: str | None = BY,
    key: str | None = KEY,
) -> None:
    """Approve a request (not your own): gates again, then the MLflow alias moves."""
    # The registry checks the approver's role itself, and records a refusal.
    with _acting(by, key, Permission.MODELS_READ) as (registry, actor):
        request = registry.approve(actor, request_id, notes, _pairs(override, "--override") or None)
    console.print(
        f"approved {request.id}: {request.name} v{request.version} is now in {request.to_stage}",
        highlight=False,
    )


@app.command()
def reject(
    request_id: str = typer.Argument(...),
    notes: str = typer.Option(..., help="Why."),
    by: str | None = BY,
    key: str | None = KEY,
) -> None:
    """Reject a request (not your own), with notes."""
    with _acting(by, key, Permission.MODELS_READ) as (registry, actor):
        request = registry.reject(actor, request_id, notes)
    console.print(f"rejected {request.id}", highlight=False)


@app.command()
def requests(
    status: str | None = typer.Option(None, help="pending, approving, approved or rejected."),
    name: str | None = typer.Option(None, help="Only this model."),
    as_json: bool = JSON,
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Promotion requests, newest first."""
    with _registry() as registry:
        found = registry.list_requests(status=status, name=name)
    if as_json or fmt is OutputFormat.json:
        print_json([r.model_dump(mode="json") for r in found])
        return
    rows = [
        [
            r.id,
            escape(f"{r.name} v{r.version}"),
            r.to_stage,
            r.status,
            escape(r.requested_by),
            escape(r.reason),
            escape(r.decided_by or ""),
            f"{r.requested_at:%Y-%m-%d %H:%M}",
        ]
        for r in found
    ]
    headers = ["id", "model", "to", "status", "asked by", "reason", "decided by", "when"]
    console.print(key_table(headers, rows, key=["id", "model", "to", "status"]))


@app.command()
def rollback(
    name: str = typer.Argument(...),
    reason: str = typer.Option(..., help="Why (recorded)."),
    by: str | None = BY,
    key: str | None = KEY,
) -> None:
    """Emergency: put the previous production version back at once (admins)."""
    from bastion.delivery.service import DeliveryService, rollback_with_traffic

    with _acting(by, key, Permission.MODELS_READ) as (registry, actor):
        # production goes back and so does the traffic: a rollout in progress is aborted
        delivery = DeliveryService(registry.db, registry.events.ledger, registry.policy)
        restored = rollback_with_traffic(registry, delivery, actor, name, reason)
    console.print(f"{name}: production is v{restored.version} again", highlight=False)


@app.command()
def archive(
    name: str = typer.Argument(...),
    version: int = typer.Argument(...),
    reason: str = typer.Option(..., help="Why (recorded)."),
    by: str | None = BY,
    key: str | None = KEY,
) -> None:
    """Archive a version that is not in production."""
    with _acting(by, key) as (registry, actor):
        registry.archive(actor, name, version, reason)
    console.print(f"archived {name} v{version}", highlight=False)


@app.command()
def verify(
    artifacts: bool = typer.Option(True, help="Also re-hash every version's artifact files."),
    recover_after: float | None = typer.Option(
        None,
        "--recover-after",
        min=0,
        help="Settle approvals unfinished for this many seconds (their process died); "
        "default: the policy's registry.recover_after_s. 0 when you know it died.",
    ),
    by: str | None = BY,
    key: str | None = KEY,
    as_json: bool = JSON,
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Settle approvals left unfinished, then compare MLflow's aliases and artifacts with
    what Bastion approved; exit 1 on drift."""
    with _acting(by, key, Permission.MODELS_READ) as (registry, actor):
        report = registry.verify(actor, artifacts=artifacts, recover_after=recover_after)
    if as_json or fmt is OutputFormat.json:
        print_json(report.model_dump(mode="json"))
    else:
        for a in report.settled:
            console.print(
                f"[yellow]settled[/] {a.request_id} ({a.name} v{a.version} → {a.to_stage}): "
                f"{a.status}; {escape(a.detail)}",
                highlight=False,
            )
        for f in report.findings:
            console.print(f"[red]{f.problem}[/] {f.name}: {escape(f.detail)}", highlight=False)
        status = "[green]OK[/]" if report.ok else f"[red]{len(report.findings)} problem(s)[/]"
        console.print(
            f"{status}: {report.models} model(s), {report.versions_checked} artifact(s) checked",
            highlight=False,
        )
    if not report.ok:
        raise typer.Exit(EXIT_FAILED)


@app.command()
def lineage(
    name: str = typer.Argument(...),
    version: int = typer.Argument(...),
    as_json: bool = JSON,
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Dataset → run → version → stage changes."""
    with _registry() as registry:
        found = registry.lineage(name, version)
    if as_json or fmt is OutputFormat.json:
        print_json(found.model_dump(mode="json"))
        return
    ds = found.dataset or {}
    console.print(
        f"dataset  {ds.get('name', '?')} digest {ds.get('digest', '?')} "
        f"({ds.get('rows', '?')} rows)",
        highlight=False,
    )
    console.print(f"run      {found.run['run_id']} by {found.run['author']}", highlight=False)
    label = f" ({found.model['semver']})" if found.model.get("semver") else ""
    console.print(
        f"version  {name} v{version}{label} sha256 {found.model['artifact_sha256']}",
        highlight=False,
    )
    for c in found.stage_changes:
        console.print(
            f"stage    {c.at:%Y-%m-%d %H:%M} {c.from_stage or 'registered'} → {c.to_stage} "
            f"({c.kind}, {c.actor}{', ' + c.request_id if c.request_id else ''})",
            highlight=False,
        )


@app.command()
def card(
    name: str = typer.Argument(...),
    version: int = typer.Argument(...),
    kind: str = typer.Option("model", help="model or data."),
    out: Path | None = typer.Option(
        None, "--out", help="Markdown file; its edited sections are kept when regenerating."
    ),
    html: Path | None = typer.Option(None, "--html", help="Also write HTML here."),
    set_: list[str] | None = typer.Option(
        None, "--set", help="FIELD=TEXT for an editable field, repeatable."
    ),
    by: str | None = BY,
    key: str | None = KEY,
) -> None:
    """Generate a model or data card (Markdown, HTML), keeping what people wrote."""
    if kind not in ("model", "data"):
        _refuse("--kind must be model or data", "invalid_option")
    card_kind: CardKind = "model" if kind == "model" else "data"
    existing = out.read_text(encoding="utf-8") if out is not None and out.exists() else None
    writes = bool(set_) or existing is not None
    needs = Permission.MODELS_WRITE if writes else Permission.MODELS_READ
    with _acting(by, key, needs) as (registry, actor):
        markdown = registry.regenerate_card(
            actor, name, version, card_kind, existing, _pairs(set_, "--set")
        )
        page = registry.render_card(name, version, card_kind, "html") if html else None
    if out is None:
        typer.echo(markdown)
    else:
        out.write_text(markdown, encoding="utf-8")
        console.print(f"wrote {out}", highlight=False)
    if html is not None and page is not None:
        html.write_text(page, encoding="utf-8")
        console.print(f"wrote {html}", highlight=False)
