"""The source of each gateway call: recorded as a keyed digest of its network, never the
address, and a key used from a new network raises an access anomaly (SQLite and
PostgreSQL)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from bastion.evidence.config import AccessChecks
from bastion.evidence.sources import SourceDigester
from bastion.evidence.traffic import check_access

from .policy import write_policy

pytestmark = pytest.mark.anyio


@pytest.fixture
def settings(home: Path, database_url: str, upstream):  # type: ignore[no-untyped-def]
    from bastion.settings import Settings

    write_policy(home / "policy.yaml", upstream.base_url)
    return Settings(home=home, database_url=database_url)


async def chat_from(app: Any, host: str, key: str) -> None:
    transport = httpx.ASGITransport(app=app, client=(host, 40_000))
    async with httpx.AsyncClient(transport=transport, base_url="http://bastion.test") as http:
        r = await http.post(
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={"model": "ok", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert r.status_code == 200, r.text


def call_rows(runtime: Any) -> list[Any]:
    with runtime.db.engine.connect() as conn:
        return list(
            conn.execute(
                sa.text("SELECT * FROM audit_events WHERE action = 'llm.chat' ORDER BY id")
            )
        )


async def test_a_call_records_its_network_digest_not_its_address(app, runtime, key_for) -> None:  # type: ignore[no-untyped-def]
    key = key_for("admin")
    await chat_from(app, "203.0.113.7", key)
    await chat_from(app, "203.0.113.200", key)  # same /24
    await chat_from(app, "198.51.100.9", key)  # another network
    await app.state.gateway.aclose()
    rows = call_rows(runtime)
    found = [json.loads(r.details)["source"] for r in rows]
    assert found[0] == found[1] != found[2]
    assert all(s.startswith("src:") for s in found)
    # nothing of the addresses themselves anywhere in the rows
    for row in rows:
        text = " ".join(str(v) for v in row)
        assert "203.0.113" not in text and "198.51.100" not in text


def test_the_policy_sets_the_prefix_or_turns_recording_off() -> None:
    digester = SourceDigester(lambda v: f"{hash(v) & 0xFFFFFFFF:08x}" * 4)
    net = AccessChecks()
    assert digester.digest("10.1.2.3", net) == digester.digest("10.1.2.99", net)
    whole = AccessChecks(source_prefix_v4=32, source_prefix_v6=128)
    assert digester.digest("10.1.2.3", whole) != digester.digest("10.1.2.99", whole)
    assert digester.digest("2001:db8:1:2::1", net) == digester.digest("2001:db8:1:ffff::9", net)
    assert digester.digest("2001:db8:1:2::1", net) != digester.digest("2001:db8:2::1", net)
    # an IPv4 client seen through an IPv6 socket is the same source
    assert digester.digest("::ffff:10.1.2.3", net) == digester.digest("10.1.2.3", net)
    assert digester.digest("10.1.2.3", AccessChecks(record_source=False)) is None
    assert digester.digest("testclient", net) is None


def test_a_key_used_from_a_new_network_is_an_anomaly(runtime) -> None:  # type: ignore[no-untyped-def]
    from bastion.audit import EventIn

    def call(key: str, source: str | None) -> None:
        details = {"key": key, "requested_model": "local"}
        if source:
            details["source"] = source
        runtime.ledger.append(EventIn("user:ann", "llm.chat", "model:local", "success", details))

    for _ in range(5):
        call("bk_office", "src:aaaa")
        call("bk_legacy", None)  # used before sources were recorded
    with runtime.db.engine.begin() as conn:  # the baseline: two days ago
        conn.execute(
            sa.text(
                "UPDATE audit_events SET ts_us = ts_us - 172800000000 WHERE action = 'llm.chat'"
            )
        )
    call("bk_office", "src:aaaa")
    call("bk_office", "src:bbbb")
    call("bk_office", "src:bbbb")
    call("bk_legacy", "src:cccc")
    now = datetime.now(UTC) + timedelta(minutes=1)
    found = check_access(runtime.db, runtime.ledger, AccessChecks(min_calls=1000), now=now)
    assert [(a.key, a.kind) for a in found] == [("bk_office", "new_source")]
    assert found[0].evidence == {
        "sources": ["src:bbbb"],
        "calls": {"src:bbbb": 2},
        "known_sources": 1,
    }
    assert found[0].finding().kind == "new_source"
    off = check_access(runtime.db, None, AccessChecks(min_calls=1000, new_source=False), now=now)
    assert off == []
