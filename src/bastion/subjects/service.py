"""Export and erase everything held about one person, recorded in the ledger.

SubjectError (400, invalid_subject) — an empty or malformed user name or reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bastion.audit.events import ChainKey, EventIn, Ledger
from bastion.audit.vault import ContentVault
from bastion.db import Database
from bastion.errors import InvalidInput
from bastion.subjects.registry import ERASERS, EXPORTERS, SubjectContext


class SubjectError(InvalidInput):
    code = "invalid_subject"


@dataclass(frozen=True)
class ErasureResult:
    subject: str  # the keyed digest the ledger records the erasure under
    removed: dict[str, dict[str, int]]


class SubjectService:
    def __init__(
        self, db: Database, ledger: Ledger, chain_key: ChainKey, vault: ContentVault
    ) -> None:
        import bastion.subjects.ledger  # noqa: F401 - registers the ledger's exporter and eraser

        self.db = db
        self.ledger = ledger
        self.chain_key = chain_key
        self.vault = vault

    def _context(self, user: str) -> SubjectContext:
        user = user.strip()
        if not user or len(user) > 200 or user.startswith("erased:"):
            raise SubjectError("give the user name the person is known by (1–200 characters)")
        return SubjectContext(self.db, user, self.chain_key, self.vault)

    def resource(self, ctx: SubjectContext) -> str:
        return f"subject:{self.chain_key.digest_of(ctx.actor)}"

    def export(self, user: str, *, actor: str) -> dict[str, Any]:
        """Everything every registered domain holds about ``user``, as one JSON bundle.
        The export is recorded (who exported whom, by digest)."""
        ctx = self._context(user)
        sections = {name: exporter(ctx) for name, exporter in sorted(EXPORTERS.items())}
        counts = {name: len(v) if isinstance(v, list) else 1 for name, v in sections.items()}
        self.ledger.append(
            EventIn(actor, "subject.export", self.resource(ctx), "success", {"records": counts})
        )
        return {
            "format": "bastion-subject-export/1",
            "subject": user,
            "generated_at": datetime.now(UTC).isoformat(),
            "sections": sections,
        }

    def erase(self, user: str, *, reason: str, requested_by: str, actor: str) -> ErasureResult:
        """Destroy content and keys, pseudonymise identifiers; record who asked, who did
        it and what was removed (intent first, outcome after)."""
        ctx = self._context(user)
        reason = reason.strip()
        if not reason or len(reason) > 500:
            raise SubjectError("give the reason for the erasure (1–500 characters), e.g. a ticket")
        resource = self.resource(ctx)
        # The record must not name the person it erases: a request from the person is
        # recorded as such, one from anyone else (a lawyer, a DPO) by their name.
        asker = requested_by.strip()
        if asker in {ctx.user, ctx.actor}:
            asker = "the data subject"
        asked = {"requested_by": asker, "reason": reason}
        self.ledger.append(EventIn(actor, "subject.erase", resource, "started", asked))
        removed: dict[str, dict[str, int]] = {}
        try:
            for name, eraser in sorted(ERASERS.items()):
                removed[name] = eraser(ctx)
        except Exception as exc:
            failed = asked | {"removed": removed, "error": type(exc).__name__}
            self.ledger.append(EventIn(actor, "subject.erase", resource, "failure", failed))
            raise
        self.ledger.append(
            EventIn(actor, "subject.erase", resource, "success", asked | {"removed": removed})
        )
        return ErasureResult(resource, removed)
