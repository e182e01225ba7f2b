"""Search settings (SET LOCAL, checked on the client) and the documented query shapes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from conftest import ASYNC_MODES, make_async_engine, make_engine
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    Table,
    cast,
    event,
    func,
    select,
    text,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from vecalchemy import (
    Bit,
    HnswIndex,
    SearchSettingError,
    SearchSettings,
    Vector,
    apply_search_settings,
    binary_quantize,
    binary_quantized_search,
    explain_index_usage,
    install_search_options,
    iterative_search,
    search_settings,
)


def _setting(conn: Connection | Session, name: str) -> str:
    return str(conn.execute(select(func.current_setting(name))).scalar_one())


@pytest.fixture
def sent(engine: Engine) -> Iterator[list[str]]:
    """Every statement the engine sends."""
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    yield statements
    event.remove(engine, "before_cursor_execute", record)


# --- visible inside the transaction, gone after ------------------------------------------


def test_settings_hold_inside_the_transaction_and_are_gone_after(engine: Engine) -> None:
    with engine.connect() as conn:
        with search_settings(
            conn,
            ef_search=123,
            hnsw_iterative_scan="strict_order",
            max_scan_tuples=5000,
            scan_mem_multiplier=2.5,
            probes=7,
            ivfflat_iterative_scan="relaxed_order",
            max_probes=9,
        ):
            assert _setting(conn, "hnsw.ef_search") == "123"
            assert _setting(conn, "hnsw.iterative_scan") == "strict_order"
            assert _setting(conn, "hnsw.max_scan_tuples") == "5000"
            assert _setting(conn, "hnsw.scan_mem_multiplier") == "2.5"
            assert _setting(conn, "ivfflat.probes") == "7"
            assert _setting(conn, "ivfflat.iterative_scan") == "relaxed_order"
            assert _setting(conn, "ivfflat.max_probes") == "9"
            conn.commit()
        assert _setting(conn, "hnsw.ef_search") == "40"
        assert _setting(conn, "ivfflat.probes") == "1"


def test_leaving_the_block_restores_the_previous_values_in_the_transaction(
    engine: Engine,
) -> None:
    with engine.connect() as conn:
        apply_search_settings(conn, ef_search=60)
        with search_settings(conn, ef_search=200):
            assert _setting(conn, "hnsw.ef_search") == "200"
        assert _setting(conn, "hnsw.ef_search") == "60"
        conn.rollback()
        assert _setting(conn, "hnsw.ef_search") == "40"


def test_settings_on_a_session(engine: Engine) -> None:
    with Session(engine) as session:
        with search_settings(session, probes=12):
            assert _setting(session, "ivfflat.probes") == "12"
        session.commit()
        assert _setting(session, "ivfflat.probes") == "1"


def test_settings_by_pgvector_names_and_settings_object(engine: Engine) -> None:
    with engine.connect() as conn:
        apply_search_settings(conn, {"hnsw.ef_search": 77, "ivfflat.max_probes": 3})
        assert _setting(conn, "hnsw.ef_search") == "77"
        assert _setting(conn, "ivfflat.max_probes") == "3"
        apply_search_settings(conn, SearchSettings.from_gucs({"ivfflat.probes": 4}))
        assert _setting(conn, "ivfflat.probes") == "4"


@pytest.mark.parametrize("mode", ASYNC_MODES)
async def test_settings_on_an_async_session(
    vector_database_url: str, vector_schema: str, mode: str
) -> None:
    engine = make_async_engine(vector_database_url, vector_schema, mode)
    try:
        async with AsyncSession(engine) as session:
            async with search_settings(session, ef_search=321):
                got = await session.execute(select(func.current_setting("hnsw.ef_search")))
                assert got.scalar_one() == "321"
            await session.commit()
            got = await session.execute(select(func.current_setting("hnsw.ef_search")))
            assert got.scalar_one() == "40"
    finally:
        await engine.dispose()


@pytest.mark.parametrize("mode", ASYNC_MODES)
async def test_settings_on_an_async_connection(
    vector_database_url: str, vector_schema: str, mode: str
) -> None:
    engine = make_async_engine(vector_database_url, vector_schema, mode)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(apply_search_settings, probes=20)
            async with search_settings(conn, probes=30):
                got = await conn.execute(select(func.current_setting("ivfflat.probes")))
                assert got.scalar_one() == "30"
            got = await conn.execute(select(func.current_setting("ivfflat.probes")))
            assert got.scalar_one() == "20"  # restored on leaving the block
            await conn.rollback()
            auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
            with pytest.raises(SearchSettingError, match="need a transaction"):
                async with search_settings(auto, probes=30):
                    pass
    finally:
        await engine.dispose()


def test_vector_library_is_loaded_before_setting(
    vector_database_url: str, vector_schema: str, mode: str
) -> None:
    # a fresh backend: without vector.so loaded hnsw.* would only be a placeholder,
    # absent from pg_settings and unchecked by the server
    engine = make_engine(vector_database_url, vector_schema, mode, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            apply_search_settings(conn, ef_search=500)
            row = conn.execute(
                text(
                    "SELECT vartype, min_val, max_val, setting FROM pg_settings "
                    "WHERE name = 'hnsw.ef_search'"
                )
            ).one()
            assert tuple(row) == ("integer", "1", "1000", "500")
    finally:
        engine.dispose()


def test_autocommit_connection_is_refused(engine: Engine) -> None:
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        with pytest.raises(SearchSettingError, match="need a transaction"):
            apply_search_settings(conn, ef_search=10)


# --- injection attempts and range checks: refused without SQL sent --------------------


@pytest.mark.parametrize(
    ("kw", "fragment"),
    [
        ({"ef_search": "100; RESET ALL"}, "ef_search (hnsw.ef_search) must be an int"),
        ({"ef_search": 100.5}, "must be an int between 1 and 1000, got float 100.5"),
        ({"ef_search": -1}, 'outside the valid range for parameter "hnsw.ef_search" (1 .. 1000)'),
        ({"ef_search": 1001}, "1001 is outside the valid range for parameter"),
        ({"ef_search": True}, "must be a number, got a bool"),
        ({"probes": 0}, '"ivfflat.probes" (1 .. 32768)'),
        ({"max_probes": 32769}, '"ivfflat.max_probes" (1 .. 32768)'),
        ({"max_scan_tuples": 2147483648}, "(1 .. 2147483647)"),
        ({"scan_mem_multiplier": float("nan")}, "must be a finite number between 1 and 1000"),
        ({"scan_mem_multiplier": 0.5}, '"hnsw.scan_mem_multiplier" (1 .. 1000)'),
        ({"scan_mem_multiplier": "2"}, "must be a finite number"),
        ({"hnsw_iterative_scan": "on"}, "must be one of off, relaxed_order, strict_order"),
        ({"hnsw_iterative_scan": False}, "got False"),
        ({"ivfflat_iterative_scan": "strict_order"}, "must be one of off, relaxed_order, got"),
        ({"ivfflat_iterative_scan": "off'; DROP TABLE x; --"}, "must be one of off"),
        ({"ef_serach": 10}, "unknown search setting(s) 'ef_serach'"),
        ({"hnsw.foo": 1}, "unknown search setting(s) 'hnsw.foo'"),
    ],
)
def test_bad_value_is_refused_before_anything_is_sent(
    engine: Engine, sent: list[str], kw: dict[str, Any], fragment: str
) -> None:
    with engine.connect() as conn:
        sent.clear()
        with pytest.raises(SearchSettingError) as e:
            apply_search_settings(conn, kw)
        with pytest.raises(SearchSettingError):
            search_settings(conn, kw)
        assert sent == []
    assert fragment in str(e.value)


def test_values_travel_as_bound_parameters(engine: Engine, sent: list[str]) -> None:
    with engine.connect() as conn:
        apply_search_settings(conn, ef_search=99, hnsw_iterative_scan="relaxed_order")
    assert not any("99" in s or "relaxed_order" in s for s in sent)
    assert any("set_config" in s for s in sent)


# --- execution option ---------------------------------------------------------------


def test_execution_option_applies_settings_for_the_transaction(engine: Engine) -> None:
    install_search_options(engine)
    install_search_options(engine)  # idempotent
    stmt = select(func.current_setting("hnsw.ef_search"))
    with engine.connect() as conn:
        got = conn.execute(stmt.execution_options(vector_search={"ef_search": 66})).scalar_one()
        assert got == "66"
        conn.rollback()
        assert conn.execute(stmt).scalar_one() == "40"
    with Session(engine) as session:
        opts = {"vector_search": SearchSettings(probes=5)}
        got = session.execute(
            select(func.current_setting("ivfflat.probes")), execution_options=opts
        ).scalar_one()
        assert got == "5"


def test_execution_option_on_a_connection_applies_before_each_statement(
    engine: Engine, sent: list[str]
) -> None:
    install_search_options(engine)
    stmt = select(func.current_setting("hnsw.ef_search"))
    with engine.connect() as plain:
        conn = plain.execution_options(vector_search={"ef_search": 77})
        sent.clear()
        assert conn.execute(stmt).scalar_one() == "77"
        assert conn.execute(stmt).scalar_one() == "77"
        assert sum("set_config" in s for s in sent) == 2
        conn.rollback()
        assert plain.execute(stmt).scalar_one() == "77"  # the same connection, option set


def test_execution_option_on_the_engine(engine: Engine) -> None:
    install_search_options(engine)
    tuned = engine.execution_options(vector_search=SearchSettings(ef_search=88, probes=3))
    stmt = select(func.current_setting("hnsw.ef_search"), func.current_setting("ivfflat.probes"))
    with tuned.connect() as conn:
        assert tuple(conn.execute(stmt).one()) == ("88", "3")
    with Session(tuned) as session:
        assert tuple(session.execute(stmt).one()) == ("88", "3")
    with engine.connect() as conn:
        assert tuple(conn.execute(stmt).one()) == ("40", "1")


@pytest.mark.parametrize("mode", ASYNC_MODES)
async def test_execution_option_on_an_async_engine(
    vector_database_url: str, vector_schema: str, mode: str
) -> None:
    engine = make_async_engine(vector_database_url, vector_schema, mode)
    install_search_options(engine)
    try:
        async with engine.connect() as conn:
            stmt = select(func.current_setting("hnsw.max_scan_tuples"))
            opts = {"vector_search": {"hnsw.max_scan_tuples": 1234}}
            got = await conn.execute(stmt.execution_options(**opts))
            assert got.scalar_one() == "1234"
        async with AsyncSession(engine) as session:
            probes = await session.scalar(
                select(func.current_setting("ivfflat.probes")),
                execution_options={"vector_search": SearchSettings(probes=6)},
            )
            assert probes == "6"
    finally:
        await engine.dispose()


def test_execution_option_with_a_bad_value_sends_nothing(engine: Engine, sent: list[str]) -> None:
    install_search_options(engine)
    stmt = select(func.current_setting("hnsw.ef_search"))
    with engine.connect() as conn:
        sent.clear()
        with pytest.raises(SearchSettingError, match="1001 is outside the valid range"):
            conn.execute(stmt.execution_options(vector_search={"ef_search": 1001}))
        assert sent == []


# --- query shapes --------------------------------------------------------------------


#: the modes the query shapes run in: psycopg 3 with the plugin, asyncpg with the plugin
#: (binary) and plain (text), psycopg2, pg8000
SHAPE_MODES = ("plugin", "asyncpg", "asyncpg-text", "psycopg2", "pg8000")


@pytest.fixture
def items(engine: Engine, raw_conn: psycopg.Connection) -> tuple[Table, np.ndarray]:
    """300 rows of 16-dim vectors in 3 categories (loaded by COPY), with an HNSW cosine
    index and an HNSW index on the binary-quantized vectors, created through ``engine``."""
    raw_conn.execute("CREATE TABLE items (id int PRIMARY KEY, category int, embedding vector(16))")
    data = np.random.default_rng(7).standard_normal((300, 16)).astype(np.float32)
    with raw_conn.cursor().copy("COPY items (id, category, embedding) FROM STDIN") as copy:
        for i, v in enumerate(data):
            copy.write_row([i, i % 3, "[" + ",".join(map(str, v.tolist())) + "]"])
    t = Table(
        "items",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("category", Integer),
        Column("embedding", Vector(16, metric="cosine")),
    )
    HnswIndex("ix_items", t.c.embedding).create(engine)
    HnswIndex(
        "ix_items_bq", cast(binary_quantize(t.c.embedding), Bit(16)), metric="hamming"
    ).create(engine)
    return t, data


def _cosine(data: np.ndarray, q: np.ndarray) -> np.ndarray:
    return np.asarray(
        1 - (data @ q) / (np.linalg.norm(data, axis=1) * np.linalg.norm(q)), dtype=np.float64
    )


@pytest.mark.parametrize("mode", SHAPE_MODES)
def test_iterative_search_returns_the_filtered_nearest_in_exact_order(
    engine: Engine, items: tuple[Table, np.ndarray]
) -> None:
    t, data = items
    q = data[5] + 0.1
    stmt = iterative_search(
        select(t.c.id).where(t.c.category == 1), t.c.embedding.cosine_distance(q), 10
    )
    sql = str(stmt.compile(engine))
    assert "WITH nearest AS MATERIALIZED" in sql and "ORDER BY nearest.distance +" in sql
    with (
        engine.connect() as conn,
        search_settings(conn, hnsw_iterative_scan="relaxed_order"),
    ):
        rows = conn.execute(stmt).all()
    d = _cosine(data, q)
    wanted = [i for i in np.argsort(d) if i % 3 == 1][:10]
    assert [r.id for r in rows] == wanted
    assert [r.distance for r in rows] == sorted(r.distance for r in rows)


@pytest.mark.parametrize("mode", SHAPE_MODES)
def test_iterative_search_applies_max_distance_outside_the_cte(
    engine: Engine, items: tuple[Table, np.ndarray]
) -> None:
    t, data = items
    q = data[0]
    stmt = iterative_search(select(t.c.id), t.c.embedding.cosine_distance(q), 50, max_distance=0.5)
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    d = _cosine(data, q)
    assert {r.id for r in rows} == {i for i in np.argsort(d)[:50] if d[i] < 0.5}


@pytest.mark.parametrize("mode", SHAPE_MODES)
def test_binary_quantized_search_reranks_exactly(
    engine: Engine, items: tuple[Table, np.ndarray]
) -> None:
    t, data = items
    q = data[42] + 0.05
    stmt = binary_quantized_search(select(t.c.id), t.c.embedding, q, 5, candidates=300)
    with engine.connect() as conn:
        ids = [r.id for r in conn.execute(stmt)]
    assert ids == list(np.argsort(_cosine(data, q))[:5])


@pytest.mark.parametrize("bq_metric", ["l2", "hamming_distance"])
def test_binary_quantized_search_refuses_a_bq_metric_that_is_not_a_bit_metric(
    bq_metric: str,
) -> None:
    t = Table("bq_docs", MetaData(), Column("id", Integer), Column("e", Vector(3)))
    with pytest.raises(
        ValueError,
        match=f"bq_metric must be a bit metric \\(hamming, jaccard\\), got '{bq_metric}'",
    ):
        binary_quantized_search(
            select(t.c.id), t.c.e, [1, 2, 3], 5, metric="l2", bq_metric=bq_metric
        )


@pytest.mark.parametrize("mode", SHAPE_MODES)
def test_binary_quantized_search_uses_the_binary_index(
    engine: Engine, items: tuple[Table, np.ndarray]
) -> None:
    t, data = items
    stmt = binary_quantized_search(select(t.c.id), t.c.embedding, data[1], 5)
    with engine.connect() as conn:
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        usage = explain_index_usage(conn, stmt)
    assert usage.index_names == ("ix_items_bq",)
