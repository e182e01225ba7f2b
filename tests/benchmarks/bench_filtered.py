"""Filtered top-k: plain ANN, iterative scans and ``filtered_search``, by filter selectivity.

Run by hand (pytest does not collect this folder)::

    python tests/benchmarks/bench_filtered.py                    # N=200000, dim=64, 50 queries
    python tests/benchmarks/bench_filtered.py --n 20000 --queries 20   # quick look
    python tests/benchmarks/bench_filtered.py --reuse            # keep the loaded table

Data: ``--n`` clustered synthetic vectors (``--clusters`` Gaussian clusters, unit noise
around centres drawn with scale 3), loaded with ``vecalchemy.copy_rows``, an HNSW cosine
index (m=16, ef_construction=64), ``bucket`` a random permutation of 0..1999 per row and
``cluster`` the row's cluster. Filters: ``bucket < 1000`` (50 %), ``< 100`` (5 %), ``< 10``
(0.5 %), ``< 1`` (0.05 %), and ``cluster = <the cluster farthest from the query>`` (the
correlated case: matching rows far from the query). Queries: ``--queries`` data points
plus small noise. Each method runs in its own transaction on a pooled psycopg connection
(engine plugin on):

- plain ANN: ``ORDER BY distance LIMIT k`` (``hnsw.ef_search`` 40, no iterative scan);
- strict: the same with ``hnsw.iterative_scan = strict_order``;
- relaxed: ``iterative_search`` (materialized CTE) with ``relaxed_order``;
- filtered_search: the helper with its defaults (``strict_order``, escalation,
  ``exact_below=10000``, exact fallback);
- filtered_search, exact_below=None: the same without choosing exact from the estimate
  (iterative scan, escalation, exact fallback only when the bounds run out);
- filtered_search relaxed: ``order="relaxed_order", candidates=2k, exact_below=None``.

For each: rows returned (mean and min over queries), recall@k against NumPy's exact answer
(over ``min(k, matching rows)``), median and p95 latency in ms (wall time, settings
included), the plan's scan for the first query, and the helper's strategies. The table is
run twice: without an index on the filter columns, then with B-tree indexes on ``bucket``
and ``cluster`` (``--no-btree`` skips the second pass).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import sqlalchemy
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, select, text
from sqlalchemy.engine import Connection, Engine
from tabulate import tabulate

import vecalchemy
from vecalchemy import HnswIndex, Vector, copy_rows, explain_index_usage, search_settings
from vecalchemy.filtered import filtered_search
from vecalchemy.search import iterative_search
from vecalchemy.testing import database_url

TABLE = "bench_filtered"
#: filter name -> bucket bound (bucket is uniform over 0..1999)
BUCKETS = {"50 %": 1000, "5 %": 100, "0.5 %": 10, "0.05 %": 1}
FAR = "far cluster"


def make_data(n: int, dim: int, clusters: int, seed: int = 7) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = (rng.standard_normal((clusters, dim)) * 3).astype(np.float32)
    cluster = rng.integers(0, clusters, n)
    vectors = (centers[cluster] + rng.standard_normal((n, dim))).astype(np.float32)
    return {
        "id": np.arange(n),
        "bucket": rng.permutation(n) % 2000,
        "cluster": cluster,
        "embedding": vectors,
        "centers": centers,
    }


def table(dim: int) -> Table:
    return Table(
        TABLE,
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("bucket", Integer),
        Column("cluster", Integer),
        Column("embedding", Vector(dim, metric="cosine")),
    )


def load(engine: Engine, t: Table, data: dict[str, np.ndarray], reuse: bool) -> None:
    n = len(data["id"])
    with engine.begin() as conn:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
        if reuse:
            exists = conn.execute(text("SELECT to_regclass(:t)"), {"t": TABLE}).scalar()
            if (
                exists
                and conn.execute(select(sqlalchemy.func.count()).select_from(t)).scalar() == n
            ):
                print(f"reusing {TABLE} ({n} rows)")
                return
        conn.execute(text(f"DROP TABLE IF EXISTS {TABLE}"))
    t.create(engine)
    started = time.perf_counter()
    with engine.begin() as conn:
        columns = {k: v for k, v in data.items() if k != "centers"}
        copy_rows(conn, t, columns, progress=False)
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL maintenance_work_mem = '1GB'"))
        HnswIndex(f"{TABLE}_hnsw", t.c.embedding).create(conn)
        conn.execute(text(f"ANALYZE {TABLE}"))
    built = time.perf_counter() - started
    print(f"loaded {n} rows in {loaded:.1f} s (copy_rows); HNSW built in {built:.1f} s")


def exact_ids(
    vectors: np.ndarray, norms: np.ndarray, q: np.ndarray, mask: np.ndarray, k: int
) -> list[int]:
    ids = np.flatnonzero(mask)
    d = 1 - (vectors[ids] @ q.astype(np.float64)) / (norms[ids] * np.linalg.norm(q))
    return [int(i) for i in ids[np.argsort(d, kind="stable")][:k]]


def plain(conn: Connection, stmt: Any, distance: Any, k: int) -> list[Any]:
    labelled = distance.label("distance")
    return list(conn.execute(stmt.add_columns(labelled).order_by(labelled).limit(k)).all())


def strict(conn: Connection, stmt: Any, distance: Any, k: int) -> list[Any]:
    with search_settings(conn, hnsw_iterative_scan="strict_order"):
        return plain(conn, stmt, distance, k)


def relaxed(conn: Connection, stmt: Any, distance: Any, k: int) -> list[Any]:
    with search_settings(conn, hnsw_iterative_scan="relaxed_order"):
        return list(conn.execute(iterative_search(stmt, distance, k)).all())


METHODS: dict[str, Callable[..., Any]] = {
    "plain ANN": plain,
    "iterative strict_order": strict,
    "iterative relaxed_order": relaxed,
    "filtered_search": lambda conn, stmt, d, k: filtered_search(conn, stmt, d, k),
    "filtered_search, exact_below=None": lambda conn, stmt, d, k: filtered_search(
        conn, stmt, d, k, exact_below=None
    ),
    "filtered_search relaxed, 2k cand., exact_below=None": lambda conn, stmt, d, k: (
        filtered_search(
            conn, stmt, d, k, order="relaxed_order", candidates=2 * k, exact_below=None
        )
    ),
}
#: the methods that are not the helper: the plan column shows the planner's scan
BASELINES = ("plain ANN", "iterative strict_order", "iterative relaxed_order")


def plan_of(engine: Engine, stmt: Any, distance: Any, k: int) -> str:
    labelled = distance.label("distance")
    with engine.connect() as conn:
        usage = explain_index_usage(conn, stmt.add_columns(labelled).order_by(labelled).limit(k))
    if usage.vector_indexes:
        return "HNSW"
    return "B-tree" if usage.other_indexes else "seq scan"


def run(
    engine: Engine, t: Table, data: dict[str, np.ndarray], queries: int, k: int
) -> list[list[Any]]:
    vectors = data["embedding"].astype(np.float64)
    norms = np.linalg.norm(vectors, axis=1)
    rng = np.random.default_rng(11)
    picks = rng.choice(len(vectors), queries, replace=False)
    qs = [
        (data["embedding"][i] + rng.normal(0, 0.05, vectors.shape[1])).astype(np.float32)
        for i in picks
    ]
    centers = data["centers"]
    rows_out: list[list[Any]] = []
    filters = [*BUCKETS, FAR]
    for name in filters:
        per: dict[str, dict[str, list[Any]]] = {
            m: {"rows": [], "recall": [], "ms": [], "how": []} for m in METHODS
        }
        first_plan = ""
        for qi, q in enumerate(qs):
            if name == FAR:
                near = int(np.argmin(np.linalg.norm(centers - q, axis=1)))
                far = int(np.argmax(np.linalg.norm(centers - centers[near], axis=1)))
                stmt = select(t.c.id).where(t.c.cluster == far)
                mask = data["cluster"] == far
            else:
                stmt = select(t.c.id).where(t.c.bucket < BUCKETS[name])
                mask = data["bucket"] < BUCKETS[name]
            truth = exact_ids(vectors, norms, q, mask, k)
            distance = t.c.embedding.cosine_distance(q)
            if qi == 0:
                first_plan = plan_of(engine, stmt, distance, k)
            for method, fn in METHODS.items():
                with engine.connect() as conn:
                    started = time.perf_counter()
                    got = fn(conn, stmt, distance, k)
                    elapsed = (time.perf_counter() - started) * 1000
                    conn.rollback()
                found = got.rows if hasattr(got, "rows") else got
                if hasattr(got, "strategy"):
                    per[method]["how"].append(got.strategy if got.complete else "incomplete")
                ids = {int(r.id) for r in found}
                per[method]["rows"].append(len(found))
                per[method]["recall"].append(len(ids & set(truth)) / len(truth) if truth else 1.0)
                per[method]["ms"].append(elapsed)
        matching = int(mask.sum()) if name != FAR else f"~{len(vectors) // len(centers)}"
        for method, m in per.items():
            ms = sorted(m["ms"])
            how = Counter(m["how"])
            rows_out.append(
                [
                    f"{name} ({matching})",
                    method,
                    f"{statistics.mean(m['rows']):.1f} / {min(m['rows'])}",
                    f"{statistics.mean(m['recall']):.3f}",
                    f"{statistics.median(ms):.1f}",
                    f"{ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]:.1f}",
                    first_plan
                    if method in ("plain ANN",)
                    else ", ".join(f"{s} {c}" for s, c in how.items()),
                ]
            )
    return rows_out


HEADERS = [
    "filter (matching rows)",
    "method",
    "rows mean / min",
    "recall@10",
    "median ms",
    "p95 ms",
    "plan / strategies",
]


def describe(args: argparse.Namespace, engine: Engine) -> None:
    with engine.connect() as conn:
        pg = conn.execute(text("SHOW server_version")).scalar()
        pgv = conn.execute(
            text("SELECT extversion FROM pg_extension WHERE extname='vector'")
        ).scalar()
    print(
        f"N={args.n}, dim={args.dim}, {args.clusters} clusters, {args.queries} queries, "
        f"k={args.k}; "
        f"PostgreSQL {pg}, pgvector {pgv}; Python {platform.python_version()}, "
        f"SQLAlchemy {sqlalchemy.__version__}, vecalchemy {vecalchemy.__version__}; "
        f"{os.cpu_count()} cores ({platform.machine()})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=200_000, help="rows (default 200000)")
    parser.add_argument("--dim", type=int, default=64, help="dimensions (default 64)")
    parser.add_argument(
        "--clusters", type=int, default=20, help="clusters (default 20: 5 %% each)"
    )
    parser.add_argument("--queries", type=int, default=50, help="queries per filter (default 50)")
    parser.add_argument("--k", type=int, default=10, help="rows wanted (default 10)")
    parser.add_argument("--url", help="SQLAlchemy URL (default: vecalchemy's test server)")
    parser.add_argument("--reuse", action="store_true", help="keep a loaded table of --n rows")
    parser.add_argument(
        "--no-btree", action="store_true", help="skip the pass with B-trees on the filters"
    )
    args = parser.parse_args(argv)
    url = args.url or database_url()
    engine = create_engine(url, plugins=["vecalchemy"])
    t = table(args.dim)
    data = make_data(args.n, args.dim, args.clusters)
    load(engine, t, data, args.reuse)
    describe(args, engine)
    with engine.begin() as conn:
        conn.execute(text(f"DROP INDEX IF EXISTS {TABLE}_bucket, {TABLE}_cluster"))
        conn.execute(text(f"ANALYZE {TABLE}"))
    print("\n### No index on the filter columns\n")
    print(tabulate(run(engine, t, data, args.queries, args.k), HEADERS, tablefmt="github"))
    if not args.no_btree:
        with engine.begin() as conn:
            conn.execute(text(f"CREATE INDEX {TABLE}_bucket ON {TABLE} (bucket)"))
            conn.execute(text(f"CREATE INDEX {TABLE}_cluster ON {TABLE} (cluster)"))
            conn.execute(text(f"ANALYZE {TABLE}"))
        print("\n### B-tree indexes on bucket and cluster\n")
        print(tabulate(run(engine, t, data, args.queries, args.k), HEADERS, tablefmt="github"))
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
