"""Filtered top-k search that returns k rows, or says why it cannot.

An approximate index filters *after* its scan (pgvector README "Filtering"): with HNSW,
``WHERE category = 3 ORDER BY embedding <=> q LIMIT 10`` takes ``hnsw.ef_search`` (40)
candidates and then applies the filter, so a 1 % filter returns 0-1 rows instead of 10.
pgvector 0.8's iterative index scans go on scanning until ``k`` rows pass the filter or a
limit is reached (``hnsw.max_scan_tuples``, ``hnsw.scan_mem_multiplier``,
``ivfflat.max_probes``). :func:`filtered_search` runs the filtered query with them and:

1. chooses exact search (no vector index, the filter's own B-tree allowed) when the
   planner estimates that the filter matches fewer than ``exact_below`` rows;
2. otherwise runs an iterative index scan (HNSW ``strict_order`` by default,
   ``relaxed_order`` with :func:`~vecalchemy.search.iterative_search`'s re-sorting CTE when
   asked; IVFFlat has only ``relaxed_order``) and, while fewer than ``k`` rows come back,
   raises ``ef_search`` / ``max_scan_tuples`` / ``scan_mem_multiplier`` (HNSW) or
   ``probes`` / ``max_probes`` (IVFFlat) step by step up to caller-given bounds;
3. when the bounds are exhausted, or the next step would scan more tuples than the
   filter is estimated to match, falls back to exact search (if allowed), or reports
   that it could not reach ``k`` and why.

Every setting is applied with ``set_config(name, value, true)`` (``SET LOCAL``) through
:mod:`vecalchemy.search` in the caller's transaction and set back to its previous value
before returning. The result, a :class:`FilteredResult`, says what produced the rows.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import Select, func, literal, select
from sqlalchemy.engine import Connection, Row
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from . import _private
from .checks import _distance as _distance_of
from .checks import user_stacklevel
from .connections import sync_connection
from .exc import FilteredSearchWarning, SearchSettingError, VectorIndexWarning
from .explain import Explain, explain_index_usage
from .facts import SEARCH_SETTINGS
from .plan_guard import _GUARDING_KEY
from .search import (
    SearchSettings,
    _apply,
    _check_bound_vectors,
    _current,
    _positive_int,
    _refuse_autocommit,
    _settings,
    iterative_search,
)

if TYPE_CHECKING:  # sqlalchemy.ext.asyncio needs greenlet only when used
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

__all__ = [
    "FilteredResult",
    "FilteredSearchWarning",
    "SearchStep",
    "filtered_search",
    "filtered_search_async",
    "DEFAULT_LIMITS",
    "EXACT_BELOW",
    "GROWTH",
]

Strategy = Literal["exact", "iterative_scan", "exact_fallback", "no_vector_index"]
Order = Literal["strict_order", "relaxed_order"]
ORDERS = ("strict_order", "relaxed_order")

#: the settings escalation raises, per index method
_HNSW = ("ef_search", "max_scan_tuples", "scan_mem_multiplier")
_IVFFLAT = ("probes", "max_probes")
_ESCALATED = _HNSW + _IVFFLAT
#: every GUC the search touches (and sets back afterwards)
_TOUCHED = {
    name: SEARCH_SETTINGS[name].name
    for name in (*_ESCALATED, "hnsw_iterative_scan", "ivfflat_iterative_scan")
}

#: escalation bounds when the caller gives none: ef_search 400 (10 x pgvector's default
#: 40), max_scan_tuples 200 000 (10 x its default 20 000), scan_mem_multiplier 8 (the
#: iterative scan also stops at work_mem x this), probes 64, max_probes 32 768 (all lists)
DEFAULT_LIMITS = SearchSettings(
    ef_search=400, max_scan_tuples=200_000, scan_mem_multiplier=8.0, probes=64, max_probes=32768
)
#: factor each escalation step multiplies a setting by (capped at its bound)
GROWTH: Mapping[str, int] = {
    "ef_search": 2,
    "max_scan_tuples": 4,
    "scan_mem_multiplier": 4,
    "probes": 2,
    "max_probes": 4,
}
#: default ``exact_below``: below this many matching rows (planner estimate) exact search
#: is chosen. Before it gives up an HNSW iterative scan visits up to hnsw.max_scan_tuples
#: (20 000 by default) tuples, each a distance plus graph hops and random heap reads; an
#: exact search over n filtered rows computes n distances, reading them through the
#: filter's B-tree. Half the default scan budget keeps exact the cheaper of the two, and
#: it is always complete. (Without an index on the filter, exact search reads the table.)
EXACT_BELOW = 10_000


@dataclass(frozen=True)
class SearchStep:
    """One query :func:`filtered_search` ran: its strategy, the pgvector settings in
    effect (``{GUC name: value}``; empty for exact search) and the rows it returned."""

    strategy: Strategy
    settings: Mapping[str, str]
    rows: int


@dataclass(frozen=True)
class FilteredResult:
    """What :func:`filtered_search` returned and how.

    ``rows``: at most ``k`` rows of the statement's columns plus ``distance``, nearest
    first. ``complete``: ``k`` rows came back, or every row matching the filter did (the
    filter matches fewer than ``k``); false when rows that match were not reached. It
    says nothing of recall: rows from an index scan are approximate nearest neighbours.
    ``strategy``: ``"exact"`` (chosen from the estimate), ``"iterative_scan"``,
    ``"exact_fallback"`` (after escalation), ``"no_vector_index"`` (the planner's own plan
    scans no vector index, so it is exact). ``index``/``method``: the vector index the
    plan scanned (``None`` when none was tried); ``order``: the iterative scan order used.
    ``estimated_rows``: the planner's estimate of the rows matching the filter;
    ``steps``: every query run; ``reason``: one human-readable paragraph.
    """

    rows: Sequence[Row[Any]]
    k: int
    complete: bool
    strategy: Strategy
    reason: str
    estimated_rows: int
    steps: tuple[SearchStep, ...]
    index: str | None = None
    method: str | None = None
    order: Order | None = None

    def __len__(self) -> int:
        return len(self.rows)


# --- argument checks ------------------------------------------------------------------------


def _escalation_settings(what: str, value: Any) -> SearchSettings:
    if value is not None and not isinstance(value, (SearchSettings, Mapping)):
        raise SearchSettingError(
            f"{what} must be a SearchSettings or a mapping {{setting: value}} "
            f"({{'ef_search': 100}}), got {type(value).__name__} {value!r}"
        )
    checked = _settings(value, {}) if value is not None else SearchSettings()
    extra = [
        f.name
        for f in fields(checked)
        if f.name not in _ESCALATED and getattr(checked, f.name) is not None
    ]
    if extra:
        raise SearchSettingError(
            f"{what} takes {', '.join(_ESCALATED)}; got {', '.join(extra)} (the iterative "
            "scan mode is chosen by order=)"
        )
    return checked


def _limits(start: SearchSettings, limits: Any) -> SearchSettings:
    given = _escalation_settings("limits", limits)
    merged: dict[str, Any] = {}
    for name in _ESCALATED:
        bound = getattr(given, name)
        first = getattr(start, name)
        if bound is None:  # a default bound never stops an explicit start
            bound = getattr(DEFAULT_LIMITS, name)
            if first is not None and first > bound:
                bound = first
        elif first is not None and first > bound:
            raise SearchSettingError(
                f"settings {name}={first!r} is above limits {name}={bound!r}; the bound "
                "must be at least the starting value"
            )
        merged[name] = bound
    return SearchSettings(**merged)


def _statement(stmt: Any) -> Select[Any]:
    if not isinstance(stmt, Select):
        raise TypeError(
            f"stmt must be a select() with the filters (select(Doc.id).where(...)), got "
            f"{type(stmt).__name__}"
        )
    if (
        _private.order_by_clauses(stmt)
        or _private.limit_clause(stmt) is not None
        or _private.offset_clause(stmt) is not None
        or getattr(stmt, "_fetch_clause", None) is not None
    ):
        raise ValueError(
            "stmt must have no ORDER BY, LIMIT or OFFSET (nor FETCH FIRST): filtered_search "
            "orders by the distance and limits to k itself"
        )
    shaped = [
        what
        for what, present in (
            ("DISTINCT", bool(getattr(stmt, "_distinct", False))),
            ("GROUP BY", bool(getattr(stmt, "_group_by_clauses", ()))),
            ("HAVING", bool(getattr(stmt, "_having_criteria", ()))),
        )
        if present
    ]
    if shaped:
        raise ValueError(
            f"stmt must select rows, not groups: it has {', '.join(shaped)}, which the "
            "distance column added to it cannot follow (PostgreSQL: ORDER BY expressions "
            "must appear in the select list / be grouped); filter with WHERE, or search a "
            "subquery of it"
        )
    return stmt


def _distance(distance: Any) -> ColumnElement[Any]:
    expr = distance.__clause_element__() if hasattr(distance, "__clause_element__") else distance
    if not isinstance(expr, ColumnElement) or _distance_of(expr) is None:
        shown = f" {expr}" if isinstance(expr, ColumnElement) else ""
        raise TypeError(
            "distance must be a SQL distance expression, a pgvector distance operator "
            "(<->, <#>, <=>, <+>, <~>, <%>) or function of a column and the query "
            f"(Doc.embedding.cosine_distance(q)), got {type(distance).__name__}{shown}"
        )
    _check_bound_vectors(expr)  # the query vector, before the first EXPLAIN is sent
    return expr


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


# --- query shapes ---------------------------------------------------------------------------


def _ann(stmt: Select[Any], distance: ColumnElement[Any], k: int) -> Select[Any]:
    labelled = distance.label("distance")
    return stmt.add_columns(labelled).order_by(labelled).limit(k)


def _exact(stmt: Select[Any], distance: ColumnElement[Any], k: int) -> Select[Any]:
    """``ORDER BY distance + 0``: no vector index matches the expression, so the planner
    scans the rows the filter selects (its B-tree stays usable, which
    ``SET LOCAL enable_indexscan = off`` would forbid) and sorts them: exact."""
    return stmt.add_columns(distance.label("distance")).order_by(distance + 0).limit(k)


def _estimate(conn: Connection, stmt: Select[Any]) -> int:
    raw = conn.execute(Explain(stmt)).scalar_one()
    doc = json.loads(raw) if isinstance(raw, str) else raw
    return int(doc[0]["Plan"]["Plan Rows"])


def _matching_at_least(conn: Connection, stmt: Select[Any], k: int) -> int:
    """How many rows match the filter, counted up to ``k`` (stops at the k-th)."""
    probe = stmt.with_only_columns(literal(1), maintain_column_froms=True).limit(k)
    return int(conn.execute(select(func.count()).select_from(probe.subquery())).scalar_one())


# --- the search -----------------------------------------------------------------------------


def _schedule(start: Mapping[str, Any], bounds: SearchSettings, names: tuple[str, ...]) -> Any:
    """The escalation steps: ``{field: value}`` for ``names``, each step growing every
    setting by :data:`GROWTH` up to its bound (never below its start), until all are at
    their bounds."""
    step = 0
    previous: dict[str, Any] | None = None
    while True:
        values: dict[str, Any] = {}
        for name in names:
            first, bound = start[name], getattr(bounds, name)
            grown = first * GROWTH[name] ** step
            values[name] = max(first, min(grown, bound))
        if values == previous:
            return
        yield values
        previous = values
        step += 1


def _fmt(settings: Mapping[str, Any]) -> str:
    return ", ".join(f"{name}={value}" for name, value in settings.items())


def filtered_search(
    bind: Connection | Session,
    /,
    stmt: Select[Any],
    distance: ColumnElement[Any],
    k: int,
    *,
    order: Order = "strict_order",
    settings: SearchSettings | Mapping[str, Any] | None = None,
    escalate: bool = True,
    limits: SearchSettings | Mapping[str, Any] | None = None,
    exact_below: int | None = EXACT_BELOW,
    exact_fallback: bool = True,
    candidates: int | None = None,
    warn: bool = False,
) -> FilteredResult:
    """The ``k`` rows of ``stmt`` nearest by ``distance``, through pgvector's iterative
    index scans, escalation and exact fallback, with a report of how.

    ``bind``: a sync Connection or Session in a transaction (begun if none is), any driver;
    not AUTOCOMMIT. ``stmt``: ``select(...)`` of the wanted columns with the filters and
    no ORDER BY/LIMIT/OFFSET (``select(Doc.id).where(Doc.category == 3)``). ``distance``:
    the distance expression an index serves (``Doc.embedding.cosine_distance(q)``). ``k``:
    rows wanted (positive int). Returns a :class:`FilteredResult` whose ``rows`` are at
    most ``k`` rows of ``stmt``'s columns plus ``distance`` (float), nearest first.

    ``order``: HNSW iterative scan order, ``"strict_order"`` (default; the index returns
    rows in distance order) or ``"relaxed_order"`` (with
    :func:`~vecalchemy.search.iterative_search`'s materialized CTE re-sorting them);
    IVFFlat has only ``relaxed_order`` (pgvector src/ivfflat.c), used whatever is asked.
    Relaxed order "provides better recall" (pgvector README, Iterative Index Scans): with
    selective filters on clustered data strict order returned ``k`` rows of lower
    recall, ``relaxed_order`` with ``candidates=2 * k`` the highest (measured in
    tests/benchmarks/bench_filtered.py).
    ``settings``: starting ``ef_search``, ``max_scan_tuples``, ``scan_mem_multiplier``,
    ``probes``, ``max_probes`` (unset ones start at the values in effect).
    ``escalate``: while fewer than ``k`` rows come back, multiply them by :data:`GROWTH`
    per step up to ``limits`` (default :data:`DEFAULT_LIMITS`; a default bound below an
    explicit start rises to it), unless a bounded count shows every matching row is back,
    or (with ``exact_fallback``) the next step would scan more tuples
    (``max_scan_tuples``) than the planner estimates match the filter: exact search, one
    distance per matching row, is cheaper than an HNSW tuple (distance, graph hops,
    random heap read) each.
    ``exact_below``: when the planner estimates (``EXPLAIN (FORMAT JSON)`` of ``stmt``,
    Plan Rows) fewer matching rows than this, run exact search first (default
    :data:`EXACT_BELOW`; ``None``: never). ``exact_fallback``: run exact search when the
    bounds are exhausted short of ``k``. ``candidates``: with ``relaxed_order``, the rows
    the iterative scan must find (the CTE's LIMIT; default ``k``, at least ``k``) before
    the ``k`` nearest of them are kept. ``warn``: warn (:class:`FilteredSearchWarning`)
    when the result is not complete.

    Exact search orders by ``distance + 0``, which no vector index serves, so the filter's
    B-tree (if any) still selects the rows; ``SET LOCAL enable_indexscan = off`` would
    forbid a plain B-tree index scan too. It runs past the query checks and a plan guard
    (:func:`~vecalchemy.plan_guard.install_plan_guard`), being exact on purpose. With the
    ``relaxed_order`` CTE the rows are the CTE's columns: select columns, not ORM entities,
    to get the same rows from every strategy. Statements: one EXPLAIN of ``stmt``; on the
    index path one read of the settings in effect, one ``set_config`` and one query per
    step, one EXPLAIN of the ANN statement, one ``set_config`` setting them back (on an
    error they end with the transaction).

    Raises, before anything is sent: :class:`TypeError` for a wrong ``bind``, ``stmt``,
    ``distance`` (anything but a pgvector distance operator or function) or flag;
    :class:`~vecalchemy.exc.InvalidVectorError` for a query vector in ``distance``
    that its column's type refuses (dimensions, NaN, infinity); :class:`ValueError` for
    a bad ``k`` or ``candidates`` (a positive int, at most a
    bigint: PostgreSQL's LIMIT), ``exact_below``, ``order`` or a ``stmt`` with ORDER
    BY/LIMIT/FETCH/OFFSET, DISTINCT, GROUP BY or HAVING;
    :class:`~vecalchemy.exc.SearchSettingError` for ``settings`` / ``limits`` that are
    not a SearchSettings or a mapping, a setting out of pgvector's range (src/hnsw.c
    ``HnswInit``, src/ivfflat.c ``IvfflatInit``), a bound below its start, or an
    AUTOCOMMIT connection.
    """
    query = _statement(stmt)
    dist = _distance(distance)
    _positive_int("k", k)
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
    start = _escalation_settings("settings", settings)
    bounds = _limits(start, limits)
    if exact_below is not None and (
        isinstance(exact_below, bool) or not isinstance(exact_below, int) or exact_below < 0
    ):
        raise ValueError(f"exact_below must be an int >= 0 or None, got {exact_below!r}")
    for name, value in (("escalate", escalate), ("exact_fallback", exact_fallback)):
        _flag(name, value)
    _flag("warn", warn)
    wanted = k if candidates is None else _positive_int("candidates", candidates)
    if wanted < k:
        raise ValueError(f"candidates must be at least k ({k}), got {candidates!r}")
    options = _Options(order, start, bounds, escalate, exact_below, exact_fallback, wanted)
    conn = sync_connection(bind)
    _refuse_autocommit(conn)

    result = _search(conn, query, dist, k, options)
    if warn and not result.complete:
        warnings.warn(result.reason, FilteredSearchWarning, stacklevel=user_stacklevel())
    return result


@contextmanager
def _without_index_checks(conn: Connection) -> Iterator[None]:
    """Run a deliberately exact statement: no :class:`VectorIndexWarning` from the query
    checks (it orders by ``distance + 0`` on purpose) and no plan guard EXPLAIN (whose
    ``action="raise"`` would refuse it)."""
    info = conn.info
    guarding = info.get(_GUARDING_KEY)
    info[_GUARDING_KEY] = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", VectorIndexWarning)
            yield
    finally:
        if guarding is None:
            del info[_GUARDING_KEY]


def _run_exact(
    conn: Connection, stmt: Select[Any], distance: ColumnElement[Any], k: int
) -> Sequence[Row[Any]]:
    with _without_index_checks(conn):
        return conn.execute(_exact(stmt, distance, k)).all()


@dataclass(frozen=True)
class _Options:
    """The checked keyword arguments of :func:`filtered_search`."""

    order: Order
    start: SearchSettings
    bounds: SearchSettings
    escalate: bool
    exact_below: int | None
    exact_fallback: bool
    candidates: int


def _search(
    conn: Connection,
    stmt: Select[Any],
    distance: ColumnElement[Any],
    k: int,
    options: _Options,
) -> FilteredResult:
    exact_below = options.exact_below
    estimate = _estimate(conn, stmt)
    if exact_below is not None and estimate < exact_below:
        rows = _run_exact(conn, stmt, distance, k)
        why = (
            f"the planner estimates {estimate} rows match the filter, fewer than "
            f"exact_below={exact_below}: exact search over the filtered rows"
        )
        if len(rows) < k:
            why += f"; the filter matches only {len(rows)} rows, all returned"
        return FilteredResult(
            rows, k, True, "exact", why, estimate, (SearchStep("exact", {}, len(rows)),)
        )

    names = list(_TOUCHED.values())
    previous = _current(conn, names)
    in_effect = {
        name: (float if SEARCH_SETTINGS[name].kind is float else int)(previous[guc])
        for name, guc in _TOUCHED.items()
        if name in _ESCALATED
    }
    first = {name: getattr(options.start, name) or in_effect[name] for name in _ESCALATED}
    # on an error the transaction (usually aborted by it) takes the settings with it
    result = _iterate(conn, stmt, distance, k, options, first, estimate)
    _apply(conn, previous)
    return result


def _iterate(
    conn: Connection,
    stmt: Select[Any],
    distance: ColumnElement[Any],
    k: int,
    options: _Options,
    first: Mapping[str, Any],
    estimate: int,
) -> FilteredResult:
    order, escalate = options.order, options.escalate
    initial = SearchSettings(
        hnsw_iterative_scan=order, ivfflat_iterative_scan="relaxed_order", **first
    )
    _apply(conn, initial.gucs())
    ann = _ann(stmt, distance, k)
    usage = explain_index_usage(conn, ann)
    if not usage.uses_vector_index:
        with _without_index_checks(conn):
            planned = conn.execute(ann).all()
        why = (
            "the planner's plan scans no vector index (" + "; ".join(usage.plan) + "), so "
            f"its answer is exact: {len(planned)} rows"
        )
        if len(planned) < k:
            why += f"; the filter matches only {len(planned)} rows, all returned"
        step = SearchStep("no_vector_index", {}, len(planned))
        return FilteredResult(planned, k, True, "no_vector_index", why, estimate, (step,))
    index, method = usage.vector_indexes[0]
    names = _HNSW if method == "hnsw" else _IVFFLAT
    used: Order = order if method == "hnsw" else "relaxed_order"
    shape = (
        iterative_search(stmt, distance, options.candidates).limit(k)
        if used == "relaxed_order"
        else ann
    )
    scan_guc = SEARCH_SETTINGS[
        "hnsw_iterative_scan" if method == "hnsw" else "ivfflat_iterative_scan"
    ]
    steps: list[SearchStep] = []
    rows: Sequence[Row[Any]] = ()
    matching: int | None = None  # rows matching the filter, counted up to k
    cause = "bounds exhausted" if escalate else "escalate=False"
    schedule = list(_schedule(first, options.bounds, names))
    for number, values in enumerate(schedule):
        if number:
            _apply(conn, SearchSettings(**values).gucs())
        rows = conn.execute(shape).all()
        gucs = {
            scan_guc.name: used,
            **{SEARCH_SETTINGS[n].name: str(v) for n, v in values.items()},
        }
        steps.append(SearchStep("iterative_scan", gucs, len(rows)))
        if len(rows) >= k or not escalate:
            break
        if matching is None:  # once: a bounded count, cheaper than scanning again
            matching = _matching_at_least(conn, stmt, k)
        if matching <= len(rows):
            break  # every matching row is back; a wider scan cannot add one
        following = schedule[number + 1] if number + 1 < len(schedule) else None
        if (
            options.exact_fallback
            and following is not None
            and "max_scan_tuples" in following
            and following["max_scan_tuples"] > estimate
        ):
            # each HNSW tuple costs a distance, graph hops and a random heap read; exact
            # search costs a distance per matching row
            cause = (
                f"the next step would scan up to {following['max_scan_tuples']} tuples, more "
                f"than the {estimate} rows the planner estimates match: exact search is cheaper"
            )
            break
    what = f"{method} iterative scan ({used}) on {index}"
    settled = f"{len(steps)} step(s), last {_fmt(steps[-1].settings)}"

    def done(
        found: Sequence[Row[Any]], strategy: Strategy, why: str, complete: bool = True
    ) -> FilteredResult:
        return FilteredResult(
            found, k, complete, strategy, why, estimate, tuple(steps), index, method, used
        )

    if len(rows) >= k:
        return done(rows, "iterative_scan", f"{what} returned {k} rows in {settled}")
    returned = f"{what} returned {len(rows)} of {k} rows"
    if matching is not None and matching <= len(rows):
        why = f"{returned} ({settled}): the filter matches only {matching} rows, all returned"
        return done(rows, "iterative_scan", why)
    stopped = f"{returned} ({settled}; {cause})"
    if options.exact_fallback:
        exact = _run_exact(conn, stmt, distance, k)
        steps.append(SearchStep("exact_fallback", {}, len(exact)))
        why = f"{stopped}; exact search over the filtered rows returned {len(exact)}"
        if len(exact) < k:
            why += f": the filter matches only {len(exact)} rows, all returned"
        return done(exact, "exact_fallback", why)
    if matching is None:
        matching = _matching_at_least(conn, stmt, k)
    if matching <= len(rows):
        why = f"{returned} ({settled}): the filter matches only {matching} rows, all returned"
        return done(rows, "iterative_scan", why)
    limit = (
        "hnsw.max_scan_tuples, or work_mem x hnsw.scan_mem_multiplier"
        if method == "hnsw"
        else "ivfflat.max_probes"
    )
    why = (
        f"{stopped}, but the filter matches at least {matching} rows: the scan reached its "
        f"limit ({limit}) first. The filter is too selective for the scan (planner "
        f"estimate: {estimate} matching rows) or its rows lie far from the query; raise "
        "limits=, lower exact_below, or allow exact_fallback. Cannot return k rows within "
        "these bounds"
    )
    return done(rows, "iterative_scan", why, complete=False)


async def filtered_search_async(
    bind: AsyncConnection | AsyncSession,
    /,
    stmt: Select[Any],
    distance: ColumnElement[Any],
    k: int,
    *,
    order: Order = "strict_order",
    settings: SearchSettings | Mapping[str, Any] | None = None,
    escalate: bool = True,
    limits: SearchSettings | Mapping[str, Any] | None = None,
    exact_below: int | None = EXACT_BELOW,
    exact_fallback: bool = True,
    candidates: int | None = None,
    warn: bool = False,
) -> FilteredResult:
    """:func:`filtered_search` on an AsyncConnection or AsyncSession (psycopg async,
    asyncpg), run through ``run_sync``: same arguments, same checks, same result."""
    if isinstance(bind, (Connection, Session)) or not hasattr(bind, "run_sync"):
        raise TypeError(
            f"expected an AsyncConnection or AsyncSession, got {type(bind).__name__} "
            "(use filtered_search for a Connection or Session)"
        )
    kw: dict[str, Any] = {
        "order": order,
        "settings": settings,
        "escalate": escalate,
        "limits": limits,
        "exact_below": exact_below,
        "exact_fallback": exact_fallback,
        "candidates": candidates,
        "warn": warn,
    }
    return await bind.run_sync(lambda sync: filtered_search(sync, stmt, distance, k, **kw))
