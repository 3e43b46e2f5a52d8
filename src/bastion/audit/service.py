"""The ledger as a service: verify, read, export, erase and retain.

The CLI, the API, reports and (later) the dashboard share this one piece rather than
each holding its own copy of the rules. Anything that destroys stored content records
its intent in the ledger first and its outcome after, so a crash between the two
leaves a visible trace (an ``audit.erase`` with outcome ``started`` and no matching
``success``) instead of content that vanished with no record.

Retention of *events* (``retention.events_days``) is :mod:`bastion.audit.retention`
(rows removed under a signed seal); erasure of a whole person, across domains, is
:mod:`bastion.subjects`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from bastion.audit.anchors import SignedCheckpoint
from bastion.audit.events import ChainKey, Digester, EventIn, Ledger
from bastion.audit.proofs import prove_event
from bastion.audit.repository import EventFilter, EventRepository, EventView, Page
from bastion.audit.vault import ContentVault
from bastion.audit.verify import RecentReport, VerifyReport, verify_ledger, verify_recent
from bastion.errors import NotFound

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from bastion.db import Database


class EventNotFound(NotFound):
    code = "event_not_found"


@dataclass(frozen=True)
class CheckpointView:
    stream: str
    seq: int
    kind: str
    key_id: str
    time: str
    root: str | None


@dataclass(frozen=True)
class LedgerStatus:
    checkpoints: list[CheckpointView]
    #: The newest ``audit.verify`` event (its details say what was checked and found).
    last_verification: EventView | None


@dataclass(frozen=True)
class Explorer:
    page: Page
    status: LedgerStatus


@dataclass(frozen=True)
class Erasure:
    """What one erase or purge removed, and under which ledger resource it was recorded."""

    resource: str
    content_rows: int


class AuditService:
    """Verify, query, export and erase over one database and its ledger.

    Reading needs only the database (``bastion audit verify`` must work without opening
    a ledger stream of its own); erasing needs the ledger that records it.
    """

    def __init__(
        self,
        db: Database,
        ledger: Ledger | None = None,
        digester: Digester | None = None,
        vault: ContentVault | None = None,
        chain_key: ChainKey | None = None,
    ) -> None:
        self.db = db
        #: The keyed chain's key this installation writes with: verification uses it
        #: unless told otherwise (keyed streams cannot be checked without it).
        self.chain_key = chain_key
        self._vault = vault
        self._ledger = ledger
        self._digester = digester
        self.events = EventRepository(db)

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            raise RuntimeError("this AuditService was opened read-only, without a ledger")
        return self._ledger

    @property
    def digester(self) -> Digester:
        if self._digester is None:
            raise RuntimeError("this AuditService was opened read-only, without a digest key")
        return self._digester

    # reading ---------------------------------------------------------------------------

    def count(self) -> int:
        return self.events.count()

    def page(
        self,
        flt: EventFilter,
        *,
        limit: int = 100,
        cursor: str | None = None,
        order: Literal["asc", "desc"] = "desc",
    ) -> Page:
        return self.events.page(flt, limit=limit, cursor=cursor, order=order)

    def export(self, flt: EventFilter) -> Iterator[EventView]:
        """Every matching event, oldest first, with its hashes, in bounded memory."""
        return self.events.stream_all(flt)

    def verify(
        self,
        trusted_keys: dict[str, Ed25519PublicKey],
        *,
        chain_key: ChainKey | None = None,
        anchors: list[SignedCheckpoint] | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> VerifyReport:
        return verify_ledger(
            self.db,
            trusted_keys,
            chain_key=chain_key or self.chain_key,
            anchors=anchors,
            on_progress=on_progress,
        )

    def event(self, event_id: int) -> EventView:
        found = self.events.by_id(event_id)
        if found is None:
            raise EventNotFound(f"no ledger event {event_id}: the ledger lists the ids")
        return found

    def cursor_after(self, event_id: int, order: Literal["asc", "desc"] = "desc") -> str | None:
        """The cursor of a page that continues after ``event_id`` (a page cut short)."""
        return self.events.cursor_at(event_id, order)

    def content_of(self, event: EventView) -> dict[str, str | None]:
        """An event's stored content (prompt, response), decrypted; a body whose subject
        was erased reads None. Empty when the policy stored none. Callers check that the
        viewer may read content (``subjects:manage``) before asking."""
        rows = self.events.content_rows(event.stream, event.seq)
        out: dict[str, str | None] = {}
        for row in rows:
            key = None
            if self._vault is not None and row.subject:
                key = self._vault.key_for(row.subject, create=False)
            out[row.field] = (
                self._vault.open_body(key, row.stream, row.seq, row.field, row.body)
                if self._vault is not None
                else row.body
            )
        return out

    def explore(self, flt: EventFilter, *, limit: int = 50, cursor: str | None = None) -> Explorer:
        """A page of events and the ledger's status: the dashboard's ledger explorer."""
        return Explorer(self.page(flt, limit=limit, cursor=cursor), self.status())

    def has_content(self, event: EventView) -> bool:
        return self.events.has_content(event.stream, event.seq)

    def status(self) -> LedgerStatus:
        """What the explorer shows above the events: each stream's newest signed
        checkpoint and the last recorded verification (never a verification itself)."""
        last = self.events.page(EventFilter(action="audit.verify"), limit=1).events
        return LedgerStatus(
            checkpoints=[
                CheckpointView(
                    stream=c.stream,
                    seq=c.seq,
                    kind=c.kind,
                    key_id=c.key_id,
                    time=datetime.fromtimestamp(c.ts_us / 1_000_000, UTC).isoformat(),
                    root=c.root,
                )
                for c in self.events.latest_checkpoints()
            ],
            last_verification=last[0] if last else None,
        )

    def verify_recent(
        self, trusted_keys: dict[str, Ed25519PublicKey], *, per_stream: int, actor: str
    ) -> RecentReport:
        """Verify the newest ``per_stream`` events of each stream; record the result."""
        report = verify_recent(
            self.db, trusted_keys, chain_key=self.chain_key, per_stream=per_stream
        )
        self.ledger.append(
            EventIn(
                actor,
                "audit.verify",
                "audit_events",
                "success" if report.ok else "failure",
                details={
                    "scope": "recent",
                    "per_stream": per_stream,
                    "streams": report.streams,
                    "events": report.events,
                    "problems": len(report.problems),
                    "first_problem": str(report.problems[0])[:500] if report.problems else None,
                },
            )
        )
        return report

    def prove(self, event_id: int) -> dict[str, Any]:
        """An inclusion proof of one event against its stream's signed Merkle root."""
        return prove_event(self.db, event_id)

    # destroying ------------------------------------------------------------------------

    def subject_resource(self, subject: str) -> str:
        # keyed: an unkeyed hash of an e-mail address can be reversed by guessing
        return f"subject:{self.digester.digest({'subject': subject})[:32]}"

    def erase_subject(self, subject: str, *, actor: str) -> Erasure:
        """Erase a data subject's stored content; the chain stays verifiable."""
        resource = self.subject_resource(subject)
        vault = self._vault

        def destroy() -> int:
            # Content stored since encryption names the subject by its digest.
            names = [subject] if vault is None else [subject, vault.subject_digest(subject)]
            removed = sum(self.events.erase_subject(name) for name in names)
            if vault is not None:
                vault.shred(vault.subject_digest(subject))
            return removed

        removed = self._recorded(actor, "audit.erase", resource, {}, destroy)
        return Erasure(resource, removed)

    def purge_content(
        self, content_days: int, *, actor: str, now: datetime | None = None
    ) -> Erasure:
        """Remove stored content older than ``content_days`` (the policy's retention)."""
        cutoff = (now or datetime.now(UTC)) - timedelta(days=content_days)
        removed = self._recorded(
            actor,
            "audit.purge",
            "audit_content",
            {"content_days": content_days},
            lambda: self.events.purge_content_before(cutoff),
        )
        return Erasure("audit_content", removed)

    def _recorded(
        self,
        actor: str,
        action: str,
        resource: str,
        details: dict[str, object],
        destroy: Callable[[], int],
    ) -> int:
        """Record the intent, destroy, record the outcome (``failure`` if it raised)."""
        self.ledger.append(EventIn(actor, action, resource, "started", details=details))
        try:
            removed = destroy()
        except BaseException as exc:
            self.ledger.append(
                EventIn(actor, action, resource, "failure", details=details | _error(exc))
            )
            raise
        self.ledger.append(
            EventIn(actor, action, resource, "success", details=details | {"content_rows": removed})
        )
        return removed


def _error(exc: BaseException) -> dict[str, object]:
    # the type only: a database error's text can quote the values it failed on
    return {"error": type(exc).__name__}
