"""Export and erase everything held about one person, recorded in the ledger.

SubjectError (400, invalid_subject) — an empty or malformed user name or reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bastion.audit.events import ChainKey, EventIn, Ledger
from bastion.audit.vault import ContentVault
from bastion.db import Database
from bastion.errors import InvalidInput
from bastion.subjects.registry import ERASERS, EXPORTERS, Erased, SubjectContext


class SubjectError(InvalidInput):
    code = "invalid_subject"


@dataclass(frozen=True)
class ErasureResult:
    subject: str  # the keyed digest the ledger records the erasure under
    removed: dict[str, dict[str, int]]
    #: Physical cleanups still to run (:meth:`SubjectService.clean_up`), by eraser.
    cleanups: dict[str, Callable[[], dict[str, int]]] = field(
        default_factory=dict, repr=False, compare=False
    )


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
        """Make the person's content unreadable (keys destroyed) and their events
        unlinked from them; record who asked, who did it and what was removed (intent
        first, outcome after). Rows left unreadable are deleted by :meth:`clean_up`."""
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
        cleanups: dict[str, Callable[[], dict[str, int]]] = {}
        try:
            for name, eraser in sorted(ERASERS.items()):
                done = eraser(ctx)
                if isinstance(done, Erased):
                    removed[name] = done.counts
                    if done.cleanup is not None:
                        cleanups[name] = done.cleanup
                else:
                    removed[name] = done
        except Exception as exc:
            failed = asked | {"removed": removed, "error": type(exc).__name__}
            self.ledger.append(EventIn(actor, "subject.erase", resource, "failure", failed))
            raise
        self.ledger.append(
            EventIn(actor, "subject.erase", resource, "success", asked | {"removed": removed})
        )
        forget = getattr(self.ledger, "forget_identity", None)
        if forget is not None:  # this process's writer writes the name again if it returns
            forget(self.chain_key.digest_of(ctx.actor))
        return ErasureResult(resource, removed, cleanups)

    def clean_up(self, erased: ErasureResult, *, actor: str) -> dict[str, dict[str, int]]:
        """Delete, in bounded batches, what an erasure left unreadable; recorded as the
        erasure's cleanup (``subject.cleanup``). Safe to skip: nothing it deletes can be
        read, and retention removes it in time."""
        deleted: dict[str, dict[str, int]] = {}
        try:
            for name, cleanup in sorted(erased.cleanups.items()):
                deleted[name] = cleanup()
        except Exception as exc:
            failed = {"deleted": deleted, "error": type(exc).__name__}
            self.ledger.append(EventIn(actor, "subject.cleanup", erased.subject, "failure", failed))
            raise
        if deleted:
            self.ledger.append(
                EventIn(actor, "subject.cleanup", erased.subject, "success", {"deleted": deleted})
            )
        return deleted
