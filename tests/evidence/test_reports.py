"""Compliance reports built from a real ledger, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import sqlalchemy as sa

from bastion.evidence.render import extract_body, to_oscal
from bastion.evidence.report import digest_of
from bastion.evidence.service import BadReport, EvidenceService

from .conftest import now

SCHEMA_FILE = Path(__file__).with_name("oscal_complete_schema.json")


def oscal_validator() -> jsonschema.Draft7Validator:
    """NIST's OSCAL 1.2.3 complete JSON schema. Its token pattern uses ``\\p{L}`` and
    ``\\p{N}``, which Python's ``re`` lacks: they become the equivalent Unicode classes."""
    text = SCHEMA_FILE.read_text()
    text = text.replace("\\\\p{L}", "[^\\\\W\\\\d_]").replace("\\\\p{N}", "\\\\d")
    schema = json.loads(text)
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


@pytest.fixture
def service(runtime: Any) -> EvidenceService:
    from bastion.runtime import chain_key

    return EvidenceService(
        runtime.db,
        {runtime.signer.key_id: runtime.signer.public},
        runtime.ledger,
        chain_key(runtime.settings),
    )


@pytest.fixture
def seeded(write: Callable[..., None]) -> str:
    """A period with calls, masked calls, approvals and key events; returns the period."""
    start = now() - timedelta(minutes=5)
    write("llm.chat", 12)
    write("llm.chat", 3, flags=("pii:EMAIL_ADDRESS",))
    write("llm.chat", 2, outcome="refused", details={"error_code": "budget_exceeded"})
    write("model.promotion.approve", 2, actor="user:bob", resource="model:fraud/3")
    write("key.create", 1, actor="user:ada", resource="key:bk_1")
    write("policy.reload", 1, resource="policy")
    end = now()  # the period is over before any report is made
    return f"{start.isoformat()}..{end.isoformat()}"


def by_id(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in body["controls"]}


def test_a_report_counts_the_evidence_and_names_the_gaps(
    service: EvidenceService, seeded: str
) -> None:
    body = service.body("eu-ai-act", seeded)
    controls = by_id(body)
    art12 = controls["art-12"]
    assert art12["status"] == "evidenced"
    assert art12["evidence"][0]["count"] == 17
    art14 = controls["art-14"]
    assert art14["status"] == "partial"  # approvals yes, no rejection or rollback
    assert art14["evidence"][0]["actors"] == [{"actor": "user:bob", "events": 2}]
    assert "approvals" in art14["closes_gap"]
    art13 = controls["art-13"]
    assert art13["status"] == "gap" and art13["evidence"][0]["count"] == 0
    assert "model cards" in art13["closes_gap"]
    s = body["summary"]
    assert s["controls"] == 10
    assert s["evidenced"] + s["partial"] + s["gap"] + s["attested"] == 10
    assert s["machine_evidence_share"] == round(s["evidenced"] / 10, 4)
    assert body["proofs"]["chain"]["ok"] is True
    assert sum(st["events"] for st in body["proofs"]["streams"]) == s["events_in_period"]


def test_flags_outcomes_and_details_select_evidence(service: EvidenceService, seeded: str) -> None:
    gdpr = by_id(service.body("gdpr", seeded))
    assert gdpr["art-5"]["evidence"][0]["count"] == 3  # the masked calls only
    soc2 = by_id(service.body("soc2", seeded))
    assert soc2["CC6.1"]["evidence"][1]["count"] == 2  # refused
    assert soc2["CC6.2"]["evidence"][0]["actors"] == [{"actor": "user:ada", "events": 1}]


def test_attestations_are_listed_with_who_attested_and_do_not_count_as_machine_evidence(
    service: EvidenceService, seeded: str
) -> None:
    service.attest(
        "gdpr", "art-35", by="dpo@corp.example", note="DPIA v3, signed", actor="user:dpo"
    )
    body = service.body(
        "gdpr", seeded.split("..")[0] + ".." + (now() + timedelta(seconds=1)).isoformat()
    )
    art35 = by_id(body)["art-35"]
    assert art35["status"] == "attested"
    assert art35["attestations"][0]["by"] == "dpo@corp.example"
    assert body["summary"]["attested"] == 1
    assert body["summary"]["machine_evidence_share"] == round(body["summary"]["evidenced"] / 7, 4)


def test_the_oscal_json_validates_and_is_byte_identical_on_the_same_ledger(
    service: EvidenceService, seeded: str
) -> None:
    first = service.generate("eu-ai-act", seeded, "json", actor="user:aud")
    second = service.generate("eu-ai-act", seeded, "json", actor="user:aud")
    assert first.content == second.content
    doc = json.loads(first.content)
    errors = sorted(oscal_validator().iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message[:200]}" for e in errors[:5]]
    results = doc["assessment-results"]["results"][0]
    states = {f["target"]["target-id"]: f["target"]["status"]["state"] for f in results["findings"]}
    assert states["art-12"] == "satisfied" and states["art-13"] == "not-satisfied"
    assert extract_body(first.content) == first.body


def test_an_invalid_oscal_document_is_caught_by_the_schema(
    service: EvidenceService, seeded: str
) -> None:
    doc = to_oscal(service.body("soc2", seeded))
    del doc["assessment-results"]["results"][0]["start"]
    assert list(oscal_validator().iter_errors(doc))


@pytest.mark.parametrize("fmt", ["json", "html", "md"])
def test_each_format_verifies_against_the_ledger(
    service: EvidenceService, seeded: str, fmt: str
) -> None:
    done = service.generate("iso42001", seeded, fmt, actor="user:aud")  # type: ignore[arg-type]
    result = service.verify(done.content)
    assert result.ok, result.problems
    assert result.digest == done.digest == digest_of(done.body)


def test_html_has_charts_inline_and_pdf_renders(service: EvidenceService, seeded: str) -> None:
    html = service.generate("eu-ai-act", seeded, "html", actor="user:aud").content.decode()
    assert "Plotly.newPlot" in html and "cdn" not in html.lower().split("<body>")[1]
    assert "Ledger events per day" in html and "Art. 12 Record-keeping" in html
    pdf = service.generate("eu-ai-act", seeded, "pdf", actor="user:aud").content
    assert pdf.startswith(b"%PDF-")


def test_verify_names_the_control_whose_evidence_changed(
    service: EvidenceService, seeded: str, runtime: Any
) -> None:
    done = service.generate("eu-ai-act", seeded, "json", actor="user:aud")
    with runtime.db.engine.begin() as conn:
        victim = conn.execute(
            sa.text("SELECT MAX(id) FROM audit_events WHERE action = 'model.promotion.approve'")
        ).scalar()
        conn.execute(sa.text("DELETE FROM audit_events WHERE id = :id"), {"id": victim})
    result = service.verify(done.content)
    assert not result.ok
    text = "\n".join(result.problems)
    assert "art-14 / releases approved by a person: the ledger now gives 1 events" in text
    assert "the ledger does not verify now" in text


def test_an_edited_report_is_not_recorded(service: EvidenceService, seeded: str) -> None:
    md = service.generate("gdpr", seeded, "md", actor="user:aud").content.decode()
    edited = re.sub(r'"machine_evidence_share": [0-9.]+', '"machine_evidence_share": 1.0', md)
    assert edited != md
    result = service.verify(edited.encode())
    assert not result.recorded and "no evidence.report event records" in result.problems[0]


@pytest.mark.parametrize(
    "data", [b"", b"{}", b'{"assessment-results": {}}', b"%PDF-1.4 ...", b"<html></html>"]
)
def test_verify_refuses_what_is_not_a_report(service: EvidenceService, data: bytes) -> None:
    with pytest.raises(BadReport):
        service.verify(data)


def test_legal_clocks_show_in_the_report(service: EvidenceService, seeded: str) -> None:
    start = seeded.split("..")[0]
    opened = service.clocks.open(
        kind="serious_incident", severity="death", title="wrong triage", actor="user:ann"
    )
    body = service.body("eu-ai-act", f"{start}..{(now() + timedelta(seconds=1)).isoformat()}")
    (clock,) = body["clocks"]
    assert clock["id"] == opened.id and clock["status"] == "open"
    assert 9.9 < clock["days_left"] <= 10
    assert by_id(body)["art-73"]["evidence"][0]["count"] == 1


def test_selectors_asking_the_same_question_are_tallied_as_each_alone(
    service: EvidenceService, seeded: str
) -> None:
    # Two controls citing the same evidence are tallied once and the tally copied:
    # counts, digests and actors must be what each selector gives on its own.
    from bastion.evidence.mapping import Selector
    from bastion.evidence.report import parse_period
    from bastion.evidence.scan import scan_period

    period = parse_period(seeded)
    calls = Selector(name="calls", actions=["llm.*"])
    again = Selector(name="model calls logged", actions=["llm.*"], min_count=5)
    refused = Selector(name="refused", actions=["llm.*"], outcomes=["refused"])
    approvers = Selector(name="approvers", actions=["model.promotion.*"], list_actors=True)
    both = [calls, approvers, again, refused, approvers.model_copy(update={"name": "who"})]
    together = scan_period(service.db, both, period.start, period.end).tallies
    alone = [scan_period(service.db, [s], period.start, period.end).tallies[0] for s in both]
    assert [(t.count, t.digest.hexdigest(), t.actors) for t in together] == [
        (t.count, t.digest.hexdigest(), t.actors) for t in alone
    ]
    assert [t.count for t in together] == [17, 2, 17, 2, 2]
    assert together[0].digest is not together[2].digest
