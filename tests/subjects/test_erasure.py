"""Erasure end to end, on SQLite and PostgreSQL: after ``erase`` the person's content is
unreadable, no row of ``audit_events`` holds their identifier, the export finds
nothing, the chain verifies against its anchors, and the erasure is recorded; rows
written before identities were held apart (holding the name itself) are erased too.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from bastion.audit import EventFilter, EventIn
from bastion.db import create_database
from bastion.evidence.mapping import Selector
from bastion.evidence.scan import scan_period
from bastion.runtime import Runtime, chain_key, open_runtime
from bastion.settings import Settings
from bastion.testing.audit import anchored_settings, record_chat, run_cli


@pytest.fixture
def anchored(settings: Settings, tmp_path: Path) -> Settings:
    return anchored_settings(settings, tmp_path / "anchors")


def grant(rt: Runtime, admin: str, user: str) -> None:
    """An event naming the person as its resource."""
    rt.ledger.append(EventIn(f"user:{admin}", "key.create", f"user:{user}", "success", {}))


def rows_naming(rt: Runtime, name: str) -> list[str]:
    """Every audit_events row, whole, that holds ``name`` anywhere."""
    with rt.db.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM audit_events")).all()
    return [repr(tuple(r)) for r in rows if name in repr(tuple(r))]


def readable_content(rt: Runtime, user: str) -> list[str]:
    vault = rt.subjects().vault
    digest = vault.subject_digest(user)
    key = vault.key_for(digest, create=False)
    with rt.db.engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT stream, seq, field, subject, body FROM audit_content")
        ).all()
    bodies = []
    for stream, seq, field, subject, body in rows:
        if subject in {digest, user}:
            opened = vault.open_body(key, stream, seq, field, body)
            if opened is not None:
                bodies.append(opened)
    return bodies


def write_as_before(rt: Runtime, name: str) -> int:
    """Turn the person's rows into rows as written before identities were held apart
    (the identifier itself in the row; the chain covers its digest either way)."""
    erased = chain_key(rt.settings).erased(f"user:{name}")
    with rt.db.engine.begin() as conn:
        n = conn.execute(
            sa.text("UPDATE audit_events SET actor = :raw WHERE actor = :erased"),
            {"raw": f"user:{name}", "erased": erased},
        ).rowcount
    return int(n)


def verify(settings: Settings) -> tuple[int, str, str]:
    return run_cli(settings, "audit", "verify", "--anchors", str(settings.audit_anchor_dir))


def test_identifiers_are_stored_as_digests_and_shown_by_name(anchored: Settings) -> None:
    rt = open_runtime(anchored)
    try:
        record_chat(rt, "alice.liddell", "a question")
        grant(rt, "dora.admin", "alice.liddell")
        raw = rows_naming(rt, "alice.liddell")
        by_actor = rt.audit.page(EventFilter(actor="user:alice.liddell")).events
        by_resource = rt.audit.page(EventFilter(resource="user:alice.liddell")).events
    finally:
        rt.close()
    assert raw == []  # privacy by design: the table never held the name
    assert [e.action for e in by_actor] == ["llm.chat"]
    assert [(e.actor, e.resource) for e in by_resource] == [
        ("user:dora.admin", "user:alice.liddell")
    ]


def test_erasure_leaves_nothing_that_names_or_reads_the_person(anchored: Settings) -> None:
    rt = open_runtime(anchored)
    try:
        for i in range(3):
            record_chat(rt, "alice.liddell", f"alice's question {i}")
        record_chat(rt, "bob.marley", "bob's question")
        grant(rt, "dora.admin", "alice.liddell")
        # One of her rows as written before this release: the name itself in the row.
        assert write_as_before(rt, "alice.liddell") == 3
        done = rt.subjects().erase(
            "alice.liddell", reason="ticket 42", requested_by="alice.liddell", actor="user:dpo"
        )
        unreadable_before_cleanup = readable_content(rt, "alice.liddell")
        cleaned = rt.subjects().clean_up(done, actor="user:dpo")
        after = rt.subjects().export("alice.liddell", actor="user:dpo")
        bob = rt.subjects().export("bob.marley", actor="user:dpo")
        left = rows_naming(rt, "alice.liddell")
        with rt.db.engine.connect() as conn:
            content_left = conn.execute(sa.text("SELECT COUNT(*) FROM audit_content")).scalar()
        record = rt.audit.page(EventFilter(resource=done.subject), order="asc").events
    finally:
        rt.close()
    ledger = done.removed["ledger"]
    assert ledger["content_rows"] == 6 and ledger["content_keys"] == 1
    assert ledger["events_rewritten"] == 3  # the rows written as before
    assert ledger["events_pseudonymised"] == 4 and ledger["legacy_events_kept"] == 0
    assert unreadable_before_cleanup == []  # unreadable from the erasure on
    assert cleaned == {"ledger": {"content_rows": 6}}
    assert content_left == 2  # bob's
    assert left == []
    assert after["sections"]["ledger_events"] == []
    assert after["sections"]["stored_content"] == []
    bodies = [c["body"] for c in bob["sections"]["stored_content"]]
    assert bodies == ["bob's question", "answer to bob's question"]
    assert [(e.action, e.outcome) for e in record if e.action != "subject.export"] == [
        ("subject.erase", "started"),
        ("subject.erase", "success"),
        ("subject.cleanup", "success"),
    ]
    assert record[1].details["requested_by"] == "the data subject"
    assert record[1].details["removed"]["ledger"]["content_rows"] == 6
    code, out, err = verify(anchored)
    assert code == 0, out + err
    assert "ledger verified" in out


def test_a_person_who_comes_back_is_not_linked_to_their_erased_events(
    anchored: Settings,
) -> None:
    rt = open_runtime(anchored)
    try:
        record_chat(rt, "carol.king", "before")
        done = rt.subjects().erase("carol.king", reason="t", requested_by="dpo", actor="user:dpo")
        record_chat(rt, "carol.king", "after")  # before the cleanup runs
        rt.subjects().clean_up(done, actor="user:dpo")
        mine = rt.audit.page(EventFilter(actor="user:carol.king")).events
        bundle = rt.subjects().export("carol.king", actor="user:dpo")
        everyone = rt.audit.page(EventFilter(action="llm.chat"), order="asc").events
        # a report's listing of who acted counts only her new event under her name
        calls = Selector(name="calls", actions=["llm.*"], list_actors=True)
        now = datetime.now(UTC)
        found = scan_period(rt.db, [calls], now - timedelta(days=1), now + timedelta(days=1))
        (tally,) = found.tallies
        listed = dict(tally.actors)
    finally:
        rt.close()
    assert listed == {"user:carol.king": 1, everyone[0].actor: 1}
    assert len(mine) == 1
    assert [c["body"] for c in bundle["sections"]["stored_content"]] == ["after", "answer to after"]
    assert len(bundle["sections"]["ledger_events"]) == 1
    assert everyone[0].actor.startswith("erased:") and everyone[1].actor == "user:carol.king"
    code, out, err = verify(anchored)
    assert code == 0, out + err


@hsettings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    plan=st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 3), st.booleans(), st.booleans()),
        min_size=1,
        max_size=12,
    ),
    erased=st.sets(st.integers(0, 3), min_size=1),
    legacy=st.booleans(),
)
def test_erasing_any_subjects_of_any_ledger(
    anchored: Settings, plan: list[tuple[int, int, bool, bool]], erased: set[int], legacy: bool
) -> None:
    # Names unique to the example: examples share the database.
    tag = uuid.uuid4().hex[:8]
    names = [f"p{i}x{tag}" for i in range(4)]
    rt = open_runtime(anchored)
    try:
        for actor, resource, stored, as_resource in plan:
            if as_resource:
                grant(rt, names[actor], names[resource])
            elif stored:
                record_chat(rt, names[actor], f"q{tag}")
            else:
                rt.ledger.append(EventIn(f"user:{names[actor]}", "llm.chat", "model:m", "success"))
        if legacy:
            for i in erased:
                write_as_before(rt, names[i])
        expected = {n: rt.subjects().export(n, actor="system") for n in names}
        for i in sorted(erased):
            done = rt.subjects().erase(names[i], reason="t", requested_by="dpo", actor="system")
            rt.subjects().clean_up(done, actor="system")
        kept = {n: rt.subjects().export(n, actor="system") for n in names}
    finally:
        rt.close()
    key = chain_key(anchored)
    gone = {f"user:{names[j]}": key.erased(f"user:{names[j]}") for j in erased}
    for i, name in enumerate(names):
        if i in erased:
            assert rows_naming_in(anchored, name) == []
            assert kept[name]["sections"]["ledger_events"] == []
            assert kept[name]["sections"]["stored_content"] == []
        else:
            # Everyone else's events and content are as before, by name; an erased
            # person in them shows as their digest.
            before, now = expected[name]["sections"], kept[name]["sections"]
            assert now["ledger_events"] == [
                e
                | {"actor": gone.get(e["actor"], e["actor"])}
                | {"resource": gone.get(e["resource"], e["resource"])}
                for e in before["ledger_events"]
            ]
            assert now["stored_content"] == before["stored_content"]
    code, out, err = verify(anchored)
    assert code == 0, out + err


def rows_naming_in(settings: Settings, name: str) -> list[str]:
    db = create_database(settings.resolved_database_url)
    try:
        with db.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT * FROM audit_events")).all()
    finally:
        db.dispose()
    return [repr(tuple(r)) for r in rows if name in repr(tuple(r))]


def test_a_cleanup_that_never_ran_is_done_by_the_retention_sweep(anchored: Settings) -> None:
    rt = open_runtime(anchored)
    try:
        record_chat(rt, "erin.brock", "erin's question")
        record_chat(rt, "finn.young", "finn's question")
        rt.subjects().erase("erin.brock", reason="t", requested_by="dpo", actor="user:dpo")
        # The process stops before its cleanup: erin's sealed rows stay, unreadable.
        dry = rt.retention().sweep(
            content_days=None, events_days=None, actor="system", dry_run=True
        )
        swept = rt.retention().sweep(content_days=None, events_days=None, actor="system")
        again = rt.retention().sweep(content_days=None, events_days=None, actor="system")
        finn = rt.subjects().export("finn.young", actor="system")
        with rt.db.engine.connect() as conn:
            left = conn.execute(sa.text("SELECT COUNT(*) FROM audit_content")).scalar()
    finally:
        rt.close()
    assert (dry.unreadable_rows, swept.unreadable_rows, again.unreadable_rows) == (2, 2, 0)
    assert left == 2
    assert [c["body"] for c in finn["sections"]["stored_content"]] == [
        "finn's question",
        "answer to finn's question",
    ]
