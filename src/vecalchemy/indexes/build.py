"""Building vector indexes: progress, CONCURRENTLY outside a transaction, cleanup.

:func:`build_vector_index` creates an index while a second connection polls
``pg_stat_progress_create_index`` (a tqdm bar or a callback); a ``concurrently=True``
index is built on an AUTOCOMMIT connection (PostgreSQL refuses ``CREATE INDEX
CONCURRENTLY`` in a transaction block) and the INVALID index a failed build leaves is
dropped from a fresh connection of the same engine (the build's own may be dead). On a
partitioned table (where PostgreSQL refuses ``CREATE INDEX CONCURRENTLY``) the index is
built ``ON ONLY`` the parent, then partition by partition CONCURRENTLY and attached;
:func:`create_partitioned_index_concurrently` does the same for an already compiled
definition (Alembic's ``create_vector_index``). The phases reported are pgvector's
(src/hnsw.c, src/ivfflat.c).
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import warnings
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Index, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateIndex

from .. import sqltext
from ..connections import autocommit_connection, is_autocommit, run_async
from ..exc import IndexDefinitionError
from ..facts import MAX_IDENTIFIER_BYTES, BuildSettings
from .build_settings import apply_build_settings, check_settings, set_gucs
from .cleanup import BuildTarget, add_note, drop_invalid_index, target_of

if TYPE_CHECKING:  # sqlalchemy.ext.asyncio needs greenlet, only when used
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = [
    "BuildProgress",
    "build_vector_index",
    "build_vector_index_async",
    "build_plainly_in_transaction",
    "concurrent_connection",
    "create_partitioned_index_concurrently",
    "is_partitioned",
    "partition_index_name",
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

    On a partitioned table (where PostgreSQL refuses ``CREATE INDEX CONCURRENTLY``) a
    ``concurrently=True`` index is built as PostgreSQL allows: ``CREATE INDEX ... ON ONLY``
    the parent, then each partition's index ``CONCURRENTLY`` (named by
    :func:`partition_index_name`, progress reported per partition) attached to it with
    ``ALTER INDEX ... ATTACH PARTITION``; a failed build drops what it made (the
    partition's INVALID index, those built, the parent's). Sub-partitioned partitions are
    refused (``IndexDefinitionError``).

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
    wanted = check_settings(settings, index)
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
    partitioned: _PartitionedBuild | None = None
    try:
        with concurrent_connection(bind, index) as conn:
            target = target_of(conn, index)
            pid = target.pid if target is not None else None
            if target is not None and is_partitioned(conn, target):
                partitioned = _PartitionedBuild(target)
                if not (checkfirst and _index_exists(conn, target)):
                    tail = _index_tail(conn, index)
                    _build_partitions(
                        conn, partitioned, tail, progress, poll_interval, settings, index
                    )
            else:
                _build(
                    conn, index, checkfirst, progress, poll_interval, pid=pid, settings=settings
                )
    except BaseException as e:
        if partitioned is not None:
            given = bind if isinstance(bind, Connection) else None
            note = _drop_partitioned_build(bind.engine, partitioned, given)
            if note is not None:
                add_note(e, note)
        elif target is not None:
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
    options: dict[str, Any] = {
        "checkfirst": checkfirst,
        "progress": progress,
        "poll_interval": poll_interval,
    }
    await run_async(bind, build_vector_index, index, sessions=False, **options)


def _build(
    conn: Connection,
    index: Index | None,
    checkfirst: bool,
    progress: bool | Callable[[BuildProgress], None],
    poll_interval: float,
    *,
    pid: int | None = None,
    settings: dict[str, int] | str | None = None,
    statement: sqltext.Statement | None = None,
    label: str | None = None,
) -> None:
    """Create ``index`` on ``conn``, a watcher reporting progress meanwhile; ``pid`` is
    the connection's backend pid when already known; ``settings`` (checked) are applied
    to the session for the build and restored after it. ``statement`` (one partition's
    ``CREATE INDEX``, named ``label``) is run instead of the index's own DDL; ``index``
    may then be None (no ``settings`` to apply)."""
    if label is None:
        assert index is not None
        label = str(index.name)
    name = label
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
            report = bar = _TqdmReporter(name, tqdm)
    finish: Callable[[], None] | None = None
    if report is not None:
        if pid is None:
            pid = int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
        start = _start_task_watcher if conn.dialect.is_async else _start_thread_watcher
        finish = start(conn.engine, pid, report, poll_interval, name)
    restore = None
    if settings is not None:
        assert index is not None
        restore = apply_build_settings(conn, index, settings)
    try:
        if statement is None:
            assert index is not None
            Index.create(index, conn, checkfirst)
        else:
            conn.execute(statement)
    finally:
        if finish is not None:
            finish()
        if bar is not None:
            bar.close()
        if restore is not None and not conn.invalidated:
            with suppress(DBAPIError):  # an aborted transaction reverts them itself
                set_gucs(conn, restore)


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


# --- CONCURRENTLY on a partitioned table ------------------------------------------------

#: the table's relkind, by raw names ('p': a partitioned table)
_RELKIND_SQL = text(
    "SELECT CAST(c.relkind AS text) FROM pg_catalog.pg_class c "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = :schema AND c.relname = :table"
)
#: the partitions of a table, by raw names: each one's name, schema and relkind
_PARTITIONS_SQL = text(
    "SELECT CAST(c.relname AS text), CAST(n.nspname AS text), CAST(c.relkind AS text) "
    "FROM pg_catalog.pg_inherits i "
    "JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE i.inhparent = (SELECT p.oid FROM pg_catalog.pg_class p "
    "JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace "
    "WHERE pn.nspname = :schema AND p.relname = :table) "
    "ORDER BY c.relname"
)
#: whether an index of that name exists in the schema
_INDEX_EXISTS_SQL = text(
    "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = :schema AND c.relname = :name AND c.relkind IN ('i', 'I'))"
)


@dataclass
class _PartitionedBuild:
    """What a CONCURRENTLY build on a partitioned table has created so far: the parent's
    index (``CREATE INDEX ... ON ONLY``, once made), the partitions' indexes built, and
    the one being built."""

    parent: BuildTarget
    parent_made: bool = False
    children: list[BuildTarget] | None = None
    current: BuildTarget | None = None


def is_partitioned(conn: Connection, target: BuildTarget) -> bool:
    """Whether the table of ``target`` (as :func:`~vecalchemy.indexes.cleanup.build_target`
    resolved it) is a partitioned table (``pg_class.relkind = 'p'``), where PostgreSQL
    refuses ``CREATE INDEX CONCURRENTLY``."""
    params = {"schema": target.schema, "table": target.table}
    return conn.execute(_RELKIND_SQL, params).scalar() == "p"


def _index_exists(conn: Connection, target: BuildTarget) -> bool:
    params = {"schema": target.schema, "name": target.name}
    return bool(conn.execute(_INDEX_EXISTS_SQL, params).scalar())


def partition_index_name(index_name: str, partition: str) -> str:
    """The name of ``index_name``'s index on ``partition``: ``<index>_<partition>``, or,
    over PostgreSQL's 63 bytes, its UTF-8 prefix and ``_`` with 8 hex digits of a hash
    of the whole name (the same partition always gets the same name)."""
    full = f"{index_name}_{partition}"
    if len(full.encode("utf-8")) <= MAX_IDENTIFIER_BYTES:
        return sqltext.check_identifier(full, "partition index name")
    digest = hashlib.sha256(full.encode("utf-8")).hexdigest()[:8]
    room = MAX_IDENTIFIER_BYTES - len(digest) - 1
    head = full.encode("utf-8")[:room].decode("utf-8", errors="ignore")
    return sqltext.check_identifier(f"{head}_{digest}", "partition index name")


def _index_tail(conn: Connection, index: Index) -> str:
    """The index's own ``CREATE INDEX`` after ``ON <table>``: ``USING ... (expr opclass)
    WITH (...) WHERE ...``, exact (compiled with literal values, nothing escaped)."""
    table = index.table
    assert table is not None and index.name is not None
    ddl = sqltext.exact_sql(CreateIndex(index), conn.dialect)
    # the names as the compiler of exact_sql wrote them (its preparer: a control character
    # stays as it is, where sqltext.quote writes a U&"..." escape; no ``%`` doubled)
    make: Any = type(conn.dialect)
    preparer = make(paramstyle="named").identifier_preparer
    prefix = (
        f"CREATE INDEX CONCURRENTLY {preparer.quote(str(index.name))} "
        f"ON {preparer.format_table(table)} "
    )
    if not ddl.startswith(prefix):
        raise IndexDefinitionError(
            f"index {index.name!r} on the partitioned table {table.name!r} cannot be built "
            "CONCURRENTLY partition by partition: its DDL is not of the form "
            "CREATE INDEX CONCURRENTLY name ON table ...; build it with concurrently=False"
        )
    return ddl[len(prefix) :]


def _build_partitions(
    conn: Connection,
    state: _PartitionedBuild,
    tail: str,
    progress: bool | Callable[[BuildProgress], None],
    poll_interval: float,
    settings: dict[str, int] | str | None,
    index: Index | None,
) -> None:
    """PostgreSQL refuses ``CREATE INDEX CONCURRENTLY`` on a partitioned table; build it
    as PostgreSQL allows: the parent's index ``ON ONLY`` the parent (INVALID until every
    partition's is attached), each partition's ``CONCURRENTLY``, then attached. ``tail``
    is the definition after ``ON <table>`` (``USING ...``); ``index``, the declared
    index when there is one, takes the ``settings``. What was made is recorded in
    ``state`` for the cleanup of a failed build."""
    dialect = conn.dialect
    parent = state.parent
    partitions = conn.execute(
        _PARTITIONS_SQL, {"schema": parent.schema, "table": parent.table}
    ).all()
    for name, _, relkind in partitions:
        if relkind != "r":
            kind = "sub-partitioned" if relkind == "p" else f"of relkind {relkind!r}"
            raise IndexDefinitionError(
                f"index {parent.name!r}: the partition {name!r} of {parent.table!r} is {kind}; "
                "concurrently=True builds over partitions that are plain tables only: build "
                "it with concurrently=False, or index each partition yourself"
            )
    parent_index = sqltext.qualified(dialect, parent.name, parent.schema)
    conn.execute(
        sqltext.Statement(
            f"CREATE INDEX {sqltext.quote(dialect, parent.name)} "
            f"ON ONLY {sqltext.qualified(dialect, parent.table, parent.schema)} {tail}"
        )
    )
    state.parent_made = True
    state.children = []
    for name, schema, _ in partitions:
        child = BuildTarget(str(schema), str(name), partition_index_name(parent.name, name), 0)
        state.current = child
        _build(
            conn,
            index,
            False,
            progress,
            poll_interval,
            pid=parent.pid,
            settings=settings,
            statement=sqltext.Statement(
                f"CREATE INDEX CONCURRENTLY {sqltext.quote(dialect, child.name)} "
                f"ON {sqltext.qualified(dialect, child.table, child.schema)} {tail}"
            ),
            label=child.name,
        )
        state.children.append(child)
        state.current = None
        conn.execute(
            sqltext.Statement(
                f"ALTER INDEX {parent_index} ATTACH PARTITION "
                f"{sqltext.qualified(dialect, child.name, child.schema)}"
            )
        )


def _drop_partitioned_build(
    engine: Engine, state: _PartitionedBuild, given: Connection | None
) -> str | None:
    """After a failed CONCURRENTLY build on a partitioned table: drop the INVALID index
    of the partition being built (:func:`drop_invalid_index`), then the parent's index
    (with the partitions' indexes attached to it) and those built but not yet attached.
    Returns the note for the error."""
    notes: list[str] = []
    if state.current is not None:
        pid_target = BuildTarget(
            state.current.schema, state.current.table, state.current.name, state.parent.pid
        )
        note = drop_invalid_index(engine, pid_target, given)
        if note is not None:
            notes.append(note)
    if not state.parent_made:
        return "; ".join(notes) or None
    dialect = engine.dialect
    names = [state.parent, *(state.children or ())]
    drops = [f"DROP INDEX IF EXISTS {sqltext.qualified(dialect, t.name, t.schema)}" for t in names]
    try:
        with engine.connect() as fresh:
            fresh = fresh.execution_options(isolation_level="AUTOCOMMIT")
            for drop in drops:
                fresh.execute(sqltext.Statement(drop))
    except Exception as e:
        notes.append(
            f"the indexes the failed build made could not be dropped ({type(e).__name__}: "
            f"{e}); drop them with: " + "; ".join(drops)
        )
    else:
        notes.append(
            f"the index {state.parent.name!r} on ONLY the partitioned table and the "
            "partitions' indexes the failed build made were dropped"
        )
    return "; ".join(notes)


def create_partitioned_index_concurrently(
    conn: Connection,
    target: BuildTarget,
    definition: str,
    *,
    checkfirst: bool = False,
    progress: bool | Callable[[BuildProgress], None] = False,
    poll_interval: float = 0.25,
) -> None:
    """Create the index ``target.name`` on the partitioned table of ``target`` the way
    PostgreSQL allows instead of ``CREATE INDEX CONCURRENTLY`` (which it refuses on a
    partitioned table): ``CREATE INDEX name ON ONLY parent <definition>``, then each
    partition's index ``CREATE INDEX CONCURRENTLY`` (named by
    :func:`partition_index_name`, in the partition's schema) and ``ALTER INDEX ... ATTACH
    PARTITION``; once every partition's is attached, PostgreSQL marks the parent's index
    valid. The partitions' rows are indexed without blocking their writes; the
    statements on the parent's index (``ON ONLY``, ``ATTACH PARTITION``) change the
    catalog only, each committed at once (PostgreSQL docs, ``CREATE INDEX``: concurrent
    builds on partitioned tables are not supported, build each partition's, then the
    parent's).

    ``conn`` must be an AUTOCOMMIT Connection (an Alembic ``autocommit_block``, or
    ``.execution_options(isolation_level="AUTOCOMMIT")``); ``target`` is the table's
    schema as resolved on ``conn``, the table's and index's raw names and ``conn``'s
    backend pid (:func:`~vecalchemy.indexes.cleanup.build_target`, read on ``conn``).
    ``definition`` is the rest of an already compiled ``CREATE INDEX`` after ``ON
    <table>``: ``USING hnsw (embedding vector_cosine_ops) WITH (m = 16) WHERE ...``,
    sent as written, so it must be built from checked, quoted parts (never from a
    user's value). ``checkfirst``: nothing is done when an index of that name exists in
    the schema. ``progress`` as :func:`build_vector_index` (one bar or series of
    samples per partition; off by default).

    A failed build (an error, a terminated backend, an interrupt) drops what it made:
    the INVALID index of the partition being built (from a fresh connection of
    ``conn.engine``), those built and attached, and the parent's; the error is re-raised
    with a note saying so. Raises :class:`~vecalchemy.exc.IndexDefinitionError` for a
    ``conn`` inside a transaction block, a table that is not partitioned (use ``CREATE
    INDEX CONCURRENTLY``), a sub-partitioned partition, or a ``definition`` not starting
    with ``USING``, before any DDL is sent; database errors propagate.
    """
    if not isinstance(conn, Connection):
        raise TypeError(f"expected a Connection, got {type(conn).__name__}")
    if not isinstance(definition, str) or not definition.startswith("USING "):
        raise IndexDefinitionError(
            f"index {target.name!r}: the definition must be the CREATE INDEX text after "
            f"ON <table>, starting with 'USING ', got {definition!r}"
        )
    if not is_autocommit(conn):
        raise IndexDefinitionError(
            f"index {target.name!r} on the partitioned table {target.table!r}: its "
            "partitions' indexes are built with CREATE INDEX CONCURRENTLY, which cannot run "
            "inside a transaction block; pass a connection with "
            ".execution_options(isolation_level='AUTOCOMMIT')"
        )
    if not is_partitioned(conn, target):
        raise IndexDefinitionError(
            f"index {target.name!r}: the table {target.table!r} in schema {target.schema!r} "
            "is not a partitioned table (pg_class.relkind 'p'); build it with CREATE INDEX "
            "CONCURRENTLY"
        )
    if checkfirst and _index_exists(conn, target):
        return
    state = _PartitionedBuild(target)
    try:
        _build_partitions(conn, state, definition, progress, poll_interval, None, None)
    except BaseException as e:
        note = _drop_partitioned_build(conn.engine, state, conn)
        if note is not None:
            add_note(e, note)
        raise
