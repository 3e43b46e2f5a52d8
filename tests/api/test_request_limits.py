"""What every route does with out-of-range numbers, unknown methods, NUL characters and a
client's ``X-Request-ID``; on SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from bastion.audit import EventFilter

pytestmark = pytest.mark.anyio

INT32_MAX = 2**31 - 1
VERSION_ROUTES = [
    ("GET", "/api/models/m/versions/{v}", None),
    ("GET", "/api/models/m/versions/{v}/lineage", None),
    ("GET", "/api/models/m/versions/{v}/gates", None),
    ("GET", "/api/models/m/versions/{v}/card", None),
    ("PUT", "/api/models/m/versions/{v}/card", {"fields": {"intended_use": "x"}}),
    ("POST", "/api/models/m/versions/{v}/evidence", {"kind": "fairness", "report": {}}),
    ("POST", "/api/models/m/versions/{v}/promotions", {"to": "staging", "reason": "r"}),
    ("POST", "/api/models/m/versions/{v}/archive", {"reason": "r"}),
]


@pytest.mark.parametrize(("method", "path", "body"), VERSION_ROUTES)
async def test_a_version_past_int32_is_a_422_naming_it(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    for version in (INT32_MAX + 1, 2**63, 10**30, 0, -1):
        response = await client.request(
            method, path.format(v=version), headers=admin_headers, json=body
        )
        assert response.status_code == 422, (version, response.text)
        error = response.json()["error"]
        assert error["code"] == "invalid_request" and error["param"] == "version"
        assert "version" in error["message"]
    # The largest valid version passes: the registry has no such model (or the evidence
    # document is refused first).
    response = await client.request(
        method, path.format(v=INT32_MAX), headers=admin_headers, json=body
    )
    assert response.status_code in (400, 404), response.text
    assert response.json()["error"]["param"] != "version"


async def test_the_openapi_document_says_what_versions_may_be(app: FastAPI) -> None:
    doc = app.openapi()
    operation = doc["paths"]["/api/models/{name}/versions/{version}"]["get"]
    [version] = [p for p in operation["parameters"] if p["name"] == "version"]
    assert version["schema"]["minimum"] == 1 and version["schema"]["maximum"] == INT32_MAX
    # Errors are documented in the one error shape, as JSON even where success is text.
    card = doc["paths"]["/api/models/{name}/versions/{version}/card"]["get"]["responses"]
    assert set(card) >= {"200", "400", "401", "403", "404", "422"}
    assert "application/json" in card["404"]["content"]
    assert "text/plain" not in card["404"]["content"]
    chat = doc["paths"]["/v1/chat/completions"]["post"]["responses"]
    assert set(chat) >= {"200", "400", "401", "403", "404", "413", "422", "429", "502", "503"}


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PATCH", "/v1/chat/completions", {"POST"}),
        ("GET", "/v1/embeddings", {"POST"}),
        ("TRACE", "/api/keys", {"GET", "POST"}),
        ("PUT", "/api/keys/some-id", {"GET", "DELETE"}),
        ("FROB", "/healthz", {"GET"}),
        ("DELETE", "/api/models/m/versions/1/card", {"GET", "PUT"}),
    ],
)
async def test_an_unknown_method_is_a_405_with_the_allowed_ones(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    method: str,
    path: str,
    allowed: set[str],
) -> None:
    response = await client.request(method, path, headers=admin_headers)
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert {m.strip() for m in response.headers["allow"].split(",")} - {"HEAD"} == allowed


async def test_every_path_answers_every_other_method_with_405(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    paths = app.openapi()["paths"]
    assert len(paths) >= 25
    for template, operations in paths.items():
        documented = {m.upper() for m in operations}
        path = template.replace("{version}", "1").replace("{", "").replace("}", "")
        for method in {"GET", "POST", "PUT", "PATCH", "DELETE", "TRACE", "PROPFIND"} - documented:
            response = await client.request(method, path, headers=admin_headers)
            assert response.status_code == 405, (method, template, response.text)
            allow = {m.strip() for m in response.headers["allow"].split(",")} - {"HEAD"}
            assert allow == documented, (method, template)


async def test_nul_in_a_path_or_query_is_a_400_on_every_database(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    for url in ("/api/keys/a%00b", "/api/audit/events?actor=x%00y", "/api/models/a%00"):
        response = await client.get(url, headers=admin_headers)
        assert response.status_code == 400, (url, response.text)
        assert response.json()["error"]["code"] == "invalid_request"


async def test_other_routes_read_json_as_strictly_as_the_gateway(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Any
) -> None:
    headers = {**admin_headers, "content-type": "application/json"}
    for body in (
        b'{"user": "\\ud800", "role": "guest"}',
        b'{"user": "a\\u0000b", "role": "guest"}',
        b'{"user": "u", "role": "guest", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    ):
        response = await client.post("/api/keys", content=body, headers=headers)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "invalid_json"
    assert [k.role for k in runtime.keys.list_keys()] == ["admin"]  # nothing was created


# --- X-Request-ID -------------------------------------------------------------------------

SSN = "536-22-8471"


def events_of(runtime: Any, request_id: str) -> list[Any]:
    page = runtime.events.page(EventFilter(), limit=1000)
    return [e for e in page.events if e.request_id == request_id]


def _digest(runtime: Any, value: str) -> str:
    from bastion.gateway.service import derive_key
    from bastion.runtime import secret_key

    key = derive_key(secret_key(runtime.settings), "bastion/request-id")
    return "hmac-sha256:" + hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:32]


@pytest.mark.parametrize(
    "given",
    [
        SSN,
        "jane.doe@example.com",
        "4111111111111111",
        "x" * 129,
        "a" * 32 + "z",
        "bad id with spaces",
        "semi;colon",
        "01234567890123456789012345678901",  # 32 digits: a number, not a token
    ],
)
async def test_an_unsafe_request_id_is_replaced_and_kept_only_as_a_digest(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    runtime: Any,
    caplog: pytest.LogCaptureFixture,
    given: str,
) -> None:
    with caplog.at_level(logging.INFO, logger="bastion.access"):
        response = await client.post(
            "/api/keys",
            json={"user": "someone", "role": "guest"},
            headers={**admin_headers, "X-Request-ID": given},
        )
    assert response.status_code == 201
    request_id = response.headers["x-request-id"]
    assert request_id != given and len(request_id) == 32
    [event] = events_of(runtime, request_id)
    assert event.details["client_request_id"] == _digest(runtime, given)
    assert given not in json.dumps(event.details)
    [access] = [r for r in caplog.records if r.name == "bastion.access"]
    assert access.client_request_id == _digest(runtime, given)  # type: ignore[attr-defined]
    logged = json.dumps({k: str(v) for k, v in vars(access).items()})
    assert given not in logged and SSN not in caplog.text


@pytest.mark.parametrize(
    "given",
    [
        "0b3f5c2e-8f3a-4c1e-9d2b-7a6e5f4d3c2b",  # a UUID
        "6F1E2D3C4B5A69788796A5B4C3D2E1F0",  # 32 hex digits (nginx, W3C trace ids)
        "01J8ZK3M4N5P6Q7R8S9T0VWXYZ",  # a ULID
    ],
)
async def test_an_opaque_request_id_is_kept(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Any, given: str
) -> None:
    response = await client.post(
        "/api/keys",
        json={"user": "someone", "role": "guest"},
        headers={**admin_headers, "X-Request-ID": given},
    )
    assert response.headers["x-request-id"] == given
    [event] = events_of(runtime, given)
    assert "client_request_id" not in event.details


async def test_a_gateway_call_with_an_ssn_request_id_keeps_no_ssn(
    client: httpx.AsyncClient, key_for: Any, runtime: Any
) -> None:
    response = await client.post(
        "/v1/chat/completions",
        json={"model": "local", "messages": [{"role": "user", "content": "hello"}]},
        headers={"Authorization": f"Bearer {key_for('admin')}", "X-Request-ID": SSN},
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] != SSN
    [event] = events_of(runtime, response.headers["x-request-id"])
    assert event.action == "llm.chat"
    assert event.details["client_request_id"] == _digest(runtime, SSN)
    assert SSN not in json.dumps(event.details)
