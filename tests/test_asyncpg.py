"""asyncpg: vecalchemy's binary codecs, side by side with plain asyncpg and pgvector-python."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import numpy as np
import pytest
from conftest import make_async_engine
from sqlalchemy import Column, Integer, MetaData, String, Table, event, insert, select
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from vecalchemy import Bit, HalfVec, InvalidVectorError, SparseVec, SparseVector, Vector
from vecalchemy.asyncpg import register_asyncpg_codecs
from vecalchemy.dialect import VecalchemyAsyncpgDialect
from vecalchemy.testing import driver_url, libpq_conninfo

md = MetaData()
t = Table(
    "ap",
    md,
    Column("id", Integer, primary_key=True),
    Column("name", String),
    Column("v", Vector(3)),
    Column("h", HalfVec(3)),
    Column("s", SparseVec(6)),
    Column("b", Bit(5)),
)
ROWS = [
    {
        "id": i,
        "name": f"n{i}",
        "v": np.array([i, 0.5, -1.25], dtype=np.float32),
        "h": [i, 0.25, 65519.0],  # stored as 65504, as pgvector rounds
        "s": SparseVector({i: 1.5}, 6),
        "b": asyncpg.BitString("10110") if i % 2 else "01001",
    }
    for i in range(4)
]


@pytest.fixture
async def engines(
    vector_database_url: str, vector_schema: str
) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    ours = make_async_engine(vector_database_url, vector_schema, "asyncpg")
    plain = make_async_engine(vector_database_url, vector_schema, "asyncpg-text")
    async with ours.begin() as conn:
        await conn.run_sync(md.create_all)
        await conn.execute(insert(t), ROWS)
    yield ours, plain
    await ours.dispose()
    await plain.dispose()


def _norm(row: Any) -> list[Any]:
    out = []
    for v in row:
        if isinstance(v, np.ndarray):
            out.append((str(v.dtype), v.tolist()))
        elif isinstance(v, SparseVector):
            out.append(("sparse", v.to_dict(), v.dim))
        else:
            out.append((type(v).__name__, v))
    return out


async def test_the_plugin_engine_loads_every_column_as_plain_asyncpg_with_the_types(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    ours, plain = engines
    assert isinstance(ours.dialect, VecalchemyAsyncpgDialect)
    stmt = select(t).order_by(t.c.id)
    async with ours.connect() as a, plain.connect() as b:
        got = [_norm(r) for r in (await a.execute(stmt)).all()]
        reference = [_norm(r) for r in (await b.execute(stmt)).all()]
    assert got == reference
    assert got[1][3] == ("float16", [1.0, 0.25, 65504.0])
    assert got[1][5] == ("str", "10110") and got[0][5] == ("str", "01001")


async def test_vectors_travel_in_binary_with_the_plugin_and_as_text_without(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    ours, plain = engines
    seen: dict[str, list[str]] = {"ours": [], "plain": []}
    for key, eng in (("ours", ours), ("plain", plain)):

        @event.listens_for(eng.sync_engine, "before_cursor_execute")
        def record(c: Any, cur: Any, s: str, params: Any, *a: Any, key: str = key) -> None:
            if s.startswith("INSERT"):
                seen[key].extend(type(p).__name__ for p in params)

        async with eng.begin() as conn:
            await conn.execute(insert(t), {**ROWS[0], "id": 100 if key == "ours" else 101})
    # (id, name, v, h, s, b): arrays / SparseVector for asyncpg's binary codecs, else text;
    # bit is asyncpg's own binary codec either way
    assert seen["ours"] == ["int", "str", "ndarray", "ndarray", "SparseVector", "BitString"]
    assert seen["plain"] == ["int", "str", "str", "str", "str", "BitString"]


async def test_a_bad_value_is_refused_with_the_same_text_and_nothing_is_written(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    ours, plain = engines
    bad = [{**ROWS[0], "id": 200}, {**ROWS[0], "id": 201, "h": [1, 2, 65520]}]
    texts = []
    for eng in (ours, plain):
        with pytest.raises(StatementError) as err:
            async with eng.begin() as conn:
                await conn.execute(insert(t), bad)
        assert isinstance(err.value.orig, InvalidVectorError)
        texts.append(str(err.value.orig))
    assert texts[0] == texts[1]
    assert '"65520" is out of range for type halfvec' in texts[0]
    async with ours.connect() as conn:
        assert (await conn.execute(select(t.c.id).where(t.c.id >= 200))).all() == []


@pytest.mark.parametrize("order", ["pgvector-after", "pgvector-before"])
async def test_pgvector_pythons_register_vector_on_the_same_connection_still_works(
    vector_database_url: str, vector_schema: str, order: str
) -> None:
    from pgvector.asyncpg import register_vector

    eng = make_async_engine(vector_database_url, vector_schema, "asyncpg")

    if order == "pgvector-before":
        # a user's connect listener runs before the dialect's own registration...
        @event.listens_for(eng.sync_engine, "connect", insert=True)
        def first(dbapi_connection: Any, record: Any) -> None:
            from sqlalchemy.util import await_only

            await_only(register_vector(dbapi_connection.driver_connection))

    else:
        # ...or after it: then pgvector-python's codec is the one asyncpg uses
        @event.listens_for(eng.sync_engine, "connect")
        def last(dbapi_connection: Any, record: Any) -> None:
            from sqlalchemy.util import await_only

            await_only(register_vector(dbapi_connection.driver_connection))

    dense = [{k: r[k] for k in ("id", "v", "h")} for r in ROWS]
    try:
        async with eng.begin() as conn:
            await conn.run_sync(md.create_all)
            await conn.execute(insert(t), dense)
            if order == "pgvector-before":  # vecalchemy's codec won: sparse binds work
                stmt = t.update().values(s=SparseVector({1: 2.0}, 6)).where(t.c.id == 0)
                await conn.execute(stmt)
            got = (await conn.execute(select(t.c.v, t.c.h).order_by(t.c.id))).all()
            raw = await conn.get_raw_connection()
            decoded = await raw.driver_connection.fetchval(f"SELECT v FROM {t.name} LIMIT 1")
        if order == "pgvector-after":
            # pgvector-python's sparsevec encoder takes only its own SparseVector
            with pytest.raises(StatementError, match="SparseVector"):
                async with eng.begin() as conn:
                    await conn.execute(insert(t), [{"id": 50, "s": SparseVector({1: 2.0}, 6)}])
    finally:
        await eng.dispose()
    assert [r.v.tolist() for r in got] == [r["v"].tolist() for r in ROWS]
    assert [r.h.tolist() for r in got] == [[i, 0.25, 65504.0] for i in range(4)]
    assert all(r.v.dtype == np.float32 and r.h.dtype == np.float16 for r in got)
    # which codec won: the last set_type_codec on the connection
    winner = type(decoded).__module__.split(".")[0]
    assert winner == ("pgvector" if order == "pgvector-after" else "numpy")


async def test_codecs_are_found_in_the_schema_the_extension_lives_in(
    vector_database_url: str,
) -> None:
    """A database whose extension is in its own schema (not public, not on search_path)."""
    db = f"ext_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(libpq_conninfo(vector_database_url))
    await admin.execute(f'CREATE DATABASE "{db}"')
    try:
        dsn = libpq_conninfo(vector_database_url).replace("/postgres?", f"/{db}?")
        conn = await asyncpg.connect(dsn)
        await conn.execute("CREATE SCHEMA pgv")
        await conn.execute("CREATE EXTENSION vector SCHEMA pgv")
        assert await register_asyncpg_codecs(conn) == ["halfvec", "sparsevec", "vector"]
        value = await conn.fetchval("SELECT $1::pgv.vector", [1, 2, 3])
        assert value.dtype == np.float32 and value.tolist() == [1, 2, 3]
        # a plain connection's value is validated by the same rules (asyncpg wraps the error)
        with pytest.raises(asyncpg.DataError, match="NaN not allowed in vector"):
            await conn.fetchval("SELECT $1::pgv.vector", [1, float("nan")])
        await conn.close()
        url = driver_url(vector_database_url, "asyncpg").replace("/postgres?", f"/{db}?")
        eng = create_async_engine(url, plugins=["vecalchemy"])
        async with eng.connect() as sa_conn:
            got = (await sa_conn.exec_driver_sql("SELECT '[4,5]'::pgv.vector")).scalar()
        await eng.dispose()
        assert isinstance(got, np.ndarray) and got.tolist() == [4, 5]
    finally:
        await admin.execute(f'DROP DATABASE "{db}" WITH (FORCE)')
        await admin.close()
