"""Filtered top-k search: k rows whenever the filter has k, and a report when it has not.

One table for the module: 20 000 clustered 32-dim vectors (20 clusters), ``bucket`` a
random permutation of 0..1999 per row (``bucket < 1000`` keeps 50 %, ``< 100`` 5 %,
``< 10`` 0.5 %, ``< 1`` 0.05 %), ``cluster`` the row's cluster (a filter on a cluster far
from the query is the correlated case), an HNSW cosine index; a copy with an IVFFlat index.
No B-tree on the filter columns unless a test adds one, so that ``enable_seqscan = off``
leaves the vector index as the only plan when a test needs the iterative scan itself.
NumPy gives the exact answer.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
import pytest
from conftest import make_async_engine, make_engine
from psycopg import sql
from sqlalchemy import Column, Integer, MetaData, Table, event, func, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from vecalchemy import (
    HnswIndex,
    IvfflatIndex,
    SearchSettingError,
    Vector,
    copy_rows,
    explain_index_usage,
    install_plan_guard,
    install_query_checks,
    search_settings,
)
from vecalchemy.exc import VectorIndexWarning, VectorPlanError
from vecalchemy.filtered import (
    DEFAULT_LIMITS,
    FilteredSearchWarning,
    _exact,
    filtered_search,
    filtered_search_async,
)
from vecalchemy.testing import libpq_conninfo

N, DIM, CLUSTERS, K = 20_000, 32, 20, 10
GUCS = (
    "hnsw.ef_search",
    "hnsw.iterative_scan",
    "hnsw.max_scan_tuples",
    "hnsw.scan_mem_multiplier",
    "ivfflat.probes",
    "ivfflat.iterative_scan",
    "ivfflat.max_probes",
)
#: filter -> share of rows it keeps
SELECTIVITY = {1000: "50 %", 100: "5 %", 10: "0.5 %", 1: "0.05 %"}


@dataclass
class Data:
    url: str
    schema: str
    docs: Table
    ivf: Table
    vectors: np.ndarray
    bucket: np.ndarray
    cluster: np.ndarray
    centers: np.ndarray

    def query(self, i: int) -> np.ndarray:
        return np.asarray(self.vectors[i] + 0.05, dtype=np.float32)

    def far_cluster(self, q: np.ndarray) -> int:
        near = int(np.argmin(np.linalg.norm(self.centers - q, axis=1)))
        return int(np.argmax(np.linalg.norm(self.centers - self.centers[near], axis=1)))

    def exact(self, q: np.ndarray, mask: np.ndarray, k: int = K) -> list[int]:
        v = self.vectors.astype(np.float64)
        d = 1 - (v @ q) / (np.linalg.norm(v, axis=1) * np.linalg.norm(q))
        ids = np.flatnonzero(mask)
        return [int(i) for i in ids[np.argsort(d[ids], kind="stable")][:k]]


def _table(name: str, md: MetaData) -> Table:
    return Table(
        name,
        md,
        Column("id", Integer, primary_key=True),
        Column("bucket", Integer),
        Column("cluster", Integer),
        Column("embedding", Vector(DIM, metric="cosine")),
    )


@pytest.fixture(scope="module")
def data(vector_database_url: str) -> Iterator[Data]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    conninfo = libpq_conninfo(vector_database_url)
    with psycopg.connect(conninfo, autocommit=True) as raw:
        raw.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    rng = np.random.default_rng(20)
    centers = (rng.standard_normal((CLUSTERS, DIM)) * 3).astype(np.float32)
    cluster = rng.integers(0, CLUSTERS, N)
    vectors = (centers[cluster] + rng.standard_normal((N, DIM))).astype(np.float32)
    bucket = rng.permutation(N) % 2000
    md = MetaData()
    docs, ivf = _table("docs", md), _table("docs_ivf", md)
    engine = make_engine(vector_database_url, schema, "plugin")
    try:
        md.create_all(engine)
        columns = {"id": np.arange(N), "bucket": bucket, "cluster": cluster, "embedding": vectors}
        with engine.begin() as conn:
            copy_rows(conn, docs, columns, progress=False)
            copy_rows(conn, ivf, columns, progress=False)
        HnswIndex("docs_hnsw", docs.c.embedding).create(engine)
        IvfflatIndex("docs_ivf_ivfflat", ivf.c.embedding, lists=20).create(engine)
        with engine.begin() as conn:
            conn.execute(text("ANALYZE docs"))
            conn.execute(text("ANALYZE docs_ivf"))
    finally:
        engine.dispose()
    yield Data(vector_database_url, schema, docs, ivf, vectors, bucket, cluster, centers)
    with psycopg.connect(conninfo, autocommit=True) as raw:
        raw.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def eng(data: Data, mode: str) -> Iterator[Engine]:
    engine = make_engine(data.url, data.schema, mode)
    yield engine
    engine.dispose()


@pytest.fixture
def sent(eng: Engine) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(eng, "before_cursor_execute", record)
    yield statements
    event.remove(eng, "before_cursor_execute", record)


def _settings(conn: Connection | Session) -> dict[str, str]:
    conn.execute(text("SELECT '[1]'::vector"))  # hnsw.* exist once the library is loaded
    row = conn.execute(select(*(func.current_setting(name) for name in GUCS))).one()
    return dict(zip(GUCS, (str(v) for v in row), strict=True))


def _only_the_vector_index(conn: Connection) -> None:
    """No sequential scan: the vector index is the only plan (no B-tree on the filters)."""
    conn.execute(select(func.set_config("enable_seqscan", "off", True)))


def _ids(rows: Any) -> list[int]:
    return [int(r.id) for r in rows]


def _distance(t: Table, q: np.ndarray) -> Any:
    return t.c.embedding.cosine_distance(q)


# --- the problem, and k rows whenever the filter has k -------------------------------------


@pytest.mark.parametrize("mode", ["plugin"])
def test_plain_ann_returns_fewer_than_k_rows_with_a_5_percent_filter(
    eng: Engine, data: Data
) -> None:
    q = data.query(0)
    d = _distance(data.docs, q)
    plain = select(data.docs.c.id).where(data.docs.c.bucket < 100)
    with eng.connect() as conn:
        ann = plain.add_columns(d.label("distance")).order_by(d).limit(K)
        assert explain_index_usage(conn, ann).index_names == ("docs_hnsw",)
        assert len(conn.execute(ann).all()) < K  # ef_search 40 candidates, then the filter
        result = filtered_search(conn, plain, d, K, exact_below=None)
    assert len(result.rows) == K and result.complete
    assert result.strategy == "iterative_scan" and result.method == "hnsw"


@pytest.mark.parametrize("mode", ["plugin"])
@pytest.mark.parametrize("correlated", [False, True], ids=["random", "far-cluster"])
@pytest.mark.parametrize("limit", list(SELECTIVITY), ids=list(SELECTIVITY.values()))
def test_returns_k_rows_whenever_the_exact_filtered_query_has_k(
    eng: Engine, data: Data, limit: int, correlated: bool
) -> None:
    docs = data.docs
    for i in (0, 1234, 9876):
        q = data.query(i)
        mask = data.bucket < limit
        where = [docs.c.bucket < limit]
        if correlated:
            far = data.far_cluster(q)
            mask &= data.cluster == far
            where.append(docs.c.cluster == far)
        exact = data.exact(q, mask)
        stmt = select(docs.c.id).where(*where)
        with eng.connect() as conn:
            by_default = filtered_search(conn, stmt, _distance(docs, q), K)
            _only_the_vector_index(conn)
            iterative = filtered_search(
                conn,
                stmt,
                _distance(docs, q),
                K,
                exact_below=None,
                limits={"max_scan_tuples": N, "ef_search": 80},  # a scan of N sees every row
            )
        for result in (by_default, iterative):
            assert len(result.rows) == min(K, int(mask.sum())), result.reason
            assert result.complete
        assert iterative.strategy in ("iterative_scan", "exact_fallback")  # the index path
        if by_default.strategy == "exact":
            assert _ids(by_default.rows) == exact


@pytest.mark.parametrize("mode", ["plugin"])
def test_recall_at_10_is_at_least_095_with_a_half_percent_filter(eng: Engine, data: Data) -> None:
    docs = data.docs
    stmt = select(docs.c.id).where(docs.c.bucket < 10)  # 100 rows
    recalls: dict[str, list[float]] = {"default": [], "relaxed, 2k candidates": []}
    for i in range(0, N, N // 20):
        q = data.query(i)
        exact = set(data.exact(q, data.bucket < 10))
        with eng.connect() as conn:
            default = filtered_search(conn, stmt, _distance(docs, q), K)
            _only_the_vector_index(conn)
            relaxed = filtered_search(
                conn,
                stmt,
                _distance(docs, q),
                K,
                order="relaxed_order",
                candidates=2 * K,
                exact_below=None,
                exact_fallback=False,
            )
        assert default.strategy == "exact"  # the planner estimates ~100 rows
        assert relaxed.strategy == "iterative_scan" and len(relaxed.rows) == K
        recalls["default"].append(len(set(_ids(default.rows)) & exact) / K)
        recalls["relaxed, 2k candidates"].append(len(set(_ids(relaxed.rows)) & exact) / K)
        distances = [r.distance for r in relaxed.rows]
        assert distances == sorted(distances)
    assert np.mean(recalls["default"]) == 1.0
    assert np.mean(recalls["relaxed, 2k candidates"]) >= 0.95, recalls


# --- fewer matching rows than k --------------------------------------------------------------


@pytest.mark.parametrize("mode", ["plugin"])
@pytest.mark.parametrize("path", ["exact", "iterative_scan"])
@pytest.mark.parametrize("matching", [3, 0])
def test_a_filter_matching_fewer_than_k_rows_is_complete_and_says_so(
    eng: Engine, data: Data, matching: int, path: str
) -> None:
    docs = data.docs
    q = data.query(7)
    chosen = [int(i) for i in np.flatnonzero(data.bucket == 0)[:matching]]
    # abs(id): no index serves it, so the planner keeps the vector index
    stmt = select(docs.c.id).where(func.abs(docs.c.id).in_(chosen or [-1]))
    with eng.connect() as conn:
        if path == "exact":
            result = filtered_search(conn, stmt, _distance(docs, q), K)
        else:
            _only_the_vector_index(conn)
            result = filtered_search(
                conn, stmt, _distance(docs, q), K, exact_below=None, exact_fallback=False
            )
    assert result.strategy == path
    assert sorted(_ids(result.rows)) == sorted(chosen)
    assert result.complete
    assert f"the filter matches only {matching} rows, all returned" in result.reason


# --- exact search: chosen from the planner's estimate, really exact ---------------------------


@pytest.mark.parametrize("mode", ["plugin"])
def test_exact_search_is_chosen_from_the_planner_estimate(eng: Engine, data: Data) -> None:
    docs = data.docs
    q = data.query(3)
    stmt = select(docs.c.id).where(docs.c.bucket < 100)  # 1 000 rows
    with eng.connect() as conn:
        below = filtered_search(conn, stmt, _distance(docs, q), K, exact_below=5_000)
        above = filtered_search(conn, stmt, _distance(docs, q), K, exact_below=500)
    assert 500 <= below.estimated_rows <= 2_000  # the planner's guess for 1 000 rows
    assert below.strategy == "exact" and "fewer than exact_below=5000" in below.reason
    assert _ids(below.rows) == data.exact(q, data.bucket < 100)
    assert above.strategy == "iterative_scan" and above.estimated_rows == below.estimated_rows
    assert [s.strategy for s in below.steps] == ["exact"]


@pytest.mark.parametrize("mode", ["plugin"])
def test_exact_search_skips_the_vector_index_and_keeps_the_filters_btree(
    eng: Engine, data: Data
) -> None:
    docs = data.docs
    d = _distance(docs, data.query(5))
    with eng.connect() as conn:
        conn.execute(text("CREATE INDEX docs_bucket ON docs (bucket)"))  # rolled back
        conn.execute(text("ANALYZE docs"))
        _only_the_vector_index(conn)  # even so: exact, through the B-tree
        usage = explain_index_usage(conn, _exact(select(docs.c.id).where(docs.c.bucket < 1), d, K))
        conn.rollback()
    assert not usage.uses_vector_index
    assert usage.other_indexes == ("docs_bucket",)


@pytest.mark.parametrize("mode", ["plugin"])
def test_exact_search_passes_a_raising_plan_guard_and_query_checks(
    eng: Engine, data: Data
) -> None:
    docs = data.docs
    q = data.query(8)
    install_plan_guard(eng, action="raise")
    install_query_checks(eng)
    stmt = select(docs.c.id).where(docs.c.bucket < 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", VectorIndexWarning)
        with eng.connect() as conn:
            result = filtered_search(conn, stmt, _distance(docs, q), K)
            d = _distance(docs, q)
            with pytest.raises(VectorPlanError):  # the same query, not by the helper
                conn.execute(stmt.add_columns(d.label("distance")).order_by(d).limit(K)).all()
    assert result.strategy == "exact" and _ids(result.rows) == data.exact(q, data.bucket < 1)


@pytest.mark.parametrize("mode", ["plugin"])
def test_a_plan_without_the_vector_index_is_returned_as_exact(eng: Engine, data: Data) -> None:
    docs = data.docs
    q = data.query(13)
    with eng.connect() as conn:
        conn.execute(text("CREATE INDEX docs_bucket ON docs (bucket)"))  # rolled back
        conn.execute(text("ANALYZE docs"))
        result = filtered_search(
            conn,
            select(docs.c.id).where(docs.c.bucket < 1),
            _distance(docs, q),
            K,
            exact_below=None,
        )
        conn.rollback()
    assert result.strategy == "no_vector_index" and result.complete
    assert "scans no vector index" in result.reason and "docs_bucket" in result.reason
    assert _ids(result.rows) == data.exact(q, data.bucket < 1)


# --- escalation -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["plugin"])
def test_escalation_raises_the_scan_limit_step_by_step_until_k_rows(
    eng: Engine, data: Data
) -> None:
    docs = data.docs
    stmt = select(docs.c.id).where(docs.c.bucket < 10)  # 100 rows: ~1 in 200 tuples
    with eng.connect() as conn:
        _only_the_vector_index(conn)
        result = filtered_search(
            conn,
            stmt,
            _distance(docs, data.query(11)),
            K,
            exact_below=None,
            exact_fallback=False,  # else exact search takes over once it is cheaper
            settings={"max_scan_tuples": 50, "ef_search": 10},
            limits={"max_scan_tuples": 20_000, "ef_search": 200},
        )
    assert result.strategy == "iterative_scan" and len(result.rows) == K
    assert len(result.steps) > 1
    assert [s.rows for s in result.steps][:-1] == [s.rows for s in result.steps if s.rows < K]
    scanned = [int(s.settings["hnsw.max_scan_tuples"]) for s in result.steps]
    assert scanned == sorted(scanned) and scanned[0] == 50 and scanned[-1] <= 20_000
    assert all(s.settings["hnsw.iterative_scan"] == "strict_order" for s in result.steps)


@pytest.mark.parametrize("mode", ["plugin"])
def test_bounds_that_forbid_k_rows_are_respected_and_reported(eng: Engine, data: Data) -> None:
    docs = data.docs
    q = data.query(0)
    far = data.far_cluster(q)
    stmt = select(docs.c.id).where(docs.c.bucket < 100, docs.c.cluster == far)
    has = int(((data.bucket < 100) & (data.cluster == far)).sum())
    assert has >= K
    with eng.connect() as conn:
        _only_the_vector_index(conn)
        with pytest.warns(FilteredSearchWarning, match="Cannot return k rows"):
            result = filtered_search(
                conn,
                stmt,
                _distance(docs, q),
                K,
                exact_below=None,
                exact_fallback=False,
                settings={"max_scan_tuples": 10, "ef_search": 10},
                limits={"max_scan_tuples": 160, "ef_search": 20, "scan_mem_multiplier": 1.0},
                warn=True,
            )
        fallback = filtered_search(
            conn,
            stmt,
            _distance(docs, q),
            K,
            exact_below=None,
            settings={"max_scan_tuples": 10, "ef_search": 10},
            limits={"max_scan_tuples": 160, "ef_search": 20, "scan_mem_multiplier": 1.0},
        )
    assert not result.complete and len(result.rows) < K
    assert "matches at least 10 rows" in result.reason and "max_scan_tuples" in result.reason
    last = result.steps[-1].settings
    assert (last["hnsw.max_scan_tuples"], last["hnsw.ef_search"]) == ("160", "20")
    assert all(int(s.settings["hnsw.max_scan_tuples"]) <= 160 for s in result.steps)
    assert fallback.strategy == "exact_fallback" and fallback.complete
    assert _ids(fallback.rows) == data.exact(q, (data.bucket < 100) & (data.cluster == far))
    assert [s.strategy for s in fallback.steps][-1] == "exact_fallback"


@pytest.mark.parametrize("mode", ["plugin"])
def test_exact_search_takes_over_when_the_next_step_would_scan_more_than_match(
    eng: Engine, data: Data
) -> None:
    docs = data.docs
    q = data.query(0)
    far = data.far_cluster(q)
    stmt = select(docs.c.id).where(docs.c.bucket < 100, docs.c.cluster == far)  # ~50 rows
    with eng.connect() as conn:
        _only_the_vector_index(conn)
        result = filtered_search(
            conn,
            stmt,
            _distance(docs, q),
            K,
            exact_below=None,
            settings={"max_scan_tuples": 100, "ef_search": 10},
        )
    assert result.estimated_rows < 400  # 100 x GROWTH["max_scan_tuples"]
    assert [s.strategy for s in result.steps] == ["iterative_scan", "exact_fallback"]
    assert result.steps[0].rows < K
    assert "the next step would scan up to 400 tuples" in result.reason
    assert "exact search is cheaper" in result.reason
    assert _ids(result.rows) == data.exact(q, (data.bucket < 100) & (data.cluster == far))


@pytest.mark.parametrize("mode", ["plugin"])
def test_without_escalation_one_step_is_run(eng: Engine, data: Data) -> None:
    docs = data.docs
    with eng.connect() as conn:
        _only_the_vector_index(conn)
        result = filtered_search(
            conn,
            select(docs.c.id).where(docs.c.bucket < 1),  # 10 rows
            _distance(docs, data.query(2)),
            K,
            exact_below=None,
            escalate=False,
            exact_fallback=False,
            settings={"max_scan_tuples": 1, "ef_search": 10},  # the first 10 candidates
        )
    assert len(result.steps) == 1 and len(result.rows) < K
    assert not result.complete
    assert "escalate=False" in result.reason and "Cannot return k rows" in result.reason


# --- IVFFlat --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["plugin"])
def test_ivfflat_uses_relaxed_order_and_returns_k_rows(eng: Engine, data: Data) -> None:
    ivf = data.ivf
    q = data.query(42)
    stmt = select(ivf.c.id).where(ivf.c.bucket < 1)  # 10 rows, ~1 a list
    d = _distance(ivf, q)
    with eng.connect() as conn:
        _only_the_vector_index(conn)
        plain = conn.execute(stmt.add_columns(d.label("distance")).order_by(d).limit(K)).all()
        result = filtered_search(conn, stmt, d, K, exact_below=None, exact_fallback=False)
    assert len(plain) < K  # probes = 1: the filtered rows of one list
    assert _ids(result.rows) == data.exact(q, data.bucket < 1)
    assert (result.method, result.order, result.index) == (
        "ivfflat",
        "relaxed_order",
        "docs_ivf_ivfflat",
    )
    assert len(result.rows) == K and result.complete
    assert result.steps[0].settings["ivfflat.iterative_scan"] == "relaxed_order"
    distances = [r.distance for r in result.rows]
    assert distances == sorted(distances)  # the CTE re-sorts relaxed order


# --- settings: transaction-local, set back --------------------------------------------------


@pytest.mark.parametrize("mode", ["plugin"])
def test_no_setting_leaks_after_the_call(eng: Engine, data: Data) -> None:
    docs = data.docs
    stmt = select(docs.c.id).where(docs.c.bucket < 1)
    with eng.connect() as conn:
        server_defaults = _settings(conn)
        conn.rollback()
        with search_settings(conn, ef_search=77, probes=3):
            before = _settings(conn)
            _only_the_vector_index(conn)
            result = filtered_search(
                conn,
                stmt,
                _distance(docs, data.query(9)),
                K,
                exact_below=None,
                settings={"max_scan_tuples": 30},
            )
            assert len(result.steps) > 1  # settings changed several times
            assert _settings(conn) == before
        conn.commit()
        assert _settings(conn) == server_defaults


@pytest.mark.parametrize("mode", ["plugin"])
def test_autocommit_connection_is_refused_before_anything_is_sent(
    eng: Engine, data: Data, sent: list[str]
) -> None:
    docs = data.docs
    with eng.connect() as conn:
        auto = conn.execution_options(isolation_level="AUTOCOMMIT")
        sent.clear()
        with pytest.raises(SearchSettingError, match="AUTOCOMMIT"):
            filtered_search(
                auto, select(docs.c.id).where(docs.c.bucket < 1), _distance(docs, data.query(0)), K
            )
    assert sent == []


_BAD: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"k": 0}, ValueError, "k must be a positive int, got 0"),
    ({"k": True}, ValueError, "k must be a positive int"),
    ({"k": 2.5}, ValueError, "k must be a positive int"),
    ({"order": "strict"}, ValueError, "order must be one of strict_order, relaxed_order"),
    ({"settings": {"ef_search": 1001}}, SearchSettingError, '"hnsw.ef_search" \\(1 .. 1000\\)'),
    ({"settings": {"hnsw_iterative_scan": "off"}}, SearchSettingError, "chosen by order="),
    ({"limits": {"max_probes": 40000}}, SearchSettingError, "ivfflat.max_probes"),
    ({"limits": {"max_scan_tuples": "many"}}, SearchSettingError, "must be an int"),
    (
        {"settings": {"ef_search": 100}, "limits": {"ef_search": 50}},
        SearchSettingError,
        "ef_search=100 is above limits ef_search=50",
    ),
    ({"candidates": 5}, ValueError, "candidates must be at least k \\(10\\), got 5"),
    ({"candidates": 0}, ValueError, "candidates must be a positive int"),
    ({"exact_below": -1}, ValueError, "exact_below must be an int >= 0 or None"),
    ({"exact_below": 1.5}, ValueError, "exact_below"),
    ({"escalate": "yes"}, TypeError, "escalate must be True or False"),
    ({"warn": 1}, TypeError, "warn must be True or False"),
    ({"stmt": "SELECT 1"}, TypeError, "stmt must be a select"),
    ({"stmt": "ordered"}, ValueError, "no ORDER BY, LIMIT or OFFSET"),
    ({"distance": [1.0, 2.0]}, TypeError, "distance must be a SQL distance expression"),
]


@pytest.mark.parametrize("mode", ["plugin"])
@pytest.mark.parametrize(("bad", "error", "message"), _BAD, ids=[str(b) for b, _, _ in _BAD])
def test_bad_arguments_are_refused_before_anything_is_sent(
    eng: Engine,
    data: Data,
    sent: list[str],
    bad: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    docs = data.docs
    stmt: Any = select(docs.c.id).where(docs.c.bucket < 1)
    kw: dict[str, Any] = {
        "stmt": stmt,
        "distance": _distance(docs, data.query(0)),
        "k": K,
        **bad,
    }
    if kw["stmt"] == "ordered":
        kw["stmt"] = stmt.order_by(docs.c.id)
    with eng.connect() as conn:
        sent.clear()
        with pytest.raises(error, match=message):
            filtered_search(conn, kw.pop("stmt"), kw.pop("distance"), kw.pop("k"), **kw)
    assert sent == []


def test_default_limits_are_within_pgvectors_ranges() -> None:
    assert DEFAULT_LIMITS.gucs() == {
        "hnsw.ef_search": "400",
        "hnsw.max_scan_tuples": "200000",
        "hnsw.scan_mem_multiplier": "8.0",
        "ivfflat.probes": "64",
        "ivfflat.max_probes": "32768",
    }


# --- drivers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["text", "plugin", "dialect", "asyncpg", "psycopg2", "pg8000"])
def test_every_driver_gets_k_rows_and_keeps_its_settings(eng: Engine, data: Data) -> None:
    docs = data.docs
    q = data.query(77)
    stmt = select(docs.c.id).where(docs.c.bucket < 100)
    with Session(eng) as session:
        before = _settings(session)
        iterative = filtered_search(session, stmt, _distance(docs, q), K, exact_below=None)
        exact = filtered_search(session, stmt, _distance(docs, q), K)
        assert _settings(session) == before
    assert len(iterative.rows) == K and iterative.strategy == "iterative_scan"
    assert exact.strategy == "exact" and _ids(exact.rows) == data.exact(q, data.bucket < 100)


@pytest.mark.parametrize("mode", ["plugin", "asyncpg"])
async def test_async_session_and_connection(data: Data, mode: str) -> None:
    docs = data.docs
    q = data.query(500)
    stmt = select(docs.c.id).where(docs.c.bucket < 100)
    engine = make_async_engine(data.url, data.schema, mode)
    try:
        async with AsyncSession(engine) as session:
            result = await filtered_search_async(
                session, stmt, _distance(docs, q), K, exact_below=None
            )
            got = await session.execute(select(func.current_setting("hnsw.iterative_scan")))
            assert got.scalar_one() == "off"
        assert len(result.rows) == K and result.strategy == "iterative_scan"
        async with engine.connect() as conn:
            exact = await filtered_search_async(conn, stmt, _distance(docs, q), K)
        assert _ids(exact.rows) == data.exact(q, data.bucket < 100)
        with pytest.raises(TypeError, match="AsyncConnection or AsyncSession"):
            await filtered_search_async(engine, stmt, _distance(docs, q), K)  # type: ignore[arg-type]
    finally:
        await engine.dispose()
