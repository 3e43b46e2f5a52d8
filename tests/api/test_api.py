"""Bastion's own API as a client sees it: keys, the ledger, errors, request ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.anyio


async def test_key_lifecycle_through_the_api(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    created = await client.post(
        "/api/keys",
        headers=admin_headers,
        json={"user": "ann", "role": "analyst", "team": "risk", "name": "laptop"},
    )
    assert created.status_code == 201
    body = created.json()
    secret = body["key"]
    assert secret.startswith(body["prefix"] + "_")
    ann = {"Authorization": f"Bearer {secret}"}
    who = await client.get("/api/whoami", headers=ann)
    assert who.json()["user"] == "ann" and who.json()["team"] == "risk"
    # X-API-Key works too
    assert (await client.get("/api/whoami", headers={"X-API-Key": secret})).status_code == 200
    listed = (await client.get("/api/keys", headers=admin_headers)).json()["data"]
    assert any(k["prefix"] == body["prefix"] and "key" not in k for k in listed)
    revoked = await client.delete(f"/api/keys/{body['id']}", headers=admin_headers)
    assert revoked.json()["status"] == "revoked"
    refused = await client.get("/api/whoami", headers=ann)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "api_key_revoked"
    events = (await client.get("/api/audit/events", headers=admin_headers)).json()["data"]
    assert [e["action"] for e in events[:2]] == ["key.revoke", "key.create"]
    # each event names the request that caused it
    assert events[0]["request_id"] == revoked.headers["x-request-id"]
    assert events[1]["request_id"] == created.headers["x-request-id"]


async def test_keys_are_stored_only_as_digests(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Any
) -> None:
    import sqlalchemy as sa

    secret = (
        await client.post("/api/keys", headers=admin_headers, json={"user": "u", "role": "guest"})
    ).json()["key"]
    with runtime.db.engine.connect() as conn:
        dump = " ".join(
            str(v)
            for table in ("api_keys", "audit_events")
            for row in conn.execute(sa.text(f"SELECT * FROM {table}"))
            for v in row
        )
    assert secret not in dump
    assert secret.split("_")[2] not in dump


async def test_expired_key_is_refused(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Any
) -> None:
    soon = datetime.now(UTC) + timedelta(hours=1)  # moved into the past below
    body = (
        await client.post(
            "/api/keys",
            headers=admin_headers,
            json={"user": "t", "role": "guest", "expires_at": soon.isoformat()},
        )
    ).json()
    import sqlalchemy as sa

    with runtime.db.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE api_keys SET expires_at = :t WHERE id = :id"),
            {"t": datetime.now(UTC) - timedelta(seconds=1), "id": body["id"]},
        )
    runtime.keys._cache.clear()
    response = await client.get("/api/whoami", headers={"Authorization": f"Bearer {body['key']}"})
    assert response.status_code == 401 and response.json()["error"]["code"] == "api_key_expired"


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_api_key"),
        ({"Authorization": "Bearer nonsense"}, "invalid_api_key"),
        ({"Authorization": "Bearer bst_AAAAAAAA_" + "B" * 32}, "invalid_api_key"),
        ({"X-API-Key": ""}, "missing_api_key"),
    ],
)
async def test_bad_credentials_get_a_stable_code(
    client: httpx.AsyncClient, headers: dict[str, str], code: str
) -> None:
    response = await client.get("/api/whoami", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == code
    assert response.headers["www-authenticate"] == "Bearer"


async def test_a_right_prefix_with_a_wrong_secret_is_refused(
    client: httpx.AsyncClient, key_for: Any
) -> None:
    secret = key_for("guest")
    forged = secret[:-4] + ("AAAA" if not secret.endswith("AAAA") else "BBBB")
    response = await client.get("/api/whoami", headers={"Authorization": f"Bearer {forged}"})
    assert response.json()["error"]["code"] == "invalid_api_key"


async def test_unknown_role_is_refused_with_the_known_ones(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await client.post(
        "/api/keys", headers=admin_headers, json={"user": "x", "role": "wizard"}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "unknown_role" and "analyst" in error["message"]


async def test_errors_share_one_shape_with_the_request_id(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    cases = [
        await client.post(
            "/api/keys",
            headers={**admin_headers, "content-type": "application/json"},
            content=b"{not json",
        ),
        await client.post("/api/keys", headers=admin_headers, json={"user": 5, "role": ["admin"]}),
        await client.post("/api/keys", headers=admin_headers, json={"role": "guest"}),
        await client.get("/no/such/route"),
        await client.delete("/healthz"),
        await client.get("/api/audit/events", headers=admin_headers, params={"limit": "many"}),
    ]
    codes = [r.json()["error"]["code"] for r in cases]
    assert codes == [
        "invalid_json",
        "invalid_request",
        "invalid_request",
        "not_found",
        "method_not_allowed",
        "invalid_request",
    ]
    for response in cases:
        error = response.json()["error"]
        assert set(error) == {"message", "type", "code", "param", "request_id"}
        assert error["request_id"] == response.headers["x-request-id"]
        assert error["message"]
    assert cases[2].json()["error"]["param"] == "user"


async def test_request_id_is_taken_from_the_client_or_made(client: httpx.AsyncClient) -> None:
    uuid = "0b3f5c2e-8f3a-4c1e-9d2b-7a6e5f4d3c2b"
    given = await client.get("/healthz", headers={"X-Request-ID": uuid})
    assert given.headers["x-request-id"] == uuid
    made = await client.get("/healthz")
    assert len(made.headers["x-request-id"]) == 32
    unsafe = await client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert unsafe.headers["x-request-id"] != "bad id\twith spaces"


BIG_ID = "6f1e2d3c4b5a69788796a5b4c3d2e1f0"  # 32 hex digits: kept as the request id


async def test_huge_bodies_are_refused(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Any
) -> None:
    big = b'{"user": "' + b"x" * (runtime.settings.max_body_bytes + 10) + b'", "role": "guest"}'
    response = await client.post(
        "/api/keys", headers={**admin_headers, "content-type": "application/json"}, content=big
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert response.json()["error"]["request_id"] == response.headers["x-request-id"]

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(20):
            yield b"x" * (runtime.settings.max_body_bytes // 10)

    streamed = await client.post(
        "/api/keys",
        headers={**admin_headers, "content-type": "application/json", "X-Request-ID": BIG_ID},
        content=chunks(),
    )
    assert streamed.status_code == 413
    assert streamed.headers["x-request-id"] == BIG_ID
    assert streamed.json()["error"]["request_id"] == BIG_ID
    metrics = (await client.get("/metrics")).text
    # refused by Content-Length before routing, and by counting the stream after it
    assert (
        'bastion_http_requests_total{method="POST",route="unmatched",status="4xx"} 1.0' in metrics
    )
    assert (
        'bastion_http_requests_total{method="POST",route="/api/keys",status="4xx"} 1.0' in metrics
    )
    # nothing was created by the refused requests
    listed = (await client.get("/api/keys", headers=admin_headers)).json()["data"]
    assert [k["role"] for k in listed] == ["admin"]


async def test_audit_events_filter_and_paginate(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Any
) -> None:
    from bastion.audit import EventIn

    for i in range(25):
        runtime.ledger.append(
            EventIn(
                actor=f"user:{'a' if i % 2 else 'b'}",
                action="demo.act",
                resource=f"r:{i}",
                outcome="success" if i % 5 else "failure",
            )
        )
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"action": "demo.act", "limit": 4}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/api/audit/events", headers=admin_headers, params=params)).json()
        seen.extend(e["id"] for e in page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 25 and seen == sorted(seen, reverse=True) and len(set(seen)) == 25
    failures = (
        await client.get(
            "/api/audit/events",
            headers=admin_headers,
            params={"action": "demo.act", "outcome": "failure"},
        )
    ).json()["data"]
    assert len(failures) == 5 and all(e["outcome"] == "failure" for e in failures)
    by_actor = (
        await client.get(
            "/api/audit/events",
            headers=admin_headers,
            params={"actor": "user:a", "action": "demo.act"},
        )
    ).json()["data"]
    assert len(by_actor) == 12
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert (
        await client.get("/api/audit/events", headers=admin_headers, params={"since": future})
    ).json()["data"] == []
    asc = (
        await client.get(
            "/api/audit/events",
            headers=admin_headers,
            params={"action": "demo.act", "order": "asc", "limit": 3},
        )
    ).json()
    assert [e["id"] for e in asc["data"]] == sorted(seen)[:3]
    bad = await client.get(
        "/api/audit/events", headers=admin_headers, params={"cursor": "garbage!!"}
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_cursor"


async def test_readyz_reports_each_check(client: httpx.AsyncClient, runtime: Any) -> None:
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {
        "database": "ok",
        "schema": "ok",
        "policy": "ok",
        "ledger": "ok",
        "counters": "ok",
    }
    runtime.ledger.close()
    not_ready = await client.get("/readyz")
    assert not_ready.status_code == 503
    assert not_ready.json()["checks"]["ledger"].startswith("failing")


async def test_policy_api_shows_checks_and_reloads(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Any
) -> None:
    shown = (await client.get("/api/policy", headers=admin_headers)).json()
    assert shown["digest"] == runtime.policy.current.digest
    assert "gpt-4.1-mini" in shown["policy"]["models"]
    check = (
        await client.post(
            "/api/policy/check",
            headers=admin_headers,
            json={"text": "version: 1\nmodels: {a: {provider: nope}}\n"},
        )
    ).json()
    assert check["valid"] is False and check["issues"][0]["line"] == 2
    assert (await client.post("/api/policy/reload", headers=admin_headers)).json()[
        "changed"
    ] is False
    runtime.policy.path.write_text("version: 2\n")
    failed = await client.post("/api/policy/reload", headers=admin_headers)
    assert failed.status_code == 400 and failed.json()["error"]["code"] == "invalid_policy"
    assert runtime.policy.current.digest == shown["digest"]


async def test_metrics_are_prometheus_text_without_identities(
    client: httpx.AsyncClient, key_for: Any
) -> None:
    secret = key_for("guest", user="person-with-a-name")
    await client.get("/api/whoami", headers={"Authorization": f"Bearer {secret}"})
    await client.get("/api/keys", headers={"Authorization": f"Bearer {secret}"})
    text = (await client.get("/metrics")).text
    assert 'bastion_http_requests_total{method="GET",route="/api/whoami",status="2xx"} 1.0' in text
    assert 'bastion_auth_failures_total{code="permission_denied"} 1.0' in text
    assert "person-with-a-name" not in text and secret[:12] not in text


async def test_an_unhandled_error_is_a_500_with_the_request_id(
    app: Any, client: httpx.AsyncClient
) -> None:
    from fastapi import Depends

    from bastion.api.deps import requires
    from bastion.auth.permissions import Permission

    public = Depends(requires(Permission.PUBLIC))

    def boom(_: Any = public) -> None:
        raise RuntimeError("secret detail that must not reach the client")

    app.add_api_route("/boom", boom)
    trace = "01J8ZK3M4N5P6Q7R8S9T0VWXYZ"  # a ULID: kept as the request id
    response = await client.get("/boom", headers={"X-Request-ID": trace})
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "internal_error" and error["request_id"] == trace
    assert response.headers["x-request-id"] == trace
    assert "secret detail" not in response.text


async def test_keys_manage_alone_cannot_mint_more_powerful_keys(
    client: httpx.AsyncClient, runtime: Any, key_for: Any
) -> None:
    path = runtime.policy.path
    path.write_text(
        path.read_text().replace(
            "roles:\n", "roles:\n  keymaster: {permissions: [keys:manage]}\n", 1
        )
    )
    assert runtime.reload_policy("test", "test").error is None
    headers = {"Authorization": f"Bearer {key_for('keymaster')}"}
    escalate = await client.post("/api/keys", headers=headers, json={"user": "me", "role": "admin"})
    assert escalate.status_code == 403
    assert "audit:read" in escalate.json()["error"]["message"]
    same = await client.post(
        "/api/keys", headers=headers, json={"user": "colleague", "role": "keymaster"}
    )
    assert same.status_code == 201


async def test_a_time_without_zone_is_utc_and_bad_cursors_are_400(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    naive = (datetime.now(UTC) + timedelta(days=1)).replace(tzinfo=None).isoformat()
    created = await client.post(
        "/api/keys", headers=admin_headers, json={"user": "n", "role": "guest", "expires_at": naive}
    )
    assert created.status_code == 201
    assert created.json()["expires_at"].startswith(naive[:16])
    import base64

    huge = base64.urlsafe_b64encode(b"desc:99999999999999999999999:1").decode()
    response = await client.get("/api/audit/events", headers=admin_headers, params={"cursor": huge})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_cursor"


async def test_policy_readers_do_not_see_provider_secrets(
    client: httpx.AsyncClient, runtime: Any, key_for: Any
) -> None:
    path = runtime.policy.path
    text = path.read_text().replace(
        '    base_url: "https://api.openai.com/v1"\n',
        '    base_url: "https://user:pw@gateway.example.com/v1"\n    headers: {X-Api-Key: sk-very-secret}\n',
    )
    path.write_text(text)
    assert runtime.reload_policy("test", "test").error is None
    shown = (
        await client.get("/api/policy", headers={"Authorization": f"Bearer {key_for('analyst')}"})
    ).text
    assert "sk-very-secret" not in shown and "pw@" not in shown
    assert "gateway.example.com" in shown and "X-Api-Key" in shown


async def test_metric_labels_stay_bounded_whatever_the_method(client: httpx.AsyncClient) -> None:
    for i in range(5):
        await client.request(f"X{i}", "/healthz")
    text = (await client.get("/metrics")).text
    assert 'method="OTHER"' in text and 'method="X1"' not in text


async def test_metrics_can_require_a_key(migrated: Any, key_for: Any) -> None:
    from bastion.app import create_app
    from bastion.runtime import open_runtime

    settings = migrated.model_copy(update={"metrics_public": False})
    rt = open_runtime(settings)
    closed = create_app(settings, runtime=rt)
    transport = httpx.ASGITransport(app=closed)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        assert (await c.get("/metrics")).status_code == 401
        assert (
            await c.get("/metrics", headers={"Authorization": f"Bearer {key_for('guest')}"})
        ).status_code == 403
        assert (
            await c.get("/metrics", headers={"Authorization": f"Bearer {key_for('analyst')}"})
        ).status_code == 200
    rt.close()


def test_first_admin_key_only_when_there_is_no_key_at_all(runtime: Any) -> None:
    from bastion.auth.principal import SYSTEM

    first = runtime.keys.ensure_admin()
    assert first is not None
    runtime.keys.revoke(SYSTEM, first.key.id)
    assert runtime.keys.ensure_admin() is None
