"""Reflection gives vecalchemy's types with their dimensions; plain ``bit`` stays SQLAlchemy's."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest
from conftest import make_engine
from sqlalchemy import Column, Integer, MetaData, Table, insert, inspect, select
from sqlalchemy.dialects.postgresql import BIT
from sqlalchemy.engine import Engine

from vecalchemy import Bit, HalfVec, SparseVec, SparseVector, Vector


def create(engine: Engine) -> None:
    md = MetaData()
    Table(
        "r",
        md,
        Column("id", Integer, primary_key=True),
        Column("v", Vector(3)),
        Column("h", HalfVec(4)),
        Column("s", SparseVec(5)),
        Column("b", Bit(6)),
        Column("vfree", Vector()),
    )
    md.create_all(engine)


def test_get_columns_returns_vector_types_with_dimensions(engine: Engine) -> None:
    create(engine)
    types = {c["name"]: c["type"] for c in inspect(engine).get_columns("r")}
    assert [(type(types[n]), types[n].dim) for n in ("v", "h", "s")] == [
        (Vector, 3),
        (HalfVec, 4),
        (SparseVec, 5),
    ]


def test_vector_without_typmod_reflects_without_dimension(engine: Engine) -> None:
    create(engine)
    types = {c["name"]: c["type"] for c in inspect(engine).get_columns("r")}
    assert isinstance(types["vfree"], Vector) and types["vfree"].dim is None


def test_plain_bit_column_stays_sqlalchemy_bit(engine: Engine) -> None:
    create(engine)
    types = {c["name"]: c["type"] for c in inspect(engine).get_columns("r")}
    assert type(types["b"]) is BIT and types["b"].length == 6


def test_autoloaded_table_round_trips_vector_values(engine: Engine) -> None:
    create(engine)
    t = Table("r", MetaData(), autoload_with=engine)
    with engine.begin() as conn:
        conn.execute(insert(t), {"id": 1, "v": [1, 2, 3], "h": [1, 2, 3, 4], "s": {4: 2.0}})
        row = conn.execute(select(t.c.v, t.c.h, t.c.s)).one()
    assert row.v.dtype == np.float32 and row.h.dtype == np.float16
    assert row.s == SparseVector({4: 2.0}, 5)


def test_autoloaded_table_validates_dimensions_before_sending(engine: Engine) -> None:
    create(engine)
    t = Table("r", MetaData(), autoload_with=engine)
    from sqlalchemy.exc import StatementError

    with engine.begin() as conn, pytest.raises(StatementError) as err:
        conn.execute(insert(t), {"id": 1, "v": [1, 2]})
    assert str(err.value.orig) == "vector(3): expected 3 dimensions, not 2"


def test_autoloaded_columns_support_distance_operators(engine: Engine) -> None:
    create(engine)
    t = Table("r", MetaData(), autoload_with=engine)
    with engine.begin() as conn:
        conn.execute(insert(t), {"id": 1, "v": [3, 4, 0]})
        assert conn.execute(select(t.c.v.l2_distance([0, 0, 0]))).scalar_one() == 5.0


def test_reflected_dimensions_match_the_catalog(
    engine: Engine, raw_conn: psycopg.Connection
) -> None:
    create(engine)
    catalog = dict(
        raw_conn.execute(
            "SELECT attname, atttypmod FROM pg_attribute "
            "WHERE attrelid = 'r'::regclass AND attname IN ('v', 'h', 's')"
        ).fetchall()
    )
    types = {c["name"]: c["type"] for c in inspect(engine).get_columns("r")}
    assert {n: types[n].dim for n in catalog} == catalog


# --- whoever imports last: the dialect's own names against the module-level ones ----------

_REFLECT_SCRIPT = """
import sys
from sqlalchemy import create_engine, inspect
url, schema, order = sys.argv[1], sys.argv[2], sys.argv[3]
if order == "pgvector-first":
    import pgvector.sqlalchemy
    import vecalchemy
else:
    import vecalchemy
    import pgvector.sqlalchemy
answers = []
for driver in ("postgresql+psycopg", "postgresql+vecalchemy"):
    eng = create_engine(
        url.replace("postgresql+psycopg", driver),
        connect_args={"options": f"-csearch_path={schema},public"},
    )
    col = {c["name"]: c["type"] for c in inspect(eng).get_columns("r")}["v"]
    answers.append(f"{type(col).__module__}.{type(col).__name__}")
    eng.dispose()
print(" ".join(answers))
"""


@pytest.mark.parametrize("order", ["pgvector-first", "vecalchemy-first"])
def test_vecalchemy_engines_reflect_vecalchemy_types_whatever_was_imported_last(
    vector_database_url: str, vector_schema: str, order: str
) -> None:
    import subprocess
    import sys

    create(make_engine(vector_database_url, vector_schema, "text"))
    out = subprocess.run(
        [sys.executable, "-c", _REFLECT_SCRIPT, vector_database_url, vector_schema, order],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    plain, ours = out
    # a vecalchemy engine answers with vecalchemy's type in both orders
    assert ours == "vecalchemy.types.Vector"
    # a plain engine gets the module-level registration: pgvector.sqlalchemy assigns its
    # names unconditionally, vecalchemy only where none is set, so pgvector's wins both ways
    assert plain.startswith("pgvector.sqlalchemy")
