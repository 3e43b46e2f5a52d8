"""A real ``bastion serve`` on loopback: the prompts are checked at start, /query
answers over the wire, and the official ``openai`` SDK gets the local provider's cited
extractive answer for the versioned query prompt."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest

from gateway.serving import Server, admin_key, cli, serve_env

from .conftest import corpus_slice


@pytest.mark.slow
def test_served_query_and_the_sdk_over_loopback(tmp_path: Path) -> None:
    from bastion.prompts import PromptLibrary

    home = tmp_path / "home"
    env = serve_env(home)
    key = admin_key(env)
    corpus = tmp_path / "regs.jsonl"
    corpus.write_bytes(corpus_slice())
    cli(env, "docs", "ingest", str(corpus), "--collection", "regulations")
    server = Server(home, env, tmp_path / "server.log")
    server.start()
    try:
        headers = {"Authorization": f"Bearer {key}"}
        question = "What must a controller do after a personal data breach?"
        r = httpx.post(
            f"{server.url}/query", json={"question": question}, headers=headers, timeout=60
        )
        assert r.status_code == 200, r.text
        body = r.json()
        also = httpx.post(
            f"{server.url}/api/query", json={"question": question}, headers=headers, timeout=60
        ).json()  # the same route under /api
        assert also["answer"] == body["answer"] and also["citations"] == body["citations"]
        assert "gdpr/art-33" in {c["document"] for c in body["citations"]}
        assert "personal data breach" in body["answer"]
        assert not body["grounding"]["unsupported"]

        passages = [
            {"n": 1, "source": c["document"], "text": c["snippet"]} for c in body["citations"]
        ]
        rendered = PromptLibrary.load().render(
            "query", {"question": question, "passages": passages}
        )
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)
        completion = client.chat.completions.create(
            model="local",
            messages=rendered.messages,  # type: ignore[arg-type]
        )
        assert "[1]" in (completion.choices[0].message.content or "")
    finally:
        server.stop()


def test_a_prompt_changed_without_a_new_version_stops_the_start(tmp_path: Path) -> None:
    from bastion.app import create_app
    from bastion.db import create_database, upgrade
    from bastion.prompts import PromptChanged, PromptFileError
    from bastion.settings import Settings

    home = tmp_path / "home"
    (home / "prompts").mkdir(parents=True)
    prompt = home / "prompts" / "mine.yaml"
    text = "name: mine\nversion: 1\nmessages:\n  - {role: user, content: hello}\n"
    prompt.write_text(text)
    settings = Settings(home=home, database_url=f"sqlite:///{home / 'bastion.db'}")
    db = create_database(settings.resolved_database_url)
    upgrade(db.engine)
    db.dispose()
    app = create_app(settings)  # pins mine@1
    app.state.runtime.close()
    prompt.write_text(text.replace("hello", "goodbye"))
    with pytest.raises(PromptChanged, match="mine@1"):
        create_app(settings)
    prompt.write_text(
        text.replace("{role: user, content: hello}", "role: user\n    content: '{{ oops'")
    )
    with pytest.raises(PromptFileError, match=r"mine.yaml:5:.*template error"):
        create_app(settings)
