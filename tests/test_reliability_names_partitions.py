"""Hostile names and values through the partition, tenant, storage and SET LOCAL paths,
on every driver.

As in ``test_reliability_names``: each generated call is either refused with
vecalchemy's clear error before anything is sent, or creates (alters, detaches, drops)
exactly the object it names; the sentinel table is untouched and a statement smuggled
into a name or a partition bound never runs (it would create a table named ``pwned``).
Partition bounds are literals in the DDL (PostgreSQL takes no bind parameters there), so
they are generated from the same fragments as names (quotes, backslashes, ``%``,
``%(x)s``, ``:name``, ``$$``, ``'); DROP TABLE ...``, NUL, multi-byte text) and checked
by routing rows: a row inserted through the parent with the value bound by psycopg must
land in the partition made for it. Parents are made by psycopg's own quoting.
"""

from __future__ import annotations

import datetime
import decimal
import io
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
import vecalchemy_alembic.ops  # noqa: F401  (registers the operations)
import vecalchemy_alembic.storage  # noqa: F401  (registers op.set_vector_storage)
from alembic.migration import MigrationContext
from alembic.operations import Operations
from conftest import MODES
from hypothesis import assume, currently_in_test_context
from hypothesis import strategies as st
from psycopg import sql
from sqlalchemy.engine import Engine
from test_reliability_names import (  # the harness of the names tests
    _TAKEN,
    FRAGMENTS,
    Catalog,
    catalog,
    names,
    online_op,
    run_examples,
    valid,
)

from vecalchemy import HnswIndex, SearchSettingError, Vector, build_vector_index, search_settings
from vecalchemy import connections as vconnections
from vecalchemy.connections import set_local
from vecalchemy.exc import InvalidIdentifierError, PartitionError, UnsafeSQLError
from vecalchemy.indexes.build import partition_index_name
from vecalchemy.partitions import MAXVALUE, MINVALUE, partition_statement
from vecalchemy.storage import set_storage_statement, set_vector_storage
from vecalchemy.tenants import (
    create_tenant_partition,
    detach_tenant_partition,
    drop_tenant_partition,
    tenant_partition_name,
)

__all__ = ["catalog"]  # the fixture, used by name

#: generated calls per test and driver mode (7 modes): DDL-heavy, so fewer than the
#: names tests; the deterministic lists below carry the known-bad fragments every run
EXAMPLES = 8

#: names PostgreSQL holds that break hand-written SQL (control characters, which a
#: ``U&"..."`` escape or the preparer's raw form may write; ``%``; ``:name``; quotes;
#: keywords; multi-byte text at the 63-byte limit), run through every path each run
HOSTILE_NAMES = [
    "t\tab", "a\nb\r", 'q"s %s', "x%(y)s:z\\:", "Ä名🙂", "select", "$$ $q$", "'; --",
    "é" * 31, "MiXeD", "a\x7fb", "%", "U&\"x\"",
]  # fmt: skip


def name_triples() -> list[tuple[str, str, str]]:
    """(table, column, object name) from :data:`HOSTILE_NAMES`, each name once."""
    n = len(HOSTILE_NAMES)
    return [
        (HOSTILE_NAMES[i], HOSTILE_NAMES[(i + 1) % n], HOSTILE_NAMES[(i + 2) % n])
        for i in range(0, n, 3)
    ]


#: the bound values that break hand-written SQL, each tried as a LIST value, a RANGE
#: bound and a tenant
BAD_VALUES = [
    "'", "''", "\\", "\\'", "'\\", "%", "%%", "%s", "%(x)s", ":name", "\\:x", "$$", "$q$",
    "$1", "?", "--", "/*",
    "'); DROP TABLE sentinel; --", "'); CREATE TABLE pwned (); --",
    "E'\\'; CREATE TABLE pwned (); --'", "a\tb\nc", "Ä名🙂", "", " ", "NULL", "DEFAULT",
    "x" * 80, "é" * 40,
]  # fmt: skip

#: bound values as they come: joined fragments (NUL included) and arbitrary text
values = st.one_of(
    st.lists(st.sampled_from(FRAGMENTS), min_size=0, max_size=6).map("".join),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=16),
    st.sampled_from(BAD_VALUES),
)


def require(condition: bool) -> None:
    """``assume`` in a generated example; a deterministic case must meet it."""
    if currently_in_test_context():
        assume(condition)
    else:
        assert condition


def ident(name: str, schema: str | None = None) -> sql.Composable:
    return sql.Identifier(schema, name) if schema else sql.Identifier(name)


def pg_quoted(name: str) -> str:
    """``name`` double-quoted as PostgreSQL reads it (for ``postgresql_partition_by``)."""
    return '"' + name.replace('"', '""') + '"'


def make_parent(
    cat: Catalog, table: str, key: str, key_type: str, strategy: str, schema: str | None = None
) -> None:
    """``CREATE TABLE table (key key_type, e vector(3)) PARTITION BY strategy (key)``."""
    cat.raw.execute(
        sql.SQL("CREATE TABLE {} ({} {}, e vector(3)) PARTITION BY {} ({})").format(
            ident(table, schema),
            sql.Identifier(key),
            sql.SQL(key_type),
            sql.SQL(strategy),
            sql.Identifier(key),
        )
    )


def parent_table(
    table: str,
    key: str,
    key_type: Any = sa.Text,
    strategy: str = "LIST",
    schema: str | None = None,
) -> sa.Table:
    return sa.Table(
        table,
        sa.MetaData(),
        sa.Column(key, key_type),
        sa.Column("e", Vector(3)),
        schema=schema,
        postgresql_partition_by=f"{strategy} ({pg_quoted(key)})",
    )


def partitions_of(cat: Catalog, table: str, schema: str | None = None) -> set[str]:
    """The names of the partitions attached to ``table`` (psycopg's quoting)."""
    regclass = ident(table, schema).as_string(cat.raw)
    rows = cat.raw.execute(
        "SELECT c.relname FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid"
        " WHERE h.inhparent = %s::regclass",
        (regclass,),
    ).fetchall()
    return {r[0] for r in rows}


def routed(cat: Catalog, table: str, key: str, value: Any, schema: str | None = None) -> str:
    """Insert ``value`` (psycopg's literal) through the parent; the partition it landed in
    (no parameters: a ``%`` in a name is not read as a placeholder)."""
    row = cat.raw.execute(
        sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING tableoid::regclass::text").format(
            ident(table, schema), sql.Identifier(key), sql.Literal(value)
        )
    ).fetchone()
    assert row is not None
    return str(row[0])


def regclass_of(cat: Catalog, name: str, schema: str | None = None) -> str:
    """The text ``tableoid::regclass::text`` shows for ``name``."""
    row = cat.raw.execute(
        "SELECT %s::regclass::text", (ident(name, schema).as_string(cat.raw),)
    ).fetchone()
    assert row is not None
    return str(row[0])


def offline_script(
    call: Callable[[Operations], None], named: bool, metadata: sa.MetaData | None = None
) -> str:
    """The SQL ``call`` prints in ``alembic upgrade --sql`` (``target_metadata`` given)."""
    buffer = io.StringIO()
    ctx = MigrationContext.configure(
        dialect_name="postgresql",
        opts={"as_sql": True, "output_buffer": buffer, "target_metadata": metadata},
        dialect_opts={"paramstyle": "named"} if named else {},
    )
    call(Operations(ctx))
    return buffer.getvalue()


# --- partition_statement: names and LIST / RANGE bounds ---------------------------------


def test_partition_statement_list_with_hostile_names_and_values(
    engine: Engine, catalog: Catalog
) -> None:
    def call(table: str, key: str, name: str, items: list[str]) -> None:
        require(valid(table) and valid(key) and not {table, key, name} & _TAKEN)
        require(name != table and key != "e")
        make_parent(catalog, table, key, "text", "LIST")
        parent = parent_table(table, key)
        try:
            before = catalog.relations()
            try:
                stmt = partition_statement(parent, name, values=items)
            except InvalidIdentifierError:
                assert not valid(name)
                return
            except PartitionError as e:
                assert any("\x00" in v for v in items) and "NUL" in str(e)
                return
            assert valid(name) and not any("\x00" in v for v in items)
            with engine.begin() as conn:
                conn.execute(stmt)
            assert catalog.relations() - before == {(name, "r")}
            assert partitions_of(catalog, table) == {name}
            for v in items:
                assert routed(catalog, table, key, v) == regclass_of(catalog, name)
        finally:
            catalog.drop(table)
        catalog.intact()

    run_examples(
        call,
        EXAMPLES,
        table=names,
        key=names,
        name=names,
        items=st.lists(values, min_size=1, max_size=4, unique=True),
    )
    for table, key, name in name_triples():
        call(table, key, name, BAD_VALUES[:3])
    # the known-bad fragments, every one, on a hostile parent
    table, key = "p%(x)s'\"", "k:name\\:$$"
    make_parent(catalog, table, key, "text", "LIST")
    parent = parent_table(table, key)
    try:
        with engine.begin() as conn:
            conn.execute(partition_statement(parent, "part %s ';--", values=BAD_VALUES))
        for v in BAD_VALUES:
            assert routed(catalog, table, key, v) == regclass_of(catalog, "part %s ';--")
        with pytest.raises(PartitionError, match="NUL"):
            partition_statement(parent, "x", values=["a\x00'); CREATE TABLE pwned (); --"])
    finally:
        catalog.drop(table)
    catalog.intact()


@pytest.mark.parametrize(
    ("key_type", "sa_type", "low", "high", "inside", "beyond"),
    [
        ("integer", sa.Integer, -(2**31), 2**31 - 1, -(2**31), 2**31 - 1),
        ("bigint", sa.BigInteger, -(2**63), 2**63 - 1, -(2**63), 2**63 - 1),
        ("smallint", sa.SmallInteger, MINVALUE, 2**15 - 1, -(2**15), 2**15 - 1),
        (
            "date",
            sa.Date,
            datetime.date(1, 1, 1),
            MAXVALUE,
            datetime.date(9999, 12, 31),
            None,
        ),
        (
            "uuid",
            sa.Uuid,
            uuid.UUID(int=0),
            uuid.UUID(int=2**128 - 1),
            uuid.UUID("12345678-1234-5678-1234-567812345678"),
            uuid.UUID(int=2**128 - 1),
        ),
        (
            "text",
            sa.Text,
            "'); DROP TABLE sentinel; --",
            "\\%(x)s:n$$",
            "'); DROP TABLE sentinel; --",  # the lower bound is included
            "\\%(x)s:n$$",
        ),
    ],
    ids=["int4-edges", "int8-edges", "int2-minvalue", "date-maxvalue", "uuid", "text"],
)
def test_partition_statement_range_bounds_at_the_edges(
    engine: Engine,
    catalog: Catalog,
    key_type: str,
    sa_type: Any,
    low: Any,
    high: Any,
    inside: Any,
    beyond: Any,
) -> None:
    """A RANGE partition on a hostile parent and key holds ``inside`` and not
    ``beyond`` (the excluded upper bound); one past an integer type's range is refused
    before anything is sent."""
    table, key, name = 'r"ng%s', "d:ay\\:", "r p%%'"
    make_parent(catalog, table, key, key_type, "RANGE")
    parent = parent_table(table, key, sa_type, "RANGE")
    try:
        with engine.begin() as conn:
            conn.execute(partition_statement(parent, name, range_from=low, range_to=high))
        assert partitions_of(catalog, table) == {name}
        assert routed(catalog, table, key, inside) == regclass_of(catalog, name)
        if beyond is not None:
            with pytest.raises(psycopg.errors.CheckViolation):  # no partition for the row
                routed(catalog, table, key, beyond)
        if isinstance(high, int) and not isinstance(low, bool):
            with pytest.raises(PartitionError, match="out of range"):
                partition_statement(parent, "x", range_from=0, range_to=high + 1)
    finally:
        catalog.drop(table)
    catalog.intact()


def test_partition_statement_schema_names(engine: Engine, catalog: Catalog) -> None:
    def call(schema_suffix: str, name: str) -> None:
        require(name not in _TAKEN and name != "t")
        schema = f"{catalog.schema}_s{schema_suffix}"
        parent = parent_table("t", "k")
        if not valid(schema):
            with pytest.raises(InvalidIdentifierError):
                partition_statement(parent, name, values=["a"], schema=schema)
            return
        catalog.raw.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        try:
            make_parent(catalog, "t", "k", "text", "LIST")
            try:
                stmt = partition_statement(parent, name, values=["a'%s"], schema=schema)
            except InvalidIdentifierError:
                assert not valid(name)
            else:
                assert valid(name)
                with engine.begin() as conn:
                    conn.execute(stmt)
                assert partitions_of(catalog, "t") == {name}
                assert routed(catalog, "t", "k", "a'%s") == regclass_of(catalog, name, schema)
            catalog.intact()
        finally:
            catalog.drop("t")
            catalog.raw.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))

    run_examples(call, EXAMPLES // 2, schema_suffix=names, name=names)
    for suffix, name in zip(HOSTILE_NAMES[::3], HOSTILE_NAMES[1::3], strict=False):
        call(suffix, name)


# --- tenants ---------------------------------------------------------------------------


def test_tenant_partitions_with_hostile_names_and_tenants(
    engine: Engine, catalog: Catalog
) -> None:
    def call(table: str, key: str, tenant: str, concurrently: bool) -> None:
        require(valid(table) and valid(key) and not {table, key} & _TAKEN and key != "e")
        make_parent(catalog, table, key, "text", "LIST")
        parent = parent_table(table, key)
        try:
            try:
                name = tenant_partition_name(parent, tenant)
            except PartitionError as e:
                assert "\x00" in tenant and "NUL" in str(e)
                with pytest.raises(PartitionError):
                    create_tenant_partition(engine, parent, tenant)
                return
            require(name not in _TAKEN and name != table)
            assert len(name.encode()) <= 63 and valid(name)
            if len(f"{table}_{tenant}".encode()) <= 63:
                assert name == f"{table}_{tenant}"
            made = create_tenant_partition(engine, parent, tenant)
            assert made.name == name and made.schema == catalog.schema
            assert partitions_of(catalog, table) == {name}
            assert routed(catalog, table, key, tenant) == regclass_of(catalog, name)
            detach_tenant_partition(engine, parent, tenant, concurrently=concurrently)
            assert partitions_of(catalog, table) == set()
            assert (name, "r") in catalog.relations()
            drop_tenant_partition(engine, parent, tenant, detached=True)
            assert (name, "r") not in catalog.relations()
        finally:
            catalog.drop(table)
        catalog.intact()

    run_examples(
        call,
        EXAMPLES,
        table=st.one_of(names, st.text(alphabet="é%x\"'", min_size=30, max_size=60)),
        key=names,
        tenant=values,
        concurrently=st.booleans(),
    )
    for i, (table, key, tenant) in enumerate(name_triples()):
        call(table, key, tenant, i % 2 == 0)
    # every known-bad tenant on one hostile parent, attached and dropped while attached
    table, key = "t%(x)s:n'\"", "ten ant\\:"
    make_parent(catalog, table, key, "text", "LIST")
    parent = parent_table(table, key)
    try:
        for tenant in BAD_VALUES:
            made = create_tenant_partition(engine, parent, tenant)
            assert routed(catalog, table, key, tenant) == regclass_of(catalog, made.name)
        assert len(partitions_of(catalog, table)) == len(BAD_VALUES)
        for tenant in BAD_VALUES:
            drop_tenant_partition(engine, parent, tenant)
        assert partitions_of(catalog, table) == set()
    finally:
        catalog.drop(table)
    catalog.intact()


# --- storage ---------------------------------------------------------------------------


def attstorage(cat: Catalog, table: str, column: str, schema: str | None = None) -> str:
    row = cat.raw.execute(
        "SELECT attstorage::text FROM pg_attribute WHERE attrelid = %s::regclass AND attname = %s",
        (ident(table, schema).as_string(cat.raw), column),
    ).fetchone()
    assert row is not None
    return str(row[0])


def test_set_vector_storage_and_storage_option(engine: Engine, catalog: Catalog) -> None:
    def call(table: str, column: str, create_all: bool) -> None:
        require(valid(table) and valid(column) and not {table, column} & _TAKEN)
        require(column != "id")
        t = sa.Table(
            table,
            sa.MetaData(),
            sa.Column("id", sa.Integer),
            sa.Column(column, Vector(3, storage="plain") if create_all else Vector(3)),
        )
        try:
            if create_all:
                t.metadata.create_all(engine)
            else:
                catalog.table(table, column)
                with engine.begin() as conn:
                    assert set_vector_storage(conn, t.c[column], "plain") == "external"
            assert attstorage(catalog, table, column) == "p"
            assert {n for n, k in catalog.relations() if k == "r"} == {"sentinel", table}
        finally:
            catalog.drop(table)
        catalog.intact()

    run_examples(call, EXAMPLES, table=names, column=names, create_all=st.booleans())
    for i, (table, column, _) in enumerate(name_triples()):
        call(table, column, i % 2 == 0)


@pytest.mark.parametrize(
    "mode_text", ["plain; DROP TABLE sentinel", "PLAIN'", "pl%sain", "", "plain\x00", " plain"]
)
def test_storage_modes_are_refused_unless_known(mode_text: str) -> None:
    with pytest.raises(ValueError, match="storage must be one of"):
        set_storage_statement(sa.dialects.postgresql.dialect(), "t", "e", mode_text)
    with pytest.raises(ValueError, match="storage must be one of"):
        Vector(3, storage=mode_text)
    with pytest.raises(ValueError, match="storage must be one of"):
        offline_script(lambda op: op.set_vector_storage("t", "e", mode_text), True)


def test_alembic_set_vector_storage_online(engine: Engine, catalog: Catalog) -> None:
    def call(table: str, column: str, schema_suffix: str | None) -> None:
        require(valid(table) and valid(column) and not {table, column} & _TAKEN)
        schema = None if schema_suffix is None else f"{catalog.schema}_s{schema_suffix}"
        if schema is not None and not valid(schema):
            with pytest.raises(InvalidIdentifierError):
                online_op(
                    engine, lambda op: op.set_vector_storage(table, column, "plain", schema=schema)
                )
            return
        if schema is not None:
            catalog.raw.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        catalog.table(table, column, schema=schema)
        try:
            online_op(
                engine, lambda op: op.set_vector_storage(table, column, "PLAIN", schema=schema)
            )
            assert attstorage(catalog, table, column, schema) == "p"
        finally:
            catalog.drop(table, schema)
            if schema is not None:
                catalog.raw.execute(
                    sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema))
                )
        catalog.intact()

    run_examples(call, EXAMPLES, table=names, column=names, schema_suffix=st.none() | names)
    for table, column, suffix in name_triples():
        call(table, column, suffix)


@pytest.mark.parametrize("named", [True, False], ids=["named", "dialect-paramstyle"])
def test_alembic_set_vector_storage_offline(catalog: Catalog, named: bool) -> None:
    def call(table: str, column: str) -> None:
        require(not {table, column} & _TAKEN)
        try:
            script = offline_script(lambda op: op.set_vector_storage(table, column, "main"), named)
        except InvalidIdentifierError:
            assert not (valid(table) and valid(column))
            return
        assert valid(table) and valid(column)
        catalog.table(table, column)
        try:
            catalog.raw.execute(script.encode())  # as psql would run the printed script
            assert attstorage(catalog, table, column) == "m"
        finally:
            catalog.drop(table)
        catalog.intact()

    run_examples(call, EXAMPLES * 3, table=names, column=names)
    for table, column, _ in name_triples():
        call(table, column)


# --- Alembic partitions ------------------------------------------------------------------


def test_alembic_create_and_drop_partition_online(engine: Engine, catalog: Catalog) -> None:
    def call(table: str, key: str, name: str, items: list[str]) -> None:
        require(valid(table) and valid(key) and not {table, key, name} & _TAKEN)
        require(name != table and key != "e")
        make_parent(catalog, table, key, "text", "LIST")
        try:
            before = catalog.relations()
            try:
                online_op(engine, lambda op: op.create_partition(table, name, values=items))
            except InvalidIdentifierError:
                assert not valid(name)
                assert catalog.relations() == before
                return
            except PartitionError as e:
                assert any("\x00" in v for v in items) and "NUL" in str(e)
                assert catalog.relations() == before
                return
            assert valid(name) and not any("\x00" in v for v in items)
            assert partitions_of(catalog, table) == {name}
            for v in items:
                assert routed(catalog, table, key, v) == regclass_of(catalog, name)
            online_op(engine, lambda op: op.drop_partition(table, name, values=items))
            assert catalog.relations() == before
        finally:
            catalog.drop(table)
        catalog.intact()

    run_examples(
        call,
        EXAMPLES,
        table=names,
        key=names,
        name=names,
        items=st.lists(values, min_size=1, max_size=3, unique=True),
    )
    for table, key, name in name_triples():
        call(table, key, name, BAD_VALUES[3:6])


@pytest.mark.parametrize("named", [True, False], ids=["named", "dialect-paramstyle"])
def test_alembic_partition_offline_sql_creates_exactly_the_named_partition(
    catalog: Catalog, named: bool
) -> None:
    def call(table: str, key: str, name: str, items: list[str]) -> None:
        require(valid(table) and valid(key) and not {table, key, name} & _TAKEN)
        require(name != table and key != "e")
        metadata = parent_table(table, key).metadata
        try:
            script = offline_script(
                lambda op: op.create_partition(table, name, values=items), named, metadata
            )
        except InvalidIdentifierError:
            assert not valid(name)
            return
        except PartitionError as e:
            assert any("\x00" in v for v in items) and "NUL" in str(e)
            return
        make_parent(catalog, table, key, "text", "LIST")
        try:
            catalog.raw.execute(script.encode())
            assert partitions_of(catalog, table) == {name}
            for v in items:
                assert routed(catalog, table, key, v) == regclass_of(catalog, name)
            drop = offline_script(lambda op: op.drop_partition(table, name), named, metadata)
            catalog.raw.execute(drop.encode())
            assert partitions_of(catalog, table) == set()
            assert (name, "r") not in catalog.relations()
        finally:
            catalog.drop(table)
        catalog.intact()

    run_examples(
        call,
        EXAMPLES * 3,
        table=names,
        key=names,
        name=names,
        items=st.lists(values, min_size=1, max_size=3, unique=True),
    )
    for table, key, name in name_triples():
        call(table, key, name, BAD_VALUES[6:9])


# --- CONCURRENTLY index builds on a hostile-named partitioned table -----------------------


def index_names(cat: Catalog) -> dict[str, bool]:
    """Every index of the test's schema, by name: whether it is valid."""
    rows = cat.raw.execute(
        "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c"
        " ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s",
        (cat.schema,),
    ).fetchall()
    return {r[0]: bool(r[1]) for r in rows}


def test_concurrent_index_on_a_hostile_partitioned_table(engine: Engine, catalog: Catalog) -> None:
    def call(table: str, key: str, index: str, tenants: list[str], alembic: bool) -> None:
        require(valid(table) and valid(key) and not {table, key, index} & _TAKEN)
        require(key != "e" and index != table)
        make_parent(catalog, table, key, "text", "LIST")
        parent = parent_table(table, key)
        try:
            made = []
            for tenant in tenants:
                try:
                    made.append(create_tenant_partition(engine, parent, tenant).name)
                except PartitionError:
                    assert "\x00" in tenant
            require(index not in made)
            try:
                if alembic:
                    online_op(
                        engine,
                        lambda op: op.create_vector_index(
                            index, table, "e", metric="l2", concurrently=True
                        ),
                    )
                else:
                    ix = HnswIndex(index, parent.c.e, metric="l2", concurrently=True)
                    build_vector_index(engine, ix, progress=False)
            except InvalidIdentifierError:
                assert not valid(index)
                assert index_names(catalog) == {}
                return
            assert valid(index)
            want = {index} | {partition_index_name(index, p) for p in made}
            assert index_names(catalog) == dict.fromkeys(want, True)
            online_op(engine, lambda op: op.drop_vector_index(index, table, concurrently=True))
            assert index_names(catalog) == {}
        finally:
            catalog.drop(table)
        catalog.intact()

    run_examples(
        call,
        EXAMPLES // 2,
        table=names,
        key=names,
        index=names,
        tenants=st.lists(values, min_size=1, max_size=3, unique=True),
        alembic=st.booleans(),
    )
    for i, (table, key, index) in enumerate(name_triples()):
        call(table, key, index, [HOSTILE_NAMES[i - 3], "\\'%s"], i % 2 == 0)


# --- SET LOCAL: search_settings(prefer_index=...) and set_local(statements=True) ----------

#: a placeholder setting plain PostgreSQL takes (any ``prefix.name``)
PLACEHOLDER = "vecalchemy_probe.value"


@pytest.mark.parametrize("statements", [True, False], ids=["set-local", "set-config"])
def test_set_local_values_are_applied_exactly_or_refused(
    engine: Engine, catalog: Catalog, statements: bool
) -> None:
    def call(value: Any) -> None:
        with engine.connect() as conn:
            with conn.begin():
                try:
                    set_local(conn, {PLACEHOLDER: value}, statements=statements)
                except UnsafeSQLError as e:
                    assert not isinstance(value, str) or any(
                        c == "\\" or ord(c) < 32 or c == "\x7f" for c in value
                    )
                    assert PLACEHOLDER in str(e)
                else:
                    got = conn.execute(
                        sa.select(sa.func.current_setting(PLACEHOLDER))
                    ).scalar_one()
                    assert got == value
            with conn.begin():  # transaction-local: gone with its transaction
                got = conn.execute(
                    sa.select(sa.func.current_setting(PLACEHOLDER, True))
                ).scalar_one()
                assert got in (None, "")
        catalog.intact()

    run_examples(
        call,
        EXAMPLES * 4,
        value=st.one_of(
            values, st.integers(), st.none(), st.sampled_from(["100; RESET ALL", "a' ; '"])
        ),
    )
    for value in BAD_VALUES:  # every known-bad fragment, in one transaction each
        call(value)


#: GUC names: the check's refusals, keywords of PostgreSQL's grammar as parts
guc_names = st.one_of(
    names,
    st.builds(
        "{}.{}".format,
        st.sampled_from(["vecalchemy_probe", "select", "user", "x"]),
        st.sampled_from(["select", "user", "verbose", "left", "all", "tablesample", "v_1"]),
    ),
)


def test_set_local_names_are_the_same_setting_in_both_forms(
    engine: Engine, catalog: Catalog
) -> None:
    """A GUC name ``set_local`` accepts names the same setting whether sent as
    ``set_config()`` or as a ``SET LOCAL`` statement (a part that is a keyword of
    PostgreSQL's grammar, ``x.select``, is quoted there); other names are refused
    before anything is sent."""

    def outcome(name: str, statements: bool) -> str | None:
        with engine.connect() as conn, conn.begin():
            try:
                set_local(conn, {name: "v'%s"}, statements=statements)
            except sa.exc.DBAPIError:
                return None
            got = conn.execute(sa.select(sa.func.current_setting(name))).scalar_one()
            return str(got)

    def call(name: str) -> None:
        try:
            by_statement = outcome(name, True)
        except UnsafeSQLError as e:
            assert "GUC name" in str(e)
            with pytest.raises(UnsafeSQLError):
                outcome(name, False)
            return
        assert by_statement == outcome(name, False)
        if "." in name:  # a placeholder of a custom prefix: taken exactly
            assert by_statement == "v'%s"
        catalog.intact()

    run_examples(call, EXAMPLES * 2, name=guc_names)
    for name in ["vecalchemy_probe.select", "user.user", "x.verbose", "x.tablesample"]:
        call(name)  # once a syntax error as a SET LOCAL statement


#: prefer_index values: bools and None apply, anything else is refused
PREFER = [True, False, None, "off", "true; RESET ALL", 1, 0, "'", "%(x)s", 1.0]


def test_prefer_index_through_set_local_statements(
    engine: Engine, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``search_settings(prefer_index=...)`` with SET LOCAL statements forced (the Citus
    path): a bool sets ``enable_seqscan`` exactly, anything else is refused first."""
    monkeypatch.setattr(vconnections, "SET_LOCAL_STATEMENTS", True)
    with engine.connect() as conn:
        with conn.begin():
            default = conn.execute(sa.text("SHOW enable_seqscan")).scalar_one()
        for prefer in PREFER:
            with conn.begin():
                if prefer is None or isinstance(prefer, bool):
                    with search_settings(conn, prefer_index=prefer, ef_search=41):
                        seen = conn.execute(sa.text("SHOW enable_seqscan")).scalar_one()
                        ef = conn.execute(sa.text("SHOW hnsw.ef_search")).scalar_one()
                        assert seen == ("off" if prefer else default) and ef == "41"
                else:
                    with (
                        pytest.raises(SearchSettingError, match="prefer_index"),
                        search_settings(conn, prefer_index=prefer),
                    ):
                        pass
            with conn.begin():
                assert conn.execute(sa.text("SHOW enable_seqscan")).scalar_one() == default
    catalog.intact()


# --- everything in a hostile schema ---------------------------------------------------------


#: hostile schema suffixes, one per driver mode in turn (each driver sees one, every
#: suffix is seen by some driver each run)
SCHEMA_SUFFIXES = ["\t%s", 'q"s :x', "Ä名 $$", "e\\x"]


def test_partitioned_table_in_a_hostile_schema(
    engine: Engine, catalog: Catalog, mode: str
) -> None:
    """Partitions (Alembic and tenants), a CONCURRENTLY index built partition by
    partition, and a storage mode, on a parent in a schema with a hostile name."""
    suffix = SCHEMA_SUFFIXES[MODES.index(mode) % len(SCHEMA_SUFFIXES)]
    schema = f"{catalog.schema}_s{suffix}"
    table, key = "p\ta%", "k'"
    catalog.raw.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        make_parent(catalog, table, key, "text", "LIST", schema)
        parent = parent_table(table, key, schema=schema)
        online_op(
            engine, lambda op: op.create_partition(table, "a\nb", values=["a'"], schema=schema)
        )
        made = create_tenant_partition(engine, parent, "b%s")
        assert made.schema == schema
        assert partitions_of(catalog, table, schema) == {"a\nb", made.name}
        assert routed(catalog, table, key, "a'", schema) == regclass_of(catalog, "a\nb", schema)
        assert routed(catalog, table, key, "b%s", schema) == regclass_of(
            catalog, made.name, schema
        )
        online_op(
            engine,
            lambda op: op.create_vector_index(
                "ix\t1", table, "e", metric="l2", concurrently=True, schema=schema
            ),
        )
        build_vector_index(
            engine,
            HnswIndex("ix%2", parent.c.e, metric="cosine", concurrently=True),
            progress=False,
        )
        want = {
            f"ix{n}": [partition_index_name(f"ix{n}", p) for p in ("a\nb", made.name)]
            for n in ("\t1", "%2")
        }
        rows = catalog.raw.execute(
            "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c"
            " ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s",
            (schema,),
        ).fetchall()
        assert dict(rows) == dict.fromkeys([*want, *(c for v in want.values() for c in v)], True)
        online_op(engine, lambda op: op.set_vector_storage(table, "e", "plain", schema=schema))
        assert attstorage(catalog, table, "e", schema) == "p"
        assert attstorage(catalog, "a\nb", "e", schema) == "p"  # ALTER TABLE recurses
        online_op(engine, lambda op: op.drop_partition(table, "a\nb", schema=schema))
        detach_tenant_partition(engine, parent, "b%s", concurrently=True)
        drop_tenant_partition(engine, parent, "b%s", detached=True)
        assert partitions_of(catalog, table, schema) == set()
        catalog.intact()
    finally:
        catalog.raw.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


# once written bare by sqltext.quote (SQLAlchemy's legal-characters pattern ends in '$',
# which matches before a final newline): the server read 'a\n' as a
@pytest.mark.parametrize("name", ["a\n", "select\n"], ids=repr)
def test_partition_name_ending_in_a_newline(catalog: Catalog, name: str) -> None:
    make_parent(catalog, "p", "k", "text", "LIST")
    try:
        stmt = partition_statement(parent_table("p", "k"), name, values=["x"])
        catalog.raw.execute(stmt.sql.encode())  # exact text: no driver in the way
        assert partitions_of(catalog, "p") == {name}
    finally:
        catalog.drop("p")
    catalog.intact()


@pytest.mark.parametrize(
    ("sa_type", "value", "message"),
    [
        (sa.Numeric, decimal.Decimal("sNaN"), "finite"),  # once a bare ValueError
        (sa.Numeric, decimal.Decimal("-Infinity"), "finite"),
        (sa.Float, float("inf"), "finite"),
        (sa.Integer, 2**31, "out of range"),
        (sa.SmallInteger, -(2**15) - 1, "out of range"),
        (sa.String(2), "a'b", "at most 2"),
        (sa.Text, "a\x00'); CREATE TABLE pwned (); --", "NUL"),
        # a timestamp literal drops the zone: once a bound other than the value's
        (sa.DateTime, datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc), "time zone"),
    ],
    ids=repr,
)
def test_partition_bounds_postgresql_cannot_hold_are_refused(
    sa_type: Any, value: Any, message: str
) -> None:
    parent = sa.Table(
        "p", sa.MetaData(), sa.Column("k", sa_type), postgresql_partition_by="LIST (k)"
    )
    with pytest.raises(PartitionError, match=message):
        partition_statement(parent, "x", values=[value])
    with pytest.raises(PartitionError, match=message):
        offline_script(
            lambda op: op.create_partition("p", "x", values=[value]), True, parent.metadata
        )


@pytest.mark.parametrize("named", [True, False], ids=["named", "dialect-paramstyle"])
def test_alembic_offline_concurrent_index_on_a_hostile_partitioned_table(
    catalog: Catalog, named: bool
) -> None:
    """Offline, ``create_vector_index(concurrently=True)`` on a table ``target_metadata``
    declares partitioned prints a plain ``CREATE INDEX`` with a comment; the script,
    run as psql would, makes exactly the named index on the parent, valid."""

    def check(table: str, key: str, index: str) -> None:
        metadata = parent_table(table, key).metadata
        script = offline_script(
            lambda op: op.create_vector_index(
                index, table, "e", opclass="vector_l2_ops", concurrently=True
            ),
            named,
            metadata,
        )
        creates = [line for line in script.splitlines() if line.startswith("CREATE INDEX")]
        assert creates and not any("CONCURRENTLY" in line for line in creates)
        make_parent(catalog, table, key, "text", "LIST")
        try:
            catalog.raw.execute(
                sql.SQL("CREATE TABLE part PARTITION OF {} DEFAULT").format(sql.Identifier(table))
            )
            catalog.raw.execute(script.encode())
            got = index_names(catalog)
            assert got.get(index) is True and len(got) == 2  # the parent's, the partition's
            assert all(got.values())
            offline_drop = offline_script(
                lambda op: op.drop_vector_index(index, table, concurrently=True), named, metadata
            )
            catalog.raw.execute(offline_drop.encode())
            assert index_names(catalog) == {}
        finally:
            catalog.drop(table)
        catalog.intact()

    for table, key, index in name_triples():
        check(table, key, index)
