"""Binary ``COPY`` on asyncpg, psycopg2 and pg8000 for :mod:`vecalchemy.bulk`.

:mod:`vecalchemy.bulk` validates and encodes; this module hands the bytes to each
driver's own COPY API and collects what comes back. The bytes are the ones the psycopg
path sends, so every driver stores the same values:

- asyncpg: ``Connection.copy_to_table(table, source=<async iterable of the blocks>,
  columns=..., schema_name=..., format="binary")`` and ``Connection.copy_from_query(query,
  *args, output=<coroutine function>, format="binary")``, awaited with SQLAlchemy's
  ``await_only`` from a sync Connection (inside SQLAlchemy's greenlet), directly from an
  ``AsyncConnection``;
- psycopg2: ``cursor.copy_expert(sql, <file-like reading the blocks>)`` and
  ``cursor.copy_expert(sql, <writable>)``, the select rendered by ``cursor.mogrify``;
- pg8000: ``cursor.execute(sql, stream=<iterable of the blocks>)`` and
  ``cursor.execute(sql, stream=<writable>)``, the select's values quoted by
  ``pg8000.native.literal``.

COPY takes no server-side parameters, so a select's bind values are put in the statement
quoted by the driver (psycopg2's ``mogrify``, pg8000's ``literal``; asyncpg's
``copy_from_query`` has the server quote them): nothing here writes a value into SQL
itself.

Every call runs on the Connection's own driver connection, in its transaction:
SQLAlchemy's asyncpg adapter begins its transaction at the first statement run through
it, so one is run through it before the driver's COPY (:func:`begin`).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Select
from sqlalchemy.util import await_only

from .connections import is_autocommit

if TYPE_CHECKING:  # sqlalchemy.ext.asyncio needs greenlet, only when used
    from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = [
    "DRIVERS",
    "driver_of",
    "begin",
    "column_oids",
    "compile_select",
    "copy_in",
    "copy_in_async",
    "copy_out",
    "copy_out_async",
]

#: the drivers (``dialect.driver``) copy_rows / fetch_matrix run on
DRIVERS = ("psycopg", "asyncpg", "psycopg2", "pg8000")

_COLUMNS_QUERY = (
    "SELECT a.attname, a.atttypid::int8 FROM pg_catalog.pg_attribute a "
    "WHERE a.attrelid = {}::text::regclass AND a.attnum > 0 AND NOT a.attisdropped"
)
#: the DBAPI placeholder of the one parameter of _COLUMNS_QUERY, per driver
_PLACEHOLDER = {"asyncpg": "$1", "psycopg2": "%s", "pg8000": "%s"}

#: a binary COPY row header no table matches: ends a pg8000 COPY with a server error
#: (pg8000 cannot abort a COPY from the client side, see copy_in)
_BAD_ROW = struct.pack(">h", -2)
#: bytes per psycopg2 ``read()`` of the COPY data (one encoded chunk, typically)
_READ_BYTES = 8 * 1024 * 1024
#: in a statement compiled for pg8000: quoted literals and identifiers (left alone),
#: then its placeholders and percent signs
_PG8000_TOKEN = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|%%|%s|%")


def driver_of(dialect: Any, what: str) -> str:
    """The driver name of ``dialect``; ``NotImplementedError`` for one without a COPY
    path here (raised before anything is sent)."""
    driver = str(dialect.driver)
    if driver not in DRIVERS:
        raise NotImplementedError(
            f"{what}: binary COPY is not implemented for the {driver!r} driver; use "
            "psycopg (postgresql+psycopg://), asyncpg, psycopg2 or pg8000, or executemany "
            "INSERTs / a plain select"
        )
    return driver


def _raw(conn: Connection) -> Any:
    """The driver's own connection behind ``conn`` (asyncpg, psycopg2 or pg8000)."""
    raw = conn.connection.driver_connection
    assert raw is not None
    return raw


def _dbapi_cursor(conn: Connection) -> Any:
    """A DBAPI cursor of ``conn`` (SQLAlchemy's adapter's, for asyncpg)."""
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    return dbapi.cursor()


async def _raw_async(aconn: AsyncConnection) -> Any:
    raw = (await aconn.get_raw_connection()).driver_connection
    assert raw is not None
    return raw


def begin(conn: Connection) -> None:
    """Make sure the DBAPI transaction of ``conn`` has begun before a COPY runs on the
    driver connection. psycopg2 and pg8000 begin it themselves at the COPY; SQLAlchemy's
    asyncpg adapter begins it at the first statement run through it, so one is run."""
    if conn.dialect.driver != "asyncpg" or is_autocommit(conn):
        return
    if not _raw(conn).is_in_transaction():
        cur = _dbapi_cursor(conn)
        try:
            cur.execute("SELECT 1")
        finally:
            cur.close()


def column_oids(conn: Connection, qualified: str) -> dict[str, int]:
    """``{column name: type oid}`` of the table ``qualified`` (``regclass`` input,
    :func:`vecalchemy.sqltext.regclass_text`), read through the DBAPI cursor; begins
    the transaction."""
    sql = _COLUMNS_QUERY.format(_PLACEHOLDER[conn.dialect.driver])
    cur = _dbapi_cursor(conn)
    try:
        cur.execute(sql, (qualified,))
        return {name: int(oid) for name, oid in cur.fetchall()}
    finally:
        cur.close()


# --- COPY FROM STDIN ------------------------------------------------------------------


class _Source:
    """The blocks of one COPY FROM in the form each driver reads them, remembering an
    error raised while producing them (the driver then reports an aborted COPY, and the
    caller re-raises the error itself)."""

    def __init__(self, blocks: Iterator[Any]) -> None:
        self._blocks = blocks
        self._pending = memoryview(b"")
        self.error: Exception | None = None

    def _next(self) -> Any:
        try:
            return next(self._blocks, None)
        except Exception as e:
            self.error = e
            raise

    def read(self, size: int = -1) -> bytes:
        """psycopg2's ``copy_expert`` reads until ``b""``; an error aborts the COPY."""
        while not self._pending:
            block = self._next()
            if block is None:
                return b""
            self._pending = memoryview(block).cast("B")
        out = self._pending if size < 0 else self._pending[:size]
        self._pending = self._pending[len(out) :]
        return bytes(out)

    def __aiter__(self) -> _Source:
        return self

    async def __anext__(self) -> Any:
        """asyncpg's ``copy_to_table``; an error sends CopyFail and is re-raised."""
        block = self._next()
        if block is None:
            raise StopAsyncIteration
        return block

    def for_pg8000(self) -> Iterator[Any]:
        """pg8000 sends each item; an exception would leave its connection inside the
        COPY, so an error ends the data with a row the server refuses instead."""
        while True:
            try:
                block = self._next()
            except Exception:
                yield _BAD_ROW
                return
            if block is None:
                return
            yield block


async def _asyncpg_copy_in(raw: Any, table: Table, columns: list[str], source: _Source) -> None:
    await raw.copy_to_table(
        table.name, source=source, columns=columns, schema_name=table.schema, format="binary"
    )


def copy_in(
    conn: Connection, *, sql: str, table: Table, columns: list[str], blocks: Iterator[Any]
) -> None:
    """Send ``blocks`` (a whole binary COPY stream) into ``table (columns)`` on the
    asyncpg, psycopg2 or pg8000 driver connection of ``conn``; ``sql`` is the
    ``COPY ... FROM STDIN (FORMAT BINARY)`` statement (asyncpg writes its own from
    ``table`` and ``columns``). An error raised by ``blocks`` is re-raised after the
    driver aborted the COPY."""
    raw = _raw(conn)
    driver = conn.dialect.driver
    source = _Source(blocks)
    try:
        if driver == "asyncpg":
            await_only(_asyncpg_copy_in(raw, table, columns, source))
        elif driver == "psycopg2":
            with raw.cursor() as cur:
                cur.copy_expert(sql, source, size=_READ_BYTES)
        else:
            cur = raw.cursor()
            try:
                cur.execute(sql, stream=source.for_pg8000())
            finally:
                cur.close()
    except Exception as e:
        # psycopg2 and pg8000 report the aborted COPY; asyncpg re-raises the error itself
        if source.error is not None and source.error is not e:
            raise source.error from e
        raise


async def copy_in_async(
    aconn: AsyncConnection, *, table: Table, columns: list[str], blocks: Iterator[Any]
) -> None:
    """:func:`copy_in` on the asyncpg connection of an ``AsyncConnection``."""
    raw = await _raw_async(aconn)
    await _asyncpg_copy_in(raw, table, columns, _Source(blocks))


# --- COPY TO STDOUT -------------------------------------------------------------------


class _Sink:
    """Collects a COPY TO stream into one ``bytearray``."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, chunk: Any) -> int:
        """psycopg2's and pg8000's writable stream."""
        self.data += chunk
        return len(chunk)

    async def awrite(self, chunk: bytes) -> None:
        """asyncpg's ``output`` coroutine function."""
        self.data += chunk


def compile_select(stmt: Select[Any], dialect: Any) -> tuple[str, dict[str, Any], list[str]]:
    """The select's SQL for ``dialect``, its bind values processed by their types'
    bind processors, and the positional order of the binds (empty for named styles)."""
    compiled = stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    params: dict[str, Any] = {}
    for name, value in compiled.params.items():
        bind = compiled.binds.get(name)
        proc = (
            bind.type.dialect_impl(dialect).bind_processor(dialect) if bind is not None else None
        )
        params[name] = proc(value) if proc else value
    return compiled.string, params, list(compiled.positiontup or ())


def _copy_out_sql(query: str) -> str:
    return f"COPY ({query}) TO STDOUT (FORMAT BINARY)"


def copy_out(conn: Connection, stmt: Select[Any]) -> bytearray:
    """The binary ``COPY (stmt) TO STDOUT`` stream of ``stmt``, read on the asyncpg,
    psycopg2 or pg8000 driver connection of ``conn`` in its transaction."""
    raw = _raw(conn)
    driver = conn.dialect.driver
    query, params, order = compile_select(stmt, conn.dialect)
    sink = _Sink()
    if driver == "asyncpg":
        begin(conn)
        args = [params[name] for name in order]
        await_only(raw.copy_from_query(query, *args, output=sink.awrite, format="binary"))
    elif driver == "psycopg2":
        sql = _copy_out_sql(query)
        with raw.cursor() as cur:
            # psycopg2 binds client-side: mogrify quotes the values and un-escapes "%%"
            cur.copy_expert(cur.mogrify(sql, params) if params else sql.replace("%%", "%"), sink)
    else:
        cur = raw.cursor()
        try:
            cur.execute(
                _copy_out_sql(_pg8000_inline(query, [params[n] for n in order])), stream=sink
            )
        finally:
            cur.close()
    return sink.data


def _pg8000_inline(query: str, values: list[Any]) -> str:
    """``query`` (compiled for pg8000) with its placeholders replaced by ``values``
    quoted by ``pg8000.native.literal``, written for pg8000's own scan of the
    statement: outside quotes it reads "%%" as "%" and refuses a lone "%", so every
    percent sign there ("%%" from an operator, "%" from ``text()``) goes as "%%"."""
    from pg8000.native import literal

    quoted = iter([literal(v) for v in values])

    def token(m: re.Match[str]) -> str:
        t = m[0]
        return next(quoted) if t == "%s" else "%%" if t[0] == "%" else t

    return _PG8000_TOKEN.sub(token, query)


async def copy_out_async(aconn: AsyncConnection, stmt: Select[Any]) -> bytearray:
    """:func:`copy_out` on the asyncpg connection of an ``AsyncConnection``."""
    await aconn.run_sync(begin)
    query, params, order = compile_select(stmt, aconn.dialect)
    raw = await _raw_async(aconn)
    sink = _Sink()
    await raw.copy_from_query(
        query, *[params[name] for name in order], output=sink.awrite, format="binary"
    )
    return sink.data
