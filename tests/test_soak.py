"""Soak: one psycopg engine (vecalchemy's plugin) under 8 threads and one asyncpg engine
under 64 asyncio tasks, for a minute, with everything at once.

Mixed executemany INSERTs (some rolled back on purpose), ``copy_rows`` /
``copy_rows_async``, top-k queries under ``search_settings(ef_search=...)`` or the
``vector_search`` execution option, and HNSW builds (plain and CONCURRENTLY) on side
tables, while checkers read ``hnsw.ef_search`` in plain transactions of the same pools.
At the end: 0 errors, exactly the committed rows (ids compared one by one), and no
search setting seen outside its own transaction. The figures are printed.

Not in the default run (``-m "not soak"`` in the pytest options); run it with
``pytest -m soak -s``. ``VECALCHEMY_SOAK_SECONDS`` sets the duration (default 60).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from conftest import make_async_engine, make_engine
from sqlalchemy import (
    BigInteger,
    Column,
    MetaData,
    Table,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vecalchemy import HnswIndex, Vector, build_vector_index, search_settings
from vecalchemy.bulk import copy_rows, copy_rows_async
from vecalchemy.indexes import build_vector_index_async

pytestmark = pytest.mark.soak

SECONDS = float(os.environ.get("VECALCHEMY_SOAK_SECONDS", "60"))
THREADS = 8
TASKS = 64
DIM = 32
#: rows an INSERT / a COPY / a side table takes
INSERT_ROWS = 50
COPY_ROWS = 200
SIDE_ROWS = 300
SEED_ROWS = 1000
#: pgvector's default hnsw.ef_search; the values set are always above it
DEFAULT_EF_SEARCH = "40"
#: the share of each kind of operation
WEIGHTS = {
    "insert": 30,
    "insert_rolled_back": 5,
    "copy": 20,
    "search": 37,
    "build": 8,
}

_CURRENT_EF = text("SELECT current_setting('hnsw.ef_search', true)")
_INDEX_VALID = text(
    "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = current_schema() AND c.relname = :name"
)


@dataclass
class Figures:
    """What the soak counts, shared by the threads and the tasks."""

    ops: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    expected_ids: set[int] = field(default_factory=set)
    #: reads of hnsw.ef_search outside any search block: the default, not loaded yet
    #: in that backend (NULL: the library's settings do not exist there), or anything
    #: else (a setting seen outside its own transaction)
    outside_default: int = 0
    outside_unloaded: int = 0
    leaks: list[str] = field(default_factory=list)
    #: reads inside a search block that saw the block's own value
    inside_own: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    _next_id: int = 0

    def ids(self, n: int) -> np.ndarray:
        with self.lock:
            start = self._next_id
            self._next_id += n
        return np.arange(start, start + n, dtype=np.int64)

    def committed(self, ids: np.ndarray) -> None:
        with self.lock:
            self.expected_ids.update(int(i) for i in ids)

    def count(self, kind: str) -> None:
        with self.lock:
            self.ops[kind] += 1

    def error(self, where: str, e: BaseException) -> None:
        with self.lock:
            self.errors.append(f"{where}: {type(e).__name__}: {e}")

    def outside(self, value: Any, where: str) -> None:
        with self.lock:
            if value is None:
                self.outside_unloaded += 1
            elif str(value) == DEFAULT_EF_SEARCH:
                self.outside_default += 1
            else:
                self.leaks.append(f"{where}: hnsw.ef_search = {value!r}")

    def inside(self, value: Any, expected: int, where: str) -> None:
        with self.lock:
            if str(value) == str(expected):
                self.inside_own += 1
            else:
                self.errors.append(
                    f"{where}: inside its block hnsw.ef_search = {value!r}, set {expected}"
                )


def _items_table(md: MetaData) -> Table:
    t = Table(
        "soak_items",
        md,
        Column("id", BigInteger, primary_key=True),
        Column("embedding", Vector(DIM, metric="l2")),
    )
    HnswIndex("soak_items_hnsw", t.c.embedding, m=8, ef_construction=32)
    return t


def _vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.standard_normal((n, DIM)).astype(np.float32)


def _rows(ids: np.ndarray, m: np.ndarray) -> list[dict[str, Any]]:
    return [{"id": int(i), "embedding": v} for i, v in zip(ids, m, strict=True)]


def _side_table(tag: str) -> Table:
    return Table(
        f"soak_side_{tag}",
        MetaData(),
        Column("id", BigInteger, primary_key=True),
        Column("embedding", Vector(DIM, metric="cosine")),
    )


def _side_index(side: Table, rng: np.random.Generator) -> HnswIndex:
    """The side table's index, declared once the table exists (``create_all`` would
    build it with the table)."""
    concurrently = bool(rng.random() < 0.5)
    return HnswIndex(f"{side.name}_ix", side.c.embedding, concurrently=concurrently)


def _topk_query(items: Table, q: np.ndarray) -> Any:
    return select(items.c.id).order_by(items.c.embedding.l2_distance(q)).limit(10)


# --- the sync side: threads on the psycopg engine ----------------------------------------


def _sync_search(conn: Connection, items: Table, rng: np.random.Generator, f: Figures) -> None:
    ef = int(rng.integers(41, 400))
    q = _vectors(rng, 1)[0]
    with conn.begin():
        if rng.random() < 0.5:
            with search_settings(conn, ef_search=ef):
                f.inside(conn.execute(_CURRENT_EF).scalar(), ef, "thread search_settings")
                ids = conn.execute(_topk_query(items, q)).scalars().all()
        else:
            stmt = _topk_query(items, q).execution_options(vector_search={"ef_search": ef})
            ids = conn.execute(stmt).scalars().all()
            f.inside(conn.execute(_CURRENT_EF).scalar(), ef, "thread vector_search")
    if len(ids) != 10:
        raise AssertionError(f"top-10 gave {len(ids)} rows")
    with conn.begin():  # the same connection, the next transaction: the default again
        f.outside(conn.execute(_CURRENT_EF).scalar(), "thread after its search")


def _sync_build(engine: Engine, tag: str, rng: np.random.Generator, f: Figures) -> None:
    side = _side_table(tag)
    side.metadata.create_all(engine)
    ix = _side_index(side, rng)
    try:
        with engine.begin() as conn:
            copy_rows(
                conn,
                side,
                {"id": np.arange(SIDE_ROWS), "embedding": _vectors(rng, SIDE_ROWS)},
                progress=False,
            )
        samples: list[Any] = []
        build_vector_index(engine, ix, progress=samples.append, poll_interval=0.02)
        with engine.connect() as conn:
            valid = conn.execute(_INDEX_VALID, {"name": ix.name}).scalar()
            count = conn.execute(select(func.count()).select_from(side)).scalar()
        if valid is not True or count != SIDE_ROWS:
            raise AssertionError(f"{ix.name}: valid={valid}, {count} rows of {SIDE_ROWS}")
    finally:
        side.metadata.drop_all(engine)


def _thread_worker(engine: Engine, items: Table, n: int, deadline: float, f: Figures) -> None:
    rng = np.random.default_rng(n)
    kinds = list(WEIGHTS)
    weights = np.array(list(WEIGHTS.values()), dtype=float)
    weights /= weights.sum()
    k = 0
    while time.monotonic() < deadline:
        kind = str(rng.choice(kinds, p=weights))
        k += 1
        try:
            if kind in ("insert", "insert_rolled_back"):
                ids = f.ids(INSERT_ROWS)
                rows = _rows(ids, _vectors(rng, INSERT_ROWS))
                with engine.connect() as conn:
                    result = conn.execute(insert(items), rows)
                    if result.rowcount != INSERT_ROWS:
                        raise AssertionError(f"rowcount {result.rowcount}")
                    if kind == "insert":
                        conn.commit()
                        f.committed(ids)
                    else:
                        conn.rollback()
            elif kind == "copy":
                ids = f.ids(COPY_ROWS)
                with engine.begin() as conn:
                    copy_rows(
                        conn,
                        items,
                        {"id": ids, "embedding": _vectors(rng, COPY_ROWS)},
                        progress=False,
                    )
                f.committed(ids)
            elif kind == "search":
                with engine.connect() as conn:
                    _sync_search(conn, items, rng, f)
            else:
                _sync_build(engine, f"t{n}_{k}", rng, f)
            f.count(f"thread {kind}")
        except Exception as e:
            f.error(f"thread {n} {kind}", e)


def _thread_checker(engine: Engine, deadline: float, f: Figures) -> None:
    while time.monotonic() < deadline:
        try:
            with engine.begin() as conn:
                f.outside(conn.execute(_CURRENT_EF).scalar(), "thread checker")
            f.count("thread check")
        except Exception as e:
            f.error("thread checker", e)
        time.sleep(0.002)


# --- the async side: tasks on the asyncpg engine -----------------------------------------


async def _async_search(
    conn: AsyncConnection, items: Table, rng: np.random.Generator, f: Figures
) -> None:
    ef = int(rng.integers(41, 400))
    q = _vectors(rng, 1)[0]
    async with conn.begin():
        if rng.random() < 0.5:
            async with search_settings(conn, ef_search=ef):
                f.inside((await conn.execute(_CURRENT_EF)).scalar(), ef, "task search_settings")
                ids = (await conn.execute(_topk_query(items, q))).scalars().all()
        else:
            stmt = _topk_query(items, q).execution_options(vector_search={"ef_search": ef})
            ids = (await conn.execute(stmt)).scalars().all()
            f.inside((await conn.execute(_CURRENT_EF)).scalar(), ef, "task vector_search")
    if len(ids) != 10:
        raise AssertionError(f"top-10 gave {len(ids)} rows")
    async with conn.begin():
        f.outside((await conn.execute(_CURRENT_EF)).scalar(), "task after its search")


async def _async_build(
    engine: AsyncEngine, tag: str, rng: np.random.Generator, f: Figures
) -> None:
    side = _side_table(tag)
    async with engine.begin() as conn:
        await conn.run_sync(side.metadata.create_all)
    ix = _side_index(side, rng)
    try:
        async with engine.begin() as conn:
            await copy_rows_async(
                conn,
                side,
                {"id": np.arange(SIDE_ROWS), "embedding": _vectors(rng, SIDE_ROWS)},
                progress=False,
            )
        await build_vector_index_async(engine, ix, progress=False)
        async with engine.connect() as conn:
            valid = (await conn.execute(_INDEX_VALID, {"name": ix.name})).scalar()
            count = (await conn.execute(select(func.count()).select_from(side))).scalar()
        if valid is not True or count != SIDE_ROWS:
            raise AssertionError(f"{ix.name}: valid={valid}, {count} rows of {SIDE_ROWS}")
    finally:
        async with engine.begin() as conn:
            await conn.run_sync(side.metadata.drop_all)


async def _task_worker(
    engine: AsyncEngine, items: Table, n: int, deadline: float, f: Figures
) -> None:
    rng = np.random.default_rng(1000 + n)
    kinds = list(WEIGHTS)
    weights = np.array(list(WEIGHTS.values()), dtype=float)
    weights /= weights.sum()
    k = 0
    while time.monotonic() < deadline:
        kind = str(rng.choice(kinds, p=weights))
        k += 1
        try:
            if kind in ("insert", "insert_rolled_back"):
                ids = f.ids(INSERT_ROWS)
                rows = _rows(ids, _vectors(rng, INSERT_ROWS))
                async with engine.connect() as conn:
                    await conn.execute(insert(items), rows)
                    if kind == "insert":
                        await conn.commit()
                        f.committed(ids)
                    else:
                        await conn.rollback()
            elif kind == "copy":
                ids = f.ids(COPY_ROWS)
                async with engine.begin() as conn:
                    await copy_rows_async(
                        conn,
                        items,
                        {"id": ids, "embedding": _vectors(rng, COPY_ROWS)},
                        progress=False,
                    )
                f.committed(ids)
            elif kind == "search":
                async with engine.connect() as conn:
                    await _async_search(conn, items, rng, f)
            else:
                await _async_build(engine, f"a{n}_{k}", rng, f)
            f.count(f"task {kind}")
        except Exception as e:
            f.error(f"task {n} {kind}", e)


async def _task_checker(engine: AsyncEngine, deadline: float, f: Figures) -> None:
    while time.monotonic() < deadline:
        try:
            async with engine.begin() as conn:
                f.outside((await conn.execute(_CURRENT_EF)).scalar(), "task checker")
            f.count("task check")
        except Exception as e:
            f.error("task checker", e)
        await asyncio.sleep(0.002)


async def _run_tasks(url: str, schema: str, items: Table, deadline: float, f: Figures) -> None:
    engine = make_async_engine(url, schema, "asyncpg", pool_size=20, max_overflow=0)
    try:
        await asyncio.gather(
            *(_task_worker(engine, items, n, deadline, f) for n in range(TASKS)),
            _task_checker(engine, deadline, f),
        )
    finally:
        await engine.dispose()


# --- the soak ----------------------------------------------------------------------------


def _report(f: Figures, found: int, elapsed: float, missing: int, extra: int) -> str:
    lines = [f"soak: {elapsed:.1f} s, {THREADS} threads (psycopg), {TASKS} tasks (asyncpg)"]
    for side in ("thread", "task"):
        ops = {k.split(" ", 1)[1]: v for k, v in sorted(f.ops.items()) if k.startswith(side)}
        lines.append(f"  {side} operations: {sum(ops.values())} {ops}")
    lines += [
        f"  errors: {len(f.errors)}",
        f"  rows expected: {len(f.expected_ids)}, found: {found} "
        f"(missing {missing}, unexpected {extra})",
        f"  hnsw.ef_search inside its block: own value {f.inside_own} times",
        f"  hnsw.ef_search outside: default {f.outside_default}, not loaded yet "
        f"{f.outside_unloaded}, another value {len(f.leaks)}",
    ]
    lines += [f"  error: {e}" for e in f.errors[:20]]
    lines += [f"  leak: {e}" for e in f.leaks[:20]]
    return "\n".join(lines)


def test_soak_threads_and_tasks_mixed_load(vector_database_url: str, vector_schema: str) -> None:
    engine = make_engine(
        vector_database_url, vector_schema, "plugin", pool_size=10, max_overflow=6
    )
    f = Figures()
    try:
        md = MetaData()
        items = _items_table(md)
        md.create_all(engine)
        seed = f.ids(SEED_ROWS)
        with engine.begin() as conn:
            copy_rows(
                conn,
                items,
                {"id": seed, "embedding": _vectors(np.random.default_rng(0), SEED_ROWS)},
                progress=False,
            )
        f.committed(seed)

        started = time.monotonic()
        deadline = started + SECONDS
        threads = [
            threading.Thread(target=_thread_worker, args=(engine, items, n, deadline, f))
            for n in range(THREADS)
        ]
        threads.append(threading.Thread(target=_thread_checker, args=(engine, deadline, f)))
        for t in threads:
            t.start()
        try:
            asyncio.run(_run_tasks(vector_database_url, vector_schema, items, deadline, f))
        finally:
            for t in threads:
                t.join()
        elapsed = time.monotonic() - started

        with engine.connect() as conn:
            found_ids = set(conn.execute(select(items.c.id)).scalars())
            found = conn.execute(select(func.count()).select_from(items)).scalar_one()
        missing = len(f.expected_ids - found_ids)
        extra = len(found_ids - f.expected_ids)
        print("\n" + _report(f, found, elapsed, missing, extra))

        assert f.errors == []
        assert f.leaks == []
        assert found == len(f.expected_ids) and missing == 0 and extra == 0
        assert f.inside_own > 0 and f.outside_default > 0
        for kind in WEIGHTS:  # every kind ran, on both sides
            assert f.ops[f"thread {kind}"] > 0 and f.ops[f"task {kind}"] > 0, kind
    finally:
        engine.dispose()
