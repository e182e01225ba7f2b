"""One bad vector writes nothing, also when the ORM splits an executemany into groups.

``session.execute(insert(Doc), rows)`` and ``session.execute(update(Doc), rows)`` are
sent by SQLAlchemy's ORM as one executemany per run of rows with the same keys (for an
INSERT also the same keys holding ``None``) and, for joined inheritance, table by table;
vecalchemy validates every row before the first group is sent (vecalchemy.batches).
Each test catches the error and commits, then counts what the server holds; what
reaches the driver is read from ``before_cursor_execute``, which every driver has.
Core ``conn.execute(insert(t), rows)``, a flush and the legacy ``bulk_*_mappings``
methods need nothing: their tests pin that.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import psycopg
import pytest
from conftest import ASYNC_MODES, make_async_engine
from sqlalchemy import ForeignKey, String, event, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import PendingRollbackError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from vecalchemy import (
    Bit,
    HalfVec,
    InvalidVectorError,
    SparseVec,
    SparseVector,
    Vector,
    batches,
)


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "ba_doc"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str | None] = mapped_column(String)
    rank: Mapped[int] = mapped_column(server_default="0")
    # (the attribute key differs from the column name: bulk rows use attribute keys)
    v: Mapped[np.ndarray | None] = mapped_column("vec", Vector(3))
    h: Mapped[np.ndarray | None] = mapped_column(HalfVec(2))
    s: Mapped[SparseVector | None] = mapped_column(SparseVec(4))
    b: Mapped[str | None] = mapped_column(Bit(3))


class Animal(Base):
    __tablename__ = "ba_animal"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String)
    v: Mapped[np.ndarray | None] = mapped_column(Vector(2))
    __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "animal"}


class Dog(Animal):
    __tablename__ = "ba_dog"
    id: Mapped[int] = mapped_column(ForeignKey("ba_animal.id"), primary_key=True)
    h: Mapped[np.ndarray | None] = mapped_column(HalfVec(2))
    __mapper_args__ = {"polymorphic_identity": "dog"}


class CommaVector(Vector):
    """A user's type that also binds ``"1,2,3"``: validated through its own method."""

    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if isinstance(value, str) and not value.startswith("["):
            value = [float(x) for x in value.split(",")]
        return super().process_bind_param(value, dialect)


class Note(Base):
    __tablename__ = "ba_note"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str | None] = mapped_column(String)
    v: Mapped[Any] = mapped_column(CommaVector(3))


#: (attribute, bad value, the type's own message)
BAD = {
    "wrong-dim": ("v", [1.0, 2.0], "vector(3): expected 3 dimensions, not 2"),
    "nan": ("v", [1.0, math.nan, 3.0], "NaN not allowed in vector (element 1)"),
    "inf": ("v", [1.0, math.inf, 3.0], "infinite value not allowed in vector (element 1)"),
    "halfvec-range": ("h", [65520.0, 0.0], '"65520" is out of range for type halfvec'),
    "sparse-index": ("s", {5: 1.0}, "sparsevec index out of bounds: 5 is not in [0, 4)"),
    "bit-length": ("b", "1010", "bit string length 4 does not match type bit(3)"),
}


def good(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": i,
        "v": [i, 0.5, -i],
        "h": [i, 1.0],
        "s": {i % 4: float(i + 1)},
        "b": "101" if i % 2 else "010",
        **extra,
    }


def mixed_rows(n: int = 6) -> list[dict[str, Any]]:
    """Rows in runs of differing keys: with a title, without, with a ``None`` title."""
    out = []
    for i in range(n):
        if i % 3 == 0:
            out.append(good(i, title=f"t{i}"))
        elif i % 3 == 1:
            out.append(good(i))
        else:
            out.append(good(i, title=None, rank=i))
    return out


def inserts_sent(engine: Engine) -> list[str]:
    sent: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def record(conn: Any, cursor: Any, stmt: str, *args: Any) -> None:
        if stmt.lstrip().upper().startswith(("INSERT", "UPDATE")):
            sent.append(stmt)

    return sent


def count(raw_conn: psycopg.Connection, table: str = "ba_doc") -> int:
    row = raw_conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def bind_error(session: Session, stmt: Any, row: dict[str, Any]) -> str:
    """The message the type's bind processing gives for ``row`` alone."""
    with pytest.raises(StatementError) as err:
        session.execute(stmt, [row])
    assert isinstance(err.value.orig, InvalidVectorError)
    session.rollback()
    return str(err.value.orig)


# --- ORM bulk INSERT ------------------------------------------------------------------


@pytest.mark.parametrize("case", list(BAD))
def test_bad_vector_in_the_last_key_group_inserts_nothing(
    engine: Engine, raw_conn: psycopg.Connection, case: str
) -> None:
    Base.metadata.create_all(engine)
    key, value, message = BAD[case]
    rows = mixed_rows()
    rows[-1][key] = value
    sent = inserts_sent(engine)
    with Session(engine) as session:
        alone = bind_error(session, insert(Doc), rows[-1])
        with pytest.raises(StatementError) as err:
            session.execute(insert(Doc), rows)
        session.commit()  # a caller catching the error keeps whatever was sent
    assert count(raw_conn) == 0
    assert sent == []
    orig = err.value.orig
    assert isinstance(orig, InvalidVectorError)
    assert message in alone
    assert str(orig) == f"{alone} (row {len(rows) - 1}, Doc.{key})"
    assert str(orig) in str(err.value)


def test_rows_differing_only_in_none_values_insert_nothing(
    engine: Engine, raw_conn: psycopg.Connection
) -> None:
    # the same keys in every row, but the ORM leaves a None title out: two groups
    Base.metadata.create_all(engine)
    rows = [good(0, title="a"), good(1, title=None), good(2, title="c")]
    rows[2]["v"] = [1.0, 2.0]
    with Session(engine) as session:
        with pytest.raises(StatementError) as err:
            session.execute(insert(Doc), rows)
        session.commit()
    assert count(raw_conn) == 0
    assert str(err.value.orig) == "vector(3): expected 3 dimensions, not 2 (row 2, Doc.v)"


def test_the_first_bad_row_is_named(engine: Engine, raw_conn: psycopg.Connection) -> None:
    Base.metadata.create_all(engine)
    rows = mixed_rows(9)
    rows[4]["b"] = "11"
    rows[7]["v"] = [math.nan, 0.0, 0.0]
    with Session(engine) as session:
        with pytest.raises(StatementError) as err:
            session.execute(insert(Doc), rows)
        session.commit()
    assert count(raw_conn) == 0
    assert str(err.value.orig).endswith("(row 4, Doc.b)")


def test_differing_key_sets_all_valid_insert_every_row(
    engine: Engine, raw_conn: psycopg.Connection
) -> None:
    Base.metadata.create_all(engine)
    rows = mixed_rows(7)
    rows[1]["v"] = None  # a NULL vector is not a bad one
    rows[4]["v"] = np.array([4, 0.5, -4], dtype=np.float64)
    with Session(engine) as session:
        session.execute(insert(Doc), rows)
        session.commit()
        got = session.scalars(select(Doc).order_by(Doc.id)).all()
    assert [(d.id, d.title, d.rank) for d in got] == [
        (r["id"], r.get("title"), r.get("rank", 0)) for r in rows
    ]
    assert [None if d.v is None else d.v.tolist() for d in got] == [
        None if r["v"] is None else [float(x) for x in r["v"]] for r in rows
    ]
    assert [d.h.tolist() for d in got] == [[float(x) for x in r["h"]] for r in rows]
    assert [d.s.to_dict() for d in got] == [r["s"] for r in rows]
    assert [d.b for d in got] == [r["b"] for r in rows]
    assert count(raw_conn) == len(rows)


def test_upsert_with_differing_key_sets_inserts_nothing(
    engine: Engine, raw_conn: psycopg.Connection
) -> None:
    Base.metadata.create_all(engine)
    rows = mixed_rows()
    rows[-1]["h"] = [math.inf, 0.0]
    with Session(engine) as session:
        with pytest.raises(StatementError, match="infinite value not allowed in halfvec"):
            session.execute(pg_insert(Doc).on_conflict_do_nothing(), rows)
        session.commit()
        assert count(raw_conn) == 0
        session.execute(pg_insert(Doc).on_conflict_do_nothing(), mixed_rows())
        session.commit()
    assert count(raw_conn) == 6


def test_joined_inheritance_bad_vector_in_the_subtable_inserts_nothing(
    engine: Engine, raw_conn: psycopg.Connection
) -> None:
    # one key set, but the ORM inserts every base-table row before the first dog row
    Base.metadata.create_all(engine)
    rows: list[dict[str, Any]] = [{"id": i, "v": [i, 1.0], "h": [1.0, i]} for i in range(3)]
    rows[2]["h"] = [1.0, 2.0, 3.0]
    with Session(engine) as session:
        with pytest.raises(StatementError, match=r"halfvec\(2\): expected 2 dimensions, not 3"):
            session.execute(insert(Dog), rows)
        session.commit()
        assert (count(raw_conn, "ba_animal"), count(raw_conn, "ba_dog")) == (0, 0)
        with pytest.raises(StatementError) as err:
            session.execute(insert(Dog), {"id": 9, "v": [1.0, 2.0], "h": [1.0]})
        session.commit()
        assert (count(raw_conn, "ba_animal"), count(raw_conn, "ba_dog")) == (0, 0)
        assert str(err.value.orig).endswith("(row 0, Dog.h)")
        rows[2]["h"] = [1.0, 2.0]
        session.execute(insert(Dog), rows)
        session.commit()
        got = session.scalars(select(Dog).order_by(Dog.id)).all()
    assert [(d.kind, np.asarray(d.v).tolist(), np.asarray(d.h).tolist()) for d in got] == [
        ("dog", [float(i), 1.0], [1.0, 2.0 if i == 2 else float(i)]) for i in range(3)
    ]


def test_a_type_overriding_process_bind_param_is_validated_through_it(
    engine: Engine, raw_conn: psycopg.Connection
) -> None:
    Base.metadata.create_all(engine)
    rows: list[dict[str, Any]] = [
        {"id": 0, "title": "a", "v": "1,2,3"},
        {"id": 1, "v": [4, 5, 6]},
        {"id": 2, "v": "7,8"},
    ]
    with Session(engine) as session:
        with pytest.raises(StatementError) as err:
            session.execute(insert(Note), rows)
        session.commit()
        assert count(raw_conn, "ba_note") == 0
        assert str(err.value.orig).endswith("not 2 (row 2, Note.v)")
        rows[2]["v"] = "7,8,9"
        session.execute(insert(Note), rows)
        session.commit()
        got = session.scalars(select(Note.v).order_by(Note.id)).all()
    assert [v.tolist() for v in got] == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]


def test_one_key_set_is_left_to_the_bind_processors(
    engine: Engine, raw_conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    Base.metadata.create_all(engine)
    validated: list[int] = []
    original = batches._validate
    monkeypatch.setattr(
        batches, "_validate", lambda *a: validated.append(len(a[2])) or original(*a)
    )
    rows = [good(i, title="t") for i in range(5)]
    rows[4]["v"] = [1.0]
    with Session(engine) as session:
        with pytest.raises(StatementError, match="expected 3 dimensions, not 1"):
            session.execute(insert(Doc), rows)
        session.rollback()
        assert validated == []
        session.execute(insert(Doc), mixed_rows(4))
        session.commit()
    assert validated == [4]
    assert count(raw_conn) == 4


# --- ORM bulk UPDATE by primary key -----------------------------------------------------


@pytest.mark.parametrize("case", list(BAD))
def test_bulk_update_with_a_bad_vector_in_the_last_key_group_updates_nothing(
    engine: Engine, raw_conn: psycopg.Connection, case: str
) -> None:
    Base.metadata.create_all(engine)
    key, value, message = BAD[case]
    with Session(engine) as session:
        session.execute(insert(Doc), [good(i, title="old") for i in range(4)])
        session.commit()
    changes: list[dict[str, Any]] = [
        {"id": 0, "title": "new", "v": [9, 9, 9]},
        {"id": 1, "v": [8, 8, 8], "b": "111"},
        {"id": 2, "title": "new", "v": [7, 7, 7]},
        {"id": 3, "v": [6, 6, 6], key: value},
    ]
    sent = inserts_sent(engine)
    with Session(engine) as session:
        with pytest.raises(StatementError) as err:
            session.execute(update(Doc), changes)
        session.commit()
    assert sent == []
    assert isinstance(err.value.orig, InvalidVectorError)
    assert message in str(err.value.orig)
    assert str(err.value.orig).endswith(f"(row 3, Doc.{key})")
    got = raw_conn.execute("SELECT title, vec::text FROM ba_doc ORDER BY id").fetchall()
    assert got == [("old", f"[{i},0.5,{-i}]") for i in range(4)]


def test_bulk_update_with_differing_key_sets_all_valid_updates_every_row(
    engine: Engine, raw_conn: psycopg.Connection
) -> None:
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.execute(insert(Doc), [good(i, title="old") for i in range(4)])
        session.commit()
        session.execute(
            update(Doc),
            [
                {"id": 0, "title": "new", "v": [9, 9, 9]},
                {"id": 1, "h": [0.5, 0.25]},
                {"id": 2, "title": None, "s": {3: 2.0}, "b": "111"},
                {"id": 3, "v": None},
            ],
        )
        session.commit()
    got = raw_conn.execute(
        "SELECT title, vec::text, h::text, s::text, b::text FROM ba_doc ORDER BY id"
    ).fetchall()
    assert got == [
        ("new", "[9,9,9]", "[0,1]", "{1:1}/4", "010"),
        ("old", "[1,0.5,-1]", "[0.5,0.25]", "{2:2}/4", "101"),
        (None, "[2,0.5,-2]", "[2,1]", "{4:2}/4", "111"),
        ("old", None, "[3,1]", "{4:4}/4", "101"),
    ]


# --- paths that were atomic already -------------------------------------------------------


def test_core_executemany_with_differing_key_sets_sends_nothing(
    engine: Engine, raw_conn: psycopg.Connection
) -> None:
    # Core compiles one statement from the first row's keys and processes every row
    # before sending: a later row's bad vector, or a key missing from it, sends nothing
    Base.metadata.create_all(engine)
    t = Doc.__table__
    sent = inserts_sent(engine)
    first: dict[str, Any] = {"id": 0, "vec": [1, 2, 3]}
    with engine.connect() as conn:
        with pytest.raises(StatementError) as err:
            conn.execute(insert(t), [first, {"id": 1, "title": "x", "vec": [1, 2]}])
        assert isinstance(err.value.orig, InvalidVectorError)
        with pytest.raises(StatementError, match="A value is required for bind parameter"):
            conn.execute(insert(t), [{**first, "title": "x"}, {"id": 1, "vec": [1, 2, 3]}])
        conn.commit()
    assert sent == []
    assert count(raw_conn) == 0
    with engine.begin() as conn:
        conn.execute(insert(t), [first, {"id": 1, "title": "x", "vec": [4, 5, 6]}])
    assert len(sent) >= 1
    assert count(raw_conn) == 2


def test_a_failed_flush_keeps_nothing(engine: Engine, raw_conn: psycopg.Connection) -> None:
    # a flush also sends one INSERT per key set (rank set or left to its default), but a
    # failed flush rolls the session's transaction back: nothing can be committed
    Base.metadata.create_all(engine)
    sent = inserts_sent(engine)
    with Session(engine) as session:
        session.add_all([Doc(id=0, rank=5, v=[1, 2, 3]), Doc(id=1, v=[1, 2])])
        with pytest.raises(StatementError, match="expected 3 dimensions, not 2"):
            session.flush()
        with pytest.raises(PendingRollbackError):
            session.commit()
        session.rollback()
    assert len(sent) == 1  # the first group was sent, then rolled back
    assert count(raw_conn) == 0


def test_legacy_bulk_methods_keep_nothing(engine: Engine, raw_conn: psycopg.Connection) -> None:
    # Session.bulk_insert_mappings / bulk_update_mappings run no do_orm_execute event and
    # send each key group as it comes, but like a flush they roll the session's
    # transaction back on failure
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.execute(insert(Doc), [good(i, title="old") for i in range(2)])
        session.commit()
    rows = mixed_rows()[2:]
    rows[-1]["v"] = [1.0]
    changes = [{"id": 0, "title": "new"}, {"id": 1, "v": [1.0]}]
    sent = inserts_sent(engine)
    for bulk in (
        lambda session: session.bulk_insert_mappings(Doc.__mapper__, rows),
        lambda session: session.bulk_update_mappings(Doc.__mapper__, changes),
    ):
        with Session(engine) as session:
            with pytest.raises(StatementError, match="expected 3 dimensions, not 1"):
                bulk(session)
            with pytest.raises(PendingRollbackError):
                session.commit()
            session.rollback()
    # the groups before the bad row's were sent, then rolled back
    assert [stmt.split()[0] for stmt in sent] == ["INSERT"] * 3 + ["UPDATE"]
    assert raw_conn.execute("SELECT id, title FROM ba_doc ORDER BY id").fetchall() == [
        (0, "old"),
        (1, "old"),
    ]


# --- AsyncSession -----------------------------------------------------------------------


@pytest.fixture(params=ASYNC_MODES)
async def async_engine(
    request: pytest.FixtureRequest, vector_database_url: str, vector_schema: str
) -> AsyncIterator[AsyncEngine]:
    eng = make_async_engine(vector_database_url, vector_schema, str(request.param))
    yield eng
    await eng.dispose()


async def test_async_session_differing_key_sets_bad_vector_writes_nothing(
    async_engine: AsyncEngine,
) -> None:
    async with async_engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    rows = mixed_rows()
    rows[-1]["s"] = {0: math.nan}
    async with AsyncSession(async_engine) as session:
        with pytest.raises(StatementError) as err:
            await session.execute(insert(Doc), rows)
        await session.commit()
        assert await session.scalar(select(func.count()).select_from(Doc)) == 0
        assert isinstance(err.value.orig, InvalidVectorError)
        assert str(err.value.orig).startswith("NaN not allowed in sparsevec")
        assert str(err.value.orig).endswith("(row 5, Doc.s)")
        rows[-1]["s"] = {0: 1.0}
        await session.execute(insert(Doc), rows)
        await session.commit()
        changes = [{"id": 0, "title": "x"}, {"id": 1, "v": [1, 1, 1]}, {"id": 2, "v": [1]}]
        with pytest.raises(StatementError) as err:
            await session.execute(update(Doc), changes)
        await session.commit()
        assert str(err.value.orig).endswith("(row 2, Doc.v)")
        got = (await session.scalars(select(Doc).order_by(Doc.id))).all()
    assert [(d.id, d.title, np.asarray(d.v).tolist()) for d in got] == [
        (r["id"], r.get("title"), [float(x) for x in r["v"]]) for r in rows
    ]
