"""Data-subject rights over HTTP: only roles holding ``subjects:manage``, with clear errors."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa

from bastion.audit import EventIn

pytestmark = pytest.mark.anyio


def _record(runtime, user: str, prompt: str) -> None:  # type: ignore[no-untyped-def]
    runtime.ledger.append(
        EventIn(
            f"user:{user}",
            "llm.chat",
            "model:m",
            "success",
            content={"prompt": prompt},
            store_content=True,
            subject=user,
        )
    )


async def test_an_officer_exports_and_erases_a_person(  # type: ignore[no-untyped-def]
    client: httpx.AsyncClient, runtime, admin_headers: dict[str, str]
) -> None:
    _record(runtime, "zoe", "zoe's question")
    got = await client.get("/api/subjects/zoe/export", headers=admin_headers)
    assert got.status_code == 200
    content = got.json()["sections"]["stored_content"]
    assert [c["body"] for c in content] == ["zoe's question"]

    erased = await client.post(
        "/api/subjects/zoe/erase",
        json={"reason": "ticket 7", "requested_by": "zoe"},
        headers=admin_headers,
    )
    assert erased.status_code == 200
    assert erased.json()["removed"]["ledger"]["content_rows"] == 1
    after = await client.get("/api/subjects/zoe/export", headers=admin_headers)
    assert after.json()["sections"]["stored_content"] == []
    assert after.json()["sections"]["ledger_events"] == []
    # The unreadable rows are deleted after the response, and that is recorded.
    with runtime.db.engine.connect() as conn:
        left = conn.execute(sa.text("SELECT COUNT(*) FROM audit_content")).scalar()
    cleanups = await client.get(
        "/api/audit/events", params={"action": "subject.cleanup"}, headers=admin_headers
    )
    assert left == 0
    [cleanup] = cleanups.json()["data"]
    assert cleanup["details"]["deleted"] == {"ledger": {"content_rows": 1}}


@pytest.mark.parametrize("role", ["analyst", "guest"])
async def test_other_roles_are_refused(  # type: ignore[no-untyped-def]
    client: httpx.AsyncClient, key_for, role: str
) -> None:
    headers = {"Authorization": f"Bearer {key_for(role)}"}
    got = await client.get("/api/subjects/zoe/export", headers=headers)
    assert got.status_code == 403
    erased = await client.post("/api/subjects/zoe/erase", json={"reason": "x"}, headers=headers)
    assert erased.status_code == 403


@pytest.mark.parametrize(
    "body", [{}, {"reason": ""}, {"reason": "x", "extra": 1}, {"reason": "x" * 501}]
)
async def test_a_bad_erase_request_is_a_clear_400_class_error(  # type: ignore[no-untyped-def]
    client: httpx.AsyncClient, admin_headers: dict[str, str], body: dict[str, object]
) -> None:
    erased = await client.post("/api/subjects/zoe/erase", json=body, headers=admin_headers)
    assert erased.status_code in (400, 422)
    assert "code" in erased.json()["error"]


async def test_a_proof_of_an_unknown_event_is_a_clear_error(  # type: ignore[no-untyped-def]
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    got = await client.get("/api/audit/proofs/999999", headers=admin_headers)
    assert got.status_code == 400 and got.json()["error"]["code"] == "proof_unavailable"
