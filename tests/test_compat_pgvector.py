"""``vecalchemy.compat.pgvector``: pgvector.sqlalchemy 0.5's documented usage, unchanged
but for the import line, on every driver mode, with vecalchemy underneath.

The README-shaped tests follow pgvector-python's README (its SQLAlchemy section) line by
line; NumPy computes the expected answers.
"""

from __future__ import annotations

import decimal
import subprocess
import sys
import warnings
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import numpy as np
import pgvector
import psycopg
import pytest
from conftest import ASYNC_MODES, make_async_engine, make_engine
from hypothesis import given, settings
from hypothesis import strategies as st
from libpq_trace import libpq_trace
from sqlalchemy import (
    ARRAY,
    Column,
    Index,
    Integer,
    MetaData,
    Table,
    bindparam,
    event,
    func,
    insert,
    inspect,
    select,
    type_coerce,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import BIT as SQLA_BIT
from sqlalchemy.dialects.postgresql import base as pg_base
from sqlalchemy.engine import Engine
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.ext.automap import automap_base
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.sql import functions as sql_functions

import vecalchemy
from vecalchemy import (
    HnswIndex,
    IndexDefinitionError,
    InvalidVectorError,
    SparseVec,
    SparseVector,
    VectorIndexWarning,
    copy_rows,
)
from vecalchemy.codecs import check_dense
from vecalchemy.compat import pgvector as compat
from vecalchemy.compat.pgvector import BIT, HALFVEC, SPARSEVEC, VECTOR, avg, sum
from vecalchemy.types import REFLECTED_TYPES, TYPES_BY_SQL_TYPE

# --- reflection state ----------------------------------------------------------------------
# Importing vecalchemy.compat.pgvector (above) makes reflection answer with its classes,
# process-wide, as importing pgvector.sqlalchemy does. The other test modules expect
# vecalchemy's own, so vecalchemy's answer is put back here; the tests that reflect switch
# to the compat classes through the ``pgvector_reflection`` fixture.

_NAMES = ("vector", "halfvec", "sparsevec")
_State = tuple[dict[str, Any], dict[str, Any]]
_VECALCHEMY_REFLECTION: _State = (
    {n: TYPES_BY_SQL_TYPE[n] for n in _NAMES},
    {n: TYPES_BY_SQL_TYPE[n] for n in _NAMES},
)


def _reflection() -> _State:
    return dict(REFLECTED_TYPES), {n: pg_base.ischema_names.get(n) for n in _NAMES}


def _set_reflection(state: _State) -> None:
    ours, plain = state
    REFLECTED_TYPES.clear()
    REFLECTED_TYPES.update(ours)
    for name, cls in plain.items():
        if cls is None:
            pg_base.ischema_names.pop(name, None)
        else:
            pg_base.ischema_names[name] = cls


_set_reflection(_VECALCHEMY_REFLECTION)


@pytest.fixture
def keep_reflection() -> Iterator[None]:
    """Whatever the test imports or switches, reflection answers as before afterwards."""
    before = _reflection()
    yield
    _set_reflection(before)


@pytest.fixture
def pgvector_reflection(keep_reflection: None) -> None:
    """Reflection as it is right after ``import vecalchemy.compat.pgvector``."""
    compat.register_reflection()


# --- pgvector-python's README model ------------------------------------------------------


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    embedding: Mapped[list[float]] = mapped_column(VECTOR(3))


#: four items without distance ties (every metric, both query vectors below, Hamming on
#: their binary quantization); their mean is exact in float4
EMBEDDINGS = {1: [1, 2, 3], 2: [1, -3, 1], 3: [-2, 4, -2], 4: [4, 1, -2]}
Q = [3, 1, 2]


def expected_order(distance: Any, q: Sequence[float]) -> list[int]:
    """Item ids ordered by ``distance(matrix, q)`` (NumPy's reference)."""
    ids = list(EMBEDDINGS)
    m = np.array([EMBEDDINGS[i] for i in ids], dtype=np.float64)
    d = distance(m, np.asarray(q, dtype=np.float64))
    assert len(set(d.round(9))) == len(d)  # (no ties)
    return [ids[i] for i in np.argsort(d)]


def l2(m: np.ndarray, q: np.ndarray) -> np.ndarray:
    return np.asarray(np.linalg.norm(m - q, axis=1))


def neg_ip(m: np.ndarray, q: np.ndarray) -> np.ndarray:
    return np.asarray(-(m @ q))


def cosine(m: np.ndarray, q: np.ndarray) -> np.ndarray:
    return np.asarray(1 - (m @ q) / (np.linalg.norm(m, axis=1) * np.linalg.norm(q)))


def l1(m: np.ndarray, q: np.ndarray) -> np.ndarray:
    return np.asarray(np.abs(m - q).sum(axis=1))


@pytest.fixture(autouse=True)
def model_without_test_indexes() -> Iterator[None]:
    """The README's ``Index(..., Item.embedding)`` joins ``Item``'s table; each test
    starts from the model as declared."""
    before = set(Item.__table__.indexes)
    yield
    Item.__table__.indexes.intersection_update(before)


def add_items(engine: Engine) -> None:
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        for i, e in EMBEDDINGS.items():
            session.add(Item(id=i, embedding=e))
        session.commit()


def index_defs(raw_conn: psycopg.Connection, table: str) -> dict[str, str]:
    rows = raw_conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes "
        "WHERE schemaname = current_schema() AND tablename = %s",
        (table,),
    ).fetchall()
    return dict(rows)


def checks_queries(mode: str) -> bool:
    """Modes whose engine has vecalchemy's dialect, hence its query checks."""
    return mode not in ("text", "asyncpg-text")


# --- names -------------------------------------------------------------------------------


def test_exports_exactly_the_names_of_pgvector_sqlalchemy() -> None:
    import pgvector.sqlalchemy as original  # (its import-time reflection: undone below)

    try:
        assert compat.__all__ == original.__all__
        assert compat.Vector is compat.VECTOR
        assert compat.sum is original.sum is sql_functions.sum
    finally:
        _set_reflection(_VECALCHEMY_REFLECTION)


def test_types_are_vecalchemys_types() -> None:
    assert issubclass(VECTOR, vecalchemy.Vector) and issubclass(HALFVEC, vecalchemy.HalfVec)
    assert issubclass(SPARSEVEC, vecalchemy.SparseVec) and issubclass(BIT, vecalchemy.Bit)
    assert (VECTOR(3).python_type, HALFVEC(3).python_type) == (list, list)
    assert SPARSEVEC(5).python_type is pgvector.SparseVector
    assert BIT(3).python_type is str


# --- pgvector-python's README, SQLAlchemy section ----------------------------------------


def test_readme_usage_runs_unchanged(engine: Engine, raw_conn: psycopg.Connection) -> None:
    add_items(engine)
    with Session(engine) as session:
        item = session.get(Item, 1)
        assert item is not None
        assert item.embedding == [1, 2, 3]

        def nearest(order: Any) -> list[int]:
            return [i.id for i in session.scalars(select(Item).order_by(order).limit(5))]

        assert nearest(Item.embedding.l2_distance(Q)) == expected_order(l2, Q)
        assert nearest(Item.embedding.max_inner_product(Q)) == expected_order(neg_ip, Q)
        assert nearest(Item.embedding.cosine_distance(Q)) == expected_order(cosine, Q)
        assert nearest(Item.embedding.l1_distance(Q)) == expected_order(l1, Q)
        distances = session.scalars(select(Item.embedding.l2_distance(Q)).order_by(Item.id)).all()
        m = np.array(list(EMBEDDINGS.values()), dtype=np.float64)
        assert distances == pytest.approx(l2(m, np.array(Q)).tolist())
        within = session.scalars(select(Item).filter(Item.embedding.l2_distance(Q) < 5)).all()
        assert sorted(i.id for i in within) == [1, 2, 4]
        assert session.scalars(select(avg(Item.embedding))).first() == m.mean(axis=0).tolist()
        assert session.scalars(select(sum(Item.embedding))).first() == m.sum(axis=0).tolist()
    index = Index(
        "my_index",
        Item.embedding,
        postgresql_using="hnsw",
        postgresql_with={"m": 16, "ef_construction": 64},
        postgresql_ops={"embedding": "vector_l2_ops"},
    )
    index.create(engine)
    ivf = Index(
        "my_ivf_index",
        Item.embedding,
        postgresql_using="ivfflat",
        postgresql_with={"lists": 1},
        postgresql_ops={"embedding": "vector_l2_ops"},
    )
    ivf.create(engine)
    defs = index_defs(raw_conn, "items")
    hnsw = "USING hnsw (embedding vector_l2_ops) WITH (m='16', ef_construction='64')"
    assert hnsw in defs["my_index"]
    # (vector_l2_ops is IVFFlat's default operator class, which pg_get_indexdef leaves out)
    assert "USING ivfflat (embedding) WITH (lists='1')" in defs["my_ivf_index"]


def test_readme_half_precision_and_binary_quantization_indexes(
    engine: Engine, raw_conn: psycopg.Connection
) -> None:
    add_items(engine)
    Index(
        "my_index",
        func.cast(Item.embedding, HALFVEC(3)).label("embedding"),
        postgresql_using="hnsw",
        postgresql_ops={"embedding": "halfvec_l2_ops"},
    ).create(engine)
    Index(
        "my_bq_index",
        func.cast(func.binary_quantize(Item.embedding), BIT(3)).label("embedding"),
        postgresql_using="hnsw",
        postgresql_ops={"embedding": "bit_hamming_ops"},
    ).create(engine)
    q = [3, -1, 2]
    bits = {i: "".join("1" if x > 0 else "0" for x in e) for i, e in EMBEDDINGS.items()}
    qbits = "".join("1" if x > 0 else "0" for x in q)
    hamming = {i: differing_bits(b, qbits) for i, b in bits.items()}
    assert len(set(hamming.values())) == len(hamming)  # (no ties)
    with Session(engine) as session, warnings.catch_warnings():
        # the README's queries match their indexes: no VectorIndexWarning
        warnings.simplefilter("error", VectorIndexWarning)
        order = func.cast(Item.embedding, HALFVEC(3)).l2_distance([3, 1, 2])
        got = [i.id for i in session.scalars(select(Item).order_by(order).limit(5))]
        assert got == expected_order(l2, [3, 1, 2])
        order = func.cast(func.binary_quantize(Item.embedding), BIT(3)).hamming_distance(
            func.binary_quantize(func.cast([3, -1, 2], VECTOR(3)))
        )
        got = [i.id for i in session.scalars(select(Item).order_by(order).limit(5))]
        assert got == sorted(EMBEDDINGS, key=hamming.__getitem__)
        subquery = session.query(Item).order_by(order).limit(20).subquery()
        reranked = session.scalars(
            select(subquery).order_by(subquery.c.embedding.cosine_distance(q)).limit(5)
        ).all()
        assert reranked == expected_order(cosine, q)
    defs = index_defs(raw_conn, "items")
    assert "USING hnsw (((embedding)::halfvec(3)) halfvec_l2_ops)" in defs["my_index"]
    bq = "USING hnsw (((binary_quantize(embedding))::bit(3)) bit_hamming_ops)"
    assert bq in defs["my_bq_index"]


def differing_bits(a: str, b: str) -> int:
    return len([1 for x, y in zip(a, b, strict=True) if x != y])


def test_vecalchemy_checks_stay_on(engine: Engine, mode: str) -> None:
    add_items(engine)
    Index(
        "my_index",
        Item.embedding,
        postgresql_using="hnsw",
        postgresql_ops={"embedding": "vector_l2_ops"},
    ).create(engine)
    cosine_query = select(Item.id).order_by(Item.embedding.cosine_distance(Q)).limit(5)
    with engine.connect() as conn:
        if checks_queries(mode):
            with pytest.warns(VectorIndexWarning, match="my_index"):
                conn.execute(cosine_query).all()
            # an HNSW index without an operator class: refused before anything is sent
            with pytest.raises(IndexDefinitionError, match="operator class"):
                Index("no_opclass", Item.embedding, postgresql_using="hnsw").create(conn)
        else:
            assert vecalchemy.check_query(cosine_query)
    # metric= and the index classes work on the compat types as on vecalchemy's
    md = MetaData()
    t = Table(
        "m", md, Column("id", Integer, primary_key=True), Column("e", VECTOR(3, metric="cosine"))
    )
    HnswIndex("ix_m_e", t.c.e)
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(t), [{"id": 1, "e": [1, 0, 0]}, {"id": 2, "e": [0, 1, 0]}])
        nearest = select(t.c.id).order_by(t.c.e.distance([0, 2, 0])).limit(1)
        assert conn.execute(nearest).scalar_one() == 2


@pytest.mark.parametrize("mode", ["plugin"])
def test_vecalchemy_helpers_take_the_compat_types(engine: Engine) -> None:
    add_items(engine)
    m = np.array(list(EMBEDDINGS.values()), dtype=np.float32)
    by_l2 = Item.embedding.l2_distance(bindparam("q"))
    nearest = vecalchemy.PreparedQuery(select(Item.id, Item.embedding).order_by(by_l2).limit(1))
    with engine.begin() as conn, vecalchemy.search_settings(conn, ef_search=50):
        assert nearest.all(conn, q=Q) == [(1, [1.0, 2.0, 3.0])]
        assert np.array_equal(vecalchemy.fetch_matrix(conn, Item.embedding), m)
        # vecalchemy's type over the same column gives arrays, skipping the lists
        arrays = conn.execute(select(type_coerce(Item.embedding, vecalchemy.Vector(3)))).scalars()
        assert np.array_equal(np.stack(list(arrays)), m)


# --- values --------------------------------------------------------------------------------


class Many(Base):
    __tablename__ = "many"
    id: Mapped[int] = mapped_column(primary_key=True)
    v: Mapped[list[float] | None] = mapped_column(VECTOR(3))
    h: Mapped[list[float] | None] = mapped_column(HALFVEC(3))
    s: Mapped[Any] = mapped_column(SPARSEVEC(5), nullable=True)
    b: Mapped[str | None] = mapped_column(BIT(4))


def test_values_are_pgvector_sqlalchemys(engine: Engine) -> None:
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add_all(
            [
                Many(id=1, v=[0.5, -2, 3.25], h=[1, 0.5, -2], s={0: 1.5, 4: -2.0}, b="1010"),
                Many(id=2, v=np.array([0.1, 0.2, 0.3]), h=[0.1, 2, 3], b="0011"),
                Many(id=3, s=pgvector.SparseVector({2: 0.25}, 5), b="1111"),
                Many(id=4, s=SparseVector({1: 3.0}, 5)),
            ]
        )
        session.commit()
        rows = {m.id: m for m in session.scalars(select(Many))}
    assert rows[1].v == [0.5, -2.0, 3.25] and type(rows[1].v[0]) is float
    assert rows[1].h == [1.0, 0.5, -2.0]
    # each element is the stored float4 / binary16, exactly
    assert rows[2].v == np.float32([0.1, 0.2, 0.3]).tolist()
    assert rows[2].h == np.float16([0.1, 2, 3]).tolist()
    assert type(rows[1].s) is pgvector.SparseVector
    assert rows[1].s == pgvector.SparseVector({0: 1.5, 4: -2.0}, 5)
    assert rows[1].s == SparseVector({0: 1.5, 4: -2.0}, 5)
    assert rows[3].s == pgvector.SparseVector({2: 0.25}, 5)
    assert rows[4].s == SparseVector({1: 3.0}, 5)
    assert [rows[i].b for i in (1, 2, 3, 4)] == ["1010", "0011", "1111", None]
    assert rows[3].v is None and rows[3].h is None


def test_bit_distances_order_as_pgvector(engine: Engine) -> None:
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add_all([Many(id=1, b="1010"), Many(id=2, b="1110"), Many(id=3, b="0101")])
        session.commit()
        by_hamming = select(Many.id).order_by(Many.b.hamming_distance("1111"), Many.id)
        assert session.scalars(by_hamming).all() == [2, 1, 3]
        by_jaccard = select(Many.id).order_by(Many.b.jaccard_distance("1100"), Many.id)
        # Jaccard distances to 1100: 1110 -> 1/3, 1010 -> 2/3, 0101 -> 3/4
        assert session.scalars(by_jaccard).all() == [2, 1, 3]


def test_refused_values_carry_pgvector_wording_and_send_nothing(engine: Engine) -> None:
    Base.metadata.create_all(engine)
    cases = [
        ({"v": [1, 2]}, "expected 3 dimensions, not 2"),
        ({"v": np.ones((1, 3))}, "expected ndim to be 1"),
        ({"v": ["a", "b", "c"]}, "expected list[float]"),
        ({"v": {1, 2, 3}}, "expected list or ndarray"),
        ({"h": [1, 2, 70000]}, '"70000" is out of range for type halfvec'),
        ({"v": [1, float("nan"), 3]}, "NaN not allowed in vector"),
        ({"b": "1021"}, "expected bit string"),
        ({"b": "101"}, "bit string length 3 does not match type bit(4)"),
        ({"s": {7: 1.0}}, "sparsevec index out of bounds"),
    ]
    t = Many.__table__
    for bad, message in cases:
        rows = [{"id": 1, "v": [1, 2, 3]}, {"id": 2, **bad}]
        with engine.begin() as conn, pytest.raises(StatementError) as err:
            conn.execute(
                insert(t), [{"v": None, "h": None, "s": None, "b": None, **r} for r in rows]
            )
        assert isinstance(err.value.orig, InvalidVectorError)
        assert message in str(err.value.orig)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t)).scalar_one() == 0


def refusal(vtype: Any, value: Any) -> str:
    with pytest.raises(InvalidVectorError) as err:
        vtype.bind_processor(postgresql.dialect())(value)
    return str(err.value)


def test_pgvector_python_wording_only_where_it_refuses_for_the_same_reason() -> None:
    assert refusal(VECTOR(3), [1, 2]) == "vector(3): expected 3 dimensions, not 2"
    assert refusal(VECTOR(3), [[1, 2, 3]]).endswith("(expected list[float])")
    assert refusal(HALFVEC(3), np.ones((3, 1))).endswith("(expected ndim to be 1)")
    assert refusal(SPARSEVEC(), {5: 1.0}).endswith("(missing dimensions)")
    assert refusal(SPARSEVEC(3), {5: 1.0}).endswith("is not in [0, 3) (0-based)")
    assert refusal(BIT(3), [1, 0]) == "bit string length 2 does not match type bit(3)"
    assert refusal(BIT(3), [1, 0, 2]).endswith("(expected list[bool])")
    assert refusal(BIT(3), np.array([0, 1, 2])).endswith("(expected elements to be boolean)")
    assert refusal(BIT(3), 5).endswith("(expected bytes, str, list, or ndarray)")


# --- binary transport -------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["plugin", "dialect", "asyncpg"])
def test_binary_results_come_back_as_lists(engine: Engine, mode: str) -> None:
    Base.metadata.create_all(engine)
    formats: list[set[int]] = []

    @event.listens_for(engine, "after_cursor_execute")
    def spy(conn: Any, cursor: Any, *args: Any) -> None:
        res = getattr(cursor, "pgresult", None)  # (psycopg; asyncpg has none)
        if res is not None and res.nfields:
            formats.append({res.fformat(i) for i in range(res.nfields)})

    with Session(engine) as session:
        session.add(Many(id=1, v=[1, 2, 3], h=[0.5, 1, 2], s={4: 2.0}))
        session.commit()
        row = session.execute(select(Many.v, Many.h, Many.s)).one()
        raw = session.connection().exec_driver_sql("SELECT v, h FROM many").one()
    assert row == ([1.0, 2.0, 3.0], [0.5, 1.0, 2.0], pgvector.SparseVector({4: 2.0}, 5))
    # vecalchemy's loaders / codecs made arrays; the compat types turned them into lists
    assert [type(x) for x in raw] == [np.ndarray, np.ndarray]
    if mode == "asyncpg":  # (asyncpg sends and reads codec'd types in binary always)
        return
    assert formats[-2] == {1}  # the select() above: binary results
    with engine.connect() as conn, libpq_trace(conn) as messages:
        conn.execute(select(Many.id).order_by(Many.v.l2_distance([3, 1, 2])).limit(1)).all()
    binds = [m[3].split() for m in messages if m[0] == "F" and m[2] == "Bind"]
    assert binds[0][2:4] == ["1", "1"]  # one format code: the query vector, in binary


# --- ARRAY ------------------------------------------------------------------------------


def array_table(engine: Engine) -> Table:
    md = MetaData()
    t = Table(
        "a",
        md,
        Column("id", Integer, primary_key=True),
        Column("embeddings", ARRAY(VECTOR(3), dimensions=1)),
        Column("halves", ARRAY(HALFVEC(2), dimensions=1)),
    )
    md.create_all(engine)
    return t


@pytest.fixture
def keep_psycopg2_adapters() -> Iterator[None]:
    """pgvector.psycopg2.register_vector registers its adapters process-wide."""
    import psycopg2.extensions

    before = dict(psycopg2.extensions.adapters)
    yield
    psycopg2.extensions.adapters.clear()
    psycopg2.extensions.adapters.update(before)


def register_as_pgvector_readme_says(engine: Engine) -> None:
    """pgvector-python's README, Arrays: register its types with the underlying driver."""
    if engine.dialect.driver == "psycopg2":
        from pgvector.psycopg2 import register_vector as register_psycopg2
    else:
        from pgvector.psycopg import register_vector as register_psycopg

    @event.listens_for(engine, "connect")
    def connect(dbapi_connection: Any, connection_record: Any) -> None:
        if engine.dialect.driver == "psycopg2":
            register_psycopg2(dbapi_connection)
        else:
            register_psycopg(dbapi_connection)


@pytest.mark.parametrize("mode", ["text", "plugin", "dialect", "psycopg2", "asyncpg-text"])
def test_arrays_round_trip_as_lists_of_lists(
    engine: Engine, mode: str, keep_psycopg2_adapters: None
) -> None:
    if mode != "asyncpg-text":  # (asyncpg parses arrays of any type itself)
        register_as_pgvector_readme_says(engine)
    t = array_table(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(t),
            [
                {"id": 1, "embeddings": [[1, 2, 3], [4, 5, 6]], "halves": [[0.5, 1]]},
                {"id": 2, "embeddings": [], "halves": None},
            ],
        )
        rows = conn.execute(select(t.c.embeddings, t.c.halves).order_by(t.c.id)).all()
    assert [tuple(r) for r in rows] == [
        ([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], [[0.5, 1.0]]),
        ([], None),
    ]


@pytest.mark.parametrize("mode", ["asyncpg"])
def test_arrays_read_as_lists_of_lists_through_the_asyncpg_codecs(engine: Engine) -> None:
    t = array_table(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO a VALUES (1, ARRAY['[1,2,3]', '[4,5,6]']::vector[], "
            "ARRAY['[0.5,1]']::halfvec[])"
        )
        row = conn.execute(select(t.c.embeddings, t.c.halves)).one()
    assert tuple(row) == ([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], [[0.5, 1.0]])


@pytest.mark.parametrize("mode", ["asyncpg"])
def test_array_binds_through_the_asyncpg_codecs(engine: Engine) -> None:
    t = array_table(engine)
    with engine.begin() as conn:
        conn.execute(insert(t), {"id": 1, "embeddings": [[1, 2, 3]], "halves": [[0.5, 1]]})


@pytest.mark.parametrize("mode", ["text"])
def test_arrays_the_driver_cannot_parse_are_refused_not_garbled(engine: Engine) -> None:
    t = array_table(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO a VALUES (1, ARRAY['[1,2,3]']::vector[], NULL)")
        with pytest.raises(InvalidVectorError, match="pgvector.psycopg.register_vector"):
            conn.execute(select(t.c.embeddings)).all()


# --- SparseVector: both classes, everywhere ------------------------------------------------


def test_the_two_sparse_vector_classes_compare_by_content() -> None:
    ours = SparseVector({3: 2.0, 1: 0.1}, 5)
    theirs = pgvector.SparseVector({1: 0.1, 3: 2.0}, 5)
    assert ours == theirs and theirs == ours
    assert (ours != theirs) is False and (theirs != ours) is False
    assert ours != pgvector.SparseVector({1: 0.1, 3: 2.0}, 6)
    assert ours != pgvector.SparseVector({1: 0.1}, 5)
    assert theirs != SparseVector({1: 0.1, 3: 2.5}, 5)
    assert SparseVector({}, 3) == pgvector.SparseVector({}, 3)


def test_both_sparse_classes_bind_and_copy_into_both_column_types(engine: Engine) -> None:
    md = MetaData()
    t = Table(
        "sp",
        md,
        Column("id", Integer, primary_key=True),
        Column("ours", SparseVec(5)),
        Column("compat", SPARSEVEC(5)),
    )
    md.create_all(engine)
    mine, theirs = SparseVector({0: 1.5, 4: -2.0}, 5), pgvector.SparseVector({2: 0.25}, 5)
    with engine.begin() as conn:
        conn.execute(
            insert(t),
            [{"id": 1, "ours": mine, "compat": theirs}, {"id": 2, "ours": theirs, "compat": mine}],
        )
        copy_rows(
            conn,
            t,
            {"id": [3, 4], "ours": [mine, theirs], "compat": [theirs, mine]},
            progress=False,
        )
        rows = conn.execute(select(t.c.ours, t.c.compat).order_by(t.c.id)).all()
    assert [tuple(r) for r in rows] == [(mine, theirs), (theirs, mine)] * 2
    assert {type(r.ours) for r in rows} == {SparseVector}
    assert {type(r.compat) for r in rows} == {pgvector.SparseVector}


_WITHOUT_PGVECTOR = """
import sys
sys.modules["pgvector"] = None  # as if the pgvector package were not installed
from sqlalchemy.dialects import postgresql
from vecalchemy.compat.pgvector import SPARSEVEC
load = SPARSEVEC(3).result_processor(postgresql.dialect(), None)
print(type(load("{1:1.5}/3")).__module__, SPARSEVEC(3).python_type.__name__)
"""


def test_sparsevec_returns_vecalchemys_sparse_vector_without_the_pgvector_package() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _WITHOUT_PGVECTOR], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["vecalchemy.values", "SparseVector"]


# --- reflection and automap -----------------------------------------------------------------


def test_reflection_answers_with_the_compat_classes(
    engine: Engine, pgvector_reflection: None
) -> None:
    Base.metadata.create_all(engine)
    types = {c["name"]: c["type"] for c in inspect(engine).get_columns("many")}
    assert [(type(types[n]), types[n].dim) for n in ("v", "h", "s")] == [
        (VECTOR, 3),
        (HALFVEC, 3),
        (SPARSEVEC, 5),
    ]
    assert type(types["b"]) is SQLA_BIT and types["b"].length == 4  # as pgvector.sqlalchemy
    t = Table("many", MetaData(), autoload_with=engine)
    with engine.begin() as conn:
        conn.execute(insert(t), {"id": 1, "v": [1, 2, 3], "h": [1, 2, 3], "s": {1: 2.0}})
        assert tuple(conn.execute(select(t.c.v, t.c.h, t.c.s)).one()) == (
            [1.0, 2.0, 3.0],
            [1.0, 2.0, 3.0],
            pgvector.SparseVector({1: 2.0}, 5),
        )
        with pytest.raises(StatementError, match="expected 3 dimensions, not 2"):
            conn.execute(insert(t), {"id": 2, "v": [1, 2]})


def test_automap_maps_vector_columns_to_the_compat_classes(
    engine: Engine, pgvector_reflection: None
) -> None:
    add_items(engine)
    AutoBase = automap_base()
    AutoBase.prepare(autoload_with=engine)
    AutoItem = AutoBase.classes["items"]
    with Session(engine) as session:
        session.add(AutoItem(id=9, embedding=[9, 9, 9]))
        session.commit()
        nearest = session.scalars(
            select(AutoItem).order_by(AutoItem.embedding.l2_distance(Q)).limit(1)
        ).one()
        assert nearest.id == expected_order(l2, Q)[0]
        assert session.get(AutoItem, 9).embedding == [9.0, 9.0, 9.0]


_IMPORT_SCRIPT = """
import sys
from sqlalchemy import create_engine, inspect
url, schema = sys.argv[1], sys.argv[2]
import vecalchemy
def answers():
    out = []
    for driver in ("postgresql+psycopg", "postgresql+vecalchemy"):
        eng = create_engine(
            url.replace("postgresql+psycopg", driver),
            connect_args={"options": f"-csearch_path={schema},public"},
        )
        cols = {c["name"]: c["type"] for c in inspect(eng).get_columns("many")}
        out += [f"{type(cols[n]).__module__}.{type(cols[n]).__name__}" for n in ("v", "s")]
        eng.dispose()
    return out
print(*answers())
import vecalchemy.compat.pgvector
print(*answers())
"""


def test_importing_the_module_switches_reflection_on_every_engine(
    vector_database_url: str, vector_schema: str
) -> None:
    engine = make_engine(vector_database_url, vector_schema, "text")
    Base.metadata.create_all(engine)
    engine.dispose()
    before, after = subprocess.run(
        [sys.executable, "-c", _IMPORT_SCRIPT, vector_database_url, vector_schema],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    ours = ["vecalchemy.types.Vector", "vecalchemy.types.SparseVec"]
    assert before.split() == ours * 2
    theirs = ["vecalchemy.compat.pgvector.VECTOR", "vecalchemy.compat.pgvector.SPARSEVEC"]
    assert after.split() == theirs * 2


# --- side by side with pgvector.sqlalchemy (psycopg, no plugin) ---------------------------


@pytest.mark.parametrize("mode", ["text"])
def test_same_values_as_pgvector_sqlalchemy(engine: Engine, keep_reflection: None) -> None:
    import pgvector.sqlalchemy as original

    def table(md: MetaData, lib: Any) -> Table:
        return Table(
            "side",
            md,
            Column("id", Integer, primary_key=True),
            Column("v", lib.VECTOR(3)),
            Column("h", lib.HALFVEC(3)),
            Column("s", lib.SPARSEVEC(5)),
            Column("b", lib.BIT(3)),
        )

    theirs, ours = table(MetaData(), original), table(MetaData(), compat)
    theirs.metadata.create_all(engine)
    exact = {"v": [1, 2.5, -3], "h": [0.5, 1, 2], "b": "101"}
    with engine.begin() as conn:
        conn.execute(insert(theirs), {"id": 1, "s": pgvector.SparseVector({4: 1.5}, 5), **exact})
        conn.execute(insert(ours), {"id": 2, "s": pgvector.SparseVector({4: 1.5}, 5), **exact})
        conn.execute(insert(ours), {"id": 3, "v": [0.1, 0.2, 0.3], "h": [0.1, 0.2, 0.3]})
        read_theirs = conn.execute(select(theirs).order_by(theirs.c.id)).all()
        read_ours = conn.execute(select(ours).order_by(ours.c.id)).all()
        distances = [
            conn.execute(select(t.c.v.l2_distance(Q)).order_by(t.c.id)).scalars().all()
            for t in (theirs, ours)
        ]
        means = [
            conn.execute(select(lib.avg(t.c.v))).scalar()
            for lib, t in ((original, theirs), (compat, ours))
        ]
    # values exact in float4 read the same through both, whoever wrote them
    assert [tuple(r) for r in read_ours[:2]] == [tuple(r) for r in read_theirs[:2]]
    assert read_ours[0].v == [1, 2.5, -3] and read_ours[0].b == "101"
    assert distances[0] == distances[1]
    # other values: the same float4, as Python floats. pgvector.sqlalchemy parses the
    # server's shortest text (0.1); the compat types give the stored float4 exactly
    assert read_theirs[2].v == [0.1, 0.2, 0.3]
    assert read_ours[2].v == np.float32([0.1, 0.2, 0.3]).tolist()
    assert np.array_equal(np.float32(read_ours[2].h), np.float32(read_theirs[2].h))
    assert np.array_equal(np.float32(means[0]), np.float32(means[1]))


# --- async sessions ----------------------------------------------------------------------


@pytest.fixture(params=ASYNC_MODES)
async def async_engine(
    request: pytest.FixtureRequest, vector_database_url: str, vector_schema: str
) -> AsyncIterator[AsyncEngine]:
    eng = make_async_engine(vector_database_url, vector_schema, str(request.param))
    yield eng
    await eng.dispose()


async def test_readme_usage_in_an_async_session(async_engine: AsyncEngine) -> None:
    async with async_engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    async with AsyncSession(async_engine) as session:
        session.add_all([Item(id=i, embedding=e) for i, e in EMBEDDINGS.items()])
        await session.commit()
        item = await session.get(Item, 1)
        assert item is not None and item.embedding == [1, 2, 3]
        nearest = await session.scalars(
            select(Item).order_by(Item.embedding.l2_distance(Q)).limit(5)
        )
        assert [i.id for i in nearest] == expected_order(l2, Q)
        mean = (await session.scalars(select(avg(Item.embedding)))).first()
        m = np.array(list(EMBEDDINGS.values()), dtype=np.float64)
        assert mean == m.mean(axis=0).tolist()


# --- Alembic -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["plugin"])
def test_autogenerate_renders_compat_types_and_sees_no_difference(engine: Engine) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.autogenerate.api import AutogenContext
    from alembic.migration import MigrationContext
    from vecalchemy_alembic import render_item

    Base.metadata.create_all(engine)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(ctx, Base.metadata) == []
        changed = MetaData()
        Many.__table__.to_metadata(changed)
        Table(
            "items",
            changed,
            Column("id", Integer, primary_key=True),
            Column("embedding", VECTOR(4)),
        )
        diffs = compare_metadata(ctx, changed)
        assert [d[0][0] for d in diffs] == ["modify_type"]
        autogen = AutogenContext(ctx)
        rendered = [
            render_item("type", t, autogen)
            for t in (VECTOR(3, metric="cosine"), HALFVEC(8), SPARSEVEC(5), BIT(6))
        ]
    assert rendered == [
        "vecalchemy.compat.pgvector.VECTOR(3, metric='cosine')",
        "vecalchemy.compat.pgvector.HALFVEC(8)",
        "vecalchemy.compat.pgvector.SPARSEVEC(5)",
        "vecalchemy.compat.pgvector.BIT(6)",
    ]
    assert "import vecalchemy.compat.pgvector" in autogen.imports
    namespace = {"vecalchemy": vecalchemy}
    exec("import vecalchemy.compat.pgvector", namespace)
    assert repr(eval(rendered[0], namespace)) == "VECTOR(3, metric='cosine')"


# --- the fast path for lists of floats gives check_dense's arrays and errors -----------------

_ELEMENTS = st.one_of(
    st.floats(width=64),
    st.floats(min_value=-70000, max_value=70000),
    st.integers(-(2**60), 2**60),
    st.booleans(),
    st.sampled_from([np.float64(1.5), np.float32(2.5), decimal.Decimal("1.25"), 3.4e38, 3.5e38]),
    st.sampled_from([65503.9, 65504.0, 65519.0, 65520.0, -65520.0, float("nan"), float("inf")]),
)


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(
    values=st.lists(_ELEMENTS, min_size=3, max_size=3).map(list)
    | st.lists(st.floats(width=64), min_size=3, max_size=3).map(tuple),
    halfvec=st.booleans(),
)
def test_list_fast_path_matches_check_dense(values: Any, halfvec: bool) -> None:
    sql_type = "halfvec" if halfvec else "vector"
    ctype = compat.HALFVEC(3) if halfvec else compat.VECTOR(3)
    try:
        want = check_dense(values, sql_type, 3)
    except InvalidVectorError as e:
        with pytest.raises(InvalidVectorError) as got:
            ctype._check(values)
        assert str(e) in str(got.value)
        return
    got_arr = ctype._check(values)
    assert got_arr.dtype == want.dtype
    assert np.array_equal(got_arr, want)
