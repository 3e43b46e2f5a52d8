"""Is each sentence of an answer supported by the passages it cites?

Per sentence of the answer (citation markers ``[n]`` resolve to passage ``n``, 1-based):

1. **Required tokens.** Numbers, quoted phrases and names (capitalised words inside the
   sentence) must appear in the cited passages; one that does not makes the sentence
   unsupported whatever else it shares — the commonest way a fluent answer goes wrong
   is a changed figure, article number or actor.
2. **Evidence.** The cited passages are split into sentences (with character offsets);
   up to :data:`MAX_EVIDENCE` of them are chosen greedily to cover the sentence's
   content words, so one claim may draw on several passages.
3. **Score** in [0, 1]: the weighted share of the sentence's content words found in
   the evidence, blended with the share of its word pairs (bigrams) found there, which
   separates a sentence that reuses a passage's vocabulary from one that says what the
   passage says. With an embedder, the best cosine similarity to an evidence sentence
   is blended in too. A sentence is supported when its score reaches the threshold.
4. **Negation.** A word the sentence denies that its evidence only affirms ("shall
   not apply" against "shall apply"), or the reverse, makes it unsupported: the two
   share every word, so overlap alone would pass it.
5. An optional **judge** (an LLM or NLI model, any callable) decides the sentences
   whose score falls near the threshold; none is needed.

Deterministic (no randomness, sets iterated in sorted order, ties broken by position),
never NaN (every ratio has a guarded denominator), and cheap: a few thousand set
operations for an answer over ten passages. Sentences without content words (``Yes.``,
a bare marker) are not claims and are not judged. A sentence that cites nothing is
checked against every passage and marked ``uncited``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bastion.rag.text import (
    Span,
    citations,
    names,
    numbers,
    polarity,
    quotes,
    sentences,
    strip_citations,
    terms,
)

#: A sentence whose score reaches this is supported (chosen on the development half of
#: the grounding benchmark, bench/query.py; reported on the other half).
DEFAULT_THRESHOLD = 0.6
MAX_EVIDENCE = 3
_UNIGRAM_WEIGHT = 0.5
#: How far from the threshold a score may be for the judge (if any) to be asked.
JUDGE_MARGIN = 0.15

Embedder = Callable[[list[str]], list[list[float]]]
#: A judge gets the sentence and its evidence texts; True/False decide, None abstains.
Judge = Callable[[str, list[str]], bool | None]


@dataclass(frozen=True)
class Evidence:
    passage: int  # 1-based, as cited
    start: int  # character offsets in that passage's text
    end: int
    text: str

    def as_dict(self) -> dict[str, object]:
        return {"passage": self.passage, "start": self.start, "end": self.end}


@dataclass(frozen=True)
class Verdict:
    index: int
    text: str
    start: int  # offsets in the answer
    end: int
    cited: tuple[int, ...]
    supported: bool
    score: float
    evidence: tuple[Evidence, ...] = ()
    missing: tuple[str, ...] = ()  # required tokens not found in the evidence
    reasons: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {
            "sentence": self.text,
            "index": self.index,
            "start": self.start,
            "end": self.end,
            "cited": list(self.cited),
            "supported": self.supported,
            "score": self.score,
            "evidence": [e.as_dict() for e in self.evidence],
            "missing": list(self.missing),
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class Grounding:
    verdicts: tuple[Verdict, ...]
    score: float
    threshold: float
    invalid_citations: tuple[int, ...] = field(default=())

    @property
    def supported(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.supported]

    @property
    def unsupported(self) -> list[Verdict]:
        return [v for v in self.verdicts if not v.supported]

    def summary(self) -> dict[str, object]:
        """What a ledger event keeps: counts, indices and the score, no text."""
        return {
            "score": self.score,
            "threshold": self.threshold,
            "sentences": len(self.verdicts),
            "supported": len(self.supported),
            "unsupported": [v.index for v in self.unsupported],
            "invalid_citations": list(self.invalid_citations),
        }


@dataclass(frozen=True)
class _Unit:
    passage: int
    span: Span
    terms: frozenset[str]
    bigrams: frozenset[tuple[str, str]]


def _bigrams(words: list[str]) -> frozenset[tuple[str, str]]:
    return frozenset(itertools.pairwise(words))


def _weight(term: str) -> float:
    # Longer words carry more meaning than short ones ("data" vs "pseudonymisation").
    return min(1.0, 0.25 + len(term) / 10)


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    if na == 0 or nb == 0 or not math.isfinite(dot):
        return 0.0
    return max(-1.0, min(1.0, dot / (na * nb)))


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def _denied(claim: str, evidence: str) -> list[str]:
    """Words the claim says the other way round from its main evidence sentence (the
    one that covers most of it). Overlap alone cannot see this: the two share every
    content word. A word counts as flipped when one side only denies it and the other
    only states it ("shall not apply" against "shall apply"), and the two hold a
    different number of negations — a negation added or taken away, not one moved by
    a paraphrase ("may choose not to apply the measures" / "… not to the measures")."""
    said = polarity(claim)
    found = polarity(evidence)
    if said.negations == found.negations:
        return []
    flipped = {t for t in said.negated - said.plain if t in found.plain - found.negated}
    flipped |= {t for t in said.plain - said.negated if t in found.negated - found.plain}
    return sorted(flipped)


class GroundingChecker:
    """Checks answers against passages; holds the threshold and the optional helpers."""

    def __init__(
        self,
        threshold: float = DEFAULT_THRESHOLD,
        *,
        embedder: Embedder | None = None,
        judge: Judge | None = None,
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError("the threshold is a share, between 0 and 1")
        self.threshold = threshold
        self.embedder = embedder
        self.judge = judge

    def check(self, answer: str, passages: Sequence[str]) -> Grounding:
        units = [
            _Unit(n, span, frozenset(words), _bigrams(words))
            for n, text in enumerate(passages, start=1)
            for span in sentences(text)
            if (words := terms(span.text))
        ]
        verdicts: list[Verdict] = []
        invalid: set[int] = set()
        for span in sentences(answer):
            claim = strip_citations(span.text)
            words = terms(claim)
            if not words:
                continue  # not a claim
            cited_all = citations(span.text)
            cited = tuple(n for n in cited_all if 1 <= n <= len(passages))
            invalid.update(n for n in cited_all if not 1 <= n <= len(passages))
            verdicts.append(
                self._verdict(len(verdicts), span, claim, words, cited, units, passages)
            )
        scores = [v.score for v in verdicts]
        score = round(sum(scores) / len(scores), 4) if scores else 0.0
        return Grounding(tuple(verdicts), score, self.threshold, tuple(sorted(invalid)))

    def _verdict(
        self,
        index: int,
        span: Span,
        claim: str,
        words: list[str],
        cited: tuple[int, ...],
        units: list[_Unit],
        passages: Sequence[str],
    ) -> Verdict:
        reasons: list[str] = []
        pool_ids = set(cited) if cited else set(range(1, len(passages) + 1))
        if not cited:
            reasons.append("uncited")
        pool = [u for u in units if u.passage in pool_ids]
        # Required tokens, against the whole of the cited passages.
        cited_text = " ".join(passages[n - 1] for n in sorted(pool_ids))
        normal = _normal(cited_text)
        passage_numbers = numbers(cited_text)
        passage_words = {w.lower() for w in terms(cited_text)} | set(normal.split())
        missing = sorted(numbers(claim) - passage_numbers)
        missing += sorted(q for q in quotes(claim) if _normal(q) not in normal)
        missing += sorted(
            name for name in names(claim) if name not in passage_words and name not in normal
        )
        # Evidence: greedy cover of the sentence's content words.
        wanted = set(words)
        total = sum(_weight(t) for t in wanted)
        chosen: list[_Unit] = []
        covered: set[str] = set()
        for _ in range(MAX_EVIDENCE):
            best: _Unit | None = None
            best_gain = 0.0
            for unit in pool:  # units are in passage order: ties go to the first
                if unit in chosen:
                    continue
                gain = sum(_weight(t) for t in (unit.terms & wanted) - covered)
                if gain > best_gain + 1e-12:
                    best, best_gain = unit, gain
            if best is None:
                break
            chosen.append(best)
            covered |= best.terms & wanted
        unigram = sum(_weight(t) for t in covered) / total if total else 0.0
        pairs = _bigrams(words)
        if pairs:
            found: frozenset[tuple[str, str]] = frozenset().union(*(u.bigrams for u in chosen))
            bigram = len(pairs & found) / len(pairs)
            score = _UNIGRAM_WEIGHT * unigram + (1 - _UNIGRAM_WEIGHT) * bigram
        else:
            score = unigram
        if self.embedder is not None and pool:
            vectors = self.embedder([claim, *(u.span.text for u in pool)])
            similarity = max(_cosine(vectors[0], v) for v in vectors[1:])
            score = 0.5 * score + 0.5 * max(0.0, similarity)
        score = round(min(1.0, max(0.0, score)), 4)
        denied = _denied(claim, chosen[0].span.text) if chosen else []
        supported = score >= self.threshold and not missing and not denied
        if missing:
            reasons.append("missing_tokens")
        if denied:
            reasons.append("negation")
        if not supported and not missing and not denied:
            reasons.append("low_overlap")
        evidence = tuple(
            Evidence(u.passage, u.span.start, u.span.end, u.span.text)
            for u in sorted(chosen, key=lambda u: (u.passage, u.span.start))
        )
        if self.judge is not None and not missing and abs(score - self.threshold) <= JUDGE_MARGIN:
            decided = self.judge(claim, [e.text for e in evidence])
            if decided is not None:
                supported = decided
                reasons.append("judge")
        return Verdict(
            index=index,
            text=span.text,
            start=span.start,
            end=span.end,
            cited=cited,
            supported=supported,
            score=score,
            evidence=evidence,
            missing=tuple(missing),
            reasons=tuple(reasons),
        )


def check(answer: str, passages: Sequence[str], threshold: float = DEFAULT_THRESHOLD) -> Grounding:
    return GroundingChecker(threshold).check(answer, passages)
