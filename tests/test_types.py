"""Round trips of Vector, HalfVec, SparseVec and Bit through the real server, in every mode.

The ``engine`` fixture runs each test three times: plain psycopg (text path), the
``vecalchemy`` plugin and the ``postgresql+vecalchemy`` dialect (binary binds).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pgvector
import psycopg
import pytest
from sqlalchemy import Column, Integer, MetaData, Table, event, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.schema import CreateTable
from sqlalchemy.types import TypeEngine

from vecalchemy import Bit, HalfVec, InvalidVectorError, SparseVec, SparseVector, Vector

INT_DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]
FLOAT_DTYPES = ["float16", "float32", "float64"]


def round_trip(engine: Engine, coltype: TypeEngine[Any], value: Any) -> Any:
    md = MetaData()
    t = Table("rt", md, Column("id", Integer, primary_key=True), Column("x", coltype))
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(t), {"id": 1, "x": value})
        return conn.execute(select(t.c.x)).scalar_one()


def sample(dtype: str) -> np.ndarray:
    """The dtype's extremes (float64: float32's, the largest a vector holds), 0 and 1."""
    if dtype in INT_DTYPES:
        lo, hi = np.iinfo(dtype).min, np.iinfo(dtype).max
    else:
        info = np.finfo(np.float32 if dtype == "float64" else dtype)
        lo, hi = info.min, info.max
    return np.array([lo, 0, 1, hi], dtype=dtype)


@pytest.mark.parametrize("dtype", INT_DTYPES + FLOAT_DTYPES)
def test_vector_round_trips_every_numpy_real_dtype(engine: Engine, dtype: str) -> None:
    value = sample(dtype)
    out = round_trip(engine, Vector(4), value)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, value.astype(np.float32))


@pytest.mark.parametrize("dtype", INT_DTYPES + FLOAT_DTYPES)
def test_halfvec_round_trips_every_numpy_real_dtype(engine: Engine, dtype: str) -> None:
    value = np.array([0, 1, 7, 100], dtype=dtype)
    if dtype in ("int8", "int16", "int32", "int64") or dtype.startswith("float"):
        value[0] = -5
    out = round_trip(engine, HalfVec(4), value)
    assert out.dtype == np.float16
    np.testing.assert_array_equal(out, value.astype(np.float16))


def test_vector_round_trips_a_list_of_python_numbers(engine: Engine) -> None:
    out = round_trip(engine, Vector(3), [1, 2.5, -3])
    np.testing.assert_array_equal(out, np.array([1, 2.5, -3], dtype=np.float32))


def test_vector_round_trips_a_tuple(engine: Engine) -> None:
    out = round_trip(engine, Vector(2), (0.1, 0.2))
    np.testing.assert_array_equal(out, np.array([0.1, 0.2], dtype=np.float32))


def test_vector_round_trips_decimal_values(engine: Engine) -> None:
    from decimal import Decimal

    out = round_trip(engine, Vector(3), [Decimal("1.5"), Decimal("-2"), 3])
    np.testing.assert_array_equal(out, np.array([1.5, -2, 3], dtype=np.float32))


def test_vector_refuses_a_list_mixing_numbers_and_strings(engine: Engine) -> None:
    from decimal import Decimal

    with pytest.raises(Exception, match="expected numbers, got non-numeric elements"):
        round_trip(engine, Vector(2), [Decimal("1.5"), "x"])


def test_vector_edge_values_are_bit_exact(engine: Engine) -> None:
    value = np.array(
        [-0.0, 1e-45, 3.4e38, -3.4e38, np.finfo(np.float32).max, np.finfo(np.float32).tiny],
        dtype=np.float32,
    )
    out = round_trip(engine, Vector(6), value)
    assert out.tobytes() == value.tobytes()


def test_vector_negative_zero_keeps_its_sign(engine: Engine) -> None:
    out = round_trip(engine, Vector(1), [-0.0])
    assert np.signbit(out[0])


def test_halfvec_edge_values_are_bit_exact(engine: Engine) -> None:
    value = np.array([65504, -65504, -0.0, 6e-8, 0.1], dtype=np.float16)
    out = round_trip(engine, HalfVec(5), value)
    assert out.tobytes() == value.tobytes()


def test_halfvec_accepts_65519_as_65504_like_pgvector(engine: Engine) -> None:
    out = round_trip(engine, HalfVec(2), [65519.0, -65519])
    np.testing.assert_array_equal(out, np.array([65504, -65504], dtype=np.float16))


def test_vector_of_16000_dimensions_round_trips(engine: Engine) -> None:
    value = np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    out = round_trip(engine, Vector(16000), value)
    assert out.tobytes() == value.tobytes()


def test_halfvec_of_16000_dimensions_round_trips(engine: Engine) -> None:
    value = np.random.default_rng(1).standard_normal(16000).astype(np.float16)
    out = round_trip(engine, HalfVec(16000), value)
    assert out.tobytes() == value.tobytes()


def test_vector_without_dimension_takes_any_length(engine: Engine) -> None:
    md = MetaData()
    t = Table("free", md, Column("id", Integer, primary_key=True), Column("x", Vector()))
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(t), [{"id": 1, "x": [1, 2]}, {"id": 2, "x": [1, 2, 3, 4]}])
        lengths = [len(v) for v in conn.scalars(select(t.c.x).order_by(t.c.id))]
    assert lengths == [2, 4]


def test_sparsevec_round_trips_a_mapping_with_the_column_dim(engine: Engine) -> None:
    out = round_trip(engine, SparseVec(10), {0: 1.5, 9: -2.0})
    assert out == SparseVector({0: 1.5, 9: -2.0}, 10)


def test_sparsevec_of_one_billion_dimensions_round_trips(engine: Engine) -> None:
    value = SparseVector({0: 1.0, 123_456_789: 0.5, 999_999_999: -2.0}, 1_000_000_000)
    assert round_trip(engine, SparseVec(1_000_000_000), value) == value


def test_sparsevec_with_16000_non_zeros_round_trips(engine: Engine) -> None:
    rng = np.random.default_rng(2)
    idx = rng.choice(1_000_000, size=16000, replace=False)
    value = SparseVector.from_arrays(idx, rng.uniform(0.5, 1.0, 16000), 1_000_000)
    assert round_trip(engine, SparseVec(1_000_000), value) == value


def test_sparsevec_round_trips_a_dense_list(engine: Engine) -> None:
    assert round_trip(engine, SparseVec(4), [0, 3, 0, 0]) == SparseVector({1: 3.0}, 4)


def test_sparsevec_round_trips_an_all_zero_vector(engine: Engine) -> None:
    assert round_trip(engine, SparseVec(3), [0, 0, 0]) == SparseVector({}, 3)


def test_sparsevec_round_trips_a_scipy_row(engine: Engine) -> None:
    from scipy import sparse

    m = sparse.csr_array(np.array([[0, 0, 2.5, 0]]))
    assert round_trip(engine, SparseVec(4), m) == SparseVector({2: 2.5}, 4)


def test_bit_round_trips_a_string(engine: Engine) -> None:
    assert round_trip(engine, Bit(5), "10110") == "10110"


def test_bit_round_trips_bytes_with_the_column_length(engine: Engine) -> None:
    assert round_trip(engine, Bit(12), b"\xab\xc0") == "101010111100"


def test_bit_round_trips_a_list_of_bools(engine: Engine) -> None:
    assert round_trip(engine, Bit(3), [True, False, True]) == "101"


def test_bit_round_trips_a_bool_array(engine: Engine) -> None:
    assert round_trip(engine, Bit(4), np.array([0, 1, 1, 0], dtype=bool)) == "0110"


def test_bit_round_trips_a_long_random_string(engine: Engine) -> None:
    bits = "".join(np.random.default_rng(3).choice(["0", "1"], size=100_003))
    assert round_trip(engine, Bit(100_003), bits) == bits


def test_bit_varying_column_takes_any_length(engine: Engine) -> None:
    assert round_trip(engine, Bit(), "1" * 70) == "1" * 70


def test_pgvector_python_vector_is_accepted(engine: Engine) -> None:
    out = round_trip(engine, Vector(3), pgvector.Vector([1, 2, 3]))
    np.testing.assert_array_equal(out, [1, 2, 3])


def test_pgvector_python_halfvector_is_accepted(engine: Engine) -> None:
    out = round_trip(engine, HalfVec(2), pgvector.HalfVector([1.5, -2]))
    np.testing.assert_array_equal(out, np.array([1.5, -2], dtype=np.float16))


def test_pgvector_python_sparse_vector_is_accepted(engine: Engine) -> None:
    out = round_trip(engine, SparseVec(5), pgvector.SparseVector({1: 2.0}, 5))
    assert out == SparseVector({1: 2.0}, 5)


def test_pgvector_python_bit_is_accepted(engine: Engine) -> None:
    assert round_trip(engine, Bit(4), pgvector.Bit("1001")) == "1001"


@pytest.mark.parametrize("coltype", [Vector(2), HalfVec(2), SparseVec(2), Bit(2)], ids=repr)
def test_null_round_trips_as_none(engine: Engine, coltype: TypeEngine[Any]) -> None:
    assert round_trip(engine, coltype, None) is None


def test_binds_are_binary_params_with_the_plugin_and_text_without(
    engine: Engine, mode: str
) -> None:
    md = MetaData()
    t = Table(
        "kinds",
        md,
        Column("v", Vector(2)),
        Column("h", HalfVec(2)),
        Column("s", SparseVec(2)),
        Column("b", Bit(2)),
    )
    md.create_all(engine)
    seen: list[Any] = []

    @event.listens_for(engine, "before_cursor_execute")
    def capture(conn: Any, cursor: Any, stmt: str, params: Any, ctx: Any, many: Any) -> None:
        if stmt.startswith("INSERT"):
            seen.append(params)

    with engine.begin() as conn:
        conn.execute(insert(t), {"v": [1, 2], "h": [1, 2], "s": [0, 1], "b": "01"})
    params = seen[0] if isinstance(seen[0], dict) else dict(zip("vhsb", seen[0], strict=True))
    kinds = {k: type(v).__name__ for k, v in params.items()}
    text_bit = "BitString" if mode.startswith("asyncpg") else "str"  # (asyncpg's bit codec)
    if mode in ("plugin", "dialect", "asyncpg"):
        # dense vectors go as the checked arrays (not garbage-collected wrappers)
        bit = "BitParam" if mode != "asyncpg" else "BitString"
        assert kinds == {"v": "ndarray", "h": "ndarray", "s": "SparseVector", "b": bit}
        assert (params["v"].dtype, params["h"].dtype) == (np.float32, np.float16)
    else:
        assert kinds == {"v": "str", "h": "str", "s": "str", "b": text_bit}


def test_ddl_renders_dimensions_and_bit_varying() -> None:
    md = MetaData()
    t = Table(
        "d",
        md,
        Column("v", Vector(768)),
        Column("h", HalfVec(3)),
        Column("s", SparseVec(1000)),
        Column("b", Bit(64)),
        Column("bv", Bit()),
        Column("vfree", Vector()),
    )
    from sqlalchemy.dialects import postgresql

    ddl = str(CreateTable(t).compile(dialect=postgresql.dialect()))
    for piece in ("v VECTOR(768)", "h HALFVEC(3)", "s SPARSEVEC(1000)", "b BIT(64)"):
        assert piece in ddl
    assert "bv BIT VARYING," in ddl and "vfree VECTOR\n" in ddl


def test_created_columns_have_their_typmods_in_the_catalog(
    engine: Engine, raw_conn: psycopg.Connection
) -> None:
    md = MetaData()
    Table(
        "cat",
        md,
        Column("v", Vector(3)),
        Column("h", HalfVec(4)),
        Column("s", SparseVec(5)),
        Column("b", Bit(6)),
        Column("bv", Bit()),
    )
    md.create_all(engine)
    rows = raw_conn.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = 'cat'::regclass AND attnum > 0 ORDER BY attnum"
    ).fetchall()
    assert rows == [
        ("v", "vector(3)"),
        ("h", "halfvec(4)"),
        ("s", "sparsevec(5)"),
        ("b", "bit(6)"),
        ("bv", "bit varying"),
    ]


def test_literal_binds_render_a_cast_literal_the_server_accepts(engine: Engine) -> None:
    md = MetaData()
    t = Table("lit", md, Column("id", Integer, primary_key=True), Column("x", Vector(3)))
    md.create_all(engine)
    q = select(t.c.x.l2_distance([1, 2.5, -3]))
    sql = str(q.compile(engine, compile_kwargs={"literal_binds": True}))
    assert "'[1,2.5,-3]'::VECTOR(3)" in sql
    with engine.begin() as conn:
        conn.execute(insert(t), {"id": 1, "x": [1, 2.5, -3]})
        assert conn.exec_driver_sql(sql).scalar_one() == 0.0


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: Vector(0), "dimensions for type vector must be at least 1"),
        (lambda: Vector(16001), "dimensions for type vector cannot exceed 16000"),
        (lambda: HalfVec(16001), "dimensions for type halfvec cannot exceed 16000"),
        (
            lambda: SparseVec(1_000_000_001),
            "dimensions for type sparsevec cannot exceed 1000000000",
        ),
        (lambda: Vector("3"), "dim must be an int, got '3'"),  # type: ignore[arg-type]
        (lambda: Vector(True), "dim must be an int, got True"),
    ],
)
def test_type_construction_refuses_bad_dimensions(factory: Any, message: str) -> None:
    with pytest.raises(InvalidVectorError, match=message):
        factory()


def test_unknown_metric_for_the_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown metric 'hamming' for vector; expected one of"):
        Vector(3, metric="hamming")


def test_bit_refuses_a_vector_metric() -> None:
    with pytest.raises(ValueError, match="expected one of hamming, jaccard"):
        Bit(8, metric="cosine")


def test_types_expose_sql_type_dim_and_metric() -> None:
    v = Vector(3, metric="cosine")
    assert (v.sql_type, v.dim, v.metric) == ("vector", 3, "cosine")
    assert (Bit(8).sql_type, Bit(8).length) == ("bit", 8)


def test_repr_shows_dim_and_metric() -> None:
    assert repr(HalfVec(3, metric="l2")) == "HalfVec(3, metric='l2')"
    assert repr(Bit()) == "Bit()"


def test_bit_values_of_different_lengths_do_not_share_cached_statements(
    engine: Engine,
) -> None:
    from sqlalchemy import literal

    with engine.connect() as conn:
        # one statement shape twice: the second must bind as bit(8), not reuse bit(4)
        assert conn.execute(select(literal("1010", Bit(4)))).scalar_one() == "1010"
        assert conn.execute(select(literal("10101010", Bit(8)))).scalar_one() == "10101010"


def test_bit_cache_key_includes_the_length() -> None:
    from sqlalchemy import column, table

    a = select(table("t", column("b", Bit(4))).c.b)
    b = select(table("t", column("b", Bit(8))).c.b)
    assert a._generate_cache_key() != b._generate_cache_key()


@pytest.mark.parametrize(
    "coltype", [Vector(3, metric="l2"), HalfVec(3, metric="cosine"), Bit(4, metric="hamming")]
)
def test_adapt_keeps_dimension_and_metric(coltype: Any) -> None:
    copy = coltype.adapt(type(coltype))
    assert (copy.dim, copy.metric) == (coltype.dim, coltype.metric)


def test_results_are_normalised_when_pgvector_python_loaders_are_registered(
    vector_database_url: str, vector_schema: str
) -> None:
    from conftest import make_engine
    from pgvector.psycopg import register_vector

    eng = make_engine(vector_database_url, vector_schema, "text")
    event.listen(eng, "connect", lambda dbapi_conn, _: register_vector(dbapi_conn))
    try:
        md = MetaData()
        t = Table(
            "pv", md, Column("h", HalfVec(2)), Column("s", SparseVec(3)), Column("b", Bit(3))
        )
        md.create_all(eng)
        with eng.begin() as conn:
            conn.execute(insert(t), {"h": [1.5, 2], "s": {1: 2.0}, "b": "101"})
            h, s, b = conn.execute(select(t)).one()
    finally:
        eng.dispose()
    assert h.dtype == np.float16 and h.tolist() == [1.5, 2]
    assert s == SparseVector({1: 2.0}, 3)
    assert b == "101"
