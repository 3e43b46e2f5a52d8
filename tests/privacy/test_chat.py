"""Chat requests and responses: every field the gateway forwards is masked and restored."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from bastion.privacy import DenylistEntry, PrivacyGuard, PrivacyPolicy

REQUEST = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "Support agent. Escalate to ops@corp.com."},
        {"role": "user", "content": "I am Jane Doe, card 4111 1111 1111 1111."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "My IBAN is DE89370400440532013000"},
                {"type": "image_url", "image_url": {"url": "https://img.example/x.png"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {
                        "name": "lookup",
                        "arguments": json.dumps({"email": "jane@corp.com", "n": 1}),
                    },
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"phone": "+44 20 7946 0958"}'},
    ],
}
SECRETS = ["ops@corp.com", "Jane Doe", "4111", "DE89", "jane@corp.com", "7946"]


def test_every_text_of_a_request_is_masked() -> None:
    g = PrivacyGuard()
    vault = g.vault("conv")
    out = g.protect_chat(REQUEST, vault)
    wire = json.dumps(out.value)
    for secret in SECRETS:
        assert secret not in wire
    messages = out.value["messages"]
    assert messages[1]["content"] == "I am <PERSON_1>, card <CREDIT_CARD_1>."
    assert messages[2]["content"][1] == REQUEST["messages"][2]["content"][1]  # type: ignore[index]
    args = json.loads(messages[3]["tool_calls"][0]["function"]["arguments"])
    assert args == {"email": "<EMAIL_2>", "n": 1}
    assert REQUEST["messages"][1]["content"].startswith("I am Jane")  # type: ignore[index]
    assert out.counts["EMAIL_ADDRESS"] == 2


def test_response_restored_including_tool_call_arguments() -> None:
    g = PrivacyGuard()
    vault = g.vault("conv")
    g.protect_chat(REQUEST, vault)
    response = {
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Done, <person_1>. <PERSON_4> was not found.",
                    "tool_calls": [
                        {"function": {"name": "mail", "arguments": '{"to": "<EMAIL_2>"}'}}
                    ],
                },
            }
        ]
    }
    body, invented = g.restore_chat(response, vault)
    message = body["choices"][0]["message"]
    assert message["content"] == "Done, Jane Doe. <PERSON_4> was not found."
    assert json.loads(message["tool_calls"][0]["function"]["arguments"]) == {"to": "jane@corp.com"}
    assert invented == ["<PERSON_4>"]


def _chunk(content: str | None = None, args: str | None = None, finish: str | None = None) -> dict:
    delta: dict[str, object] = {}
    if content is not None:
        delta["content"] = content
    if args is not None:
        delta["tool_calls"] = [{"index": 0, "function": {"arguments": args}}]
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def test_streamed_chunks_restore_across_splits() -> None:
    g = PrivacyGuard()
    vault = g.vault()
    vault.placeholder("PERSON", 'Jane "JD" Doe')
    restorer = g.stream_restorer(vault)
    chunks = [
        _chunk("Hello <PER"),
        _chunk("SON_1>, and <"),
        _chunk(args='{"name": "<PERSON'),
        _chunk(args='_1>"}'),
        _chunk("PERSON_1", finish="stop"),
    ]
    content, args = "", ""
    for c in chunks:
        delta = restorer.restore_chunk(c)["choices"][0]["delta"]
        content += delta.get("content") or ""
        for call in delta.get("tool_calls") or ():
            args += call["function"]["arguments"]
    assert content == 'Hello Jane "JD" Doe, and <PERSON_1'
    assert json.loads(args) == {"name": 'Jane "JD" Doe'}
    assert restorer.flush() == {}


def test_policy_section_from_the_issue_validates() -> None:
    policy = PrivacyPolicy.model_validate(
        {
            "prompt": {
                "action": "mask",
                "entities": [
                    "EMAIL_ADDRESS",
                    "PHONE_NUMBER",
                    "CREDIT_CARD",
                    "US_SSN",
                    "IBAN_CODE",
                    "IP_ADDRESS",
                    "PERSON",
                ],
            },
            "response": {"action": "flag"},
            "on_error": "block",
        }
    )
    entry = DenylistEntry.model_validate({"pattern": "\\bSSN\\b", "action": "flag"})
    assert policy.prompt.operator_for("PERSON").type == "placeholder"
    assert entry.label == "\\bSSN\\b"


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"prompt": {"entities": ["EMAIL"]}}, "unknown entity type"),
        ({"phone_regions": ["UK"]}, "GB, not UK"),
        ({"prompt": {"operators": {"PERSON": "shred"}}}, "placeholder"),
        ({"on_error": "allow"}, "block"),
        ({"allow_patterns": ["("]}, "not a valid regex"),
    ],
)
def test_policy_errors_say_what_to_do(policy: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PrivacyPolicy.model_validate(policy)


def test_denylist_entry_needs_one_of_pattern_or_term() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        DenylistEntry.model_validate({"action": "flag"})
