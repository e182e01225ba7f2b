"""Bulk load and bulk fetch of vectors through PostgreSQL's binary ``COPY``.

:func:`copy_rows` writes a whole ``(n, dim)`` matrix (plus other columns) with
``COPY table (cols) FROM STDIN (FORMAT BINARY)``: the matrix is validated once (by the
validator INSERT binds use, converted once when its dtype is not the column's), then
encoded chunk by chunk into one NumPy record array per chunk (row header, field
lengths and big-endian floats interleaved at C speed), so the encoding's memory stays
bounded by the chunk. Columns that have no fixed-width binary form (text, NULLs, timestamps...) go
through psycopg's ``Copy.write_row`` with the vectors still encoded by NumPy.

:func:`fetch_matrix` reads one vector column (or a one-column select) as a single
``(n, dim)`` float32 matrix with ``COPY (select) TO STDOUT (FORMAT BINARY)`` and one
in-place NumPy conversion of the received bytes: no Python object per row or element.

Both run on the caller's connection and inside the caller's transaction; the
``*_async`` variants take an ``AsyncConnection`` / ``AsyncSession``.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Table, inspect, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select
from sqlalchemy.sql.schema import Column

if TYPE_CHECKING:  # sqlalchemy.ext.asyncio needs greenlet, only when used
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from .codecs import check_dense_matrix, check_sparse, encode_sparse_binary
from .connections import async_connection, sync_connection
from .exc import InvalidVectorError
from .facts import (
    DENSE_DTYPES,
    DENSE_HEADER,
    DENSE_HEADER_FIELDS,
    FIXED_WIDTH_TYPES,
    WIRE_DTYPES,
)
from .types import HalfVec, SparseVec, Vector, VectorType

__all__ = ["copy_rows", "copy_rows_async", "fetch_matrix", "fetch_matrix_async"]

#: Binary COPY file header (signature, flags, header extension length) and trailer;
#: PostgreSQL docs, "COPY ... Binary Format".
COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
COPY_TRAILER = struct.pack(">h", -1)

#: Bytes of encoded COPY data per chunk sent (bounds the memory used by encoding).
CHUNK_BYTES = 8 * 1024 * 1024

_BYTEA_OID = 17
#: the length word before each field of a binary COPY row
_FIELD_LENGTH = ">i4"

_COLUMNS_QUERY = (
    "SELECT a.attname, a.atttypid::int8 FROM pg_catalog.pg_attribute a "
    "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped"
)


# --- copy_rows ------------------------------------------------------------------------


@dataclass
class _Field:
    """One COPY column: its SQLAlchemy column, server oid and the validated values."""

    column: Column[Any]
    oid: int
    kind: str  # "vector" | "halfvec" | "sparsevec" | "fixed" | "other"
    values: Any  # (n, dim) array, (n,) array, or an iterator of Python values
    dim: int = 0

    def fixed_dtype(self, prefix: str) -> list[tuple[Any, ...]]:
        """Record fields of this column (length word + payload) for the all-NumPy path."""
        if self.kind in WIRE_DTYPES:
            return [
                (f"{prefix}len", _FIELD_LENGTH),
                *((f"{prefix}{name}", dtype) for name, dtype in DENSE_HEADER_FIELDS),
                (f"{prefix}v", WIRE_DTYPES[self.kind], (self.dim,)),
            ]
        return [(f"{prefix}len", _FIELD_LENGTH), (f"{prefix}v", FIXED_WIDTH_TYPES[self.oid][1])]


def _table_of(target: Any) -> tuple[Table, dict[str, Column[Any]]]:
    """The Table of a Table / ORM class, and its columns by column key and attribute name."""
    if isinstance(target, Table):
        return target, {c.key: c for c in target.columns}
    try:
        mapper = inspect(target)
        table = mapper.local_table
    except Exception:
        raise TypeError(
            f"copy_rows: expected a Table or a mapped ORM class, got {type(target).__name__}"
        ) from None
    if not isinstance(table, Table):
        raise TypeError(f"copy_rows: {target!r} is not mapped to a Table")
    by_name: dict[str, Column[Any]] = {c.key: c for c in table.columns}
    for key, col in mapper.columns.items():
        if isinstance(col, Column) and col.table is table:
            by_name[key] = col
    return table, by_name


def _check_fixed(values: np.ndarray, col: Column[Any], oid: int) -> None:
    name, wire = FIXED_WIDTH_TYPES[oid]
    kind = np.dtype(wire).kind
    if values.dtype.kind == "f" and kind in "iub":
        raise InvalidVectorError(
            f"{col.name} ({name}): expected {'bools' if kind == 'b' else 'integers'}, "
            f"got dtype {values.dtype}"
        )
    if values.dtype.kind in "iu" and kind == "i":
        info = np.iinfo(np.dtype(wire))
        if values.size and (values.min() < info.min or values.max() > info.max):
            raise InvalidVectorError(
                f"{col.name} ({name}): values must lie in [{info.min}, {info.max}], "
                f"got [{values.min()}, {values.max()}]"
            )


def _prepare(
    table: Table,
    by_name: dict[str, Column[Any]],
    data: Mapping[str, Any],
    oids: dict[str, int],
) -> tuple[list[_Field], int]:
    """Validate every column (whole matrices, array ranges) before anything is sent."""
    if not data:
        raise ValueError("copy_rows: expected at least one column in data")
    fields: list[_Field] = []
    n: int | None = None
    lengths: dict[str, int] = {}
    for key, values in data.items():
        col = by_name.get(key)
        if col is None:
            raise KeyError(
                f"copy_rows: table {table.name!r} has no column {key!r}; "
                f"expected one of {', '.join(sorted(by_name))}"
            )
        if col.name not in oids:
            raise KeyError(
                f"copy_rows: column {col.name!r} is declared on {table.name!r} but the "
                "database table has no such column"
            )
        oid = oids[col.name]
        ctype = col.type
        if isinstance(ctype, (Vector, HalfVec)):
            m = check_dense_matrix(values, ctype.sql_type, ctype.dim, name=col.name)
            fields.append(_Field(col, oid, ctype.sql_type, m, m.shape[1]))
            lengths[key] = m.shape[0]
        elif isinstance(ctype, SparseVec):
            rows = [v if v is None else check_sparse(v, ctype.dim) for v in values]
            fields.append(_Field(col, oid, "sparsevec", rows))
            lengths[key] = len(rows)
        elif isinstance(ctype, VectorType):
            raise InvalidVectorError(
                f"copy_rows: column {col.name!r} of type {ctype!r} is not supported; "
                "expected Vector, HalfVec or SparseVec"
            )
        else:
            arr = values if isinstance(values, np.ndarray) else None
            if arr is None and isinstance(values, Sequence) and not isinstance(values, str):
                probe = np.asarray(values) if oid in FIXED_WIDTH_TYPES else None
                arr = probe if probe is not None and probe.dtype.kind in "biuf" else None
                lengths[key] = len(values)
            if (
                arr is not None
                and oid in FIXED_WIDTH_TYPES
                and arr.ndim == 1
                and arr.dtype.kind in "biuf"
            ):
                _check_fixed(arr, col, oid)
                fields.append(_Field(col, oid, "fixed", arr))
                lengths[key] = arr.shape[0]
            else:
                if isinstance(values, np.ndarray):
                    lengths[key] = values.shape[0]
                    values = values.tolist()
                elif isinstance(values, Sequence) and not isinstance(values, str):
                    lengths[key] = len(values)
                fields.append(_Field(col, oid, "other", values))
        if key in lengths:
            if n is None:
                n = lengths[key]
            elif lengths[key] != n:
                raise ValueError(
                    f"copy_rows: column {key!r} has {lengths[key]} rows, expected {n} "
                    "(all columns must have the same number of rows)"
                )
    if n is None:
        raise ValueError(
            "copy_rows: cannot tell the number of rows: give at least one column as a "
            "matrix, array or sequence"
        )
    return fields, n


def _copy_sql(table: Table, fields: list[_Field], dialect: Any) -> str:
    prep = dialect.identifier_preparer
    cols = ", ".join(prep.quote(f.column.name) for f in fields)
    return f"COPY {prep.format_table(table)} ({cols}) FROM STDIN (FORMAT BINARY)"


def _chunk_rows(fields: list[_Field], n: int, chunk_rows: int | None) -> int:
    if chunk_rows is not None:
        if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
            raise ValueError(f"copy_rows: chunk_rows must be a positive int, got {chunk_rows!r}")
        return chunk_rows
    row_bytes = 2 + sum(8 + 4 * f.dim if f.kind in WIRE_DTYPES else 16 for f in fields)
    return max(1, CHUNK_BYTES // row_bytes)


def _encode_fixed_chunks(
    fields: list[_Field], n: int, chunk: int
) -> Iterator[tuple[memoryview, int]]:
    """The all-NumPy path: one record array per chunk, already in COPY's binary layout."""
    dtype = np.dtype(
        [("nfields", ">i2")] + [d for i, f in enumerate(fields) for d in f.fixed_dtype(f"c{i}_")]
    )
    buf = np.empty(min(chunk, n), dtype=dtype)
    buf["nfields"] = len(fields)
    for i, f in enumerate(fields):
        if f.kind in WIRE_DTYPES:
            buf[f"c{i}_len"] = DENSE_HEADER.size + WIRE_DTYPES[f.kind].itemsize * f.dim
            buf[f"c{i}_dim"] = f.dim
            buf[f"c{i}_unused"] = 0
        else:
            buf[f"c{i}_len"] = np.dtype(FIXED_WIDTH_TYPES[f.oid][1]).itemsize
    for start in range(0, n, chunk):
        rec = buf[: min(chunk, n - start)]
        for i, f in enumerate(fields):
            # byte-swap and interleave at C speed
            rec[f"c{i}_v"] = f.values[start : start + len(rec)]
        yield memoryview(rec.data).cast("B"), len(rec)


def _row_chunks(fields: list[_Field], n: int, chunk: int) -> Iterator[list[tuple[Any, ...]]]:
    """The mixed path: rows of Python values, vectors pre-encoded as ``bytea`` payloads."""
    iters = [iter(f.values) for f in fields if f.kind == "other"]
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        cols: list[Sequence[Any]] = []
        it = iter(iters)
        for f in fields:
            if f.kind in WIRE_DTYPES:
                rec = np.empty(
                    stop - start, [*DENSE_HEADER_FIELDS, ("v", WIRE_DTYPES[f.kind], f.dim)]
                )
                rec["dim"] = f.dim
                rec["unused"] = 0
                rec["v"] = f.values[start:stop]
                mv = memoryview(rec.data).cast("B")
                size = rec.dtype.itemsize
                cols.append([mv[i * size : (i + 1) * size] for i in range(stop - start)])
            elif f.kind == "sparsevec":
                cols.append(
                    [
                        None if v is None else encode_sparse_binary(v)
                        for v in itertools.islice(f.values, start, stop)
                    ]
                )
            elif f.kind == "fixed":
                cols.append(f.values[start:stop].tolist())
            else:
                part = list(itertools.islice(next(it), stop - start))
                if len(part) != stop - start:
                    raise ValueError(
                        f"copy_rows: column {f.column.name!r} ended after {start + len(part)} "
                        f"rows, expected {n}"
                    )
                cols.append(part)
        yield list(zip(*cols, strict=True))


def _copy_types(fields: list[_Field]) -> list[int]:
    return [_BYTEA_OID if f.kind in (*WIRE_DTYPES, "sparsevec") else f.oid for f in fields]


def _progress(total: int, enabled: bool, desc: str) -> Any:
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # the "progress" extra is optional
        return None
    return tqdm(total=total, unit="row", desc=desc)


def copy_rows(
    connection: Connection | Session,
    table: Any,
    data: Mapping[str, Any],
    *,
    chunk_rows: int | None = None,
    progress: bool = True,
) -> int:
    """Insert rows with ``COPY ... FROM STDIN (FORMAT BINARY)``; return the row count.

    ``table``: a :class:`~sqlalchemy.Table` or a mapped ORM class. ``data`` maps column
    keys (ORM attribute names accepted) to values: a ``(n, dim)`` matrix of any real
    dtype for a :class:`~vecalchemy.Vector` / :class:`~vecalchemy.HalfVec` column
    (sent as float4 / binary16), a ``(n,)`` NumPy array or a sequence/iterable for any
    other column (``None`` is NULL). Columns left out get their server defaults.

    Runs in the caller's transaction (``Connection`` or ORM ``Session``; the caller
    commits). With only fixed-width columns (vectors, smallint/integer/bigint,
    real/double precision, boolean) given as arrays, every chunk is one NumPy record
    array; otherwise rows go through psycopg's ``Copy.write_row`` with the vectors
    still encoded by NumPy. ``chunk_rows`` (default: about 8 MiB of COPY data) bounds
    the memory used for encoding; ``progress`` shows a tqdm bar (``vecalchemy[progress]``).

    Vectors are validated and rounded exactly as an INSERT binds them
    (:func:`vecalchemy.codecs.check_dense_matrix`, the matrix form of
    :func:`~vecalchemy.codecs.check_dense`): float4 first, then binary16 for halfvec, so
    65519 is stored as 65504 in a halfvec column and 65520 is refused.

    Raises, before the first byte is sent: :class:`~vecalchemy.exc.InvalidVectorError`
    for a matrix that is not 2-D numeric, has the wrong number of columns, holds
    NaN/±inf (naming the row and element; pgvector src/vector.c refuses them) or values
    that round beyond float4 or halfvec's ±65504, or an integer array out of its
    column's range, each worded as an INSERT's with the column named
    (``embedding (vector(8)): NaN not allowed in vector (row 17, element 3)``);
    ``KeyError`` for an unknown column; ``ValueError`` for columns of different lengths.
    """
    conn = sync_connection(connection, begin=True)  # the COPY joins the caller's transaction
    table_obj, by_name = _table_of(table)
    driver = conn.connection.driver_connection
    assert driver is not None
    qualified = conn.dialect.identifier_preparer.format_table(table_obj)
    with driver.cursor() as cur:
        cur.execute(_COLUMNS_QUERY, (qualified,))
        oids = {name: int(oid) for name, oid in cur.fetchall()}
        fields, n = _prepare(table_obj, by_name, data, oids)
        chunk = _chunk_rows(fields, n, chunk_rows)
        bar = _progress(n, progress, f"COPY {table_obj.name}")
        try:
            with cur.copy(_copy_sql(table_obj, fields, conn.dialect)) as copy:
                if all(f.kind in (*WIRE_DTYPES, "fixed") for f in fields):
                    copy.write(COPY_SIGNATURE)
                    for block, rows_in_block in _encode_fixed_chunks(fields, n, chunk):
                        copy.write(block)
                        if bar is not None:
                            bar.update(rows_in_block)
                    copy.write(COPY_TRAILER)
                else:
                    copy.set_types(_copy_types(fields))
                    for rows in _row_chunks(fields, n, chunk):
                        for row in rows:
                            copy.write_row(row)
                        if bar is not None:
                            bar.update(len(rows))
        finally:
            if bar is not None:
                bar.close()
    return n


async def copy_rows_async(
    connection: AsyncConnection | AsyncSession,
    table: Any,
    data: Mapping[str, Any],
    *,
    chunk_rows: int | None = None,
    progress: bool = True,
) -> int:
    """:func:`copy_rows` for an ``AsyncConnection`` or ``AsyncSession`` (same arguments,
    same validation, same errors)."""
    aconn = await async_connection(connection)
    table_obj, by_name = _table_of(table)
    raw = await aconn.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    dialect = aconn.dialect
    qualified = dialect.identifier_preparer.format_table(table_obj)
    async with driver.cursor() as cur:
        await cur.execute(_COLUMNS_QUERY, (qualified,))
        oids = {name: int(oid) for name, oid in await cur.fetchall()}
        fields, n = _prepare(table_obj, by_name, data, oids)
        chunk = _chunk_rows(fields, n, chunk_rows)
        bar = _progress(n, progress, f"COPY {table_obj.name}")
        try:
            async with cur.copy(_copy_sql(table_obj, fields, dialect)) as copy:
                if all(f.kind in (*WIRE_DTYPES, "fixed") for f in fields):
                    await copy.write(COPY_SIGNATURE)
                    for block, rows_in_block in _encode_fixed_chunks(fields, n, chunk):
                        await copy.write(block)
                        if bar is not None:
                            bar.update(rows_in_block)
                    await copy.write(COPY_TRAILER)
                else:
                    copy.set_types(_copy_types(fields))
                    for rows in _row_chunks(fields, n, chunk):
                        for row in rows:
                            await copy.write_row(row)
                        if bar is not None:
                            bar.update(len(rows))
        finally:
            if bar is not None:
                bar.close()
    return n


# --- fetch_matrix ---------------------------------------------------------------------


def _matrix_statement(target: Any) -> tuple[Select[Any], str, int | None]:
    """A one-column select of a Vector/HalfVec column, its SQL type and declared dim."""
    stmt = target if isinstance(target, Select) else select(target)
    cols = list(stmt.selected_columns)
    ctype = cols[0].type if len(cols) == 1 else None
    if not isinstance(ctype, (Vector, HalfVec)):
        got = ", ".join(repr(c.type) for c in cols) or "no columns"
        raise TypeError(
            f"fetch_matrix: expected one Vector or HalfVec column (or a select of one), got {got}"
        )
    return stmt, ctype.sql_type, ctype.dim


def _copy_out(stmt: Select[Any], dialect: Any) -> tuple[str, dict[str, Any] | None]:
    """``COPY (select) TO STDOUT (FORMAT BINARY)`` and the select's processed bind values
    (merged client-side by psycopg, because COPY takes no server-side parameters)."""
    compiled = stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    params: dict[str, Any] = {}
    for name, value in compiled.params.items():
        bind = compiled.binds.get(name)
        proc = (
            bind.type.dialect_impl(dialect).bind_processor(dialect) if bind is not None else None
        )
        params[name] = proc(value) if proc else value
    sql = f"COPY ({compiled.string}) TO STDOUT (FORMAT BINARY)"
    if not params:
        sql = sql.replace("%%", "%")  # psycopg only un-escapes %% when it merges params
    return sql, params or None


def _matrix_from_copy(buf: bytearray, sql_type: str, dim: int | None) -> np.ndarray:
    """Turn a binary COPY stream of one vector column into ``(n, dim)`` in place.

    The stream is the matrix in big-endian with a 10-byte header before each row; rows
    are byte-swapped block by block onto the start of the same buffer, which is then
    truncated: the peak is the received bytes plus one block.
    """
    native = np.dtype(DENSE_DTYPES[sql_type])
    head, tail = len(COPY_SIGNATURE), len(COPY_TRAILER)
    if len(buf) < head + tail or bytes(buf[:11]) != COPY_SIGNATURE[:11]:
        raise InvalidVectorError("fetch_matrix: the server did not send a binary COPY stream")
    body = len(buf) - head - tail
    if body == 0:
        return np.empty((0, dim or 0), dtype=native)
    (length,) = struct.unpack_from(">i", buf, head + 2)
    if length < 0:
        raise InvalidVectorError("fetch_matrix: row 0 is NULL; a matrix cannot hold NULL rows")
    d, _ = DENSE_HEADER.unpack_from(buf, head + 6)
    width = native.itemsize
    row = np.dtype(
        [
            ("nfields", ">i2"),
            ("len", _FIELD_LENGTH),
            *DENSE_HEADER_FIELDS,
            ("v", WIRE_DTYPES[sql_type], (d,)),
        ]
    )
    n, rest = divmod(body, row.itemsize)
    rows = np.frombuffer(buf, dtype=row, count=n, offset=head) if not rest else None
    if rows is None or not (
        (rows["nfields"] == 1).all() and (rows["len"] == DENSE_HEADER.size + width * d).all()
    ):
        del rows
        raise InvalidVectorError(
            f"fetch_matrix: the rows are not all non-NULL {sql_type}s of {d} dimensions "
            "(a matrix needs one dimension and no NULL rows; filter or cast them in the select)"
        )
    out = np.frombuffer(buf, dtype=native, count=n * d).reshape(n, d)
    block = max(1, (1 << 20) // row.itemsize)
    for start in range(0, n, block):
        # destination always lies before the unread rows: in-place is safe
        out[start : start + block] = rows["v"][start : start + block]
    del out, rows
    del buf[n * d * width :]
    return np.frombuffer(buf, dtype=native).reshape(n, d)


def fetch_matrix(connection: Connection | Session, target: Any) -> np.ndarray:
    """Fetch a vector column (or a one-column select) as one ``(n, dim)`` array.

    ``target``: a ``Vector``/``HalfVec`` column, ORM attribute or expression, or a
    ``select()`` of exactly one such column (with any WHERE / ORDER BY / LIMIT).
    Returns float32 for ``vector`` and float16 for ``halfvec``, rows in the select's
    order, without a Python object per row: the rows arrive through
    ``COPY (select) TO STDOUT (FORMAT BINARY)`` and are converted in place, so the
    peak memory is about 1.0–1.1x the matrix's bytes (RSS above the baseline; the
    benchmark measures 1.01–1.07x at 10k–200k rows of 768 dims).

    Runs in the caller's transaction. Raises ``TypeError`` when ``target`` is not one
    Vector/HalfVec column, :class:`~vecalchemy.exc.InvalidVectorError` when a row is
    NULL or the rows differ in dimension.
    """
    conn = sync_connection(connection, begin=True)
    stmt, sql_type, dim = _matrix_statement(target)
    sql, params = _copy_out(stmt, conn.dialect)
    driver = conn.connection.driver_connection
    assert driver is not None
    buf = bytearray()
    with driver.cursor() as cur, cur.copy(sql, params) as copy:
        for data in copy:
            buf += data
    return _matrix_from_copy(buf, sql_type, dim)


async def fetch_matrix_async(
    connection: AsyncConnection | AsyncSession, target: Any
) -> np.ndarray:
    """:func:`fetch_matrix` for an ``AsyncConnection`` or ``AsyncSession``."""
    aconn = await async_connection(connection)
    stmt, sql_type, dim = _matrix_statement(target)
    sql, params = _copy_out(stmt, aconn.dialect)
    raw = await aconn.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    buf = bytearray()
    async with driver.cursor() as cur, cur.copy(sql, params) as copy:
        async for data in copy:
            buf += data
    return _matrix_from_copy(buf, sql_type, dim)
