"""pgvector's functions keep their vector types; values checked against NumPy."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sqlalchemy import Column, Integer, MetaData, Table, cast, insert, select
from sqlalchemy.dialects.postgresql import psycopg as pg_psycopg
from sqlalchemy.engine import Engine

from vecalchemy import (
    Bit,
    HalfVec,
    SparseVec,
    SparseVector,
    Vector,
    avg,
    binary_quantize,
    l2_normalize,
    subvector,
    sum,
    vector_dims,
    vector_norm,
)

DIM = 6
DATA = np.random.default_rng(7).standard_normal((5, DIM)).astype(np.float32)


def compiled(expr: Any) -> str:
    return str(select(expr).compile(dialect=pg_psycopg.dialect()))


@pytest.fixture
def table(engine: Engine) -> Table:
    md = MetaData()
    t = Table(
        "f",
        md,
        Column("id", Integer, primary_key=True),
        Column("v", Vector(DIM)),
        Column("h", HalfVec(DIM)),
        Column("s", SparseVec(DIM)),
    )
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(t), [{"id": i, "v": row, "h": row, "s": row} for i, row in enumerate(DATA)]
        )
    return t


def scalar(engine: Engine, expr: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(expr)).scalar_one()


def column(engine: Engine, t: Table, expr: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.scalars(select(expr).order_by(t.c.id)))


def test_avg_of_vector_is_a_float32_mean(engine: Engine, table: Table) -> None:
    out = scalar(engine, avg(table.c.v))
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    np.testing.assert_allclose(out, DATA.astype(np.float64).mean(axis=0), rtol=1e-6)


def test_avg_of_halfvec_is_a_float16_mean(engine: Engine, table: Table) -> None:
    out = scalar(engine, avg(table.c.h))
    assert out.dtype == np.float16
    expected = DATA.astype(np.float16).astype(np.float64).mean(axis=0).astype(np.float16)
    np.testing.assert_allclose(out.astype(np.float64), expected, rtol=1e-3)


def test_avg_over_no_rows_is_none(engine: Engine, table: Table) -> None:
    with engine.connect() as conn:
        assert conn.execute(select(avg(table.c.v)).where(table.c.id < 0)).scalar_one() is None


def test_sum_of_vector_is_a_float32_sum(engine: Engine, table: Table) -> None:
    out = scalar(engine, sum(table.c.v))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, DATA.astype(np.float64).sum(axis=0), rtol=1e-5, atol=1e-6)


def test_sum_of_halfvec_is_float16(engine: Engine, table: Table) -> None:
    out = scalar(engine, sum(table.c.h))
    assert out.dtype == np.float16
    expected = DATA.astype(np.float16).astype(np.float64).sum(axis=0)
    np.testing.assert_allclose(out.astype(np.float64), expected, rtol=5e-3, atol=5e-3)


def test_avg_and_sum_keep_the_argument_type() -> None:
    t = Table("t", MetaData(), Column("h", HalfVec(4)))
    assert repr(avg(t.c.h).type) == "HalfVec(4)" and repr(sum(t.c.h).type) == "HalfVec(4)"


@pytest.mark.parametrize("col", ["v", "h"])
def test_l2_normalize_dense_matches_numpy(engine: Engine, table: Table, col: str) -> None:
    rows = column(engine, table, l2_normalize(table.c[col]))
    src = DATA.astype(np.float16 if col == "h" else np.float32).astype(np.float64)
    expected = src / np.linalg.norm(src, axis=1, keepdims=True)
    assert rows[0].dtype == (np.float16 if col == "h" else np.float32)
    np.testing.assert_allclose(np.array(rows, dtype=np.float64), expected, rtol=2e-3, atol=1e-3)


def test_l2_normalize_sparsevec_returns_a_sparse_vector(engine: Engine, table: Table) -> None:
    rows = column(engine, table, l2_normalize(table.c.s))
    assert isinstance(rows[0], SparseVector)
    dense = np.array([r.to_dense() for r in rows], dtype=np.float64)
    expected = DATA / np.linalg.norm(DATA.astype(np.float64), axis=1, keepdims=True)
    np.testing.assert_allclose(dense, expected, rtol=1e-6, atol=1e-7)


def test_l2_normalize_of_a_zero_vector_is_zero(engine: Engine) -> None:
    assert scalar(engine, l2_normalize([0.0, 0.0])).tolist() == [0.0, 0.0]


def test_binary_quantize_of_a_python_value_is_1001(engine: Engine) -> None:
    assert scalar(engine, binary_quantize([1, -2, 0, 3])) == "1001"


def test_binary_quantize_of_a_python_value_binds_with_a_cast() -> None:
    assert "binary_quantize(%(param_1)s::VECTOR(4))" in compiled(binary_quantize([1, -2, 0, 3]))


def test_binary_quantize_of_a_column_matches_numpy(engine: Engine, table: Table) -> None:
    got = column(engine, table, binary_quantize(table.c.v))
    assert got == ["".join("1" if x > 0 else "0" for x in row) for row in DATA]


def test_binary_quantize_is_typed_bit_of_the_dimension() -> None:
    t = Table("t", MetaData(), Column("v", Vector(768)))
    assert repr(binary_quantize(t.c.v).type) == "Bit(768)"


def test_hamming_distance_on_binary_quantize_matches_numpy(engine: Engine, table: Table) -> None:
    q = DATA[0] > 0
    got = column(engine, table, cast(binary_quantize(table.c.v), Bit(DIM)).hamming_distance(q))
    assert got == [float(((row > 0) != q).sum()) for row in DATA]


def test_subvector_returns_the_slice_typed_with_its_count(engine: Engine, table: Table) -> None:
    expr = subvector(table.c.v, 2, 3)
    assert repr(expr.type) == "Vector(3)"
    got = column(engine, table, expr)
    np.testing.assert_array_equal(np.array(got), DATA[:, 1:4])


@pytest.mark.parametrize(("start", "count", "dim"), [(5, 4, 2), (0, 3, 2), (-2, 4, 1)])
def test_subvector_is_typed_with_the_length_pgvector_clamps_it_to(
    engine: Engine, table: Table, start: int, count: int, dim: int
) -> None:
    expr = subvector(table.c.v, start, count)
    assert repr(expr.type) == f"Vector({dim})"
    q = np.ones(dim, dtype=np.float32)
    got = column(engine, table, expr.l2_distance(q))
    kept = DATA[:, max(start, 1) - 1 : max(start, 1) - 1 + dim]
    np.testing.assert_allclose(got, np.linalg.norm(kept - q, axis=1), rtol=1e-6)


def test_subvector_of_halfvec_stays_halfvec(engine: Engine, table: Table) -> None:
    got = column(engine, table, subvector(table.c.h, 1, 2))
    assert got[0].dtype == np.float16
    np.testing.assert_array_equal(np.array(got), DATA[:, :2].astype(np.float16))


@pytest.mark.parametrize("col", ["v", "h"])
def test_vector_dims_counts_dimensions(engine: Engine, table: Table, col: str) -> None:
    assert column(engine, table, vector_dims(table.c[col])) == [DIM] * len(DATA)


def test_vector_dims_refuses_sparsevec_which_pgvector_lacks() -> None:
    t = Table("t", MetaData(), Column("s", SparseVec(3)))
    with pytest.raises(TypeError, match=r"vector_dims\(\) takes a Vector, HalfVec expression"):
        vector_dims(t.c.s)


def test_vector_norm_emits_vector_norm_for_vector() -> None:
    t = Table("t", MetaData(), Column("v", Vector(3)))
    assert "vector_norm(t.v)" in compiled(vector_norm(t.c.v))


@pytest.mark.parametrize("coltype", [HalfVec(3), SparseVec(3)], ids=repr)
def test_vector_norm_emits_l2_norm_for_halfvec_and_sparsevec(coltype: Any) -> None:
    t = Table("t", MetaData(), Column("c", coltype))
    assert "l2_norm(t.c)" in compiled(vector_norm(t.c.c))


@pytest.mark.parametrize("col", ["v", "h", "s"])
def test_vector_norm_values_match_numpy(engine: Engine, table: Table, col: str) -> None:
    got = column(engine, table, vector_norm(table.c[col]))
    src = DATA.astype(np.float16) if col == "h" else DATA
    np.testing.assert_allclose(got, np.linalg.norm(src.astype(np.float64), axis=1), rtol=1e-6)


def test_vector_norm_of_a_cast_to_halfvec_uses_l2_norm(engine: Engine, table: Table) -> None:
    got = column(engine, table, vector_norm(cast(table.c.v, HalfVec(DIM))))
    expected = np.linalg.norm(DATA.astype(np.float16).astype(np.float64), axis=1)
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_vector_norm_of_a_python_list(engine: Engine) -> None:
    assert scalar(engine, vector_norm([3, 4])) == 5.0


def test_functions_refuse_a_non_vector_expression() -> None:
    t = Table("t", MetaData(), Column("n", Integer))
    with pytest.raises(TypeError, match=r"avg\(\) takes a Vector, HalfVec expression, got type"):
        avg(t.c.n)


def test_binary_quantize_refuses_a_sparse_value() -> None:
    with pytest.raises(TypeError, match=r"binary_quantize\(\) does not take a SparseVector"):
        binary_quantize(SparseVector({0: 1.0}, 3))
