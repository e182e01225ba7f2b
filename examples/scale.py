"""Scale: load, index and query up to a million vectors, and measure what it costs.

    python examples/scale.py [--rows 200000] [--dim 96] [--tenants 8] [--clients 8]
                             [--plot scale.png] [--database-url URL]

The data are synthetic and say so: ``rows`` vectors (default dimension 96, small enough
that a million rows fit a 2-core machine) drawn from a seeded mixture of 100 Gaussian
clusters (centres N(0, 1), spread 1.6 per dimension), each row with a ``tenant``
(uniform over ``--tenants``) and a ``day`` (uniform over the 365 days of 2025), and
``--queries`` held-out points of the same mixture as queries.

Two tables, both declared ``PARTITION BY LIST (tenant)`` with one partition per tenant:
``items`` (``vector``) and ``items_half`` (``halfvec``), each with an HNSW cosine index
(m=16, ``--ef-construction``) declared on the parent, so every partition has its own.
The program

* loads both with :func:`vecalchemy.copy_rows` (binary COPY, a tqdm bar) and reports the
  load rate, next to the rate of a COPY of the first 20 000 rows into a fresh table of the
  same definition (median of 7, before and after the full loads): a linear cost shows as
  a ratio near 1;
* builds the indexes with the ``maintenance_work_mem`` and parallel workers that
  :func:`vecalchemy.index_build_settings` suggests for one partition, applied by
  :func:`vecalchemy.build_vector_index` to the build's session (progress from
  ``pg_stat_progress_create_index``);
* measures the top-10 latency (p50 / p99) of a :class:`vecalchemy.PreparedQuery` with 1
  and ``--clients`` concurrent clients: threads over a sync engine's pool, and asyncio
  tasks over an async engine;
* measures recall@10 against ``hnsw.ef_search`` for both tables, against the exact
  answer computed in NumPy (float32 cosine over all rows);
* compares the sizes (``pg_relation_size``, ``pg_total_relation_size``, summed over the
  partitions) of the vector and halfvec tables and indexes;
* runs a filtered query (one ``--filter-days`` date range, about 2 % of the rows, no
  B-tree on ``day``) with iterative index scans off and ``relaxed_order``
  (:func:`vecalchemy.iterative_search`), and a query pruned to one tenant, whose EXPLAIN
  names that partition's own index;
* reports the server's ``maintenance_work_mem`` for the builds and the client's peak RSS
  (``resource.getrusage``), and draws recall against latency over ``ef_search``
  (``--plot``, a PNG).

Uses ``--database-url`` or else :func:`vecalchemy.testing.database_url`
(``VECALCHEMY_DATABASE_URL``, Docker, or the embedded server), and works in a schema of
its own, dropped at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import resource
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    Integer,
    MetaData,
    Table,
    bindparam,
    create_engine,
    select,
    text,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.ext.asyncio import create_async_engine
from tabulate import tabulate

from vecalchemy import (
    HalfVec,
    HnswIndex,
    PreparedQuery,
    Vector,
    build_vector_index,
    copy_rows,
    create_tenant_partition,
    explain_index_usage,
    index_build_settings,
    iterative_search,
    search_settings,
    tenant_search,
)
from vecalchemy.exc import VectorPartitionWarning
from vecalchemy.sqltext import Statement, quote, regclass_text

K = 10
M = 16
EF_SEARCH = (10, 20, 40, 100, 200)
#: hnsw.ef_search of the latency, filter and tenant measurements (pgvector's default)
EF_DEFAULT = 40
#: within-cluster standard deviation (cluster centres are N(0, 1))
SPREAD = 1.6
CLUSTERS = 100
FIRST_DAY = datetime.date(2025, 1, 1)
DAYS = 365
#: rows of the reference COPY whose rate the full load is compared with
CALIBRATION_ROWS = 20_000
#: vectors generated (and COPY'd) per block, to bound the client's memory
BLOCK = 100_000


# --- results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Latency:
    """Latency of one top-k query under ``clients`` concurrent clients (ms), and the
    throughput (queries per second, all clients together)."""

    api: str
    clients: int
    p50_ms: float
    p99_ms: float
    qps: float


@dataclass(frozen=True)
class RecallPoint:
    """recall@K and mean single-client latency at one ``hnsw.ef_search``."""

    sql_type: str
    ef_search: int
    recall: float
    latency_ms: float


@dataclass(frozen=True)
class Filtered:
    """A filtered top-k query with one iterative scan setting (means over the queries)."""

    iterative_scan: str
    rows: float
    recall: float
    latency_ms: float
    index_used: bool


@dataclass(frozen=True)
class Sizes:
    """Bytes on disk, summed over a table's partitions."""

    sql_type: str
    heap: int
    index: int
    total: int


@dataclass
class Results:
    """What a run measured (returned by :func:`main`)."""

    rows: int = 0
    dim: int = 0
    tenants: int = 0
    server: str = ""
    load_rows_per_s: dict[str, float] = field(default_factory=dict)
    calibration_rows: int = 0
    #: rows/s of COPY into a fresh table, median of 7, before and after the full loads
    calibration_before: dict[str, float] = field(default_factory=dict)
    calibration_after: dict[str, float] = field(default_factory=dict)
    #: the client's CPU time (process_time) per row of the full load and of the 20 000-row
    #: reference (median of the 14 runs): copy_rows' own cost, without the server's
    load_cpu_us_per_row: dict[str, float] = field(default_factory=dict)
    calibration_cpu_us_per_row: dict[str, float] = field(default_factory=dict)
    build_seconds: dict[str, float] = field(default_factory=dict)
    maintenance_work_mem: str = ""
    parallel_workers: int = 0
    build_basis: str = ""
    topk_rows: int = 0
    latency: list[Latency] = field(default_factory=list)
    recall: list[RecallPoint] = field(default_factory=list)
    sizes: list[Sizes] = field(default_factory=list)
    filter_fraction: float = 0.0
    filtered: list[Filtered] = field(default_factory=list)
    pruned_tenant: int = 0
    pruned_partition: str = ""
    pruned_indexes: tuple[str, ...] = ()
    pruned_plan: str = ""
    pruned_recall: float = 0.0
    pruned_latency_ms: float = 0.0
    peak_rss_bytes: int = 0
    plot: Path | None = None


# --- command line ---------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="scale.py",
        description="Load, index and query many synthetic vectors; report load rate, build "
        "time, memory, latency under concurrency, recall, sizes, filtered and "
        "tenant-pruned queries",
    )
    p.add_argument(
        "--rows",
        type=int,
        default=200_000,
        help="vectors to load (default: %(default)s, about 5 minutes on 2 cores)",
    )
    p.add_argument("--dim", type=int, default=96, help="dimensions (default: %(default)s)")
    p.add_argument(
        "--tenants",
        type=int,
        default=8,
        help="tenants = LIST partitions of each table (default: %(default)s)",
    )
    p.add_argument(
        "--clients",
        type=int,
        default=8,
        help="concurrent clients of the second latency measurement (default: %(default)s)",
    )
    p.add_argument(
        "--queries",
        type=int,
        default=100,
        help="held-out query vectors (default: %(default)s)",
    )
    p.add_argument(
        "--ef-construction",
        type=int,
        default=64,
        help="HNSW ef_construction, m=16 (default: %(default)s)",
    )
    p.add_argument(
        "--filter-days",
        type=int,
        default=7,
        help="days in the filtered query's date range, of 365 (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the data (default: 0)")
    p.add_argument(
        "--database-url",
        default=None,
        help="SQLAlchemy URL of a PostgreSQL with pgvector >= 0.8 (default: "
        "$VECALCHEMY_DATABASE_URL, else a Docker container or the embedded server)",
    )
    p.add_argument("--plot", type=Path, default=None, help="write recall vs latency as PNG")
    p.add_argument("--keep", action="store_true", help="keep the schema and its tables")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "--load-only",
        action="store_true",
        help="only the COPY rates (full load against the 20 000-row reference), then stop",
    )
    args = p.parse_args(argv)
    if args.dim < 1 or args.dim > 2000:
        p.error(f"--dim must lie in 1..2000 (HNSW on vector), got {args.dim}")
    if args.tenants < 1 or args.tenants > 1000:
        p.error(f"--tenants must lie in 1..1000, got {args.tenants}")
    if args.rows < 100 * args.tenants:
        p.error(f"--rows must be at least 100 per tenant ({100 * args.tenants}), got {args.rows}")
    if args.clients < 1:
        p.error(f"--clients must be at least 1, got {args.clients}")
    if args.queries < 1:
        p.error(f"--queries must be at least 1, got {args.queries}")
    if not 2 * M <= args.ef_construction <= 1000:
        p.error(
            f"--ef-construction must lie in {2 * M}..1000 (at least 2*m, pgvector), "
            f"got {args.ef_construction}"
        )
    if not 1 <= args.filter_days <= DAYS:
        p.error(f"--filter-days must lie in 1..{DAYS}, got {args.filter_days}")
    return args


# --- data -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Data:
    """``vectors`` ``(rows, dim)`` float32 (row i has id i), ``tenant`` and ``day``
    ``(rows,)``, ``queries`` ``(queries, dim)`` float32."""

    vectors: np.ndarray
    tenant: np.ndarray
    day: np.ndarray
    queries: np.ndarray


def synthesize(rows: int, dim: int, tenants: int, queries: int, seed: int) -> Data:
    """The seeded mixture, generated in blocks of float32 (no float64 copy of it all)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((CLUSTERS, dim), dtype=np.float32)
    total = rows + queries
    points = np.empty((total, dim), dtype=np.float32)
    for start in range(0, total, BLOCK):
        n = min(BLOCK, total - start)
        points[start : start + n] = centres[rng.integers(0, CLUSTERS, n)]
        points[start : start + n] += SPREAD * rng.standard_normal((n, dim), dtype=np.float32)
    tenant = rng.integers(0, tenants, rows).astype(np.int32)
    day = np.datetime64(FIRST_DAY, "D") + rng.integers(0, DAYS, rows)
    return Data(points[:rows], tenant, day, points[rows:])


def _unit(x: np.ndarray) -> np.ndarray:
    units: np.ndarray = x / np.linalg.norm(x, axis=1, keepdims=True)
    return units


def exact_top_k(units: np.ndarray, query: np.ndarray, k: int, rows: np.ndarray | None) -> set[int]:
    """ids of the ``k`` rows nearest to ``query`` by cosine distance among ``rows`` (all
    when ``None``); ``units`` are the unit-normalised vectors."""
    candidates = units if rows is None else units[rows]
    similarity = candidates @ (query / np.linalg.norm(query))
    best = (
        np.argpartition(-similarity, k - 1)[:k]
        if len(similarity) > k
        else np.arange(len(similarity))
    )
    ids = best if rows is None else rows[best]
    return {int(i) for i in ids}


# --- schema ---------------------------------------------------------------------------------


def items_table(metadata: MetaData, name: str, dim: int, sql_type: str) -> Table:
    """``(id, tenant, day, embedding)`` partitioned by LIST (tenant), with an HNSW
    cosine index declared on the parent (each partition gets its own)."""
    vector_type = (
        Vector(dim, metric="cosine") if sql_type == "vector" else HalfVec(dim, metric="cosine")
    )
    return Table(
        name,
        metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=False),
        Column("tenant", Integer, primary_key=True, autoincrement=False),
        Column("day", Date, nullable=False),
        Column("embedding", vector_type, nullable=False),
        postgresql_partition_by="LIST (tenant)",
    )


def partition_name(table: Table, tenant: int) -> str:
    return f"{table.name}_t{tenant}"


def create_partitioned(conn: Connection, table: Table, tenants: int) -> None:
    """The parent, then one LIST partition per tenant (``create_tenant_partition``)."""
    table.create(conn)
    for t in range(tenants):
        create_tenant_partition(conn, table, t, name=partition_name(table, t))


def hnsw_index(table: Table, ef_construction: int) -> HnswIndex:
    return HnswIndex(
        f"{table.name}_embedding_hnsw", table.c.embedding, m=M, ef_construction=ef_construction
    )


# --- load and build -------------------------------------------------------------------------


def load(
    engine: Engine, table: Table, data: Data, rows: slice, progress: bool
) -> tuple[float, float]:
    """COPY ``rows`` of ``data`` into ``table`` in one transaction: rows per second, and
    the client's CPU microseconds per row."""
    start = time.perf_counter()
    cpu = time.process_time()
    with engine.begin() as conn:
        copy_rows(
            conn,
            table,
            {
                "id": np.arange(rows.start or 0, rows.stop, dtype=np.int64),
                "tenant": data.tenant[rows],
                "day": data.day[rows],  # datetime64[D]: written with the vectors, no objects
                "embedding": data.vectors[rows],
            },
            progress=progress,
        )
    n = int(rows.stop) - int(rows.start or 0)
    return n / (time.perf_counter() - start), 1e6 * (time.process_time() - cpu) / n


def calibrate(
    engine: Engine, sql_type: str, data: Data, n: int, args: argparse.Namespace
) -> tuple[float, list[float]]:
    """Median rows/s of 7 COPYs of the first ``n`` rows into a fresh ``items_calibration``
    table of ``sql_type`` (the same definition as the full tables), dropped after each,
    and the client CPU microseconds per row of each."""
    rates, cpus = [], []
    for _ in range(7):
        table = items_table(MetaData(), "items_calibration", args.dim, sql_type)
        with engine.begin() as conn:
            create_partitioned(conn, table, args.tenants)
        rate, cpu = load(engine, table, data, slice(0, n), progress=False)
        rates.append(rate)
        cpus.append(cpu)
        with engine.begin() as conn:
            table.drop(conn)
    return float(np.median(rates)), cpus


# --- queries --------------------------------------------------------------------------------


def nearest_query(table: Table) -> PreparedQuery:
    q = bindparam("q", type_=table.c.embedding.type)
    return PreparedQuery(
        select(table.c.id).order_by(table.c.embedding.cosine_distance(q)).limit(K)
    )


def _latency(api: str, clients: int, seconds: list[float], wall: float) -> Latency:
    ms = 1000 * np.asarray(seconds)
    return Latency(
        api, clients, float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), len(ms) / wall
    )


def sync_latency(
    engine: Engine, query: PreparedQuery, queries: np.ndarray, clients: int, per_client: int
) -> Latency:
    """``clients`` threads, each on its own pooled connection, ``per_client`` queries each."""
    seconds: list[float] = []
    lock = threading.Lock()
    ready = threading.Barrier(clients + 1)

    def client(c: int) -> None:
        mine = []
        with engine.connect() as conn, conn.begin(), search_settings(conn, ef_search=EF_DEFAULT):
            query.scalars(conn, q=queries[c % len(queries)])  # warm: plan and caches
            ready.wait()
            for i in range(per_client):
                q = queries[(c * per_client + i) % len(queries)]
                start = time.perf_counter()
                query.scalars(conn, q=q)
                mine.append(time.perf_counter() - start)
        with lock:
            seconds.extend(mine)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    ready.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    return _latency("sync, threads", clients, seconds, time.perf_counter() - start)


async def _async_latency(
    url: str,
    connect_args: dict[str, Any],
    query: PreparedQuery,
    queries: np.ndarray,
    clients: int,
    per_client: int,
) -> Latency:
    engine = create_async_engine(
        url, plugins=["vecalchemy"], connect_args=connect_args, pool_size=clients
    )
    seconds: list[float] = []
    ready = asyncio.Event()
    waiting = [clients]

    async def client(c: int) -> None:
        async with engine.connect() as conn:
            await conn.begin()
            async with search_settings(conn, ef_search=EF_DEFAULT):
                await query.scalars_async(conn, q=queries[c % len(queries)])
                waiting[0] -= 1
                if waiting[0] == 0:
                    ready.set()
                await ready.wait()
                for i in range(per_client):
                    q = queries[(c * per_client + i) % len(queries)]
                    start = time.perf_counter()
                    await query.scalars_async(conn, q=q)
                    seconds.append(time.perf_counter() - start)

    try:
        tasks = [asyncio.create_task(client(c)) for c in range(clients)]
        await ready.wait()
        start = time.perf_counter()
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - start
    finally:
        await engine.dispose()
    return _latency("async, asyncio", clients, seconds, wall)


def recall_sweep(
    engine: Engine, table: Table, sql_type: str, queries: np.ndarray, truth: list[set[int]]
) -> list[RecallPoint]:
    query = nearest_query(table)
    points = []
    with engine.connect() as conn:
        for ef in EF_SEARCH:
            recalls, seconds = [], 0.0
            with conn.begin(), search_settings(conn, ef_search=ef):
                for q, exact in zip(queries, truth, strict=True):
                    start = time.perf_counter()
                    ids = query.scalars(conn, q=q)
                    seconds += time.perf_counter() - start
                    recalls.append(len(set(ids) & exact) / len(exact))
            points.append(
                RecallPoint(sql_type, ef, float(np.mean(recalls)), 1000 * seconds / len(queries))
            )
    return points


def sizes(conn: Connection, table: Table, index: HnswIndex, sql_type: str) -> Sizes:
    """Sizes summed over the leaf partitions (a partitioned parent itself stores nothing)."""
    row = conn.execute(
        text(
            "SELECT "
            "(SELECT sum(pg_relation_size(relid)) FROM pg_partition_tree(to_regclass(:t)) "
            " WHERE isleaf), "
            "(SELECT sum(pg_relation_size(relid)) FROM pg_partition_tree(to_regclass(:i)) "
            " WHERE isleaf), "
            "(SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree(to_regclass(:t)) "
            " WHERE isleaf)"
        ),
        {"t": regclass_text(table.name), "i": regclass_text(str(index.name))},
    ).one()
    return Sizes(sql_type, int(row[0]), int(row[1]), int(row[2]))


def filtered_queries(
    engine: Engine, table: Table, data: Data, units: np.ndarray, days: int
) -> tuple[float, list[Filtered]]:
    """One date range (the middle of the year), iterative scan off and relaxed_order."""
    first = np.datetime64(FIRST_DAY, "D") + (DAYS - days) // 2
    last = first + (days - 1)
    in_range = np.flatnonzero((data.day >= first) & (data.day <= last))
    truth = [exact_top_k(units, q, K, in_range) for q in data.queries]
    lo, hi = first.astype(object), last.astype(object)
    results = []
    with engine.connect() as conn:
        for mode in ("off", "relaxed_order"):
            counts, recalls, seconds = [], [], 0.0
            with (
                conn.begin(),
                search_settings(conn, ef_search=EF_DEFAULT, hnsw_iterative_scan=mode),
            ):
                for q, exact in zip(data.queries, truth, strict=True):
                    stmt = iterative_search(
                        select(table.c.id).where(table.c.day.between(lo, hi)),
                        table.c.embedding.cosine_distance(q),
                        K,
                    )
                    start = time.perf_counter()
                    ids = [r[0] for r in conn.execute(stmt)]
                    seconds += time.perf_counter() - start
                    counts.append(len(ids))
                    recalls.append(len(set(ids) & exact) / len(exact))
                used = explain_index_usage(conn, stmt).uses_vector_index
            results.append(
                Filtered(
                    mode,
                    float(np.mean(counts)),
                    float(np.mean(recalls)),
                    1000 * seconds / len(data.queries),
                    used,
                )
            )
    return len(in_range) / len(data.day), results


def pruned_query(
    engine: Engine, table: Table, data: Data, units: np.ndarray, results: Results
) -> None:
    """Top-k within one tenant: the partition's own HNSW index, recall and latency."""
    tenant = int(data.tenant[0])
    rows = np.flatnonzero(data.tenant == tenant)
    recalls, seconds = [], 0.0
    with engine.connect() as conn, conn.begin(), search_settings(conn, ef_search=EF_DEFAULT):
        for q in data.queries:
            stmt = tenant_search(
                select(table.c.id).order_by(table.c.embedding.cosine_distance(q)).limit(K),
                table,
                tenant,
            )
            start = time.perf_counter()
            ids = conn.execute(stmt).scalars().all()
            seconds += time.perf_counter() - start
            exact = exact_top_k(units, q, K, rows)
            recalls.append(len(set(ids) & exact) / len(exact))
        usage = explain_index_usage(conn, stmt)
    results.pruned_tenant = tenant
    results.pruned_partition = partition_name(table, tenant)
    results.pruned_indexes = usage.index_names
    results.pruned_plan = "\n".join(usage.plan)
    results.pruned_recall = float(np.mean(recalls))
    results.pruned_latency_ms = 1000 * seconds / len(data.queries)


# --- the run ------------------------------------------------------------------------------


def database_url(args: argparse.Namespace) -> str:
    if args.database_url:
        return str(args.database_url)
    from vecalchemy.testing import database_url as default_url

    return str(default_url())


def run(url: str, schema: str, args: argparse.Namespace, results: Results) -> None:
    progress = not args.no_progress
    connect_args = {"options": f"-csearch_path={schema},public"}
    sync_url = make_url(url).set(drivername="postgresql+psycopg")
    engine = create_engine(
        sync_url,
        plugins=["vecalchemy"],
        connect_args=connect_args,
        pool_size=max(args.clients, 5) + 1,
    )
    try:
        _run(
            engine,
            sync_url.set(drivername="postgresql+psycopg_async"),
            connect_args,
            args,
            results,
            progress,
        )
    finally:
        engine.dispose()


def _run(
    engine: Engine,
    async_url: Any,
    connect_args: dict[str, Any],
    args: argparse.Namespace,
    results: Results,
    progress: bool,
) -> None:
    rows, dim = args.rows, args.dim
    t0 = time.perf_counter()
    data = synthesize(rows, dim, args.tenants, args.queries, args.seed)
    units = _unit(data.vectors)
    truth = [exact_top_k(units, q, K, None) for q in data.queries]
    print(
        f"data: {rows} x {dim} float32, {args.tenants} tenants, {args.queries} queries "
        f"({time.perf_counter() - t0:.1f} s, exact top-{K} in NumPy)"
    )

    md = MetaData()
    tables = {
        t: items_table(md, name, dim, t)
        for t, name in (("vector", "items"), ("halfvec", "items_half"))
    }
    with engine.begin() as conn:
        results.server = conn.execute(
            text(
                "SELECT current_setting('server_version') || ', pgvector ' || extversion "
                "FROM pg_extension WHERE extname = 'vector'"
            )
        ).scalar_one()
        for table in tables.values():
            create_partitioned(conn, table, args.tenants)

    n_cal = min(CALIBRATION_ROWS, rows)
    results.calibration_rows = n_cal
    cal_cpu: dict[str, list[float]] = {t: [] for t in tables}
    for sql_type in tables:
        rate, cpus = calibrate(engine, sql_type, data, n_cal, args)
        results.calibration_before[sql_type] = rate
        cal_cpu[sql_type] += cpus
    for sql_type, table in tables.items():
        rate, cpu = load(engine, table, data, slice(0, rows), progress)
        results.load_rows_per_s[sql_type] = rate
        results.load_cpu_us_per_row[sql_type] = cpu
        with engine.begin() as conn:
            conn.execute(Statement(f"ANALYZE {quote(conn.dialect, table.name)}"))
    for sql_type in tables:
        rate, cpus = calibrate(engine, sql_type, data, n_cal, args)
        results.calibration_after[sql_type] = rate
        cal_cpu[sql_type] += cpus
        results.calibration_cpu_us_per_row[sql_type] = float(np.median(cal_cpu[sql_type]))
    for k, r in results.load_rows_per_s.items():
        print(
            f"COPY {rows} rows {k}: {r:,.0f} rows/s; {n_cal} rows: "
            f"{results.calibration_before[k]:,.0f} before, "
            f"{results.calibration_after[k]:,.0f} after"
        )
    if args.load_only:
        return

    per_partition = int(np.bincount(data.tenant, minlength=args.tenants).max())
    indexes = {t: hnsw_index(table, args.ef_construction) for t, table in tables.items()}
    for sql_type, index in indexes.items():
        settings = index_build_settings(per_partition, dim, m=M, sql_type=sql_type)
        if sql_type == "vector":
            results.maintenance_work_mem = f"{settings.maintenance_work_mem / 2**20:.0f} MB"
            results.parallel_workers = settings.max_parallel_maintenance_workers
            results.build_basis = settings.basis
        start = time.perf_counter()
        build_vector_index(engine, index, settings=settings, progress=progress)
        results.build_seconds[sql_type] = time.perf_counter() - start
        print(
            f"HNSW {sql_type} build: {results.build_seconds[sql_type]:.1f} s "
            f"(maintenance_work_mem {settings.maintenance_work_mem / 2**20:.0f} MB, "
            f"{settings.max_parallel_maintenance_workers} parallel workers per partition)"
        )

    table = tables["vector"]
    query = nearest_query(table)
    with engine.connect() as conn, conn.begin():
        results.topk_rows = len(query.scalars(conn, q=data.queries[0]))
    for each in tables.values():  # one pass over every query first: caches warm, as in service
        warm = nearest_query(each)
        with engine.connect() as conn, conn.begin():
            for q in data.queries:
                warm.scalars(conn, q=q)
    per_client = max(20, min(100, args.queries))
    for clients in sorted({1, args.clients}):
        results.latency.append(sync_latency(engine, query, data.queries, clients, per_client))
        results.latency.append(
            asyncio.run(
                _async_latency(async_url, connect_args, query, data.queries, clients, per_client)
            )
        )
    for sql_type, each in tables.items():
        results.recall.extend(recall_sweep(engine, each, sql_type, data.queries, truth))
    with engine.connect() as conn:
        results.sizes = [sizes(conn, tables[k], indexes[k], k) for k in tables]
    results.filter_fraction, results.filtered = filtered_queries(
        engine, table, data, units, args.filter_days
    )
    pruned_query(engine, table, data, units, results)


def calibration_mean(results: Results, sql_type: str) -> float:
    """The small-COPY rate the full load is compared with: mean of before and after."""
    return (results.calibration_before[sql_type] + results.calibration_after[sql_type]) / 2


def cpu_ratio(results: Results, sql_type: str) -> float:
    """copy_rows' client CPU per row, full load over the 20 000-row reference."""
    return results.load_cpu_us_per_row[sql_type] / results.calibration_cpu_us_per_row[sql_type]


def report(results: Results, args: argparse.Namespace) -> None:
    mb = 2**20
    print()
    print(
        f"{results.rows} rows x {results.dim} dims, {results.tenants} tenants, cosine, "
        f"HNSW m={M} ef_construction={args.ef_construction}; {results.server}"
    )
    print()
    print(
        tabulate(
            [
                (
                    t,
                    f"{r:,.0f}",
                    f"{results.calibration_before[t]:,.0f}",
                    f"{results.calibration_after[t]:,.0f}",
                    f"{r / calibration_mean(results, t):.2f}",
                    f"{results.load_cpu_us_per_row[t]:.2f}",
                    f"{results.calibration_cpu_us_per_row[t]:.2f}",
                    f"{cpu_ratio(results, t):.2f}",
                )
                for t, r in results.load_rows_per_s.items()
            ],
            headers=[
                "COPY",
                f"{results.rows} rows: rows/s",
                f"{results.calibration_rows} rows before",
                "after",
                "ratio",
                "client CPU µs/row",
                f"{results.calibration_rows} rows",
                "ratio",
            ],
        )
    )
    if args.load_only:
        print(f"client peak RSS: {results.peak_rss_bytes / mb:.0f} MB")
        return
    print()
    print(
        tabulate(
            [(t, f"{s:.1f}") for t, s in results.build_seconds.items()],
            headers=["HNSW build", "seconds"],
        )
    )
    print(
        f"maintenance_work_mem {results.maintenance_work_mem}, "
        f"{results.parallel_workers} parallel workers per partition ({results.build_basis})"
    )
    print()
    print(
        tabulate(
            [
                (x.api, x.clients, f"{x.p50_ms:.2f}", f"{x.p99_ms:.2f}", f"{x.qps:.0f}")
                for x in results.latency
            ],
            headers=[
                f"top-{K}, ef_search={EF_DEFAULT}",
                "clients",
                "p50 ms",
                "p99 ms",
                "queries/s",
            ],
        )
    )
    print()
    print(
        tabulate(
            [
                (p.sql_type, p.ef_search, f"{p.recall:.3f}", f"{p.latency_ms:.2f}")
                for p in results.recall
            ],
            headers=["type", "hnsw.ef_search", f"recall@{K}", "ms/query"],
        )
    )
    print()
    print(
        tabulate(
            [
                (s.sql_type, f"{s.heap / mb:.1f}", f"{s.index / mb:.1f}", f"{s.total / mb:.1f}")
                for s in results.sizes
            ],
            headers=["type", "table MB", "HNSW index MB", "total MB (with PK)"],
        )
    )
    print()
    print(
        tabulate(
            [
                (
                    f.iterative_scan,
                    f"{f.rows:.1f}",
                    f"{f.recall:.3f}",
                    f"{f.latency_ms:.2f}",
                    f.index_used,
                )
                for f in results.filtered
            ],
            headers=[
                f"{args.filter_days} days ({100 * results.filter_fraction:.1f} % of rows)",
                "rows returned",
                f"recall@{K}",
                "ms/query",
                "HNSW used",
            ],
        )
    )
    print()
    print(
        f"tenant {results.pruned_tenant} only: recall@{K} {results.pruned_recall:.3f}, "
        f"{results.pruned_latency_ms:.2f} ms/query, index {', '.join(results.pruned_indexes)}"
    )
    print(results.pruned_plan)
    print()
    print(f"client peak RSS: {results.peak_rss_bytes / mb:.0f} MB")


def plot(results: Results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for sql_type in ("vector", "halfvec"):
        points = [p for p in results.recall if p.sql_type == sql_type]
        ax.plot(
            [p.latency_ms for p in points], [p.recall for p in points], marker="o", label=sql_type
        )
        for p in points:
            ax.annotate(
                str(p.ef_search),
                (p.latency_ms, p.recall),
                textcoords="offset points",
                xytext=(4, -10),
                fontsize=8,
            )
    ax.set_xlabel("ms per query (1 client)")
    ax.set_ylabel(f"recall@{K}")
    ax.set_title(f"{results.rows:,} rows x {results.dim} dims: recall vs hnsw.ef_search")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> Results:
    args = parse_args(argv)
    results = Results(rows=args.rows, dim=args.dim, tenants=args.tenants)
    url = database_url(args)
    schema = f"scale_{uuid.uuid4().hex[:8]}"
    admin = create_engine(make_url(url).set(drivername="postgresql+psycopg"))
    with admin.begin() as conn:
        conn.execute(Statement(f"CREATE SCHEMA {quote(conn.dialect, schema)}"))
    try:
        with warnings.catch_warnings():
            # the top-k over every tenant (a Merge Append of the partitions' indexes) is
            # measured on purpose, next to the tenant-pruned query
            warnings.simplefilter("ignore", VectorPartitionWarning)
            run(url, schema, args, results)
    finally:
        if not args.keep:
            with admin.begin() as conn:
                conn.execute(Statement(f"DROP SCHEMA {quote(conn.dialect, schema)} CASCADE"))
        admin.dispose()
    results.peak_rss_bytes = (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    )  # kB on Linux
    if args.plot is not None and not args.load_only:
        plot(results, args.plot)
        results.plot = args.plot
    report(results, args)
    sys.stdout.flush()
    return results


if __name__ == "__main__":
    main()
