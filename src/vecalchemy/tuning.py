"""The smallest ``ef_search`` (or ``probes``) that reaches a target recall.

:func:`tune_search_settings` measures recall@k against the exact answer, and the median
latency, of sample queries at a few values of one search setting, found by bisection
over an integer range, and returns the smallest value whose measured recall meets the
target, as a :class:`TunedSearchSetting` whose ``.settings`` go straight into
:func:`~vecalchemy.search_settings`.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from .connections import is_autocommit, sync_connection
from .explain import EXACT_SETTINGS, first_column, set_exact_settings
from .facts import SEARCH_SETTINGS, SEARCH_SETTINGS_BY_GUC
from .search import _check_bound_vectors, _positive_int, search_settings

__all__ = ["TuningPoint", "TunedSearchSetting", "tune_search_settings"]

#: the settings whose larger values search more of the index, for better recall
TUNABLE = ("ef_search", "probes")
#: a recall this close below the target meets it (a mean of fractions is not exact)
ROUNDING = 1e-9


class TuningPoint(NamedTuple):
    """One measured value: mean recall@k over the sample queries (in [0, 1]) and the
    median latency of one ANN query in milliseconds."""

    value: int
    recall: float
    latency_ms: float


@dataclass(frozen=True)
class TunedSearchSetting:
    """What :func:`tune_search_settings` found.

    ``setting`` is the field name (``"ef_search"`` or ``"probes"``); ``value`` the
    smallest value whose measured recall met ``target_recall`` (``high`` when none did,
    then ``met`` is false); ``recall`` and ``latency_ms`` its re-checked measurement;
    ``measured`` every :class:`TuningPoint`, in the order measured (the re-check last).
    """

    setting: str
    value: int
    recall: float
    latency_ms: float
    target_recall: float
    met: bool
    measured: tuple[TuningPoint, ...]

    @property
    def settings(self) -> dict[str, int]:
        """``{setting: value}``, for ``search_settings(conn, **result.settings)``."""
        return {self.setting: self.value}


def _setting_name(setting: Any) -> str:
    name = SEARCH_SETTINGS_BY_GUC.get(setting, setting) if isinstance(setting, str) else None
    if name not in TUNABLE:
        raise ValueError(
            f"setting must be one of {', '.join(TUNABLE)} (or hnsw.ef_search, "
            f"ivfflat.probes), got {setting!r}"
        )
    assert name is not None
    return name


def _bounds(name: str, low: Any, high: Any) -> tuple[int, int]:
    guc = SEARCH_SETTINGS[name]
    assert guc.low is not None and guc.high is not None
    g_low, g_high = int(guc.low), int(guc.high)
    lo = g_low if low is None else low
    hi = g_high if high is None else high
    for bound, value in (("low", lo), ("high", hi)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{bound} must be an int, got {value!r}")
        if not g_low <= value <= g_high:
            raise ValueError(
                f"{bound}={value} is outside the range of {guc.name} ({g_low} .. {g_high})"
            )
    if lo > hi:
        raise ValueError(f"low ({lo}) must not exceed high ({hi})")
    return lo, hi


def _target(value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not 0 < value <= 1
    ):
        raise ValueError(f"target_recall must be a number in (0, 1], got {value!r}")
    return float(value)


def _exact(conn: Connection, stmts: list[Select[Any]], k: int) -> list[set[Any]]:
    """The exact top-k keys of each statement, planned with index scans off (the
    settings :func:`~vecalchemy.measure_recall` uses), then the settings restored."""
    names = list(EXACT_SETTINGS)
    row = conn.execute(select(*(func.current_setting(name) for name in names))).one()
    previous = dict(zip(names, (str(v) for v in row), strict=True))
    set_exact_settings(conn, EXACT_SETTINGS)
    try:
        return [set(first_column(conn.execute(stmt), k)) for stmt in stmts]
    finally:
        set_exact_settings(conn, previous)


def _measure(
    conn: Connection,
    name: str,
    value: int,
    stmts: list[Select[Any]],
    exact: list[set[Any]],
    k: int,
    repeats: int,
) -> TuningPoint:
    recalls: list[float] = []
    seconds: list[float] = []
    with search_settings(conn, {name: value}):
        for stmt, truth in zip(stmts, exact, strict=True):
            found: list[Any] = []
            for run in range(repeats):
                start = time.perf_counter()
                rows = conn.execute(stmt).all()
                seconds.append(time.perf_counter() - start)
                if run == 0:
                    found = first_column(rows, k)
            recalls.append(len(set(found) & truth) / len(truth) if truth else 1.0)
    return TuningPoint(value, statistics.fmean(recalls), 1000 * statistics.median(seconds))


def tune_search_settings(
    bind: Connection | Session,
    /,
    query_for: Callable[[Any], Select[Any]],
    queries: Iterable[Any],
    *,
    target_recall: float = 0.95,
    k: int = 10,
    setting: str = "ef_search",
    low: int | None = None,
    high: int | None = None,
    repeats: int = 1,
) -> TunedSearchSetting:
    """The smallest value of ``setting`` whose recall@k on ``queries`` meets the target.

    ``query_for(q)`` builds the top-k select for one query vector, the shape an index
    serves, primary key first: ``lambda q: select(Doc.id).order_by(
    Doc.embedding.cosine_distance(q)).limit(10)``. ``queries`` are sample query vectors
    (an ``(n, dim)`` array or any iterable of vectors, ``n >= 1``; a few dozen held-out
    or logged queries). ``setting`` is ``"ef_search"`` (HNSW) or ``"probes"`` (IVFFlat),
    also spelt ``hnsw.ef_search`` / ``ivfflat.probes``; ``low``/``high`` bound the
    search (default: the setting's whole range, 1..1000 and 1..32768; for IVFFlat pass
    ``high=lists``).

    The exact top-k of each query is computed once, as :func:`~vecalchemy.measure_recall`
    does (index scans off, a plan made afresh). For a value, every query runs
    ``repeats`` times: recall is the mean of ``|ANN top-k ∩ exact top-k| / |exact
    top-k|`` over the queries (first run, first selected column), latency the median
    over all runs, in milliseconds (``time.perf_counter``, round trip included).

    Recall is assumed non-decreasing in ``ef_search`` / ``probes`` (true in
    expectation: a larger candidate list or more lists scanned), so the values are
    bisected, not swept: ``high`` first (if it misses the target, the result is
    ``high`` with ``met=False``), then ``low``, then ``ceil(log2(high - low))`` values
    at most. "Meets" allows :data:`ROUNDING` (1e-9) for the rounding of the mean. The
    value returned was measured to meet the target and the value below it
    (when at least ``low``) to miss it. Guard against noise: the found value is measured
    again, after the others (warm caches: its latency is this second one); if it misses
    the target then (the index changed meanwhile, or a non-monotone dip), the bisection
    continues above it. Without a re-check failure, at most ``ceil(log2(high - low)) +
    3`` values are measured.

    Runs inside the current transaction of ``bind`` (a sync Connection or Session,
    begun if none is) with ``SET LOCAL`` only: every setting is restored before it
    returns, session settings are never changed. Async: ``await
    conn.run_sync(tune_search_settings, query_for, queries, ...)``.

    Raises :class:`ValueError` before anything is sent for a target outside (0, 1], a
    setting other than these two, bounds outside the setting's range or ``low >
    high``, ``k`` or ``repeats`` below 1, no queries, a number where a query vector
    should be (one vector passed as ``queries``: pass ``[q]``), or an AUTOCOMMIT
    connection; :class:`~vecalchemy.exc.InvalidVectorError` for a query vector its
    column's type refuses (dimensions, NaN, infinity); :class:`TypeError` when
    ``query_for`` is not callable or does not return a select, or ``queries`` is not an
    iterable of vectors. Database errors propagate.
    """
    target = _target(target_recall)
    name = _setting_name(setting)
    lo, hi = _bounds(name, low, high)
    _positive_int("k", k)
    _positive_int("repeats", repeats)
    if not callable(query_for):
        raise TypeError(
            "query_for must be a function of one query vector returning the top-k select "
            f"(lambda q: select(Doc.id).order_by(...).limit(k)), got {type(query_for).__name__}"
        )
    if isinstance(queries, (str, bytes)) or not hasattr(queries, "__iter__"):
        raise TypeError(
            "queries must be an (n, dim) array or an iterable of query vectors, got "
            f"{type(queries).__name__} {queries!r}"
        )
    if getattr(queries, "ndim", 2) != 2:
        raise ValueError(
            f"queries must be an (n, dim) array of query vectors, got shape "
            f"{getattr(queries, 'shape', None)}"
        )
    vectors = list(queries)
    if not vectors:
        raise ValueError("queries must hold at least one query vector")
    for i, q in enumerate(vectors):
        if q is None or isinstance(q, (bool, int, float, complex, np.number)):
            raise ValueError(
                f"queries must hold query vectors, got {type(q).__name__} {q!r} as query {i} "
                "(for one vector q, pass [q])"
            )
    stmts = [query_for(q) for q in vectors]
    for stmt in stmts:
        if not isinstance(stmt, Select):
            raise TypeError(f"query_for must return a Select, got {type(stmt).__name__}")
        _check_bound_vectors(stmt)  # each query vector, before anything is sent
    conn = sync_connection(bind)
    if is_autocommit(conn):
        raise ValueError(
            "tune_search_settings needs a transaction: it applies settings with SET LOCAL "
            "and turns index scans off for the exact answers; this connection is AUTOCOMMIT"
        )

    exact = _exact(conn, stmts, k)
    measured: list[TuningPoint] = []

    def measure(value: int) -> TuningPoint:
        point = _measure(conn, name, value, stmts, exact, k, repeats)
        measured.append(point)
        return point

    top = measure(hi)
    if top.recall < target - ROUNDING:
        return TunedSearchSetting(
            name, hi, top.recall, top.latency_ms, target, False, tuple(measured)
        )
    if lo < hi and measure(lo).recall >= target - ROUNDING:
        hi = lo
    # invariant: hi meets the target; lo misses it (or lo == hi)
    while True:
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if measure(mid).recall >= target - ROUNDING:
                hi = mid
            else:
                lo = mid
        check = measure(hi)
        if check.recall >= target - ROUNDING or hi == top.value:
            break
        lo, hi = hi, top.value
    return TunedSearchSetting(
        name,
        hi,
        check.recall,
        check.latency_ms,
        target,
        check.recall >= target - ROUNDING,
        tuple(measured),
    )
