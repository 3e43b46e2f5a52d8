"""After-the-fact checks of gateway traffic: responses, and unusual use of a key.

Response checks read each ``llm.*`` call event and flag: ``slow`` (latency over the
policy's ``evidence.responses.latency_s``, default 5 s), ``pii_leak`` (the gateway's
leak scan found personal data in the answer), ``error`` (the call failed), ``refusal``
(the model declined: a finish reason such as ``content_filter``). Each flagged call
gets a ``response.flag`` event (its request id and flags) once, and each run a
``response.check`` event with the counts and the last event id it read, so the next run
flags only newer calls. The daily summary covers the whole window asked for.

Access checks compare each key's last day with its own baseline (the days before):
volume far above its daily mean, a model it never used, calls at hours it was never
used at. Each anomaly is an ``access.anomaly`` event with the evidence (counts, models,
hours, sources) and a finding for the alert notifiers. A call's source is the keyed
digest of its network (:mod:`bastion.evidence.sources`): a key used from a network it
was never used from in its baseline is a ``new_source`` anomaly.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from bastion.audit.events import EventIn, Ledger
from bastion.db import Database
from bastion.evidence.config import AccessChecks, ResponseChecks
from bastion.evidence.scan import to_us
from bastion.monitoring.config import Severity
from bastion.monitoring.findings import Finding

FLAG_KINDS = ("slow", "pii_leak", "error", "refusal")
_CALLS = text(
    "SELECT id, ts_us, outcome, request_id, details, flags FROM audit_events "
    "WHERE action LIKE 'llm.%' AND ts_us >= :start AND ts_us < :end AND id > :after "
    "ORDER BY id LIMIT :limit"
)
_LAST_CHECK = text(
    "SELECT details FROM audit_events WHERE action = 'response.check' "
    "ORDER BY ts_us DESC, id DESC LIMIT 1"
)


def _calls(db: Database, start: datetime, end: datetime) -> Any:
    after = 0
    with db.engine.connect() as conn:
        while True:
            rows = conn.execute(
                _CALLS,
                {"start": to_us(start), "end": to_us(end), "after": after, "limit": 20_000},
            ).all()
            if not rows:
                return
            yield from rows
            after = rows[-1][0]


def flags_for(
    details: dict[str, Any], outcome: str, flags: list[str], cfg: ResponseChecks
) -> list[str]:
    found = []
    if float(details.get("latency_ms") or 0) > cfg.latency_s * 1000:
        found.append("slow")
    if any(f.startswith("pii_leak") for f in flags):
        found.append("pii_leak")
    if outcome in ("failure", "error") or int(details.get("status") or 200) >= 500:
        found.append("error")
    if details.get("finish_reason") in cfg.refusal_finish_reasons or "refusal" in flags:
        found.append("refusal")
    return found


@dataclass
class ResponseSummary:
    since: str
    until: str
    calls: int = 0
    flagged_now: int = 0
    days: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    def totals(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for day in self.days.values():
            out.update(day)
        return {k: out.get(k, 0) for k in ("calls", *FLAG_KINDS)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "until": self.until,
            "totals": self.totals(),
            "flagged_now": self.flagged_now,
            "days": [
                {"day": d, **{k: c.get(k, 0) for k in ("calls", *FLAG_KINDS)}}
                for d, c in sorted(self.days.items())
            ],
        }

    def findings(self) -> list[Finding]:
        totals = self.totals()
        out = []
        for kind in FLAG_KINDS:
            if totals[kind]:
                out.append(
                    Finding(
                        check="response",
                        subject="gateway",
                        kind=kind,
                        severity=Severity.critical if kind == "pii_leak" else Severity.warning,
                        message=f"{totals[kind]} of {totals['calls']} calls flagged {kind} "
                        f"since {self.since[:16]}",
                        details={"count": totals[kind], "calls": totals["calls"]},
                    )
                )
        return out


def check_responses(
    db: Database,
    ledger: Ledger | None,
    cfg: ResponseChecks,
    *,
    since: datetime,
    now: datetime,
    actor: str = "system",
) -> ResponseSummary:
    with db.engine.connect() as conn:
        last = conn.execute(_LAST_CHECK).scalar()
    through = int(json.loads(last).get("through_id", 0)) if last else 0
    summary = ResponseSummary(since.isoformat(), now.isoformat())
    newest = through
    for row_id, ts_us, outcome, request_id, details_text, flags_text in _calls(db, since, now):
        details = json.loads(details_text)
        found = flags_for(details, outcome, json.loads(flags_text), cfg)
        day = datetime.fromtimestamp(ts_us / 1e6, UTC).date().isoformat()
        summary.days[day]["calls"] += 1
        summary.calls += 1
        for kind in found:
            summary.days[day][kind] += 1
        newest = max(newest, row_id)
        if found and row_id > through and ledger is not None:
            summary.flagged_now += 1
            ledger.append(
                EventIn(
                    actor=actor,
                    action="response.flag",
                    resource=f"call:{request_id or row_id}",
                    outcome="flagged",
                    details={"event_id": row_id, "latency_ms": details.get("latency_ms")},
                    flags=tuple(found),
                    request_id=request_id,
                )
            )
    if ledger is not None:
        ledger.append(
            EventIn(
                actor=actor,
                action="response.check",
                resource="gateway",
                outcome="success",
                details={
                    "through_id": newest,
                    "totals": summary.totals(),
                    "since": since.isoformat(),
                },
            )
        )
    return summary


def responses_html(summary: ResponseSummary) -> str:
    from bastion.monitoring.reports import _render

    data = summary.to_dict()
    days = [d["day"] for d in data["days"]]
    chart = {
        "id": "responses",
        "title": "Flagged responses per day",
        "data": [
            {"type": "bar", "name": k, "x": days, "y": [d[k] for d in data["days"]]}
            for k in FLAG_KINDS
        ],
        "layout": {"barmode": "stack"},
    }
    calls = {
        "id": "calls",
        "title": "Calls per day",
        "data": [
            {"type": "bar", "name": "calls", "x": days, "y": [d["calls"] for d in data["days"]]}
        ],
    }
    totals = data["totals"]
    flagged = sum(totals[k] for k in FLAG_KINDS)
    return _render(
        {
            "title": "Response monitoring",
            "subtitle": f"{data['since'][:16]} .. {data['until'][:16]} UTC",
            "passed": flagged == 0,
            "verdict": f"{totals['calls']} calls, {flagged} flags",
            "findings": [f.to_dict() for f in summary.findings()],
            "sections": [
                {
                    "title": "Daily summary",
                    "table": {
                        "header": ["day", "calls", *FLAG_KINDS],
                        "rows": [
                            {
                                "cells": [d["day"], d["calls"], *[d[k] for k in FLAG_KINDS]],
                                "bad": any(d[k] for k in FLAG_KINDS),
                            }
                            for d in data["days"]
                        ],
                    },
                    "charts": [calls, chart],
                }
            ],
        }
    )


@dataclass(frozen=True)
class Anomaly:
    key: str
    kind: str  # volume | new_model | unusual_hours | new_source
    message: str
    evidence: dict[str, Any]

    def finding(self) -> Finding:
        return Finding(
            check="access",
            subject=f"key:{self.key}",
            kind=self.kind,
            severity=Severity.warning,
            message=self.message,
            details=self.evidence,
        )


def check_access(
    db: Database,
    ledger: Ledger | None,
    cfg: AccessChecks,
    *,
    now: datetime,
    actor: str = "system",
) -> list[Anomaly]:
    recent_from = now - timedelta(days=1)
    base_from = recent_from - timedelta(days=cfg.baseline_days)
    base_calls: Counter[str] = Counter()
    base_models: dict[str, set[str]] = defaultdict(set)
    base_hours: dict[str, set[int]] = defaultdict(set)
    recent_calls: Counter[str] = Counter()
    recent_models: dict[str, Counter[str]] = defaultdict(Counter)
    recent_hours: dict[str, Counter[int]] = defaultdict(Counter)
    base_sources: dict[str, set[str]] = defaultdict(set)
    recent_sources: dict[str, Counter[str]] = defaultdict(Counter)
    for _id, ts_us, _outcome, _rid, details_text, _flags in _calls(db, base_from, now):
        details = json.loads(details_text)
        key = details.get("key")
        if not key:
            continue
        model = details.get("requested_model") or details.get("served_model") or "unknown"
        moment = datetime.fromtimestamp(ts_us / 1e6, UTC)
        source = details.get("source")
        if moment < recent_from:
            base_calls[key] += 1
            base_models[key].add(model)
            base_hours[key].add(moment.hour)
            if source:
                base_sources[key].add(source)
        else:
            recent_calls[key] += 1
            recent_models[key][model] += 1
            recent_hours[key][moment.hour] += 1
            if source:
                recent_sources[key][source] += 1
    anomalies: list[Anomaly] = []
    for key in sorted(recent_calls):
        calls = recent_calls[key]
        history = base_calls[key]
        if history == 0:
            continue  # a new key has no baseline to differ from
        mean = history / cfg.baseline_days
        if calls >= cfg.min_calls and calls > cfg.volume_factor * mean:
            anomalies.append(
                Anomaly(
                    key,
                    "volume",
                    f"key {key}: {calls} calls in the last day, {calls / mean:.1f}x its "
                    f"daily mean of {mean:.1f} over {cfg.baseline_days} days",
                    {
                        "calls": calls,
                        "daily_mean": round(mean, 3),
                        "factor": round(calls / mean, 2),
                    },
                )
            )
        if cfg.new_model:
            new = sorted(set(recent_models[key]) - base_models[key])
            if new:
                anomalies.append(
                    Anomaly(
                        key,
                        "new_model",
                        f"key {key}: used {', '.join(new)} for the first time in "
                        f"{cfg.baseline_days} days",
                        {"models": new, "calls": {m: recent_models[key][m] for m in new}},
                    )
                )
        if cfg.unusual_hours and history >= cfg.min_calls:
            odd = sorted(set(recent_hours[key]) - base_hours[key])
            if odd:
                anomalies.append(
                    Anomaly(
                        key,
                        "unusual_hours",
                        f"key {key}: calls at {', '.join(f'{h:02d}h' for h in odd)} UTC, "
                        "hours it was never used at before",
                        {"hours": odd, "calls": {f"{h:02d}": recent_hours[key][h] for h in odd}},
                    )
                )
        # Only against a baseline that recorded sources: a key's first calls since
        # sources are recorded are not all "new".
        if cfg.new_source and base_sources[key]:
            fresh = sorted(set(recent_sources[key]) - base_sources[key])
            if fresh:
                anomalies.append(
                    Anomaly(
                        key,
                        "new_source",
                        f"key {key}: used from {len(fresh)} network(s) it was never used "
                        f"from in {cfg.baseline_days} days",
                        {
                            "sources": fresh,
                            "calls": {s: recent_sources[key][s] for s in fresh},
                            "known_sources": len(base_sources[key]),
                        },
                    )
                )
    if ledger is not None:
        for a in anomalies:
            ledger.append(
                EventIn(
                    actor=actor,
                    action="access.anomaly",
                    resource=f"key:{a.key}",
                    outcome="flagged",
                    details={"kind": a.kind, "evidence": a.evidence},
                )
            )
        ledger.append(
            EventIn(
                actor=actor,
                action="access.check",
                resource="keys",
                outcome="success",
                details={"keys": len(recent_calls), "anomalies": len(anomalies)},
            )
        )
    return anomalies
