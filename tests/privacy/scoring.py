"""Precision, recall and F1 per entity type over labelled sentences, as bench/pii.py
scores them: a finding is correct when it overlaps a labelled span of the same type.

``scan_spans`` gets the findings the way ``bastion pii scan --format json`` reports them
(the maintainers score a held-back set with it): the texts written one after another to
a file, scanned line by line, each finding mapped back to its record.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

STRUCTURED = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS")

Found = list[tuple[str, int, int]]


def score(
    records: Sequence[dict[str, Any]], found: Sequence[Found], types: Sequence[str]
) -> dict[str, dict[str, float]]:
    out = {}
    for t in types:
        tp_p = pred = tp_r = gold = 0
        for record, spans in zip(records, found, strict=True):
            labelled = [
                (s["start_position"], s["end_position"])
                for s in record["spans"]
                if s["entity_type"] == t
            ]
            predicted = [(s, e) for typ, s, e in spans if typ == t]
            pred += len(predicted)
            tp_p += sum(any(gs < e and s < ge for gs, ge in labelled) for s, e in predicted)
            gold += len(labelled)
            tp_r += sum(any(ps < e and s < pe for ps, pe in predicted) for s, e in labelled)
        p = tp_p / pred if pred else 1.0
        r = tp_r / gold if gold else 1.0
        out[t] = {
            "precision": p,
            "recall": r,
            "f1": 2 * p * r / (p + r) if p + r else 0.0,
            "labelled": gold,
            "predicted": pred,
        }
    return out


def analyzer_spans(records: Sequence[dict[str, Any]], analyze: Callable[[str], Any]) -> list[Found]:
    return [[(s.entity_type, s.start, s.end) for s in analyze(r["full_text"])] for r in records]


def scan_spans(records: Sequence[dict[str, Any]], tmp: Path) -> list[Found]:
    """Findings as ``bastion pii scan --format json`` reports them."""
    from typer.testing import CliRunner

    from bastion.cli.pii import app

    texts = [r["full_text"] for r in records]
    path = tmp / "sentences.txt"
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    # Where each line of the file starts: (record, offset of the line in the record).
    lines: list[tuple[int, int]] = []
    for i, text in enumerate(texts):
        offset = 0
        for line in text.split("\n"):
            lines.append((i, offset))
            offset += len(line) + 1
    result = CliRunner().invoke(app, ["scan", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    found: list[Found] = [[] for _ in texts]
    for row in map(json.loads, result.output.splitlines()):
        record, offset = lines[row["line"] - 1]
        for s in row["spans"]:
            found[record].append((s["type"], offset + s["start"], offset + s["end"]))
    return found
