"""One validator, every path: INSERT, copy_rows, PreparedQuery and the plain-psycopg
parameters accept the same values, store them rounded the same way, and refuse the same
values with the same words.

The rule (pgvector src/vector.c, src/halfvec.c): an element is parsed as float4, then
rounded to binary16 for halfvec, so 65519 is stored as 65504 and 65520 is refused.

The messages, decided here:
- INSERT raises ``StatementError`` whose ``.orig`` is the
  :class:`~vecalchemy.exc.InvalidVectorError` of ``check_dense`` for the bad row;
  PreparedQuery and ``DenseParam``/``HalfVecParam`` raise that same error and text.
- ``copy_rows`` raises the same text for that row, with the column named in front
  (``x (halfvec(2)): ``, in place of the ``halfvec(2): `` that some messages carry) and
  the row placed next to the element: ``(row 1, element 0)`` for ``(element 0)``.
- sparsevec: ``copy_rows`` checks each value with the bind's own check, so its message
  is the INSERT's, word for word.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
import pytest
from sqlalchemy import Column, Integer, MetaData, Table, bindparam, func, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import StatementError
from sqlalchemy.types import TypeEngine

from vecalchemy import (
    Bit,
    DenseParam,
    HalfVec,
    HalfVecParam,
    InvalidVectorError,
    PreparedQuery,
    SparseVec,
    SparseVector,
    Vector,
    copy_rows,
    register_adapters,
)
from vecalchemy.testing import libpq_conninfo

F16, F32, F64, I64 = np.float16, np.float32, np.float64, np.int64


@dataclass(frozen=True)
class Case:
    """Rows for one column type: every path accepts them and stores ``stored``, or every
    path refuses them, INSERT saying ``message`` about row ``bad_row``."""

    id: str
    coltype: Vector | HalfVec
    rows: np.ndarray
    stored: np.ndarray | None = None
    message: str | None = None
    bad_row: int = 0

    @property
    def label(self) -> str:
        dim = self.coltype.dim
        return self.coltype.sql_type if dim is None else f"{self.coltype.sql_type}({dim})"

    def copy_message(self) -> str:
        """The copy_rows message for the INSERT's ``message`` (see the module docstring)."""
        assert self.message is not None
        body = self.message.removeprefix(f"{self.label}: ")
        body = body.replace("(element ", f"(row {self.bad_row}, element ", 1)
        return f"x ({self.label}): {body}"


def _m(rows: list[list[float]], dtype: Any) -> np.ndarray:
    return np.array(rows, dtype=dtype)


CASES = [
    # --- halfvec: float4 first, then binary16 ---------------------------------------
    Case(
        "halfvec-65504-kept-65519-rounds-to-65504",
        HalfVec(2),
        _m([[1, 65504], [65519, -65519]], F64),
        stored=_m([[1, 65504], [65504, -65504]], F16),
    ),
    Case(
        "halfvec-65520-refused",
        HalfVec(2),
        _m([[1, 2], [3, 65520]], F64),
        message='"65520" is out of range for type halfvec (element 1) (largest magnitude 65504)',
        bad_row=1,
    ),
    Case(
        "halfvec-minus-65520-refused",
        HalfVec(2),
        _m([[-65520, 0]], F32),
        message='"-65520" is out of range for type halfvec (element 0) (largest magnitude 65504)',
    ),
    Case(
        "halfvec-inf-refused",
        HalfVec(2),
        _m([[0, 0], [np.inf, 1]], F32),
        message="infinite value not allowed in halfvec (element 0)",
        bad_row=1,
    ),
    Case(
        "halfvec-minus-inf-refused",
        HalfVec(2),
        _m([[1, -np.inf]], F64),
        message="infinite value not allowed in halfvec (element 1)",
    ),
    Case(
        "halfvec-nan-refused",
        HalfVec(2),
        _m([[1, 2], [3, 4], [np.nan, 5]], F64),
        message="NaN not allowed in halfvec (element 0)",
        bad_row=2,
    ),
    Case(
        "halfvec-float64-beyond-float32-refused",
        HalfVec(2),
        _m([[1e39, 0]], F64),
        message='"1e+39" is out of range for type halfvec (element 0) (largest magnitude 65504)',
    ),
    Case(
        "halfvec-int-65519-rounds-to-65504",
        HalfVec(2),
        _m([[65519, -65519], [1, 2]], I64),
        stored=_m([[65504, -65504], [1, 2]], F16),
    ),
    Case(
        "halfvec-int-65520-refused",
        HalfVec(2),
        _m([[1, 2], [65520, 0]], I64),
        message='"65520" is out of range for type halfvec (element 0) (largest magnitude 65504)',
        bad_row=1,
    ),
    Case(
        "halfvec-float16-input-kept",
        HalfVec(2),
        _m([[65504, -0.5], [2.0**-24, 3]], F16),
        stored=_m([[65504, -0.5], [2.0**-24, 3]], F16),
    ),
    Case(
        "halfvec-float16-inf-refused",
        HalfVec(2),
        _m([[np.inf, 0]], F16),
        message="infinite value not allowed in halfvec (element 0)",
    ),
    # --- vector: float4 ---------------------------------------------------------------
    Case(
        "vector-65519-and-float32-max-kept",
        Vector(2),
        _m([[65519, 3.4028234663852886e38], [-1.5, 0.1]], F64),
        stored=_m([[65519, 3.4028234663852886e38], [-1.5, 0.1]], F32),
    ),
    Case(
        "vector-float64-beyond-float32-refused",
        Vector(2),
        _m([[0, 1], [2, 1e39]], F64),
        message='"1e+39" is out of range for type vector (element 1)',
        bad_row=1,
    ),
    Case(
        "vector-minus-float64-beyond-float32-refused",
        Vector(2),
        _m([[-1e39, 0]], F64),
        message='"-1e+39" is out of range for type vector (element 0)',
    ),
    Case(
        "vector-inf-refused",
        Vector(2),
        _m([[np.inf, 0]], F32),
        message="infinite value not allowed in vector (element 0)",
    ),
    Case(
        "vector-nan-refused",
        Vector(2),
        _m([[1, 2], [3, 4], [5, np.nan]], F32),
        message="NaN not allowed in vector (element 1)",
        bad_row=2,
    ),
    Case(
        "vector-int-kept",
        Vector(2),
        _m([[1, -2], [2**31, 7]], I64),
        stored=_m([[1, -2], [2**31, 7]], F32),
    ),
    Case(
        "vector-float16-input-kept",
        Vector(2),
        _m([[65504, -65504], [0.1, 1]], F16),
        stored=_m([[65504, -65504], [0.1, 1]], F16).astype(F32),
    ),
    # --- dimensions -------------------------------------------------------------------
    Case(
        "vector-16000-dims-kept",
        Vector(),
        np.full((2, 16000), 0.5, F32),
        stored=np.full((2, 16000), 0.5, F32),
    ),
    Case(
        "vector-16001-dims-refused",
        Vector(),
        np.ones((1, 16001), F32),
        message="vector cannot have more than 16000 dimensions (got 16001)",
    ),
    Case(
        "halfvec-16000-dims-kept",
        HalfVec(),
        np.full((2, 16000), 0.5, F64),
        stored=np.full((2, 16000), 0.5, F16),
    ),
    Case(
        "halfvec-16001-dims-refused",
        HalfVec(),
        np.ones((1, 16001), F16),
        message="halfvec cannot have more than 16000 dimensions (got 16001)",
    ),
    Case(
        "vector-dimension-mismatch-refused",
        Vector(3),
        np.ones((2, 2), F32),
        message="vector(3): expected 3 dimensions, not 2",
    ),
    Case(
        "halfvec-dimension-mismatch-refused",
        HalfVec(2),
        np.ones((2, 3), F64),
        message="halfvec(2): expected 2 dimensions, not 3",
    ),
]


def _tables(engine: Engine, coltype: TypeEngine[Any]) -> tuple[Table, Table]:
    md = MetaData()
    by_insert = Table(
        "by_insert", md, Column("id", Integer, primary_key=True), Column("x", coltype)
    )
    by_copy = Table("by_copy", md, Column("id", Integer, primary_key=True), Column("x", coltype))
    md.create_all(engine)
    return by_insert, by_copy


def _stored(engine: Engine, table: Table) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.scalars(select(table.c.x).order_by(table.c.id)))


def _same(got: list[np.ndarray], want: np.ndarray) -> bool:
    """Same dtype and the same bits, row by row."""
    return len(got) == len(want) and all(
        g.dtype == want.dtype and g.tobytes() == w.tobytes()
        for g, w in zip(got, want, strict=True)
    )


def _insert_error(engine: Engine, table: Table, rows: list[dict[str, Any]]) -> str | None:
    try:
        with engine.begin() as conn:
            conn.execute(insert(table), rows)
    except StatementError as e:
        assert isinstance(e.orig, InvalidVectorError)
        return str(e.orig)
    return None


def _copy_error(engine: Engine, table: Table, data: dict[str, Any]) -> str | None:
    try:
        with engine.begin() as conn:
            copy_rows(conn, table, data, progress=False)
    except InvalidVectorError as e:
        return str(e)
    return None


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_insert_and_copy_rows_accept_store_and_refuse_alike(engine: Engine, case: Case) -> None:
    by_insert, by_copy = _tables(engine, case.coltype)
    n = case.rows.shape[0]
    inserted = _insert_error(engine, by_insert, [{"id": i, "x": case.rows[i]} for i in range(n)])
    copied = _copy_error(engine, by_copy, {"id": np.arange(n), "x": case.rows})
    if case.message is None:
        assert (inserted, copied) == (None, None)
        assert case.stored is not None
        assert _same(_stored(engine, by_insert), case.stored)
        assert _same(_stored(engine, by_copy), case.stored)
    else:
        assert inserted == case.message
        assert copied == case.copy_message()
        assert _stored(engine, by_insert) == _stored(engine, by_copy) == []


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_prepared_query_binds_like_insert(engine: Engine, case: Case) -> None:
    echo = PreparedQuery(select(bindparam("q", type_=case.coltype)))
    with engine.connect() as conn:
        if case.message is None:
            got = [echo.all(conn, q=row)[0][0] for row in case.rows]
            assert case.stored is not None and _same(got, case.stored)
        else:
            with pytest.raises(InvalidVectorError) as err:
                echo.all(conn, q=case.rows[case.bad_row])
            assert str(err.value) == case.message


@pytest.fixture
def psycopg_conn(vector_database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(libpq_conninfo(vector_database_url)) as conn:
        register_adapters(conn)
        yield conn


@pytest.mark.parametrize(
    "case",
    # a parameter has no declared dimension: the dimension cases are the column's
    [c for c in CASES if c.coltype.dim is None or not (c.message or "").startswith(c.label)],
    ids=lambda c: c.id,
)
def test_plain_psycopg_params_bind_like_insert(
    psycopg_conn: psycopg.Connection, case: Case
) -> None:
    param = DenseParam if case.coltype.sql_type == "vector" else HalfVecParam
    if case.message is None:
        got = [
            psycopg_conn.execute(f"SELECT %s::{case.coltype.sql_type}", [param(row)]).fetchone()[0]
            for row in case.rows
        ]
        assert case.stored is not None and _same(got, case.stored)
    else:
        with pytest.raises(InvalidVectorError) as err:
            param(case.rows[case.bad_row])
        assert str(err.value) == case.message


# --- sparsevec: copy_rows checks each value with the bind's own check ---------------------

SPARSE_CASES = [
    ("kept", [SparseVector({0: 1.5, 4: -2.0}, 6), {2: 3.0}, None], None),
    ("nan-refused", [{0: 1.0}, {1: float("nan")}], "NaN not allowed in sparsevec"),
    ("inf-refused", [{3: float("-inf")}], "infinite value not allowed in sparsevec"),
    ("float64-beyond-float32-refused", [{0: 1e39}], '"1e+39" is out of range for type sparsevec'),
    (
        "index-out-of-range-refused",
        [{0: 1.0}, {6: 1.0}],
        "sparsevec index out of bounds: 6 is not in [0, 6)",
    ),
    ("dimension-mismatch-refused", [SparseVector({0: 1.0}, 5)], "expected 6 dimensions, not 5"),
]


@pytest.mark.parametrize(
    ("values", "phrase"), [c[1:] for c in SPARSE_CASES], ids=[c[0] for c in SPARSE_CASES]
)
def test_insert_and_copy_rows_agree_on_sparse_values(
    engine: Engine, values: list[Any], phrase: str | None
) -> None:
    by_insert, by_copy = _tables(engine, SparseVec(6))
    n = len(values)
    inserted = _insert_error(engine, by_insert, [{"id": i, "x": v} for i, v in enumerate(values)])
    copied = _copy_error(engine, by_copy, {"id": list(range(n)), "x": values})
    assert inserted == copied
    if phrase is None:
        assert _stored(engine, by_insert) == _stored(engine, by_copy)
        assert _stored(engine, by_insert)[0] == SparseVector({0: 1.5, 4: -2.0}, 6)
    else:
        assert inserted is not None and phrase in inserted
        assert _stored(engine, by_insert) == _stored(engine, by_copy) == []


def test_sparse_with_more_than_16000_non_zeros_is_refused_alike(engine: Engine) -> None:
    by_insert, by_copy = _tables(engine, SparseVec(100_000))
    crowded = dict.fromkeys(range(16001), 1.0)
    inserted = _insert_error(engine, by_insert, [{"id": 0, "x": crowded}])
    copied = _copy_error(engine, by_copy, {"id": [0], "x": [crowded]})
    assert inserted == copied
    assert inserted == "sparsevec cannot have more than 16000 non-zero elements (got 16001)"


def test_copy_rows_refuses_a_bit_column_naming_what_it_takes(engine: Engine) -> None:
    # bit has no COPY path: its values go through INSERT (and check_bits) only
    md = MetaData()
    t = Table("bits", md, Column("id", Integer, primary_key=True), Column("x", Bit(4)))
    md.create_all(engine)
    with engine.begin() as conn, pytest.raises(InvalidVectorError) as err:
        copy_rows(conn, t, {"id": [0], "x": ["1010"]}, progress=False)
    assert str(err.value) == (
        "copy_rows: column 'x' of type Bit(4) is not supported; "
        "expected Vector, HalfVec or SparseVec"
    )
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t)).scalar_one() == 0
