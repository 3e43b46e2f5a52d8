"""Which value of a label column is the positive (favourable) class.

Labels and predictions often come coded differently: the ground truth as text
(``>50K`` / ``<=50K``) and the model's decision as 0/1. Each column is resolved on its
own, in this order:

1. the value given by the operator (``--positive-label``), compared as text with
   surrounding spaces ignored (``" >50K"`` in the UCI files matches ``>50K``) and as a
   number for numeric columns (``1`` matches ``1.0``);
2. otherwise, when the column's values are a boolean pair, the true one: ``1`` of 0/1,
   ``True`` of booleans, and ``1``/``true``/``yes``/``y``/``positive``/``pos`` of text
   pairs such as ``yes``/``no``;
3. otherwise the column is ambiguous and :class:`AmbiguousLabel` says which values it
   holds and what to pass.

A column with more than two values is refused unless a positive value is named (then
it is one class against the rest). Rows with a missing label or prediction are left out
and counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bastion.monitoring.errors import InvalidData

TRUE_WORDS = frozenset({"1", "1.0", "true", "yes", "y", "positive", "pos", "t"})
FALSE_WORDS = frozenset({"0", "0.0", "false", "no", "n", "negative", "neg", "f"})


class AmbiguousLabel(InvalidData):
    code = "monitoring_ambiguous_label"


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, np.generic):
        return _text(value.item())
    return str(value).strip()


def _same(value: Any, wanted: str) -> bool:
    if _text(value) == wanted.strip():
        return True
    try:
        a, b = float(_text(value)), float(wanted)
    except ValueError:
        return False
    return math.isclose(a, b)


@dataclass(frozen=True)
class ResolvedLabel:
    column: str
    positive: Any
    values: list[Any]
    how: str  # "given" | "inferred"

    def describe(self) -> str:
        return f"{self.column} = {_text(self.positive)!r} ({self.how})"


def resolve_positive(series: pd.Series, given: str | None, column: str) -> ResolvedLabel:
    """The positive value of ``series`` (see the module doc for the rule)."""
    values = [v for v in pd.unique(series.dropna())]
    if not values:
        raise InvalidData(f"{column} has no values; give labelled rows", column=column)
    shown = sorted({_text(v) for v in values})[:10]
    if given is not None:
        matches = [v for v in values if _same(v, given)]
        if matches:
            return ResolvedLabel(column, matches[0], values, "given")
    if len(values) <= 2:
        words = {_text(v).lower(): v for v in values}
        if set(words) <= TRUE_WORDS | FALSE_WORDS:
            true = [v for w, v in words.items() if w in TRUE_WORDS]
            if len(true) == 1 and len(words) - 1 == sum(w in FALSE_WORDS for w in words):
                return ResolvedLabel(column, true[0], values, "inferred")
    if len(values) > 2 and given is None:
        raise AmbiguousLabel(
            f"{column} holds {len(values)} values ({', '.join(shown)}); the check needs a "
            "binary decision: pass --positive-label VALUE to judge one class against the rest",
            column=column,
        )
    if given is not None:
        raise AmbiguousLabel(
            f"--positive-label {given!r} is not a value of {column} ({', '.join(shown)}) "
            f"and {column} is not a 0/1 or yes/no column; name its positive value "
            "(--positive-label for the target, --prediction-positive for the prediction)",
            column=column,
        )
    raise AmbiguousLabel(
        f"cannot tell which value of {column} is the positive class ({', '.join(shown)}); "
        "pass --positive-label VALUE",
        column=column,
    )


def binarize(series: pd.Series, label: ResolvedLabel) -> np.ndarray:
    """1 where the value is the positive class, 0 elsewhere (missing values stay out)."""
    positive = _text(label.positive)
    hits = [v for v in label.values if _text(v) == positive]
    out: np.ndarray = series.isin(hits).to_numpy(dtype=np.int64)
    return out


def binary_columns(
    frame: pd.DataFrame,
    target: str,
    prediction: str,
    *,
    positive: str | None = None,
    prediction_positive: str | None = None,
) -> tuple[pd.DataFrame, ResolvedLabel, ResolvedLabel, int]:
    """``frame`` with ``target`` and ``prediction`` as 0/1 (1 = positive), the two
    resolutions, and the number of rows dropped for a missing label or prediction."""
    data = frame.dropna(subset=[target, prediction])
    dropped = len(frame) - len(data)
    if data.empty:
        raise InvalidData(
            f"no row has both {target} and {prediction}; give labelled predictions",
            columns=[target, prediction],
        )
    t = resolve_positive(data[target], positive, target)
    p = resolve_positive(
        data[prediction],
        prediction_positive if prediction_positive is not None else positive,
        prediction,
    )
    out = data.copy()
    out[target] = binarize(data[target], t)
    out[prediction] = binarize(data[prediction], p)
    return out, t, p, dropped


def binary_or_multiclass(
    frame: pd.DataFrame,
    target: str,
    prediction: str,
    positive: str | None = None,
    prediction_positive: str | None = None,
) -> tuple[pd.DataFrame, Any, Any, int]:
    """Binary labels as 0/1 (1 the positive class), with each column's positive value and
    the rows left out; a multiclass task as it is (labels compared as text, no positive)."""
    try:
        binary, t, p, dropped = binary_columns(
            frame, target, prediction, positive=positive, prediction_positive=prediction_positive
        )
    except AmbiguousLabel:
        truth = {str(v) for v in frame[target].dropna().unique()}
        predicted = {str(v) for v in frame[prediction].dropna().unique()}
        if positive is None and len(truth) > 2 and predicted <= truth:
            # multiclass, scored with macro averages
            data = frame.dropna(subset=[target, prediction]).copy()
            data[target] = data[target].astype(str)
            data[prediction] = data[prediction].astype(str)
            return data, None, None, len(frame) - len(data)
        raise
    return binary, t.positive, p.positive, dropped
