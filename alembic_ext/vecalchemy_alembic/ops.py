"""Alembic operations for pgvector: vector indexes and the ``vector`` extension.

Registered on :class:`alembic.operations.Operations` when this module is imported:

- ``op.create_vector_index(name, table, column_or_expr, method="hnsw", metric=None,
  opclass=None, m=None, ef_construction=None, lists=None, where=None,
  concurrently=False, schema=None, if_not_exists=False)``
- ``op.drop_vector_index(name, table_name=None, schema=None, concurrently=False,
  if_exists=False)``
- ``op.create_vector_extension(schema=None, if_not_exists=True)``,
  ``op.drop_vector_extension(if_exists=False, cascade=False)``,
  ``op.alter_vector_extension_update(version=None)``
- ``op.create_partition(parent_table_name, partition_name, *, values=None,
  range_from=None, range_to=None, modulus=None, remainder=None, default=False,
  schema=None)``, ``op.drop_partition(...)`` (the same arguments, the bounds optional:
  given, they make it reversible)

Each is a :class:`~alembic.operations.MigrateOperation` with ``reverse()`` and
``to_diff_tuple()``, so autogenerate, ``alembic check`` and downgrades see them, and each
renders its DDL in offline mode (``alembic upgrade --sql``). ``concurrently=True`` runs
the statement in an autocommit block (PostgreSQL refuses ``CREATE INDEX CONCURRENTLY``
inside a transaction). On a partitioned table, where PostgreSQL refuses ``CREATE`` and
``DROP INDEX CONCURRENTLY``, ``create_vector_index(concurrently=True)`` builds each
partition's index CONCURRENTLY and attaches it to the parent's
(:func:`vecalchemy.indexes.build.create_partitioned_index_concurrently`), and
``drop_vector_index(concurrently=True)`` is a plain ``DROP INDEX``; see their docstrings
for offline mode.
"""

from __future__ import annotations

import datetime
import decimal
import re
import textwrap
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from alembic.autogenerate import renderers
from alembic.autogenerate.api import AutogenContext
from alembic.operations import MigrateOperation, Operations
from sqlalchemy import Column, MetaData, Table, inspect, literal_column, text
from sqlalchemy.dialects.postgresql import BIT
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ClauseElement, ColumnElement
from sqlalchemy.sql.elements import Label, TextClause

from vecalchemy import sqltext
from vecalchemy.exc import IndexDefinitionError
from vecalchemy.facts import (
    DEFAULT_OPCLASS,
    INDEX_METHODS,
    metrics_for,
    opclass_for,
    opclass_info,
)
from vecalchemy.indexes import validate_vector_index
from vecalchemy.indexes.build import create_partitioned_index_concurrently, is_partitioned
from vecalchemy.indexes.cleanup import BuildTarget, add_note, build_target, drop_invalid_index
from vecalchemy.types import TYPES_BY_SQL_TYPE, VectorType

from .catalog import is_partitioned_index
from .ddl import (
    Expression,
    create_index_sql,
    drop_index_sql,
    index_definition_sql,
    qualified,
    version_literal,
)

__all__ = [
    "CreatePartitionOp",
    "DropPartitionOp",
    "CreateVectorIndexOp",
    "DropVectorIndexOp",
    "CreateVectorExtensionOp",
    "DropVectorExtensionOp",
    "AlterVectorExtensionUpdateOp",
]


def _execute(
    operations: Operations,
    sql: str,
    *,
    autocommit: bool = False,
    online: Callable[[Connection], None] | None = None,
    on_failure: Callable[[Connection, BaseException], None] | None = None,
    comment: str | None = None,
) -> None:
    """Run ``sql`` in the migration's transaction or, with ``autocommit``, in an
    autocommit block (offline: between the ``COMMIT`` and ``BEGIN`` written around it).

    Online, in the block, ``online(conn)`` runs in place of ``sql`` when given (``conn``
    the block's AUTOCOMMIT connection: a build that reads the catalog first); if the
    block's work fails, ``on_failure(conn, error)`` runs before the block is left (the
    connection still AUTOCOMMIT), then the error propagates: the cleanup of what a failed
    ``CREATE INDEX CONCURRENTLY`` left. Offline, ``comment`` is written as ``--`` lines
    before the statement.
    """
    ctx = operations.get_context()
    statement = sqltext.Statement(sql, for_script=ctx.as_sql)
    conn = None if ctx.as_sql else ctx.connection
    if not autocommit:
        _comment(operations, comment)
        operations.execute(statement)
        return
    with ctx.autocommit_block():
        _comment(operations, comment)
        if conn is None:
            operations.execute(statement)
            return
        try:
            _leave_driver_transaction(conn)
            if online is None:
                operations.execute(statement)
            else:
                online(conn)
        except BaseException as e:
            if on_failure is not None:
                on_failure(conn, e)
            raise


def _comment(operations: Operations, comment: str | None) -> None:
    """Write ``comment`` into the ``--sql`` output as ``--`` lines (online: nothing)."""
    ctx = operations.get_context()
    if comment is None or not ctx.as_sql:
        return
    # names are quoted (control characters escaped): no line of it can end the comment
    flat = re.sub(r"[\x00-\x1f\x7f]", " ", comment)
    lines = textwrap.wrap(flat, 85, break_long_words=False, break_on_hyphens=False)
    ctx.impl.static_output("\n".join("-- " + line for line in lines))


def _leave_driver_transaction(conn: Connection) -> None:
    """End the transaction pg8000 may hold open at the start of an autocommit block.

    ``autocommit_block()`` reads the isolation level with a query before switching to
    AUTOCOMMIT; pg8000, not yet in autocommit, runs that query in a transaction of its
    own, and setting ``autocommit`` later does not end it, so PostgreSQL would see
    ``CREATE INDEX CONCURRENTLY`` inside a transaction block. That transaction holds only
    the query; pg8000's ``rollback()`` ends it and does nothing when there is none.
    psycopg, psycopg2 and asyncpg leave no such transaction.
    """
    if conn.dialect.driver == "pg8000":
        conn.connection.dbapi_connection.rollback()  # type: ignore[union-attr]


def _flag(name: str, value: Any) -> bool:
    """A keyword that must be a bool (``concurrently="no"`` would otherwise read True)."""
    if not isinstance(value, bool):
        raise IndexDefinitionError(f"{name} must be a bool, got {value!r}")
    return value


def _is_typed(expression: Any) -> bool:
    while isinstance(expression, Label):
        expression = expression.element
    return isinstance(expression, ColumnElement) and isinstance(expression.type, (VectorType, BIT))


def _where_clause(where: Expression | None) -> ClauseElement | None:
    """``where`` as a clause; SQL text must be one expression
    (:func:`vecalchemy.sqltext.check_expression_sql`: a second statement is refused)."""
    if where is not None and not isinstance(where, (str, ClauseElement)):
        raise IndexDefinitionError(
            f"where= must be SQL text or a SQL expression, got {type(where).__name__}"
        )
    sqltext.check_where(where)
    return text(where) if isinstance(where, str) else where


class CreateVectorIndexOp(MigrateOperation):
    """``CREATE INDEX ... USING hnsw|ivfflat (key opclass) WITH (...) WHERE ...``.

    ``expression`` is a column name (``str``), raw SQL (``sa.text("(embedding::halfvec(3))")``)
    or a typed SQLAlchemy expression (``sa.cast(sa.column("e", Vector(3)), HalfVec(3))``).
    A typed expression is checked by every rule of
    :func:`vecalchemy.indexes.validate_vector_index`; for a name or raw SQL the method,
    operator class, metric and options are checked here and the dimension rules are
    left to the server. ``options`` holds the explicitly given ``m``,
    ``ef_construction`` (HNSW) or ``lists`` (IVFFlat).

    ``concurrently=True`` runs ``CREATE INDEX CONCURRENTLY`` in an autocommit block; if the
    build fails, the INVALID index it left is dropped before the error propagates. On a
    partitioned table (``pg_class.relkind = 'p'``, read online), where PostgreSQL refuses
    ``CREATE INDEX CONCURRENTLY``, the index is built as PostgreSQL allows
    (:func:`vecalchemy.indexes.build.create_partitioned_index_concurrently`): ``CREATE
    INDEX ... ON ONLY`` the parent, each partition's index ``CONCURRENTLY`` (named
    ``<index>_<partition>``, :func:`vecalchemy.indexes.build.partition_index_name`), then
    ``ALTER INDEX ... ATTACH PARTITION``; a failed build drops what it made, leaving
    nothing INVALID; ``if_not_exists`` skips the build when the index exists.
    Sub-partitioned partitions are refused. Offline (``--sql``) the partitions are
    unknown: for a table ``target_metadata`` declares partitioned
    (``postgresql_partition_by``), the script gets a plain ``CREATE INDEX`` (outside the
    migration's transaction, after a ``--`` comment saying why), which builds every
    partition's index while holding a SHARE lock on each; a table not in
    ``target_metadata`` gets ``CREATE INDEX CONCURRENTLY``, which PostgreSQL then refuses
    if it is partitioned.

    Raises :class:`~vecalchemy.exc.IndexDefinitionError` before anything is sent.
    """

    def __init__(
        self,
        index_name: str,
        table_name: str,
        expression: Expression,
        *,
        method: str = "hnsw",
        metric: str | None = None,
        opclass: str | None = None,
        options: Mapping[str, int] | None = None,
        where: Expression | None = None,
        schema: str | None = None,
        concurrently: bool = False,
        if_not_exists: bool = False,
    ) -> None:
        sqltext.check_identifier(index_name, "index name")
        sqltext.check_identifier(table_name, "table name")
        if schema is not None:
            sqltext.check_identifier(schema, "schema name")
        if method not in INDEX_METHODS:
            raise IndexDefinitionError(
                f"unknown vector index method {method!r}; expected one of "
                + ", ".join(INDEX_METHODS)
            )
        if hasattr(expression, "__clause_element__"):
            expression = expression.__clause_element__()
        if not isinstance(expression, (str, ClauseElement)):
            raise IndexDefinitionError(
                "column_or_expr must be a column name, sa.text(...) or a SQL expression, "
                f"got {type(expression).__name__}"
            )
        if isinstance(expression, str):
            sqltext.check_identifier(expression, "column name")
        self.index_name = index_name
        self.table_name = table_name
        self.expression: Expression = expression
        self.method = method
        self.where: Expression | None = where
        self.schema = schema
        self.concurrently = _flag("concurrently", concurrently)
        self.if_not_exists = _flag("if_not_exists", if_not_exists)
        given = {k: v for k, v in (options or {}).items() if v is not None}
        self.metric, self.opclass, self.options = self._check(metric, opclass, given)

    def _check(
        self, metric: str | None, opclass: str | None, options: dict[str, Any]
    ) -> tuple[str | None, str | None, dict[str, int]]:
        where = _where_clause(self.where)
        if _is_typed(self.expression):
            spec = validate_vector_index(
                self.method,
                self.expression,
                metric=metric,
                opclass=opclass,
                options=options,
                where=where,
            )
            return spec.metric, spec.opclass, dict(spec.options)
        # The type is unknown here: check everything but the dimension rules against a
        # stand-in of the type the opclass or metric implies (2 dimensions pass them all;
        # the server enforces the real ones).
        if opclass is not None:
            try:
                sql_type = opclass_info(opclass)[0]
            except ValueError as e:
                raise IndexDefinitionError(f"{self.method} index: {e}") from None
        elif metric is not None and metric in metrics_for("bit"):
            sql_type = "bit"
        elif metric is None and DEFAULT_OPCLASS.get(self.method) is None:
            raise IndexDefinitionError(  # HNSW is the method without one
                f"HNSW index {self.index_name!r}: HNSW has no default operator class; give "
                f"opclass= (e.g. '{opclass_for('vector', 'cosine')}') or metric= (e.g. 'cosine')"
            )
        else:
            sql_type = "vector"
        stand_in = literal_column("stand_in", TYPES_BY_SQL_TYPE[sql_type](2))
        spec = validate_vector_index(
            self.method, stand_in, metric=metric, opclass=opclass, options=options, where=where
        )
        resolved = spec.opclass if (opclass is not None or sql_type == "bit") else None
        return (metric if opclass is None else spec.metric), resolved, dict(spec.options)

    @classmethod
    def create_vector_index(
        cls,
        operations: Operations,
        index_name: str,
        table_name: str,
        column_or_expr: Expression,
        *,
        method: str = "hnsw",
        metric: str | None = None,
        opclass: str | None = None,
        m: int | None = None,
        ef_construction: int | None = None,
        lists: int | None = None,
        where: Expression | None = None,
        concurrently: bool = False,
        schema: str | None = None,
        if_not_exists: bool = False,
    ) -> None:
        """Create an HNSW or IVFFlat index (``op.create_vector_index``).

        ``column_or_expr``: a column name, ``sa.text(...)`` or a typed SQL expression.
        ``metric`` picks the operator class (for a bare column name, online, from the
        column's type); ``opclass`` names it. ``m`` (2-100), ``ef_construction``
        (4-1000, >= 2*m) are HNSW options, ``lists`` (1-32768) IVFFlat's
        (pgvector src/hnsw.c, src/ivfflat.c). ``where`` makes a partial index;
        ``concurrently`` builds outside the transaction (autocommit block), on a
        partitioned table partition by partition (see :class:`CreateVectorIndexOp`).

        Raises :class:`~vecalchemy.exc.IndexDefinitionError` before anything is sent.
        """
        options = {"m": m, "ef_construction": ef_construction, "lists": lists}
        op = cls(
            index_name,
            table_name,
            column_or_expr,
            method=method,
            metric=metric,
            opclass=opclass,
            options={k: v for k, v in options.items() if v is not None},
            where=where,
            schema=schema,
            concurrently=concurrently,
            if_not_exists=if_not_exists,
        )
        operations.invoke(op)

    def reverse(self) -> DropVectorIndexOp:
        return DropVectorIndexOp(
            self.index_name,
            self.table_name,
            schema=self.schema,
            concurrently=self.concurrently,
            _reverse=self,
        )

    def definition(self) -> str:
        """A readable one-line summary (used by ``alembic check`` and logs)."""
        opts = ", ".join(f"{k}={v}" for k, v in self.options.items())
        return (
            f"{self.method} ({_describe(self.expression)} {self.opclass or self.metric or ''})"
            + (f" WITH ({opts})" if opts else "")
            + (f" WHERE {_describe(self.where)}" if self.where is not None else "")
        )

    def to_diff_tuple(self) -> tuple[Any, ...]:
        return (
            "add_vector_index",
            self.schema,
            self.table_name,
            self.index_name,
            self.definition(),
        )


def _describe(expression: Any) -> str:
    if isinstance(expression, str):
        return expression
    if isinstance(expression, TextClause):
        return expression.text
    return str(expression)


class DropVectorIndexOp(MigrateOperation):
    """``DROP INDEX [CONCURRENTLY] [IF EXISTS] name``.

    ``concurrently=True`` runs the statement in an autocommit block. PostgreSQL refuses
    ``DROP INDEX CONCURRENTLY`` on a partitioned table's index (``pg_class.relkind =
    'I'``, read online; offline: ``table_name`` declared with ``postgresql_partition_by``
    in ``target_metadata``, and the script says so in a ``--`` comment), so that one is
    dropped with a plain ``DROP INDEX``, still in the autocommit block: the index of every
    partition goes with it, and the statement holds an ACCESS EXCLUSIVE lock on the table
    and each partition while it runs (it waits for the queries running on them, and the
    queries that come meanwhile wait for it). Offline without ``table_name``, or for a
    table not in ``target_metadata``, ``DROP INDEX CONCURRENTLY`` is written.

    Reversible when it carries the definition of the index it drops (autogenerate always
    gives it); otherwise ``reverse()`` raises :class:`ValueError`.
    """

    def __init__(
        self,
        index_name: str,
        table_name: str | None = None,
        *,
        schema: str | None = None,
        concurrently: bool = False,
        if_exists: bool = False,
        _reverse: CreateVectorIndexOp | None = None,
    ) -> None:
        sqltext.check_identifier(index_name, "index name")
        if table_name is not None:
            sqltext.check_identifier(table_name, "table name")
        if schema is not None:
            sqltext.check_identifier(schema, "schema name")
        self.index_name = index_name
        self.table_name = table_name
        self.schema = schema
        self.concurrently = _flag("concurrently", concurrently)
        self.if_exists = _flag("if_exists", if_exists)
        self._reverse = _reverse

    @classmethod
    def drop_vector_index(
        cls,
        operations: Operations,
        index_name: str,
        table_name: str | None = None,
        *,
        schema: str | None = None,
        concurrently: bool = False,
        if_exists: bool = False,
    ) -> None:
        """Drop a vector index (``op.drop_vector_index``); ``concurrently`` runs
        ``DROP INDEX CONCURRENTLY`` in an autocommit block (a plain ``DROP INDEX`` for a
        partitioned table's index: see :class:`DropVectorIndexOp`)."""
        operations.invoke(
            cls(
                index_name,
                table_name,
                schema=schema,
                concurrently=concurrently,
                if_exists=if_exists,
            )
        )

    def reverse(self) -> CreateVectorIndexOp:
        if self._reverse is None:
            raise ValueError(
                f"operation drop_vector_index({self.index_name!r}) is not reversible: it "
                "does not carry the definition of the index it drops"
            )
        return self._reverse

    def to_diff_tuple(self) -> tuple[Any, ...]:
        definition = self._reverse.definition() if self._reverse is not None else None
        return ("remove_vector_index", self.schema, self.table_name, self.index_name, definition)


class CreateVectorExtensionOp(MigrateOperation):
    """``CREATE EXTENSION [IF NOT EXISTS] vector [SCHEMA schema]``."""

    def __init__(self, schema: str | None = None, *, if_not_exists: bool = True) -> None:
        if schema is not None:
            sqltext.check_identifier(schema, "schema name")
        self.schema = schema
        self.if_not_exists = _flag("if_not_exists", if_not_exists)

    @classmethod
    def create_vector_extension(
        cls, operations: Operations, schema: str | None = None, *, if_not_exists: bool = True
    ) -> None:
        """Create pgvector's extension (``op.create_vector_extension``), in ``schema``
        or the first schema of the ``search_path``."""
        operations.invoke(cls(schema, if_not_exists=if_not_exists))

    def reverse(self) -> DropVectorExtensionOp:
        return DropVectorExtensionOp(if_exists=self.if_not_exists, schema=self.schema)

    def to_diff_tuple(self) -> tuple[Any, ...]:
        return ("add_vector_extension", self.schema)


class DropVectorExtensionOp(MigrateOperation):
    """``DROP EXTENSION [IF EXISTS] vector [CASCADE]``."""

    def __init__(
        self, *, if_exists: bool = False, cascade: bool = False, schema: str | None = None
    ) -> None:
        self.if_exists = _flag("if_exists", if_exists)
        self.cascade = _flag("cascade", cascade)
        self.schema = schema  # where reverse() creates it again

    @classmethod
    def drop_vector_extension(
        cls, operations: Operations, *, if_exists: bool = False, cascade: bool = False
    ) -> None:
        """Drop pgvector's extension (``op.drop_vector_extension``); ``cascade`` also
        drops every column, index and function that uses its types."""
        operations.invoke(cls(if_exists=if_exists, cascade=cascade))

    def reverse(self) -> CreateVectorExtensionOp:
        return CreateVectorExtensionOp(self.schema, if_not_exists=self.if_exists)

    def to_diff_tuple(self) -> tuple[Any, ...]:
        return ("remove_vector_extension",)


class AlterVectorExtensionUpdateOp(MigrateOperation):
    """``ALTER EXTENSION vector UPDATE [TO 'version']`` (not reversible: pgvector ships
    no downgrade scripts)."""

    def __init__(self, version: str | None = None) -> None:
        if version is not None:
            version_literal(version)
        self.version = version

    @classmethod
    def alter_vector_extension_update(
        cls, operations: Operations, version: str | None = None
    ) -> None:
        """Update pgvector's SQL objects to the installed library's version, or to
        ``version`` (dotted digits; :class:`ValueError` otherwise)."""
        operations.invoke(cls(version))

    def to_diff_tuple(self) -> tuple[Any, ...]:
        return ("update_vector_extension", self.version)


for _name, _cls in (
    ("create_vector_index", CreateVectorIndexOp),
    ("drop_vector_index", DropVectorIndexOp),
    ("create_vector_extension", CreateVectorExtensionOp),
    ("drop_vector_extension", DropVectorExtensionOp),
    ("alter_vector_extension_update", AlterVectorExtensionUpdateOp),
):
    Operations.register_operation(_name)(_cls)


# --- partitions -----------------------------------------------------------------------

#: the bound keywords of a partition, in the order they render
_BOUNDS = ("values", "range_from", "range_to", "modulus", "remainder", "default")


def _partition_error(message: str) -> Exception:
    from vecalchemy.partitions import PartitionError

    return PartitionError(message)


def _check_bounds(bounds: dict[str, Any], *, optional: bool = False) -> dict[str, Any]:
    """The bound keywords given, shape-checked: one of ``values``, ``range_from`` +
    ``range_to``, ``modulus`` + ``remainder``, ``default=True`` (or none, if
    ``optional``). Their fit to the parent's partition key and the key columns' types is
    checked by :func:`vecalchemy.partitions.partition_statement`."""
    default = bounds.get("default", False)
    if not isinstance(default, bool):
        raise TypeError(f"default= must be a bool, got {type(default).__name__} {default!r}")
    values = bounds.get("values")
    if values is not None and (
        isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple))
    ):
        raise TypeError(
            f"values= must be a list or tuple of key values, got {type(values).__name__} "
            f"{values!r} (for one value v, pass [v])"
        )
    given = {k: v for k, v in bounds.items() if v is not None and v is not False}
    forms = (("values",), ("range_from", "range_to"), ("modulus", "remainder"), ("default",))
    if not (optional and not given) and not any(set(given) == set(form) for form in forms):
        raise _partition_error(
            "a partition takes one of: values= (LIST), range_from= and range_to= (RANGE), "
            "modulus= and remainder= (HASH), default=True (LIST or RANGE); got "
            + (", ".join(f"{k}=" for k in given) if given else "no bounds")
        )
    if isinstance(values, list):
        given["values"] = list(values)
    return given


class _PartitionOp(MigrateOperation):
    _bounds_optional = False

    def __init__(
        self,
        parent_table_name: str,
        partition_name: str,
        *,
        values: Any = None,
        range_from: Any = None,
        range_to: Any = None,
        modulus: Any = None,
        remainder: Any = None,
        default: Any = False,
        schema: str | None = None,
    ) -> None:
        sqltext.check_identifier(parent_table_name, "parent table name")
        sqltext.check_identifier(partition_name, "partition name")
        if schema is not None:
            sqltext.check_identifier(schema, "schema name")
        self.parent_table_name = parent_table_name
        self.partition_name = partition_name
        self.schema = schema
        self.bounds: dict[str, Any] = _check_bounds(
            {
                "values": values,
                "range_from": range_from,
                "range_to": range_to,
                "modulus": modulus,
                "remainder": remainder,
                "default": default,
            },
            optional=self._bounds_optional,
        )

    def _keywords(self) -> dict[str, Any]:
        return {**self.bounds, "schema": self.schema}

    def describe_bounds(self) -> str:
        """The bounds as a readable summary (``values=[1, 2]``, ``default=True``...)."""
        return ", ".join(f"{k}={self.bounds[k]!r}" for k in _BOUNDS if k in self.bounds)


class CreatePartitionOp(_PartitionOp):
    """``CREATE TABLE partition PARTITION OF parent FOR VALUES ... | DEFAULT``.

    PostgreSQL gives the new partition a child of each of the parent's partitioned
    indexes (its HNSW and IVFFlat indexes included, built on the partition's rows), so
    the migration needs no index operation. The partition and its parent are in
    ``schema`` (``None``: the ``search_path``'s). The statement is
    :func:`vecalchemy.partitions.partition_statement`'s: bounds rendered as literals of
    the partition key columns' types (DDL takes no bind parameters), checked first.
    Online the parent's key and column types are read from the catalog; offline
    (``--sql``) from the parent Table in ``target_metadata``.

    Raises, before anything is sent: :class:`~vecalchemy.partitions.PartitionError` for
    bounds of no form or not of the parent's strategy (LIST: ``values``; RANGE:
    ``range_from`` + ``range_to``; HASH: ``modulus`` + ``remainder``; ``default=True``
    for LIST or RANGE), or a parent that is not a partitioned table; ``TypeError`` for a
    value not of its key column's type; :class:`~vecalchemy.exc.InvalidIdentifierError`
    for a bad name.
    """

    @classmethod
    def create_partition(
        cls,
        operations: Operations,
        parent_table_name: str,
        partition_name: str,
        *,
        values: Any = None,
        range_from: Any = None,
        range_to: Any = None,
        modulus: int | None = None,
        remainder: int | None = None,
        default: bool = False,
        schema: str | None = None,
    ) -> None:
        """Create a partition of a partitioned table (``op.create_partition``); see
        :class:`CreatePartitionOp`. Its vector indexes come from the parent's."""
        operations.invoke(
            cls(
                parent_table_name,
                partition_name,
                values=values,
                range_from=range_from,
                range_to=range_to,
                modulus=modulus,
                remainder=remainder,
                default=default,
                schema=schema,
            )
        )

    def reverse(self) -> DropPartitionOp:
        return DropPartitionOp(self.parent_table_name, self.partition_name, **self._keywords())

    def to_diff_tuple(self) -> tuple[Any, ...]:
        return (
            "add_partition",
            self.schema,
            self.parent_table_name,
            self.partition_name,
            self.describe_bounds(),
        )


class DropPartitionOp(_PartitionOp):
    """``DROP TABLE partition`` (its rows and its indexes with it), for a partition of
    ``parent_table_name``. The bounds, when given, are those it was created with, for
    ``reverse()`` (the downgrade creates it again, empty, and PostgreSQL gives it the
    parent's indexes); without them ``reverse()`` raises :class:`ValueError`.

    Online, a relation that is not a partition of ``parent_table_name`` raises
    :class:`~vecalchemy.partitions.PartitionError` before anything is dropped.
    """

    _bounds_optional = True

    @classmethod
    def drop_partition(
        cls,
        operations: Operations,
        parent_table_name: str,
        partition_name: str,
        *,
        values: Any = None,
        range_from: Any = None,
        range_to: Any = None,
        modulus: int | None = None,
        remainder: int | None = None,
        default: bool = False,
        schema: str | None = None,
    ) -> None:
        """Drop a partition of a partitioned table (``op.drop_partition``), its rows and
        indexes with it; the bounds, if given, are kept for the reverse operation."""
        operations.invoke(
            cls(
                parent_table_name,
                partition_name,
                values=values,
                range_from=range_from,
                range_to=range_to,
                modulus=modulus,
                remainder=remainder,
                default=default,
                schema=schema,
            )
        )

    def reverse(self) -> CreatePartitionOp:
        if not self.bounds:
            raise ValueError(
                f"operation drop_partition({self.parent_table_name!r}, "
                f"{self.partition_name!r}) is not reversible: it does not carry the bounds "
                "of the partition it drops"
            )
        return CreatePartitionOp(self.parent_table_name, self.partition_name, **self._keywords())

    def to_diff_tuple(self) -> tuple[Any, ...]:
        return (
            "remove_partition",
            self.schema,
            self.parent_table_name,
            self.partition_name,
            self.describe_bounds(),
        )


Operations.register_operation("create_partition")(CreatePartitionOp)
Operations.register_operation("drop_partition")(DropPartitionOp)


# --- implementations ------------------------------------------------------------------

#: the table as the server resolves the name: in ``schema``, or through the search path
#: (temporary tables included) when it is None
_COLUMN_TYPE = text(
    "SELECT t.typname, a.atttypmod FROM pg_attribute a"
    " JOIN pg_type t ON t.oid = a.atttypid"
    " WHERE a.attrelid = to_regclass(CASE WHEN CAST(:schema AS text) IS NULL"
    " THEN quote_ident(:table) ELSE quote_ident(:schema) || '.' || quote_ident(:table) END)"
    " AND a.attname = :column AND NOT a.attisdropped"
)


def _resolve_opclass(operations: Operations, op: CreateVectorIndexOp) -> str | None:
    """The opclass to write: ``op.opclass``, or the one for ``op.metric``.

    Online, a column given by name is looked up in the database and the whole definition
    is checked against its type and dimensions (:func:`validate_vector_index`), so a rule
    pgvector would break on (dimensions over the method's limit, an opclass of another
    type) is refused before the ``CREATE INDEX`` is sent. Offline, or for an untyped
    expression, the metric needs ``opclass=`` to be written.
    """
    ctx = operations.get_context()
    if ctx.as_sql or not isinstance(op.expression, str):
        if op.opclass is not None or op.metric is None:
            return op.opclass
        raise IndexDefinitionError(
            f"index {op.index_name!r}: cannot tell the type of {_describe(op.expression)!r} "
            f"to choose the operator class for metric {op.metric!r}"
            + (" in offline mode" if ctx.as_sql else "")
            + f"; give opclass= (e.g. '{opclass_for('vector', 'cosine')}') or a typed expression"
        )
    row = ctx.bind.execute(  # type: ignore[union-attr]
        _COLUMN_TYPE, {"schema": op.schema, "table": op.table_name, "column": op.expression}
    ).first()
    where = qualified(op.table_name, op.schema, ctx.dialect)
    if row is None:
        raise IndexDefinitionError(
            f"index {op.index_name!r}: no column {op.expression!r} in table {where}"
        )
    if row[0] == "varbit":  # pgvector src/hnswbuild.c, src/ivfbuild.c
        raise IndexDefinitionError(
            f"index {op.index_name!r}: column {op.expression!r} of {where} is bit varying: "
            f"type not supported for {op.method} index; index a fixed-length cast, e.g. "
            f"sa.text('(({op.expression})::bit(64))') with "
            f"opclass='{opclass_for('bit', 'hamming')}'"
        )
    sql_type = str(row[0])
    type_class = TYPES_BY_SQL_TYPE.get(sql_type)
    if type_class is None:
        raise IndexDefinitionError(
            f"index {op.index_name!r}: column {op.expression!r} of {where} is {row[0]}; a "
            f"vector index needs a {', '.join(TYPES_BY_SQL_TYPE)} column or expression"
        )
    typmod = int(row[1])
    column = literal_column(op.expression, type_class(typmod if typmod > 0 else None))
    try:
        spec = validate_vector_index(
            op.method,
            column,
            metric=op.metric,
            opclass=op.opclass,
            options=op.options,
            where=_where_clause(op.where),
        )
    except IndexDefinitionError as e:
        raise IndexDefinitionError(f"index {op.index_name!r} on {where}: {e}") from None
    if op.opclass is None and op.metric is None:
        return None  # the DDL names none: the method's default, as checked above
    return op.opclass if op.opclass is not None else spec.opclass


@Operations.implementation_for(CreateVectorIndexOp)
def create_vector_index(operations: Operations, op: CreateVectorIndexOp) -> None:
    """Emit the ``CREATE INDEX`` of ``op`` (in an autocommit block when concurrent; on a
    partitioned table, partition by partition: see :class:`CreateVectorIndexOp`)."""
    ctx = operations.get_context()
    opclass = _resolve_opclass(operations, op)
    definition = index_definition_sql(
        ctx.dialect,
        expression=op.expression,
        method=op.method,
        opclass=opclass,
        options=op.options,
        where=op.where,
    )

    def create_sql(concurrently: bool) -> str:
        return create_index_sql(
            ctx.dialect,
            name=op.index_name,
            table=op.table_name,
            schema=op.schema,
            expression=op.expression,
            method=op.method,
            opclass=opclass,
            options=op.options,
            where=op.where,
            concurrently=concurrently,
            if_not_exists=op.if_not_exists,
        )

    sql = create_sql(op.concurrently)
    if not op.concurrently:
        _execute(operations, sql)
        return
    if ctx.as_sql or ctx.connection is None:
        if not _declared_partitioned(operations, op.table_name, op.schema):
            _execute(operations, sql, autocommit=True)
            return
        comment = (
            f"{sqltext.quote(ctx.dialect, op.index_name)}: "
            f"{qualified(op.table_name, op.schema, ctx.dialect)} is a partitioned table "
            "(postgresql_partition_by in target_metadata), where PostgreSQL refuses "
            "CREATE INDEX CONCURRENTLY, and its partitions are not known offline; a plain "
            "CREATE INDEX instead, which builds the index of every partition, holding a "
            "SHARE lock on each (writes wait) until it commits. Run online, the migration "
            "builds each partition's index CONCURRENTLY and attaches it."
        )
        _execute(operations, create_sql(False), autocommit=True, comment=comment)
        return
    started: list[BuildTarget] = []

    def build(conn: Connection) -> None:
        target = build_target(conn, op.schema, op.table_name, op.index_name)
        if target is not None and is_partitioned(conn, target):
            # cleans up after itself: nothing INVALID is left on a partition or the parent
            create_partitioned_index_concurrently(
                conn, target, definition, checkfirst=op.if_not_exists
            )
            return
        if target is not None:
            started.append(target)
        conn.execute(sqltext.Statement(sql))

    def cleanup(conn: Connection, error: BaseException) -> None:
        # a failed CREATE INDEX CONCURRENTLY leaves an INVALID index behind: drop it from
        # a fresh connection (this one may be dead)
        for target in started:
            note = drop_invalid_index(conn.engine, target, given=conn)
            if note is not None:
                add_note(error, note)

    _execute(operations, sql, autocommit=True, online=build, on_failure=cleanup)


@Operations.implementation_for(DropVectorIndexOp)
def drop_vector_index(operations: Operations, op: DropVectorIndexOp) -> None:
    """Emit the ``DROP INDEX`` of ``op`` (in an autocommit block when concurrent; a plain
    ``DROP INDEX`` for the index of a partitioned table: see :class:`DropVectorIndexOp`)."""
    ctx = operations.get_context()

    def drop_sql(concurrently: bool) -> str:
        return drop_index_sql(
            ctx.dialect,
            name=op.index_name,
            schema=op.schema,
            concurrently=concurrently,
            if_exists=op.if_exists,
        )

    if not op.concurrently:
        _execute(operations, drop_sql(False))
        return
    if ctx.as_sql or ctx.connection is None:
        if op.table_name is None or not _declared_partitioned(
            operations, op.table_name, op.schema
        ):
            _execute(operations, drop_sql(True), autocommit=True)
            return
        comment = (
            f"{qualified(op.index_name, op.schema, ctx.dialect)}: "
            f"{qualified(op.table_name, op.schema, ctx.dialect)} is a partitioned table "
            "(postgresql_partition_by in target_metadata), where PostgreSQL refuses DROP "
            "INDEX CONCURRENTLY; a plain DROP INDEX instead, which drops the index of "
            "every partition with it, holding an ACCESS EXCLUSIVE lock on the table and "
            "each partition until it commits."
        )
        _execute(operations, drop_sql(False), autocommit=True, comment=comment)
        return

    def drop(conn: Connection) -> None:
        # read in the autocommit block, as the drop runs: not in the migration's transaction
        partitioned = is_partitioned_index(conn, op.index_name, op.schema)
        conn.execute(sqltext.Statement(drop_sql(not partitioned)))

    _execute(operations, drop_sql(True), autocommit=True, online=drop)


@Operations.implementation_for(CreateVectorExtensionOp)
def create_vector_extension(operations: Operations, op: CreateVectorExtensionOp) -> None:
    """Emit ``CREATE EXTENSION ... vector``."""
    dialect = operations.get_context().dialect
    sql = "CREATE EXTENSION " + ("IF NOT EXISTS " if op.if_not_exists else "") + "vector"
    if op.schema:
        sql += f" SCHEMA {sqltext.quote(dialect, op.schema)}"
    _execute(operations, sql)


@Operations.implementation_for(DropVectorExtensionOp)
def drop_vector_extension(operations: Operations, op: DropVectorExtensionOp) -> None:
    """Emit ``DROP EXTENSION ... vector``."""
    sql = "DROP EXTENSION " + ("IF EXISTS " if op.if_exists else "") + "vector"
    _execute(operations, sql + (" CASCADE" if op.cascade else ""))


@Operations.implementation_for(AlterVectorExtensionUpdateOp)
def alter_vector_extension_update(
    operations: Operations, op: AlterVectorExtensionUpdateOp
) -> None:
    """Emit ``ALTER EXTENSION vector UPDATE [TO '...']``."""
    sql = "ALTER EXTENSION vector UPDATE"
    if op.version is not None:
        sql += f" TO {version_literal(op.version)}"
    _execute(operations, sql)


#: a partitioned table's partition key (``LIST (tenant_id)``...), by its regclass text
_PARTITION_KEY = text(
    "SELECT pg_get_partkeydef(c.oid) FROM pg_class c"
    " WHERE c.oid = to_regclass(:name) AND c.relkind = 'p'"
)

#: whether a relation is a partition of another, both by their regclass text
_IS_PARTITION_OF = text(
    "SELECT 1 FROM pg_inherits h"
    " WHERE h.inhrelid = to_regclass(:partition) AND h.inhparent = to_regclass(:parent)"
)


def _declared_table(operations: Operations, name: str, schema: str | None) -> Table | None:
    """The Table ``schema.name`` of ``target_metadata`` (a MetaData or a sequence of
    them; the last that has it), or None."""
    metadata = operations.get_context().opts.get("target_metadata")
    found: Table | None = None
    for md in metadata if isinstance(metadata, (list, tuple)) else [metadata]:
        if isinstance(md, MetaData):
            table = md.tables.get(f"{schema}.{name}" if schema else name)
            found = table if table is not None else found
    return found


def _declared_partitioned(operations: Operations, name: str, schema: str | None) -> bool:
    """Whether ``target_metadata`` declares ``schema.name`` partitioned
    (``postgresql_partition_by``): offline, what there is to know of the table."""
    table = _declared_table(operations, name, schema)
    return table is not None and bool(table.dialect_options["postgresql"]["partition_by"])


def _declared_parent(operations: Operations, op: _PartitionOp) -> Table:
    """The parent Table from ``target_metadata`` (offline: no catalog to read)."""
    found = _declared_table(operations, op.parent_table_name, op.schema)
    if found is None or not found.dialect_options["postgresql"]["partition_by"]:
        raise _partition_error(
            f"cannot render the partition {op.partition_name!r} of "
            f"{op.parent_table_name!r} offline: its partition key is read from the parent "
            "Table in target_metadata, declared with postgresql_partition_by, and "
            + ("that Table has none" if found is not None else "there is no such Table")
        )
    return found


def _catalog_parent(operations: Operations, op: _PartitionOp) -> Table:
    """A Table standing for the parent: its columns (name and type, as reflected) and
    its partition key (``pg_get_partkeydef``), enough to render and check bounds."""
    conn = operations.get_context().connection
    assert conn is not None
    regclass = sqltext.regclass_text(op.parent_table_name, op.schema)
    row = conn.execute(_PARTITION_KEY, {"name": regclass}).first()
    if row is None:
        raise _partition_error(
            f"cannot create the partition {op.partition_name!r}: {op.parent_table_name!r}"
            + (f" in schema {op.schema!r}" if op.schema else "")
            + " is not a partitioned table (no such table, or one without PARTITION BY); "
            "nothing was sent"
        )
    columns = inspect(conn).get_columns(op.parent_table_name, schema=op.schema)
    return Table(
        op.parent_table_name,
        MetaData(),
        *(Column(c["name"], c["type"]) for c in columns),
        schema=op.schema,
        postgresql_partition_by=str(row[0]),
    )


@Operations.implementation_for(CreatePartitionOp)
def create_partition(operations: Operations, op: CreatePartitionOp) -> None:
    """Emit ``CREATE TABLE ... PARTITION OF ...`` for ``op``
    (:func:`vecalchemy.partitions.partition_statement`)."""
    from vecalchemy.partitions import partition_statement

    ctx = operations.get_context()
    offline = ctx.as_sql or ctx.connection is None
    parent = _declared_parent(operations, op) if offline else _catalog_parent(operations, op)
    statement = partition_statement(
        parent, op.partition_name, schema=op.schema, for_script=ctx.as_sql, **op.bounds
    )
    operations.execute(statement)


@Operations.implementation_for(DropPartitionOp)
def drop_partition(operations: Operations, op: DropPartitionOp) -> None:
    """Emit ``DROP TABLE partition`` for ``op``, online after checking that it is a
    partition of the parent."""
    ctx = operations.get_context()
    if not ctx.as_sql and ctx.connection is not None:
        found = ctx.connection.execute(
            _IS_PARTITION_OF,
            {
                "partition": sqltext.regclass_text(op.partition_name, op.schema),
                "parent": sqltext.regclass_text(op.parent_table_name, op.schema),
            },
        ).first()
        if found is None:
            raise _partition_error(
                f"cannot drop {op.partition_name!r}: it is not a partition of "
                f"{op.parent_table_name!r}"
                + (f" in schema {op.schema!r}" if op.schema else "")
                + "; nothing was dropped"
            )
    _execute(operations, f"DROP TABLE {qualified(op.partition_name, op.schema, ctx.dialect)}")


# --- rendering (migration scripts) ----------------------------------------------------


def _render_value(value: Any, autogen_context: AutogenContext) -> str:
    """A bound as Python source; dates, datetimes, decimals, UUIDs and MINVALUE/MAXVALUE
    with the import they need."""
    from vecalchemy.partitions import RangeBound

    if isinstance(value, (list, tuple)):
        items = [_render_value(v, autogen_context) for v in value]
        if isinstance(value, list):
            return "[" + ", ".join(items) + "]"
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    if isinstance(value, RangeBound):
        autogen_context.imports.add("import vecalchemy.partitions")
        return f"vecalchemy.partitions.{value.name}"
    if isinstance(value, (datetime.date, datetime.time, datetime.timedelta)):
        autogen_context.imports.add("import datetime")
        return repr(value)
    if isinstance(value, decimal.Decimal):
        autogen_context.imports.add("import decimal")
        return f"decimal.Decimal({str(value)!r})"
    if isinstance(value, uuid.UUID):
        autogen_context.imports.add("import uuid")
        return f"uuid.UUID({str(value)!r})"
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    raise TypeError(f"cannot render the partition bound {value!r} as Python source")


def _render_partition_op(name: str, autogen_context: AutogenContext, op: _PartitionOp) -> str:
    autogen_context.imports.add("import vecalchemy_alembic.ops  # noqa: F401")
    prefix = str(autogen_context.opts.get("alembic_module_prefix") or "op.")
    args = [repr(op.parent_table_name), repr(op.partition_name)]
    args += [
        f"{k}={_render_value(op.bounds[k], autogen_context)}" for k in _BOUNDS if k in op.bounds
    ]
    if op.schema:
        args.append(f"schema={op.schema!r}")
    return f"{prefix}{name}({', '.join(args)})"


@renderers.dispatch_for(CreatePartitionOp)
def _render_create_partition(autogen_context: AutogenContext, op: CreatePartitionOp) -> str:
    return _render_partition_op("create_partition", autogen_context, op)


@renderers.dispatch_for(DropPartitionOp)
def _render_drop_partition(autogen_context: AutogenContext, op: DropPartitionOp) -> str:
    return _render_partition_op("drop_partition", autogen_context, op)
