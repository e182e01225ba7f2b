"""Autogenerate and migrations on partitioned tables with vector indexes.

A vector index declared on a partitioned parent (a Table with ``postgresql_partition_by``)
is the parent's partitioned index; PostgreSQL gives every partition a child index
attached to it. Partitions are made at runtime (``CREATE TABLE ... PARTITION OF``,
:func:`vecalchemy.partitions.partition_statement`) and are not in the metadata. Each
scenario runs through a real Alembic project against the session's PostgreSQL, for LIST
and RANGE partitioning: no differences from the partitions or their child indexes, a
changed index is one drop + create on the parent that reaches every partition, the
downgrade restores the old index everywhere, and ``op.create_partition`` /
``op.drop_partition`` give new partitions the parent's vector indexes, online and
offline (``--sql``). ``op.create_vector_index(..., concurrently=True)`` on a partitioned
parent builds each partition's index CONCURRENTLY and attaches it (through each kind of
driver), leaves nothing INVALID when a partition's build fails, and is a plain
``CREATE INDEX`` (with a comment saying why) in ``--sql`` output; its reverse, a
``drop_vector_index(..., concurrently=True)``, is a plain ``DROP INDEX`` there.
"""

from __future__ import annotations

import datetime
import decimal
import io
import re
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import render_python_code
from alembic.migration import MigrationContext
from alembic.operations import Operations
from alembic.operations import ops as alembic_ops
from alembic_support import REGISTRATIONS, AlembicProject, ops_of
from sqlalchemy import Column, Date, Integer, MetaData, Table, create_engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from vecalchemy_alembic import render as _render  # noqa: F401  (the ops' renderers)
from vecalchemy_alembic.ops import CreatePartitionOp, CreateVectorIndexOp, DropPartitionOp

from vecalchemy.exc import IndexDefinitionError, InvalidIdentifierError
from vecalchemy.indexes.build import create_partitioned_index_concurrently
from vecalchemy.indexes.cleanup import build_target
from vecalchemy.partitions import MAXVALUE, MINVALUE, PartitionError, partition_statement
from vecalchemy.testing import search_path_args
from vecalchemy.types import Vector

#: per partitioning: the key column's declaration, PARTITION BY, and three partitions'
#: bounds as keywords of ``partition_statement`` / ``op.create_partition``
KINDS: dict[str, dict[str, Any]] = {
    "list": {
        "key": 'Column("tenant_id", Integer, nullable=False)',
        "key_type": Integer,
        "key_name": "tenant_id",
        "partition_by": "LIST (tenant_id)",
        "bounds": [{"values": [1]}, {"values": [2, 3]}, {"values": [4]}],
        "sql": "FOR VALUES IN (4)",
    },
    "range": {
        "key": 'Column("day", sa.Date, nullable=False)',
        "key_type": Date,
        "key_name": "day",
        "partition_by": "RANGE (day)",
        "bounds": [
            {"range_from": datetime.date(2024, 1, 1), "range_to": datetime.date(2024, 2, 1)},
            {"range_from": datetime.date(2024, 2, 1), "range_to": datetime.date(2024, 3, 1)},
            {"range_from": datetime.date(2024, 3, 1), "range_to": MAXVALUE},
        ],
        "sql": "FOR VALUES FROM ('2024-03-01') TO (MAXVALUE)",
    },
}

MODELS = """
docs = Table(
    "docs", metadata,
    Column("id", Integer, nullable=False),
    {key},
    Column("embedding", Vector(3)),
    postgresql_partition_by={partition_by!r},
)
HnswIndex("ix_docs_hnsw", docs.c.embedding, metric="{metric}", m={m})
IvfflatIndex("ix_docs_ivf", docs.c.embedding, metric="l2", lists=4)
"""


def models(kind: str, *, metric: str = "cosine", m: int = 16) -> str:
    k = KINDS[kind]
    return MODELS.format(key=k["key"], partition_by=k["partition_by"], metric=metric, m=m)


def parent_table(kind: str) -> Table:
    """The parent as the models declare it (for ``partition_statement``)."""
    k = KINDS[kind]
    return Table(
        "docs",
        MetaData(),
        Column("id", Integer, nullable=False),
        Column(k["key_name"], k["key_type"], nullable=False),
        Column("embedding", Vector(3)),
        postgresql_partition_by=k["partition_by"],
    )


@pytest.fixture
def project(
    tmp_path: Path, vector_database_url: str, vector_schema: str
) -> Iterator[AlembicProject]:
    p = AlembicProject(tmp_path, vector_database_url, vector_schema, registration=REGISTRATIONS[0])
    yield p
    p.dispose()


def child_indexes(project: AlembicProject, parent_index: str) -> dict[str, str]:
    """partition -> ``pg_get_indexdef`` of its index attached to ``parent_index``."""
    rows = project.query(
        "SELECT t.relname, pg_get_indexdef(c.oid) FROM pg_inherits h"
        " JOIN pg_class c ON c.oid = h.inhrelid JOIN pg_index i ON i.indexrelid = c.oid"
        " JOIN pg_class t ON t.oid = i.indrelid WHERE h.inhparent = to_regclass(:ix)",
        ix=parent_index,
    )
    return {part: re.sub(rf'"?{project.schema}"?\.', "", d) for part, d in rows}


def relkinds(project: AlembicProject) -> dict[str, str]:
    rows = project.query(
        "SELECT relname, relkind::text FROM pg_class WHERE relnamespace = to_regnamespace(:s)",
        s=project.schema,
    )
    return dict(rows)


def start(project: AlembicProject, kind: str) -> str:
    """Autogenerate the parent, upgrade, then make two partitions at runtime: one by raw
    SQL, one by ``partition_statement``."""
    project.write_models(models(kind))
    migration = project.revision()
    project.upgrade()
    first = KINDS[kind]["bounds"][0]
    with project.engine.begin() as conn:
        conn.execute(partition_statement(parent_table(kind), "docs_a", **first))
        if kind == "list":
            conn.execute(text("CREATE TABLE docs_b PARTITION OF docs FOR VALUES IN (2, 3)"))
        else:
            conn.execute(
                text(
                    "CREATE TABLE docs_b PARTITION OF docs"
                    " FOR VALUES FROM ('2024-02-01') TO ('2024-03-01')"
                )
            )
    return migration


@pytest.mark.parametrize("kind", list(KINDS))
def test_partitioned_parent_autogenerate_index_change_and_downgrade(
    project: AlembicProject, kind: str
) -> None:
    migration = start(project, kind)
    assert ops_of(migration, "upgrade") == ["create_table"] + ["create_vector_index"] * 2
    assert ops_of(migration, "downgrade") == ["drop_vector_index"] * 2 + ["drop_table"]
    assert f"postgresql_partition_by={KINDS[kind]['partition_by']!r}" in migration
    kinds = relkinds(project)
    assert (kinds["docs"], kinds["ix_docs_hnsw"], kinds["ix_docs_ivf"]) == ("p", "I", "I")
    assert (kinds["docs_a"], kinds["docs_b"]) == ("r", "r")
    assert set(child_indexes(project, "ix_docs_hnsw")) == {"docs_a", "docs_b"}
    # the partitions and their child indexes are no difference
    project.check()

    # a changed index: one drop + create on the parent, reaching every partition
    project.write_models(models(kind, m=32))
    migration = project.revision()
    assert ops_of(migration, "upgrade") == ["drop_vector_index", "create_vector_index"]
    assert ops_of(migration, "downgrade") == ["drop_vector_index", "create_vector_index"]
    assert "op.drop_vector_index('ix_docs_hnsw', table_name='docs')" in migration
    assert "opclass='vector_cosine_ops', m=32)" in migration
    project.upgrade()
    project.check()
    new = child_indexes(project, "ix_docs_hnsw")
    assert set(new) == {"docs_a", "docs_b"}
    assert all("USING hnsw (embedding vector_cosine_ops) WITH (m='32')" in d for d in new.values())
    assert len(child_indexes(project, "ix_docs_ivf")) == 2  # untouched
    # the old child indexes went with the old parent index
    hnsw = [d for d in project.indexes().values() if "USING hnsw" in d]
    assert len(hnsw) == 3 and not any("m='16'" in d for d in hnsw)

    # a changed metric: the same
    project.write_models(models(kind, metric="inner_product", m=32))
    project.revision()
    project.upgrade()
    project.check()
    assert all("vector_ip_ops" in d for d in child_indexes(project, "ix_docs_hnsw").values())

    # downgrade: the old definitions again, on the parent and on every partition
    project.downgrade("-1")
    project.downgrade("-1")
    restored = child_indexes(project, "ix_docs_hnsw")
    assert set(restored) == {"docs_a", "docs_b"}
    assert all(
        "USING hnsw (embedding vector_cosine_ops) WITH (m='16')" in d for d in restored.values()
    )
    assert "WITH (m='16')" in project.indexes()["ix_docs_hnsw"]
    project.downgrade("base")
    assert project.tables() == set()


def test_stray_table_is_still_proposed_for_drop_and_include_object_still_applies(
    project: AlembicProject,
) -> None:
    start(project, "list")
    with project.engine.begin() as conn:
        conn.execute(text("CREATE TABLE stray (id int)"))
        conn.execute(text("CREATE TABLE docs_sub PARTITION OF docs FOR VALUES IN (9)"))
    project.write_models(models("list"))
    seen: list[tuple[str, str]] = []

    def include_object(obj: Any, name: str, type_: str, reflected: bool, compare_to: Any) -> bool:
        seen.append((type_, name))
        return name != "ix_docs_ivf"

    project.config.attributes["include_object"] = include_object
    migration = project.revision()
    # the user's filter ran on the partitions too; only the plain stray table is dropped
    assert ("table", "docs_a") in seen and ("table", "docs_sub") in seen
    assert ops_of(migration, "upgrade") == ["drop_table"]
    assert "op.drop_table('stray')" in migration
    assert "ix_docs_ivf" not in migration
    project.upgrade()
    project.check()
    assert set(project.tables()) == {"docs", "docs_a", "docs_b", "docs_sub"}


def test_removed_parent_is_one_drop_table_and_the_downgrade_makes_it_partitioned_again(
    project: AlembicProject,
) -> None:
    start(project, "range")
    before = {n: d for n, d in project.indexes().items() if n.startswith("ix_docs")}
    columns = project.column_types("docs")
    project.write_models("")
    migration = project.revision()
    assert ops_of(migration, "upgrade") == ["drop_vector_index"] * 2 + ["drop_table"]
    assert "op.drop_table('docs')" in migration  # (its partitions go with it)
    assert ops_of(migration, "downgrade") == ["create_table"] + ["create_vector_index"] * 2
    assert "postgresql_partition_by='RANGE (day)'" in migration.split("def downgrade")[1]
    project.upgrade()
    assert project.tables() == set()
    project.check()
    project.downgrade("-1")
    kinds = relkinds(project)
    assert (kinds["docs"], kinds["ix_docs_hnsw"], kinds["ix_docs_ivf"]) == ("p", "I", "I")
    after = {n: d for n, d in project.indexes().items() if n.startswith("ix_docs")}
    assert after == before and project.column_types("docs") == columns
    assert project.query("SELECT pg_get_partkeydef(to_regclass('docs'))") == [("RANGE (day)",)]


def test_partition_declared_in_the_metadata_keeps_its_attached_indexes(
    project: AlembicProject,
) -> None:
    declared = (
        models("list")
        + 'Index("ix_docs_id", docs.c.id)\n'
        + "docs_a = Table(\n"
        + '    "docs_a", metadata,\n'
        + '    Column("id", Integer, nullable=False),\n'
        + '    Column("tenant_id", Integer, nullable=False),\n'
        + '    Column("embedding", Vector(3)),\n'
        + ")\n"
    )
    project.write_models(models("list") + 'Index("ix_docs_id", docs.c.id)\n')
    project.revision()
    project.upgrade()
    with project.engine.begin() as conn:
        conn.execute(text("CREATE TABLE docs_a PARTITION OF docs FOR VALUES IN (1)"))
    assert len([d for d in project.indexes().values() if " ON docs_a " in d]) == 3
    # docs_a's three indexes (HNSW, IVFFlat, btree) are the parent's: no drop proposed
    project.write_models(declared)
    migration = project.revision()
    assert ops_of(migration, "upgrade") == []
    project.upgrade()
    project.check()


def add_partition_migration(
    project: AlembicProject,
    op: alembic_ops.MigrateOperation | list[alembic_ops.MigrateOperation],
) -> str:
    """A hand-written migration (as its author would write it) calling the ``op.*`` of
    ``op`` (one operation or several) in its upgrade and their reverses in its
    downgrade, rendered by vecalchemy's renderers."""
    ops = op if isinstance(op, list) else [op]
    script = command.revision(project.config, message="partition")
    assert script is not None and not isinstance(script, list)
    path = Path(script.path)
    upgrade = render_python_code(alembic_ops.UpgradeOps(ops))
    downgrade = render_python_code(alembic_ops.UpgradeOps([o.reverse() for o in ops[::-1]]))
    source = path.read_text()
    head, _, tail = source.partition("def upgrade()")
    tail = tail.replace("    pass\n", upgrade.replace("# ###", "#") + "\n", 1)
    tail = tail.replace("    pass\n", downgrade.replace("# ###", "#") + "\n", 1)
    imports = "import datetime\nimport vecalchemy.partitions\nimport vecalchemy_alembic.ops\n"
    path.write_text(imports + head + "def upgrade()" + tail)
    return path.read_text()


@pytest.mark.parametrize("kind", list(KINDS))
def test_create_partition_op_online_and_offline(project: AlembicProject, kind: str) -> None:
    start(project, kind)
    first = project.heads()[0]
    op = CreatePartitionOp("docs", "docs_new", **KINDS[kind]["bounds"][2])
    migration = add_partition_migration(project, op)
    rendered = {
        "list": "op.create_partition('docs', 'docs_new', values=[4])",
        "range": "op.create_partition('docs', 'docs_new', range_from=datetime.date(2024, 3, 1), "
        "range_to=vecalchemy.partitions.MAXVALUE)",
    }[kind]
    assert rendered in migration
    assert rendered.replace("create_partition", "drop_partition") in migration

    sql = project.offline(f"{first}:head")
    assert f"CREATE TABLE docs_new PARTITION OF docs {KINDS[kind]['sql']};" in sql
    assert "docs_new" not in project.tables()  # offline mode runs nothing
    sql = project.offline(f"head:{first}", downgrade=True)
    assert "DROP TABLE docs_new;" in sql

    project.upgrade()
    # the new partition has a child of each of the parent's vector indexes
    assert set(child_indexes(project, "ix_docs_hnsw")) == {"docs_a", "docs_b", "docs_new"}
    assert "USING ivfflat" in child_indexes(project, "ix_docs_ivf")["docs_new"]
    project.check()

    project.downgrade("-1")
    assert "docs_new" not in project.tables()
    assert set(child_indexes(project, "ix_docs_hnsw")) == {"docs_a", "docs_b"}
    project.upgrade()  # the reverse keeps the bounds: up again
    assert relkinds(project)["docs_new"] == "r"
    project.downgrade("base")
    assert project.tables() == set()


@pytest.mark.parametrize("driver", ["psycopg2", "pg8000", "asyncpg"])
def test_partitioned_cycle_through_each_driver(
    tmp_path: Path, vector_database_url: str, vector_schema: str, driver: str
) -> None:
    p = AlembicProject(
        tmp_path, vector_database_url, vector_schema, registration=REGISTRATIONS[0], driver=driver
    )
    try:
        start(p, "list")
        p.check()
        add_partition_migration(p, CreatePartitionOp("docs", "docs_new", values=[4]))
        p.upgrade()
        assert p.config.attributes["migration_driver"] == driver
        assert set(child_indexes(p, "ix_docs_hnsw")) == {"docs_a", "docs_b", "docs_new"}
        p.check()
        p.downgrade("-1")
        assert "docs_new" not in p.tables()
        p.downgrade("base")
        assert p.tables() == set()
    finally:
        p.dispose()


def test_partition_ops_render_every_kind_of_bound() -> None:
    ops = [
        CreatePartitionOp("shards", "shards_0", modulus=4, remainder=0),
        CreatePartitionOp("docs", "docs_other", default=True, schema="app"),
        CreatePartitionOp(
            "acct",
            "acct_x",
            values=[decimal.Decimal("1.50"), None],
        ),
        CreatePartitionOp(
            "ev", "ev_a", range_from=(MINVALUE, uuid.UUID(int=1)), range_to=(5, uuid.UUID(int=2))
        ),
    ]
    code = render_python_code(alembic_ops.UpgradeOps([*ops, ops[0].reverse()]))
    assert "op.create_partition('shards', 'shards_0', modulus=4, remainder=0)" in code
    assert "op.create_partition('docs', 'docs_other', default=True, schema='app')" in code
    assert "values=[decimal.Decimal('1.50'), None])" in code
    assert (
        "range_from=(vecalchemy.partitions.MINVALUE, "
        "uuid.UUID('00000000-0000-0000-0000-000000000001')), "
        "range_to=(5, uuid.UUID('00000000-0000-0000-0000-000000000002')))" in code
    )
    assert "op.drop_partition('shards', 'shards_0', modulus=4, remainder=0)" in code
    with pytest.raises(TypeError, match="cannot render the partition bound"):
        render_python_code(
            alembic_ops.UpgradeOps([CreatePartitionOp("d", "p", values=[object()])])
        )


def test_partition_ops_refuse_bad_input_before_sending_anything(
    vector_database_url: str, vector_schema: str
) -> None:
    with pytest.raises(PartitionError, match="one of: values="):
        CreatePartitionOp("docs", "p", values=[1], modulus=3, remainder=0)
    with pytest.raises(PartitionError, match="got no bounds"):
        CreatePartitionOp("docs", "p")
    with pytest.raises(ValueError, match="not reversible: it does not carry the bounds"):
        DropPartitionOp("docs", "p").reverse()
    with pytest.raises(PartitionError, match="got values=, default="):
        DropPartitionOp("docs", "p", values=[1], default=True)
    with pytest.raises(PartitionError, match="got range_from="):
        CreatePartitionOp("docs", "p", range_from=1)
    with pytest.raises(TypeError, match="values= must be a list or tuple"):
        CreatePartitionOp("docs", "p", values="abc")
    with pytest.raises(TypeError, match="default= must be a bool"):
        CreatePartitionOp("docs", "p", default="yes")
    with pytest.raises(InvalidIdentifierError):
        CreatePartitionOp("docs", "x" * 64, values=[1])
    assert CreatePartitionOp("docs", "p", default=True).reverse().to_diff_tuple() == (
        "remove_partition",
        None,
        "docs",
        "p",
        "default=True",
    )

    offline = io.StringIO()
    context = MigrationContext.configure(
        dialect_name="postgresql",
        opts={"as_sql": True, "output_buffer": offline, "target_metadata": MetaData()},
    )
    with pytest.raises(PartitionError, match="offline: .* there is no such Table"):
        Operations(context).create_partition("docs", "docs_1", values=[1])  # type: ignore[attr-defined]
    assert "CREATE" not in offline.getvalue()

    engine = create_engine(
        vector_database_url, connect_args=search_path_args("psycopg", vector_schema)
    )
    try:
        with engine.begin() as conn:
            parent_table("list").create(conn)
            conn.execute(text("CREATE TABLE plain (id int)"))
            conn.execute(text("CREATE TABLE docs_1 PARTITION OF docs FOR VALUES IN (1)"))
            op = Operations(MigrationContext.configure(conn))
            with pytest.raises(PartitionError, match="'plain'.* is not a partitioned table"):
                op.create_partition("plain", "plain_1", values=[1])  # type: ignore[attr-defined]
            with pytest.raises(PartitionError, match="LIST-partitioned by tenant_id"):
                op.create_partition("docs", "docs_2", range_from=1, range_to=2)  # type: ignore[attr-defined]
            with pytest.raises(TypeError, match="must be an int"):
                op.create_partition("docs", "docs_2", values=["two"])  # type: ignore[attr-defined]
            with pytest.raises(PartitionError, match="'plain': it is not a partition of"):
                op.drop_partition("docs", "plain", values=[1])  # type: ignore[attr-defined]
            tables = {
                r[0]
                for r in conn.execute(
                    text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
                )
            }
            assert tables == {"docs", "docs_1", "plain"}  # nothing made, nothing dropped
            op.drop_partition("docs", "docs_1")  # type: ignore[attr-defined]
            assert conn.execute(text("SELECT to_regclass('docs_1')")).scalar() is None
            op.create_partition("docs", "docs_rest", default=True)  # type: ignore[attr-defined]
            bound = conn.execute(
                text("SELECT pg_get_expr(relpartbound, oid) FROM pg_class WHERE relname = :n"),
                {"n": "docs_rest"},
            ).scalar()
            assert bound == "DEFAULT"
    finally:
        engine.dispose()


# --- create_vector_index(concurrently=True) / drop_vector_index(concurrently=True) ------

PARENT = """
docs = Table(
    "docs", metadata,
    Column("id", Integer, nullable=False),
    Column("tenant_id", Integer, nullable=False),
    Column("embedding", Vector(3)),
    postgresql_partition_by="LIST (tenant_id)",
)
"""
CONCURRENT_INDEX = (
    'HnswIndex("ix_docs_hnsw", docs.c.embedding, metric="cosine", m=8, concurrently=True)\n'
)
#: the partitions made at runtime, their LIST bounds, the tenant of their rows
PARTITIONS = {"docs_a": (1,), "docs_b": (2, 3), "docs_c": (4,)}


def parent_with_partitions(project: AlembicProject) -> str:
    """Autogenerate and upgrade the LIST-partitioned parent (no index), then make three
    partitions at runtime with a few rows each; returns the revision."""
    project.write_models(PARENT)
    project.revision()
    project.upgrade()
    with project.engine.begin() as conn:
        for name, values in PARTITIONS.items():
            conn.execute(partition_statement(parent_table("list"), name, values=list(values)))
            conn.execute(
                text(
                    "INSERT INTO docs (id, tenant_id, embedding) SELECT i, :t,"
                    " ARRAY[i, 1, 2]::real[]::vector FROM generate_series(1, 6) i"
                ),
                {"t": values[0]},
            )
    return project.heads()[0]


def index_states(project: AlembicProject) -> dict[str, tuple[str, bool, str | None]]:
    """index -> (relkind, indisvalid, the partitioned index it is attached to) of every
    index in the schema but Alembic's own."""
    rows = project.query(
        "SELECT c.relname, c.relkind::text, i.indisvalid, p.relname FROM pg_class c"
        " JOIN pg_index i ON i.indexrelid = c.oid"
        " LEFT JOIN pg_inherits h ON h.inhrelid = c.oid"
        " LEFT JOIN pg_class p ON p.oid = h.inhparent"
        " WHERE c.relnamespace = to_regnamespace(:s) AND c.relname <> 'alembic_version_pkc'",
        s=project.schema,
    )
    return {name: (kind, valid, parent) for name, kind, valid, parent in rows}


@pytest.mark.parametrize("driver", ["psycopg", "pg8000", "asyncpg"])
def test_concurrently_on_a_partitioned_parent_builds_each_partition_and_attaches(
    tmp_path: Path, vector_database_url: str, vector_schema: str, driver: str
) -> None:
    project = AlembicProject(
        tmp_path, vector_database_url, vector_schema, registration=REGISTRATIONS[0], driver=driver
    )
    try:
        first = parent_with_partitions(project)
        project.write_models(PARENT + CONCURRENT_INDEX)
        migration = project.revision()
        assert ops_of(migration, "upgrade") == ["create_vector_index"]
        assert "concurrently=True" in migration.split("def downgrade")[0]
        assert "op.drop_vector_index('ix_docs_hnsw', table_name='docs', concurrently=True)" in (
            migration
        )

        project.upgrade()
        assert project.config.attributes["migration_driver"] == driver
        # the parent's index and one per partition, named <index>_<partition>, each
        # valid and attached to it
        assert index_states(project) == {
            "ix_docs_hnsw": ("I", True, None),
            **{f"ix_docs_hnsw_{p}": ("i", True, "ix_docs_hnsw") for p in PARTITIONS},
        }
        defs = child_indexes(project, "ix_docs_hnsw")
        assert set(defs) == set(PARTITIONS)
        assert all(
            "USING hnsw (embedding vector_cosine_ops) WITH (m='8')" in d for d in defs.values()
        )
        project.check()
        # a partition made later gets its child from PostgreSQL, like any partitioned index
        with project.engine.begin() as conn:
            conn.execute(text("CREATE TABLE docs_d PARTITION OF docs FOR VALUES IN (5)"))
        assert set(child_indexes(project, "ix_docs_hnsw")) == {*PARTITIONS, "docs_d"}
        project.check()

        # downgrade: drop_vector_index(concurrently=True), a plain DROP INDEX on the
        # partitioned index, takes every partition's with it
        project.downgrade(first)
        assert index_states(project) == {}
        assert set(project.tables()) == {"docs", *PARTITIONS, "docs_d"}
        # and up again: docs_d's index is built CONCURRENTLY too
        project.upgrade()
        assert index_states(project)["ix_docs_hnsw_docs_d"] == ("i", True, "ix_docs_hnsw")
        assert index_states(project)["ix_docs_hnsw"] == ("I", True, None)
        project.check()
    finally:
        project.dispose()


@pytest.mark.parametrize("failure", ["division-by-zero", "name-taken"])
def test_failed_concurrent_build_on_a_partitioned_parent_leaves_nothing_invalid(
    project: AlembicProject, failure: str
) -> None:
    first = parent_with_partitions(project)
    with project.engine.begin() as conn:
        conn.execute(text("CREATE TABLE stray (id int)"))
        if failure == "name-taken":  # the name docs_b's index would get
            conn.execute(text("CREATE INDEX ix_docs_fail_docs_b ON stray (id)"))
    # docs_a (tenant 1) is built and attached first; docs_b's build fails: on its
    # tenant-2 rows (a division by zero, met half-way: an INVALID index is left), or
    # before it starts (its index's name is taken by another table's index)
    where = "1 / (tenant_id - 2) > -1000000" if failure == "division-by-zero" else None
    op = CreateVectorIndexOp(
        "ix_docs_fail", "docs", "embedding", opclass="vector_l2_ops", where=where,
        concurrently=True,
    )  # fmt: skip
    add_partition_migration(project, op)
    expected = "division by zero" if failure == "division-by-zero" else "already exists"
    with pytest.raises(DBAPIError, match=expected) as failed:
        project.upgrade()
    kept = {"ix_docs_fail_docs_b": ("i", True, None)} if failure == "name-taken" else {}
    assert index_states(project) == kept  # the other table's index is not touched
    assert project.query("SELECT version_num FROM alembic_version") == [(first,)]
    if sys.version_info >= (3, 11):
        notes = " ".join(getattr(failed.value, "__notes__", ()))
        assert "the partitions' indexes the failed build made were dropped" in notes
        if failure == "division-by-zero":
            assert "INVALID index 'ix_docs_fail_docs_b' the failed build left was dropped" in (
                notes
            )


def comments(sql: str) -> list[str]:
    """The ``--`` comments of an ``--sql`` output but Alembic's ``-- Running ...``, each
    as one line."""
    blocks = re.findall(r"((?:^-- [^\n]*\n)+)", sql, re.MULTILINE)
    texts = [" ".join(line[3:] for line in b.splitlines()) for b in blocks]
    return [t for t in texts if not t.startswith("Running ")]


def test_concurrently_on_a_partitioned_parent_offline_is_a_plain_create_and_drop(
    project: AlembicProject,
) -> None:
    project.write_models(PARENT + CONCURRENT_INDEX)
    ops = [
        CreateVectorIndexOp(
            "ix_docs_hnsw", "docs", "embedding", opclass="vector_cosine_ops", options={"m": 8},
            concurrently=True,
        ),
        # a table target_metadata does not declare: no way to know, CONCURRENTLY
        CreateVectorIndexOp(
            "ix_other", "other", "embedding", opclass="vector_l2_ops", concurrently=True
        ),
    ]  # fmt: skip
    add_partition_migration(project, ops)
    up = project.offline("base:head")
    assert re.search(
        r"COMMIT;\n\n(-- [^\n]*\n)+\n"
        r"CREATE INDEX ix_docs_hnsw ON docs USING hnsw \(embedding vector_cosine_ops\) "
        r"WITH \(m = 8\);\n\nBEGIN;\n\n"
        r"COMMIT;\n\nCREATE INDEX CONCURRENTLY ix_other ON other USING hnsw "
        r"\(embedding vector_l2_ops\);\n\nBEGIN;",
        up,
    ), up
    assert comments(up) == [
        "ix_docs_hnsw: docs is a partitioned table (postgresql_partition_by in "
        "target_metadata), where PostgreSQL refuses CREATE INDEX CONCURRENTLY, and its "
        "partitions are not known offline; a plain CREATE INDEX instead, which builds the "
        "index of every partition, holding a SHARE lock on each (writes wait) until it "
        "commits. Run online, the migration builds each partition's index CONCURRENTLY "
        "and attaches it."
    ]
    down = project.offline("head:base", downgrade=True)
    assert re.search(
        r"COMMIT;\n\nDROP INDEX CONCURRENTLY ix_other;\n\nBEGIN;\n\n"
        r"COMMIT;\n\n(-- [^\n]*\n)+\nDROP INDEX ix_docs_hnsw;\n\nBEGIN;",
        down,
    ), down
    assert comments(down) == [
        "ix_docs_hnsw: docs is a partitioned table (postgresql_partition_by in "
        "target_metadata), where PostgreSQL refuses DROP INDEX CONCURRENTLY; a plain DROP "
        "INDEX instead, which drops the index of every partition with it, holding an ACCESS "
        "EXCLUSIVE lock on the table and each partition until it commits."
    ]
    assert project.tables() == set()  # offline mode runs nothing


def test_partitioned_concurrent_build_refuses_bad_input_and_keeps_an_existing_index(
    vector_database_url: str, vector_schema: str
) -> None:
    engine = create_engine(
        vector_database_url, connect_args=search_path_args("psycopg", vector_schema)
    )
    definition = "USING hnsw (embedding vector_l2_ops)"

    def indexes(conn: Connection) -> dict[str, tuple[str, bool]]:
        rows = conn.execute(
            text(
                "SELECT c.relname, c.relkind::text, i.indisvalid FROM pg_class c"
                " JOIN pg_index i ON i.indexrelid = c.oid"
                " WHERE c.relnamespace = current_schema()::regnamespace"
            )
        )
        return {name: (kind, valid) for name, kind, valid in rows}

    try:
        with engine.begin() as conn:
            parent_table("list").create(conn)
            conn.execute(text("CREATE TABLE docs_1 PARTITION OF docs FOR VALUES IN (1)"))
            conn.execute(text("CREATE TABLE plain (id int, embedding vector(3))"))
        with engine.connect() as conn:
            target = build_target(conn, None, "docs", "ix_e")
            assert target is not None and target.schema == vector_schema
            with pytest.raises(IndexDefinitionError, match="inside a transaction block"):
                create_partitioned_index_concurrently(conn, target, definition)
            conn.rollback()
            conn.execution_options(isolation_level="AUTOCOMMIT")
            with pytest.raises(IndexDefinitionError, match="starting with 'USING '"):
                create_partitioned_index_concurrently(conn, target, "(embedding)")
            plain = build_target(conn, None, "plain", "ix_p")
            assert plain is not None
            with pytest.raises(IndexDefinitionError, match="'plain' .* not a partitioned"):
                create_partitioned_index_concurrently(conn, plain, definition)
            assert indexes(conn) == {}  # nothing was sent

            create_partitioned_index_concurrently(conn, target, definition)
            made = {"ix_e": ("I", True), "ix_e_docs_1": ("i", True)}
            assert indexes(conn) == made
            # the name is taken: checkfirst skips; without it the build fails at once
            # and the existing index is not dropped by the cleanup
            create_partitioned_index_concurrently(conn, target, definition, checkfirst=True)
            with pytest.raises(DBAPIError, match="already exists"):
                create_partitioned_index_concurrently(conn, target, definition)
            assert indexes(conn) == made
        # the op: if_not_exists=True skips the build of an existing index
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn)
            with ctx.begin_transaction():
                Operations(ctx).create_vector_index(  # type: ignore[attr-defined]
                    "ix_e", "docs", "embedding", opclass="vector_l2_ops", concurrently=True,
                    if_not_exists=True,
                )  # fmt: skip
            assert indexes(conn) == made
    finally:
        engine.dispose()
