"""Tenants: one LIST partition per tenant value, and the per-tenant top-k that
PostgreSQL prunes to that partition.

pgvector's README ("Filtering") recommends partitioning for a filter column with many
values, such as tenants: each partition holds its own vector index (a vector index
declared on the parent is a partitioned index, which PostgreSQL creates on every
partition), and a query whose WHERE clause fixes the tenant scans only that partition's
index (PostgreSQL's partition pruning, "Declarative Partitioning" and "Partition
Pruning" in the PostgreSQL documentation). The DDL comes from
:func:`vecalchemy.partitions.partition_statement`.
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Column, Table, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import Select

from . import sqltext
from .connections import autocommit_connection, run_async, sync_connection
from .facts import INDEX_METHODS
from .indexes.build import partition_index_name

if TYPE_CHECKING:  # sqlalchemy.ext.asyncio needs greenlet, only when used
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from .exc import PartitionError
from .partitions import (
    PG_DIALECT,
    check_value,
    partition_key,
    partition_statement,
)

__all__ = [
    "TenantPartition",
    "tenant_partition_name",
    "create_tenant_partition",
    "detach_tenant_partition",
    "drop_tenant_partition",
    "create_tenant_partition_async",
    "detach_tenant_partition_async",
    "drop_tenant_partition_async",
    "tenant_search",
]


# --- tenants: one LIST partition per tenant value ------------------------------------


@dataclass(frozen=True)
class TenantPartition:
    """A tenant's partition as the catalog shows it: its ``name`` and ``schema``, and
    the names of its vector indexes (HNSW, IVFFlat), sorted."""

    name: str
    schema: str
    vector_indexes: tuple[str, ...]


def _tenant_column(parent: Table) -> Column[Any]:
    if not isinstance(parent, Table):
        raise TypeError(
            "parent must be the LIST-partitioned parent Table (Doc.__table__ for an ORM "
            f"class), got {type(parent).__name__} {parent!r}"
        )
    key = partition_key(parent)
    if key is None or key.strategy != "list":
        option = parent.dialect_options["postgresql"]["partition_by"]
        if key is not None:
            what = f"{key.strategy.upper()}-partitioned"
        elif option:
            what = f"partitioned by {option!r}, not by LIST of one of its columns"
        else:
            what = "not partitioned (no postgresql_partition_by)"
        raise PartitionError(
            f"table {parent.name!r} is {what}; a tenant partition needs a LIST-partitioned "
            "parent (postgresql_partition_by='LIST (tenant_column)')"
        )
    if len(key.columns) != 1:
        raise PartitionError(
            f"table {parent.name!r} is LIST-partitioned by {len(key.columns)} columns; "
            "PostgreSQL's LIST partitioning takes one"
        )
    return key.columns[0]


def _tenant_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return str(value.name)
    return str(value)


def _flag(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")


def _check_tenant(column: Any, tenant: Any) -> None:
    if tenant is None:
        raise TypeError(
            f"tenant must be a value of the column {getattr(column, 'name', column)!r}, got "
            "None (a NULL tenant matches no `=` filter)"
        )
    check_value(column, tenant, "tenant")


def tenant_partition_name(parent: Table, tenant: Any) -> str:
    """The name :func:`create_tenant_partition` gives ``tenant``'s partition:
    ``<parent>_<tenant>``, or, over PostgreSQL's 63 bytes, its UTF-8 prefix and ``_``
    with 8 hex digits of a hash of the whole name (the same tenant always gets the same
    name; as :func:`~vecalchemy.indexes.build.partition_index_name`). Raises what
    :func:`create_tenant_partition` raises for the parent and the tenant value."""
    column = _tenant_column(parent)
    _check_tenant(column, tenant)
    return partition_index_name(parent.name, _tenant_text(tenant))


#: the relation ``name`` in ``schema`` (the current schema when NULL): its schema, its
#: relkind, and whether it is a partition of the parent (by regclass text)
_RELATION_SQL = text(
    "SELECT CAST(n.nspname AS text), CAST(c.relkind AS text), "
    "EXISTS (SELECT 1 FROM pg_catalog.pg_inherits h WHERE h.inhrelid = c.oid "
    "AND h.inhparent = to_regclass(CAST(:parent AS text))) "
    "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = coalesce(CAST(:schema AS text), current_schema()) "
    "AND c.relname = CAST(:name AS text)"
)
#: the indexes of the table ``name`` in ``schema``, with their access method
_INDEXES_SQL = text(
    "SELECT CAST(ic.relname AS text), CAST(a.amname AS text) "
    "FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid "
    "JOIN pg_catalog.pg_am a ON a.oid = ic.relam "
    "JOIN pg_catalog.pg_class c ON c.oid = i.indrelid "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = CAST(:schema AS text) AND c.relname = CAST(:name AS text) "
    "ORDER BY 1"
)


@dataclass(frozen=True)
class _Target:
    parent: Table
    name: str
    schema: str | None


def _target(parent: Table, tenant: Any, name: str | None, schema: str | None) -> _Target:
    tenant_partition_name(parent, tenant)  # the checks of parent and tenant
    if name is None:
        name = tenant_partition_name(parent, tenant)
    sqltext.check_identifier(name, "partition name")
    if schema is not None:
        sqltext.check_identifier(schema, "partition schema")
    return _Target(parent, name, schema if schema is not None else parent.schema)


def _relation(conn: Connection, target: _Target) -> tuple[str, str, bool] | None:
    parent = sqltext.regclass_text(target.parent.name, target.parent.schema)
    row = conn.execute(
        _RELATION_SQL, {"parent": parent, "schema": target.schema, "name": target.name}
    ).first()
    return None if row is None else (str(row[0]), str(row[1]), bool(row[2]))


def _tenant_partition(conn: Connection, name: str, schema: str) -> TenantPartition:
    rows = conn.execute(_INDEXES_SQL, {"schema": schema, "name": name}).all()
    vector = tuple(str(r[0]) for r in rows if r[1] in INDEX_METHODS)
    return TenantPartition(name, schema, vector)


def _qualified(target: _Target) -> str:
    return sqltext.qualified(PG_DIALECT, target.name, target.schema)


_T = TypeVar("_T")


def _run(bind: Engine | Connection | Session, work: Callable[[Connection], _T]) -> _T:
    """``work`` on ``bind``'s connection, in its transaction; an Engine's in a
    transaction of its own, committed."""
    if isinstance(bind, Engine):
        with bind.begin() as conn:
            return work(conn)
    if not isinstance(bind, (Connection, Session)):
        raise TypeError(
            f"expected an Engine, Connection or Session, got {type(bind).__name__} (use the "
            "*_async function for AsyncEngine / AsyncConnection / AsyncSession)"
        )
    return work(sync_connection(bind))


def create_tenant_partition(
    bind: Engine | Connection | Session,
    parent: Table,
    tenant: Any,
    *,
    name: str | None = None,
    schema: str | None = None,
) -> TenantPartition:
    """Create ``tenant``'s partition of the LIST-partitioned ``parent``
    (``CREATE TABLE ... PARTITION OF parent FOR VALUES IN (tenant)``) and return it as
    the catalog shows it, with its vector indexes.

    PostgreSQL creates on the new partition every index of the parent (a partitioned
    index: the parent's ``HnswIndex`` / ``IvfflatIndex`` included, built on the
    partition's rows, none when new) and attaches it to the parent's. ``name`` defaults
    to :func:`tenant_partition_name` (``<parent>_<tenant>``, within 63 bytes);
    ``schema`` to the parent's. ``bind`` is an Engine (a transaction of its own,
    committed), a Connection or a Session (their transaction).

    Raises, before anything is sent: :class:`PartitionError` when ``parent`` is not
    LIST-partitioned by a column or the partition's name is taken; ``TypeError`` for a
    tenant not of the key column's type (or ``None``); what :func:`partition_statement`
    raises. A tenant that another partition holds already is refused by the server
    (a database error: the partitions would overlap).
    """
    target = _target(parent, tenant, name, schema)
    statement = partition_statement(parent, target.name, values=[tenant], schema=target.schema)

    def work(conn: Connection) -> TenantPartition:
        found = _relation(conn, target)
        if found is not None:
            what = (
                f"the partition {target.name!r} of {parent.name!r} exists already"
                if found[2]
                else f"{target.name!r} exists already (a relation that is not a partition "
                f"of {parent.name!r})"
            )
            raise PartitionError(f"{what} in schema {found[0]!r}; nothing was created")
        conn.execute(statement)
        made = _relation(conn, target)
        assert made is not None
        return _tenant_partition(conn, target.name, made[0])

    return _run(bind, work)


def _require_partition(conn: Connection, target: _Target, tenant: Any) -> str:
    found = _relation(conn, target)
    if found is None or not found[2]:
        why = "does not exist" if found is None else "is not attached to it"
        raise PartitionError(
            f"the partition {target.name!r} of {target.parent.name!r} for tenant "
            f"{tenant!r} {why}; nothing was changed"
        )
    return found[0]


def detach_tenant_partition(
    bind: Engine | Connection | Session,
    parent: Table,
    tenant: Any,
    *,
    name: str | None = None,
    schema: str | None = None,
    concurrently: bool = False,
) -> TenantPartition:
    """Detach ``tenant``'s partition from ``parent``
    (``ALTER TABLE parent DETACH PARTITION name [CONCURRENTLY]``): it stays, a table of
    its own with its rows and indexes (detached from the parent's indexes); the parent's
    queries no longer see it. Returns it as the catalog shows it.

    ``concurrently=True`` takes only a SHARE UPDATE EXCLUSIVE lock on the parent
    (queries and writes go on), but cannot run in a transaction block (PostgreSQL): it
    runs on a new AUTOCOMMIT connection of an Engine, or on a Connection with
    ``isolation_level="AUTOCOMMIT"``; PostgreSQL refuses it when the parent has a
    DEFAULT partition. Interrupted, it leaves the partition "detach pending": run
    ``ALTER TABLE parent DETACH PARTITION name FINALIZE``.

    Raises, before the statement is sent: :class:`PartitionError` when ``parent`` is
    not LIST-partitioned or the tenant's partition (named as by
    :func:`create_tenant_partition`, or ``name``) is not attached to it; ``TypeError``
    for a bad tenant, a ``parent`` that is not a Table or a ``concurrently`` that is not a
    bool; :class:`PartitionError` for ``concurrently=True`` on a Session or a Connection
    inside a transaction block.
    """
    target = _target(parent, tenant, name, schema)
    _flag("concurrently", concurrently)
    sql = (
        f"ALTER TABLE {sqltext.table_name(PG_DIALECT, parent)} "
        f"DETACH PARTITION {_qualified(target)}" + (" CONCURRENTLY" if concurrently else "")
    )

    def work(conn: Connection) -> TenantPartition:
        found_schema = _require_partition(conn, target, tenant)
        conn.execute(sqltext.Statement(sql))
        return _tenant_partition(conn, target.name, found_schema)

    if not concurrently:
        return _run(bind, work)

    def refusal() -> PartitionError:
        return PartitionError(
            "DETACH PARTITION CONCURRENTLY cannot run inside a transaction block "
            "(PostgreSQL); pass the Engine, or a Connection with "
            ".execution_options(isolation_level='AUTOCOMMIT')"
        )

    if isinstance(bind, Session):
        raise refusal()
    with autocommit_connection(bind, refusal) as conn:
        return work(conn)


def drop_tenant_partition(
    bind: Engine | Connection | Session,
    parent: Table,
    tenant: Any,
    *,
    name: str | None = None,
    schema: str | None = None,
    detached: bool = False,
) -> None:
    """Drop ``tenant``'s partition (``DROP TABLE name``), its rows and its indexes.

    By default it must be attached to ``parent`` (dropping it locks the parent ACCESS
    EXCLUSIVE for the moment); ``detached=True`` drops it once detached
    (:func:`detach_tenant_partition` with ``concurrently=True`` first, so the parent is
    never locked against queries), and refuses it while still attached.

    Raises, before anything is sent: :class:`PartitionError` when ``parent`` is not
    LIST-partitioned or the tenant's table (named as by
    :func:`create_tenant_partition`, or ``name``) does not exist, or is (not) attached
    against ``detached``; ``TypeError`` for a bad tenant, a ``parent`` that is not a
    Table or a ``detached`` that is not a bool.
    """
    target = _target(parent, tenant, name, schema)
    _flag("detached", detached)
    sql = f"DROP TABLE {_qualified(target)}"

    def work(conn: Connection) -> None:
        if not detached:
            _require_partition(conn, target, tenant)
        else:
            found = _relation(conn, target)
            if found is None or found[1] not in ("r", "p") or found[2]:
                why = (
                    "does not exist"
                    if found is None
                    else "is still attached to it (detach it first, or pass detached=False)"
                    if found[2]
                    else "is not a table"
                )
                raise PartitionError(
                    f"the detached partition {target.name!r} of {parent.name!r} for tenant "
                    f"{tenant!r} {why}; nothing was dropped"
                )
        conn.execute(sqltext.Statement(sql))

    _run(bind, work)


# --- async: the same, through SQLAlchemy's greenlet ------------------------------------


async def create_tenant_partition_async(
    bind: AsyncEngine | AsyncConnection | AsyncSession,
    parent: Table,
    tenant: Any,
    *,
    name: str | None = None,
    schema: str | None = None,
) -> TenantPartition:
    """:func:`create_tenant_partition` for asyncpg / psycopg async, awaited."""
    return await run_async(bind, create_tenant_partition, parent, tenant, name=name, schema=schema)


async def detach_tenant_partition_async(
    bind: AsyncEngine | AsyncConnection | AsyncSession,
    parent: Table,
    tenant: Any,
    *,
    name: str | None = None,
    schema: str | None = None,
    concurrently: bool = False,
) -> TenantPartition:
    """:func:`detach_tenant_partition`, awaited (``concurrently=True``: an AsyncEngine,
    or an AsyncConnection with ``isolation_level="AUTOCOMMIT"``)."""
    return await run_async(
        bind,
        detach_tenant_partition,
        parent,
        tenant,
        name=name,
        schema=schema,
        concurrently=concurrently,
    )


async def drop_tenant_partition_async(
    bind: AsyncEngine | AsyncConnection | AsyncSession,
    parent: Table,
    tenant: Any,
    *,
    name: str | None = None,
    schema: str | None = None,
    detached: bool = False,
) -> None:
    """:func:`drop_tenant_partition`, awaited."""
    await run_async(
        bind, drop_tenant_partition, parent, tenant, name=name, schema=schema, detached=detached
    )


# --- the per-tenant top-k ---------------------------------------------------------------

_S = TypeVar("_S", bound=Select[Any])


def tenant_search(stmt: _S, parent_or_column: Any, tenant: Any) -> _S:
    """``stmt`` with ``WHERE tenant_column = :tenant`` added, the tenant a bound
    parameter of the column's type: the per-tenant top-k
    (``tenant_search(select(docs).order_by(docs.c.e.l2_distance(q)).limit(10), docs, 7)``).

    ``parent_or_column`` is the LIST-partitioned parent Table (its partition key
    column is used), an ORM class mapped to it, or the tenant column itself. With the
    key fixed, PostgreSQL scans only that tenant's partition, and so its own vector
    index (partition pruning: at planning with the value known, or at executor startup
    for a generic plan of a prepared statement, "Subplans Removed" in EXPLAIN);
    ``enable_partition_pruning`` must be on (the default). Check a plan with
    :func:`~vecalchemy.explain_index_usage`.

    Raises :class:`PartitionError` for a Table not LIST-partitioned by a column,
    ``TypeError`` for a tenant not of the column's type (or ``None``), a ``stmt`` that
    is not a select and a ``parent_or_column`` that is none of the above.
    """
    if not isinstance(stmt, Select):
        raise TypeError(
            f"stmt must be a select() (the top-k query), got {type(stmt).__name__} {stmt!r}"
        )
    target = parent_or_column
    if not isinstance(target, Table) and isinstance(getattr(target, "__table__", None), Table):
        target = target.__table__
    column: Any
    if isinstance(target, Table):
        column = _tenant_column(target)
    else:
        clause = getattr(target, "__clause_element__", None)
        column = clause() if clause is not None else target
        if not isinstance(column, ColumnElement):
            raise TypeError(
                "parent_or_column must be a LIST-partitioned Table, an ORM class mapped "
                f"to one, or its tenant column, got {type(parent_or_column).__name__}"
            )
    _check_tenant(column, tenant)
    return stmt.where(column == tenant)
