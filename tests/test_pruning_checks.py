"""Query checks on partitioned tables: a top-k whose WHERE fixes the partition key is
served by the remaining partition's own index (EXPLAIN shows it), one that does not is
reported (VectorPartitionWarning: every partition's index is scanned and merged), for
LIST, RANGE and HASH partitioning."""

from __future__ import annotations

import datetime
import warnings
from typing import Any

import numpy as np
import psycopg
import pytest
from sqlalchemy import Column, Date, Integer, MetaData, Table, func, select, text
from sqlalchemy.engine import Engine

from vecalchemy.checks import check_query, explain_index_usage, install_query_checks
from vecalchemy.exc import VectorIndexWarning, VectorPartitionWarning
from vecalchemy.indexes import HnswIndex
from vecalchemy.sqltext import Statement, quote
from vecalchemy.types import Vector

D = datetime.date
Q = np.array([0.5, 0.5, 0.5], dtype=np.float32)

#: kind -> (key column, PARTITION BY, the partitions' bounds, a row's key in each)
KINDS: dict[str, tuple[str, str, list[str], list[Any]]] = {
    "list": ("tenant_id", "LIST (tenant_id)", ["IN (1)", "IN (2)", "IN (3)"], [1, 2, 3]),
    "range": (
        "day",
        "RANGE (day)",
        [
            "FROM ('2024-01-01') TO ('2024-02-01')",
            "FROM ('2024-02-01') TO ('2024-03-01')",
            "FROM ('2024-03-01') TO ('2024-04-01')",
        ],
        [D(2024, 1, 15), D(2024, 2, 15), D(2024, 3, 15)],
    ),
    "hash": (
        "tenant_id",
        "HASH (tenant_id)",
        [f"WITH (MODULUS 3, REMAINDER {r})" for r in range(3)],
        [1, 2, 3],
    ),
}

#: kind -> (a WHERE that prunes to the partition of the second row's key, and one that
#: prunes to several partitions)
PRUNED: dict[str, tuple[Any, Any]] = {
    "list": (lambda c: c.tenant_id == 2, lambda c: c.tenant_id.in_([1, 2])),
    "range": (
        lambda c: c.day.between(D(2024, 2, 3), D(2024, 2, 20)),
        lambda c: c.day >= D(2024, 2, 1),
    ),
    "hash": (lambda c: c.tenant_id == 2, lambda c: c.tenant_id.in_([1, 2])),
}


def _partitioned(engine: Engine, kind: str) -> tuple[Table, list[str]]:
    """``doc`` partitioned by ``kind``, three partitions (doc_0..2) of 20 rows, and an
    HNSW index declared on the parent (created on every partition)."""
    key, partition_by, bounds, values = KINDS[kind]
    table = Table(
        "doc",
        MetaData(),
        Column("id", Integer, nullable=False),
        Column(key, Date() if key == "day" else Integer(), nullable=False),
        Column("e", Vector(3, metric="l2")),
        postgresql_partition_by=partition_by,
    )
    HnswIndex("doc_e", table.c.e, m=4, ef_construction=8)
    parts = [f"doc_{i}" for i in range(len(bounds))]
    rng = np.random.default_rng(7)
    with engine.begin() as conn:
        table.create(conn)
        for part, bound in zip(parts, bounds, strict=True):
            conn.execute(
                Statement(
                    f"CREATE TABLE {quote(conn.dialect, part)} PARTITION OF doc FOR VALUES {bound}"
                )
            )
        rows = [
            {"id": i, key: v, "e": rng.random(3, dtype=np.float32)}
            for i, v in enumerate(v for v in values for _ in range(20))
        ]
        conn.execute(table.insert(), rows)
        conn.execute(text("ANALYZE doc"))
    return table, parts


def _own_indexes(raw: psycopg.Connection) -> dict[str, str]:
    """partition -> its index attached to ``doc_e``."""
    rows = raw.execute(
        "SELECT t.relname, c.relname FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid "
        "JOIN pg_index i ON i.indexrelid = c.oid JOIN pg_class t ON t.oid = i.indrelid "
        "WHERE h.inhparent = 'doc_e'::regclass"
    ).fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def _partition_of(raw: psycopg.Connection, key: str, value: Any) -> str:
    row = raw.execute(
        f"SELECT tableoid::regclass::text FROM doc WHERE {key} = %s LIMIT 1", [value]
    ).fetchone()
    assert row is not None
    return str(row[0])


def _top_k(table: Table, where: Any = None) -> Any:
    stmt = select(table.c.id)
    if where is not None:
        stmt = stmt.where(where(table.c))
    return stmt.order_by(table.c.e.l2_distance(Q)).limit(5)


def _usage(engine: Engine, stmt: Any) -> Any:
    with engine.connect() as conn:
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        return explain_index_usage(conn, stmt)


@pytest.mark.parametrize("mode", ["plugin"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_pruned_query_is_served_by_the_partitions_own_index(
    engine: Engine, raw_conn: psycopg.Connection, kind: str
) -> None:
    table, _ = _partitioned(engine, kind)
    key, _, _, values = KINDS[kind]
    part = _partition_of(raw_conn, key, values[1])
    stmt = _top_k(table, PRUNED[kind][0])
    assert check_query(stmt) == []
    usage = _usage(engine, stmt)
    assert usage.relations == (part,), usage.plan
    assert usage.vector_indexes == ((_own_indexes(raw_conn)[part], "hnsw"),), usage.plan


@pytest.mark.parametrize("mode", ["plugin"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_query_pruned_to_several_partitions_is_not_reported(
    engine: Engine, raw_conn: psycopg.Connection, kind: str
) -> None:
    table, parts = _partitioned(engine, kind)
    stmt = _top_k(table, PRUNED[kind][1])
    assert check_query(stmt) == []
    usage = _usage(engine, stmt)
    assert len(usage.relations) == 2, usage.plan
    own = _own_indexes(raw_conn)
    assert sorted(usage.index_names) == sorted(own[r] for r in usage.relations)


@pytest.mark.parametrize("mode", ["plugin"])
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("where", [None, lambda c: c.id > 3], ids=["no WHERE", "other column"])
def test_unpruned_query_scans_every_partition_and_is_reported(
    engine: Engine, raw_conn: psycopg.Connection, kind: str, where: Any
) -> None:
    table, parts = _partitioned(engine, kind)
    key, partition_by, _, _ = KINDS[kind]
    stmt = _top_k(table, where)
    [problem] = check_query(stmt)
    assert problem.kind == "all partitions"
    assert problem.category is VectorPartitionWarning
    assert problem.column == "doc.e"
    assert f"doc is partitioned by {partition_by}" in str(problem)
    assert f"does not fix {key}; filter on {key}" in str(problem)
    usage = _usage(engine, stmt)
    assert sorted(usage.relations) == parts, usage.plan
    assert sorted(usage.index_names) == sorted(_own_indexes(raw_conn).values())
    assert any("Merge Append" in line for line in usage.plan), usage.plan


@pytest.mark.parametrize("mode", ["plugin", "asyncpg"])
def test_execution_warns_for_the_unpruned_query_only(engine: Engine) -> None:
    table, _ = _partitioned(engine, "list")
    install_query_checks(engine)
    with engine.connect() as conn, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = []
        for tenant in (2, None, 3):
            caught.clear()
            where = None if tenant is None else (lambda c, t=tenant: c.tenant_id == t)
            conn.execute(_top_k(table, where)).all()
            got.append([w.category for w in caught])
    assert got == [[], [VectorPartitionWarning], []]
    assert not issubclass(VectorPartitionWarning, VectorIndexWarning)


def test_hash_partitioning_needs_equality_not_a_range() -> None:
    """A range on a HASH key prunes nothing (partprune.c: hash pruning uses equality)."""
    table = Table(
        "doc",
        MetaData(),
        Column("id", Integer),
        Column("tenant_id", Integer),
        Column("e", Vector(3, metric="l2")),
        postgresql_partition_by="HASH (tenant_id)",
    )
    HnswIndex("doc_e", table.c.e)
    [problem] = check_query(_top_k(table, lambda c: c.tenant_id >= 2))
    assert problem.kind == "all partitions"
    assert "(= or IN)" in str(problem)


@pytest.mark.parametrize("mode", ["plugin"])
def test_conditions_outside_the_model_are_named(
    engine: Engine, raw_conn: psycopg.Connection
) -> None:
    table, parts = _partitioned(engine, "list")
    stmt = _top_k(table, lambda c: func.abs(c.tenant_id) == 2)
    [problem] = check_query(stmt)
    assert problem.kind == "all partitions"
    assert "(unless PostgreSQL prunes by abs(doc.tenant_id) = 2, outside the model)" in str(
        problem
    )
    assert sorted(_usage(engine, stmt).relations) == parts  # (it does not)
