"""Properties: codecs are the identity on float32/float16 values; rounding agrees with NumPy."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from conftest import make_engine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from psycopg import sql
from sqlalchemy import Column, Integer, MetaData, Table, delete, insert, select
from sqlalchemy.engine import Engine

from vecalchemy import HalfVec, SparseVector, Vector, codecs, register_adapters
from vecalchemy.psycopg import DenseParam
from vecalchemy.testing import libpq_conninfo

FLOAT32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
FLOAT16 = st.floats(width=16, allow_nan=False, allow_infinity=False)
VECTORS32 = hnp.arrays(np.float32, st.integers(1, 48), elements=FLOAT32)
VECTORS16 = hnp.arrays(np.float16, st.integers(1, 48), elements=FLOAT16)
#: float32 values whose binary16 rounding is finite (|x| < 65520)
HALF_RANGE = st.floats(min_value=-65519.98828125, max_value=65519.98828125, width=32)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.tobytes() == b.tobytes()


# --- pure codecs -------------------------------------------------------------------------


@given(VECTORS32)
def test_vector_binary_codec_is_the_identity(x: np.ndarray) -> None:
    assert same_bits(codecs.decode_dense_binary(codecs.encode_dense_binary(x), "vector"), x)


@given(VECTORS32)
def test_vector_text_codec_is_the_identity(x: np.ndarray) -> None:
    assert same_bits(codecs.decode_dense_text(codecs.encode_dense_text(x), "vector"), x)


@given(VECTORS16)
def test_halfvec_binary_codec_is_the_identity(x: np.ndarray) -> None:
    encoded = codecs.encode_dense_binary(x, "halfvec")
    assert same_bits(codecs.decode_dense_binary(encoded, "halfvec"), x)


@given(VECTORS16)
def test_halfvec_text_codec_is_the_identity(x: np.ndarray) -> None:
    assert same_bits(codecs.decode_dense_text(codecs.encode_dense_text(x), "halfvec"), x)


@given(st.dictionaries(st.integers(0, 999), FLOAT32.filter(lambda v: v != 0), max_size=30))
def test_sparse_codecs_are_the_identity(entries: dict[int, float]) -> None:
    sv = SparseVector(entries, 1000)
    assert codecs.decode_sparse_binary(codecs.encode_sparse_binary(sv)) == sv
    assert codecs.decode_sparse_text(codecs.encode_sparse_text(sv)) == sv


@given(st.text(alphabet="01", min_size=1, max_size=200))
def test_bit_codecs_are_the_identity(bits: str) -> None:
    checked = codecs.check_bits(bits)
    assert codecs.decode_bits_binary(codecs.encode_bits_binary(checked)) == bits
    assert codecs.encode_bits_text(checked) == bits


@given(hnp.arrays(np.float64, st.integers(1, 32), elements=st.floats(-60000, 60000)))
def test_halfvec_binding_rounds_like_numpy_through_float4(x: np.ndarray) -> None:
    # pgvector parses halfvec input as float4 then rounds to binary16 (src/halfvec.c)
    expected = x.astype(np.float32).astype(np.float16)
    assert same_bits(codecs.check_dense(x, "halfvec"), expected)


# --- against the server -------------------------------------------------------------------


@pytest.fixture(scope="module")
def module_schema(vector_database_url: str) -> Iterator[str]:
    name = f"p_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(libpq_conninfo(vector_database_url), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    yield name
    with psycopg.connect(libpq_conninfo(vector_database_url), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture(scope="module", params=["text", "plugin"])
def rt_table(
    request: pytest.FixtureRequest, vector_database_url: str, module_schema: str
) -> Iterator[tuple[Engine, Table]]:
    eng = make_engine(vector_database_url, module_schema, str(request.param))
    md = MetaData()
    t = Table(
        f"rt_{request.param}",
        md,
        Column("id", Integer, primary_key=True),
        Column("v", Vector()),
        Column("h", HalfVec()),
    )
    md.create_all(eng)
    yield eng, t
    eng.dispose()


@pytest.fixture(scope="module")
def bound_conn(vector_database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(libpq_conninfo(vector_database_url), autocommit=True) as conn:
        register_adapters(conn)
        yield conn


def store_and_load(eng: Engine, t: Table, column: str, x: Any) -> np.ndarray:
    with eng.begin() as conn:
        conn.execute(delete(t))
        conn.execute(insert(t), {"id": 1, column: x})
        return conn.execute(select(t.c[column])).scalar_one()  # type: ignore[no-any-return]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(x=VECTORS32)
def test_vector_database_round_trip_is_the_identity(
    rt_table: tuple[Engine, Table], x: np.ndarray
) -> None:
    eng, t = rt_table
    assert same_bits(store_and_load(eng, t, "v", x), x)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(x=VECTORS16)
def test_halfvec_database_round_trip_is_the_identity(
    rt_table: tuple[Engine, Table], x: np.ndarray
) -> None:
    eng, t = rt_table
    assert same_bits(store_and_load(eng, t, "h", x), x)


@settings(max_examples=40, deadline=None)
@given(x=hnp.arrays(np.float32, st.integers(1, 48), elements=HALF_RANGE))
def test_server_float4_to_halfvec_rounding_matches_numpy(
    bound_conn: psycopg.Connection, x: np.ndarray
) -> None:
    row = bound_conn.execute("SELECT %s::vector::halfvec", [DenseParam(x)]).fetchone()
    assert row is not None
    assert same_bits(row[0], x.astype(np.float16))


def test_server_rounding_matches_numpy_on_a_large_sample(bound_conn: psycopg.Connection) -> None:
    rng = np.random.default_rng(11)
    # every binade of binary16, subnormals included, with float32 bits below the half ulp
    x = (rng.choice([-1, 1], 16000) * 2.0 ** rng.uniform(-26, 15.99, 16000)).astype(np.float32)
    row = bound_conn.execute("SELECT %s::vector::halfvec", [DenseParam(x)]).fetchone()
    assert row is not None
    assert same_bits(row[0], x.astype(np.float16))


def test_every_finite_float16_survives_a_halfvec_round_trip(engine: Engine) -> None:
    all16 = np.arange(2**16, dtype=np.uint16).view(np.float16)
    finite = all16[np.isfinite(all16)]
    rows = np.array_split(finite, 4)  # 63 488 values, 4 rows of at most 16 000
    md = MetaData()
    t = Table("all16", md, Column("id", Integer, primary_key=True), Column("h", HalfVec()))
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(t), [{"id": i, "h": r} for i, r in enumerate(rows)])
        back = conn.scalars(select(t.c.h).order_by(t.c.id)).all()
    assert same_bits(np.concatenate(back), finite)
