"""Tenant partitions: the partition key of a Table, CREATE TABLE ... PARTITION OF with
bounds rendered as checked literals, one LIST partition per tenant carrying the parent's
vector index, and the per-tenant top-k that scans only that partition's index."""

from __future__ import annotations

import datetime
import decimal
import json
import uuid
from typing import Any

import numpy as np
import psycopg
import pytest
from conftest import make_async_engine
from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Float,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
    Text,
    Uuid,
    select,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from vecalchemy import HnswIndex, Vector, explain_index_usage
from vecalchemy.exc import InvalidIdentifierError
from vecalchemy.facts import MAX_IDENTIFIER_BYTES
from vecalchemy.partitions import (
    MAXVALUE,
    MINVALUE,
    PartitionError,
    partition_key,
    partition_statement,
)
from vecalchemy.tenants import (
    create_tenant_partition,
    create_tenant_partition_async,
    detach_tenant_partition,
    detach_tenant_partition_async,
    drop_tenant_partition,
    drop_tenant_partition_async,
    tenant_partition_name,
    tenant_search,
)

# --- partition_key -----------------------------------------------------------------------


def _keyed(partition_by: str | None, *names: str) -> Table:
    return Table(
        "t",
        MetaData(),
        *(Column(n, Integer) for n in names),
        postgresql_partition_by=partition_by,
    )


@pytest.mark.parametrize(
    ("partition_by", "names", "strategy", "key"),
    [
        ("LIST (tenant_id)", ["id", "tenant_id"], "list", ["tenant_id"]),
        ("range(created_at)", ["created_at"], "range", ["created_at"]),
        ("Hash ( ID )", ["id"], "hash", ["id"]),
        ('RANGE ("Day", b)', ["b", "Day"], "range", ["Day", "b"]),
        ('LIST ("a "" b")', ['a " b'], "list", ['a " b']),
        ('LIST (a COLLATE "C" text_pattern_ops)', ["a"], "list", ["a"]),
        ("HASH (a, b public.int4_ops)", ["a", "b"], "hash", ["a", "b"]),
    ],
    ids=["list", "range-lower", "hash-folded", "quoted-multi", "quote-in-name", "collate", "opc"],
)
def test_partition_key_maps_the_clause_to_columns(
    partition_by: str, names: list[str], strategy: str, key: list[str]
) -> None:
    table = _keyed(partition_by, *names)
    found = partition_key(table)
    assert found is not None
    assert found.strategy == strategy
    assert [c.name for c in found.columns] == key
    assert all(c.table is table for c in found.columns)


@pytest.mark.parametrize(
    "partition_by",
    [
        None,
        "LIST ((lower(a)))",
        "LIST (lower(a))",
        "RANGE (a + 1)",
        "LIST (missing)",
        'LIST ("A")',  # quoted: the column "A", not a
        "LIST (a.b)",
        "LIST a",
        "INTERVAL (a)",
        "LIST ()",
        "LIST (a,)",
    ],
)
def test_partition_key_is_none_without_a_key_of_columns(partition_by: str | None) -> None:
    assert partition_key(_keyed(partition_by, "a", "b")) is None


# --- partition_statement: the SQL ---------------------------------------------------------

META = MetaData()
DOCS = Table(
    "docs",
    META,
    Column("id", Integer, nullable=False),
    Column("tenant", Text, nullable=False),
    Column("e", Vector(3, metric="l2")),
    postgresql_partition_by="LIST (tenant)",
)
EVENTS = Table(
    "events",
    META,
    Column("day", Date, nullable=False),
    Column("n", SmallInteger, nullable=False),
    postgresql_partition_by="RANGE (day, n)",
)
HASHED = Table(
    "hashed",
    META,
    Column("id", BigInteger, nullable=False),
    postgresql_partition_by="HASH (id)",
)
#: strings that would break out of a naively written literal or be read as parameters
HOSTILE = ["a'b", "c\\d", "50%", "%(x)s", ":name", "x'); DROP TABLE docs; --", "é\t'\\'"]


def test_list_bounds_are_literals_of_the_key_type() -> None:
    sql = partition_statement(DOCS, "p", values=["a'b", "c\\d", "50%", ":n", None]).sql
    assert sql == (
        "CREATE TABLE p PARTITION OF docs FOR VALUES IN ('a''b', E'c\\\\d', '50%', ':n', NULL)"
    )


def test_range_bounds_take_minvalue_and_maxvalue() -> None:
    sql = partition_statement(
        EVENTS,
        "Jan 2024",
        range_from=(datetime.date(2024, 1, 1), MINVALUE),
        range_to=(datetime.date(2024, 2, 1), MAXVALUE),
        schema="Archive",
    ).sql
    assert sql == (
        'CREATE TABLE "Archive"."Jan 2024" PARTITION OF events FOR VALUES '
        "FROM ('2024-01-01', MINVALUE) TO ('2024-02-01', MAXVALUE)"
    )


def test_hash_and_default_partitions() -> None:
    assert partition_statement(HASHED, "h3", modulus=4, remainder=3).sql == (
        "CREATE TABLE h3 PARTITION OF hashed FOR VALUES WITH (MODULUS 4, REMAINDER 3)"
    )
    assert partition_statement(DOCS, "rest", default=True).sql == (
        "CREATE TABLE rest PARTITION OF docs DEFAULT"
    )


def test_partition_goes_to_the_parents_schema_by_default() -> None:
    parent = Table(
        "p", MetaData(), Column("k", Integer), postgresql_partition_by="LIST (k)", schema="s"
    )
    assert partition_statement(parent, "c", values=[1]).sql == (
        "CREATE TABLE s.c PARTITION OF s.p FOR VALUES IN (1)"
    )


def test_statement_for_script_is_the_sql_itself() -> None:
    dialect = postgresql.psycopg.dialect()
    sent = partition_statement(DOCS, "p", values=["50%"])
    printed = partition_statement(DOCS, "p", values=["50%"], for_script=True)
    assert str(sent.compile(dialect=dialect)).endswith("IN ('50%%')")
    assert str(printed.compile(dialect=dialect)) == printed.sql == sent.sql


@pytest.mark.parametrize(
    ("table", "kw", "error", "match"),
    [
        (DOCS, {"values": [1]}, TypeError, "must be a str for the column 'tenant'"),
        (DOCS, {"values": "a"}, TypeError, "list or tuple"),
        (DOCS, {"values": []}, PartitionError, "at least one value"),
        (DOCS, {"values": ["a\x00b"]}, PartitionError, "NUL byte"),
        (DOCS, {"range_from": "a", "range_to": "b"}, PartitionError, "takes values="),
        (DOCS, {"values": ["a"], "modulus": 2}, PartitionError, "modulus does not apply"),
        (DOCS, {}, PartitionError, "missing values"),
        (EVENTS, {"values": [1]}, PartitionError, "takes range_from= and range_to="),
        (
            EVENTS,
            {"range_from": datetime.date(2024, 1, 1), "range_to": (1, 2)},
            TypeError,
            "tuple of 2 values",
        ),
        (
            EVENTS,
            {"range_from": (datetime.date(2024, 1, 1), 1), "range_to": (None, 2)},
            PartitionError,
            "cannot be NULL",
        ),
        (
            EVENTS,
            {"range_from": (datetime.datetime(2024, 1, 1), 1), "range_to": (MAXVALUE, 2)},
            TypeError,
            "must be a date",
        ),
        (
            EVENTS,
            {"range_from": (MINVALUE, 40000), "range_to": (MAXVALUE, 1)},
            PartitionError,
            "out of range for the smallint",
        ),
        (
            EVENTS,
            {"range_from": (MINVALUE, True), "range_to": (MAXVALUE, 1)},
            TypeError,
            "must be an int",
        ),
        (HASHED, {"modulus": 4, "remainder": 4}, PartitionError, "less than modulus"),
        (HASHED, {"modulus": 0, "remainder": 0}, PartitionError, "positive"),
        (HASHED, {"modulus": "4", "remainder": 1}, TypeError, "modulus= must be an int"),
        (HASHED, {"default": True}, PartitionError, "may not have a DEFAULT"),
        (_keyed("LIST ((a))", "a"), {"values": [1]}, PartitionError, "no partition key"),
        (_keyed(None, "a"), {"values": [1]}, PartitionError, "no partition key"),
    ],
)
def test_bad_bounds_are_refused_before_sending(
    table: Table, kw: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        partition_statement(table, "p", **kw)


@pytest.mark.parametrize("name", ["", "a\x00b", "x" * (MAX_IDENTIFIER_BYTES + 1), 7])
def test_bad_partition_names_are_refused(name: Any) -> None:
    with pytest.raises(InvalidIdentifierError):
        partition_statement(DOCS, name, values=["a"])
    with pytest.raises(InvalidIdentifierError):
        partition_statement(DOCS, "ok", values=["a"], schema=name)


def test_values_the_column_cannot_hold_are_refused() -> None:
    short = Table("n", MetaData(), Column("x", String(3)), postgresql_partition_by="LIST (x)")
    with pytest.raises(PartitionError, match="holds at most 3"):
        partition_statement(short, "p", values=["abcd"])
    numbers = Table(
        "m",
        MetaData(),
        Column("x", Numeric),
        Column("y", Float),
        postgresql_partition_by="RANGE (x, y)",
    )
    with pytest.raises(PartitionError, match="finite"):
        partition_statement(
            numbers, "p", range_from=(decimal.Decimal("NaN"), 0.0), range_to=(1, 1)
        )
    with pytest.raises(PartitionError, match="finite"):
        partition_statement(numbers, "p", range_from=(0, 0.0), range_to=(1, float("inf")))
    assert partition_statement(
        numbers, "p", range_from=(decimal.Decimal("1.5"), 0), range_to=(2, 2.5)
    ).sql.endswith("FROM (1.5, 0) TO (2, 2.5)")
    vectors = Table("v", MetaData(), Column("e", Vector(3)), postgresql_partition_by="LIST (e)")
    with pytest.raises(TypeError, match="must be a ndarray"):
        partition_statement(vectors, "p", values=[[1, 2, 3]])


# --- partition_statement on a real server -----------------------------------------------


def _partition_of(raw: psycopg.Connection, row_sql: str, params: list[Any]) -> list[str]:
    return [r[0] for r in raw.execute(row_sql, params).fetchall()]


@pytest.mark.parametrize("mode", ["text", "dialect", "asyncpg", "psycopg2", "pg8000"])
def test_hostile_list_values_make_exactly_that_partition(
    engine: Engine, raw_conn: psycopg.Connection
) -> None:
    parent = Table(
        "Docs%1",
        MetaData(),
        Column("tenant", Text, nullable=False),
        postgresql_partition_by="LIST (tenant)",
    )
    with engine.begin() as conn:
        parent.create(conn)
        conn.execute(partition_statement(parent, "p:1 'x'", values=HOSTILE))
        conn.execute(partition_statement(parent, "rest", default=True))
        conn.execute(parent.insert(), [{"tenant": v} for v in [*HOSTILE, "other", "c\\\\d"]])
    rows = raw_conn.execute(
        'SELECT tenant, tableoid::regclass::text FROM "Docs%1" ORDER BY 1'
    ).fetchall()
    placed = dict(rows)
    assert {v: placed[v] for v in HOSTILE} == {v: "\"p:1 'x'\"" for v in HOSTILE}
    assert placed["other"] == "rest" and placed["c\\\\d"] == "rest"
    assert _partition_of(
        raw_conn,
        "SELECT c.relname FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid "
        "WHERE h.inhparent = to_regclass(%s) ORDER BY 1",
        ['"Docs%1"'],
    ) == ["p:1 'x'", "rest"]


@pytest.mark.parametrize("mode", ["plugin", "asyncpg-text", "psycopg2", "pg8000"])
def test_range_and_hash_partitions_route_rows(
    engine: Engine, raw_conn: psycopg.Connection
) -> None:
    key = uuid.UUID("12345678-1234-5678-1234-567812345678")
    events = Table(
        "events",
        MetaData(),
        Column("at", DateTime(timezone=True), nullable=False),
        Column("who", Uuid, nullable=False),
        postgresql_partition_by="RANGE (at, who)",
    )
    hashed = Table(
        "hashed", MetaData(), Column("id", BigInteger), postgresql_partition_by="HASH (id)"
    )
    utc = datetime.timezone.utc
    with engine.begin() as conn:
        events.create(conn)
        hashed.create(conn)
        conn.execute(
            partition_statement(
                events,
                "early",
                range_from=(MINVALUE, MINVALUE),
                range_to=(datetime.datetime(2024, 1, 1, tzinfo=utc), key),
            )
        )
        conn.execute(
            partition_statement(
                events,
                "late",
                range_from=(datetime.datetime(2024, 1, 1, tzinfo=utc), key),
                range_to=(MAXVALUE, MAXVALUE),
            )
        )
        for r in range(3):
            conn.execute(partition_statement(hashed, f"h{r}", modulus=3, remainder=r))
        # the second row is the lower bound of "late" exactly: FROM is inclusive
        rows = [
            datetime.datetime(2023, 12, 31, 23, tzinfo=utc),
            datetime.datetime(2024, 1, 1, tzinfo=utc),
        ]
        conn.execute(events.insert(), [{"at": at, "who": key} for at in rows])
        conn.execute(hashed.insert(), [{"id": i} for i in range(30)])
    placed = raw_conn.execute(
        "SELECT extract(year FROM at)::int, tableoid::regclass::text FROM events ORDER BY 1"
    ).fetchall()
    assert placed == [(2023, "early"), (2024, "late")]
    counts = raw_conn.execute(
        "SELECT tableoid::regclass::text, count(*) FROM hashed GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert [c[0] for c in counts] == ["h0", "h1", "h2"] and sum(c[1] for c in counts) == 30
    # the server agrees with the key it was given: an overlapping partition is refused
    with pytest.raises(DBAPIError, match="overlap"), engine.begin() as conn:
        conn.execute(partition_statement(hashed, "again", modulus=3, remainder=0))


# --- tenants: create, search, detach, drop ----------------------------------------------


def _docs(engine: Engine, name: str = "docs") -> Table:
    """A LIST-partitioned parent with an HNSW index on it, and tenants 1 and 2."""
    table = Table(
        name,
        MetaData(),
        Column("id", Integer, nullable=False),
        Column("tenant_id", Integer, nullable=False),
        Column("e", Vector(3, metric="l2")),
        HnswIndex(f"{name}_e", "e", m=8, ef_construction=32),
        postgresql_partition_by="LIST (tenant_id)",
    )
    with engine.begin() as conn:
        table.create(conn)
        for tenant in (1, 2):
            create_tenant_partition(conn, table, tenant)
    return table


def _rows(engine: Engine, table: Table, tenant: int, n: int = 20) -> None:
    rng = np.random.default_rng(tenant)
    with engine.begin() as conn:
        conn.execute(
            table.insert(),
            [
                {
                    "id": tenant * 1000 + i,
                    "tenant_id": tenant,
                    "e": rng.random(3, dtype=np.float32),
                }
                for i in range(n)
            ],
        )


def _attached(raw: psycopg.Connection, parent_index: str) -> dict[str, str]:
    """partition -> its index attached to ``parent_index`` (HNSW ones)."""
    rows = raw.execute(
        "SELECT t.relname, c.relname FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid "
        "JOIN pg_index i ON i.indexrelid = c.oid JOIN pg_class t ON t.oid = i.indrelid "
        "JOIN pg_am a ON a.oid = c.relam "
        "WHERE h.inhparent = to_regclass(%s) AND a.amname = 'hnsw'",
        [parent_index],
    ).fetchall()
    return dict(rows)


@pytest.mark.parametrize("mode", ["plugin", "dialect", "asyncpg", "pg8000"])
def test_tenant_partition_gets_the_parents_vector_index(
    engine: Engine, raw_conn: psycopg.Connection
) -> None:
    table = _docs(engine)
    with engine.begin() as conn:
        made = create_tenant_partition(conn, table, 7)
    assert made.name == "docs_7" == tenant_partition_name(table, 7)
    attached = _attached(raw_conn, "docs_e")
    assert set(attached) == {"docs_1", "docs_2", "docs_7"}
    assert made.vector_indexes == (attached["docs_7"],)
    assert made.schema == raw_conn.execute("SELECT current_schema()").fetchone()[0]  # type: ignore[index]
    # in an ORM Session's transaction: nothing until it commits
    with Session(engine) as session:
        in_session = create_tenant_partition(session, table, 8)
        assert "docs_8" not in _attached(raw_conn, "docs_e")
        session.commit()
    assert _attached(raw_conn, "docs_e")["docs_8"] == in_session.vector_indexes[0]


@pytest.mark.parametrize("mode", ["text", "asyncpg", "psycopg2"])
def test_tenant_top_k_scans_only_that_partitions_index(
    engine: Engine, raw_conn: psycopg.Connection
) -> None:
    table = _docs(engine)
    for tenant in (1, 2):
        _rows(engine, table, tenant)
    own = _attached(raw_conn, "docs_e")
    q = np.array([0.5, 0.5, 0.5], dtype=np.float32)
    top_k = select(table.c.id).order_by(table.c.e.l2_distance(q)).limit(5)
    stmt = tenant_search(top_k, table, 2)
    with engine.connect() as conn:
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        usage = explain_index_usage(conn, stmt)
        ids = conn.execute(stmt).scalars().all()
    assert usage.vector_indexes == ((own["docs_2"], "hnsw"),), usage.plan
    assert not any("docs_1" in line for line in usage.plan), usage.plan
    # the same 5 as an exact scan of tenant 2's rows, ordered by distance
    exact = raw_conn.execute(
        "SELECT id FROM docs WHERE tenant_id = 2 ORDER BY e <-> %s::vector LIMIT 5",
        ["[0.5,0.5,0.5]"],
    ).fetchall()
    assert ids == [r[0] for r in exact]
    # the tenant is bound, not written into the SQL
    compiled = stmt.compile(dialect=engine.dialect)
    assert "tenant_id = 2" not in str(compiled) and 2 in compiled.params.values()


def _index_names(node: dict[str, Any]) -> list[str]:
    names = [node["Index Name"]] if "Index Name" in node else []
    for child in node.get("Plans", ()):
        names += _index_names(child)
    return names


@pytest.mark.parametrize("mode", ["asyncpg"])
def test_generic_plan_of_tenant_top_k_is_pruned_at_executor_startup(
    engine: Engine, raw_conn: psycopg.Connection
) -> None:
    # asyncpg prepares every statement; PostgreSQL may plan one generically (the tenant
    # unknown when planned): the bound tenant still prunes, when the executor starts
    table = _docs(engine)
    with engine.begin() as conn:
        create_tenant_partition(conn, table, 3)
    own = _attached(raw_conn, "docs_e")
    q = np.array([0.5, 0.5, 0.5], dtype=np.float32)
    stmt = tenant_search(select(table.c.id).order_by(table.c.e.l2_distance(q)).limit(5), table, 2)
    # the SQL the engine's dialect sends, with $n parameters
    compiled = stmt.compile(dialect=engine.dialect, compile_kwargs={"render_postcompile": True})
    values = {"tenant_id_1": "2", "e_1": "'[0.5,0.5,0.5]'", "param_1": "5"}
    assert compiled.positiontup is not None and "tenant_id_1" in compiled.positiontup
    args = ", ".join(values[name] for name in compiled.positiontup)
    raw_conn.execute(f"PREPARE tenant_top_k AS {compiled}")
    raw_conn.execute("SET enable_seqscan = off")
    raw_conn.execute("SET plan_cache_mode = force_generic_plan")
    row = raw_conn.execute(f"EXPLAIN (FORMAT JSON) EXECUTE tenant_top_k({args})").fetchone()
    assert row is not None
    plan = row[0][0]["Plan"]
    assert _index_names(plan) == [own["docs_2"]], plan
    assert "Subplans Removed" in json.dumps(plan)


def test_tenant_search_takes_a_column_or_an_orm_class() -> None:
    class Base(DeclarativeBase):
        pass

    class Doc(Base):
        __tablename__ = "odocs"
        __table_args__ = {"postgresql_partition_by": "LIST (tenant)"}
        id: Mapped[int] = mapped_column(primary_key=True)
        tenant: Mapped[str] = mapped_column(Text, primary_key=True)

    for target in (Doc, Doc.__table__, Doc.tenant, Doc.__table__.c.tenant):
        stmt = tenant_search(select(Doc.id), target, "acme")
        assert "WHERE odocs.tenant = :tenant_1" in str(stmt)
    with pytest.raises(TypeError, match="must be a str"):
        tenant_search(select(Doc.id), Doc, 3)
    with pytest.raises(TypeError, match="got None"):
        tenant_search(select(Doc.id), Doc.tenant, None)
    with pytest.raises(TypeError, match="LIST-partitioned Table"):
        tenant_search(select(Doc.id), "tenant", "acme")
    with pytest.raises(PartitionError, match="HASH-partitioned"):
        tenant_search(select(HASHED.c.id), HASHED, 1)


@pytest.mark.parametrize("mode", ["text", "asyncpg", "pg8000"])
def test_detach_concurrently_then_drop(engine: Engine, raw_conn: psycopg.Connection) -> None:
    table = _docs(engine)
    _rows(engine, table, 2, n=5)
    detached = detach_tenant_partition(engine, table, 2, concurrently=True)
    assert detached.name == "docs_2" and len(detached.vector_indexes) == 1
    assert set(_attached(raw_conn, "docs_e")) == {"docs_1"}
    # a table of its own, with its rows and index
    assert raw_conn.execute("SELECT count(*) FROM docs_2").fetchone() == (5,)
    assert raw_conn.execute("SELECT count(*) FROM docs").fetchone() == (0,)
    with pytest.raises(PartitionError, match="is not attached"):
        drop_tenant_partition(engine, table, 2)
    drop_tenant_partition(engine, table, 2, detached=True)
    assert raw_conn.execute("SELECT to_regclass('docs_2')").fetchone() == (None,)
    with engine.begin() as conn:
        drop_tenant_partition(conn, table, 1)
    assert raw_conn.execute("SELECT to_regclass('docs_1')").fetchone() == (None,)


@pytest.mark.parametrize("mode", ["text", "asyncpg"])
def test_tenant_errors_are_clear_and_change_nothing(
    engine: Engine, raw_conn: psycopg.Connection
) -> None:
    table = _docs(engine)
    with engine.begin() as conn:
        with pytest.raises(PartitionError, match="'docs_1' of 'docs' exists already"):
            create_tenant_partition(conn, table, 1)
        with pytest.raises(TypeError, match="must be an int for the column"):
            create_tenant_partition(conn, table, "1")
        with pytest.raises(PartitionError, match="out of range"):
            create_tenant_partition(conn, table, 2**31)
        with pytest.raises(PartitionError, match="'docs_9' of 'docs' for tenant 9 does not exist"):
            detach_tenant_partition(conn, table, 9)
        with pytest.raises(PartitionError, match="does not exist"):
            drop_tenant_partition(conn, table, 9)
        with pytest.raises(PartitionError, match="cannot run inside a transaction block"):
            detach_tenant_partition(conn, table, 1, concurrently=True)
        with pytest.raises(PartitionError, match="still attached"):
            drop_tenant_partition(conn, table, 1, detached=True)
        with pytest.raises(PartitionError, match="is HASH-partitioned"):
            create_tenant_partition(conn, HASHED, 1)
    with (
        pytest.raises(PartitionError, match="cannot run inside a transaction block"),
        Session(engine) as session,
    ):
        detach_tenant_partition(session, table, 1, concurrently=True)
    # a name taken by another kind of relation
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE docs_3 (x int)"))
        with pytest.raises(
            PartitionError, match="'docs_3' exists already \\(a relation that is not a partition"
        ):
            create_tenant_partition(conn, table, 3)
    assert set(_attached(raw_conn, "docs_e")) == {"docs_1", "docs_2"}


@pytest.mark.parametrize("mode", ["text", "pg8000"])
def test_long_tenant_names_fit_63_bytes(engine: Engine, raw_conn: psycopg.Connection) -> None:
    table = Table(
        "Tenant docs",
        MetaData(),
        Column("tenant", Text, nullable=False),
        Column("e", Vector(3)),
        postgresql_partition_by="LIST (tenant)",
    )
    long = "é" * 40 + "'%:x\\"
    with engine.begin() as conn:
        table.create(conn)
        made = create_tenant_partition(conn, table, long)
        other = create_tenant_partition(conn, table, long + "y")
    assert len(made.name.encode()) <= MAX_IDENTIFIER_BYTES and made.name != other.name
    assert made.name == tenant_partition_name(table, long)
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"tenant": long}])
    assert raw_conn.execute('SELECT tableoid::regclass::text FROM "Tenant docs"').fetchone() == (
        '"' + made.name + '"',
    )


@pytest.mark.parametrize("mode", ["plugin", "asyncpg"])
async def test_async_tenant_lifecycle(
    vector_database_url: str, vector_schema: str, mode: str, raw_conn: psycopg.Connection
) -> None:
    eng = make_async_engine(vector_database_url, vector_schema, mode)
    table = Table(
        "adocs",
        MetaData(),
        Column("tenant_id", Integer, nullable=False),
        Column("e", Vector(3, metric="l2")),
        HnswIndex("adocs_e", "e", m=8, ef_construction=32),
        postgresql_partition_by="LIST (tenant_id)",
    )
    try:
        async with eng.begin() as conn:
            await conn.run_sync(table.create)
            made = await create_tenant_partition_async(conn, table, 5)
        assert made.name == "adocs_5" and len(made.vector_indexes) == 1
        detached = await detach_tenant_partition_async(eng, table, 5, concurrently=True)
        assert detached.vector_indexes == made.vector_indexes
        await drop_tenant_partition_async(eng, table, 5, detached=True)
        assert raw_conn.execute("SELECT to_regclass('adocs_5')").fetchone() == (None,)
    finally:
        await eng.dispose()
