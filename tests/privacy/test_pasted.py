"""Pasted text: escaped line breaks, Unicode spaces and zero-width characters hide nothing.

JSON, log lines and CSV cells pasted into a prompt carry ``\\n`` as two characters; web
pages carry non-breaking and zero-width characters. Every detector reads them as the
separators they stand for, and spans stay on the original text, so masking replaces
exactly the value.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.privacy import Analyzer, Operators, OperatorSpec, PrivacyKeys, Vault
from bastion.privacy.engine import detection_text

ESCAPES = ("\\n", "\\r\\n", "\\t", "\\\\n", "\\n\\n")
SPACES = ("\u00a0", "\u2009", "\u202f", "\u205f", "\u3000", "\u2002")
ZERO_WIDTH = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff")
PASTED = ESCAPES + SPACES + ZERO_WIDTH

# (label, value, type): values every detector finds after its label on one line.
KNOWN = [
    ("Email:", "jane.doe@corp.example.com", "EMAIL_ADDRESS"),
    ("Phone:", "+44 20 7946 0958", "PHONE_NUMBER"),
    ("Phone:", "(415) 555-2671", "PHONE_NUMBER"),
    ("Card:", "4111 1111 1111 1111", "CREDIT_CARD"),
    ("Card:", "5555555555554444", "CREDIT_CARD"),
    ("IBAN:", "GB82 WEST 1234 5698 7654 32", "IBAN_CODE"),
    ("IBAN:", "DE89370400440532013000", "IBAN_CODE"),
    ("SSN:", "536-22-8726", "US_SSN"),
    ("Host:", "192.168.10.42", "IP_ADDRESS"),
    ("Host:", "2001:db8:85a3::8a2e:370:7334", "IP_ADDRESS"),
]


def _masked(analyzer: Analyzer, text: str) -> str:
    operators = Operators({}, OperatorSpec(), PrivacyKeys())
    return operators.apply(text, analyzer.analyze(text), Vault("t"))


def _characters(value: str) -> str:
    return "".join(c for c in value if c.isalnum())


@pytest.fixture(scope="module")
def structured() -> Analyzer:
    return Analyzer(
        ["EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS"]
    )


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Phone:\\n9691 2587", "9691 2587"),
        ("fax\\n486.592.1340 fax", "486.592.1340"),
        ("Mobile:\\r\\n(0161) 4960066", "(0161) 4960066"),
        ('{"note": "Tel.\\\\n020 7946 0958"}', "020 7946 0958"),
        ("call me on\u00a0555-0192", "555-0192"),
        ("Téléphone :\u202f01 42 68 53 00", "01 42 68 53 00"),
        ("Handy:\u200b0151 23456789", "0151 23456789"),
        ("Office:\\t6458 5871", "6458 5871"),
        ("Teléfono:\\n912 345 678", "912 345 678"),
        ("Cellulare:\u3000333 123 4567", "333 123 4567"),
        ("Bel me op\\n020-1234567", "020-1234567"),
    ],
)
def test_phone_after_pasted_separator(structured: Analyzer, text: str, value: str) -> None:
    spans = structured.analyze(text)
    assert [(s.entity_type, s.text) for s in spans] == [("PHONE_NUMBER", value)]
    assert text[spans[0].start : spans[0].end] == value


@pytest.mark.parametrize(
    ("with_context", "without"),
    [
        ("Phone: 9691 2587", "Ticket 9691 2587"),
        ("Tel. 555-0192", "Model 555-0192"),
        ("Fax: 353 99 38", "Seats 353 99 38"),
        ("Mobil: 719 43 62", "Zimmer 719 43 62"),
        ("Office: 6554 5146", "the office is at 6554 5146"),
        ("call me on 882-1264", "order 882-1264"),
        ("555-0192 (office)", "555-0192 (pending)"),
        ("Portable : 66 67 35 81", "Lot 66 67 35 81"),
    ],
)
def test_short_numbers_need_a_context_word(
    structured: Analyzer, with_context: str, without: str
) -> None:
    assert [s.entity_type for s in structured.analyze(with_context)] == ["PHONE_NUMBER"]
    assert structured.analyze(without) == []


def test_a_number_between_a_word_and_a_finding_ends_the_words_reach(
    structured: Analyzer,
) -> None:
    text = "Fax: 0783 171465 Ref 69910145"
    assert [s.text for s in structured.analyze(text)] == ["0783 171465"]


def test_zero_width_inside_a_value_is_dropped_and_after_a_label_separates() -> None:
    assert detection_text("jane\u200b.doe@corp.com")[0] == "jane.doe@corp.com"
    assert detection_text("4111\u200b1111")[0] == "41111111"
    assert detection_text("Jo\u200bhn")[0] == "John"
    assert detection_text("Phone:\u200b555")[0] == "Phone: 555"
    assert detection_text("Tel.\u2060555")[0] == "Tel. 555"
    assert detection_text("IBAN\u2060GB82")[0] == "IBAN GB82"
    assert detection_text("call\u200b555")[0] == "call 555"


def test_text_without_pasted_whitespace_is_not_copied() -> None:
    text = "Grüße, Jörg: call 020 7946 0958 \\ not an escape"
    clean, offsets = detection_text(text)
    assert clean is text and offsets is None


@given(
    known=st.sampled_from(KNOWN),
    before=st.sampled_from(PASTED),
    after=st.sampled_from((*PASTED, " ", ".", "")),
    prefix=st.sampled_from(("", "Hello,", "x", "note\\n")),
    inner=st.sampled_from((*SPACES, "\u200b", "\u2060")),
    split=st.booleans(),
)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_pasted_whitespace_hides_nothing(
    structured: Analyzer,
    known: tuple[str, str, str],
    before: str,
    after: str,
    prefix: str,
    inner: str,
    split: bool,
) -> None:
    label, value, entity_type = known
    if split and " " in value:
        # A Unicode space in place of each space inside the value (a zero-width
        # character between two groups of digits joins them; the card and IBAN
        # detectors take those unspaced too).
        value = value.replace(" ", inner)
    start = len(prefix) + len(label) + len(before)
    text = f"{prefix}{label}{before}{value}{after}"
    spans = structured.analyze(text)
    hits = [s for s in spans if s.start < start + len(value) and start < s.end]
    assert [s.entity_type for s in hits] == [entity_type], (text, spans)
    # Spans are offsets in the original text, and cover the whole value.
    for s in spans:
        assert text[s.start : s.end] == s.text
    assert hits[0].start == start and hits[0].end == start + len(value), (text, hits)
    masked = _masked(structured, text)
    assert _characters(value) not in _characters(masked)
    for part in value.replace(inner, " ").split():
        if sum(c.isalnum() for c in part) >= 4:
            assert part not in masked, (masked, part)


@given(
    text=st.text(
        alphabet=st.sampled_from(list("ab 1-@.\\nrt") + list(SPACES + ZERO_WIDTH)), max_size=60
    )
)
@settings(max_examples=300, deadline=None)
def test_offsets_map_back_to_the_original(text: str) -> None:
    clean, offsets = detection_text(text)
    if offsets is None:
        assert clean == text
        return
    # Every character of the detection text that is not a replacement maps to the same
    # character of the original.
    for i, c in enumerate(clean):
        j = offsets.start(i)
        assert 0 <= j < len(text)
        if c not in " \n\t":
            assert text[j] == c
        assert offsets.end(i + 1) > j
    assert offsets.start(0) <= offsets.end(len(clean)) <= len(text)
