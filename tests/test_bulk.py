"""copy_rows / fetch_matrix: binary COPY in and out, against the real server."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from conftest import ASYNC_MODES, make_async_engine, make_engine
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    SmallInteger,
    Table,
    Text,
    Uuid,
    func,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from vecalchemy import HalfVec, InvalidVectorError, SparseVec, SparseVector, Vector
from vecalchemy.bulk import copy_rows, copy_rows_async, fetch_matrix, fetch_matrix_async

DIM = 8


@pytest.fixture
def items(engine: Engine) -> Table:
    md = MetaData()
    table = Table(
        "items",
        md,
        Column("id", Integer, primary_key=True),
        Column("big", BigInteger),
        Column("small", SmallInteger),
        Column("score", Float),
        Column("flag", Boolean),
        Column("note", Text),
        Column("embedding", Vector(DIM)),
    )
    md.create_all(engine)
    return table


def _matrix(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def _all_rows(engine: Engine, table: Table) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(table).order_by(table.c.id))]


def test_copy_rows_round_trips_a_matrix_and_fixed_width_columns(
    engine: Engine, items: Table
) -> None:
    m = _matrix(50)
    ids = np.arange(50)
    with engine.begin() as conn:
        count = copy_rows(
            conn,
            items,
            {
                "id": ids,
                "big": ids * 10_000_000_000,
                "small": (ids % 7).astype(np.int16),
                "score": ids / 4,
                "flag": ids % 2 == 0,
                "embedding": m,
            },
            progress=False,
        )
    assert count == 50
    rows = _all_rows(engine, items)
    assert [r[:6] for r in rows] == [
        (i, i * 10_000_000_000, i % 7, i / 4, i % 2 == 0, None) for i in range(50)
    ]
    assert np.array_equal(np.stack([np.asarray(r[6]) for r in rows]), m)


def test_copy_rows_writes_nulls_and_text_through_the_row_path(
    engine: Engine, items: Table
) -> None:
    m = _matrix(20)
    notes = [None if i % 3 == 0 else f"note {i} é" for i in range(20)]
    scores = [None if i % 4 == 0 else i * 0.5 for i in range(20)]
    with engine.begin() as conn:
        copy_rows(
            conn,
            items,
            {"id": range(20), "note": notes, "score": scores, "embedding": m},
            progress=False,
        )
    rows = _all_rows(engine, items)
    assert [(r[0], r[3], r[5]) for r in rows] == list(zip(range(20), scores, notes, strict=True))
    assert np.array_equal(np.stack([np.asarray(r[6]) for r in rows]), m)


def test_copy_rows_writes_other_column_types_through_the_row_path(engine: Engine) -> None:
    md = MetaData()
    table = Table(
        "typed_items",
        md,
        Column("id", Integer, primary_key=True),
        Column("at", DateTime(timezone=True)),
        Column("day", Date),
        Column("key", Uuid),
        Column("doc", JSONB),
        Column("price", Numeric(10, 3)),
        Column("blob", LargeBinary),
        Column("embedding", Vector(DIM)),
    )
    md.create_all(engine)
    rows = [
        (
            i,
            datetime(2024, 1, 2, 3, 4, 5, i, tzinfo=timezone.utc),
            date(2024, 2, 1 + i),
            uuid.UUID(int=i + 1),
            {"n": i, "tags": ["a", None]},
            Decimal(f"{i}.125"),
            bytes([i, 0, 255]),
        )
        for i in range(5)
    ]
    names = [c.name for c in table.columns][:7]
    data: dict[str, object] = {name: [r[k] for r in rows] for k, name in enumerate(names)}
    data["embedding"] = m = _matrix(5)
    with engine.begin() as conn:
        copy_rows(conn, table, data, progress=False)
    got = _all_rows(engine, table)
    assert [r[:7] for r in got] == rows
    assert np.array_equal(np.stack([np.asarray(r[7]) for r in got]), m)


def test_copy_rows_writes_datetime64_columns_at_c_speed(engine: Engine) -> None:
    """datetime64 arrays for date / timestamp / timestamptz columns go through the record
    path (one buffer, no Python objects) and read back as the same instants."""
    md = MetaData()
    table = Table(
        "dated_items",
        md,
        Column("id", Integer, primary_key=True),
        Column("day", Date),
        Column("at", DateTime),
        Column("at_tz", DateTime(timezone=True)),
        Column("embedding", Vector(DIM)),
    )
    md.create_all(engine)
    days = np.array(["1999-12-31", "2000-01-01", "2024-02-29", "0001-01-01", "9999-12-31"])
    day = days.astype("datetime64[D]")
    at = np.array(
        [
            "1999-12-31T23:59:59.999999",
            "2000-01-01T00:00:00",
            "2024-02-29T12:34:56.789012",
            "1900-06-01T00:00:00.000001",
            "2262-04-11T23:47:16",
        ],
        dtype="datetime64[us]",
    )
    n = len(day)
    with engine.begin() as conn:
        copy_rows(
            conn,
            table,
            {
                "id": np.arange(n),
                "day": day,
                "at": at.astype("datetime64[ns]"),  # whole microseconds: exact
                "at_tz": at,
                "embedding": _matrix(n),
            },
            progress=False,
        )
    got = _all_rows(engine, table)
    assert [r[1] for r in got] == [d.astype(object) for d in day]
    assert [r[2] for r in got] == [t.astype(object) for t in at]
    assert [r[3] for r in got] == [t.astype(object).replace(tzinfo=timezone.utc) for t in at]


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("day", np.array(["2024-01-01", "NaT"], dtype="datetime64[D]"), "NaT at row 1"),
        ("day", np.array(["2024-01-01T10:00"], dtype="datetime64[m]"), "whole in 'D'"),
        ("at", np.array(["2024-01-01T00:00:00.000000001"], dtype="datetime64[ns]"), "'us'"),
    ],
)
def test_copy_rows_refuses_datetime64_values_the_column_cannot_hold(
    engine: Engine, column: str, values: np.ndarray, message: str
) -> None:
    md = MetaData()
    table = Table("dated", md, Column("day", Date), Column("at", DateTime))
    md.create_all(engine)
    with engine.begin() as conn, pytest.raises(InvalidVectorError, match=message):
        copy_rows(conn, table, {column: values}, progress=False)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(table)).scalar_one() == 0


@pytest.mark.parametrize("with_text", [False, True], ids=["record-path", "row-path"])
def test_copy_rows_chunks_cross_boundaries_without_losing_rows(
    engine: Engine, items: Table, with_text: bool
) -> None:
    m = _matrix(53)
    data: dict[str, object] = {"id": np.arange(53), "embedding": m}
    if with_text:
        data["note"] = [str(i) for i in range(53)]
    with engine.begin() as conn:
        copy_rows(conn, items, data, chunk_rows=7, progress=False)
    rows = _all_rows(engine, items)
    assert [r[0] for r in rows] == list(range(53))
    assert np.array_equal(np.stack([np.asarray(r[6]) for r in rows]), m)


def test_copy_rows_progress_bar_is_drawn_with_tqdm_and_skipped_without_it(
    engine: Engine,
    items: Table,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with engine.begin() as conn:
        copy_rows(conn, items, {"id": np.arange(5), "embedding": _matrix(5)})
    assert "5/5" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # import raises ImportError
    with engine.begin() as conn:
        copy_rows(conn, items, {"id": np.arange(5, 9), "embedding": _matrix(4)})
    assert "4/4" not in capsys.readouterr().err
    assert [r[0] for r in _all_rows(engine, items)] == list(range(9))


def test_copy_rows_refuses_a_nan_row_before_sending_anything(engine: Engine, items: Table) -> None:
    m = _matrix(30)
    m[17, 3] = np.nan
    with engine.connect() as conn:
        conn.execute(items.insert(), {"id": 100, "embedding": m[0]})
        with pytest.raises(InvalidVectorError) as err:
            copy_rows(conn, items, {"id": np.arange(30), "embedding": m}, progress=False)
        # nothing was sent: no COPY failed, the transaction goes on with its own row
        assert conn.execute(select(func.count()).select_from(items)).scalar() == 1
        conn.commit()
    assert str(err.value) == (
        "embedding (vector(8)): NaN not allowed in vector (row 17, element 3)"
    )
    assert [r[0] for r in _all_rows(engine, items)] == [100]


def test_copy_rows_refuses_infinity_and_float32_overflow(engine: Engine, items: Table) -> None:
    m = _matrix(4).astype(np.float64)
    m[2, 5] = 1e39
    with engine.begin() as conn, pytest.raises(InvalidVectorError) as err:
        copy_rows(conn, items, {"id": np.arange(4), "embedding": m}, progress=False)
    assert str(err.value) == (
        'embedding (vector(8)): "1e+39" is out of range for type vector (row 2, element 5)'
    )
    m[2, 5] = -np.inf
    with engine.begin() as conn, pytest.raises(InvalidVectorError, match="infinite value"):
        copy_rows(conn, items, {"id": np.arange(4), "embedding": m}, progress=False)
    assert _all_rows(engine, items) == []


def test_copy_rows_refuses_a_matrix_of_the_wrong_width(engine: Engine, items: Table) -> None:
    with engine.begin() as conn, pytest.raises(InvalidVectorError) as err:
        copy_rows(conn, items, {"id": np.arange(3), "embedding": _matrix(3, 5)}, progress=False)
    assert str(err.value) == "embedding (vector(8)): expected 8 dimensions, not 5"


def test_copy_rows_refuses_a_one_dimensional_value(engine: Engine, items: Table) -> None:
    with engine.begin() as conn, pytest.raises(InvalidVectorError) as err:
        copy_rows(conn, items, {"embedding": np.zeros(DIM)}, progress=False)
    assert (
        str(err.value) == "embedding (vector(8)): expected a 2-D (n, dim) matrix, got shape (8,)"
    )


def test_copy_rows_refuses_columns_of_different_lengths(engine: Engine, items: Table) -> None:
    with engine.begin() as conn, pytest.raises(ValueError) as err:
        copy_rows(conn, items, {"id": np.arange(4), "embedding": _matrix(5)}, progress=False)
    assert str(err.value) == (
        "copy_rows: column 'embedding' has 5 rows, expected 4 "
        "(all columns must have the same number of rows)"
    )
    assert _all_rows(engine, items) == []


@pytest.mark.parametrize("column", ["id", "embedding"])
def test_copy_rows_refuses_a_zero_dimensional_array_for_a_column(
    engine: Engine, items: Table, column: str
) -> None:
    data: dict[str, Any] = {"id": np.arange(2), "embedding": _matrix(2)}
    data[column] = np.array(5) if column == "id" else np.array(1.0, dtype=np.float32)
    error = ValueError if column == "id" else InvalidVectorError
    with engine.begin() as conn, pytest.raises(error) as err:
        copy_rows(conn, items, data, progress=False)
    expected = (
        "copy_rows: column 'id' needs one value a row (a sequence or a 1-D array), "
        "got a 0-d array (array(5))"
        if column == "id"
        else "embedding (vector(8)): expected a 2-D (n, dim) matrix, got shape ()"
    )
    assert str(err.value) == expected
    assert _all_rows(engine, items) == []


def test_copy_rows_refuses_an_unknown_column(engine: Engine, items: Table) -> None:
    with engine.begin() as conn, pytest.raises(KeyError, match="has no column 'vec'"):
        copy_rows(conn, items, {"vec": _matrix(2)}, progress=False)


def test_copy_rows_refuses_integers_beyond_the_column_range(engine: Engine, items: Table) -> None:
    with engine.begin() as conn, pytest.raises(InvalidVectorError) as err:
        copy_rows(
            conn,
            items,
            {"id": np.array([1, 2**31]), "embedding": _matrix(2)},
            progress=False,
        )
    assert str(err.value) == (
        "id (integer): values must lie in [-2147483648, 2147483647], got [1, 2147483648]"
    )


def test_copy_rows_joins_the_callers_transaction(engine: Engine, items: Table) -> None:
    with engine.connect() as conn:
        copy_rows(conn, items, {"id": np.arange(5), "embedding": _matrix(5)}, progress=False)
        assert conn.execute(select(func.count()).select_from(items)).scalar() == 5
        conn.rollback()
    assert _all_rows(engine, items) == []


@pytest.mark.parametrize("with_text", [False, True], ids=["record-path", "row-path"])
def test_copy_rows_shows_a_progress_bar_with_the_row_count(
    engine: Engine, items: Table, capsys: pytest.CaptureFixture[str], with_text: bool
) -> None:
    data: dict[str, object] = {"id": np.arange(40), "embedding": _matrix(40)}
    if with_text:
        data["note"] = [f"n{i}" for i in range(40)]
    with engine.begin() as conn:
        copy_rows(conn, items, data, chunk_rows=16)
    err = capsys.readouterr().err
    assert "COPY items" in err and "40/40" in err
    assert len(_all_rows(engine, items)) == 40


def test_copy_rows_aborts_the_copy_when_an_iterable_column_ends_early(
    engine: Engine, items: Table
) -> None:
    m = _matrix(10)
    notes = (f"n{i}" for i in range(6))  # a generator: its length is known only at the end
    with engine.connect() as conn:
        with pytest.raises(ValueError) as err:
            copy_rows(
                conn,
                items,
                {"id": np.arange(10), "note": notes, "embedding": m},
                chunk_rows=4,
                progress=False,
            )
        # the first chunk was sent; the COPY and its transaction were aborted, and the
        # connection is usable again after a rollback
        conn.rollback()
        assert conn.execute(select(func.count()).select_from(items)).scalar() == 0
    assert str(err.value) == "copy_rows: column 'note' ended after 6 rows, expected 10"
    assert _all_rows(engine, items) == []


def test_copy_rows_raises_the_servers_error_and_leaves_the_connection_usable(
    engine: Engine, items: Table
) -> None:
    with engine.begin() as conn:
        conn.execute(items.insert(), {"id": 3, "embedding": np.ones(DIM)})
    with engine.connect() as conn:
        with pytest.raises(Exception, match="duplicate key value violates unique constraint"):
            copy_rows(conn, items, {"id": np.arange(10), "embedding": _matrix(10)}, chunk_rows=4)
        conn.rollback()
        assert conn.execute(select(func.count()).select_from(items)).scalar() == 1


def test_copy_rows_and_fetch_matrix_refuse_a_driver_they_do_not_know(
    engine: Engine, items: Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    with engine.connect() as conn:
        conn.execute(items.insert(), {"id": 1, "embedding": np.ones(DIM)})
        monkeypatch.setattr(conn.dialect, "driver", "pygresql")
        with pytest.raises(NotImplementedError) as err:
            copy_rows(conn, items, {"id": np.arange(2) + 5, "embedding": _matrix(2)})
        assert str(err.value) == (
            "copy_rows: binary COPY is not implemented for the 'pygresql' driver; use "
            "psycopg (postgresql+psycopg://), asyncpg, psycopg2 or pg8000, or executemany "
            "INSERTs / a plain select"
        )
        with pytest.raises(NotImplementedError, match="^fetch_matrix: .* 'pygresql' driver"):
            fetch_matrix(conn, items.c.embedding)
        monkeypatch.undo()
        # nothing was sent: the transaction goes on
        assert conn.execute(select(func.count()).select_from(items)).scalar() == 1


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str | None] = mapped_column("title_text", Text)
    half: Mapped[np.ndarray] = mapped_column(HalfVec(4))


def test_copy_rows_takes_an_orm_class_attribute_names_and_a_session(engine: Engine) -> None:
    Base.metadata.create_all(engine)
    m = _matrix(6, 4)
    with Session(engine) as session:
        copy_rows(
            session,
            Doc,
            {"id": np.arange(6), "title": list("abcdef"), "half": m},
            progress=False,
        )
        session.commit()
        docs = session.scalars(select(Doc).order_by(Doc.id)).all()
        assert [d.title for d in docs] == list("abcdef")
        assert np.array_equal(np.stack([d.half for d in docs]), m.astype(np.float16))


def test_copy_rows_refuses_halfvec_values_beyond_65504(engine: Engine) -> None:
    Base.metadata.create_all(engine)
    m = _matrix(3, 4)
    m[1, 0] = 70000
    with Session(engine) as session, pytest.raises(InvalidVectorError) as err:
        copy_rows(session, Doc, {"id": np.arange(3), "half": m}, progress=False)
    assert str(err.value) == (
        'half (halfvec(4)): "70000" is out of range for type halfvec (row 1, element 0) '
        "(largest magnitude 65504)"
    )


# --- fetch_matrix ---------------------------------------------------------------------


def test_fetch_matrix_equals_the_row_wise_fetch(engine: Engine, items: Table) -> None:
    with engine.begin() as conn:
        copy_rows(conn, items, {"id": np.arange(40), "embedding": _matrix(40)}, progress=False)
    with engine.connect() as conn:
        stmt = select(items.c.embedding).where(items.c.id >= 5).order_by(items.c.id.desc())
        matrix = fetch_matrix(conn, stmt)
        rows = np.stack([np.asarray(v) for v in conn.execute(stmt).scalars()])
    assert matrix.dtype == np.float32
    assert matrix.shape == (35, DIM)
    assert np.array_equal(matrix, rows)


def test_fetch_matrix_of_a_column_returns_every_row(engine: Engine, items: Table) -> None:
    m = _matrix(25)
    with engine.begin() as conn:
        copy_rows(conn, items, {"id": np.arange(25), "embedding": m}, progress=False)
        got = fetch_matrix(conn, items.c.embedding)
    assert np.array_equal(got[np.lexsort(got.T[::-1])], m[np.lexsort(m.T[::-1])])


def test_fetch_matrix_binds_a_query_vector(engine: Engine, items: Table) -> None:
    m = _matrix(30)
    with engine.begin() as conn:
        copy_rows(conn, items, {"id": np.arange(30), "embedding": m}, progress=False)
        stmt = select(items.c.embedding).order_by(items.c.embedding.l2_distance(m[11])).limit(3)
        got = fetch_matrix(conn, stmt)
    nearest = np.argsort(((m - m[11]) ** 2).sum(axis=1))[:3]
    assert np.array_equal(got, m[nearest])


def test_fetch_matrix_inlines_string_binds_and_percent_signs_exactly(
    engine: Engine, items: Table
) -> None:
    m = _matrix(7)
    notes = ["it's 100%", "50%% off", "%s", "a\\b", "x", "y%z", "z"]
    with engine.begin() as conn:
        copy_rows(conn, items, {"id": np.arange(7), "note": notes, "embedding": m})
    with engine.connect() as conn:
        # each condition matches one row, and only if its text reaches the server as
        # written: string binds, a "%" operator with binds, "%" in a quoted literal
        stmt = (
            select(items.c.embedding)
            .where(
                or_(
                    *(items.c.note == n for n in notes[:4]),
                    items.c.id % 7 == 4,
                    items.c.note == literal_column("'y%z'"),
                )
            )
            .order_by(items.c.id)
        )
        with_binds = fetch_matrix(conn, stmt)
        # no bind at all: "%" in the SQL text, outside and inside quotes
        text_only = text("items.id % 3 = 1 OR items.note = 'y%z'")
        no_binds = fetch_matrix(
            conn, select(items.c.embedding).where(text_only).order_by(text("items.id"))
        )
    assert np.array_equal(with_binds, m[:6])
    assert np.array_equal(no_binds, m[[1, 4, 5]])


def test_fetch_matrix_reads_in_the_callers_transaction(engine: Engine, items: Table) -> None:
    m = _matrix(5)
    with engine.begin() as conn:
        copy_rows(conn, items, {"id": np.arange(3), "embedding": m[:3]}, progress=False)
    stmt = select(items.c.embedding).order_by(items.c.id)
    with engine.connect() as conn:
        conn.execution_options(isolation_level="REPEATABLE READ")
        first = fetch_matrix(conn, stmt)  # takes the transaction's snapshot
        with engine.begin() as other:
            copy_rows(other, items, {"id": [3, 4], "embedding": m[3:]}, progress=False)
        again = fetch_matrix(conn, stmt)  # same snapshot: the new rows are not seen
        conn.commit()
        after = fetch_matrix(conn, stmt)
    assert np.array_equal(first, m[:3]) and np.array_equal(again, m[:3])
    assert np.array_equal(after, m)


def test_fetch_matrix_of_an_empty_result_has_the_column_width(
    engine: Engine, items: Table
) -> None:
    with engine.connect() as conn:
        got = fetch_matrix(conn, items.c.embedding)
    assert got.shape == (0, DIM)


def test_fetch_matrix_refuses_a_null_row(engine: Engine, items: Table) -> None:
    with engine.begin() as conn:
        conn.execute(
            items.insert(), [{"id": 1, "embedding": np.ones(DIM)}, {"id": 2, "embedding": None}]
        )
        with pytest.raises(InvalidVectorError, match="non-NULL vectors of 8 dimensions"):
            fetch_matrix(conn, select(items.c.embedding).order_by(items.c.id))


def test_fetch_matrix_refuses_a_non_vector_column(engine: Engine, items: Table) -> None:
    with engine.connect() as conn, pytest.raises(TypeError) as err:
        fetch_matrix(conn, items.c.note)
    assert str(err.value) == (
        "fetch_matrix: expected one Vector or HalfVec column (or a select of one), got Text()"
    )


def test_fetch_matrix_of_halfvec_is_float16(engine: Engine) -> None:
    Base.metadata.create_all(engine)
    m = _matrix(9, 4)
    with Session(engine) as session:
        copy_rows(session, Doc, {"id": np.arange(9), "half": m}, progress=False)
        got = fetch_matrix(session, select(Doc.half).order_by(Doc.id))
    assert got.dtype == np.float16
    assert np.array_equal(got, m.astype(np.float16))


# --- async ----------------------------------------------------------------------------

#: the async tests run in the modes that have an async driver (psycopg 3, asyncpg)
async_modes = pytest.mark.parametrize("mode", ASYNC_MODES, indirect=True)


@pytest.fixture
async def async_engine(
    vector_database_url: str, vector_schema: str, mode: str
) -> AsyncIterator[AsyncEngine]:
    eng = make_async_engine(vector_database_url, vector_schema, mode)
    yield eng
    await eng.dispose()


@pytest.fixture
def sync_items(vector_database_url: str, vector_schema: str) -> Iterator[Table]:
    eng = make_engine(vector_database_url, vector_schema, "text")
    md = MetaData()
    table = Table(
        "aitems",
        md,
        Column("id", Integer, primary_key=True),
        Column("note", Text),
        Column("embedding", Vector(DIM)),
    )
    md.create_all(eng)
    eng.dispose()
    yield table


@async_modes
async def test_copy_rows_async_and_fetch_matrix_async_round_trip(
    async_engine: AsyncEngine, sync_items: Table
) -> None:
    m = _matrix(45)
    async with async_engine.begin() as conn:
        await copy_rows_async(
            conn, sync_items, {"id": np.arange(45), "embedding": m}, chunk_rows=10, progress=False
        )
        await copy_rows_async(
            conn,
            sync_items,
            {"id": np.arange(45, 50), "note": ["x", None, "z", "w", "v"], "embedding": m[:5]},
            progress=False,
        )
    async with async_engine.connect() as conn:
        got = await fetch_matrix_async(
            conn, select(sync_items.c.embedding).order_by(sync_items.c.id)
        )
        notes = (await conn.execute(select(sync_items.c.note).where(sync_items.c.id >= 45))).all()
    assert np.array_equal(got, np.concatenate([m, m[:5]]))
    assert [n for (n,) in notes] == ["x", None, "z", "w", "v"]


@async_modes
async def test_copy_rows_async_refuses_a_nan_row_before_sending_anything(
    async_engine: AsyncEngine, sync_items: Table
) -> None:
    m = _matrix(12)
    m[4, 0] = np.nan
    async with async_engine.begin() as conn:
        with pytest.raises(InvalidVectorError, match=r"NaN not allowed in vector \(row 4"):
            await copy_rows_async(conn, sync_items, {"embedding": m}, progress=False)
        count = (await conn.execute(select(func.count()).select_from(sync_items))).scalar()
    assert count == 0


@async_modes
async def test_fetch_matrix_async_binds_a_query_vector_and_reads_in_the_transaction(
    async_engine: AsyncEngine, sync_items: Table
) -> None:
    m = _matrix(20)
    async with async_engine.begin() as conn:
        await copy_rows_async(conn, sync_items, {"id": np.arange(20), "embedding": m})
    stmt = (
        select(sync_items.c.embedding)
        .where(sync_items.c.note.is_(None))
        .order_by(sync_items.c.embedding.l2_distance(m[7]))
        .limit(3)
    )
    async with async_engine.connect() as conn:
        await conn.execution_options(isolation_level="REPEATABLE READ")
        first = await fetch_matrix_async(conn, stmt)  # takes the transaction's snapshot
        async with async_engine.begin() as other:  # rows nearer than any, not in the snapshot
            await copy_rows_async(other, sync_items, {"id": [20, 21], "embedding": m[[7, 7]]})
        again = await fetch_matrix_async(conn, stmt)
        await conn.commit()
        after = await fetch_matrix_async(conn, stmt)
    nearest = np.argsort(((m - m[7]) ** 2).sum(axis=1))[:3]
    assert np.array_equal(first, m[nearest]) and np.array_equal(again, m[nearest])
    assert np.array_equal(after, m[[7, 7, 7]])


def test_copy_rows_writes_sparse_vectors_and_nulls(engine: Engine) -> None:
    md = MetaData()
    table = Table("sparse_items", md, Column("id", Integer), Column("sv", SparseVec(6)))
    md.create_all(engine)
    values = [SparseVector({0: 1.5, 4: -2.0}, 6), None, {2: 3.0}]
    with engine.begin() as conn:
        copy_rows(conn, table, {"id": [1, 2, 3], "sv": values}, progress=False)
    with engine.connect() as conn:
        got = conn.execute(select(table.c.sv).order_by(table.c.id)).scalars().all()
    assert got == [SparseVector({0: 1.5, 4: -2.0}, 6), None, SparseVector({2: 3.0}, 6)]


def test_copy_rows_refuses_floats_for_a_boolean_column(engine: Engine, items: Table) -> None:
    with engine.begin() as conn, pytest.raises(InvalidVectorError) as err:
        copy_rows(conn, items, {"id": np.arange(2), "flag": np.array([0.5, 1.0])}, progress=False)
    assert str(err.value) == "flag (boolean): expected bools, got dtype float64"
