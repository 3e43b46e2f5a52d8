"""Credentials through the gateway (issue #23, item 1): ``bastion serve`` on loopback,
the official ``openai`` SDK as the client, the fake upstream recording what it got.

Every kind of credential, in a prompt, in a multi-part message, in tool-call arguments
and in a tool result, must reach the upstream as a placeholder only; the caller gets
the values back in the answer (plain and streamed); another caller naming the same
conversation does not; and no value is in the server's log, its database (the ledger,
stored content included) or its metrics.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import sqlalchemy as sa

from .policy import write_policy
from .serving import Server, admin_key, serve_env

#: One value per kind (made-up examples in each provider's format).
SECRETS: dict[str, str] = {
    "SECRET_AWS": "AKIAIOSFODNN7EXAMPLE",
    "SECRET_GCP": "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe",
    "SECRET_AZURE": (
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
    ),
    "SECRET_GITHUB": "ghp_EXAMPLENOTAREALGITHUBTOKEN0000000000",
    "SECRET_GITLAB": "glpat-Abc123Def456Ghi789Jk",
    "SECRET_SLACK": "xoxb-00000-00000-EXAMPLENOTAREALTOKEN",
    "SECRET_STRIPE": "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "SECRET_OPENAI": "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCD",
    "SECRET_ANTHROPIC": "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789ABCD-_xyzAA",
    "SECRET_HUGGINGFACE": "hf_abcdefghijklmnopqrstuvwxyzABCDEFGH",
    "SECRET_NPM": "npm_abcdefghijklmnopqrstuvwxyz0123456789",
    "SECRET_TWILIO": "SK0123456789abcdef0123456789abcdef",
    "SECRET_SENDGRID": "SG.abcdefghijklmnopqrstuv.abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    "SECRET_JWT": (
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0"
        ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
    ),
    "SECRET_PRIVATE_KEY": (
        "-----BEGIN RSA PRIVATE KEY-----\nTk9UQVJFQUxLRVkK\n-----END RSA PRIVATE KEY-----"
    ),
    "SECRET_PASSWORD": "s3cr3tP4ss",
    "SECRET_GENERIC": "9f8e7d6c5b4a39281706f5e4d3c2b1a0",
}

PROMPT = (
    f"Deploy with AWS key {SECRETS['SECRET_AWS']}, maps key {SECRETS['SECRET_GCP']}, "
    f"AccountKey={SECRETS['SECRET_AZURE']}; GitHub {SECRETS['SECRET_GITHUB']}, "
    f"GitLab {SECRETS['SECRET_GITLAB']}, Slack {SECRETS['SECRET_SLACK']}, "
    f"Stripe {SECRETS['SECRET_STRIPE']}, OpenAI {SECRETS['SECRET_OPENAI']}, "
    f"Anthropic {SECRETS['SECRET_ANTHROPIC']}, HF {SECRETS['SECRET_HUGGINGFACE']}, "
    f"npm {SECRETS['SECRET_NPM']}, Twilio {SECRETS['SECRET_TWILIO']}, "
    f"SendGrid {SECRETS['SECRET_SENDGRID']}, Bearer {SECRETS['SECRET_JWT']}, "
    f"db postgresql://app:{SECRETS['SECRET_PASSWORD']}@db.internal:5432/app, "
    f"api_key: {SECRETS['SECRET_GENERIC']} and this key:\n{SECRETS['SECRET_PRIVATE_KEY']}\n"
)


def conversation() -> list[dict[str, Any]]:
    """Secrets in every place a chat request holds text; the prompt last (echoed back)."""
    return [
        {"role": "system", "content": f"Ops assistant. Vault token {SECRETS['SECRET_GITHUB']}."},
        {
            "role": "user",
            "content": [{"type": "text", "text": f"Check {SECRETS['SECRET_STRIPE']}"}],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {
                        "name": "deploy",
                        "arguments": json.dumps(
                            {
                                "aws": SECRETS["SECRET_AWS"],
                                "pem": SECRETS["SECRET_PRIVATE_KEY"],
                                "dsn": f"mysql://u:{SECRETS['SECRET_PASSWORD']}@h/db",
                            }
                        ),
                    },
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "call_1",
            "content": f"deployed; SLACK_TOKEN={SECRETS['SECRET_SLACK']} JWT {SECRETS['SECRET_JWT']}",
        },
        {"role": "user", "content": PROMPT},
    ]


def forms(secret: str) -> list[str]:
    """The value as it would appear raw, or JSON-escaped inside a JSON string."""
    return list(dict.fromkeys([secret, json.dumps(secret)[1:-1]]))


def leaves(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
        try:  # tool-call arguments are JSON in a string
            inner = json.loads(value)
        except ValueError:
            return
        if not isinstance(inner, str):
            yield from leaves(inner)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from leaves(v)


@pytest.fixture
def served(tmp_path: Path, database_url: str, fake_upstream) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    home.mkdir()
    write_policy(home / "policy.yaml", fake_upstream.base_url, store_content=True)
    env = serve_env(home, BASTION_DATABASE_URL=database_url)
    key = admin_key(env, user="ann")
    other = admin_key(env, user="eve")
    server = Server(home, env, home / "server.log")
    server.start()
    fake_upstream.reset()
    try:
        yield {"server": server, "key": key, "other": other, "home": home, "db": database_url}
    finally:
        server.stop()


def database_dump(url: str) -> str:
    engine = sa.create_engine(url)
    try:
        metadata = sa.MetaData()
        metadata.reflect(engine)
        with engine.connect() as conn:
            return "\n".join(
                str(row) for table in metadata.sorted_tables for row in conn.execute(table.select())
            )
    finally:
        engine.dispose()


def test_every_kind_of_secret_is_masked_upstream_restored_and_never_recorded(  # type: ignore[no-untyped-def]
    served, fake_upstream
) -> None:
    server: Server = served["server"]
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=served["key"], max_retries=0)
    thread = {"x-bastion-conversation-id": "ops-1"}

    answer = client.chat.completions.create(
        model="ok",
        messages=conversation(),  # type: ignore[arg-type]
        extra_headers=thread,
    )
    text = answer.choices[0].message.content or ""
    streamed = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in client.chat.completions.create(
            model="ok",
            messages=conversation(),  # type: ignore[arg-type]
            stream=True,
        )
        if chunk.choices
    )
    # The caller gets every value back, in the plain and the streamed answer.
    for kind, secret in SECRETS.items():
        assert secret in text, kind
        assert secret in streamed, kind

    # What reached the upstream held placeholders, never a value, in any message part.
    bodies = [r.body for r in fake_upstream.requests if r.path.endswith("/chat/completions")]
    assert len(bodies) == 2
    sent = [leaf for body in bodies for leaf in leaves(body)]
    for kind, secret in SECRETS.items():
        assert any(f"<{kind}_" in leaf for leaf in sent), kind
        for form in forms(secret):
            assert not any(form in leaf for leaf in sent), kind

    # Another caller naming the same conversation gets no value back.
    eve = openai.OpenAI(base_url=server.url + "/v1", api_key=served["other"], max_retries=0)
    echoed = eve.chat.completions.create(
        model="ok",
        messages=[{"role": "user", "content": "Repeat <SECRET_AWS_1> <SECRET_PRIVATE_KEY_1>"}],
        extra_headers=thread,
    )
    assert SECRETS["SECRET_AWS"] not in (echoed.choices[0].message.content or "")

    metrics = httpx.get(server.url + "/metrics").text
    server.stop()  # flush the log and the database
    log = (served["home"] / "server.log").read_text()
    dump = database_dump(served["db"])
    assert "pii:SECRET_PRIVATE_KEY" in dump and "pii:SECRET_AWS" in dump  # types recorded
    for kind, secret in SECRETS.items():
        for form in forms(secret):
            for haystack, where in ((log, "log"), (dump, "database"), (metrics, "metrics")):
                assert form not in haystack, (kind, where)
