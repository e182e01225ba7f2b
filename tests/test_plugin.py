"""The engine plugin, the dialect and plain psycopg registration, on the real server."""

from __future__ import annotations

import contextlib
import gc
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from conftest import make_engine
from psycopg import sql
from psycopg.adapt import PyFormat
from psycopg.pq import Format
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    Table,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    inspect,
    select,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine, make_url

from vecalchemy import (
    Bit,
    HalfVec,
    InvalidVectorError,
    SparseVec,
    SparseVector,
    Vector,
    install,
    register_adapters,
    register_adapters_async,
)
from vecalchemy import plugin as plugin_module
from vecalchemy.codecs import check_bits, check_dense
from vecalchemy.dialect import VecalchemyAsyncDialect, VecalchemyDialect, VecalchemyDialectMixin
from vecalchemy.psycopg import BitParam, DenseParam, HalfVecParam, fetch_type_oids
from vecalchemy.testing import libpq_conninfo

TYPES_QUERY = (
    "SELECT '[1,2.5,-3]'::vector, '[1,2.5,-3]'::halfvec, '{2:4}/5'::sparsevec, B'10110'::bit(5)"
)


def check_typed_row(row: Any) -> None:
    v, h, s, b = row
    assert v.dtype == np.float32 and v.tolist() == [1, 2.5, -3]
    assert h.dtype == np.float16 and h.tolist() == [1, 2.5, -3]
    assert s == SparseVector({1: 4.0}, 5)
    assert b == "10110"


def server_oids(conn: psycopg.Connection) -> dict[str, int]:
    rows = conn.execute(
        "SELECT t.typname, t.oid::int8 FROM pg_type t JOIN pg_extension e "
        "ON t.typnamespace = e.extnamespace WHERE e.extname = 'vector' "
        "AND t.typname IN ('vector', 'halfvec', 'sparsevec')"
    ).fetchall()
    return {name: int(oid) for name, oid in rows}


# --- the engine plugin and the dialect -------------------------------------------------


def test_plugin_named_in_the_url_turns_on_binary_binds(
    vector_database_url: str, vector_schema: str
) -> None:
    url = make_url(vector_database_url).update_query_dict({"plugin": "vecalchemy"})
    eng = create_engine(url, connect_args={"options": f"-csearch_path={vector_schema},public"})
    try:
        assert isinstance(eng.dialect, VecalchemyDialect)
        assert "plugin" not in eng.url.query
        md = MetaData()
        t = Table("u", md, Column("id", Integer, primary_key=True), Column("v", Vector(2)))
        md.create_all(eng)
        with eng.begin() as conn:
            conn.execute(insert(t), {"id": 1, "v": [1, 2]})
            assert conn.execute(select(t.c.v)).scalar_one().tolist() == [1, 2]
    finally:
        eng.dispose()


@pytest.mark.parametrize("mode", ["plugin", "dialect"])
def test_binary_loaders_are_registered_on_new_connections(
    vector_database_url: str, vector_schema: str, mode: str
) -> None:
    eng = make_engine(vector_database_url, vector_schema, mode)
    try:
        with eng.connect() as conn:
            raw = conn.connection.driver_connection
            assert raw is not None
            expected = server_oids(raw)
            for oid in expected.values():
                assert raw.adapters.get_loader(oid, Format.BINARY) is not None
            with raw.cursor(binary=True) as cur:
                check_typed_row(cur.execute(TYPES_QUERY).fetchone())
    finally:
        eng.dispose()


def test_text_mode_connections_get_no_vecalchemy_loaders(
    vector_database_url: str, vector_schema: str
) -> None:
    eng = make_engine(vector_database_url, vector_schema, "text")
    try:
        with eng.connect() as conn:
            raw = conn.connection.driver_connection
            assert raw is not None
            oid = server_oids(raw)["vector"]
            assert raw.adapters.get_loader(oid, Format.BINARY) is None
    finally:
        eng.dispose()


@pytest.mark.parametrize("mode", ["plugin", "dialect"])
def test_binary_dumpers_are_chosen_for_vecalchemy_params(
    vector_database_url: str, vector_schema: str, mode: str
) -> None:
    eng = make_engine(vector_database_url, vector_schema, mode)
    try:
        with eng.connect() as conn:
            raw = conn.connection.driver_connection
            assert raw is not None
            for param in (np.ndarray, DenseParam, HalfVecParam, SparseVector, BitParam):
                assert raw.adapters.get_dumper(param, PyFormat.AUTO).format == Format.BINARY
    finally:
        eng.dispose()


@pytest.mark.parametrize("mode", ["plugin", "dialect"])
def test_a_bare_array_goes_as_vector_or_halfvec_by_dtype(
    vector_database_url: str, vector_schema: str, mode: str
) -> None:
    eng = make_engine(vector_database_url, vector_schema, mode)
    try:
        with eng.connect() as conn:
            got = conn.exec_driver_sql(
                "SELECT %s::text, %s::text, pg_typeof(%s)::text, pg_typeof(%s)::text",
                (
                    np.array([1.5, -2, 3], np.float32),
                    np.array([0.5, 65504], np.float16),
                    np.array([1, 2], np.float32),
                    np.array([1, 2], np.float16),
                ),
            ).one()
            assert tuple(got) == ("[1.5,-2,3]", "[0.5,65504]", "vector", "halfvec")
            # typed on the wire: an array cannot land in a column of another type
            conn.exec_driver_sql("CREATE TEMP TABLE blobs (b bytea)")
            with pytest.raises(sa_exc.ProgrammingError, match="is of type bytea but expression"):
                conn.exec_driver_sql(
                    "INSERT INTO blobs VALUES (%s)", (np.array([1, 2], np.float32),)
                )
            conn.rollback()
            with pytest.raises(InvalidVectorError) as e:
                conn.exec_driver_sql("SELECT %s::vector", (np.array([1, 2], np.int64),))
            assert "sent as vector (1-D float32) or halfvec (1-D float16)" in str(e.value)
            assert "got dtype int64, shape (2,)" in str(e.value)
    finally:
        eng.dispose()


@pytest.mark.parametrize("mode", ["plugin", "dialect"])
def test_bound_rows_hold_no_garbage_collected_objects(
    vector_database_url: str, vector_schema: str, mode: str
) -> None:
    """An executemany of NumPy rows makes no object the cyclic collector tracks per row
    (a wrapper a row made large inserts spend microseconds a row in the collector)."""
    eng = make_engine(vector_database_url, vector_schema, mode)
    t = Table(
        "gc_rows",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("v", Vector(3)),
        Column("h", HalfVec(3)),
    )
    seen: list[Any] = []

    @event.listens_for(eng, "before_cursor_execute")
    def capture(conn: Any, cursor: Any, stmt: str, params: Any, ctx: Any, many: Any) -> None:
        if stmt.startswith("INSERT"):
            seen.extend([params] if isinstance(params, dict) else params)

    rows = [{"id": i, "v": np.full(3, i, np.float32), "h": [i, 0, 1]} for i in range(250)]
    try:
        t.metadata.create_all(eng)
        with eng.begin() as conn:
            conn.execute(insert(t), rows)
        assert len(seen) == 3  # two grouped batches of 100, and the tail of 50
        values = [v for batch in seen for v in batch.values()]
        assert len(values) == 3 * 250  # id, v, h of every row
        assert not any(gc.is_tracked(v) for v in values)
        assert not any(gc.is_tracked(batch) for batch in seen)
    finally:
        eng.dispose()


@pytest.mark.parametrize("mode", ["plugin", "dialect"])
def test_connections_are_idle_after_type_lookup(
    vector_database_url: str, vector_schema: str, mode: str
) -> None:
    eng = make_engine(vector_database_url, vector_schema, mode)
    try:
        raw = eng.raw_connection()
        try:
            driver = raw.driver_connection
            assert driver is not None
            assert driver.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        finally:
            raw.close()
    finally:
        eng.dispose()


def test_dialect_url_gives_the_vecalchemy_dialect(vector_database_url: str) -> None:
    eng = create_engine(vector_database_url.replace("postgresql+psycopg", "postgresql+vecalchemy"))
    try:
        assert isinstance(eng.dialect, VecalchemyDialect)
        assert eng.dialect.driver == "psycopg"
    finally:
        eng.dispose()


def test_install_is_idempotent_and_refuses_other_drivers(vector_database_url: str) -> None:
    eng = create_engine(vector_database_url)
    other = create_engine("sqlite://")
    try:
        assert install(eng) is True and install(eng) is True
        assert install(other) is False
        assert not isinstance(other.dialect, VecalchemyDialectMixin)
        with eng.connect() as conn:
            raw = conn.connection.driver_connection
            assert raw is not None
            oid = server_oids(raw)["vector"]
            assert raw.adapters.get_loader(oid, Format.BINARY) is not None
    finally:
        eng.dispose()
        other.dispose()


# --- the extension in a non-public schema of another database ---------------------------


@pytest.fixture(scope="module")
def ext_schema_url(vector_database_url: str) -> Iterator[str]:
    """A fresh database whose pgvector lives in schema ``ext``."""
    with fresh_database(vector_database_url) as url:
        with psycopg.connect(libpq_conninfo(url), autocommit=True) as conn:
            conn.execute("CREATE SCHEMA ext")
            conn.execute("CREATE EXTENSION vector SCHEMA ext")
        yield url


@contextlib.contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    name = f"vecalchemy_{uuid.uuid4().hex[:8]}"
    admin = libpq_conninfo(server_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_registration_without_the_extension_finds_no_types(vector_database_url: str) -> None:
    with (
        fresh_database(vector_database_url) as url,
        psycopg.connect(libpq_conninfo(url)) as conn,
    ):
        assert register_adapters(conn) == {}
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_plugin_binds_work_before_the_extension_exists_in_the_pool(
    vector_database_url: str,
) -> None:
    with fresh_database(vector_database_url) as url:
        eng = create_engine(url, plugins=["vecalchemy"], pool_size=1)
        try:
            with eng.connect() as conn:  # registered with no pgvector types known
                conn.exec_driver_sql("CREATE EXTENSION vector")
                conn.commit()
                md = MetaData()
                t = Table("late", md, Column("v", Vector(2)))
                md.create_all(conn)
                conn.execute(insert(t), {"v": [1, 2]})
                assert conn.execute(select(t.c.v)).scalar_one().tolist() == [1, 2]
        finally:
            eng.dispose()


@pytest.mark.parametrize("mode", ["plugin", "dialect"])
def test_plugin_finds_types_of_an_extension_in_another_schema(
    ext_schema_url: str, mode: str
) -> None:
    eng = make_engine(ext_schema_url, "ext", mode)
    try:
        with eng.connect() as conn:
            raw = conn.connection.driver_connection
            assert raw is not None
            oids = fetch_type_oids(raw)
            regtypes = raw.execute(
                "SELECT to_regtype('ext.vector')::oid::int8, to_regtype('ext.halfvec')::oid::int8,"
                " to_regtype('ext.sparsevec')::oid::int8"
            ).fetchone()
            assert regtypes is not None
            assert (oids["vector"], oids["halfvec"], oids["sparsevec"]) == regtypes
            assert raw.adapters.get_loader(oids["vector"], Format.BINARY) is not None
            with raw.cursor(binary=True) as cur:
                check_typed_row(cur.execute(TYPES_QUERY).fetchone())
    finally:
        eng.dispose()


@pytest.mark.parametrize("mode", ["text", "plugin", "dialect"])
def test_round_trip_with_the_extension_in_another_schema(ext_schema_url: str, mode: str) -> None:
    schema = f"t_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(libpq_conninfo(ext_schema_url), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    eng = make_engine(ext_schema_url, f"{schema},ext", mode)
    try:
        md = MetaData()
        t = Table(
            "x",
            md,
            Column("id", Integer, primary_key=True),
            Column("v", Vector(3)),
            Column("s", SparseVec(5)),
        )
        md.create_all(eng)
        with eng.begin() as conn:
            conn.execute(insert(t), {"id": 1, "v": [3, 4, 0], "s": {0: 1.0}})
            row = conn.execute(select(t.c.v, t.c.s, t.c.v.l2_distance([0, 0, 0]))).one()
        assert row[0].tolist() == [3, 4, 0] and row[1] == SparseVector({0: 1.0}, 5)
        assert row[2] == 5.0
        types = {c["name"]: c["type"] for c in inspect(eng).get_columns("x", schema=schema)}
        assert isinstance(types["v"], Vector) and types["v"].dim == 3
    finally:
        eng.dispose()
        with psycopg.connect(libpq_conninfo(ext_schema_url), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


# --- plain psycopg --------------------------------------------------------------------


def test_register_adapters_on_a_plain_connection(vector_database_url: str) -> None:
    with psycopg.connect(libpq_conninfo(vector_database_url)) as conn:
        oids = register_adapters(conn)
        assert oids == server_oids(conn)
        conn.rollback()
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        check_typed_row(conn.execute(TYPES_QUERY).fetchone())
        with conn.cursor(binary=True) as cur:
            check_typed_row(cur.execute(TYPES_QUERY).fetchone())


def test_register_adapters_leaves_an_idle_connection_idle(vector_database_url: str) -> None:
    with psycopg.connect(libpq_conninfo(vector_database_url)) as conn:
        register_adapters(conn)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_plain_connection_binds_params_in_binary(vector_database_url: str) -> None:
    with psycopg.connect(libpq_conninfo(vector_database_url)) as conn:
        register_adapters(conn)
        row = conn.execute(
            "SELECT %s::vector(3) <-> '[0,0,0]', %s::halfvec(2)::text, %s::sparsevec::text,"
            " %s::bit(3)::text",
            [
                DenseParam(check_dense([3, 4, 0])),
                HalfVecParam(check_dense([1.5, 2], "halfvec")),
                SparseVector({2: 1.0}, 4),
                BitParam(check_bits("101")),
            ],
        ).fetchone()
    assert row == (5.0, "[1.5,2]", "{3:1}/4", "101")


def test_plain_connection_sends_a_bare_ndarray_as_a_vector(vector_database_url: str) -> None:
    with psycopg.connect(libpq_conninfo(vector_database_url), autocommit=True) as conn:
        register_adapters(conn)
        conn.execute("CREATE TEMP TABLE nd (e vector(3))")
        conn.execute("INSERT INTO nd VALUES (%s)", [np.array([1, 2, 3], dtype=np.int16)])
        with conn.cursor(binary=True) as cur:
            cur.execute("INSERT INTO nd VALUES (%b)", [np.array([4.5, 5, 6])])
        rows = conn.execute("SELECT e, e <-> %s FROM nd ORDER BY 2", [np.zeros(3)]).fetchall()
    assert [r[0].tolist() for r in rows] == [[1, 2, 3], [4.5, 5, 6]]
    assert rows[0][1] == pytest.approx(np.sqrt(14))


def test_plain_connection_refuses_a_bad_ndarray_before_sending(vector_database_url: str) -> None:
    with psycopg.connect(libpq_conninfo(vector_database_url), autocommit=True) as conn:
        register_adapters(conn)
        conn.execute("CREATE TEMP TABLE nd (e vector(2))")
        with pytest.raises(InvalidVectorError, match="NaN not allowed in vector"):
            conn.execute("INSERT INTO nd VALUES (%s)", [np.array([1.0, np.nan])])
        assert conn.execute("SELECT count(*) FROM nd").fetchone() == (0,)


async def test_register_adapters_async_on_a_plain_connection(vector_database_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(libpq_conninfo(vector_database_url)) as conn:
        oids = await register_adapters_async(conn)
        assert set(oids) == {"vector", "halfvec", "sparsevec"}
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        cur = conn.cursor(binary=True)
        await cur.execute(TYPES_QUERY)
        check_typed_row(await cur.fetchone())
        await cur.execute("SELECT %s::vector <#> '[1,1]'", [DenseParam(check_dense([2, 3]))])
        assert await cur.fetchone() == (-5.0,)


def test_types_are_usable_without_any_engine_flags(engine: Engine) -> None:
    md = MetaData()
    t = Table("all4", md, Column("v", Vector(2)), Column("h", HalfVec(2)), Column("b", Bit(2)))
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(t), {"v": [1, 2], "h": [3, 4], "b": "01"})
        v, h, b = conn.execute(select(t)).one()
    assert (v.tolist(), h.tolist(), b) == ([1, 2], [3, 4], "01")


def test_install_on_a_used_engine_reaches_its_pooled_connections(
    vector_database_url: str, vector_schema: str
) -> None:
    eng = make_engine(vector_database_url, vector_schema, "text")
    try:
        with eng.connect() as conn:  # a connection made before install(), back in the pool
            pid = conn.connection.driver_connection.info.backend_pid  # type: ignore[union-attr]
        assert install(eng)
        with eng.begin() as conn:
            assert conn.connection.driver_connection.info.backend_pid == pid  # type: ignore[union-attr]
            got = conn.execute(
                select(func.vector_dims(bindparam("v", type_=Vector(3))) + 0),
                {"v": np.array([1, 2, 3], dtype=np.float32)},
            ).scalar()
            raw = conn.connection.driver_connection
            assert raw is not None
            oid = server_oids(raw)["vector"]
            assert raw.adapters.get_loader(oid, Format.BINARY) is not None
        assert got == 3
    finally:
        eng.dispose()


# --- one activation path -----------------------------------------------------------------


def _plain_dialect_vars() -> set[str]:
    eng = create_engine("postgresql+psycopg://u@localhost/db")  # (never connects)
    try:
        return set(vars(eng.dialect))
    finally:
        eng.dispose()


@pytest.mark.parametrize("how", ["plugins", "url"])
def test_a_plugin_engines_dialect_is_vecalchemys_with_nothing_assigned_to_it(
    vector_database_url: str, how: str
) -> None:
    if how == "plugins":
        eng = create_engine(vector_database_url, plugins=["vecalchemy"])
    else:
        eng = create_engine(
            make_url(vector_database_url).update_query_dict({"plugin": "vecalchemy"})
        )
    try:
        assert type(eng.dialect) is VecalchemyDialect
        assert eng.dialect.driver == "psycopg"
        # the instance holds what any psycopg dialect instance holds, and no method or
        # class vecalchemy put there
        assert set(vars(eng.dialect)) == _plain_dialect_vars()
        assert not any(
            callable(v) or isinstance(v, type)
            for k, v in vars(eng.dialect).items()
            if "vecalchemy" in repr(v).lower()
        )
        with eng.connect() as conn:
            assert (
                conn.execute(
                    select(func.vector_dims(bindparam("v", type_=Vector(3))) + 0), {"v": [1, 2, 3]}
                ).scalar()
                == 3
            )
    finally:
        eng.dispose()


async def test_an_async_plugin_engine_gets_the_async_vecalchemy_dialect(
    vector_database_url: str,
) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    eng = create_async_engine(vector_database_url, plugins=["vecalchemy"])
    try:
        assert type(eng.dialect) is VecalchemyAsyncDialect
        assert eng.dialect.driver == "psycopg"  # (as SQLAlchemy's own async psycopg dialect)
        async with eng.connect() as conn:
            got = await conn.execute(select(bindparam("v", type_=Vector(2))), {"v": [1, 2]})
            assert got.scalar().tolist() == [1, 2]
    finally:
        await eng.dispose()


def test_the_plugin_leaves_other_drivers_urls_alone() -> None:
    from vecalchemy.plugin import VecalchemyPlugin

    plugin = VecalchemyPlugin(make_url("sqlite://"), {})
    for url in ("sqlite://", "postgresql://u@h/d", "mysql+pymysql://u@h/d"):
        assert plugin.update_url(make_url(url)).drivername == make_url(url).drivername
    assert plugin.update_url(make_url("postgresql+psycopg://u@h/d?plugin=vecalchemy")) == (
        make_url("postgresql+vecalchemy://u@h/d")
    )


def test_binds_are_binary_by_the_dialects_colspecs_and_a_users_subclass_keeps_its_class(
    vector_database_url: str,
) -> None:
    class Scaled(Vector):
        cache_ok = True

    plain = create_engine(vector_database_url)
    ours = create_engine(vector_database_url, plugins=["vecalchemy"])
    try:
        for vtype in (Vector(3), HalfVec(3), Scaled(3)):
            on_plain, on_ours = vtype.dialect_impl(plain.dialect), vtype.dialect_impl(ours.dialect)
            assert type(on_ours) is type(vtype) and type(on_plain) is type(vtype)
            assert on_plain.impl_instance.bind_format == "text"
            assert on_ours.impl_instance.bind_format == "psycopg"
            assert on_ours.metric == vtype.metric
            assert isinstance(on_plain.bind_processor(plain.dialect)(np.ones(3)), str)
            assert not isinstance(on_ours.bind_processor(ours.dialect)(np.ones(3)), str)
    finally:
        plain.dispose()
        ours.dispose()


def test_install_on_a_vecalchemy_engine_adds_only_engine_events(vector_database_url: str) -> None:
    eng = create_engine(vector_database_url, plugins=["vecalchemy"])
    try:
        before = set(vars(eng.dialect))
        assert install(eng) is True
        assert set(vars(eng.dialect)) == before
        assert not any(
            event.contains(eng, "connect", c) for c, _ in plugin_module._REGISTER.values()
        )
    finally:
        eng.dispose()
