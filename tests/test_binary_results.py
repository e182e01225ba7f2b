"""Binary results: vectors decode from binary, every other column loads as without vecalchemy."""

from __future__ import annotations

import contextlib
import datetime
import decimal
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from conftest import make_async_engine, make_engine
from libpq_trace import libpq_trace
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Double,
    Enum,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    Uuid,
    event,
    insert,
    select,
    text,
)
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects.postgresql.psycopg import PGExecutionContext_psycopg
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine.interfaces import CacheStats
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.types import UserDefinedType

from vecalchemy import Bit, HalfVec, SparseVec, SparseVector, Vector, install

# the per-statement result format is vecalchemy's psycopg 3 path; asyncpg reads every type
# with a binary codec in binary itself (tests/test_asyncpg.py compares it with plain asyncpg)
pytestmark = pytest.mark.psycopg_only(
    "binary results chosen per statement are vecalchemy's psycopg 3 path; asyncpg decodes "
    "codec'd types in binary itself and psycopg2/pg8000 read text"
)

TEXT, BINARY = 0, 1


class FloatRange(UserDefinedType[Any]):
    """A user-defined range type psycopg has no loader for (like citext or geometry)."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "floatrange"


class Pair(UserDefinedType[Any]):
    """A user composite type."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "pair"


def mixed_table(md: MetaData) -> Table:
    return Table(
        "mixed",
        md,
        Column("id", Integer, primary_key=True),
        Column("embedding", Vector(3)),
        Column("half", HalfVec(3)),
        Column("sparse", SparseVec(5)),
        Column("bits", Bit(4)),
        Column("vbits", Bit()),
        Column("big", BigInteger),
        Column("name", String(40)),
        Column("body", Text),
        Column("score", Float),
        Column("ratio", Double),
        Column("real", pg.REAL),
        Column("price", Numeric(10, 3)),
        Column("created", DateTime),
        Column("created_tz", DateTime(timezone=True)),
        Column("day", Date),
        Column("doc", pg.JSON),
        Column("docb", pg.JSONB),
        Column("uid", Uuid),
        Column("flag", Boolean),
        Column("blob", LargeBinary),
        Column("ts", pg.TSVECTOR),
        Column("mood", Enum("sad", "ok", "happy", name="mood")),
        Column("plain_bit", pg.BIT(3)),
        Column("plain_varbit", pg.BIT(varying=True)),
        Column("tags", pg.ARRAY(Text)),
        Column("nums", pg.ARRAY(Integer)),
        Column("span", FloatRange),
        Column("pair", Pair),
        Column("interval", pg.INTERVAL),
    )


ROWS = [
    {
        "id": i,
        "embedding": np.array([i, 0.5, -1.25], dtype=np.float32),
        "half": np.array([i, 0.25, 2], dtype=np.float16),
        "sparse": SparseVector({0: 1.5, 3: float(i)}, 5),
        "bits": "1010",
        "vbits": "110" * (i + 1),
        "big": 2**40 + i,
        "name": f"name {i} é",
        "body": "x" * (i * 50),
        "score": 0.1 * i,
        "ratio": 1 / 3 + i,
        "real": 0.1 + i,
        "price": decimal.Decimal("12.345") * i,
        "created": datetime.datetime(2024, 5, 6, 7, 8, 9, 123456),
        "created_tz": datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc),
        "day": datetime.date(2024, 2, 29),
        "doc": {"a": [1, 2, {"b": None}], "n": i},
        "docb": {"z": 1, "a": "é", "n": i},
        "uid": uuid.UUID(int=i + 1),
        "flag": i % 2 == 0,
        "blob": bytes(range(i, i + 20)),
        "ts": "the quick brown fox",
        "mood": ["sad", "ok", "happy"][i % 3],
        "plain_bit": "101",
        "plain_varbit": "1" * (i + 1),
        "tags": ["a", "b c", None],
        "nums": [1, None, i],
        "span": f"[{i},{i + 1.5})",
        "pair": f"({i},two)",
        "interval": datetime.timedelta(days=i, seconds=5),
    }
    for i in range(3)
]
ROWS.append({k: (v if k == "id" else None) for k, v in ROWS[0].items()} | {"id": 3})

COLUMNS = [k for k in ROWS[0] if k != "id"]


@pytest.fixture
def table(engine: Engine, raw_conn: psycopg.Connection) -> Table:
    raw_conn.execute("CREATE TYPE floatrange AS RANGE (subtype = float8)")
    raw_conn.execute("CREATE TYPE pair AS (a int, b text)")
    md = MetaData()
    t = mixed_table(md)
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(t), ROWS)
    return t


@pytest.fixture
def text_engine(vector_database_url: str, vector_schema: str) -> Iterator[Engine]:
    """The reference: plain psycopg, no vecalchemy adapters, no binary results."""
    eng = make_engine(vector_database_url, vector_schema, "text")
    yield eng
    eng.dispose()


def _norm(value: Any) -> Any:
    """Comparable form keeping the Python type (arrays by dtype and values)."""
    if isinstance(value, np.ndarray):
        return ("ndarray", str(value.dtype), value.tolist())
    if isinstance(value, SparseVector):
        return ("sparse", value.dim, value.indices.tolist(), value.values.tolist())
    return (type(value).__name__, repr(value))


def _fetch(engine: Engine, stmt: Any) -> list[list[Any]]:
    with engine.connect() as conn:
        return [[_norm(v) for v in row] for row in conn.execute(stmt)]


class FormatSpy:
    """Records the result format psycopg received for each statement on ``engine``."""

    def __init__(self, engine: Engine) -> None:
        self.formats: list[set[int]] = []
        event.listen(engine, "after_cursor_execute", self)

    def __call__(self, conn: Any, cursor: Any, *args: Any) -> None:
        res = cursor.pgresult
        if res is not None and res.nfields:
            self.formats.append({res.fformat(i) for i in range(res.nfields)})


def test_whole_mixed_table_loads_exactly_as_without_vecalchemy(
    engine: Engine, table: Table, text_engine: Engine, mode: str
) -> None:
    stmt = select(table).order_by(table.c.id)
    expected = _fetch(text_engine, stmt)
    if mode != "text":  # the reference decodes vectors with the types' text path
        assert [r[1][0] for r in expected] == ["ndarray"] * 3 + ["NoneType"]
    assert _fetch(engine, stmt) == expected


@pytest.mark.parametrize("column", COLUMNS)
def test_each_column_next_to_a_vector_loads_as_without_vecalchemy(
    engine: Engine, table: Table, text_engine: Engine, column: str
) -> None:
    stmt = select(table.c.id, table.c.embedding, table.c[column]).order_by(table.c.id)
    assert _fetch(engine, stmt) == _fetch(text_engine, stmt)


BINARY_COLUMNS = [
    "half",
    "sparse",
    "bits",
    "vbits",
    "big",
    "name",
    "body",
    "score",
    "ratio",
    "price",
    "created",
    "created_tz",
    "day",
    "doc",
    "docb",
    "uid",
    "flag",
    "blob",
]


@pytest.mark.parametrize("column", COLUMNS)
def test_binary_results_only_for_vectors_with_binary_safe_columns(
    engine: Engine, table: Table, column: str, mode: str
) -> None:
    spy = FormatSpy(engine)
    stmt = select(table.c.id, table.c.embedding, table.c[column])
    _fetch(engine, stmt)
    _fetch(engine, stmt)  # and stays so on the next execution
    binary = mode != "text" and column in BINARY_COLUMNS + ["embedding"]
    assert spy.formats == [{BINARY if binary else TEXT}] * 2


def test_statements_without_a_vector_column_stay_text(engine: Engine, table: Table) -> None:
    spy = FormatSpy(engine)
    _fetch(engine, select(table.c.id, table.c.name))
    assert spy.formats == [{TEXT}]


def test_text_statements_stay_text_and_still_decode_vectors(
    engine: Engine, table: Table, mode: str
) -> None:
    spy = FormatSpy(engine)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, embedding FROM mixed ORDER BY id")).all()
        typed = conn.execute(
            text("SELECT id, embedding FROM mixed ORDER BY id").columns(
                table.c.id, table.c.embedding
            )
        ).all()
    assert spy.formats == [{TEXT}, {TEXT}]
    assert (
        rows[0][1] == "[0,0.5,-1.25]"
        if mode == "text"
        else rows[0][1].tolist()
        == [
            0,
            0.5,
            -1.25,
        ]
    )
    assert typed[1][1].tolist() == [1, 0.5, -1.25]


def test_returning_and_insertmanyvalues_read_vectors_back(
    engine: Engine, table: Table, mode: str
) -> None:
    spy = FormatSpy(engine)
    new = [{"id": 10 + i, "embedding": [i, i, i], "name": f"n{i}"} for i in range(5)]
    with engine.begin() as conn:
        result = conn.execute(
            insert(table).returning(
                table.c.id, table.c.embedding, table.c.name, sort_by_parameter_order=True
            ),
            new,
        )
        back = [(r.id, r.embedding.tolist(), r.name) for r in result]
    assert back == [(10 + i, [i, i, i], f"n{i}") for i in range(5)]
    assert spy.formats and all(f == {BINARY if mode != "text" else TEXT} for f in spy.formats)


def test_server_side_cursor_streams_binary_results(
    engine: Engine, table: Table, mode: str
) -> None:
    cursors: list[Any] = []
    event.listen(engine, "after_cursor_execute", lambda conn, cursor, *a: cursors.append(cursor))
    stmt = select(table.c.id, table.c.embedding, table.c.name).order_by(table.c.id)
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=2).execute(stmt)
        rows = [(r.id, r.embedding.tolist()) for r in result.fetchmany(2)]
        (named,) = cursors
        fetched = named.pgresult  # the last FETCH FORWARD of the server-side cursor
        formats = {fetched.fformat(i) for i in range(fetched.nfields)}
        rows += [(r.id, None if r.embedding is None else r.embedding.tolist()) for r in result]
    assert isinstance(named, psycopg.ServerCursor)
    assert rows == [(0, [0, 0.5, -1.25]), (1, [1, 0.5, -1.25]), (2, [2, 0.5, -1.25]), (3, None)]
    assert formats == {BINARY if mode != "text" else TEXT}


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "mixed"
    id: Mapped[int] = mapped_column(primary_key=True)
    embedding: Mapped[np.ndarray | None] = mapped_column(Vector(3))
    name: Mapped[str | None] = mapped_column(String(40))
    mood: Mapped[str | None] = mapped_column(Enum("sad", "ok", "happy", name="mood"))


def test_orm_identity_loading_and_entities(engine: Engine, table: Table, mode: str) -> None:
    with Session(engine) as session:
        item = session.get(Item, 1)
        assert item is not None
        assert (item.embedding.tolist(), item.name, item.mood) == (
            [1, 0.5, -1.25],
            "name 1 é",
            "ok",
        )
        items = session.scalars(select(Item).order_by(Item.id)).all()
        assert [i.mood for i in items] == ["sad", "ok", "happy", None]
        assert items[1] is item


class Mismatch(Base):
    """A model declaring String for what the table stores as tsvector."""

    __tablename__ = "mixed"
    __table_args__ = {"extend_existing": True}
    id: Mapped[int] = mapped_column(primary_key=True)
    embedding: Mapped[np.ndarray | None] = mapped_column(Vector(3))
    ts: Mapped[str | None] = mapped_column(String)


def test_a_column_without_binary_loader_turns_the_statement_back_to_text(
    engine: Engine, table: Table, mode: str
) -> None:
    spy = FormatSpy(engine)
    stmt = select(Mismatch.id, Mismatch.embedding, Mismatch.ts).order_by(Mismatch.id)
    with engine.connect() as conn:
        conn.execute(stmt).all()
        second = conn.execute(stmt).all()
    assert second[0].ts == "'brown' 'fox' 'quick' 'the'"
    assert spy.formats[1] == {TEXT}


@contextlib.contextmanager
def bind_formats(conn: Connection) -> Iterator[list[list[str]]]:
    """Parameter format codes (0 text, 1 binary) of each Bind with parameters (libpq trace)."""
    found: list[list[str]] = []
    with libpq_trace(conn) as messages:
        yield found
    # Bind "<portal>" "<statement>" <n formats> <format codes...> <n params> ...
    binds = [m[3].split() for m in messages if m[0] == "F" and m[2] == "Bind"]
    found.extend(b[3 : 3 + int(b[2])] for b in binds if int(b[2]))


def test_top_k_query_compiles_once_and_binds_the_vector_in_binary(
    engine: Engine, table: Table, mode: str
) -> None:
    hits: list[Any] = []

    @event.listens_for(engine, "after_cursor_execute")
    def record(conn: Any, cursor: Any, stmt: str, params: Any, ctx: Any, many: bool) -> None:
        hits.append((ctx.compiled, ctx.cache_hit))

    with engine.connect() as conn, bind_formats(conn) as formats:
        for q in ([1, 0, 0], [0, 1, 0], [0.5, 0.5, 0.5]):
            stmt = select(table.c.id).order_by(table.c.embedding.cosine_distance(q)).limit(2)
            conn.execute(stmt).all()
    assert len({id(c) for c, _ in hits}) == 1
    assert [h for _, h in hits][1:] == [CacheStats.CACHE_HIT] * 2
    if mode == "text":  # the query vector in text, LIMIT bound (binary int)
        assert formats == [["0", "1"]] * 3
    else:  # the query vector in binary; LIMIT written into the SQL (vecalchemy.compiler)
        assert formats == [["1"]] * 3


class Doc(Base):
    __tablename__ = "docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    embedding: Mapped[np.ndarray] = mapped_column(Vector(3))


def test_orm_add_all_sends_vectors_in_binary_through_insertmanyvalues(
    engine: Engine, mode: str
) -> None:
    Doc.__table__.create(engine)  # type: ignore[attr-defined]
    with Session(engine) as session, bind_formats(session.connection()) as formats:
        session.add_all([Doc(embedding=np.full(3, i, dtype=np.float32)) for i in range(4)])
        session.flush()
        ids = [d.id for d in session.scalars(select(Doc).order_by(Doc.id))]
        session.commit()
    # one INSERT ... VALUES (...), (...) RETURNING id for the four rows
    assert len(ids) == 4
    assert formats[0] == ["1" if mode != "text" else "0"] * 4


def test_core_and_orm_bulk_insert_send_vectors_in_binary(engine: Engine, mode: str) -> None:
    Doc.__table__.create(engine)  # type: ignore[attr-defined]
    rows = [{"id": i, "embedding": np.full(3, i, dtype=np.float32)} for i in range(3)]
    with Session(engine) as session, bind_formats(session.connection()) as formats:
        session.execute(insert(Doc), rows)
        session.connection().execute(
            insert(Doc.__table__), [r | {"id": r["id"] + 3} for r in rows]
        )
        session.commit()
    if mode == "text":
        # plain psycopg engine: executemany, one Bind per row, (id, embedding)
        assert formats == [["1", "0"]] * 6
    else:
        # vecalchemy: one multi-row INSERT per call (vecalchemy.inserts), all binary
        assert formats == [["1", "1"] * 3] * 2


# --- async ------------------------------------------------------------------------------


@pytest.fixture
async def async_engine(
    vector_database_url: str, vector_schema: str, mode: str
) -> AsyncIterator[AsyncEngine]:
    eng = make_async_engine(vector_database_url, vector_schema, mode)
    yield eng
    await eng.dispose()


async def test_async_mixed_table_loads_exactly_as_without_vecalchemy(
    async_engine: AsyncEngine, table: Table, text_engine: Engine
) -> None:
    for stmt in (
        select(table).order_by(table.c.id),
        select(table.c.id, table.c.embedding, table.c.created_tz, table.c.docb).order_by(
            table.c.id
        ),
    ):
        async with async_engine.connect() as conn:
            got = [[_norm(v) for v in row] for row in await conn.execute(stmt)]
        assert got == _fetch(text_engine, stmt)


async def test_async_statements_returning_vectors_use_binary_results(
    async_engine: AsyncEngine, table: Table, mode: str
) -> None:
    formats: list[set[int]] = []

    @event.listens_for(async_engine.sync_engine, "after_cursor_execute")
    def record(conn: Any, cursor: Any, *args: Any) -> None:
        res = cursor._cursor.pgresult  # psycopg's AsyncCursor behind SQLAlchemy's adapter
        formats.append({res.fformat(i) for i in range(res.nfields)})

    async with async_engine.connect() as conn:
        await conn.execute(select(table.c.id, table.c.embedding))
        await conn.execute(select(table.c.id, table.c.ts))
    assert formats == [{BINARY if mode != "text" else TEXT}, {TEXT}]


def test_install_on_a_dialect_with_its_own_execution_context_uses_cursor_events(
    vector_database_url: str, vector_schema: str, table: Table, text_engine: Engine
) -> None:
    class CustomContext(PGExecutionContext_psycopg):
        pass

    eng = make_engine(vector_database_url, vector_schema, "text")
    eng.dialect.execution_ctx_cls = CustomContext
    assert install(eng)
    assert eng.dialect.execution_ctx_cls is CustomContext
    spy = FormatSpy(eng)
    stmt = select(table).order_by(table.c.id)
    try:
        assert _fetch(eng, select(table.c.id, table.c.embedding, table.c.docb)) == _fetch(
            text_engine, select(table.c.id, table.c.embedding, table.c.docb)
        )
        assert _fetch(eng, stmt) == _fetch(text_engine, stmt)
    finally:
        eng.dispose()
    assert spy.formats == [{BINARY}, {TEXT}]
