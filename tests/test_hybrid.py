"""hybrid_search: each leg's own top rows fused by reciprocal rank or weighted scores,
checked against a fusion computed in Python from plain per-leg queries."""

from __future__ import annotations

from typing import Any

import numpy as np
import psycopg
import pytest
from sqlalchemy import Column, Computed, Integer, MetaData, Table, Text, func, select, text
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from vecalchemy import (
    HnswIndex,
    SparseVec,
    SparseVector,
    Vector,
    explain_index_usage,
    hybrid_search,
    search_settings,
)

DIM, SPARSE_DIM, ROWS = 16, 40, 200
WORDS = [
    *("apple", "banana", "cherry", "grape", "lemon", "mango", "orange", "peach", "pear"),
    *("plum", "river", "mountain", "forest", "desert", "ocean", "valley", "island"),
    *("meadow", "canyon", "glacier"),
]
QUERY_TEXT = "apple OR river OR mango"


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    category: Mapped[int]
    body: Mapped[str] = mapped_column(Text)
    embedding: Mapped[Any] = mapped_column(Vector(DIM, metric="cosine"))
    sparse: Mapped[Any] = mapped_column(SparseVec(SPARSE_DIM, metric="inner_product"))
    tsv: Mapped[Any] = mapped_column(
        TSVECTOR, Computed("to_tsvector('english', body)", persisted=True)
    )


docs = Doc.__table__


def _vec(v: np.ndarray) -> str:
    return "[" + ",".join(str(float(x)) for x in v) + "]"


def _sparse_text(s: dict[int, float]) -> str:
    return "{" + ",".join(f"{i + 1}:{v!r}" for i, v in sorted(s.items())) + f"}}/{SPARSE_DIM}"


def _sparse(rng: np.random.Generator) -> dict[int, float]:
    idx = rng.choice(SPARSE_DIM, size=6, replace=False)
    return {int(i): float(np.float32(v)) for i, v in zip(idx, rng.random(6) + 0.05, strict=True)}


@pytest.fixture
def corpus(raw_conn: psycopg.Connection) -> dict[str, Any]:
    """200 documents: 16-d embeddings, 40-d sparse vectors, English text with a generated
    tsvector column (and a GIN index on it), in 4 categories."""
    raw_conn.execute(
        f"CREATE TABLE docs (id int PRIMARY KEY, category int NOT NULL, body text NOT NULL, "
        f"embedding vector({DIM}) NOT NULL, sparse sparsevec({SPARSE_DIM}) NOT NULL, "
        "tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', body)) STORED)"
    )
    raw_conn.execute("CREATE INDEX docs_tsv ON docs USING gin (tsv)")
    rng = np.random.default_rng(11)
    emb = rng.standard_normal((ROWS, DIM)).astype(np.float32)
    with raw_conn.cursor().copy(
        "COPY docs (id, category, body, embedding, sparse) FROM STDIN"
    ) as copy:
        for i in range(ROWS):
            body = " ".join(rng.choice(WORDS, size=8))
            copy.write_row([i, i % 4, body, _vec(emb[i]), _sparse_text(_sparse(rng))])
    q = (emb[3] + 0.3 * rng.standard_normal(DIM)).astype(np.float32)
    qs = _sparse(rng)
    return {"q": q, "qs": qs, "emb": emb}


def _leg(raw_conn: psycopg.Connection, leg: str, c: dict[str, Any], n: int, where: str) -> Any:
    """One leg's own top ``n`` as ``[(id, score)]`` by a plain query, best first."""
    cond = f"AND {where}" if where else ""
    if leg == "dense":
        sql = (
            f"SELECT id, embedding <=> %s::vector FROM docs WHERE true {cond} "
            "ORDER BY 2, id LIMIT %s"
        )
        params: tuple[Any, ...] = (_vec(c["q"]), n)
    elif leg == "sparse":
        sql = (
            f"SELECT id, sparse <#> %s::sparsevec FROM docs WHERE true {cond} "
            "ORDER BY 2, id LIMIT %s"
        )
        params = (_sparse_text(c["qs"]), n)
    else:
        sql = (
            "SELECT id, ts_rank_cd(tsv, websearch_to_tsquery('english', %s)) FROM docs "
            f"WHERE tsv @@ websearch_to_tsquery('english', %s) {cond} ORDER BY 2 DESC, id LIMIT %s"
        )
        params = (QUERY_TEXT, QUERY_TEXT, n)
    rows = raw_conn.execute(sql, params).fetchall()
    if leg == "text":  # ts_rank_cd is a real: its shortest text form, widened exactly
        return [(i, float(np.float32(s))) for i, s in rows]
    return rows


def _reference(
    raw_conn: psycopg.Connection,
    c: dict[str, Any],
    legs: list[str],
    *,
    k: int,
    n: int,
    fusion: str,
    weights: dict[str, float] | None = None,
    where: str = "",
) -> list[tuple[Any, ...]]:
    """The fusion in Python: ``[(id, score, rank per leg or None)]``, best first."""
    weights = weights or dict.fromkeys(legs, 1.0)
    score: dict[int, float] = {}
    ranks: dict[int, dict[str, int]] = {}
    for leg in legs:
        rows = _leg(raw_conn, leg, c, n, where)
        values = np.array([float(s) for _, s in rows])
        lo, hi = values.min(), values.max()
        for rank, (id_, s) in enumerate(rows, start=1):
            if fusion == "rrf":
                part = weights[leg] / (60.0 + rank)
            elif hi == lo:
                part = weights[leg] * 1.0
            else:
                better = (float(s) - lo) if leg == "text" else (hi - float(s))
                part = weights[leg] * (better / (hi - lo))
            score[id_] = score.get(id_, 0.0) + part
            ranks.setdefault(id_, {})[leg] = rank
    order = sorted(score, key=lambda i: (-score[i], i))[:k]
    return [(i, score[i], *(ranks[i].get(leg) for leg in legs)) for i in order]


def _legs(c: dict[str, Any], legs: list[str]) -> dict[str, Any]:
    given = {
        "dense": (Doc.embedding, c["q"]),
        "sparse": (Doc.sparse, SparseVector(c["qs"], SPARSE_DIM)),
        "text": (Doc.tsv, QUERY_TEXT),
    }
    return {leg: given[leg] for leg in legs}


def _check(got: list[Any], want: list[tuple[Any, ...]]) -> None:
    assert [r[0] for r in got] == [r[0] for r in want]
    assert [tuple(r[2:]) for r in got] == [r[2:] for r in want]
    for g, w in zip(got, want, strict=True):
        assert abs(g[1] - w[1]) <= 1e-9


def test_rrf_of_three_legs_matches_the_reference(
    engine: Engine, raw_conn: psycopg.Connection, corpus: dict[str, Any]
) -> None:
    legs = ["dense", "sparse", "text"]
    stmt = hybrid_search(select(docs.c.id), docs.c.id, **_legs(corpus, legs), k=15, leg_limit=30)
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    assert list(rows[0]._fields) == ["id", "score", "dense_rank", "sparse_rank", "text_rank"]
    want = _reference(raw_conn, corpus, legs, k=15, n=30, fusion="rrf")
    _check(rows, want)
    assert any(None in r[2:] for r in want)  # some rows are absent from some legs
    # the dense leg's own ranking is the exact cosine ranking
    emb, q = corpus["emb"].astype(np.float64), corpus["q"].astype(np.float64)
    cosine = 1 - emb @ q / (np.linalg.norm(emb, axis=1) * np.linalg.norm(q))
    exact = [int(i) for i in np.argsort(cosine, kind="stable")[:30]]
    assert [i for i, _ in _leg(raw_conn, "dense", corpus, 30, "")] == exact


def test_weighted_fusion_with_filters_inside_every_leg(
    engine: Engine, raw_conn: psycopg.Connection, corpus: dict[str, Any]
) -> None:
    weights = {"dense": 0.6, "sparse": 0.1, "text": 0.3}
    legs = list(weights)
    stmt = hybrid_search(
        docs.c.id,
        docs.c.id,
        **_legs(corpus, legs),
        k=12,
        fusion="weighted",
        weights=weights,
        where=[docs.c.category != 1, docs.c.id < 180],
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    want = _reference(
        raw_conn,
        corpus,
        legs,
        k=12,
        n=48,
        fusion="weighted",
        weights=weights,
        where="category <> 1 AND id < 180",
    )
    _check(rows, want)
    assert all(r[0] % 4 != 1 and r[0] < 180 for r in rows)


@pytest.mark.parametrize("mode", ["plugin", "asyncpg", "pg8000"])
@pytest.mark.parametrize("legs", [["dense", "sparse"], ["dense", "text"], ["sparse", "text"]])
def test_two_legs_and_an_orm_entity(
    engine: Engine, raw_conn: psycopg.Connection, corpus: dict[str, Any], legs: list[str]
) -> None:
    stmt = hybrid_search(Doc, Doc.id, **_legs(corpus, legs), k=8, where=Doc.category == 2)
    with Session(engine) as session:
        rows = session.execute(stmt).all()
    assert all(isinstance(r[0], Doc) and r[0].category == 2 for r in rows)
    got = [(r[0].id, *r[1:]) for r in rows]
    want = _reference(raw_conn, corpus, legs, k=8, n=40, fusion="rrf", where="category = 2")
    _check(got, want)


@pytest.mark.parametrize("mode", ["plugin"])
def test_stmt_where_filters_the_fused_rows_and_text_takes_an_expression(
    engine: Engine, raw_conn: psycopg.Connection, corpus: dict[str, Any]
) -> None:
    stmt = hybrid_search(
        select(Doc.id).where(Doc.id % 2 == 0),
        Doc.id,
        dense=(Doc.embedding, corpus["q"]),
        text=(func.to_tsvector("english", Doc.body), QUERY_TEXT, "english"),
        k=5,
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    want = _reference(raw_conn, corpus, ["dense", "text"], k=ROWS, n=40, fusion="rrf")
    _check(rows, [r for r in want if r[0] % 2 == 0][:5])


@pytest.mark.parametrize("mode", ["plugin", "asyncpg"])
def test_each_leg_can_use_its_own_index(engine: Engine, corpus: dict[str, Any]) -> None:
    HnswIndex("docs_hnsw", docs.c.embedding).create(engine)
    HnswIndex("docs_sparse_hnsw", docs.c.sparse).create(engine)
    stmt = hybrid_search(
        Doc.id, Doc.id, **_legs(corpus, ["dense", "sparse", "text"]), k=5, leg_limit=20
    )
    with engine.connect() as conn, search_settings(conn, ef_search=100):
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        usage = explain_index_usage(conn, stmt)
        rows = conn.execute(stmt).all()
    assert sorted(usage.index_names) == ["docs_hnsw", "docs_sparse_hnsw"]
    assert "docs_tsv" in usage.other_indexes
    assert len(rows) == 5


@pytest.mark.parametrize("mode", ["plugin", "psycopg2"])
def test_max_distance_keeps_only_candidates_within_the_bound(
    engine: Engine, raw_conn: psycopg.Connection, corpus: dict[str, Any]
) -> None:
    qs = _sparse_text(corpus["qs"])
    overlapping = {
        i
        for (i,) in raw_conn.execute(
            "SELECT id FROM docs WHERE category = 2 AND sparse <#> %s::sparsevec < 0", (qs,)
        ).fetchall()
    }
    assert 0 < len(overlapping) < 40  # fewer than leg_limit: the bound decides the set
    stmt = hybrid_search(
        Doc.id,
        Doc.id,
        **_legs(corpus, ["dense", "sparse"]),
        k=200,
        leg_limit=40,
        where=Doc.category == 2,
        max_distance={"sparse": 0},
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    assert {r.id for r in rows if r.sparse_rank is not None} == overlapping
    assert sorted(r.sparse_rank for r in rows if r.sparse_rank is not None) == list(
        range(1, len(overlapping) + 1)
    )
    assert sum(r.dense_rank is not None for r in rows) == 40


def test_the_legs_are_index_friendly_ctes() -> None:
    c = {"q": np.zeros(DIM, dtype=np.float32) + 1, "qs": {0: 1.0}}
    sql = str(hybrid_search(Doc.id, Doc.id, **_legs(c, ["dense", "text"]), k=3))
    assert "WITH hybrid_dense_top AS" in sql and "hybrid_text_top AS" in sql
    assert "ORDER BY docs.embedding <=> " in sql
    # a vector leg is ordered by the distance alone: the shape an index scan serves
    top = sql.split("hybrid_dense_top AS \n(", 1)[1].split("hybrid_dense AS", 1)[0]
    order_by = top.split("ORDER BY", 1)[1].split("LIMIT", 1)[0]
    assert order_by.strip() == "docs.embedding <=> :embedding_1"
    assert "WHERE docs.embedding IS NOT NULL ORDER BY" in sql
    assert "docs.tsv @@ websearch_to_tsquery" in sql
    assert "UNION ALL" in sql and "ORDER BY hybrid.score DESC, docs.id" in sql


_T = Table(
    "t",
    MetaData(),
    Column("id", Integer),
    Column("e", Vector(3)),
    Column("s", SparseVec(5, metric="l2")),
    Column("body", Text),
)


@pytest.mark.parametrize(
    ("kw", "error", "match"),
    [
        ({"text": None}, ValueError, "at least two of dense=, sparse=, text=; got dense"),
        ({"dense": None, "text": None}, ValueError, "got none"),
        ({"k": 0}, ValueError, "k must be a positive int"),
        ({"k": True}, ValueError, "k must be a positive int"),
        ({"leg_limit": 0}, ValueError, "leg_limit must be"),
        ({"fusion": "borda"}, ValueError, "fusion must be one of rrf, weighted"),
        ({"rrf_k": -1}, ValueError, "rrf_k must be"),
        ({"weights": {"dense": 1.0}}, ValueError, "weights must name exactly"),
        ({"weights": {"dense": -1.0, "text": 1.0}}, ValueError, r"weights\['dense'\]"),
        ({"weights": {"dense": 0, "text": 0}}, ValueError, "at least one weight"),
        ({"weights": {"dense": float("nan"), "text": 1}}, ValueError, "finite"),
        ({"dense": (_T.c.e, [1, 2, 3])}, ValueError, "declares no metric"),
        ({"dense": (_T.c.e, [1, 2, 3], "hamming")}, ValueError, "not a metric of vector"),
        ({"dense": (_T.c.s, [1, 2, 3], "l2")}, TypeError, "Vector/HalfVec"),
        ({"dense": _T.c.e}, TypeError, "takes a tuple"),
        ({"text": (func.to_tsvector(_T.c.body), 3)}, TypeError, "must be a str"),
        ({"where": "id > 3"}, TypeError, "not a str"),
        ({"max_distance": {"text": 1}}, ValueError, "not a vector leg given"),
        ({"max_distance": {"sparse": 1}}, ValueError, "not a vector leg given"),
        ({"max_distance": {"dense": "1"}}, ValueError, "must be a number"),
        ({"max_distance": {"dense": float("inf")}}, ValueError, "must be finite"),
        ({"max_distance": 0.5}, TypeError, "must map"),
    ],
)
def test_argument_errors(kw: dict[str, Any], error: type[Exception], match: str) -> None:
    args: dict[str, Any] = {
        "dense": (_T.c.e, [1, 2, 3], "cosine"),
        "text": (func.to_tsvector("english", _T.c.body), "cats"),
    }
    args.update(kw)
    with pytest.raises(error, match=match):
        hybrid_search(select(_T.c.id), _T.c.id, **args)
    # a sparse leg needs a SparseVec
    with pytest.raises(TypeError, match="SparseVec"):
        hybrid_search(_T.c.id, _T.c.id, dense=(_T.c.e, [1, 2, 3], "l2"), sparse=(_T.c.e, [1]))
