"""The pgvector.sqlalchemy-compatible types against vecalchemy's own and pgvector.sqlalchemy's,
same server, same data, same process, alternated runs.

Run by hand (``python tests/benchmarks/bench.py --compat`` calls this)::

    python tests/benchmarks/bench_compat.py                       # N=10000, dim=768, 3 rounds
    python tests/benchmarks/bench_compat.py --n 2000 --repeats 3  # quick look
    python tests/benchmarks/bench_compat.py --workloads fetch-core,fetch-orm

(N = 10 000 by default: pgvector.sqlalchemy inserts ~1 000 vectors/s on a 2-vCPU machine,
so its runs take most of the time.)

Contenders, one column ``vector(dim)`` and an integer id:

- ``compat VECTOR``: ``vecalchemy.compat.pgvector.VECTOR`` on an engine with
  ``plugins=["vecalchemy"]`` (binary binds and results);
- ``vecalchemy Vector``: ``vecalchemy.Vector`` on that same engine;
- ``pgvector.sqlalchemy``: ``pgvector.sqlalchemy.VECTOR`` on a plain engine, as its users run
  it and as ``bench.py`` runs it;
- for inserts from arrays, ``SQLAlchemy alone (floor)``: plain SQLAlchemy with no type
  processing and psycopg's raw binary dumper (``bench.py``'s floor), what any type pays
  for going through SQLAlchemy.

Workloads (each contender in turn, order rotated every round):

- ``insert-core``, ``insert-add_all`` (and ``insert-bulk``, not run unless named): from
  lists (``ndarray.tolist()`` of the data, made once: what pgvector.sqlalchemy's users bind)
  and from the float32 ``np.ndarray`` rows, Core ``executemany``
  (``conn.execute(insert(t), rows)``), ORM ``session.add_all(items)`` and commit, ORM bulk
  (``session.execute(insert(Item), rows)``, as ``bench.py`` runs it);
- ``fetch-core``, ``fetch-orm``: every ``(id, embedding)`` row through Core, every ``Item``
  through the ORM; and the floor of any type returning lists: building ``N`` lists of
  ``dim`` floats alone and keeping them (``ndarray.tolist()`` of ``N`` float32 arrays, what
  the compat type does with the arrays vecalchemy's loader makes; ``struct.unpack_from``
  of ``N`` binary payloads), alternated with the fetches.

Before the timed runs, each contender inserts 200 rows from lists through Core and every
contender reads them back: all hold and return the same float4 values.

The tables go to a schema of their own, dropped at the end. The server is vecalchemy's test
server (``VECALCHEMY_DATABASE_URL`` or the embedded one).
"""

from __future__ import annotations

import argparse
import os
import statistics
import struct
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import psycopg
from bench import RawVector, _raw_adapters, alternate, describe
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, event, insert, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from tabulate import tabulate

from vecalchemy import Vector, copy_rows
from vecalchemy.compat.pgvector import VECTOR as CompatVECTOR
from vecalchemy.pytest_plugin import libpq_conninfo
from vecalchemy.testing import database_url

TABLE = "bench_compat_items"
COMPAT, OURS, PEER = "compat VECTOR", "vecalchemy Vector", "pgvector.sqlalchemy"
CONTENDERS = (COMPAT, OURS, PEER)
#: plain SQLAlchemy, no type processing, psycopg's raw binary dumper (bench.py's floor)
ALONE = "SQLAlchemy alone (floor)"
FLOORS = ("lists alone: ndarray.tolist()", "lists alone: struct.unpack_from")
THEN_TOLIST = "vecalchemy Vector, then .tolist() each"
#: workload -> how it is labelled
WORKLOADS = {
    "insert-core": "insert, Core executemany",
    "insert-add_all": "insert, ORM add_all",
    "insert-bulk": "insert, ORM bulk insert",
    "fetch-core": "fetch, Core",
    "fetch-orm": "fetch, ORM",
}
DEFAULT_WORKLOADS = "insert-core,insert-add_all,fetch-core,fetch-orm"


def models(dim: int, schema: str) -> dict[str, tuple[Table, type]]:
    """contender -> (Core table, ORM class), all over the same table."""
    from pgvector.sqlalchemy import VECTOR as PgvectorVECTOR

    out = {}
    for name, coltype, annotation in (
        (COMPAT, CompatVECTOR, list[float]),
        (OURS, Vector, np.ndarray),
        (PEER, PgvectorVECTOR, list[float]),
        (ALONE, RawVector, np.ndarray),
    ):

        class Base(DeclarativeBase):
            pass

        item = type(
            "Item",
            (Base,),
            {
                "__tablename__": TABLE,
                "__table_args__": {"schema": schema},
                "__annotations__": {"id": Mapped[int], "embedding": Mapped[annotation]},
                "id": mapped_column(Integer, primary_key=True),
                "embedding": mapped_column(coltype(dim)),
            },
        )
        table = Table(
            TABLE,
            MetaData(schema=schema),
            Column("id", Integer, primary_key=True),
            Column("embedding", coltype(dim)),
        )
        out[name] = (table, item)
    return out


class Bench:
    def __init__(self, url: str, n: int, dim: int) -> None:
        self.n, self.dim = n, dim
        self.schema = f"bench_compat_{os.getpid()}"
        rng = np.random.default_rng(42)
        self.matrix = rng.standard_normal((n, dim)).astype(np.float32)
        self.inputs: dict[str, list[Any]] = {
            "lists": self.matrix.tolist(),
            "ndarray": list(self.matrix),
        }
        self.models = models(dim, self.schema)
        ours = create_engine(url, plugins=["vecalchemy"])
        alone = create_engine(url)
        event.listen(alone, "connect", _raw_adapters)
        self.engines = {COMPAT: ours, OURS: ours, PEER: create_engine(url), ALONE: alone}
        self.raw = psycopg.connect(libpq_conninfo(url), autocommit=True)
        self.raw.execute(f"CREATE SCHEMA {self.schema}")
        self.raw.execute(
            f"CREATE TABLE {self.schema}.{TABLE} (id integer PRIMARY KEY, embedding vector({dim}))"
        )
        # the fetch floor's inputs: what psycopg hands a binary loader, and what it makes
        wire = self.matrix.astype(">f4")
        header = struct.pack(">HH", dim, 0)
        self.payloads = [header + row.tobytes() for row in wire]
        self.arrays = [row.astype(np.float32) for row in self.matrix]
        self.unpack_from = struct.Struct(f">{dim}f").unpack_from

    def truncate(self) -> None:
        self.raw.execute(f"TRUNCATE {self.schema}.{TABLE}")

    def load(self) -> None:
        self.truncate()
        table = self.models[OURS][0]
        with self.engines[OURS].begin() as conn:
            copy_rows(
                conn, table, {"id": np.arange(self.n), "embedding": self.matrix}, progress=False
            )
        self.raw.execute(f"ANALYZE {self.schema}.{TABLE}")

    # insert ---------------------------------------------------------------------------------
    def insert(self, how: str, name: str, kind: str, n: int | None = None) -> Callable[[], None]:
        table, item = self.models[name]
        engine = self.engines[name]
        values = self.inputs[kind][:n]

        def core() -> None:
            rows = [{"id": i, "embedding": v} for i, v in enumerate(values)]
            with engine.begin() as conn:
                conn.execute(insert(table), rows)

        def orm_bulk() -> None:
            rows = [{"id": i, "embedding": v} for i, v in enumerate(values)]
            with Session(engine) as session:
                session.execute(insert(item), rows)
                session.commit()

        def add_all() -> None:
            with Session(engine) as session:
                session.add_all([item(id=i, embedding=v) for i, v in enumerate(values)])
                session.commit()

        return {"insert-core": core, "insert-bulk": orm_bulk, "insert-add_all": add_all}[how]

    # fetch ----------------------------------------------------------------------------------
    def fetch(self, how: str, name: str) -> Callable[[], Any]:
        table, item = self.models[name]
        engine = self.engines[name]

        def core() -> Any:
            with engine.connect() as conn:
                return conn.execute(select(table.c.id, table.c.embedding)).all()

        def orm() -> Any:
            with Session(engine) as session:
                return session.scalars(select(item)).all()

        return {"fetch-core": core, "fetch-orm": orm}[how]

    def fetch_then_tolist(self, how: str) -> Callable[[], Any]:
        """The best any type returning lists can do on the engine: vecalchemy's fetch, then
        ``.tolist()`` of each array, both kept."""
        fetch = self.fetch(how, OURS)
        index = 1 if how == "fetch-core" else None

        def go() -> Any:
            got = fetch()
            if index is None:
                return got, [o.embedding.tolist() for o in got]
            return got, [row[index].tolist() for row in got]

        return go

    def lists_tolist(self) -> Any:
        return [a.tolist() for a in self.arrays]

    def lists_unpack(self) -> Any:
        unpack_from = self.unpack_from
        return [list(unpack_from(p, 4)) for p in self.payloads]

    def check(self, rows: int = 200) -> None:
        """What is timed does what it should: whoever inserted the lists, every contender
        reads back the same float4 values (the compat type a list of exactly those)."""
        expected = self.matrix[:rows]
        for writer in CONTENDERS:
            self.truncate()
            self.insert("insert-core", writer, "lists", rows)()
            read = {name: self.fetch("fetch-orm", name)() for name in CONTENDERS}
            got = {
                name: [o.embedding for o in sorted(objs, key=lambda o: o.id)]
                for name, objs in read.items()
            }
            assert got[COMPAT] == expected.tolist(), writer
            assert all(type(v) is list for v in got[COMPAT]), writer
            assert np.array_equal(np.stack(got[OURS]), expected), writer
            assert np.array_equal(np.float32(got[PEER]), expected), writer
        self.truncate()

    def close(self) -> None:
        self.raw.execute(f"DROP SCHEMA {self.schema} CASCADE")
        self.raw.close()
        for engine in self.engines.values():
            engine.dispose()


Times = dict[str, list[tuple[float, float]]]


def _rate(n: int, times: list[tuple[float, float]]) -> list[float]:
    return [n / wall for wall, _ in times]


def _ratio(n: int, times: Times, a: str, b: str) -> tuple[float, list[float]]:
    """a's rate over b's: of the medians, and within each round (back to back runs)."""
    ra, rb = _rate(n, times[a]), _rate(n, times[b])
    return statistics.median(ra) / statistics.median(rb), [
        x / y for x, y in zip(ra, rb, strict=True)
    ]


def _span(ratios: list[float]) -> str:
    s = sorted(ratios)
    return f"{statistics.median(s):.2f}x [{s[0]:.2f}-{s[-1]:.2f}]"


def run(n: int, dim: int, repeats: int, workloads: list[str]) -> None:
    unknown = set(workloads) - set(WORKLOADS)
    if unknown:
        raise SystemExit(
            f"unknown workloads {sorted(unknown)}; expected some of {list(WORKLOADS)}"
        )
    b = Bench(database_url(), n, dim)
    groups: list[tuple[str, str, Times]] = []
    try:
        b.check()
        for how in (w for w in WORKLOADS if w in workloads and w.startswith("insert")):
            for kind in ("lists", "ndarray"):
                names = CONTENDERS + ((ALONE,) if kind == "ndarray" else ())
                impls = {name: b.insert(how, name, kind) for name in names}
                groups.append((WORKLOADS[how], kind, alternate(impls, repeats, b.truncate)))
        fetches = [w for w in WORKLOADS if w in workloads and w.startswith("fetch")]
        if fetches:
            b.load()
        for how in fetches:
            impls = {name: b.fetch(how, name) for name in CONTENDERS}
            impls[THEN_TOLIST] = b.fetch_then_tolist(how)
            impls.update(zip(FLOORS, (b.lists_tolist, b.lists_unpack), strict=True))
            groups.append((WORKLOADS[how], "", alternate(impls, repeats)))
    finally:
        b.close()
    report(n, groups)


def report(n: int, groups: list[tuple[str, str, Times]]) -> None:
    medians, rounds, compat = [], [], []
    for workload, kind, times in groups:
        for name, t in times.items():
            rate = _rate(n, t)
            row = [workload, kind, name, f"{statistics.median(rate):,.0f}"]
            row.append(f"{statistics.median(w for w, _ in t) / n * 1e6:.1f}")
            row.append(f"{statistics.median(c for _, c in t) / n * 1e6:.1f}")
            for other in (OURS, PEER):
                if name in CONTENDERS:
                    med, per = _ratio(n, times, name, other)
                    row += [f"{med:.2f}x", _span(per)]
                else:
                    row += ["", ""]
            medians.append(row)
            rounds.append([workload, kind, name, *(f"{r:,.0f}" for r in rate)])
        for other in (OURS, PEER):
            med, per = _ratio(n, times, COMPAT, other)
            compat.append(
                [workload, kind, f"compat / {other}", *(f"{r:.2f}x" for r in per), f"{med:.2f}x"]
            )
    repeats = len(rounds[0]) - 3
    print(
        tabulate(
            medians,
            headers=[
                "workload",
                "input",
                "implementation",
                "vec/s",
                "µs/row",
                "client CPU µs/row",
                "vs vecalchemy",
                "per round: median [min-max]",
                "vs pgvector.sqlalchemy",
                "per round: median [min-max]",
            ],
            colalign=("left", "left", "left", *["right"] * 7),
        )
    )
    print("\nvec/s in each round (runs of one round are back to back):")
    print(
        tabulate(
            rounds,
            headers=["workload", "input", "implementation"]
            + [f"round {r + 1}" for r in range(repeats)],
            colalign=("left", "left", "left", *["right"] * repeats),
        )
    )
    print("\nthe compat type's ratios, in each round and of the medians:")
    print(
        tabulate(
            compat,
            headers=["workload", "input", "ratio"]
            + [f"round {r + 1}" for r in range(repeats)]
            + ["of medians"],
            colalign=("left", "left", "left", *["right"] * (repeats + 1)),
        )
    )
    for workload, _, times in groups:
        if not workload.startswith("fetch"):
            continue
        med = {name: statistics.median(w for w, _ in t) / n * 1e6 for name, t in times.items()}
        ours, lists, then, compat = med[OURS], med[FLOORS[0]], med[THEN_TOLIST], med[COMPAT]
        print(
            f"\n{workload}, µs/row: vecalchemy Vector {ours:.1f}; the lists alone {lists:.1f}; "
            f"vecalchemy Vector then .tolist() each {then:.1f} ({ours / then:.2f}x vecalchemy's "
            f"rate: the most a type returning lists can reach); compat VECTOR {compat:.1f} "
            f"({then / compat:.2f}x that floor's rate)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=10_000, help="rows (default 10000)")
    parser.add_argument("--dim", type=int, default=768, help="dimensions (default 768)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds (default 3)")
    parser.add_argument(
        "--workloads",
        default=DEFAULT_WORKLOADS,
        help=f"comma-separated, of {', '.join(WORKLOADS)} (default {DEFAULT_WORKLOADS})",
    )
    args = parser.parse_args(argv)
    describe(args.n, args.dim, args.repeats)
    run(args.n, args.dim, args.repeats, args.workloads.split(","))
    return 0


if __name__ == "__main__":
    sys.exit(main())
