"""Tables in, row batches out: pandas DataFrames, Parquet and CSV files (via pyarrow).

A :class:`TableSource` can be read more than once (fitting a streamed reference takes
two passes) and yields pandas DataFrames of at most ``batch_rows`` rows, so memory is
bounded by one batch whatever the file size. A DataFrame source yields views of its
columns (no copy); a Parquet batch is converted without consolidating its columns, and
each is released before the next is read. String columns come back as pandas
categoricals (Arrow dictionary encoding), which makes counting them cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from bastion.monitoring.errors import ColumnNotFound, InvalidData, UnsupportedSource

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

DEFAULT_BATCH_ROWS = 1_000_000
PARQUET_BUFFER_BYTES = 4 << 20


@dataclass(frozen=True)
class TableSource:
    """Something that yields DataFrame batches, any number of times."""

    name: str
    columns: tuple[str, ...]
    num_rows: int | None
    _batches: Callable[[Sequence[str] | None, int], Iterator[pd.DataFrame]]

    def batches(
        self, columns: Sequence[str] | None = None, batch_rows: int = DEFAULT_BATCH_ROWS
    ) -> Iterator[pd.DataFrame]:
        if columns is not None:
            missing = [c for c in columns if c not in self.columns]
            if missing:
                raise ColumnNotFound(
                    f"{self.name} has no column(s) {missing}; it has {list(self.columns)}",
                    columns=missing,
                )
        return self._batches(columns, batch_rows)

    def read(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        parts = list(self.batches(columns, batch_rows=10_000_000))
        if not parts:
            return pd.DataFrame(columns=list(columns or self.columns))
        return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def from_frame(frame: pd.DataFrame, name: str = "DataFrame") -> TableSource:
    def batches(columns: Sequence[str] | None, batch_rows: int) -> Iterator[pd.DataFrame]:
        # ``frame[list(columns)]`` would copy every selected column; a frame built from
        # the columns themselves shares their memory, as do the ``iloc`` row windows
        data = (
            frame
            if columns is None or list(columns) == list(frame.columns)
            else pd.DataFrame({c: frame[c] for c in columns}, copy=False)
        )
        for start in range(0, len(data), batch_rows):
            yield data.iloc[start : start + batch_rows]

    return TableSource(name, tuple(str(c) for c in frame.columns), len(frame), batches)


def from_batches(
    factory: Callable[[], Iterable[pd.DataFrame]],
    columns: Sequence[str],
    num_rows: int | None = None,
    name: str = "stream",
) -> TableSource:
    """A source over a generator factory (called once per pass), e.g. windows of a log."""

    def batches(wanted: Sequence[str] | None, batch_rows: int) -> Iterator[pd.DataFrame]:
        for frame in factory():
            yield frame if wanted is None else frame[list(wanted)]

    return TableSource(name, tuple(columns), num_rows, batches)


def _parquet(path: Path) -> TableSource:
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise UnsupportedSource(f"{path} is not a readable Parquet file: {exc}") from exc
    # A frame saved by pandas stores its index as columns (``__index_level_0__``);
    # they are bookkeeping, not data, and pandas' own metadata names them.
    pandas_meta = meta.schema_arrow.pandas_metadata or {}
    index_cols = {c for c in pandas_meta.get("index_columns", []) if isinstance(c, str)}
    names = tuple(n for n in meta.schema_arrow.names if n not in index_cols)
    string_cols = [
        f.name
        for f in meta.schema_arrow
        if str(f.type) in ("string", "large_string") or str(f.type).startswith("dictionary")
    ]

    def batches(columns: Sequence[str] | None, batch_rows: int) -> Iterator[pd.DataFrame]:
        wanted = list(columns) if columns is not None else list(names)
        dict_cols = [c for c in string_cols if c in wanted]
        # pre_buffer (pyarrow's default) caches the column chunks of every row group
        # read so far, i.e. up to the whole file, for the life of the reader: at
        # 10 million rows that was 1.5 GB. Buffered reads keep one row group's pages.
        pf = pq.ParquetFile(
            path,
            read_dictionary=dict_cols or None,
            pre_buffer=False,
            buffer_size=PARQUET_BUFFER_BYTES,
        )
        for batch in pf.iter_batches(batch_size=batch_rows, columns=wanted):
            # split_blocks: no consolidated 2-D copy; columns without nulls stay zero-copy
            yield batch.to_pandas(split_blocks=True)
            del batch

    return TableSource(str(path), names, meta.metadata.num_rows, batches)


def _csv(path: Path) -> TableSource:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    def reader(columns: Sequence[str] | None, block_size: int) -> pacsv.CSVStreamingReader:
        return pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=block_size),
            convert_options=pacsv.ConvertOptions(
                include_columns=list(columns) if columns is not None else None,
                auto_dict_encode=True,
                auto_dict_max_cardinality=100_000,
                strings_can_be_null=True,
            ),
        )

    try:
        names = tuple(reader(None, 1 << 16).schema.names)
    except (pa.ArrowInvalid, OSError) as exc:
        raise UnsupportedSource(f"{path} is not a readable CSV file: {exc}") from exc

    def batches(columns: Sequence[str] | None, batch_rows: int) -> Iterator[pd.DataFrame]:
        # Arrow's CSV reader batches by bytes; ~64 bytes a row is a fair guess.
        block = int(min(max(batch_rows * 64, 1 << 20), 1 << 30))
        pending: list[pd.DataFrame] = []
        size = 0
        for batch in reader(columns, block):
            frame = batch.to_pandas()
            pending.append(frame)
            size += len(frame)
            if size >= batch_rows:
                yield _concat(pending)
                pending, size = [], 0
        if pending:
            yield _concat(pending)

    return TableSource(str(path), names, None, batches)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    if len(frames) == 1:
        return frames[0]
    from pandas.api.types import union_categoricals

    out = {}
    for col in frames[0].columns:
        parts = [f[col] for f in frames]
        if all(isinstance(p.dtype, pd.CategoricalDtype) for p in parts):
            out[col] = pd.Series(union_categoricals(parts, ignore_order=True))
        else:
            out[col] = pd.concat(parts, ignore_index=True)
    return pd.DataFrame(out)


_READERS: dict[str, Callable[[Path], TableSource]] = {
    ".parquet": _parquet,
    ".pq": _parquet,
    ".csv": _csv,
    ".txt": _csv,
}


def open_table(table: pd.DataFrame | str | Path | TableSource) -> TableSource:
    """Open a DataFrame, a ``.parquet`` or ``.csv`` path, or pass a source through."""
    if isinstance(table, TableSource):
        return table
    if isinstance(table, pd.DataFrame):
        return from_frame(table)
    path = Path(table)
    if not path.is_file():
        raise InvalidData(f"{path} does not exist or is not a file; check the path", path=str(path))
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise UnsupportedSource(
            f"cannot read {path.name}: use a .parquet or .csv file", path=str(path)
        )
    return reader(path)


def read_table(
    table: pd.DataFrame | str | Path | TableSource, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """The whole table in memory (for performance, fairness and explanations)."""
    if isinstance(table, pd.DataFrame):
        if columns is not None:
            missing = [c for c in columns if c not in table.columns]
            if missing:
                raise ColumnNotFound(f"no column(s) {missing}; the data has {list(table.columns)}")
            return table[list(columns)]
        return table
    return open_table(table).read(columns)


def read_vectors(path: str | Path, column: str | None = None) -> npt.NDArray[np.float64]:
    """Embeddings as a 2-D float array, one row a vector, from:

    * ``.npy``: a 2-D array (never pickled objects);
    * ``.parquet`` / ``.csv``: with ``column``, that column's vectors (a Parquet list
      column, or text holding JSON arrays such as ``[0.1, 0.2]``); without it, every
      numeric column is one dimension.
    """
    import json

    import numpy as np

    p = Path(path)
    if not p.is_file():
        raise InvalidData(f"{p} does not exist or is not a file; check the path", path=str(p))
    if p.suffix.lower() == ".npy":
        try:
            arr = np.load(p, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise UnsupportedSource(f"{p} is not a readable .npy array: {exc}") from exc
        return _as_matrix(arr, p)
    frame = read_table(p, [column] if column else None)
    if column:
        cells = frame[column].dropna().tolist()
        try:
            rows = [json.loads(c) if isinstance(c, str) else list(c) for c in cells]
            return _as_matrix(np.asarray(rows, dtype=np.float64), p)
        except (TypeError, ValueError) as exc:
            raise InvalidData(
                f"{p}: column {column!r} does not hold vectors of one length ({exc}); "
                "give a list column or JSON arrays",
                column=column,
            ) from exc
    numeric = frame.select_dtypes("number")
    if numeric.shape[1] == 0:
        raise InvalidData(
            f"{p} has no numeric columns; name the column holding the vectors with --column"
        )
    return _as_matrix(numeric.to_numpy(dtype=np.float64), p)


def _as_matrix(arr: Any, path: Path) -> npt.NDArray[np.float64]:
    import numpy as np

    try:
        out = np.asarray(arr, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidData(f"{path} does not hold numbers: {exc}") from exc
    if out.ndim != 2:
        raise InvalidData(
            f"{path} holds a {out.ndim}-D array; embeddings are 2-D (one row a vector)"
        )
    return out
