"""Hostile names, WHERE text and setting values through every path where vecalchemy
writes DDL, SET or COPY, on every driver.

Each generated call is either refused with vecalchemy's clear error before anything is
sent, or creates exactly the object it names; a sentinel table and the schema's catalog
are otherwise untouched, and a statement smuggled into a name or a WHERE clause never
runs (it would create a table named ``pwned``). Names are generated from the fragments
that break hand-written SQL (``%``, ``%s``, ``:name``, ``\\:``, quotes, ``;``, comments,
dollar quotes, NUL, multi-byte text around PostgreSQL's 63-byte limit) and from
arbitrary text. The tables the calls need are made by psycopg's own quoting
(``psycopg.sql.Identifier``), a path independent of vecalchemy's.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
import sqlalchemy as sa
import vecalchemy_alembic.ops  # noqa: F401  (registers the operations)
from alembic.migration import MigrationContext
from alembic.operations import Operations
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from psycopg import sql
from sqlalchemy.engine import Engine

from vecalchemy import (
    HnswIndex,
    IndexDefinitionError,
    IvfflatIndex,
    SearchSettingError,
    SearchSettings,
    Vector,
    apply_search_settings,
    build_vector_index,
    copy_rows,
    search_settings,
)
from vecalchemy.exc import InvalidIdentifierError, UnsafeSQLError
from vecalchemy.facts import MAX_IDENTIFIER_BYTES, OPCLASSES, SEARCH_SETTINGS

#: generated calls per test and driver mode: 7 modes x (6 tests x 50 + 2 x 40) > 2 000
EXAMPLES = 50

FRAGMENTS = [
    "%", "%%", "%s", "%(x)s", "%d", ":x", ":1", "\\:", "::", "\\", '"', '""', "'", "''",
    ";", "--", "/*", "*/", "$1", "$$", "$q$", "?", "`", "(", ")", ",", ".", " ", "\t",
    "\n", "A", "x", "_", "0", "Ä", "名", "🙂", "select", "user", "DROP TABLE sentinel",
    "CREATE TABLE pwned ()", "\x00",
]  # fmt: skip

#: names as they come: joined fragments, arbitrary text, text near the 63-byte limit
names = st.one_of(
    st.lists(st.sampled_from(FRAGMENTS), min_size=0, max_size=8).map("".join),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=24),
    st.text(alphabet="é%x\"'", min_size=20, max_size=40),
)


def valid(name: str) -> bool:
    """Whether PostgreSQL holds ``name`` exactly (the rule vecalchemy must apply)."""
    return bool(name) and "\x00" not in name and len(name.encode()) <= MAX_IDENTIFIER_BYTES


#: names the harness itself uses
_TAKEN = {"sentinel", "pwned", "id"}


def run_examples(test: Callable[..., None], minimum: int, **strategies: Any) -> int:
    """Run ``test`` over ``strategies`` (deterministic, so CI sees the same calls each
    run) and return how many examples it ran to the end; at least ``minimum`` must
    have (examples the harness cannot set up are discarded with ``assume``)."""
    calls = 0

    @settings(
        max_examples=minimum,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(**strategies)
    def body(**kw: Any) -> None:
        nonlocal calls
        test(**kw)
        calls += 1

    body()
    assert calls >= minimum
    return calls


class Catalog:
    """The test schema seen through an independent psycopg connection."""

    def __init__(self, raw: psycopg.Connection, schema: str) -> None:
        self.raw = raw
        self.schema = schema
        raw.execute("CREATE TABLE sentinel (id int)")
        raw.execute("INSERT INTO sentinel VALUES (1), (2), (3)")

    def relations(self) -> set[tuple[str, str]]:
        """(name, relkind) of every relation in every schema this test made."""
        rows = self.raw.execute(
            "SELECT c.relname, c.relkind::text FROM pg_class c JOIN pg_namespace n"
            " ON n.oid = c.relnamespace WHERE n.nspname = %s OR n.nspname LIKE %s",
            (self.schema, f"{self.schema}\\_s%"),
        ).fetchall()
        return {(r[0], r[1]) for r in rows}

    def indexes(self) -> set[str]:
        return {name for name, kind in self.relations() if kind == "i"}

    def intact(self) -> None:
        """The sentinel holds its rows and nothing smuggled ran."""
        assert self.raw.execute("SELECT count(*) FROM sentinel").fetchone() == (3,)
        assert self.raw.execute("SELECT to_regclass('pwned')").fetchone() == (None,)
        assert ("pwned", "r") not in self.relations()

    def table(self, name: str, column: str, schema: str | None = None) -> None:
        """``CREATE TABLE name (id int, column vector(3))`` by psycopg's quoting."""
        target = sql.Identifier(schema, name) if schema else sql.Identifier(name)
        self.raw.execute(
            sql.SQL("CREATE TABLE {} (id int, {} vector(3))").format(
                target, sql.Identifier(column)
            )
        )

    def drop(self, name: str, schema: str | None = None) -> None:
        target = sql.Identifier(schema, name) if schema else sql.Identifier(name)
        self.raw.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(target))


@pytest.fixture
def catalog(raw_conn: psycopg.Connection, vector_schema: str) -> Iterator[Catalog]:
    yield Catalog(raw_conn, vector_schema)


def online_op(engine: Engine, call: Callable[[Operations], None]) -> None:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn)
        with ctx.begin_transaction():
            call(Operations(ctx))
        conn.commit()


def offline_sql(call: Callable[[Operations], None], named: bool) -> str:
    """The SQL ``call`` prints in ``alembic upgrade --sql``, with the paramstyle of
    Alembic's template (``named``) or the dialect's own."""
    buffer = io.StringIO()
    ctx = MigrationContext.configure(
        dialect_name="postgresql",
        opts={"as_sql": True, "output_buffer": buffer},
        dialect_opts={"paramstyle": "named"} if named else {},
    )
    call(Operations(ctx))
    return buffer.getvalue()


def items_table(name: str, column: str) -> sa.Table:
    return sa.Table(name, sa.MetaData(), sa.Column("id", sa.Integer), sa.Column(column, Vector(3)))


# --- index, table and column names -----------------------------------------------------


def test_alembic_create_and_drop_vector_index_online(engine: Engine, catalog: Catalog) -> None:
    def call(index: str, table: str, column: str, concurrently: bool) -> None:
        assume(not {table, column} & _TAKEN and index != table)  # one namespace for both
        names_ok = valid(table) and valid(column)
        if names_ok:
            catalog.table(table, column)
        before = catalog.relations()
        try:
            online_op(
                engine,
                lambda op: op.create_vector_index(
                    index, table, column, metric="cosine", concurrently=concurrently
                ),
            )
        except InvalidIdentifierError:
            assert not (valid(index) and names_ok)
            assert catalog.relations() == before
        else:
            assert valid(index) and names_ok
            assert catalog.indexes() == {index}
            online_op(engine, lambda op: op.drop_vector_index(index, concurrently=concurrently))
            assert catalog.indexes() == set()
        finally:
            if names_ok:
                catalog.drop(table)
        catalog.intact()

    run_examples(
        call, EXAMPLES, index=names, table=names, column=names, concurrently=st.booleans()
    )


@pytest.mark.parametrize("named", [True, False], ids=["named", "dialect-paramstyle"])
def test_alembic_offline_sql_creates_exactly_the_named_index(
    catalog: Catalog, named: bool
) -> None:

    def call(index: str, table: str, column: str) -> None:
        assume(not {table, column} & _TAKEN and index != table)
        names_ok = valid(table) and valid(column)
        try:
            script = offline_sql(
                lambda op: op.create_vector_index(
                    index, table, column, opclass="vector_l2_ops", m=8
                ),
                named,
            )
        except InvalidIdentifierError:
            assert not (valid(index) and names_ok)
            return
        assert valid(index) and names_ok
        catalog.table(table, column)
        try:
            catalog.raw.execute(script.encode())  # as psql would run the printed script
            assert catalog.indexes() == {index}
            drop = offline_sql(lambda op: op.drop_vector_index(index), named)
            catalog.raw.execute(drop.encode())
            assert catalog.indexes() == set()
        finally:
            catalog.drop(table)
        catalog.intact()

    run_examples(call, EXAMPLES, index=names, table=names, column=names)


def test_alembic_schema_names(engine: Engine, catalog: Catalog) -> None:
    def call(schema_suffix: str, index: str) -> None:
        assume(index != "t")
        schema = f"{catalog.schema}_s{schema_suffix}"
        if not valid(schema):
            with pytest.raises(InvalidIdentifierError):
                online_op(
                    engine,
                    lambda op: op.create_vector_index(index, "t", "e", schema=schema),
                )
            return
        catalog.raw.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        try:
            catalog.table("t", "e", schema=schema)
            try:
                online_op(
                    engine,
                    lambda op: op.create_vector_index(
                        index, "t", "e", opclass="vector_ip_ops", schema=schema
                    ),
                )
            except InvalidIdentifierError:
                assert not valid(index)
            else:
                assert valid(index)
                assert (index, "i") in catalog.relations()
                online_op(engine, lambda op: op.drop_vector_index(index, schema=schema))
                assert (index, "i") not in catalog.relations()
            catalog.intact()
        finally:
            catalog.raw.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))

    run_examples(call, EXAMPLES // 2, schema_suffix=names, index=names)


def test_declared_indexes_create_and_build(engine: Engine, catalog: Catalog) -> None:
    def call(index: str, table: str, column: str, method: str, concurrently: bool) -> None:
        # tables are SQLAlchemy's own DDL; the index name is ours to check
        assume(valid(table) and valid(column) and not {table, column} & _TAKEN)
        assume(index != table)
        catalog.table(table, column)
        t = items_table(table, column)
        cls = HnswIndex if method == "hnsw" else IvfflatIndex
        try:
            ix = cls(index, t.c[column], metric="l2", concurrently=concurrently)
        except InvalidIdentifierError:
            assert not valid(index)
        else:
            assert valid(index)
            build_vector_index(engine, ix, progress=False)
            assert catalog.indexes() == {index}
            ix.drop(engine)
            assert catalog.indexes() == set()
        finally:
            catalog.drop(table)
        catalog.intact()

    run_examples(
        call,
        EXAMPLES,
        index=names,
        table=names,
        column=names,
        method=st.sampled_from(["hnsw", "ivfflat"]),
        concurrently=st.booleans(),
    )


def test_copy_rows_into_hostile_table_and_column_names(engine: Engine, catalog: Catalog) -> None:
    def call(table: str, column: str, rows: int) -> None:
        assume(valid(table) and valid(column) and not {table, column} & _TAKEN)
        catalog.table(table, column)
        t = items_table(table, column)
        data = {"id": np.arange(rows), column: np.ones((rows, 3), dtype=np.float32)}
        try:
            with engine.begin() as conn:
                assert copy_rows(conn, t, data, progress=False) == rows
            got = catalog.raw.execute(
                sql.SQL("SELECT count(*), count({}) FROM {}").format(
                    sql.Identifier(column), sql.Identifier(table)
                )
            ).fetchone()
            assert got == (rows, rows)
        finally:
            catalog.drop(table)
        catalog.intact()

    run_examples(call, EXAMPLES, table=names, column=names, rows=st.integers(0, 5))


# --- WHERE text, operator classes, setting values ----------------------------------------

#: predicates: a safe base with hostile tails; accepted text must be one expression
_TAILS = [
    "", "; CREATE TABLE pwned ()", ") OR (true", "--", "/* x */", "/*", "'",
    "' ; CREATE TABLE pwned (); '",
    "$$", "$q$ ; $q$", "E'\\'; CREATE TABLE pwned (); --'",
    " AND x\U0001f642E'\\' ; CREATE TABLE pwned (); --'", "\\", ")", "(", " AND id % 2 = 0",
    " AND id::text LIKE 'a%'", " AND \"id\" > 0", "; DROP TABLE sentinel", "\x00", " AND :x = 1",
]  # fmt: skip
wheres = st.builds(
    lambda base, tails: base + "".join(tails),
    st.sampled_from(["id > 0", "(id > 0)", "true", "id IS NOT NULL", ""]),
    st.lists(st.sampled_from(_TAILS), max_size=3),
)


def test_where_text_is_one_expression_or_refused(engine: Engine, catalog: Catalog) -> None:
    catalog.table("items", "e")

    def call(where: str, alembic: bool) -> None:
        before = catalog.relations()
        try:
            if alembic:
                online_op(
                    engine,
                    lambda op: op.create_vector_index(
                        "ix", "items", "e", opclass="vector_l2_ops", where=where
                    ),
                )
            else:
                t = sa.Table(
                    "items", sa.MetaData(), sa.Column("id", sa.Integer), sa.Column("e", Vector(3))
                )
                t = items_table("items", "e")
                HnswIndex("ix", t.c.e, metric="l2", where=sa.text(where)).create(engine)
        except UnsafeSQLError as e:
            assert "one SQL expression" in str(e) or "NUL" in str(e) or "empty" in str(e)
            assert catalog.relations() == before
        except (sa.exc.DBAPIError, sa.exc.CompileError):
            # one expression the server (or SQLAlchemy, for a :name) refuses: nothing made
            assert catalog.relations() == before
        else:
            assert catalog.indexes() == {"ix"}
            catalog.raw.execute("DROP INDEX ix")
        catalog.intact()

    run_examples(call, EXAMPLES, where=wheres, alembic=st.booleans())


def test_opclass_strings_are_refused_unless_known() -> None:
    t = items_table("items", "e")
    known = {name for name, _ in OPCLASSES.values()}

    def call(opclass: str) -> None:
        assume(opclass not in known)
        with pytest.raises(IndexDefinitionError):
            HnswIndex("ix", t.c.e, opclass=opclass)
        with pytest.raises(IndexDefinitionError):
            offline_sql(
                lambda op: op.create_vector_index("ix", "items", "e", opclass=opclass), True
            )

    run_examples(
        call,
        EXAMPLES * 4,
        opclass=st.one_of(names, st.sampled_from(sorted(name + "; --" for name in known))),
    )


setting_values = st.one_of(
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    names,
    st.sampled_from(["off", "relaxed_order", "strict_order", "100; RESET ALL", "1e3"]),
)


def test_search_setting_values_are_applied_exactly_or_refused(
    engine: Engine, catalog: Catalog
) -> None:
    def current(conn: sa.Connection, guc: str) -> str:
        return str(conn.execute(sa.select(sa.func.current_setting(guc))).scalar_one())

    def call(setting: str, value: Any) -> None:
        guc = SEARCH_SETTINGS[setting].name
        with engine.connect() as conn:
            with conn.begin():
                apply_search_settings(conn, ef_search=40)  # loads the library's settings
                default = current(conn, guc)
            try:
                checked = SearchSettings(**{setting: value})
            except SearchSettingError as e:
                assert setting in str(e) or guc in str(e)
            else:
                with conn.begin(), search_settings(conn, checked):
                    seen = current(conn, guc)
                    want = checked.gucs()[guc]
                    if SEARCH_SETTINGS[setting].kind is str:
                        assert seen == want
                    else:
                        assert float(seen) == float(want)
            with conn.begin():
                assert current(conn, guc) == default  # nothing outlived its transaction
        catalog.intact()

    run_examples(
        call, EXAMPLES, setting=st.sampled_from(sorted(SEARCH_SETTINGS)), value=setting_values
    )


@pytest.mark.parametrize("schema", ["we%ird", "a:b\\:c", 'q"s %s', "Ext Schema"])
def test_search_settings_with_the_extension_in_a_hostile_schema(
    engine: Engine, catalog: Catalog, schema: str
) -> None:
    """pgvector is relocatable: in a schema whose name holds ``%``, ``:`` or quotes,
    search settings still load its library and apply, and ``create_vector_extension``
    writes that schema's name exactly."""
    home = catalog.raw.execute(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n"
        " ON n.oid = e.extnamespace WHERE e.extname = 'vector'"
    ).fetchone()
    assert home is not None
    catalog.raw.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        catalog.raw.execute(
            sql.SQL("ALTER EXTENSION vector SET SCHEMA {}").format(sql.Identifier(schema))
        )
        with engine.connect() as conn, conn.begin(), search_settings(conn, ef_search=77, probes=3):
            got = conn.execute(
                sa.select(
                    sa.func.current_setting("hnsw.ef_search"),
                    sa.func.current_setting("ivfflat.probes"),
                )
            ).one()
            assert tuple(got) == ("77", "3")
        online_op(engine, lambda op: op.create_vector_extension(schema=schema))
        script = offline_sql(lambda op: op.create_vector_extension(schema=schema), True)
        catalog.raw.execute(script.encode())  # IF NOT EXISTS: parsed, then a no-op
        assert sql.Identifier(schema).as_string(catalog.raw) in script
        catalog.intact()
    finally:
        catalog.raw.execute(
            sql.SQL("ALTER EXTENSION vector SET SCHEMA {}").format(sql.Identifier(home[0]))
        )
        catalog.raw.execute(sql.SQL("DROP SCHEMA {}").format(sql.Identifier(schema)))


def test_extension_versions_are_dotted_digits_or_refused() -> None:
    def call(version: str) -> None:
        try:
            script = offline_sql(lambda op: op.alter_vector_extension_update(version), True)
        except ValueError as e:
            assert "dotted digits" in str(e)
        else:
            assert script.strip() == f"ALTER EXTENSION vector UPDATE TO '{version}';"
            assert all(part.isdigit() and part.isascii() for part in version.split("."))

    versions = st.one_of(names, st.from_regex(r"\A\d{1,2}(\.\d{1,2}){0,3}\Z"))
    run_examples(call, EXAMPLES * 4, version=versions)
