"""The planner leaving the HNSW index for a sequential scan, on a realistic table, and
each remedy taking it back.

The recipe (pgvector issues #784, #821, #835): 20 000 x 768 ``vector`` rows loaded with
COPY through three DELETE + reload cycles, the HNSW index built after the last load, then
ANALYZE. A 768-d vector (3080 bytes) lives in the TOAST table, so the heap holds ~56-byte
rows, and the dead rows of the earlier loads make the heap 3x longer than its live rows
need. pgvector's cost estimate (src/hnsw.c ``hnswcostestimate``) lowers an HNSW scan's
cost for TOASTed tables only while the index pages it expects to read outnumber the
heap's pages; the longer heap switches that off and ``Seq Scan`` + ``Sort`` (which counts
no TOAST page) comes out cheaper. The plan is read with ``EXPLAIN`` (never forced with
``enable_indexscan = off``); latencies are printed (``pytest -s``), not asserted.

The HNSW index has pgvector's default ``m = 16`` and ``ef_construction = 32`` (the least
pgvector allows with that ``m``; the default 64 builds about twice as slowly): the cost
estimate reads ``m``, the index's pages and tuples, never ``ef_construction``, and the
index pages depend on ``m`` and the dimensions only. The tests share one table, built
once (a load, an HNSW build, and a second build in the storage test's VACUUM FULL), and
run in file order: the storage test rewrites the table.
"""

from __future__ import annotations

import statistics
import time
import uuid
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from conftest import make_engine
from sqlalchemy import BigInteger, Column, MetaData, Table, select, text
from sqlalchemy.engine import Connection, Engine

from vecalchemy import HnswIndex, Vector, install_plan_guard
from vecalchemy.bulk import copy_rows
from vecalchemy.checks import explain_index_usage
from vecalchemy.exc import SearchSettingError, VectorPlanWarning
from vecalchemy.pytest_plugin import libpq_conninfo
from vecalchemy.search import SearchSettings, install_search_options, search_settings
from vecalchemy.storage import column_storage, count_out_of_line, set_vector_storage

ROWS = 20_000
DIM = 768
CYCLES = 3
K = 10

metadata = MetaData()
docs = Table(
    "docs",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("embedding", Vector(DIM, metric="cosine")),
)

_rng = np.random.default_rng(784)
QUERY = _rng.standard_normal(DIM).astype(np.float32)


def _top_k(q: np.ndarray = QUERY) -> Any:
    return select(docs.c.id).order_by(docs.c.embedding.cosine_distance(q)).limit(K)


def _autocommit(url: str, schema: str, sql: str) -> None:
    """``sql`` outside a transaction block (VACUUM), with room for an HNSW rebuild."""
    with psycopg.connect(
        libpq_conninfo(url), autocommit=True, options=f"-csearch_path={schema},public"
    ) as raw:
        raw.execute("SET maintenance_work_mem = '256MB'")
        raw.execute(sql)


@pytest.fixture(scope="module")
def flipped(vector_database_url: str) -> Iterator[tuple[Engine, str, str]]:
    """(engine, url, schema) of the loaded, indexed, analyzed table."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(libpq_conninfo(vector_database_url), autocommit=True) as raw:
        raw.execute(f'CREATE SCHEMA "{schema}"')
    engine = make_engine(vector_database_url, schema, "plugin")
    started = time.perf_counter()
    with engine.begin() as conn:
        metadata.create_all(conn)
    ids = np.arange(ROWS, dtype=np.int64)
    for _ in range(CYCLES):
        with engine.begin() as conn:
            conn.execute(docs.delete())
            matrix = _rng.standard_normal((ROWS, DIM), dtype=np.float32)
            copy_rows(conn, docs, {"id": ids, "embedding": matrix}, progress=False)
    loaded = time.perf_counter()
    with engine.begin() as conn:
        # the pgvector README's advice for a build: the graph fits in memory
        conn.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
        HnswIndex("docs_embedding_hnsw", docs.c.embedding, ef_construction=32).create(conn)
    built = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(text("ANALYZE docs"))
    print(
        f"\n[flip] load {CYCLES} x {ROWS} x {DIM}: {loaded - started:.1f} s, "
        f"HNSW build {built - loaded:.1f} s"
    )
    yield engine, vector_database_url, schema
    engine.dispose()
    with psycopg.connect(libpq_conninfo(vector_database_url), autocommit=True) as raw:
        raw.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _latency_ms(conn: Connection, stmt: Any, runs: int = 7) -> float:
    """Median wall time of the statement (the first run, warming the cache, not counted)."""
    conn.execute(stmt).all()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        rows = conn.execute(stmt).all()
        times.append((time.perf_counter() - start) * 1000)
        assert len(rows) == K
    return statistics.median(times)


def _pages(conn: Connection) -> tuple[int, int]:
    """(heap pages, TOAST pages) of the table, from the catalog."""
    row = conn.execute(
        text(
            "SELECT c.relpages, coalesce(pg_relation_size(c.reltoastrelid) / 8192, 0) "
            "FROM pg_class c WHERE c.oid = 'docs'::regclass"
        )
    ).one()
    return int(row[0]), int(row[1])


# --- the setting itself (no table needed) ------------------------------------------------


def test_prefer_index_is_enable_seqscan_off_and_round_trips() -> None:
    assert SearchSettings(prefer_index=True).gucs() == {"enable_seqscan": "off"}
    assert SearchSettings(prefer_index=False).gucs() == {"enable_seqscan": "on"}
    assert SearchSettings.from_gucs({"enable_seqscan": "off", "hnsw.ef_search": 100}) == (
        SearchSettings(ef_search=100, prefer_index=True)
    )


@pytest.mark.parametrize("value", [1, 0, "off", "true", 1.0])
def test_prefer_index_takes_a_bool_only(value: Any) -> None:
    with pytest.raises(SearchSettingError, match=r"prefer_index \(enable_seqscan = off\) must "):
        SearchSettings(prefer_index=value)


def test_prefer_index_from_gucs_takes_off_or_on() -> None:
    with pytest.raises(SearchSettingError, match="enable_seqscan must be 'off' or 'on', got 0"):
        SearchSettings.from_gucs({"enable_seqscan": 0})


def test_prefer_index_is_set_and_restored_through_each_driver(engine: Engine) -> None:
    with engine.connect() as conn:
        with search_settings(conn, prefer_index=True, ef_search=64):
            assert conn.execute(text("SHOW enable_seqscan")).scalar() == "off"
            assert conn.execute(text("SHOW hnsw.ef_search")).scalar() == "64"
        assert conn.execute(text("SHOW enable_seqscan")).scalar() == "on"


# --- the flip, on the realistic table ----------------------------------------------------


def test_bloated_toasted_table_plans_a_sequential_scan(flipped: tuple[Engine, str, str]) -> None:
    engine, _, _ = flipped
    with engine.connect() as conn:
        usage = explain_index_usage(conn, _top_k())
        assert not usage.uses_vector_index, usage.plan
        assert any(line.strip() == "Seq Scan on docs" for line in usage.plan), usage.plan
        assert count_out_of_line(conn, docs.c.embedding) == ROWS  # every vector TOASTed
        heap, toast = _pages(conn)
        assert heap >= CYCLES * ROWS // 150  # the dead rows of the earlier loads
        assert toast > 10 * heap
        seq_ms = _latency_ms(conn, _top_k())
    print(f"\n[flip] Seq Scan + Sort: {seq_ms:.1f} ms (heap {heap} pages, TOAST {toast} pages)")


def test_plan_guard_warns_on_the_flip(flipped: tuple[Engine, str, str]) -> None:
    _, url, schema = flipped
    engine = make_engine(url, schema, "plugin")
    install_plan_guard(engine)
    try:
        with engine.connect() as conn, pytest.warns(VectorPlanWarning) as record:
            ids = conn.scalars(_top_k()).all()
        assert len(ids) == K
        message = str(record[0].message)
        assert "Seq Scan on docs" in message
        assert "prefer_index=True" in message and "SET STORAGE PLAIN" in message
    finally:
        engine.dispose()


def test_plan_guard_is_silent_under_prefer_index(flipped: tuple[Engine, str, str]) -> None:
    _, url, schema = flipped
    engine = make_engine(url, schema, "plugin")
    install_plan_guard(engine)
    try:
        with engine.connect() as conn, warnings.catch_warnings():
            warnings.simplefilter("error", VectorPlanWarning)
            with search_settings(conn, prefer_index=True):
                assert len(conn.scalars(_top_k()).all()) == K
    finally:
        engine.dispose()


def test_prefer_index_takes_the_index_inside_the_block_only(
    flipped: tuple[Engine, str, str],
) -> None:
    engine, _, _ = flipped
    with engine.connect() as conn:
        with search_settings(conn, prefer_index=True) as applied:
            assert applied == SearchSettings(prefer_index=True)
            assert conn.execute(text("SHOW enable_seqscan")).scalar() == "off"
            usage = explain_index_usage(conn, _top_k())
            assert usage.index_names == ("docs_embedding_hnsw",), usage.plan
            index_ms = _latency_ms(conn, _top_k())
        assert conn.execute(text("SHOW enable_seqscan")).scalar() == "on"
        assert not explain_index_usage(conn, _top_k()).uses_vector_index
        seq_ms = _latency_ms(conn, _top_k())
    print(f"\n[flip] prefer_index=True: Index Scan {index_ms:.1f} ms (Seq Scan {seq_ms:.1f} ms)")


def test_prefer_index_as_an_execution_option(flipped: tuple[Engine, str, str]) -> None:
    _, url, schema = flipped
    engine = make_engine(url, schema, "plugin")
    install_search_options(engine)
    try:
        with engine.connect() as conn:
            preferring = conn.execution_options(vector_search={"prefer_index": True})
            usage = explain_index_usage(preferring, _top_k())
            assert usage.index_names == ("docs_embedding_hnsw",), usage.plan
    finally:
        engine.dispose()


def test_analyze_and_vacuum_alone_keep_the_sequential_scan(
    flipped: tuple[Engine, str, str],
) -> None:
    """Fresh statistics do not help here: the heap keeps its pages (VACUUM frees the dead
    rows' space but cannot truncate pages that precede live ones)."""
    engine, url, schema = flipped
    with engine.begin() as conn:
        conn.execute(text("ANALYZE docs"))
    with engine.connect() as conn:
        assert not explain_index_usage(conn, _top_k()).uses_vector_index
    _autocommit(url, schema, "VACUUM ANALYZE docs")
    with engine.connect() as conn:
        usage = explain_index_usage(conn, _top_k())
        heap, _ = _pages(conn)
    assert not usage.uses_vector_index, usage.plan
    plan = " / ".join(line.strip() for line in usage.plan)
    print(f"\n[flip] after ANALYZE, and VACUUM ANALYZE: still {plan} ({heap} heap pages)")


def test_storage_plain_takes_the_index_once_the_rows_are_rewritten(
    flipped: tuple[Engine, str, str],
) -> None:
    engine, url, schema = flipped
    with engine.begin() as conn:
        assert set_vector_storage(conn, docs.c.embedding, "plain") == "external"
    with engine.connect() as conn:
        assert column_storage(conn, "docs", "embedding") == "plain"
        # SET STORAGE changes no stored value: still TOASTed, still the same plan
        assert count_out_of_line(conn, docs.c.embedding) == ROWS
        assert not explain_index_usage(conn, _top_k()).uses_vector_index
    started = time.perf_counter()
    _autocommit(url, schema, "VACUUM FULL docs")  # rewrites the rows and rebuilds the index
    rewritten = time.perf_counter() - started
    _autocommit(url, schema, "ANALYZE docs")
    with engine.connect() as conn:
        assert count_out_of_line(conn, docs.c.embedding) == 0
        heap, _ = _pages(conn)
        assert heap >= ROWS // 2  # two 3 kB rows a page
        usage = explain_index_usage(conn, _top_k())
        assert usage.index_names == ("docs_embedding_hnsw",), usage.plan
        index_ms = _latency_ms(conn, _top_k())
    print(
        f"\n[flip] STORAGE PLAIN + VACUUM FULL ({rewritten:.1f} s): Index Scan "
        f"{index_ms:.1f} ms (heap {heap} pages)"
    )
