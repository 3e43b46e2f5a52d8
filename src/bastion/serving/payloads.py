"""Reading a ``/predict`` body into the rows a model scores, checked against its signature.

Accepted shapes (MLflow's scoring server takes the last two as well):

- ``{"inputs": {"age": 39, ...}}`` — one record;
- ``{"inputs": [{"age": 39, ...}, ...]}`` — records;
- ``{"dataframe_records": [...]}`` and ``{"dataframe_split": {"columns": [...],
  "data": [[...], ...]}}``.

Every problem is an :class:`InvalidPayload` (422) whose ``param`` names the field, as
``inputs[3].age``: a missing required column, a column the signature does not have, a
value of the wrong type (an integer column takes integers, a double column any
number, a string column strings, a boolean column booleans; ``null`` only where the
signature marks the column optional). MLflow's own enforcement would convert some of
these silently and fail on others with a 400 that names no field; the check here is
written out because its messages are the user's only guide.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bastion.serving.errors import InvalidPayload

if TYPE_CHECKING:
    import pandas as pd

#: The most rows one request may score.
MAX_ROWS = 10_000

_INTEGER = ("long", "integer")
_NUMBER = ("double", "float")


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # MLflow's DataType name: long, integer, double, float, string, boolean, ...
    required: bool = True


def records_of(body: Any) -> list[dict[str, Any]]:
    """The body's rows as records, before the signature check."""
    if not isinstance(body, dict):
        raise InvalidPayload("the body must be a JSON object with `inputs`", param="body")
    shapes = [k for k in ("inputs", "dataframe_records", "dataframe_split") if k in body]
    if len(shapes) != 1:
        raise InvalidPayload(
            "send exactly one of `inputs` (a record or a list of records), "
            "`dataframe_records` or `dataframe_split`",
            param="body",
        )
    key = shapes[0]
    extra = sorted(set(body) - {key})
    if extra:
        raise InvalidPayload(f"unknown field {extra[0]!r} in the body", param=extra[0])
    value = body[key]
    if key == "dataframe_split":
        rows = _split(value)
    elif isinstance(value, dict) and key == "inputs":
        rows = [value]
    elif isinstance(value, list):
        rows = value
    else:
        raise InvalidPayload(f"`{key}` must be a record or a list of records", param=key)
    if not rows:
        raise InvalidPayload(f"`{key}` holds no rows", param=key)
    if len(rows) > MAX_ROWS:
        raise InvalidPayload(f"at most {MAX_ROWS} rows per request; split the batch", param=key)
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise InvalidPayload("each row must be a JSON object", param=f"{key}[{i}]")
    return rows


def _split(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, dict) or not isinstance(value.get("columns"), list):
        raise InvalidPayload(
            "`dataframe_split` needs `columns` (a list of names) and `data` (a list of rows)",
            param="dataframe_split",
        )
    extra = sorted(set(value) - {"columns", "data", "index"})
    if extra:
        raise InvalidPayload(
            f"unknown field {extra[0]!r} in `dataframe_split`", param=f"dataframe_split.{extra[0]}"
        )
    columns = value["columns"]
    if not all(isinstance(c, str) for c in columns) or len(set(columns)) != len(columns):
        raise InvalidPayload(
            "`dataframe_split.columns` must be distinct names", param="dataframe_split.columns"
        )
    data = value.get("data")
    if not isinstance(data, list):
        raise InvalidPayload(
            "`dataframe_split.data` must be a list of rows", param="dataframe_split.data"
        )
    rows = []
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) != len(columns):
            raise InvalidPayload(
                f"row {i} must be a list of {len(columns)} values, one per column",
                param=f"dataframe_split.data[{i}]",
            )
        rows.append(dict(zip(columns, row, strict=True)))
    return rows


def _type_ok(kind: str, value: Any) -> bool:
    if kind in _INTEGER:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind in _NUMBER:
        return (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    return True  # binary, datetime, arrays: left to MLflow's own enforcement


_TYPE_WORDS = {
    "long": "an integer",
    "integer": "an integer",
    "double": "a number",
    "float": "a number",
    "string": "a string",
    "boolean": "true or false",
}


def check(rows: list[dict[str, Any]], schema: Sequence[Column] | None) -> None:
    """Raise :class:`InvalidPayload` for the first row that breaks ``schema``."""
    if schema is None:
        return
    names = {c.name for c in schema}
    for i, row in enumerate(rows):
        for column in schema:
            where = f"inputs[{i}].{column.name}"
            if column.name not in row or row[column.name] is None:
                if column.required:
                    state = "missing" if column.name not in row else "null"
                    raise InvalidPayload(
                        f"feature {column.name!r} is {state} in row {i}; the model's "
                        f"signature requires it ({column.type})",
                        param=where,
                    )
                continue
            value = row[column.name]
            if not _type_ok(column.type, value):
                want = _TYPE_WORDS.get(column.type, column.type)
                raise InvalidPayload(
                    f"feature {column.name!r} in row {i} must be {want} "
                    f"({column.type}), not {type(value).__name__}",
                    param=where,
                )
        for key in row:
            if key not in names:
                raise InvalidPayload(
                    f"feature {key!r} in row {i} is not in the model's signature "
                    f"(it takes {', '.join(sorted(names))})",
                    param=f"inputs[{i}].{key}",
                )


_DTYPES = {
    "long": "int64",
    "integer": "int32",
    "double": "float64",
    "float": "float32",
    "boolean": "bool",
}


def frame(rows: list[dict[str, Any]], schema: Sequence[Column] | None) -> pd.DataFrame:
    """The checked rows as the DataFrame the model scores: the signature's column order
    and dtypes, a missing optional value as NaN."""
    import numpy as np
    import pandas as pd

    if schema is None:
        return pd.DataFrame.from_records(rows)
    data: dict[str, Any] = {}
    for column in schema:
        values = [row.get(column.name) for row in rows]
        dtype = _DTYPES.get(column.type)
        if any(v is None for v in values):
            if column.type == "string":
                data[column.name] = pd.Series(
                    [np.nan if v is None else v for v in values], dtype=object
                )
            else:
                data[column.name] = pd.Series(
                    [np.nan if v is None else v for v in values], dtype="float64"
                )
        elif dtype is not None:
            data[column.name] = pd.Series(values, dtype=dtype)
        else:
            data[column.name] = pd.Series(values, dtype=object)
    return pd.DataFrame(data)
