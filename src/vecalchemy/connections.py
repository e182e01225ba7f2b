"""Connection helpers shared by the modules that run statements themselves.

"Connection or Session -> Connection" (sync and async), "is this connection
AUTOCOMMIT?", and "give me an AUTOCOMMIT connection" (``CREATE INDEX CONCURRENTLY``
refuses to run inside a transaction block). Nothing here imports
``sqlalchemy.ext.asyncio`` at module level: it needs greenlet, and the sync API must
import without it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

if TYPE_CHECKING:  # sqlalchemy.ext.asyncio needs greenlet, only when used
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

__all__ = ["is_autocommit", "autocommit_connection", "sync_connection", "async_connection"]


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
