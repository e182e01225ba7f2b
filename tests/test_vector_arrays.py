"""``ARRAY(Vector(n))`` and ``ARRAY(HalfVec(n))`` columns (multi-vector rows) on every driver
mode: values round-trip as lists of ``(n,)`` arrays (lists of lists for the compat types),
NULL elements and arrays, empty and multidimensional arrays; binary where the mode is
binary; every element checked before anything is sent; max-sim queries against NumPy.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from libpq_trace import libpq_trace
from psycopg import sql
from sqlalchemy import (
    ARRAY,
    Column,
    Integer,
    MetaData,
    Table,
    create_engine,
    func,
    insert,
    select,
    type_coerce,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import vecalchemy
from vecalchemy import HalfVec, InvalidVectorError, SparseVec, SparseVector, Vector
from vecalchemy.arrays import VectorList, parse_array_text, split_array_binary
from vecalchemy.compat.pgvector import HALFVEC, VECTOR
from vecalchemy.search import best_chunk_distance
from vecalchemy.testing import libpq_conninfo

#: modes whose engines read vector arrays: vecalchemy's dialects (plugin, dialect,
#: asyncpg, psycopg2, pg8000) and plain asyncpg, which parses arrays of any type itself
READING_MODES = ("plugin", "dialect", "asyncpg", "asyncpg-text", "psycopg2", "pg8000")
#: modes whose ARRAY type is vecalchemy's (binds checked and placed as a whole)
DIALECT_MODES = ("plugin", "dialect", "asyncpg", "psycopg2", "pg8000")


def docs_table(engine: Engine | Connection, dims: int | None = None) -> Table:
    md = MetaData()
    t = Table(
        "doc",
        md,
        Column("id", Integer, primary_key=True),
        Column("chunks", ARRAY(Vector(3), dimensions=dims)),
        Column("halves", postgresql.ARRAY(HalfVec(2), dimensions=dims)),
    )
    md.create_all(engine)
    return t


def count(engine: Engine, t: Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t)).scalar_one())


def assert_vectors(got: Any, expected: list[Any], dtype: Any) -> None:
    """``got`` is a list of ``(n,)`` arrays of ``dtype`` (or None) equal to ``expected``."""
    assert isinstance(got, list) and len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        if e is None:
            assert g is None
        else:
            assert type(g) is np.ndarray and g.dtype == dtype and g.shape == (len(e),)
            assert np.array_equal(g, np.asarray(e, dtype=dtype))


# --- round trips ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", READING_MODES)
def test_vector_arrays_round_trip_with_null_and_empty(engine: Engine) -> None:
    # (plain asyncpg uses SQLAlchemy's ARRAY, which needs dimensions= for list elements)
    t = docs_table(engine, dims=1 if engine.dialect.driver == "asyncpg" else None)
    with engine.begin() as conn:
        conn.execute(
            insert(t),
            [
                {
                    "id": 1,
                    "chunks": [[1, 2, 3], None, np.array([4.5, 5, 6])],
                    "halves": [(0.5, 1)],
                },
                {"id": 2, "chunks": [], "halves": None},
                {"id": 3, "chunks": None, "halves": [None, [65504, -2]]},
                {"id": 4, "chunks": np.arange(6.0).reshape(2, 3), "halves": []},
            ],
        )
        rows = conn.execute(select(t.c.chunks, t.c.halves).order_by(t.c.id)).all()
    assert_vectors(rows[0].chunks, [[1, 2, 3], None, [4.5, 5, 6]], np.float32)
    assert_vectors(rows[0].halves, [[0.5, 1]], np.float16)
    assert (rows[1].chunks, rows[1].halves) == ([], None)
    assert rows[2].chunks is None
    assert_vectors(rows[2].halves, [None, [65504, -2]], np.float16)
    assert_vectors(rows[3].chunks, [[0, 1, 2], [3, 4, 5]], np.float32)
    assert rows[3].halves == []


@pytest.mark.parametrize("mode", READING_MODES)
def test_compat_arrays_round_trip_as_lists_of_lists(engine: Engine) -> None:
    md = MetaData()
    t = Table(
        "a",
        md,
        Column("id", Integer, primary_key=True),
        Column("embeddings", ARRAY(VECTOR(3), dimensions=1)),
        Column("halves", ARRAY(HALFVEC(2), dimensions=1)),
    )
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(t),
            [
                {"id": 1, "embeddings": [[1, 2, 3], None, [0.1, 5, 6]], "halves": [[0.5, 1]]},
                {"id": 2, "embeddings": [], "halves": None},
            ],
        )
        rows = conn.execute(select(t.c.embeddings, t.c.halves).order_by(t.c.id)).all()
    assert [tuple(r) for r in rows] == [
        ([[1.0, 2.0, 3.0], None, [float(np.float32(0.1)), 5.0, 6.0]], [[0.5, 1.0]]),
        ([], None),
    ]
    assert all(type(x) is float for x in rows[0].embeddings[0])


@pytest.mark.parametrize("mode", READING_MODES)
def test_sparse_vector_arrays_round_trip(engine: Engine) -> None:
    md = MetaData()
    t = Table(
        "s",
        md,
        Column("id", Integer, primary_key=True),
        Column("terms", ARRAY(SparseVec(5), dimensions=1)),
    )
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(t), {"id": 1, "terms": [{0: 1.5, 4: -2.0}, None, SparseVector({}, 5)]})
        (got,) = conn.execute(select(t.c.terms)).one()
    assert got == [SparseVector({0: 1.5, 4: -2.0}, 5), None, SparseVector({}, 5)]


@pytest.mark.parametrize("mode", READING_MODES)
def test_two_dimensional_arrays_round_trip(engine: Engine) -> None:
    t = docs_table(engine, dims=2)
    grid = [[[1, 2, 3], [4, 5, 6]], [[7, 8, 9], None]]
    with engine.begin() as conn:
        conn.execute(insert(t), {"id": 1, "chunks": grid, "halves": [[[1, 2]], [[3, 4]]]})
        row = conn.execute(select(t.c.chunks, t.c.halves)).one()
        ndims = conn.exec_driver_sql("SELECT array_dims(chunks) FROM doc").scalar_one()
    assert ndims == "[1:2][1:2]"
    assert len(row.chunks) == 2
    assert_vectors(row.chunks[0], grid[0], np.float32)
    assert_vectors(row.chunks[1], grid[1], np.float32)
    assert_vectors(row.halves[1], [[3, 4]], np.float16)


@pytest.mark.parametrize("mode", DIALECT_MODES)
def test_the_nesting_of_a_bound_value_is_read_from_its_elements(engine: Engine) -> None:
    # no dimensions=: a list of numbers is one vector, a list of vectors a sub-array
    t = docs_table(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(t),
            [
                {"id": 1, "chunks": [[[1, 2, 3]], [[4, 5, 6]]], "halves": [np.ones((2, 2))]},
                {"id": 2, "chunks": [[None], [[1, 1, 1]]], "halves": [[None, None]]},
            ],
        )
        dims = conn.exec_driver_sql(
            "SELECT array_dims(chunks), array_dims(halves) FROM doc ORDER BY id"
        ).all()
    assert [tuple(d) for d in dims] == [("[1:2][1:1]", "[1:1][1:2]"), ("[1:2][1:1]", "[1:1][1:2]")]


@pytest.mark.parametrize("mode", ["text"])
def test_plain_psycopg_refuses_arrays_it_leaves_as_text(engine: Engine) -> None:
    t = docs_table(engine, dims=1)
    with engine.begin() as conn:
        conn.execute(insert(t), {"id": 1, "chunks": [[1, 2, 3]], "halves": [[1, 2]]})
        with pytest.raises(InvalidVectorError, match=r'plugins=\["vecalchemy"\]'):
            conn.execute(select(t.c.chunks)).all()
        with pytest.raises(InvalidVectorError, match=r'plugins=\["vecalchemy"\]'):
            conn.execute(select(t.c.halves)).all()


@pytest.mark.parametrize("mode", ["text"])
def test_install_makes_a_plain_psycopg_engine_read_arrays(engine: Engine) -> None:
    t = docs_table(engine, dims=1)
    vecalchemy.install(engine)
    with engine.begin() as conn:
        conn.execute(insert(t), {"id": 1, "chunks": [[1, 2, 3], None], "halves": [[1, 2]]})
        row = conn.execute(select(t.c.chunks, t.c.halves)).one()
    assert_vectors(row.chunks, [[1, 2, 3], None], np.float32)
    assert_vectors(row.halves, [[1, 2]], np.float16)


@pytest.mark.parametrize("mode", ["plugin", "asyncpg", "pg8000"])
def test_arrays_from_array_agg_and_text_statements(engine: Engine) -> None:
    md = MetaData()
    t = Table("v", md, Column("id", Integer, primary_key=True), Column("e", Vector(2)))
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(t), [{"id": 1, "e": [1, 2]}, {"id": 2, "e": [3, 4]}])
        agg = conn.execute(select(func.array_agg(t.c.e).label("all"))).scalar_one()
        raw = conn.exec_driver_sql("SELECT array_agg(e ORDER BY id) FROM v").scalar_one()
        typed = conn.execute(
            select(type_coerce(func.array_agg(t.c.e), ARRAY(Vector(2))))
        ).scalar_one()
    assert sorted(v.tolist() for v in agg) == [[1.0, 2.0], [3.0, 4.0]]
    assert_vectors(typed, [[1, 2], [3, 4]], np.float32)
    if engine.dialect.driver == "pg8000":
        assert raw == '{"[1,2]","[3,4]"}'  # (a text statement: pg8000 leaves it as text)
    else:
        assert_vectors(raw, [[1, 2], [3, 4]], np.float32)


# --- the wire --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["plugin", "dialect"])
def test_psycopg_sends_and_reads_vector_arrays_in_binary(engine: Engine) -> None:
    t = docs_table(engine)
    with engine.connect() as conn, libpq_trace(conn) as messages:
        conn.execute(insert(t), {"id": 1, "chunks": [[1, 2, 3], None], "halves": [[1, 2]]})
        row = conn.execute(select(t.c.chunks, t.c.halves).where(t.c.id == 1)).one()
        conn.commit()
    binds = [m[3].split() for m in messages if m[0] == "F" and m[2] == "Bind"]
    # Bind: portal, statement, format count, formats (id is an int: text or binary)
    assert binds[0][2] == "3" and binds[0][4:6] == ["1", "1"]  # both arrays in binary
    fields = [m[3].split() for m in messages if m[0] == "B" and m[2] == "RowDescription"]
    assert fields[-1][7::7] == ["1", "1"]  # the select's two columns, in binary
    assert_vectors(row.chunks, [[1, 2, 3], None], np.float32)
    assert_vectors(row.halves, [[1, 2]], np.float16)


@pytest.mark.parametrize("mode", ["plugin", "asyncpg"])
def test_the_driver_itself_loads_arrays_with_vecalchemy_adapters(engine: Engine) -> None:
    # psycopg: the array loaders registered over vecalchemy's; asyncpg: its codecs (binary)
    t = docs_table(engine)
    with engine.begin() as conn:
        conn.execute(insert(t), {"id": 1, "chunks": [[1, 2, 3], None], "halves": []})
        raw = conn.exec_driver_sql("SELECT chunks FROM doc").scalar_one()
    assert type(raw) is list and raw[1] is None
    assert type(raw[0]) is np.ndarray and raw[0].dtype == np.float32


# --- validation -------------------------------------------------------------------------


BAD = [
    ("chunks", [[1, 2, 3], [1, 2]], "array element 1: vector(3): expected 3 dimensions, not 2"),
    ("chunks", [[1, 2, 3], [1, float("nan"), 3]], "array element 1: NaN not allowed in vector"),
    ("chunks", [None, [1, 2, float("inf")]], "array element 1: infinite value not allowed"),
    ("halves", [[1, 2], [70000, 1]], 'array element 1: "70000" is out of range for type halfvec'),
]


@pytest.mark.parametrize("mode", DIALECT_MODES + ("asyncpg-text", "text"))
def test_a_bad_element_in_any_row_writes_nothing(engine: Engine, mode: str) -> None:
    t = docs_table(engine, dims=1)
    good = {"chunks": [[1, 2, 3]], "halves": [[1, 2]]}
    for column, value, message in BAD:
        rows = [{"id": 1, **good}, {"id": 2, **good}, {"id": 3, **good, column: value}]
        with pytest.raises(StatementError) as info, engine.begin() as conn:
            conn.execute(insert(t), rows)
        assert isinstance(info.value.orig, InvalidVectorError)
        if mode in DIALECT_MODES:  # (on plain engines SQLAlchemy's ARRAY checks each element)
            assert message in str(info.value.orig)
        assert count(engine, t) == 0


@pytest.mark.parametrize("mode", ["plugin", "asyncpg", "psycopg2"])
def test_multidimensional_positions_and_ragged_values(engine: Engine) -> None:
    t = docs_table(engine)
    cases = [
        ([[[1, 2, 3], [1, 2, 3]], [[1, 2, 3], [0, 0]]], "array element [1][1]: vector(3): "),
        ([[[1, 2, 3], [1, 2, 3]], [[1, 2, 3]]], "matching dimensions (array element 1)"),
        ([[[1, 2, 3]], [1, 2, 3]], "matching dimensions (array element 1)"),
        ([[[1, 2, 3]], None], "matching dimensions (array element 1)"),
        ([1, 2, 3], "expected a list of vectors, got one vector"),
        ("{}", "expected a list of vectors, got str"),
    ]
    for value, message in cases:
        with pytest.raises(StatementError) as info, engine.begin() as conn:
            conn.execute(insert(t), {"id": 1, "chunks": value})
        assert isinstance(info.value.orig, InvalidVectorError)
        assert message in str(info.value.orig), str(info.value.orig)
    assert count(engine, t) == 0


@pytest.mark.parametrize("mode", ["plugin", "asyncpg"])
def test_orm_rows_load_and_update_their_arrays(engine: Engine) -> None:
    class Base(DeclarativeBase):
        pass

    class Doc(Base):
        __tablename__ = "doc"
        id: Mapped[int] = mapped_column(primary_key=True)
        chunks: Mapped[list[np.ndarray] | None] = mapped_column(ARRAY(Vector(3)))

    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add(Doc(id=1, chunks=[[1, 2, 3], [4, 5, 6]]))
        session.commit()
        doc = session.get(Doc, 1)
        assert doc is not None and isinstance(doc.chunks, VectorList)
        doc.chunks = [np.array([1, 2, 3]), np.array([7, 8, 9])]  # compared at flush
        session.commit()
        session.expire_all()
        assert session.scalars(select(Doc.chunks)).one() == [[1, 2, 3], [7, 8, 9]]


# --- max-sim ----------------------------------------------------------------------------


def chunked_corpus(seed: int = 7) -> dict[int, list[np.ndarray | None] | None]:
    rng = np.random.default_rng(seed)
    corpus: dict[int, list[np.ndarray | None] | None] = {}
    for doc_id in range(1, 41):
        n = int(rng.integers(0, 6))
        chunks: list[np.ndarray | None] = [
            rng.standard_normal(8).astype(np.float32) for _ in range(n)
        ]
        if doc_id % 9 == 0 and chunks:
            chunks.insert(1, None)
        corpus[doc_id] = None if doc_id % 13 == 0 else chunks
    return corpus


def numpy_best(
    corpus: dict[int, list[np.ndarray | None] | None], q: np.ndarray, metric: str
) -> dict[int, float]:
    """The reference: per document with chunks, the smallest distance (float64)."""
    q64 = q.astype(np.float64)
    out = {}
    for doc_id, chunks in corpus.items():
        m = np.array([c for c in (chunks or []) if c is not None], dtype=np.float64)
        if len(m) == 0:
            continue
        d = {
            "l2": np.linalg.norm(m - q64, axis=1),
            "inner_product": -(m @ q64),
            "cosine": 1 - (m @ q64) / (np.linalg.norm(m, axis=1) * np.linalg.norm(q64)),
            "l1": np.abs(m - q64).sum(axis=1),
        }[metric]
        out[doc_id] = float(d.min())
    return out


@pytest.mark.parametrize("mode", DIALECT_MODES + ("asyncpg-text", "text"))
def test_best_chunk_distance_matches_numpy(engine: Engine) -> None:
    md = MetaData()
    t = Table(
        "doc",
        md,
        Column("id", Integer, primary_key=True),
        Column("chunks", ARRAY(Vector(8, metric="cosine"), dimensions=1)),
    )
    md.create_all(engine)
    corpus = chunked_corpus()
    q = np.random.default_rng(11).standard_normal(8).astype(np.float32)
    with engine.begin() as conn:
        conn.execute(insert(t), [{"id": i, "chunks": c} for i, c in corpus.items()])
        for metric in ("cosine", "l2", "inner_product", "l1"):
            best = best_chunk_distance(t.c.chunks, q, metric).label("best")
            rows = conn.execute(
                select(t.c.id, best).where(best.isnot(None)).order_by(best, t.c.id).limit(10)
            ).all()
            expected = sorted(numpy_best(corpus, q, metric).items(), key=lambda kv: kv[1])[:10]
            # ids exactly; distances to 1e-5 relative (pgvector sums float4 products)
            assert [r.id for r in rows] == [i for i, _ in expected], metric
            assert [r.best for r in rows] == pytest.approx(
                [d for _, d in expected], rel=1e-5, abs=1e-6
            )
        # the declared metric (cosine) by default; NULL for NULL and empty arrays
        all_rows = dict(conn.execute(select(t.c.id, best_chunk_distance(t.c.chunks, q))).all())
    reference = numpy_best(corpus, q, "cosine")
    assert {i for i, d in all_rows.items() if d is None} == set(corpus) - set(reference)
    assert max(abs(all_rows[i] - d) for i, d in reference.items()) < 1e-5


@pytest.mark.parametrize("mode", ["dialect"])
def test_best_chunk_distance_in_an_orm_query(engine: Engine) -> None:
    class Base(DeclarativeBase):
        pass

    class Page(Base):
        __tablename__ = "page"
        id: Mapped[int] = mapped_column(primary_key=True)
        chunks: Mapped[list[np.ndarray]] = mapped_column(ARRAY(HalfVec(2, metric="l2")))

    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add_all(
            [
                Page(id=1, chunks=[[5, 5], [1, 0]]),
                Page(id=2, chunks=[[0, 3]]),
                Page(id=3, chunks=[]),
            ]
        )
        session.commit()
        best = best_chunk_distance(Page.chunks, [1, 1]).label("best")
        rows = session.execute(select(Page, best).order_by(best).limit(2)).all()
    assert [(page.id, dist) for page, dist in rows] == [(1, 1.0), (2, pytest.approx(5**0.5))]


def test_best_chunk_distance_refusals() -> None:
    md = MetaData()
    t = Table(
        "t",
        md,
        Column("chunks", ARRAY(Vector(3))),
        Column("ints", ARRAY(Integer)),
        Column("v", Vector(3)),
    )
    with pytest.raises(ValueError, match="give metric="):
        best_chunk_distance(t.c.chunks, [1, 2, 3])
    with pytest.raises(ValueError, match="unknown metric 'dot'"):
        best_chunk_distance(t.c.chunks, [1, 2, 3], "dot")
    with pytest.raises(TypeError, match="hamming_distance"):
        best_chunk_distance(t.c.chunks, [1, 2, 3], "hamming")
    for col in (t.c.ints, t.c.v):
        with pytest.raises(TypeError, match="ARRAY of Vector/HalfVec/SparseVec"):
            best_chunk_distance(col, [1, 2, 3], "l2")
    sql = str(
        best_chunk_distance(t.c.chunks, [1, 2, 3], "l1").compile(dialect=postgresql.dialect())
    )
    assert (
        "min(chunk <+> %(chunk_1)s::VECTOR(3))" in sql and "FROM unnest(t.chunks) AS chunk" in sql
    )


# --- the array formats -------------------------------------------------------------------


def test_parse_array_text() -> None:
    assert parse_array_text("{}") == []
    assert parse_array_text('{"[1,2,3]",NULL,"[4,5,6]"}') == ["[1,2,3]", None, "[4,5,6]"]
    assert parse_array_text('{{"[1,2]","[3,4]"},{"[5,6]",NULL}}') == [
        ["[1,2]", "[3,4]"],
        ["[5,6]", None],
    ]
    assert parse_array_text('[0:1]={"[1,2]","[3,4]"}') == ["[1,2]", "[3,4]"]
    assert parse_array_text('{"{1:1.5,3:2}/5","NULL",null}') == ["{1:1.5,3:2}/5", "NULL", None]
    assert parse_array_text(r'{"a\"b\\c", plain }') == ['a"b\\c', "plain"]
    for bad in ("[1,2,3]", "{", '{"a"}}', "{a}{b}", ""):
        with pytest.raises(InvalidVectorError, match="text form of an array"):
            parse_array_text(bad)


def test_split_array_binary() -> None:
    def element(payload: bytes | None) -> bytes:
        return struct.pack("!i", -1) if payload is None else struct.pack("!i", 4) + payload

    one_d = struct.pack("!iiIii", 1, 1, 1, 3, 1) + b"".join(
        element(p) for p in (b"aaaa", None, b"cccc")
    )
    assert [None if e is None else bytes(e) for e in split_array_binary(one_d)] == [
        b"aaaa",
        None,
        b"cccc",
    ]
    two_d = struct.pack("!iiIiiii", 2, 0, 1, 2, 1, 2, 1) + b"".join(
        element(bytes([i]) * 4) for i in range(4)
    )
    got = [[bytes(e) for e in row] for row in split_array_binary(two_d)]
    assert got == [[b"\0" * 4, b"\1" * 4], [b"\2" * 4, b"\3" * 4]]
    assert split_array_binary(struct.pack("!iiI", 0, 0, 1)) == []


def test_binary_array_payloads_decode_without_the_drivers_loaders() -> None:
    # (a psycopg connection made before CREATE EXTENSION has no array loaders: its first
    # binary result reaches the ARRAY type as bytes)
    from vecalchemy.dialect import VecalchemyDialect

    dialect = VecalchemyDialect()
    process = ARRAY(Vector(2)).dialect_impl(dialect).result_processor(dialect, None)
    payload = struct.pack("!HHff", 2, 0, 1.5, -2.0)
    data = struct.pack("!iiIii", 1, 1, 0, 2, 1) + struct.pack("!i", 12) + payload
    got = process(data + struct.pack("!i", -1))
    assert_vectors(got, [[1.5, -2.0], None], np.float32)
    assert process('{"[1,2]",NULL}')[1] is None


def test_vector_list_compares_by_value() -> None:
    a = VectorList([np.array([1.0, 2.0]), None])
    assert a == [[1, 2], None] and [np.array([1.0, 2.0]), None] == a
    assert a != [[1, 3], None] and a != [[1, 2]]
    assert VectorList([VectorList([np.ones(2)])]) == [[[1, 1]]]
    assert (a == 5) is False


@pytest.fixture
def empty_database(vector_database_url: str) -> Iterator[str]:
    """A fresh database without the vector extension."""
    name = f"vecalchemy_{uuid.uuid4().hex[:8]}"
    admin = libpq_conninfo(vector_database_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield (
            make_url(vector_database_url).set(database=name).render_as_string(hide_password=False)
        )
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_arrays_work_on_a_connection_made_before_the_extension(empty_database: str) -> None:
    # no array loaders nor oids: binds go as a text array, the first binary result
    # reaches the ARRAY type as bytes, later executions read text
    eng = create_engine(empty_database, plugins=["vecalchemy"], pool_size=1)
    try:
        with eng.connect() as conn:
            conn.exec_driver_sql("CREATE EXTENSION vector")
            conn.commit()
            t = docs_table(conn)
            conn.execute(insert(t), {"id": 1, "chunks": [[1, 2, 3], None], "halves": [[1, 2]]})
            for _ in range(2):
                row = conn.execute(select(t.c.chunks, t.c.halves)).one()
                assert_vectors(row.chunks, [[1, 2, 3], None], np.float32)
                assert_vectors(row.halves, [[1, 2]], np.float16)
    finally:
        eng.dispose()


# --- plain psycopg -------------------------------------------------------------------------


@pytest.fixture
def psycopg_raw(vector_database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(libpq_conninfo(vector_database_url), autocommit=True) as conn:
        yield conn


def test_plain_psycopg_binds_an_array_param_in_binary(psycopg_raw: psycopg.Connection) -> None:
    vecalchemy.register_adapters(psycopg_raw)
    from vecalchemy.psycopg import ArrayParam

    value = ArrayParam([np.array([1, 2, 3], dtype=np.float32), None])
    with psycopg_raw.cursor(binary=True) as cur:
        cur.execute("SELECT %b::vector[], pg_typeof(%b::vector[])::text", [value, value])
        got, typ = cur.fetchone()  # type: ignore[misc]
    assert typ == "vector[]"
    assert_vectors(got, [[1, 2, 3], None], np.float32)
