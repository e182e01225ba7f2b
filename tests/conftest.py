"""Shared fixtures: one real PostgreSQL + pgvector per session, a fresh schema per test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from vecalchemy.testing import libpq_conninfo

pytest_plugins = ["vecalchemy.pytest_plugin"]

#: The three ways a user reaches pgvector: plain psycopg (text path), the engine plugin,
#: the postgresql+vecalchemy dialect.
MODES = ("text", "plugin", "dialect")


def make_engine(url: str, schema: str, mode: str, **kw: object) -> Engine:
    """An engine for ``mode`` whose search_path is ``schema, public``."""
    connect_args = {"options": f"-csearch_path={schema},public"}
    if mode == "dialect":
        return create_engine(
            url.replace("postgresql+psycopg", "postgresql+vecalchemy"),
            connect_args=connect_args,
            **kw,
        )
    plugins = ["vecalchemy"] if mode == "plugin" else []
    return create_engine(url, plugins=plugins, connect_args=connect_args, **kw)


def make_async_engine(url: str, schema: str, mode: str, **kw: Any) -> AsyncEngine:
    """The ``create_async_engine`` twin of :func:`make_engine`."""
    connect_args = {"options": f"-csearch_path={schema},public"}
    if mode == "dialect":
        url = url.replace("postgresql+psycopg", "postgresql+vecalchemy")
    plugins = ["vecalchemy"] if mode == "plugin" else []
    return create_async_engine(url, plugins=plugins, connect_args=connect_args, **kw)


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def engine(vector_database_url: str, vector_schema: str, mode: str) -> Iterator[Engine]:
    """An engine in each of the three modes, isolated in a fresh schema."""
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
