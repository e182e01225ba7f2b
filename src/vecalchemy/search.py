"""Search settings for pgvector's indexes, and two query shapes pgvector documents.

``with search_settings(session, ef_search=100, hnsw_iterative_scan="relaxed_order"):``
applies ``hnsw.ef_search`` ... with ``set_config(name, value, true)`` (= ``SET LOCAL``;
on a Citus coordinator as ``SET LOCAL`` statements, which Citus propagates to the shards,
see :func:`vecalchemy.connections.set_local`): visible to the rest of the current
transaction only, restored on leaving the block, gone at commit/rollback. Every value is
checked against the type and range pgvector declares (pgvector src/hnsw.c ``HnswInit``,
src/ivfflat.c ``IvfflatInit``) before anything is sent, and is sent as a bound parameter
(on Citus, as a checked, quoted literal). The vector library is loaded in the backend
first: before it is loaded, ``hnsw.*`` settings are mere placeholders that
silently revert to the default when it loads.

The same settings as an execution option: ``install_search_options(engine)`` once, then
``stmt.execution_options(vector_search={"ef_search": 100})``.

One planner setting rides along: ``prefer_index=True`` (``SET LOCAL enable_seqscan =
off``) for the statements where the planner prefers a sequential scan of a table whose
vectors are stored out of line (TOAST) to its HNSW/IVFFlat index (pgvector issues #784,
#821, #835).

Query shapes (pgvector README): :func:`iterative_search` (a materialized CTE, ordered by
``distance + 0``, for filtered searches with iterative index scans) and
:func:`binary_quantized_search` (ANN over ``binary_quantize``, exact re-rank); for rows
holding several vectors (``ARRAY(Vector(n))``), :func:`best_chunk_distance` (max-sim: the
distance of the nearest element).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Select, bindparam, cast, event, func, select, text
from sqlalchemy import types as sqltypes
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement, visitors
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.selectable import ScalarSelect

from . import sqltext
from .connections import is_autocommit, set_local, sync_connection
from .exc import SearchSettingError
from .facts import METRICS, SEARCH_SETTINGS, SEARCH_SETTINGS_BY_GUC, metrics_for
from .functions import binary_quantize
from .types import Bit, VectorType

if TYPE_CHECKING:  # sqlalchemy.ext.asyncio needs greenlet only when used
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

__all__ = [
    "SearchSettings",
    "SEARCH_SETTINGS",
    "search_settings",
    "apply_search_settings",
    "install_search_options",
    "iterative_search",
    "binary_quantized_search",
    "best_chunk_distance",
]


def _check(field_name: str, value: Any) -> str:
    """The checked value of one setting as the text ``set_config`` takes (its type and
    range from :data:`vecalchemy.facts.SEARCH_SETTINGS`)."""
    guc = SEARCH_SETTINGS[field_name]
    where = f"{field_name} ({guc.name})"
    if guc.kind is str:
        if not isinstance(value, str) or value not in guc.choices:
            raise SearchSettingError(
                f"{where} must be one of {', '.join(guc.choices)}, got {value!r}"
            )
        return value
    assert guc.low is not None and guc.high is not None
    # PostgreSQL names an int setting's bounds exactly: 2147483647, not 2.14748e+09
    low, high = (
        (str(int(guc.low)), str(int(guc.high)))
        if guc.kind is int
        else (f"{guc.low:g}", f"{guc.high:g}")
    )
    if isinstance(value, bool):
        raise SearchSettingError(f"{where} must be a number, got a bool ({value!r})")
    if guc.kind is int:
        if not isinstance(value, int):
            raise SearchSettingError(
                f"{where} must be an int between {low} and {high}, "
                f"got {type(value).__name__} {value!r}"
            )
        number: float = value
    else:
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise SearchSettingError(
                f"{where} must be a finite number between {low} and {high}, got {value!r}"
            )
        number = float(value)
    if not guc.low <= number <= guc.high:
        raise SearchSettingError(
            f'{value!r} is outside the valid range for parameter "{guc.name}" ({low} .. {high})'
        )
    return str(value) if guc.kind is int else repr(float(value))


#: the planner setting behind :attr:`SearchSettings.prefer_index` (PostgreSQL, not pgvector)
PREFER_INDEX_GUC = "enable_seqscan"
_PREFER_INDEX_VALUES = {True: "off", False: "on"}


def _check_prefer_index(value: Any) -> str:
    """``enable_seqscan``'s text for ``prefer_index`` (``True`` -> ``off``)."""
    if not isinstance(value, (bool, np.bool_)):
        raise SearchSettingError(
            f"prefer_index ({PREFER_INDEX_GUC} = off) must be a bool, got "
            f"{type(value).__name__} {value!r}"
        )
    return _PREFER_INDEX_VALUES[bool(value)]  # (a NumPy bool is one too)


def _check_field(field_name: str, value: Any) -> str:
    if field_name == "prefer_index":
        return _check_prefer_index(value)
    return _check(field_name, value)


def _guc_of(field_name: str) -> str:
    return PREFER_INDEX_GUC if field_name == "prefer_index" else SEARCH_SETTINGS[field_name].name


@dataclass(frozen=True)
class SearchSettings:
    """pgvector's query-time settings, checked on construction.

    ``ef_search`` (``hnsw.ef_search``, int 1..1000, default 40): HNSW candidate list
    size; ``hnsw_iterative_scan`` (``off``/``relaxed_order``/``strict_order``, 0.8.0);
    ``max_scan_tuples`` (int 1..2147483647, default 20000); ``scan_mem_multiplier``
    (real 1..1000, multiple of ``work_mem``); ``probes`` (``ivfflat.probes``, int
    1..32768, default 1); ``ivfflat_iterative_scan`` (``off``/``relaxed_order`` only);
    ``max_probes`` (int 1..32768). ``None`` leaves a setting as it is.

    ``prefer_index`` (bool): ``True`` sends PostgreSQL's ``enable_seqscan = off`` for the
    transaction, ``False`` sends ``enable_seqscan = on``. It is the remedy for a planner
    that picks ``Seq Scan`` + ``Sort`` over the vector index for an ``ORDER BY <distance>
    LIMIT k`` query: vectors of more than ~500 dimensions (``vector``; ~1000 for
    ``halfvec``) are stored out of line in the TOAST table, which the sequential scan's
    cost does not count, so the heap looks cheap (pgvector issues #784, #821, #835;
    pgvector README, Troubleshooting). The trade-off: ``enable_seqscan`` is not per table
    -- while it is off, *every* statement of the transaction, and every table in it
    (joined tables, subqueries, a filter's table), is planned avoiding sequential scans
    where any other path exists (an index scan of a btree over the whole table, a
    bitmap scan), which can be much slower for a table the index was not meant for.
    Scope it to the search: ``with search_settings(conn, prefer_index=True):`` restores
    the previous value on leaving the block. The remedy that leaves every other plan
    alone is the storage one: :func:`vecalchemy.storage.set_vector_storage` (``SET
    STORAGE PLAIN``, then a rewrite of the rows), see :mod:`vecalchemy.storage`.

    Raises :class:`~vecalchemy.exc.SearchSettingError` naming the setting, the expected
    type/range and the value (bools, strings for numbers, NaN/inf, out of range; for
    ``prefer_index`` anything but a bool).
    """

    ef_search: int | None = None
    hnsw_iterative_scan: str | None = None
    max_scan_tuples: int | None = None
    scan_mem_multiplier: float | None = None
    probes: int | None = None
    ivfflat_iterative_scan: str | None = None
    max_probes: int | None = None
    prefer_index: bool | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                _check_field(f.name, value)

    @classmethod
    def from_gucs(cls, gucs: Mapping[str, Any]) -> SearchSettings:
        """From pgvector's names: ``{"hnsw.ef_search": 100, "ivfflat.probes": 10}``;
        ``"enable_seqscan"`` takes ``"off"``/``"on"`` (``prefer_index`` ``True``/``False``)."""
        known = (*SEARCH_SETTINGS_BY_GUC, PREFER_INDEX_GUC)
        unknown = [name for name in gucs if name not in known]
        if unknown:
            raise SearchSettingError(
                f"unknown search setting(s) {', '.join(map(repr, unknown))}; expected "
                + ", ".join(known)
            )
        kw = {SEARCH_SETTINGS_BY_GUC[n]: v for n, v in gucs.items() if n != PREFER_INDEX_GUC}
        if PREFER_INDEX_GUC in gucs:
            value = gucs[PREFER_INDEX_GUC]
            if value not in ("off", "on"):
                raise SearchSettingError(
                    f"{PREFER_INDEX_GUC} must be 'off' or 'on', got {value!r}"
                )
            kw["prefer_index"] = value == "off"
        return cls(**kw)

    def gucs(self) -> dict[str, str]:
        """``{setting name: checked text value}`` of the settings that are not ``None``
        (``prefer_index`` as ``{"enable_seqscan": "off"}``)."""
        return {
            _guc_of(f.name): _check_field(f.name, getattr(self, f.name))
            for f in fields(self)
            if getattr(self, f.name) is not None
        }


def _settings(
    settings: SearchSettings | Mapping[str, Any] | None, kw: Mapping[str, Any]
) -> SearchSettings:
    if settings is not None and kw:
        raise SearchSettingError("pass either a SearchSettings or keywords, not both")
    if isinstance(settings, SearchSettings):
        return settings
    given = dict(settings or kw)
    unknown = [
        k
        for k in given
        if k not in SEARCH_SETTINGS and k not in SEARCH_SETTINGS_BY_GUC and k != "prefer_index"
    ]
    if unknown:
        raise SearchSettingError(
            f"unknown search setting(s) {', '.join(map(repr, unknown))}; expected "
            + ", ".join((*SEARCH_SETTINGS, "prefer_index"))
        )
    return SearchSettings(**{SEARCH_SETTINGS_BY_GUC.get(k, k): v for k, v in given.items()})


_EXTENSION_SCHEMA = text(
    "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
    "WHERE e.extname = 'vector'"
)
_LOADED_KEY = "vecalchemy_vector_loaded"
#: set in the connection's info while the execution option's settings are applied
_APPLYING_KEY = "vecalchemy_applying_search"


def _get_config_sql(n: int) -> Any:
    items = ", ".join(f"current_setting(:n{i})" for i in range(n))
    return text(f"SELECT {items}")


def _params(gucs: Mapping[str, str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for i, (name, value) in enumerate(gucs.items()):
        params[f"n{i}"] = name
        params[f"v{i}"] = value
    return params


def _ensure_loaded(conn: Connection) -> None:
    info = conn.connection.info
    if not info.get(_LOADED_KEY):
        schema = conn.execute(_EXTENSION_SCHEMA).scalar()
        if schema is None:
            raise SearchSettingError(
                "the vector extension is not installed in this database (CREATE EXTENSION "
                "vector); its search settings do not exist"
            )
        # any vector input function call loads vector.so in this backend
        quoted = sqltext.quote(conn.dialect, str(schema))
        conn.execute(sqltext.Statement(f"SELECT '[1]'::{quoted}.vector"))
        info[_LOADED_KEY] = True


def _refuse_autocommit(conn: Connection) -> None:
    if is_autocommit(conn):
        raise SearchSettingError(
            "search settings are applied with SET LOCAL and need a transaction; this "
            "connection is AUTOCOMMIT, where they would last a single statement"
        )


def _apply(conn: Connection, gucs: Mapping[str, str]) -> None:
    if not gucs:
        return
    _refuse_autocommit(conn)
    _ensure_loaded(conn)
    set_local(conn, gucs)  # set_config(), or SET LOCAL statements that reach Citus shards


def _current(conn: Connection, names: list[str]) -> dict[str, str]:
    _ensure_loaded(conn)
    row = conn.execute(_get_config_sql(len(names)), _params(dict.fromkeys(names, ""))).one()
    return dict(zip(names, (str(v) for v in row), strict=True))


def apply_search_settings(
    bind: Connection | Session,
    /,
    settings: SearchSettings | Mapping[str, Any] | None = None,
    **kw: Any,
) -> SearchSettings:
    """Apply search settings for the rest of the current transaction (``SET LOCAL``).

    ``bind`` is a sync Connection or Session (a transaction is begun if none is);
    settings as a :class:`SearchSettings`, a mapping, or keywords (``ef_search=100``).
    Returns the checked settings. Raises
    :class:`~vecalchemy.exc.SearchSettingError` before sending anything for a bad value,
    or for an AUTOCOMMIT connection (no transaction to scope ``SET LOCAL`` to). Any
    driver. For async (asyncpg, psycopg async) use ``await
    conn.run_sync(apply_search_settings, ef_search=100)`` (``bind`` is positional-only,
    so this type-checks) or :func:`search_settings` with ``async with``.
    """
    checked = _settings(settings, kw)
    _apply(sync_connection(bind), checked.gucs())
    return checked


class search_settings:  # noqa: N801 - used like contextlib's context managers
    """``with``/``async with`` block applying search settings, restored on leaving.

    ``with search_settings(session, ef_search=100): ...`` for a sync Connection or
    Session; ``async with search_settings(async_session, probes=10): ...`` for an
    AsyncConnection or AsyncSession. Inside the block the settings hold for the current
    transaction (``set_config(name, value, true)``, so ``current_setting()`` shows them);
    on a normal exit the previous values are set back (still transaction-local); after
    commit or rollback they are gone as any ``SET LOCAL``.

    Raises :class:`~vecalchemy.exc.SearchSettingError` on construction for a bad value
    (nothing is sent), and on entry for an AUTOCOMMIT connection.
    """

    def __init__(
        self,
        bind: Connection | Session | AsyncConnection | AsyncSession,
        settings: SearchSettings | Mapping[str, Any] | None = None,
        **kw: Any,
    ) -> None:
        self.bind = bind
        self.settings = _settings(settings, kw)
        self._gucs = self.settings.gucs()
        self._previous: dict[str, str] = {}
        self._transaction: Any = None

    # sync
    def _enter(self, bind: Connection | Session) -> None:
        conn = sync_connection(bind)
        _refuse_autocommit(conn)
        if self._gucs:
            self._previous = _current(conn, list(self._gucs))
            _apply(conn, self._gucs)
        self._transaction = conn.get_transaction()

    def _exit(self, bind: Connection | Session) -> None:
        if not self._previous:
            return
        in_same = (
            bind.get_transaction() is not None
            if isinstance(bind, Session)
            else bind.get_transaction() is self._transaction
        )
        if in_same and bind.in_transaction():
            conn = sync_connection(bind)
            if conn.get_transaction() is self._transaction:
                set_local(conn, self._previous)

    def _refuse_engine(self) -> None:
        engine = isinstance(self.bind, Engine)
        async_engine = hasattr(self.bind, "sync_engine") and not hasattr(
            self.bind, "in_transaction"
        )
        if engine or async_engine:
            raise TypeError(
                f"search_settings needs a transaction to scope SET LOCAL to, got "
                f"{type(self.bind).__name__}; pass a Connection or Session (with "
                "engine.begin() as conn, search_settings(conn, ...)), or an AsyncConnection "
                "or AsyncSession with 'async with'"
            )

    def __enter__(self) -> SearchSettings:
        self._refuse_engine()
        if not isinstance(self.bind, (Connection, Session)):
            raise TypeError(
                f"use 'async with' for {type(self.bind).__name__}; 'with' takes a "
                "Connection or Session"
            )
        self._enter(self.bind)
        return self.settings

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            assert isinstance(self.bind, (Connection, Session))
            self._exit(self.bind)

    # async: the same work on the sync objects underneath
    async def __aenter__(self) -> SearchSettings:
        self._refuse_engine()
        if isinstance(self.bind, (Connection, Session)) or not hasattr(self.bind, "run_sync"):
            raise TypeError(
                f"use 'with' for {type(self.bind).__name__}; 'async with' takes an "
                "AsyncConnection or AsyncSession"
            )
        await self.bind.run_sync(self._enter)
        return self.settings

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            assert not isinstance(self.bind, (Connection, Session))
            await self.bind.run_sync(self._exit)


# --- execution option -----------------------------------------------------------------

#: execution option read by :func:`install_search_options`
SEARCH_OPTION = "vector_search"


def _before_execute(
    conn: Connection,
    clauseelement: Any,
    multiparams: Any,
    params: Any,
    execution_options: Mapping[str, Any],
) -> None:
    requested = execution_options.get(SEARCH_OPTION)
    if requested is None and hasattr(clauseelement, "get_execution_options"):
        requested = clauseelement.get_execution_options().get(SEARCH_OPTION)
    if requested is None:
        requested = conn.get_execution_options().get(SEARCH_OPTION)
    if requested is None:
        return
    info = conn.info
    if info.get(_APPLYING_KEY):
        return  # the set_config statement itself, on a connection carrying the option
    if isinstance(requested, SearchSettings):
        settings = requested
    elif isinstance(requested, Mapping):
        settings = _settings(requested, {})
    else:
        raise SearchSettingError(
            f"execution option {SEARCH_OPTION} takes a SearchSettings or a mapping such as "
            f"{{'ef_search': 100}}, got {type(requested).__name__} {requested!r}"
        )
    info[_APPLYING_KEY] = True
    try:
        _apply(conn, settings.gucs())
    finally:
        del info[_APPLYING_KEY]


def install_search_options(engine: Engine | AsyncEngine) -> None:
    """Honour ``execution_options(vector_search=...)`` on ``engine`` (idempotent).

    The option takes a :class:`SearchSettings` or a mapping
    (``{"ef_search": 100}`` or ``{"hnsw.ef_search": 100}``) on a statement, a
    Connection or the engine; before the statement runs the settings are applied with
    ``SET LOCAL`` for the rest of its transaction (ORM and Core, sync and async). Bad
    values raise :class:`~vecalchemy.exc.SearchSettingError` before anything is sent.
    """
    sync: Engine = engine if isinstance(engine, Engine) else engine.sync_engine
    if not event.contains(sync, "before_execute", _before_execute):
        event.listen(sync, "before_execute", _before_execute)


# --- query shapes -----------------------------------------------------------------------


def _check_bound_vectors(*exprs: Any) -> None:
    """Validate every vector value bound in ``exprs`` (query vectors in a distance, a
    select) with its type's own checks, as binding would at execution: wrong dimensions,
    NaN, infinities and values out of the type's range raise
    :class:`~vecalchemy.exc.InvalidVectorError` now, before a first statement is sent.
    Values bound later (``bindparam("q")``) are checked when bound."""
    for expr in exprs:
        for node in visitors.iterate(expr):
            if (
                isinstance(node, BindParameter)
                and isinstance(node.type, VectorType)
                and node.callable is None
                and node.value is not None
            ):
                node.type._check(node.value)


#: the largest LIMIT PostgreSQL takes (a bigint: "bigint out of range" beyond it)
MAX_LIMIT = 2**63 - 1


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    if value > MAX_LIMIT:
        raise ValueError(
            f"{name} must be a positive int up to {MAX_LIMIT} (PostgreSQL's LIMIT is a "
            f"bigint), got {value!r}"
        )
    return value


def iterative_search(
    stmt: Select[Any],
    distance: ColumnElement[Any],
    k: int,
    *,
    max_distance: float | None = None,
    name: str = "nearest",
) -> Select[Any]:
    """The filtered-search shape for iterative index scans (pgvector README, 0.8.0).

    ``stmt`` selects the wanted columns with its filters (``select(Doc.id).where(
    Doc.category == 3)``); ``distance`` is the distance expression the index serves
    (``Doc.embedding.cosine_distance(q)``). Returns::

        WITH nearest AS MATERIALIZED (<stmt + distance AS distance ORDER BY distance LIMIT k>)
        SELECT * FROM nearest [WHERE distance < max_distance] ORDER BY distance + 0

    With ``hnsw_iterative_scan="relaxed_order"`` (or IVFFlat's) the scan continues until
    ``k`` rows pass the filters; the outer ``ORDER BY distance + 0`` restores exact order
    (the ``+ 0`` keeps PostgreSQL 17+ from reusing the CTE's order). A distance filter
    belongs outside the CTE, as here. Raises :class:`ValueError` for a bad ``k``.
    """
    _positive_int("k", k)
    labelled = distance.label("distance")
    inner = stmt.add_columns(labelled).order_by(labelled).limit(k)
    nearest = inner.cte(name).prefix_with("MATERIALIZED")
    outer = select(nearest)
    if max_distance is not None:
        outer = outer.where(nearest.c.distance < max_distance)
    return outer.order_by(nearest.c.distance + 0)


def binary_quantized_search(
    stmt: Select[Any],
    column: Any,
    query: Any,
    k: int,
    *,
    candidates: int | None = None,
    metric: str | None = None,
    bq_metric: str = "hamming",
) -> Select[Any]:
    """ANN over ``binary_quantize(column)`` then an exact re-rank (pgvector README).

    ``stmt`` selects the wanted columns; ``column`` is the ``Vector(dim)`` column (it is
    added to the candidates if ``stmt`` does not select it); ``query`` the query vector.
    Returns::

        SELECT * FROM (<stmt> ORDER BY binary_quantize(column)::bit(dim) <~>
                       binary_quantize(query) LIMIT candidates) AS candidates
        ORDER BY candidates.column <=> query LIMIT k

    served by ``HnswIndex(name, cast(binary_quantize(col), Bit(dim)), metric="hamming")``.
    ``candidates`` defaults to ``4 * k``; ``metric`` (the exact re-rank) defaults to the
    column's declared metric; ``bq_metric`` is the bit metric of the index (``hamming``
    or ``jaccard``). Raises :class:`ValueError` for bad ``k``/``candidates``, a missing
    or unknown ``metric`` or a ``bq_metric`` that is not a bit metric, and
    :class:`TypeError` for a column that is not a dense vector with a dimension (or a
    ``metric`` its type does not define).
    """
    _positive_int("k", k)
    n = _positive_int("candidates", candidates if candidates is not None else 4 * k)
    col = column.__clause_element__() if hasattr(column, "__clause_element__") else column
    vtype = getattr(col, "type", None)
    if not isinstance(vtype, VectorType) or vtype.sql_type not in ("vector", "halfvec"):
        raise TypeError(f"column must be a Vector/HalfVec column, got {vtype!r}")
    if vtype.dim is None:
        raise TypeError(
            "column must have a dimension: the index is on binary_quantize(col)::bit(dim)"
        )
    rerank_metric = metric or vtype.metric
    if rerank_metric is None or rerank_metric not in METRICS:
        raise ValueError(
            f"give metric= for the exact re-rank ({vtype!r} declares none)"
            if rerank_metric is None
            else f"unknown metric {rerank_metric!r}"
        )
    if bq_metric not in metrics_for("bit"):
        raise ValueError(
            f"bq_metric must be a bit metric ({', '.join(metrics_for('bit'))}), got {bq_metric!r}"
        )
    bq_method = METRICS[bq_metric].method
    quantized = cast(binary_quantize(col), Bit(vtype.dim))
    query_bits = binary_quantize(bindparam(None, query, type_=type(vtype)(vtype.dim)))
    selected = {c.key for c in stmt.selected_columns}
    key = col.key
    inner = stmt if key in selected else stmt.add_columns(col)
    inner = inner.order_by(getattr(quantized, bq_method)(query_bits)).limit(n)
    sub = inner.subquery("candidates")
    exact = getattr(sub.c[key], METRICS[rerank_metric].method)(query)
    return select(sub).order_by(exact).limit(k)


def best_chunk_distance(
    array_column: Any, query: Any, metric: str | None = None
) -> ScalarSelect[float]:
    """Per row, the distance from ``query`` to the nearest element of a vector array
    (max-sim over a document's chunks).

    ``array_column``: an ``ARRAY(Vector(dim))`` (``HalfVec``, ``SparseVec``) column, ORM
    attribute or expression; ``query``: the query vector, bound with the element type and
    an explicit cast; ``metric`` (``"l2"``, ``"inner_product"``, ``"cosine"``, ``"l1"``)
    defaults to the metric declared on the element type. Returns a correlated scalar
    subquery (``Float``)::

        (SELECT min(chunk <=> query) FROM unnest(doc.chunks) AS chunk)

    Every distance operator is smaller-is-nearer (``<#>`` is the negative inner product),
    so the minimum is the best element's: the highest cosine similarity of a row is
    ``1 - best_chunk_distance(col, q, "cosine")``, its highest inner product
    ``-best_chunk_distance(col, q, "inner_product")``. The result is NULL for a NULL or
    empty array; NULL elements are skipped; a multidimensional array counts every
    element. Label it to select and order by it::

        best = best_chunk_distance(Doc.chunks, q, "cosine").label("best")
        session.execute(select(Doc.id, best).order_by(best).limit(10))

    No vector index serves it (pgvector indexes one vector a row): it is an exact scan of
    the rows it is computed for.

    Raises :class:`TypeError` for a column that is not an array of vecalchemy's vector
    types, or a metric its element type does not define; :class:`ValueError` for an
    unknown metric, or none given nor declared.
    """
    col = (
        array_column.__clause_element__()
        if hasattr(array_column, "__clause_element__")
        else array_column
    )
    atype = getattr(col, "type", None)
    if not isinstance(atype, sqltypes.ARRAY) or not isinstance(atype.item_type, VectorType):
        raise TypeError(
            f"array_column must be an ARRAY of Vector/HalfVec/SparseVec, got {atype!r}"
        )
    item = atype.item_type
    name = metric if metric is not None else item.metric
    if name is None:
        raise ValueError(f"give metric= ({item!r} declares none)")
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; expected one of {', '.join(METRICS)}")
    chunk = func.unnest(col, type_=item).column_valued("chunk")
    distance = getattr(chunk, METRICS[name].method)(query)
    return select(func.min(distance)).scalar_subquery()
