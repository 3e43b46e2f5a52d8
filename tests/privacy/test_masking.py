"""Operators, the vault, restoring (also streamed), leaks, deny-lists, fail-closed."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.privacy import (
    DecryptionFailed,
    DenylistBlocked,
    DenylistEntry,
    DetectionFailed,
    LeakBlocked,
    PrivacyBlocked,
    PrivacyConfigError,
    PrivacyGuard,
    PrivacyKeys,
    PrivacyPolicy,
    Span,
    StreamRestorer,
    Vault,
    VaultStore,
    decrypt,
    restore,
)
from bastion.privacy.errors import PrivacyError
from bastion.privacy.operators import encrypt, keyed_hash, partial

KEYS = PrivacyKeys(hmac_key=b"h" * 32, encryption_key=b"k" * 32)


def guard(**policy: object) -> PrivacyGuard:
    return PrivacyGuard(PrivacyPolicy.model_validate(policy), keys=KEYS)


# --- operators ---------------------------------------------------------------------


def test_placeholders_are_stable_within_a_conversation() -> None:
    g = guard()
    vault = g.vault("conv-1")
    first = g.protect_text("Mail jane@corp.com and JANE@corp.com, not bob@corp.com", vault)
    assert first.value == "Mail <EMAIL_1> and <EMAIL_1>, not <EMAIL_2>"
    again = g.protect_text("jane@corp.com again", g.vault("conv-1"))
    assert again.value == "<EMAIL_1> again"
    other = g.protect_text("bob@corp.com", g.vault("conv-2"))
    assert other.value == "<EMAIL_1>"
    assert first.counts == {"EMAIL_ADDRESS": 3}
    assert first.flags == ["pii:EMAIL_ADDRESS"]


def test_numbers_compare_as_digits_for_placeholders() -> None:
    g = guard()
    vault = g.vault(None)
    out = g.protect_text("call +44 20 7946 0958 or +442079460958", vault)
    assert out.value == "call <PHONE_1> or <PHONE_1>"


@pytest.mark.parametrize(
    ("operator", "expected"),
    [
        ("redact", "card [REDACTED] ok"),
        ("partial", "card **** **** **** 1111 ok"),
    ],
)
def test_simple_operators(operator: str, expected: str) -> None:
    g = guard(prompt={"operators": {"CREDIT_CARD": operator}})
    assert g.protect_text("card 4111 1111 1111 1111 ok", g.vault()).value == expected


def test_partial_keeps_last_four_and_separators() -> None:
    assert partial("DE89 3704 0044 0532 0130 00") == "**** **** **** **** **30 00"
    assert partial("123") == "123"


def test_keyed_hash_is_stable_and_keyed() -> None:
    a = keyed_hash(b"1" * 32, "PHONE_NUMBER", "+44 20 7946 0958")
    assert a == keyed_hash(b"1" * 32, "PHONE_NUMBER", "+442079460958")
    assert a != keyed_hash(b"2" * 32, "PHONE_NUMBER", "+44 20 7946 0958")
    assert "7946" not in a


def test_encrypt_round_trip_and_tamper_detection() -> None:
    key = b"k" * 32
    token = encrypt(key, "US_SSN", "849-66-3189")
    assert "849" not in token
    assert decrypt(key, token) == "849-66-3189"
    body = token[len("<US_SSN:enc:") : -1]
    flipped = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    with pytest.raises(DecryptionFailed):
        decrypt(key, f"<US_SSN:enc:{flipped}>")
    with pytest.raises(DecryptionFailed):  # moved to another type: the AAD no longer fits
        decrypt(key, f"<CREDIT_CARD:enc:{body}>")
    with pytest.raises(DecryptionFailed):
        decrypt(b"x" * 32, token)


def test_encrypt_operator_through_the_guard() -> None:
    g = guard(prompt={"operators": {"US_SSN": "encrypt"}})
    out = g.protect_text("SSN 849-66-3189", g.vault()).value
    assert "849-66-3189" not in out
    assert decrypt(b"k" * 32, out.removeprefix("SSN ")) == "849-66-3189"


def test_block_operator_refuses_and_leaves_vault_empty() -> None:
    g = guard(prompt={"operators": {"CREDIT_CARD": "block"}})
    vault = g.vault("c")
    with pytest.raises(PrivacyBlocked) as info:
        g.protect_text("mail a@b.co card 4111 1111 1111 1111", vault)
    assert info.value.code == "pii_blocked"
    assert "4111" not in info.value.message
    assert len(vault) == 0


def test_keyed_operators_need_keys() -> None:
    with pytest.raises(PrivacyConfigError):
        PrivacyGuard(PrivacyPolicy.model_validate({"prompt": {"operators": {"PERSON": "hash"}}}))


def test_prompt_actions() -> None:
    text = "mail jane@corp.com"
    flagged = guard(prompt={"action": "flag"}).protect_text(text, Vault("x"))
    assert flagged.value == text and flagged.flags == ["pii:EMAIL_ADDRESS"]
    with pytest.raises(PrivacyBlocked):
        guard(prompt={"action": "block"}).protect_text(text, Vault("x"))
    assert guard(prompt={"action": "off"}).protect_text(text, Vault("x")).flags == []


# --- the vault -------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_vault_store_ttl_and_bound() -> None:
    clock = Clock()
    store = VaultStore(ttl_seconds=10, max_vaults=2, clock=clock)
    v = store.get("a")
    v.placeholder("EMAIL_ADDRESS", "a@b.co")
    clock.now = 5
    assert store.get("a") is v  # used: its life starts again
    clock.now = 14
    assert store.get("a") is v
    clock.now = 30
    assert store.get("a") is not v and len(store.get("a")) == 0
    store.get("b")
    store.get("c")
    assert len(store) == 2
    clock.now = 100
    assert store.sweep() == 2


def test_vault_is_thread_safe() -> None:
    vault = Vault("t")
    values = [f"user{i}@corp.com" for i in range(200)]
    results: list[dict[str, str]] = []

    def work() -> None:
        results.append({v: vault.placeholder("EMAIL_ADDRESS", v) for v in values})

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r == results[0] for r in results)
    assert len(set(results[0].values())) == 200
    assert sorted(results[0].values(), key=lambda p: int(p[7:-1]))[-1] == "<EMAIL_200>"


def test_vault_is_asyncio_safe() -> None:
    store = VaultStore()

    async def one(i: int) -> str:
        await asyncio.sleep(0)
        return store.get("shared").placeholder("PERSON", f"Person {i % 10}")

    async def main() -> list[str]:
        return await asyncio.gather(*(one(i) for i in range(100)))

    out = asyncio.run(main())
    assert len(set(out)) == 10
    assert all(out[i] == out[i % 10] for i in range(100))


def test_sealed_vault_round_trip_and_tamper() -> None:
    vault = Vault("conv")
    vault.placeholder("EMAIL_ADDRESS", "jane@corp.com")
    blob = vault.seal(b"s" * 32)
    assert b"jane" not in blob
    back = Vault.unseal(blob, b"s" * 32, "conv")
    assert back.original("<EMAIL_1>") == "jane@corp.com"
    assert back.placeholder("EMAIL_ADDRESS", "x@y.co") == "<EMAIL_2>"
    with pytest.raises(DecryptionFailed):
        Vault.unseal(blob, b"s" * 32, "another-conversation")
    with pytest.raises(DecryptionFailed):
        Vault.unseal(blob[:-1] + bytes([blob[-1] ^ 1]), b"s" * 32, "conv")


# --- restoring -------------------------------------------------------------------


@pytest.fixture
def vault() -> Vault:
    v = Vault("r")
    v.placeholder("EMAIL_ADDRESS", "jane@corp.com")
    v.placeholder("PERSON", "Jane Doe")
    v.placeholder("PHONE_NUMBER", '+1 "415" 555')
    return v


def test_restore_handles_case_changes_and_flags_invented(vault: Vault) -> None:
    out = restore("Hi <person_1>, mail <Email_1>; <PERSON_7> and <div_1> stay", vault)
    assert out.text == "Hi Jane Doe, mail jane@corp.com; <PERSON_7> and <div_1> stay"
    assert out.invented == ["<PERSON_7>"]


def _split(text: str, cuts: list[int]) -> Iterator[str]:
    points = sorted({c % (len(text) + 1) for c in cuts})
    prev = 0
    for p in points:
        yield text[prev:p]
        prev = p
    yield text[prev:]


pieces = st.sampled_from(
    [
        "<EMAIL_1>",
        "<person_1>",
        "<PHONE_1>",
        "<PERSON_9>",
        "<",
        "<EMAIL_",
        "a < b",
        ">",
        "<b>",
        " ",
        "x",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.one_of(pieces, st.text(max_size=5)), max_size=12).map("".join),
    st.lists(st.integers(min_value=0, max_value=200), max_size=10),
)
def test_any_split_of_a_stream_restores_identically(text: str, cuts: list[int]) -> None:
    vault = Vault("h")
    vault.placeholder("EMAIL_ADDRESS", "jane@corp.com")
    vault.placeholder("PERSON", "Jane Doe")
    vault.placeholder("PHONE_NUMBER", "+1 415 555 2671")
    restorer = StreamRestorer(vault)
    streamed = "".join(restorer.feed(chunk) for chunk in _split(text, cuts)) + restorer.flush()
    whole = restore(text, vault)
    assert streamed == whole.text
    assert restorer.invented == whole.invented


def test_stream_holds_back_only_a_possible_placeholder(vault: Vault) -> None:
    r = StreamRestorer(vault)
    assert r.feed("a < b and <EM") == "a < b and "
    assert r.pending == "<EM"
    assert r.feed("AIL_1> done <x y") == "jane@corp.com done <x y"
    assert r.flush() == ""


# --- leaks and deny-lists ----------------------------------------------------------


def test_leak_scan_finds_vault_values_in_any_form() -> None:
    g = guard(response={"action": "flag"})
    vault = g.vault()
    g.protect_text("call +44 20 7946 0958, mail Jane@Corp.com", vault)
    answer = g.check_response("Sure: 0044-20-7946-0958 or jane@corp.COM; <PHONE_1>.", vault)
    assert {(leak.entity_type, leak.source) for leak in answer.leaks} >= {
        ("PHONE_NUMBER", "vault"),
        ("EMAIL_ADDRESS", "vault"),
    }
    assert "pii_leak:PHONE_NUMBER" in answer.flags
    assert answer.text.endswith("+44 20 7946 0958.")  # the placeholder restored


def test_leak_scan_finds_a_vault_iban_however_it_is_grouped() -> None:
    g = guard(response={"action": "flag"})
    vault = g.vault()
    masked = g.protect_text("pay DE89 3704 0044 0532 0130 00 today", vault)
    assert "DE89" not in masked.value
    for written in ("de89370400440532013000", "DE89-3704-0044-0532-0130-00"):
        answer = g.check_response(f"Your IBAN is {written}.", vault)
        assert ("IBAN_CODE", "vault") in {(leak.entity_type, leak.source) for leak in answer.leaks}


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet="ab _-é1.@", max_size=40),
    st.text(alphabet="ab _é1.@", min_size=1, max_size=4),
)
def test_vault_text_search_is_the_whole_word_pattern(text: str, key: str) -> None:
    import re

    from bastion.privacy.leaks import _whole_words

    pattern = re.compile(r"(?<!\w)" + re.escape(key) + r"(?!\w)")
    assert list(_whole_words(text, key)) == [m.start() for m in pattern.finditer(text)]


def test_leak_actions_redact_and_block() -> None:
    answer = "Reach Bob on bob@corp.com"
    redacted = guard(response={"action": "redact"}).check_response(answer, Vault("x"))
    assert redacted.text == "Reach Bob on [REDACTED]"
    with pytest.raises(LeakBlocked) as info:
        guard(response={"action": "block"}).check_response(answer, Vault("x"))
    assert info.value.code == "pii_leak_blocked"


def test_denylist_flags_and_blocks() -> None:
    policy = PrivacyPolicy()
    entries = [
        DenylistEntry.model_validate({"pattern": r"\bSSN\b", "action": "flag"}),
        DenylistEntry.model_validate({"term": "project x", "action": "block", "name": "codename"}),
    ]
    g = PrivacyGuard(policy, entries)
    assert "denylist:\\bSSN\\b" in g.protect_text("my SSN is private", g.vault()).flags
    assert not [f for f in g.protect_text("a lesson", g.vault()).flags if "denylist" in f]
    with pytest.raises(DenylistBlocked) as info:
        g.protect_text("about Project X today", g.vault())
    assert info.value.details["entry"] == "codename"
    assert g.protect_text("projects xylophone", g.vault()).flags == []


# --- fail closed -------------------------------------------------------------------


class BrokenRecognizer:
    name = "broken"
    entities = frozenset({"PERSON"})

    def find(self, text: str) -> Iterator[Span]:
        raise RuntimeError("model crashed")
        yield  # pragma: no cover


def test_detection_failure_blocks_and_never_returns_unmasked_text() -> None:
    g = PrivacyGuard(PrivacyPolicy(on_error="block"), ner=BrokenRecognizer())
    body = {"messages": [{"role": "user", "content": "mail jane@corp.com"}]}
    with pytest.raises(DetectionFailed) as info:
        g.protect_chat(body, g.vault())
    assert isinstance(info.value, PrivacyError)
    assert info.value.code == "privacy_detection_failed"
    assert info.value.status == 503
    assert "jane" not in str(info.value)


def test_detection_failure_with_redact_replaces_the_text() -> None:
    g = PrivacyGuard(PrivacyPolicy(on_error="redact"), ner=BrokenRecognizer())
    out = g.protect_chat(
        {"messages": [{"role": "user", "content": "mail jane@corp.com"}]}, g.vault()
    )
    assert json.dumps(out.value).count("jane") == 0
    assert out.value["messages"][0]["content"] == "[REDACTED]"
    assert "privacy_error" in out.flags
