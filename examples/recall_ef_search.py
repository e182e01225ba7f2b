"""Recall@10 against ``hnsw.ef_search`` (and ``ivfflat.probes``) on 20 000 vectors.

    python examples/recall_ef_search.py [--rows 20000] [--dim 96] [--queries 100]

The data are synthetic and say so: ``rows`` vectors drawn from a seeded mixture of 100
Gaussian clusters in ``dim`` dimensions (cluster centres N(0, 1), spread 1.6 per
dimension, so clusters overlap), and ``queries`` held-out points from the same mixture.
That is the regime where approximate search is neither trivial nor hopeless, like real
embeddings.

The program loads the rows with binary COPY, builds an HNSW index (cosine, m=16,
ef_construction=64) with a progress bar and the ``maintenance_work_mem`` that
:func:`vecalchemy.index_build_settings` suggests, checks with EXPLAIN that the query
uses it, then for ``ef_search`` 10 / 40 / 100 / 200 measures recall@10 with
:func:`vecalchemy.measure_recall` (the ANN answer against the exact answer of the same
statement with index scans off) and the mean ANN latency. The same for IVFFlat
(``lists`` = rows / 1000) against ``probes``.

Uses :func:`vecalchemy.testing.database_url` (``VECALCHEMY_DATABASE_URL``, Docker, or
the embedded server) and works in its own schema, dropped at the end.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, select, text
from sqlalchemy.engine import Engine
from tabulate import tabulate

from vecalchemy import (
    HnswIndex,
    IvfflatIndex,
    Vector,
    build_vector_index,
    copy_rows,
    explain_index_usage,
    index_build_settings,
    measure_recall,
    search_settings,
)
from vecalchemy.testing import database_url

K = 10
EF_SEARCH = (10, 40, 100, 200)
PROBES = (1, 2, 5, 10, 20)
#: within-cluster standard deviation (cluster centres are N(0, 1))
SPREAD = 1.6


@dataclass(frozen=True)
class Point:
    """One row of a trade-off table."""

    setting: int
    recall: float
    latency_ms: float


def mixture(rows: int, queries: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, dim)`` data and ``(queries, dim)`` queries, float32, from one mixture."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((100, dim))
    labels = rng.integers(0, 100, rows + queries)
    points = centres[labels] + SPREAD * rng.standard_normal((rows + queries, dim))
    points = points.astype(np.float32)
    return points[:rows], points[rows:]


def sweep(
    engine: Engine, table: Table, queries: np.ndarray, setting: str, values: Sequence[int]
) -> list[Point]:
    """recall@K and mean ANN latency of each query, for each value of ``setting``."""
    points = []
    for value in values:
        recalls, seconds = [], 0.0
        with engine.connect() as conn, search_settings(conn, {setting: value}):
            for q in queries:
                stmt = select(table.c.id).order_by(table.c.embedding.cosine_distance(q)).limit(K)
                start = time.perf_counter()
                conn.execute(stmt).all()
                seconds += time.perf_counter() - start
                recalls.append(measure_recall(conn, stmt, K))
        points.append(Point(value, float(np.mean(recalls)), 1000 * seconds / len(queries)))
    return points


def run(
    engine: Engine, rows: int, dim: int, n_queries: int, progress: bool
) -> dict[str, list[Point]]:
    """Load, index and sweep; return the HNSW and IVFFlat trade-off tables."""
    data, queries = mixture(rows, n_queries, dim)
    md = MetaData()
    items = Table(
        "items",
        md,
        Column("id", Integer, primary_key=True),
        Column("embedding", Vector(dim, metric="cosine")),
    )
    md.create_all(engine)
    with engine.begin() as conn:
        copy_rows(conn, items, {"id": np.arange(rows), "embedding": data}, progress=progress)
        conn.execute(text("ANALYZE items"))

    settings = index_build_settings(rows, dim, m=16)
    print(f"maintenance_work_mem for the HNSW build: {settings.maintenance_work_mem_mb} MB")
    print(f"  based on {settings.basis}")
    with engine.begin() as conn:
        conn.execute(
            text("SELECT set_config('maintenance_work_mem', :v, false)"),
            {"v": f"{settings.maintenance_work_mem_mb}MB"},
        )
    hnsw = HnswIndex("items_hnsw", items.c.embedding, m=16, ef_construction=64)
    start = time.perf_counter()
    build_vector_index(engine, hnsw, progress=progress)
    print(f"HNSW build: {time.perf_counter() - start:.1f} s")

    probe = select(items.c.id).order_by(items.c.embedding.cosine_distance(queries[0])).limit(K)
    with engine.connect() as conn:
        print(f"EXPLAIN uses: {explain_index_usage(conn, probe).index_names}")
    results = {"hnsw.ef_search": sweep(engine, items, queries, "hnsw.ef_search", EF_SEARCH)}

    hnsw.drop(engine)
    lists = max(1, rows // 1000)
    ivf = IvfflatIndex("items_ivfflat", items.c.embedding, lists=lists)
    build_vector_index(engine, ivf, progress=progress)
    probes = [p for p in PROBES if p <= lists]
    results[f"ivfflat.probes (lists={lists})"] = sweep(
        engine, items, queries, "ivfflat.probes", probes
    )
    return results


def main(argv: Sequence[str] | None = None) -> dict[str, list[Point]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=96)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    url = database_url()
    schema = f"recall_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = create_engine(
        url, plugins=["vecalchemy"], connect_args={"options": f"-csearch_path={schema},public"}
    )
    try:
        results = run(engine, args.rows, args.dim, args.queries, not args.no_progress)
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    for setting, points in results.items():
        print()
        print(f"{args.rows} vectors x {args.dim} dims, {args.queries} queries, cosine:")
        print(
            tabulate(
                [(p.setting, f"{p.recall:.3f}", f"{p.latency_ms:.2f}") for p in points],
                headers=[setting, f"recall@{K}", "ANN ms/query"],
            )
        )
    return results


if __name__ == "__main__":
    main()
