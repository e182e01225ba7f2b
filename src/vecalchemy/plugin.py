"""The SQLAlchemy engine plugin: binary pgvector adapters on every new connection.

``create_engine(url, plugins=["vecalchemy"])`` or ``...?plugin=vecalchemy`` in the URL
(``sqlalchemy.plugins`` entry point ``vecalchemy``). Works with the ``psycopg`` driver,
sync and async (``create_async_engine``); with any other driver it does nothing and the
types use their text path.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.dialects.postgresql.psycopg import PGCompiler_psycopg, PGExecutionContext_psycopg
from sqlalchemy.engine import CreateEnginePlugin, Engine
from sqlalchemy.engine.url import URL

from .checks import install_query_checks
from .compiler import VecalchemyCompiler
from .inserts import PAGE_SIZE, do_execute, group_batches
from .psycopg import fetch_type_oids, register_on_adapters
from .results import (
    VecalchemyExecutionContext,
    on_after_cursor_execute,
    on_before_cursor_execute,
)
from .search import install_search_options

__all__ = ["VecalchemyPlugin", "install"]


_MARK = "vecalchemy_adapters"


def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
    raw = getattr(dbapi_connection, "driver_connection", dbapi_connection)
    register_on_adapters(raw.adapters, fetch_type_oids(dbapi_connection))
    connection_record.info[_MARK] = True


def _on_checkout(dbapi_connection: Any, connection_record: Any, connection_proxy: Any) -> None:
    # a connection made before install(): register the adapters at its first checkout
    if not connection_record.info.get(_MARK):
        _on_connect(dbapi_connection, connection_record)


def install(engine: Engine) -> bool:
    """Turn on vecalchemy for an existing psycopg ``engine``: binary adapters on each new
    connection, binary results for statements returning vectors, the query checks
    (:class:`~vecalchemy.exc.VectorIndexWarning`, see :func:`vecalchemy.install_query_checks`)
    and the ``vector_search`` execution option (:func:`vecalchemy.install_search_options`).

    Idempotent. Returns ``False`` (and changes nothing) for a non-psycopg driver.
    Connections already in the pool get the adapters at their next checkout.
    """
    dialect = engine.dialect
    if dialect.name != "postgresql" or getattr(dialect, "driver", "") not in (
        "psycopg",
        "psycopg_async",
    ):
        return False
    if not getattr(dialect, "_vecalchemy_binary", False):
        # (the postgresql+vecalchemy dialect registers adapters in its own on_connect)
        dialect._vecalchemy_binary = True  # type: ignore[attr-defined]
        # bind processors made before this point chose the text path; make them again
        getattr(dialect, "_type_memos", {}).clear()
        event.listen(engine, "connect", _on_connect)
        event.listen(engine, "checkout", _on_checkout)
    # binary results for statements returning vectors (vecalchemy.results): the same
    # execution context as the dialect's, set on this engine's dialect instance only
    ctx = dialect.execution_ctx_cls
    if ctx is PGExecutionContext_psycopg:
        dialect.execution_ctx_cls = VecalchemyExecutionContext
    elif not issubclass(ctx, VecalchemyExecutionContext) and not event.contains(
        engine, "before_cursor_execute", on_before_cursor_execute
    ):
        event.listen(engine, "before_cursor_execute", on_before_cursor_execute)
        event.listen(engine, "after_cursor_execute", on_after_cursor_execute)
    # literal LIMIT / OFFSET on top-k selects (vecalchemy.compiler), on this dialect only
    if dialect.statement_compiler is PGCompiler_psycopg:
        dialect.statement_compiler = VecalchemyCompiler
    if not getattr(dialect, "_vecalchemy_batches", False):
        _install_batches(engine)
    install_query_checks(engine)
    install_search_options(engine)
    return True


def _install_batches(engine: Engine) -> None:
    """Executemany INSERTs as pipelined multi-row batches (:mod:`vecalchemy.inserts`)
    on this engine's dialect instance; an explicit ``insertmanyvalues_page_size`` stays."""
    dialect: Any = engine.dialect
    dialect._vecalchemy_batches = True
    dialect.use_insertmanyvalues_wo_returning = True
    if "insertmanyvalues_page_size" not in vars(dialect):
        dialect.insertmanyvalues_page_size = PAGE_SIZE
    deliver = dialect._deliver_insertmanyvalues_batches

    def deliver_grouped(*args: Any) -> Any:
        # (connection, cursor, statement, parameters, generic_setinputsizes, context)
        return group_batches(deliver(*args), args[-1])

    dialect._deliver_insertmanyvalues_batches = deliver_grouped
    base_do_execute = dialect.do_execute

    def do_execute_grouped(
        cursor: Any, statement: Any, parameters: Any, context: Any = None
    ) -> None:
        do_execute(base_do_execute, cursor, statement, parameters, context)

    # (a method of this dialect instance, not a do_execute event: an event that handles
    # the call would stop the user's own do_execute listeners)
    dialect.do_execute = do_execute_grouped


class VecalchemyPlugin(CreateEnginePlugin):
    """``CreateEnginePlugin`` registering binary adapters (see :func:`install`)."""

    def update_url(self, url: URL) -> URL:
        return url.difference_update_query(["plugin", "plugins"])

    def engine_created(self, engine: Engine) -> None:
        install(engine)
