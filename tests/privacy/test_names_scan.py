"""The name recognizer's fast paths read the text exactly as their plain versions do."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.privacy import names

# Letters (ASCII, Latin-1, others), the separators and apostrophes the cue reader
# knows, digits, and the capitals and particles that make runs of names.
_TEXT = st.text(
    alphabet=st.sampled_from(list("aZqé ßΩ' ’\t\n,:.-_1ÉvandeDr")) | st.characters(),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(_TEXT)
def test_the_word_before_each_position_is_the_plain_readers(text: str) -> None:
    before = names._Before(text)
    for start in range(len(text) + 1):
        _, word, gap = names._cue_word(text, start)
        assert before.word(start) == (word, gap), (text, start)


@settings(max_examples=300, deadline=None)
@given(_TEXT)
def test_runs_are_found_where_the_scan_matched_them(text: str) -> None:
    pattern = names._run_pattern()
    scanned, found = 0, []
    for run in pattern.findall(text):
        start = text.find(run, scanned)
        scanned = start + len(run)
        found.append((start, scanned))
    assert found == [m.span() for m in pattern.finditer(text)]
