"""Dropping the INVALID index a failed ``CREATE INDEX CONCURRENTLY`` leaves behind.

PostgreSQL commits a CONCURRENTLY build's catalog entry before building, so a build that
fails, is cancelled or loses its backend leaves an INVALID index. The build's target
(schema, table, name, backend pid) is read before the build; afterwards
:func:`drop_invalid_index` drops that index, if INVALID, with ``DROP INDEX CONCURRENTLY``
from a fresh AUTOCOMMIT connection of the engine (the build's own may be dead), waiting a
few seconds for a build still running on the server. Used by
:func:`~vecalchemy.build_vector_index` and Alembic's ``create_vector_index``.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Index, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from .. import sqltext

__all__ = ["BuildTarget", "build_target", "target_of", "drop_invalid_index", "add_note"]

#: the build's backend and the schema its table resolves to (the given schema, or the one
#: the search_path finds), read before a CONCURRENTLY build so the cleanup can find the
#: index from another connection; names are bound, compared raw in the catalog
_TARGET_SQL = text(
    "SELECT pg_backend_pid(), COALESCE(CAST(:schema AS text), "
    "(SELECT CAST(n.nspname AS text) FROM pg_catalog.pg_class c "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relname = :table AND pg_catalog.pg_table_is_visible(c.oid)))"
)
#: the index's validity, and whether a build of it is still running somewhere
_INDEX_STATE_SQL = text(
    "SELECT i.indisvalid, EXISTS (SELECT 1 FROM pg_catalog.pg_stat_progress_create_index p "
    "WHERE p.index_relid = ic.oid) "
    "FROM pg_catalog.pg_class ic "
    "JOIN pg_catalog.pg_namespace n ON n.oid = ic.relnamespace "
    "JOIN pg_catalog.pg_index i ON i.indexrelid = ic.oid "
    "JOIN pg_catalog.pg_class t ON t.oid = i.indrelid "
    "WHERE n.nspname = :schema AND ic.relname = :name AND t.relname = :table"
)
#: how long the cleanup waits for a build still running on the server to end (a
#: terminated or cancelled backend leaves within milliseconds) before leaving it alone
_BUILD_END_WAIT = 5.0
_BUILD_END_POLL = 0.05


@dataclass(frozen=True)
class BuildTarget:
    """Where a CONCURRENTLY build puts its index: the table's schema as resolved on the
    build's connection (``schema_translate_map`` and search_path included), the table's
    and index's raw names, and the build's backend pid."""

    schema: str
    table: str
    name: str
    pid: int


def build_target(
    conn: Connection, schema: str | None, table: str, name: str
) -> BuildTarget | None:
    """Read the :class:`BuildTarget` of index ``name`` on ``schema.table`` (``schema``
    None: as the search_path finds the table) on the build's connection, before the
    build; ``None`` when the table is not found (the build then fails without leaving
    an index)."""
    params = {"schema": schema, "table": table}
    pid, found = conn.execute(_TARGET_SQL, params).one()
    if found is None:
        return None
    return BuildTarget(str(found), table, name, int(pid))


def target_of(conn: Connection, index: Index) -> BuildTarget | None:
    """:func:`build_target` of a declared ``index`` (its table's schema as ``conn`` maps it)."""
    table = index.table
    assert table is not None and index.name is not None
    return build_target(conn, conn.schema_for_object(table), str(table.name), str(index.name))


def _drop_statement(dialect: Any, target: BuildTarget) -> str:
    """The DROP statement as a person would run it (in psql, say: no driver's ``%%``)."""
    name = sqltext.qualified(dialect, target.name, target.schema)
    return f"DROP INDEX CONCURRENTLY IF EXISTS {name}"


def _sleep(engine: Engine, seconds: float) -> None:
    """Sleep without blocking the event loop of an async engine (inside its greenlet)."""
    if engine.dialect.is_async:
        from sqlalchemy.util import await_only

        await_only(asyncio.sleep(seconds))
    else:
        time.sleep(seconds)


def _drop_if_invalid_on(conn: Connection, target: BuildTarget) -> str | None:
    """On an AUTOCOMMIT connection: wait (briefly) for a build still running to end, then
    drop the index if it is INVALID. Returns the note for the error, or None when
    nothing was left (no index, or a valid one)."""
    params = {"schema": target.schema, "name": target.name, "table": target.table}
    deadline = time.monotonic() + _BUILD_END_WAIT
    while True:
        row = conn.execute(_INDEX_STATE_SQL, params).first()
        if row is None or row[0]:
            return None
        if not row[1]:
            break
        if time.monotonic() >= deadline:
            return (
                f"the INVALID index {target.name!r} is still being built on the server "
                f"(the build's backend was pid {target.pid}); once that build ends, if the "
                f"index is still INVALID, drop it with: {_drop_statement(conn.dialect, target)}"
            )
        _sleep(conn.engine, _BUILD_END_POLL)
    # in the table's schema as the build resolved it, whatever this connection's search_path
    conn.execute(sqltext.Statement(_drop_statement(conn.dialect, target)))
    return f"the INVALID index {target.name!r} the failed build left was dropped"


def drop_invalid_index(
    engine: Engine, target: BuildTarget, given: Connection | None = None
) -> str | None:
    """Drop the INVALID index a failed CONCURRENTLY build left, from a fresh AUTOCOMMIT
    connection of ``engine`` (the build's own may be dead: a terminated backend, a lost
    server); a pooled connection found dead is replaced once. When no fresh connection
    can be had and the caller's AUTOCOMMIT connection ``given`` is still usable, that
    one. Returns the note for the error."""
    error: BaseException | None = None
    for _ in range(2):
        try:
            with engine.connect() as fresh:
                fresh = fresh.execution_options(isolation_level="AUTOCOMMIT")
                return _drop_if_invalid_on(fresh, target)
        except DBAPIError as e:
            error = e
            if not e.connection_invalidated:
                break
        except Exception as e:  # no connection to be had (a pool timeout, a refused connect)
            error = e
            break
    if given is not None and not given.closed and not given.invalidated:
        try:
            return _drop_if_invalid_on(given, target)
        except Exception as e:
            error = e
    return (
        f"the failed build may have left the INVALID index {target.name!r}, and it could "
        f"not be dropped ({type(error).__name__}: {error}); drop it with: "
        f"{_drop_statement(engine.dialect, target)}"
    )


def add_note(error: BaseException, note: str) -> None:
    """Attach ``note`` to ``error`` (a ``RuntimeWarning`` on Python 3.10, which has no
    exception notes)."""
    if hasattr(error, "add_note"):
        error.add_note(note)
    else:  # Python 3.10: no exception notes
        warnings.warn(note, RuntimeWarning, stacklevel=3)
