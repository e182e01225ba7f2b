"""Alembic operation ``op.set_vector_storage``: a column's storage mode (PLAIN keeps
vectors in the heap row).

Registered on :class:`alembic.operations.Operations` when this module is imported::

    import vecalchemy_alembic.storage  # noqa: F401

    op.set_vector_storage("items", "embedding", "plain", existing_storage="external")

emits ``ALTER TABLE items ALTER COLUMN embedding SET STORAGE PLAIN`` (online, and in
``alembic upgrade --sql``); its reverse sets ``existing_storage`` back. The statement
changes the mode of values written afterwards only: existing out-of-line values stay in
the TOAST table until the rows are rewritten (``VACUUM FULL``, which cannot run inside
the migration's transaction; see :mod:`vecalchemy.storage`).

A new table needs no operation: ``Vector(768, storage="plain")`` in ``op.create_table``
runs the same ``ALTER TABLE`` after the ``CREATE TABLE``.

Autogenerate: :func:`compare_vector_storage` is a ``table`` comparator that emits this
operation for an existing column whose type declares ``storage=`` and whose
``pg_attribute.attstorage`` differs (a column declaring no ``storage=`` is not compared).
"""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import renderers
from alembic.autogenerate.api import AutogenContext
from alembic.operations import MigrateOperation, Operations, ops
from sqlalchemy import Column, Table, text

from vecalchemy import sqltext
from vecalchemy.storage import STORAGE_MODES, check_storage, set_storage_statement
from vecalchemy.types import VectorType

__all__ = ["SetVectorStorageOp", "compare_vector_storage"]


class SetVectorStorageOp(MigrateOperation):
    """``ALTER TABLE [schema.]table ALTER COLUMN column SET STORAGE {PLAIN | EXTERNAL |
    EXTENDED | MAIN}``.

    ``storage`` and ``existing_storage`` (the mode before, for the downgrade; pgvector's
    types are ``external``, PostgreSQL's ``bit`` ``extended``) are checked against
    PostgreSQL's four modes, the names with :func:`vecalchemy.sqltext.check_identifier`,
    on construction: :class:`ValueError` / :class:`~vecalchemy.exc.InvalidIdentifierError`
    before anything is sent. :meth:`reverse` raises :class:`ValueError` without
    ``existing_storage``.
    """

    def __init__(
        self,
        table_name: str,
        column_name: str,
        storage: str,
        *,
        schema: str | None = None,
        existing_storage: str | None = None,
    ) -> None:
        sqltext.check_identifier(table_name, "table name")
        sqltext.check_identifier(column_name, "column name")
        if schema is not None:
            sqltext.check_identifier(schema, "schema name")
        self.table_name = table_name
        self.column_name = column_name
        self.storage = check_storage(storage)
        self.schema = schema
        self.existing_storage = (
            check_storage(existing_storage) if existing_storage is not None else None
        )

    @classmethod
    def set_vector_storage(
        cls,
        operations: Operations,
        table_name: str,
        column_name: str,
        storage: str,
        *,
        schema: str | None = None,
        existing_storage: str | None = None,
    ) -> None:
        """Set a column's storage mode (``op.set_vector_storage``); see
        :class:`SetVectorStorageOp`."""
        operations.invoke(
            cls(
                table_name,
                column_name,
                storage,
                schema=schema,
                existing_storage=existing_storage,
            )
        )

    def reverse(self) -> SetVectorStorageOp:
        if self.existing_storage is None:
            raise ValueError(
                f"set_vector_storage({self.table_name!r}, {self.column_name!r}, "
                f"{self.storage!r}) is reversible only with existing_storage= (the mode "
                "before: 'external' for vector, halfvec and sparsevec, 'extended' for bit)"
            )
        return SetVectorStorageOp(
            self.table_name,
            self.column_name,
            self.existing_storage,
            schema=self.schema,
            existing_storage=self.storage,
        )

    def to_diff_tuple(self) -> tuple[Any, ...]:
        return (
            "set_vector_storage",
            self.schema,
            self.table_name,
            self.column_name,
            self.existing_storage,
            self.storage,
        )


Operations.register_operation("set_vector_storage")(SetVectorStorageOp)


@Operations.implementation_for(SetVectorStorageOp)
def set_vector_storage(operations: Operations, op: SetVectorStorageOp) -> None:
    """Emit the ``ALTER TABLE ... SET STORAGE`` of ``op``."""
    ctx = operations.get_context()
    sql = set_storage_statement(ctx.dialect, op.table_name, op.column_name, op.storage, op.schema)
    operations.execute(sqltext.Statement(sql, for_script=ctx.as_sql))


@renderers.dispatch_for(SetVectorStorageOp)
def _render_set_vector_storage(autogen_context: AutogenContext, op: SetVectorStorageOp) -> str:
    autogen_context.imports.add("import vecalchemy_alembic.storage  # noqa: F401")
    prefix = str(autogen_context.opts.get("alembic_module_prefix") or "op.")
    args = [repr(op.table_name), repr(op.column_name), repr(op.storage)]
    if op.schema is not None:
        args.append(f"schema={op.schema!r}")
    if op.existing_storage is not None:
        args.append(f"existing_storage={op.existing_storage!r}")
    return f"{prefix}set_vector_storage({', '.join(args)})"


_ATTSTORAGE = text(
    "SELECT a.attname, a.attstorage::text FROM pg_attribute a "
    "WHERE a.attrelid = to_regclass(:rel) AND a.attnum > 0 AND NOT a.attisdropped"
)


def compare_vector_storage(
    autogen_context: AutogenContext,
    modify_table_ops: ops.ModifyTableOps,
    schema: str | None,
    tname: str,
    conn_table: Table | None,
    metadata_table: Table | None,
) -> None:
    """The ``table`` comparator of storage modes: for each column of an existing table
    whose vecalchemy type declares ``storage=``, a :class:`SetVectorStorageOp` (with
    ``existing_storage``, so the downgrade sets it back) when the server's
    ``pg_attribute.attstorage`` differs. New tables are left to ``op.create_table``,
    which applies the option itself; ``include_object`` / ``include_name`` filters of
    the column are honoured; a column declaring no ``storage=`` is not compared."""
    conn = autogen_context.connection
    if conn_table is None or metadata_table is None or conn is None:
        return
    declared: list[tuple[Column[Any], str]] = []
    for column in metadata_table.columns:
        type_ = column.type
        if isinstance(type_, VectorType) and type_.storage is not None:
            declared.append((column, type_.storage))
    if not declared:
        return
    rel = sqltext.regclass_text(str(tname), schema)
    current = {str(n): STORAGE_MODES[str(s)] for n, s in conn.execute(_ATTSTORAGE, {"rel": rel})}
    seen = {
        op.to_diff_tuple() for op in modify_table_ops.ops if isinstance(op, SetVectorStorageOp)
    }
    for column, storage in declared:
        have = current.get(column.name)
        if have is None or have == storage:
            continue
        reflected = conn_table.c.get(column.name)
        if not autogen_context.run_name_filters(
            column.name, "column", {"table_name": str(tname), "schema_name": schema}
        ) or not autogen_context.run_object_filters(
            column, column.name, "column", False, reflected
        ):
            continue
        op = SetVectorStorageOp(
            str(tname), column.name, storage, schema=schema, existing_storage=have
        )
        if op.to_diff_tuple() not in seen:  # registered both ways: compared once
            modify_table_ops.ops.append(op)
