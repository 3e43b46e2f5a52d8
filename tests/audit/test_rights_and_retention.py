"""Encryption at rest, subject export and erasure, retention, proofs: end to end.

Each test runs Bastion's own runtime (keyed chain, anchors, content vault) on SQLite
and PostgreSQL and ends where an auditor would: the CLI's ``audit verify --anchors``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from bastion.audit import AuditService, EventFilter
from bastion.audit.proofs import check_proof
from bastion.db import create_database
from bastion.runtime import open_runtime, signer_for
from bastion.settings import Settings
from bastion.testing.audit import anchored_settings, record_chat, run_cli


@pytest.fixture
def anchored(settings: Settings, tmp_path: Path) -> Settings:
    return anchored_settings(settings, tmp_path / "anchors")


def test_content_is_encrypted_at_rest_with_a_key_per_subject(anchored: Settings) -> None:
    rt = open_runtime(anchored)
    try:
        record_chat(rt, "alice", "my card is 4111 1111 1111 1111")
        record_chat(rt, "bob", "hello")
        with rt.db.engine.connect() as conn:
            bodies = conn.execute(sa.text("SELECT subject, body FROM audit_content")).all()
            keys = conn.execute(sa.text("SELECT COUNT(*) FROM audit_subject_keys")).scalar_one()
    finally:
        rt.close()
    assert len(bodies) == 4 and keys == 2
    for subject, body in bodies:
        assert body.startswith("aesgcm1:") and "4111" not in body and "hello" not in body
        assert subject not in {"alice", "bob"}  # keyed digests, not names


def test_export_then_erase_keeps_the_chain_verifiable(anchored: Settings, tmp_path: Path) -> None:
    rt = open_runtime(anchored)
    try:
        record_chat(rt, "alice", "alice's first question")
        record_chat(rt, "alice", "alice's second question")
        record_chat(rt, "bob", "bob's question")
        bundle = rt.subjects().export("alice", actor="user:dpo")
        done = rt.subjects().erase(
            "alice", reason="GDPR Art. 17 request #42", requested_by="alice", actor="user:dpo"
        )
        after = rt.subjects().export("alice", actor="user:dpo")
        bob = rt.subjects().export("bob", actor="user:dpo")
        erasures = rt.audit.page(EventFilter(action="subject.erase"))
    finally:
        rt.close()
    sections = bundle["sections"]
    assert len(sections["ledger_events"]) == 2
    assert {c["body"] for c in sections["stored_content"]} >= {"alice's first question"}
    assert all(c["readable"] for c in sections["stored_content"])

    ledger = done.removed["ledger"]
    assert ledger["content_rows"] == 4 and ledger["content_keys"] == 1
    assert ledger["events_pseudonymised"] == 2 and ledger["legacy_events_kept"] == 0
    # Her events remain, under her keyed digest, no longer linked to her; content gone.
    assert after["sections"]["stored_content"] == []
    assert after["sections"]["ledger_events"] == []
    assert len(bob["sections"]["stored_content"]) == 2  # others untouched

    outcomes = {e.outcome: e.details for e in erasures.events}
    assert set(outcomes) == {"started", "success"}
    success = outcomes["success"]
    assert success["requested_by"] == "the data subject" and success["reason"].startswith("GDPR")
    assert "alice" not in json.dumps([e.to_dict() for e in erasures.events])
    assert success["removed"]["ledger"]["content_rows"] == 4
    assert all(e.actor == "user:dpo" for e in erasures.events)

    code, out, err = run_cli(anchored, "audit", "verify", "--anchors", str(tmp_path / "anchors"))
    assert code == 0, err
    assert "ledger verified" in out


def test_retention_seals_old_events_and_verification_and_proofs_still_hold(
    anchored: Settings, tmp_path: Path
) -> None:
    rt = open_runtime(anchored)
    try:
        for i in range(12):
            record_chat(rt, "carol", f"question {i}")
    finally:
        rt.close()  # a closed stream of 12 events, anchored
    rt = open_runtime(anchored)
    try:
        dry = rt.retention().sweep(
            content_days=30,
            events_days=365,
            actor="user:ops",
            dry_run=True,
            now=datetime.now(UTC) + timedelta(days=400),
        )
        swept = rt.retention().sweep(
            content_days=30,
            events_days=365,
            actor="user:ops",
            now=datetime.now(UTC) + timedelta(days=400),
        )
        record_chat(rt, "dave", "after the sweep")
        with rt.db.engine.connect() as conn:
            left = conn.execute(sa.text("SELECT COUNT(*) FROM audit_content")).scalar_one()
    finally:
        rt.close()
    assert dry.dry_run and dry.events == 12 and dry.content_rows == 24
    assert swept.events >= 12 and swept.content_rows == 24
    assert left == 2  # dave's, stored after the sweep

    code, out, err = run_cli(anchored, "audit", "verify", "--anchors", str(tmp_path / "anchors"))
    assert code == 0, err

    # The sweep itself is in the ledger, and an event after the seal can still be proven.
    db = create_database(anchored.resolved_database_url)
    try:
        with db.engine.connect() as conn:
            sweeps = (
                conn.execute(
                    sa.text("SELECT outcome FROM audit_events WHERE action = 'retention.sweep'")
                )
                .scalars()
                .all()
            )
            latest = conn.execute(sa.text("SELECT MAX(id) FROM audit_events")).scalar_one()
    finally:
        db.dispose()
    assert "success" in sweeps
    code, out, err = run_cli(
        anchored, "audit", "prove", str(latest), "-o", str(tmp_path / "p.json")
    )
    assert code == 0, err
    code, out, err = run_cli(anchored, "audit", "check-proof", str(tmp_path / "p.json"))
    assert code == 0 and "proof holds" in out, err


def test_a_prefix_deleted_without_a_seal_is_still_caught(
    anchored: Settings, tmp_path: Path
) -> None:
    rt = open_runtime(anchored)
    try:
        for i in range(5):
            record_chat(rt, "erin", f"q{i}")
    finally:
        rt.close()
    db = create_database(anchored.resolved_database_url)
    with db.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_events WHERE seq <= 2"))
    db.dispose()
    code, _out, err = run_cli(anchored, "audit", "verify", "--anchors", str(tmp_path / "anchors"))
    assert code == 1 and "missing_rows" in err


def test_a_tampered_proof_is_rejected(anchored: Settings, tmp_path: Path) -> None:
    rt = open_runtime(anchored)
    try:
        for i in range(9):
            record_chat(rt, "frank", f"q{i}")
    finally:
        rt.close()
    db = create_database(anchored.resolved_database_url)
    try:
        with db.engine.connect() as conn:
            event_id = conn.execute(
                sa.text("SELECT id FROM audit_events WHERE seq = 4")
            ).scalar_one()
        proof = AuditService(db).prove(event_id)
    finally:
        db.dispose()
    trusted = {signer_for(anchored).key_id: signer_for(anchored).public}
    assert check_proof(proof, trusted) is None
    forged = json.loads(json.dumps(proof))
    forged["event"]["hash"] = "0" * 64
    assert "not in the ledger" in (check_proof(forged, trusted) or "")
    moved = json.loads(json.dumps(proof))
    moved["proof"] = list(reversed(moved["proof"]))
    assert check_proof(moved, trusted) is not None


@pytest.mark.anyio
async def test_the_server_sweeps_on_its_schedule_and_records_each_sweep(
    anchored: Settings,
) -> None:
    import asyncio

    from bastion.app import _sweep_retention

    rt = open_runtime(anchored)
    try:
        task = asyncio.create_task(_sweep_retention(rt, 0.05))
        for _ in range(200):
            await asyncio.sleep(0.05)
            page = rt.audit.page(EventFilter(action="retention.sweep", outcome="success"))
            if page.events:
                break
        task.cancel()
    finally:
        rt.close()
    assert page.events, "no sweep was recorded"
    assert page.events[0].actor == "system"
    assert page.events[0].details["content_days"] == 30  # the starter policy's


def test_the_cli_exports_erases_and_sweeps(anchored: Settings, tmp_path: Path) -> None:
    rt = open_runtime(anchored)
    try:
        record_chat(rt, "gus", "gus's question")
    finally:
        rt.close()
    out_file = tmp_path / "gus.json"
    code, out, err = run_cli(anchored, "subject", "export", "gus", "-o", str(out_file))
    assert code == 0, err
    bundle = json.loads(out_file.read_text())
    assert bundle["sections"]["stored_content"][0]["body"] == "gus's question"

    code, out, err = run_cli(anchored, "subject", "erase", "gus", "--reason", "ticket 9")
    assert code == 0, err
    assert "2 content rows" in out and "1 keys" in out and "pseudonymised" in out

    code, out, err = run_cli(anchored, "subject", "erase", "  ", "--reason", "ticket 9")
    assert code == 2 and "invalid_subject" in err

    code, out, err = run_cli(anchored, "retention", "sweep", "--dry-run", "--json")
    assert code == 0, err
    assert json.loads(out)["dry_run"] is True

    code, out, err = run_cli(anchored, "audit", "verify")
    assert code == 0, err
    assert "checked without anchors" in out
