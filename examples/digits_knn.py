"""Handwritten digits classified by k-nearest neighbours in SQL, checked against scikit-learn.

    python examples/digits_knn.py

scikit-learn's bundled digits (1 797 real 8x8 images, no download) are split into a
training set, stored in PostgreSQL as ``Vector(64)`` and ``HalfVec(64)`` with HNSW
indexes and a ``Bit(64)`` binary-quantize expression index, and a held-out set that is
classified by one SQL statement: a ``LATERAL`` k-NN per held-out digit and a majority
vote (ties go to the smaller label, as in scikit-learn).

Exact search (``ORDER BY pixels <-> q, id``) must predict exactly what scikit-learn's
``KNeighborsClassifier`` predicts on the same split; the program verifies it, then
reports the accuracy and the recall of the approximate indexes (HNSW on vector, on
halfvec, and binary quantization with exact re-ranking).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table as RichTable
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    SmallInteger,
    Table,
    cast,
    create_engine,
    func,
    select,
    text,
    true,
)
from sqlalchemy.engine import Engine
from sqlalchemy.sql import ColumnElement, Select

from vecalchemy import (
    Bit,
    HalfVec,
    HnswIndex,
    Vector,
    binary_quantize,
    build_vector_index,
    copy_rows,
    explain_index_usage,
    search_settings,
)

DIM = 64

metadata = MetaData()

#: The training digits: the "database" the held-out digits are compared with.
digit = Table(
    "digit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # row in the training split
    Column("label", SmallInteger, nullable=False),
    Column("pixels", Vector(DIM, metric="l2"), nullable=False),
    Column("pixels_half", HalfVec(DIM, metric="l2"), nullable=False),
)

#: Binary quantization: 1 where a pixel has ink (> 0); Hamming distance between images.
bits = cast(binary_quantize(digit.c.pixels), Bit(DIM))

INDEXES = (
    HnswIndex("ix_digit_pixels", digit.c.pixels),
    HnswIndex("ix_digit_pixels_half", digit.c.pixels_half),
    HnswIndex("ix_digit_bits", bits, metric="hamming"),
)

#: The held-out digits, classified in SQL.
digit_query = Table(
    "digit_query",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # row in the held-out split
    Column("label", SmallInteger, nullable=False),
    Column("pixels", Vector(DIM), nullable=False),
)


# --- command line ---------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="digits_knn.py",
        description="k-NN classification of scikit-learn's digits in SQL, checked against "
        "scikit-learn's KNeighborsClassifier",
    )
    p.add_argument(
        "--database-url",
        default=None,
        help="SQLAlchemy URL of a PostgreSQL with pgvector >= 0.8 (default: "
        "$VECALCHEMY_DATABASE_URL, else a Docker container or the embedded server)",
    )
    p.add_argument(
        "-k", "--neighbors", type=int, default=5, help="k of k-NN (default: %(default)s)"
    )
    p.add_argument(
        "--test-size", type=float, default=0.3, help="held-out fraction (default: %(default)s)"
    )
    p.add_argument(
        "--seed", type=int, default=0, help="random_state of the split (default: %(default)s)"
    )
    p.add_argument(
        "--limit",
        type=int,
        default=None,
        help="use only the first N digits, for a quick run (default: all 1797)",
    )
    p.add_argument(
        "--ef-search",
        type=int,
        default=40,
        help="hnsw.ef_search for ANN queries (default: %(default)s)",
    )
    p.add_argument(
        "--rerank",
        type=int,
        default=40,
        help="candidates fetched by Hamming distance before the exact re-ranking "
        "(default: %(default)s)",
    )
    p.add_argument("--keep", action="store_true", help="keep the tables digit, digit_query")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    if args.neighbors < 1:
        p.error("-k must be at least 1")
    if not 0 < args.test_size < 1:
        p.error("--test-size must lie between 0 and 1")
    if not 1 <= args.ef_search <= 1000:
        p.error("--ef-search must lie in 1..1000 (pgvector's range)")
    if not args.neighbors <= args.rerank <= 1000:
        p.error("--rerank must lie between -k and 1000 (hnsw.ef_search's maximum)")
    return args


# --- SQL ---------------------------------------------------------------------------------------

Distance = Callable[[Any], ColumnElement[float]]

q = digit_query.alias("q")


def neighbors(order: Sequence[ColumnElement[Any]], k: int) -> Select[Any]:
    """``(query_id, neighbor_id, label)`` of the ``k`` training digits first in ``order``,
    for every held-out digit (a LATERAL subquery per held-out digit)."""
    nn = select(digit.c.id, digit.c.label).order_by(*order).limit(k).lateral("nn")
    return select(q.c.id.label("query_id"), nn.c.id.label("neighbor_id"), nn.c.label).select_from(
        q.join(nn, true())
    )


def reranked_neighbors(k: int, candidates: int) -> Select[Any]:
    """Binary quantization with re-ranking: the ``candidates`` nearest by Hamming distance
    (served by the bit index), re-ranked by exact L2 distance."""
    near = (
        select(digit.c.id, digit.c.label, digit.c.pixels)
        .order_by(bits.hamming_distance(cast(binary_quantize(q.c.pixels), Bit(DIM))))
        .limit(candidates)
        .subquery("candidates")
    )
    nn = (
        select(near.c.id, near.c.label)
        .order_by(near.c.pixels.l2_distance(q.c.pixels), near.c.id)
        .limit(k)
        .lateral("nn")
    )
    return select(q.c.id.label("query_id"), nn.c.id.label("neighbor_id"), nn.c.label).select_from(
        q.join(nn, true())
    )


def vote(nn: Select[Any]) -> Select[Any]:
    """``(query_id, label)``: the majority label per held-out digit; a tie goes to the
    smaller label (as scikit-learn's ``KNeighborsClassifier.predict``, uniform weights)."""
    n = nn.subquery("neighbors")
    votes = (
        select(n.c.query_id, n.c.label, func.count().label("votes"))
        .group_by(n.c.query_id, n.c.label)
        .subquery("votes")
    )
    place = func.row_number().over(
        partition_by=votes.c.query_id, order_by=(votes.c.votes.desc(), votes.c.label)
    )
    ranked = select(votes.c.query_id, votes.c.label, place.label("place")).subquery("ranked")
    return select(ranked.c.query_id, ranked.c.label).where(ranked.c.place == 1)


def methods(k: int, rerank: int) -> dict[str, tuple[Select[Any], str | None]]:
    """name -> (neighbours statement, index expected to serve it or None for exact)."""
    return {
        "exact, vector": (
            neighbors((digit.c.pixels.l2_distance(q.c.pixels), digit.c.id), k),
            None,
        ),
        "exact, halfvec": (
            neighbors((digit.c.pixels_half.l2_distance(q.c.pixels), digit.c.id), k),
            None,
        ),
        "HNSW, vector": (
            neighbors((digit.c.pixels.l2_distance(q.c.pixels),), k),
            "ix_digit_pixels",
        ),
        "HNSW, halfvec": (
            neighbors((digit.c.pixels_half.l2_distance(q.c.pixels),), k),
            "ix_digit_pixels_half",
        ),
        f"bit(64) Hamming top-{rerank}, re-ranked": (
            reranked_neighbors(k, rerank),
            "ix_digit_bits",
        ),
    }


# --- the program --------------------------------------------------------------------------------


@dataclass
class Results:
    sklearn_pred: np.ndarray | None = None
    sql_pred: dict[str, np.ndarray] = field(default_factory=dict)
    accuracy: dict[str, float] = field(default_factory=dict)
    recall: dict[str, float] = field(default_factory=dict)
    index_used: dict[str, bool] = field(default_factory=dict)
    same_as_sklearn: dict[str, int] = field(default_factory=dict)
    same_neighbor_distances: int = 0
    same_neighbor_ids: int = 0
    boundary_ties: int = 0
    n_test: int = 0


def database_url(args: argparse.Namespace) -> str:
    if args.database_url:
        return str(args.database_url)
    from vecalchemy.testing import database_url

    return str(database_url())


def load(
    engine: Engine,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    progress: bool,
) -> None:
    """Fresh tables, binary COPY of both splits, then the three HNSW index builds."""
    metadata.drop_all(engine)
    metadata.create_all(engine)
    with engine.begin() as conn:
        for ix in INDEXES:  # pgvector: build after the initial load, not row by row
            ix.drop(conn)
        copy_rows(
            conn,
            digit,
            {
                "id": np.arange(len(X_train), dtype=np.int32),
                "label": y_train.astype(np.int16),
                "pixels": X_train,
                "pixels_half": X_train,
            },
            progress=progress,
        )
        copy_rows(
            conn,
            digit_query,
            {
                "id": np.arange(len(X_test), dtype=np.int32),
                "label": y_test.astype(np.int16),
                "pixels": X_test,
            },
            progress=progress,
        )
    for ix in INDEXES:
        build_vector_index(engine, ix, progress=progress)
    with engine.begin() as conn:
        for table in (digit, digit_query):
            conn.execute(text(f"ANALYZE {conn.dialect.identifier_preparer.format_table(table)}"))


def main(argv: Sequence[str] | None = None) -> Results:
    args = parse_args(argv)
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 110)
    results = Results()
    k = args.neighbors
    t0 = time.perf_counter()

    X, y = load_digits(return_X_y=True)
    if args.limit is not None:
        X, y = X[: args.limit], y[: args.limit]
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=args.test_size, random_state=args.seed, stratify=y
    )
    results.n_test = len(X_test)
    console.print(
        f"digits: {len(X)} images 8x8 (pixel values 0..16), {len(X_train)} stored, "
        f"{len(X_test)} held out; k = {k}"
    )

    clf = KNeighborsClassifier(n_neighbors=k).fit(X_train, y_train)
    sk_pred = clf.predict(X_test)
    sk_dist, sk_ids = clf.kneighbors(X_test)
    results.sklearn_pred = sk_pred

    url = database_url(args)
    engine = create_engine(url, plugins=["vecalchemy"])
    load(engine, X_train, y_train, X_test, y_test, not args.no_progress)

    exact_sets: list[set[int]] | None = None
    table = RichTable(title=f"k-NN (k={k}) of {len(X_test)} held-out digits", title_justify="left")
    for col in ("search", "accuracy", f"recall@{k}", "= scikit-learn", "index used"):
        table.add_column(col, justify="left" if col == "search" else "right")
    table.add_row(
        "scikit-learn KNeighborsClassifier", f"{(sk_pred == y_test).mean():.4f}", "", "", ""
    )
    plans: dict[str, str] = {}
    with engine.connect() as conn:
        for name, (nn_stmt, index_name) in methods(k, args.rerank).items():
            # an HNSW scan yields at most ef_search rows: the bit index must yield them all
            ef = max(args.ef_search, args.rerank) if name.endswith("re-ranked") else args.ef_search
            with conn.begin(), search_settings(conn, ef_search=ef):
                rows = conn.execute(nn_stmt).all()
                pred_rows = conn.execute(vote(nn_stmt)).all()
                usage = explain_index_usage(conn, nn_stmt)
            plans[name] = "\n".join(usage.plan)
            by_query: dict[int, set[int]] = {}
            for r in rows:
                by_query.setdefault(r.query_id, set()).add(r.neighbor_id)
            ids = [by_query.get(i, set()) for i in range(len(X_test))]
            pred = np.full(len(X_test), -1)
            for r in pred_rows:
                pred[r.query_id] = r.label
            results.sql_pred[name] = pred
            results.accuracy[name] = float((pred == y_test).mean())
            results.same_as_sklearn[name] = int((pred == sk_pred).sum())
            if exact_sets is None:  # the first method is the exact one
                exact_sets = ids
            results.recall[name] = float(
                np.mean([len(a & b) / k for a, b in zip(ids, exact_sets, strict=True)])
            )
            used = index_name is not None and index_name in usage.index_names
            results.index_used[name] = used
            table.add_row(
                name,
                f"{results.accuracy[name]:.4f}",
                f"{results.recall[name]:.4f}",
                f"{results.same_as_sklearn[name]}/{len(X_test)}",
                index_name if used else ("(exact scan)" if index_name is None else "NO"),
            )

    # the exact neighbours against scikit-learn's: same distances; same ids up to ties
    assert exact_sets is not None
    d_train = ((X_test[:, None, :] - X_train[None, :, :]) ** 2).sum(-1)
    kth = np.sort(d_train, axis=1)
    results.boundary_ties = int((kth[:, k - 1] == kth[:, k]).sum()) if k < len(X_train) else 0
    sql_dist = [np.sort(d_train[i, sorted(s)]) for i, s in enumerate(exact_sets)]
    results.same_neighbor_distances = int(
        sum(np.allclose(np.sqrt(a), b) for a, b in zip(sql_dist, np.sort(sk_dist, 1), strict=True))
    )
    results.same_neighbor_ids = int(
        sum(s == set(r) for s, r in zip(exact_sets, sk_ids.tolist(), strict=True))
    )

    console.print(table)
    n = len(X_test)
    console.print(
        f"exact SQL k-NN vs scikit-learn: predictions identical for "
        f"{results.same_as_sklearn['exact, vector']}/{n} (vector) and "
        f"{results.same_as_sklearn['exact, halfvec']}/{n} (halfvec); neighbour distances "
        f"identical for {results.same_neighbor_distances}/{n}; neighbour ids identical for "
        f"{results.same_neighbor_ids}/{n} (the {results.boundary_ties} digits whose k-th and "
        f"(k+1)-th neighbours are equidistant may pick a different, equally near digit: "
        "SQL breaks ties by id, scikit-learn by its search order)"
    )
    for name, plan in plans.items():
        if results.index_used.get(name):
            console.print(f"[bold]EXPLAIN[/bold] {name}:")
            console.print(plan, markup=False)
            break
    bit_ef = max(args.ef_search, args.rerank)
    note = f" ({bit_ef} for the bit index)" if bit_ef != args.ef_search else ""
    elapsed = time.perf_counter() - t0
    console.print(f"ANN queries ran with hnsw.ef_search = {args.ef_search}{note}; {elapsed:.1f} s")

    if not args.keep:
        metadata.drop_all(engine)
    engine.dispose()
    return results


if __name__ == "__main__":
    main()
