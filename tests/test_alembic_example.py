"""The example's Alembic project (examples/alembic/) on a fresh database, the CLI's way.

It runs in a process of its own, where Alembic is imported first and loads the
``vecalchemy`` plugin from its entry point, as the ``alembic`` command does.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from vecalchemy.pytest_plugin import libpq_conninfo

INI = Path(__file__).resolve().parents[1] / "examples" / "alembic" / "alembic.ini"

SCRIPT = """
import sys
from alembic import command
from alembic.config import Config
import psycopg
cfg = Config(sys.argv[1])
cfg.set_main_option("sqlalchemy.url", sys.argv[2].replace("%", "%%"))
command.upgrade(cfg, "head")
with psycopg.connect(sys.argv[3]) as conn:
    print("RESULT", conn.execute(
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_passage_embedding'"
    ).fetchone()[0])
    print("RESULT", conn.execute(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
        " WHERE attrelid = 'passage'::regclass AND attname IN ('embedding', 'sparse')"
        " ORDER BY attnum"
    ).fetchall())
command.check(cfg)
command.downgrade(cfg, "base")
with psycopg.connect(sys.argv[3]) as conn:
    print("RESULT", conn.execute(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND c.relname NOT LIKE 'alembic_version%'"
    ).fetchone()[0], conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'vector'"
    ).fetchone()[0])
"""


@pytest.fixture
def fresh_database(vector_database_url: str) -> Iterator[str]:
    """The URL of a new, empty database (no pgvector extension), dropped afterwards."""
    name = f"ex_{uuid.uuid4().hex[:10]}"
    admin = libpq_conninfo(vector_database_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield make_url(vector_database_url).set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_example_project_upgrades_a_fresh_database_checks_clean_and_downgrades(
    fresh_database: str,
) -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(INI), fresh_database, libpq_conninfo(fresh_database)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    results = [line[7:] for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    indexdef, types, empty = results
    assert indexdef == (
        "CREATE INDEX ix_passage_embedding ON public.passage USING hnsw "
        "(embedding vector_cosine_ops) WITH (m='16', ef_construction='64')"
    )
    assert types == "[('vector(384)',), ('sparsevec(32768)',)]"
    assert empty == "0 0"
