"""Does the server's plan actually use the vector index? A runtime guard.

:func:`~vecalchemy.checks.install_query_checks` reads the statement; it cannot see the
planner prefer the heap for a statement of the index's exact shape. That happens:
vectors over ~500 dimensions are stored out of line (TOAST), which the sequential scan's
cost estimate does not count, so the heap can look cheaper than an HNSW or IVFFlat scan
(pgvector issues #784, #257, #152; pull request #133). :func:`install_plan_guard` asks
the server, once per distinct statement, with ``EXPLAIN`` on the statement's own
connection, transaction, values and search settings.
"""

from __future__ import annotations

import warnings
import weakref
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import Table, event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql import ClauseElement

from . import _private, sqltext
from .checks import _columns_of, _selects, distance_orders, user_stacklevel
from .exc import VectorPlanError, VectorPlanWarning
from .explain import Explain, explain_index_usage
from .facts import INDEX_METHODS

if TYPE_CHECKING:  # sqlalchemy.ext.asyncio needs greenlet only when used
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["install_plan_guard"]

#: ``Connection.info`` key set while the guard runs its own statements (EXPLAIN, catalog
#: look-ups), which it must not guard in turn
_GUARDING_KEY = "vecalchemy_plan_guard"

#: distinct statements remembered per engine; the oldest is forgotten beyond this
MAX_STATEMENTS = 2048

#: statement text quoted in a message, at most
_SQL_CHARS = 300

_HAS_VECTOR_INDEX = text(
    "SELECT EXISTS (SELECT 1 FROM pg_index i "
    "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam "
    "WHERE i.indrelid = to_regclass(:name) AND am.amname IN ("
    + ", ".join(f"'{method}'" for method in INDEX_METHODS)
    + "))"
)

_REMEDIES = (
    "run ANALYZE on the table (statistics taken before a bulk load, or none, mislead "
    "the planner); keep vectors of up to ~2000 dimensions inline with ALTER TABLE ... "
    "ALTER COLUMN ... SET STORAGE PLAIN and a rewrite of the rows, e.g. VACUUM FULL "
    "(vecalchemy.storage.set_vector_storage; TOASTed vectors make the heap look cheap, "
    "pgvector #784, #353); or encourage the index for the transaction with "
    "search_settings(conn, prefer_index=True), i.e. SET LOCAL enable_seqscan = off "
    "(pgvector README, Troubleshooting; #257, #152). "
    "On a small table a sequential scan may simply be the faster plan"
)


def _top_k_tables(statement: Any) -> list[Table]:
    """The tables ordered by a distance (first ORDER BY key, with a LIMIT) in any SELECT
    of ``statement``; ``[]`` for anything else (text, DML without such a SELECT,
    EXPLAIN)."""
    if not isinstance(statement, ClauseElement) or isinstance(statement, Explain):
        return []
    tables: list[Table] = []
    for select_stmt in _selects(statement):
        if _private.limit_clause(select_stmt) is None:
            continue
        for order in distance_orders(select_stmt):
            if order.position != 0 or order.operand is None:
                continue
            for col in _columns_of(order.operand):
                table = col.table
                if isinstance(table, Table) and all(t is not table for t in tables):
                    tables.append(table)
    return tables


def _has_vector_index(conn: Connection, table: Table) -> bool:
    name = sqltext.regclass_text(table.name, table.schema)
    return bool(conn.execute(_HAS_VECTOR_INDEX, {"name": name}).scalar())


def _shorten(sql: str) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= _SQL_CHARS else flat[: _SQL_CHARS - 3] + "..."


class _PlanGuard:
    """One engine's guard: the action and the statements already settled."""

    def __init__(self, action: str) -> None:
        self.action = action
        self.settled: dict[str, None] = {}

    def _settle(self, statement: str) -> None:
        settled = self.settled
        if len(settled) >= MAX_STATEMENTS:
            settled.pop(next(iter(settled)), None)
        settled[statement] = None

    def before_cursor_execute(
        self,
        conn: Connection,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        if statement in self.settled:
            return
        info = conn.info
        if info.get(_GUARDING_KEY):
            return
        compiled = getattr(context, "compiled", None)
        tables = (
            _top_k_tables(compiled.statement)
            if compiled is not None and not executemany and not compiled.is_ddl
            else []
        )
        invoked = getattr(context, "invoked_statement", None)
        if not tables or invoked is None:
            self._settle(statement)
            return
        info[_GUARDING_KEY] = True
        try:
            if not any(_has_vector_index(conn, table) for table in tables):
                usage = None  # no vector index to use: nothing to say
            else:
                usage = explain_index_usage(conn, invoked)
        finally:
            del info[_GUARDING_KEY]
        if usage is None or usage.uses_vector_index:
            self._settle(statement)
            return
        names = ", ".join(t.fullname for t in tables)
        top = " / ".join(line.strip() for line in usage.plan[:4])
        message = (
            f"the plan for this ORDER BY <distance> LIMIT k statement on {names} scans no "
            f"vector index (plan: {top}): {_shorten(statement)}. Remedies: {_REMEDIES}"
        )
        if self.action == "raise":
            raise VectorPlanError(message)  # not settled: planned again next time
        self._settle(statement)
        warnings.warn(message, VectorPlanWarning, stacklevel=user_stacklevel())


_GUARDS: weakref.WeakKeyDictionary[Engine, _PlanGuard] = weakref.WeakKeyDictionary()


def install_plan_guard(
    engine: Engine | AsyncEngine, action: Literal["warn", "raise"] = "warn"
) -> None:
    """Check that the server's plan uses a vector index for every ``ORDER BY <vector
    distance> LIMIT k`` statement ``engine`` runs.

    Before such a statement (a Core or ORM SELECT, or one holding such a SELECT, whose
    first ORDER BY key is a pgvector distance on a table that has an HNSW or IVFFlat
    index on the server) first runs, the guard EXPLAINs it (plain ``EXPLAIN``, not
    ``ANALYZE``: planned, not executed) on the same connection, in the same transaction,
    with the same values and with the statement's search settings in effect, compiled
    for the engine's driver (psycopg sync/async, asyncpg, psycopg2, pg8000). When the
    plan scans no vector index, ``action="warn"`` warns with
    :class:`~vecalchemy.exc.VectorPlanWarning` (naming the statement, the plan's top
    nodes and the remedies) and runs the statement; ``action="raise"`` raises
    :class:`~vecalchemy.exc.VectorPlanError` instead, and the statement is not executed.
    The statement's result is otherwise unchanged.

    Each distinct compiled SQL string is planned once per engine (the last
    :data:`MAX_STATEMENTS` remembered); afterwards the guard costs a dictionary lookup.
    In raise mode a statement whose plan was refused is planned again at its next run,
    so it passes once the planner uses the index. The verdict belongs to the SQL
    string: the same statement run later under other search settings or statistics is
    not planned again. Text statements, DML and statements
    whose tables have no vector index are not EXPLAINed. A database error in the
    EXPLAIN (the statement's own error: it is the same SQL) propagates.

    Why the planner can skip an index the query shape allows: TOASTed vectors make the
    heap look cheap (pgvector issues #784, #353), stale statistics, or a small table
    (pgvector README, Troubleshooting; #257, #152). Idempotent; calling it again
    changes the action. Raises :class:`ValueError` for another ``action``.
    """
    if action not in ("warn", "raise"):
        raise ValueError(f"action must be 'warn' or 'raise', got {action!r}")
    sync: Engine = engine if isinstance(engine, Engine) else engine.sync_engine
    found = _GUARDS.get(sync)
    if found is not None:
        found.action = action
        return
    guard = _PlanGuard(action)
    _GUARDS[sync] = guard
    event.listen(sync, "before_cursor_execute", guard.before_cursor_execute)
