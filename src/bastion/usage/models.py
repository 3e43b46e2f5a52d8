"""Usage rollup tables: gateway calls counted per UTC day × team × model × outcome.

``usage_daily`` holds sums only — requests, errors, tokens, cost in integer nano-USD
(exact, whatever order rows are added in) and two latency histograms (whole call and
time to first token, :mod:`bastion.usage.histogram`; refused calls are counted but not
timed), one column per bucket so that
any set of rows merges with ``SUM``. It holds no personal data: a team and a model
name, never a user, key or request. ``usage_watermarks`` holds the id of the last
ledger event folded in: rollups and watermark move in one transaction.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, String, Table, text

from bastion.db.base import Base, UTCDateTime
from bastion.usage.histogram import BUCKETS

LATENCY_COLUMNS = tuple(f"latency_{i:02d}" for i in range(BUCKETS))
TTFT_COLUMNS = tuple(f"ttft_{i:02d}" for i in range(BUCKETS))
#: The columns a fold adds to (everything but the key).
SUM_COLUMNS = (
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "cost_nano",
    *LATENCY_COLUMNS,
    *TTFT_COLUMNS,
)


def _count(name: str) -> Column[int]:
    return Column(name, BigInteger, nullable=False, server_default=text("0"))


usage_daily = Table(
    "usage_daily",
    Base.metadata,
    #: Days since 1970-01-01 (UTC).
    Column("day", Integer, primary_key=True),
    #: "" for calls by a key with no team.
    Column("team", String(100), primary_key=True),
    #: The policy model that served the call, else the one asked for, else "unknown".
    Column("model", String(200), primary_key=True),
    Column("outcome", String(32), primary_key=True),
    *(_count(name) for name in SUM_COLUMNS),
)

usage_watermarks = Table(
    "usage_watermarks",
    Base.metadata,
    Column("name", String(32), primary_key=True),
    #: The id of the last ledger event folded in (every event up to it has been).
    Column("last_id", BigInteger, nullable=False),
    Column("folded", BigInteger, nullable=False, server_default=text("0")),
    Column("updated_at", UTCDateTime(), nullable=True),
)
