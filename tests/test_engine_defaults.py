"""What an engine gets by default: the plugin and the dialect turn the query checks and the
``vector_search`` execution option on; plain psycopg does not; importing vecalchemy needs
no asyncio extras."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
from conftest import make_engine
from sqlalchemy import Column, Integer, MetaData, Table, func, select
from sqlalchemy.engine import Engine

from vecalchemy import HnswIndex, Vector, VectorIndexWarning

Q = [0.5, -0.25, 1.0]


def _table() -> Table:
    t = Table(
        "doc",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("embedding", Vector(3, metric="cosine")),
    )
    HnswIndex("ix_doc_cos", t.c.embedding)
    return t


def _run_recording(engine: Engine, stmt: object) -> list[warnings.WarningMessage]:
    t = _table()
    t.metadata.create_all(engine)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with engine.connect() as conn:
            conn.execute(stmt(t) if callable(stmt) else stmt).all()
    return [w for w in seen if issubclass(w.category, VectorIndexWarning)]


def test_mismatching_metric_warns_by_default_with_plugin_or_dialect(
    engine: Engine, mode: str
) -> None:
    seen = _run_recording(
        engine, lambda t: select(t.c.id).order_by(t.c.embedding.l2_distance(Q)).limit(5)
    )
    if mode in ("text", "asyncpg-text"):
        assert seen == []  # a plain engine: nothing is installed on it
    else:
        assert len(seen) == 1
        message = str(seen[0].message)
        assert "ix_doc_cos" in message
        assert "vector_cosine_ops" in message or "cosine" in message


def test_matching_query_does_not_warn(engine: Engine) -> None:
    seen = _run_recording(
        engine, lambda t: select(t.c.id).order_by(t.c.embedding.cosine_distance(Q)).limit(5)
    )
    assert seen == []


@pytest.mark.parametrize("installed_by", ["plugin", "dialect", "psycopg2", "pg8000"])
def test_vector_search_option_applies_by_default_with_plugin_or_dialect(
    vector_database_url: str, vector_schema: str, installed_by: str
) -> None:
    engine = make_engine(vector_database_url, vector_schema, installed_by)
    try:
        with engine.begin() as conn:
            stmt = select(func.current_setting("hnsw.ef_search")).execution_options(
                vector_search={"ef_search": 123}
            )
            assert conn.execute(stmt).scalar_one() == "123"
    finally:
        engine.dispose()


def test_import_needs_no_greenlet() -> None:
    # SQLAlchemy 2.1 installs greenlet only with its [asyncio] extra; the sync API
    # of vecalchemy must import without it.
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'greenlet' or name.startswith('greenlet.'):\n"
        "            raise ImportError('greenlet blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import vecalchemy, vecalchemy.bulk, vecalchemy.search, vecalchemy.checks\n"
        "import vecalchemy.dialect, vecalchemy.plugin\n"
        "print(sorted(m for m in sys.modules if m.startswith('greenlet')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_untyped_bindparam_operand_takes_the_column_type(engine: Engine) -> None:
    from sqlalchemy import bindparam

    t = _table()
    t.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(t.insert(), [{"id": 1, "embedding": [1.0, 0.0, 0.0]}])
        stmt = select(t.c.embedding.l2_distance(bindparam("q")))
        assert conn.execute(stmt, {"q": [0.0, 0.0, 0.0]}).scalar_one() == 1.0
        with pytest.raises(Exception, match="expected 3 dimensions, not 2"):
            conn.execute(stmt, {"q": [0.0, 0.0]})
