"""What the gateway stores (policy ``audit.store_content``) is encrypted per person, and
the person's export and erasure reach it: the real server, the official SDK."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import sqlalchemy as sa

from .policy import write_policy
from .serving import Server, admin_key, serve_env

SECRET_QUESTION = "what is the capital of Freedonia"


def test_stored_prompts_are_ciphertext_and_the_person_can_export_and_erase_them(  # type: ignore[no-untyped-def]
    tmp_path: Path, database_url: str, fake_upstream
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    write_policy(home / "policy.yaml", fake_upstream.base_url, store_content=True)
    env = serve_env(home, BASTION_DATABASE_URL=database_url)
    key = admin_key(env, user="ann")
    server = Server(home, env, home / "server.log")
    fake_upstream.reset()
    try:
        server.start()
        client = openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)
        client.chat.completions.create(
            model="ok", messages=[{"role": "user", "content": SECRET_QUESTION}]
        )
        headers = {"Authorization": f"Bearer {key}"}
        engine = sa.create_engine(database_url)
        with engine.connect() as conn:
            bodies = conn.execute(sa.text("SELECT subject, body FROM audit_content")).all()
        engine.dispose()
        assert bodies, "the policy asked to store content"
        assert all(b.startswith("aesgcm1:") and "Freedonia" not in b for _, b in bodies)
        assert all(s != "ann" for s, _ in bodies)

        exported = httpx.get(f"{server.url}/api/subjects/ann/export", headers=headers).json()
        prompts = [c["body"] for c in exported["sections"]["stored_content"]]
        assert any(SECRET_QUESTION in p for p in prompts)

        erased = httpx.post(
            f"{server.url}/api/subjects/ann/erase",
            json={"reason": "test", "requested_by": "ann"},
            headers=headers,
        )
        assert erased.status_code == 200, erased.text
        again = httpx.get(f"{server.url}/api/subjects/ann/export", headers=headers).json()
        assert again["sections"]["stored_content"] == []
    finally:
        server.stop()
