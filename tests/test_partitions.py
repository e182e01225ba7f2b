"""Vector indexes on partitioned tables: the parent's index cascades to the partitions
(LIST, RANGE, HASH), a pruned query scans the partition's own index, and
``concurrently=True`` builds partition by partition, attached, or leaves nothing."""

from __future__ import annotations

import datetime
import sys
from typing import Any

import numpy as np
import psycopg
import pytest
from sqlalchemy import Column, Date, Index, Integer, MetaData, Table, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from vecalchemy import HnswIndex, IvfflatIndex, Vector, build_vector_index, explain_index_usage
from vecalchemy.facts import MAX_IDENTIFIER_BYTES
from vecalchemy.indexes.build import BuildProgress, partition_index_name
from vecalchemy.sqltext import Statement, quote

#: each kind: the partition key column, PARTITION BY clause, the partitions' bounds
#: (FOR VALUES ...) and a row's key value in each partition
KINDS: dict[str, tuple[str, str, list[str], list[Any]]] = {
    "list": ("tenant_id", "LIST (tenant_id)", ["IN (1)", "IN (2)", "IN (3)"], [1, 2, 3]),
    "range": (
        "day",
        "RANGE (day)",
        [
            "FROM ('2024-01-01') TO ('2024-02-01')",
            "FROM ('2024-02-01') TO ('2024-03-01')",
        ],
        ["2024-01-15", "2024-02-15"],
    ),
    "hash": (
        "tenant_id",
        "HASH (tenant_id)",
        [f"WITH (MODULUS 3, REMAINDER {r})" for r in range(3)],
        [1, 2, 3],
    ),
}


def _table(name: str, kind: str) -> Table:
    key, partition_by, _, _ = KINDS[kind]
    key_type: Any = Date() if key == "day" else Integer()
    return Table(
        name,
        MetaData(),
        Column("id", Integer, nullable=False),
        Column(key, key_type, nullable=False),
        Column("e", Vector(3, metric="l2")),
        postgresql_partition_by=partition_by,
    )


def _partitioned(engine: Engine, name: str, kind: str, parts: list[str], rows: int = 20) -> Table:
    """The parent table, its partitions (named ``parts``) and ``rows`` rows in each."""
    _, _, bounds, values = KINDS[kind]
    table = _table(name, kind)
    rng = np.random.default_rng(7)
    with engine.begin() as conn:
        table.metadata.create_all(conn)
        for part, bound in zip(parts, bounds, strict=False):
            conn.execute(
                Statement(
                    f"CREATE TABLE {quote(conn.dialect, part)} PARTITION OF "
                    f"{quote(conn.dialect, name)} FOR VALUES {bound}"
                )
            )
        key = KINDS[kind][0]
        data = [
            {"id": i, key: text_value, "e": rng.random(3, dtype=np.float32)}
            for i, text_value in enumerate(v for v in values[: len(parts)] for _ in range(rows))
        ]
        if key == "day":
            for row in data:
                row["day"] = datetime.date.fromisoformat(str(row["day"]))
        if data:
            conn.execute(table.insert(), data)
    return table


def _partition_indexes(raw: psycopg.Connection, parent_index: str) -> list[tuple[Any, ...]]:
    """(partition, index name, valid, definition with the opclass) of each index attached
    to ``parent_index``."""
    return raw.execute(
        "SELECT t.relname, c.relname, i.indisvalid, "
        "pg_get_indexdef(c.oid) || ' ' || (SELECT opcname FROM pg_opclass "
        "WHERE oid = i.indclass[0]) "
        "FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid "
        "JOIN pg_index i ON i.indexrelid = c.oid JOIN pg_class t ON t.oid = i.indrelid "
        "WHERE h.inhparent = to_regclass(%s) ORDER BY t.relname",
        ['"' + parent_index.replace('"', '""') + '"'],
    ).fetchall()


def _valid(raw: psycopg.Connection, index: str) -> bool | None:
    row = raw.execute(
        "SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass(%s)",
        ['"' + index.replace('"', '""') + '"'],
    ).fetchone()
    return None if row is None else bool(row[0])


def _indexes_in_schema(raw: psycopg.Connection) -> list[str]:
    rows = raw.execute(
        "SELECT c.relname FROM pg_class c WHERE c.relkind IN ('i', 'I') "
        "AND c.relnamespace = current_schema()::regnamespace ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows]


@pytest.mark.parametrize("kind", list(KINDS))
def test_parent_index_cascades_to_every_partition(
    engine: Engine, raw_conn: psycopg.Connection, kind: str
) -> None:
    parts = [f"doc_{i}" for i in range(len(KINDS[kind][2]))]
    table = _partitioned(engine, "doc", kind, parts)
    index: Index
    if kind == "range":
        index = IvfflatIndex("doc_e", table.c.e, lists=2)
        options, opclass = "lists='2'", "vector_l2_ops"
    else:
        index = HnswIndex("doc_e", table.c.e, m=8, ef_construction=32)
        options, opclass = "m='8', ef_construction='32'", "vector_l2_ops"
    index.create(engine)
    assert _valid(raw_conn, "doc_e") is True
    attached = _partition_indexes(raw_conn, "doc_e")
    assert [row[0] for row in attached] == parts
    for _, _, valid, definition in attached:
        assert valid
        assert opclass in definition and options in definition


def test_pruned_query_scans_the_partitions_own_index(
    engine: Engine, raw_conn: psycopg.Connection
) -> None:
    table = _partitioned(engine, "doc", "list", ["doc_1", "doc_2", "doc_3"])
    HnswIndex("doc_e", table.c.e, m=8, ef_construction=32).create(engine)
    own = {row[0]: row[1] for row in _partition_indexes(raw_conn, "doc_e")}
    q = np.array([0.5, 0.5, 0.5], dtype=np.float32)
    stmt = (
        select(table.c.id)
        .where(table.c.tenant_id == 2)
        .order_by(table.c.e.l2_distance(q))
        .limit(5)
    )
    with engine.connect() as conn:
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        usage = explain_index_usage(conn, stmt)
        everyone = select(table.c.id).order_by(table.c.e.l2_distance(q)).limit(5)
        unpruned = explain_index_usage(conn, everyone)
    assert usage.vector_indexes == ((own["doc_2"], "hnsw"),), usage.plan
    # over several partitions: a Merge Append of each partition's own index scan
    assert sorted(unpruned.index_names) == sorted(own.values()), unpruned.plan
    assert any("Append" in line for line in unpruned.plan)


@pytest.mark.parametrize(
    ("parent", "parts", "name"),
    [
        ("Tenant%1", ["Tenant%1 a", "Tenant%1 b", "Tenant%1 c"], "Ix%Vec"),
        # \:, quotes and a partition whose child index name needs the hash suffix
        ('t\\:"q', ['p\\:"1', "é" * 30 + "x"], 'ix\\:"v'),
    ],
    ids=["percent", "colon-quote-long"],
)
def test_concurrently_builds_each_partition_and_attaches(
    engine: Engine, raw_conn: psycopg.Connection, parent: str, parts: list[str], name: str
) -> None:
    table = _partitioned(engine, parent, "list", parts)
    index = HnswIndex(name, table.c.e, m=8, ef_construction=32, concurrently=True)
    samples: list[BuildProgress] = []
    build_vector_index(engine, index, progress=samples.append, poll_interval=0.01)
    assert _valid(raw_conn, name) is True
    attached = _partition_indexes(raw_conn, name)
    assert sorted((row[0], row[1], row[2]) for row in attached) == sorted(
        (p, partition_index_name(name, p), True) for p in parts
    )
    assert all("vector_l2_ops" in row[3] and "m='8'" in row[3] for row in attached)
    # checkfirst: the index is there, nothing is built again
    build_vector_index(engine, index, progress=False, checkfirst=True)


def test_failed_concurrent_build_leaves_no_index(
    engine: Engine, raw_conn: psycopg.Connection
) -> None:
    table = _partitioned(engine, "doc", "list", ["doc_1", "doc_2", "doc_3"])
    # divides by zero in doc_2's rows only: doc_1's index is built and attached first
    where = (table.c.id / (table.c.tenant_id - 2)) > -1000000
    index = HnswIndex("doc_e", table.c.e, m=8, ef_construction=32, where=where, concurrently=True)
    with pytest.raises(DBAPIError, match="division by zero") as caught:
        build_vector_index(engine, index, progress=False)
    assert _indexes_in_schema(raw_conn) == []
    if sys.version_info >= (3, 11):
        notes = " ".join(getattr(caught.value, "__notes__", ()))
        assert "were dropped" in notes


def test_concurrently_without_partitions_gives_a_valid_index(
    engine: Engine, raw_conn: psycopg.Connection
) -> None:
    table = _partitioned(engine, "doc", "list", [])
    index = HnswIndex("doc_e", table.c.e, m=8, ef_construction=32, concurrently=True)
    build_vector_index(engine, index, progress=False)
    assert _valid(raw_conn, "doc_e") is True
    assert _partition_indexes(raw_conn, "doc_e") == []


def test_sub_partitioned_concurrent_build_is_refused(
    engine: Engine, raw_conn: psycopg.Connection
) -> None:
    table = _table("doc", "list")
    with engine.begin() as conn:
        table.metadata.create_all(conn)
        conn.execute(
            Statement(
                "CREATE TABLE doc_1 PARTITION OF doc FOR VALUES IN (1) PARTITION BY HASH (id)"
            )
        )
    index = HnswIndex("doc_e", table.c.e, m=8, ef_construction=32, concurrently=True)
    with pytest.raises(Exception, match="sub-partitioned"):
        build_vector_index(engine, index, progress=False)
    assert _indexes_in_schema(raw_conn) == []


def test_partition_index_names_fit_63_bytes() -> None:
    assert partition_index_name("ix", "p1") == "ix_p1"
    long = partition_index_name("ix_" + "é" * 30, "partition_" + "x" * 40)
    assert len(long.encode("utf-8")) <= MAX_IDENTIFIER_BYTES
    assert long.startswith("ix_é")
    assert long != partition_index_name("ix_" + "é" * 30, "partition_" + "x" * 41)
