"""vecalchemy vs pgvector-python vs raw psycopg, same server, same process, alternated runs.

Run by hand (pytest does not collect this folder)::

    python tests/benchmarks/bench.py                      # N=20000, dim=768, 5 repeats
    python tests/benchmarks/bench.py --n 2000 --repeats 3 # quick look
    python tests/benchmarks/bench.py --curve              # N = 10k, 50k, 200k (no peer)
    python tests/benchmarks/bench.py --compat             # vecalchemy.compat.pgvector's types

Workloads (each implementation in turn, order rotated every repeat, medians printed):

- insert: ``INSERT`` of ``(id, embedding)`` rows from NumPy arrays, executemany
  (vecalchemy Core and ORM bulk through SQLAlchemy; SQLAlchemy Core and ORM bulk alone, with
  no type processing and the raw dumper, the floor of any type library on SQLAlchemy;
  pgvector-python's SQLAlchemy type; raw psycopg ``executemany`` with a binary NumPy dumper);
- copy: ``copy_rows`` vs the near limit, ``COPY ... (FORMAT BINARY)`` of one NumPy
  buffer encoded for the whole matrix;
- fetch: every ``(id, embedding)`` row (vecalchemy Core with binary results and
  ``fetch_matrix``; pgvector-python; raw psycopg binary cursor), plus peak memory;
- topk: 200 top-10 HNSW cosine queries, mean latency per query (vecalchemy with a select()
  built per query, one statement built once, ``PreparedQuery``; SQLAlchemy alone running the
  raw SQL string with the raw dumper through ``exec_driver_sql``, the floor of any library
  executing through SQLAlchemy; raw psycopg; pgvector-python).

The server is vecalchemy's test server (``VECALCHEMY_DATABASE_URL`` or the embedded one).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import struct
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import psycopg
import sqlalchemy
from psycopg.adapt import Dumper, Loader
from psycopg.pq import Format
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, insert, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.types import UserDefinedType
from tabulate import tabulate

import vecalchemy
from vecalchemy import PreparedQuery, Vector, copy_rows, fetch_matrix
from vecalchemy.bulk import COPY_SIGNATURE, COPY_TRAILER
from vecalchemy.pytest_plugin import libpq_conninfo
from vecalchemy.testing import database_url

TABLE = "bench_items"


# --- raw psycopg: the tightest binary adapters one can write -------------------------------


class RawDumper(Dumper):
    format = Format.BINARY

    def dump(self, obj: np.ndarray) -> bytes:
        return struct.pack(">HH", obj.shape[0], 0) + obj.astype(">f4", copy=False).tobytes()


class RawLoader(Loader):
    format = Format.BINARY

    def load(self, data: Any) -> np.ndarray:
        return np.frombuffer(data, dtype=">f4", offset=4).astype(np.float32)


def _raw_adapters(conn: psycopg.Connection[Any], *_: Any) -> None:
    oid = conn.execute("SELECT 'vector'::regtype::oid").fetchone()[0]  # type: ignore[index]
    conn.rollback()
    conn.adapters.register_dumper(np.ndarray, type("D", (RawDumper,), {"oid": oid}))
    conn.adapters.register_loader(oid, RawLoader)


def raw_connect(url: str) -> psycopg.Connection[Any]:
    conn = psycopg.connect(libpq_conninfo(url))
    _raw_adapters(conn)
    return conn


# --- the three contestants ---------------------------------------------------------------


class RawVector(UserDefinedType[np.ndarray]):
    """The floor's column type: no bind or result processing; psycopg's raw dumper and
    loader (registered on the floor engine's connections) do all of the work."""

    cache_ok = True

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def get_col_spec(self, **kw: Any) -> str:
        return f"vector({self.dim})"


def make_models(dim: int) -> tuple[Table, type, Table]:
    """vecalchemy Core table + ORM class, and pgvector-python's Core table."""
    from pgvector.sqlalchemy import VECTOR as PgvectorVECTOR

    class Base(DeclarativeBase):
        pass

    ours = Table(
        TABLE,
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("embedding", Vector(dim)),
    )
    item = type(
        "Item",
        (Base,),
        {
            "__tablename__": TABLE,
            "__annotations__": {"id": Mapped[int], "embedding": Mapped[np.ndarray]},
            "id": mapped_column(Integer, primary_key=True),
            "embedding": mapped_column(Vector(dim)),
        },
    )
    peer = Table(
        TABLE,
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("embedding", PgvectorVECTOR(dim)),
    )
    return ours, item, peer


def make_floor_models(dim: int) -> tuple[Table, type]:
    """Plain SQLAlchemy Core table + ORM class over :class:`RawVector`."""

    class Base(DeclarativeBase):
        pass

    table = Table(
        TABLE,
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("embedding", RawVector(dim)),
    )
    item = type("FloorItem", (Base,), {"__table__": table})
    return table, item


class Bench:
    def __init__(self, url: str, n: int, dim: int, peers: bool) -> None:
        self.url, self.n, self.dim, self.peers = url, n, dim, peers
        rng = np.random.default_rng(42)
        self.matrix = rng.standard_normal((n, dim)).astype(np.float32)
        self.ids = np.arange(n)
        self.ours, self.Item, self.peer = make_models(dim)
        self.floor_table, self.FloorItem = make_floor_models(dim)
        self.engine = create_engine(url, plugins=["vecalchemy"])
        self.plain = create_engine(url)  # pgvector-python runs on a plain engine
        self.raw = raw_connect(url)
        self.floor = create_engine(url)  # plain SQLAlchemy with the raw binary dumper
        sqlalchemy.event.listen(self.floor, "connect", _raw_adapters)
        self.prepared = PreparedQuery(
            select(self.ours.c.id)
            .order_by(self.ours.c.embedding.cosine_distance(sqlalchemy.bindparam("q")))
            .limit(10)
        )
        with self.raw.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {TABLE}")
            cur.execute(f"CREATE TABLE {TABLE} (id integer PRIMARY KEY, embedding vector({dim}))")
        self.raw.commit()
        self.queries = [self.matrix[i] + 0.01 for i in rng.integers(0, n, 200)]

    def truncate(self) -> None:
        self.raw.execute(f"TRUNCATE {TABLE}")
        self.raw.commit()

    def load(self) -> None:
        self.truncate()
        self.copy_raw()

    # insert ---------------------------------------------------------------------------------
    def rows(self) -> list[dict[str, Any]]:
        return [{"id": i, "embedding": v} for i, v in zip(range(self.n), self.matrix, strict=True)]

    def insert_core(self) -> None:
        rows = self.rows()
        with self.engine.begin() as conn:
            conn.execute(insert(self.ours), rows)

    def insert_orm(self) -> None:
        rows = self.rows()
        with Session(self.engine) as session:
            session.execute(insert(self.Item), rows)
            session.commit()

    def insert_peer(self) -> None:
        rows = self.rows()
        with self.plain.begin() as conn:
            conn.execute(insert(self.peer), rows)

    def insert_floor_core(self) -> None:
        """SQLAlchemy alone: its default executemany (one psycopg executemany of the
        single-row INSERT), no type processing, the raw binary dumper."""
        rows = self.rows()
        with self.floor.begin() as conn:
            conn.execute(insert(self.floor_table), rows)

    def insert_floor_orm(self) -> None:
        rows = self.rows()
        with Session(self.floor) as session:
            session.execute(insert(self.FloorItem), rows)
            session.commit()

    def insert_raw(self) -> None:
        params = list(zip(range(self.n), self.matrix, strict=True))
        with self.raw.cursor() as cur:
            cur.executemany(f"INSERT INTO {TABLE} (id, embedding) VALUES (%s, %b)", params)
        self.raw.commit()

    # copy -----------------------------------------------------------------------------------
    def copy_ours(self) -> None:
        with self.engine.begin() as conn:
            copy_rows(conn, self.ours, {"id": self.ids, "embedding": self.matrix}, progress=False)

    def copy_raw(self) -> None:
        """Near the limit: the whole matrix encoded into one NumPy buffer, written at once."""
        rec = np.empty(
            self.n,
            [
                ("nf", ">i2"),
                ("l0", ">i4"),
                ("id", ">i4"),
                ("l1", ">i4"),
                ("d", ">u2"),
                ("u", ">u2"),
                ("v", ">f4", self.dim),
            ],
        )
        rec["nf"], rec["l0"], rec["id"] = 2, 4, self.ids
        rec["l1"], rec["d"], rec["u"], rec["v"] = 4 + 4 * self.dim, self.dim, 0, self.matrix
        with (
            self.raw.cursor() as cur,
            cur.copy(f"COPY {TABLE} (id, embedding) FROM STDIN (FORMAT BINARY)") as cp,
        ):
            cp.write(COPY_SIGNATURE)
            cp.write(memoryview(rec.data).cast("B"))  # bytes, so psycopg can slice it
            cp.write(COPY_TRAILER)
        self.raw.commit()

    # fetch ----------------------------------------------------------------------------------
    def fetch_core(self) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(select(self.ours.c.id, self.ours.c.embedding)).all()

    def fetch_orm(self) -> Any:
        with Session(self.engine) as session:
            return session.scalars(select(self.Item)).all()

    def fetch_matrix(self) -> Any:
        with self.engine.connect() as conn:
            return fetch_matrix(conn, self.ours.c.embedding)

    def fetch_peer(self) -> Any:
        with self.plain.connect() as conn:
            return conn.execute(select(self.peer.c.id, self.peer.c.embedding)).all()

    def fetch_send_bytea(self) -> Any:
        """The other mechanism: text results, ``vector_send(col)`` as bytea, frombuffer."""
        with self.raw.cursor() as cur:
            cur.execute(f"SELECT id, vector_send(embedding) FROM {TABLE}")
            rows = [
                (i, np.frombuffer(v, dtype=">f4", offset=4).astype(np.float32))
                for i, v in cur.fetchall()
            ]
        self.raw.rollback()
        return rows

    def fetch_raw(self) -> Any:
        with self.raw.cursor(binary=True) as cur:
            cur.execute(f"SELECT id, embedding FROM {TABLE}")
            rows = cur.fetchall()
        self.raw.rollback()
        return rows

    # top-k ----------------------------------------------------------------------------------
    def topk_ours(self) -> None:
        col = self.ours.c.embedding
        with self.engine.connect() as conn:
            for q in self.queries:
                conn.execute(
                    select(self.ours.c.id).order_by(col.cosine_distance(q)).limit(10)
                ).all()

    def topk_ours_prebuilt(self) -> None:
        stmt = (
            select(self.ours.c.id)
            .order_by(
                self.ours.c.embedding.cosine_distance(
                    sqlalchemy.bindparam("q", type_=Vector(self.dim))
                )
            )
            .limit(10)
        )
        with self.engine.connect() as conn:
            for q in self.queries:
                conn.execute(stmt, {"q": q}).all()

    def topk_prepared(self) -> None:
        with self.engine.connect() as conn:
            for q in self.queries:
                self.prepared.all(conn, q=q)

    def topk_sqlalchemy_floor(self) -> None:
        """SQLAlchemy's own cost: the raw SQL string and raw dumper through exec_driver_sql."""
        sql = f"SELECT id FROM {TABLE} ORDER BY embedding <=> %b LIMIT 10"
        with self.floor.connect() as conn:
            for q in self.queries:
                conn.exec_driver_sql(sql, (q,)).all()

    def topk_peer(self) -> None:
        col = self.peer.c.embedding
        with self.plain.connect() as conn:
            for q in self.queries:
                conn.execute(
                    select(self.peer.c.id).order_by(col.cosine_distance(q)).limit(10)
                ).all()

    def topk_raw(self) -> None:
        sql = f"SELECT id FROM {TABLE} ORDER BY embedding <=> %b LIMIT 10"
        with self.raw.cursor() as cur:
            for q in self.queries:
                cur.execute(sql, (q,))
                cur.fetchall()
        self.raw.rollback()

    def build_index(self) -> None:
        self.raw.execute("SET maintenance_work_mem = '1GB'")
        self.raw.execute(f"CREATE INDEX ON {TABLE} USING hnsw (embedding vector_cosine_ops)")
        self.raw.execute(f"ANALYZE {TABLE}")
        self.raw.commit()

    def close(self) -> None:
        self.raw.close()
        self.floor.dispose()
        self.engine.dispose()
        self.plain.dispose()


FETCHES = [
    ("vecalchemy Core", Bench.fetch_core),
    ("vecalchemy ORM", Bench.fetch_orm),
    ("vecalchemy fetch_matrix", Bench.fetch_matrix),
    ("raw psycopg binary", Bench.fetch_raw),
]


def alternate(
    impls: dict[str, Callable[[], Any]], repeats: int, before: Callable[[], None] | None = None
) -> dict[str, list[tuple[float, float]]]:
    """(wall, client CPU) seconds of each run; the order rotates every repeat so no one
    always runs first. Client CPU excludes the server's work and the machine's other load.
    What a run returns (a fetch's rows) is released after its clock stops, for every
    implementation alike."""
    names = list(impls)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            if before is not None:
                before()
            gc.collect()
            t0, c0 = time.perf_counter(), time.process_time()
            result = impls[name]()
            times[name].append((time.perf_counter() - t0, time.process_time() - c0))
            del result  # freed after the clock stops: a fetch is timed, not its freeing
    return times


def _paired(ours: list[tuple[float, float]], raw: list[tuple[float, float]], rate: bool) -> str:
    """Ratios to raw psycopg within each round (the runs of one round are back to back, so
    the machine's slow drifts cancel): median and range over the rounds."""
    ratios = sorted((r / o if rate else o / r) for (o, _), (r, _) in zip(ours, raw, strict=True))
    return f"{statistics.median(ratios):.2f}x [{ratios[0]:.2f}-{ratios[-1]:.2f}]"


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field))


def probe(name: str, dim: int) -> None:
    """Child process: one fetch, print its peak RSS and Python-heap peak above baseline."""
    b = Bench.__new__(Bench)
    b.url, b.dim = database_url(), dim
    b.ours, b.Item, b.peer = make_models(dim)
    b.engine = create_engine(b.url, plugins=["vecalchemy"])
    b.plain = create_engine(b.url)
    b.raw = raw_connect(b.url)
    fn = dict(FETCHES)[name].__get__(b)
    with b.engine.connect(), b.plain.connect():
        pass  # pools and adapters ready before the baseline
    gc.collect()
    # VmHWM is this process's own peak RSS (ru_maxrss would include the parent's, from fork)
    base, hwm = _status_kib("VmRSS:"), _status_kib("VmHWM:")
    tracemalloc.start()
    result = fn()
    _, heap_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak = _status_kib("VmHWM:")
    assert result is not None
    # a high-water mark: valid when this fetch raised it (setup is small, so it does)
    print(f"{(peak - base) * 1024} {heap_peak} {int(peak > hwm)}")


def peak_memory(name: str, dim: int) -> tuple[float, float]:
    """(RSS, Python heap) bytes above baseline of one fetch, measured in a fresh process."""
    env = dict(os.environ, VECALCHEMY_DATABASE_URL=database_url())
    out = subprocess.run(
        [sys.executable, __file__, "--probe", name, "--dim", str(dim)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return float(out[0]), float(out[1])


def run(n: int, dim: int, repeats: int, peers: bool, workloads: list[str]) -> list[list[Any]]:
    b = Bench(database_url(), n, dim, peers)
    table: list[list[Any]] = []

    def add(
        workload: str,
        times: dict[str, list[tuple[float, float]]],
        raw: str,
        peer: str | None,
        unit: str,
    ) -> None:
        med = {k: statistics.median(w for w, _ in v) for k, v in times.items()}
        cpu = {k: statistics.median(c for _, c in v) for k, v in times.items()}
        for name, t in med.items():
            if unit == "vec/s":
                figure = n / t
                vs_raw = med[raw] / t
                vs_peer = med[peer] / t if peer in med else None
            else:  # latency per query, lower is better: ratios are ours/theirs
                figure = t / len(b.queries) * 1e3
                vs_raw = t / med[raw]
                vs_peer = t / med[peer] if peer in med else None
            table.append(
                [
                    workload,
                    name,
                    f"{figure:,.0f}" if unit == "vec/s" else f"{figure:.3f}",
                    unit,
                    f"{t / n * 1e6:.1f}" if unit == "vec/s" else "",
                    f"{cpu[name] / n * 1e6:.1f}"
                    if unit == "vec/s"
                    else f"{cpu[name] / len(b.queries) * 1e3:.3f}",
                    f"{vs_raw:.2f}x",
                    _paired(times[name], times[raw], unit == "vec/s"),
                    "" if vs_peer is None else f"{vs_peer:.2f}x",
                ]
            )

    if "insert" in workloads:
        impls = {
            "vecalchemy Core": b.insert_core,
            "vecalchemy ORM bulk": b.insert_orm,
            "SQLAlchemy Core alone (floor)": b.insert_floor_core,
            "SQLAlchemy ORM bulk alone (floor)": b.insert_floor_orm,
            "raw psycopg executemany": b.insert_raw,
        }
        if peers:
            impls["pgvector-python"] = b.insert_peer
        add(
            "insert",
            alternate(impls, repeats, b.truncate),
            "raw psycopg executemany",
            "pgvector-python",
            "vec/s",
        )
    if "copy" in workloads:
        impls = {"vecalchemy copy_rows": b.copy_ours, "raw COPY, one buffer": b.copy_raw}
        add("copy", alternate(impls, repeats, b.truncate), "raw COPY, one buffer", None, "vec/s")
    mem: list[list[Any]] = []
    if "fetch" in workloads:
        b.load()
        impls = {
            "vecalchemy Core": b.fetch_core,
            "vecalchemy ORM": b.fetch_orm,
            "vecalchemy fetch_matrix": b.fetch_matrix,
            "raw psycopg binary": b.fetch_raw,
            "raw psycopg text, vector_send bytea": b.fetch_send_bytea,
        }
        if peers:
            impls["pgvector-python"] = b.fetch_peer
        add("fetch", alternate(impls, repeats), "raw psycopg binary", "pgvector-python", "vec/s")
        matrix_bytes = n * dim * 4
        for name, _ in FETCHES:
            rss, heap = peak_memory(name, dim)
            mem.append([name, f"{rss / matrix_bytes:.2f}x", f"{heap / matrix_bytes:.2f}x"])
    if "topk" in workloads:
        if "fetch" not in workloads:
            b.load()
        b.build_index()
        impls = {
            "vecalchemy": b.topk_ours,
            "vecalchemy prebuilt stmt": b.topk_ours_prebuilt,
            "vecalchemy PreparedQuery": b.topk_prepared,
            "SQLAlchemy alone (floor)": b.topk_sqlalchemy_floor,
            "raw psycopg": b.topk_raw,
        }
        if peers:
            impls["pgvector-python"] = b.topk_peer
        for fn in impls.values():  # warm up: plans, prepared statements, statement cache
            fn()
        add("top-10 HNSW", alternate(impls, repeats), "raw psycopg", "pgvector-python", "ms/query")
    b.close()
    print(
        tabulate(
            table,
            headers=[
                "workload",
                "implementation",
                "figure",
                "unit",
                "µs/row",
                "client CPU µs/row (ms/query)",
                "vs raw",
                "vs raw, per round: median [min-max]",
                "vs pgvector-python",
            ],
            colalign=(
                "left",
                "left",
                "right",
                "left",
                "right",
                "right",
                "right",
                "right",
                "right",
            ),  # fmt: skip
        )
    )
    if mem:
        print(
            "\npeak memory of the fetch above baseline, in multiples of the matrix "
            f"({n * dim * 4 / 2**20:.1f} MiB):"
        )
        print(tabulate(mem, headers=["implementation", "RSS peak", "Python heap peak"]))
    return table


def describe(n: int, dim: int, repeats: int) -> None:
    with psycopg.connect(libpq_conninfo(database_url())) as conn:
        server = conn.execute("SELECT version()").fetchone()[0]  # type: ignore[index]
        pgv = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
        ).fetchone()[0]  # type: ignore[index]
    import pgvector

    with open("/proc/cpuinfo") as f:
        models = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    cpu = models[0] if models else platform.processor()
    print(
        f"N={n} dim={dim} repeats={repeats} (medians of alternated runs)\n"
        f"machine: {cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}\n"
        f"Python {platform.python_version()}, vecalchemy {vecalchemy.__version__}, "
        f"SQLAlchemy {sqlalchemy.__version__}, "
        f"psycopg {psycopg.__version__} ({psycopg.pq.__impl__}), "
        f"NumPy {np.__version__}, pgvector-python {getattr(pgvector, '__version__', '0.5.1')}\n"
        f"server: {server.split(',')[0]}, pgvector {pgv}\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=20_000, help="rows (default 20000)")
    parser.add_argument("--dim", type=int, default=768, help="dimensions (default 768)")
    parser.add_argument(
        "--repeats", type=int, default=5, help="alternated runs per implementation"
    )
    parser.add_argument(
        "--workloads",
        default="insert,copy,fetch,topk",
        help="comma-separated: insert,copy,fetch,topk",
    )
    parser.add_argument(
        "--no-peer", action="store_true", help="skip pgvector-python (slow at large N)"
    )
    parser.add_argument(
        "--curve",
        action="store_true",
        help="N = 10k, 50k, 200k: insert, copy, fetch, without the peer",
    )
    parser.add_argument(
        "--driver",
        choices=["psycopg", "asyncpg", "psycopg2", "pg8000"],
        default="psycopg",
        help="another driver's workloads (tests/benchmarks/bench_drivers.py)",
    )
    parser.add_argument(
        "--compat",
        action="store_true",
        help="the pgvector.sqlalchemy-compatible types against vecalchemy's and "
        "pgvector.sqlalchemy's (tests/benchmarks/bench_compat.py; N=10000, 3 rounds unless "
        "--n / --repeats say otherwise)",
    )
    parser.add_argument("--probe", help=argparse.SUPPRESS)  # child process of peak_memory
    args = parser.parse_args(argv)
    if args.compat:
        from bench_compat import main as compat_main

        given = argv if argv is not None else sys.argv[1:]
        passed = [a for a in given if a != "--compat"]
        return compat_main(passed)
    if args.driver != "psycopg":
        from bench_drivers import main as drivers_main

        extra = ["--no-peer"] if args.no_peer else []
        return drivers_main(
            ["--driver", args.driver, "--n", str(args.n), "--dim", str(args.dim)]
            + ["--repeats", str(args.repeats), *extra]
        )
    if args.probe:
        probe(args.probe, args.dim)
        return 0
    if args.curve:
        for n in (10_000, 50_000, 200_000):
            describe(n, args.dim, args.repeats)
            run(n, args.dim, args.repeats, False, ["insert", "copy", "fetch"])
            print()
        return 0
    describe(args.n, args.dim, args.repeats)
    run(args.n, args.dim, args.repeats, not args.no_peer, args.workloads.split(","))
    return 0


if __name__ == "__main__":
    sys.exit(main())
