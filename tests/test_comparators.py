"""Distance comparators: the SQL they emit and their values against NumPy, in every mode."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sqlalchemy import Column, Float, Integer, MetaData, Table, cast, insert, select
from sqlalchemy.dialects.postgresql import psycopg as pg_psycopg
from sqlalchemy.engine import Engine
from sqlalchemy.sql import ColumnElement

from vecalchemy import Bit, HalfVec, SparseVec, SparseVector, Vector

DIM = 8
ROWS = 6
RNG = np.random.default_rng(42)
DENSE = RNG.standard_normal((ROWS, DIM)).astype(np.float32)
QUERY = RNG.standard_normal(DIM).astype(np.float32)
SPARSE = np.where(RNG.random((ROWS, DIM)) < 0.5, DENSE, 0).astype(np.float32)
BITS = RNG.random((ROWS, 16)) < 0.5
QBITS = RNG.random(16) < 0.5


def compiled(expr: Any) -> str:
    """SQL for psycopg, with the pyformat escape of ``%`` (``<%%>``) undone for reading."""
    return str(select(expr).compile(dialect=pg_psycopg.dialect())).replace("%%", "%")


def l2(a: np.ndarray, q: np.ndarray) -> np.ndarray:
    return np.sqrt(((a.astype(np.float64) - q) ** 2).sum(axis=1))


def neg_ip(a: np.ndarray, q: np.ndarray) -> np.ndarray:
    return -(a.astype(np.float64) @ q.astype(np.float64))


def cosine(a: np.ndarray, q: np.ndarray) -> np.ndarray:
    a64, q64 = a.astype(np.float64), q.astype(np.float64)
    return 1 - (a64 @ q64) / (np.linalg.norm(a64, axis=1) * np.linalg.norm(q64))


def l1(a: np.ndarray, q: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.float64) - q).sum(axis=1)


def hamming(a: np.ndarray, q: np.ndarray) -> np.ndarray:
    return (a != q).sum(axis=1).astype(np.float64)


def jaccard(a: np.ndarray, q: np.ndarray) -> np.ndarray:
    return 1 - (a & q).sum(axis=1) / (a | q).sum(axis=1)


NUMPY = {
    "l2_distance": l2,
    "max_inner_product": neg_ip,
    "cosine_distance": cosine,
    "l1_distance": l1,
    "hamming_distance": hamming,
    "jaccard_distance": jaccard,
}
DENSE_METHODS = ["l2_distance", "max_inner_product", "cosine_distance", "l1_distance"]


def vector_table(engine: Engine) -> Table:
    md = MetaData()
    t = Table(
        "items",
        md,
        Column("id", Integer, primary_key=True),
        Column("v", Vector(DIM)),
        Column("h", HalfVec(DIM)),
        Column("s", SparseVec(DIM)),
        Column("b", Bit(16)),
    )
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(t),
            [
                {"id": i, "v": DENSE[i], "h": DENSE[i], "s": SPARSE[i], "b": BITS[i]}
                for i in range(ROWS)
            ],
        )
    return t


def fetch(engine: Engine, t: Table, expr: ColumnElement[Any]) -> np.ndarray:
    with engine.connect() as conn:
        return np.array(conn.scalars(select(expr).order_by(t.c.id)).all(), dtype=np.float64)


# --- the SQL ---------------------------------------------------------------------------


def test_right_operand_is_bound_with_the_columns_exact_type() -> None:
    t = Table("t", MetaData(), Column("v", Vector(3)))
    assert "t.v <-> %(v_1)s::VECTOR(3)" in compiled(t.c.v.l2_distance([1, 2, 3]))


def test_cast_to_halfvec_binds_the_operand_as_halfvec() -> None:
    t = Table("t", MetaData(), Column("v", Vector(3)))
    sql = compiled(cast(t.c.v, HalfVec(3)).l2_distance([1, 2, 3]))
    assert "CAST(t.v AS HALFVEC(3)) <-> %(param_1)s::HALFVEC(3)" in sql


@pytest.mark.parametrize(
    ("coltype", "method", "operator", "bind"),
    [
        (Vector(3), "max_inner_product", "<#>", "::VECTOR(3)"),
        (HalfVec(3), "cosine_distance", "<=>", "::HALFVEC(3)"),
        (SparseVec(5), "l1_distance", "<+>", "::SPARSEVEC(5)"),
        (Bit(4), "hamming_distance", "<~>", "::BIT(4)"),
        (Bit(4), "jaccard_distance", "<%>", "::BIT(4)"),
        (Vector(), "l2_distance", "<->", "::VECTOR"),
    ],
    ids=lambda x: str(x),
)
def test_each_method_emits_its_operator_and_a_typed_bind(
    coltype: Any, method: str, operator: str, bind: str
) -> None:
    t = Table("t", MetaData(), Column("c", coltype))
    value = "1010" if isinstance(coltype, Bit) else [0, 1, 0]
    if isinstance(coltype, SparseVec):
        value = {0: 1.0}
    sql = compiled(getattr(t.c.c, method)(value))
    assert f"t.c {operator} %(c_1)s{bind} " in sql + " "


def test_column_of_another_vector_type_is_cast_to_the_left_type() -> None:
    t = Table("t", MetaData(), Column("v", Vector(3)), Column("h", HalfVec(3)))
    assert "t.v <-> CAST(t.h AS VECTOR(3))" in compiled(t.c.v.l2_distance(t.c.h))


def test_column_of_the_same_type_is_not_cast() -> None:
    t = Table("t", MetaData(), Column("a", Vector(3)), Column("b", Vector(3)))
    assert "t.a <=> t.b" in compiled(t.c.a.cosine_distance(t.c.b))


def test_distance_result_type_is_float() -> None:
    t = Table("t", MetaData(), Column("v", Vector(3)), Column("b", Bit(2)))
    assert isinstance(t.c.v.l2_distance([1, 2, 3]).type, Float)
    assert isinstance(t.c.b.hamming_distance("01").type, Float)


def test_distance_uses_the_declared_metric() -> None:
    t = Table("t", MetaData(), Column("v", Vector(3, metric="inner_product")))
    assert "t.v <#> " in compiled(t.c.v.distance([1, 2, 3]))


def test_bit_distance_uses_the_declared_metric() -> None:
    t = Table("t", MetaData(), Column("b", Bit(4, metric="jaccard")))
    assert "t.b <%> " in compiled(t.c.b.distance("1010"))


def test_distance_without_a_declared_metric_says_what_to_do() -> None:
    t = Table("t", MetaData(), Column("v", Vector(3)))
    with pytest.raises(ValueError, match=r"Vector\(3\) declares no metric; declare one"):
        t.c.v.distance([1, 2, 3])


def test_hamming_distance_on_a_vector_is_a_type_error() -> None:
    t = Table("t", MetaData(), Column("v", Vector(3)))
    with pytest.raises(
        TypeError, match=r"hamming_distance\(\) \(<~>\) is not defined for vector; vector supports"
    ):
        t.c.v.hamming_distance("101")


def test_cosine_distance_on_a_bit_is_a_type_error() -> None:
    t = Table("t", MetaData(), Column("b", Bit(3)))
    with pytest.raises(
        TypeError,
        match=r"cosine_distance\(\) \(<=>\) is not defined for bit; "
        r"bit supports: hamming_distance\(\), jaccard_distance\(\)",
    ):
        t.c.b.cosine_distance("101")


def test_a_bad_query_vector_is_refused_when_the_statement_runs(engine: Engine) -> None:
    t = vector_table(engine)
    from sqlalchemy.exc import StatementError

    with (
        engine.connect() as conn,
        pytest.raises(StatementError, match="expected 8 dimensions, not 2"),
    ):
        conn.execute(select(t.c.v.l2_distance([1, 2])))


# --- the values ------------------------------------------------------------------------


@pytest.mark.parametrize("method", DENSE_METHODS)
def test_vector_distance_matches_numpy(engine: Engine, method: str) -> None:
    t = vector_table(engine)
    got = fetch(engine, t, getattr(t.c.v, method)(QUERY))
    np.testing.assert_allclose(got, NUMPY[method](DENSE, QUERY), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", DENSE_METHODS)
def test_halfvec_distance_matches_numpy_on_float16_values(engine: Engine, method: str) -> None:
    t = vector_table(engine)
    got = fetch(engine, t, getattr(t.c.h, method)(QUERY))
    expected = NUMPY[method](DENSE.astype(np.float16), QUERY.astype(np.float16))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", DENSE_METHODS)
def test_sparsevec_distance_matches_numpy(engine: Engine, method: str) -> None:
    t = vector_table(engine)
    got = fetch(engine, t, getattr(t.c.s, method)(SparseVector(QUERY)))
    np.testing.assert_allclose(got, NUMPY[method](SPARSE, QUERY), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", ["hamming_distance", "jaccard_distance"])
def test_bit_distance_matches_numpy(engine: Engine, method: str) -> None:
    t = vector_table(engine)
    got = fetch(engine, t, getattr(t.c.b, method)(QBITS))
    np.testing.assert_allclose(got, NUMPY[method](BITS, QBITS), rtol=1e-12)


def test_vector_column_with_a_float16_query_uses_the_vector_operator(engine: Engine) -> None:
    t = vector_table(engine)
    q16 = QUERY.astype(np.float16)
    got = fetch(engine, t, t.c.v.l2_distance(q16))
    vector_value = l2(DENSE, q16.astype(np.float32))
    halfvec_value = l2(DENSE.astype(np.float16), q16)
    np.testing.assert_allclose(got, vector_value, rtol=1e-6)
    assert not np.allclose(got, halfvec_value, rtol=1e-6)


def test_vector_column_with_a_halfvec_column_uses_the_vector_operator(engine: Engine) -> None:
    t = vector_table(engine)
    got = fetch(engine, t, t.c.v.l2_distance(t.c.h))
    expected = np.sqrt(((DENSE.astype(np.float64) - DENSE.astype(np.float16)) ** 2).sum(axis=1))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
    assert (got > 0).all()  # the halfvec operator would have rounded both sides: all zeros


def test_cast_to_halfvec_computes_on_rounded_values(engine: Engine) -> None:
    t = vector_table(engine)
    got = fetch(engine, t, cast(t.c.v, HalfVec(DIM)).l2_distance(QUERY))
    np.testing.assert_allclose(
        got, l2(DENSE.astype(np.float16), QUERY.astype(np.float16)), rtol=1e-5
    )


def test_distance_works_on_a_subquery_column(engine: Engine) -> None:
    t = vector_table(engine)
    sq = select(t.c.id, t.c.v.label("emb")).subquery()
    with engine.connect() as conn:
        got = conn.scalars(select(sq.c.emb.cosine_distance(QUERY)).order_by(sq.c.id)).all()
    np.testing.assert_allclose(got, cosine(DENSE, QUERY), rtol=1e-5, atol=1e-6)


def test_distance_works_on_a_table_alias(engine: Engine) -> None:
    t = vector_table(engine)
    a = t.alias("a")
    with engine.connect() as conn:
        got = conn.scalars(select(a.c.v.l1_distance(QUERY)).order_by(a.c.id)).all()
    np.testing.assert_allclose(got, l1(DENSE, QUERY), rtol=1e-5)


def test_distance_works_on_a_label(engine: Engine) -> None:
    t = vector_table(engine)
    got = fetch(engine, t, t.c.v.label("x").max_inner_product(QUERY))
    np.testing.assert_allclose(got, neg_ip(DENSE, QUERY), rtol=1e-5, atol=1e-6)


def test_distance_between_two_columns_of_the_same_table(engine: Engine) -> None:
    t = vector_table(engine)
    got = fetch(engine, t, t.c.v.l2_distance(t.c.v))
    assert got.tolist() == [0.0] * ROWS


def test_order_by_distance_limit_returns_the_nearest_rows_in_order(engine: Engine) -> None:
    t = vector_table(engine)
    with engine.connect() as conn:
        ids = conn.scalars(select(t.c.id).order_by(t.c.v.l2_distance(QUERY)).limit(3)).all()
    assert ids == np.argsort(l2(DENSE, QUERY))[:3].tolist()


def test_max_inner_product_ascending_gives_the_largest_product_first(engine: Engine) -> None:
    t = vector_table(engine)
    with engine.connect() as conn:
        first = conn.scalars(
            select(t.c.id).order_by(t.c.v.max_inner_product(QUERY)).limit(1)
        ).one()
    assert first == int(np.argmax(DENSE @ QUERY))


def test_distance_in_a_where_clause_filters_rows(engine: Engine) -> None:
    t = vector_table(engine)
    threshold = float(np.median(l2(DENSE, QUERY)))
    with engine.connect() as conn:
        ids = conn.scalars(
            select(t.c.id).where(t.c.v.l2_distance(QUERY) < threshold).order_by(t.c.id)
        ).all()
    assert ids == np.flatnonzero(l2(DENSE, QUERY) < threshold).tolist()


def test_declared_metric_distance_value_matches_numpy(engine: Engine) -> None:
    md = MetaData()
    t = Table(
        "m", md, Column("id", Integer, primary_key=True), Column("v", Vector(DIM, metric="cosine"))
    )
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(t), [{"id": i, "v": DENSE[i]} for i in range(ROWS)])
    got = fetch(engine, t, t.c.v.distance(QUERY))
    np.testing.assert_allclose(got, cosine(DENSE, QUERY), rtol=1e-5, atol=1e-6)


def test_distance_results_are_python_floats(engine: Engine) -> None:
    t = vector_table(engine)
    with engine.connect() as conn:
        values = conn.scalars(select(t.c.b.hamming_distance(QBITS))).all()
    assert {type(v) for v in values} == {float}
