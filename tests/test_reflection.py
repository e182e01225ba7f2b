"""Reflection gives vecalchemy's types with their dimensions; plain ``bit`` stays SQLAlchemy's."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest
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
