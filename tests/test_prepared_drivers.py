"""PreparedQuery on every driver: the same rows as Connection.execute, in the caller's
transaction, values validated before anything is sent, server errors as SQLAlchemy's.

psycopg 3's wire-level behaviour (binary results, literal LIMIT in the Parse message) is
tested in tests/test_prepared.py; here every mode runs, asyncpg's sync tests inside
SQLAlchemy's greenlet (tests/conftest.py) and its async ones through ``all_async``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from conftest import ASYNC_MODES, make_async_engine
from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, func, insert, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session
from test_prepared import assert_same_rows

from vecalchemy import (
    Bit,
    HalfVec,
    InvalidVectorError,
    PreparedQuery,
    SparseVec,
    SparseVector,
    Vector,
    search_settings,
)
from vecalchemy.facts import METRICS, metrics_for

N = 12
md = MetaData()
items = Table(
    "pitems",
    md,
    Column("id", Integer, primary_key=True),
    Column("label", String, nullable=False),
    Column("v", Vector(3)),
    Column("h", HalfVec(3)),
    Column("s", SparseVec(5)),
    Column("b", Bit(4)),
)
missing = Table("no_such_table", MetaData(), Column("id", Integer))
COLUMNS = {"vector": items.c.v, "halfvec": items.c.h, "sparsevec": items.c.s, "bit": items.c.b}
CASES = [(t, m) for t in COLUMNS for m in metrics_for(t)]


def _rows() -> list[dict[str, Any]]:
    rng = np.random.default_rng(3)
    out = []
    for i in range(1, N + 1):
        dense = rng.standard_normal(3).astype(np.float32)
        out.append(
            {
                "id": i,
                "label": f"item {i}",
                "v": dense,
                "h": dense.astype(np.float16),
                "s": SparseVector({i % 5: float(i)}, 5),
                "b": format(i % 16, "04b"),
            }
        )
    return out


def _query(sql_type: str) -> Any:
    if sql_type == "bit":
        return "1010"
    if sql_type == "sparsevec":
        return SparseVector({0: 1.0, 3: -0.5}, 5)
    q = np.array([0.5, -1.0, 0.25], dtype=np.float32)
    return q.astype(np.float16) if sql_type == "halfvec" else q


@pytest.fixture
def db(engine: Engine) -> Engine:
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(items), _rows())
    return engine


@pytest.mark.parametrize(("sql_type", "metric"), CASES, ids=[f"{t}-{m}" for t, m in CASES])
def test_top_k_by_each_metric_matches_execute(db: Engine, sql_type: str, metric: str) -> None:
    col = COLUMNS[sql_type]
    dist = getattr(col, METRICS[metric].method)(bindparam("q"))
    stmt = select(items.c.id, col, dist.label("d")).order_by(dist, items.c.id).limit(5)
    q = _query(sql_type)
    with db.connect() as conn:
        expected = conn.execute(stmt, {"q": q}).all()
        got = PreparedQuery(stmt).all(conn, q=q)
    assert len(got) == 5
    assert_same_rows(got, expected)


def test_runs_in_the_callers_transaction_and_sees_its_rows(db: Engine) -> None:
    pq = PreparedQuery(select(items.c.id, items.c.v).where(items.c.id > N).order_by(items.c.id))
    q = _query("vector")
    with db.connect() as conn:
        with conn.begin():
            conn.execute(insert(items), [{"id": N + 1, "label": "new", "v": q}])
            [(new_id, v)] = pq.all(conn)
            assert new_id == N + 1
            np.testing.assert_array_equal(v, q)
        assert pq.scalars(conn) == [N + 1]  # committed with the block
    with Session(db) as session:
        session.execute(insert(items), [{"id": N + 2, "label": "s", "v": q}])
        assert pq.scalars(session) == [N + 1, N + 2]
        session.rollback()
        assert pq.scalars(session) == [N + 1]


def test_a_bad_vector_is_refused_before_anything_is_sent(db: Engine) -> None:
    pq = PreparedQuery(select(items.c.id).order_by(items.c.v.l2_distance(bindparam("q"))).limit(3))
    with db.connect() as conn:
        with pytest.raises(InvalidVectorError, match="expected 3 dimensions, not 2"):
            pq.all(conn, q=[1.0, 2.0])
        with pytest.raises(InvalidVectorError, match="NaN not allowed in vector"):
            pq.all(conn, q=[1.0, float("nan"), 2.0])
        # nothing reached the server: the transaction is usable
        assert len(pq.all(conn, q=[1.0, 2.0, 3.0])) == 3


def test_search_settings_apply_to_the_query(db: Engine) -> None:
    pq = PreparedQuery(
        select(items.c.id, func.current_setting("hnsw.ef_search").label("ef"))
        .order_by(items.c.v.l2_distance(bindparam("q")), items.c.id)
        .limit(2)
    )
    with db.connect() as conn:
        with search_settings(conn, ef_search=77):
            got = pq.all(conn, q=_query("vector"))
        assert [r[1] for r in got] == ["77", "77"]


def test_a_server_error_is_sqlalchemys_programming_error(engine: Engine) -> None:
    pq = PreparedQuery(select(missing.c.id))
    with engine.connect() as conn, pytest.raises(sa_exc.ProgrammingError, match="no_such_table"):
        pq.all(conn)


def test_positional_and_named_parameters_bind_by_name(db: Engine) -> None:
    pq = PreparedQuery(
        select(items.c.id)
        .where(items.c.id > bindparam("lo"), items.c.id < bindparam("hi"))
        .order_by(items.c.id)
    )
    with db.connect() as conn:
        assert pq.scalars(conn, hi=6, lo=2) == [3, 4, 5]
        assert pq.scalars(conn, lo=9, hi=12) == [10, 11]


@pytest.fixture(params=ASYNC_MODES)
async def async_db(
    request: pytest.FixtureRequest, vector_database_url: str, vector_schema: str
) -> AsyncIterator[AsyncEngine]:
    eng = make_async_engine(vector_database_url, vector_schema, str(request.param))
    async with eng.begin() as conn:
        await conn.run_sync(md.create_all)
        await conn.execute(insert(items), _rows())
    yield eng
    await eng.dispose()


TOP_K = (
    select(items.c.id, items.c.v, items.c.v.cosine_distance(bindparam("q")).label("d"))
    .order_by(items.c.v.cosine_distance(bindparam("q")), items.c.id)
    .limit(bindparam("k", type_=Integer))
)


async def test_async_connection_and_session_return_executes_rows(async_db: AsyncEngine) -> None:
    pq = PreparedQuery(TOP_K)
    q = _query("vector")
    async with async_db.connect() as aconn:
        got = await pq.all_async(aconn, q=q, k=5)
        assert aconn.in_transaction()
        assert_same_rows(got, (await aconn.execute(TOP_K, {"q": q, "k": 5})).all())
        assert await pq.scalars_async(aconn, q=q, k=2) == [r[0] for r in got[:2]]
    async with AsyncSession(async_db) as session:
        await session.execute(insert(items), [{"id": N + 1, "label": "x", "v": q}])
        seen = await pq.all_async(session, q=q, k=3)
        await session.rollback()
    assert seen[0][0] == N + 1  # distance 0, seen in the session's transaction


async def test_async_bad_vector_and_server_error(async_db: AsyncEngine) -> None:
    async with async_db.connect() as aconn:
        with pytest.raises(InvalidVectorError, match="expected 3 dimensions, not 4"):
            await PreparedQuery(TOP_K).all_async(aconn, q=[1, 2, 3, 4], k=1)
        with pytest.raises(sa_exc.ProgrammingError, match="no_such_table"):
            await PreparedQuery(select(missing.c.id)).all_async(aconn)


async def test_async_query_is_prepared_again_after_its_table_changed(
    async_db: AsyncEngine,
) -> None:
    pq = PreparedQuery(select(items.c.id, items.c.v).order_by(items.c.id).limit(2))
    async with async_db.connect() as aconn:
        before = await pq.all_async(aconn)
        await aconn.commit()
        await aconn.exec_driver_sql("ALTER TABLE pitems ALTER COLUMN id TYPE bigint")
        await aconn.commit()
        try:
            after = await pq.all_async(aconn)
        except sa_exc.DBAPIError:  # asyncpg: the cached plan fails its transaction once
            await aconn.rollback()
            after = await pq.all_async(aconn)
    assert [r[0] for r in after] == [r[0] for r in before] == [1, 2]
