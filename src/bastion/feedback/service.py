"""Feedback on answers and predictions: recorded, linked to the call, exported.

A comment is free text from a user, so it goes through the privacy guard's analyzer
like any content: personal data in it is replaced by ``<ENTITY_TYPE>`` before it is
stored (irreversibly: feedback needs no vault), and deny-listed terms flag it. The
ledger gets a ``feedback.add`` event with the rating, the kind and the flags, never
the comment.

Errors: BadFeedback (400, invalid_feedback).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import select

from bastion.audit.events import EventIn, Ledger
from bastion.errors import InvalidInput
from bastion.feedback.models import FeedbackRow

if TYPE_CHECKING:
    from bastion.db import Database
    from bastion.policy.schema import Policy

Kind = Literal["helpful", "wrong", "unsafe", "other"]
KINDS: tuple[str, ...] = ("helpful", "wrong", "unsafe", "other")
MAX_COMMENT = 4000
FIELDS = ("id", "request_id", "rating", "kind", "comment", "flags", "actor", "created_at")


class BadFeedback(InvalidInput):
    code = "invalid_feedback"


@dataclass(frozen=True)
class Feedback:
    id: int
    request_id: str
    rating: int | None
    kind: str
    comment: str | None
    flags: list[str]
    actor: str
    created_at: str

    @classmethod
    def of(cls, row: FeedbackRow) -> Feedback:
        return cls(
            row.id,
            row.request_id,
            row.rating,
            row.kind,
            row.comment,
            json.loads(row.flags),
            row.actor,
            row.created_at.astimezone(UTC).isoformat(),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class CommentScrubber:
    """Replaces personal data in a comment by its type; collects deny-list flags."""

    def __init__(self, policy: Policy) -> None:
        from bastion.privacy import Analyzer, Denylist

        self.analyzer = Analyzer.from_policy(policy.privacy)
        self.denylist = Denylist(policy.denylist)

    def scrub(self, text: str) -> tuple[str, list[str]]:
        flags = set(self.denylist.check(text))
        spans = sorted(self.analyzer.analyze(text), key=lambda s: s.start, reverse=True)
        out = text
        for span in spans:
            out = out[: span.start] + f"<{span.entity_type}>" + out[span.end :]
            flags.add(f"pii:{span.entity_type}")
        return out, sorted(flags)


class FeedbackService:
    def __init__(self, db: Database, ledger: Ledger, scrubber: CommentScrubber) -> None:
        self.db = db
        self.ledger = ledger
        self.scrubber = scrubber

    def add(
        self,
        *,
        request_id: str,
        kind: str,
        actor: str,
        rating: int | None = None,
        comment: str | None = None,
    ) -> Feedback:
        request_id = request_id.strip()
        if not request_id or len(request_id) > 128:
            raise BadFeedback("request_id: give the x-request-id of the call (1-128 characters)")
        if kind not in KINDS:
            raise BadFeedback(f"kind {kind!r}: one of {', '.join(KINDS)}")
        if rating is not None and not 1 <= rating <= 5:
            raise BadFeedback(f"rating {rating}: from 1 (worst) to 5 (best)")
        if comment is not None and len(comment) > MAX_COMMENT:
            raise BadFeedback(f"comment: at most {MAX_COMMENT} characters")
        flags: list[str] = []
        if comment:
            comment, flags = self.scrubber.scrub(comment)
        with self.db.session() as session:
            row = FeedbackRow(
                request_id=request_id,
                rating=rating,
                kind=kind,
                comment=comment or None,
                flags=json.dumps(flags),
                actor=actor,
            )
            session.add(row)
            session.flush()
            done = Feedback.of(row)
        self.ledger.append(
            EventIn(
                actor=actor,
                action="feedback.add",
                resource=f"feedback:{done.id}",
                outcome="success",
                details={"kind": kind, "rating": rating, "linked_request_id": request_id},
                flags=tuple(flags),
                request_id=request_id,
            )
        )
        return done

    def list(
        self,
        *,
        since: datetime | None = None,
        request_id: str | None = None,
        limit: int | None = None,
    ) -> list[Feedback]:
        query = select(FeedbackRow).order_by(FeedbackRow.id)
        if since is not None:
            query = query.where(FeedbackRow.created_at >= since)
        if request_id is not None:
            query = query.where(FeedbackRow.request_id == request_id)
        if limit is not None:
            query = query.limit(limit)
        with self.db.session() as session:
            return [Feedback.of(r) for r in session.scalars(query)]


def to_jsonl(items: list[Feedback]) -> Iterator[str]:
    for item in items:
        yield json.dumps(item.to_dict(), ensure_ascii=False, sort_keys=True) + "\n"


def to_csv(items: list[Feedback]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(FIELDS)
    for item in items:
        d = item.to_dict()
        d["flags"] = " ".join(d["flags"])
        writer.writerow([_cell(d[f]) for f in FIELDS])
    return buffer.getvalue()


def _cell(value: object) -> object:
    # a spreadsheet runs a cell that starts with = + - @ as a formula: quote it
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
