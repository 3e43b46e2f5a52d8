"""The per-domain exporters and erasers of a data subject's data.

An exporter returns JSON-ready data (a list of records) for one section of the export
bundle; an eraser makes what its domain holds about the person unreadable and
unlinkable and returns counts for the erasure record, or an :class:`Erased` that also
carries a physical cleanup to run once the erasure is recorded (deleting rows that are
already unreadable, in bounded batches). Feedback, predictions and any later domain register theirs
beside the ledger's (:mod:`bastion.subjects.ledger`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bastion.audit.events import ChainKey
from bastion.audit.vault import ContentVault
from bastion.db import Database


@dataclass(frozen=True)
class SubjectContext:
    db: Database
    user: str
    chain_key: ChainKey
    vault: ContentVault

    @property
    def actor(self) -> str:
        """How the ledger names the person when they act."""
        return f"user:{self.user}"

    @property
    def erased_actor(self) -> str:
        return self.chain_key.erased(self.actor)

    @property
    def content_subject(self) -> str:
        """How stored content names the person (the keyed digest of the user)."""
        return self.vault.subject_digest(self.user)


@dataclass(frozen=True)
class Erased:
    counts: dict[str, int]
    #: Deletes what the erasure left unreadable; returns counts for the cleanup record.
    cleanup: Callable[[], dict[str, int]] | None = None


Exporter = Callable[[SubjectContext], Any]
Eraser = Callable[[SubjectContext], dict[str, int] | Erased]

EXPORTERS: dict[str, Exporter] = {}
ERASERS: dict[str, Eraser] = {}


def register_exporter(name: str, exporter: Exporter) -> None:
    EXPORTERS[name] = exporter


def register_eraser(name: str, eraser: Eraser) -> None:
    ERASERS[name] = eraser
