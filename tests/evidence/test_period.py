"""``--period START..END``: dates include the end day, times exclude the end."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.evidence.clocks import add_month, deadline
from bastion.evidence.report import BadPeriod, parse_period


@pytest.mark.parametrize(
    ("text", "start", "end", "label"),
    [
        (
            "2026-01-01..2026-03-31",
            datetime(2026, 1, 1, tzinfo=UTC),
            datetime(2026, 4, 1, tzinfo=UTC),
            "2026-01-01..2026-03-31",
        ),
        (
            "2026-02-01T12:00..2026-02-02T00:00",
            datetime(2026, 2, 1, 12, tzinfo=UTC),
            datetime(2026, 2, 2, tzinfo=UTC),
            "2026-02-01T12:00:00+00:00..2026-02-02T00:00:00+00:00",
        ),
        (
            "2026-02-01T02:00+02:00..2026-02-01",
            datetime(2026, 2, 1, tzinfo=UTC),
            datetime(2026, 2, 2, tzinfo=UTC),
            "2026-02-01..2026-02-01",
        ),
    ],
)
def test_periods_read_as_a_user_means_them(
    text: str, start: datetime, end: datetime, label: str
) -> None:
    period = parse_period(text)
    assert (period.start, period.end, period.label) == (start, end, label)


@pytest.mark.parametrize(
    "text",
    ["2026-01-01", "..2026-01-01", "2026-03-31..2026-01-01", "Q1..Q2", "2026-13-01..2026-14-01"],
)
def test_bad_periods_are_refused_with_an_example(text: str) -> None:
    with pytest.raises(BadPeriod, match=r"2026-01-01\.\.2026-03-31|the end must come after"):
        parse_period(text)


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1)), st.integers(0, 400))
def test_a_date_period_covers_whole_days(first: date, days: int) -> None:
    last = first + timedelta(days=days)
    period = parse_period(f"{first}..{last}")
    assert period.end - period.start == timedelta(days=days + 1)
    assert period.label == f"{first}..{last}"


@pytest.mark.parametrize(
    ("kind", "severity", "aware", "due"),
    [
        (
            "serious_incident",
            "standard",
            datetime(2026, 3, 1, 9, tzinfo=UTC),
            datetime(2026, 3, 16, 9, tzinfo=UTC),
        ),
        (
            "serious_incident",
            "death",
            datetime(2026, 3, 1, 9, tzinfo=UTC),
            datetime(2026, 3, 11, 9, tzinfo=UTC),
        ),
        (
            "serious_incident",
            "widespread",
            datetime(2026, 3, 1, 9, tzinfo=UTC),
            datetime(2026, 3, 3, 9, tzinfo=UTC),
        ),
        (
            "subject_request",
            "standard",
            datetime(2026, 1, 31, tzinfo=UTC),
            datetime(2026, 2, 28, tzinfo=UTC),
        ),
        (
            "subject_request",
            "standard",
            datetime(2026, 12, 15, tzinfo=UTC),
            datetime(2027, 1, 15, tzinfo=UTC),
        ),
    ],
)
def test_legal_deadlines(kind: str, severity: str, aware: datetime, due: datetime) -> None:
    assert deadline(kind, severity, aware) == due  # type: ignore[arg-type]


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)))
def test_a_month_later_is_28_to_31_days_later(moment: datetime) -> None:
    later = add_month(moment)
    assert 28 <= (later - moment).days <= 31
    assert later.day <= moment.day
