"""pytest fixtures for a real PostgreSQL + pgvector (see :mod:`vecalchemy.testing`).

Enable with ``pytest_plugins = ["vecalchemy.pytest_plugin"]`` in a ``conftest.py``.

- ``vector_database_url`` (session): the server's SQLAlchemy URL; one server a session.
- ``vector_schema`` (function): a fresh schema, dropped with everything in it after the test.
- ``vector_engine`` (function): an engine with vecalchemy's plugin whose ``search_path``
  is ``vector_schema, public``, so tests are isolated without new servers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine

from .testing import DatabaseUnavailable, database_url, libpq_conninfo

__all__ = ["vector_database_url", "vector_schema", "vector_engine", "libpq_conninfo"]


@pytest.fixture(scope="session")
def vector_database_url() -> str:
    """SQLAlchemy URL of a PostgreSQL with pgvector, started once per session."""
    try:
        return database_url()
    except DatabaseUnavailable as e:  # the only reason a database test may skip
        pytest.skip(str(e))


@pytest.fixture
def vector_schema(vector_database_url: str) -> Iterator[str]:
    """A fresh schema name (created now, dropped with CASCADE after the test)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(libpq_conninfo(vector_database_url), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    yield name
    with psycopg.connect(libpq_conninfo(vector_database_url), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def vector_engine(vector_database_url: str, vector_schema: str) -> Iterator[Engine]:
    """An engine (plugin on) whose connections use ``search_path = <schema>, public``."""
    engine = create_engine(
        vector_database_url,
        plugins=["vecalchemy"],
        connect_args={"options": f"-csearch_path={vector_schema},public"},
    )
    yield engine
    engine.dispose()
