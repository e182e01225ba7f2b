"""Query checks against EXPLAIN: the index is used for each matching query and not for
each mismatching one, and the warning fires exactly for the mismatching ones."""

from __future__ import annotations

import importlib.util
import sys
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from conftest import make_async_engine, make_engine
from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    Table,
    bindparam,
    cast,
    func,
    select,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, aliased, mapped_column

from vecalchemy import (
    Bit,
    HalfVec,
    HnswIndex,
    IvfflatIndex,
    Vector,
    VectorIndexWarning,
    apply_search_settings,
    binary_quantize,
    check_query,
    explain_index_usage,
    install_query_checks,
    iterative_search,
    measure_recall,
)
from vecalchemy.pytest_plugin import libpq_conninfo

Q = [0.3, -0.2, 0.9]


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "doc"
    id: Mapped[int] = mapped_column(primary_key=True)
    cat: Mapped[int]
    embedding: Mapped[np.ndarray] = mapped_column(Vector(3, metric="cosine"))
    __table_args__ = (HnswIndex("ix_cos", "embedding"),)


t = Doc.__table__
assert isinstance(t, Table)
HnswIndex("ix_half", cast(t.c.embedding, HalfVec(3)), metric="l2")
HnswIndex("ix_bq", cast(binary_quantize(t.c.embedding), Bit(3)), metric="hamming")
HnswIndex("ix_part", t.c.embedding, metric="l2", where=t.c.cat == 1)

plain = Table(
    "plain",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("embedding", Vector(3, metric="l2")),
)


def _q() -> Any:
    return bindparam(None, Q, type_=Vector(3))


MATCHING: dict[str, tuple[Callable[[], Any], str]] = {
    "cosine operator": (
        lambda: select(t.c.id).order_by(t.c.embedding.cosine_distance(Q)).limit(5),
        "ix_cos",
    ),
    "declared metric on an ORM entity": (
        lambda: select(Doc).order_by(Doc.embedding.distance(Q)).limit(5),
        "ix_cos",
    ),
    "halfvec expression": (
        lambda: select(t.c.id).order_by(cast(t.c.embedding, HalfVec(3)).l2_distance(Q)).limit(5),
        "ix_half",
    ),
    "binary quantize expression": (
        lambda: (
            select(t.c.id)
            .order_by(
                cast(binary_quantize(t.c.embedding), Bit(3)).hamming_distance(binary_quantize(Q))
            )
            .limit(5)
        ),
        "ix_bq",
    ),
    "ordered by a label": (
        lambda: (lambda d: select(t.c.id, d).order_by(d).limit(5))(
            t.c.embedding.cosine_distance(Q).label("d")
        ),
        "ix_cos",
    ),
    "ordered by a label name": (
        lambda: select(t.c.id, t.c.embedding.cosine_distance(Q).label("d")).order_by("d").limit(5),
        "ix_cos",
    ),
    "explicit ASC with a filter": (
        lambda: (
            select(t.c.id)
            .where(t.c.cat >= 0)
            .order_by(t.c.embedding.cosine_distance(Q).asc())
            .limit(5)
        ),
        "ix_cos",
    ),
    "partial index with its WHERE": (
        lambda: select(t.c.id).where(t.c.cat == 1).order_by(t.c.embedding.l2_distance(Q)).limit(5),
        "ix_part",
    ),
    "iterative search CTE": (
        lambda: iterative_search(select(t.c.id), t.c.embedding.cosine_distance(Q), 5),
        "ix_cos",
    ),
    "query vector on the left": (
        lambda: select(t.c.id).order_by(_q().cosine_distance(t.c.embedding)).limit(5),
        "ix_cos",
    ),
    "table alias": (
        lambda: (lambda a: select(a.c.id).order_by(a.c.embedding.cosine_distance(Q)).limit(5))(
            t.alias("d2")
        ),
        "ix_cos",
    ),
    "ORM aliased entity": (
        lambda: (lambda d: select(d.id).order_by(d.embedding.distance(Q)).limit(5))(
            aliased(Doc, name="d3")
        ),
        "ix_cos",
    ),
    "a stored row's vector, as a subquery on the left": (
        lambda: (
            select(t.c.id)
            .order_by(
                select(t.c.embedding)
                .where(t.c.id == 42)
                .scalar_subquery()
                .op("<=>", return_type=Float)(t.c.embedding)
            )
            .limit(5)
        ),
        "ix_cos",
    ),
    "a stored row's vector, as a subquery on the right": (
        lambda: (
            select(t.c.id)
            .order_by(
                t.c.embedding.cosine_distance(
                    select(t.c.embedding).where(t.c.id == 42).scalar_subquery()
                )
            )
            .limit(5)
        ),
        "ix_cos",
    ),
    "halfvec expression of an alias": (
        lambda: (
            lambda a: (
                select(a.c.id).order_by(cast(a.c.embedding, HalfVec(3)).l2_distance(Q)).limit(5)
            )
        )(t.alias("d4")),
        "ix_half",
    ),
}

MISMATCHING: dict[str, tuple[Callable[[], Any], str]] = {
    "metric mismatch": (
        lambda: select(t.c.id).order_by(t.c.embedding.max_inner_product(Q)).limit(5),
        "index ix_cos (hnsw, vector_cosine_ops on doc.embedding) serves cosine (<=>) but the "
        "query orders by inner_product (<#>)",
    ),
    "DESC": (
        lambda: select(t.c.id).order_by(t.c.embedding.cosine_distance(Q).desc()).limit(5),
        "ORDER BY ... DESC",
    ),
    "function form": (
        lambda: select(t.c.id).order_by(func.cosine_distance(t.c.embedding, _q())).limit(5),
        "orders by the function cosine_distance(); only the operator <=> can use an index",
    ),
    "1 - distance": (
        lambda: select(t.c.id).order_by(1 - t.c.embedding.cosine_distance(Q)).limit(5),
        "orders by an expression over the distance",
    ),
    "no LIMIT": (
        lambda: select(t.c.id).order_by(t.c.embedding.cosine_distance(Q)),
        "no LIMIT",
    ),
    "column instead of the indexed halfvec expression": (
        lambda: select(t.c.id).order_by(t.c.embedding.l2_distance(Q)).limit(5),
        "index ix_half (hnsw, halfvec_l2_ops on CAST(doc.embedding AS HALFVEC(3))) indexes "
        "CAST(doc.embedding AS HALFVEC(3)) but the query orders by doc.embedding",
    ),
    "halfvec expression by another metric": (
        lambda: (
            select(t.c.id).order_by(cast(t.c.embedding, HalfVec(3)).cosine_distance(Q)).limit(5)
        ),
        "serves l2 (<->) but the query orders by cosine (<=>)",
    ),
    "distance not the first key": (
        lambda: select(t.c.id).order_by(t.c.cat, t.c.embedding.cosine_distance(Q)).limit(5),
        "the distance is not the first ORDER BY key",
    ),
    "query vector on the left, another metric": (
        lambda: select(t.c.id).order_by(_q().max_inner_product(t.c.embedding)).limit(5),
        "serves cosine (<=>) but the query orders by inner_product (<#>)",
    ),
    "table alias, another metric": (
        lambda: (lambda a: select(a.c.id).order_by(a.c.embedding.l1_distance(Q)).limit(5))(
            t.alias("d5")
        ),
        "serves cosine (<=>) but the query orders by l1 (<+>)",
    ),
    "alias of an alias, another metric": (
        lambda: (lambda a: select(a.c.id).order_by(a.c.embedding.l1_distance(Q)).limit(5))(
            t.alias("d7").alias("d8")
        ),
        "serves cosine (<=>) but the query orders by l1 (<+>)",
    ),
    "ORM aliased entity, DESC": (
        lambda: (lambda d: select(d.id).order_by(d.embedding.distance(Q).desc()).limit(5))(
            aliased(Doc, name="d6")
        ),
        "ORDER BY ... DESC",
    ),
}


@pytest.fixture(scope="module")
def docs_schema(vector_database_url: str) -> Iterator[str]:
    """One schema for this module's read-only queries: 200 rows, four vector indexes."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(libpq_conninfo(vector_database_url), autocommit=True) as raw:
        raw.execute(f'CREATE SCHEMA "{schema}"')
    engine = make_engine(vector_database_url, schema, "plugin")
    Base.metadata.create_all(engine)
    plain.create(engine)
    rng = np.random.default_rng(3)
    with engine.begin() as conn:
        conn.execute(
            t.insert(),
            [
                {"id": i, "cat": i % 2, "embedding": v}
                for i, v in enumerate(rng.standard_normal((200, 3)).astype(np.float32))
            ],
        )
        conn.execute(text("ANALYZE doc"))
    engine.dispose()
    yield schema
    with psycopg.connect(libpq_conninfo(vector_database_url), autocommit=True) as raw:
        raw.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(scope="module")
def docs(vector_database_url: str, docs_schema: str) -> Iterator[Engine]:
    """The module's table through psycopg 3 with the plugin."""
    engine = make_engine(vector_database_url, docs_schema, "plugin")
    yield engine
    engine.dispose()


@pytest.fixture
def docs_in_mode(vector_database_url: str, docs_schema: str, mode: str) -> Iterator[Engine]:
    """The module's table through each driver / mode."""
    engine = make_engine(vector_database_url, docs_schema, mode)
    yield engine
    engine.dispose()


#: forcing the index (enable_seqscan = off) makes PostgreSQL scan it even without a
#: LIMIT (and an HNSW scan then returns at most ef_search rows); the planner's own
#: choice is what the warning is about
UNFORCED = {"no LIMIT"}


def _plan_indexes(engine: Engine, stmt: Any, *, force: bool = True) -> tuple[str, ...]:
    with engine.connect() as conn:
        if force:
            conn.execute(text("SET LOCAL enable_seqscan = off"))
        return explain_index_usage(conn, stmt).index_names


@pytest.mark.parametrize("case", list(MATCHING))
def test_matching_query_uses_the_index_and_does_not_warn(docs: Engine, case: str) -> None:
    build, index = MATCHING[case]
    stmt = build()
    assert _plan_indexes(docs, stmt) == (index,)
    assert check_query(stmt) == []


@pytest.mark.parametrize("case", list(MISMATCHING))
def test_mismatching_query_uses_no_vector_index_and_warns(docs: Engine, case: str) -> None:
    build, fragment = MISMATCHING[case]
    stmt = build()
    assert _plan_indexes(docs, stmt, force=case not in UNFORCED) == ()
    problems = check_query(stmt)
    assert len(problems) == 1
    assert problems[0].column == "doc.embedding"
    assert fragment in str(problems[0])


def test_column_without_vector_index_is_not_checked(docs: Engine) -> None:
    stmt = select(plain.c.id).order_by(plain.c.embedding.l2_distance(Q).desc())
    assert check_query(stmt) == []


def test_warning_fires_on_execution_exactly_for_mismatching_queries(engine: Engine) -> None:
    Base.metadata.create_all(engine)
    install_query_checks(engine)
    install_query_checks(engine)  # idempotent: one warning, not two
    with engine.connect() as conn, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for build, _ in MATCHING.values():
            conn.execute(build()).all()
        assert [w for w in caught if w.category is VectorIndexWarning] == []
        for name, (build, fragment) in MISMATCHING.items():
            caught.clear()
            conn.execute(build()).all()
            got = [str(w.message) for w in caught if w.category is VectorIndexWarning]
            assert len(got) == 1, name
            assert fragment in got[0], name


def test_warning_can_be_made_an_error(docs_in_mode: Engine) -> None:
    install_query_checks(docs_in_mode)
    stmt = select(t.c.id).order_by(t.c.embedding.cosine_distance(Q).desc()).limit(5)
    with docs_in_mode.connect() as conn, warnings.catch_warnings():
        warnings.simplefilter("error", VectorIndexWarning)
        with pytest.raises(VectorIndexWarning, match="ORDER BY ... DESC"):
            conn.execute(stmt)


def test_warning_through_an_orm_session(docs_in_mode: Engine) -> None:
    install_query_checks(docs_in_mode)
    with Session(docs_in_mode) as session, pytest.warns(VectorIndexWarning, match="no LIMIT"):
        session.scalars(select(Doc).order_by(Doc.embedding.cosine_distance(Q))).all()


def test_verdict_is_cached_per_compiled_statement(docs: Engine) -> None:
    from vecalchemy import checks

    install_query_checks(docs)
    stmt = select(t.c.id).order_by(t.c.embedding.cosine_distance(Q)).limit(5)
    calls: list[int] = []
    original = checks.check_query

    def counting(s: Any) -> Any:
        calls.append(1)
        return original(s)

    checks.check_query = counting  # type: ignore[assignment]
    try:
        with docs.connect() as conn:
            for _ in range(5):
                conn.execute(stmt, {}).all()
    finally:
        checks.check_query = original  # type: ignore[assignment]
    assert len(calls) == 1


def test_explain_reports_method_and_plan(docs_in_mode: Engine) -> None:
    stmt = select(t.c.id).order_by(t.c.embedding.cosine_distance(Q)).limit(5)
    with docs_in_mode.connect() as conn:
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        usage = explain_index_usage(conn, stmt)
    assert usage.uses_vector_index
    assert usage.vector_indexes == (("ix_cos", "hnsw"),)
    assert any("Index Scan on doc using ix_cos" in line for line in usage.plan)


def test_explain_shows_a_sequential_scan_for_the_function_form(docs_in_mode: Engine) -> None:
    stmt = select(t.c.id).order_by(func.cosine_distance(t.c.embedding, _q())).limit(5)
    with docs_in_mode.connect() as conn:
        usage = explain_index_usage(conn, stmt)
    assert not usage.uses_vector_index
    assert any("Seq Scan on doc" in line for line in usage.plan)


# --- recall -------------------------------------------------------------------------------


def test_recall_on_a_small_table_is_one_and_scan_settings_are_restored(
    docs_in_mode: Engine,
) -> None:
    stmt = select(t.c.id).order_by(t.c.embedding.cosine_distance(Q)).limit(10)
    with docs_in_mode.connect() as conn:
        assert measure_recall(conn, stmt, 10) == 1.0
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        assert measure_recall(conn, stmt, 10) == 1.0
        # both settings are restored
        assert conn.execute(text("SHOW enable_indexscan")).scalar_one() == "on"
        assert conn.execute(text("SHOW enable_seqscan")).scalar_one() == "off"


#: one mode per driver and statement path: psycopg 3 with the plugin (prepared after
#: prepare_threshold runs) and plain, asyncpg with the plugin (binary, literal LIMIT) and
#: plain (every statement prepared through its statement cache), psycopg2 (client-side
#: binding), pg8000
RECALL_MODES = ("plugin", "text", "asyncpg", "asyncpg-text", "psycopg2", "pg8000")


def _ivfflat_items(
    engine: Engine, raw_conn: psycopg.Connection, rows: int, seed: int
) -> tuple[Table, np.ndarray]:
    """``rows`` random 16-dim vectors (loaded by COPY) in a table with a 40-list IVFFlat
    l2 index created through ``engine``."""
    raw_conn.execute("CREATE TABLE items (id int PRIMARY KEY, embedding vector(16))")
    data = np.random.default_rng(seed).standard_normal((rows, 16)).astype(np.float32)
    with raw_conn.cursor().copy("COPY items (id, embedding) FROM STDIN") as copy:
        for i, row in enumerate(data):
            copy.write_row([i, "[" + ",".join(map(str, row.tolist())) + "]"])
    raw_conn.execute("ANALYZE items")
    items = Table(
        "items",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("embedding", Vector(16, metric="l2")),
    )
    IvfflatIndex("ix_items_ivf", items.c.embedding, lists=40).create(engine)
    return items, data


@pytest.mark.parametrize("mode", RECALL_MODES)
def test_recall_drops_with_one_ivfflat_probe_and_recovers_with_all(
    engine: Engine, raw_conn: psycopg.Connection
) -> None:
    items, data = _ivfflat_items(engine, raw_conn, 2000, seed=11)
    with engine.connect() as conn:
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        recalls = []
        for probes in (1, 40):
            apply_search_settings(conn, probes=probes)
            total = 0.0
            for q in data[:20]:
                stmt = select(items.c.id).order_by(items.c.embedding.l2_distance(q)).limit(10)
                total += measure_recall(conn, stmt, 10)
            recalls.append(total / 20)
    low, full = recalls
    assert low < 0.9
    assert full == 1.0


@pytest.mark.parametrize("mode", RECALL_MODES)
def test_recall_is_measured_afresh_once_the_statement_is_prepared(
    engine: Engine, raw_conn: psycopg.Connection
) -> None:
    """psycopg prepares a statement run 5 times, asyncpg every statement (one prepared
    statement for every query vector: the vector is a parameter); after 5 executions
    PostgreSQL may keep a generic plan that ignores enable_indexscan = off, and the
    "exact" answer would be the index's."""
    items, data = _ivfflat_items(engine, raw_conn, 3000, seed=12)
    with engine.connect() as conn:
        apply_search_settings(conn, probes=1)
        recalls = []
        for q in data[:30]:
            stmt = select(items.c.id).order_by(items.c.embedding.l2_distance(q)).limit(10)
            conn.execute(stmt).all()
            conn.execute(stmt).all()
            recalls.append(measure_recall(conn, stmt, 10))
        assert explain_index_usage(conn, stmt).index_names == ("ix_items_ivf",)
    assert np.mean(recalls[10:]) < 0.9


def test_recall_refuses_an_autocommit_connection(docs_in_mode: Engine) -> None:
    stmt = select(t.c.id).order_by(t.c.embedding.cosine_distance(Q)).limit(10)
    with (
        docs_in_mode.connect() as conn,
        pytest.raises(ValueError, match="measure_recall needs a transaction"),
    ):
        measure_recall(conn.execution_options(isolation_level="AUTOCOMMIT"), stmt, 10)


@pytest.mark.parametrize("mode", ["plugin", "asyncpg"])
async def test_explain_recall_and_warning_through_an_async_connection(
    vector_database_url: str, docs_schema: str, mode: str
) -> None:
    """The documented async calls: ``run_sync`` on an AsyncConnection (psycopg async,
    asyncpg), and the warning from ``await conn.execute``."""
    engine = make_async_engine(vector_database_url, docs_schema, mode)
    install_query_checks(engine)
    stmt = select(t.c.id).order_by(t.c.embedding.cosine_distance(Q)).limit(10)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SET LOCAL enable_seqscan = off"))
            usage = await conn.run_sync(explain_index_usage, stmt)
            assert usage.vector_indexes == (("ix_cos", "hnsw"),)
            assert await conn.run_sync(measure_recall, stmt, 10) == 1.0
            with pytest.warns(VectorIndexWarning, match="ORDER BY ... DESC"):
                await conn.execute(stmt.order_by(None).order_by(t.c.embedding.distance(Q).desc()))
    finally:
        await engine.dispose()


def test_recall_refuses_a_bad_k(docs: Engine) -> None:
    stmt = select(t.c.id).order_by(t.c.embedding.cosine_distance(Q)).limit(10)
    with docs.connect() as conn, pytest.raises(ValueError, match="k must be a positive int"):
        measure_recall(conn, stmt, 0)


def test_recall_example_prints_the_trade_off_tables(
    vector_database_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = Path(__file__).parent.parent / "examples" / "recall_ef_search.py"
    spec = importlib.util.spec_from_file_location("recall_ef_search", path)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "recall_ef_search", example)  # for its dataclass
    spec.loader.exec_module(example)
    results = example.main(["--rows", "2000", "--dim", "16", "--queries", "5", "--no-progress"])
    hnsw = results["hnsw.ef_search"]
    assert [p.setting for p in hnsw] == [10, 40, 100, 200]
    assert all(0.0 <= p.recall <= 1.0 for p in hnsw)
    assert hnsw[-1].recall >= hnsw[0].recall
    ivf = results["ivfflat.probes (lists=2)"]
    assert [p.setting for p in ivf] == [1, 2]
    assert ivf[-1].recall == 1.0  # probes = lists scans every list: exact
    out = capsys.readouterr().out
    assert "EXPLAIN uses: ('items_hnsw',)" in out
    assert "hnsw.ef_search    recall@10    ANN ms/query" in out


def test_warning_points_at_the_callers_line(docs_in_mode: Engine) -> None:
    install_query_checks(docs_in_mode)
    stmt = select(t.c.id).order_by(t.c.embedding.cosine_distance(Q)).limit(5).offset(0)
    with docs_in_mode.connect() as conn, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        conn.execute(stmt.order_by(None).order_by(t.c.embedding.l1_distance(Q)))
    got = [w for w in caught if w.category is VectorIndexWarning]
    assert len(got) == 1
    assert got[0].filename == __file__
