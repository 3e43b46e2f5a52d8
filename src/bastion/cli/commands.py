"""Where each command is attached to the ``bastion`` app (one line a command or group).

Commands load lazily: ``bastion --help`` lists them from this table without importing
their modules, and ``bastion models register`` imports ``bastion.cli.models`` alone.
The short help here is what ``bastion --help`` shows; a test checks it matches the
command's own. To add a command: add a line to :data:`COMMANDS`, and keep heavy
imports (MLflow, pandas, NumPy, FastAPI, the privacy engine) inside its functions.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import typer
import typer.main
from typer.core import TyperCommand, TyperGroup

from bastion.cli.coded import CodedErrors

# Typer vendors click (``typer._click``) in recent versions: its types are taken from
# typer's own classes here, never from a separately imported click.


@dataclass(frozen=True)
class Entry:
    module: str
    attribute: str  # a typer.Typer (a group) or a function (one command)
    help: str  # the first line of its help, for ``bastion --help``


COMMANDS: dict[str, Entry] = {
    "serve": Entry(
        "bastion.cli.serve",
        "serve",
        "Start Bastion's server: the OpenAI-compatible gateway (/v1), the API (/api, docs "
        "at /docs), metrics (/metrics) and health checks (/healthz, /readyz).",
    ),
    "status": Entry(
        "bastion.cli.status",
        "status",
        "What this installation runs on: database, policy, counters, keys, and which "
        "models are answered by their provider or by a fallback.",
    ),
    "doctor": Entry(
        "bastion.cli.doctor",
        "doctor",
        "Check the environment and configuration and say what to fix: database and "
        "migrations, Redis, policy, signing and secret keys, MLflow, provider keys, clock.",
    ),
    "pipelines": Entry(
        "bastion.cli.pipelines",
        "app",
        "Pipelines whose governance steps cannot be skipped: train, evaluate, gate, "
        "register, request promotion, canary.",
    ),
    "db": Entry("bastion.cli.db", "app", "The governance database."),
    "policy": Entry("bastion.cli.policy", "app", "The governance policy file."),
    "keys": Entry("bastion.cli.keys", "app", "API keys."),
    "audit": Entry("bastion.cli.audit", "app", "The tamper-evident audit ledger."),
    "retention": Entry(
        "bastion.cli.retention", "app", "Retention of stored content and ledger events."
    ),
    "subject": Entry(
        "bastion.cli.subject", "app", "Data-subject rights: export and erase a person's data."
    ),
    "demo": Entry("bastion.cli.demo", "app", "Demo data for a first look."),
    "gateway": Entry("bastion.cli.gateway", "app", "The LLM gateway of a running server."),
    "drift": Entry(
        "bastion.cli.monitoring",
        "drift_app",
        "Data and prediction drift between a reference and current data.",
    ),
    "fairness": Entry(
        "bastion.cli.fairness", "fairness_app", "Group fairness of a classifier's decisions."
    ),
    "performance": Entry(
        "bastion.cli.performance",
        "performance_app",
        "Model performance once labels arrive, against a reference period.",
    ),
    "explain": Entry(
        "bastion.cli.explain",
        "explain",
        "Explain predictions with SHAP: top contributors per row and global importance.",
    ),
    "pii": Entry(
        "bastion.cli.pii", "app", "Find and mask personal data (offline, no model download)."
    ),
    "mcp": Entry(
        "bastion.cli.mcp",
        "app",
        "MCP tool calls: servers, pinned tool definitions, grants, the call log, the bridge.",
    ),
    "models": Entry(
        "bastion.cli.models", "app", "Model registry: versions, approvals, gates, lineage, cards."
    ),
    "labels": Entry("bastion.cli.labels", "app", "Ground truth for logged predictions."),
    "deploy": Entry(
        "bastion.cli.deploy", "app", "Progressive delivery: canary, A/B and shadow rollouts."
    ),
    "report": Entry(
        "bastion.cli.report", "app", "Compliance reports built from the ledger, with proofs."
    ),
    "usage": Entry(
        "bastion.cli.usage",
        "app",
        "What the gateway served: requests, errors, latency, tokens and cost by team and "
        "model, read from the usage rollups.",
    ),
    "incidents": Entry(
        "bastion.cli.incidents",
        "app",
        "Serious incidents and data-subject requests, with their legal deadlines.",
    ),
    "feedback": Entry(
        "bastion.cli.feedback", "app", "Feedback on answers and predictions, linked to calls."
    ),
    "monitor": Entry(
        "bastion.cli.monitor",
        "app",
        "After-the-fact checks of gateway traffic: responses, access anomalies, legal clocks.",
    ),
    "prompts": Entry(
        "bastion.cli.prompts", "app", "Versioned prompt templates: list, show, diff, render."
    ),
    "docs": Entry(
        "bastion.cli.docs", "app", "Documents for retrieval: ingest, list, show, remove, search."
    ),
}


def load(name: str) -> Any:
    """The real click command for ``name`` (imports its module)."""
    entry = COMMANDS[name]
    target: Any = getattr(importlib.import_module(entry.module), entry.attribute)
    if isinstance(target, typer.Typer):
        group = typer.main.get_group(target)
        group.no_args_is_help = True
        group.name = name
        return group
    single = typer.Typer(add_completion=False)
    single.command(name)(target)
    command = typer.main.get_command(single)
    command.name = name
    return command


def summary(text: str | None) -> str:
    """The first sentence of a help text's first paragraph, on one line."""
    paragraph = " ".join((text or "").strip().split("\n\n", 1)[0].split())
    head, sep, _ = paragraph.partition(". ")
    return head + "." if sep else paragraph


class LazyGroup(CodedErrors, TyperGroup):
    """A Typer group whose subcommands are imported when invoked, not when listed; every
    error escaping a command is a coded message, never a traceback (:class:`CodedErrors`)."""

    _listing = False

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self._loaded: dict[str, Any] = {}

    def list_commands(self, ctx: Any) -> list[str]:
        return [*self.commands, *COMMANDS]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name not in COMMANDS:
            return None
        if self._listing or ctx.resilient_parsing:
            # Listing (help, completion): the table's line, without the import.
            return TyperCommand(cmd_name, short_help=COMMANDS[cmd_name].help)
        if cmd_name not in self._loaded:
            self._loaded[cmd_name] = load(cmd_name)
        return self._loaded[cmd_name]

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False
