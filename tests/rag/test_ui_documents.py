"""The dashboard's Documents page in-process (SQLite and PostgreSQL): collections by
what the viewer may read, a collection's documents, a search, and a question answered
with citations and the grounding check, through the services the API uses."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from bastion.testing.ui import page_token, sign_in

pytestmark = pytest.mark.anyio


def bearer(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


async def test_collections_are_those_the_viewer_may_read(
    rag_client: httpx.AsyncClient, rag_key: Any
) -> None:
    await sign_in(rag_client, bearer(rag_key("admin")))
    admin = await rag_client.get("/ui/documents")
    assert admin.status_code == 200
    assert "?collection=regulations" in admin.text and "?collection=secret" in admin.text
    rag_client.cookies.clear()
    await sign_in(rag_client, bearer(rag_key("guest")))
    guest = await rag_client.get("/ui/documents")
    assert guest.status_code == 200
    assert "?collection=regulations" in guest.text and "secret" not in guest.text
    refused = await rag_client.get("/ui/documents", params={"collection": "secret"})
    assert refused.status_code == 403 and "secret" in refused.text
    hidden = await rag_client.get("/ui/documents", params={"q": "falcon budget"})
    assert hidden.status_code == 200 and "42 million" not in hidden.text


async def test_a_collection_lists_its_documents_and_a_search_finds_the_article(
    rag_client: httpx.AsyncClient, rag_key: Any
) -> None:
    await sign_in(rag_client, bearer(rag_key("analyst")))
    listing = await rag_client.get("/ui/documents", params={"collection": "regulations"})
    assert listing.status_code == 200 and 'data-testid="documents"' in listing.text
    assert "regs.jsonl" in listing.text or "gdpr" in listing.text
    found = await rag_client.get(
        "/ui/documents", params={"q": "right to erasure", "collection": "regulations"}
    )
    assert found.status_code == 200
    first = re.search(r'data-testid="results".*?<strong>([^<]+)</strong>', found.text, re.S)
    assert first is not None and "Art. 17" in first.group(1)


async def test_a_question_is_answered_with_citations_and_grounding(
    rag_client: httpx.AsyncClient, rag_key: Any
) -> None:
    await sign_in(rag_client, bearer(rag_key("analyst")))
    token = await page_token(rag_client, "/ui/documents")
    question = "What must a controller do after a personal data breach?"
    answered = await rag_client.post(
        "/ui/documents/ask", data={"question": question, "csrf_token": token}
    )
    assert answered.status_code == 200, answered.text[:500]
    assert 'data-testid="answer-text"' in answered.text
    assert "Art. 33" in answered.text and 'data-testid="citations"' in answered.text
    assert re.search(r'data-testid="grounding">\d+ sentences? supported, 0 not', answered.text)

    nothing = await rag_client.post(
        "/ui/documents/ask",
        data={"question": "Best pizza dough hydration ratio?", "csrf_token": token},
    )
    assert nothing.status_code == 200 and 'data-testid="not-grounded"' in nothing.text

    stale = await rag_client.post("/ui/documents/ask", data={"question": question})
    assert stale.status_code == 403 and "CSRF" in stale.text
