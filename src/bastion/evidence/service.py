"""Reports, attestations and their verification: what the CLI and the API call.

Errors: UnknownFramework (404, unknown_framework), BadPeriod (400, invalid_period),
UnknownControl (404, unknown_control), BadReport (400, invalid_report).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import select

from bastion.audit.events import EventIn, Ledger
from bastion.audit.repository import EventFilter, EventRepository
from bastion.db.base import utcnow
from bastion.errors import InvalidInput, NotFound
from bastion.evidence.clocks import ClockService
from bastion.evidence.mapping import get_framework
from bastion.evidence.models import AttestationRow
from bastion.evidence.render import (
    NotAReport,
    extract_body,
    oscal_bytes,
    to_html,
    to_markdown,
    to_pdf,
)
from bastion.evidence.report import Period, build_report, compare, digest_of, parse_period

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from bastion.db import Database

Format = Literal["json", "html", "md", "pdf"]
MEDIA_TYPES: dict[str, str] = {
    "json": "application/json",
    "html": "text/html; charset=utf-8",
    "md": "text/markdown; charset=utf-8",
    "pdf": "application/pdf",
}


class UnknownControl(NotFound):
    code = "unknown_control"


class BadReport(InvalidInput):
    code = "invalid_report"


@dataclass(frozen=True)
class Rendered:
    body: dict[str, Any]
    digest: str
    content: bytes
    media_type: str


@dataclass(frozen=True)
class Verification:
    digest: str
    recorded: bool
    problems: list[str]

    @property
    def ok(self) -> bool:
        return self.recorded and not self.problems


def render(body: dict[str, Any], fmt: Format) -> bytes:
    if fmt == "json":
        return oscal_bytes(body)
    if fmt == "html":
        return to_html(body).encode()
    if fmt == "md":
        return to_markdown(body).encode()
    return to_pdf(body)


class EvidenceService:
    def __init__(
        self,
        db: Database,
        trusted_keys: dict[str, Ed25519PublicKey],
        ledger: Ledger | None = None,
    ) -> None:
        self.db = db
        self.trusted_keys = trusted_keys
        self._ledger = ledger
        self.clocks = ClockService(db, ledger)

    def attest(self, framework: str, control: str, *, by: str, note: str, actor: str) -> None:
        loaded = get_framework(framework)
        if loaded.framework.control(control) is None:
            known = ", ".join(c.id for c in loaded.framework.controls)
            raise UnknownControl(f"{framework} has no control {control!r}; known: {known}")
        if not by.strip() or not note.strip():
            raise InvalidInput("an attestation needs --by (who attests) and --note (what)")
        with self.db.session() as session:
            session.add(
                AttestationRow(framework=framework, control=control, attested_by=by, note=note)
            )
        if self._ledger is not None:
            self._ledger.append(
                EventIn(
                    actor=actor,
                    action="evidence.attest",
                    resource=f"control:{framework}/{control}",
                    outcome="success",
                    details={"by": by},
                )
            )

    def attestations(self, framework: str, until: datetime) -> list[dict[str, Any]]:
        with self.db.session() as session:
            rows = session.scalars(
                select(AttestationRow)
                .where(AttestationRow.framework == framework)
                .where(AttestationRow.created_at < until)
                .order_by(AttestationRow.id)
            )
            return [
                {
                    "control": r.control,
                    "by": r.attested_by,
                    "note": r.note,
                    "at": r.created_at.astimezone(UTC).isoformat(),
                }
                for r in rows
            ]

    def body(
        self, framework: str, period: Period | str, *, now: datetime | None = None
    ) -> dict[str, Any]:
        loaded = get_framework(framework)
        if isinstance(period, str):
            period = parse_period(period)
        now = now or utcnow()
        as_of = min(now, period.end)
        return build_report(
            self.db,
            loaded,
            period,
            trusted_keys=self.trusted_keys,
            attestations=self.attestations(framework, as_of),
            clocks=self.clocks.for_period(period.start, as_of),
            now=now,
        )

    def generate(
        self,
        framework: str,
        period: Period | str,
        fmt: Format,
        *,
        actor: str,
        now: datetime | None = None,
    ) -> Rendered:
        body = self.body(framework, period, now=now)
        digest = digest_of(body)
        content = render(body, fmt)
        if self._ledger is not None:
            self._ledger.append(
                EventIn(
                    actor=actor,
                    action="evidence.report",
                    resource=f"report:{digest}",
                    outcome="success",
                    details={
                        "framework": framework,
                        "period": body["period"]["label"],
                        "digest": digest,
                        "machine_evidence_share": body["summary"]["machine_evidence_share"],
                    },
                )
            )
        return Rendered(body, digest, content, MEDIA_TYPES[fmt])

    def verify(self, data: bytes) -> Verification:
        try:
            stated = extract_body(data)
        except NotAReport as exc:
            raise BadReport(str(exc)) from None
        digest = digest_of(stated)
        recorded = bool(
            EventRepository(self.db)
            .page(EventFilter(action="evidence.report", resource=f"report:{digest}"), limit=1)
            .events
        )
        problems: list[str] = []
        if not recorded:
            problems.append(
                f"no evidence.report event records digest {digest[:12]}: the file was edited, "
                "or was not made by this installation"
            )
        try:
            period = Period(
                datetime.fromisoformat(stated["period"]["start"]),
                datetime.fromisoformat(stated["period"]["end"]),
            )
            fresh = self.body(
                stated["framework"]["id"], period, now=datetime.fromisoformat(stated["as_of"])
            )
            problems += compare(stated, fresh)
        except (KeyError, TypeError, ValueError) as exc:
            raise BadReport(f"the embedded report is incomplete: {exc}") from None
        return Verification(digest, recorded, problems)
