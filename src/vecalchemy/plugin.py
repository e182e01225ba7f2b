"""The SQLAlchemy engine plugin: selects vecalchemy's dialect.

``create_engine(url, plugins=["vecalchemy"])`` or ``...?plugin=vecalchemy`` in the URL
(``sqlalchemy.plugins`` entry point ``vecalchemy``). SQLAlchemy calls
:meth:`VecalchemyPlugin.update_url` before it resolves the dialect; the plugin rewrites
the URL's driver to vecalchemy's dialect for that driver (``postgresql+psycopg`` ->
``postgresql+vecalchemy``, ``postgresql+asyncpg`` -> ``postgresql+vecalchemy_asyncpg``,
see :mod:`vecalchemy.dialect`), so a plugin engine and an engine of the dialect's URL are
the same code. Works with psycopg 3,
sync and async, asyncpg (binary codecs), psycopg2 and pg8000 (text path); with any other
driver it changes nothing.

:func:`install` turns vecalchemy on for an engine that already exists, with engine
events only.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import CreateEnginePlugin, Engine
from sqlalchemy.engine.url import URL

from .dialect import (
    DIALECT_FOR_DRIVER,
    VecalchemyDialectMixin,
    install_engine_events,
    register_on_connection,
)
from .results import on_after_cursor_execute, on_before_cursor_execute

__all__ = ["VecalchemyPlugin", "install"]


_MARK = "vecalchemy_adapters"


def _listeners(driver: str) -> tuple[Any, Any]:
    def on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        register_on_connection(driver, dbapi_connection)
        connection_record.info[_MARK] = True

    def on_checkout(dbapi_connection: Any, connection_record: Any, proxy: Any) -> None:
        # a connection made before install(): register the adapters at its first checkout
        if not connection_record.info.get(_MARK):
            on_connect(dbapi_connection, connection_record)

    return on_connect, on_checkout


#: driver -> (connect, checkout) pool listeners registering its adapters or codecs
_REGISTER = {driver: _listeners(driver) for driver in ("psycopg", "asyncpg")}


def install(engine: Engine) -> bool:
    """Turn on vecalchemy for an engine that already exists, with engine events only.

    On an engine of vecalchemy's dialect (the plugin, ``postgresql+vecalchemy://``) this
    adds nothing the dialect does not already have: the query checks
    (:class:`~vecalchemy.exc.VectorIndexWarning`, see :func:`vecalchemy.install_query_checks`)
    and the ``vector_search`` execution option (:func:`vecalchemy.install_search_options`).

    On a plain engine of a supported driver it adds those, and: on psycopg, binary
    adapters on each new connection (pooled connections get them at their next checkout)
    and binary results for statements returning vectors (``before/after_cursor_execute``
    events); on asyncpg, the binary codecs. Binds stay text there and executemany INSERTs
    are not regrouped: those belong to the dialect, so create the engine with the plugin
    for them.

    Idempotent. Returns ``False`` (and changes nothing) for a driver vecalchemy does not
    support.
    """
    dialect = engine.dialect
    if not isinstance(dialect, VecalchemyDialectMixin):
        if dialect.name != "postgresql" or dialect.driver not in DIALECT_FOR_DRIVER:
            return False
        listeners = _REGISTER.get(dialect.driver)
        if listeners is not None and not event.contains(engine, "connect", listeners[0]):
            event.listen(engine, "connect", listeners[0])
            event.listen(engine, "checkout", listeners[1])
        if dialect.driver == "psycopg" and not event.contains(
            engine, "before_cursor_execute", on_before_cursor_execute
        ):
            event.listen(engine, "before_cursor_execute", on_before_cursor_execute)
            event.listen(engine, "after_cursor_execute", on_after_cursor_execute)
    install_engine_events(engine)
    return True


class VecalchemyPlugin(CreateEnginePlugin):
    """``CreateEnginePlugin`` selecting vecalchemy's dialect for the URL's driver."""

    def update_url(self, url: URL) -> URL:
        url = url.difference_update_query(["plugin", "plugins"])
        if url.get_backend_name() == "postgresql" and "+" in url.drivername:
            dialect = DIALECT_FOR_DRIVER.get(url.get_driver_name())
            if dialect is not None:
                url = url.set(drivername=f"postgresql+{dialect}")
        return url

    def engine_created(self, engine: Engine) -> None:
        # (vecalchemy's dialect installs its engine events itself; other drivers: nothing)
        pass
