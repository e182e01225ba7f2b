"""PreparedQuery: the same rows as ``Connection.execute``, compiled once, on psycopg's cursor."""

from __future__ import annotations

import datetime
import decimal
import enum
import uuid
import warnings
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import psycopg
import pytest
from conftest import make_async_engine, make_engine
from libpq_trace import libpq_trace
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Integer,
    Interval,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Uuid,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    literal_column,
    select,
    text,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from vecalchemy import (
    Bit,
    HalfVec,
    HnswIndex,
    InvalidVectorError,
    PreparedQuery,
    SparseVec,
    SparseVector,
    Vector,
    VectorIndexWarning,
    search_settings,
)
from vecalchemy.facts import METRICS, metrics_for

# what these tests read is psycopg 3's: libpq's trace, its cursors, result formats and error
# classes; PreparedQuery on the other drivers is tested in tests/test_prepared_drivers.py
pytestmark = pytest.mark.psycopg_only(
    "reads psycopg 3's wire (libpq trace), cursors and error classes; PreparedQuery on "
    "this driver is tested in tests/test_prepared_drivers.py"
)

N = 20
DIM = 3
SPARSE_DIM = 5
BITS = 4


class Color(enum.Enum):
    red = 1
    blue = 2


md = MetaData()
items = Table(
    "items",
    md,
    Column("id", Integer, primary_key=True),
    Column("cat", Integer, nullable=False),
    Column("label", String, nullable=False),
    Column("v", Vector(DIM)),
    Column("h", HalfVec(DIM)),
    Column("s", SparseVec(SPARSE_DIM)),
    Column("b", Bit(BITS)),
)
tags = Table(
    "tags",
    md,
    Column("item_id", Integer, ForeignKey("items.id"), nullable=False),
    Column("name", String, nullable=False),
)
extras = Table(
    "extras",
    md,
    Column("id", Integer, primary_key=True),
    Column("v", Vector(DIM)),
    Column("ts", pg.TSVECTOR),
    Column("color", Enum(Color, name="color")),
)
#: never created: a statement on it fails on the server
missing = Table("no_such_table", MetaData(), Column("id", Integer), Column("v", Vector(DIM)))

COLUMNS = {"vector": items.c.v, "halfvec": items.c.h, "sparsevec": items.c.s, "bit": items.c.b}
CASES = [(t, m) for t in COLUMNS for m in metrics_for(t)]


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "doc"
    id: Mapped[int] = mapped_column(primary_key=True)
    embedding: Mapped[np.ndarray | None] = mapped_column(Vector(DIM, metric="cosine"))
    __table_args__ = (HnswIndex("ix_doc_cos", "embedding"),)


def _rows(n: int = N, seed: int = 7) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(1, n + 1):
        dense = rng.standard_normal(DIM).astype(np.float32)
        idx = np.sort(rng.choice(SPARSE_DIM, size=2, replace=False))
        out.append(
            {
                "id": i,
                "cat": i % 3,
                "label": f"item {i}",
                "v": None if i == n else dense,
                "h": None if i == n else dense.astype(np.float16),
                "s": None
                if i == n
                else SparseVector.from_arrays(idx, rng.uniform(0.5, 2, 2), SPARSE_DIM),
                "b": None if i == n else "".join(rng.choice(["0", "1"], BITS)),
            }
        )
    return out


def _query(sql_type: str) -> Any:
    rng = np.random.default_rng(99)
    if sql_type == "bit":
        return "1010"
    if sql_type == "sparsevec":
        return SparseVector({0: 1.0, 3: -0.5}, SPARSE_DIM)
    q = rng.standard_normal(DIM).astype(np.float32)
    return q.astype(np.float16) if sql_type == "halfvec" else q


Q = _query("vector")


@pytest.fixture
def db(engine: Engine) -> Engine:
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(items), _rows())
        conn.execute(
            insert(tags), [{"item_id": i, "name": f"tag{i % 4}"} for i in range(1, N + 1)]
        )
    return engine


def assert_same_rows(got: list[tuple[Any, ...]], expected: list[Any]) -> None:
    """Row by row, value by value: same Python type, same value (arrays by dtype and content)."""
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert isinstance(g, tuple)
        assert len(g) == len(e)
        for a, b in zip(g, tuple(e), strict=True):
            assert type(a) is type(b), (a, b)
            if isinstance(a, np.ndarray):
                assert a.dtype == b.dtype
                np.testing.assert_array_equal(a, b)
            else:
                assert a == b


def sent(messages: list[list[str]], kind: str) -> list[str]:
    """Bodies of the frontend messages of one type (``Parse``, ``Bind``, ``Query``)."""
    return [m[3] if len(m) > 3 else "" for m in messages if m[0] == "F" and m[2] == kind]


# --- same rows as Connection.execute -------------------------------------------------------


@pytest.mark.parametrize(("sql_type", "metric"), CASES, ids=[f"{t}-{m}" for t, m in CASES])
def test_top_k_by_each_metric_matches_execute(db: Engine, sql_type: str, metric: str) -> None:
    col = COLUMNS[sql_type]
    dist = getattr(col, METRICS[metric].method)(bindparam("q"))
    stmt = (
        select(items.c.id, col, dist.label("d"))
        .where(col.is_not(None))
        .order_by(dist, items.c.id)
        .limit(5)
    )
    q = _query(sql_type)
    with db.connect() as conn:
        expected = conn.execute(stmt, {"q": q}).all()
        got = PreparedQuery(stmt).all(conn, q=q)
    assert len(got) == 5
    assert_same_rows(got, expected)


def test_result_values_have_the_types_of_execute(db: Engine) -> None:
    stmt = select(items.c.v, items.c.h, items.c.s, items.c.b).where(items.c.id == 1)
    with db.connect() as conn:
        [row] = PreparedQuery(stmt).all(conn)
        [expected] = conn.execute(stmt).all()
    v, h, s, b = row
    assert isinstance(v, np.ndarray) and v.dtype == np.float32 and v.shape == (DIM,)
    assert isinstance(h, np.ndarray) and h.dtype == np.float16 and h.shape == (DIM,)
    assert isinstance(s, SparseVector) and s.dim == SPARSE_DIM
    assert isinstance(b, str) and len(b) == BITS and set(b) <= {"0", "1"}
    first = _rows()[0]
    np.testing.assert_array_equal(v, first["v"])
    np.testing.assert_array_equal(h, first["h"])
    assert s == first["s"]
    assert b == first["b"]
    assert_same_rows([row], [expected])


def test_where_with_its_own_named_bindparam_matches_execute(db: Engine) -> None:
    stmt = (
        select(items.c.id, items.c.label, items.c.v)
        .where(items.c.cat == bindparam("cat"))
        .order_by(items.c.v.l2_distance(bindparam("q")), items.c.id)
        .limit(4)
    )
    pq = PreparedQuery(stmt)
    with db.connect() as conn:
        for cat in (0, 1, 2):
            got = pq.all(conn, q=Q, cat=cat)
            assert {r[0] % 3 for r in got} == {cat}
            assert_same_rows(got, conn.execute(stmt, {"q": Q, "cat": cat}).all())


def test_join_matches_execute(db: Engine) -> None:
    stmt = (
        select(items.c.id, tags.c.name, items.c.s)
        .join(tags, tags.c.item_id == items.c.id)
        .where(tags.c.name == bindparam("tag"))
        .order_by(items.c.s.cosine_distance(bindparam("q")), items.c.id)
        .limit(3)
    )
    q = _query("sparsevec")
    with db.connect() as conn:
        got = PreparedQuery(stmt).all(conn, q=q, tag="tag1")
        assert [r[1] for r in got] == ["tag1"] * 3
        assert_same_rows(got, conn.execute(stmt, {"q": q, "tag": "tag1"}).all())


def test_cte_and_subquery_match_execute(db: Engine) -> None:
    near = (
        select(items.c.id, items.c.h, items.c.h.l1_distance(bindparam("q")).label("d"))
        .where(items.c.h.is_not(None))
        .order_by("d", items.c.id)
        .limit(8)
        .cte("near")
    )
    stmt = select(near.c.id, near.c.h).where(near.c.id > bindparam("min_id")).order_by(near.c.d)
    sub = select(items.c.id, items.c.b).where(items.c.cat == 1).order_by(items.c.id).subquery()
    stmt2 = select(sub.c.b, sub.c.id).order_by(sub.c.b.hamming_distance(bindparam("q")), sub.c.id)
    q = _query("halfvec")
    with db.connect() as conn:
        got = PreparedQuery(stmt).all(conn, q=q, min_id=5)
        assert got and all(r[0] > 5 for r in got)
        assert_same_rows(got, conn.execute(stmt, {"q": q, "min_id": 5}).all())
        got2 = PreparedQuery(stmt2).all(conn, q="0110")
        assert len(got2) == 7
        assert_same_rows(got2, conn.execute(stmt2, {"q": "0110"}).all())


def test_orm_columns_match_execute_on_a_session(engine: Engine) -> None:
    Base.metadata.create_all(engine)
    vecs = np.random.default_rng(3).standard_normal((6, DIM)).astype(np.float32)
    stmt = (
        select(Doc.id, Doc.embedding)
        .order_by(Doc.embedding.distance(bindparam("q")), Doc.id)
        .limit(4)
    )
    with Session(engine) as session:
        session.add_all(Doc(id=i, embedding=v) for i, v in enumerate(vecs, 1))
        session.commit()
        got = PreparedQuery(stmt).all(session, q=Q)
        expected = session.execute(stmt, {"q": Q}).all()
    assert_same_rows(got, expected)
    cos = vecs @ Q / np.linalg.norm(vecs, axis=1) / np.linalg.norm(Q)
    assert [r[0] for r in got] == [int(i) + 1 for i in np.argsort(-cos)[:4]]


def test_null_vectors_come_back_as_none(db: Engine) -> None:
    stmt = select(items.c.id, items.c.v, items.c.h, items.c.s, items.c.b).where(
        items.c.id >= bindparam("first")
    )
    with db.connect() as conn:
        got = sorted(PreparedQuery(stmt).all(conn, first=N - 1))
        expected = sorted(conn.execute(stmt, {"first": N - 1}).all())
    assert got[1] == (N, None, None, None, None)
    assert isinstance(got[0][1], np.ndarray)
    assert_same_rows(got, expected)


def test_scalars_returns_the_first_column(db: Engine) -> None:
    stmt = select(items.c.id, items.c.v).order_by(items.c.id).limit(bindparam("k"))
    pq = PreparedQuery(stmt)
    with db.connect() as conn:
        assert pq.scalars(conn, k=4) == [1, 2, 3, 4]


# --- parameters ----------------------------------------------------------------------------


def test_untyped_bindparam_takes_the_vector_column_type(db: Engine) -> None:
    stmt = select(items.c.id).order_by(items.c.v.l2_distance(bindparam("q")), items.c.id)
    pq = PreparedQuery(stmt.limit(3))
    with db.connect() as conn:
        # a list is only a vector through Vector's bind processor
        got = pq.all(conn, q=[float(x) for x in Q])
        assert got == conn.execute(stmt.limit(3), {"q": Q}).all()
        with pytest.raises(InvalidVectorError, match="expected 3 dimensions, not 2"):
            pq.all(conn, q=[1.0, 2.0])


def test_same_named_bindparam_twice_takes_one_value(db: Engine) -> None:
    stmt = (
        select(items.c.id, items.c.v.l2_distance(bindparam("q")).label("d"))
        .order_by(items.c.v.l2_distance(bindparam("q")), items.c.id)
        .limit(3)
    )
    with db.connect() as conn:
        got = PreparedQuery(stmt).all(conn, q=Q)
        assert_same_rows(got, conn.execute(stmt, {"q": Q}).all())
    dists = [r[1] for r in got]
    assert dists == sorted(dists)


def test_bindparam_name_needing_escape(db: Engine) -> None:
    stmt = (
        select(items.c.id)
        .where(items.c.cat == bindparam("cat.id"))
        .order_by(items.c.v.l2_distance(bindparam("q vec")), items.c.id)
        .limit(2)
    )
    params = {"cat.id": 2, "q vec": Q}
    with db.connect() as conn:
        got = PreparedQuery(stmt).all(conn, **params)
        assert got == conn.execute(stmt, params).all()
    assert len(got) == 2 and all(r[0] % 3 == 2 for r in got)


def test_statement_limit_applies_without_a_parameter(db: Engine) -> None:
    stmt = select(items.c.id).order_by(items.c.id).limit(10)
    with db.connect() as conn:
        assert PreparedQuery(stmt).scalars(conn) == list(range(1, 11))


def test_named_limit_varies_per_call(db: Engine) -> None:
    stmt = (
        select(items.c.id, items.c.v)
        .where(items.c.v.is_not(None))
        .order_by(items.c.v.max_inner_product(bindparam("q")), items.c.id)
        .limit(bindparam("k"))
    )
    pq = PreparedQuery(stmt)
    with db.connect() as conn:
        three = pq.all(conn, q=Q, k=3)
        five = pq.all(conn, q=Q, k=5)
        assert len(three) == 3 and len(five) == 5
        assert_same_rows(five, conn.execute(stmt, {"q": Q, "k": 5}).all())
    assert [r[0] for r in five[:3]] == [r[0] for r in three]


def test_named_bindparam_default_is_used_and_can_be_overridden(db: Engine) -> None:
    stmt = select(items.c.id).where(items.c.cat == bindparam("cat", 1)).order_by(items.c.id)
    pq = PreparedQuery(stmt)
    with db.connect() as conn:
        assert pq.scalars(conn) == [i for i in range(1, N + 1) if i % 3 == 1]
        assert pq.scalars(conn, cat=2) == [i for i in range(1, N + 1) if i % 3 == 2]


def test_missing_parameter_raises_argument_error_naming_it(db: Engine) -> None:
    stmt = select(items.c.id).order_by(items.c.v.l2_distance(bindparam("q"))).limit(3)
    with db.connect() as conn, pytest.raises(sa_exc.ArgumentError, match="parameter 'q'"):
        PreparedQuery(stmt).all(conn)


def test_unknown_parameter_raises_argument_error_naming_it(db: Engine) -> None:
    stmt = select(items.c.id).order_by(items.c.v.l2_distance(bindparam("q"))).limit(3)
    with (
        db.connect() as conn,
        pytest.raises(sa_exc.ArgumentError, match=r"unknown bind parameter\(s\) \['qq'\]"),
    ):
        PreparedQuery(stmt).all(conn, q=Q, qq=Q)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (np.array([1.0, np.nan, 2.0], np.float32), r"NaN not allowed in vector \(element 1\)"),
        (np.array([1.0, 2.0], np.float32), "expected 3 dimensions, not 2"),
    ],
    ids=["nan", "wrong-dim"],
)
def test_bad_vector_is_refused_before_anything_is_sent(
    db: Engine, value: Any, message: str
) -> None:
    pq = PreparedQuery(select(items.c.id).order_by(items.c.v.l2_distance(bindparam("q"))).limit(3))
    with db.connect() as conn:
        with libpq_trace(conn) as messages, pytest.raises(InvalidVectorError, match=message):
            pq.all(conn, q=value)
        assert [m for m in messages if m[0] == "F"] == []
        assert conn.execute(select(items.c.id).where(items.c.id == 1)).scalar() == 1


def test_vector_parameter_format_follows_the_engine_mode(db: Engine, mode: str) -> None:
    pq = PreparedQuery(select(items.c.id).order_by(items.c.v.l2_distance(bindparam("q"))).limit(3))
    with db.connect() as conn:
        pq.all(conn, q=Q)  # compiled, transaction begun
        with libpq_trace(conn) as messages:
            pq.all(conn, q=Q)
    [bind] = sent(messages, "Bind")
    # Bind "<portal>" "<statement>" <n formats> <format codes...> <n params> ...
    fields = bind.split()
    formats = fields[3 : 3 + int(fields[2])]
    assert formats == (["0"] if mode == "text" else ["1"])


# --- the SQL sent --------------------------------------------------------------------------


def test_integer_limit_and_offset_are_sent_as_literals(db: Engine) -> None:
    stmt = (
        select(items.c.id)
        .order_by(items.c.v.l2_distance(bindparam("q")), items.c.id)
        .limit(10)
        .offset(5)
    )
    pq = PreparedQuery(stmt)
    with db.connect() as conn:
        with libpq_trace(conn) as messages:
            got = pq.scalars(conn, q=Q)
        assert got == conn.execute(stmt, {"q": Q}).scalars().all()
    assert len(got) == 10
    [parse] = sent(messages, "Parse")
    assert "LIMIT 10 OFFSET 5" in parse
    assert "LIMIT 10 OFFSET 5" in pq._plan(db.dialect).sql
    [bind] = sent(messages, "Bind")
    assert bind.split()[3 + int(bind.split()[2])] == "1"  # one parameter: q
    # the statement itself is unchanged
    assert "LIMIT 10" not in str(pq.statement.compile(dialect=db.dialect))


def test_named_bindparam_limit_stays_a_bind(db: Engine) -> None:
    stmt = (
        select(items.c.id)
        .order_by(items.c.v.l2_distance(bindparam("q")), items.c.id)
        .limit(bindparam("k"))
        .offset(bindparam("skip"))
    )
    pq = PreparedQuery(stmt)
    with db.connect() as conn, libpq_trace(conn) as messages:
        assert len(pq.all(conn, q=Q, k=4, skip=2)) == 4
    [parse] = sent(messages, "Parse")
    assert "LIMIT $2 OFFSET $3" in parse
    [bind] = sent(messages, "Bind")
    assert bind.split()[3 + int(bind.split()[2])] == "3"


# --- result format -------------------------------------------------------------------------


def _result_formats(messages: list[list[str]]) -> list[str]:
    """Result format codes asked in the Bind message (after the parameters)."""
    [bind] = sent(messages, "Bind")
    # psycopg asks one format for all columns: the Bind ends with "1 <format>"
    return bind.split()[-1:]


def _traced_rows(engine: Engine, stmt: Any) -> tuple[list[tuple[Any, ...]], list[str]]:
    """PreparedQuery's rows (checked against ``Connection.execute``'s) and the result
    format codes its Bind asked for."""
    pq = PreparedQuery(stmt)
    with engine.connect() as conn:
        with libpq_trace(conn) as messages:
            got = pq.all(conn, q=Q)
        assert_same_rows(got, conn.execute(stmt, {"q": Q}).all())
    assert pq._plan(engine.dialect).binary is (_result_formats(messages) == ["1"])
    return got, _result_formats(messages)


def test_binary_results_for_vectors_with_binary_safe_columns(db: Engine) -> None:
    stmt = (
        select(items.c.id, items.c.label, items.c.v, items.c.h, items.c.s)
        .order_by(items.c.v.cosine_distance(bindparam("q")), items.c.id)
        .limit(6)
    )
    _, formats = _traced_rows(db, stmt)
    assert formats == ["1"]


@pytest.mark.parametrize("column", ["ts", "color"])
def test_text_results_when_a_column_has_no_binary_loader(engine: Engine, column: str) -> None:
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(extras).values(ts=func.to_tsvector("simple", "the quick brown fox")),
            [{"id": 1, "v": Q, "color": Color.blue}],
        )
    stmt = select(extras.c.id, extras.c.v, extras.c[column]).order_by(
        extras.c.v.l2_distance(bindparam("q"))
    )
    got, formats = _traced_rows(engine, stmt)
    assert formats == ["0"]
    value = got[0][2]
    assert value == ("'brown':3 'fox':4 'quick':2 'the':1" if column == "ts" else Color.blue)
    np.testing.assert_array_equal(got[0][1], Q)


def test_text_results_without_a_vector_column(db: Engine) -> None:
    stmt = select(items.c.id, items.c.label).order_by(items.c.id).limit(2)
    pq = PreparedQuery(stmt)
    with db.connect() as conn:
        assert pq.all(conn) == [(1, "item 1"), (2, "item 2")]
    assert pq._plan(db.dialect).binary is False


# --- transactions --------------------------------------------------------------------------


def test_a_fresh_connection_gets_a_transaction_that_rolls_back(db: Engine) -> None:
    pq = PreparedQuery(select(func.count()).select_from(items))
    with db.connect() as conn:
        assert not conn.in_transaction()
        assert pq.scalars(conn) == [N]
        assert conn.in_transaction()
        conn.execute(insert(items), [{"id": N + 1, "cat": 0, "label": "new"}])
        assert pq.scalars(conn) == [N + 1]
        conn.rollback()
        assert not conn.in_transaction()
        assert pq.scalars(conn) == [N]
        conn.execute(insert(items), [{"id": N + 2, "cat": 0, "label": "new"}])
        conn.commit()
    with db.connect() as other:
        assert pq.scalars(other) == [N + 1]


def test_sees_uncommitted_rows_of_the_engine_begin_transaction(db: Engine) -> None:
    pq = PreparedQuery(select(items.c.id, items.c.v).where(items.c.id > N).order_by(items.c.id))
    with db.connect() as conn, conn.begin():
        conn.execute(insert(items), [{"id": N + 1, "cat": 0, "label": "new", "v": Q}])
        [(new_id, v)] = pq.all(conn)
    assert new_id == N + 1
    np.testing.assert_array_equal(v, Q)
    with db.begin() as conn:
        conn.execute(insert(items), [{"id": N + 2, "cat": 0, "label": "new", "v": Q}])
        assert pq.scalars(conn) == [N + 1, N + 2]
        raw = conn.connection.driver_connection
        assert raw is not None and raw.info.transaction_status.name == "INTRANS"


def test_runs_in_the_session_transaction(engine: Engine) -> None:
    Base.metadata.create_all(engine)
    pq = PreparedQuery(select(Doc.id, Doc.embedding).order_by(Doc.id))
    with Session(engine) as session:
        session.add(Doc(id=1, embedding=Q))
        session.flush()
        [(doc_id, emb)] = pq.all(session)
        assert doc_id == 1
        np.testing.assert_array_equal(emb, Q)
        session.rollback()
        assert pq.all(session) == []


def test_search_settings_apply_to_the_query(db: Engine) -> None:
    pq = PreparedQuery(
        select(items.c.id, func.current_setting("hnsw.ef_search").label("ef"))
        .order_by(items.c.v.l2_distance(bindparam("q")), items.c.id)
        .limit(2)
    )
    with db.connect() as conn:
        with search_settings(conn, ef_search=77):
            assert conn.execute(text("SHOW hnsw.ef_search")).scalar() == "77"
            got = pq.all(conn, q=Q)
        assert [r[1] for r in got] == ["77", "77"]
        assert pq.all(conn, q=Q)[0][1] == "40"


# --- errors --------------------------------------------------------------------------------


def test_missing_table_raises_programming_error(engine: Engine) -> None:
    pq = PreparedQuery(select(missing.c.id).order_by(missing.c.v.l2_distance(bindparam("q"))))
    with engine.connect() as conn:
        with pytest.raises(sa_exc.ProgrammingError) as info:
            pq.all(conn, q=Q)
        assert isinstance(info.value.orig, psycopg.errors.UndefinedTable)
        assert 'relation "no_such_table" does not exist' in str(info.value)
        assert "no_such_table" in str(info.value.statement)
        conn.rollback()
        assert conn.execute(select(1)).scalar() == 1


def test_session_after_a_failed_flush_raises_pending_rollback_as_execute(
    engine: Engine,
) -> None:
    Base.metadata.create_all(engine)
    stmt = select(Doc.id)
    with Session(engine) as session:
        session.add(Doc(id=1))
        session.commit()
        session.add(Doc(id=1))
        with pytest.raises(sa_exc.IntegrityError):
            session.flush()
        with pytest.raises(sa_exc.PendingRollbackError) as by_execute:
            session.execute(stmt)
        with pytest.raises(sa_exc.PendingRollbackError) as by_prepared:
            PreparedQuery(stmt).all(session)
        assert str(by_prepared.value) == str(by_execute.value)
        session.rollback()
        assert PreparedQuery(stmt).scalars(session) == [1]


def test_invalidated_connection_in_a_transaction_raises_pending_rollback(db: Engine) -> None:
    pq = PreparedQuery(select(items.c.id).order_by(items.c.id).limit(1))
    with db.connect() as conn:
        conn.begin()
        conn.invalidate()
        with pytest.raises(sa_exc.PendingRollbackError, match="rolled back"):
            pq.all(conn)
        conn.rollback()
        assert pq.scalars(conn) == [1]


def test_aborted_server_transaction_raises_as_execute(db: Engine) -> None:
    """After a failed statement the server refuses the next one, with either path; the
    transaction is the caller's to roll back."""
    stmt = select(items.c.id).order_by(items.c.id).limit(1)
    with db.connect() as conn:
        with pytest.raises(sa_exc.DataError):
            conn.execute(text("SELECT 1 / 0"))
        with pytest.raises(sa_exc.InternalError) as by_execute:
            conn.execute(stmt)
        with pytest.raises(sa_exc.InternalError) as by_prepared:
            PreparedQuery(stmt).all(conn)
        for info in (by_execute, by_prepared):
            assert isinstance(info.value.orig, psycopg.errors.InFailedSqlTransaction)
        conn.rollback()
        assert PreparedQuery(stmt).scalars(conn) == [1]


def test_division_by_zero_raises_data_error(db: Engine) -> None:
    stmt = select(items.c.id, items.c.v, literal_column("1") / bindparam("z", type_=Integer))
    with db.connect() as conn:
        with pytest.raises(sa_exc.DataError) as info:
            PreparedQuery(stmt).all(conn, z=0)
        assert isinstance(info.value.orig, psycopg.errors.DivisionByZero)
        assert "division by zero" in str(info.value)
        assert isinstance(info.value, sa_exc.DBAPIError)


def test_insert_is_refused() -> None:
    with pytest.raises(TypeError, match="takes a select\\(\\) of columns, got Insert"):
        PreparedQuery(insert(items))  # type: ignore[arg-type]


def test_entity_select_is_refused() -> None:
    with pytest.raises(TypeError, match=r"not entities \(Doc\)"):
        PreparedQuery(select(Doc))


@pytest.mark.parametrize("style", ["list", "expanding"])
def test_in_with_a_list_is_refused(db: Engine, style: str) -> None:
    ids = [1, 2] if style == "list" else bindparam("ids", expanding=True)
    pq = PreparedQuery(select(items.c.id).where(items.c.id.in_(ids)))
    with db.connect() as conn, pytest.raises(ValueError, match="expanding or literal_execute"):
        pq.all(conn, **({"ids": [1, 2]} if style == "expanding" else {}))


def test_non_psycopg_dialect_is_refused() -> None:
    pq = PreparedQuery(select(items.c.id))
    with pytest.raises(ValueError, match="; this engine uses sqlite\\+pysqlite"):
        pq._plan(sqlite.dialect())
    eng = create_engine("sqlite://")
    with eng.connect() as conn, pytest.raises(ValueError, match="sqlite\\+pysqlite"):
        pq.all(conn)
    eng.dispose()


def test_positional_paramstyle_binds_in_the_order_of_the_sql(
    vector_database_url: str, vector_schema: str
) -> None:
    eng = make_engine(vector_database_url, vector_schema, "text", paramstyle="format")
    try:
        md.create_all(eng)
        with eng.begin() as conn:
            conn.execute(insert(items), _rows())
        pq = PreparedQuery(
            select(items.c.id)
            .where(items.c.id > bindparam("lo"), items.c.id < bindparam("hi"))
            .order_by(items.c.id)
        )
        with eng.connect() as conn:
            assert pq.scalars(conn, hi=6, lo=2) == [3, 4, 5]
    finally:
        eng.dispose()


# --- query checks and compiling ------------------------------------------------------------


def test_index_warning_once_per_dialect_not_per_call(engine: Engine) -> None:
    Base.metadata.create_all(engine)
    pq = PreparedQuery(select(Doc.id).order_by(Doc.embedding.l2_distance(bindparam("q"))).limit(3))
    with engine.connect() as conn, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            assert pq.all(conn, q=Q) == []
    got = [w for w in caught if w.category is VectorIndexWarning]
    assert len(got) == 1
    assert "doc.embedding" in str(got[0].message)
    assert got[0].filename == __file__


def test_matching_index_query_does_not_warn(engine: Engine) -> None:
    Base.metadata.create_all(engine)
    pq = PreparedQuery(
        select(Doc.id).order_by(Doc.embedding.cosine_distance(bindparam("q"))).limit(3)
    )
    with engine.connect() as conn, warnings.catch_warnings():
        warnings.simplefilter("error", VectorIndexWarning)
        assert pq.all(conn, q=Q) == []


def test_compiled_once_and_no_cursor_events(db: Engine) -> None:
    fired: list[str] = []

    @event.listens_for(db, "before_cursor_execute")
    def spy(*args: Any) -> None:
        fired.append(args[2])

    stmt = select(items.c.id, items.c.v).order_by(items.c.v.l2_distance(bindparam("q")))
    pq = PreparedQuery(stmt.limit(3))
    with db.connect() as conn:
        results = [pq.all(conn, q=Q) for _ in range(3)]
        assert fired == []  # PreparedQuery skips engine events, by design
        expected = conn.execute(stmt.limit(3), {"q": Q}).all()
        assert len(fired) == 1
    assert len(pq._plans) == 1
    for rows in results:
        assert_same_rows(rows, expected)


def test_one_plan_per_dialect(vector_database_url: str, vector_schema: str, db: Engine) -> None:
    other = make_engine(vector_database_url, vector_schema, "dialect")
    pq = PreparedQuery(select(items.c.id).order_by(items.c.id).limit(2))
    try:
        with db.connect() as a, other.connect() as b:
            assert pq.scalars(a) == pq.scalars(b) == [1, 2]
    finally:
        other.dispose()
    assert len(pq._plans) == (1 if db.dialect is other.dialect else 2)


# --- async ---------------------------------------------------------------------------------


@pytest.fixture
async def async_db(db: Engine, vector_schema: str, mode: str) -> AsyncIterator[AsyncEngine]:
    eng = make_async_engine(str(db.url.render_as_string(hide_password=False)), vector_schema, mode)
    yield eng
    await eng.dispose()


TOP_K = (
    select(items.c.id, items.c.v, items.c.h, items.c.s, items.c.b)
    .where(items.c.v.is_not(None))
    .order_by(items.c.v.l2_distance(bindparam("q")), items.c.id)
    .limit(bindparam("k"))
)


async def test_async_connection_returns_the_sync_rows(db: Engine, async_db: AsyncEngine) -> None:
    pq = PreparedQuery(TOP_K)
    with db.connect() as conn:
        expected = pq.all(conn, q=Q, k=5)
        assert_same_rows(expected, conn.execute(TOP_K, {"q": Q, "k": 5}).all())
    async with async_db.connect() as aconn:
        assert not aconn.in_transaction()
        got = await pq.all_async(aconn, q=Q, k=5)
        assert aconn.in_transaction()
        assert await pq.scalars_async(aconn, q=Q, k=2) == [r[0] for r in expected[:2]]
        assert_same_rows(got, (await aconn.execute(TOP_K, {"q": Q, "k": 5})).all())
    assert_same_rows(got, expected)


async def test_async_session_returns_the_sync_rows(db: Engine, async_db: AsyncEngine) -> None:
    pq = PreparedQuery(TOP_K)
    with db.connect() as conn:
        expected = pq.all(conn, q=Q, k=4)
    async with AsyncSession(async_db) as session:
        await session.execute(insert(items), [{"id": N + 1, "cat": 0, "label": "x", "v": Q}])
        got = await pq.all_async(session, q=Q, k=4)
        await session.rollback()
    assert got[0][0] == N + 1  # distance 0, seen in the session's transaction
    assert_same_rows(got[1:], expected[:3])


async def test_async_server_error_is_wrapped(async_db: AsyncEngine) -> None:
    pq = PreparedQuery(select(missing.c.id))
    async with async_db.connect() as aconn:
        with pytest.raises(sa_exc.ProgrammingError) as info:
            await pq.all_async(aconn)
    assert isinstance(info.value.orig, psycopg.errors.UndefinedTable)


async def test_async_bad_vector_is_refused(async_db: AsyncEngine) -> None:
    pq = PreparedQuery(TOP_K)
    async with async_db.connect() as aconn:
        with pytest.raises(InvalidVectorError, match="expected 3 dimensions, not 4"):
            await pq.all_async(aconn, q=[1.0, 2.0, 3.0, 4.0], k=1)


# --- behaviours where PreparedQuery differs from Connection.execute -------------------------


def test_other_column_types_match_execute(engine: Engine) -> None:
    kinds = Table(
        "kinds",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("v", Vector(DIM)),
        Column("n", Numeric(10, 2, asdecimal=False)),
        Column("f", Float(asdecimal=True)),
        Column("u", Uuid(as_uuid=False)),
        Column("dt", DateTime(timezone=True)),
        Column("d", Date),
        Column("ok", Boolean),
        Column("raw", LargeBinary),
        Column("j", pg.JSONB),
        Column("a", pg.ARRAY(Integer)),
        Column("i", Interval),
    )
    kinds.create(engine)
    row = {
        "id": 1,
        "v": Q,
        "n": 1.25,
        "f": 0.5,
        "u": str(uuid.uuid4()),
        "dt": datetime.datetime(2024, 1, 2, 3, 4, tzinfo=datetime.UTC),
        "d": datetime.date(2024, 1, 2),
        "ok": True,
        "raw": b"\x00\x01",
        "j": {"a": [1, 2]},
        "a": [1, 2],
        "i": datetime.timedelta(hours=3),
    }
    with engine.begin() as conn:
        conn.execute(insert(kinds), [row])
    safe = select(*(c for c in kinds.c if c.name not in ("j", "a", "i")))
    with engine.connect() as conn:
        for stmt, binary in ((safe, True), (select(kinds), False)):
            pq = PreparedQuery(stmt)
            got = pq.all(conn)
            assert pq._plan(engine.dialect).binary is binary
            assert_same_rows(got, conn.execute(stmt).all())
            assert got[0][2:5] == (1.25, decimal.Decimal("0.5"), row["u"])


def test_parameters_named_like_the_arguments(db: Engine) -> None:
    stmt = select(items.c.id).where(items.c.id.between(bindparam("conn"), bindparam("self")))
    with db.connect() as conn:
        assert sorted(PreparedQuery(stmt).scalars(conn, conn=2, self=4)) == [2, 3, 4]


def test_callable_bindparam_is_evaluated_at_every_call(db: Engine) -> None:
    calls = iter(range(1, 100))
    stmt = select(items.c.id).where(items.c.id == bindparam("i", callable_=lambda: next(calls)))
    pq = PreparedQuery(stmt)
    with db.connect() as conn:
        assert conn.execute(stmt).scalars().all() == [1]
        assert conn.execute(stmt).scalars().all() == [2]
        assert pq.scalars(conn) == [3]
        assert pq.scalars(conn) == [4]


def test_session_with_per_table_binds(engine: Engine) -> None:
    Base.metadata.create_all(engine)
    pq = PreparedQuery(select(Doc.id, Doc.embedding).order_by(Doc.id))
    with Session(binds={Doc: engine}) as session:
        session.add(Doc(id=1, embedding=Q))
        session.flush()
        assert session.execute(select(Doc.id)).scalars().all() == [1]
        assert [r[0] for r in pq.all(session)] == [1]


def test_declared_type_differing_from_the_table_falls_back_to_text(engine: Engine) -> None:
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(extras).values(ts=func.to_tsvector("simple", "the fox")), [{"id": 1, "v": Q}]
        )
    declared = Table(
        "extras",
        MetaData(),
        Column("id", Integer),
        Column("v", Vector(DIM)),
        Column("ts", String),  # tsvector in the table
    )
    stmt = select(declared.c.id, declared.c.v, declared.c.ts)
    pq = PreparedQuery(stmt)
    with engine.connect() as conn:
        conn.execute(stmt).all()  # the plugin/dialect paths learn here
        assert conn.execute(stmt).all()[0][2] == "'fox':2 'the':1"
        pq.all(conn)
        assert pq.all(conn)[0][2] == "'fox':2 'the':1"


def test_server_disconnect_invalidates_the_connection(db: Engine) -> None:
    pq = PreparedQuery(select(items.c.id).order_by(items.c.id).limit(1))
    with db.connect() as conn:
        pid = conn.execute(select(func.pg_backend_pid())).scalar()
        conn.rollback()
        with db.connect() as killer:
            killer.execute(select(func.pg_terminate_backend(pid)))
        with pytest.raises(sa_exc.OperationalError) as info:
            pq.all(conn)
        assert isinstance(info.value.orig, psycopg.errors.AdminShutdown)
        assert info.value.connection_invalidated
        assert conn.invalidated


def test_server_disconnect_through_execute_invalidates_the_connection(db: Engine) -> None:
    """The behaviour PreparedQuery should match (control for the test above)."""
    with db.connect() as conn:
        pid = conn.execute(select(func.pg_backend_pid())).scalar()
        conn.rollback()
        with db.connect() as killer:
            killer.execute(select(func.pg_terminate_backend(pid)))
        with pytest.raises(sa_exc.OperationalError) as info:
            conn.execute(select(items.c.id).limit(1))
        assert info.value.connection_invalidated
        assert conn.invalidated


def test_percent_operator_in_a_statement_without_binds_matches_execute(db: Engine) -> None:
    stmt = (
        select(items.c.id, items.c.cat.op("%")(items.c.id).label("m"), items.c.v)
        .order_by(items.c.id)
        .limit(4)
    )
    with db.connect() as conn:
        got = PreparedQuery(stmt).all(conn)
        assert_same_rows(got, conn.execute(stmt).all())
    assert [r[1] for r in got] == [(i % 3) % i for i in range(1, 5)]


async def test_sync_all_inside_run_sync(async_db: AsyncEngine) -> None:
    pq = PreparedQuery(TOP_K)
    async with async_db.connect() as aconn:
        expected = await pq.all_async(aconn, q=Q, k=3)
        got = await aconn.run_sync(lambda c: pq.all(c, q=Q, k=3))
    assert_same_rows(got, expected)


# --- what a Session or a connection adds around a statement ------------------------------


def test_a_session_autoflushes_pending_objects_first(engine: Engine) -> None:
    Base.metadata.create_all(engine)
    pq = PreparedQuery(select(Doc.id).order_by(Doc.id))
    with Session(engine) as session:
        session.add(Doc(id=1, embedding=np.ones(DIM, dtype=np.float32)))
        assert pq.scalars(session) == session.scalars(pq.statement).all() == [1]
        session.add(Doc(id=2, embedding=np.ones(DIM, dtype=np.float32)))
        with session.no_autoflush:
            assert pq.scalars(session) == [1]
        session.rollback()


def test_session_event_listeners_are_refused_not_skipped(engine: Engine) -> None:
    Base.metadata.create_all(engine)
    pq = PreparedQuery(select(Doc.id))
    with Session(engine) as session:

        @event.listens_for(session, "do_orm_execute")
        def tenant_filter(state: Any) -> None:  # e.g. with_loader_criteria(...)
            pass

        with pytest.raises(ValueError, match="do_orm_execute listeners"):
            pq.all(session)
        assert pq.all(session.connection()) == []  # explicitly without them


def test_schema_translate_map_is_refused_not_ignored(db: Engine) -> None:
    pq = PreparedQuery(select(items.c.id))
    translated = db.execution_options(schema_translate_map={None: "elsewhere"})
    with translated.connect() as conn, pytest.raises(ValueError, match="schema_translate_map"):
        pq.all(conn)


def test_columns_the_statement_does_not_declare_are_kept(db: Engine) -> None:
    stmt = select(items.c.id, literal_column("items.v")).order_by(items.c.id).limit(3)
    pq = PreparedQuery(stmt)
    with db.connect() as conn:
        got = pq.all(conn)
        want = conn.execute(stmt).all()
    assert [len(r) for r in got] == [2, 2, 2]
    assert [r[0] for r in got] == [r[0] for r in want]
