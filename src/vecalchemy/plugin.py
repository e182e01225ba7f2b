"""The SQLAlchemy engine plugin: selects vecalchemy's dialect.

``create_engine(url, plugins=["vecalchemy"])`` or ``...?plugin=vecalchemy`` in the URL
(``sqlalchemy.plugins`` entry point ``vecalchemy``). SQLAlchemy calls
:meth:`VecalchemyPlugin.update_url` before it resolves the dialect; the plugin rewrites
the URL's driver to vecalchemy's dialect for that driver (``postgresql+psycopg`` ->
``postgresql+vecalchemy``, see :mod:`vecalchemy.dialect`), so a plugin engine and a
``postgresql+vecalchemy://`` engine are the same code. Works with the ``psycopg`` driver,
sync and async (``create_async_engine``); with any other driver it changes nothing and
the types use their text path.

:func:`install` turns vecalchemy on for an engine that already exists, with engine
events only.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import CreateEnginePlugin, Engine
from sqlalchemy.engine.url import URL

from .dialect import DIALECT_FOR_DRIVER, VecalchemyDialectMixin, install_engine_events
from .psycopg import driver_connection, fetch_type_oids, register_on_adapters
from .results import on_after_cursor_execute, on_before_cursor_execute

__all__ = ["VecalchemyPlugin", "install"]


_MARK = "vecalchemy_adapters"


def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
    raw = driver_connection(dbapi_connection)
    register_on_adapters(raw.adapters, fetch_type_oids(dbapi_connection))
    connection_record.info[_MARK] = True


def _on_checkout(dbapi_connection: Any, connection_record: Any, connection_proxy: Any) -> None:
    # a connection made before install(): register the adapters at its first checkout
    if not connection_record.info.get(_MARK):
        _on_connect(dbapi_connection, connection_record)


def install(engine: Engine) -> bool:
    """Turn on vecalchemy for an engine that already exists, with engine events only.

    On an engine of vecalchemy's dialect (the plugin, ``postgresql+vecalchemy://``) this
    adds nothing the dialect does not already have: the query checks
    (:class:`~vecalchemy.exc.VectorIndexWarning`, see :func:`vecalchemy.install_query_checks`)
    and the ``vector_search`` execution option (:func:`vecalchemy.install_search_options`).

    On a plain psycopg engine it adds, besides those: binary adapters on each new
    connection (pooled connections get them at their next checkout) and binary results
    for statements returning vectors (``before/after_cursor_execute`` events). Binds stay
    text and executemany INSERTs are not regrouped there: those belong to the dialect,
    so create the engine with the plugin for them.

    Idempotent. Returns ``False`` (and changes nothing) for a non-psycopg driver.
    """
    dialect = engine.dialect
    if not isinstance(dialect, VecalchemyDialectMixin):
        if dialect.name != "postgresql" or dialect.driver not in DIALECT_FOR_DRIVER:
            return False
        if not event.contains(engine, "connect", _on_connect):
            event.listen(engine, "connect", _on_connect)
            event.listen(engine, "checkout", _on_checkout)
        if not event.contains(engine, "before_cursor_execute", on_before_cursor_execute):
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
