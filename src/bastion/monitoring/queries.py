"""Count a current window's cells in SQL, so drift runs where the data lives.

The reference profile fixes the numeric edges; any SQL engine can then count
``(cell, count, sum(x - center), min, max)`` per numeric column and ``(value, count)`` per
categorical column, and Bastion computes exactly the statistics it would compute in
memory (:meth:`NumericSketch.from_cells`). Two dialects are provided:

* ``postgresql``: ``width_bucket(x, ARRAY[edges])`` gives the number of edges ≤ x.
* ``duckdb``: an ``ASOF`` join on an inline table of edges does the same.

Queries are built from a trusted table/column name (quoted as identifiers) and numbers
from the profile; values never come from user text.
"""

# ruff: noqa: S608 -- SQL text is built from quoted identifiers and profile numbers only

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from bastion.monitoring.errors import InvalidData
from bastion.monitoring.profiles import Profile
from bastion.monitoring.sketches import CategoricalSketch, ColumnSketch, NumericBins, NumericSketch

Dialect = Literal["postgresql", "duckdb"]
Execute = Callable[[str], Sequence[Sequence[Any]]]


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _bad(x: str, dialect: Dialect) -> str:
    if dialect == "postgresql":
        inf = "('Infinity'::float8, '-Infinity'::float8)"
        return f"({x} IS NULL OR {x} = 'NaN'::float8 OR {x} IN {inf})"
    return f"({x} IS NULL OR isnan({x}) OR isinf({x}))"


def numeric_cells_sql(table: str, column: str, bins: NumericBins, dialect: Dialect) -> str:
    """One row per occupied cell plus one summary row with cell = -1:
    ``(cell, count, sum(x - center), min(x), max(x), sum((x - center)^2))``; the summary
    row's count is the number of missing values."""
    t, x = table, f"CAST({quote_ident(column)} AS DOUBLE PRECISION)"
    c = repr(float(bins.center))
    edges = [repr(float(e)) for e in bins.edges]
    bad = _bad("x", dialect)
    if not edges:
        cell = "0"
        source = f"SELECT {x} AS x FROM {t}"
    elif dialect == "postgresql":
        arr = f"ARRAY[{','.join(edges)}]::float8[]"
        cell = f"CASE WHEN b > 0 AND x = ({arr})[b] THEN 2 * b - 1 ELSE 2 * b END"
        source = (
            f"SELECT x, width_bucket(x, {arr}) AS b "
            f"FROM (SELECT {x} AS x FROM {t}) s WHERE NOT {bad}"
        )
    elif dialect == "duckdb":
        values = ",".join(f"({k},{e})" for k, e in enumerate(edges))
        cell = "CASE WHEN k IS NULL THEN 0 WHEN x = e THEN 2 * k + 1 ELSE 2 * k + 2 END"
        source = (
            f"SELECT d.x, edges.k, edges.e FROM (SELECT {x} AS x FROM {t}) d "
            f"ASOF LEFT JOIN (SELECT * FROM (VALUES {values}) v(k, e)) edges ON d.x >= edges.e "
            f"WHERE NOT {_bad('d.x', dialect)}"
        )
    else:
        raise InvalidData(f"unknown SQL dialect {dialect!r}; use postgresql or duckdb")
    if not edges:
        source = f"SELECT x FROM ({source}) s0 WHERE NOT {bad}"
    return (
        f"SELECT {cell} AS cell, COUNT(*), SUM(x - {c}), MIN(x), MAX(x), "
        f"SUM((x - {c}) * (x - {c})) "
        f"FROM ({source}) q GROUP BY 1 "
        f"UNION ALL SELECT -1, COUNT(*), 0, 0, 0, 0 FROM (SELECT {x} AS x FROM {t}) m WHERE {bad}"
    )


def category_counts_sql(table: str, column: str) -> str:
    col = quote_ident(column)
    return f"SELECT CAST({col} AS VARCHAR(4096)) AS v, COUNT(*) FROM {table} GROUP BY 1"


def sketch_from_sql(
    execute: Execute, table: str, column: str, reference: ColumnSketch, dialect: Dialect
) -> ColumnSketch:
    """A current sketch of ``table.column`` counted by the database behind ``execute``."""
    if isinstance(reference, NumericSketch):
        rows = execute(numeric_cells_sql(table, column, reference.bins, dialect))
        missing = 0
        squares = 0.0
        cells: list[tuple[int, int, float, float, float]] = []
        for cell, count, total, lo, hi, sq in rows:
            if int(cell) == -1:
                missing = int(count)
                continue
            cells.append((int(cell), int(count), float(total), float(lo), float(hi)))
            squares += float(sq)
        return NumericSketch.from_cells(
            reference.bins, cells, n_missing=missing, sum_squares=squares
        )
    sketch = CategoricalSketch(max_categories=reference.max_categories)
    for value, count in execute(category_counts_sql(table, column)):
        if value is None:
            sketch.n_missing += int(count)
        else:
            sketch.counts[str(value)] = sketch.counts.get(str(value), 0) + int(count)
    sketch._cap()
    return sketch


def profile_from_sql(execute: Execute, table: str, reference: Profile, dialect: Dialect) -> Profile:
    """A current profile of every reference column, counted in SQL."""
    cols = {
        name: sketch_from_sql(execute, table, name, ref, dialect)
        for name, ref in reference.columns.items()
    }
    rows = execute(f"SELECT COUNT(*) FROM {table}")
    return Profile(cols, int(rows[0][0]))
