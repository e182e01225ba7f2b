"""Where PostgreSQL keeps a vector: inline in the heap row, or out of line (TOAST).

PostgreSQL compresses or moves a row's wide values out of line once the row exceeds
``TOAST_TUPLE_THRESHOLD`` (2032 bytes with 8 kB pages), until it fits
``TOAST_TUPLE_TARGET`` (2032 too), as the column's storage mode allows (PostgreSQL
documentation, "TOAST"; src/include/access/heaptoast.h). pgvector declares ``vector``,
``halfvec`` and ``sparsevec`` ``STORAGE external`` (out of line, not compressed, since
0.6.0); PostgreSQL's ``bit`` is ``extended`` (compressed first, then out of line). A
``vector`` of more than ~500 dimensions therefore lives in the TOAST table, and the heap
row keeps an 18-byte pointer.

Why it matters: a sequential scan's cost counts the heap's pages, not the TOAST table's,
so the heap looks cheap and the planner can choose ``Seq Scan`` + ``Sort`` over the HNSW
or IVFFlat index for an ``ORDER BY <distance> LIMIT k`` query, and run it ~20x slower
(pgvector issues #784, #821, #835). ``ALTER TABLE ... ALTER COLUMN ... SET STORAGE
PLAIN`` keeps the vectors in the heap (pgvector README), where the scan's cost sees
them; the whole row must then fit one page (``MaxHeapTupleSize``, 8160 bytes), or the
INSERT fails with ``row is too big``.

- :func:`storage_advice`: does a column's vector fit inline as it is, would ``PLAIN``
  help, the most dimensions each way (:class:`StorageAdvice`).
- ``Vector(768, storage="plain")``: the column option; ``CREATE TABLE`` (``create_all``,
  Alembic's ``op.create_table``) is followed by ``ALTER TABLE ... SET STORAGE PLAIN``.
- :func:`set_vector_storage`: the same for an existing column, returning the previous
  mode; :func:`count_out_of_line`: how many stored values are still in the TOAST table
  (``SET STORAGE`` changes no stored value: rewrite the rows, e.g. ``VACUUM FULL``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Table, func, select, text
from sqlalchemy import types as sqltypes
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from . import sqltext
from .connections import sync_connection
from .facts import BIT_MAX_LENGTH, MAX_DIM, SPARSEVEC_MAX_NNZ
from .storage_ddl import STORAGE_MODES, check_storage, set_storage_statement
from .types import VectorType

__all__ = [
    "STORAGE_MODES",
    "DEFAULT_STORAGE",
    "TOAST_TUPLE_THRESHOLD",
    "MAX_HEAP_TUPLE_SIZE",
    "HEAP_TUPLE_HEADER",
    "StorageAdvice",
    "storage_advice",
    "value_bytes",
    "check_storage",
    "set_vector_storage",
    "column_storage",
    "count_out_of_line",
    "set_storage_statement",
]

#: the storage each type declares (``pg_type.typstorage``): pgvector's sql/vector.sql
#: (``STORAGE = external``), PostgreSQL's ``bit`` (``extended``)
DEFAULT_STORAGE = {
    "vector": "external",
    "halfvec": "external",
    "sparsevec": "external",
    "bit": "extended",
}

#: a row longer than this (bytes, 8 kB pages) is compressed / moved out of line as the
#: columns' storage allows: ``MaximumBytesPerTuple(TOAST_TUPLES_PER_PAGE = 4)``,
#: src/include/access/heaptoast.h
TOAST_TUPLE_THRESHOLD = 2032
#: the longest row a heap page holds (``MaxHeapTupleSize``, src/include/access/htup_details.h:
#: ``BLCKSZ - MAXALIGN(SizeOfPageHeaderData + sizeof(ItemIdData))``); a longer PLAIN
#: row fails with ``row is too big`` (54000)
MAX_HEAP_TUPLE_SIZE = 8160
#: the row header, ``MAXALIGN(SizeofHeapTupleHeader = 23)``, with room for the null
#: bitmap of up to 8 columns
HEAP_TUPLE_HEADER = 24

#: per type: (bytes per element, fixed bytes), the 4-byte varlena header included:
#: vector ``int16 dim, int16 unused, float4[dim]`` (src/vector.h); halfvec the same with
#: binary16; sparsevec ``int32 dim, nnz, unused, int32[nnz] indices, float4[nnz]``
#: (src/sparsevec.h; elements are non-zeros); bit ``int32 bit_len`` + ``ceil(n/8)`` bytes
#: (PostgreSQL src/include/utils/varbit.h; its element is a byte of 8 bits)
_LAYOUT = {"vector": (4, 8), "halfvec": (2, 8), "sparsevec": (8, 16), "bit": (1, 8)}
#: the most elements a value may hold (typmod / nnz limits of pgvector and PostgreSQL)
_MAX_ELEMENTS = {
    "vector": MAX_DIM,
    "halfvec": MAX_DIM,
    "sparsevec": 16000,  # SPARSEVEC_MAX_NNZ, src/sparsevec.h
    "bit": BIT_MAX_LENGTH,
}
#: (type, bytes, alignment) of fixed-width column types, for the other columns of a row
#: (``pg_type.typlen`` / ``typalign``; ``Float`` counted as double precision)
_FIXED_WIDTH: tuple[tuple[type[Any], int, int], ...] = (
    (sqltypes.SmallInteger, 2, 2),
    (sqltypes.BigInteger, 8, 8),
    (sqltypes.Integer, 4, 4),
    (sqltypes.REAL, 4, 4),
    (sqltypes.Float, 8, 8),
    (sqltypes.Boolean, 1, 1),
    (sqltypes.DateTime, 8, 8),
    (sqltypes.Date, 4, 4),
    (sqltypes.Time, 8, 8),
    (sqltypes.Interval, 16, 8),
    (sqltypes.Uuid, 16, 1),
)


def value_bytes(sql_type: str, n: int) -> int:
    """Bytes of one stored value, uncompressed, with its 4-byte varlena header:
    ``vector`` ``4*n + 8``, ``halfvec`` ``2*n + 8``, ``sparsevec`` ``8*nnz + 16`` (``n`` =
    non-zeros), ``bit`` ``ceil(n/8) + 8`` (``pg_column_size`` of a value; stored inline, a
    value under 127 bytes gets a 1-byte header, 3 bytes less). Raises :class:`ValueError`
    for another type or a negative ``n``."""
    if sql_type not in _LAYOUT:
        raise ValueError(f"sql_type must be one of {', '.join(_LAYOUT)}, got {sql_type!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be an int >= 0, got {n!r}")
    per, fixed = _LAYOUT[sql_type]
    return fixed + (math.ceil(n / 8) if sql_type == "bit" else per * n)


def _max_elements(sql_type: str, budget: int) -> int:
    """The most elements whose value takes at most ``budget`` bytes."""
    per, fixed = _LAYOUT[sql_type]
    room = max(budget - fixed, 0)
    n = room * 8 if sql_type == "bit" else room // per
    return min(n, _MAX_ELEMENTS[sql_type])


def _align4(n: int) -> int:
    # the vector types and bit are int4-aligned (typalign 'i')
    return (n + 3) & ~3


@dataclass(frozen=True)
class StorageAdvice:
    """Whether a vector column's values stay in the heap row.

    ``sql_type`` (``vector``, ``halfvec``, ``sparsevec``, ``bit``); ``dim`` (dimensions,
    bits, or for sparsevec the non-zeros counted; ``None`` when unknown);
    ``value_bytes`` (one value, see :func:`value_bytes`); ``row_bytes`` (the heap row:
    :data:`HEAP_TUPLE_HEADER` + ``other_bytes`` + the value, int4-aligned);
    ``other_bytes`` (the other columns counted); ``default_storage`` (the type's
    storage mode); ``inline_as_is``: the row is at most :data:`TOAST_TUPLE_THRESHOLD`
    (2032) bytes, so the value stays inline whatever the storage; ``plain_fits``: the
    row is at most :data:`MAX_HEAP_TUPLE_SIZE` (8160), so ``SET STORAGE PLAIN`` is
    possible; ``plain_helps``: not inline as is, but fits with PLAIN;
    ``max_inline_dims`` / ``max_plain_dims``: the most dimensions (bits; non-zeros for
    sparsevec) for each, with these other columns; ``notes``: what was not counted.
    """

    sql_type: str
    dim: int | None
    value_bytes: int | None
    row_bytes: int | None
    other_bytes: int
    default_storage: str
    inline_as_is: bool | None
    plain_fits: bool | None
    plain_helps: bool | None
    max_inline_dims: int
    max_plain_dims: int
    notes: tuple[str, ...] = ()

    @property
    def summary(self) -> str:
        """One sentence of advice."""
        size = (
            f"{self.sql_type}({self.dim}): {self.value_bytes} bytes a value, a row of "
            f"~{self.row_bytes} bytes"
            if self.dim is not None
            else f"{self.sql_type} without a dimension"
        )
        limits = (
            f"inline as is up to {self.max_inline_dims}, with STORAGE PLAIN up to "
            f"{self.max_plain_dims}"
        )
        if self.inline_as_is:
            verdict = "stays inline: no change needed"
        elif self.plain_helps:
            verdict = (
                "stored out of line (TOAST): SET STORAGE PLAIN keeps it in the heap "
                "(then rewrite existing rows, e.g. VACUUM FULL)"
            )
        elif self.plain_fits is False:
            verdict = "too big for a heap page: it must stay out of line"
        else:
            verdict = "depends on the dimension"
        return f"{size}; {verdict} ({limits})"


def _column_and_type(target: Any) -> tuple[Column[Any] | None, VectorType]:
    if hasattr(target, "__clause_element__"):
        target = target.__clause_element__()
    if isinstance(target, type) and issubclass(target, VectorType):
        target = target()
    if isinstance(target, VectorType):
        return None, target
    type_ = getattr(target, "type", None)
    if isinstance(target, Column) and isinstance(type_, VectorType):
        return target, type_
    raise TypeError(
        "expected a Vector/HalfVec/SparseVec/Bit type or a column of one (Column or ORM "
        f"attribute), got {type(target).__name__} {target!r}"
    )


def _other_columns(column: Column[Any]) -> tuple[int, int, tuple[str, ...]]:
    """(bytes, column count, notes) of the other columns of ``column``'s table."""
    table = column.table if isinstance(getattr(column, "table", None), Table) else None
    if table is None:
        return 0, 1, ()
    total = 0
    uncounted: list[str] = []
    for other in table.columns:
        if other is column:
            continue
        found = next(((w, a) for cls, w, a in _FIXED_WIDTH if isinstance(other.type, cls)), None)
        if found is None:
            uncounted.append(f"{other.name} ({other.type!r})")
        else:
            width, align = found
            total = (total + align - 1) // align * align + width
    notes = (
        (
            "variable-width columns not counted (pass other_bytes= with their typical "
            "size): " + ", ".join(uncounted),
        )
        if uncounted
        else ()
    )
    return total, len(table.columns), notes


def storage_advice(
    target: Any, *, nnz: int | None = None, other_bytes: int | None = None
) -> StorageAdvice:
    """Does a vector column's value fit inline in the heap row, and would PLAIN help?

    ``target``: a ``Vector(768)`` / ``HalfVec`` / ``SparseVec`` / ``Bit`` type, or a
    column of one (``Column``, ORM attribute). ``nnz``: for ``SparseVec``, the non-zeros
    a row holds (the size depends on them, not on the dimension). ``other_bytes``: the
    bytes of the row's other columns; by default, for a column of a ``Table``, the sum of
    its other fixed-width columns (integers, floats, booleans, dates, UUIDs;
    variable-width ones are listed in ``notes``), else 0.

    The rules (PostgreSQL documentation, "TOAST"; src/include/access/heaptoast.h): a row
    of more than :data:`TOAST_TUPLE_THRESHOLD` (2032) bytes has its EXTERNAL/EXTENDED
    values moved out of line (pgvector's types are EXTERNAL), so a lone ``vector``
    column stays inline up to 500 dimensions (``halfvec`` 1000, ``bit`` 16000 bits,
    ``sparsevec`` 249 non-zeros), fewer with other columns. With ``STORAGE PLAIN`` the
    value stays in the row, which must fit a page (:data:`MAX_HEAP_TUPLE_SIZE`, 8160):
    ``vector`` 2032 dimensions alone (HNSW indexes 2000), ``halfvec`` 4064, ``bit``
    65024, ``sparsevec`` 1015 non-zeros. Out-of-line vectors make the heap look cheap
    to the planner, which may then skip the vector index (pgvector issues #784, #821,
    #835). The figures assume 8 kB pages and at most 8 columns (a 24-byte row header).

    Returns a :class:`StorageAdvice`. Raises :class:`TypeError` for another target,
    :class:`ValueError` for a bad ``nnz`` / ``other_bytes`` (negative, not an int,
    ``nnz`` given for a dense type, above the sparsevec's dimension or above pgvector's
    16000 non-zeros, SPARSEVEC_MAX_NNZ).
    """
    column, vtype = _column_and_type(target)
    sql_type = vtype.sql_type
    for name, value in (("nnz", nnz), ("other_bytes", other_bytes)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"{name} must be an int >= 0, got {value!r}")
        if value is not None and value < 0:
            raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    if nnz is not None and sql_type != "sparsevec":
        raise ValueError(f"nnz applies to sparsevec only, got nnz={nnz} for {sql_type}")
    if nnz is not None and nnz > SPARSEVEC_MAX_NNZ:
        raise ValueError(
            f"nnz must be at most {SPARSEVEC_MAX_NNZ} (pgvector's SPARSEVEC_MAX_NNZ, "
            f"src/sparsevec.h), got {nnz}"
        )
    if nnz is not None and vtype.dim is not None and nnz > vtype.dim:
        raise ValueError(
            f"nnz must be at most the dimension of {vtype!r} ({vtype.dim}), got {nnz}"
        )
    notes: tuple[str, ...] = ()
    columns = 1
    if other_bytes is None:
        other_bytes, columns, notes = _other_columns(column) if column is not None else (0, 1, ())
    elif column is not None and isinstance(getattr(column, "table", None), Table):
        columns = len(column.table.columns)
    # beyond 8 columns, a row holding a NULL has a longer header (its null bitmap)
    header = HEAP_TUPLE_HEADER if columns <= 8 else _align8(23 + math.ceil(columns / 8))
    before = header + _align4(other_bytes)
    n: int | None = nnz if sql_type == "sparsevec" else vtype.dim
    if sql_type == "sparsevec" and nnz is None:
        notes += ("a sparsevec's size depends on its non-zeros: pass nnz=",)
    size = value_bytes(sql_type, n) if n is not None else None
    row = before + size if size is not None else None
    inline = row <= TOAST_TUPLE_THRESHOLD if row is not None else None
    fits = row <= MAX_HEAP_TUPLE_SIZE if row is not None else None
    return StorageAdvice(
        sql_type=sql_type,
        dim=n,
        value_bytes=size,
        row_bytes=row,
        other_bytes=other_bytes,
        default_storage=DEFAULT_STORAGE[sql_type],
        inline_as_is=inline,
        plain_fits=fits,
        plain_helps=None if inline is None else (not inline and bool(fits)),
        max_inline_dims=_max_elements(sql_type, TOAST_TUPLE_THRESHOLD - before),
        max_plain_dims=_max_elements(sql_type, MAX_HEAP_TUPLE_SIZE - before),
        notes=notes,
    )


def _align8(n: int) -> int:
    return (n + 7) & ~7


_ATTSTORAGE_SQL = text(
    "SELECT a.attstorage::text FROM pg_attribute a WHERE a.attrelid = to_regclass(:rel) "
    "AND a.attname = :col AND a.attnum > 0 AND NOT a.attisdropped"
)


def _bound_column(column: Any) -> tuple[Table, Column[Any]]:
    if hasattr(column, "__clause_element__"):
        column = column.__clause_element__()
    table = getattr(column, "table", None)
    if not isinstance(column, Column) or not isinstance(table, Table):
        raise TypeError(
            "column must be a Column of a Table or an ORM attribute mapped to one, got "
            f"{type(column).__name__} {column!r}"
        )
    return table, column


def column_storage(
    bind: Connection | Session, table_name: str, column_name: str, schema: str | None = None
) -> str:
    """The storage mode of a column on the server (``pg_attribute.attstorage``):
    ``plain``, ``external``, ``extended`` or ``main``. Raises :class:`LookupError` when
    the table or column does not exist (``schema=None``: the ``search_path``'s), and,
    before anything is sent, :class:`~vecalchemy.exc.InvalidIdentifierError` for a name
    that is not a ``str`` PostgreSQL can hold (empty, a NUL byte, over 63 bytes)."""
    sqltext.check_identifier(table_name, "table name")
    sqltext.check_identifier(column_name, "column name")
    if schema is not None:
        sqltext.check_identifier(schema, "schema")
    conn = sync_connection(bind)
    rel = sqltext.regclass_text(table_name, schema)
    letter = conn.execute(_ATTSTORAGE_SQL, {"rel": rel, "col": column_name}).scalar()
    if letter is None:
        raise LookupError(f"no column {column_name!r} in table {rel} on the server")
    return STORAGE_MODES[str(letter)]


def set_vector_storage(bind: Connection | Session, column: Any, storage: str) -> str:
    """``ALTER TABLE ... ALTER COLUMN ... SET STORAGE <storage>`` for an existing column;
    returns the previous mode (to set it back).

    ``bind``: a sync Connection or Session (runs in its transaction; the caller commits;
    async: ``await conn.run_sync(set_vector_storage, column, "plain")``). ``column``: a
    vector ``Column`` of a ``Table`` or an ORM attribute. ``storage``: ``"plain"``
    (keep values in the heap row; the remedy for a planner skipping the vector index,
    pgvector issues #784, #821, #835), ``"external"`` (pgvector's default for
    ``vector``/``halfvec``/``sparsevec``), ``"extended"`` or ``"main"``.

    Only values written afterwards are stored the new way: rows already stored keep
    their out-of-line values until rewritten (``VACUUM FULL``, ``CLUSTER``, or a
    reload); :func:`count_out_of_line` tells how many remain (PostgreSQL
    documentation, ALTER TABLE: "SET STORAGE ... does not itself change anything in the
    table"). A PLAIN row longer than a page (8160 bytes) fails to INSERT with ``row is
    too big``: see :func:`storage_advice`.

    Raises, before anything is sent: :class:`ValueError` for another storage mode,
    :class:`TypeError` for a column that is not a vecalchemy vector column of a table,
    :class:`~vecalchemy.exc.InvalidIdentifierError` for a name PostgreSQL cannot hold;
    :class:`LookupError` if the column is not on the server.
    """
    mode = check_storage(storage)
    table, col = _bound_column(column)
    if not isinstance(col.type, VectorType):
        raise TypeError(
            f"column {col.name!r} is {col.type!r}, not a Vector/HalfVec/SparseVec/Bit column"
        )
    conn = sync_connection(bind, begin=True)
    sql = set_storage_statement(conn.dialect, table.name, col.name, mode, table.schema)
    previous = column_storage(conn, table.name, col.name, table.schema)
    conn.execute(sqltext.Statement(sql))
    return previous


def count_out_of_line(bind: Connection | Session, column: Any) -> int:
    """How many of a column's stored values live in the TOAST table (out of line):
    ``count(*) ... WHERE pg_column_toast_chunk_id(column) IS NOT NULL`` (PostgreSQL 17+).
    A full scan of the table. Raises :class:`TypeError` for a column that is not a
    Column of a Table (or an ORM attribute), :class:`NotImplementedError` on a server
    older than PostgreSQL 17."""
    table, col = _bound_column(column)
    conn = sync_connection(bind)
    version = conn.dialect.server_version_info or (0,)
    if version < (17,):
        raise NotImplementedError(
            "count_out_of_line needs PostgreSQL 17 or later (pg_column_toast_chunk_id), "
            f"the server is {'.'.join(map(str, version))}"
        )
    stmt = (
        select(func.count())
        .select_from(table)
        .where(func.pg_column_toast_chunk_id(col).is_not(None))
    )
    return int(conn.execute(stmt).scalar_one())
