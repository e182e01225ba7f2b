"""Shared fixtures: one real PostgreSQL + pgvector per session, a fresh schema per test."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from _pytest.runner import runtestprotocol
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.util import greenlet_spawn

from vecalchemy.testing import driver_url, libpq_conninfo, search_path_args

pytest_plugins = ["vecalchemy.pytest_plugin"]

#: The ways a user reaches pgvector: psycopg 3 plain (text path), with the engine plugin,
#: through the postgresql+vecalchemy dialect; asyncpg with the plugin (binary codecs) and
#: plain (text path); psycopg2 and pg8000 with the plugin (text path).
PSYCOPG_MODES = ("text", "plugin", "dialect")
DRIVER_MODES = ("asyncpg", "asyncpg-text", "psycopg2", "pg8000")
MODES = PSYCOPG_MODES + DRIVER_MODES
#: modes whose sync engine is an asyncpg AsyncEngine's ``sync_engine``: their sync tests
#: run inside SQLAlchemy's greenlet on an event loop (see pytest_runtest_protocol below),
#: as ``await conn.run_sync(fn)`` runs a user's sync code
GREENLET_MODES = ("asyncpg", "asyncpg-text")
#: modes that the async tests (``create_async_engine``) run in
ASYNC_MODES = ("text", "plugin", "dialect", "asyncpg", "asyncpg-text")

_DRIVER = {
    "text": "psycopg",
    "plugin": "psycopg",
    "dialect": "vecalchemy",
    "asyncpg": "asyncpg",
    "asyncpg-text": "asyncpg",
    "psycopg2": "psycopg2",
    "pg8000": "pg8000",
}


def _plugins(mode: str) -> list[str]:
    return [] if mode in ("text", "dialect", "asyncpg-text") else ["vecalchemy"]


def make_engine(url: str, schema: str, mode: str, **kw: Any) -> Engine:
    """A sync engine for ``mode`` whose search_path is ``schema, public`` (for asyncpg,
    the ``sync_engine`` of an AsyncEngine: use it inside a greenlet-mode test)."""
    if mode in GREENLET_MODES:
        return make_async_engine(url, schema, mode, **kw).sync_engine
    driver = _DRIVER[mode]
    return create_engine(
        driver_url(url, driver),
        plugins=_plugins(mode),
        connect_args=search_path_args(driver, schema),
        **kw,
    )


def make_async_engine(url: str, schema: str, mode: str, **kw: Any) -> AsyncEngine:
    """The ``create_async_engine`` twin of :func:`make_engine` (modes of ASYNC_MODES)."""
    driver = _DRIVER[mode]
    return create_async_engine(
        driver_url(url, driver),
        plugins=_plugins(mode),
        connect_args=search_path_args(driver, schema),
        **kw,
    )


def _item_mode(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    mode = callspec.params.get("mode") if callspec is not None else None
    return mode if isinstance(mode, str) else None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    """Sync tests in an asyncpg mode: set-up, call and tear-down inside SQLAlchemy's
    greenlet on one event loop, so the sync API of an asyncpg engine works there."""
    if _item_mode(item) not in GREENLET_MODES or inspect.iscoroutinefunction(
        getattr(item, "obj", None)
    ):
        return None
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(greenlet_spawn(runtestprotocol, item, nextitem=nextitem))
    finally:
        loop.close()
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test marked ``psycopg_only(reason)`` is skipped, with its reason, in the modes
    of other drivers: the feature it tests cannot apply there."""
    for item in items:
        marker = item.get_closest_marker("psycopg_only")
        mode = _item_mode(item)
        if marker is not None and mode is not None and mode not in PSYCOPG_MODES:
            reason = marker.args[0] if marker.args else marker.kwargs["reason"]
            item.add_marker(pytest.mark.skip(reason=f"{mode}: {reason}"))


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def engine(vector_database_url: str, vector_schema: str, mode: str) -> Iterator[Engine]:
    """An engine in each mode, isolated in a fresh schema."""
    eng = make_engine(vector_database_url, vector_schema, mode)
    yield eng
    eng.dispose()


@pytest.fixture
def raw_conn(vector_database_url: str, vector_schema: str) -> Iterator[psycopg.Connection]:
    """A plain autocommit psycopg connection to the test schema (for catalog checks)."""
    with psycopg.connect(
        libpq_conninfo(vector_database_url),
        autocommit=True,
        options=f"-csearch_path={vector_schema},public",
    ) as conn:
        yield conn
