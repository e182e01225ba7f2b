"""Executemany INSERTs on every driver: rows land, a bad row sends nothing, errors raise.

What reaches the driver is read from ``before_cursor_execute`` (the statement handed to
the driver's cursor), which every driver has; psycopg's own grouping is tested in
tests/test_inserts.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from conftest import ASYNC_MODES, make_async_engine
from sqlalchemy import Column, Integer, MetaData, Table, event, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from vecalchemy import Bit, HalfVec, InvalidVectorError, SparseVec, SparseVector, Vector


def make_table(engine: Engine) -> Table:
    t = Table(
        "em",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("v", Vector(3)),
        Column("h", HalfVec(2)),
        Column("s", SparseVec(4)),
        Column("b", Bit(3)),
    )
    t.create(engine)
    return t


def rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "id": i,
            "v": np.array([i, 0.5, -i], dtype=np.float32),
            "h": [i, 1],
            "s": {i % 4: float(i + 1)},
            "b": "101" if i % 2 else "010",
        }
        for i in range(start, start + n)
    ]


def stored(engine: Engine, t: Table) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        got = conn.execute(select(t).order_by(t.c.id)).all()
    return [(r.id, r.v.tolist(), r.h.tolist(), r.s.to_dict(), r.b) for r in got]


def expected(given: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(r["id"], r["v"].tolist(), [float(x) for x in r["h"]], r["s"], r["b"]) for r in given]


def statements_sent(engine: Engine) -> list[str]:
    sent: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def record(conn: Any, cursor: Any, stmt: str, *args: Any) -> None:
        if stmt.lstrip().upper().startswith("INSERT"):
            sent.append(stmt)

    return sent


@pytest.mark.parametrize("n", [1, 7, 250])
def test_core_executemany_lands_every_row_of_every_type(engine: Engine, n: int) -> None:
    t = make_table(engine)
    given = rows(n)
    with engine.begin() as conn:
        conn.execute(insert(t), given)
    assert stored(engine, t) == expected(given)


@pytest.mark.parametrize("bad_at", [0, 119])
def test_a_bad_vector_in_any_row_sends_nothing_and_writes_nothing(
    engine: Engine, bad_at: int
) -> None:
    t = make_table(engine)
    given = rows(120)
    given[bad_at]["v"] = [1.0, float("nan"), 2.0]
    sent = statements_sent(engine)
    with engine.begin() as conn, pytest.raises(StatementError) as err:
        conn.execute(insert(t), given)
    assert isinstance(err.value.orig, InvalidVectorError)
    assert str(err.value.orig) == "NaN not allowed in vector (element 1)"
    assert sent == []
    assert stored(engine, t) == []


def test_a_row_missing_a_column_raises_before_anything_is_sent(engine: Engine) -> None:
    t = make_table(engine)
    given = rows(5)
    del given[4]["v"]
    sent = statements_sent(engine)
    with engine.begin() as conn, pytest.raises(StatementError, match="'v'"):
        conn.execute(insert(t), given)
    assert sent == []
    assert stored(engine, t) == []


def test_unique_violation_raises_integrity_error_and_rolls_back(engine: Engine) -> None:
    t = make_table(engine)
    given = rows(6)
    given[5]["id"] = 2
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert(t), given)
    assert stored(engine, t) == []


def test_returning_executemany_returns_all_ids_in_order(engine: Engine) -> None:
    t = make_table(engine)
    given = rows(9)
    with engine.begin() as conn:
        ids = conn.execute(insert(t).returning(t.c.id, sort_by_parameter_order=True), given)
        assert ids.scalars().all() == list(range(9))
    assert stored(engine, t) == expected(given)


def test_upsert_updates_the_vector_of_an_existing_row(engine: Engine) -> None:
    t = make_table(engine)
    with engine.begin() as conn:
        conn.execute(insert(t), rows(3))
    changed = rows(4)
    for r in changed:
        r["v"] = r["v"] * 2
    stmt = pg_insert(t)
    stmt = stmt.on_conflict_do_update(index_elements=[t.c.id], set_={"v": stmt.excluded.v})
    with engine.begin() as conn:
        conn.execute(stmt, changed)
    assert [v for _, v, *_ in stored(engine, t)] == [r["v"].tolist() for r in changed]


def test_rowcount_with_preserve_rowcount_counts_every_row(engine: Engine, mode: str) -> None:
    t = make_table(engine)
    with engine.begin() as conn:
        result = conn.execution_options(preserve_rowcount=True).execute(insert(t), rows(5))
        # asyncpg's executemany reports no row count (SQLAlchemy:
        # supports_sane_multi_rowcount is False for it)
        assert result.rowcount == (-1 if mode.startswith("asyncpg") else 5)
    assert len(stored(engine, t)) == 5


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "em_item"
    id: Mapped[int] = mapped_column(primary_key=True)
    embedding: Mapped[np.ndarray] = mapped_column(Vector(3))
    sparse: Mapped[SparseVector | None] = mapped_column(SparseVec(5))


def test_orm_add_all_and_bulk_insert_land_every_row(engine: Engine) -> None:
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add_all([Item(embedding=[i, 1, 2], sparse={i: 1.0}) for i in range(4)])
        session.execute(insert(Item), [{"embedding": [9, 9, 9], "sparse": None}] * 3)
        session.commit()
        got = session.scalars(select(Item).order_by(Item.id)).all()
        assert [i.embedding.tolist()[0] for i in got] == [0, 1, 2, 3, 9, 9, 9]
        assert [None if i.sparse is None else i.sparse.to_dict() for i in got][:2] == [
            {0: 1.0},
            {1: 1.0},
        ]
        nearest = session.scalars(
            select(Item.id).order_by(Item.embedding.l2_distance([2, 1, 2])).limit(1)
        ).one()
        assert nearest == got[2].id


@pytest.fixture(params=ASYNC_MODES)
async def async_engine(
    request: pytest.FixtureRequest, vector_database_url: str, vector_schema: str
) -> AsyncIterator[AsyncEngine]:
    eng = make_async_engine(vector_database_url, vector_schema, str(request.param))
    yield eng
    await eng.dispose()


async def test_async_executemany_lands_every_row_and_a_bad_row_sends_nothing(
    async_engine: AsyncEngine,
) -> None:
    md = MetaData()
    t = Table("aem", md, Column("id", Integer, primary_key=True), Column("v", Vector(2)))
    async with async_engine.begin() as conn:
        await conn.run_sync(md.create_all)
        await conn.execute(insert(t), [{"id": i, "v": [i, -i]} for i in range(50)])
    bad = [{"id": 100 + i, "v": [i, 1]} for i in range(10)] + [{"id": 200, "v": [1, 2, 3]}]
    with pytest.raises(StatementError, match="expected 2 dimensions, not 3"):
        async with async_engine.begin() as conn:
            await conn.execute(insert(t), bad)
    async with async_engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(t)) == 50
        got = (await conn.execute(select(t.c.v).order_by(t.c.id))).scalars().all()
    assert [v.tolist() for v in got] == [[i, -i] for i in range(50)]
