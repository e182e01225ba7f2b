"""Bulk load and bulk fetch of vectors through PostgreSQL's binary ``COPY``.

:func:`copy_rows` writes a whole ``(n, dim)`` matrix (plus other columns) with
``COPY table (cols) FROM STDIN (FORMAT BINARY)``: the matrix is validated once (by the
validator INSERT binds use, converted once when its dtype is not the column's), then
encoded chunk by chunk into one NumPy record array per chunk (row header, field
lengths and big-endian floats interleaved at C speed), so the encoding's memory stays
bounded by the chunk. Columns that have no fixed-width binary form (text, NULLs,
timestamps...) are dumped by psycopg's binary dumpers (``Copy.write_row`` on psycopg)
with the vectors still encoded by NumPy.

:func:`fetch_matrix` reads one vector column (or a one-column select) as a single
``(n, dim)`` float32 matrix with ``COPY (select) TO STDOUT (FORMAT BINARY)`` and one
in-place NumPy conversion of the received bytes: no Python object per row or element.

Both run on the caller's connection and inside the caller's transaction; the
``*_async`` variants take an ``AsyncConnection`` / ``AsyncSession``. This module
validates and drives psycopg 3; :mod:`vecalchemy.bulk_format` is the binary COPY format
(no I/O) and :mod:`vecalchemy.bulk_drivers` hands the same bytes to asyncpg, psycopg2
and pg8000, so every driver stores and returns the same values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np
from sqlalchemy import Table, inspect, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select
from sqlalchemy.sql.schema import Column

if TYPE_CHECKING:  # sqlalchemy.ext.asyncio needs greenlet, only when used
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from . import bulk_drivers as drivers
from . import sqltext
from .bulk_format import (
    COPY_SIGNATURE,
    COPY_TRAILER,
    DUMP_ERRORS,
    Field,
    copy_stream,
    copy_types,
    driver_chunks,
    dump_error,
    encode_fixed_chunks,
    matrix_from_copy,
    row_chunks,
    rows_per_chunk,
)
from .codecs import check_dense_matrix, check_sparse
from .connections import async_connection, sync_connection
from .exc import InvalidVectorError
from .facts import COPY_WIRE_TYPES, DATETIME_WIDTH_TYPES, FIXED_WIDTH_TYPES, WIRE_DTYPES
from .types import HalfVec, SparseVec, Vector, VectorType

__all__ = ["copy_rows", "copy_rows_async", "fetch_matrix", "fetch_matrix_async"]

_COLUMNS_QUERY = (
    "SELECT a.attname, a.atttypid::int8 FROM pg_catalog.pg_attribute a "
    "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped"
)


# --- copy_rows ------------------------------------------------------------------------


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


def _datetimes(values: np.ndarray, col: Column[Any], oid: int) -> np.ndarray:
    """A 1-D ``datetime64`` array as the COPY value of a date / timestamp column: the
    count of days (date) or microseconds (timestamps) since 2000-01-01, as int64.
    ``InvalidVectorError`` for NaT (give ``None`` in a list for NULL) and for values
    the column's unit cannot hold exactly (a time of day for a date, nanoseconds)."""
    name, unit, _ = DATETIME_WIDTH_TYPES[oid]
    nat = np.isnat(values)
    if nat.any():
        raise InvalidVectorError(
            f"{col.name} ({name}): NaT at row {int(np.argmax(nat))}; COPY from a datetime64 "
            "array writes no NULL (pass a list with None for NULLs)"
        )
    as_unit = values.astype(f"datetime64[{unit}]")
    lossy = as_unit.astype(values.dtype) != values
    if lossy.any():
        raise InvalidVectorError(
            f"{col.name} ({name}): expected datetime64 values whole in {unit!r}, got "
            f"{values[int(np.argmax(lossy))]} at row {int(np.argmax(lossy))}"
        )
    epoch = np.array("2000-01-01", dtype=f"datetime64[{unit}]")
    offsets: np.ndarray = (as_unit - epoch).astype(np.int64)
    return offsets


def _check_fixed(values: np.ndarray, col: Column[Any], oid: int) -> None:
    name, wire = COPY_WIRE_TYPES[oid]
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


def _plain_field(
    col: Column[Any], oid: int, key: str, values: Any, arr: Any, lengths: dict[str, int]
) -> Field:
    """A column of another type: a fixed-width NumPy column when it is one, else Python
    values the driver's dumpers write."""
    if arr is None and isinstance(values, Sequence) and not isinstance(values, str):
        probe = np.asarray(values) if oid in FIXED_WIDTH_TYPES else None
        arr = probe if probe is not None and probe.dtype.kind in "biuf" else None
        lengths[key] = len(values)
    if arr is not None and oid in FIXED_WIDTH_TYPES and arr.ndim == 1 and arr.dtype.kind in "biuf":
        _check_fixed(arr, col, oid)
        lengths[key] = arr.shape[0]
        return Field(col, oid, "fixed", arr)
    if isinstance(values, np.ndarray):
        lengths[key] = values.shape[0]
        values = values.tolist()
    elif isinstance(values, Sequence) and not isinstance(values, str):
        lengths[key] = len(values)
    return Field(col, oid, "other", values)


def _prepare(
    table: Table,
    by_name: dict[str, Column[Any]],
    data: Mapping[str, Any],
    oids: dict[str, int],
) -> tuple[list[Field], int]:
    """Validate every column (whole matrices, array ranges) before anything is sent."""
    if not data:
        raise ValueError("copy_rows: expected at least one column in data")
    fields: list[Field] = []
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
            fields.append(Field(col, oid, ctype.sql_type, m, m.shape[1]))
            lengths[key] = m.shape[0]
        elif isinstance(ctype, SparseVec):
            rows = [v if v is None else check_sparse(v, ctype.dim) for v in values]
            fields.append(Field(col, oid, "sparsevec", rows))
            lengths[key] = len(rows)
        elif isinstance(ctype, VectorType):
            raise InvalidVectorError(
                f"copy_rows: column {col.name!r} of type {ctype!r} is not supported; "
                "expected Vector, HalfVec or SparseVec"
            )
        else:
            if isinstance(values, np.ndarray) and values.ndim == 0:
                raise ValueError(
                    f"copy_rows: column {key!r} needs one value a row (a sequence or a 1-D "
                    f"array), got a 0-d array ({values!r})"
                )
            arr = values if isinstance(values, np.ndarray) else None
            if (
                arr is not None
                and arr.dtype.kind == "M"
                and arr.ndim == 1
                and oid in DATETIME_WIDTH_TYPES
            ):
                offsets = _datetimes(arr, col, oid)
                _check_fixed(offsets, col, oid)
                fields.append(Field(col, oid, "fixed", offsets))
                lengths[key] = arr.shape[0]
            else:
                fields.append(_plain_field(col, oid, key, values, arr, lengths))
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


def _copy_sql(table: Table, fields: list[Field], dialect: Any) -> str:
    cols = ", ".join(sqltext.quote(dialect, f.column.name) for f in fields)
    return f"COPY {sqltext.table_name(dialect, table)} ({cols}) FROM STDIN (FORMAT BINARY)"


def _raise_dump_error(
    fields: list[Field], rows: list[tuple[Any, ...]], first: int, error: BaseException
) -> NoReturn:
    """Raise the error naming the column, row and value psycopg's dumper refused (the
    COPY is then aborted with its transaction), or ``error`` itself."""
    found = dump_error(fields, rows, first)
    if found is None:
        raise error
    raise found from error


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
    commits), on psycopg 3, asyncpg (a sync Connection inside SQLAlchemy's greenlet,
    e.g. under ``AsyncConnection.run_sync``), psycopg2 or pg8000. With only fixed-width
    columns (vectors, smallint/integer/bigint, real/double precision, boolean) given as
    arrays, every chunk is one NumPy record array; otherwise each row's other fields
    are dumped by psycopg's binary dumpers (psycopg's ``Copy.write_row``, on every
    driver) with the vectors still encoded by NumPy. ``chunk_rows`` (default: about
    8 MiB of COPY data) bounds the memory used for encoding; ``progress`` shows a tqdm
    bar (``vecalchemy[progress]``).

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
    ``KeyError`` for an unknown column; ``ValueError`` for columns of different lengths;
    ``NotImplementedError`` for a driver other than those four. Before any row is sent:
    ``psycopg.ProgrammingError`` for a column type psycopg has no binary dumper for.
    Once the rows before it were sent, aborting the COPY and the transaction: a
    ``ValueError`` for an iterable column that ends early. Errors of the server (a
    duplicate key...) are the driver's own exceptions.
    """
    conn = sync_connection(connection, begin=True)  # the COPY joins the caller's transaction
    table_obj, by_name = _table_of(table)
    if drivers.driver_of(conn.dialect, "copy_rows") != "psycopg":
        return _copy_rows_driver(conn, table_obj, by_name, data, chunk_rows, progress)
    driver = conn.connection.driver_connection
    assert driver is not None
    qualified = sqltext.regclass_text(table_obj.name, table_obj.schema)
    with driver.cursor() as cur:
        cur.execute(_COLUMNS_QUERY, (qualified,))
        oids = {name: int(oid) for name, oid in cur.fetchall()}
        fields, n = _prepare(table_obj, by_name, data, oids)
        chunk = rows_per_chunk(fields, n, chunk_rows)
        bar = _progress(n, progress, f"COPY {table_obj.name}")
        try:
            with cur.copy(_copy_sql(table_obj, fields, conn.dialect)) as copy:
                if all(f.kind in (*WIRE_DTYPES, "fixed") for f in fields):
                    copy.write(COPY_SIGNATURE)
                    for block, rows_in_block in encode_fixed_chunks(fields, n, chunk):
                        copy.write(block)
                        if bar is not None:
                            bar.update(rows_in_block)
                    copy.write(COPY_TRAILER)
                else:
                    copy.set_types(copy_types(fields))
                    first = 0
                    for rows in row_chunks(fields, n, chunk):
                        try:
                            for row in rows:
                                copy.write_row(row)
                        except DUMP_ERRORS as e:
                            _raise_dump_error(fields, rows, first, e)
                        first += len(rows)
                        if bar is not None:
                            bar.update(len(rows))
        finally:
            if bar is not None:
                bar.close()
    return n


def _copy_rows_driver(
    conn: Connection,
    table_obj: Table,
    by_name: dict[str, Column[Any]],
    data: Mapping[str, Any],
    chunk_rows: int | None,
    progress: bool,
) -> int:
    """:func:`copy_rows` on asyncpg, psycopg2 or pg8000."""
    dialect = conn.dialect
    oids = drivers.column_oids(conn, sqltext.regclass_text(table_obj.name, table_obj.schema))
    fields, n = _prepare(table_obj, by_name, data, oids)
    chunks = driver_chunks(fields, n, rows_per_chunk(fields, n, chunk_rows))
    bar = _progress(n, progress, f"COPY {table_obj.name}")
    try:
        drivers.copy_in(
            conn,
            sql=_copy_sql(table_obj, fields, dialect),
            table=table_obj,
            columns=[f.column.name for f in fields],
            blocks=copy_stream(chunks, bar),
        )
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
    same validation, same errors), on psycopg 3 or asyncpg."""
    aconn = await async_connection(connection)
    table_obj, by_name = _table_of(table)
    if drivers.driver_of(aconn.dialect, "copy_rows_async") != "psycopg":
        return await _copy_rows_asyncpg(aconn, table_obj, by_name, data, chunk_rows, progress)
    raw = await aconn.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    dialect = aconn.dialect
    qualified = sqltext.regclass_text(table_obj.name, table_obj.schema)
    async with driver.cursor() as cur:
        await cur.execute(_COLUMNS_QUERY, (qualified,))
        oids = {name: int(oid) for name, oid in await cur.fetchall()}
        fields, n = _prepare(table_obj, by_name, data, oids)
        chunk = rows_per_chunk(fields, n, chunk_rows)
        bar = _progress(n, progress, f"COPY {table_obj.name}")
        try:
            async with cur.copy(_copy_sql(table_obj, fields, dialect)) as copy:
                if all(f.kind in (*WIRE_DTYPES, "fixed") for f in fields):
                    await copy.write(COPY_SIGNATURE)
                    for block, rows_in_block in encode_fixed_chunks(fields, n, chunk):
                        await copy.write(block)
                        if bar is not None:
                            bar.update(rows_in_block)
                    await copy.write(COPY_TRAILER)
                else:
                    copy.set_types(copy_types(fields))
                    first = 0
                    for rows in row_chunks(fields, n, chunk):
                        try:
                            for row in rows:
                                await copy.write_row(row)
                        except DUMP_ERRORS as e:
                            _raise_dump_error(fields, rows, first, e)
                        first += len(rows)
                        if bar is not None:
                            bar.update(len(rows))
        finally:
            if bar is not None:
                bar.close()
    return n


async def _copy_rows_asyncpg(
    aconn: AsyncConnection,
    table_obj: Table,
    by_name: dict[str, Column[Any]],
    data: Mapping[str, Any],
    chunk_rows: int | None,
    progress: bool,
) -> int:
    """:func:`copy_rows_async` on asyncpg."""
    qualified = sqltext.regclass_text(table_obj.name, table_obj.schema)
    oids = await aconn.run_sync(drivers.column_oids, qualified)
    fields, n = _prepare(table_obj, by_name, data, oids)
    chunks = driver_chunks(fields, n, rows_per_chunk(fields, n, chunk_rows))
    bar = _progress(n, progress, f"COPY {table_obj.name}")
    try:
        await drivers.copy_in_async(
            aconn,
            table=table_obj,
            columns=[f.column.name for f in fields],
            blocks=copy_stream(chunks, bar),
        )
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
    query, params, _ = drivers.compile_select(stmt, dialect)
    sql = f"COPY ({query}) TO STDOUT (FORMAT BINARY)"
    if not params:
        sql = sql.replace("%%", "%")  # psycopg only un-escapes %% when it merges params
    return sql, params or None


def fetch_matrix(connection: Connection | Session, target: Any) -> np.ndarray:
    """Fetch a vector column (or a one-column select) as one ``(n, dim)`` array.

    ``target``: a ``Vector``/``HalfVec`` column, ORM attribute or expression, or a
    ``select()`` of exactly one such column (with any WHERE / ORDER BY / LIMIT).
    Returns float32 for ``vector`` and float16 for ``halfvec``, rows in the select's
    order, without a Python object per row: the rows arrive through
    ``COPY (select) TO STDOUT (FORMAT BINARY)`` and are converted in place, so the
    peak memory is about 1.0–1.1x the matrix's bytes (RSS above the baseline; the
    benchmark measures 1.01–1.07x at 10k–200k rows of 768 dims).

    Runs in the caller's transaction, on psycopg 3, asyncpg (a sync Connection inside
    SQLAlchemy's greenlet), psycopg2 or pg8000. COPY takes no server-side parameters:
    the select's bind values are inlined by the driver's own quoting (psycopg's and
    psycopg2's client-side binding, asyncpg's ``copy_from_query``, pg8000's ``literal``).
    Raises ``TypeError`` when ``target`` is not one Vector/HalfVec column,
    :class:`~vecalchemy.exc.InvalidVectorError` when a row is NULL or the rows differ
    in dimension, ``NotImplementedError`` for a driver other than those four.
    """
    conn = sync_connection(connection, begin=True)
    stmt, sql_type, dim = _matrix_statement(target)
    if drivers.driver_of(conn.dialect, "fetch_matrix") != "psycopg":
        return matrix_from_copy(drivers.copy_out(conn, stmt), sql_type, dim)
    sql, params = _copy_out(stmt, conn.dialect)
    driver = conn.connection.driver_connection
    assert driver is not None
    buf = bytearray()
    with driver.cursor() as cur, cur.copy(sql, params) as copy:
        for data in copy:
            buf += data
    return matrix_from_copy(buf, sql_type, dim)


async def fetch_matrix_async(
    connection: AsyncConnection | AsyncSession, target: Any
) -> np.ndarray:
    """:func:`fetch_matrix` for an ``AsyncConnection`` or ``AsyncSession``, on psycopg 3
    or asyncpg."""
    aconn = await async_connection(connection)
    stmt, sql_type, dim = _matrix_statement(target)
    if drivers.driver_of(aconn.dialect, "fetch_matrix_async") != "psycopg":
        return matrix_from_copy(await drivers.copy_out_async(aconn, stmt), sql_type, dim)
    sql, params = _copy_out(stmt, aconn.dialect)
    raw = await aconn.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    buf = bytearray()
    async with driver.cursor() as cur, cur.copy(sql, params) as copy:
        async for data in copy:
            buf += data
    return matrix_from_copy(buf, sql_type, dim)
