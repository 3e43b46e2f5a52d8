"""``bastion gateway health``: the circuit breakers of a running gateway.

Breaker states live in the serving process (each judges its upstreams by its own
calls), so this asks the server: ``GET /api/gateway/health`` with a key that holds
``metrics:read``.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import typer

from bastion.cli.common import console, fail, key_table, print_json

app = typer.Typer(help="The LLM gateway of a running server.", no_args_is_help=True)

STYLE = {"closed": "green", "half_open": "yellow", "open": "bold red"}


@app.command()
def health(
    url: str = typer.Option(
        "http://127.0.0.1:8000", envvar="BASTION_URL", help="The server's base URL."
    ),
    key: str | None = typer.Option(
        None, envvar="BASTION_API_KEY", help="An API key with metrics:read.", show_default=False
    ),
    output: str = typer.Option("table", "--format", help="table or json."),
    fail_on_open: bool = typer.Option(
        False, "--fail-on-open", help="Exit 1 when any breaker is open or half-open."
    ),
    timeout: float = typer.Option(10.0, min=0.1, help="Seconds to wait for the server."),
) -> None:
    """Every deployment's circuit breaker: state, failures in a row, next probe."""
    if output not in ("table", "json"):
        fail(f"--format {output!r}: give table or json", 2, error_code="invalid_option")
    if not key:
        fail(
            "give an API key with metrics:read (--key or BASTION_API_KEY)",
            2,
            error_code="missing_api_key",
        )
    report = _fetch(url.rstrip("/") + "/api/gateway/health", key, timeout)
    if output == "json":
        print_json(report)
    else:
        _render(report)
    if fail_on_open and any(
        row["state"] != "closed" for row in [*report["deployments"], *report["providers"]]
    ):
        raise typer.Exit(1)


def _fetch(url: str, key: str, timeout: float) -> dict[str, Any]:
    import httpx

    try:
        response = httpx.get(url, headers={"Authorization": f"Bearer {key}"}, timeout=timeout)
    except httpx.HTTPError as exc:
        fail(
            f"could not reach the server at {url} ({type(exc).__name__}); is `bastion serve` "
            "running there? (--url or BASTION_URL)",
            error_code="server_unreachable",
        )
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 200 or not isinstance(body, dict):
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            fail(str(error.get("message")), error_code=str(error.get("code")))
        fail(f"the server answered {response.status_code}", error_code="unexpected_response")
    return body


def _probe(row: dict[str, Any], now: float) -> str:
    when = row.get("next_probe_at")
    if not when:
        return "—"
    left = datetime.fromisoformat(when).timestamp() - now
    return f"in {left:.1f} s" if left > 0.05 else "now"


def _state(state: str) -> str:
    return f"[{STYLE.get(state, '')}]{state}[/]"


def _render(report: dict[str, Any]) -> None:
    from rich.markup import escape

    now = time.time()
    rows = [
        [
            escape(row["provider"]),
            escape(row["upstream_model"]),
            _state(row["state"]),
            f"{row['failures']}/{row['threshold']}",
            escape(row.get("last_failure") or "—"),
            _probe(row, now),
            escape(", ".join(row.get("models") or []) or "—"),
        ]
        for row in report["deployments"]
    ]
    headers = ["provider", "deployment", "state", "failures", "last failure", "next probe"]
    console.print(
        key_table(
            [*headers, "models"],
            rows,
            key=["provider", "deployment", "state", "failures", "models"],
            right=["failures"],
            title="Deployments",
        )
    )
    rows = [
        [
            escape(row["provider"]),
            _state(row["state"]),
            f"{row['failures']}/{row['threshold']}",
            str(row["failing_deployments"]),
            _probe(row, now),
        ]
        for row in report["providers"]
    ]
    console.print(
        key_table(
            ["provider", "state", "failures", "deployments failing", "next probe"],
            rows,
            key=["provider", "state", "failures"],
            right=["failures", "deployments failing"],
            title="Providers (connection failures across deployments)",
        )
    )
