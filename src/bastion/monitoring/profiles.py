"""A profile: one sketch per column of a table, built in row batches.

The reference profile is fitted once and stored (:meth:`Profile.to_dict` is JSON):
pass 1 counts categories and missing values and keeps a uniform random sample of rows
(bottom-k of random keys, so the row count need not be known) to fit numeric bin edges;
pass 2 counts the numeric cells. When the sample holds the whole reference, pass 2 is
skipped and the edges hold every distinct value. A current profile is one pass against
the reference's edges, window by window; profiles of windows merge.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bastion.monitoring.columns import sparse_categories_reason, time_or_id_reason
from bastion.monitoring.config import DriftSettings
from bastion.monitoring.errors import ColumnNotFound, EmptyData, IncompatibleSketch, InvalidData
from bastion.monitoring.io import DEFAULT_BATCH_ROWS, TableSource, open_table
from bastion.monitoring.sketches import (
    CategoricalSketch,
    ColumnSketch,
    NumericBins,
    NumericSketch,
    sketch_from_dict,
)

Progress = Callable[[int], None]
FORMAT = "bastion.profile/1"


def _is_numeric(series: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(series.dtype)) and not bool(
        pd.api.types.is_bool_dtype(series.dtype)
    )


def _as_float(series: pd.Series) -> np.ndarray:
    """The column as float64 with missing values as NaN; a view when it already is one
    (callers only read it), a converted copy otherwise."""
    if series.dtype == np.float64:
        view: np.ndarray = series.to_numpy()
        return view
    values: np.ndarray = series.to_numpy(dtype=np.float64, na_value=np.nan)
    return values


@dataclass(eq=False)
class Profile:
    columns: dict[str, ColumnSketch] = field(default_factory=dict)
    n_rows: int = 0
    #: columns left out of drift checks, with the reason (see :mod:`.columns`)
    skipped: dict[str, str] = field(default_factory=dict)

    def kinds(self) -> dict[str, str]:
        return {name: sketch.kind for name, sketch in self.columns.items()}

    def empty_like(self) -> Profile:
        """A profile with the same bins and no rows: the start of a current window."""
        out: dict[str, ColumnSketch] = {}
        for name, sketch in self.columns.items():
            if isinstance(sketch, NumericSketch):
                out[name] = NumericSketch.empty(sketch.bins)
            else:
                out[name] = CategoricalSketch(max_categories=sketch.max_categories)
        return Profile(out, skipped=dict(self.skipped))

    def update(self, frame: pd.DataFrame) -> None:
        for name, sketch in self.columns.items():
            if name not in frame.columns:
                raise InvalidData(f"the batch has no column {name!r}", column=name)
            col = frame[name]
            if isinstance(sketch, NumericSketch):
                try:
                    sketch.update(_as_float(col))
                except (TypeError, ValueError) as exc:
                    raise InvalidData(
                        f"column {name!r} is numeric in the reference but holds "
                        f"non-numbers here ({exc}); declare it categorical",
                        column=name,
                    ) from exc
            else:
                sketch.update(col)
        self.n_rows += len(frame)

    def merge(self, other: Profile) -> Profile:
        if self.columns.keys() != other.columns.keys():
            raise IncompatibleSketch("profiles cover different columns; they cannot be merged")
        merged: dict[str, ColumnSketch] = {}
        for name, a in self.columns.items():
            b = other.columns[name]
            if isinstance(a, NumericSketch) and isinstance(b, NumericSketch):  # noqa: SIM114
                merged[name] = a.merge(b)
            elif isinstance(a, CategoricalSketch) and isinstance(b, CategoricalSketch):
                merged[name] = a.merge(b)
            else:
                raise IncompatibleSketch(f"column {name!r} has different kinds in the two profiles")
        return Profile(merged, self.n_rows + other.n_rows, {**self.skipped, **other.skipped})

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "n_rows": self.n_rows,
            "columns": {name: s.to_dict() for name, s in self.columns.items()},
            "skipped": self.skipped,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        if data.get("format") != FORMAT:
            raise IncompatibleSketch(
                f"not a Bastion profile (format {data.get('format')!r}, expected {FORMAT!r})"
            )
        cols = {name: sketch_from_dict(d) for name, d in data["columns"].items()}
        skipped = data.get("skipped") or {}
        return cls(cols, int(data["n_rows"]), {str(k): str(v) for k, v in skipped.items()})

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict()), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Profile:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InvalidData(f"cannot read the profile {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise IncompatibleSketch(f"{path} is not a Bastion profile (a JSON object)")
        try:
            return cls.from_dict(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise IncompatibleSketch(f"{path} is not a valid Bastion profile: {exc}") from exc


def _choose_columns(
    source: TableSource,
    first: pd.DataFrame,
    columns: Sequence[str] | None,
    categorical: Sequence[str],
    numerical: Sequence[str],
    skipped: dict[str, str],
) -> dict[str, str]:
    names = list(columns) if columns else list(source.columns)
    kinds: dict[str, str] = {}
    for name in names:
        if name in skipped:
            continue
        if name in categorical:
            kinds[name] = "categorical"
        elif name in numerical:
            kinds[name] = "numeric"
        else:
            kinds[name] = "numeric" if _is_numeric(first[name]) else "categorical"
    return kinds


def fit_reference(
    table: pd.DataFrame | str | Path | TableSource,
    *,
    columns: Sequence[str] | None = None,
    categorical: Sequence[str] = (),
    numerical: Sequence[str] = (),
    settings: DriftSettings | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    progress: Progress | None = None,
    seed: int = 0,
    keep: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> Profile:
    """Profile the reference: bins fitted from (a sample of) it, then every row counted.

    Memory is bounded by one batch plus, per numeric column, the sample
    (``sample_rows`` values); numeric columns are converted and counted one at a time.
    When the source's row count is known and within ``sample_rows`` (a DataFrame, a
    Parquet file) no sample is kept: each numeric column is read on its own, its edges
    fitted on all of it and its cells counted, with the same result as the sample path.

    Date/time and identifier columns are left out and listed in ``Profile.skipped``
    (:mod:`bastion.monitoring.columns`), unless named in ``columns``, ``categorical``,
    ``numerical`` or ``keep``; ``exclude`` leaves more out.
    """
    settings = settings or DriftSettings()
    source = open_table(table)
    wanted = list(columns) if columns else None
    rng = np.random.default_rng(seed)
    kinds: dict[str, str] | None = None
    cats: dict[str, CategoricalSketch] = {}
    numeric: list[str] = []
    k = settings.sample_rows
    whole = source.num_rows is not None and source.num_rows <= k
    # bottom-k sample of rows by random key, stored per numeric column
    sample: dict[str, np.ndarray] = {}
    sample_keys = np.empty(0)
    n_rows = 0
    kept = list(keep)
    named = {*(columns or ()), *categorical, *numerical, *kept}
    skipped: dict[str, str] = {n: "excluded by the operator" for n in exclude}
    missing = [n for n in [*kept, *exclude] if n not in source.columns]
    if missing:
        raise ColumnNotFound(
            f"{source.name} has no column(s) {missing}; it has {list(source.columns)}",
            columns=missing,
        )
    for batch in source.batches(wanted, batch_rows):
        if kinds is None:
            for name in batch.columns:
                if name not in named and name not in skipped:
                    reason = time_or_id_reason(str(name), batch[name])
                    if reason:
                        skipped[str(name)] = reason
            kinds = _choose_columns(source, batch, wanted, categorical, numerical, skipped)
            cats = {
                n: CategoricalSketch(max_categories=settings.max_categories)
                for n, kind in kinds.items()
                if kind == "categorical"
            }
            numeric = [n for n, kind in kinds.items() if kind == "numeric"]
        n_rows += len(batch)
        for name, sketch in cats.items():
            sketch.update(batch[name])
        if numeric and not whole:
            keys = rng.random(len(batch))
            rows: np.ndarray | None = None
            if sample_keys.size >= k:
                # only rows keyed below the sample's largest key can enter it
                rows = np.flatnonzero(keys < sample_keys.max())
                keys = keys[rows]
            merged_keys = np.concatenate([sample_keys, keys])
            chosen = (
                np.sort(np.argpartition(merged_keys, k - 1)[:k]) if merged_keys.size > k else None
            )
            for name in numeric:
                values = _as_float(batch[name])
                if rows is not None:
                    values = values[rows]
                merged = np.concatenate([sample.get(name, np.empty(0)), values])
                sample[name] = merged if chosen is None else merged[chosen]
                del values, merged
            sample_keys = merged_keys if chosen is None else merged_keys[chosen]
        if progress:
            progress(len(batch))
        del batch
    if kinds is None or n_rows == 0:
        raise EmptyData(f"the reference {source.name} has no rows; give it some data")
    sketches: dict[str, NumericSketch] = {}
    if whole or len(sample_keys) == n_rows:
        # the sample is the whole reference: edges hold every value, no second pass
        for name in numeric:
            values = _column(source, name, batch_rows) if whole else sample.pop(name)
            bins = NumericBins.fit(
                values, sketch_bins=settings.sketch_bins, psi_bins=settings.psi_bins
            )
            sketches[name] = NumericSketch.of(values, bins)
            del values
    elif numeric:
        for name in numeric:
            bins = NumericBins.fit(
                sample.pop(name), sketch_bins=settings.sketch_bins, psi_bins=settings.psi_bins
            )
            sketches[name] = NumericSketch.empty(bins)
        for batch in source.batches(numeric, batch_rows):
            for name in numeric:
                sketches[name].update(_as_float(batch[name]))
            if progress:
                progress(len(batch))
            del batch
    out: dict[str, ColumnSketch] = {}
    for name, kind in kinds.items():
        if kind == "categorical" and name not in named:
            reason = sparse_categories_reason(len(cats[name].counts), cats[name].n)
            if reason:
                skipped[name] = reason
                continue
        out[name] = sketches[name] if kind == "numeric" else cats[name]
    if not out:
        raise EmptyData(
            f"every column of {source.name} was left out ({', '.join(skipped)}); "
            "name the columns to compare with --columns or --keep"
        )
    return Profile(out, n_rows, skipped)


def _column(source: TableSource, name: str, batch_rows: int) -> np.ndarray:
    """One column as float64: a view for a float64 DataFrame column, else a copy."""
    parts = [_as_float(b[name]) for b in source.batches([name], batch_rows)]
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.empty(0)


def profile_current(
    table: pd.DataFrame | str | Path | TableSource,
    reference: Profile,
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    progress: Progress | None = None,
) -> Profile:
    """Profile current data against the reference's bins, one batch at a time."""
    source = open_table(table)
    profile = reference.empty_like()
    for batch in source.batches(list(reference.columns), batch_rows):
        profile.update(batch)
        if progress:
            progress(len(batch))
        del batch
    if profile.n_rows == 0:
        raise EmptyData(f"the current data {source.name} has no rows; give it some data")
    return profile
