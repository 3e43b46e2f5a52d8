"""The grounding check's unsupported-sentence flag: precision and recall, beside peers.

The set is built from the regulations (``../shared/data/regulations``; skipped with a
reason when absent). For each article with enough sentences:

* **context**: the article cut into passages of three sentences, plus two passages of
  another article of the same regulation (retrieval returns neighbours too), shuffled;
* **clean answer**: three sentences of the article, each citing the passage it came from;
* **swapped answers**: the same, with one sentence replaced by a sentence of another
  article, keeping the citation of the one it replaced: one from the same regulation
  (same vocabulary: the hard case), one from another regulation;
* **altered answer**: one sentence with a fact changed (a number, or the actor named:
  "Commission" for "Board"): what a fluent model gets wrong most, and what word
  overlap cannot see;
* **negated answer**: one sentence said the other way round ("shall apply" → "shall not
  apply", or the "not" taken away), which shares every word with its passage.

Both answers come verbatim and *compressed* (a fifth of the words of each sentence
dropped, as a model that paraphrases by omission would). A sentence is positive when it
was swapped in. Articles are split in two halves by a seeded shuffle: each method's
threshold is chosen on the development half (best F1) and reported on the test half.

Methods: Bastion's check (lexical; and with all-MiniLM-L6-v2 embeddings blended in when
the model is installed); a TF-IDF cosine baseline (scikit-learn: the best cosine between
the sentence and a sentence of its cited passages); content-word overlap alone.

    uv run python bench/grounding.py      # writes bench/results/grounding.json
"""

from __future__ import annotations

import json
import random
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import ROOT, machine
from bastion.rag.grounding import DEFAULT_THRESHOLD, GroundingChecker
from bastion.rag.text import citations, sentences, strip_citations, terms

# ../shared beside the checkout (a worktree under /work/wt/ looks one level further up)
DATA = next(
    (
        base / "shared" / "data" / "regulations" / "eu_regulations.jsonl"
        for base in (ROOT.parent, ROOT.parent.parent)
        if (base / "shared" / "data" / "regulations").is_dir()
    ),
    ROOT.parent / "shared" / "data" / "regulations" / "eu_regulations.jsonl",
)
OUT = ROOT / "bench" / "results" / "grounding.json"
SEED = 20261207


@dataclass
class Example:
    split: str
    variant: str  # verbatim | compressed
    swap: str  # none | same_regulation | other_regulation
    passages: list[str]
    answer: str
    labels: list[bool]  # per answer sentence: True = unsupported (swapped in)
    cited: list[list[int]]
    texts: list[str]


_KEEP = frozenset(["not", "no", "never", "nor", "neither", "cannot", "none"])


def _compress(text: str, rng: random.Random) -> str:
    words = text.split()
    if len(words) < 8:
        return text
    # Dropping "not" or "no" would say the opposite, not the same in fewer words: kept.
    keep = [
        w
        for i, w in enumerate(words)
        if i < 2
        or i == len(words) - 1
        or rng.random() > 0.2
        or w.lower().strip("()[],.;:") in _KEEP
    ]
    return " ".join(keep)


_NUM = re.compile(r"(?<![\w./])(\d{1,4})(?![\w/])")
_ACTORS = ["Commission", "Board", "Member States", "Council", "ENISA", "AI Office"]


def _alter(body: Sequence[str], rng: random.Random) -> tuple[int, str] | None:
    """One sentence with a fact changed: a number (an article, a period, an amount)
    or an actor named in it; None when no sentence has one."""
    order = list(range(len(body)))
    rng.shuffle(order)
    for k in order:
        sentence = body[k]
        found = list(_NUM.finditer(sentence))
        if found:
            m = rng.choice(found)
            value = int(m.group(1))
            new = str(value + rng.choice([1, 2, 3, 5, 10]))
            return k, sentence[: m.start()] + new + sentence[m.end() :]
        for actor in _ACTORS:
            if actor in sentence:
                other = rng.choice([a for a in _ACTORS if a != actor])
                return k, sentence.replace(actor, other, 1)
    return None


_MODAL = re.compile(r"\b(shall|must|may|will|should|is|are|does|do)\b( not\b)?")


def _negate(body: Sequence[str], rng: random.Random) -> tuple[int, str] | None:
    """One sentence said the other way round: "not" put after its first modal verb
    ("shall apply" → "shall not apply"), or taken away ("shall not" → "shall"); None
    when no sentence has a modal."""
    order = list(range(len(body)))
    rng.shuffle(order)
    for k in order:
        m = _MODAL.search(body[k])
        if m is None:
            continue
        sentence = body[k]
        if m.group(2):
            return k, sentence[: m.end(1)] + sentence[m.end(2) :]
        return k, sentence[: m.end(1)] + " not" + sentence[m.end(1) :]
    return None


def build(rows: list[dict[str, Any]]) -> list[Example]:
    rng = random.Random(SEED)
    articles = []
    for row in rows:
        spans = [s.text for s in sentences(row["text"])][1:]  # the title is not a claim
        spans = [s for s in spans if len(s.split()) >= 8 and len(sentences(s)) == 1]
        if len(spans) >= 4:
            articles.append((row["regulation"], row["article"], spans))
    order = list(range(len(articles)))
    rng.shuffle(order)
    split = {i: ("dev" if k % 2 == 0 else "test") for k, i in enumerate(order)}
    examples: list[Example] = []
    for i, (regulation, _article, spans) in enumerate(articles):
        own = [" ".join(spans[j : j + 3]) for j in range(0, min(len(spans), 9), 3)]
        same = [k for k, a in enumerate(articles) if a[0] == regulation and k != i]
        other = [k for k, a in enumerate(articles) if a[0] != regulation]
        neighbour = articles[rng.choice(same)][2] if same else []
        foreign = [" ".join(neighbour[j : j + 3]) for j in range(0, min(len(neighbour), 6), 3)]
        passages = own + foreign
        rng.shuffle(passages)
        where = {}
        for n, passage in enumerate(passages, start=1):
            for s in spans:
                if s in passage and passage in own:
                    where.setdefault(s, n)
        candidates = [s for s in spans if s in where]
        if len(candidates) < 3:
            continue
        chosen = sorted(rng.sample(candidates, 3), key=spans.index)
        cited = [where[s] for s in chosen]
        for variant in ("verbatim", "compressed"):
            body = chosen if variant == "verbatim" else [_compress(s, rng) for s in chosen]
            examples.append(_example(split[i], variant, "none", passages, body, cited, None))
            for kind, alter in (("altered_fact", _alter), ("negated", _negate)):
                altered = alter(body, rng)
                if altered is not None:
                    position, changed = altered
                    swapped = list(body)
                    swapped[position] = changed
                    examples.append(
                        _example(split[i], variant, kind, passages, swapped, cited, position)
                    )
            for kind, pool in (("same_regulation", same), ("other_regulation", other)):
                if not pool:
                    continue
                donor = articles[rng.choice(pool)][2]
                swap_in = [s for s in donor if all(s not in p for p in passages)]
                if not swap_in:
                    continue
                position = rng.randrange(3)
                sentence = rng.choice(swap_in)
                if variant == "compressed":
                    sentence = _compress(sentence, rng)
                swapped = list(body)
                swapped[position] = sentence
                examples.append(
                    _example(split[i], variant, kind, passages, swapped, cited, position)
                )
    return examples


def _example(
    split: str,
    variant: str,
    swap: str,
    passages: list[str],
    body: Sequence[str],
    cited: list[int],
    position: int | None,
) -> Example:
    answer = ""
    ranges = []
    for k, (s, n) in enumerate(zip(body, cited, strict=True)):
        text = s.rstrip(" .;:")
        start = len(answer) + (1 if answer else 0)
        answer = f"{answer} {text} [{n}]." if answer else f"{text} [{n}]."
        ranges.append((start, len(answer), k == position, n))
    # The answer as the checker splits it: each piece labelled by the part it is in.
    labels, cites, texts = [], [], []
    for span in sentences(answer):
        if not terms(strip_citations(span.text)):
            continue
        part = next(r for r in ranges if r[0] <= span.start < r[1])
        labels.append(part[2])
        cites.append(citations(span.text) or [part[3]])
        texts.append(strip_citations(span.text))
    return Example(split, variant, swap, passages, answer, labels, cites, texts)


# --- methods: each gives a score per answer sentence (higher = better supported) ------


def bastion_scores(checker: GroundingChecker) -> Callable[[Example], list[float]]:
    def score(ex: Example) -> list[float]:
        g = checker.check(ex.answer, ex.passages)
        assert len(g.verdicts) == len(ex.labels), (ex.answer, len(g.verdicts))
        # a sentence the checker refuses outright (a required token missing, a word
        # said the other way round) scores below any threshold
        return [-1.0 if v.missing or "negation" in v.reasons else v.score for v in g.verdicts]

    return score


def overlap_scores(ex: Example) -> list[float]:
    out = []
    for s, ns in zip(ex.texts, ex.cited, strict=True):
        words = set(terms(s))
        passage = set(terms(" ".join(ex.passages[n - 1] for n in ns)))
        out.append(len(words & passage) / len(words) if words else 0.0)
    return out


def tfidf_method(examples: list[Example]) -> Callable[[Example], list[float]]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    corpus = sorted({s.text for ex in examples for p in ex.passages for s in sentences(p)})
    vectorizer = TfidfVectorizer(sublinear_tf=True).fit(corpus)

    def score(ex: Example) -> list[float]:
        out = []
        for s, ns in zip(ex.texts, ex.cited, strict=True):
            units = [u.text for n in ns for u in sentences(ex.passages[n - 1])]
            m = vectorizer.transform([s, *units])
            sims = (m[1:] @ m[0].T).toarray().ravel()
            out.append(float(sims.max()) if len(sims) else 0.0)
        return out

    return score


def minilm_embedder() -> Callable[[list[str]], list[list[float]]] | None:
    try:
        from bastion.gateway.providers.minilm import shared_minilm

        model = shared_minilm()
        model.embed(["warm"])
    except Exception as exc:  # not installed: the row says so
        print(f"MiniLM not available: {exc}", file=sys.stderr)
        return None
    cache: dict[str, list[float]] = {}

    def embed(texts: list[str]) -> list[list[float]]:
        todo = [t for t in dict.fromkeys(texts) if t not in cache]
        if todo:
            for t, v in zip(todo, model.embed(todo), strict=True):
                cache[t] = [float(x) for x in v]
        return [cache[t] for t in texts]

    return embed


# --- evaluation -----------------------------------------------------------------------


def prf(flags: list[bool], labels: list[bool]) -> dict[str, float]:
    tp = sum(f and y for f, y in zip(flags, labels, strict=True))
    fp = sum(f and not y for f, y in zip(flags, labels, strict=True))
    fn = sum(y and not f for f, y in zip(flags, labels, strict=True))
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f1, 4)}


def evaluate(
    name: str,
    method: Callable[[Example], list[float]],
    examples: list[Example],
    fixed: float | None = None,
) -> dict[str, Any]:
    started = time.process_time()
    scored = [(ex, method(ex)) for ex in examples]
    cpu = time.process_time() - started
    n_sentences = sum(len(s) for _, s in scored)

    def flat(
        split: str, keep: Callable[[Example], bool] = lambda e: True
    ) -> tuple[list[float], list[bool]]:
        scores: list[float] = []
        labels: list[bool] = []
        for ex, s in scored:
            if ex.split == split and keep(ex):
                scores.extend(s)
                labels.extend(ex.labels)
        return scores, labels

    dev_scores, dev_labels = flat("dev")
    grid = sorted({round(x / 100, 2) for x in range(0, 101)})
    best = max(grid, key=lambda t: (prf([s < t for s in dev_scores], dev_labels)["f1"], -t))
    threshold = fixed if fixed is not None else best
    result: dict[str, Any] = {
        "method": name,
        "threshold": threshold,
        "threshold_chosen_on_dev": best,
        "cpu_us_per_sentence": round(cpu / max(1, n_sentences) * 1e6, 1),
        "dev": prf([s < threshold for s in dev_scores], dev_labels),
    }
    test_scores, test_labels = flat("test")
    result["test"] = prf([s < threshold for s in test_scores], test_labels)
    for variant in ("verbatim", "compressed"):
        for swap in ("same_regulation", "other_regulation", "altered_fact", "negated"):
            s, y = flat(
                "test", lambda e, v=variant, w=swap: e.variant == v and e.swap in ("none", w)
            )
            result[f"test_{variant}_{swap}"] = prf([x < threshold for x in s], y)
    return result


def main() -> None:
    if not DATA.exists():
        print(f"skipped: {DATA} is not here (it is beside the project on the bench machine)")
        return
    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    examples = build(rows)
    positives = sum(sum(e.labels) for e in examples)
    total = sum(len(e.labels) for e in examples)
    results = [
        evaluate("bastion (lexical)", bastion_scores(GroundingChecker(0.0)), examples),
        evaluate(
            f"bastion (lexical, shipped threshold {DEFAULT_THRESHOLD})",
            bastion_scores(GroundingChecker(0.0)),
            examples,
            fixed=DEFAULT_THRESHOLD,
        ),
    ]
    embed = minilm_embedder()
    if embed is not None:
        results.append(
            evaluate(
                "bastion + MiniLM embeddings",
                bastion_scores(GroundingChecker(0.0, embedder=embed)),
                examples,
            )
        )
    results.append(evaluate("TF-IDF cosine (scikit-learn)", tfidf_method(examples), examples))
    results.append(evaluate("content-word overlap", overlap_scores, examples))
    report = {
        "benchmark": "grounding",
        "machine": machine(sources=("src/bastion/rag", "bench/grounding.py")),
        "set": {
            "source": "eu_regulations.jsonl (EUR-Lex)",
            "answers": len(examples),
            "sentences": total,
            "unsupported_sentences": positives,
            "seed": SEED,
        },
        "results": results,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{len(examples)} answers, {total} sentences, {positives} swapped in (unsupported)")
    header = (
        f"{'method':44} {'thr':>5} {'P':>6} {'R':>6} {'F1':>6} {'same R':>7} {'fact R':>7} "
        f"{'neg R':>6} {'µs/sent':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        t = r["test"]
        hard = r["test_compressed_same_regulation"]["recall"]
        fact = r["test_verbatim_altered_fact"]["recall"]
        negated = r["test_verbatim_negated"]["recall"]
        print(
            f"{r['method']:44} {r['threshold']:5.2f} {t['precision']:6.3f} {t['recall']:6.3f} "
            f"{t['f1']:6.3f} {hard:7.3f} {fact:7.3f} {negated:6.3f} {r['cpu_us_per_sentence']:8.1f}"
        )
    print("(test half; thresholds chosen on the development half. same R: recall on compressed")
    print(" answers with a sentence swapped in from the same regulation; fact R: recall on")
    print(" verbatim answers with one number or actor changed; neg R: recall on verbatim")
    print(" answers with one sentence said the other way round)")


if __name__ == "__main__":
    main()
