"""What the server says a vector index is: reflection and the canonical form of a declaration.

Autogenerate compares database-canonical with database-canonical: the declared index is
created on an empty temporary stand-in of its table inside a SAVEPOINT that is rolled
back, and both it and the existing index are read back with the same catalog query
(``pg_get_indexdef``, ``pg_get_expr``, ``pg_opclass``, ``pg_class.reloptions``). So a
default operator class omitted by ``pg_get_indexdef``, casts, parentheses and the
spelling of a WHERE clause can never cause a spurious difference; option values (strings
in ``reloptions``) are compared as ints with the defaults filled in.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Column, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import visitors

from vecalchemy import sqltext
from vecalchemy.facts import INDEX_METHODS, INDEX_OPTIONS
from vecalchemy.indexes import VectorIndexSpec

from .ddl import create_index_sql

__all__ = [
    "ReflectedVectorIndex",
    "reflect_vector_indexes",
    "canonical_forms",
    "attached_indexes",
    "is_partitioned_index",
    "Partitioning",
    "partitioning",
]


@dataclass(frozen=True)
class ReflectedVectorIndex:
    """A vector index as the catalog shows it.

    ``key`` is ``pg_get_indexdef(index, 1, true)`` (a column name or an expression),
    ``column`` the column name when the key is a plain column, ``opclass`` the operator
    class (also when it is the default), ``options`` the WITH options given explicitly
    (ints), ``where`` the predicate (``pg_get_expr``) or ``None``.
    """

    name: str
    method: str
    key: str
    column: str | None
    opclass: str
    options: Mapping[str, int] = field(default_factory=dict)
    where: str | None = None

    def signature(self) -> tuple[Any, ...]:
        """What must be equal for two indexes to be the same; unspecified options are
        their defaults (pgvector src/hnsw.c, src/ivfflat.c)."""
        defaults = {k: v[0] for k, v in INDEX_OPTIONS[self.method].items()}
        options = {**defaults, **self.options}
        return (self.method, self.key, self.opclass, tuple(sorted(options.items())), self.where)


_REFLECT = (
    "SELECT i.relname, am.amname, pg_get_indexdef(x.indexrelid, 1, true),"
    " CASE WHEN x.indkey[0] <> 0 THEN a.attname END,"
    " oc.opcname, i.reloptions, pg_get_expr(x.indpred, x.indrelid, true)"
    " FROM pg_index x"
    " JOIN pg_class i ON i.oid = x.indexrelid"
    " JOIN pg_am am ON am.oid = i.relam"
    " JOIN pg_opclass oc ON oc.oid = x.indclass[0]"
    " LEFT JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0]"
    " WHERE am.amname = ANY(:methods) AND x.indrelid = {relid}"
    " ORDER BY i.relname"
)
_BY_NAME = text(
    _REFLECT.format(
        relid="(SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = coalesce(:schema, current_schema()) AND c.relname = :table)"
    )
)
_TEMP = text(
    _REFLECT.format(
        relid="(SELECT c.oid FROM pg_class c"
        " WHERE c.relnamespace = pg_my_temp_schema() AND c.relname = :table)"
    )
)


def _options(reloptions: Iterable[str] | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in reloptions or ():
        name, _, value = item.partition("=")
        out[name] = int(value) if value.lstrip("-").isdigit() else value  # type: ignore[assignment]
    return out


def _rows(conn: Connection, query: Any, params: dict[str, Any]) -> dict[str, ReflectedVectorIndex]:
    return {
        row[0]: ReflectedVectorIndex(
            name=row[0],
            method=row[1],
            key=row[2],
            column=row[3],
            opclass=row[4],
            options=_options(row[5]),
            where=row[6],
        )
        for row in conn.execute(query, {**params, "methods": list(INDEX_METHODS)})
    }


def reflect_vector_indexes(
    conn: Connection, table: str, schema: str | None
) -> dict[str, ReflectedVectorIndex]:
    """The HNSW/IVFFlat indexes of ``schema.table`` (schema ``None``: the current one)."""
    return _rows(conn, _BY_NAME, {"schema": schema, "table": table})


#: the indexes of a table attached to a partitioned index of its parent
_ATTACHED = text(
    "SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
    " WHERE i.relispartition AND x.indrelid = (SELECT c.oid FROM pg_class c"
    " JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = coalesce(:schema, current_schema()) AND c.relname = :table)"
)

#: relations of these names that are partitions or partitioned tables: schema, name,
#: in the current schema, a partition, the partition key of a partitioned table
_PARTITIONING = text(
    "SELECT n.nspname, c.relname, n.nspname = current_schema(), c.relispartition,"
    " CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END FROM pg_class c"
    " JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE (c.relispartition OR c.relkind = 'p') AND c.relname = ANY(:names)"
)


def attached_indexes(conn: Connection, table: str, schema: str | None) -> set[str]:
    """The indexes of ``schema.table`` that are partitions of a partitioned index of its
    parent (``pg_class.relispartition``): made, replaced and dropped through the parent's
    index only (PostgreSQL: "cannot drop index ... because index ... requires it")."""
    rows = conn.execute(_ATTACHED, {"schema": schema, "table": table})
    return {str(r[0]) for r in rows}


#: whether the index, by its regclass text (found as the server finds it: in its schema,
#: or through the search_path), is the partitioned index of a partitioned table
_PARTITIONED_INDEX = text(
    "SELECT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = to_regclass(:name) AND c.relkind = 'I')"
)


def is_partitioned_index(conn: Connection, name: str, schema: str | None) -> bool:
    """Whether the index ``schema.name`` (``schema`` None: as the search_path finds it)
    is a partitioned table's index (``pg_class.relkind = 'I'``), on which PostgreSQL
    refuses ``DROP INDEX CONCURRENTLY``; False when there is no such index."""
    params = {"name": sqltext.regclass_text(name, schema)}
    return bool(conn.execute(_PARTITIONED_INDEX, params).scalar())


@dataclass(frozen=True)
class Partitioning:
    """What the catalog says of some tables: which are partitions
    (``pg_class.relispartition``: made by ``CREATE TABLE ... PARTITION OF`` or ``ATTACH
    PARTITION``, sub-partitions too), and the partition key of those that are
    partitioned (``pg_get_partkeydef``: ``LIST (tenant_id)``); keyed by ``(schema,
    name)`` as asked (schema ``None``: the current one, as Alembic names the default
    schema)."""

    partitions: frozenset[tuple[str | None, str]]
    keys: Mapping[tuple[str | None, str], str]


def partitioning(conn: Connection, tables: Iterable[tuple[str | None, str]]) -> Partitioning:
    """The :class:`Partitioning` of the ``(schema, name)`` pairs."""
    wanted = set(tables)
    partitions: set[tuple[str | None, str]] = set()
    keys: dict[tuple[str | None, str], str] = {}
    if not wanted:
        return Partitioning(frozenset(), keys)
    rows = conn.execute(_PARTITIONING, {"names": sorted({name for _, name in wanted})})
    for schema, name, current, is_partition, key in rows:
        for found in ((str(schema), str(name)), (None, str(name)) if current else None):
            if found is None or found not in wanted:
                continue
            if is_partition:
                partitions.add(found)
            if key is not None:
                keys[found] = str(key)
    return Partitioning(frozenset(partitions), keys)


def _columns(spec: VectorIndexSpec) -> list[Column[Any]]:
    seen: dict[str, Column[Any]] = {}
    for element in (spec.expression, spec.where):
        if element is None:
            continue
        for node in visitors.iterate(element):
            if isinstance(node, Column) and node.name not in seen:
                seen[node.name] = node
    return list(seen.values())


def canonical_forms(
    conn: Connection, specs: Mapping[str, VectorIndexSpec]
) -> dict[str, ReflectedVectorIndex]:
    """How the server would show each declared index (name -> reflected form).

    Creates each index on an empty temporary table holding the columns it references,
    inside a SAVEPOINT that is rolled back: nothing persists and no data is indexed.
    An index the server refuses to build there (say, a WHERE clause on a type the
    database does not have yet) is left out, with a warning.
    """
    dialect = conn.dialect
    out: dict[str, ReflectedVectorIndex] = {}
    for name, spec in specs.items():
        assert spec.expression is not None
        probe = f"vecalchemy_probe_{uuid.uuid4().hex[:12]}"
        cols = ", ".join(
            f"{sqltext.quote(dialect, c.name)} {c.type.compile(dialect=dialect)}"
            for c in _columns(spec)
        )
        ddl = create_index_sql(
            dialect,
            name=probe + "_ix",
            table=probe,
            schema=None,
            expression=spec.expression,
            method=spec.method,
            opclass=spec.opclass,
            options=spec.options,
            where=spec.where,
        )
        savepoint = conn.begin_nested()
        try:
            conn.execute(sqltext.Statement(f"CREATE TEMPORARY TABLE {probe} ({cols})"))
            conn.execute(sqltext.Statement(ddl))
            (found,) = _rows(conn, _TEMP, {"table": probe}).values()
        except DBAPIError as e:
            warnings.warn(
                f"vecalchemy: cannot compare vector index {name!r} with the database "
                f"(the server refused a stand-in of it: {e.orig}); leaving it as it is",
                stacklevel=2,
            )
            continue
        finally:
            savepoint.rollback()
        out[name] = replace(found, name=name)
    return out
