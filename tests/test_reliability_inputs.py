"""A bad-input corpus across every public entry point.

Each bad input must be refused with vecalchemy's error (``InvalidVectorError``,
``IndexDefinitionError``, ``SearchSettingError``, ``TypeError`` / ``ValueError`` where the
API documents them; a server error where the API documents the server as the one that
refuses), with a message naming what was expected and what came; it must write nothing
(rows, tables, columns' storage modes and indexes are compared through a separate plain
psycopg connection); one the API refuses before sending anything must send no statement
(``silent``); and the connection or session it failed on must run a good statement of
the same kind afterwards, as must a connection from the pool.

Each entry point has one list of ``Bad`` cases (``ENTRY_POINTS``); one test per entry
point loops over its list in each driver mode and reports every mismatch at once, and
value-only checks (declarations, settings, constructors) run once. The entry points that
bind values through the same type processing share the value corpus out between them
(``_share``): core INSERT takes all of it, the others take every n-th value in turn, so
every value reaches several paths and every path meets every kind of value. Inputs that
once exposed a defect (a bare exception, a value stored that pgvector refuses, a
misleading message) are kept apart in ``DEFECTS``, each with what went wrong.
"""

from __future__ import annotations

import dataclasses
import decimal
import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pgvector
import psycopg
import pytest
import scipy.sparse as sp
import sqlalchemy as sa
import vecalchemy_alembic.ops  # noqa: F401  (registers the operations)
from alembic.migration import MigrationContext
from alembic.operations import Operations
from conftest import ASYNC_MODES, make_async_engine
from sqlalchemy import (
    Column,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    bindparam,
    cast,
    event,
    func,
    insert,
    literal,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Session
from vecalchemy_alembic import DropVectorIndexOp

from vecalchemy import (
    Bit,
    DenseParam,
    HalfVec,
    HalfVecParam,
    HnswIndex,
    IndexDefinitionError,
    InvalidVectorError,
    IvfflatIndex,
    PreparedQuery,
    SearchSettingError,
    SearchSettings,
    SparseVec,
    SparseVector,
    Vector,
    apply_search_settings,
    avg,
    binary_quantize,
    binary_quantized_search,
    build_vector_index,
    build_vector_index_async,
    copy_rows,
    copy_rows_async,
    fetch_matrix,
    fetch_matrix_async,
    index_build_settings,
    install_search_options,
    iterative_search,
    l2_normalize,
    measure_recall,
    opclass_for,
    register_adapters,
    search_settings,
    subvector,
    validate_vector_index,
    vector_dims,
    vector_index_spec,
    vector_norm,
)
from vecalchemy import sum as vsum
from vecalchemy.exc import InvalidIdentifierError, PartitionError
from vecalchemy.filtered import filtered_search, filtered_search_async
from vecalchemy.hybrid import hybrid_search
from vecalchemy.storage import (
    column_storage,
    count_out_of_line,
    set_vector_storage,
    storage_advice,
)
from vecalchemy.tenants import (
    create_tenant_partition,
    create_tenant_partition_async,
    detach_tenant_partition,
    detach_tenant_partition_async,
    drop_tenant_partition,
    drop_tenant_partition_async,
    tenant_partition_name,
    tenant_search,
)
from vecalchemy.testing import libpq_conninfo
from vecalchemy.tuning import tune_search_settings

NAN, INF = float("nan"), float("inf")
IDE, SSE = IndexDefinitionError, SearchSettingError
#: the server refuses (the API documents that it does): SQLAlchemy's wrapper of its error
SERVER = sa_exc.DBAPIError


# --- cases and how they are judged ---------------------------------------------------------


@dataclass(frozen=True)
class Fresh:
    """A value made anew for every use (a generator is used up once iterated)."""

    make: Callable[[], Any]


@dataclass(frozen=True)
class Act:
    """A case that is a whole call: ``fn(bind, ctx)`` (or ``fn()`` for value-only lists)."""

    fn: Callable[..., Any]


@dataclass(frozen=True)
class Bad:
    """One bad input: it must raise ``exc`` whose message contains ``fragment`` (and not
    ``absent``). ``col`` names the column a value is bound to; ``modes`` limits the driver
    modes it applies in (``None``: all); ``silent``: the API refuses it before sending
    any statement, which is checked too."""

    id: str
    value: Any
    fragment: str
    exc: type[BaseException] | tuple[type[BaseException], ...] = InvalidVectorError
    col: str = "v"
    absent: str | None = None
    modes: tuple[str, ...] | None = None
    silent: bool = False

    def make(self) -> Any:
        return self.value.make() if isinstance(self.value, Fresh) else self.value


def _names(exc: type[BaseException] | tuple[type[BaseException], ...]) -> str:
    types = exc if isinstance(exc, tuple) else (exc,)
    return " or ".join(t.__name__ for t in types)


def _short(e: BaseException) -> str:
    return " ".join(str(e).split())[:240]


def _unwrap(e: BaseException) -> BaseException:
    """The error behind SQLAlchemy's ``StatementError`` (a bind processor's), not a
    database error's."""
    if (
        isinstance(e, sa_exc.StatementError)
        and not isinstance(e, sa_exc.DBAPIError)
        and e.orig is not None
    ):
        return e.orig
    return e


def judge(case: Bad, error: BaseException | None) -> str | None:
    """``None`` when ``error`` is the refusal ``case`` expects, else what went wrong."""
    want = f"{_names(case.exc)} containing {case.fragment!r}"
    if error is None:
        return f"accepted: no error (expected {want})"
    got = _unwrap(error)
    if not isinstance(got, case.exc):
        return f"raised {type(got).__name__}: {_short(got)!r} (expected {want})"
    message = str(got)
    if case.fragment not in message:
        return f"unclear message {_short(got)!r}: lacks {case.fragment!r}"
    if case.absent is not None and case.absent in message:
        return f"misleading message {_short(got)!r}: says {case.absent!r}"
    return None


def _rows(rows: list[tuple[Any, ...]], *, col: str = "v") -> list[Bad]:
    """``Bad`` cases from ``(id, value, fragment[, exception])`` rows."""
    return [Bad(*row, col=col) for row in rows]


def _values(rows: list[tuple[Any, ...]]) -> list[Bad]:
    """Values bound to a column: the column is the id's prefix (``"h-65520"`` -> ``h``)."""
    return [Bad(*row, col=row[0].split("-")[0]) for row in rows]


def _applies(case: Bad, mode: str | None) -> bool:
    return case.modes is None or mode is None or mode in case.modes


# --- tables -------------------------------------------------------------------------------

MD = MetaData()
#: one column per type and shape the value corpus is bound to
ITEMS = Table(
    "items",
    MD,
    Column("id", Integer, primary_key=True),
    Column("v", Vector(3)),
    Column("h", HalfVec(3)),
    Column("s", SparseVec(5)),
    Column("b", Bit(4)),
    Column("vu", Vector()),
    Column("hu", HalfVec()),
    Column("su", SparseVec()),
    Column("bu", Bit()),
    Column("sb", SparseVec(100_000)),
)
#: fetch_matrix's table: row 2 has a NULL ``v`` and a ``vu`` of another dimension
FM = Table(
    "fm",
    MD,
    Column("id", Integer, primary_key=True),
    Column("v", Vector(3)),
    Column("vu", Vector()),
    Column("h", HalfVec(3)),
    Column("s", SparseVec(5)),
    Column("b", Bit(4)),
)
FM_SEED = (
    "INSERT INTO fm VALUES (1, '[1,2,3]', '[1,2]', '[1,2,3]', '{1:1}/5', '1010'),"
    " (2, NULL, '[1,2,3]', '[4,5,6]', '{2:1}/5', '0101')"
)


class _Base(DeclarativeBase):
    metadata = MD


class Item(_Base):
    __table__ = ITEMS


GOOD = {
    "v": [1.0, 2.0, 3.0],
    "h": [1.0, 2.0, 3.0],
    "s": {0: 1.0},
    "b": "1010",
    "vu": [1.0, 2.0],
    "hu": [1.0, 2.0],
    "su": SparseVector({0: 1.0}, 3),
    "bu": "101",
    "sb": {0: 1.0},
}
UPDATE_SEED = (
    "INSERT INTO items VALUES (1, '[1,2,3]', '[1,2,3]', '{1:1}/5', '1010', '[1,2]', '[1,2]',"
    " '{1:1}/3', '101', '{1:1}/100000')"
)


def _index_table() -> Table:
    """A fresh table for index builds (indexes declared on its columns attach to it);
    its one row has a sparsevec of 1 001 non-zeros, more than HNSW indexes."""
    return Table(
        "ix_items",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("v", Vector(3)),
        Column("vc", Vector(3, metric="cosine")),
        Column("s", SparseVec(2000)),
    )


IX_SEED = (
    "INSERT INTO ix_items VALUES (1, '[1,2,3]', '[1,2,3]',"
    " (SELECT ('{' || string_agg(i || ':1', ',') || '}/2000')::sparsevec"
    " FROM generate_series(1, 1001) i))"
)


# --- the value corpus: values bound to a column (insert, update, ORM, comparators ...) -----

_BIG16001 = "[" + ",".join(["1"] * 16001) + "]"
_SB_CROWDED = dict.fromkeys(range(16001), 1.0)
_SB_DENSE_CROWDED = np.zeros(100_000)
_SB_DENSE_CROWDED[:20_000] = 1.0


def _gen(values: list[Any]) -> Fresh:
    return Fresh(lambda: (x for x in values))


# fmt: off
VALUES: list[Bad] = _values([
    # vector(3): dimensions and shape
    ("v-dim-2", [1, 2], "vector(3): expected 3 dimensions, not 2"),
    ("v-dim-4", [1, 2, 3, 4], "expected 3 dimensions, not 4"),
    ("v-dim-1-tuple", (1.0,), "expected 3 dimensions, not 1"),
    ("v-float32-dim-2", np.zeros(2, np.float32), "expected 3 dimensions, not 2"),
    ("v-float32-dim-1000", np.zeros(1000, np.float32), "expected 3 dimensions, not 1000"),
    ("v-2d-1x3", np.ones((1, 3)), "expected a 1-D value, got shape (1, 3)"),
    ("v-2d-float32-3x3", np.ones((3, 3), np.float32), "expected a 1-D value, got shape (3, 3)"),
    ("v-2d-3x1", np.ones((3, 1)), "expected a 1-D value, got shape (3, 1)"),
    ("v-0d", np.array(1.0), "expected a 1-D value, got shape ()"),
    ("v-0d-float32", np.array(1.0, np.float32), "expected a 1-D value, got shape ()"),
    ("v-nested-list", [[1, 2, 3]], "expected a 1-D value, got shape (1, 3)"),
    ("v-nested-tuples", ((1,), (2,), (3,)), "expected a 1-D value, got shape (3, 1)"),
    ("v-np-matrix", np.matrix([[1, 2, 3]]), "expected a 1-D value, got shape (1, 3)"),
    ("v-ragged", [[1, 2], [3]], "expected a flat sequence of numbers"),
    ("v-ragged-tuple", (1, (2, 3), 4), "expected a flat sequence of numbers"),
    ("v-empty-list", [], "vector must have at least 1 dimension"),
    ("v-empty-tuple", (), "vector must have at least 1 dimension"),
    ("v-empty-float32", np.zeros(0, np.float32), "vector must have at least 1 dimension"),
    # vector(3): NaN, infinities, float4 range
    ("v-nan-middle", [1, NAN, 3], "NaN not allowed in vector (element 1)"),
    ("v-all-nan", [NAN] * 3, "NaN not allowed in vector (element 0)"),
    ("v-nan-float32", np.array([NAN, 1, 2], np.float32), "NaN not allowed in vector (element 0)"),
    ("v-nan-float16", np.array([1, 2, NAN], np.float16), "NaN not allowed in vector (element 2)"),
    ("v-decimal-nan", [decimal.Decimal("NaN"), 0, 0], "NaN not allowed in vector (element 0)"),
    ("v-inf", [INF, 0, 0], "infinite value not allowed in vector (element 0)"),
    ("v-minus-inf", [0, 0, -INF], "infinite value not allowed in vector (element 2)"),
    ("v-inf-float32", np.array([0, INF, 0], np.float32),
     "infinite value not allowed in vector (element 1)"),
    ("v-inf-float16", np.array([INF, 0, 0], np.float16),
     "infinite value not allowed in vector (element 0)"),
    ("v-over-float4", [1e39, 0, 0], '"1e+39" is out of range for type vector (element 0)'),
    ("v-minus-over-float4", [0, -1e300, 0],
     '"-1e+300" is out of range for type vector (element 1)'),
    ("v-twice-float4-max", [0, 0, 6.9e38], '"6.9e+38" is out of range for type vector'),
    ("v-longdouble-over-float4", np.array([1e300, 2, 3], np.longdouble),
     '"1e+300" is out of range for type vector (element 0)'),
    ("v-python-int-1e40", [10**40, 0, 0], '"1e+40" is out of range for type vector'),
    # vector(3): text that is not a vector
    ("v-text-missing-bracket", "[1,2,3", 'invalid input syntax: "[1,2,3"'),
    ("v-text-no-brackets", "1,2,3", 'Vector contents must start with "["'),
    ("v-text-empty-element", "[1,,3]", 'invalid input syntax: "[1,,3]"'),
    ("v-text-letters", "[a,b,c]", 'invalid input syntax: "[a,b,c]"'),
    ("v-text-empty-string", "", 'invalid input syntax: ""'),
    ("v-text-empty-brackets", "[]", "vector must have at least 1 dimension"),
    ("v-text-blank-brackets", "[ ]", "vector must have at least 1 dimension"),
    ("v-text-wrong-dim", "[1,2]", "expected 3 dimensions, not 2"),
    ("v-text-nan", "[1,nan,3]", "NaN not allowed in vector (element 1)"),
    ("v-text-inf", "[1,inf,3]", "infinite value not allowed in vector (element 1)"),
    ("v-text-over-float4", "[1,2,3e39]", '"3e+39" is out of range for type vector (element 2)'),
    ("v-text-junk-after", "[1,2,3]x", 'invalid input syntax: "[1,2,3]x"'),
    ("v-text-nested", "[[1,2,3]]", 'invalid input syntax: "[[1,2,3]]"'),
    ("v-text-trailing-comma", "[1,2,3,]", 'invalid input syntax: "[1,2,3,]"'),
    ("v-text-spaces", "[1 2 3]", 'invalid input syntax: "[1 2 3]"'),
    ("v-text-sparse-literal", "{1:1,2:2,3:3}/3", 'Vector contents must start with "["'),
    ("v-text-json-object", '{"a": 1}', 'Vector contents must start with "["'),
    # vector(3): other Python objects
    ("v-bytes", b"\x00\x00\x80\x3f", "array of numbers, got bytes"),
    ("v-bytearray", bytearray(b"abc"), "array of numbers, got bytearray"),
    ("v-memoryview", memoryview(b"abc"), "array of numbers, got memoryview"),
    ("v-bool", True, "array of numbers, got bool"),
    ("v-float", 3.0, "array of numbers, got float"),
    ("v-int", 7, "array of numbers, got int"),
    ("v-complex-scalar", 1j, "array of numbers, got complex"),
    ("v-numpy-scalar", np.float32(1), "array of numbers, got float32"),
    ("v-dict", {"a": 1}, "array of numbers, got dict"),
    ("v-dict-int-keys", {0: 1.0, 1: 2.0, 2: 3.0}, "array of numbers, got dict"),
    ("v-set", {1, 2, 3}, "array of numbers, got set"),
    ("v-frozenset", frozenset({1, 2, 3}), "array of numbers, got frozenset"),
    ("v-range", range(3), "array of numbers, got range"),
    ("v-generator", _gen([1, 2, 3]), "array of numbers, got generator"),
    ("v-sparse-vector", SparseVector({0: 1.0}, 3), "array of numbers, got SparseVector"),
    ("v-object", object(), "array of numbers, got object"),
    # vector(3): elements that are not numbers
    ("v-strings", ["a", "b", "c"], "got non-numeric elements (dtype <U1)"),
    ("v-numeric-strings", ["1", "2", "3"], "got non-numeric elements (dtype <U1)"),
    ("v-bytes-elements", [b"1", b"2", b"3"], "got non-numeric elements (dtype |S1)"),
    ("v-none-element", [1, None, 3], "got non-numeric elements (dtype object)"),
    ("v-all-none", [None, None, None], "got non-numeric elements (dtype object)"),
    ("v-object-element", [object(), 1, 2], "got non-numeric elements (dtype object)"),
    ("v-dict-elements", [{"a": 1}, {"b": 2}, {}], "got non-numeric elements (dtype object)"),
    ("v-complex-elements", [1j, 2, 3], "got non-numeric elements (dtype complex128)"),
    ("v-complex64-array", np.array([1, 2, 3], np.complex64),
     "got non-numeric elements (dtype complex64)"),
    ("v-bools", [True, False, True], "got non-numeric elements (dtype bool)"),
    ("v-bool-array", np.array([True, False, True]), "got non-numeric elements (dtype bool)"),
    ("v-str-array", np.array(["1", "2", "3"]), "got non-numeric elements (dtype <U1)"),
    ("v-object-array-mixed", np.array([1, "a", 3], dtype=object),
     "got non-numeric elements (dtype object)"),
    ("v-object-array-bool", np.array([1, True, 3], dtype=object),
     "got non-numeric elements (dtype object)"),
    ("v-datetime-array", np.array(["2020-01-01"] * 3, dtype="datetime64[D]"),
     "got non-numeric elements (dtype datetime64[D])"),
    ("v-timedelta-array", np.array([1, 2, 3], dtype="timedelta64[s]"),
     "got non-numeric elements (dtype timedelta64[s])"),
    ("v-pgvector-wrong-dim", pgvector.Vector([1, 2]), "expected 3 dimensions, not 2"),
    # vector without a dimension: the type's own limits
    ("vu-16001", np.ones(16001, np.float32),
     "vector cannot have more than 16000 dimensions (got 16001)"),
    ("vu-20000-list", [0.0] * 20000, "vector cannot have more than 16000 dimensions (got 20000)"),
    ("vu-16001-text", _BIG16001, "vector cannot have more than 16000 dimensions (got 16001)"),
    ("vu-empty", [], "vector must have at least 1 dimension"),
    ("vu-nan-16000", np.full(16000, NAN), "NaN not allowed in vector (element 0)"),
    # halfvec(3)
    ("h-dim-2", [1, 2], "halfvec(3): expected 3 dimensions, not 2"),
    ("h-float16-dim-4", np.zeros(4, np.float16), "expected 3 dimensions, not 4"),
    ("h-65520", [65520, 0, 0],
     '"65520" is out of range for type halfvec (element 0) (largest magnitude 65504)'),
    ("h-minus-65520", [0, -65520, 0], '"-65520" is out of range for type halfvec (element 1)'),
    ("h-70000.5", [0, 0, 70000.5], '"70000.5" is out of range for type halfvec'),
    ("h-float32-max", np.array([3.4e38, 0, 0], np.float32),
     "is out of range for type halfvec (element 0)"),
    ("h-over-float4", [1e39, 0, 0], '"1e+39" is out of range for type halfvec'),
    ("h-int32-overflow", np.array([70000, 0, 0], np.int32),
     '"70000" is out of range for type halfvec'),
    ("h-int64-max", np.array([np.iinfo(np.int64).max, 0, 0]),
     '"9223372036854775807" is out of range for type halfvec'),
    ("h-uint16-max", np.array([0, 65535, 0], np.uint16),
     '"65535" is out of range for type halfvec (element 1)'),
    ("h-nan", [NAN, 0, 0], "NaN not allowed in halfvec (element 0)"),
    ("h-inf", [0, INF, 0], "infinite value not allowed in halfvec (element 1)"),
    ("h-float16-minus-inf", np.array([0, 0, -INF], np.float16),
     "infinite value not allowed in halfvec (element 2)"),
    ("h-empty", [], "halfvec must have at least 1 dimension"),
    ("h-text-65520", "[65520,0,0]", '"65520" is out of range for type halfvec'),
    ("h-text-semicolons", "[1;2;3]", 'invalid input syntax: "[1;2;3]"'),
    ("h-strings", ["x", "y", "z"], "got non-numeric elements (dtype <U1)"),
    ("h-2d", np.ones((1, 3), np.float16), "expected a 1-D value, got shape (1, 3)"),
    ("h-bytes", b"\x00\x3c", "array of numbers, got bytes"),
    ("h-bools", [True, False, True], "got non-numeric elements (dtype bool)"),
    ("h-complex", [1 + 0j, 0, 0], "got non-numeric elements (dtype complex128)"),
    ("h-pgvector-wrong-dim", pgvector.HalfVector([1, 2]), "expected 3 dimensions, not 2"),
    ("hu-16001", np.ones(16001, np.float16),
     "halfvec cannot have more than 16000 dimensions (got 16001)"),
    ("hu-16001-list", [1.0] * 16001, "halfvec cannot have more than 16000 dimensions (got 16001)"),
    # sparsevec(5): indices
    ("s-index-5", {5: 1.0}, "sparsevec index out of bounds: 5 is not in [0, 5)"),
    ("s-index-negative", {-1: 1.0}, "index out of bounds: -1 is not in [0, 5)"),
    ("s-index-2**40", {2**40: 1.0}, "index out of bounds: 1099511627776 is not in [0, 5)"),
    ("s-index-np-negative", {np.int64(-3): 1.0}, "index out of bounds: -3 is not in [0, 5)"),
    ("s-unsorted-out-of-range", {4: 1.0, 9: 2.0, 1: 3.0},
     "index out of bounds: 9 is not in [0, 5)"),
    ("s-str-key", {"0": 1.0}, "indices must be integers, got dtype <U1"),
    ("s-float-key", {1.5: 1.0}, "indices must be integers, got dtype float64"),
    ("s-bool-key", {True: 1.0}, "indices must be integers, got dtype bool"),
    ("s-none-key", {None: 1.0}, "indices must be integers, got dtype object"),
    # sparsevec(5): values
    ("s-nan", {0: NAN}, "NaN not allowed in sparsevec (at index 0)"),
    ("s-inf", {2: INF}, "infinite value not allowed in sparsevec (at index 2)"),
    ("s-minus-inf", {4: -INF}, "infinite value not allowed in sparsevec (at index 4)"),
    ("s-over-float4", {1: 1e39}, '"1e+39" is out of range for type sparsevec (at index 1)'),
    ("s-underflow", {1: 1e-46}, '"1e-46" is out of range for type sparsevec (at index 1)'),
    ("s-str-value", {0: "x"}, "expected numeric values, got dtype <U1"),
    ("s-none-value", {0: None}, "expected numeric values, got dtype object"),
    ("s-complex-value", {0: 1j}, "expected numeric values, got dtype complex128"),
    ("s-bool-value", {0: True}, "expected numeric values, got dtype bool"),
    # sparsevec(5): other forms
    ("s-sparse-dim-4", SparseVector({0: 1.0}, 4), "sparsevec(5): expected 5 dimensions, not 4"),
    ("s-sparse-dim-6", SparseVector({0: 1.0}, 6), "expected 5 dimensions, not 6"),
    ("s-dense-4", [1, 0, 0, 0], "expected 5 dimensions, not 4"),
    ("s-dense-empty", [], "expected 5 dimensions, not 0"),
    ("s-dense-2d", [[1, 0, 0, 0, 0]], "expected a 1-D sequence, got shape (1, 5)"),
    ("s-dense-strings", ["a"] * 5, "got an array of dtype <U1"),
    ("s-dense-none", [1, None, 0, 0, 0], "got an array of dtype object"),
    ("s-dense-nan", [NAN, 0, 0, 0, 0], "NaN not allowed in sparsevec (at index 0)"),
    ("s-dense-bools", [True, False, False, False, False], "array of dtype bool"),
    ("s-text", "{1:1}/5", "a scipy.sparse row or a SparseVector, got str"),
    ("s-bytes", b"{1:1}/5", "a scipy.sparse row or a SparseVector, got bytes"),
    ("s-int", 5, "a scipy.sparse row or a SparseVector, got int"),
    ("s-float", 2.5, "a scipy.sparse row or a SparseVector, got float"),
    ("s-bool", True, "a scipy.sparse row or a SparseVector, got bool"),
    ("s-set", {1, 2}, "got an array of dtype object"),
    ("s-generator", _gen([1, 0, 0, 0, 0]), "got an array of dtype object"),
    ("s-csr-two-rows", sp.csr_matrix(np.ones((2, 5))),
     "expected a scipy.sparse row of shape (1, n), got shape (2, 5)"),
    ("s-csr-dim-4", sp.csr_matrix(np.ones((1, 4))), "expected 5 dimensions, not 4"),
    ("s-csr-nan", sp.csr_matrix(np.array([[NAN, 0, 0, 0, 0]])), "NaN not allowed in sparsevec"),
    ("s-csr-array-dim-4", sp.csr_array(np.ones((1, 4))), "expected 5 dimensions, not 4"),
    ("s-coo-1d-dim-4", sp.coo_array(np.ones(4)), "expected 5 dimensions, not 4"),
    ("s-csr-complex", sp.csr_matrix(np.array([[1j, 0, 0, 0, 0]])),
     "expected numeric values, got dtype complex128"),
    ("s-pgvector-sparse-dim-4", pgvector.SparseVector({0: 1.0}, 4),
     "expected 5 dimensions, not 4"),
    ("s-pgvector-dense-dim-3", pgvector.Vector([1, 0, 0]), "expected 5 dimensions, not 3"),
    ("su-mapping-without-dim", {0: 1.0}, "a {index: value} mapping needs dim"),
    ("su-empty-dense", [], "sparsevec must have at least 1 dimension"),
    ("sb-nnz-16001", _SB_CROWDED,
     "sparsevec cannot have more than 16000 non-zero elements (got 16001)"),
    ("sb-dense-nnz-20000", _SB_DENSE_CROWDED,
     "sparsevec cannot have more than 16000 non-zero elements (got 20000)"),
    ("sb-index-100000", {100_000: 1.0}, "index out of bounds: 100000 is not in [0, 100000)"),
    # bit(4)
    ("b-len-3", "101", "bit string length 3 does not match type bit(4)"),
    ("b-len-5", "10101", "bit string length 5 does not match type bit(4)"),
    ("b-letter", "10a1", '"a" is not a valid binary digit (position 2)'),
    ("b-digit-2", "0201", '"2" is not a valid binary digit (position 1)'),
    ("b-space", "1 01", '" " is not a valid binary digit (position 1)'),
    ("b-minus", "10-1", '"-" is not a valid binary digit (position 2)'),
    ("b-fullwidth", "１０１０", '"１" is not a valid binary digit (position 0)'),
    ("b-prefix-0b", "0b10", '"b" is not a valid binary digit (position 1)'),
    ("b-newline", "1010\n", "is not a valid binary digit (position 4)"),
    ("b-nul", "10\x0010", "is not a valid binary digit (position 2)"),
    ("b-hex-literal", "x0A1", '"x" is not a valid binary digit (position 0)'),
    ("b-empty", "", "a bit string must have at least 1 bit, got 0"),
    ("b-pad-bits", b"\xa1", "the pad bits after bit 4 must be zero"),
    ("b-pad-bits-ff", b"\xff", "the pad bits after bit 4 must be zero"),
    ("b-two-bytes", b"\xa0\x00", "2 bytes cannot hold exactly 4 bits (expected 1 bytes)"),
    ("b-no-bytes", b"", "0 bytes cannot hold exactly 4 bits (expected 1 bytes)"),
    ("b-bytearray-two", bytearray(b"\xa0\x00"), "2 bytes cannot hold exactly 4 bits"),
    ("b-memoryview-pad", memoryview(b"\xa1"), "the pad bits after bit 4 must be zero"),
    ("b-int-2", [1, 0, 2, 1], "expected only 0 and 1, got 2 (element 2)"),
    ("b-int-minus-1", [1, 0, -1, 1], "expected only 0 and 1, got -1 (element 2)"),
    ("b-uint8-3", np.array([1, 0, 1, 3], np.uint8), "expected only 0 and 1, got 3 (element 3)"),
    ("b-int-256", np.array([1, 0, 1, 256]), "expected only 0 and 1, got 256"),
    ("b-floats", [1.0, 0.0, 1.0, 0.0], "expected bools or 0/1 integers, got dtype float64"),
    ("b-float32-array", np.array([1, 0, 1, 0], np.float32),
     "expected bools or 0/1 integers, got dtype float32"),
    ("b-strings", ["1", "0", "1", "0"], "expected bools or 0/1 integers, got dtype <U1"),
    ("b-object-none", np.array([True, False, None, True], dtype=object),
     "expected bools or 0/1 integers, got dtype object"),
    ("b-complex", [1 + 0j, 0, 1, 0], "got dtype complex128"),
    ("b-bools-len-2", [True, False], "bit string length 2 does not match type bit(4)"),
    ("b-bools-len-5", [True] * 5, "bit string length 5 does not match type bit(4)"),
    ("b-2d", [[True, False], [False, True]], "expected a 1-D value, got shape (2, 2)"),
    ("b-ragged", [[1, 0], [1]], "expected a flat sequence of bools"),
    ("b-empty-list", [], "a bit string must have at least 1 bit"),
    ("b-int", 5, "a sequence of bools, got int"),
    ("b-float", 1.5, "a sequence of bools, got float"),
    ("b-bool", True, "a sequence of bools, got bool"),
    ("b-dict", {"a": 1}, "a sequence of bools, got dict"),
    ("b-range", range(4), "a sequence of bools, got range"),
    ("b-set", {0, 1}, "a sequence of bools, got set"),
    ("b-pgvector-bit-len-3", pgvector.Bit("101"),
     "bit string length 3 does not match type bit(4)"),
    ("bu-empty", "", "a bit string must have at least 1 bit, got 0"),
    ("bu-digit-2", "12", '"2" is not a valid binary digit (position 1)'),
    ("bu-empty-bytes", b"", "a bit string must have at least 1 bit, got 0"),
])
# fmt: on


def _share(k: int, n: int) -> list[Bad]:
    """Every ``n``-th value from the ``k``-th: entry points that bind values through the
    same type processing take the corpus in turn (together they see every value, and
    each sees every kind, the list being grouped by kind), keeping the file fast."""
    return VALUES[k::n]


# --- comparators: each value bound as a query vector, the methods taken in turn ------------

_METHODS = {
    "vector": ("l2_distance", "max_inner_product", "cosine_distance", "l1_distance"),
    "halfvec": ("l2_distance", "max_inner_product", "cosine_distance", "l1_distance"),
    "sparsevec": ("l2_distance", "max_inner_product", "cosine_distance", "l1_distance"),
    "bit": ("hamming_distance", "jaccard_distance"),
}


def _comparator_cases() -> list[Bad]:
    out = []
    for i, case in enumerate(_share(0, 2)):
        methods = _METHODS[ITEMS.c[case.col].type.sql_type]
        method = methods[i % len(methods)]
        out.append(
            Bad(
                f"{method}:{case.id}",
                (method, case.value),
                case.fragment,
                case.exc,
                col=case.col,
            )
        )
    return out


def _expression(fn: Callable[[], Any]) -> Act:
    """A case that only builds an expression or a value: nothing is sent (it runs the
    same with or without a bind)."""
    return Act(lambda *_: fn())


#: a distance method the type lacks, or distance() without a declared metric
COMPARATOR_MISUSE: list[Bad] = [
    *(
        Bad(
            f"{method}-on-{col}",
            _expression(lambda c=col, m=method: getattr(ITEMS.c[c], m)(GOOD[c])),
            f"{method}() ({op}) is not defined for {sql}; {sql} supports:",
            TypeError,
        )
        for col, sql in (("v", "vector"), ("h", "halfvec"), ("s", "sparsevec"))
        for method, op in (("hamming_distance", "<~>"), ("jaccard_distance", "<%>"))
    ),
    *(
        Bad(
            f"{method}-on-bit",
            _expression(lambda m=method: getattr(ITEMS.c.b, m)("1010")),
            f"{method}() ({op}) is not defined for bit; bit supports: hamming_distance()",
            TypeError,
        )
        for method, op in (
            ("l2_distance", "<->"),
            ("max_inner_product", "<#>"),
            ("cosine_distance", "<=>"),
            ("l1_distance", "<+>"),
        )
    ),
    *(
        Bad(
            f"distance-without-metric-{col}",
            _expression(lambda c=col: ITEMS.c[c].distance(GOOD[c])),
            f"{rep} declares no metric; declare one (metric=...) or call one of",
            ValueError,
        )
        for col, rep in (("v", "Vector(3)"), ("h", "HalfVec(3)"), ("s", "SparseVec(5)"))
        + (("b", "Bit(4)"),)
    ),
    Bad(
        "orm-attribute-hamming-on-vector",
        _expression(lambda: Item.v.hamming_distance([1, 2, 3])),  # type: ignore[attr-defined]
        "hamming_distance() (<~>) is not defined for vector",
        TypeError,
    ),
]


# --- typed functions (functions.py) ----------------------------------------------------------

_FUNCTIONS: dict[str, Callable[[Any], Any]] = {
    "avg": avg,
    "sum": vsum,
    "l2_normalize": l2_normalize,
    "binary_quantize": binary_quantize,
    "subvector": lambda x: subvector(x, 1, 2),
    "vector_dims": vector_dims,
    "vector_norm": vector_norm,
}
#: (id, Python value, fragment): the same refusal whatever the function
_FUNCTION_VALUES: list[tuple[str, Any, str]] = [
    ("nan", [1, NAN, 3], "NaN not allowed in vector (element 1)"),
    ("inf", [INF, 1, 2], "infinite value not allowed in vector (element 0)"),
    ("over-float4", [1e39, 1], '"1e+39" is out of range for type vector'),
    ("text-letters", "[1,x]", 'invalid input syntax: "[1,x]"'),
    ("text-no-brackets", "1,2", 'Vector contents must start with "["'),
    ("dict", {"a": 1}, "array of numbers, got dict"),
    ("bytes", b"\x01\x02", "array of numbers, got bytes"),
    ("int", 7, "array of numbers, got int"),
    ("bool", True, "array of numbers, got bool"),
    ("strings", ["a", "b"], "got non-numeric elements (dtype <U1)"),
    ("complex", [1j, 2], "got non-numeric elements (dtype complex128)"),
    ("none-element", [None, 1], "got non-numeric elements (dtype object)"),
    ("empty", [], "dimensions for type vector must be at least 1 (got 0)"),
    ("2d", np.ones((2, 3)), "expected a 1-D value, got shape (2, 3)"),
    ("16001", np.ones(16001), "dimensions for type vector cannot exceed 16000 (got 16001)"),
    ("ragged", [[1, 2], [3]], "expected a flat sequence of numbers"),
]


def _run_function(expr: Callable[[], Any]) -> Act:
    return Act(lambda bind, ctx: bind.execute(select(expr())).all())


_NAMES = list(_FUNCTIONS)

FUNCTION_CASES: list[Bad] = [
    # each value through three functions, the functions taken in turn (every function
    # meets about seven of the values)
    *(
        Bad(f"{name}({vid})", _run_function(lambda f=_FUNCTIONS[name], x=value: f(x)), fragment)
        for i, (vid, value, fragment) in enumerate(_FUNCTION_VALUES)
        for name in (_NAMES[(3 * i + k) % len(_NAMES)] for k in range(3))
    ),
    # an expression of a type the function does not take
    *(
        Bad(
            f"{name}({col}-column)",
            _run_function(lambda f=_FUNCTIONS[name], c=col: f(ITEMS.c[c])),
            f"{name}() takes a Vector, HalfVec expression, got type {rep}",
            TypeError,
        )
        for name in ("avg", "sum", "binary_quantize", "subvector", "vector_dims")
        for col, rep in (("s", "SparseVec(5)"), ("b", "Bit(4)"))
    ),
    *(
        Bad(
            f"{name}(b-column)",
            _run_function(lambda f=fn: f(ITEMS.c.b)),
            f"{name}() takes a Vector, HalfVec, SparseVec expression, got type Bit(4)",
            TypeError,
        )
        for name, fn in (("l2_normalize", l2_normalize), ("vector_norm", vector_norm))
    ),
    Bad(
        "l2_normalize(integer-column)",
        _run_function(lambda: l2_normalize(ITEMS.c.id)),
        "got type Integer()",
        TypeError,
    ),
    Bad(
        "vector_norm(untyped-column)",
        _run_function(lambda: vector_norm(literal_column("x"))),
        "got type NullType()",
        TypeError,
    ),
    Bad(
        "binary_quantize(orm-sparse-attribute)",
        _run_function(lambda: binary_quantize(Item.s)),  # type: ignore[attr-defined]
        "binary_quantize() takes a Vector, HalfVec expression, got type SparseVec(5)",
        TypeError,
    ),
    *(
        Bad(
            f"{name}(SparseVector)",
            _run_function(lambda f=fn: f(SparseVector({0: 1.0}, 3))),
            f"{name}() does not take a SparseVector value",
            TypeError,
        )
        for name, fn in (
            ("avg", avg),
            ("sum", vsum),
            ("binary_quantize", binary_quantize),
            ("vector_dims", vector_dims),
        )
    ),
    # documented as pgvector's to refuse: an empty slice
    Bad(
        "subvector(start-after-end)",
        _run_function(lambda: subvector([1, 2, 3], 4, 1)),
        "vector must have at least 1 dimension",
        SERVER,
    ),
    Bad(
        "subvector(count-0)",
        _run_function(lambda: subvector([1, 2, 3], 1, 0)),
        "vector must have at least 1 dimension",
        SERVER,
    ),
]


# --- PreparedQuery ------------------------------------------------------------------------

#: one prepared top-1 query per column, a distance of the column's type in each
PREPARED = {
    col: PreparedQuery(
        select(ITEMS.c.id).order_by(getattr(ITEMS.c[col], method)(bindparam("q"))).limit(1)
    )
    for col, method in (
        ("v", "cosine_distance"),
        ("h", "l2_distance"),
        ("s", "max_inner_product"),
        ("b", "hamming_distance"),
        ("vu", "l1_distance"),
        ("hu", "l2_distance"),
        ("su", "cosine_distance"),
        ("bu", "jaccard_distance"),
        ("sb", "l2_distance"),
    )
}


def _session_with_listener(bind: Any) -> Session:
    session = Session(bind=bind)
    event.listen(session, "do_orm_execute", lambda state: None)
    return session


def _schema_translated(ctx: Ctx) -> None:
    with ctx.engine.connect() as other:
        other = other.execution_options(schema_translate_map={None: "elsewhere"})
        PREPARED["v"].all(other, q=GOOD["v"])


# fmt: off
PREPARED_MISUSE: list[Bad] = _rows([
    ("insert-statement", Act(lambda bind, ctx: PreparedQuery(insert(ITEMS))),
     "PreparedQuery takes a select() of columns, got Insert", TypeError),
    ("text-statement", Act(lambda bind, ctx: PreparedQuery(text("SELECT 1"))),
     "PreparedQuery takes a select() of columns, got TextClause", TypeError),
    ("sql-string", Act(lambda bind, ctx: PreparedQuery("SELECT 1")),
     "PreparedQuery takes a select() of columns, got str", TypeError),
    ("entity-select", Act(lambda bind, ctx: PreparedQuery(select(Item))), "not entities (Item)",
     TypeError),
    ("unknown-parameter", Act(lambda bind, ctx: PREPARED["v"].all(bind, q=GOOD["v"], nope=1)),
     "unknown bind parameter(s) ['nope']", sa_exc.ArgumentError),
    ("missing-parameter", Act(lambda bind, ctx: PREPARED["v"].all(bind)),
     "a value is required for bind parameter 'q'", sa_exc.ArgumentError),
    ("in-list",
     Act(lambda bind, ctx: PreparedQuery(select(ITEMS.c.id).where(ITEMS.c.id.in_([1, 2])))
         .all(bind)),
     "has expanding or literal_execute parameters", ValueError),
    ("schema-translate-map", Act(lambda bind, ctx: _schema_translated(ctx)),
     "does not apply schema_translate_map", ValueError),
    ("session-with-do-orm-execute",
     Act(lambda bind, ctx: PREPARED["v"].all(_session_with_listener(bind), q=GOOD["v"])),
     "this Session has do_orm_execute listeners", ValueError),
    ("scalars-nan", Act(lambda bind, ctx: PREPARED["v"].scalars(bind, q=[1, NAN, 3])),
     "NaN not allowed in vector (element 1)"),
    ("scalars-wrong-dim", Act(lambda bind, ctx: PREPARED["h"].scalars(bind, q=[1, 2])),
     "halfvec(3): expected 3 dimensions, not 2"),
])
# fmt: on


# --- copy_rows / copy_rows_async --------------------------------------------------------------


@dataclass(frozen=True)
class Copy:
    """The arguments of one copy_rows call: ``data()`` is built anew for every call."""

    data: Callable[[], Any]
    target: Any = ITEMS
    bind: str = "conn"  # "conn", "session", "engine" or "none"
    chunk_rows: int | None = None


def _with(at: tuple[int, int], value: float, shape: tuple[int, int] = (3, 3), dtype: Any = None):
    def make() -> np.ndarray:
        m = np.ones(shape, dtype=dtype or np.float64)
        m[at] = value
        return m

    return make


def _gen_rows(n: int) -> Callable[[], Iterator[int]]:
    return lambda: (i for i in range(100, 100 + n))


# fmt: off
COPY_CASES: list[Bad] = _rows([
    # dense matrices for vector(3)
    ("v-dim-2", Copy(lambda: {"v": np.ones((2, 2))}),
     "v (vector(3)): expected 3 dimensions, not 2"),
    ("v-float32-dim-4", Copy(lambda: {"v": np.ones((2, 4), np.float32)}),
     "v (vector(3)): expected 3 dimensions, not 4"),
    ("v-1d", Copy(lambda: {"v": np.ones(3)}),
     "v (vector(3)): expected a 2-D (n, dim) matrix, got shape (3,)"),
    ("v-3d", Copy(lambda: {"v": np.ones((2, 3, 1))}),
     "expected a 2-D (n, dim) matrix, got shape (2, 3, 1)"),
    ("v-0d", Copy(lambda: {"v": np.array(1.0)}), "expected a 2-D (n, dim) matrix, got shape ()"),
    ("v-scalar-int", Copy(lambda: {"v": 5}), "expected a 2-D (n, dim) matrix, got shape ()"),
    ("v-zero-dims", Copy(lambda: {"v": np.ones((2, 0))}),
     "v (vector(3)): vector must have at least 1 dimension"),
    ("v-nan", Copy(lambda: {"v": _with((1, 2), NAN)()}),
     "NaN not allowed in vector (row 1, element 2)"),
    ("v-inf", Copy(lambda: {"v": _with((0, 0), INF)()}),
     "infinite value not allowed in vector (row 0, element 0)"),
    ("v-float32-minus-inf", Copy(lambda: {"v": _with((2, 1), -INF, dtype=np.float32)()}),
     "infinite value not allowed in vector (row 2, element 1)"),
    ("v-over-float4", Copy(lambda: {"v": _with((2, 1), 1e39)()}),
     '"1e+39" is out of range for type vector (row 2, element 1)'),
    ("v-strings", Copy(lambda: {"v": np.array([["a", "b", "c"]])}),
     "expected numbers, got non-numeric elements (dtype <U1)"),
    ("v-object-none", Copy(lambda: {"v": np.array([[1, None, 3]], dtype=object)}),
     "got non-numeric elements (dtype object)"),
    ("v-complex", Copy(lambda: {"v": np.ones((2, 3), complex)}),
     "got non-numeric elements (dtype complex128)"),
    ("v-bools", Copy(lambda: {"v": np.ones((2, 3), bool)}),
     "got non-numeric elements (dtype bool)"),
    ("v-datetimes", Copy(lambda: {"v": np.array([["2020-01-01"] * 3], dtype="datetime64[D]")}),
     "got non-numeric elements (dtype datetime64[D])"),
    ("v-tuples-ragged", Copy(lambda: {"v": [(1, 2, 3), (1, 2)]}),
     "v (vector(3)): expected a 2-D (n, dim) matrix of numbers"),
    ("v-tuples-wrong-dim", Copy(lambda: {"v": [(1, 2), (3, 4)]}),
     "v (vector(3)): expected 3 dimensions, not 2"),
    ("v-tuples-nan", Copy(lambda: {"v": [(1, 2, 3), (4, NAN, 6)]}),
     "NaN not allowed in vector (row 1, element 1)"),
    ("v-dict-rows", Copy(lambda: {"v": [{"a": 1}, {"b": 2}]}),
     "got non-numeric elements (dtype object)"),
    ("v-none-row", Copy(lambda: {"v": [[1, 2, 3], None]}),
     "expected a 2-D (n, dim) matrix of numbers"),
    ("v-text-rows", Copy(lambda: {"v": ["[1,2,3]", "[4,5,6]"]}),
     "got non-numeric elements (dtype <U7)"),
    ("v-bytes", Copy(lambda: {"v": b"\x00\x01"}), "got non-numeric elements (dtype |S2)"),
    ("v-generator-of-rows", Copy(lambda: {"v": ([1, 2, 3] for _ in range(2))}),
     "got non-numeric elements (dtype object)"),
    ("v-mapping-of-rows", Copy(lambda: {"v": {0: [1, 2, 3]}}),
     "got non-numeric elements (dtype object)"),
    # halfvec(3) and the undimensioned columns
    ("h-65520", Copy(lambda: {"h": [[65520, 0, 0]]}),
     'h (halfvec(3)): "65520" is out of range for type halfvec (row 0, element 0) '
     "(largest magnitude 65504)"),
    ("h-int32-overflow", Copy(lambda: {"h": np.array([[1, 2, 3], [0, 70000, 0]], np.int32)}),
     '"70000" is out of range for type halfvec (row 1, element 1)'),
    ("h-nan", Copy(lambda: {"h": _with((0, 2), NAN, dtype=np.float16)()}),
     "NaN not allowed in halfvec (row 0, element 2)"),
    ("vu-16001", Copy(lambda: {"vu": np.ones((1, 16001), np.float32)}),
     "vector cannot have more than 16000 dimensions (got 16001)"),
    ("hu-16001", Copy(lambda: {"hu": np.ones((1, 16001), np.float16)}),
     "halfvec cannot have more than 16000 dimensions (got 16001)"),
    # sparsevec rows as dicts, SparseVectors, strings ...
    ("s-out-of-bounds", Copy(lambda: {"s": [{0: 1.0}, {5: 1.0}]}),
     "sparsevec index out of bounds: 5 is not in [0, 5)"),
    ("s-negative-index", Copy(lambda: {"s": [{-1: 1.0}]}),
     "index out of bounds: -1 is not in [0, 5)"),
    ("s-str-key", Copy(lambda: {"s": [{"a": 1.0}]}), "indices must be integers, got dtype <U1"),
    ("s-nan", Copy(lambda: {"s": [{0: NAN}]}), "NaN not allowed in sparsevec"),
    ("s-underflow", Copy(lambda: {"s": [{0: 1e-46}]}),
     '"1e-46" is out of range for type sparsevec'),
    ("s-wrong-dim", Copy(lambda: {"s": [SparseVector({0: 1.0}, 4)]}),
     "sparsevec(5): expected 5 dimensions, not 4"),
    ("s-text-rows", Copy(lambda: {"s": ["{1:1}/5"]}), "got str"),
    ("s-int-rows", Copy(lambda: {"s": [5]}), "got int"),
    ("s-dense-matrix-dim-4", Copy(lambda: {"s": np.ones((2, 4))}), "expected 5 dimensions, not 4"),
    ("s-mapping-not-rows", Copy(lambda: {"s": {0: 1.0}}), "got int"),
    ("su-mapping-without-dim", Copy(lambda: {"su": [{0: 1.0}]}), "mapping needs dim"),
    ("sb-nnz-16001", Copy(lambda: {"sb": [_SB_CROWDED]}),
     "sparsevec cannot have more than 16000 non-zero elements (got 16001)"),
    ("b-unsupported", Copy(lambda: {"b": ["1010"]}),
     "copy_rows: column 'b' of type Bit(4) is not supported"),
    # the call itself
    ("no-columns", Copy(lambda: {}), "copy_rows: expected at least one column in data",
     ValueError),
    ("unknown-column", Copy(lambda: {"nope": [1]}), "table 'items' has no column 'nope'",
     KeyError),
    ("row-count-mismatch", Copy(lambda: {"v": np.ones((2, 3)), "id": [1, 2, 3]}),
     "column 'id' has 3 rows, expected 2", ValueError),
    ("id-beyond-int4", Copy(lambda: {"id": np.array([1, 2**40]), "v": np.ones((2, 3))}),
     "id (integer): values must lie in [-2147483648, 2147483647], got [1, 1099511627776]"),
    ("id-floats", Copy(lambda: {"id": np.array([1.5, 2.5]), "v": np.ones((2, 3))}),
     "id (integer): expected integers, got dtype float64"),
    ("id-0d", Copy(lambda: {"id": np.array(7), "v": np.ones((1, 3))}),
     "needs one value a row (a sequence or a 1-D array), got a 0-d array", ValueError),
    ("no-row-count", Copy(lambda: {"id": _gen_rows(2)()}), "cannot tell the number of rows",
     ValueError),
    ("id-column-ends-early", Copy(lambda: {"v": np.ones((3, 3)), "id": _gen_rows(2)()}),
     "copy_rows: column 'id' ended after 2 rows, expected 3", ValueError),
    ("duplicate-key", Copy(lambda: {"id": [1, 1], "v": np.ones((2, 3))}),
     "duplicate key value violates unique constraint", Exception),
    ("chunk-rows-0", Copy(lambda: {"v": np.ones((2, 3))}, chunk_rows=0),
     "chunk_rows must be a positive int, got 0", ValueError),
    ("chunk-rows-negative", Copy(lambda: {"v": np.ones((2, 3))}, chunk_rows=-5),
     "chunk_rows must be a positive int, got -5", ValueError),
    ("target-str", Copy(lambda: {"v": np.ones((1, 3))}, target="items"),
     "expected a Table or a mapped ORM class, got str", TypeError),
    ("target-column", Copy(lambda: {"v": np.ones((1, 3))}, target=ITEMS.c.v),
     "expected a Table or a mapped ORM class, got Column", TypeError),
    ("target-none", Copy(lambda: {"v": np.ones((1, 3))}, target=None),
     "expected a Table or a mapped ORM class, got NoneType", TypeError),
    ("orm-class-wrong-dim", Copy(lambda: {"v": np.ones((1, 2))}, target=Item),
     "v (vector(3)): expected 3 dimensions, not 2"),
    ("orm-class-unknown-attribute", Copy(lambda: {"nope": [1]}, target=Item),
     "has no column 'nope'", KeyError),
    ("session-nan", Copy(lambda: {"v": _with((0, 1), NAN)()}, bind="session"),
     "NaN not allowed in vector (row 0, element 1)"),
    ("session-bits", Copy(lambda: {"b": ["1010"]}, bind="session"),
     "column 'b' of type Bit(4) is not supported"),
    ("bind-engine", Copy(lambda: {"v": np.ones((1, 3))}, bind="engine"), "got Engine", TypeError),
    ("bind-none", Copy(lambda: {"v": np.ones((1, 3))}, bind="none"), "got NoneType", TypeError),
])
# fmt: on


# --- fetch_matrix / fetch_matrix_async --------------------------------------------------------


@dataclass(frozen=True)
class Fetch:
    target: Any
    bind: str = "conn"


_NOT_ONE = "fetch_matrix: expected one Vector or HalfVec column (or a select of one), got "

# fmt: off
FETCH_CASES: list[Bad] = _rows([
    ("integer-column", Fetch(FM.c.id), _NOT_ONE + "Integer()", TypeError),
    ("sparse-column", Fetch(FM.c.s), _NOT_ONE + "SparseVec(5)", TypeError),
    ("bit-column", Fetch(FM.c.b), _NOT_ONE + "Bit(4)", TypeError),
    ("two-columns", Fetch(select(FM.c.v, FM.c.h)), _NOT_ONE + "Vector(3), HalfVec(3)", TypeError),
    ("whole-table", Fetch(FM), _NOT_ONE + "Integer(), Vector(3)", TypeError),
    ("none", Fetch(None), _NOT_ONE + "NullType()", TypeError),
    ("literal-int", Fetch(literal(1)), _NOT_ONE + "Integer()", TypeError),
    ("distance", Fetch(FM.c.v.l2_distance([1, 2, 3])), _NOT_ONE + "Float()", TypeError),
    ("count", Fetch(select(func.count())), _NOT_ONE + "Integer()", TypeError),
    ("orm-entity", Fetch(Item), _NOT_ONE + "Integer(), Vector(3)", TypeError),
    ("column-name-str", Fetch("v"), "'v'", (TypeError, sa_exc.ArgumentError)),
    ("null-rows", Fetch(FM.c.v), "the rows are not all non-NULL vectors of 3 dimensions"),
    ("mixed-dimensions", Fetch(select(FM.c.vu).order_by(FM.c.id)),
     "the rows are not all non-NULL vectors of 2 dimensions"),
    ("nan-in-where", Fetch(select(FM.c.h).where(FM.c.h.l2_distance([1, NAN, 3]) < 5)),
     "NaN not allowed in halfvec (element 1)"),
    ("bad-text-in-where", Fetch(select(FM.c.h).where(FM.c.v.cosine_distance("[1,x,3]") < 1)),
     'invalid input syntax: "[1,x,3]"'),
    ("wrong-dim-in-order-by", Fetch(select(FM.c.h).order_by(FM.c.v.l2_distance([1, 2]))),
     "vector(3): expected 3 dimensions, not 2"),
    ("sparse-out-of-bounds-in-where",
     Fetch(select(FM.c.h).where(FM.c.s.l2_distance({9: 1.0}) < 1)),
     "index out of bounds: 9 is not in [0, 5)"),
    ("bad-bits-in-where", Fetch(select(FM.c.h).where(FM.c.b.hamming_distance("10x1") < 1)),
     '"x" is not a valid binary digit (position 2)'),
    ("bind-engine", Fetch(FM.c.h, bind="engine"), "got Engine", TypeError),
    ("bind-none", Fetch(FM.c.h, bind="none"), "got NoneType", TypeError),
])
# fmt: on


# --- search settings ----------------------------------------------------------------------

_RANGE = "is outside the valid range for parameter"

# fmt: off
SEARCH_VALUE_CASES: list[Bad] = _rows([
    ("ef_search-0", _expression(lambda: SearchSettings(ef_search=0)),
     f'0 {_RANGE} "hnsw.ef_search" (1 .. 1000)', SSE),
    ("ef_search-1001", _expression(lambda: SearchSettings(ef_search=1001)),
     f'1001 {_RANGE} "hnsw.ef_search"', SSE),
    ("ef_search-negative", _expression(lambda: SearchSettings(ef_search=-1)),
     f'-1 {_RANGE} "hnsw.ef_search"', SSE),
    ("ef_search-float", _expression(lambda: SearchSettings(ef_search=1.5)),
     "ef_search (hnsw.ef_search) must be an int between 1 and 1000, got float 1.5", SSE),
    ("ef_search-str", _expression(lambda: SearchSettings(ef_search="100")),
     "must be an int between 1 and 1000, got str '100'", SSE),
    ("ef_search-bool", _expression(lambda: SearchSettings(ef_search=True)),
     "ef_search (hnsw.ef_search) must be a number, got a bool (True)", SSE),
    ("ef_search-nan", _expression(lambda: SearchSettings(ef_search=NAN)),
     "must be an int between 1 and 1000, got float nan", SSE),
    ("ef_search-positional-str", _expression(lambda: SearchSettings("x")),
     "must be an int between 1 and 1000, got str 'x'", SSE),
    ("hnsw_iterative_scan-strict",
     _expression(lambda: SearchSettings(hnsw_iterative_scan="strict")),
     "hnsw_iterative_scan (hnsw.iterative_scan) must be one of off, relaxed_order, "
     "strict_order, got 'strict'", SSE),
    ("hnsw_iterative_scan-upper",
     _expression(lambda: SearchSettings(hnsw_iterative_scan="STRICT_ORDER")), "got 'STRICT_ORDER'",
     SSE),
    ("hnsw_iterative_scan-bool", _expression(lambda: SearchSettings(hnsw_iterative_scan=True)),
     "must be one of off, relaxed_order, strict_order, got True", SSE),
    ("hnsw_iterative_scan-empty", _expression(lambda: SearchSettings(hnsw_iterative_scan="")),
     "got ''", SSE),
    ("max_scan_tuples-0", _expression(lambda: SearchSettings(max_scan_tuples=0)),
     f'0 {_RANGE} "hnsw.max_scan_tuples"', SSE),
    ("max_scan_tuples-negative", _expression(lambda: SearchSettings(max_scan_tuples=-20)),
     f'-20 {_RANGE} "hnsw.max_scan_tuples"', SSE),
    ("max_scan_tuples-float", _expression(lambda: SearchSettings(max_scan_tuples=1.0)),
     "max_scan_tuples (hnsw.max_scan_tuples) must be an int", SSE),
    ("scan_mem_multiplier-0.5", _expression(lambda: SearchSettings(scan_mem_multiplier=0.5)),
     f'0.5 {_RANGE} "hnsw.scan_mem_multiplier" (1 .. 1000)', SSE),
    ("scan_mem_multiplier-1000.5", _expression(lambda: SearchSettings(scan_mem_multiplier=1000.5)),
     f'1000.5 {_RANGE} "hnsw.scan_mem_multiplier"', SSE),
    ("scan_mem_multiplier-0", _expression(lambda: SearchSettings(scan_mem_multiplier=0)),
     f'0 {_RANGE} "hnsw.scan_mem_multiplier"', SSE),
    ("scan_mem_multiplier-nan", _expression(lambda: SearchSettings(scan_mem_multiplier=NAN)),
     "scan_mem_multiplier (hnsw.scan_mem_multiplier) must be a finite number between 1 "
     "and 1000, got nan", SSE),
    ("scan_mem_multiplier-inf", _expression(lambda: SearchSettings(scan_mem_multiplier=INF)),
     "must be a finite number between 1 and 1000, got inf", SSE),
    ("scan_mem_multiplier-minus-inf",
     _expression(lambda: SearchSettings(scan_mem_multiplier=-INF)),
     "must be a finite number between 1 and 1000, got -inf", SSE),
    ("scan_mem_multiplier-str", _expression(lambda: SearchSettings(scan_mem_multiplier="2")),
     "must be a finite number between 1 and 1000, got '2'", SSE),
    ("scan_mem_multiplier-bool", _expression(lambda: SearchSettings(scan_mem_multiplier=True)),
     "must be a number, got a bool (True)", SSE),
    ("probes-0", _expression(lambda: SearchSettings(probes=0)),
     f'0 {_RANGE} "ivfflat.probes" (1 .. 32768)', SSE),
    ("probes-32769", _expression(lambda: SearchSettings(probes=32769)),
     f'32769 {_RANGE} "ivfflat.probes"', SSE),
    ("probes-str", _expression(lambda: SearchSettings(probes="10")),
     "probes (ivfflat.probes) must be an int between 1 and 32768, got str '10'", SSE),
    ("probes-float", _expression(lambda: SearchSettings(probes=2.0)),
     "probes (ivfflat.probes) must be an int between 1 and 32768, got float 2.0", SSE),
    ("ivfflat_iterative_scan-strict_order",
     _expression(lambda: SearchSettings(ivfflat_iterative_scan="strict_order")),
     "ivfflat_iterative_scan (ivfflat.iterative_scan) must be one of off, relaxed_order, "
     "got 'strict_order'", SSE),
    ("ivfflat_iterative_scan-on", _expression(lambda: SearchSettings(ivfflat_iterative_scan="on")),
     "got 'on'", SSE),
    ("ivfflat_iterative_scan-false",
     _expression(lambda: SearchSettings(ivfflat_iterative_scan=False)),
     "must be one of off, relaxed_order, got False", SSE),
    ("max_probes-0", _expression(lambda: SearchSettings(max_probes=0)),
     f'0 {_RANGE} "ivfflat.max_probes"', SSE),
    ("max_probes-32769", _expression(lambda: SearchSettings(max_probes=32769)),
     f'32769 {_RANGE} "ivfflat.max_probes"', SSE),
    ("from_gucs-unknown-name", _expression(lambda: SearchSettings.from_gucs({"hnsw.nope": 1})),
     "unknown search setting(s) 'hnsw.nope'; expected hnsw.ef_search", SSE),
    ("from_gucs-field-name", _expression(lambda: SearchSettings.from_gucs({"ef_search": 10})),
     "unknown search setting(s) 'ef_search'", SSE),
    ("from_gucs-out-of-range",
     _expression(lambda: SearchSettings.from_gucs({"hnsw.ef_search": 0})),
     f'0 {_RANGE} "hnsw.ef_search"', SSE),
    ("from_gucs-ivfflat-strict",
     _expression(lambda: SearchSettings.from_gucs({"ivfflat.iterative_scan": "strict_order"})),
     "got 'strict_order'", SSE),
    ("search_settings-unknown-keyword", _expression(lambda: search_settings(None, ef_searches=10)),
     "unknown search setting(s) 'ef_searches'; expected ef_search", SSE),
    ("search_settings-both-forms",
     _expression(lambda: search_settings(None, SearchSettings(probes=2), ef_search=5)),
     "pass either a SearchSettings or keywords, not both", SSE),
    ("prefer_index-str", _expression(lambda: SearchSettings(prefer_index="yes")),
     "prefer_index (enable_seqscan = off) must be a bool, got str 'yes'", SSE),
    ("prefer_index-int-1", _expression(lambda: SearchSettings(prefer_index=1)),
     "must be a bool, got int 1", SSE),
    ("prefer_index-int-0", _expression(lambda: SearchSettings(prefer_index=0)),
     "must be a bool, got int 0", SSE),
    ("prefer_index-str-off", _expression(lambda: search_settings(None, prefer_index="off")),
     "must be a bool, got str 'off'", SSE),
    ("prefer_index-numpy-int", _expression(lambda: SearchSettings(prefer_index=np.int64(1))),
     "must be a bool, got int64 np.int64(1)", SSE),
    ("prefer_index-mapping-str",
     _expression(lambda: search_settings(None, {"prefer_index": "true"})),
     "must be a bool, got str 'true'", SSE),
    ("search_settings-mapping-bad-value",
     _expression(lambda: search_settings(None, {"ivfflat.probes": 0})),
     f'0 {_RANGE} "ivfflat.probes"', SSE),
])
# fmt: on


def _apply_on_autocommit(ctx: Ctx, use_with: bool) -> None:
    with ctx.engine.connect() as other:
        other = other.execution_options(isolation_level="AUTOCOMMIT")
        if use_with:
            with search_settings(other, ef_search=10):
                pass
        else:
            apply_search_settings(other, ef_search=10)


def _with_settings(bind: Any, **kw: Any) -> None:
    with search_settings(bind, **kw):
        bind.execute(select(literal(1)))


def _option_on_connection(ctx: Ctx, option: Any) -> None:
    with ctx.engine.connect() as other:
        other.execution_options(vector_search=option).execute(select(literal(1)))


def _option_on_engine(ctx: Ctx, option: Any) -> None:
    with ctx.engine.execution_options(vector_search=option).connect() as other:
        other.execute(select(literal(1)))


def _option_on_statement(bind: Any, option: Any) -> None:
    bind.execute(select(literal(1)).execution_options(vector_search=option))


# fmt: off
SEARCH_CONN_CASES: list[Bad] = _rows([
    ("apply-ef_search-0", Act(lambda bind, ctx: apply_search_settings(bind, ef_search=0)),
     f'0 {_RANGE} "hnsw.ef_search"', SSE),
    ("apply-guc-mapping-1001",
     Act(lambda bind, ctx: apply_search_settings(bind, {"hnsw.ef_search": 1001})),
     f'1001 {_RANGE} "hnsw.ef_search"', SSE),
    ("apply-unknown", Act(lambda bind, ctx: apply_search_settings(bind, {"nope": 1})),
     "unknown search setting(s) 'nope'", SSE),
    ("apply-both-forms",
     Act(lambda bind, ctx: apply_search_settings(bind, SearchSettings(probes=2), ef_search=5)),
     "pass either a SearchSettings or keywords, not both", SSE),
    ("apply-on-autocommit", Act(lambda bind, ctx: _apply_on_autocommit(ctx, use_with=False)),
     "this connection is AUTOCOMMIT", SSE),
    ("apply-on-engine", Act(lambda bind, ctx: apply_search_settings(ctx.engine, ef_search=10)),
     "expected a SQLAlchemy Connection or Session, got Engine", TypeError),
    ("with-probes-0", Act(lambda bind, ctx: _with_settings(bind, probes=0)),
     f'0 {_RANGE} "ivfflat.probes"', SSE),
    ("with-ivfflat-strict_order",
     Act(lambda bind, ctx: _with_settings(bind, ivfflat_iterative_scan="strict_order")),
     "must be one of off, relaxed_order, got 'strict_order'", SSE),
    ("with-scan_mem_multiplier-nan",
     Act(lambda bind, ctx: _with_settings(bind, scan_mem_multiplier=NAN)),
     "must be a finite number between 1 and 1000, got nan", SSE),
    ("with-on-autocommit", Act(lambda bind, ctx: _apply_on_autocommit(ctx, use_with=True)),
     "this connection is AUTOCOMMIT", SSE),
    ("apply-prefer_index-str",
     Act(lambda bind, ctx: apply_search_settings(bind, prefer_index="true")),
     "prefer_index (enable_seqscan = off) must be a bool, got str 'true'", SSE),
    ("with-prefer_index-none-str",
     Act(lambda bind, ctx: _with_settings(bind, prefer_index="None")),
     "must be a bool, got str 'None'", SSE),
    ("statement-option-prefer_index-int",
     Act(lambda bind, ctx: _option_on_statement(bind, {"prefer_index": 1})),
     "must be a bool, got int 1", SSE),
    ("with-on-session",
     Act(lambda bind, ctx: _with_settings(Session(bind=bind), max_probes=40000)),
     f'40000 {_RANGE} "ivfflat.max_probes"', SSE),
    ("statement-option-ef_search-0",
     Act(lambda bind, ctx: _option_on_statement(bind, {"ef_search": 0})),
     f'0 {_RANGE} "hnsw.ef_search"', SSE),
    ("statement-option-probes-str",
     Act(lambda bind, ctx: _option_on_statement(bind, {"probes": "10"})),
     "probes (ivfflat.probes) must be an int between 1 and 32768, got str '10'", SSE),
    ("statement-option-unknown", Act(lambda bind, ctx: _option_on_statement(bind, {"nope": 1})),
     "unknown search setting(s) 'nope'", SSE),
    ("statement-option-guc-name",
     Act(lambda bind, ctx: _option_on_statement(bind, {"hnsw.ef_search": -1})),
     f'-1 {_RANGE} "hnsw.ef_search"', SSE),
    ("connection-option-max_scan_tuples-0",
     Act(lambda bind, ctx: _option_on_connection(ctx, {"max_scan_tuples": 0})),
     f'0 {_RANGE} "hnsw.max_scan_tuples"', SSE),
    ("engine-option-probes-0", Act(lambda bind, ctx: _option_on_engine(ctx, {"probes": 0})),
     f'0 {_RANGE} "ivfflat.probes"', SSE),
    ("engine-option-hnsw-strict-typo",
     Act(lambda bind, ctx: _option_on_engine(ctx, {"hnsw_iterative_scan": "strict"})),
     "got 'strict'", SSE),
])
# fmt: on


# --- index declarations (value-only) ---------------------------------------------------------


def _decl() -> Table:
    """A fresh table per case: indexes declared on its columns attach to it."""
    return Table(
        "decl",
        MetaData(),
        Column("id", Integer),
        Column("txt", Text),
        Column("v", Vector(3)),
        Column("vc", Vector(3, metric="cosine")),
        Column("vu", Vector()),
        Column("v1", Vector(1)),
        Column("v2001", Vector(2001)),
        Column("h", HalfVec(3)),
        Column("h4001", HalfVec(4001)),
        Column("s", SparseVec(5)),
        Column("b", Bit(8)),
        Column("bu", Bit()),
        Column("b64001", Bit(64001)),
    )


def _hnsw(col: str, **kw: Any) -> Act:
    return Act(lambda: HnswIndex("ix", _decl().c[col], **kw))


def _ivf(col: str, **kw: Any) -> Act:
    return Act(lambda: IvfflatIndex("ix", _decl().c[col], **kw))


def _on_expr(cls: type, make: Callable[[Table], Any], **kw: Any) -> Act:
    return Act(lambda: cls("ix", make(_decl()), **kw))


def _by_name(index: Callable[[], Index], *columns: Column[Any]) -> Act:
    return Act(lambda: Table("named", MetaData(), Column("id", Integer), *columns, index()))


def _spec(*cols: str, **kw: Any) -> Act:
    def make() -> Any:
        t = _decl()
        return vector_index_spec(Index("ix", *(t.c[c] for c in cols), **kw))

    return Act(make)


_OOB = "out of bounds for option"
# fmt: off
INDEX_CASES: list[Bad] = _rows([
    ("hnsw-m-1", _hnsw("vc", m=1), f'value 1 {_OOB} "m": valid values are between "2" and "100"',
     IDE),
    ("hnsw-m-0", _hnsw("vc", m=0), f'value 0 {_OOB} "m"', IDE),
    ("hnsw-m-negative", _hnsw("vc", m=-5), f'value -5 {_OOB} "m"', IDE),
    ("hnsw-m-101", _hnsw("vc", m=101, ef_construction=1000), f'value 101 {_OOB} "m"', IDE),
    ("hnsw-m-float", _hnsw("vc", m=16.0), "m must be an int between 2 and 100, got 16.0", IDE),
    ("hnsw-m-str", _hnsw("vc", m="16"), "m must be an int between 2 and 100, got '16'", IDE),
    ("hnsw-m-bool", _hnsw("vc", m=True), "m must be an int between 2 and 100, got True", IDE),
    ("hnsw-m-nan", _hnsw("vc", m=NAN), "m must be an int between 2 and 100, got nan", IDE),
    ("hnsw-ef-3", _hnsw("vc", ef_construction=3), f'value 3 {_OOB} "ef_construction"', IDE),
    ("hnsw-ef-1001", _hnsw("vc", ef_construction=1001), f'value 1001 {_OOB} "ef_construction"',
     IDE),
    ("hnsw-ef-below-2m", _hnsw("vc", m=16, ef_construction=31),
     "ef_construction must be greater than or equal to 2 * m (m=16, ef_construction=31)", IDE),
    ("hnsw-default-ef-below-2m", _hnsw("vc", m=40),
     "ef_construction must be greater than or equal to 2 * m (m=40, ef_construction=64)", IDE),
    ("hnsw-ef-str", _hnsw("vc", ef_construction="64"), "ef_construction must be an int", IDE),
    ("ivf-lists-0", _ivf("v", lists=0),
     f'value 0 {_OOB} "lists": valid values are between "1" and "32768"', IDE),
    ("ivf-lists-32769", _ivf("v", lists=32769), f'value 32769 {_OOB} "lists"', IDE),
    ("ivf-lists-negative", _ivf("v", lists=-1), f'value -1 {_OOB} "lists"', IDE),
    ("ivf-lists-float", _ivf("v", lists=1.5), "lists must be an int between 1 and 32768, got 1.5",
     IDE),
    ("ivf-lists-str", _ivf("v", lists="100"),
     "lists must be an int between 1 and 32768, got '100'", IDE),
    ("opclass-unknown", _hnsw("v", opclass="vector_foo_ops"),
     "unknown pgvector operator class 'vector_foo_ops'", IDE),
    ("opclass-of-halfvec-on-vector", _hnsw("v", opclass="halfvec_l2_ops"),
     "operator class halfvec_l2_ops is for type halfvec, but the indexed expression is vector; "
     "use vector_l2_ops", IDE),
    ("opclass-of-bit-on-vector", _hnsw("v", opclass="bit_hamming_ops"),
     "operator class bit_hamming_ops is for type bit, but the indexed expression is vector", IDE),
    ("opclass-of-sparsevec-on-halfvec", _hnsw("h", opclass="sparsevec_l2_ops"),
     "is for type sparsevec, but the indexed expression is halfvec; use halfvec_l2_ops", IDE),
    ("opclass-against-metric", _hnsw("v", metric="l2", opclass="vector_cosine_ops"),
     "operator class vector_cosine_ops serves the 'cosine' metric, not 'l2'; for 'l2' use "
     "vector_l2_ops", IDE),
    ("opclass-against-declared-metric", _hnsw("vc", opclass="vector_l2_ops"),
     "serves the 'l2' metric, but the column type declares 'cosine'", IDE),
    ("ivf-opclass-l1", _ivf("v", opclass="vector_l1_ops"),
     'operator class "vector_l1_ops" does not exist for access method "ivfflat"', IDE),
    ("metric-hamming-on-vector", _hnsw("v", metric="hamming"),
     "type vector has no 'hamming' metric", IDE),
    ("metric-unknown", _hnsw("v", metric="euclidean"), "type vector has no 'euclidean' metric",
     IDE),
    ("metric-upper-case", _hnsw("v", metric="COSINE"), "has no 'COSINE' metric", IDE),
    ("metric-cosine-on-bit", _hnsw("b", metric="cosine"), "type bit has no 'cosine' metric", IDE),
    ("metric-l2-on-halfvec-as-hamming", _hnsw("h", metric="jaccard"),
     "type halfvec has no 'jaccard' metric", IDE),
    ("ivf-l1", _ivf("v", metric="l1"), 'does not exist for access method "ivfflat"', IDE),
    ("ivf-halfvec-l1", _ivf("h", metric="l1"), 'operator class "halfvec_l1_ops" does not exist',
     IDE),
    ("ivf-jaccard", _ivf("b", metric="jaccard"), 'operator class "bit_jaccard_ops" does not exist',
     IDE),
    ("ivf-sparsevec", _ivf("s", metric="l2"), "IVFFlat does not support sparsevec", IDE),
    ("hnsw-no-metric", _hnsw("v"),
     'data type vector has no default operator class for access method "hnsw"', IDE),
    ("hnsw-no-dimensions", _hnsw("vu", metric="l2"), "column does not have dimensions", IDE),
    ("hnsw-bit-varying", _hnsw("bu", metric="hamming"), "column does not have dimensions", IDE),
    ("hnsw-cast-without-dimensions",
     _on_expr(HnswIndex, lambda t: cast(t.c.v, HalfVec()), metric="l2"),
     "column does not have dimensions", IDE),
    ("hnsw-vector-2001", _hnsw("v2001", metric="l2"),
     "column cannot have more than 2000 dimensions for hnsw index (vector(2001)); index a "
     "half-precision expression instead: cast(col, HalfVec(2001))", IDE),
    ("ivf-vector-2001", _ivf("v2001"),
     "column cannot have more than 2000 dimensions for ivfflat index", IDE),
    ("hnsw-halfvec-4001", _hnsw("h4001", metric="l2"),
     "column cannot have more than 4000 dimensions for hnsw index (halfvec(4001)); index a "
     "binary-quantized expression", IDE),
    ("hnsw-cast-halfvec-4001",
     _on_expr(HnswIndex, lambda t: cast(t.c.v2001, HalfVec(4001)), metric="cosine"),
     "column cannot have more than 4000 dimensions for hnsw index", IDE),
    ("hnsw-cast-vector-16000",
     _on_expr(HnswIndex, lambda t: cast(t.c.v, Vector(16000)), metric="l2"),
     "column cannot have more than 2000 dimensions for hnsw index (vector(16000))", IDE),
    ("hnsw-bit-64001", _hnsw("b64001", metric="hamming"),
     "more than 64000 dimensions for hnsw index", IDE),
    ("ivf-1-dim-cosine", _ivf("v1", metric="cosine"),
     "dimensions must be greater than one for this opclass (vector_cosine_ops", IDE),
    ("ivf-1-dim-inner-product", _ivf("v1", metric="inner_product"),
     "dimensions must be greater than one for this opclass (vector_ip_ops", IDE),
    ("hnsw-integer-column", _hnsw("id", metric="l2"),
     "the indexed expression must be vector, halfvec, sparsevec or bit", IDE),
    ("hnsw-text-column", _hnsw("txt", metric="l2"), "got Text()", IDE),
    ("hnsw-text-clause", Act(lambda: HnswIndex("ix", text("(v::vector(3))"), metric="l2")),
     "expected a column name, Column or SQL expression, got TextClause", IDE),
    ("hnsw-int-argument", Act(lambda: HnswIndex("ix", 5, metric="l2")),
     "expected a column name, Column or SQL expression, got int", IDE),
    ("hnsw-none-argument", Act(lambda: HnswIndex("ix", None, metric="l2")),
     "expected a column name, Column or SQL expression, got NoneType", IDE),
    ("hnsw-unique", _hnsw("vc", unique=True),
     'access method "hnsw" does not support unique indexes', IDE),
    ("ivf-include", _ivf("v", postgresql_include=["id"]),
     'access method "ivfflat" does not support included columns (INCLUDE)', IDE),
    ("hnsw-postgresql_using", _hnsw("vc", postgresql_using="ivfflat"),
     "postgresql_using is set by HnswIndex; do not pass it", IDE),
    ("hnsw-postgresql_ops", _hnsw("vc", postgresql_ops={"vc": "vector_l2_ops"}),
     "postgresql_ops is set by HnswIndex", IDE),
    ("ivf-postgresql_with", _ivf("v", postgresql_with={"lists": 4}),
     "postgresql_with is set by IvfflatIndex", IDE),
    ("hnsw-concurrently-str", _hnsw("vc", concurrently="yes"),
     "concurrently must be a bool, got 'yes'", IDE),
    ("hnsw-where-int", _hnsw("vc", where=5), "where= must be a SQL expression", IDE),
    ("hnsw-where-two-statements", _hnsw("vc", where="id = 1; DROP TABLE decl"),
     "where= must be one SQL expression", ValueError),
    ("hnsw-by-name-2001-dims",
     _by_name(lambda: HnswIndex("ix", "e", metric="l2"), Column("e", Vector(2001))),
     "column cannot have more than 2000 dimensions for hnsw index", IDE),
    ("hnsw-by-name-no-metric", _by_name(lambda: HnswIndex("ix", "e"), Column("e", Vector(3))),
     'data type vector has no default operator class for access method "hnsw"', IDE),
    ("ivf-by-name-sparsevec",
     _by_name(lambda: IvfflatIndex("ix", "e", metric="l2"), Column("e", SparseVec(9))),
     "IVFFlat does not support sparsevec", IDE),
    ("ivf-by-name-integer", _by_name(lambda: IvfflatIndex("ix", "e"), Column("e", Integer)),
     "the indexed expression must be vector, halfvec, sparsevec or bit", IDE),
    ("spec-plain-hnsw-without-opclass", _spec("v", postgresql_using="hnsw"),
     'data type vector has no default operator class for access method "hnsw"', IDE),
    ("spec-plain-multicolumn",
     _spec("v", "h", postgresql_using="hnsw", postgresql_ops={"v": "vector_l2_ops"}),
     'access method "hnsw" does not support multicolumn indexes (got 2 expressions)', IDE),
    ("spec-plain-ivfflat-default-on-cosine-column", _spec("vc", postgresql_using="ivfflat"),
     "the index names no operator class, so PostgreSQL builds vector_l2_ops", IDE),
    ("spec-plain-unknown-opclass",
     _spec("v", postgresql_using="hnsw", postgresql_ops={"v": "vector_nope_ops"}),
     "unknown pgvector operator class 'vector_nope_ops'", IDE),
    ("spec-plain-m-1",
     _spec("v", postgresql_using="hnsw", postgresql_ops={"v": "vector_l2_ops"},
           postgresql_with={"m": 1}),
     f'value 1 {_OOB} "m"', IDE),
    ("spec-plain-m-text",
     _spec("v", postgresql_using="hnsw", postgresql_ops={"v": "vector_l2_ops"},
           postgresql_with={"m": "abc"}),
     "m must be an int between 2 and 100, got 'abc'", IDE),
    ("spec-plain-unique",
     _spec("v", postgresql_using="hnsw", postgresql_ops={"v": "vector_l2_ops"}, unique=True),
     'access method "hnsw" does not support unique indexes', IDE),
    ("spec-plain-ivfflat-lists-0",
     _spec("v", postgresql_using="ivfflat", postgresql_with={"lists": 0}),
     f'value 0 {_OOB} "lists"', IDE),
    ("validate-unknown-method",
     Act(lambda: validate_vector_index("btree", _decl().c.v, metric="l2")),
     "unknown vector index method 'btree'; expected one of hnsw, ivfflat", IDE),
    ("validate-upper-case-method",
     Act(lambda: validate_vector_index("HNSW", _decl().c.v, metric="l2")),
     "unknown vector index method 'HNSW'", IDE),
    ("validate-column-name", Act(lambda: validate_vector_index("hnsw", "v", metric="l2")),
     "needs a typed Column or SQL expression to check, got 'v'", IDE),
    ("validate-two-expressions",
     Act(lambda: validate_vector_index("hnsw", _decl().c.v, metric="l2", n_expressions=2)),
     "does not support multicolumn indexes", IDE),
    ("validate-lists-on-hnsw",
     Act(lambda: validate_vector_index("hnsw", _decl().c.v, metric="l2", options={"lists": 5})),
     'unrecognized parameter "lists"; HNSW accepts m, ef_construction', IDE),
    ("validate-m-on-ivfflat",
     Act(lambda: validate_vector_index("ivfflat", _decl().c.v, options={"m": 16})),
     'unrecognized parameter "m"; IVFFlat accepts lists', IDE),
    ("validate-include",
     Act(lambda: validate_vector_index("hnsw", _decl().c.v, metric="l2", include=["id"])),
     "does not support included columns", IDE),
    ("validate-where-str",
     Act(lambda: validate_vector_index("hnsw", _decl().c.v, metric="l2", where="x")),
     "where= must be a SQL expression", IDE),
])
# fmt: on


# --- type construction and SparseVector (value-only) ------------------------------------------

# fmt: off
TYPE_CASES: list[Bad] = _rows([
    ("Vector(0)", Act(lambda: Vector(0)), "dimensions for type vector must be at least 1 (got 0)"),
    ("Vector(-1)", Act(lambda: Vector(-1)),
     "dimensions for type vector must be at least 1 (got -1)"),
    ("Vector(16001)", Act(lambda: Vector(16001)),
     "dimensions for type vector cannot exceed 16000 (got 16001)"),
    ("Vector(1.5)", Act(lambda: Vector(1.5)), "Vector: dim must be an int, got 1.5"),
    ("Vector('3')", Act(lambda: Vector("3")), "Vector: dim must be an int, got '3'"),
    ("Vector(True)", Act(lambda: Vector(True)), "Vector: dim must be an int, got True"),
    ("Vector([3])", Act(lambda: Vector([3])), "Vector: dim must be an int, got [3]"),
    ("Vector(metric=hamming)", Act(lambda: Vector(3, metric="hamming")),
     "Vector: unknown metric 'hamming' for vector; "
     "expected one of l2, inner_product, cosine, l1", ValueError),
    ("Vector(metric=euclidean)", Act(lambda: Vector(3, metric="euclidean")),
     "unknown metric 'euclidean'", ValueError),
    ("Vector(metric=COSINE)", Act(lambda: Vector(3, metric="COSINE")), "unknown metric 'COSINE'",
     ValueError),
    ("Vector(metric='')", Act(lambda: Vector(3, metric="")), "unknown metric ''", ValueError),
    ("HalfVec(0)", Act(lambda: HalfVec(0)),
     "dimensions for type halfvec must be at least 1 (got 0)"),
    ("HalfVec(16001)", Act(lambda: HalfVec(16001)),
     "dimensions for type halfvec cannot exceed 16000 (got 16001)"),
    ("HalfVec(metric=jaccard)", Act(lambda: HalfVec(3, metric="jaccard")),
     "HalfVec: unknown metric 'jaccard' for halfvec", ValueError),
    ("SparseVec(0)", Act(lambda: SparseVec(0)),
     "dimensions for type sparsevec must be at least 1 (got 0)"),
    ("SparseVec(1e9+1)", Act(lambda: SparseVec(1_000_000_001)),
     "dimensions for type sparsevec cannot exceed 1000000000 (got 1000000001)"),
    ("SparseVec(2.0)", Act(lambda: SparseVec(2.0)), "SparseVec: dim must be an int, got 2.0"),
    ("SparseVec(metric=hamming)", Act(lambda: SparseVec(5, metric="hamming")),
     "unknown metric 'hamming' for sparsevec", ValueError),
    ("Bit(0)", Act(lambda: Bit(0)), "dimensions for type bit must be at least 1 (got 0)"),
    ("Bit(83886081)", Act(lambda: Bit(83_886_081)),
     "dimensions for type bit cannot exceed 83886080 (got 83886081)"),
    ("Bit('8')", Act(lambda: Bit("8")), "Bit: dim must be an int, got '8'"),
    ("Bit(metric=cosine)", Act(lambda: Bit(8, metric="cosine")),
     "Bit: unknown metric 'cosine' for bit; expected one of hamming, jaccard", ValueError),
    ("Bit(metric=l2)", Act(lambda: Bit(8, metric="l2")), "unknown metric 'l2' for bit",
     ValueError),
])
# fmt: on

# fmt: off
SPARSE_VECTOR_CASES: list[Bad] = _rows([
    ("mapping-without-dim", Act(lambda: SparseVector({0: 1.0})),
     "a {index: value} mapping needs dim"),
    ("dim-0", Act(lambda: SparseVector({}, 0)), "sparsevec must have at least 1 dimension"),
    ("dim-negative", Act(lambda: SparseVector({}, -5)),
     "sparsevec must have at least 1 dimension"),
    ("dim-over-1e9", Act(lambda: SparseVector({}, 10**9 + 1)),
     "sparsevec cannot have more than 1000000000 dimensions (got 1000000001)"),
    ("dim-float", Act(lambda: SparseVector({}, 5.0)),
     "sparsevec: dim must be an integer, got 5.0"),
    ("dim-bool", Act(lambda: SparseVector({}, True)),
     "sparsevec: dim must be an integer, got True"),
    ("dim-str", Act(lambda: SparseVector.from_arrays([0], [1], "5")),
     "dim must be an integer, got '5'"),
    ("dim-none", Act(lambda: SparseVector.from_arrays([0], [1], None)),
     "dim must be an integer, got None"),
    ("duplicate-indices", Act(lambda: SparseVector.from_arrays([0, 0], [1, 2], 5)),
     "sparsevec indices must not contain duplicates (index 0)"),
    ("unsorted-duplicate-indices", Act(lambda: SparseVector.from_arrays([3, 1, 3], [1, 2, 3], 5)),
     "sparsevec indices must not contain duplicates (index 3)"),
    ("unsorted-out-of-range", Act(lambda: SparseVector.from_arrays([4, 9, 1], [1, 2, 3], 5)),
     "sparsevec index out of bounds: 9 is not in [0, 5)"),
    ("negative-index", Act(lambda: SparseVector.from_arrays([2, -1], [1, 2], 5)),
     "sparsevec index out of bounds: -1 is not in [0, 5)"),
    ("more-elements-than-dimensions",
     Act(lambda: SparseVector.from_arrays(list(range(6)), [1] * 6, 5)),
     "sparsevec cannot have more elements than dimensions (6 > 5)"),
    ("nnz-16001", Act(lambda: SparseVector.from_arrays(np.arange(16001), np.ones(16001), 100_000)),
     "sparsevec cannot have more than 16000 non-zero elements (got 16001)"),
    ("2d-arrays", Act(lambda: SparseVector.from_arrays([[0]], [[1]], 5)),
     "indices and values must be 1-D of one length, got shapes (1, 1) and (1, 1)"),
    ("lengths-differ", Act(lambda: SparseVector.from_arrays([0, 1], [1], 5)),
     "indices and values must be 1-D of one length, got shapes (2,) and (1,)"),
    ("float-indices", Act(lambda: SparseVector.from_arrays([0.5], [1], 5)),
     "indices must be integers, got dtype float64"),
    ("str-values", Act(lambda: SparseVector.from_arrays([0], ["x"], 5)),
     "expected numeric values, got dtype <U1"),
    ("nan-value", Act(lambda: SparseVector.from_arrays([3], [NAN], 5)),
     "NaN not allowed in sparsevec (at index 3)"),
    ("none", Act(lambda: SparseVector(None, 5)),
     "a scipy.sparse row or a SparseVector, got NoneType"),
    ("other-dim", Act(lambda: SparseVector(SparseVector({0: 1.0}, 4), 5)),
     "sparsevec: expected 5 dimensions, not 4"),
])
# fmt: on


# --- plain psycopg parameters (value-only construction) ---------------------------------------

# fmt: off
PARAM_CASES: list[Bad] = _rows([
    ("DenseParam-nan", Act(lambda: DenseParam([1, NAN])), "NaN not allowed in vector (element 1)"),
    ("DenseParam-inf", Act(lambda: DenseParam(np.array([INF]))),
     "infinite value not allowed in vector (element 0)"),
    ("DenseParam-over-float4", Act(lambda: DenseParam([1e39])),
     '"1e+39" is out of range for type vector'),
    ("DenseParam-empty", Act(lambda: DenseParam([])), "vector must have at least 1 dimension"),
    ("DenseParam-16001", Act(lambda: DenseParam(np.ones(16001))),
     "vector cannot have more than 16000 dimensions (got 16001)"),
    ("DenseParam-2d", Act(lambda: DenseParam(np.ones((2, 2)))),
     "expected a 1-D value, got shape (2, 2)"),
    ("DenseParam-0d", Act(lambda: DenseParam(np.array(3.0))),
     "expected a 1-D value, got shape ()"),
    ("DenseParam-strings", Act(lambda: DenseParam(["a"])), "got non-numeric elements (dtype <U1)"),
    ("DenseParam-text", Act(lambda: DenseParam("[1,,2]")), 'invalid input syntax: "[1,,2]"'),
    ("DenseParam-dict", Act(lambda: DenseParam({0: 1.0})), "array of numbers, got dict"),
    ("DenseParam-bytes", Act(lambda: DenseParam(b"\x00")), "array of numbers, got bytes"),
    ("DenseParam-none", Act(lambda: DenseParam(None)), "array of numbers, got NoneType"),
    ("DenseParam-complex", Act(lambda: DenseParam([1j])), "dtype complex128"),
    ("HalfVecParam-65520", Act(lambda: HalfVecParam([65520])),
     '"65520" is out of range for type halfvec (element 0)'),
    ("HalfVecParam-nan", Act(lambda: HalfVecParam(np.array([0, NAN], np.float16))),
     "NaN not allowed in halfvec (element 1)"),
    ("HalfVecParam-16001", Act(lambda: HalfVecParam(np.ones(16001))),
     "halfvec cannot have more than 16000 dimensions"),
    ("HalfVecParam-int-overflow", Act(lambda: HalfVecParam(np.array([70000], np.int64))),
     '"70000" is out of range for type halfvec'),
    ("HalfVecParam-empty", Act(lambda: HalfVecParam(np.zeros(0, np.float16))),
     "halfvec must have at least 1 dimension"),
])
# fmt: on

#: a bare ndarray parameter of a plain psycopg connection after register_adapters
# fmt: off
PLAIN_PSYCOPG_CASES: list[Bad] = _rows([
    ("nan-float32", np.array([1, NAN], np.float32), "NaN not allowed in vector (element 1)"),
    ("nan-float64", np.array([NAN, 1]), "NaN not allowed in vector (element 0)"),
    ("inf-float64", np.array([1, INF]), "infinite value not allowed in vector (element 1)"),
    ("over-float4", np.array([1e39, 1]), '"1e+39" is out of range for type vector (element 0)'),
    ("empty", np.zeros(0, np.float32), "vector must have at least 1 dimension"),
    ("16001", np.ones(16001, np.float32),
     "vector cannot have more than 16000 dimensions (got 16001)"),
    ("2d", np.ones((2, 2), np.float32), "got shape (2, 2)"),
    ("0d", np.array(1.0, np.float32), "got shape ()"),
    ("complex", np.ones(2, complex), "dtype complex128"),
    ("strings", np.array(["1", "2"]), "dtype <U1"),
    ("objects", np.array([1, None], dtype=object), "dtype object"),
])
# fmt: on

#: a bare ndarray in exec_driver_sql on a vecalchemy psycopg connection: other than 1-D
#: float32/float16 is refused by vecalchemy, their values are checked by the server
_BARE_MODES = ("plugin", "dialect")
# fmt: off
DRIVER_SQL_CASES: list[Bad] = _rows([
    ("float64", ("vu", np.array([1.0, 2.0])), "got dtype float64, shape (2,)"),
    ("int64", ("vu", np.array([1, 2])), "got dtype int64, shape (2,)"),
    ("2d-float32", ("vu", np.ones((2, 2), np.float32)), "got dtype float32, shape (2, 2)"),
    ("0d-float32", ("vu", np.array(1.0, np.float32)), "got dtype float32, shape ()"),
    ("complex64", ("vu", np.ones(2, np.complex64)), "got dtype complex64"),
    ("object", ("vu", np.array([1.0, None], dtype=object)), "got dtype object"),
    ("bool", ("vu", np.array([True, False])), "got dtype bool"),
    ("float32-nan", ("vu", np.array([1, NAN], np.float32)), "NaN not allowed in vector", SERVER),
    ("float32-inf", ("vu", np.array([INF, 1], np.float32)), "infinite value not allowed in vector",
     SERVER),
    ("float32-empty", ("vu", np.zeros(0, np.float32)), "vector must have at least 1 dimension",
     SERVER),
    ("float32-wrong-dim", ("v", np.ones(2, np.float32)), "expected 3 dimensions, not 2", SERVER),
    ("float16-nan", ("hu", np.array([NAN, 1], np.float16)), "NaN not allowed in halfvec", SERVER),
    ("float16-16001", ("hu", np.ones(16001, np.float16)),
     "halfvec cannot have more than 16000 dimensions", SERVER),
])
# fmt: on


# --- other helpers (value-only) ---------------------------------------------------------------

_SEL = select(ITEMS.c.id)
# fmt: off
HELPER_CASES: list[Bad] = _rows([
    ("opclass_for-hamming-on-vector", Act(lambda: opclass_for("vector", "hamming")),
     "pgvector has no 'hamming' metric for type vector", ValueError),
    ("opclass_for-unknown-metric", Act(lambda: opclass_for("vector", "dot")),
     "unknown metric 'dot'", ValueError),
    ("opclass_for-sparsevec-ivfflat", Act(lambda: opclass_for("sparsevec", "l2", "ivfflat")),
     "operator class sparsevec_l2_ops does not exist for access method 'ivfflat'", ValueError),
    ("index_build_settings-rows-0", Act(lambda: index_build_settings(0, 768)),
     "rows must be a positive int, got 0", ValueError),
    ("index_build_settings-dim-0", Act(lambda: index_build_settings(100, 0)),
     "dim must be a positive int, got 0", ValueError),
    ("index_build_settings-rows-float", Act(lambda: index_build_settings(1e6, 768)),
     "rows must be a positive int, got 1000000.0", ValueError),
    ("index_build_settings-method", Act(lambda: index_build_settings(100, 8, method="btree")),
     "method must be one of hnsw, ivfflat, got 'btree'", ValueError),
    ("index_build_settings-sparsevec",
     Act(lambda: index_build_settings(100, 8, sql_type="sparsevec")), "sql_type must be one of",
     ValueError),
    ("index_build_settings-m-0", Act(lambda: index_build_settings(100, 8, m=0)),
     "m must be a positive int, got 0", ValueError),
    ("iterative_search-k-0",
     Act(lambda: iterative_search(_SEL, ITEMS.c.v.l2_distance([1, 2, 3]), 0)),
     "k must be a positive int, got 0", ValueError),
    ("iterative_search-k-bool",
     Act(lambda: iterative_search(_SEL, ITEMS.c.v.l2_distance([1, 2, 3]), True)),
     "k must be a positive int, got True", ValueError),
    ("iterative_search-k-str",
     Act(lambda: iterative_search(_SEL, ITEMS.c.v.l2_distance([1, 2, 3]), "5")),
     "k must be a positive int, got '5'", ValueError),
    ("binary_quantized_search-k-0",
     Act(lambda: binary_quantized_search(_SEL, ITEMS.c.v, [1, 2, 3], 0, metric="l2")),
     "k must be a positive int, got 0", ValueError),
    ("binary_quantized_search-candidates-0",
     Act(lambda: binary_quantized_search(_SEL, ITEMS.c.v, [1, 2, 3], 5, metric="l2",
                                         candidates=0)),
     "candidates must be a positive int, got 0", ValueError),
    ("binary_quantized_search-no-metric",
     Act(lambda: binary_quantized_search(_SEL, ITEMS.c.v, [1, 2, 3], 5)),
     "give metric= for the exact re-rank (Vector(3) declares none)", ValueError),
    ("binary_quantized_search-unknown-metric",
     Act(lambda: binary_quantized_search(_SEL, ITEMS.c.v, [1, 2, 3], 5, metric="dot")),
     "unknown metric 'dot'", ValueError),
    ("binary_quantized_search-bq-metric-l2",
     Act(lambda: binary_quantized_search(_SEL, ITEMS.c.v, [1, 2, 3], 5, metric="l2",
                                         bq_metric="l2")),
     "bq_metric must be a bit metric (hamming, jaccard), got 'l2'", ValueError),
    ("binary_quantized_search-sparse-column",
     Act(lambda: binary_quantized_search(_SEL, ITEMS.c.s, {0: 1.0}, 5, metric="l2")),
     "column must be a Vector/HalfVec column, got SparseVec(5)", TypeError),
    ("binary_quantized_search-no-dimension",
     Act(lambda: binary_quantized_search(_SEL, ITEMS.c.vu, [1, 2], 5, metric="l2")),
     "column must have a dimension", TypeError),
    ("binary_quantized_search-bit-metric-rerank",
     Act(lambda: binary_quantized_search(_SEL, ITEMS.c.v, [1, 2, 3], 5, metric="hamming")),
     "hamming_distance() (<~>) is not defined for vector", TypeError),
    ("measure_recall-k-0", Act(lambda: measure_recall(None, _SEL, 0)),
     "k must be a positive int, got 0", ValueError),
    ("measure_recall-k-float", Act(lambda: measure_recall(None, _SEL, 2.5)),
     "k must be a positive int, got 2.5", ValueError),
])
# fmt: on


# --- index builds (build_vector_index, Index.create/drop) -------------------------------------

_NO_OPCLASS = "has no default operator class for access method"
_PLUGIN_MODES = ("plugin", "dialect", "asyncpg", "psycopg2", "pg8000")
_PLAIN_MODES = ("text", "asyncpg-text")


def _build(bind: Any, index: Index) -> None:
    build_vector_index(bind, index, progress=False)


def _ix(ctx: Ctx) -> Table:
    assert ctx.ix_table is not None
    return ctx.ix_table


def _multicolumn(ctx: Ctx, name: str) -> Index:
    t = _ix(ctx)
    return Index(
        name, t.c.v, t.c.id, postgresql_using="hnsw", postgresql_ops={"v": "vector_l2_ops"}
    )


def _run_coroutine(coro: Any) -> Any:
    """Run a coroutine that raises before it awaits anything (no event loop needed)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    finally:
        coro.close()
    raise AssertionError("the coroutine awaited something")


BUILD_CASES: list[Bad] = [
    Bad(
        "concurrently-in-transaction",
        Act(
            lambda bind, ctx: _build(
                bind, HnswIndex("ix_cc", _ix(ctx).c.v, metric="l2", concurrently=True)
            )
        ),
        "CREATE/DROP INDEX CONCURRENTLY cannot run inside a transaction block",
        IDE,
    ),
    Bad(
        "create-concurrently-in-transaction",
        Act(lambda bind, ctx: HnswIndex("ix_cc2", _ix(ctx).c.vc, concurrently=True).create(bind)),
        "cannot run inside a transaction block",
        IDE,
    ),
    Bad(
        "drop-concurrently-in-transaction",
        Act(lambda bind, ctx: HnswIndex("ix_cc3", _ix(ctx).c.vc, concurrently=True).drop(bind)),
        "cannot run inside a transaction block",
        IDE,
    ),
    Bad(
        "plain-hnsw-without-opclass",
        Act(lambda bind, ctx: _build(bind, Index("ix_p", _ix(ctx).c.v, postgresql_using="hnsw"))),
        _NO_OPCLASS,
        IDE,
        modes=_PLUGIN_MODES,
    ),
    Bad(
        "plain-hnsw-without-opclass-server",
        Act(lambda bind, ctx: _build(bind, Index("ix_p2", _ix(ctx).c.v, postgresql_using="hnsw"))),
        _NO_OPCLASS,
        SERVER,
        modes=_PLAIN_MODES,
    ),
    Bad(
        "plain-multicolumn",
        Act(lambda bind, ctx: _build(bind, _multicolumn(ctx, "ix_m"))),
        'access method "hnsw" does not support multicolumn indexes',
        IDE,
        modes=_PLUGIN_MODES,
    ),
    Bad(
        "plain-multicolumn-server",
        Act(lambda bind, ctx: _build(bind, _multicolumn(ctx, "ix_m2"))),
        'access method "hnsw" does not support multicolumn indexes',
        SERVER,
        modes=_PLAIN_MODES,
    ),
    Bad(
        "plain-ivfflat-default-on-cosine-column",
        Act(
            lambda bind, ctx: _build(
                bind, Index("ix_i", _ix(ctx).c.vc, postgresql_using="ivfflat")
            )
        ),
        "the index names no operator class, so PostgreSQL builds vector_l2_ops",
        IDE,
        modes=_PLUGIN_MODES,
    ),
    Bad(
        "hnsw-sparse-over-1000-non-zeros",
        Act(lambda bind, ctx: _build(bind, HnswIndex("ix_s", _ix(ctx).c.s, metric="l2"))),
        "sparsevec cannot have more than 1000 non-zero elements for hnsw index",
        SERVER,
    ),
    Bad(
        "hnsw-sparse-over-1000-non-zeros-concurrently",
        Act(
            lambda bind, ctx: _build(
                ctx.engine, HnswIndex("ix_sc", _ix(ctx).c.s, metric="l2", concurrently=True)
            )
        ),
        "sparsevec cannot have more than 1000 non-zero elements for hnsw index",
        SERVER,
    ),
    Bad(
        "async-build-given-a-sync-engine",
        Act(
            lambda bind, ctx: _run_coroutine(
                build_vector_index_async(ctx.engine, HnswIndex("ix_a", _ix(ctx).c.vc))  # type: ignore[arg-type]
            )
        ),
        "expected an AsyncEngine or AsyncConnection, got Engine",
        TypeError,
    ),
]


# --- Alembic operations -----------------------------------------------------------------------

MIG_TABLE = (
    "CREATE TABLE mig (id int, e vector(3), e1 vector(1), e2001 vector(2001), sp sparsevec(5),"
    " vb bit varying, bt bit(8), h halfvec(3))"
)


def _op(bind: Any) -> Operations:
    return Operations(MigrationContext.configure(bind))


def _online(**kw: Any) -> Act:
    args = {"index_name": "ix_bad", "table_name": "mig", "column_or_expr": "e", **kw}
    return Act(lambda bind, ctx: _op(bind).create_vector_index(**args))


# fmt: off
ALEMBIC_ONLINE: list[Bad] = _rows([
    ("metric-hamming-on-vector", _online(metric="hamming"),
     "operator class bit_hamming_ops is for type bit, but the indexed expression is vector", IDE),
    ("no-such-column", _online(column_or_expr="nope", metric="l2"),
     "no column 'nope' in table mig", IDE),
    ("no-such-table", _online(table_name="nope_table", metric="l2"),
     "no column 'e' in table nope_table", IDE),
    ("bit-varying-column", _online(column_or_expr="vb", metric="hamming"),
     "is bit varying: type not supported for hnsw index", IDE),
    ("integer-column", _online(column_or_expr="id", metric="l2"), "is int4; a vector index needs",
     IDE),
    ("vector-2001", _online(column_or_expr="e2001", metric="l2"),
     "column cannot have more than 2000 dimensions for hnsw index", IDE),
    ("ivfflat-vector-2001", _online(column_or_expr="e2001", method="ivfflat"),
     "column cannot have more than 2000 dimensions for ivfflat index", IDE),
    ("ivfflat-sparsevec", _online(column_or_expr="sp", method="ivfflat", metric="l2"),
     "IVFFlat does not support sparsevec", IDE),
    ("halfvec-opclass-on-vector", _online(opclass="halfvec_l2_ops"),
     "operator class halfvec_l2_ops is for type halfvec, but the indexed expression is vector",
     IDE),
    ("vector-opclass-on-bit", _online(column_or_expr="bt", opclass="vector_l2_ops"),
     "is for type vector, but the indexed expression is bit", IDE),
    ("cosine-on-bit", _online(column_or_expr="bt", metric="cosine"),
     "type bit has no 'cosine' metric", IDE),
    ("ivfflat-1-dim-cosine", _online(column_or_expr="e1", method="ivfflat", metric="cosine"),
     "dimensions must be greater than one for this opclass", IDE),
    ("ivfflat-bit-jaccard", _online(column_or_expr="bt", method="ivfflat", metric="jaccard"),
     'operator class "bit_jaccard_ops" does not exist for access method "ivfflat"', IDE),
    ("ivfflat-halfvec-l1", _online(column_or_expr="h", method="ivfflat", metric="l1"),
     'does not exist for access method "ivfflat"', IDE),
    ("m-1", _online(metric="l2", m=1), 'value 1 out of bounds for option "m"', IDE),
    ("raw-sql-metric-without-opclass",
     _online(column_or_expr=text("(e::halfvec(3))"), metric="cosine"),
     "cannot tell the type of '(e::halfvec(3))' to choose the operator class "
     "for metric 'cosine'", IDE),
    # raw SQL leaves the dimension rules to the server, as documented
    ("raw-sql-halfvec-5000",
     _online(column_or_expr=text("((e::halfvec(5000)))"), opclass="halfvec_l2_ops"),
     "column cannot have more than 4000 dimensions for hnsw index", SERVER),
    ("raw-sql-binary-quantize-without-cast",
     _online(column_or_expr=text("(binary_quantize(e))"), opclass="bit_hamming_ops"),
     "column does not have dimensions", SERVER),
    ("drop-missing-index", Act(lambda bind, ctx: _op(bind).drop_vector_index("ix_nope", "mig")),
     'index "ix_nope" does not exist', SERVER),
])
# fmt: on


class Offline:
    """``op`` in offline mode (``alembic upgrade --sql``) and the SQL it printed."""

    def __init__(self) -> None:
        self.buffer = io.StringIO()
        ctx = MigrationContext.configure(
            dialect_name="postgresql",
            opts={"as_sql": True, "output_buffer": self.buffer, "literal_binds": True},
        )
        self.op = Operations(ctx)

    def printed(self) -> str | None:
        """What was printed since the last call (then forgotten), if anything."""
        out = self.buffer.getvalue()
        self.buffer.seek(0)
        self.buffer.truncate()
        return f"SQL was printed: {out!r}" if out else None


OFFLINE = Offline()


def _offline(**kw: Any) -> Act:
    args = {"index_name": "ix", "table_name": "items", "column_or_expr": "e", **kw}
    return Act(lambda: OFFLINE.op.create_vector_index(**args))


_L2 = {"opclass": "vector_l2_ops"}
# fmt: off
ALEMBIC_OFFLINE: list[Bad] = _rows([
    ("method-btree", _offline(method="btree", **_L2), "unknown vector index method 'btree'", IDE),
    ("m-1", _offline(m=1, **_L2), 'value 1 out of bounds for option "m"', IDE),
    ("ef-2000", _offline(ef_construction=2000, **_L2),
     'value 2000 out of bounds for option "ef_construction"', IDE),
    ("ef-below-2m", _offline(m=16, ef_construction=20, **_L2),
     "ef_construction must be greater than or equal to 2 * m", IDE),
    ("lists-0", _offline(method="ivfflat", lists=0, **_L2),
     'value 0 out of bounds for option "lists"', IDE),
    ("lists-on-hnsw", _offline(metric="l2", lists=10), 'unrecognized parameter "lists"', IDE),
    ("m-on-ivfflat", _offline(method="ivfflat", m=16), 'unrecognized parameter "m"', IDE),
    ("m-str", _offline(m="8", **_L2), "m must be an int between 2 and 100, got '8'", IDE),
    ("opclass-unknown", _offline(opclass="vector_nope_ops"),
     "unknown pgvector operator class 'vector_nope_ops'", IDE),
    ("opclass-against-metric", _offline(opclass="halfvec_l2_ops", metric="cosine"),
     "serves the 'l2' metric, not 'cosine'", IDE),
    ("ivfflat-l1", _offline(method="ivfflat", metric="l1"),
     'operator class "vector_l1_ops" does not exist for access method "ivfflat"', IDE),
    ("ivfflat-l1-opclass", _offline(method="ivfflat", opclass="halfvec_l1_ops"),
     'operator class "halfvec_l1_ops" does not exist', IDE),
    ("ivfflat-jaccard", _offline(method="ivfflat", metric="jaccard"),
     'operator class "bit_jaccard_ops" does not exist', IDE),
    ("metric-unknown", _offline(metric="nope"), "type vector has no 'nope' metric", IDE),
    ("hnsw-without-metric-or-opclass", _offline(),
     "HNSW has no default operator class; give opclass=", IDE),
    ("metric-for-a-name-offline", _offline(metric="cosine"),
     "cannot tell the type of 'e' to choose the operator class for metric 'cosine' "
     "in offline mode", IDE),
    ("index-name-empty", _offline(index_name="", **_L2), "index name is empty", ValueError),
    ("index-name-none", _offline(index_name=None, **_L2), "index name must be a", ValueError),
    ("index-name-int", _offline(index_name=5, **_L2), "index name must be a", ValueError),
    ("table-name-empty", _offline(table_name="", **_L2), "table name is empty", ValueError),
    ("expression-int", _offline(column_or_expr=5, **_L2),
     "column_or_expr must be a column name, sa.text(...) or a SQL expression, got int", IDE),
    ("expression-none", _offline(column_or_expr=None, **_L2), "or a SQL expression, got NoneType",
     IDE),
    ("expression-list", _offline(column_or_expr=["e"], **_L2), "or a SQL expression, got list",
     IDE),
    ("where-int", _offline(where=5, **_L2), "where= must be SQL text or a SQL expression, got int",
     IDE),
    ("typed-vector-2001", _offline(column_or_expr=sa.column("e", Vector(2001)), metric="l2"),
     "column cannot have more than 2000 dimensions for hnsw index", IDE),
    ("typed-no-dimensions", _offline(column_or_expr=sa.column("e", Vector()), metric="l2"),
     "column does not have dimensions", IDE),
    ("typed-halfvec-with-vector-opclass",
     _offline(column_or_expr=sa.column("e", HalfVec(3)), opclass="vector_l2_ops"),
     "operator class vector_l2_ops is for type vector, but the indexed expression is halfvec",
     IDE),
    ("typed-sparsevec-ivfflat",
     _offline(column_or_expr=sa.column("e", SparseVec(5)), method="ivfflat", metric="l2"),
     "IVFFlat does not support sparsevec", IDE),
    ("typed-integer-expression", _offline(column_or_expr=sa.column("e", Integer), metric="l2"),
     "cannot tell the type of", IDE),
    ("drop-index-name-empty", Act(lambda: OFFLINE.op.drop_vector_index("")), "index name is empty",
     ValueError),
    ("drop-index-name-none", Act(lambda: OFFLINE.op.drop_vector_index(None)),
     "index name must be a", ValueError),
    ("update-to-latest", Act(lambda: OFFLINE.op.alter_vector_extension_update("latest")),
     "extension version must be dotted digits such as '0.8.1', got 'latest'", ValueError),
    ("update-injection",
     Act(lambda: OFFLINE.op.alter_vector_extension_update("0.8.1'; DROP TABLE x; --")),
     "extension version must be dotted digits", ValueError),
    ("update-float", Act(lambda: OFFLINE.op.alter_vector_extension_update(0.8)),
     "extension version must be dotted digits such as '0.8.1', got 0.8", ValueError),
    ("drop-not-reversible", Act(lambda: DropVectorIndexOp("ix").reverse()),
     "operation drop_vector_index('ix') is not reversible", ValueError),
    ("extension-schema-int", Act(lambda: OFFLINE.op.create_vector_extension(schema=5)),
     "schema name must be a", ValueError),
])
# fmt: on


# --- the harness ------------------------------------------------------------------------------


#: the schema's tables (partitions included) and their columns' storage modes
_RELATIONS_SQL = (
    "(SELECT coalesce(string_agg(relname, ',' ORDER BY relname), '') FROM pg_class "
    "WHERE relnamespace = current_schema()::regnamespace AND relkind IN ('r', 'p'))"
)
_STORAGE_SQL = (
    "(SELECT coalesce(string_agg(c.relname || '.' || a.attname || ':' || a.attstorage::text, ',' "
    "ORDER BY c.relname, a.attnum), '') FROM pg_attribute a JOIN pg_class c "
    "ON c.oid = a.attrelid WHERE c.relnamespace = current_schema()::regnamespace "
    "AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped)"
)


@contextmanager
def _statements_sent(engine: Engine, case: Bad) -> Iterator[list[str]]:
    """The statements sent through ``engine`` meanwhile, for a ``silent`` case."""
    sent: list[str] = []
    if not case.silent:
        yield sent
        return

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _sent_problem(sent: list[str]) -> str | None:
    if not sent:
        return None
    return f"sent {len(sent)} statement(s) before refusing: {_short(Exception(sent[0]))!r}"


@dataclass
class Ctx:
    """One driver mode: its engine (and, in async tests, AsyncEngine), the plain psycopg
    connection that reads what was written, and the tables (and seed) whose rows and the
    schema's indexes are compared with their baseline around every case."""

    engine: Any
    raw: psycopg.Connection
    mode: str
    tables: tuple[str, ...] = ()
    seed: tuple[str, ...] = ()
    aengine: Any = None
    ix_table: Table | None = None
    baseline: tuple[Any, ...] = ()

    def prepare(self, tables: tuple[str, ...], seed: tuple[str, ...] = ()) -> None:
        """Seed the (created) ``tables`` and take the baseline."""
        self.tables, self.seed = tables, seed
        for sql in seed:
            self.raw.execute(sql)
        self.baseline = self.state()

    def state(self) -> tuple[Any, ...]:
        parts = [
            f"(SELECT count(*) || ' rows, md5 ' || md5(coalesce(string_agg(x::text, '|' "
            f"ORDER BY x::text), '')) FROM {t} x)"
            for t in self.tables
        ]
        parts.append(_RELATIONS_SQL)
        parts.append(_STORAGE_SQL)
        parts.append(
            "(SELECT coalesce(string_agg(indexname, ',' ORDER BY indexname), '') "
            "FROM pg_indexes WHERE schemaname = current_schema())"
        )
        row = self.raw.execute("SELECT " + ", ".join(parts)).fetchone()
        assert row is not None
        return tuple(row)

    def written(self, label: str) -> str | None:
        """What changed since the baseline (then undone), or ``None``."""
        now = self.state()
        if now == self.baseline:
            return None
        names = (*self.tables, "relations", "storage modes", "indexes")
        changes = [
            f"{name} {before!r} -> {after!r}"
            for name, before, after in zip(names, self.baseline, now, strict=True)
            if before != after
        ]
        new_indexes = set(now[-1].split(",")) - set(self.baseline[-1].split(",")) - {""}
        for name in new_indexes:
            self.raw.execute(f'DROP INDEX IF EXISTS "{name}"')
        new_relations = set(now[-3].split(",")) - set(self.baseline[-3].split(",")) - {""}
        for name in new_relations:
            self.raw.execute(f'DROP TABLE IF EXISTS "{name}" CASCADE')
        self.raw.execute(f"TRUNCATE {', '.join(self.tables)}")
        for sql in self.seed:
            self.raw.execute(sql)
        return f"{label}: wrote {'; '.join(changes)}"


def _label(entry: str, ctx: Ctx, case: Bad) -> str:
    return f"{entry} [{ctx.mode}] {case.id}"


def run_cases(
    ctx: Ctx,
    entry: str,
    cases: list[Bad],
    attempt: Callable[[Any, Bad], Any],
    followup: Callable[[Any], Any],
    *,
    open_bind: Callable[[], Any] | None = None,
) -> list[str]:
    """Every case through ``attempt`` (an ``Act`` case: its own call) on one bind, a
    Connection or Session: judged; the bind rolled back, then used for ``followup`` (a
    good call of the same kind, rolled back); the database compared with its baseline.
    Last, a bind from the pool must run ``followup`` and no connection may be left checked
    out. Returns the problems found."""
    opener = open_bind or ctx.engine.connect
    problems: list[str] = []
    bind = opener()
    try:
        for case in cases:
            if not _applies(case, ctx.mode):
                continue
            label = _label(entry, ctx, case)
            error: BaseException | None = None
            with _statements_sent(ctx.engine, case) as sent:
                try:
                    if isinstance(case.value, Act):
                        case.value.fn(bind, ctx)
                    else:
                        attempt(bind, case)
                except Exception as e:
                    error = e
            try:
                if error is None and bind.in_transaction():
                    bind.commit()  # an accepted bad input becomes visible
            except Exception as e:
                error = e
            for problem in (judge(case, error), _sent_problem(sent) if error else None):
                if problem is not None:
                    problems.append(f"{label}: {problem}")
            try:
                if bind.in_transaction():
                    bind.rollback()
                followup(bind)
                if bind.in_transaction():
                    bind.rollback()
            except Exception as e:
                problems.append(f"{label}: unusable afterwards: {type(e).__name__}: {_short(e)}")
                bind.close()
                bind = opener()
            written = ctx.written(label)
            if written is not None:
                problems.append(written)
    finally:
        bind.close()
    try:
        with opener() as again:
            followup(again)
            if again.in_transaction():
                again.rollback()
    except Exception as e:
        problems.append(f"{entry} [{ctx.mode}]: the pool gave an unusable connection: {e!r}")
    if ctx.engine.pool.checkedout():
        problems.append(
            f"{entry} [{ctx.mode}]: {ctx.engine.pool.checkedout()} connection(s) leaked"
        )
    return problems


def run_values(
    entry: str, cases: list[Bad], *, after: Callable[[], str | None] = lambda: None
) -> list[str]:
    """Value-only cases (nothing is sent): each ``Act`` called with no arguments, then
    ``after()`` (e.g. "was SQL printed?")."""
    problems = []
    for case in cases:
        error: BaseException | None = None
        try:
            case.value.fn()
        except Exception as e:
            error = e
        for problem in (judge(case, error), after()):
            if problem is not None:
                problems.append(f"{entry} {case.id}: {problem}")
    return problems


def report(problems: list[str]) -> None:
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems)


# --- one runner per database entry point --------------------------------------------------------


def _items(ctx: Ctx, *, seed: tuple[str, ...] = ()) -> None:
    MD.create_all(ctx.engine, tables=[ITEMS])
    ctx.prepare(("items",), seed)


def core_insert(ctx: Ctx, cases: list[Bad]) -> list[str]:
    _items(ctx)
    return run_cases(
        ctx,
        "core insert",
        cases,
        lambda bind, case: bind.execute(insert(ITEMS), {case.col: case.make()}),
        lambda bind: bind.execute(insert(ITEMS), dict(GOOD)),
    )


def core_executemany(ctx: Ctx, cases: list[Bad]) -> list[str]:
    """A good row, the bad one, a good row, on AUTOCOMMIT in pages of one row: a page sent
    before the bad row was validated would stay."""
    _items(ctx)

    def attempt(bind: Any, case: Bad) -> None:
        bind.execute(insert(ITEMS), [dict(GOOD), {**GOOD, case.col: case.make()}, dict(GOOD)])

    def followup(bind: Any) -> None:
        bind.execute(insert(ITEMS), [{**GOOD, "id": 90001}, {**GOOD, "id": 90002}])
        bind.execute(ITEMS.delete().where(ITEMS.c.id.in_([90001, 90002])))

    return run_cases(
        ctx,
        "core executemany",
        cases,
        attempt,
        followup,
        open_bind=lambda: ctx.engine.connect().execution_options(
            isolation_level="AUTOCOMMIT", insertmanyvalues_page_size=1
        ),
    )


def orm_flush(ctx: Ctx, cases: list[Bad]) -> list[str]:
    _items(ctx)

    def attempt(session: Session, case: Bad) -> None:
        session.add(Item(**GOOD))
        session.add(Item(**{case.col: case.make()}))
        session.flush()

    def followup(session: Session) -> None:
        session.add(Item(**GOOD))
        session.flush()

    return run_cases(
        ctx, "orm add/flush", cases, attempt, followup, open_bind=lambda: Session(ctx.engine)
    )


def orm_bulk(ctx: Ctx, cases: list[Bad]) -> list[str]:
    _items(ctx)

    def attempt(session: Session, case: Bad) -> None:
        session.execute(insert(Item), [dict(GOOD), {**GOOD, case.col: case.make()}])

    return run_cases(
        ctx,
        "orm bulk insert",
        cases,
        attempt,
        lambda session: session.execute(insert(Item), [dict(GOOD), dict(GOOD)]),
        open_bind=lambda: Session(ctx.engine),
    )


def core_update(ctx: Ctx, cases: list[Bad]) -> list[str]:
    _items(ctx, seed=(UPDATE_SEED,))
    row = ITEMS.c.id == 1
    return run_cases(
        ctx,
        "core update",
        cases,
        lambda bind, case: bind.execute(update(ITEMS).where(row).values({case.col: case.make()})),
        lambda bind: bind.execute(update(ITEMS).where(row).values(GOOD)),
    )


def comparators(ctx: Ctx, cases: list[Bad]) -> list[str]:
    _items(ctx)

    def attempt(bind: Any, case: Bad) -> None:
        method, value = case.value
        value = value.make() if isinstance(value, Fresh) else value
        distance = getattr(ITEMS.c[case.col], method)(value)
        bind.execute(select(ITEMS.c.id).order_by(distance).limit(1)).all()

    def followup(bind: Any) -> None:
        bind.execute(select(ITEMS.c.id).order_by(ITEMS.c.v.cosine_distance(GOOD["v"])).limit(1))

    return run_cases(ctx, "comparators", cases, attempt, followup)


def functions(ctx: Ctx, cases: list[Bad]) -> list[str]:
    _items(ctx)

    def followup(bind: Any) -> None:
        assert bind.execute(select(vector_norm([3, 4]))).scalar_one() == 5

    return run_cases(ctx, "functions", cases, lambda bind, case: None, followup)


def prepared(ctx: Ctx, cases: list[Bad]) -> list[str]:
    _items(ctx)
    return run_cases(
        ctx,
        "PreparedQuery",
        cases,
        lambda bind, case: PREPARED[case.col].all(bind, q=case.make()),
        lambda bind: PREPARED["v"].all(bind, q=GOOD["v"]),
    )


def _copy_target(bind: Any, ctx: Ctx, call: Copy, *, session: type = Session) -> Any:
    if call.bind == "session":
        return session(bind=bind)
    return {"conn": bind, "engine": ctx.aengine or ctx.engine, "none": None}[call.bind]


def copy(ctx: Ctx, cases: list[Bad]) -> list[str]:
    _items(ctx)

    def attempt(bind: Any, case: Bad) -> None:
        call: Copy = case.value
        target = _copy_target(bind, ctx, call)
        copy_rows(target, call.target, call.data(), chunk_rows=call.chunk_rows, progress=False)

    def followup(bind: Any) -> None:
        assert copy_rows(bind, ITEMS, {"v": np.ones((2, 3))}, progress=False) == 2

    return run_cases(ctx, "copy_rows", cases, attempt, followup)


def fetch(ctx: Ctx, cases: list[Bad]) -> list[str]:
    MD.create_all(ctx.engine, tables=[FM])
    ctx.prepare(("fm",), (FM_SEED,))

    def attempt(bind: Any, case: Bad) -> None:
        call: Fetch = case.value
        fetch_matrix({"conn": bind, "engine": ctx.engine, "none": None}[call.bind], call.target)

    def followup(bind: Any) -> None:
        assert fetch_matrix(bind, select(FM.c.h).order_by(FM.c.id)).shape == (2, 3)

    return run_cases(ctx, "fetch_matrix", cases, attempt, followup)


def search_conn(ctx: Ctx, cases: list[Bad]) -> list[str]:
    _items(ctx)
    install_search_options(ctx.engine)  # (idempotent: the plugin and the dialect install it)

    def followup(bind: Any) -> None:
        apply_search_settings(bind, ef_search=41)
        got = bind.execute(select(func.current_setting("hnsw.ef_search"))).scalar_one()
        assert got == "41", got

    return run_cases(ctx, "search settings (connection)", cases, lambda b, c: None, followup)


def builds(ctx: Ctx, cases: list[Bad]) -> list[str]:
    ctx.ix_table = table = _index_table()
    table.create(ctx.engine)
    ctx.prepare(("ix_items",), (IX_SEED,))

    def followup(bind: Any) -> None:
        _build(bind, HnswIndex("ix_good", table.c.vc, m=4, ef_construction=8))

    return run_cases(ctx, "build_vector_index", cases, lambda b, c: None, followup)


def alembic_online(ctx: Ctx, cases: list[Bad]) -> list[str]:
    ctx.raw.execute(MIG_TABLE)
    ctx.prepare(("mig",))

    def followup(bind: Any) -> None:
        _op(bind).create_vector_index("ix_good", "mig", "e", metric="l2", m=8)

    return run_cases(ctx, "alembic ops (online)", cases, lambda b, c: None, followup)


def driver_sql(ctx: Ctx, cases: list[Bad]) -> list[str]:
    _items(ctx)

    def attempt(bind: Any, case: Bad) -> None:
        col, array = case.value
        bind.exec_driver_sql(f"INSERT INTO items ({col}) VALUES (%(q)s)", {"q": array})

    def followup(bind: Any) -> None:
        bind.exec_driver_sql(
            "INSERT INTO items (vu) VALUES (%(q)s)", {"q": np.ones(2, np.float32)}
        )

    return run_cases(ctx, "exec_driver_sql bare ndarray", cases, attempt, followup)


# --- filtered_search, hybrid_search, tune_search_settings, storage, tenant partitions ----------

_FS_STMT = select(ITEMS.c.id).where(ITEMS.c.id > 0)
_FS_DIST = ITEMS.c.v.l2_distance([1.0, 2.0, 3.0])


def _fs(bind: Any, **kw: Any) -> Any:
    """``filtered_search`` with good arguments but those in ``kw``."""
    stmt, distance, k = kw.pop("stmt", _FS_STMT), kw.pop("distance", _FS_DIST), kw.pop("k", 3)
    return filtered_search(bind, stmt, distance, k, **kw)


def _fs_autocommit(ctx: Ctx) -> None:
    with ctx.engine.connect() as other:
        _fs(other.execution_options(isolation_level="AUTOCOMMIT"))


def _silent(cases: list[Bad]) -> list[Bad]:
    """The cases refused before anything is sent (the API says so)."""
    return [dataclasses.replace(c, silent=True) for c in cases]


_BIGINT = "up to 9223372036854775807 (PostgreSQL's LIMIT is a bigint)"
_NOT_DISTANCE = "distance must be a SQL distance expression, a pgvector distance operator"

# fmt: off
FILTERED_CASES: list[Bad] = _silent(_rows([
    ("k-0", Act(lambda bind, ctx: _fs(bind, k=0)), "k must be a positive int, got 0", ValueError),
    ("k-bool", Act(lambda bind, ctx: _fs(bind, k=True)), "k must be a positive int, got True",
     ValueError),
    ("k-float", Act(lambda bind, ctx: _fs(bind, k=2.5)), "k must be a positive int, got 2.5",
     ValueError),
    ("k-str", Act(lambda bind, ctx: _fs(bind, k="3")), "k must be a positive int, got '3'",
     ValueError),
    ("k-negative", Act(lambda bind, ctx: _fs(bind, k=-3)), "got -3", ValueError),
    ("k-beyond-bigint", Act(lambda bind, ctx: _fs(bind, k=2**63)), _BIGINT, ValueError),
    ("order-strict", Act(lambda bind, ctx: _fs(bind, order="strict")),
     "order must be one of strict_order, relaxed_order, got 'strict'", ValueError),
    ("order-none", Act(lambda bind, ctx: _fs(bind, order=None)), "got None", ValueError),
    ("settings-str", Act(lambda bind, ctx: _fs(bind, settings="ef_search=10")),
     "settings must be a SearchSettings or a mapping", SSE),
    ("settings-pairs", Act(lambda bind, ctx: _fs(bind, settings=[("ef_search", 10)])),
     "got list [('ef_search', 10)]", SSE),
    ("limits-int", Act(lambda bind, ctx: _fs(bind, limits=5)),
     "limits must be a SearchSettings or a mapping", SSE),
    ("settings-ef_search-0", Act(lambda bind, ctx: _fs(bind, settings={"ef_search": 0})),
     f'0 {_RANGE} "hnsw.ef_search"', SSE),
    ("settings-guc-1001", Act(lambda bind, ctx: _fs(bind, settings={"hnsw.ef_search": 1001})),
     f'1001 {_RANGE} "hnsw.ef_search"', SSE),
    ("settings-unknown", Act(lambda bind, ctx: _fs(bind, settings={"ef_searches": 5})),
     "unknown search setting(s) 'ef_searches'", SSE),
    ("settings-iterative-scan",
     Act(lambda bind, ctx: _fs(bind, settings={"hnsw_iterative_scan": "off"})),
     "got hnsw_iterative_scan (the iterative scan mode is chosen by order=)", SSE),
    ("settings-prefer_index", Act(lambda bind, ctx: _fs(bind, settings={"prefer_index": True})),
     "got prefer_index", SSE),
    ("settings-scan_mem_multiplier-nan",
     Act(lambda bind, ctx: _fs(bind, settings={"scan_mem_multiplier": NAN})),
     "must be a finite number between 1 and 1000, got nan", SSE),
    ("limits-max_scan_tuples-0", Act(lambda bind, ctx: _fs(bind, limits={"max_scan_tuples": 0})),
     f'0 {_RANGE} "hnsw.max_scan_tuples"', SSE),
    ("limits-max_probes-32769", Act(lambda bind, ctx: _fs(bind, limits={"max_probes": 32769})),
     f'32769 {_RANGE} "ivfflat.max_probes"', SSE),
    ("limits-probes-str", Act(lambda bind, ctx: _fs(bind, limits={"probes": "10"})),
     "probes (ivfflat.probes) must be an int between 1 and 32768, got str '10'", SSE),
    ("limits-below-start",
     Act(lambda bind, ctx: _fs(bind, settings={"ef_search": 100}, limits={"ef_search": 50})),
     "settings ef_search=100 is above limits ef_search=50", SSE),
    ("exact_below-negative", Act(lambda bind, ctx: _fs(bind, exact_below=-1)),
     "exact_below must be an int >= 0 or None, got -1", ValueError),
    ("exact_below-float", Act(lambda bind, ctx: _fs(bind, exact_below=1.5)), "got 1.5",
     ValueError),
    ("exact_below-bool", Act(lambda bind, ctx: _fs(bind, exact_below=True)), "got True",
     ValueError),
    ("candidates-below-k", Act(lambda bind, ctx: _fs(bind, candidates=2)),
     "candidates must be at least k (3), got 2", ValueError),
    ("candidates-0", Act(lambda bind, ctx: _fs(bind, candidates=0)),
     "candidates must be a positive int, got 0", ValueError),
    ("candidates-float", Act(lambda bind, ctx: _fs(bind, candidates=5.0)),
     "candidates must be a positive int, got 5.0", ValueError),
    ("candidates-beyond-bigint", Act(lambda bind, ctx: _fs(bind, candidates=2**64)), _BIGINT,
     ValueError),
    ("escalate-str", Act(lambda bind, ctx: _fs(bind, escalate="no")),
     "escalate must be True or False, got 'no'", TypeError),
    ("exact_fallback-int", Act(lambda bind, ctx: _fs(bind, exact_fallback=1)),
     "exact_fallback must be True or False, got 1", TypeError),
    ("warn-none", Act(lambda bind, ctx: _fs(bind, warn=None)), "warn must be True or False",
     TypeError),
    ("stmt-order-by", Act(lambda bind, ctx: _fs(bind, stmt=_FS_STMT.order_by(ITEMS.c.id))),
     "stmt must have no ORDER BY, LIMIT or OFFSET", ValueError),
    ("stmt-limit", Act(lambda bind, ctx: _fs(bind, stmt=_FS_STMT.limit(5))),
     "stmt must have no ORDER BY, LIMIT or OFFSET", ValueError),
    ("stmt-offset", Act(lambda bind, ctx: _fs(bind, stmt=_FS_STMT.offset(1))),
     "stmt must have no ORDER BY, LIMIT or OFFSET", ValueError),
    ("stmt-fetch", Act(lambda bind, ctx: _fs(bind, stmt=_FS_STMT.fetch(2))),
     "stmt must have no ORDER BY, LIMIT or OFFSET (nor FETCH FIRST)", ValueError),
    ("stmt-distinct", Act(lambda bind, ctx: _fs(bind, stmt=_FS_STMT.distinct())),
     "stmt must select rows, not groups: it has DISTINCT", ValueError),
    ("stmt-group-by",
     Act(lambda bind, ctx: _fs(bind, stmt=select(ITEMS.c.id).group_by(ITEMS.c.id))),
     "it has GROUP BY", ValueError),
    ("stmt-update", Act(lambda bind, ctx: _fs(bind, stmt=update(ITEMS).values(v=None))),
     "stmt must be a select() with the filters", TypeError),
    ("stmt-insert", Act(lambda bind, ctx: _fs(bind, stmt=insert(ITEMS).values(id=5))),
     "got Insert", TypeError),
    ("stmt-text", Act(lambda bind, ctx: _fs(bind, stmt=text("SELECT id FROM items"))),
     "got TextClause", TypeError),
    ("stmt-union", Act(lambda bind, ctx: _fs(bind, stmt=_FS_STMT.union_all(_FS_STMT))),
     "got CompoundSelect", TypeError),
    ("stmt-str", Act(lambda bind, ctx: _fs(bind, stmt="SELECT id FROM items")), "got str",
     TypeError),
    ("distance-list", Act(lambda bind, ctx: _fs(bind, distance=[1.0, 2.0, 3.0])),
     f"{_NOT_DISTANCE}", TypeError),
    ("distance-none", Act(lambda bind, ctx: _fs(bind, distance=None)), "got NoneType",
     TypeError),
    ("distance-desc", Act(lambda bind, ctx: _fs(bind, distance=_FS_DIST.desc())),
     _NOT_DISTANCE, TypeError),
    ("distance-id-column", Act(lambda bind, ctx: _fs(bind, distance=ITEMS.c.id)),
     f"{_NOT_DISTANCE}", TypeError),
    ("distance-vector-column", Act(lambda bind, ctx: _fs(bind, distance=ITEMS.c.v)),
     "got Column items.v", TypeError),
    ("distance-comparison", Act(lambda bind, ctx: _fs(bind, distance=ITEMS.c.v == [1, 2, 3])),
     _NOT_DISTANCE, TypeError),
    ("distance-literal", Act(lambda bind, ctx: _fs(bind, distance=literal(1.0))),
     _NOT_DISTANCE, TypeError),
    ("distance-nan-query",
     Act(lambda bind, ctx: _fs(bind, distance=ITEMS.c.v.l2_distance([1, NAN, 3]))),
     "NaN not allowed in vector (element 1)"),
    ("distance-inf-query",
     Act(lambda bind, ctx: _fs(bind, distance=ITEMS.c.v.cosine_distance([INF, 0, 0]))),
     "infinite value not allowed in vector (element 0)"),
    ("distance-query-dim-2",
     Act(lambda bind, ctx: _fs(bind, distance=ITEMS.c.v.l2_distance([1.0, 2.0]))),
     "vector(3): expected 3 dimensions, not 2"),
    ("distance-halfvec-query-over-range",
     Act(lambda bind, ctx: _fs(bind, distance=ITEMS.c.h.l2_distance([70000, 0, 0]))),
     '"70000" is out of range for type halfvec'),
    ("bind-engine", Act(lambda bind, ctx: _fs(ctx.engine)),
     "expected a SQLAlchemy Connection or Session, got Engine", TypeError),
    ("bind-str", Act(lambda bind, ctx: _fs("conn")), "got str", TypeError),
    ("bind-autocommit", Act(lambda bind, ctx: _fs_autocommit(ctx)),
     "this connection is AUTOCOMMIT", SSE),
    ("session-k-0", Act(lambda bind, ctx: _fs(Session(bind=bind), k=0)),
     "k must be a positive int, got 0", ValueError),
]))
# fmt: on

_HY_DENSE = (ITEMS.c.v, [1.0, 2.0, 3.0], "l2")
_HY_SPARSE = (ITEMS.c.s, {0: 1.0}, "l2")
_HY_TEXT = (func.to_tsvector("english", literal("a b")), "a")


def _hybrid(**kw: Any) -> Any:
    """``hybrid_search`` of ITEMS with good dense and sparse legs but those in ``kw``."""
    legs = {"dense": _HY_DENSE, "sparse": _HY_SPARSE}
    legs.update(kw)
    stmt, key = legs.pop("stmt", select(ITEMS.c.id)), legs.pop("key", ITEMS.c.id)
    return hybrid_search(stmt, key, **legs)


def _hy(bind: Any, params: dict[str, Any] | None = None, **kw: Any) -> None:
    bind.execute(_hybrid(**kw), params or {}).all()


# fmt: off
#: built and run: the query vectors are refused by their column type's own validation
HYBRID_EXEC_CASES: list[Bad] = _silent(_rows([
    ("dense-nan", Act(lambda bind, ctx: _hy(bind, dense=(ITEMS.c.v, [1, NAN, 3], "l2"))),
     "NaN not allowed in vector (element 1)"),
    ("dense-float32-nan",
     Act(lambda bind, ctx: _hy(bind, dense=(ITEMS.c.v, np.array([NAN, 1, 2], np.float32), "l2"))),
     "NaN not allowed in vector (element 0)"),
    ("dense-inf", Act(lambda bind, ctx: _hy(bind, dense=(ITEMS.c.v, [0, -INF, 0], "l2"))),
     "infinite value not allowed in vector (element 1)"),
    ("dense-dim-2", Act(lambda bind, ctx: _hy(bind, dense=(ITEMS.c.v, [1.0, 2.0], "l2"))),
     "vector(3): expected 3 dimensions, not 2"),
    ("dense-dim-4", Act(lambda bind, ctx: _hy(bind, dense=(ITEMS.c.v, [1, 2, 3, 4], "l2"))),
     "expected 3 dimensions, not 4"),
    ("dense-over-float4", Act(lambda bind, ctx: _hy(bind, dense=(ITEMS.c.v, [1e39, 0, 0], "l2"))),
     '"1e+39" is out of range for type vector (element 0)'),
    ("dense-text", Act(lambda bind, ctx: _hy(bind, dense=(ITEMS.c.v, "abc", "l2"))),
     'invalid input syntax: "abc"'),
    ("dense-strings", Act(lambda bind, ctx: _hy(bind, dense=(ITEMS.c.v, ["a", "b", "c"], "l2"))),
     "got non-numeric elements"),
    ("halfvec-over-range",
     Act(lambda bind, ctx: _hy(bind, dense=(ITEMS.c.h, [70000, 0, 0], "l2"))),
     '"70000" is out of range for type halfvec'),
    ("sparse-index-out-of-bounds",
     Act(lambda bind, ctx: _hy(bind, sparse=(ITEMS.c.s, {7: 1.0}, "l2"))),
     "sparsevec index out of bounds"),
    ("sparse-dense-query-of-3",
     Act(lambda bind, ctx: _hy(bind, sparse=(ITEMS.c.s, [1, 2, 3], "l2"))),
     "expected 5 dimensions, not 3"),
    ("sparse-nan", Act(lambda bind, ctx: _hy(bind, sparse=(ITEMS.c.s, {0: NAN}, "l2"))),
     "NaN not allowed"),
    ("dense-bindparam-nan",
     Act(lambda bind, ctx: _hy(bind, {"q": [1, NAN, 3]},
                               dense=(ITEMS.c.v, bindparam("q"), "l2"))),
     "NaN not allowed in vector (element 1)"),
    ("dense-bindparam-dim-2",
     Act(lambda bind, ctx: _hy(bind, {"q": [1, 2]}, dense=(ITEMS.c.v, bindparam("q"), "l2"))),
     "expected 3 dimensions, not 2"),
    ("text-query-nul", Act(lambda bind, ctx: _hy(bind, sparse=None, text=(_HY_TEXT[0], "a\x00"))),
     "text= query 'a\\x00' contains a NUL byte", ValueError),
    ("text-config-nul",
     Act(lambda bind, ctx: _hy(bind, sparse=None, text=(_HY_TEXT[0], "a", "english\x00"))),
     "text= config 'english\\x00' contains a NUL byte", ValueError),
    ("text-integer-document",
     Act(lambda bind, ctx: _hy(bind, sparse=None, text=(ITEMS.c.id, "a"))),
     "text= document must be a tsvector column or expression", TypeError),
])) + [
    # the server refuses (a name it does not know): a database error, the connection usable
    Bad("text-config-unknown",
        Act(lambda bind, ctx: _hy(bind, sparse=None, text=(_HY_TEXT[0], "a", "klingon"))),
        'text search configuration "klingon" does not exist', SERVER),
]

HYBRID_CASES: list[Bad] = _rows([
    ("one-leg", _expression(lambda: _hybrid(sparse=None)),
     "hybrid_search needs at least two of dense=, sparse=, text=; got dense", ValueError),
    ("no-leg", _expression(lambda: _hybrid(dense=None, sparse=None)), "got none", ValueError),
    ("dense-list", _expression(lambda: _hybrid(dense=[ITEMS.c.v, [1, 2, 3]])),
     "dense= takes a tuple (column, query) or (column, query, metric), got [", TypeError),
    ("dense-one-element", _expression(lambda: _hybrid(dense=(ITEMS.c.v,))),
     "dense= takes a tuple", TypeError),
    ("dense-four-elements", _expression(lambda: _hybrid(dense=(*_HY_DENSE, 1))),
     "dense= takes a tuple", TypeError),
    ("dense-column-name", _expression(lambda: _hybrid(dense=("v", [1, 2, 3], "l2"))),
     "dense= needs a Vector/HalfVec column, got None", TypeError),
    ("dense-sparse-column", _expression(lambda: _hybrid(dense=(ITEMS.c.s, {0: 1.0}, "l2"))),
     "dense= needs a Vector/HalfVec column, got SparseVec(5)", TypeError),
    ("dense-bit-column", _expression(lambda: _hybrid(dense=(ITEMS.c.b, "1010", "hamming"))),
     "dense= needs a Vector/HalfVec column, got Bit(4)", TypeError),
    ("sparse-vector-column", _expression(lambda: _hybrid(sparse=_HY_DENSE)),
     "sparse= needs a SparseVec column, got Vector(3)", TypeError),
    ("dense-no-metric", _expression(lambda: _hybrid(dense=(ITEMS.c.v, [1, 2, 3]))),
     "give dense=(column, query, metric) (Vector(3) declares no metric)", ValueError),
    ("dense-hamming", _expression(lambda: _hybrid(dense=(ITEMS.c.v, [1, 2, 3], "hamming"))),
     "dense: metric 'hamming' is not a metric of vector; expected one of l2", ValueError),
    ("dense-metric-int", _expression(lambda: _hybrid(dense=(ITEMS.c.v, [1, 2, 3], 5))),
     "metric 5 is not a metric of vector", ValueError),
    ("dense-metric-list", _expression(lambda: _hybrid(dense=(ITEMS.c.v, [1, 2, 3], ["l2"]))),
     "metric ['l2'] is not a metric of vector", ValueError),
    ("dense-query-none", _expression(lambda: _hybrid(dense=(ITEMS.c.v, None, "l2"))),
     "dense= query must be a query vector (or a SQL expression of one), got None", TypeError),
    ("dense-query-pgvector-dim-2",
     _expression(lambda: _hybrid(dense=(ITEMS.c.v, pgvector.Vector([1, 2]), "l2"))),
     "expected 3 dimensions, not 2", InvalidVectorError),
    ("text-query-none", _expression(lambda: _hybrid(sparse=None, text=(_HY_TEXT[0], None))),
     "text= query must be a str, got NoneType", TypeError),
    ("text-query-bytes", _expression(lambda: _hybrid(sparse=None, text=(_HY_TEXT[0], b"a"))),
     "text= query must be a str, got bytes", TypeError),
    ("text-config-empty", _expression(lambda: _hybrid(sparse=None, text=(_HY_TEXT[0], "a", ""))),
     "text= config must be a text search configuration name, got ''", TypeError),
    ("text-document-name", _expression(lambda: _hybrid(sparse=None, text=("body", "a"))),
     "text= document must be a tsvector column or expression", TypeError),
    ("k-0", _expression(lambda: _hybrid(k=0)), "k must be a positive int, got 0", ValueError),
    ("k-float", _expression(lambda: _hybrid(k=2.0)), "k must be a positive int, got 2.0",
     ValueError),
    ("k-beyond-bigint", _expression(lambda: _hybrid(k=2**63)), _BIGINT, ValueError),
    ("leg_limit-0", _expression(lambda: _hybrid(leg_limit=0)),
     "leg_limit must be a positive int, got 0", ValueError),
    ("fusion-unknown", _expression(lambda: _hybrid(fusion="max")),
     "fusion must be one of rrf, weighted, got 'max'", ValueError),
    ("fusion-upper", _expression(lambda: _hybrid(fusion="RRF")), "got 'RRF'", ValueError),
    ("fusion-none", _expression(lambda: _hybrid(fusion=None)), "got None", ValueError),
    ("rrf_k-negative", _expression(lambda: _hybrid(rrf_k=-1)),
     "rrf_k must be a finite number >= 0, got -1", ValueError),
    ("rrf_k-nan", _expression(lambda: _hybrid(rrf_k=NAN)), "got nan", ValueError),
    ("rrf_k-bool", _expression(lambda: _hybrid(rrf_k=True)), "got True", ValueError),
    ("weights-list", _expression(lambda: _hybrid(weights=[1, 1])),
     "weights must be a mapping {leg: weight}, got [1, 1]", TypeError),
    ("weights-missing-leg", _expression(lambda: _hybrid(weights={"dense": 1})),
     "weights must name exactly the legs given (dense, sparse), got 'dense'", ValueError),
    ("weights-unknown-leg",
     _expression(lambda: _hybrid(weights={"dense": 1, "sparse": 1, "text": 1})),
     "weights must name exactly the legs given", ValueError),
    ("weights-negative", _expression(lambda: _hybrid(weights={"dense": -1, "sparse": 1})),
     "weights['dense'] must be a finite number >= 0, got -1", ValueError),
    ("weights-nan", _expression(lambda: _hybrid(weights={"dense": 1, "sparse": NAN})),
     "weights['sparse'] must be a finite number >= 0, got nan", ValueError),
    ("weights-str", _expression(lambda: _hybrid(weights={"dense": "1", "sparse": 1})),
     "got '1'", ValueError),
    ("weights-all-zero", _expression(lambda: _hybrid(weights={"dense": 0, "sparse": 0})),
     "at least one weight must be positive", ValueError),
    ("max_distance-number", _expression(lambda: _hybrid(max_distance=0.5)),
     "max_distance must map 'dense'/'sparse' to a number, got float", TypeError),
    ("max_distance-text-leg",
     _expression(lambda: _hybrid(sparse=None, text=_HY_TEXT, max_distance={"text": 1})),
     "max_distance: 'text' is not a vector leg given; expected one of 'dense'", ValueError),
    ("max_distance-leg-not-given",
     _expression(lambda: _hybrid(sparse=None, text=_HY_TEXT, max_distance={"sparse": 1})),
     "max_distance: 'sparse' is not a vector leg given", ValueError),
    ("max_distance-nan", _expression(lambda: _hybrid(max_distance={"dense": NAN})),
     "max_distance['dense'] must be finite, got nan", ValueError),
    ("max_distance-inf", _expression(lambda: _hybrid(max_distance={"sparse": INF})),
     "must be finite, got inf", ValueError),
    ("max_distance-str", _expression(lambda: _hybrid(max_distance={"dense": "0.5"})),
     "max_distance['dense'] must be a number, got '0.5'", ValueError),
    ("max_distance-bool", _expression(lambda: _hybrid(max_distance={"dense": True})),
     "must be a number, got True", ValueError),
    ("where-str", _expression(lambda: _hybrid(where="id > 0")),
     "where takes SQL expressions (Doc.lang == 'en'), not a str", TypeError),
    ("where-strings", _expression(lambda: _hybrid(where=["id > 0"])),
     "where takes SQL expressions (Doc.lang == 'en') or a sequence of them, got str", TypeError),
    ("where-bool", _expression(lambda: _hybrid(where=True)), "got bool True", TypeError),
    ("where-bytes", _expression(lambda: _hybrid(where=b"id")), "got bytes", TypeError),
    ("key-name", _expression(lambda: _hybrid(key="id")),
     "key must be the unique column the legs are joined on (Doc.id), got str 'id'", TypeError),
    ("key-none", _expression(lambda: _hybrid(key=None)), "got NoneType None", TypeError),
    ("stmt-str", _expression(lambda: _hybrid(stmt="items")),
     "stmt must be a select() or an entity, table or column (Doc), got str", TypeError),
    ("name-int", _expression(lambda: _hybrid(name=5)), "name must be a str", TypeError),
    ("name-nul", _expression(lambda: _hybrid(name="h\x00")), "contains a NUL byte",
     InvalidIdentifierError),
    ("name-over-63-bytes", _expression(lambda: _hybrid(name="h" * 60)), "63",
     InvalidIdentifierError),
])
# fmt: on


def _tune(bind: Any, queries: Any = ..., **kw: Any) -> Any:
    """``tune_search_settings`` over ITEMS with good arguments but those given."""
    query_for = kw.pop("query_for", _top3)
    queries = [[1.0, 2.0, 3.0]] if queries is ... else queries
    return tune_search_settings(bind, query_for, queries, **{"k": 1, "high": 2, **kw})


def _top3(q: Any) -> Any:
    return select(ITEMS.c.id).order_by(ITEMS.c.v.l2_distance(q)).limit(3)


def _tune_autocommit(ctx: Ctx) -> None:
    with ctx.engine.connect() as other:
        _tune(other.execution_options(isolation_level="AUTOCOMMIT"))


# fmt: off
TUNING_CASES: list[Bad] = _silent(_rows([
    ("target-0", Act(lambda bind, ctx: _tune(bind, target_recall=0)),
     "target_recall must be a number in (0, 1], got 0", ValueError),
    ("target-1.5", Act(lambda bind, ctx: _tune(bind, target_recall=1.5)), "got 1.5", ValueError),
    ("target-nan", Act(lambda bind, ctx: _tune(bind, target_recall=NAN)), "got nan", ValueError),
    ("target-bool", Act(lambda bind, ctx: _tune(bind, target_recall=True)), "got True",
     ValueError),
    ("target-str", Act(lambda bind, ctx: _tune(bind, target_recall="0.9")), "got '0.9'",
     ValueError),
    ("setting-max_probes", Act(lambda bind, ctx: _tune(bind, setting="max_probes")),
     "setting must be one of ef_search, probes (or hnsw.ef_search, ivfflat.probes), got "
     "'max_probes'", ValueError),
    ("setting-guc-max_scan_tuples",
     Act(lambda bind, ctx: _tune(bind, setting="hnsw.max_scan_tuples")),
     "got 'hnsw.max_scan_tuples'", ValueError),
    ("setting-none", Act(lambda bind, ctx: _tune(bind, setting=None)), "got None", ValueError),
    ("low-0", Act(lambda bind, ctx: _tune(bind, low=0)),
     "low=0 is outside the range of hnsw.ef_search (1 .. 1000)", ValueError),
    ("high-1001", Act(lambda bind, ctx: _tune(bind, high=1001)),
     "high=1001 is outside the range of hnsw.ef_search (1 .. 1000)", ValueError),
    ("probes-high-32769", Act(lambda bind, ctx: _tune(bind, setting="probes", high=32769)),
     "high=32769 is outside the range of ivfflat.probes (1 .. 32768)", ValueError),
    ("low-above-high", Act(lambda bind, ctx: _tune(bind, low=5, high=2)),
     "low (5) must not exceed high (2)", ValueError),
    ("low-float", Act(lambda bind, ctx: _tune(bind, low=1.5)), "low must be an int, got 1.5",
     ValueError),
    ("high-bool", Act(lambda bind, ctx: _tune(bind, high=True)), "high must be an int, got True",
     ValueError),
    ("k-0", Act(lambda bind, ctx: _tune(bind, k=0)), "k must be a positive int, got 0",
     ValueError),
    ("repeats-0", Act(lambda bind, ctx: _tune(bind, repeats=0)),
     "repeats must be a positive int, got 0", ValueError),
    ("queries-empty", Act(lambda bind, ctx: _tune(bind, [])),
     "queries must hold at least one query vector", ValueError),
    ("queries-1-d-array", Act(lambda bind, ctx: _tune(bind, np.ones(3))),
     "queries must be an (n, dim) array of query vectors, got shape (3,)", ValueError),
    ("queries-one-vector-as-list", Act(lambda bind, ctx: _tune(bind, [1.0, 2.0, 3.0])),
     "queries must hold query vectors, got float 1.0 as query 0 (for one vector q, pass [q])",
     ValueError),
    ("queries-none", Act(lambda bind, ctx: _tune(bind, None)),
     "queries must be an (n, dim) array or an iterable of query vectors, got NoneType",
     TypeError),
    ("queries-nan", Act(lambda bind, ctx: _tune(bind, [[1.0, NAN, 3.0]])),
     "NaN not allowed in vector (element 1)"),
    ("queries-dim-2", Act(lambda bind, ctx: _tune(bind, np.ones((2, 2)))),
     "vector(3): expected 3 dimensions, not 2"),
    ("query_for-not-callable", Act(lambda bind, ctx: _tune(bind, query_for=5)),
     "query_for must be a function of one query vector returning the top-k select", TypeError),
    ("query_for-returns-str", Act(lambda bind, ctx: _tune(bind, query_for=lambda q: "SELECT 1")),
     "query_for must return a Select, got str", TypeError),
    ("bind-engine", Act(lambda bind, ctx: _tune(ctx.engine)),
     "expected a SQLAlchemy Connection or Session, got Engine", TypeError),
    ("bind-autocommit", Act(lambda bind, ctx: _tune_autocommit(ctx)),
     "this connection is AUTOCOMMIT", ValueError),
]))
# fmt: on

_NOPE = Table("nope", MetaData(), Column("v", Vector(3)))
_MODES_MSG = "storage must be one of plain, external, extended, main (PostgreSQL's ALTER TABLE"
_NOT_BOUND = "column must be a Column of a Table or an ORM attribute mapped to one, got "

# fmt: off
STORAGE_CASES: list[Bad] = _silent(_rows([
    ("set-mode-toast", Act(lambda bind, ctx: set_vector_storage(bind, ITEMS.c.v, "toast")),
     f"{_MODES_MSG} ... SET STORAGE), got 'toast'", ValueError),
    ("set-mode-none", Act(lambda bind, ctx: set_vector_storage(bind, ITEMS.c.v, None)),
     "got None", ValueError),
    ("set-mode-int", Act(lambda bind, ctx: set_vector_storage(bind, ITEMS.c.v, 1)), "got 1",
     ValueError),
    ("set-mode-empty", Act(lambda bind, ctx: set_vector_storage(bind, ITEMS.c.v, "")),
     "got ''", ValueError),
    ("set-mode-trailing-space",
     Act(lambda bind, ctx: set_vector_storage(bind, ITEMS.c.v, "plain ")), "got 'plain '",
     ValueError),
    ("set-integer-column", Act(lambda bind, ctx: set_vector_storage(bind, ITEMS.c.id, "plain")),
     "column 'id' is Integer(), not a Vector/HalfVec/SparseVec/Bit column", TypeError),
    ("set-a-type", Act(lambda bind, ctx: set_vector_storage(bind, Vector(3), "plain")),
     f"{_NOT_BOUND}Vector Vector(3)", TypeError),
    ("set-a-type-class", Act(lambda bind, ctx: set_vector_storage(bind, Vector, "plain")),
     _NOT_BOUND, TypeError),
    ("set-unbound-column",
     Act(lambda bind, ctx: set_vector_storage(bind, Column("v", Vector(3)), "plain")),
     f"{_NOT_BOUND}Column", TypeError),
    ("set-column-name", Act(lambda bind, ctx: set_vector_storage(bind, "items.v", "plain")),
     f"{_NOT_BOUND}str", TypeError),
    ("set-engine", Act(lambda bind, ctx: set_vector_storage(ctx.engine, ITEMS.c.v, "plain")),
     "expected a SQLAlchemy Connection or Session, got Engine", TypeError),
    ("column_storage-table-none", Act(lambda bind, ctx: column_storage(bind, None, "v")),
     "table name must be a str, got NoneType None", InvalidIdentifierError),
    ("column_storage-table-nul", Act(lambda bind, ctx: column_storage(bind, "ite\x00ms", "v")),
     "table name 'ite\\x00ms' contains a NUL byte", InvalidIdentifierError),
    ("column_storage-column-nul", Act(lambda bind, ctx: column_storage(bind, "items", "v\x00")),
     "column name 'v\\x00' contains a NUL byte", InvalidIdentifierError),
    ("column_storage-column-int", Act(lambda bind, ctx: column_storage(bind, "items", 1)),
     "column name must be a str, got int 1", InvalidIdentifierError),
    ("column_storage-schema-empty",
     Act(lambda bind, ctx: column_storage(bind, "items", "v", schema="")), "schema is empty",
     InvalidIdentifierError),
    ("column_storage-engine", Act(lambda bind, ctx: column_storage(ctx.engine, "items", "v")),
     "got Engine", TypeError),
    ("count-a-type", Act(lambda bind, ctx: count_out_of_line(bind, Vector(3))),
     f"{_NOT_BOUND}Vector Vector(3)", TypeError),
    ("count-unbound-column",
     Act(lambda bind, ctx: count_out_of_line(bind, Column("v", Vector(3)))),
     f"{_NOT_BOUND}Column", TypeError),
    ("count-column-name", Act(lambda bind, ctx: count_out_of_line(bind, "v")),
     f"{_NOT_BOUND}str 'v'", TypeError),
    ("count-engine", Act(lambda bind, ctx: count_out_of_line(ctx.engine, ITEMS.c.v)),
     "got Engine", TypeError),
])) + _rows([
    # the catalog is read first: a LookupError, or the server's refusal, and nothing written
    ("set-table-not-on-server",
     Act(lambda bind, ctx: set_vector_storage(bind, _NOPE.c.v, "plain")),
     "no column 'v' in table \"nope\" on the server", LookupError),
    ("column_storage-missing-column", Act(lambda bind, ctx: column_storage(bind, "items", "zz")),
     "no column 'zz' in table \"items\" on the server", LookupError),
    ("count-table-not-on-server", Act(lambda bind, ctx: count_out_of_line(bind, _NOPE.c.v)),
     'relation "nope" does not exist', SERVER),
])

STORAGE_VALUE_CASES: list[Bad] = _rows([
    ("advice-integer-column", _expression(lambda: storage_advice(ITEMS.c.id)),
     "expected a Vector/HalfVec/SparseVec/Bit type or a column of one (Column or ORM "
     "attribute), got Column", TypeError),
    ("advice-str", _expression(lambda: storage_advice("vector(3)")), "got str 'vector(3)'",
     TypeError),
    ("advice-none", _expression(lambda: storage_advice(None)), "got NoneType None", TypeError),
    ("advice-integer-type", _expression(lambda: storage_advice(Integer())), "got Integer",
     TypeError),
    ("advice-nnz-for-vector", _expression(lambda: storage_advice(Vector(3), nnz=3)),
     "nnz applies to sparsevec only, got nnz=3 for vector", ValueError),
    ("advice-nnz-negative", _expression(lambda: storage_advice(SparseVec(5), nnz=-1)),
     "nnz must be an int >= 0, got -1", ValueError),
    ("advice-nnz-float", _expression(lambda: storage_advice(SparseVec(5), nnz=2.0)),
     "nnz must be an int >= 0, got 2.0", ValueError),
    ("advice-nnz-over-dim", _expression(lambda: storage_advice(SparseVec(5), nnz=6)),
     "nnz must be at most the dimension of SparseVec(5) (5), got 6", ValueError),
    ("advice-nnz-over-16000", _expression(lambda: storage_advice(SparseVec(), nnz=16001)),
     "nnz must be at most 16000 (pgvector's SPARSEVEC_MAX_NNZ, src/sparsevec.h), got 16001",
     ValueError),
    ("advice-nnz-bool", _expression(lambda: storage_advice(SparseVec(5), nnz=True)),
     "got True", ValueError),
    ("advice-other_bytes-negative", _expression(lambda: storage_advice(Vector(3), other_bytes=-8)),
     "other_bytes must be an int >= 0, got -8", ValueError),
    ("advice-other_bytes-str", _expression(lambda: storage_advice(Vector(3), other_bytes="8")),
     "got '8'", ValueError),
    ("advice-over-16000-dims", _expression(lambda: storage_advice(Vector(16001))),
     "dimensions for type vector cannot exceed 16000 (got 16001)", InvalidVectorError),
    ("type-storage-toast", _expression(lambda: Vector(3, storage="toast")),
     f"{_MODES_MSG} ... SET STORAGE), got 'toast'", ValueError),
    ("type-storage-int", _expression(lambda: HalfVec(3, storage=1)), "got 1", ValueError),
    ("type-storage-bool", _expression(lambda: SparseVec(5, storage=True)), "got True",
     ValueError),
    ("type-storage-empty", _expression(lambda: Bit(8, storage="")), "got ''", ValueError),
    ("type-storage-compressed", _expression(lambda: Vector(storage="compressed")),
     "got 'compressed'", ValueError),
    ("type-storage-nul", _expression(lambda: Vector(3, storage="plain\x00")),
     "got 'plain\\x00'", ValueError),
])
# fmt: on

TMD = MetaData()
#: a LIST-partitioned parent keyed by an int, one keyed by text, one by a float (never
#: created: its values are refused first), and parents a tenant partition cannot have
TDOCS = Table(
    "tdocs", TMD, Column("t", Integer), Column("e", Vector(3)), postgresql_partition_by="LIST (t)"
)
TTEXT = Table("ttext", TMD, Column("t", Text), postgresql_partition_by="LIST (t)")
TRANGE = Table("trange", TMD, Column("t", Integer), postgresql_partition_by="RANGE (t)")
TEXPR = Table("texpr", TMD, Column("t", Text), postgresql_partition_by="LIST (lower(t))")
TPLAIN = Table("tplain", TMD, Column("t", Integer))
TFLOAT = Table("tfloat", MetaData(), Column("t", sa.Float), postgresql_partition_by="LIST (t)")
#: tenant 7's partition, under a name of its own
T_SEED = ("CREATE TABLE IF NOT EXISTS tdocs_held PARTITION OF tdocs FOR VALUES IN (7)",)
_INT_RANGE = "is out of range for the integer column 't' (-2147483648 .. 2147483647)"
_NO_TX = "DETACH PARTITION CONCURRENTLY cannot run inside a transaction block"

# fmt: off
#: refused for the parent or the tenant value, whatever the function: value-only
TENANT_VALUE_CASES: list[Bad] = _rows([
    ("name-bool-for-int", _expression(lambda: tenant_partition_name(TDOCS, True)),
     "tenant must be an int for the column 't' (INTEGER), got bool True", TypeError),
    ("name-none", _expression(lambda: tenant_partition_name(TDOCS, None)),
     "tenant must be a value of the column 't', got None", TypeError),
    ("name-str-for-int", _expression(lambda: tenant_partition_name(TDOCS, "1")),
     "got str '1'", TypeError),
    ("name-2**31", _expression(lambda: tenant_partition_name(TDOCS, 2**31)),
     f"tenant 2147483648 {_INT_RANGE}", PartitionError),
    ("name-below-int4", _expression(lambda: tenant_partition_name(TDOCS, -(2**31) - 1)),
     f"tenant -2147483649 {_INT_RANGE}", PartitionError),
    ("name-nan", _expression(lambda: tenant_partition_name(TFLOAT, NAN)),
     "tenant must be a finite number, got nan", PartitionError),
    ("name-inf", _expression(lambda: tenant_partition_name(TFLOAT, INF)),
     "tenant must be a finite number, got inf", PartitionError),
    ("name-nul", _expression(lambda: tenant_partition_name(TTEXT, "a\x00b")),
     "tenant 'a\\x00b' contains a NUL byte", PartitionError),
    ("name-bytes-for-text", _expression(lambda: tenant_partition_name(TTEXT, b"a")),
     "got bytes b'a'", TypeError),
    ("name-range-parent", _expression(lambda: tenant_partition_name(TRANGE, 1)),
     "table 'trange' is RANGE-partitioned; a tenant partition needs a LIST-partitioned parent",
     PartitionError),
    ("name-expression-parent", _expression(lambda: tenant_partition_name(TEXPR, "a")),
     "table 'texpr' is partitioned by 'LIST (lower(t))', not by LIST of one of its columns",
     PartitionError),
    ("name-plain-parent", _expression(lambda: tenant_partition_name(TPLAIN, 1)),
     "table 'tplain' is not partitioned (no postgresql_partition_by)", PartitionError),
    ("name-parent-column", _expression(lambda: tenant_partition_name(TDOCS.c.t, 1)),
     "parent must be the LIST-partitioned parent Table", TypeError),
    ("name-parent-str", _expression(lambda: tenant_partition_name("tdocs", 1)),
     "parent must be the LIST-partitioned parent Table", TypeError),
    ("search-bool-for-int", _expression(lambda: tenant_search(select(TDOCS), TDOCS, False)),
     "got bool False", TypeError),
    ("search-none", _expression(lambda: tenant_search(select(TDOCS), TDOCS.c.t, None)),
     "got None (a NULL tenant matches no `=` filter)", TypeError),
    ("search-2**40", _expression(lambda: tenant_search(select(TDOCS), TDOCS, 2**40)),
     f"tenant 1099511627776 {_INT_RANGE}", PartitionError),
    ("search-nan", _expression(lambda: tenant_search(select(TFLOAT), TFLOAT, NAN)),
     "finite number, got nan", PartitionError),
    ("search-nul", _expression(lambda: tenant_search(select(TTEXT), TTEXT, "\x00")),
     "contains a NUL byte", PartitionError),
    ("search-range-parent", _expression(lambda: tenant_search(select(TRANGE), TRANGE, 1)),
     "is RANGE-partitioned", PartitionError),
    ("search-column-name", _expression(lambda: tenant_search(select(TDOCS), "t", 1)),
     "parent_or_column must be a LIST-partitioned Table, an ORM class mapped to one, or its "
     "tenant column, got str", TypeError),
    ("search-stmt-str", _expression(lambda: tenant_search("SELECT 1", TDOCS, 1)),
     "stmt must be a select() (the top-k query), got str", TypeError),
])

TENANT_CASES: list[Bad] = _silent(_rows([
    ("create-bool-for-int", Act(lambda bind, ctx: create_tenant_partition(bind, TDOCS, True)),
     "tenant must be an int for the column 't' (INTEGER), got bool True", TypeError),
    ("create-none", Act(lambda bind, ctx: create_tenant_partition(bind, TDOCS, None)),
     "got None (a NULL tenant matches no `=` filter)", TypeError),
    ("create-float-for-int", Act(lambda bind, ctx: create_tenant_partition(bind, TDOCS, 1.0)),
     "got float 1.0", TypeError),
    ("create-2**31", Act(lambda bind, ctx: create_tenant_partition(bind, TDOCS, 2**31)),
     f"tenant 2147483648 {_INT_RANGE}", PartitionError),
    ("create-nul", Act(lambda bind, ctx: create_tenant_partition(bind, TTEXT, "a\x00")),
     "contains a NUL byte", PartitionError),
    ("create-int-for-text", Act(lambda bind, ctx: create_tenant_partition(bind, TTEXT, 5)),
     "tenant must be a str for the column 't' (TEXT), got int 5", TypeError),
    ("create-nan", Act(lambda bind, ctx: create_tenant_partition(bind, TFLOAT, NAN)),
     "tenant must be a finite number, got nan", PartitionError),
    ("create-range-parent", Act(lambda bind, ctx: create_tenant_partition(bind, TRANGE, 1)),
     "is RANGE-partitioned", PartitionError),
    ("create-expression-parent",
     Act(lambda bind, ctx: create_tenant_partition(bind, TEXPR, "a")),
     "not by LIST of one of its columns", PartitionError),
    ("create-plain-parent", Act(lambda bind, ctx: create_tenant_partition(bind, TPLAIN, 1)),
     "is not partitioned", PartitionError),
    ("create-parent-column", Act(lambda bind, ctx: create_tenant_partition(bind, TDOCS.c.t, 1)),
     "parent must be the LIST-partitioned parent Table", TypeError),
    ("create-name-nul",
     Act(lambda bind, ctx: create_tenant_partition(bind, TDOCS, 2, name="p\x00")),
     "partition name 'p\\x00' contains a NUL byte", InvalidIdentifierError),
    ("create-schema-int", Act(lambda bind, ctx: create_tenant_partition(bind, TDOCS, 2, schema=5)),
     "partition schema must be a str, got int 5", InvalidIdentifierError),
    ("create-bind-str", Act(lambda bind, ctx: create_tenant_partition("engine", TDOCS, 2)),
     "expected an Engine, Connection or Session, got str", TypeError),
    ("detach-bool-for-int", Act(lambda bind, ctx: detach_tenant_partition(bind, TDOCS, False)),
     "got bool False", TypeError),
    ("detach-session-concurrently",
     Act(lambda bind, ctx: detach_tenant_partition(Session(bind=bind), TDOCS, 7,
                                                   name="tdocs_held", concurrently=True)),
     _NO_TX, PartitionError),
    ("detach-transaction-concurrently",
     Act(lambda bind, ctx: detach_tenant_partition(bind, TDOCS, 7, name="tdocs_held",
                                                   concurrently=True)),
     _NO_TX, PartitionError),
    ("detach-concurrently-str",
     Act(lambda bind, ctx: detach_tenant_partition(ctx.engine, TDOCS, 7, name="tdocs_held",
                                                   concurrently="yes")),
     "concurrently must be True or False, got str 'yes'", TypeError),
    ("detach-range-parent", Act(lambda bind, ctx: detach_tenant_partition(bind, TRANGE, 1)),
     "is RANGE-partitioned", PartitionError),
    ("drop-none", Act(lambda bind, ctx: drop_tenant_partition(bind, TDOCS, None)), "got None",
     TypeError),
    ("drop-detached-str",
     Act(lambda bind, ctx: drop_tenant_partition(bind, TDOCS, 7, name="tdocs_held",
                                                 detached="no")),
     "detached must be True or False, got str 'no'", TypeError),
    ("drop-expression-parent", Act(lambda bind, ctx: drop_tenant_partition(bind, TEXPR, "a")),
     "not by LIST of one of its columns", PartitionError),
])) + _rows([
    # the catalog is read first: refused, nothing written
    ("create-name-taken",
     Act(lambda bind, ctx: create_tenant_partition(bind, TDOCS, 2, name="tdocs")),
     "'tdocs' exists already (a relation that is not a partition of 'tdocs')", PartitionError),
    ("detach-missing", Act(lambda bind, ctx: detach_tenant_partition(bind, TDOCS, 99)),
     "the partition 'tdocs_99' of 'tdocs' for tenant 99 does not exist; nothing was changed",
     PartitionError),
    ("drop-missing", Act(lambda bind, ctx: drop_tenant_partition(bind, TDOCS, 99)),
     "does not exist; nothing was changed", PartitionError),
    ("drop-attached-as-detached",
     Act(lambda bind, ctx: drop_tenant_partition(bind, TDOCS, 7, name="tdocs_held",
                                                 detached=True)),
     "is still attached to it", PartitionError),
    # the server refuses a tenant another partition holds (documented)
    ("create-tenant-held", Act(lambda bind, ctx: create_tenant_partition(bind, TDOCS, 7)),
     'would overlap partition "tdocs_held"', SERVER),
])
# fmt: on


def filtered(ctx: Ctx, cases: list[Bad]) -> list[str]:
    _items(ctx, seed=(UPDATE_SEED,))

    def followup(bind: Any) -> None:
        result = _fs(bind)
        assert [row[0] for row in result.rows] == [1], result

    return run_cases(ctx, "filtered_search", cases, lambda b, c: None, followup)


def hybrid_exec(ctx: Ctx, cases: list[Bad]) -> list[str]:
    _items(ctx, seed=(UPDATE_SEED,))

    def followup(bind: Any) -> None:
        rows = bind.execute(_hybrid(dense=(ITEMS.c.v, [1, 2, 3], "cosine"))).all()
        assert [row[0] for row in rows] == [1], rows

    return run_cases(ctx, "hybrid_search (executed)", cases, lambda b, c: None, followup)


def tuning(ctx: Ctx, cases: list[Bad]) -> list[str]:
    _items(ctx, seed=(UPDATE_SEED,))

    def followup(bind: Any) -> None:
        assert _tune(bind).value == 1

    return run_cases(ctx, "tune_search_settings", cases, lambda b, c: None, followup)


def storage(ctx: Ctx, cases: list[Bad]) -> list[str]:
    _items(ctx, seed=(UPDATE_SEED,))

    def followup(bind: Any) -> None:
        assert set_vector_storage(bind, ITEMS.c.v, "plain") == "external"
        assert column_storage(bind, "items", "v") == "plain"
        assert count_out_of_line(bind, ITEMS.c.v) == 0

    return run_cases(ctx, "vector storage", cases, lambda b, c: None, followup)


def tenants(ctx: Ctx, cases: list[Bad]) -> list[str]:
    TMD.create_all(ctx.engine)
    ctx.prepare(("tdocs", "ttext"), T_SEED)

    def followup(bind: Any) -> None:
        made = create_tenant_partition(bind, TDOCS, 1)
        assert made.name == "tdocs_1", made

    return run_cases(ctx, "tenant partitions", cases, lambda b, c: None, followup)


RUNNERS: dict[str, Callable[[Ctx, list[Bad]], list[str]]] = {
    "core insert": core_insert,
    "core executemany": core_executemany,
    "orm add/flush": orm_flush,
    "orm bulk insert": orm_bulk,
    "core update": core_update,
    "comparators": comparators,
    "functions": functions,
    "PreparedQuery": prepared,
    "copy_rows": copy,
    "fetch_matrix": fetch,
    "search settings (connection)": search_conn,
    "build_vector_index": builds,
    "alembic ops (online)": alembic_online,
    "exec_driver_sql bare ndarray": driver_sql,
    "filtered_search": filtered,
    "hybrid_search (executed)": hybrid_exec,
    "tune_search_settings": tuning,
    "vector storage": storage,
    "tenant partitions": tenants,
}


# --- async entry points -------------------------------------------------------------------------


async def arun_cases(
    ctx: Ctx,
    entry: str,
    cases: list[Bad],
    attempt: Callable[[Any, Bad], Any],
    followup: Callable[[Any], Any],
    open_bind: Callable[[], Any],
) -> list[str]:
    """:func:`run_cases` for an AsyncConnection / AsyncSession (``attempt``, ``followup``
    and an ``Act``'s function are coroutine functions)."""
    problems: list[str] = []
    bind = await open_bind()
    try:
        for case in cases:
            label = _label(entry, ctx, case)
            error: BaseException | None = None
            with _statements_sent(ctx.engine, case) as sent:
                try:
                    if isinstance(case.value, Act):
                        await case.value.fn(bind, ctx)
                    else:
                        await attempt(bind, case)
                except Exception as e:
                    error = e
            try:
                if error is None and bind.in_transaction():
                    await bind.commit()
            except Exception as e:
                error = e
            for problem in (judge(case, error), _sent_problem(sent) if error else None):
                if problem is not None:
                    problems.append(f"{label}: {problem}")
            try:
                if bind.in_transaction():
                    await bind.rollback()
                await followup(bind)
                if bind.in_transaction():
                    await bind.rollback()
            except Exception as e:
                problems.append(f"{label}: unusable afterwards: {type(e).__name__}: {_short(e)}")
                await bind.close()
                bind = await open_bind()
            written = ctx.written(label)
            if written is not None:
                problems.append(written)
    finally:
        await bind.close()
    again = await open_bind()
    try:
        await followup(again)
        if again.in_transaction():
            await again.rollback()
    except Exception as e:
        problems.append(f"{entry} [{ctx.mode}]: the pool gave an unusable connection: {e!r}")
    finally:
        await again.close()
    pool = ctx.aengine.sync_engine.pool
    if pool.checkedout():
        problems.append(f"{entry} [{ctx.mode}]: {pool.checkedout()} connection(s) leaked")
    return problems


async def _async_with(bind: Any, **kw: Any) -> None:
    async with search_settings(bind, **kw):
        await bind.execute(select(literal(1)))


async def _async_with_autocommit(ctx: Ctx) -> None:
    async with ctx.aengine.connect() as other:
        other = await other.execution_options(isolation_level="AUTOCOMMIT")
        async with search_settings(other, ef_search=10):
            pass


async def _sync_with_on_async(bind: Any) -> None:
    with search_settings(bind, ef_search=10):
        pass


async def _async_with_on_sync(bind: Any) -> None:
    async with search_settings(bind.sync_connection, ef_search=10):
        pass


async def _async_statement_option(bind: Any, option: Any) -> None:
    await bind.execute(select(literal(1)).execution_options(vector_search=option))


async def _async_build(bind: Any, index: Index) -> None:
    await build_vector_index_async(bind, index, progress=False)


# fmt: off
ASYNC_SEARCH_CASES: list[Bad] = _rows([
    ("async-with-ef_search-0", Act(lambda bind, ctx: _async_with(bind, ef_search=0)),
     f'0 {_RANGE} "hnsw.ef_search"', SSE),
    ("async-with-max_probes-40000", Act(lambda bind, ctx: _async_with(bind, max_probes=40000)),
     f'40000 {_RANGE} "ivfflat.max_probes"', SSE),
    ("async-with-session-hnsw-on",
     Act(lambda bind, ctx: _async_with(AsyncSession(bind=bind), hnsw_iterative_scan="on")),
     "must be one of off, relaxed_order, strict_order, got 'on'", SSE),
    ("async-with-on-autocommit", Act(lambda bind, ctx: _async_with_autocommit(ctx)),
     "this connection is AUTOCOMMIT", SSE),
    ("sync-with-on-async-connection", Act(lambda bind, ctx: _sync_with_on_async(bind)),
     "use 'async with' for AsyncConnection; 'with' takes a Connection or Session", TypeError),
    ("async-with-on-sync-connection", Act(lambda bind, ctx: _async_with_on_sync(bind)),
     "use 'with' for Connection; 'async with' takes an AsyncConnection or AsyncSession",
     TypeError),
    ("statement-option-scan_mem_multiplier-0",
     Act(lambda bind, ctx: _async_statement_option(bind, {"scan_mem_multiplier": 0})),
     f'0 {_RANGE} "hnsw.scan_mem_multiplier"', SSE),
    ("statement-option-unknown-guc",
     Act(lambda bind, ctx: _async_statement_option(bind, {"hnsw.nope": 1})),
     "unknown search setting(s) 'hnsw.nope'", SSE),
])
# fmt: on


async def _afs(bind: Any, **kw: Any) -> Any:
    stmt, distance, k = kw.pop("stmt", _FS_STMT), kw.pop("distance", _FS_DIST), kw.pop("k", 3)
    return await filtered_search_async(bind, stmt, distance, k, **kw)


async def _afs_autocommit(ctx: Ctx) -> None:
    async with ctx.aengine.connect() as other:
        await _afs(await other.execution_options(isolation_level="AUTOCOMMIT"))


# fmt: off
ASYNC_FILTERED_CASES: list[Bad] = _silent(_rows([
    ("sync-connection", Act(lambda bind, ctx: _afs(bind.sync_connection)),
     "expected an AsyncConnection or AsyncSession, got Connection (use filtered_search",
     TypeError),
    ("async-engine", Act(lambda bind, ctx: _afs(ctx.aengine)),
     "expected an AsyncConnection or AsyncSession, got AsyncEngine", TypeError),
    ("k-0", Act(lambda bind, ctx: _afs(bind, k=0)), "k must be a positive int, got 0",
     ValueError),
    ("settings-str", Act(lambda bind, ctx: _afs(bind, settings="ef_search=10")),
     "settings must be a SearchSettings or a mapping", SSE),
    ("stmt-distinct", Act(lambda bind, ctx: _afs(bind, stmt=_FS_STMT.distinct())),
     "it has DISTINCT", ValueError),
    ("distance-nan-query",
     Act(lambda bind, ctx: _afs(bind, distance=ITEMS.c.v.l2_distance([NAN, 0, 0]))),
     "NaN not allowed in vector (element 0)"),
    ("session-limits-range",
     Act(lambda bind, ctx: _afs(AsyncSession(bind=bind), limits={"ef_search": 2000})),
     f'2000 {_RANGE} "hnsw.ef_search"', SSE),
    ("autocommit", Act(lambda bind, ctx: _afs_autocommit(ctx)), "this connection is AUTOCOMMIT",
     SSE),
]))

ASYNC_TENANT_CASES: list[Bad] = _silent(_rows([
    ("create-bool-for-int",
     Act(lambda bind, ctx: create_tenant_partition_async(bind, TDOCS, True)), "got bool True",
     TypeError),
    ("create-2**31-on-engine",
     Act(lambda bind, ctx: create_tenant_partition_async(ctx.aengine, TDOCS, 2**31)),
     f"tenant 2147483648 {_INT_RANGE}", PartitionError),
    ("create-bind-str", Act(lambda bind, ctx: create_tenant_partition_async("engine", TDOCS, 2)),
     "expected an AsyncEngine, AsyncConnection or AsyncSession, got str", TypeError),
    ("create-range-parent",
     Act(lambda bind, ctx: create_tenant_partition_async(bind, TRANGE, 1)),
     "is RANGE-partitioned", PartitionError),
    ("detach-session-concurrently",
     Act(lambda bind, ctx: detach_tenant_partition_async(
         AsyncSession(bind=bind), TDOCS, 7, name="tdocs_held", concurrently=True)),
     _NO_TX, PartitionError),
    ("detach-transaction-concurrently",
     Act(lambda bind, ctx: detach_tenant_partition_async(
         bind, TDOCS, 7, name="tdocs_held", concurrently=True)),
     _NO_TX, PartitionError),
    ("drop-nul", Act(lambda bind, ctx: drop_tenant_partition_async(bind, TTEXT, "\x00")),
     "contains a NUL byte", PartitionError),
    ("drop-detached-int",
     Act(lambda bind, ctx: drop_tenant_partition_async(bind, TDOCS, 7, name="tdocs_held",
                                                       detached=1)),
     "detached must be True or False, got int 1", TypeError),
]))
# fmt: on

# fmt: off
ASYNC_BUILD_CASES: list[Bad] = _rows([
    ("bind-str",
     Act(lambda bind, ctx: _async_build("engine", HnswIndex("ix_x", _ix(ctx).c.vc))),
     "expected an AsyncEngine or AsyncConnection, got str", TypeError),
    ("concurrently-in-transaction",
     Act(lambda bind, ctx: _async_build(
         bind, HnswIndex("ix_cc", _ix(ctx).c.vc, concurrently=True))),
     "cannot run inside a transaction block", IDE),
    ("hnsw-sparse-over-1000-non-zeros",
     Act(lambda bind, ctx: _async_build(
         ctx.aengine, HnswIndex("ix_s", _ix(ctx).c.s, metric="l2"))),
     "sparsevec cannot have more than 1000 non-zero elements for hnsw index", SERVER),
    ("hnsw-sparse-over-1000-non-zeros-concurrently",
     Act(lambda bind, ctx: _async_build(
         ctx.aengine, HnswIndex("ix_sc", _ix(ctx).c.s, metric="l2", concurrently=True))),
     "sparsevec cannot have more than 1000 non-zero elements for hnsw index", SERVER),
])
# fmt: on


def _async_engine_fragment(case: Bad) -> Bad:
    """An AsyncEngine passed where an AsyncConnection is wanted is named so."""
    if getattr(case.value, "bind", None) == "engine":
        return Bad(case.id, case.value, "got AsyncEngine", case.exc)
    return case


async def _async_entry_points(ctx: Ctx) -> list[str]:
    aengine = ctx.aengine
    ctx.ix_table = ix = _index_table()
    async with aengine.begin() as conn:
        await conn.run_sync(MD.create_all, tables=[ITEMS, FM])
        await conn.run_sync(ix.create)
    ctx.prepare(("items", "fm", "ix_items"), (FM_SEED, IX_SEED))
    install_search_options(aengine)  # (idempotent: the plugin and the dialect install it)
    problems: list[str] = []

    async def connect() -> Any:
        return await aengine.connect()

    async def session() -> Any:
        return AsyncSession(aengine)

    async def insert_bad(bind: Any, case: Bad) -> None:
        await bind.execute(insert(ITEMS), {case.col: case.make()})

    async def insert_good(bind: Any) -> None:
        await bind.execute(insert(ITEMS), dict(GOOD))

    problems += await arun_cases(
        ctx,
        "async core insert",
        ENTRY_POINTS["async core insert"],
        insert_bad,
        insert_good,
        connect,
    )

    async def flush_bad(session: AsyncSession, case: Bad) -> None:
        session.add(Item(**GOOD))
        session.add(Item(**{case.col: case.make()}))
        await session.flush()

    async def flush_good(session: AsyncSession) -> None:
        session.add(Item(**GOOD))
        await session.flush()

    problems += await arun_cases(
        ctx,
        "async orm add/flush",
        ENTRY_POINTS["async orm add/flush"],
        flush_bad,
        flush_good,
        session,
    )

    async def prepared_bad(bind: Any, case: Bad) -> None:
        await PREPARED[case.col].all_async(bind, q=case.make())

    async def prepared_good(bind: Any) -> None:
        await PREPARED["v"].scalars_async(bind, q=GOOD["v"])

    problems += await arun_cases(
        ctx,
        "async PreparedQuery",
        ENTRY_POINTS["async PreparedQuery"],
        prepared_bad,
        prepared_good,
        connect,
    )

    async def copy_bad(bind: Any, case: Bad) -> None:
        call: Copy = case.value
        target = _copy_target(bind, ctx, call, session=AsyncSession)
        await copy_rows_async(
            target, call.target, call.data(), chunk_rows=call.chunk_rows, progress=False
        )

    async def copy_good(bind: Any) -> None:
        assert await copy_rows_async(bind, ITEMS, {"v": np.ones((2, 3))}, progress=False) == 2

    copy_cases = [_async_engine_fragment(c) for c in COPY_CASES]
    problems += await arun_cases(ctx, "copy_rows_async", copy_cases, copy_bad, copy_good, connect)

    async def fetch_bad(bind: Any, case: Bad) -> None:
        call: Fetch = case.value
        await fetch_matrix_async(
            {"conn": bind, "engine": aengine, "none": None}[call.bind], call.target
        )

    async def fetch_good(bind: Any) -> None:
        assert (await fetch_matrix_async(bind, select(FM.c.h).order_by(FM.c.id))).shape == (2, 3)

    fetch_cases = [_async_engine_fragment(c) for c in FETCH_CASES]
    problems += await arun_cases(
        ctx, "fetch_matrix_async", fetch_cases, fetch_bad, fetch_good, connect
    )

    async def search_good(bind: Any) -> None:
        async with search_settings(bind, ef_search=41):
            got = (await bind.execute(select(func.current_setting("hnsw.ef_search")))).scalar_one()
            assert got == "41", got

    problems += await arun_cases(
        ctx,
        "async search_settings",
        ASYNC_SEARCH_CASES,
        None,
        search_good,
        connect,
    )

    async def build_good(bind: Any) -> None:
        await build_vector_index_async(
            bind, HnswIndex("ix_good", ix.c.vc, m=4, ef_construction=8), progress=False
        )

    problems += await arun_cases(
        ctx,
        "build_vector_index_async",
        ASYNC_BUILD_CASES,
        None,
        build_good,
        connect,
    )

    async def filtered_good(bind: Any) -> None:
        assert (await _afs(bind)).rows == [], "the async test's items table is empty"

    problems += await arun_cases(
        ctx, "filtered_search_async", ASYNC_FILTERED_CASES, None, filtered_good, connect
    )

    async with aengine.begin() as conn:
        await conn.run_sync(TMD.create_all)
    for sql in T_SEED:
        ctx.raw.execute(sql)
    ctx.tables += ("tdocs", "ttext")
    ctx.seed += T_SEED
    ctx.baseline = ctx.state()

    async def tenant_good(bind: Any) -> None:
        made = await create_tenant_partition_async(bind, TDOCS, 1)
        assert made.name == "tdocs_1", made

    problems += await arun_cases(
        ctx, "tenant partitions (async)", ASYNC_TENANT_CASES, None, tenant_good, connect
    )
    return problems


# --- inputs that once exposed defects (fixed): kept apart, each with what went wrong -----------


@dataclass(frozen=True)
class Defect:
    entry: str  # a key of RUNNERS (run in every mode), or "values" (run once)
    case: Bad
    reason: str


def _bq_index(ctx: Ctx) -> Index:
    return HnswIndex("ix_bq", binary_quantize(_ix(ctx).c.v), metric="hamming")


DEFECTS: list[Defect] = [
    Defect(
        "core insert",
        Bad("v-python-int-beyond-float64", [10**400, 0, 0], "out of range for type vector"),
        "a Python int beyond float64 raises a bare OverflowError ('int too large to convert "
        "to float') from codecs.check_dense instead of InvalidVectorError",
    ),
    Defect(
        "core insert",
        Bad("v-decimal-snan", [decimal.Decimal("sNaN"), 0, 0], "NaN not allowed in vector"),
        "Decimal('sNaN') raises a plain ValueError ('cannot convert signaling NaN to float') "
        "naming neither the type nor the element",
    ),
    Defect(
        "core insert",
        Bad(
            "v-decimal-beyond-float64",
            [decimal.Decimal("1e400"), 0, 0],
            "out of range for type vector",
        ),
        "Decimal('1E+400') (finite) is reported as 'infinite value not allowed in vector': it "
        "becomes inf in float64 before the check",
    ),
    Defect(
        "core insert",
        Bad("v-text-underscore-digits", "[1_0,2,3]", "invalid input syntax"),
        "text '[1_0,2,3]' is accepted and stored as [10,2,3] (Python float() accepts '_'); "
        "pgvector refuses it: invalid input syntax for type vector",
    ),
    Defect(
        "core insert",
        Bad("v-text-fullwidth-digit", "[１,2,3]", "invalid input syntax"),
        "text '[１,2,3]' (a full-width digit) is accepted and stored as [1,2,3]; pgvector "
        "refuses it: invalid input syntax for type vector",
    ),
    Defect(
        "core insert",
        Bad("s-mapping-list-value", {0: [1, 2]}, "expected numeric values", col="s"),
        "SparseVector({0: [1, 2]}, 5) is built with 2-D values; binding it raises a bare "
        "TypeError ('must be real number, not list') on the text path and reaches the server "
        "(DataError 'incorrect binary data format') on psycopg with the plugin/dialect",
    ),
    Defect(
        "core insert",
        Bad("s-mapping-one-element-list-value", {0: [1.0]}, "expected numeric values", col="s"),
        "{0: [1.0]} is stored as {0: 1.0} on psycopg with the plugin/dialect and raises a "
        "bare TypeError on the text path",
    ),
    Defect(
        "core insert",
        Bad("s-mapping-tuple-key", {(0, 1): 1.0}, "indices must be integers", col="s"),
        "a tuple key raises a bare IndexError ('index 1 is out of bounds for axis 0 with "
        "size 1') from SparseVector",
    ),
    Defect(
        "core insert",
        Bad("s-index-beyond-int64", {10**30: 1.0}, "index out of bounds", col="s"),
        "an int index beyond int64 is refused as 'indices must be integers, got dtype object'",
    ),
    Defect(
        "core insert",
        Bad("s-value-beyond-float64", {0: 10**400}, "out of range for type sparsevec", col="s"),
        "an int value beyond float64 is refused as 'expected numeric values, got dtype object'",
    ),
    Defect(
        "PreparedQuery",
        Bad(
            "engine-as-bind",
            Act(lambda bind, ctx: PREPARED["v"].all(ctx.engine, q=GOOD["v"])),
            "got Engine",
            TypeError,
        ),
        "PreparedQuery.all(engine) raises AttributeError (''Engine' object has no attribute "
        "'in_transaction'') instead of naming the Connection or Session it takes",
    ),
    Defect(
        "search settings (connection)",
        Bad(
            "with-on-engine",
            Act(lambda bind, ctx: _with_settings(ctx.engine, ef_search=10)),
            "Engine",
            TypeError,
            absent="use 'async with'",
        ),
        "'with search_settings(engine)' says \"use 'async with' for Engine\", and 'async "
        "with' then says \"use 'with' for Engine\": neither takes an Engine",
    ),
    Defect(
        "search settings (connection)",
        Bad(
            "statement-option-int",
            Act(lambda bind, ctx: _option_on_statement(bind, 5)),
            "vector_search",
            SSE,
        ),
        "execution_options(vector_search=5) raises a bare TypeError ('int' object is not "
        "iterable)",
    ),
    Defect(
        "search settings (connection)",
        Bad(
            "statement-option-str",
            Act(lambda bind, ctx: _option_on_statement(bind, "ef_search=10")),
            "vector_search",
            SSE,
        ),
        "execution_options(vector_search='ef_search=10') raises a bare ValueError "
        "('dictionary update sequence element #0 has length 1; 2 is required')",
    ),
    Defect(
        "build_vector_index",
        Bad(
            "unattached-index",
            Act(lambda bind, ctx: _build(bind, HnswIndex("ix_u", "v", metric="l2"))),
            "attached",
            (IDE, TypeError, ValueError),
        ),
        "build_vector_index of an index declared by column name and never attached to a "
        "table raises AttributeError (''NoneType' object has no attribute 'schema'')",
    ),
    Defect(
        "build_vector_index",
        Bad(
            "bind-str",
            Act(lambda bind, ctx: _build("engine", HnswIndex("ix_b", _ix(ctx).c.vc))),
            "got str",
            TypeError,
        ),
        "build_vector_index('engine', index) raises AttributeError (''str' object has no "
        "attribute '_run_ddl_visitor'') where build_vector_index_async raises TypeError",
    ),
    Defect(
        "build_vector_index",
        Bad(
            "binary-quantize-without-cast",
            Act(lambda bind, ctx: _build(bind, _bq_index(ctx))),
            "column does not have dimensions",
            IDE,
        ),
        "HnswIndex on binary_quantize(col) (typed Bit(3) by vecalchemy) passes the "
        "declaration and dialect checks; the server refuses it: 'column does not have "
        "dimensions' (DataError)",
    ),
    Defect(
        "copy_rows",
        Bad(
            "text-in-integer-column",
            Copy(lambda: {"id": [1, "x"], "v": np.ones((2, 3))}),
            "column 'id'",
            (InvalidVectorError, TypeError, ValueError),
        ),
        "a str in an integer column's list raises the binary dumper's bare TypeError "
        "(\"'str' object cannot be interpreted as an integer\"), naming neither the column "
        "nor the row (a float array there is refused as 'id (integer): expected integers')",
    ),
    Defect(
        "values",
        Bad(
            "index-binary-quantize-without-cast",
            Act(lambda: HnswIndex("ix", binary_quantize(_decl().c.v), metric="hamming")),
            "column does not have dimensions",
            IDE,
        ),
        "HnswIndex(binary_quantize(col)) is accepted when declared; pgvector needs the cast "
        "to bit(n) (README: 'a column without dimensions' is checked at declaration)",
    ),
    Defect(
        "values",
        Bad(
            "index-subvector-without-cast",
            Act(lambda: HnswIndex("ix", subvector(_decl().c.v, 1, 2), metric="l2")),
            "column does not have dimensions",
            IDE,
        ),
        "HnswIndex(subvector(col, 1, 2)) is accepted when declared (typed Vector(2)); the "
        "server refuses: column does not have dimensions",
    ),
    Defect(
        "values",
        Bad(
            "index-l2-normalize-without-cast",
            Act(lambda: HnswIndex("ix", l2_normalize(_decl().c.v), metric="l2")),
            "column does not have dimensions",
            IDE,
        ),
        "HnswIndex(l2_normalize(col)) is accepted when declared (typed Vector(3)); the "
        "server refuses: column does not have dimensions",
    ),
    Defect(
        "values",
        Bad(
            "alembic-concurrently-str",
            _offline(concurrently="no", **_L2),
            "concurrently must be a bool",
            IDE,
        ),
        "op.create_vector_index(concurrently='no') is accepted as True and emits CREATE "
        "INDEX CONCURRENTLY (HnswIndex refuses a non-bool concurrently)",
    ),
    Defect(
        "values",
        Bad(
            "max_scan_tuples-2**31",
            _expression(lambda: SearchSettings(max_scan_tuples=2**31)),
            '"hnsw.max_scan_tuples" (1 .. 2147483647)',
            SSE,
        ),
        "the range is printed as '(1 .. 2.14748e+09)' (format :g), not the exact limit "
        "2147483647 that PostgreSQL names",
    ),
]


def _kept_apart(entry: str, cases: list[Bad], reasons: dict[str, str]) -> list[Bad]:
    """``cases`` without those that exposed a defect, which join ``DEFECTS`` with
    ``reasons[id]``."""
    assert set(reasons) <= {c.id for c in cases}, set(reasons) - {c.id for c in cases}
    DEFECTS.extend(Defect(entry, c, reasons[c.id]) for c in cases if c.id in reasons)
    return [c for c in cases if c.id not in reasons]


_SENT_FIRST = "refused only when bound, after "
FILTERED_CASES = _kept_apart(
    "filtered_search",
    FILTERED_CASES,
    {
        "k-beyond-bigint": "k=2**63 is sent: the server refuses the LIMIT (DataError 'bigint out "
        "of range')",
        "settings-str": "settings='ef_search=10' raises a bare ValueError ('dictionary update "
        "sequence element #0 has length 1; 2 is required')",
        "settings-pairs": "settings=[('ef_search', 10)] (not a mapping) is accepted",
        "limits-int": "limits=5 raises a bare TypeError (''int' object is not iterable')",
        "stmt-fetch": "a stmt with FETCH FIRST passes the ORDER BY/LIMIT/OFFSET check and is run",
        "stmt-distinct": "a SELECT DISTINCT stmt is sent after an EXPLAIN; the server refuses it "
        "('for SELECT DISTINCT, ORDER BY expressions must appear in select list')",
        "stmt-group-by": "a GROUP BY stmt is sent; the server refuses it (GroupingError: the "
        "distance column is not grouped)",
        "distance-id-column": "distance=Item.id is accepted: rows ordered by id are returned as "
        "the nearest, with the id as their 'distance'",
        "distance-vector-column": "distance=Item.v (the column, no query) is bound as "
        "'v + 0': InvalidVectorError 'expected a list, tuple or 1-D NumPy array of numbers, "
        "got int', naming neither distance nor the column",
        "distance-comparison": "distance=(Item.v == q) is sent; the server refuses it "
        "('operator does not exist: boolean + integer')",
        "distance-literal": "distance=literal(1.0) is accepted: rows in any order are returned "
        "as the nearest",
        "distance-nan-query": _SENT_FIRST + "the EXPLAIN of stmt was sent",
    },
)
HYBRID_CASES = _kept_apart(
    "values",
    HYBRID_CASES,
    {
        "key-name": "hybrid_search(key='id') raises AttributeError (''str' object has no "
        "attribute 'label'')",
        "key-none": "key=None raises AttributeError (''NoneType' object has no attribute "
        "'label'')",
        "dense-metric-list": "metric=['l2'] raises a bare TypeError ('unhashable type: 'list'')",
        "text-document-name": "text=('body', q) raises AttributeError (''str' object has no "
        "attribute 'op'')",
        "dense-query-none": "dense=(col, None) is accepted: every row's distance is NULL and the "
        "dense leg ranks rows by key, a silent wrong result",
        "where-strings": "where=['id > 0'] raises SQLAlchemy's ArgumentError ('Textual SQL "
        "expression ... should be explicitly declared'), not the where= message",
        "stmt-str": "stmt='items' raises SQLAlchemy's ArgumentError, naming neither stmt nor "
        "what it takes",
        "name-int": "name=5 is accepted (CTE names '5_dense_top')",
        "name-over-63-bytes": "a name whose CTE names pass 63 bytes is accepted and sent "
        "(PostgreSQL truncates identifiers to 63 bytes)",
    },
)
HYBRID_EXEC_CASES = _kept_apart(
    "hybrid_search (executed)",
    HYBRID_EXEC_CASES,
    {
        "text-query-nul": "a NUL in the text query reaches the driver: psycopg raises DataError "
        "('PostgreSQL text fields cannot contain NUL'); asyncpg sends it and the server "
        "refuses it ('invalid byte sequence for encoding \"UTF8\": 0x00')",
        "text-integer-document": "text=(Item.id, q) is sent; the server refuses it ('function "
        "ts_rank_cd(integer, tsquery) does not exist')",
    },
)
TUNING_CASES = _kept_apart(
    "tune_search_settings",
    TUNING_CASES,
    {
        "query_for-not-callable": "query_for=5 raises a bare TypeError (''int' object is not "
        "callable')",
        "queries-none": "queries=None raises a bare TypeError (''NoneType' object is not "
        "iterable')",
        "queries-one-vector-as-list": "one vector given as queries ([1.0, 2.0, 3.0]) is taken as "
        "three queries, refused when the first float is bound ('expected a list ... got float'), "
        "after the exact pass's settings were sent",
        "queries-nan": _SENT_FIRST + "the exact pass's settings (set_config) were sent",
    },
)
STORAGE_CASES = _kept_apart(
    "vector storage",
    STORAGE_CASES,
    {
        "column_storage-table-none": "column_storage(bind, None, 'v') raises AttributeError "
        "(''NoneType' object has no attribute 'replace'')",
        "column_storage-table-nul": "a NUL in the table name reaches the driver: psycopg raises "
        "DataError ('PostgreSQL text fields cannot contain NUL'), other drivers send it",
        "column_storage-column-nul": "a NUL in the column name reaches the driver (as above)",
        "column_storage-column-int": "column_name=1 is sent and answered 'no column 1 in table'",
    },
)
STORAGE_VALUE_CASES = _kept_apart(
    "values",
    STORAGE_VALUE_CASES,
    {
        "advice-nnz-over-dim": "storage_advice(SparseVec(5), nnz=6) is accepted (6 non-zeros in 5 "
        "dimensions)",
        "advice-nnz-over-16000": "nnz=16001 is accepted: pgvector's sparsevec holds at most "
        "16000 non-zeros (SPARSEVEC_MAX_NNZ)",
    },
)
TENANT_VALUE_CASES = _kept_apart(
    "values",
    TENANT_VALUE_CASES,
    {
        "name-parent-column": "tenant_partition_name(Doc.__table__.c.t, 1) raises KeyError "
        "('partition_by')",
        "name-parent-str": "tenant_partition_name('tdocs', 1) raises AttributeError (''str' "
        "object has no attribute 'dialect_options'')",
        "search-stmt-str": "tenant_search('SELECT 1', ...) raises AttributeError (''str' object "
        "has no attribute 'where'')",
        "name-plain-parent": "a table that is not partitioned is said to be 'not partitioned by "
        "columns', as is one partitioned by an expression",
    },
)
TENANT_CASES = _kept_apart(
    "tenant partitions",
    TENANT_CASES,
    {
        "detach-concurrently-str": "concurrently='yes' is taken as True: on an Engine it runs "
        "DETACH PARTITION CONCURRENTLY",
        "drop-detached-str": "detached='no' is taken as True: the attached-or-not check is "
        "inverted",
        "create-bind-str": "create_tenant_partition('engine', ...) says 'expected a SQLAlchemy "
        "Connection or Session', though it takes an Engine too",
    },
)
DB_DEFECTS = [d for d in DEFECTS if d.entry != "values"]
#: the defects were in code every driver shares; they are run on the three bind paths:
#: psycopg's text format, psycopg's binary adapters and asyncpg's codecs
DEFECT_MODES = ("text", "plugin", "asyncpg")
VALUE_DEFECTS = [d for d in DEFECTS if d.entry == "values"]


# --- the entry points and their corpora ---------------------------------------------------------

COMPARATOR_CASES = _comparator_cases() + COMPARATOR_MISUSE

#: entry point -> its bad inputs (several entry points share the value corpus)
ENTRY_POINTS: dict[str, list[Bad]] = {
    "core insert": VALUES,
    "core executemany": _share(0, 3),
    "orm add/flush": _share(1, 3),
    "orm bulk insert": _share(2, 3),
    "core update": _share(1, 4),
    "comparators": COMPARATOR_CASES,
    "functions": FUNCTION_CASES,
    "PreparedQuery": _share(1, 2) + PREPARED_MISUSE,
    "copy_rows": COPY_CASES,
    "fetch_matrix": FETCH_CASES,
    "search settings (connection)": SEARCH_CONN_CASES,
    "SearchSettings / search_settings (values)": SEARCH_VALUE_CASES,
    "index declarations": INDEX_CASES,
    "build_vector_index": BUILD_CASES,
    "alembic ops (online)": ALEMBIC_ONLINE,
    "alembic ops (offline)": ALEMBIC_OFFLINE,
    "type construction": TYPE_CASES,
    "SparseVector": SPARSE_VECTOR_CASES,
    "DenseParam / HalfVecParam": PARAM_CASES,
    "plain psycopg (register_adapters)": PLAIN_PSYCOPG_CASES,
    "exec_driver_sql bare ndarray": DRIVER_SQL_CASES,
    "helpers": HELPER_CASES,
    "async core insert": _share(0, 8),
    "async orm add/flush": _share(3, 8),
    "async PreparedQuery": _share(5, 8),
    "copy_rows_async": COPY_CASES,
    "fetch_matrix_async": FETCH_CASES,
    "async search_settings": ASYNC_SEARCH_CASES,
    "build_vector_index_async": ASYNC_BUILD_CASES,
    "filtered_search": FILTERED_CASES,
    "hybrid_search (executed)": HYBRID_EXEC_CASES,
    "hybrid_search (values)": HYBRID_CASES,
    "tune_search_settings": TUNING_CASES,
    "vector storage": STORAGE_CASES,
    "storage_advice / storage= (values)": STORAGE_VALUE_CASES,
    "tenant partitions": TENANT_CASES,
    "tenant_partition_name / tenant_search (values)": TENANT_VALUE_CASES,
    "filtered_search_async": ASYNC_FILTERED_CASES,
    "tenant partitions (async)": ASYNC_TENANT_CASES,
    "former defects": [d.case for d in DEFECTS],
}

#: each list of distinct inputs once (several entry points share the value corpus, and the
#: async entry points the lists of the sync ones)
CORPORA: dict[str, list[Bad]] = {
    "values bound to a column": VALUES,
    "comparator misuse": COMPARATOR_MISUSE,
    "PreparedQuery misuse": PREPARED_MISUSE,
    **{
        name: ENTRY_POINTS[name]
        for name in (
            "functions",
            "copy_rows",
            "fetch_matrix",
            "search settings (connection)",
            "SearchSettings / search_settings (values)",
            "index declarations",
            "build_vector_index",
            "alembic ops (online)",
            "alembic ops (offline)",
            "type construction",
            "SparseVector",
            "DenseParam / HalfVecParam",
            "plain psycopg (register_adapters)",
            "exec_driver_sql bare ndarray",
            "helpers",
            "async search_settings",
            "build_vector_index_async",
            "filtered_search",
            "hybrid_search (executed)",
            "hybrid_search (values)",
            "tune_search_settings",
            "vector storage",
            "storage_advice / storage= (values)",
            "tenant partitions",
            "tenant_partition_name / tenant_search (values)",
            "filtered_search_async",
            "tenant partitions (async)",
            "former defects",
        )
    },
}


# --- the tests ----------------------------------------------------------------------------------


@pytest.fixture
def ctx(engine: Engine, raw_conn: psycopg.Connection, mode: str) -> Ctx:
    return Ctx(engine, raw_conn, mode)


def test_the_corpus_holds_at_least_300_distinct_bad_inputs() -> None:
    for name, cases in ENTRY_POINTS.items():
        ids = [c.id for c in cases]
        assert len(ids) == len(set(ids)), f"{name}: duplicated ids"
    distinct = sum(len(cases) for cases in CORPORA.values())
    pairs = sum(len(cases) for cases in ENTRY_POINTS.values())
    per_entry = "\n".join(f"  {name}: {len(cases)}" for name, cases in ENTRY_POINTS.items())
    assert distinct >= 300, f"{distinct} distinct inputs ({pairs} with entry points):\n{per_entry}"
    # every entry point has a corpus, and every database entry point a runner
    assert all(ENTRY_POINTS.values())
    assert set(RUNNERS) <= set(ENTRY_POINTS)


def test_core_insert(ctx: Ctx) -> None:
    report(core_insert(ctx, VALUES))


def test_core_executemany(ctx: Ctx) -> None:
    report(core_executemany(ctx, ENTRY_POINTS["core executemany"]))


def test_orm_add_flush(ctx: Ctx) -> None:
    report(orm_flush(ctx, ENTRY_POINTS["orm add/flush"]))


def test_orm_bulk_insert(ctx: Ctx) -> None:
    report(orm_bulk(ctx, ENTRY_POINTS["orm bulk insert"]))


def test_core_update(ctx: Ctx) -> None:
    report(core_update(ctx, ENTRY_POINTS["core update"]))


def test_comparators(ctx: Ctx) -> None:
    report(comparators(ctx, COMPARATOR_CASES))


def test_functions(ctx: Ctx) -> None:
    report(functions(ctx, FUNCTION_CASES))


def test_prepared_query(ctx: Ctx) -> None:
    report(prepared(ctx, ENTRY_POINTS["PreparedQuery"]))


def test_copy_rows(ctx: Ctx) -> None:
    report(copy(ctx, COPY_CASES))


def test_fetch_matrix(ctx: Ctx) -> None:
    report(fetch(ctx, FETCH_CASES))


def test_search_settings_on_a_connection(ctx: Ctx) -> None:
    report(search_conn(ctx, SEARCH_CONN_CASES))


def test_build_vector_index(ctx: Ctx) -> None:
    report(builds(ctx, BUILD_CASES))


def test_alembic_ops_online(ctx: Ctx) -> None:
    report(alembic_online(ctx, ALEMBIC_ONLINE))


def test_filtered_search(ctx: Ctx) -> None:
    report(filtered(ctx, FILTERED_CASES))


def test_hybrid_search_executed(ctx: Ctx) -> None:
    report(hybrid_exec(ctx, HYBRID_EXEC_CASES))


def test_tune_search_settings(ctx: Ctx) -> None:
    report(tuning(ctx, TUNING_CASES))


def test_vector_storage(ctx: Ctx) -> None:
    report(storage(ctx, STORAGE_CASES))


def test_tenant_partitions(ctx: Ctx) -> None:
    report(tenants(ctx, TENANT_CASES))


def test_exec_driver_sql_bare_ndarray(ctx: Ctx) -> None:
    if ctx.mode not in _BARE_MODES:
        pytest.skip(
            f"{ctx.mode}: a bare NumPy parameter is bound by vecalchemy's psycopg 3 adapters, "
            "which the plugin and the dialect register"
        )
    report(driver_sql(ctx, DRIVER_SQL_CASES))


@pytest.mark.parametrize("mode", ASYNC_MODES)
async def test_async_entry_points(
    vector_database_url: str, vector_schema: str, raw_conn: psycopg.Connection, mode: str
) -> None:
    aengine = make_async_engine(vector_database_url, vector_schema, mode)
    try:
        ctx = Ctx(aengine.sync_engine, raw_conn, mode, aengine=aengine)
        problems = await _async_entry_points(ctx)
    finally:
        await aengine.dispose()
    report(problems)


# value-only entry points: nothing is sent, so they run once


def test_index_declarations() -> None:
    report(run_values("index declarations", INDEX_CASES))


def test_search_settings_values() -> None:
    report(run_values("SearchSettings", SEARCH_VALUE_CASES))


def test_type_construction() -> None:
    report(run_values("type construction", TYPE_CASES))


def test_sparse_vector_construction() -> None:
    report(run_values("SparseVector", SPARSE_VECTOR_CASES))


def test_psycopg_params() -> None:
    report(run_values("DenseParam / HalfVecParam", PARAM_CASES))


def test_helpers() -> None:
    report(run_values("helpers", HELPER_CASES))


def test_hybrid_search_values() -> None:
    report(run_values("hybrid_search", HYBRID_CASES))


def test_storage_values() -> None:
    report(run_values("storage_advice / storage=", STORAGE_VALUE_CASES))


def test_tenant_values() -> None:
    report(run_values("tenant_partition_name / tenant_search", TENANT_VALUE_CASES))


def test_alembic_ops_offline() -> None:
    OFFLINE.printed()
    report(run_values("alembic ops (offline)", ALEMBIC_OFFLINE, after=OFFLINE.printed))


def test_plain_psycopg_register_adapters(
    vector_database_url: str, vector_schema: str, raw_conn: psycopg.Connection
) -> None:
    """A bare ndarray parameter on a plain psycopg connection (psycopg 3 only, and not
    through SQLAlchemy, so it runs once)."""
    raw_conn.execute("CREATE TABLE plain (id serial PRIMARY KEY, v vector)")
    good = np.array([1.0, 2.0], np.float32)
    problems = []
    with psycopg.connect(
        libpq_conninfo(vector_database_url), options=f"-csearch_path={vector_schema},public"
    ) as conn:
        register_adapters(conn)
        for case in PLAIN_PSYCOPG_CASES:
            label = f"plain psycopg {case.id}"
            error = None
            try:
                conn.execute("INSERT INTO plain (v) VALUES (%s)", [case.value])
                conn.commit()
            except Exception as e:
                error = e
            problem = judge(case, error)
            if problem is not None:
                problems.append(f"{label}: {problem}")
            conn.rollback()
            try:
                conn.execute("INSERT INTO plain (v) VALUES (%s)", [good])
                conn.rollback()
            except Exception as e:
                problems.append(f"{label}: unusable afterwards: {_short(e)}")
            count = raw_conn.execute("SELECT count(*) FROM plain").fetchone()
            if count != (0,):
                problems.append(f"{label}: wrote {count} rows")
                raw_conn.execute("TRUNCATE plain")
    report(problems)


@pytest.mark.parametrize(
    "defect", [pytest.param(d, id=f"{d.entry}:{d.case.id}") for d in DB_DEFECTS]
)
@pytest.mark.parametrize("mode", DEFECT_MODES)
def test_former_defect_stays_fixed(ctx: Ctx, defect: Defect) -> None:
    report(RUNNERS[defect.entry](ctx, [defect.case]))


@pytest.mark.parametrize("defect", [pytest.param(d, id=d.case.id) for d in VALUE_DEFECTS])
def test_former_value_defect_stays_fixed(defect: Defect) -> None:
    OFFLINE.printed()
    report(run_values("values", [defect.case], after=OFFLINE.printed))
