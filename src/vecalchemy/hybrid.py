"""Hybrid search: a dense ranking fused with a sparse and/or a full-text ranking.

:func:`hybrid_search` builds one ``select()``: a CTE per ranking ("leg"), each ordered by
its own distance or text rank with its own ``LIMIT`` (so an HNSW index serves a vector
leg, a GIN index the text leg), the legs' candidates gathered by ``UNION ALL`` and summed
per key, and the requested columns joined to the fused score, best first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    Select,
    case,
    cast,
    func,
    literal,
    null,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import REGCONFIG, TSVECTOR
from sqlalchemy.exc import ArgumentError
from sqlalchemy.sql import ClauseElement, ColumnElement
from sqlalchemy.sql.sqltypes import NullType

from . import sqltext
from .facts import METRICS
from .search import _positive_int
from .types import VectorType

__all__ = ["hybrid_search", "FUSIONS", "LEGS"]

#: the fusion methods :func:`hybrid_search` knows
FUSIONS = ("rrf", "weighted")
#: the legs :func:`hybrid_search` takes, in the order their columns are returned
LEGS = ("dense", "sparse", "text")


def _clause(value: Any) -> Any:
    return value.__clause_element__() if hasattr(value, "__clause_element__") else value


def _non_negative(name: str, value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _unpack(name: str, spec: Any, extra: str) -> tuple[Any, Any, Any]:
    if not isinstance(spec, tuple) or len(spec) not in (2, 3):
        raise TypeError(
            f"{name}= takes a tuple (column, query) or (column, query, {extra}), got {spec!r}"
        )
    return spec[0], spec[1], spec[2] if len(spec) == 3 else None


def _vector_distance(
    name: str, spec: Any, sql_types: tuple[str, ...]
) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    column, query, metric = _unpack(name, spec, "metric")
    col = _clause(column)
    vtype = getattr(col, "type", None)
    if not isinstance(vtype, VectorType) or vtype.sql_type not in sql_types:
        wanted = "a Vector/HalfVec" if name == "dense" else "a SparseVec"
        raise TypeError(f"{name}= needs {wanted} column, got {vtype!r}")
    chosen = metric if metric is not None else vtype.metric
    if chosen is None:
        raise ValueError(f"give {name}=(column, query, metric) ({vtype!r} declares no metric)")
    if (
        not isinstance(chosen, str)
        or chosen not in METRICS
        or vtype.sql_type not in METRICS[chosen].types
    ):
        raise ValueError(
            f"{name}: metric {chosen!r} is not a metric of {vtype.sql_type}; expected one of "
            + ", ".join(m for m, f in METRICS.items() if vtype.sql_type in f.types)
        )
    if query is None:
        raise TypeError(
            f"{name}= query must be a query vector (or a SQL expression of one), got None: "
            "a NULL query gives every row a NULL distance"
        )
    if not isinstance(query, ClauseElement) and not hasattr(query, "__clause_element__"):
        vtype._check(query)  # the type's own validation, now rather than at execution
    distance: ColumnElement[Any] = getattr(col, METRICS[chosen].method)(query)
    return col, distance


def _text_rank(spec: Any) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    document, query_text, config = _unpack("text", spec, "config")
    if not isinstance(query_text, str):
        raise TypeError(f"text= query must be a str, got {type(query_text).__name__}")
    config = "english" if config is None else config
    if not isinstance(config, str) or not config:
        raise TypeError(f"text= config must be a text search configuration name, got {config!r}")
    for what, value in (("query", query_text), ("config", config)):
        if "\x00" in value:
            raise ValueError(
                f"text= {what} {value!r} contains a NUL byte, which a PostgreSQL string "
                "cannot hold"
            )
    doc = _clause(document)
    if not isinstance(doc, ColumnElement) or not isinstance(doc.type, (TSVECTOR, NullType)):
        shown = f"{doc.type!r} expression {doc}" if isinstance(doc, ColumnElement) else repr(doc)
        raise TypeError(
            "text= document must be a tsvector column or expression "
            f"(func.to_tsvector('english', Doc.body)), got {type(document).__name__} {shown}"
        )
    tsquery = func.websearch_to_tsquery(cast(literal(config), REGCONFIG), literal(query_text))
    return doc.op("@@", return_type=Boolean)(tsquery), func.ts_rank_cd(doc, tsquery, type_=Float)


def _weights(weights: Mapping[str, Any] | None, legs: Sequence[str]) -> dict[str, float]:
    if weights is None:
        return dict.fromkeys(legs, 1.0)
    if not isinstance(weights, Mapping):
        raise TypeError(f"weights must be a mapping {{leg: weight}}, got {weights!r}")
    if set(weights) != set(legs):
        raise ValueError(
            f"weights must name exactly the legs given ({', '.join(legs)}), got "
            + ", ".join(map(repr, weights))
        )
    checked = {leg: _non_negative(f"weights[{leg!r}]", weights[leg]) for leg in legs}
    if not any(checked.values()):
        raise ValueError("at least one weight must be positive")
    return checked


def _max_distances(bounds: Mapping[str, Any] | None, legs: Sequence[str]) -> dict[str, float]:
    if bounds is None:
        return {}
    if not isinstance(bounds, Mapping):
        raise TypeError(
            f"max_distance must map 'dense'/'sparse' to a number, got {type(bounds).__name__}"
        )
    out: dict[str, float] = {}
    for leg, bound in bounds.items():
        if leg not in legs or leg == "text":
            raise ValueError(
                f"max_distance: {leg!r} is not a vector leg given; expected one of "
                + ", ".join(repr(g) for g in legs if g != "text")
            )
        if isinstance(bound, bool) or not isinstance(bound, (int, float)):
            raise ValueError(f"max_distance[{leg!r}] must be a number, got {bound!r}")
        if not math.isfinite(bound):
            raise ValueError(f"max_distance[{leg!r}] must be finite, got {bound!r}")
        out[leg] = float(bound)
    return out


def hybrid_search(
    stmt: Any,
    key: Any,
    *,
    dense: tuple[Any, ...] | None = None,
    sparse: tuple[Any, ...] | None = None,
    text: tuple[Any, ...] | None = None,
    k: int = 10,
    leg_limit: int | None = None,
    fusion: str = "rrf",
    rrf_k: float = 60,
    weights: Mapping[str, float] | None = None,
    where: ColumnElement[bool] | Sequence[ColumnElement[bool]] | None = None,
    max_distance: Mapping[str, float] | None = None,
    name: str = "hybrid",
) -> Select[Any]:
    """Fuse a dense vector ranking with a sparse and/or a full-text ranking, in one select.

    ``stmt``: what to return, a ``Select`` (``select(Doc.id, Doc.title)``) or an entity,
    table or column (``Doc``); ``key``: the unique column the legs are joined on
    (``Doc.id``). The legs, at least two of them:

    * ``dense=(column, query[, metric])``: a ``Vector``/``HalfVec`` column and the query
      vector; ``metric`` defaults to the one declared on the column type;
    * ``sparse=(column, query[, metric])``: the same for a ``SparseVec`` column;
    * ``text=(document, query_text[, config])``: a ``tsvector`` column or expression
      (``func.to_tsvector("english", Doc.body)``, matching a GIN index), searched with
      ``document @@ websearch_to_tsquery(config, query_text)`` (``config`` defaults to
      ``'english'``; both are bound parameters) and ranked by ``ts_rank_cd``.

    Each leg keeps its ``leg_limit`` best rows (default ``max(4 * k, 40)``) among those
    passing ``where`` (one condition or a sequence, applied inside every leg, before its
    ``LIMIT``) and numbers them ``1, 2, ...`` (ties broken by ``key``). A vector leg's
    candidates are chosen by ``ORDER BY distance LIMIT leg_limit`` alone, the shape an
    HNSW or IVFFlat index serves (an extra sort key would put an Incremental Sort over
    the index scan and can make the planner prefer a sequential scan), so which of
    several rows at exactly the same distance as the last candidate is kept is the
    scan's choice. ``max_distance`` maps ``"dense"`` / ``"sparse"`` to a bound: a
    candidate must have ``distance < bound`` (``{"sparse": 0}`` with the inner product
    keeps only rows sharing a term with the query, whose ``<#>`` is negative). Returns::

        WITH dense_top AS (SELECT key, distance FROM ... WHERE column IS NOT NULL AND <where>
                           [AND distance < max_distance] ORDER BY distance LIMIT leg_limit),
             dense AS (SELECT key, row_number() OVER (ORDER BY distance, key) AS rank, ...),
             ...                                           -- sparse, text the same way
        SELECT <stmt columns>, fused.score, fused.dense_rank, fused.sparse_rank, ...
        FROM <stmt> JOIN (SELECT key, sum(part) AS score, max(<leg>_rank) ...
                          FROM (dense UNION ALL sparse ...) GROUP BY key) AS fused
             ON key = fused.key
        ORDER BY fused.score DESC, key LIMIT k

    with one ``<leg>_rank`` column per leg given (NULL where the row is not among that
    leg's candidates). ``fusion="rrf"`` (reciprocal rank fusion, Cormack, Clarke and
    Büttcher, "Reciprocal Rank Fusion outperforms Condorcet and individual Rank Learning
    Methods", SIGIR 2009): ``score = sum(weight / (rrf_k + rank))`` over the legs a row
    appears in, ``rrf_k = 60``. ``fusion="weighted"``: each leg's score is min-max
    normalised over its candidates (1 the best, 0 the worst; distances reversed, a leg
    whose candidates all score the same gives 1) and ``score = sum(weight * normalised)``.
    ``weights`` maps each leg given to a number >= 0 (default 1 each). A ``WHERE`` of
    ``stmt`` itself filters the fused rows afterwards; filters that should choose the
    candidates belong in ``where``. ``name`` prefixes the CTE names (``hybrid_dense_top``,
    ``hybrid_dense``, ...) and names the fused subquery.

    Raises, before anything is sent, :class:`ValueError` for fewer than two legs, a bad
    ``k``/``leg_limit``/``rrf_k``, an unknown ``fusion``, weights that are negative, all
    zero or not exactly the legs given, a ``max_distance`` for a leg not given (or the
    text leg) or not a finite number, a metric that is missing or unknown, and a NUL
    byte in the text query or config;
    :class:`TypeError` for a leg that is not a tuple of the right shape, a column of the
    wrong type, a ``None`` query, a text document that is not a tsvector, a query text
    that is not a ``str``, a ``where`` that is not SQL expressions (a ``str``, a bool), a
    ``key`` that is not a column or a ``name`` that is not a ``str``;
    :class:`~vecalchemy.exc.InvalidVectorError` for a query vector its column's type
    refuses (wrong dimensions, NaN, infinity: the type's own validation, run here);
    :class:`~vecalchemy.exc.InvalidIdentifierError` for a ``name`` whose CTE names
    PostgreSQL cannot hold (over 63 bytes, a NUL byte).

    An HNSW index scan returns at most ``hnsw.ef_search`` rows: keep ``ef_search >=
    leg_limit`` (:func:`~vecalchemy.search_settings`) and, with ``where``, consider
    ``hnsw_iterative_scan``; each leg's ranks are numbered after an exact re-sort of what
    its scan returned.
    """
    given = {leg: spec for leg, spec in zip(LEGS, (dense, sparse, text), strict=True)}
    legs = [leg for leg, spec in given.items() if spec is not None]
    if len(legs) < 2:
        raise ValueError(
            "hybrid_search needs at least two of dense=, sparse=, text=; got "
            + (", ".join(legs) or "none")
        )
    _positive_int("k", k)
    limit = _positive_int("leg_limit", leg_limit if leg_limit is not None else max(4 * k, 40))
    if fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}, got {fusion!r}")
    rrf = _non_negative("rrf_k", rrf_k)
    weight = _weights(weights, legs)
    if isinstance(where, str):
        raise TypeError("where takes SQL expressions (Doc.lang == 'en'), not a str")
    if where is None:
        filters: list[Any] = []
    elif isinstance(where, Sequence) and not isinstance(where, (bytes, bytearray)):
        filters = list(where)
    else:
        filters = [where]
    for condition in filters:
        if not isinstance(_clause(condition), ColumnElement):
            raise TypeError(
                "where takes SQL expressions (Doc.lang == 'en') or a sequence of them, got "
                f"{type(condition).__name__} {condition!r}"
            )
    bounds = _max_distances(max_distance, legs)
    key_col = _clause(key)
    if not isinstance(key_col, ColumnElement):
        raise TypeError(
            "key must be the unique column the legs are joined on (Doc.id), got "
            f"{type(key).__name__} {key!r}"
        )
    if not isinstance(name, str):
        raise TypeError(f"name must be a str (the CTE names' prefix), got {name!r}")
    for leg in legs:
        sqltext.check_identifier(f"{name}_{leg}_top", "hybrid_search CTE name")
    if isinstance(stmt, Select):
        base: Select[Any] = stmt
    else:
        try:
            base = select(stmt)
        except ArgumentError:
            raise TypeError(
                "stmt must be a select() or an entity, table or column (Doc), got "
                f"{type(stmt).__name__} {stmt!r}"
            ) from None

    one = literal(1.0, Float)
    absent = cast(null(), BigInteger)  # typed, so that UNION ALL matches it with a rank
    parts = []
    for leg in legs:
        spec = given[leg]
        if leg == "text":
            match, score = _text_rank(spec)
            top = (
                select(key_col.label("key"), score.label("score"))
                .where(match, *filters)
                .order_by(score.desc(), key_col)
                .limit(limit)
                .cte(f"{name}_{leg}_top")
            )
            order: tuple[Any, ...] = (top.c.score.desc(), top.c.key)
        else:
            sql_types = ("vector", "halfvec") if leg == "dense" else ("sparsevec",)
            col, distance = _vector_distance(leg, spec, sql_types)
            within = [distance < bounds[leg]] if leg in bounds else []
            top = (
                select(key_col.label("key"), distance.label("score"))
                .where(col.is_not(None), *filters, *within)
                .order_by(distance)
                .limit(limit)
                .cte(f"{name}_{leg}_top")
            )
            order = (top.c.score, top.c.key)
        value = cast(top.c.score, Float)
        low, high = func.min(value).over(), func.max(value).over()
        better = (value - low) if leg == "text" else (high - value)
        normalised = case((high == low, one), else_=better / (high - low))
        ranked = select(
            top.c.key,
            func.row_number().over(order_by=order).label("rank"),
            normalised.label("normalised"),
        ).cte(f"{name}_{leg}")
        w = literal(weight[leg], Float)
        part = (
            w / (literal(rrf, Float) + ranked.c.rank)
            if fusion == "rrf"
            else w * ranked.c.normalised
        )
        parts.append(
            select(
                ranked.c.key,
                part.label("part"),
                *(
                    (ranked.c.rank if other == leg else absent).label(f"{other}_rank")
                    for other in legs
                ),
            )
        )
    gathered = union_all(*parts).subquery(f"{name}_legs")
    fused = (
        select(
            gathered.c.key,
            func.sum(gathered.c.part).label("score"),
            *(func.max(gathered.c[f"{leg}_rank"]).label(f"{leg}_rank") for leg in legs),
        )
        .group_by(gathered.c.key)
        .subquery(name)
    )
    return (
        base.add_columns(fused.c.score, *(fused.c[f"{leg}_rank"] for leg in legs))
        .join(fused, key_col == fused.c.key)
        .order_by(fused.c.score.desc(), key_col)
        .limit(k)
    )
