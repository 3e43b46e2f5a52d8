"""Renderings of a report body: OSCAL assessment-results JSON, Markdown, HTML, PDF.

Each text rendering embeds the body itself (OSCAL: a back-matter resource; HTML: a
``<script type="application/json">``; Markdown: a fenced block at the end), so
``bastion report verify FILE`` needs nothing but the file and the ledger. The PDF
(fpdf2, pure Python, core fonts) is for reading: it states the digest, and the JSON
or HTML of the same report is what ``verify`` checks.

OSCAL: one ``result`` for the period; one ``observation`` per evidence selector (method
AUTOMATED, the count and the digest of the cited events as props), one per attestation
(method INTERVIEW, who attested); one ``finding`` per control whose target status is
``satisfied`` when machine evidence or an attestation backs it, else ``not-satisfied``
with the gap in its description. UUIDs are version 5, derived from the report digest
and the item's place, so the same ledger gives byte-identical JSON.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from typing import Any

from bastion.evidence.report import digest_of

NS = "urn:bastion:evidence"
EMBED_ID = "bastion-report"
MD_FENCE = "```json bastion-report"


class NotAReport(ValueError):
    pass


def _uuid(digest: str, *parts: object) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"bastion:{digest}:" + ":".join(map(str, parts))))


def _prop(name: str, value: object) -> dict[str, str]:
    text = str(value).strip() or "-"
    return {"name": name, "ns": NS, "value": text}


def body_bytes(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, indent=2, ensure_ascii=False).encode() + b"\n"


def to_oscal(body: dict[str, Any]) -> dict[str, Any]:
    digest = digest_of(body)
    fw = body["framework"]
    observations: list[dict[str, Any]] = []
    findings: list[dict[str, Any]] = []
    for c in body["controls"]:
        related = []
        for e in c["evidence"]:
            obs_id = _uuid(digest, "obs", c["id"], e["name"])
            related.append({"observation-uuid": obs_id})
            observations.append(
                {
                    "uuid": obs_id,
                    "title": f"{c['id']}: {e['name']}",
                    "description": (
                        f"{e['count']} ledger events matched "
                        f"{json.dumps(e['query'], sort_keys=True)}"
                        f" (at least {e['min_count']} needed)."
                    ),
                    "props": [
                        _prop("event-count", e["count"]),
                        _prop("min-count", e["min_count"]),
                        _prop("evidence-digest", e["digest"]),
                    ],
                    "methods": ["AUTOMATED"],
                    "types": ["control-objective"],
                    "relevant-evidence": [
                        {
                            "description": "Events of the Bastion ledger; the digest covers "
                            "stream:seq:hash of each cited event in ledger order.",
                            "props": [_prop("evidence-digest", e["digest"])],
                        }
                    ],
                    "collected": body["as_of"],
                }
            )
        for n, a in enumerate(c["attestations"]):
            obs_id = _uuid(digest, "attest", c["id"], n)
            related.append({"observation-uuid": obs_id})
            observations.append(
                {
                    "uuid": obs_id,
                    "title": f"{c['id']}: attested by {a['by']}",
                    "description": a["note"] or "-",
                    "props": [_prop("attested-by", a["by"]), _prop("attested-at", a["at"])],
                    "methods": ["INTERVIEW"],
                    "collected": a["at"],
                }
            )
        satisfied = c["status"] in ("evidenced", "attested")
        description = c["requirement"]
        if not satisfied:
            description += f" Gap: {c['closes_gap']}"
        finding: dict[str, Any] = {
            "uuid": _uuid(digest, "finding", c["id"]),
            "title": c["title"],
            "description": description,
            "props": [_prop("bastion-status", c["status"])],
            "target": {
                "type": "objective-id",
                "target-id": c["id"],
                "status": {"state": "satisfied" if satisfied else "not-satisfied"},
            },
        }
        if related:
            finding["related-observations"] = related
        findings.append(finding)
    summary = body["summary"]
    result = {
        "uuid": _uuid(digest, "result"),
        "title": f"{fw['title']}: {body['period']['label']}",
        "description": (
            f"{summary['evidenced']} of {summary['controls']} controls backed by machine "
            f"evidence ({summary['machine_evidence_share']:.0%}), {summary['attested']} "
            f"attested, {summary['partial']} partial, {summary['gap']} gaps."
        ),
        "start": body["period"]["start"],
        "end": body["period"]["end"],
        "props": [
            _prop("machine-evidence-share", summary["machine_evidence_share"]),
            _prop("chain-verified", body["proofs"]["chain"].get("ok", "not-checked")),
            _prop("evidence-digest", body["proofs"]["evidence_digest"]),
        ],
        "reviewed-controls": {
            "control-selections": [
                {"include-controls": [{"control-id": c["id"]} for c in body["controls"]]}
            ]
        },
        "observations": observations,
        "findings": findings,
    }
    embedded = base64.b64encode(body_bytes(body)).decode()
    return {
        "assessment-results": {
            "uuid": _uuid(digest, "assessment-results"),
            "metadata": {
                "title": f"Bastion compliance report: {fw['title']}",
                "last-modified": body["as_of"],
                "version": fw["mapping_version"],
                "oscal-version": "1.1.2",
                "props": [
                    _prop("report-digest", digest),
                    _prop("framework", fw["id"]),
                    _prop("mapping-digest", fw["mapping_digest"]),
                    _prop("generator", body["generator"]),
                ],
            },
            "import-ap": {"href": f"#{_uuid(digest, 'report')}"},
            "results": [result],
            "back-matter": {
                "resources": [
                    {
                        "uuid": _uuid(digest, "report"),
                        "title": "Bastion report body (what bastion report verify checks)",
                        "props": [_prop("report-digest", digest)],
                        "base64": {
                            "filename": "bastion-report.json",
                            "media-type": "application/json",
                            "value": embedded,
                        },
                    }
                ]
            },
        }
    }


def oscal_bytes(body: dict[str, Any]) -> bytes:
    return json.dumps(to_oscal(body), indent=2, sort_keys=True, ensure_ascii=False).encode() + b"\n"


STATUS_MARK = {"evidenced": "evidenced", "attested": "attested", "partial": "PARTIAL", "gap": "GAP"}


def to_markdown(body: dict[str, Any]) -> str:
    fw, s = body["framework"], body["summary"]
    out = [
        f"# Compliance report: {fw['title']}",
        "",
        f"Period {body['period']['label']} (as of {body['as_of']}); mapping "
        f"{fw['id']} {fw['mapping_version']}; {body['generator']}.",
        "",
        f"**{s['evidenced']} of {s['controls']} controls backed by machine evidence "
        f"({s['machine_evidence_share']:.0%})**; {s['attested']} attested, {s['partial']} "
        f"partial, {s['gap']} gaps. {s['events_in_period']:,} ledger events in the period.",
        "",
        "| control | status | evidence |",
        "| --- | --- | --- |",
    ]
    for c in body["controls"]:
        ev = (
            "; ".join(f"{e['name']}: {e['count']:,}" for e in c["evidence"]) or "(attestation only)"
        )
        out.append(f"| {c['title']} | {STATUS_MARK[c['status']]} | {ev} |")
    gaps = [c for c in body["controls"] if c["status"] != "evidenced"]
    if gaps:
        out += ["", "## Gaps and attestations", ""]
        for c in gaps:
            out.append(f"- **{c['title']}** ({c['status']}): {c['closes_gap']}")
            for a in c["attestations"]:
                out.append(f"  - attested by {a['by']} at {a['at']}: {a['note']}")
    people = [(c, e) for c in body["controls"] for e in c["evidence"] if e.get("actors")]
    if people:
        out += ["", "## Who acted", ""]
        for c, e in people:
            names = ", ".join(f"{a['actor']} ({a['events']})" for a in e["actors"])
            out.append(f"- {c['id']} / {e['name']}: {names}")
    out += ["", "## Legal clocks", ""]
    if body["clocks"]:
        out += ["| id | kind | title | deadline | status |", "| --- | --- | --- | --- | --- |"]
        for k in body["clocks"]:
            out.append(
                f"| {k['id']} | {k['kind']} ({k['severity']}) | {k['title']} | "
                f"{k['deadline_at']} | {k['status']} |"
            )
    else:
        out.append("No incidents or data-subject requests open in the period.")
    proofs = body["proofs"]
    chain = proofs["chain"]
    verdict = "ok" if chain.get("ok") else "FAILED" if chain.get("checked") else "not run"
    out += [
        "",
        "## Proofs",
        "",
        f"- Chain verification: {verdict}"
        + "".join(f"\n  - {p}" for p in chain.get("problems", [])[:10]),
        f"- Evidence digest: `{proofs['evidence_digest']}`",
        f"- Report digest: `{digest_of(body)}`",
        "",
        "| stream | events | seq | last hash |",
        "| --- | --- | --- | --- |",
    ]
    for sp in proofs["streams"]:
        out.append(
            f"| {sp['stream'][:12]} | {sp['events']:,} | {sp['first_seq']}..{sp['last_seq']} | "
            f"`{sp['last_hash'][:16]}` |"
        )
    out += ["", "| checkpoint | time | key | signature |", "| --- | --- | --- | --- |"]
    for cp in proofs["checkpoints"]:
        valid = "valid" if cp["signature_valid"] else "NOT VALID"
        out.append(
            f"| {cp['stream'][:12]}:{cp['seq']} ({cp['role']}) | {cp['time']} | "
            f"{cp['key_id']} | {valid} |"
        )
    out += ["", MD_FENCE, body_bytes(body).decode().rstrip("\n"), "```", ""]
    return "\n".join(out)


def _chart(
    cid: str, title: str, days: list[str], series: dict[str, list[int]], kind: str
) -> dict[str, Any]:
    return {
        "id": cid,
        "title": title,
        "data": [
            {"type": kind, "name": name, "x": days, "y": values} for name, values in series.items()
        ],
        "layout": {"barmode": "stack", "showlegend": True},
    }


def to_html(body: dict[str, Any]) -> str:
    import jinja2
    from plotly.offline import get_plotlyjs

    act = body["activity"]
    charts = [
        _chart("events", "Ledger events per day, by family", act["days"], act["families"], "bar"),
        _chart(
            "oversight",
            "Approvals, incidents and flags per day",
            act["days"],
            {"approvals": act["approvals"], "incidents": act["incidents"], "flags": act["flags"]},
            "bar",
        ),
    ]
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("bastion.evidence", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
    )
    embedded = body_bytes(body).decode().replace("</", "<\\/")
    return env.get_template("report.html.j2").render(
        body=body,
        digest=digest_of(body),
        charts=charts,
        plotly_js=get_plotlyjs(),
        embedded=embedded,
        embed_id=EMBED_ID,
    )


def _latin1(text: str) -> str:
    # fpdf2's core fonts are Latin-1; anything else becomes '?' rather than an error
    return (
        text.replace("\u2014", "-")
        .replace("\u2013", "-")
        .encode("latin-1", "replace")
        .decode("latin-1")
    )


def to_pdf(body: dict[str, Any]) -> bytes:
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_creation_date(_pdf_date(body["as_of"]))
    pdf.set_title(_latin1(f"Compliance report: {body['framework']['title']}"))
    pdf.set_subject(f"bastion report digest {digest_of(body)}")
    pdf.set_creator(body["generator"])
    pdf.add_page()
    pdf.set_font("Helvetica", size=10)
    width = pdf.w - pdf.l_margin - pdf.r_margin
    markdown = to_markdown(body).split(MD_FENCE)[0]
    for line in markdown.splitlines():
        if line.startswith("# "):
            pdf.set_font("Helvetica", "B", 15)
            pdf.multi_cell(width, 8, _latin1(line[2:]), new_x="LMARGIN", new_y="NEXT")
            pdf.set_font("Helvetica", size=10)
        elif line.startswith("## "):
            pdf.ln(2)
            pdf.set_font("Helvetica", "B", 12)
            pdf.multi_cell(width, 7, _latin1(line[3:]), new_x="LMARGIN", new_y="NEXT")
            pdf.set_font("Helvetica", size=10)
        elif line.startswith("| ---"):
            continue
        else:
            clean = line.replace("**", "").replace("`", "")
            if clean.startswith("|"):
                clean = "  ".join(cell.strip() for cell in clean.strip("|").split("|"))
            pdf.set_font("Helvetica", size=8 if line.startswith("|") else 10)
            pdf.multi_cell(width, 4.5, _latin1(clean) or " ", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def _pdf_date(iso: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(iso)


def extract_body(data: bytes) -> dict[str, Any]:
    """The report body embedded in an OSCAL JSON, HTML or Markdown rendering."""
    text = data.decode("utf-8", errors="replace")
    stripped = text.lstrip()
    try:
        if stripped.startswith("{"):
            doc = json.loads(text)
            if "assessment-results" in doc:
                for res in doc["assessment-results"].get("back-matter", {}).get("resources", []):
                    b64 = res.get("base64", {})
                    if b64.get("filename") == "bastion-report.json":
                        return dict(json.loads(base64.b64decode(b64["value"])))
                raise NotAReport("an OSCAL document without a Bastion report body")
            if str(doc.get("format", "")).startswith("bastion.compliance-report/"):
                return dict(doc)
            raise NotAReport("a JSON document that is not a Bastion report")
        match = re.search(
            rf'<script type="application/json" id="{EMBED_ID}">(.*?)</script>', text, re.S
        )
        if match:
            return dict(json.loads(match.group(1).replace("<\\/", "</")))
        if MD_FENCE in text:
            block = text.split(MD_FENCE, 1)[1].split("\n```", 1)[0]
            return dict(json.loads(block))
    except (ValueError, KeyError) as exc:
        raise NotAReport(f"the embedded report cannot be read: {exc}") from None
    raise NotAReport(
        "no Bastion report inside: give the .json, .html or .md a report command wrote "
        "(a PDF carries only the digest)"
    )
