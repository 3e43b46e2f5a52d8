"""Ingestion: every format read with the right locations, re-ingest replaces or skips,
personal data handled by the collection's policy, every step in the ledger."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from bastion.auth.principal import cli_principal
from bastion.documents.errors import (
    EmptyDocument,
    MalformedDocument,
    PersonalDataRefused,
    UnsupportedFormat,
)
from bastion.documents.service import Upload

from .pdfs import make_pdf

pytestmark = pytest.mark.anyio
ADMIN = cli_principal("ops")

MARKDOWN = b"""# Handbook

Intro about the handbook.

## Retention

Invoices are kept for ten years.

## Erasure

Customer records are erased on request within thirty days.
"""
TEXT = b"""Preamble of the agreement.

Article 1
The supplier delivers monthly reports.

Article 2
Either party may terminate with ninety days notice.
"""
HTML = b"""<html><head><title>Policy</title><script>var x = "Article 9";</script></head>
<body><h1>Security policy</h1><p>All laptops are encrypted.</p>
<h2>Passwords</h2><p>Passwords rotate every <b>ninety</b> days.</p></body></html>"""
JSONL = (
    json.dumps(
        {
            "id": "gdpr/art-17",
            "regulation_name": "GDPR",
            "article": 17,
            "text": "Right to erasure 1. The data subject shall have the right to obtain "
            "erasure. 2. Where the controller has made the data public it shall inform.",
        }
    )
    + "\n"
    + json.dumps({"id": "memo", "text": "A memo with no article.", "page": 4, "source": "Memo"})
    + "\n"
).encode()
PDF = make_pdf(["Scope of the standard.\nIt covers laptops.", "Audit trail is kept on page two."])

CASES = [
    ("handbook.md", MARKDOWN, {"## Retention": "ten years", "## Erasure": "thirty days"}),
    ("contract.txt", TEXT, {"Art. 1": "monthly reports", "Art. 2": "ninety days"}),
    ("policy.html", HTML, {"# Security policy": "encrypted", "## Passwords": "ninety days"}),
    ("standard.pdf", PDF, {"p. 1": "laptops", "p. 2": "Audit trail"}),
    ("regs.jsonl", JSONL, {"GDPR Art. 17": "Right to erasure", "Memo p. 4": "memo"}),
]


@pytest.mark.parametrize(("filename", "data", "where"), CASES, ids=[c[0] for c in CASES])
async def test_each_format_keeps_its_locations(
    docs: Any, filename: str, data: bytes, where: dict[str, str]
) -> None:
    report = await docs.service.ingest("public", [Upload(filename, data)], ADMIN)
    assert {d.status for d in report.documents} == {"added"}
    chunks = []
    for d in report.documents:
        row, mine = docs.service.document(d.id, ADMIN)
        for c in mine:
            assert row.text[c.start : c.end] == c.text  # offsets point into the document
        chunks.extend(mine)
    for location, phrase in where.items():
        holding = [c for c in chunks if phrase in c.text]
        assert holding, phrase
        assert any(c.location.startswith(location) for c in holding), (
            location,
            [c.location for c in holding],
        )
    assert not any("var x" in c.text for c in chunks)  # scripts are not text


async def test_numbered_paragraphs_of_an_article_are_cited(docs: Any) -> None:
    body = " ".join(f"{n}. Paragraph {n} says " + "something specific. " * 24 for n in (1, 2, 3))
    line = json.dumps({"id": "a5", "regulation_name": "AI Act", "article": 5, "text": body})
    report = await docs.service.ingest("public", [Upload("x.jsonl", line.encode())], ADMIN)
    _, chunks = docs.service.document(report.documents[0].id, ADMIN)

    # A chunk is cited by the paragraph it starts in.
    def paragraph_at(offset: int) -> int:
        return max(n for n in (1, 2, 3) if body.index(f"{n}. Paragraph") <= offset)

    assert len(chunks) >= 3
    assert [c.location for c in chunks] == [
        f"AI Act Art. 5({paragraph_at(c.start)})" for c in chunks
    ]
    assert {paragraph_at(c.start) for c in chunks} == {1, 2, 3}
    assert all(c.location.startswith("AI Act Art. 5") for c in chunks)


async def test_reingest_skips_unchanged_and_replaces_changed(docs: Any) -> None:
    first = await docs.service.ingest("public", [Upload("h.md", MARKDOWN)], ADMIN)
    again = await docs.service.ingest("public", [Upload("h.md", MARKDOWN)], ADMIN)
    assert [d.status for d in again.documents] == ["unchanged"]
    assert again.documents[0].id == first.documents[0].id
    changed = MARKDOWN.replace(b"ten years", b"seven years")
    third = await docs.service.ingest("public", [Upload("h.md", changed)], ADMIN)
    assert [d.status for d in third.documents] == ["replaced"]
    assert third.documents[0].id == first.documents[0].id
    found = await docs.retriever.search("public", "invoices kept years", 5, ADMIN)
    texts = " ".join(p.text for p in found)
    assert "seven years" in texts and "ten years" not in texts
    _, chunks = docs.service.document(first.documents[0].id, ADMIN)
    assert len({c.chunk_id for c in chunks}) == len(chunks)
    with docs.service.db.engine.connect() as conn:  # no orphan chunk left behind
        count = conn.execute(sa.text("SELECT count(*) FROM doc_chunks")).scalar_one()
    assert count == len(chunks)


async def test_remove_takes_a_document_out_of_search(docs: Any) -> None:
    report = await docs.service.ingest("public", [Upload("c.txt", TEXT)], ADMIN)
    assert await docs.retriever.search("public", "terminate notice", 3, ADMIN)
    docs.service.remove(report.documents[0].id, ADMIN)
    assert await docs.retriever.search("public", "terminate notice", 3, ADMIN) == []


@pytest.mark.parametrize(
    ("filename", "data", "error", "code"),
    [
        ("a.docx", b"PK\x03\x04", UnsupportedFormat, "unsupported_format"),
        ("a.jsonl", b'{"text": "ok"}\n{"text": broken}\n', MalformedDocument, "malformed_document"),
        ("a.jsonl", b'["not", "an", "object"]\n', MalformedDocument, "malformed_document"),
        ("a.jsonl", b'{"title": "no text"}\n', MalformedDocument, "malformed_document"),
        (
            "a.jsonl",
            b'{"id": "x", "text": "a"}\n{"id": "x", "text": "b"}\n',
            MalformedDocument,
            "malformed_document",
        ),
        ("a.pdf", b"this is not a pdf", MalformedDocument, "malformed_document"),
        ("a.pdf", b"%PDF-1.4\n garbage", MalformedDocument, "malformed_document"),
        ("a.txt", b"\xff\xfe\x00bad", MalformedDocument, "malformed_document"),
        ("a.md", b"   \n\n  ", EmptyDocument, "empty_document"),
        ("a.jsonl", b"\n\n", EmptyDocument, "empty_document"),
    ],
)
async def test_malformed_uploads_are_refused_with_a_code(
    docs: Any, filename: str, data: bytes, error: type[Exception], code: str
) -> None:
    with pytest.raises(error) as raised:
        await docs.service.ingest("public", [Upload(filename, data)], ADMIN)
    assert raised.value.code == code  # type: ignore[attr-defined]
    assert docs.service.collections(ADMIN) == [] or all(
        c.documents == 0 for c in docs.service.collections(ADMIN)
    )


PERSONAL = b"Escalations go to jane.roe@example.com or +44 20 7946 0958.\n"


async def test_personal_data_is_masked_refused_or_kept_by_policy(docs: Any) -> None:
    masked = await docs.service.ingest("public", [Upload("p.txt", PERSONAL)], ADMIN)
    assert masked.documents[0].personal_data.get("EMAIL_ADDRESS") == 1
    row, chunks = docs.service.document(masked.documents[0].id, ADMIN)
    assert "jane.roe@example.com" not in row.text and "<EMAIL_ADDRESS>" in row.text
    assert all(row.text[c.start : c.end] == c.text for c in chunks)
    with pytest.raises(PersonalDataRefused) as refused:
        await docs.service.ingest("strict", [Upload("p.txt", PERSONAL)], ADMIN)
    assert "EMAIL_ADDRESS" in refused.value.message and "jane" not in refused.value.message
    kept = await docs.service.ingest("raw", [Upload("p.txt", PERSONAL)], ADMIN)
    row, _ = docs.service.document(kept.documents[0].id, ADMIN)
    assert "jane.roe@example.com" in row.text


async def test_ingest_and_its_embeddings_are_in_the_ledger(docs: Any, docs_runtime: Any) -> None:
    await docs.service.ingest("public", [Upload("h.md", MARKDOWN)], ADMIN)
    await docs.retriever.search("public", "retention of invoices", 3, ADMIN)
    with docs_runtime.db.engine.connect() as conn:
        actions = conn.execute(sa.text("SELECT action, resource FROM audit_events")).all()
    assert ("documents.ingest", "collection:public") in [tuple(a) for a in actions]
    # the chunks' vectors and the query's: governed gateway calls
    assert sum(1 for a in actions if a[0] == "llm.embeddings") >= 2
