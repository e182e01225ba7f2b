"""Building vector indexes: progress, CONCURRENTLY outside a transaction, cleanup.

:func:`build_vector_index` creates an index while a second connection polls
``pg_stat_progress_create_index`` (a tqdm bar or a callback); a ``concurrently=True``
index is built on an AUTOCOMMIT connection (PostgreSQL refuses ``CREATE INDEX
CONCURRENTLY`` in a transaction block) and the INVALID index a failed build leaves is
dropped from a fresh connection of the same engine (the build's own may be dead). The
phases reported are pgvector's (src/hnsw.c, src/ivfflat.c).
"""

from __future__ import annotations

import asyncio
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Index, func, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateIndex

from .. import sqltext
from ..connections import autocommit_connection, is_autocommit
from ..exc import IndexDefinitionError
from ..facts import BuildSettings, index_build_settings

if TYPE_CHECKING:  # sqlalchemy.ext.asyncio needs greenlet, only when used
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = [
    "BuildProgress",
    "build_vector_index",
    "build_vector_index_async",
    "build_plainly_in_transaction",
    "concurrent_connection",
    "BuildTarget",
    "build_target",
    "drop_invalid_index",
    "add_note",
]


@dataclass(frozen=True)
class BuildProgress:
    """One sample of ``pg_stat_progress_create_index`` for a running build.

    ``phase`` as PostgreSQL shows it (``building index: loading tuples``); ``done`` and
    ``total`` count blocks (HNSW ``loading tuples``) or tuples (IVFFlat), whichever the
    phase reports (``unit`` says which: ``"blocks"`` or ``"tuples"``); ``total`` is 0
    while unknown.
    """

    phase: str
    done: int
    total: int
    unit: str = "blocks"


_PROGRESS_SQL = text(
    "SELECT phase, blocks_done, blocks_total, tuples_done, tuples_total "
    "FROM pg_stat_progress_create_index WHERE pid = :pid"
)
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


def concurrent_connection(bind: Any, index: Index) -> AbstractContextManager[Connection]:
    """An AUTOCOMMIT connection for ``CREATE``/``DROP INDEX CONCURRENTLY`` of ``index``:
    a new one from an Engine, or the given AUTOCOMMIT Connection.

    Raises :class:`~vecalchemy.exc.IndexDefinitionError` for a Connection inside a
    transaction block (where PostgreSQL refuses CONCURRENTLY), ``TypeError`` for
    anything but an Engine or Connection.
    """

    def refusal() -> IndexDefinitionError:
        return IndexDefinitionError(
            f"index {index.name!r} is declared concurrently=True, and CREATE/DROP INDEX "
            "CONCURRENTLY cannot run inside a transaction block; pass the Engine, or a "
            "connection with .execution_options(isolation_level='AUTOCOMMIT')"
        )

    return autocommit_connection(bind, refusal)


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


def _target(conn: Connection, index: Index) -> BuildTarget | None:
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


def _watch(
    engine: Engine,
    pid: int,
    report: Callable[[BuildProgress], None],
    wait: Callable[[], bool],
    name: str,
) -> None:
    """Poll ``pg_stat_progress_create_index`` from a second connection; ``wait()`` sleeps
    one interval and says whether the build is over. A failure to watch is a warning:
    the build goes on without progress."""
    try:
        with engine.connect() as watcher:
            watcher = watcher.execution_options(isolation_level="AUTOCOMMIT")
            while not wait():
                row = watcher.execute(_PROGRESS_SQL, {"pid": pid}).first()
                if row is None:
                    continue
                report(_sample(*row))
    except Exception as e:
        warnings.warn(
            f"cannot show the progress of the build of index {name!r} "
            f"({type(e).__name__}: {e}); the build goes on",
            RuntimeWarning,
            stacklevel=1,
        )


def _sample(phase: str, b_done: Any, b_total: Any, t_done: Any, t_total: Any) -> BuildProgress:
    if b_total and "loading tuples" in phase and not t_total:
        return BuildProgress(phase, int(b_done), int(b_total))
    if t_total:
        return BuildProgress(phase, int(t_done), int(t_total), "tuples")
    return BuildProgress(phase, int(b_done or 0), int(b_total or 0))


def _start_thread_watcher(
    engine: Engine, pid: int, report: Callable[[BuildProgress], None], interval: float, name: str
) -> Callable[[], None]:
    """A sync driver: the watcher in a thread; returns the function that stops it."""
    stop = threading.Event()
    thread = threading.Thread(
        target=_watch,
        args=(engine, pid, report, lambda: stop.wait(interval), name),
        daemon=True,
    )
    thread.start()

    def finish() -> None:
        stop.set()
        thread.join()

    return finish


def _start_task_watcher(
    engine: Engine, pid: int, report: Callable[[BuildProgress], None], interval: float, name: str
) -> Callable[[], None]:
    """An async engine's connection, used inside SQLAlchemy's greenlet (``run_sync``):
    the watcher is a task on the running event loop, with a greenlet of its own for the
    sync API; it polls while the build's statement is awaited. Returns the function
    that stops it (awaiting the task from the calling greenlet)."""
    from sqlalchemy.util import await_only, greenlet_spawn

    stop = asyncio.Event()

    def wait() -> bool:
        try:
            await_only(asyncio.wait_for(stop.wait(), interval))
        except asyncio.TimeoutError:
            return False
        return True

    task = asyncio.get_running_loop().create_task(
        greenlet_spawn(_watch, engine, pid, report, wait, name)
    )

    def finish() -> None:
        stop.set()
        await_only(task)

    return finish


class _TqdmReporter:
    """A tqdm bar per build phase."""

    def __init__(self, name: str, tqdm: Any) -> None:
        self._tqdm = tqdm
        self._name = name
        self._bar: Any = None
        self._phase: tuple[str, str] = ("", "")

    def __call__(self, p: BuildProgress) -> None:
        if self._bar is None or (p.phase, p.unit) != self._phase:
            self.close()
            self._phase = (p.phase, p.unit)
            self._bar = self._tqdm(
                total=p.total or None,
                desc=f"{self._name}: {p.phase}",
                unit=f" {p.unit}",
                leave=False,
            )
        if p.total and self._bar.total != p.total:
            self._bar.total = p.total
        self._bar.n = p.done
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def build_vector_index(
    bind: Engine | Connection,
    index: Index,
    *,
    checkfirst: bool = False,
    progress: bool | Callable[[BuildProgress], None] = True,
    poll_interval: float = 0.25,
    settings: BuildSettings | Mapping[str, int] | str | None = None,
) -> None:
    """Create ``index`` on ``bind``, showing build progress for long builds.

    ``bind`` is an Engine (a connection of its own, in a transaction that is committed)
    or a Connection (its current transaction). ``progress=True`` draws a tqdm bar per
    phase from ``pg_stat_progress_create_index``, polled every ``poll_interval``
    seconds by a second connection of the same engine while the build runs (without
    tqdm, the ``vecalchemy[progress]`` extra, no bar); a callable receives each
    :class:`BuildProgress` sample instead; ``False`` polls nothing. If the progress
    cannot be read (say, the pool has no second connection to give) a
    ``RuntimeWarning`` says so and the build goes on. An index declared
    ``concurrently=True`` is built outside a transaction block and, if the build fails
    (an error, its backend terminated, the server lost, an interrupt), the INVALID index
    it leaves is dropped with ``DROP INDEX CONCURRENTLY`` from a fresh AUTOCOMMIT
    connection of the same engine (``bind.engine``) before the error is re-raised with
    a note saying so; if that drop fails too, the note gives the statement to run. A
    build still running on the server (its client interrupted) is waited for a few
    seconds, and never dropped while it runs.

    Any driver: psycopg, psycopg2, pg8000, and async engines (asyncpg, psycopg async)
    through their sync API inside SQLAlchemy's greenlet — ``await
    async_conn.run_sync(build_vector_index, index)``, or
    :func:`build_vector_index_async` with an AsyncEngine or AsyncConnection.

    ``settings`` applies ``maintenance_work_mem`` (bytes) and
    ``max_parallel_maintenance_workers`` to the build's own session only, and restores
    the previous values after it: a :class:`~vecalchemy.BuildSettings` from
    :func:`~vecalchemy.index_build_settings`, a mapping of those two names, or
    ``"auto"`` (an ``HnswIndex`` / ``IvfflatIndex`` only: ``index_build_settings`` of the
    table's ``pg_class.reltuples``, or its row count when never analysed, and the
    index's dimension, method, ``m`` / ``lists``). Values the server cannot take are
    capped, with a ``RuntimeWarning`` saying so: ``maintenance_work_mem`` at 2 TB
    (2147483647 kB), workers at the server's ``max_parallel_workers``.

    Raises :class:`~vecalchemy.exc.IndexDefinitionError` for a CONCURRENTLY index on a
    Connection inside a transaction and for an index attached to no table, ``TypeError``
    for a ``bind`` that is neither an Engine nor a Connection, ``ValueError`` for bad
    ``settings`` (before anything is sent); database errors propagate.
    """
    if not isinstance(bind, (Engine, Connection)):
        raise TypeError(f"expected an Engine or Connection, got {type(bind).__name__}")
    if index.table is None:
        raise IndexDefinitionError(
            f"index {index.name!r} is not attached to a table; declare it in the Table (or "
            "__table_args__), or name a Column rather than a column name"
        )
    wanted = _check_settings(settings, index)
    concurrently = bool(index.dialect_options["postgresql"]["concurrently"])
    if concurrently:
        _build_concurrently(bind, index, checkfirst, progress, poll_interval, wanted)
    elif isinstance(bind, Engine):
        with bind.begin() as conn:
            _build(conn, index, checkfirst, progress, poll_interval, settings=wanted)
    else:
        _build(bind, index, checkfirst, progress, poll_interval, settings=wanted)


def _build_concurrently(
    bind: Engine | Connection,
    index: Index,
    checkfirst: bool,
    progress: bool | Callable[[BuildProgress], None],
    poll_interval: float,
    settings: dict[str, int] | str | None = None,
) -> None:
    """Build on an AUTOCOMMIT connection; if the build fails (an error, a terminated
    backend, a lost server, an interrupt), drop the INVALID index it left from a fresh
    connection, once the build's own connection is given back, and re-raise the error
    with a note saying what happened."""
    target: BuildTarget | None = None
    try:
        with concurrent_connection(bind, index) as conn:
            target = _target(conn, index)
            pid = target.pid if target is not None else None
            _build(conn, index, checkfirst, progress, poll_interval, pid=pid, settings=settings)
    except BaseException as e:
        if target is not None:
            given = bind if isinstance(bind, Connection) else None
            note = drop_invalid_index(bind.engine, target, given)
            if note is not None:
                add_note(e, note)
        raise


async def build_vector_index_async(
    bind: AsyncEngine | AsyncConnection,
    index: Index,
    *,
    checkfirst: bool = False,
    progress: bool | Callable[[BuildProgress], None] = True,
    poll_interval: float = 0.25,
) -> None:
    """:func:`build_vector_index` for an AsyncEngine or AsyncConnection (asyncpg,
    psycopg async): the same build, progress and CONCURRENTLY handling, awaited.

    An AsyncEngine builds on a connection of its own (AUTOCOMMIT for a
    ``concurrently=True`` index); an AsyncConnection builds in its current transaction,
    or, for a ``concurrently=True`` index, must be AUTOCOMMIT
    (``await conn.execution_options(isolation_level="AUTOCOMMIT")``). The progress
    watcher is a task on the running event loop. Raises ``TypeError`` for anything
    else, and what :func:`build_vector_index` raises.
    """
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
    from sqlalchemy.util import greenlet_spawn

    options: dict[str, Any] = {
        "checkfirst": checkfirst,
        "progress": progress,
        "poll_interval": poll_interval,
    }
    if isinstance(bind, AsyncEngine):
        await greenlet_spawn(build_vector_index, bind.sync_engine, index, **options)
    elif isinstance(bind, AsyncConnection):
        await bind.run_sync(build_vector_index, index, **options)
    else:
        raise TypeError(f"expected an AsyncEngine or AsyncConnection, got {type(bind).__name__}")


def _build(
    conn: Connection,
    index: Index,
    checkfirst: bool,
    progress: bool | Callable[[BuildProgress], None],
    poll_interval: float,
    *,
    pid: int | None = None,
    settings: dict[str, int] | str | None = None,
) -> None:
    """Create ``index`` on ``conn``, a watcher reporting progress meanwhile; ``pid`` is
    the connection's backend pid when already known; ``settings`` (checked) are applied
    to the session for the build and restored after it."""
    bar: _TqdmReporter | None = None
    report: Callable[[BuildProgress], None] | None = None
    if callable(progress):
        report = progress
    elif progress:
        try:
            from tqdm.auto import tqdm
        except ImportError:  # the "progress" extra is optional: no bar, as copy_rows
            tqdm = None
        if tqdm is not None:
            report = bar = _TqdmReporter(str(index.name), tqdm)
    finish: Callable[[], None] | None = None
    if report is not None:
        if pid is None:
            pid = int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
        start = _start_task_watcher if conn.dialect.is_async else _start_thread_watcher
        finish = start(conn.engine, pid, report, poll_interval, str(index.name))
    restore = _apply_build_settings(conn, index, settings) if settings is not None else None
    try:
        Index.create(index, conn, checkfirst)
    finally:
        if finish is not None:
            finish()
        if bar is not None:
            bar.close()
        if restore is not None and not conn.invalidated:
            with suppress(DBAPIError):  # an aborted transaction reverts them itself
                _set_gucs(conn, restore)


#: the build settings build_vector_index applies, and the most the server takes of each
_BUILD_GUCS = ("maintenance_work_mem", "max_parallel_maintenance_workers")
_MAX_WORK_MEM_KB = 2147483647  # MAX_KILOBYTES, src/include/utils/guc.h (64-bit)
_MAX_WORKERS = 1024  # max_parallel_maintenance_workers' own limit (MAX_PARALLEL_WORKER_LIMIT)


def _check_settings(
    settings: BuildSettings | Mapping[str, int] | str | None, index: Index
) -> dict[str, int] | str | None:
    """``settings`` as ``{GUC name: int}`` (bytes for ``maintenance_work_mem``), or
    ``"auto"``; ``ValueError`` for anything else, before anything is sent."""
    if settings is None:
        return None
    if isinstance(settings, str):
        if settings != "auto":
            raise ValueError(
                f"settings must be a BuildSettings, a mapping or 'auto', got {settings!r}"
            )
        if getattr(index, "spec", None) is None:
            raise ValueError(
                "settings='auto' needs an HnswIndex or IvfflatIndex over a typed column; for "
                "this index pass index_build_settings(rows, dim, ...)"
            )
        return "auto"
    if isinstance(settings, BuildSettings):
        given: Mapping[str, Any] = {
            "maintenance_work_mem": settings.maintenance_work_mem,
            "max_parallel_maintenance_workers": settings.max_parallel_maintenance_workers,
        }
    elif isinstance(settings, Mapping):
        given = settings
    else:
        raise ValueError(
            f"settings must be a BuildSettings, a mapping or 'auto', got {type(settings).__name__}"
        )
    checked: dict[str, int] = {}
    for name, value in given.items():
        if name not in _BUILD_GUCS:
            raise ValueError(f"unknown build setting {name!r}; expected " + ", ".join(_BUILD_GUCS))
        low = 1024 * 1024 if name == "maintenance_work_mem" else 0
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            unit = " bytes (at least 1 MB)" if low else ""
            raise ValueError(f"{name} must be an int >= {low}{unit}, got {value!r}")
        checked[name] = value
    return checked


def _auto_settings(conn: Connection, index: Index) -> dict[str, int]:
    """:func:`~vecalchemy.index_build_settings` for ``index`` from its table's size."""
    spec = getattr(index, "spec", None)
    assert spec is not None and index.table is not None
    table = sqltext.regclass_text(index.table.name, conn.schema_for_object(index.table))
    rows = conn.execute(
        text("SELECT reltuples::bigint FROM pg_catalog.pg_class WHERE oid = to_regclass(:t)"),
        {"t": table},
    ).scalar()
    if rows is None or rows < 0:  # never vacuumed or analysed
        rows = conn.execute(select(func.count()).select_from(index.table)).scalar_one()
    options = dict(spec.options)
    estimate = index_build_settings(
        max(int(rows), 1),
        spec.dim,
        method=spec.method,
        sql_type=spec.sql_type if spec.sql_type in ("vector", "halfvec", "bit") else "vector",
        **{k: v for k, v in options.items() if k in ("m", "lists")},
    )
    return {
        "maintenance_work_mem": estimate.maintenance_work_mem,
        "max_parallel_maintenance_workers": estimate.max_parallel_maintenance_workers,
    }


def _set_gucs(conn: Connection, values: Mapping[str, str]) -> None:
    local = not is_autocommit(conn)  # in a transaction: SET LOCAL, gone at its end anyway
    for name, value in values.items():
        conn.execute(text("SELECT set_config(:n, :v, :l)"), {"n": name, "v": value, "l": local})


def _apply_build_settings(
    conn: Connection, index: Index, settings: dict[str, int] | str
) -> dict[str, str]:
    """Set the build settings on ``conn``'s session (capped to what the server takes,
    with a warning) and return the previous values, to restore."""
    wanted = _auto_settings(conn, index) if settings == "auto" else settings
    assert isinstance(wanted, dict)
    names = [*wanted, "max_parallel_workers"]
    row = conn.execute(
        text("SELECT " + ", ".join(f"current_setting(:g{i})" for i in range(len(names)))),
        {f"g{i}": n for i, n in enumerate(names)},
    ).one()
    current = dict(zip(names, (str(v) for v in row), strict=True))
    values: dict[str, str] = {}
    for name, value in wanted.items():
        if name == "maintenance_work_mem":
            kb = -(-value // 1024)
            if kb > _MAX_WORK_MEM_KB:
                _capped(index, name, f"{kb}kB", f"{_MAX_WORK_MEM_KB}kB", "the server's maximum")
                kb = _MAX_WORK_MEM_KB
            values[name] = f"{kb}kB"
        else:
            cap = min(int(current["max_parallel_workers"]), _MAX_WORKERS)
            if value > cap:
                _capped(index, name, str(value), str(cap), "max_parallel_workers")
                value = cap
            values[name] = str(value)
    _set_gucs(conn, values)
    return {name: current[name] for name in values}


def _capped(index: Index, name: str, wanted: str, cap: str, why: str) -> None:
    warnings.warn(
        f"building index {index.name!r}: {name} {wanted} capped to {cap} ({why})",
        RuntimeWarning,
        stacklevel=5,
    )


def build_plainly_in_transaction(
    ddl: Any,
    target: Any,
    bind: Any,
    tables: Any = None,
    state: Any = None,
    *,
    dialect: Any,
    compiler: Any = None,
    checkfirst: bool = False,
) -> bool:
    """``ddl_if`` of a CONCURRENTLY index: inside a transaction block, build it plainly.

    ``metadata.create_all``/``table.create`` create the index right after its table, in
    one transaction, where PostgreSQL refuses CONCURRENTLY; the table is new and
    invisible to others, so a plain build blocks nobody. Outside a transaction
    (``index.create(engine)``, Alembic's autocommit block) CONCURRENTLY is emitted.
    """
    if not isinstance(ddl, CreateIndex) or bind is None or is_autocommit(bind):
        return True
    # the flag is flipped for this one statement (DDL runs one statement at a time)
    options = target.dialect_options["postgresql"]
    options["concurrently"] = False
    try:
        bind.execute(CreateIndex(target))
    finally:
        options["concurrently"] = True
    return False
