"""The grounding check: what it flags, its evidence offsets, determinism and bounds."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.rag.grounding import GroundingChecker, check
from bastion.rag.text import citations, numbers, sentences

ERASURE = (
    "Right to erasure ('right to be forgotten') 1. The data subject shall have the right to "
    "obtain from the controller the erasure of personal data concerning him or her without "
    "undue delay. 2. Where the controller has made the personal data public, it shall take "
    "reasonable steps, including technical measures, to inform controllers."
)
FINES = (
    "Administrative fines 5. Infringements shall be subject to administrative fines up to "
    "20 000 000 EUR, or in the case of an undertaking, up to 4 % of the total worldwide annual "
    "turnover of the preceding financial year."
)
PASSAGES = [ERASURE, FINES]


@pytest.mark.parametrize(
    ("answer", "supported"),
    [
        (
            "The data subject shall have the right to obtain from the controller the erasure "
            "of personal data concerning him or her without undue delay [1].",
            True,
        ),
        ("Fines reach up to 4 % of the total worldwide annual turnover [2].", True),
        # a changed figure
        ("Fines reach up to 6 % of the total worldwide annual turnover [2].", False),
        # the right passage vocabulary, another actor
        (
            "The Commission shall have the right to obtain from the controller the erasure of "
            "personal data without undue delay [1].",
            False,
        ),
        # cites the wrong passage
        ("Fines reach up to 4 % of the total worldwide annual turnover [1].", False),
        # says something the passages do not
        ("Providers of high-risk AI systems shall register them in the EU database [1].", False),
        # a quote that is not in the passage
        ('The right to erasure is also called the "right to be remembered" [1].', False),
        ('The right to erasure is also called the "right to be forgotten" [1].', True),
    ],
)
def test_sentences_are_judged_against_what_they_cite(answer: str, supported: bool) -> None:
    grounding = check(answer, PASSAGES)
    assert len(grounding.verdicts) == 1
    assert grounding.verdicts[0].supported is supported, grounding.verdicts[0]


def test_a_sentence_may_draw_on_several_passages_and_evidence_points_into_them() -> None:
    answer = (
        "The data subject may obtain erasure without undue delay, and infringements are "
        "subject to administrative fines up to 20 000 000 EUR [1][2]."
    )
    verdict = check(answer, PASSAGES).verdicts[0]
    assert verdict.supported and verdict.cited == (1, 2)
    assert {e.passage for e in verdict.evidence} == {1, 2}
    for e in verdict.evidence:
        assert PASSAGES[e.passage - 1][e.start : e.end] == e.text


def test_unsupported_sentences_are_listed_and_invalid_citations_reported() -> None:
    answer = (
        "The data subject shall have the right to obtain erasure without undue delay [1]. "
        "Member States shall set up a sandbox by 2026 [2]. See also [7]."
    )
    grounding = check(answer, PASSAGES)
    assert [v.supported for v in grounding.verdicts][:2] == [True, False]
    assert grounding.invalid_citations == (7,)
    summary = grounding.summary()
    assert 1 in summary["unsupported"]  # type: ignore[operator]
    assert 0.0 < grounding.score < 1.0


def test_an_answer_with_no_claim_scores_zero_not_nan() -> None:
    assert check("", PASSAGES).score == 0.0
    assert check("[1]", []).score == 0.0
    assert check("So it is.", PASSAGES).verdicts == ()


def test_the_judge_decides_only_near_the_threshold() -> None:
    asked: list[str] = []

    def judge(sentence: str, evidence: list[str]) -> bool:
        asked.append(sentence)
        return False

    checker = GroundingChecker(judge=judge)
    verbatim = "Infringements shall be subject to administrative fines up to 20 000 000 EUR [2]."
    near = "Fines reach up to 4 % of the total worldwide annual turnover [2]."
    assert check(near, PASSAGES).verdicts[0].score < 0.75
    assert checker.check(verbatim, PASSAGES).verdicts[0].supported and asked == []
    verdict = checker.check(near, PASSAGES).verdicts[0]
    assert asked and not verdict.supported and "judge" in verdict.reasons


text_st = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=300,
)


@settings(max_examples=200, deadline=None)
@given(answer=text_st, passages=st.lists(text_st, max_size=4))
def test_deterministic_bounded_never_nan(answer: str, passages: list[str]) -> None:
    first = check(answer, passages)
    again = check(answer, list(passages))
    assert first == again
    assert 0.0 <= first.score <= 1.0 and not math.isnan(first.score)
    for v in first.verdicts:
        assert 0.0 <= v.score <= 1.0 and not math.isnan(v.score)
        assert answer[v.start : v.end] == v.text
        for e in v.evidence:
            assert passages[e.passage - 1][e.start : e.end] == e.text


@settings(max_examples=200, deadline=None)
@given(text_st)
def test_sentence_offsets_point_into_the_text(text: str) -> None:
    for span in sentences(text):
        assert text[span.start : span.end] == span.text
        assert span.text == span.text.strip() and span.text


@pytest.mark.parametrize(
    ("text", "expected"),
    [("[1]", [1]), ("[2][1]", [2, 1]), ("[1, 3]", [1, 3]), ("[2-4]", [2, 3, 4]), ("[x]", [])],
)
def test_citation_markers(text: str, expected: list[int]) -> None:
    assert citations(text) == expected


def test_numbers_are_read_as_stated() -> None:
    assert numbers("Regulation (EU) 2016/679, fines of 4 % and Article 17(1)") >= {
        "2016",
        "679",
        "4%",
        "17",
        "1",
    }


@settings(max_examples=200, deadline=None)
@given(text_st, text_st)
def test_relevance_is_a_share(question: str, passage: str) -> None:
    from bastion.rag.service import relevance

    value = relevance(question, passage)
    assert 0.0 <= value <= 1.0 and not math.isnan(value)
    assert relevance(question, question) in (0.0, 1.0)


SCOPE = (
    "Material scope 2. This Regulation does not apply to the processing of personal data "
    "by a natural person in the course of a purely personal or household activity. "
    "3. Regulation (EC) No 45/2001 applies to the processing of personal data by the "
    "Union institutions. 4. The controller shall ensure that such tasks do not result "
    "in a conflict of interests."
)


@pytest.mark.parametrize(
    ("answer", "supported"),
    [
        # the passage's own polarity, in its words or inflected otherwise
        ("The Regulation does not apply to processing by a natural person [1].", True),
        (
            "The Regulation doesn't apply to the processing of personal data by a natural "
            "person in a purely personal activity [1].",
            True,
        ),
        # the other way round: shares every content word, says the opposite
        (
            "The Regulation applies to processing by a natural person in the course of a purely "
            "personal activity [1].",
            False,
        ),
        (
            "Regulation (EC) No 45/2001 does not apply to processing by the Union institutions [1].",
            False,
        ),
        (
            "Regulation (EC) No 45/2001 never applies to processing of personal data by the Union "
            "institutions [1].",
            False,
        ),
        # a sentence that holds another negation: the one added is still seen
        ("The controller shall ensure that such tasks do not result in a conflict [1].", True),
        (
            "The controller shall not ensure that such tasks do not result in a conflict of "
            "interests [1].",
            False,
        ),
    ],
)
def test_a_sentence_said_the_other_way_round_is_unsupported(answer: str, supported: bool) -> None:
    (verdict,) = check(answer, [SCOPE]).verdicts
    assert verdict.supported is supported, verdict
    assert ("negation" in verdict.reasons) is (not supported)


_MODAL_SENTENCES = st.sampled_from(
    [
        "The controller shall {} inform the supervisory authority of the breach",
        "Providers must {} keep the technical documentation for ten years",
        "The notified body may {} suspend the certificate of the system",
        "Member States will {} lay down the rules on penalties for infringements",
    ]
)


@settings(max_examples=80, deadline=None)
@given(template=_MODAL_SENTENCES, cue=st.sampled_from(["not", "never"]), flip=st.booleans())
def test_any_modal_statement_flipped_is_flagged_and_unflipped_is_not(
    template: str, cue: str, flip: bool
) -> None:
    # The class: an answer that reuses a passage word for word but adds or drops the
    # negation. Either way round, only the flipped one is unsupported.
    plain, negated = template.format("").replace("  ", " "), template.format(cue)
    passage, same = (negated, negated) if flip else (plain, plain)
    other = plain if flip else negated
    assert check(f"{same} [1].", [passage + "."]).verdicts[0].supported
    verdict = check(f"{other} [1].", [passage + "."]).verdicts[0]
    assert not verdict.supported and "negation" in verdict.reasons
