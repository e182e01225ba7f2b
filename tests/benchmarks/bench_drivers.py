"""vecalchemy on asyncpg, psycopg2 and pg8000 against the same driver used raw and through
pgvector-python, same server, same process, alternated runs.

Run by hand (``python tests/benchmarks/bench.py --driver asyncpg`` calls this)::

    python tests/benchmarks/bench_drivers.py --driver asyncpg
    python tests/benchmarks/bench_drivers.py --driver psycopg2 --n 5000
    python tests/benchmarks/bench_drivers.py --driver pg8000 --n 5000

asyncpg workloads (each implementation in turn, order rotated every repeat, medians):

- insert: ``await conn.execute(insert(t), rows)`` on an asyncpg engine with the plugin
  (vecalchemy's binary codecs), raw asyncpg ``executemany`` with
  ``pgvector.asyncpg.register_vector``'s codecs, and pgvector-python's SQLAlchemy type on
  asyncpg (it sends text; what happens is printed);
- copy: ``copy_rows_async`` against raw asyncpg ``copy_records_to_table`` (binary, with
  pgvector's codecs);
- fetch: every ``(id, embedding)`` row through SQLAlchemy, ``fetch_matrix_async``, raw
  asyncpg ``fetch`` with pgvector's codecs;
- topk: 200 top-10 HNSW cosine queries: a ``select()`` per query, ``PreparedQuery``, raw
  asyncpg ``fetch`` of the SQL string.

psycopg2 / pg8000 workloads: insert and fetch, vecalchemy against pgvector-python's
SQLAlchemy types on the same driver (both text there).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import sqlalchemy
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, insert, select
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.types import UserDefinedType
from tabulate import tabulate

import vecalchemy
from vecalchemy import PreparedQuery, Vector, copy_rows_async, fetch_matrix_async
from vecalchemy.testing import database_url, driver_url, libpq_conninfo

TABLE = "bench_drivers"


class RawVector(UserDefinedType[np.ndarray]):
    """The floor's column type: no bind or result processing; the connection's codecs
    (pgvector.asyncpg.register_vector on the floor engine) do all of the work."""

    cache_ok = True

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def get_col_spec(self, **kw: Any) -> str:
        return f"vector({self.dim})"


def tables(dim: int) -> tuple[Table, Table]:
    from pgvector.sqlalchemy import VECTOR as PgvectorVECTOR

    ours = Table(
        TABLE,
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("embedding", Vector(dim)),
    )
    peer = Table(
        TABLE,
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("embedding", PgvectorVECTOR(dim)),
    )
    return ours, peer


def _ratio_rows(
    workload: str, unit: str, results: dict[str, list[float]], per: int, raw: str, rate: bool
) -> list[list[Any]]:
    rows = []
    base = statistics.median(results[raw])
    for name, times in results.items():
        med = statistics.median(times)
        figure = per / med if rate else med / per * 1000
        ratio = base / med if rate else med / base
        paired = sorted(
            (r / o if rate else o / r) for o, r in zip(times, results[raw], strict=True)
        )
        rows.append(
            [
                workload,
                name,
                f"{figure:.5g}",
                unit,
                f"{ratio:.2f}x",
                f"{statistics.median(paired):.2f}x [{paired[0]:.2f}-{paired[-1]:.2f}]",
            ]
        )
    return rows


async def _alternate(
    impls: dict[str, Callable[[], Awaitable[Any]]],
    repeats: int,
    before: Callable[[], Awaitable[None]] | None = None,
) -> dict[str, list[float]]:
    names = list(impls)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            if before is not None:
                await before()
            gc.collect()
            t0 = time.perf_counter()
            result = await impls[name]()
            times[name].append(time.perf_counter() - t0)
            del result
    return times


async def run_asyncpg(n: int, dim: int, repeats: int, peers: bool) -> None:
    import asyncpg
    from pgvector.asyncpg import register_vector

    base = database_url()
    url = driver_url(base, "asyncpg")
    ours, peer = tables(dim)
    rng = np.random.default_rng(42)
    matrix = rng.standard_normal((n, dim)).astype(np.float32)
    ids = np.arange(n)
    queries = [matrix[i] + 0.01 for i in rng.integers(0, n, 200)]
    engine = create_async_engine(url, plugins=["vecalchemy"])
    plain = create_async_engine(url)
    # SQLAlchemy alone: no type processing, pgvector-python's asyncpg codecs
    floor = create_async_engine(url)
    floor_table = Table(
        TABLE,
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("embedding", RawVector(dim)),
    )

    @sqlalchemy.event.listens_for(floor.sync_engine, "connect")
    def _codecs(dbapi_connection: Any, record: Any) -> None:
        from sqlalchemy.util import await_only

        await_only(register_vector(dbapi_connection.driver_connection))

    dsn = libpq_conninfo(base)
    raw = await asyncpg.connect(dsn)
    await register_vector(raw)
    await raw.execute(f"DROP TABLE IF EXISTS {TABLE}")
    await raw.execute(f"CREATE TABLE {TABLE} (id integer PRIMARY KEY, embedding vector({dim}))")
    rows = [{"id": i, "embedding": v} for i, v in zip(range(n), matrix, strict=True)]
    records = list(zip(range(n), matrix, strict=True))

    async def truncate() -> None:
        await raw.execute(f"TRUNCATE {TABLE}")

    async def insert_ours() -> None:
        async with engine.begin() as conn:
            await conn.execute(insert(ours), rows)

    async def insert_floor() -> None:
        async with floor.begin() as conn:
            await conn.execute(insert(floor_table), rows)

    async def fetch_floor() -> Any:
        async with floor.connect() as conn:
            return (await conn.execute(select(floor_table.c.id, floor_table.c.embedding))).all()

    async def insert_raw() -> None:
        async with raw.transaction():
            await raw.executemany(f"INSERT INTO {TABLE} (id, embedding) VALUES ($1, $2)", records)

    async def insert_peer() -> None:
        async with plain.begin() as conn:
            await conn.execute(insert(peer), rows)

    async def copy_ours() -> None:
        async with engine.begin() as conn:
            await copy_rows_async(conn, ours, {"id": ids, "embedding": matrix}, progress=False)

    async def copy_raw() -> None:
        async with raw.transaction():
            await raw.copy_records_to_table(TABLE, records=records, columns=["id", "embedding"])

    async def fetch_ours() -> Any:
        async with engine.connect() as conn:
            return (await conn.execute(select(ours.c.id, ours.c.embedding))).all()

    async def fetch_matrix_ours() -> Any:
        async with engine.connect() as conn:
            return await fetch_matrix_async(conn, ours.c.embedding)

    async def fetch_raw() -> Any:
        return await raw.fetch(f"SELECT id, embedding FROM {TABLE}")

    async def fetch_peer() -> Any:
        async with plain.connect() as conn:
            return (await conn.execute(select(peer.c.id, peer.c.embedding))).all()

    prepared = PreparedQuery(
        select(ours.c.id)
        .order_by(ours.c.embedding.cosine_distance(sqlalchemy.bindparam("q")))
        .limit(10)
    )

    async def topk_ours() -> None:
        async with engine.connect() as conn:
            for q in queries:
                stmt = select(ours.c.id).order_by(ours.c.embedding.cosine_distance(q)).limit(10)
                (await conn.execute(stmt)).all()

    async def topk_prepared() -> None:
        async with engine.connect() as conn:
            for q in queries:
                await prepared.all_async(conn, q=q)

    async def topk_raw() -> None:
        sql = f"SELECT id FROM {TABLE} ORDER BY embedding <=> $1 LIMIT 10"
        async with raw.transaction():
            for q in queries:
                await raw.fetch(sql, q)

    out: list[list[Any]] = []
    peer_note = ""
    if peers:
        await truncate()
        try:
            await insert_peer()
        except Exception as e:  # the peer's text binds through asyncpg
            peer_note = f"pgvector-python on asyncpg: {type(e).__name__}: {str(e)[:160]}"
            peers = False
    impls: dict[str, Callable[[], Awaitable[Any]]] = {
        "vecalchemy Core (asyncpg)": insert_ours,
        "SQLAlchemy Core alone (floor)": insert_floor,
        "raw asyncpg executemany": insert_raw,
    }
    if peers:
        impls["pgvector-python (asyncpg)"] = insert_peer
    t = await _alternate(impls, repeats, truncate)
    out += _ratio_rows("insert", "vec/s", t, n, "raw asyncpg executemany", True)
    t = await _alternate(
        {"vecalchemy copy_rows_async": copy_ours, "raw copy_records_to_table": copy_raw},
        repeats,
        truncate,
    )
    out += _ratio_rows("copy", "vec/s", t, n, "raw copy_records_to_table", True)
    await truncate()
    await copy_raw()
    impls = {
        "vecalchemy Core (asyncpg)": fetch_ours,
        "vecalchemy fetch_matrix_async": fetch_matrix_ours,
        "SQLAlchemy Core alone (floor)": fetch_floor,
        "raw asyncpg fetch": fetch_raw,
    }
    if peers:
        impls["pgvector-python (asyncpg)"] = fetch_peer
    t = await _alternate(impls, repeats)
    out += _ratio_rows("fetch", "vec/s", t, n, "raw asyncpg fetch", True)
    await raw.execute("SET maintenance_work_mem = '1GB'")
    await raw.execute(f"CREATE INDEX ON {TABLE} USING hnsw (embedding vector_cosine_ops)")
    await raw.execute(f"ANALYZE {TABLE}")
    t = await _alternate(
        {
            "vecalchemy select() per query": topk_ours,
            "vecalchemy PreparedQuery": topk_prepared,
            "raw asyncpg fetch": topk_raw,
        },
        repeats,
    )
    out += _ratio_rows("top-10 HNSW", "ms/query", t, len(queries), "raw asyncpg fetch", False)
    await raw.execute(f"DROP TABLE {TABLE}")
    await raw.close()
    await engine.dispose()
    await plain.dispose()
    await floor.dispose()
    _print(out, peer_note)


def run_sync_driver(driver: str, n: int, dim: int, repeats: int) -> None:
    base = database_url()
    url = driver_url(base, driver)
    ours, peer = tables(dim)
    rng = np.random.default_rng(42)
    matrix = rng.standard_normal((n, dim)).astype(np.float32)
    engine = create_engine(url, plugins=["vecalchemy"])
    plain = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {TABLE}")
        ours.create(conn)
    rows = [{"id": i, "embedding": v} for i, v in zip(range(n), matrix, strict=True)]

    def truncate() -> None:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"TRUNCATE {TABLE}")

    def insert_with(eng: Any, table: Table) -> Callable[[], None]:
        def go() -> None:
            with eng.begin() as conn:
                conn.execute(insert(table), rows)

        return go

    def fetch_with(eng: Any, table: Table) -> Callable[[], Any]:
        def go() -> Any:
            with eng.connect() as conn:
                return conn.execute(select(table.c.id, table.c.embedding)).all()

        return go

    def alternate(impls: dict[str, Callable[[], Any]], before: Any = None) -> dict[str, Any]:
        async def wrap(fn: Callable[[], Any]) -> Any:
            return fn()

        async def before_async() -> None:
            if before is not None:
                before()

        return asyncio.run(
            _alternate({k: (lambda f=f: wrap(f)) for k, f in impls.items()}, repeats, before_async)
        )

    out: list[list[Any]] = []
    t = alternate(
        {
            f"vecalchemy Core ({driver})": insert_with(engine, ours),
            f"pgvector-python ({driver})": insert_with(plain, peer),
        },
        truncate,
    )
    out += _ratio_rows("insert", "vec/s", t, n, f"pgvector-python ({driver})", True)
    truncate()
    insert_with(engine, ours)()
    t = alternate(
        {
            f"vecalchemy Core ({driver})": fetch_with(engine, ours),
            f"pgvector-python ({driver})": fetch_with(plain, peer),
        }
    )
    out += _ratio_rows("fetch", "vec/s", t, n, f"pgvector-python ({driver})", True)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE {TABLE}")
    engine.dispose()
    plain.dispose()
    _print(out, "", ratio_against="pgvector-python on the same driver")


def _print(out: list[list[Any]], note: str, ratio_against: str = "raw") -> None:
    print(
        tabulate(
            out,
            headers=[
                "workload",
                "implementation",
                "figure",
                "unit",
                f"vs {ratio_against}",
                f"vs {ratio_against}, per round: median [min-max]",
            ],
        )
    )
    if note:
        print(note)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--driver", choices=["asyncpg", "psycopg2", "pg8000"], required=True)
    parser.add_argument("--n", type=int, default=20_000, help="rows (default 20000)")
    parser.add_argument("--dim", type=int, default=768, help="dimensions (default 768)")
    parser.add_argument("--repeats", type=int, default=5, help="alternated runs each")
    parser.add_argument("--no-peer", action="store_true", help="skip pgvector-python")
    args = parser.parse_args(argv)
    print(
        f"driver={args.driver} N={args.n} dim={args.dim} repeats={args.repeats} "
        f"(medians of alternated runs)\n"
        f"Python {platform.python_version()}, vecalchemy {vecalchemy.__version__}, "
        f"SQLAlchemy {sqlalchemy.__version__}, NumPy {np.__version__}, machine "
        f"{platform.machine()} {platform.processor() or ''}\n"
    )
    if args.driver == "asyncpg":
        asyncio.run(run_asyncpg(args.n, args.dim, args.repeats, not args.no_peer))
    else:
        run_sync_driver(args.driver, args.n, args.dim, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
