"""Uploads over HTTP: multipart forms (what ``curl -F``, browsers and ``httpx``/``requests``
``files=`` send) beside the raw body named by ``?filename=``; a broken form is a coded
400, never a server error, and nothing half-read is indexed."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.anyio

URL = "/api/collections/public/documents"
CANTEEN = b"# Canteen\n\nThe canteen opens at noon and serves soup on Fridays.\n"
ROOF = b"The roof terrace opens in May when the weather allows it.\n"


async def _names(client: httpx.AsyncClient, headers: dict[str, str]) -> list[str]:
    listed = await client.get(URL, headers=headers)
    assert listed.status_code == 200, listed.text
    return sorted(d["name"] for d in listed.json())


async def test_a_multipart_form_adds_each_file_under_its_own_name(
    docs_client: httpx.AsyncClient, docs_key: Any
) -> None:
    admin = docs_key("admin")
    up = await docs_client.post(
        URL,
        files=[("file", ("canteen.md", CANTEEN)), ("file", ("roof.txt", ROOF))],
        data={"note": "a plain field is not a file"},
        headers=admin,
    )
    assert up.status_code == 200, up.text
    body = up.json()
    assert body["added"] == 2 and {d["name"] for d in body["documents"]} == {
        "canteen.md",
        "roof.txt",
    }
    assert await _names(docs_client, admin) == ["canteen.md", "roof.txt"]
    # the same files again: unchanged, by digest, whichever way they come
    raw = await docs_client.post(
        URL, params={"filename": "canteen.md"}, content=CANTEEN, headers=admin
    )
    assert raw.status_code == 200 and raw.json()["unchanged"] == 1
    hits = await docs_client.post("/api/search", json={"query": "roof terrace"}, headers=admin)
    assert hits.json()[0]["document"] == "roof.txt"


async def test_a_client_path_in_a_part_keeps_only_the_file_name(
    docs_client: httpx.AsyncClient, docs_key: Any
) -> None:
    admin = docs_key("admin")
    up = await docs_client.post(
        URL, files={"file": ("C:\\Users\\me\\Desktop\\canteen.md", CANTEEN)}, headers=admin
    )
    assert up.status_code == 200, up.text
    assert await _names(docs_client, admin) == ["canteen.md"]
    nested = await docs_client.post(
        URL, files={"file": ("../../etc/roof.txt", ROOF)}, headers=admin
    )
    assert nested.status_code == 200, nested.text
    assert await _names(docs_client, admin) == ["canteen.md", "roof.txt"]


async def test_a_file_part_without_a_name_is_refused_by_name(
    docs_client: httpx.AsyncClient, docs_key: Any
) -> None:
    admin = docs_key("admin")
    # curl -F file=<canteen.md sends the content with no file name
    up = await docs_client.post(URL, files={"file": (None, CANTEEN)}, headers=admin)
    assert up.status_code == 400, up.text
    assert up.json()["error"]["param"] == "file"
    assert await _names(docs_client, admin) == []


@pytest.mark.parametrize(
    ("request_kwargs", "status", "code", "param"),
    [
        # a form with fields but no file
        ({"data": {"title": "x"}, "files": {"x": ("", b"")}}, 400, "invalid_request", None),
        # the raw body with no name
        ({"content": CANTEEN}, 400, "invalid_request", "filename"),
        # a part whose name picks no parser
        ({"files": {"file": ("tool.exe", b"MZ")}}, 415, "unsupported_format", None),
        # an empty file
        ({"files": {"file": ("empty.md", b"")}}, 422, "empty_document", None),
    ],
)
async def test_uploads_that_cannot_be_indexed_get_coded_errors(
    docs_client: httpx.AsyncClient,
    docs_key: Any,
    request_kwargs: dict[str, Any],
    status: int,
    code: str,
    param: str | None,
) -> None:
    admin = docs_key("admin")
    response = await docs_client.post(URL, headers=admin, **request_kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    if param is not None:
        assert error["param"] == param
    assert await _names(docs_client, admin) == []


def _form(parts: list[tuple[str, bytes]], boundary: str) -> bytes:
    out = b""
    for name, data in parts:
        out += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        out += data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


async def test_a_form_cut_short_is_refused_and_nothing_is_indexed(
    docs_client: httpx.AsyncClient, docs_key: Any
) -> None:
    admin = docs_key("admin")
    whole = _form([("canteen.md", CANTEEN), ("roof.txt", ROOF)], "b0undary")
    for cut in (len(whole) // 3, len(whole) - 12):
        response = await docs_client.post(
            URL,
            content=whole[:cut],
            headers=admin | {"Content-Type": "multipart/form-data; boundary=b0undary"},
        )
        assert response.status_code == 400, (cut, response.text)
        assert response.json()["error"]["code"] == "invalid_request"
    no_boundary = await docs_client.post(
        URL, content=whole, headers=admin | {"Content-Type": "multipart/form-data"}
    )
    assert no_boundary.status_code == 400, no_boundary.text
    assert await _names(docs_client, admin) == []


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    body=st.binary(max_size=400)
    | st.builds(
        lambda parts, cut: _form(parts, "zz")[:cut],
        st.lists(
            st.tuples(
                st.text(st.characters(codec="utf-8", exclude_characters='"\r\n'), max_size=20),
                st.binary(max_size=60),
            ),
            max_size=3,
        ),
        st.integers(0, 400),
    ),
    boundary=st.sampled_from(["zz", "", "other", "z" * 80]),
)
async def test_any_multipart_body_gets_an_answer_never_a_server_error(
    docs_client: httpx.AsyncClient, docs_key: Any, body: bytes, boundary: str
) -> None:
    kind = "multipart/form-data" + (f"; boundary={boundary}" if boundary else "")
    response = await docs_client.post(
        URL, content=body, headers=docs_key("admin") | {"Content-Type": kind}
    )
    assert response.status_code < 500, response.text
    assert response.status_code in (200, 400, 413, 415, 422), response.text
    if response.status_code != 200:
        assert response.json()["error"]["code"]
