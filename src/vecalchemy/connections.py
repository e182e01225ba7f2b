"""Connection helpers shared by the modules that run statements themselves.

"Connection or Session -> Connection" (sync and async), "is this connection
AUTOCOMMIT?", "give me an AUTOCOMMIT connection" (``CREATE INDEX CONCURRENTLY``
refuses to run inside a transaction block), and :func:`set_local`, the one way
vecalchemy sets a transaction-local GUC (search settings, ``measure_recall``'s planner
settings, index build settings) so that it also reaches Citus shards. Nothing here imports
``sqlalchemy.ext.asyncio`` at module level: it needs greenlet, and the sync API must
import without it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from .exc import UnsafeSQLError
from .sqltext import Statement

if TYPE_CHECKING:  # sqlalchemy.ext.asyncio needs greenlet, only when used
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

__all__ = [
    "is_autocommit",
    "autocommit_connection",
    "sync_connection",
    "async_connection",
    "set_local",
    "has_citus",
    "SET_LOCAL_STATEMENTS",
]


def is_autocommit(conn: Connection) -> bool:
    """Whether ``conn`` runs each statement in its own transaction (AUTOCOMMIT), by its
    execution options or by its driver connection's ``autocommit`` flag."""
    if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
        return True
    return getattr(conn.connection.dbapi_connection, "autocommit", False) is True


@contextmanager
def autocommit_connection(
    bind: Engine | Connection, refusal: Callable[[], Exception]
) -> Iterator[Connection]:
    """An AUTOCOMMIT connection: a new one from an Engine (closed on leaving), or
    ``bind`` itself when it is an AUTOCOMMIT Connection.

    Raises ``refusal()`` for a Connection inside a transaction block, ``TypeError`` for
    anything but an Engine or Connection.
    """
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            yield conn.execution_options(isolation_level="AUTOCOMMIT")
        return
    if not isinstance(bind, Connection):
        raise TypeError(f"expected an Engine or Connection, got {type(bind).__name__}")
    if not is_autocommit(bind):
        raise refusal()
    yield bind


def sync_connection(bind: Connection | Session, *, begin: bool = False) -> Connection:
    """The Connection behind a Connection or ORM Session (the Session's, in its
    transaction). ``begin=True`` begins a transaction on a Connection that has none,
    for work that bypasses ``Connection.execute`` (a driver-level ``COPY``), which
    would otherwise run outside the caller's transaction.

    Raises ``TypeError`` for anything else (async objects included).
    """
    if isinstance(bind, Session):
        return bind.connection()
    if isinstance(bind, Connection):
        if begin and not bind.in_transaction():
            bind.begin()
        return bind
    raise TypeError(
        f"expected a SQLAlchemy Connection or Session, got {type(bind).__name__} "
        "(use the *_async function for AsyncConnection / AsyncSession)"
    )


async def async_connection(bind: AsyncConnection | AsyncSession) -> AsyncConnection:
    """The AsyncConnection behind an AsyncConnection or AsyncSession, inside a
    transaction (begun when there is none). Raises ``TypeError`` for anything else."""
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

    if isinstance(bind, AsyncSession):
        return await bind.connection()
    if isinstance(bind, AsyncConnection):
        if not bind.in_transaction():
            await bind.begin()
        return bind
    raise TypeError(f"expected an AsyncConnection or AsyncSession, got {type(bind).__name__}")


_T = TypeVar("_T")


async def run_async(
    bind: Any, fn: Callable[..., _T], *args: Any, sessions: bool = True, **kw: Any
) -> _T:
    """``fn(sync_bind, *args, **kw)`` through SQLAlchemy's greenlet: an AsyncEngine's sync
    Engine, or an AsyncConnection's (and, with ``sessions``, an AsyncSession's) sync
    Connection / Session by ``run_sync``. Raises ``TypeError`` naming the accepted kinds
    for anything else."""
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
    from sqlalchemy.util import greenlet_spawn

    if isinstance(bind, AsyncEngine):
        return await greenlet_spawn(fn, bind.sync_engine, *args, **kw)
    if isinstance(bind, AsyncConnection) or (sessions and isinstance(bind, AsyncSession)):
        return await bind.run_sync(fn, *args, **kw)
    kinds = (
        "an AsyncEngine, AsyncConnection or AsyncSession"
        if sessions
        else ("an AsyncEngine or AsyncConnection")
    )
    raise TypeError(f"expected {kinds}, got {type(bind).__name__}")


# --- transaction-local settings ---------------------------------------------------------

#: ``True`` sends :func:`set_local`'s settings as ``SET LOCAL`` statements on every
#: server, ``False`` as one ``set_config()`` call on every server; ``None`` (the default)
#: chooses by whether the server has the ``citus`` extension
SET_LOCAL_STATEMENTS: bool | None = None

#: ``conn.info`` key caching :func:`has_citus` for the pooled DBAPI connection
_CITUS_KEY = "vecalchemy_has_citus"
_CITUS_SQL = text("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')")
#: a GUC name as vecalchemy's own tables spell them: ``name`` or ``prefix.name``
#: (PostgreSQL's custom-variable form, src/backend/utils/misc/guc.c
#: ``valid_custom_variable_name``), lower case
_GUC_NAME = re.compile(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?")
#: NUL, backslash (an escape in ``E''`` strings and with standard_conforming_strings
#: off) and the control characters, refused in a GUC value rendered as a literal
_UNSAFE_VALUE = re.compile(r"[\x00-\x1f\x7f\\]")
#: PostgreSQL's reserved and type/function-name keywords (``pg_get_keywords()`` catcode
#: ``R`` / ``T``, PostgreSQL 18, src/include/parser/kwlist.h): not a ``ColId``, so a
#: part of a GUC name in a ``SET`` statement that is one of them must be double-quoted
#: (``SET LOCAL x."select" = ...``); ``set_config()`` takes the name as text and needs
#: no quoting
_KEYWORDS = frozenset({
    "all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric",
    "authorization", "binary", "both", "case", "cast", "check", "collate", "collation",
    "column", "concurrently", "constraint", "create", "cross", "current_catalog",
    "current_date", "current_role", "current_schema", "current_time", "current_timestamp",
    "current_user", "default", "deferrable", "desc", "distinct", "do", "else", "end",
    "except", "false", "fetch", "for", "foreign", "freeze", "from", "full", "grant",
    "group", "having", "ilike", "in", "initially", "inner", "intersect", "into", "is",
    "isnull", "join", "lateral", "leading", "left", "like", "limit", "localtime",
    "localtimestamp", "natural", "not", "notnull", "null", "offset", "on", "only", "or",
    "order", "outer", "overlaps", "placing", "primary", "references", "returning", "right",
    "select", "session_user", "similar", "some", "symmetric", "system_user", "table",
    "tablesample", "then", "to", "trailing", "true", "union", "unique", "user", "using",
    "variadic", "verbose", "when", "where", "window", "with",
})  # fmt: skip
#: Citus sends ``SET LOCAL`` statements to the shards' connections only with this
_PROPAGATE = "SET LOCAL citus.propagate_set_commands = 'local'"


def _set_config_sql(n: int) -> Any:
    items = ", ".join(f"set_config(:n{i}, :v{i}, true)" for i in range(n))
    return text(f"SELECT {items}")


def _guc_name(name: object) -> str:
    if not isinstance(name, str) or _GUC_NAME.fullmatch(name) is None:
        raise UnsafeSQLError(
            f"a setting name must be a GUC name (lower-case name or prefix.name), got {name!r}"
        )
    return name


def _guc_sql(name: str) -> str:
    """A checked GUC name (:func:`_guc_name`) as the ``SET`` statement's ``var_name``:
    each part bare, or double-quoted when it is a keyword PostgreSQL's grammar does not
    take as a name (:data:`_KEYWORDS`); the server reads the same name either way."""
    return ".".join(f'"{part}"' if part in _KEYWORDS else part for part in name.split("."))


def _guc_literal(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise UnsafeSQLError(
            f"the value of setting {name} must be a str, got {type(value).__name__}"
        )
    if _UNSAFE_VALUE.search(value) is not None:
        raise UnsafeSQLError(
            f"the value of setting {name} holds a NUL, backslash or control character, "
            f"which a SET statement does not take: {value!r}"
        )
    return "'" + value.replace("'", "''") + "'"


def has_citus(conn: Connection) -> bool:
    """Whether the server of ``conn`` has the ``citus`` extension (``pg_extension``),
    asked once per pooled DBAPI connection and cached in its ``info`` (so later
    checkouts send nothing). An extension created or dropped later on the same
    connection is not seen until the connection is replaced."""
    info = conn.info
    cached = info.get(_CITUS_KEY)
    if cached is None:
        cached = bool(conn.execute(_CITUS_SQL).scalar())
        info[_CITUS_KEY] = cached
    return bool(cached)


def set_local(
    conn: Connection, gucs: Mapping[str, str], *, statements: bool | None = None
) -> None:
    """Set ``gucs`` (``{GUC name: value as text}``) for the rest of ``conn``'s current
    transaction, like ``SET LOCAL``.

    On plain PostgreSQL: one round trip, ``SELECT set_config(:n0, :v0, true), ...`` with
    the names and values bound. On a server with the ``citus`` extension: ``SET LOCAL
    citus.propagate_set_commands = 'local'``, then one ``SET LOCAL name = 'value'`` per
    setting. Citus sends the *statement* ``SET LOCAL`` on to the shards' connections of
    the transaction, and only with that setting (default ``'none'``); a ``set_config()``
    call is never propagated, so the shards would run with the workers' own values
    (https://docs.citusdata.com/en/stable/develop/api_guc.html,
    ``citus.propagate_set_commands``). ``statements=True``/``False`` (or the module's
    :data:`SET_LOCAL_STATEMENTS`) forces one form; ``None`` detects Citus (see
    :func:`has_citus`). On plain PostgreSQL the ``citus.`` setting is a harmless
    placeholder.

    Names come from vecalchemy's own tables (pgvector's and the planner's GUCs), values
    are already checked by the caller; still, a name that is not a GUC name (``name`` or
    ``prefix.name``, lower case) and a value that is not a ``str`` or holds a NUL,
    backslash or control character raise :class:`~vecalchemy.exc.UnsafeSQLError` before
    anything is sent. A value is rendered as a string literal with ``'`` doubled; a part
    of a name that is a reserved keyword of PostgreSQL's grammar (``select``, ``user``,
    ``verbose``...) is double-quoted in the ``SET LOCAL`` statement.
    """
    if not gucs:
        return
    items = [(_guc_name(name), value) for name, value in gucs.items()]
    literals = [
        f"SET LOCAL {_guc_sql(name)} = {_guc_literal(name, value)}" for name, value in items
    ]
    if statements is None:
        statements = SET_LOCAL_STATEMENTS
    if statements is None:
        statements = has_citus(conn)
    if not statements:
        params: dict[str, str] = {}
        for i, (name, value) in enumerate(items):
            params[f"n{i}"] = name
            params[f"v{i}"] = value
        conn.execute(_set_config_sql(len(items)), params)
        return
    conn.execute(Statement(_PROPAGATE))
    for sql in literals:
        conn.execute(Statement(sql))
