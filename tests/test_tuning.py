"""tune_search_settings: the smallest ef_search / probes meeting a target recall, by
bisection, against the real server."""

from __future__ import annotations

import math
import statistics
from typing import Any

import numpy as np
import psycopg
import pytest
from sqlalchemy import Column, Integer, MetaData, Select, Table, select, text
from sqlalchemy.engine import Engine

from vecalchemy import (
    TunedSearchSetting,
    Vector,
    measure_recall,
    search_settings,
    tune_search_settings,
)
from vecalchemy.tuning import ROUNDING

ROWS, DIM, K = 3000, 32, 10

md = MetaData()
items = Table(
    "items",
    md,
    Column("id", Integer, primary_key=True),
    Column("embedding", Vector(DIM, metric="cosine")),
)


def nearest(q: Any) -> Select[Any]:
    return select(items.c.id).order_by(items.c.embedding.cosine_distance(q)).limit(K)


def _mixture(rows: int, queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The recall example's data: a seeded mixture of 30 overlapping Gaussian clusters."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((30, DIM))
    labels = rng.integers(0, 30, rows + queries)
    points = (centres[labels] + 1.6 * rng.standard_normal((rows + queries, DIM))).astype(
        np.float32
    )
    return points[:rows], points[rows:]


def _load(raw_conn: psycopg.Connection, index_sql: str, n_queries: int = 20) -> np.ndarray:
    data, queries = _mixture(ROWS, n_queries)
    raw_conn.execute(f"CREATE TABLE items (id int PRIMARY KEY, embedding vector({DIM}))")
    with raw_conn.cursor().copy("COPY items (id, embedding) FROM STDIN") as copy:
        for i, row in enumerate(data):
            copy.write_row([i, "[" + ",".join(map(str, row.tolist())) + "]"])
    raw_conn.execute(index_sql)
    raw_conn.execute("ANALYZE items")
    return queries


def _recall(engine: Engine, queries: np.ndarray, setting: str, value: int) -> float:
    """Mean recall@K at one value, measured independently with measure_recall."""
    with engine.connect() as conn, search_settings(conn, {setting: value}):
        return statistics.fmean(measure_recall(conn, nearest(q), K) for q in queries)


def _check_bisection(
    engine: Engine, queries: np.ndarray, result: TunedSearchSetting, low: int, high: int
) -> None:
    assert result.met
    assert result.recall >= result.target_recall - ROUNDING
    assert len(result.measured) <= math.ceil(math.log2(high - low)) + 3
    assert result.measured[-1].value == result.value  # the re-check
    assert (
        _recall(engine, queries, result.setting, result.value) >= result.target_recall - ROUNDING
    )
    if result.value - 1 >= low:
        below = _recall(engine, queries, result.setting, result.value - 1)
        assert below < result.target_recall - ROUNDING
    assert all(p.latency_ms > 0 for p in result.measured)
    assert result.latency_ms == result.measured[-1].latency_ms


def test_smallest_ef_search_meeting_the_target(
    engine: Engine, raw_conn: psycopg.Connection
) -> None:
    queries = _load(
        raw_conn,
        "CREATE INDEX ON items USING hnsw (embedding vector_cosine_ops) "
        "WITH (m = 4, ef_construction = 10)",
    )
    with engine.connect() as conn:
        result = tune_search_settings(conn, nearest, queries, target_recall=0.95, k=K)
        # the settings are gone with the block: the session default is back
        assert conn.execute(text("SHOW hnsw.ef_search")).scalar_one() == "40"
        assert conn.execute(text("SHOW enable_indexscan")).scalar_one() == "on"
    assert result.setting == "ef_search"
    assert result.settings == {"ef_search": result.value}
    assert 1 < result.value < 1000  # the low default misses: a tuning, not a bound
    assert result.measured[0].value == 1000 and result.measured[1].value == 1
    _check_bisection(engine, queries, result, 1, 1000)
    with engine.connect() as conn, search_settings(conn, **result.settings):
        assert conn.execute(text("SHOW hnsw.ef_search")).scalar_one() == str(result.value)


@pytest.mark.parametrize("mode", ["plugin", "asyncpg"])
def test_probes_for_ivfflat(engine: Engine, raw_conn: psycopg.Connection) -> None:
    queries = _load(
        raw_conn,
        "CREATE INDEX ON items USING ivfflat (embedding vector_cosine_ops) WITH (lists = 30)",
    )
    with engine.begin() as conn:
        result = tune_search_settings(
            conn, nearest, queries, target_recall=0.9, setting="ivfflat.probes", high=30, repeats=2
        )
    assert result.setting == "probes" and result.settings == {"probes": result.value}
    assert 1 < result.value <= 30
    _check_bisection(engine, queries, result, 1, 30)


@pytest.mark.parametrize("mode", ["plugin"])
def test_unreachable_target_and_a_low_bound_that_meets_it(
    engine: Engine, raw_conn: psycopg.Connection
) -> None:
    queries = _load(
        raw_conn,
        "CREATE INDEX ON items USING hnsw (embedding vector_cosine_ops) "
        "WITH (m = 4, ef_construction = 10)",
        n_queries=10,
    )
    with engine.connect() as conn:
        missed = tune_search_settings(conn, nearest, queries, target_recall=1.0, high=2)
        easy = tune_search_settings(conn, nearest, queries, target_recall=0.1, low=200, high=400)
    assert not missed.met and missed.value == 2 and len(missed.measured) == 1
    assert missed.recall < 1.0
    assert easy.met and easy.value == 200
    assert [p.value for p in easy.measured] == [400, 200, 200]


def _boom(q: Any) -> Select[Any]:
    raise AssertionError("nothing is built before the arguments are checked")


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"target_recall": 0}, "target_recall must be a number in \\(0, 1\\]"),
        ({"target_recall": 1.5}, "target_recall"),
        ({"target_recall": float("nan")}, "target_recall"),
        ({"target_recall": True}, "target_recall"),
        ({"setting": "max_scan_tuples"}, "setting must be one of ef_search, probes"),
        ({"low": 0}, r"low=0 is outside the range of hnsw.ef_search \(1 .. 1000\)"),
        ({"high": 1001}, r"high=1001 is outside the range of hnsw.ef_search"),
        ({"setting": "probes", "high": 40000}, r"ivfflat.probes \(1 .. 32768\)"),
        ({"low": 50, "high": 10}, r"low \(50\) must not exceed high \(10\)"),
        ({"low": 2.5}, "low must be an int"),
        ({"k": 0}, "k must be a positive int"),
        ({"repeats": 0}, "repeats must be a positive int"),
    ],
)
def test_argument_errors(kw: dict[str, Any], message: str) -> None:
    bind: Any = object()  # nothing is sent: a bad argument is refused first
    with pytest.raises(ValueError, match=message):
        tune_search_settings(bind, _boom, np.zeros((3, DIM)), **kw)


def _not_a_select(q: Any) -> Any:
    return text("SELECT 1")


@pytest.mark.parametrize("mode", ["plugin"])
def test_query_and_connection_errors(engine: Engine) -> None:
    bind: Any = object()
    with pytest.raises(ValueError, match="at least one query vector"):
        tune_search_settings(bind, _boom, np.zeros((0, DIM)))
    with pytest.raises(ValueError, match=r"\(n, dim\) array"):
        tune_search_settings(bind, _boom, np.zeros(DIM))
    with pytest.raises(TypeError, match="query_for must return a Select, got TextClause"):
        tune_search_settings(bind, _not_a_select, [[0.0] * DIM])
    with (
        engine.connect() as conn,
        pytest.raises(ValueError, match="this connection is AUTOCOMMIT"),
    ):
        auto = conn.execution_options(isolation_level="AUTOCOMMIT")
        tune_search_settings(auto, nearest, [[0.0] * DIM])
