"""The audit service: erasure records its intent before destroying anything."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from bastion.audit import AuditService, Digester, EventFilter, EventIn, LedgerWriter
from bastion.audit.signing import load_or_create_signer
from bastion.db import Database, create_database, upgrade
from bastion.policy import load_policy
from bastion.settings import Settings


@pytest.fixture
def opened(settings: Settings) -> Iterator[tuple[Database, LedgerWriter]]:
    db = create_database(settings.resolved_database_url)
    upgrade(db.engine)
    signer = load_or_create_signer(settings.home / "signing.pem")
    ledger = LedgerWriter(db, Digester(b"k" * 32), signer, label="test")
    ledger.start()
    yield db, ledger
    ledger.close()
    db.dispose()


def _store_content(ledger: LedgerWriter, subject: str) -> None:
    ledger.append(
        EventIn(
            "user:a",
            "llm.chat",
            "model:m",
            "success",
            content={"prompt": "hello"},
            store_content=True,
            subject=subject,
        )
    )


def _erasures(audit: AuditService) -> list[tuple[str, str, dict[str, object]]]:
    events = audit.page(EventFilter(action="audit.erase"), order="asc").events
    return [(e.outcome, e.resource, e.details) for e in events]


def test_erase_records_intent_then_outcome_and_never_the_subject(
    opened: tuple[Database, LedgerWriter],
) -> None:
    db, ledger = opened
    _store_content(ledger, "user:alice@example.com")
    audit = AuditService(db, ledger, ledger.digester)
    done = audit.erase_subject("user:alice@example.com", actor="user:dpo")
    assert done.content_rows == 1
    erasures = _erasures(audit)
    assert [o for o, _, _ in erasures] == ["started", "success"]
    assert erasures[1][2] == {"content_rows": 1}
    assert all("alice" not in r and r == done.resource for _, r, _ in erasures)
    with db.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM audit_content")).scalar() == 0


def test_a_failed_erase_is_recorded_as_a_failure_and_nothing_is_lost(
    opened: tuple[Database, LedgerWriter], monkeypatch: pytest.MonkeyPatch
) -> None:
    db, ledger = opened
    _store_content(ledger, "user:bob")
    audit = AuditService(db, ledger, ledger.digester)

    def broken(subject: str) -> int:
        raise sa.exc.OperationalError("DELETE", {}, Exception("database is locked: user:bob"))

    monkeypatch.setattr(audit.events, "erase_subject", broken)
    with pytest.raises(sa.exc.OperationalError):
        audit.erase_subject("user:bob", actor="user:dpo")
    erasures = _erasures(audit)
    assert [o for o, _, _ in erasures] == ["started", "failure"]
    assert erasures[1][2] == {"error": "OperationalError"}  # never the driver's text
    with db.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM audit_content")).scalar() == 1


def test_purge_records_the_retention_it_applied(opened: tuple[Database, LedgerWriter]) -> None:
    db, ledger = opened
    _store_content(ledger, "user:c")
    audit = AuditService(db, ledger, ledger.digester)
    assert audit.purge_content(30, actor="user:ops").content_rows == 0  # the content is new
    events = audit.page(EventFilter(action="audit.purge"), order="asc").events
    assert [(e.outcome, e.details) for e in events] == [
        ("started", {"content_days": 30}),
        ("success", {"content_days": 30, "content_rows": 0}),
    ]


def test_a_read_only_service_refuses_to_erase(opened: tuple[Database, LedgerWriter]) -> None:
    db, _ = opened
    audit = AuditService(db)
    assert audit.count() >= 0
    with pytest.raises(RuntimeError, match="read-only"):
        audit.erase_subject("user:x", actor="user:y")


@pytest.mark.parametrize(
    ("days", "warned"), [(30, True), (182, True), (183, False), (365, False), (None, False)]
)
def test_events_days_below_six_months_is_warned_about(tmp_path, days, warned) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "policy.yaml"
    extra = f", events_days: {days}" if days is not None else ""
    path.write_text(f"version: 1\nretention: {{content_days: 30{extra}}}\n")
    notices = load_policy(path).policy.notices()
    assert bool(notices) == warned
    assert all("Art. 19" in n for n in notices)
