"""Binned counts produced by SQL give the same statistics as in memory."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from bastion.monitoring import compare, fit_reference, profile_current, profile_from_sql

POSTGRES = "host=127.0.0.1 port=5432 dbname=test user=postgres connect_timeout=3"


@pytest.fixture
def data() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    n = 20_000
    ref = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": np.round(rng.exponential(5, n)),
            "c": rng.choice(list("xyz"), n),
        }
    )
    cur = pd.DataFrame(
        {
            "a": rng.normal(0.2, 1.3, n),
            "b": np.round(rng.exponential(6, n)),
            "c": rng.choice(list("xyzw"), n),
        }
    )
    cur.loc[::50, "a"] = np.nan
    cur.loc[::70, "c"] = None
    return ref, cur


def _assert_same(ref: pd.DataFrame, cur: pd.DataFrame, execute, table: str, dialect) -> None:
    reference = fit_reference(ref)
    in_memory = compare(reference, profile_current(cur, reference)).to_dict()
    in_sql = compare(reference, profile_from_sql(execute, table, reference, dialect)).to_dict()
    assert in_sql["n_current"] == len(cur)
    for a, b in zip(in_memory["columns"], in_sql["columns"], strict=True):
        assert a["method"] == b["method"]
        for key in ("score", "psi", "jensenshannon", "missing_current"):
            assert a[key] == pytest.approx(b[key], rel=1e-9, abs=1e-12), (a["column"], key)
        assert a["drifted"] == b["drifted"] and a["new_categories"] == b["new_categories"]


def test_duckdb_counts_give_in_memory_statistics(data) -> None:
    duckdb = pytest.importorskip("duckdb")
    ref, cur = data
    con = duckdb.connect()
    con.register("cur_df", cur)
    con.execute("CREATE TABLE current_window AS SELECT * FROM cur_df")
    _assert_same(ref, cur, lambda q: con.execute(q).fetchall(), "current_window", "duckdb")


def test_postgresql_counts_give_in_memory_statistics(data) -> None:
    psycopg = pytest.importorskip("psycopg")
    try:
        conn = psycopg.connect(POSTGRES, autocommit=True)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is required under CI: {exc}")
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 (db test, user postgres) is unreachable: {exc}")
    ref, cur = data
    schema = f"bastion_monitoring_{os.getpid()}"
    with conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        try:
            conn.execute(f"CREATE TABLE {schema}.cur (a float8, b float8, c text)")
            with conn.cursor().copy(f"COPY {schema}.cur FROM STDIN") as copy:
                for row in cur.itertuples(index=False):
                    copy.write_row([None if pd.isna(v) else v for v in row])
            _assert_same(
                ref, cur, lambda q: conn.execute(q).fetchall(), f"{schema}.cur", "postgresql"
            )
        finally:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
