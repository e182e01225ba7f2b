"""Autogenerate comparators: vector indexes and the ``vector`` extension.

- :func:`compare_vector_indexes` (per table, after Alembic's own index comparison):
  compares declared HNSW/IVFFlat indexes with the database on method, operator class,
  key expression (casts included), WHERE clause and options, in database-canonical
  form (see :mod:`vecalchemy_alembic.catalog`). A difference becomes
  ``drop_vector_index`` + ``create_vector_index``, drops before any column change and
  creates after, so a downgrade is the exact reverse. Alembic's own
  ``create_index``/``drop_index`` for those indexes are removed from the table's
  operations (Alembic compares PostgreSQL indexes on uniqueness and expressions only
  and cannot render an operator class on an expression).
- :func:`compare_vector_extension` (once, after all tables): when the migration uses a
  vecalchemy type or creates a vector index and the database lacks pgvector, the
  migration creates the extension first (and the downgrade drops it last).

Partitioned tables: a vector index declared on a parent Table (one with
``postgresql_partition_by``) is the parent's partitioned index (``pg_class.relkind``
``'I'``) and is compared like any other; PostgreSQL builds and drops its child index on
every partition, so a changed definition is one drop + create on the parent. The
partitions themselves (``pg_class.relispartition``: ``CREATE TABLE ... PARTITION OF``,
made at runtime, one per tenant or month, and not in the metadata) are left alone: no
``drop_table`` and nothing about their indexes, which follow the parent's (a child index
attached to the parent's is never proposed for a drop either, PostgreSQL refuses to drop
it alone). To manage partitions in migrations, use ``op.create_partition`` /
``op.drop_partition`` (:mod:`vecalchemy_alembic.ops`).

All of it honours ``include_object`` and ``include_name``: the user's filters run first
and see the partitions as usual.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from typing import Any

from alembic.autogenerate.api import AutogenContext
from alembic.operations import ops
from sqlalchemy import Index, Table, text
from sqlalchemy.engine import Connection

from vecalchemy.indexes import VectorIndexSpec, vector_index_spec
from vecalchemy.types import VectorType

from .catalog import (
    ReflectedVectorIndex,
    attached_indexes,
    canonical_forms,
    partitioning,
    reflect_vector_indexes,
)
from .ops import CreateVectorExtensionOp, CreateVectorIndexOp
from .render import render_item

__all__ = ["compare_vector_indexes", "compare_vector_extension", "skip_partitions"]

# Both registration paths (the 1.18+ plugin and register()) may be active at once; each
# comparison runs once per container of operations.
_seen_tables: weakref.WeakSet[ops.ModifyTableOps] = weakref.WeakSet()
_seen_migrations: weakref.WeakSet[ops.UpgradeOps] = weakref.WeakSet()


def _declared(
    autogen_context: AutogenContext, table: Table | None, conn_names: dict[str, Index | None]
) -> dict[str, tuple[Index, VectorIndexSpec]]:
    out: dict[str, tuple[Index, VectorIndexSpec]] = {}
    if table is None:
        return out
    for index in sorted(table.indexes, key=lambda i: str(i.name)):
        spec = vector_index_spec(index)
        if spec is None or index.name is None:
            continue
        name = str(index.name)
        if autogen_context.run_object_filters(index, name, "index", False, conn_names.get(name)):
            out[name] = (index, spec)
    return out


def _create_op(
    index: Index, spec: VectorIndexSpec, table: str, schema: str | None
) -> CreateVectorIndexOp:
    pg = index.dialect_options["postgresql"]
    assert spec.expression is not None
    return CreateVectorIndexOp(
        str(index.name),
        table,
        spec.expression,
        method=spec.method,
        metric=spec.metric,  # (the opclass's: a plain Index may name another than the type's)
        opclass=spec.opclass,
        options=dict(spec.options),
        where=spec.where,
        schema=schema,
        concurrently=bool(getattr(index, "concurrently", False) or pg.get("concurrently")),
    )


def _reflected_op(
    found: ReflectedVectorIndex, table: str, schema: str | None
) -> CreateVectorIndexOp:
    return CreateVectorIndexOp(
        found.name,
        table,
        found.column if found.column is not None else text(found.key),
        method=found.method,
        opclass=found.opclass,
        options=dict(found.options),
        where=found.where,
        schema=schema,
    )


def compare_vector_indexes(
    autogen_context: AutogenContext,
    modify_table_ops: ops.ModifyTableOps,
    schema: str | None,
    tname: str,
    conn_table: Table | None,
    metadata_table: Table | None,
) -> None:
    """The ``table`` comparator: vector index differences of one table (see module doc)."""
    if modify_table_ops in _seen_tables:
        return
    _seen_tables.add(modify_table_ops)
    conn = autogen_context.connection
    assert conn is not None
    table_name = str(tname)

    existing: dict[str, ReflectedVectorIndex] = {}
    conn_indexes: dict[str, Index | None] = {}
    attached: set[str] = set()
    if conn_table is not None:
        reflected = {str(i.name): i for i in conn_table.indexes}
        # a partition's indexes attached to its parent's partitioned indexes follow the
        # parent's (PostgreSQL refuses "DROP INDEX" on one of them)
        attached = attached_indexes(conn, table_name, schema)
        for name, found in reflect_vector_indexes(conn, table_name, schema).items():
            if name in attached:
                continue
            conn_indexes[name] = reflected.get(name)
            if not autogen_context.run_name_filters(
                name, "index", {"table_name": table_name, "schema_name": schema}
            ):
                continue
            obj = reflected.get(name) or Index(name)
            if autogen_context.run_object_filters(obj, name, "index", True, None):
                existing[name] = found
    declared = _declared(autogen_context, metadata_table, conn_indexes)

    # Alembic's own operations on these indexes are replaced by ours (a plain index of
    # the same name on the other side is still Alembic's to create or drop)
    modify_table_ops.ops = [
        o
        for o in modify_table_ops.ops
        if not (
            (isinstance(o, ops.CreateIndexOp) and o.index_name in declared)
            or (
                isinstance(o, ops.DropIndexOp)
                and (o.index_name in conn_indexes or o.index_name in attached)
            )
        )
    ]

    both = {n: declared[n][1] for n in declared if n in existing}
    canonical = canonical_forms(conn, both) if both else {}
    same = {
        n
        for n in both
        if n not in canonical or canonical[n].signature() == existing[n].signature()
    }  # (a definition the server would not build on a stand-in is left alone, with a warning)
    drops = [
        _reflected_op(found, table_name, schema).reverse()
        for name, found in existing.items()
        if name not in same
    ]
    creates = [
        _create_op(index, spec, table_name, schema)
        for name, (index, spec) in declared.items()
        if name not in same
    ]
    if drops or creates:
        modify_table_ops.ops = [*drops, *modify_table_ops.ops, *creates]


def skip_partitions(conn: Connection, upgrade_ops: ops.UpgradeOps) -> None:
    """Remove what autogenerate proposes for partitions not in the metadata, and keep
    the partition key of a dropped partitioned table for the downgrade.

    Alembic sees a partition (``CREATE TABLE ... PARTITION OF``, ``pg_class.relispartition``)
    as a table missing from the metadata: a ``drop_table``, with the drops of its indexes.
    Partitions are data (one per tenant, per month) made at runtime, and their indexes
    follow the parent's partitioned ones, so those operations are removed. A parent
    missing from the metadata is still dropped (``DROP TABLE`` drops its partitions with
    it); SQLAlchemy does not reflect ``postgresql_partition_by``, so it is read from the
    catalog (``pg_get_partkeydef``) for the downgrade to create the parent partitioned
    again (its partitions and their rows are not recreated).
    """
    dropped = [(o.schema, o.table_name) for o in upgrade_ops.ops if isinstance(o, ops.DropTableOp)]
    if not dropped:
        return
    found = partitioning(conn, dropped)
    for o in upgrade_ops.ops:
        if isinstance(o, ops.DropTableOp) and (o.schema, o.table_name) in found.keys:
            key = found.keys[(o.schema, o.table_name)]
            o.table_kw = {**(o.table_kw or {}), "postgresql_partition_by": key}
    if not found.partitions:
        return
    upgrade_ops.ops = [
        o
        for o in upgrade_ops.ops
        if not (
            isinstance(o, (ops.DropTableOp, ops.ModifyTableOps))
            and (o.schema, o.table_name) in found.partitions
        )
    ]


def _types_of(op: ops.MigrateOperation) -> Iterator[Any]:
    """Every SQL type an operation (or its reverse) renders."""
    if isinstance(op, ops.OpContainer):
        for child in op.ops:
            yield from _types_of(child)
    elif isinstance(op, ops.CreateTableOp):
        for col in op.columns:
            yield getattr(col, "type", None)
    elif isinstance(op, ops.AddColumnOp):
        yield op.column.type
    elif isinstance(op, ops.AlterColumnOp):
        yield op.modify_type
        yield op.existing_type
    elif isinstance(op, (ops.DropTableOp, ops.DropColumnOp)):
        with contextlib.suppress(ValueError, NotImplementedError):
            yield from _types_of(op.reverse())


def _needs_extension(upgrade_ops: ops.UpgradeOps) -> bool:
    for op in upgrade_ops.ops:
        for child in op.ops if isinstance(op, ops.OpContainer) else [op]:
            if isinstance(child, CreateVectorIndexOp):
                return True
        if any(isinstance(t, VectorType) for t in _types_of(op)):
            return True
    return False


def _has_extension(conn: Connection) -> bool:
    found = conn.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'vector'")).first()
    return found is not None


def compare_vector_extension(
    autogen_context: AutogenContext, upgrade_ops: ops.UpgradeOps, schemas: Any
) -> None:
    """The ``schema`` comparator: create the extension first when the migration needs it
    and the database lacks it (include_name type ``"extension"``, name ``"vector"``)."""
    if upgrade_ops in _seen_migrations:
        return
    _seen_migrations.add(upgrade_ops)
    conn = autogen_context.connection
    assert conn is not None
    skip_partitions(conn, upgrade_ops)
    # vecalchemy types render as vecalchemy.Vector(n) with their import, unless env.py
    # chose its own render_item (which may call vecalchemy_alembic.render_item). The
    # options are this run's copy: the user's MigrationContext.opts stay untouched.
    if autogen_context.opts.get("render_item") is None:
        autogen_context.opts = {**autogen_context.opts, "render_item": render_item}
    if not _needs_extension(upgrade_ops) or _has_extension(conn):
        return
    if not autogen_context.run_name_filters("vector", "extension", {}):  # type: ignore[arg-type]
        return
    upgrade_ops.ops.insert(0, CreateVectorExtensionOp())
