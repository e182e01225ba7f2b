"""Bad values are refused while binding, with pgvector's own wording, before anything is sent."""

from __future__ import annotations

from typing import Any

import numpy as np
import psycopg
import pytest
from sqlalchemy import Column, Integer, MetaData, Table, bindparam, func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.types import TypeEngine

from vecalchemy import Bit, HalfVec, InvalidVectorError, SparseVec, SparseVector, Vector
from vecalchemy.codecs import check_bits, check_dense, check_sparse


def bind(coltype: TypeEngine[Any], value: Any) -> Any:
    """Run the type's bind processing the way a statement does (text dialect)."""
    from sqlalchemy.dialects.postgresql import psycopg as pg_psycopg

    processor = coltype.bind_processor(pg_psycopg.dialect())
    assert processor is not None
    return processor(value)


# --- our messages contain the server's own text for the same input --------------------

SERVER_AGREEMENT = [
    (Vector(3), [1, 2], "'[1,2]'::vector(3)"),
    (Vector(), [], "'[]'::vector"),
    (HalfVec(), [], "'[]'::halfvec"),
    (Vector(), [1.0, float("nan")], "'{1,NaN}'::real[]::vector"),
    (HalfVec(), [float("nan")], "'{NaN}'::real[]::halfvec"),
    (Vector(), [float("inf")], "'{Infinity}'::real[]::vector"),
    (HalfVec(), [float("-inf")], "'{-Infinity}'::real[]::halfvec"),
    (HalfVec(), [65520], "'[65520]'::halfvec"),
    (Vector(), np.zeros(16001), "array_fill(0, ARRAY[16001])::real[]::vector"),
    (HalfVec(), np.zeros(16001), "array_fill(0, ARRAY[16001])::real[]::halfvec"),
    (SparseVec(5), {5: 1.0}, "'{6:1}/5'::sparsevec"),
    (SparseVec(5), SparseVector({1: 1.0}, 4), "'{1:1}/4'::sparsevec(5)"),
    (SparseVec(3), {1: float("nan")}, "'{2:NaN}/3'::sparsevec"),
    (SparseVec(5), {1: 1e-46}, "'{2:1e-46}/5'::sparsevec"),  # float4 underflow
    (SparseVec(), SparseVector({}, 1), "'{}/0'::sparsevec"),
    (Bit(4), "101", "bit_in('101', 1560, 4)"),  # an INSERT into bit(4), not a padding cast
    (Bit(3), "10a", "'10a'::bit(3)"),
]


@pytest.mark.parametrize(
    ("coltype", "value", "sql"), SERVER_AGREEMENT, ids=[c[2] for c in SERVER_AGREEMENT]
)
def test_message_contains_the_servers_text_for_the_same_input(
    raw_conn: psycopg.Connection, coltype: TypeEngine[Any], value: Any, sql: str
) -> None:
    with pytest.raises(psycopg.Error) as server:
        raw_conn.execute(f"SELECT {sql}")
    expected = server.value.diag.message_primary
    assert expected
    if sql == "'{}/0'::sparsevec":  # a SparseVector cannot even be built with dim 0
        with pytest.raises(InvalidVectorError) as ours:
            SparseVector({}, 0)
    else:
        with pytest.raises(InvalidVectorError) as ours:
            bind(coltype, value)
    assert expected in str(ours.value)


def test_duplicate_sparse_indices_message_matches_the_server(
    raw_conn: psycopg.Connection,
) -> None:
    with pytest.raises(psycopg.Error) as server:
        raw_conn.execute("SELECT '{1:1,1:2}/5'::sparsevec")
    with pytest.raises(InvalidVectorError) as ours:
        SparseVector.from_arrays([0, 0], [1.0, 2.0], 5)
    assert str(server.value.diag.message_primary) in str(ours.value)


def test_too_many_non_zeros_message_matches_the_server(raw_conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.Error) as server:
        raw_conn.execute(
            "SELECT (SELECT '{' || string_agg(i || ':1', ',') || '}/100000' "
            "FROM generate_series(1, 16001) i)::sparsevec"
        )
    with pytest.raises(InvalidVectorError) as ours:
        bind(
            SparseVec(100_000), SparseVector.from_arrays(np.arange(16001), np.ones(16001), 100_000)
        )
    assert str(server.value.diag.message_primary) in str(ours.value)


def test_out_of_range_float4_names_the_value_and_type() -> None:
    with pytest.raises(InvalidVectorError, match='"4e\\+38" is out of range for type vector'):
        check_dense([1.0, 4e38])


def test_float64_overflowing_float32_in_an_array_is_refused() -> None:
    with pytest.raises(InvalidVectorError, match=r'"-1e\+300" is out of range for type vector'):
        check_dense(np.array([0.0, -1e300]))


# --- dense: vector / halfvec -------------------------------------------------------


def test_wrong_dimension_names_type_expected_and_actual() -> None:
    with pytest.raises(InvalidVectorError, match=r"^vector\(3\): expected 3 dimensions, not 2$"):
        check_dense([1, 2], "vector", 3)


def test_halfvec_wrong_dimension_names_halfvec() -> None:
    with pytest.raises(InvalidVectorError, match=r"^halfvec\(2\): expected 2 dimensions, not 3$"):
        check_dense([1, 2, 3], "halfvec", 2)


def test_nan_names_its_position() -> None:
    with pytest.raises(InvalidVectorError, match=r"^NaN not allowed in vector \(element 2\)$"):
        check_dense([0, 1, float("nan")])


def test_halfvec_65519_is_accepted_and_rounds_to_65504() -> None:
    assert check_dense([65519], "halfvec").tolist() == [65504.0]


def test_halfvec_beyond_65504_after_rounding_names_the_limit() -> None:
    with pytest.raises(InvalidVectorError, match=r"largest magnitude 65504"):
        check_dense([-70000.5], "halfvec")


def test_empty_numpy_array_is_refused() -> None:
    with pytest.raises(InvalidVectorError, match="^vector must have at least 1 dimension$"):
        check_dense(np.zeros(0, dtype=np.float32))


def test_empty_text_vector_is_refused() -> None:
    with pytest.raises(InvalidVectorError, match="^vector must have at least 1 dimension$"):
        check_dense("[ ]")


def test_more_than_16000_dimensions_names_the_count() -> None:
    with pytest.raises(
        InvalidVectorError, match=r"^vector cannot have more than 16000 dimensions \(got 16001\)$"
    ):
        check_dense(np.ones(16001))


@pytest.mark.parametrize(
    ("value", "dtype"),
    [(["a", "b"], "<U1"), ([1, None], "object"), ([object()], "object"), ([1j, 2], "complex128")],
    ids=["strings", "none", "objects", "complex"],
)
def test_non_numeric_elements_are_refused_naming_the_dtype(value: Any, dtype: str) -> None:
    with pytest.raises(
        InvalidVectorError, match=rf"^vector: expected numbers, got non-numeric .*dtype {dtype}"
    ):
        check_dense(value)


def test_ragged_list_is_refused() -> None:
    with pytest.raises(InvalidVectorError, match="^vector: expected a flat sequence of numbers"):
        check_dense([[1, 2], [3]])


def test_two_dimensional_array_names_its_shape() -> None:
    with pytest.raises(InvalidVectorError, match=r"expected a 1-D value, got shape \(1, 3\)"):
        check_dense(np.ones((1, 3)), "vector", 3)


def test_zero_dimensional_array_names_its_shape() -> None:
    with pytest.raises(InvalidVectorError, match=r"expected a 1-D value, got shape \(\)"):
        check_dense(np.array(1.0))


@pytest.mark.parametrize("value", [{"a": 1}, {1, 2}, 3.0, b"\x00\x01"], ids=repr)
def test_other_python_objects_are_refused_naming_their_type(value: Any) -> None:
    with pytest.raises(
        InvalidVectorError,
        match=f"expected a list, tuple or 1-D NumPy array of numbers, got {type(value).__name__}",
    ):
        check_dense(value)


@pytest.mark.parametrize("text", ["1,2,3", "[1,,3]", "[1,x]"])
def test_malformed_vector_text_is_refused(text: str) -> None:
    with pytest.raises(InvalidVectorError, match="invalid input syntax"):
        check_dense(text)


# --- sparsevec -----------------------------------------------------------------------


def test_sparse_dense_list_of_wrong_length_names_expected_and_actual() -> None:
    with pytest.raises(InvalidVectorError, match="expected 5 dimensions, not 4"):
        check_sparse([0, 1, 0, 0], 5)


def test_sparse_mapping_for_a_column_without_dim_is_refused() -> None:
    with pytest.raises(InvalidVectorError, match="mapping needs dim"):
        check_sparse({0: 1.0}, None)


# --- bit -----------------------------------------------------------------------------


def test_bit_length_mismatch_uses_postgres_wording() -> None:
    with pytest.raises(
        InvalidVectorError, match=r"^bit string length 3 does not match type bit\(4\)$"
    ):
        check_bits("101", 4)


def test_bit_other_character_names_character_and_position() -> None:
    with pytest.raises(
        InvalidVectorError, match=r'"2" is not a valid binary digit \(position 1\)'
    ):
        check_bits("0201", 4)


def test_bit_non_ascii_character_position_counts_characters() -> None:
    with pytest.raises(
        InvalidVectorError, match=r'"é" is not a valid binary digit \(position 2\)'
    ):
        check_bits("01é", None)


def test_bit_empty_string_is_refused() -> None:
    with pytest.raises(InvalidVectorError, match="must have at least 1 bit"):
        check_bits("", None)


def test_bit_empty_list_is_refused_as_empty_not_as_a_dtype_error() -> None:
    with pytest.raises(InvalidVectorError, match=r"^bit: a bit string must have at least 1 bit"):
        check_bits([], None)


def test_bit_integers_other_than_0_and_1_are_refused_with_the_value() -> None:
    with pytest.raises(InvalidVectorError, match=r"expected only 0 and 1, got 2 \(element 2\)"):
        check_bits([1, 0, 2], 3)


def test_bit_floats_are_refused_naming_the_dtype() -> None:
    with pytest.raises(
        InvalidVectorError, match="expected bools or 0/1 integers, got dtype float64"
    ):
        check_bits([1.0, 0.0], 2)


def test_bit_two_dimensional_input_is_refused() -> None:
    with pytest.raises(InvalidVectorError, match=r"expected a 1-D value, got shape \(2, 2\)"):
        check_bits([[True, False], [False, True]], None)


def test_bit_bytes_of_the_wrong_size_name_expected_bytes() -> None:
    with pytest.raises(
        InvalidVectorError, match=r"2 bytes cannot hold exactly 4 bits \(expected 1 bytes\)"
    ):
        check_bits(b"\xa0\x00", 4)


def test_bit_bytes_with_set_pad_bits_are_refused() -> None:
    with pytest.raises(InvalidVectorError, match="the pad bits after bit 4 must be zero"):
        check_bits(b"\xa1", 4)


def test_bit_other_python_objects_are_refused() -> None:
    with pytest.raises(InvalidVectorError, match="got int"):
        check_bits(5, None)


def test_invalid_vector_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        check_dense([])


# --- a batch with one bad row sends nothing ------------------------------------------


def make_table(engine: Engine, coltype: TypeEngine[Any]) -> Table:
    md = MetaData()
    t = Table("batch", md, Column("id", Integer, primary_key=True), Column("x", coltype))
    md.create_all(engine)
    return t


def count(engine: Engine, t: Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t)).scalar_one())


BAD_ROWS = [
    (Vector(3), [1, 2, 3], [1, 2]),
    (HalfVec(3), [1, 2, 3], [1, 2, 70000]),
    (SparseVec(5), {0: 1.0}, {7: 1.0}),
    (Bit(4), "1010", "10x0"),
]


@pytest.mark.parametrize(("coltype", "good", "bad"), BAD_ROWS, ids=lambda x: repr(x)[:12])
def test_insertmanyvalues_batch_with_one_bad_row_leaves_the_table_unchanged(
    engine: Engine, coltype: TypeEngine[Any], good: Any, bad: Any
) -> None:
    t = make_table(engine, coltype)
    rows = [{"id": i, "x": good} for i in range(6)] + [{"id": 99, "x": bad}]
    # autocommit and pages of 2 rows: any page sent before the error would stay
    with (
        engine.connect().execution_options(
            isolation_level="AUTOCOMMIT", insertmanyvalues_page_size=2
        ) as conn,
        pytest.raises(StatementError) as err,
    ):
        conn.execute(insert(t), rows)
    assert isinstance(err.value.orig, InvalidVectorError)
    assert count(engine, t) == 0


def test_executemany_update_with_one_bad_row_changes_nothing(engine: Engine) -> None:
    t = make_table(engine, Vector(2))
    with engine.begin() as conn:
        conn.execute(insert(t), [{"id": i, "x": [i, i]} for i in range(3)])
    stmt = update(t).where(t.c.id == bindparam("b_id")).values(x=bindparam("b_x"))
    with (
        engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn,
        pytest.raises(StatementError, match="NaN not allowed in vector"),
    ):
        conn.execute(
            stmt,
            [
                {"b_id": 0, "b_x": [9, 9]},
                {"b_id": 1, "b_x": [9, 9]},
                {"b_id": 2, "b_x": [0, np.nan]},
            ],
        )
    with engine.connect() as conn:
        values = [v.tolist() for v in conn.scalars(select(t.c.x).order_by(t.c.id))]
    assert values == [[0, 0], [1, 1], [2, 2]]


def test_orm_bulk_insert_with_one_bad_row_inserts_nothing(engine: Engine) -> None:
    class Base(DeclarativeBase):
        pass

    class Doc(Base):
        __tablename__ = "doc"
        id: Mapped[int] = mapped_column(primary_key=True)
        embedding: Mapped[np.ndarray] = mapped_column(Vector(2))

    Base.metadata.create_all(engine)
    rows = [{"id": i, "embedding": [i, 1.0]} for i in range(4)]
    rows.append({"id": 9, "embedding": [1.0, float("inf")]})
    autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
    with (
        Session(autocommit) as session,
        pytest.raises(StatementError, match="infinite value not allowed in vector"),
    ):
        session.execute(insert(Doc).execution_options(insertmanyvalues_page_size=2), rows)
    assert count(engine, Doc.__table__) == 0  # type: ignore[arg-type]


def test_orm_flush_with_one_bad_object_inserts_nothing(engine: Engine) -> None:
    class Base(DeclarativeBase):
        pass

    class Doc(Base):
        __tablename__ = "doc"
        id: Mapped[int] = mapped_column(primary_key=True)
        embedding: Mapped[np.ndarray] = mapped_column(Vector(2))

    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add_all([Doc(id=1, embedding=[1, 2]), Doc(id=2, embedding=[1, 2, 3])])
        with pytest.raises(StatementError, match=r"vector\(2\): expected 2 dimensions, not 3"):
            session.commit()
    assert count(engine, Doc.__table__) == 0  # type: ignore[arg-type]
