"""Ground truth attached to logged predictions, by request id: from the API (a list of
``{"request_id", "label"}``) or a file (CSV with a header, or JSON lines, holding
``request_id`` and ``label``)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion.db import Database
from bastion.serving.errors import InvalidLabels
from bastion.serving.repository import PredictionRepository

MAX_LABELS = 100_000


@dataclass(frozen=True)
class LabelsAdded:
    added: int
    matched: int  # of them, how many name a logged prediction

    @property
    def unmatched(self) -> int:
        return self.added - self.matched


def _label(value: Any, where: str) -> Any:
    if isinstance(value, bool | int | str) or (isinstance(value, float) and value == value):
        return value
    raise InvalidLabels(f"{where}: a label must be a number, a string or true/false")


def check_items(items: list[dict[str, Any]]) -> dict[str, Any]:
    """``[{"request_id", "label"}, ...]`` as a dict; the last label of an id wins."""
    if not items:
        raise InvalidLabels("no labels given")
    if len(items) > MAX_LABELS:
        raise InvalidLabels(f"at most {MAX_LABELS} labels at once; split the file")
    out: dict[str, Any] = {}
    for i, item in enumerate(items, start=1):
        where = f"label {i}"
        if not isinstance(item, dict) or set(item) - {"request_id", "label"}:
            raise InvalidLabels(f"{where}: give exactly `request_id` and `label`")
        rid = item.get("request_id")
        if not isinstance(rid, str) or not 0 < len(rid) <= 64:
            raise InvalidLabels(f"{where}: `request_id` must be a string of 1 to 64 characters")
        if "label" not in item:
            raise InvalidLabels(f"{where}: `label` is missing")
        out[rid] = _label(item["label"], where)
    return out


def read_file(path: Path) -> list[dict[str, Any]]:
    """CSV (a header naming ``request_id`` and ``label``) or JSON lines, by content."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidLabels(f"cannot read {path}: {exc}") from exc
    first = text.lstrip()[:1]
    if first == "{":
        items = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InvalidLabels(f"{path} line {n}: not JSON ({exc.msg})") from exc
        return items
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or not {"request_id", "label"} <= set(reader.fieldnames):
        raise InvalidLabels(
            f"{path}: a CSV needs a header with `request_id` and `label` "
            '(or give JSON lines: one {"request_id": ..., "label": ...} per line)'
        )
    return [{"request_id": r["request_id"], "label": _csv_value(r["label"])} for r in reader]


def _csv_value(text: str | None) -> Any:
    if text is None:
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def add_labels(db: Database, items: list[dict[str, Any]]) -> LabelsAdded:
    labels = check_items(items)
    with db.session() as session:
        repo = PredictionRepository(session)
        matched = len(repo.known_ids(list(labels)))
        repo.put_labels(labels)
    return LabelsAdded(len(labels), matched)
