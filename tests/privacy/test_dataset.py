"""A floor on accuracy over the labelled set beside the project (skips where absent).

The benchmark (bench/pii.py) reports the figures; this only guards against a change
that breaks detection wholesale. Floors sit well under the measured values.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bastion.privacy import Analyzer

FLOORS = {
    "EMAIL_ADDRESS": 0.95,
    "PHONE_NUMBER": 0.9,
    "CREDIT_CARD": 0.9,
    "IBAN_CODE": 0.9,
    "US_SSN": 0.9,
    "IP_ADDRESS": 0.9,
}


@pytest.mark.shared_data
def test_recall_floor_on_labelled_sentences(shared_data: Path, analyzer: Analyzer) -> None:
    records = json.loads((shared_data / "pii" / "synth_dataset_v2.json").read_text("utf-8"))
    hit = dict.fromkeys(FLOORS, 0)
    total = dict.fromkeys(FLOORS, 0)
    for record in records:
        spans = analyzer.analyze(record["full_text"])
        for gold in record["spans"]:
            t = gold["entity_type"]
            if t not in FLOORS:
                continue
            total[t] += 1
            s, e = gold["start_position"], gold["end_position"]
            hit[t] += any(p.entity_type == t and p.start < e and s < p.end for p in spans)
    for t in FLOORS:
        assert hit[t] / total[t] >= FLOORS[t], (t, hit[t], total[t])
