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
offline (``--sql``).
"""

from __future__ import annotations

import datetime
import decimal
import io
import re
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
from vecalchemy_alembic.ops import CreatePartitionOp, DropPartitionOp

from vecalchemy.exc import InvalidIdentifierError
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


def add_partition_migration(project: AlembicProject, op: CreatePartitionOp) -> str:
    """A hand-written migration (as its author would write it) calling
    ``op.create_partition``, rendered by vecalchemy's renderers."""
    script = command.revision(project.config, message="partition")
    assert script is not None and not isinstance(script, list)
    path = Path(script.path)
    upgrade = render_python_code(alembic_ops.UpgradeOps([op]))
    downgrade = render_python_code(alembic_ops.UpgradeOps([op.reverse()]))
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
            with pytest.raises(TypeError, match="must be a int"):
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
