"""Helpers for in-process dashboard tests: sign in over httpx as a browser would."""

from __future__ import annotations

import re

import httpx

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page carries no CSRF token"
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, key: str, next_: str = "/ui") -> httpx.Response:
    form = await client.get("/ui/login")
    assert form.status_code == 200
    response = await client.post(
        "/ui/login",
        data={"api_key": key, "next": next_, "csrf_token": csrf_of(form.text)},
    )
    return response


async def page_token(client: httpx.AsyncClient, path: str) -> str:
    """The CSRF token of a signed-in page (the sign-out form carries one on every page)."""
    response = await client.get(path)
    assert response.status_code == 200, response.text[:500]
    return csrf_of(response.text)
