"""Top-k selects get a literal LIMIT / OFFSET (vecalchemy.compiler), so PostgreSQL can keep
a generic plan for the prepared statement; everything else compiles as SQLAlchemy's."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from libpq_trace import libpq_trace
from sqlalchemy import Column, Integer, MetaData, Table, bindparam, event, insert, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine.default import CacheStats

from vecalchemy import HnswIndex, Vector, copy_rows

DIM = 8


@pytest.fixture
def items(engine: Engine) -> Iterator[Table]:
    md = MetaData()
    t = Table(
        "items",
        md,
        Column("id", Integer, primary_key=True),
        Column("embedding", Vector(DIM)),
        HnswIndex("ix_items_embedding", "embedding", metric="cosine"),
    )
    md.create_all(engine)
    rng = np.random.default_rng(7)
    rows = [
        {"id": i, "embedding": rng.standard_normal(DIM).astype(np.float32)} for i in range(300)
    ]
    with engine.begin() as conn:
        conn.execute(insert(t), rows)
        conn.execute(text("ANALYZE items"))
    yield t
    md.drop_all(engine)


def _q(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)


def _parses(conn: Connection, stmt: Any, params: dict[str, Any] | None = None) -> list[str]:
    """The statement texts sent: psycopg's Parse messages (libpq's trace), or, on another
    driver, the SQL handed to its cursor."""
    if not isinstance(conn.connection.driver_connection, psycopg.Connection):
        sent: list[str] = []

        def record(c: Any, cursor: Any, sql: str, *args: Any) -> None:
            sent.append(sql)

        event.listen(conn, "before_cursor_execute", record)
        try:
            conn.execute(stmt, params or {}).all()
        finally:
            event.remove(conn, "before_cursor_execute", record)
        return sent
    with libpq_trace(conn) as messages:
        conn.execute(stmt, params or {}).all()
    return [m[3] for m in messages if m[0] == "F" and m[2] == "Parse"]


#: modes without vecalchemy's compiler (no plugin, no dialect)
PLAIN = ("text", "asyncpg-text")


def test_top_k_limit_and_offset_are_written_into_the_sql(
    engine: Engine, items: Table, mode: str
) -> None:
    stmt = select(items.c.id).order_by(items.c.embedding.cosine_distance(_q())).limit(10)
    with engine.connect() as conn:
        (parse,) = _parses(conn, stmt.offset(5))
    if mode == "text":
        assert "LIMIT $2::INTEGER OFFSET $3::INTEGER" in parse
    elif mode in PLAIN:
        assert "LIMIT 10" not in parse and "OFFSET 5" not in parse
    else:
        assert "LIMIT 10 OFFSET 5" in parse
        assert "LIMIT $" not in parse and "LIMIT %" not in parse


def test_other_selects_keep_a_bound_limit(engine: Engine, items: Table) -> None:
    with engine.connect() as conn:
        (parse,) = _parses(conn, select(items.c.id).order_by(items.c.id).limit(10))
        psycopg3 = isinstance(conn.connection.driver_connection, psycopg.Connection)
    assert "LIMIT 10" not in parse and "LIMIT " in parse
    if psycopg3:
        assert "LIMIT $1::INTEGER" in parse


def test_one_compiled_statement_serves_every_limit(engine: Engine, items: Table) -> None:
    col = items.c.embedding
    with engine.connect() as conn:
        got = []
        for k in (3, 5, 4):
            result = conn.execute(select(items.c.id).order_by(col.cosine_distance(_q())).limit(k))
            got.append((len(result.all()), result.context.cache_hit))
    assert [n for n, _ in got] == [3, 5, 4]
    assert [hit for _, hit in got][1:] == [CacheStats.CACHE_HIT] * 2


@pytest.mark.filterwarnings("ignore::vecalchemy.VectorIndexWarning")  # (the no-LIMIT query)
def test_same_rows_as_a_bound_limit(engine: Engine, items: Table) -> None:
    stmt = select(items.c.id).order_by(items.c.embedding.l2_distance(_q(3)), items.c.id)
    with engine.connect() as conn:
        assert (
            conn.execute(stmt.limit(7).offset(2)).scalars().all()
            == (conn.execute(stmt).scalars().all()[2:9])
        )


def test_an_integer_bindparam_limit_varies_per_call(engine: Engine, items: Table) -> None:
    stmt = (
        select(items.c.id)
        .order_by(items.c.embedding.cosine_distance(bindparam("q")))
        .limit(bindparam("k", type_=Integer))
    )
    with engine.connect() as conn:
        sizes = [len(conn.execute(stmt, {"q": _q(), "k": k}).all()) for k in (2, 6)]
    assert sizes == [2, 6]


def test_an_untyped_bindparam_limit_stays_bound(engine: Engine, items: Table) -> None:
    stmt = (
        select(items.c.id)
        .order_by(items.c.embedding.cosine_distance(bindparam("q")))
        .limit(bindparam("k"))
    )
    with engine.connect() as conn:
        (parse,) = _parses(conn, stmt, {"q": _q(), "k": 4})
        assert len(conn.execute(stmt, {"q": _q(), "k": 4}).all()) == 4
    assert "LIMIT 4" not in parse and "LIMIT " in parse


@pytest.fixture
def wide(engine: Engine) -> Iterator[Table]:
    """2 000 x 768 with an HNSW index: a table whose plan costs depend on the LIMIT."""
    md = MetaData()
    t = Table(
        "wide",
        md,
        Column("id", Integer, primary_key=True),
        Column("embedding", Vector(768)),
        HnswIndex("ix_wide_embedding", "embedding", metric="cosine"),
    )
    md.create_all(engine)
    m = np.random.default_rng(11).standard_normal((2000, 768)).astype(np.float32)
    with engine.begin() as conn:
        copy_rows(conn, t, {"id": np.arange(2000), "embedding": m}, progress=False)
        conn.execute(text("ANALYZE wide"))
    yield t
    md.drop_all(engine)


def test_the_prepared_top_k_statement_gets_a_generic_plan(
    engine: Engine, wide: Table, mode: str
) -> None:
    """The point of it: with ``LIMIT $2`` PostgreSQL re-plans the prepared statement at
    every execution; with ``LIMIT 5`` it keeps a generic plan after five custom ones."""
    rng = np.random.default_rng(5)
    col = wide.c.embedding
    with engine.connect() as conn:
        for _ in range(20):
            q = rng.standard_normal(768).astype(np.float32)
            conn.execute(select(wide.c.id).order_by(col.cosine_distance(q)).limit(5)).all()
        found = conn.execute(
            text(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
                "WHERE statement LIKE '%<=>%' AND statement NOT LIKE '%pg_prepared%'"
            )
        ).all()
    if mode in ("psycopg2", "pg8000"):
        assert found == []  # these drivers prepare no named statement to keep
        return
    (generic, custom) = found[0]
    # psycopg prepares a statement at its 5th execution, asyncpg at its first
    executions = 15 if mode in ("text", "plugin", "dialect") else 20
    if mode in ("text", "asyncpg-text"):  # SQLAlchemy's own compiler: LIMIT $2::INTEGER
        assert (generic, custom) == (0, executions)
    else:
        assert (generic, custom) == (executions - 5, 5)
