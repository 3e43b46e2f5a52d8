"""A compliance report: built from one pass over the ledger, with its proofs.

The report is a plain dict (the *body*), serialised canonically (key-sorted compact
JSON); its digest is ``sha256`` of those bytes. Nothing in it depends on when it was
generated: times are the period's, "as of" is the period's end (or now, for a period
not over yet), so the same ledger gives the same bytes. Every rendering (OSCAL JSON,
HTML, Markdown, PDF) is made from the body and embeds it (PDF: its digest), so
``bastion report verify`` can check a file against the ledger.

Proofs in the body: the chain verification result (:func:`bastion.audit.verify_ledger`
over the period's part of each stream: from the signed checkpoint before the period to
the first one at or after its end),
each stream's span in the period with the hash of its last event there, the signed
checkpoints that fall in the period, each with its signature re-checked, and per
control the digest of the events it cites (:mod:`bastion.evidence.scan`). The first
checkpoint *after* the period (which seals its end) is not in the body: it may be
written after the report, and the body must not change with it; ``verify`` looks it up
(:func:`sealing_checkpoints`).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from bastion import __version__
from bastion.audit.events import canonical_json
from bastion.audit.models import AuditCheckpoint, AuditStream
from bastion.audit.signing import verify_signature
from bastion.audit.verify import start_verification
from bastion.errors import InvalidInput
from bastion.evidence.clocks import Clock
from bastion.evidence.mapping import LoadedFramework
from bastion.evidence.scan import scan_period, to_us

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from bastion.audit.events import ChainKey
    from bastion.db import Database

FORMAT_VERSION = 1


class BadPeriod(InvalidInput):
    code = "invalid_period"


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime  # exclusive

    @property
    def label(self) -> str:
        last = self.end - timedelta(microseconds=1)
        if self.start.time() == datetime.min.time() and self.end.time() == datetime.min.time():
            return f"{self.start.date()}..{last.date()}"
        return f"{self.start.isoformat()}..{self.end.isoformat()}"


def _moment(text: str, *, end: bool) -> datetime:
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        day = date.fromisoformat(text)
        moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return moment + timedelta(days=1) if end else moment  # an end date is inclusive
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_period(text: str) -> Period:
    """``START..END``: dates (the end day included) or ISO 8601 times (end excluded)."""
    start_text, sep, end_text = text.strip().partition("..")
    if not sep or not start_text or not end_text:
        raise BadPeriod(
            f"period {text!r}: write START..END, e.g. 2026-01-01..2026-03-31 "
            "(dates include the end day; ISO times exclude the end)"
        )
    try:
        start, end = _moment(start_text, end=False), _moment(end_text, end=True)
    except ValueError:
        raise BadPeriod(
            f"period {text!r}: START and END must be ISO 8601 dates or times, "
            "e.g. 2026-01-01..2026-03-31"
        ) from None
    if end <= start:
        raise BadPeriod(f"period {text!r}: the end must come after the start")
    return Period(start.astimezone(UTC), end.astimezone(UTC))


def digest_of(body: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _checkpoints(
    db: Database,
    spans: dict[str, Any],
    period: Period,
    trusted: dict[str, Ed25519PublicKey],
) -> list[dict[str, Any]]:
    start_us, end_us = to_us(period.start), to_us(period.end)
    out = []
    with db.session() as session:
        for stream in sorted(spans):
            rows = list(
                session.scalars(
                    select(AuditCheckpoint)
                    .where(AuditCheckpoint.stream == stream)
                    .where(AuditCheckpoint.ts_us >= start_us)
                    .order_by(AuditCheckpoint.seq)
                )
            )
            chain = session.scalar(select(AuditStream.chain).where(AuditStream.id == stream))
            for row in rows:
                if row.ts_us >= end_us:
                    break
                key = trusted.get(row.key_id)
                valid = key is not None and verify_signature(
                    key,
                    row.stream,
                    row.seq,
                    row.hash,
                    row.ts_us,
                    row.signature,
                    root=row.root,
                    chain=chain or "sha256",
                    kind=row.kind or "checkpoint",
                )
                out.append(
                    {
                        "stream": row.stream,
                        "seq": row.seq,
                        "hash": row.hash,
                        "time": datetime.fromtimestamp(row.ts_us / 1e6, UTC).isoformat(),
                        "key_id": row.key_id,
                        "signature": row.signature,
                        "signature_valid": valid,
                        "kind": row.kind or "checkpoint",
                        "merkle_root": row.root,
                        "role": "in_period",
                    }
                )
    return out


def sealing_checkpoints(db: Database, streams: list[str], end: datetime) -> dict[str, int]:
    """Per stream, the seq of the first checkpoint at or after ``end`` (none: absent)."""
    out: dict[str, int] = {}
    with db.session() as session:
        for stream in streams:
            seq = session.scalar(
                select(AuditCheckpoint.seq)
                .where(AuditCheckpoint.stream == stream, AuditCheckpoint.ts_us >= to_us(end))
                .order_by(AuditCheckpoint.seq)
                .limit(1)
            )
            if seq is not None:
                out[stream] = int(seq)
    return out


def build_report(
    db: Database,
    loaded: LoadedFramework,
    period: Period,
    *,
    trusted_keys: dict[str, Ed25519PublicKey],
    attestations: list[dict[str, Any]],
    clocks: list[Clock],
    now: datetime,
    verify_chain: bool = True,
    chain_key: ChainKey | None = None,
) -> dict[str, Any]:
    framework = loaded.framework
    as_of = min(now, period.end)
    selectors = [s for c in framework.controls for s in c.evidence]
    # The period's part of each chain: from the signed checkpoint before the period
    # (its hash vouches for everything earlier) to the one that seals its end. Its large
    # streams go to worker processes first, so this process scans while they verify.
    pending = (
        start_verification(
            db,
            trusted_keys,
            chain_key=chain_key,
            since_us=to_us(period.start),
            until_us=to_us(period.end),
        )
        if verify_chain
        else None
    )
    try:
        scan = scan_period(db, selectors, period.start, period.end)
    except BaseException:
        if pending is not None:
            pending.cancel()
        raise
    attested: dict[str, list[dict[str, Any]]] = {}
    for a in attestations:
        attested.setdefault(a["control"], []).append(
            {"by": a["by"], "note": a["note"], "at": a["at"]}
        )
    controls = []
    index = 0
    counts = {"evidenced": 0, "partial": 0, "attested": 0, "gap": 0}
    evidence_lines = []
    for control in framework.controls:
        items = []
        for selector in control.evidence:
            tally = scan.tallies[index]
            index += 1
            digest = tally.digest.hexdigest()
            evidence_lines.append(f"{control.id}/{selector.name}:{tally.count}:{digest}")
            item: dict[str, Any] = {
                "name": selector.name,
                "query": selector.query(),
                "count": tally.count,
                "min_count": selector.min_count,
                "met": tally.count >= selector.min_count,
                "digest": digest,
            }
            if selector.list_actors:
                # the scan lists people by name unless erased (scan.identities)
                item["actors"] = [
                    {"actor": name, "events": n}
                    for name, n in sorted(tally.actors.items(), key=lambda kv: (-kv[1], kv[0]))[:50]
                ]
            items.append(item)
        met = sum(1 for i in items if i["met"])
        if items and met == len(items):
            status = "evidenced"
        elif control.id in attested:
            status = "attested"
        elif met:
            status = "partial"
        else:
            status = "gap"
        counts[status] += 1
        entry: dict[str, Any] = {
            "id": control.id,
            "title": control.title,
            "requirement": control.requirement,
            "status": status,
            "evidence": items,
            "attestations": attested.get(control.id, []),
        }
        if status != "evidenced":
            entry["closes_gap"] = control.closes_gap
        controls.append(entry)
    total = len(framework.controls)
    chain: dict[str, Any] = {"checked": verify_chain}
    if pending is not None:
        verified = pending.result()
        chain |= {
            "ok": verified.ok,
            "scope": "period",
            "problems": [str(p) for p in verified.problems[:50]],
        }
    days = sorted(scan.days)
    families = sorted({f for d in scan.days.values() for f in d})
    body: dict[str, Any] = {
        "format": f"bastion.compliance-report/{FORMAT_VERSION}",
        "framework": {
            "id": framework.framework,
            "title": framework.title,
            "mapping_version": framework.mapping_version,
            "mapping_digest": loaded.digest,
            "source": framework.source,
        },
        "period": {"start": _iso(period.start), "end": _iso(period.end), "label": period.label},
        "as_of": _iso(as_of),
        "generator": f"bastion {__version__}",
        "summary": {
            "controls": total,
            **counts,
            "machine_evidence_share": round(counts["evidenced"] / total, 4),
            "events_in_period": scan.events,
        },
        "controls": controls,
        "clocks": [c.to_dict(as_of) for c in clocks],
        "activity": {
            "days": days,
            "families": {f: [scan.days[d].get(f, 0) for d in days] for f in families},
            "approvals": [_mark_count(scan.marks, d, "approvals") for d in days],
            "incidents": [_mark_count(scan.marks, d, "incidents") for d in days],
            "flags": [_mark_count(scan.marks, d, "flags") for d in days],
        },
        "proofs": {
            "chain": chain,
            "streams": [
                {
                    "stream": s.stream,
                    "events": s.events,
                    "first_seq": s.first_seq,
                    "last_seq": s.last_seq,
                    "last_hash": s.last_hash,
                }
                for s in sorted(scan.streams.values(), key=lambda s: s.stream)
            ],
            "checkpoints": _checkpoints(db, scan.streams, period, trusted_keys),
            "evidence_digest": hashlib.sha256("\n".join(evidence_lines).encode()).hexdigest(),
        },
    }
    return body


def _mark_count(marks: dict[str, Counter[str]], day: str, name: str) -> int:
    found = marks.get(day)
    return found[name] if found is not None else 0


def compare(stated: dict[str, Any], fresh: dict[str, Any]) -> list[str]:
    """What differs between a report and the same report rebuilt from the ledger now."""
    problems = []
    if stated["framework"]["mapping_digest"] != fresh["framework"]["mapping_digest"]:
        problems.append(
            "the framework mapping changed since the report was made "
            f"(mapping {stated['framework']['mapping_version']} -> "
            f"{fresh['framework']['mapping_version']}): evidence compared by name"
        )
    fresh_items = {(c["id"], e["name"]): e for c in fresh["controls"] for e in c["evidence"]}
    for control in stated["controls"]:
        for item in control["evidence"]:
            now = fresh_items.get((control["id"], item["name"]))
            if now is None:
                problems.append(f"{control['id']} / {item['name']}: no longer in the mapping")
            elif (now["count"], now["digest"]) != (item["count"], item["digest"]):
                problems.append(
                    f"{control['id']} / {item['name']}: the ledger now gives {now['count']} "
                    f"events (digest {now['digest'][:12]}), the report cited {item['count']} "
                    f"(digest {item['digest'][:12]})"
                )
    fresh_streams = {s["stream"]: s for s in fresh["proofs"]["streams"]}
    for span in stated["proofs"]["streams"]:
        now = fresh_streams.get(span["stream"])
        if now is None:
            problems.append(f"stream {span['stream']}: its events in the period are gone")
        elif now != span:
            problems.append(
                f"stream {span['stream']}: events {span['first_seq']}..{span['last_seq']} "
                f"ending in hash {span['last_hash'][:12]} in the report; the ledger now has "
                f"{now['first_seq']}..{now['last_seq']} ending in {now['last_hash'][:12]}"
            )
    for stream in sorted(set(fresh_streams) - {s["stream"] for s in stated["proofs"]["streams"]}):
        problems.append(f"stream {stream}: has events in the period the report did not see")
    for cp in stated["proofs"]["checkpoints"]:
        if not cp["signature_valid"]:
            problems.append(
                f"checkpoint {cp['stream']}:{cp['seq']}: signature not valid with a trusted key"
            )
    chain = fresh["proofs"]["chain"]
    if chain.get("checked") and not chain.get("ok"):
        problems.append(f"the ledger does not verify now: {chain['problems'][0]}")
    return problems
