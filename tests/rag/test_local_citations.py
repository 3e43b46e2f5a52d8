"""The local provider's cited extractive answers over numbered passages."""

from __future__ import annotations

import pytest

from bastion.gateway.providers.local import extract_cited_answer, numbered_passages
from bastion.rag.grounding import check
from bastion.rag.text import citations

PROMPT = """Question: How long does a controller have to notify a breach?

Context:
[1] (gdpr, Art. 17)
The data subject shall have the right to obtain erasure without undue delay.

[2] (gdpr, Art. 33)
In the case of a personal data breach, the controller shall notify the supervisory
authority not later than 72 hours after having become aware of it.

[3] (ai act, Art. 50)
Providers shall ensure that AI systems intended to interact with natural persons
are designed so that the persons are informed."""


def test_numbered_passages_are_read_without_their_source_labels() -> None:
    passages = numbered_passages(PROMPT)
    assert [n for n, _ in passages] == [1, 2, 3]
    assert passages[1][1].startswith("In the case of a personal data breach")
    assert "(gdpr" not in passages[1][1]


@pytest.mark.parametrize(
    ("question", "cited"),
    [
        ("How long does a controller have to notify a personal data breach?", [2]),
        ("When may the data subject obtain erasure?", [1]),
        ("Must people be informed that they interact with AI systems?", [3]),
    ],
)
def test_each_sentence_cites_the_passage_it_comes_from(question: str, cited: list[int]) -> None:
    passages = numbered_passages(PROMPT)
    answer = extract_cited_answer(question, passages)
    assert citations(answer) == cited
    grounding = check(answer, [text for _, text in passages])
    assert grounding.verdicts and not grounding.unsupported


def test_passages_that_do_not_answer_say_so() -> None:
    answer = extract_cited_answer("Who won the 2018 world cup?", numbered_passages(PROMPT))
    assert answer.startswith("The passages do not answer")


def test_an_empty_context_is_not_answered_from_the_instructions() -> None:
    from bastion.prompts import PromptLibrary

    rendered = PromptLibrary.load().render("query", {"question": "Who won?", "passages": []})
    completion = _respond_text(rendered.messages)
    assert completion == "The passages do not answer: Who won?"


def _respond_text(messages: list[dict[str, str]]) -> str | None:
    from bastion.gateway.providers.local import _respond

    return _respond({"messages": messages}).content
