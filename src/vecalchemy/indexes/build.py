"""Building vector indexes: progress, CONCURRENTLY outside a transaction, cleanup.

:func:`build_vector_index` creates an index while a second connection polls
``pg_stat_progress_create_index`` (a tqdm bar or a callback); a ``concurrently=True``
index is built on an AUTOCOMMIT connection (PostgreSQL refuses ``CREATE INDEX
CONCURRENTLY`` in a transaction block) and the INVALID index a failed build leaves is
dropped. The phases reported are pgvector's (src/hnsw.c, src/ivfflat.c).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Index, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.schema import CreateIndex, DropIndex

from ..connections import autocommit_connection, is_autocommit
from ..exc import IndexDefinitionError

__all__ = [
    "BuildProgress",
    "build_vector_index",
    "build_plainly_in_transaction",
    "concurrent_connection",
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
_INDEX_STATE_SQL = text(
    "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
    "WHERE c.relname = :name AND i.indrelid = to_regclass(:table)"
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


def _table_name(conn: Connection, index: Index) -> str:
    assert index.table is not None
    return conn.dialect.identifier_preparer.format_table(index.table)


def _drop_if_invalid(conn: Connection, index: Index) -> str | None:
    """Drop the INVALID index a failed CONCURRENTLY build left; return what happened."""
    try:
        valid = conn.execute(
            _INDEX_STATE_SQL, {"name": index.name, "table": _table_name(conn, index)}
        ).scalar()
        if valid is None or valid:
            return None
        conn.execute(DropIndex(index, if_exists=True))
        return f"the INVALID index {index.name!r} the failed build left was dropped"
    except Exception as e:  # the connection may be unusable after the failure
        stmt = DropIndex(index, if_exists=True).compile(dialect=conn.dialect)
        return (
            f"the failed build may have left an INVALID index {index.name!r} ({e}); drop it "
            f"with: {stmt}"
        )


def _watch(
    engine: Engine,
    pid: int,
    report: Callable[[BuildProgress], None],
    stop: threading.Event,
    interval: float,
) -> None:
    """Poll ``pg_stat_progress_create_index`` from a second connection until ``stop``."""
    with engine.connect() as watcher:
        watcher = watcher.execution_options(isolation_level="AUTOCOMMIT")
        while not stop.wait(interval):
            row = watcher.execute(_PROGRESS_SQL, {"pid": pid}).first()
            if row is None:
                continue
            phase, b_done, b_total, t_done, t_total = row
            if b_total and "loading tuples" in phase and not t_total:
                report(BuildProgress(phase, int(b_done), int(b_total)))
            elif t_total:
                report(BuildProgress(phase, int(t_done), int(t_total), "tuples"))
            else:
                report(BuildProgress(phase, int(b_done or 0), int(b_total or 0)))


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
) -> None:
    """Create ``index`` on ``bind``, showing build progress for long builds.

    ``progress=True`` draws a tqdm bar per phase from ``pg_stat_progress_create_index``,
    polled every ``poll_interval`` seconds by a second connection of the same engine
    while the build runs (without tqdm, the ``vecalchemy[progress]`` extra, no bar);
    a callable receives each :class:`BuildProgress` sample instead; ``False`` polls
    nothing. An index declared ``concurrently=True`` is built outside a transaction
    block and, if the build fails, the INVALID index it leaves is dropped before the
    error is re-raised (or, if that drop fails too, the error says how to drop it).

    Raises :class:`~vecalchemy.exc.IndexDefinitionError` for a CONCURRENTLY index on a
    Connection inside a transaction; database errors propagate.
    """
    concurrently = bool(index.dialect_options["postgresql"]["concurrently"])
    if concurrently:
        with concurrent_connection(bind, index) as conn:
            _build(conn, index, checkfirst, progress, poll_interval, cleanup=True)
    elif isinstance(bind, Engine):
        with bind.begin() as conn:
            _build(conn, index, checkfirst, progress, poll_interval, cleanup=False)
    else:
        _build(bind, index, checkfirst, progress, poll_interval, cleanup=False)


def _build(
    conn: Connection,
    index: Index,
    checkfirst: bool,
    progress: bool | Callable[[BuildProgress], None],
    poll_interval: float,
    *,
    cleanup: bool,
) -> None:
    stop = threading.Event()
    watcher: threading.Thread | None = None
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
    if report is not None:
        pid = int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
        watcher = threading.Thread(
            target=_watch, args=(conn.engine, pid, report, stop, poll_interval), daemon=True
        )
        watcher.start()
    try:
        Index.create(index, conn, checkfirst)
    except BaseException as e:
        if cleanup:
            note = _drop_if_invalid(conn, index)
            if note is not None and hasattr(e, "add_note"):
                e.add_note(note)
        raise
    finally:
        stop.set()
        if watcher is not None:
            watcher.join()
        if bar is not None:
            bar.close()


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
