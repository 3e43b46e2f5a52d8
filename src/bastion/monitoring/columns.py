"""Columns that drift by construction: dates and times, calendar parts, identifiers.

Comparing *when* rows happened between two periods always shows drift (two halves of
one month share no timestamp and no day of month), and an identifier has a new value
for every new row. Such columns are left out of drift checks and named in the report
with the reason. The rule, applied to the reference's first batch:

* **date/time**: a datetime, date or period column; or text whose sampled values all
  hold a digit and a date or time separator and parse as timestamps
  (``pandas.to_datetime``), e.g. ``2013-01-01T10:00:00Z`` or ``01/31/2024 08:15``;
* **calendar part**: an integer column named ``year``, ``month``, ``day`` (of the
  month), ``week``, ``quarter``, ``day_of_year``/``dayofyear`` or ``date`` whose values
  are in that part's range. Time of day (``hour``, ``minute``) and weekday repeat
  within any window of a week and stay in;
* **identifier**: a column named ``id``, ``uuid``, ``guid`` or ending in ``_id``/``Id``;
  an integer or text column whose values are all distinct (at least 100 rows); and,
  once the reference is counted, a text column with at least 100 categories seen fewer
  than ``SPARSE_ROWS_PER_CATEGORY`` times each on average (an aircraft tail number, a
  customer key): with so few rows per value, two samples differ by chance alone.

Columns named explicitly (``columns=``, ``categorical=``, ``numerical=``) or in
``keep`` are always compared; ``exclude`` leaves more out.
"""

from __future__ import annotations

import re
import warnings

import pandas as pd

SAMPLE_VALUES = 200
MIN_ROWS_FOR_UNIQUE = 100
MIN_SPARSE_CATEGORIES = 100
SPARSE_ROWS_PER_CATEGORY = 10

CALENDAR_PARTS: dict[str, tuple[int, int]] = {
    "year": (1000, 3000),
    "month": (1, 12),
    "day": (1, 31),
    "day_of_month": (1, 31),
    "dayofmonth": (1, 31),
    "week": (1, 53),
    "weekofyear": (1, 53),
    "week_of_year": (1, 53),
    "quarter": (1, 4),
    "day_of_year": (1, 366),
    "dayofyear": (1, 366),
    "date": (10000101, 30001231),
}
_CAMEL_ID = re.compile(r"[a-z0-9](Id|ID)$")
_DATEISH = re.compile(r"\d.*[-/:T.]|[-/:.]\d")


def _looks_like_timestamps(values: pd.Series) -> bool:
    sample = values.dropna().astype(str).str.strip().head(SAMPLE_VALUES)
    if sample.empty or not sample.map(lambda v: bool(_DATEISH.search(v))).all():
        return False
    if sample.str.fullmatch(r"[-+]?\d+(\.\d+)?").any():  # plain numbers are not timestamps
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas warns when it has to guess a format
        for fmt in ("ISO8601", "mixed"):
            try:
                parsed = pd.to_datetime(sample, format=fmt, errors="coerce", utc=True)
            except (ValueError, TypeError, OverflowError):
                continue
            if parsed.notna().all():
                return True
    return False


def time_or_id_reason(name: str, column: pd.Series) -> str:
    """Why ``column`` should be left out of a drift check, or ``""`` to compare it."""
    dtype = column.dtype
    if pd.api.types.is_datetime64_any_dtype(dtype) or isinstance(dtype, pd.PeriodDtype):
        return "date/time"
    values = column.dropna()
    lowered = name.lower()
    if pd.api.types.is_integer_dtype(dtype) and lowered in CALENDAR_PARTS and len(values):
        low, high = CALENDAR_PARTS[lowered]
        if low <= values.min() and values.max() <= high:
            return "calendar part"
    if lowered in ("id", "uuid", "guid") or lowered.endswith("_id") or _CAMEL_ID.search(name):
        return "identifier, by its name"
    text = isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(dtype)
    text = text or pd.api.types.is_string_dtype(dtype)
    sample = values.head(SAMPLE_VALUES)
    strings = text and all(isinstance(v, str) for v in sample)
    if strings and _looks_like_timestamps(values):
        return "date/time, text timestamps"
    unique_ok = (text or pd.api.types.is_integer_dtype(dtype)) and len(
        values
    ) >= MIN_ROWS_FOR_UNIQUE
    if unique_ok and values.nunique() == len(values):
        return "identifier, every value distinct"
    return ""


def sparse_categories_reason(distinct: int, n: int) -> str:
    """A reason when a text column has too many categories for their counts to compare."""
    if distinct >= MIN_SPARSE_CATEGORIES and n < SPARSE_ROWS_PER_CATEGORY * distinct:
        return f"identifier-like, {distinct:,} values of ~{n / distinct:.1f} rows each"
    return ""
