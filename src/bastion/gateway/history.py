"""Recent gateway calls, read back from the ledger (the dashboard's Gateway page).

Every governed call is one ledger event (:func:`bastion.gateway.lifecycle.ledger_event`):
this module reads those events as calls. Model, outcome and time filter in SQL on the
ledger's indexes; team and flag live inside the event and are matched while paging, in
bounded scans (``scan_limit`` events per page): a page cut short by the bound says so,
and its cursor continues where the scan stopped, so a rare match is found by paging on,
never by a query that reads the whole ledger.

Raw content (the masked prompt, the answer) is only read when the policy stored it and
the caller says the viewer may see it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bastion.audit.repository import EventFilter, EventView
from bastion.audit.service import AuditService, EventNotFound

#: The ledger actions of gateway calls (``<family>.<endpoint>``).
CALL_ACTIONS = ("llm.chat", "llm.embeddings")


@dataclass(frozen=True)
class CallFilter:
    team: str | None = None
    model: str | None = None
    outcome: str | None = None
    flag: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, event: EventView) -> bool:
        if self.team is not None and event.details.get("team") != self.team:
            return False
        return self.flag is None or self.flag in event.flags


@dataclass(frozen=True)
class CallRow:
    id: int
    time: str
    actor: str
    team: str | None
    model: str
    served_model: str | None
    provider: str | None
    outcome: str
    status: int | None
    flags: list[str]
    latency_ms: float | None
    cost_usd: float | None
    prompt_tokens: int | None
    completion_tokens: int | None
    error_code: str | None
    request_id: str | None

    @classmethod
    def of(cls, event: EventView) -> CallRow:
        d = event.details
        tokens = d.get("tokens") or {}
        return cls(
            id=event.id,
            time=event.time,
            actor=event.actor,
            team=d.get("team"),
            model=event.resource.removeprefix("model:"),
            served_model=d.get("served_model"),
            provider=d.get("provider"),
            outcome=event.outcome,
            status=d.get("status"),
            flags=list(event.flags),
            latency_ms=d.get("latency_ms"),
            cost_usd=d.get("cost_usd"),
            prompt_tokens=tokens.get("prompt"),
            completion_tokens=tokens.get("completion"),
            error_code=d.get("error_code"),
            request_id=event.request_id,
        )


@dataclass(frozen=True)
class CallPage:
    calls: list[CallRow]
    next_cursor: str | None
    #: Events read to fill the page; ``cut_short``: the scan bound stopped it early.
    scanned: int
    cut_short: bool


@dataclass(frozen=True)
class CallDetail:
    call: CallRow
    event: EventView
    attempts: list[dict[str, Any]]
    #: Attempts on another model than the one asked for (the fallbacks taken).
    fallbacks: list[dict[str, Any]]
    decisions: dict[str, Any]
    tokens: dict[str, Any]
    timings: dict[str, Any]
    #: Whether the policy stored this call's content (the chain always holds its digest).
    content_stored: bool
    #: The stored content, only when asked for (and stored); None otherwise.
    content: dict[str, str | None] | None = field(default=None)


class CallHistory:
    def __init__(self, audit: AuditService, *, scan_limit: int = 5_000, batch: int = 500) -> None:
        self.audit = audit
        self.scan_limit = scan_limit
        self.batch = batch

    def page(self, flt: CallFilter, *, limit: int = 50, cursor: str | None = None) -> CallPage:
        events = EventFilter(
            actions=CALL_ACTIONS,
            resource=f"model:{flt.model}" if flt.model else None,
            outcome=flt.outcome,
            since=flt.since,
            until=flt.until,
        )
        found: list[CallRow] = []
        scanned = 0
        last_id: int | None = None
        while scanned < self.scan_limit:
            page = self.audit.page(
                events, limit=min(self.batch, self.scan_limit - scanned), cursor=cursor
            )
            for event in page.events:
                scanned += 1
                last_id = event.id
                if flt.matches(event):
                    found.append(CallRow.of(event))
                    if len(found) == limit:
                        more = event is not page.events[-1] or page.next_cursor is not None
                        next_cursor = self.audit.cursor_after(event.id) if more else None
                        return CallPage(found, next_cursor, scanned, cut_short=False)
            cursor = page.next_cursor
            if cursor is None:
                return CallPage(found, None, scanned, cut_short=False)
        # The bound: continue after the last event read, not the last one that matched.
        next_cursor = self.audit.cursor_after(last_id) if last_id is not None else None
        return CallPage(found, next_cursor, scanned, cut_short=True)

    def call(self, event_id: int, *, with_content: bool) -> CallDetail:
        event = self.audit.event(event_id)
        if event.action not in CALL_ACTIONS:
            raise EventNotFound(f"ledger event {event_id} is not a gateway call")
        d = event.details
        asked = event.resource.removeprefix("model:")
        attempts = list(d.get("attempts") or [])
        content = self.audit.content_of(event) if with_content else None
        stored = bool(content) if content is not None else self.audit.has_content(event)
        return CallDetail(
            call=CallRow.of(event),
            event=event,
            attempts=attempts,
            fallbacks=[a for a in attempts if a.get("model") not in (None, asked)],
            decisions=dict(d.get("decisions") or {}),
            tokens=dict(d.get("tokens") or {}),
            timings={
                k: d[k]
                for k in ("latency_ms", "upstream_ms", "overhead_ms", "ttft_ms")
                if d.get(k) is not None
            },
            content_stored=stored,
            content=content or None,
        )
