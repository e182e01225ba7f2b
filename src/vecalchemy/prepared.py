"""Latency path for a query run many times: compile once, execute on psycopg's cursor.

``Connection.execute()`` runs SQLAlchemy's per-execution machinery (execution context,
events, ``Result`` and ``Row`` objects) around the driver call. For a top-k search the
server answers in a millisecond or two, and that machinery costs up to about 20 % on
top of a hand-written psycopg call (see the README's benchmark: SQLAlchemy alone, running
a string through ``exec_driver_sql``, measures 0.99–1.19× raw psycopg there, run to run).

:class:`PreparedQuery` keeps what the statement needs and nothing else: the SQL
string compiled once per dialect, the columns' bind processors (so vectors are validated
and bound in binary exactly as through ``Connection.execute``) and result processors,
and the result format decision of :mod:`vecalchemy.results`. Each call is one
``cursor.execute()`` + ``fetchall()`` on the connection's driver connection, in the
connection's transaction (begun if none is)::

    nearest = PreparedQuery(
        select(Doc.id, Doc.title)
        .order_by(Doc.embedding.cosine_distance(bindparam("q")))
        .limit(10)
    )
    with Session(engine) as session:
        rows = nearest.all(session, q=query_vector)  # [(id, title), ...]

What it skips, by design: engine and connection events (``before_cursor_execute``
listeners, ``echo`` logging), execution options (``vector_search=``: use
:func:`vecalchemy.search_settings` around the calls instead), ORM entity loading
(select columns, not entities). The query checks of :mod:`vecalchemy.checks` run once,
when the statement is first compiled for a dialect.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.pq import Format
from sqlalchemy import Integer, literal_column
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import BindParameter
from sqlalchemy.sql.selectable import Select

if TYPE_CHECKING:  # (sqlalchemy.ext.asyncio wants greenlet at run time)
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from . import _private, batches
from .checks import cached_problems, user_stacklevel
from .compiler import KEEP_BOUND_LIMITS
from .results import binary_results_ok, driver_cursor, loads_in_binary

__all__ = ["PreparedQuery"]

#: the drivers PreparedQuery runs on (psycopg 3 with binary results; asyncpg with its
#: binary codecs; psycopg2 and pg8000 on the text path)
_DRIVERS = ("psycopg", "asyncpg", "psycopg2", "pg8000")


def _literal_int(clause: Any) -> Any:
    """An anonymous integer bind (``.limit(10)``) as the literal ``10``, else ``None``."""
    if (
        isinstance(clause, BindParameter)
        and clause.unique
        and clause.callable is None
        and type(clause.value) is int
    ):
        return literal_column(str(clause.value), Integer)
    return None


def _literal_limits(statement: Select[Any]) -> Select[Any]:
    """``LIMIT 10`` rather than ``LIMIT $2``: with a bound LIMIT, PostgreSQL keeps
    planning a prepared top-k statement at every execution (its generic plan cannot
    know the row count), measured ~5 % of a 20 000-row HNSW query's latency."""
    limit = _literal_int(_private.limit_clause(statement))
    if limit is not None:
        statement = statement.limit(limit)
    offset = _literal_int(_private.offset_clause(statement))
    if offset is not None:
        statement = statement.offset(offset)
    return statement


def _refuse_session_events(session: Session) -> None:
    if batches.has_other_orm_execute_listeners(session):
        raise ValueError(
            "this Session has do_orm_execute listeners (e.g. with_loader_criteria filters), "
            "which PreparedQuery does not run; use session.execute(), or pass "
            "session.connection() to run without them"
        )


def _refuse_schema_translation(connection: Any) -> None:
    sync = getattr(connection, "sync_connection", None) or connection  # (AsyncConnection)
    if sync.get_execution_options().get("schema_translate_map"):
        raise ValueError(
            "PreparedQuery compiles its statement once per dialect and does not apply "
            "schema_translate_map; use Connection.execute() for this connection"
        )


#: asyncpg exceptions meaning the connection is gone
_ASYNCPG_DISCONNECTS = frozenset(
    {"ConnectionDoesNotExistError", "ConnectionFailureError", "InterfaceError"}
)
#: SQLSTATE class -> the DB-API exception SQLAlchemy raises (PEP 249, as psycopg maps them)
_SQLSTATE_CLASSES: dict[str, type[sa_exc.DBAPIError]] = {
    "08": sa_exc.OperationalError,
    "0A": sa_exc.NotSupportedError,
    "21": sa_exc.ProgrammingError,
    "22": sa_exc.DataError,
    "23": sa_exc.IntegrityError,
    "24": sa_exc.InternalError,
    "25": sa_exc.InternalError,
    "26": sa_exc.InternalError,
    "27": sa_exc.OperationalError,
    "28": sa_exc.OperationalError,
    "2B": sa_exc.InternalError,
    "2D": sa_exc.InternalError,
    "2F": sa_exc.InternalError,
    "34": sa_exc.OperationalError,
    "3D": sa_exc.ProgrammingError,
    "3F": sa_exc.ProgrammingError,
    "40": sa_exc.OperationalError,
    "42": sa_exc.ProgrammingError,
    "44": sa_exc.ProgrammingError,
    "53": sa_exc.OperationalError,
    "54": sa_exc.OperationalError,
    "55": sa_exc.OperationalError,
    "57": sa_exc.OperationalError,
    "58": sa_exc.OperationalError,
    "XX": sa_exc.InternalError,
}


def _asyncpg_error(sql: str, args: Any, e: Exception, lost: bool) -> sa_exc.StatementError:
    """An asyncpg error as the SQLAlchemy exception ``Connection.execute`` would raise."""
    sqlstate = getattr(e, "sqlstate", None) or ""
    if lost:
        cls: type[sa_exc.DBAPIError] = sa_exc.OperationalError
    elif sqlstate:
        cls = _SQLSTATE_CLASSES.get(sqlstate[:2], sa_exc.DatabaseError)
    else:
        return sa_exc.StatementError(str(e), sql, args, e)
    return cls(sql, args, e, connection_invalidated=lost)


@dataclass(frozen=True)
class _Plan:
    """A statement compiled for one dialect."""

    sql: str
    positions: tuple[str, ...] | None  # positional styles: the bind name of each position
    binds: tuple[tuple[str, str, Any], ...]  # (name, name in the SQL, bind processor)
    defaults: dict[str, Any]
    callables: dict[str, Any]  # bindparam(callable_=...): called at every execution
    result_types: tuple[Any, ...]
    binary: bool


class PreparedQuery:
    """A ``SELECT`` of columns compiled once per dialect and run on psycopg's cursor.

    ``statement``: a Core/ORM :class:`~sqlalchemy.sql.Select` of columns (``select(Doc.id,
    Doc.title)``, not ``select(Doc)``) whose varying values are named
    :func:`~sqlalchemy.sql.expression.bindparam` s; an untyped ``bindparam("q")`` compared
    with a vector column takes the column's type. Parameters without a value at call time
    keep the statement's own (``.limit(10)`` binds 10).

    Raises :class:`TypeError` for anything but a ``Select``, and :class:`ValueError` for a
    statement whose SQL is only known at execution (expanding ``IN``, ``literal_execute``
    parameters).
    """

    def __init__(self, statement: Select[Any]) -> None:
        if not isinstance(statement, Select):
            raise TypeError(
                f"PreparedQuery takes a select() of columns, got {type(statement).__name__}"
            )
        entities = [
            d["name"] for d in statement.column_descriptions if isinstance(d["type"], type)
        ]
        if entities:
            raise TypeError(
                f"PreparedQuery returns tuples of column values; select columns "
                f"(e.g. select(Doc.id, Doc.title)), not entities ({', '.join(entities)})"
            )
        self.statement = statement
        self._compiled_statement = _literal_limits(statement)
        # (weak: a query kept at module level does not keep short-lived engines alive)
        self._plans: weakref.WeakKeyDictionary[Any, _Plan] = weakref.WeakKeyDictionary()
        self._processors: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], Any]] = (
            weakref.WeakKeyDictionary()
        )
        #: asyncpg connection -> {SQL: its asyncpg PreparedStatement}
        self._asyncpg_statements: weakref.WeakKeyDictionary[Any, dict[str, Any]] = (
            weakref.WeakKeyDictionary()
        )

    def __repr__(self) -> str:
        return f"PreparedQuery({self.statement!r})"

    # --- compiling ------------------------------------------------------------------------

    def _plan(self, dialect: Any) -> _Plan:
        plan = self._plans.get(dialect)
        if plan is None:
            plan = self._plans[dialect] = self._compile(dialect)
        return plan

    def _compile(self, dialect: Any) -> _Plan:
        if dialect.name != "postgresql" or dialect.driver not in _DRIVERS:
            raise ValueError(
                f"PreparedQuery runs on PostgreSQL through {', '.join(_DRIVERS)}; this "
                f"engine uses {dialect.name}+{dialect.driver}"
            )
        compiled: Any = self._compiled_statement.compile(
            dialect=dialect, compile_kwargs={KEEP_BOUND_LIMITS: True}
        )
        if compiled.literal_execute_params or compiled.post_compile_params:
            raise ValueError(
                "PreparedQuery needs SQL that is complete at compile time; this statement "
                "has expanding or literal_execute parameters (e.g. IN with a list); run it "
                "with Connection.execute()"
            )
        for problem in cached_problems(compiled):
            warnings.warn(str(problem), problem.category, stacklevel=user_stacklevel())
        escaped = compiled.escaped_bind_names or {}
        binds = []
        defaults = {}
        callables = {}
        by_name = {name: bindparam for bindparam, name in compiled.bind_names.items()}
        # (positional styles, asyncpg's $1 and pg8000's %s: in the order of the SQL)
        names = compiled.positiontup if compiled.positional else list(by_name)
        for name in dict.fromkeys(names):
            bindparam = by_name[name]
            processor = bindparam.type.dialect_impl(dialect).bind_processor(dialect)
            binds.append((name, escaped.get(name, name), processor))
            if bindparam.callable is not None:
                callables[name] = bindparam.callable
            elif not bindparam.required:
                defaults[name] = bindparam.value
        result_types = tuple(c.type for c in self.statement.selected_columns)
        return _Plan(
            sql=compiled.string,
            positions=tuple(names) if compiled.positional else None,
            binds=tuple(binds),
            defaults=defaults,
            callables=callables,
            result_types=result_types,
            binary=binary_results_ok(compiled),
        )

    def _parameters(self, plan: _Plan, params: dict[str, Any]) -> Any:
        names = [name for name, _, _ in plan.binds]
        unknown = params.keys() - set(names)
        if unknown:
            raise sa_exc.ArgumentError(
                f"unknown bind parameter(s) {sorted(unknown)}; the statement has {sorted(names)}"
            )
        values = plan.defaults | params if plan.defaults else params
        if plan.callables:
            values = {name: f() for name, f in plan.callables.items()} | values
        out = {}
        for name, key, processor in plan.binds:
            try:
                value = values[name]
            except KeyError:
                raise sa_exc.ArgumentError(
                    f"a value is required for bind parameter {name!r}"
                ) from None
            out[key] = value if processor is None else processor(value)
        if plan.positions is not None:
            return tuple(out[name] for name in plan.positions)
        return out

    def _rows(self, plan: _Plan, dialect: Any, description: Any, rows: Sequence[Any]) -> list[Any]:
        codes = tuple(c[1] for c in description or ())  # (DB-API: name, type_code, ...)
        known = self._processors.setdefault(dialect, {})
        processors = known.get(codes)
        if processors is None:
            types = plan.result_types
            # (a column the statement does not declare, e.g. from literal_column("t.*"),
            # is returned as psycopg loaded it)
            processors = known[codes] = tuple(
                types[i].dialect_impl(dialect).result_processor(dialect, code)
                if i < len(types)
                else None
                for i, code in enumerate(codes)
            )
        if not any(processors):
            # (psycopg gives tuples; asyncpg Records, pg8000 lists)
            return [r if type(r) is tuple else tuple(r) for r in rows]
        pairs = tuple(enumerate(processors))
        return [tuple(row[i] if p is None else p(row[i]) for i, p in pairs) for row in rows]

    @staticmethod
    def _error(
        dialect: Any, e: Exception, plan: _Plan, parameters: Any, cursor: Any, connection: Any
    ) -> tuple[sa_exc.StatementError, bool]:
        invalidated = dialect.is_disconnect(e, connection, cursor)
        error = sa_exc.DBAPIError.instance(
            plan.sql,
            parameters,
            e,
            dialect.loaded_dbapi.Error,
            connection_invalidated=invalidated,
            dialect=dialect,
        )
        return error, bool(invalidated)

    def _check_format(self, dialect: Any, plan: _Plan, inner: Any, description: Any) -> None:
        """As :func:`vecalchemy.results.check_result_format`: a binary result holding a
        column psycopg has no binary loader for (a declared type that differs from the
        table's) turns the statement to text from its next call."""
        if not plan.binary or inner is None or not description:
            return
        if not loads_in_binary(inner.adapters, description, plan.result_types):
            self._plans[dialect] = replace(plan, binary=False)

    # --- running --------------------------------------------------------------------------

    def all(self, conn: Connection | Session, /, **params: Any) -> list[tuple[Any, ...]]:
        """Run on ``conn`` (a Connection or Session) and return every row as a tuple.

        ``params``: values of the statement's named bind parameters. Values are
        validated by the column types before anything is sent (e.g.
        :class:`~vecalchemy.exc.InvalidVectorError`); database errors are raised as
        SQLAlchemy's :class:`~sqlalchemy.exc.DBAPIError` subclasses, and a lost server
        connection invalidates ``conn`` as ``Connection.execute`` would. Also works on
        the sync facade of an async engine (inside ``AsyncConnection.run_sync``).
        """
        if isinstance(conn, Session):
            _refuse_session_events(conn)
            if conn.autoflush:  # as session.execute(): pending objects are visible
                conn.flush()
            connection = conn.connection(bind_arguments={"clause": self.statement})
        elif isinstance(conn, Connection):
            connection = conn
        else:
            raise TypeError(
                f"PreparedQuery.all takes a Connection or Session, got {type(conn).__name__} "
                "(with an Engine: with engine.connect() as conn: query.all(conn, ...))"
            )
        _refuse_schema_translation(connection)
        if not connection.in_transaction():
            connection.begin()
        dialect = connection.dialect
        plan = self._plan(dialect)
        parameters = self._parameters(plan, params)
        # the DBAPI connection: psycopg's own, or SQLAlchemy's sync facade of an async one
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        inner = driver_cursor(cursor)
        try:
            if plan.binary and inner is not None:
                inner.format = Format.BINARY
            cursor.execute(plan.sql, parameters)
            rows = cursor.fetchall()
            description = cursor.description
        except dialect.loaded_dbapi.Error as e:
            dbapi_connection = connection.connection.dbapi_connection
            error, invalidated = self._error(
                dialect, e, plan, parameters, cursor, dbapi_connection
            )
            if invalidated:
                connection.invalidate(e)
            raise error from e
        except BaseException as e:
            if not isinstance(e, Exception):  # interrupted mid-query: as SQLAlchemy does
                connection.invalidate(e)
            raise
        finally:
            cursor.close()
        self._check_format(dialect, plan, inner, description)
        return self._rows(plan, dialect, description, rows)

    async def _all_asyncpg(
        self, connection: AsyncConnection, params: dict[str, Any]
    ) -> list[tuple[Any, ...]]:
        """asyncpg's own ``fetch`` (its statement cache, vecalchemy's binary codecs), in the
        transaction SQLAlchemy began on the connection."""
        dialect = connection.dialect
        plan = self._plan(dialect)
        args = self._parameters(plan, params)
        raw = await connection.get_raw_connection()
        driver: Any = raw.driver_connection
        if not driver.is_in_transaction() and not raw.dbapi_connection.autocommit:  # type: ignore[union-attr]
            # SQLAlchemy's asyncpg adapter begins its transaction at its first statement
            await connection.exec_driver_sql("SELECT 1")
        statements = self._asyncpg_statements.setdefault(driver, {})
        try:
            prepared = statements.get(plan.sql)
            if prepared is None:
                prepared = statements[plan.sql] = await driver.prepare(plan.sql)
            records = await prepared.fetch(*args)
        except Exception as e:
            # (prepared again next time: e.g. the table changed under it, which fails the
            # transaction, as it fails Connection.execute on asyncpg)
            statements.pop(plan.sql, None)
            lost = driver.is_closed() or type(e).__name__ in _ASYNCPG_DISCONNECTS
            if lost:
                await connection.invalidate(e)
            raise _asyncpg_error(plan.sql, args, e, lost) from e
        description = [(a.name, a.type.oid) for a in prepared.get_attributes()]
        return self._rows(plan, dialect, description, records)

    def scalars(self, conn: Connection | Session, /, **params: Any) -> list[Any]:
        """:meth:`all`, first column only."""
        return [row[0] for row in self.all(conn, **params)]

    async def all_async(
        self, conn: AsyncConnection | AsyncSession, /, **params: Any
    ) -> list[tuple[Any, ...]]:
        """:meth:`all` for an ``AsyncConnection`` / ``AsyncSession``: psycopg's async cursor,
        or on asyncpg its own prepared statement (in SQLAlchemy's transaction)."""
        from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

        if isinstance(conn, AsyncSession):
            _refuse_session_events(conn.sync_session)
            if conn.sync_session.autoflush:
                await conn.flush()
            connection = await conn.connection(bind_arguments={"clause": self.statement})
        elif isinstance(conn, AsyncConnection):
            connection = conn
        else:
            raise TypeError(
                "PreparedQuery.all_async takes an AsyncConnection or AsyncSession, got "
                f"{type(conn).__name__}"
            )
        _refuse_schema_translation(connection)
        if not connection.in_transaction():
            await connection.begin()
        dialect = connection.dialect
        if dialect.driver == "asyncpg":  # (the other async driver: psycopg, below)
            return await self._all_asyncpg(connection, params)
        plan = self._plan(dialect)
        parameters = self._parameters(plan, params)
        raw = await connection.get_raw_connection()
        driver: Any = raw.driver_connection
        cursor = driver.cursor()
        try:
            if plan.binary and driver_cursor(cursor) is not None:
                cursor.format = Format.BINARY
            await cursor.execute(plan.sql, parameters)
            rows = await cursor.fetchall()
            description = cursor.description
        except psycopg.Error as e:
            error, invalidated = self._error(dialect, e, plan, parameters, cursor, raw)
            if invalidated:
                await connection.invalidate(e)
            raise error from e
        except BaseException as e:
            if not isinstance(e, Exception):  # cancelled mid-query: as SQLAlchemy does
                await connection.invalidate(e)
            raise
        finally:
            await cursor.close()
        self._check_format(dialect, plan, driver_cursor(cursor), description)
        return self._rows(plan, dialect, description, rows)

    async def scalars_async(
        self, conn: AsyncConnection | AsyncSession, /, **params: Any
    ) -> list[Any]:
        """:meth:`all_async`, first column only."""
        return [row[0] for row in await self.all_async(conn, **params)]
