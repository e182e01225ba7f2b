"""``create_async_engine``: psycopg with and without the plugin, and ``postgresql+vecalchemy``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest
from conftest import ASYNC_MODES, make_async_engine
from psycopg.pq import Format
from sqlalchemy import Column, Integer, MetaData, Table, event, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from vecalchemy import Bit, HalfVec, SparseVec, SparseVector, Vector, avg
from vecalchemy.dialect import VecalchemyAsyncDialect


@pytest.fixture(params=ASYNC_MODES)
async def async_engine(
    request: pytest.FixtureRequest, vector_database_url: str, vector_schema: str
) -> AsyncIterator[AsyncEngine]:
    eng = make_async_engine(vector_database_url, vector_schema, str(request.param))
    yield eng
    await eng.dispose()


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "item"
    id: Mapped[int] = mapped_column(primary_key=True)
    embedding: Mapped[np.ndarray] = mapped_column(Vector(3, metric="cosine"))


def items_table() -> tuple[MetaData, Table]:
    md = MetaData()
    t = Table(
        "t",
        md,
        Column("id", Integer, primary_key=True),
        Column("v", Vector(3)),
        Column("h", HalfVec(3)),
        Column("s", SparseVec(4)),
        Column("b", Bit(3)),
    )
    return md, t


async def test_async_round_trip_of_all_four_types(async_engine: AsyncEngine) -> None:
    md, t = items_table()
    async with async_engine.begin() as conn:
        await conn.run_sync(md.create_all)
        await conn.execute(
            insert(t), {"id": 1, "v": [1, 2, 3], "h": [0.5, -1, 2], "s": {3: 1.5}, "b": "011"}
        )
        v, h, s, b = (await conn.execute(select(t.c.v, t.c.h, t.c.s, t.c.b))).one()
    assert v.dtype == np.float32 and v.tolist() == [1, 2, 3]
    assert h.dtype == np.float16 and h.tolist() == [0.5, -1, 2]
    assert s == SparseVector({3: 1.5}, 4)
    assert b == "011"


async def test_async_distance_query_matches_numpy(async_engine: AsyncEngine) -> None:
    md, t = items_table()
    data = np.random.default_rng(5).standard_normal((5, 3)).astype(np.float32)
    q = np.array([0.3, -0.2, 0.9], dtype=np.float32)
    async with async_engine.begin() as conn:
        await conn.run_sync(md.create_all)
        await conn.execute(insert(t), [{"id": i, "v": row} for i, row in enumerate(data)])
        got = (await conn.scalars(select(t.c.v.l2_distance(q)).order_by(t.c.id))).all()
    expected = np.linalg.norm(data.astype(np.float64) - q, axis=1)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


@pytest.mark.parametrize("mode", ["plugin", "dialect"])
async def test_async_binds_are_binary_with_the_plugin_or_dialect(
    vector_database_url: str, vector_schema: str, mode: str
) -> None:
    eng = make_async_engine(vector_database_url, vector_schema, mode)
    seen: list[dict[str, object]] = []

    @event.listens_for(eng.sync_engine, "before_cursor_execute")
    def capture(conn: object, cursor: object, stmt: str, params: object, *a: object) -> None:
        if stmt.startswith("INSERT"):
            seen.append(params)  # type: ignore[arg-type]

    md, t = items_table()
    try:
        async with eng.begin() as conn:
            await conn.run_sync(md.create_all)
            await conn.execute(insert(t), {"id": 1, "v": [1, 2, 3]})
    finally:
        await eng.dispose()
    v = seen[0]["v"]
    assert isinstance(v, np.ndarray) and v.dtype == np.float32


async def test_create_async_engine_picks_the_async_vecalchemy_dialect(
    vector_database_url: str, vector_schema: str
) -> None:
    eng = make_async_engine(vector_database_url, vector_schema, "dialect")
    try:
        assert isinstance(eng.dialect, VecalchemyAsyncDialect)
    finally:
        await eng.dispose()


async def test_async_orm_session_adds_and_searches(async_engine: AsyncEngine) -> None:
    async with async_engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    async with AsyncSession(async_engine) as session:
        session.add_all(
            [Item(id=1, embedding=[1, 0, 0]), Item(id=2, embedding=np.array([0, 1, 0]))]
        )
        await session.commit()
        nearest = (
            await session.scalars(
                select(Item).order_by(Item.embedding.distance([0.1, 0.9, 0])).limit(1)
            )
        ).one()
        assert nearest.id == 2 and nearest.embedding.dtype == np.float32
        mean = await session.scalar(select(avg(Item.embedding)))
    np.testing.assert_allclose(mean, [0.5, 0.5, 0])


async def test_async_subquery_and_label(async_engine: AsyncEngine) -> None:
    md, t = items_table()
    async with async_engine.begin() as conn:
        await conn.run_sync(md.create_all)
        await conn.execute(insert(t), [{"id": 1, "v": [3, 4, 0]}, {"id": 2, "v": [1, 0, 0]}])
        sq = select(t.c.id, t.c.v.label("e")).subquery()
        got = (
            await conn.execute(
                select(sq.c.id, sq.c.e.l2_distance([0, 0, 0]).label("d")).order_by("d")
            )
        ).all()
    assert [(r.id, r.d) for r in got] == [(2, 1.0), (1, 5.0)]


async def test_async_bad_value_is_refused_before_sending(async_engine: AsyncEngine) -> None:
    from sqlalchemy.exc import StatementError

    md, t = items_table()
    async with async_engine.begin() as conn:
        await conn.run_sync(md.create_all)
    async with async_engine.connect() as conn:
        with pytest.raises(StatementError, match="expected 3 dimensions, not 4"):
            await conn.execute(
                insert(t), [{"id": 1, "v": [1, 2, 3]}, {"id": 2, "v": [1, 2, 3, 4]}]
            )
        await conn.rollback()
        count = (await conn.execute(select(t.c.id))).all()
    assert count == []


@pytest.mark.parametrize("mode", ["plugin", "dialect"])
async def test_async_connections_get_binary_loaders(
    vector_database_url: str, vector_schema: str, mode: str
) -> None:
    eng = make_async_engine(vector_database_url, vector_schema, mode)
    try:
        async with eng.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            cur = await raw.execute("SELECT 'vector'::regtype::oid::int8")
            (oid,) = await cur.fetchone()
            assert raw.adapters.get_loader(oid, Format.BINARY) is not None
            bcur = raw.cursor(binary=True)
            await bcur.execute("SELECT '[1,2]'::vector")
            (value,) = await bcur.fetchone()
        assert value.dtype == np.float32 and value.tolist() == [1, 2]
    finally:
        await eng.dispose()
