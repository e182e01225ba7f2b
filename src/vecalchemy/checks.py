"""Can a vector index serve this query? Static checks, EXPLAIN, and recall.

pgvector's indexes serve exactly one query shape (pgvector README "Querying", src/hnsw.c
and src/ivfflat.c cost estimators): ``ORDER BY <indexed expression> <operator> <value>``,
ascending, first ORDER BY key, with a ``LIMIT``, where the operator is the one of the
index's operator class. Anything else runs a sequential scan, silently.

- :func:`check_query` inspects a SELECT (Core or ORM) and returns the problems: metric
  or opclass mismatch, DESC, the function form (``cosine_distance(a, b)``), arithmetic on
  the distance (``1 - distance``), no LIMIT, an expression other than the indexed one.
  Only columns whose table declares vector indexes are checked. A partial index counts
  when the query's WHERE implies its predicate, by PostgreSQL's rule
  (:mod:`vecalchemy.predicates`); a top-k on a partitioned table whose WHERE does not
  fix the partition key is reported too (every partition's index is scanned).
- :func:`install_query_checks` makes an engine warn (:class:`VectorIndexWarning`,
  :class:`VectorIndexUncertainWarning`, :class:`VectorPartitionWarning`) when it
  executes such a statement; the verdict is cached per compiled statement and values
  of the WHERE's parameters, so repeats cost a dictionary lookup.
- :func:`explain_index_usage` asks the server which vector index the plan uses.
- :func:`measure_recall` compares the ANN answer with the exact one (recall@k).
"""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
import warnings
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy
from sqlalchemy import Table, event
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine
from sqlalchemy.sql import ClauseElement, ColumnElement, Select, operators, visitors
from sqlalchemy.sql.elements import (
    BinaryExpression,
    BindParameter,
    Grouping,
    Label,
    UnaryExpression,
)
from sqlalchemy.sql.functions import Function
from sqlalchemy.sql.schema import Column
from sqlalchemy.sql.selectable import ScalarSelect, SelectBase

from . import _private
from .exc import VectorIndexUncertainWarning, VectorIndexWarning, VectorPartitionWarning
from .explain import IndexUsage, explain_index_usage, measure_recall
from .facts import METRICS
from .indexes import VectorIndexSpec, vector_index_spec
from .partitions import partition_key
from .predicates import (
    Opaque,
    Predicate,
    ValueOf,
    conjuncts,
    implies,
    read_predicate,
    table_column,
    unpruned_key_columns,
)

if TYPE_CHECKING:  # sqlalchemy.ext.asyncio needs greenlet only when used
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = [
    "IndexProblem",
    "check_query",
    "install_query_checks",
    "IndexUsage",
    "explain_index_usage",
    "measure_recall",
]

_BY_OPERATOR = {m.operator: m.name for m in METRICS.values()}
_BY_FUNCTION = {m.function: m.name for m in METRICS.values()}
_LABEL_REFERENCE, _TEXTUAL_LABEL_REFERENCE = _private.label_reference_types()
_ARITHMETIC = {
    operators.add,
    operators.sub,
    operators.mul,
    operators.truediv,
    operators.neg,
}


#: IndexProblem.kind values and the warning each is given as
NO_INDEX, UNCERTAIN, ALL_PARTITIONS = "no index", "uncertain", "all partitions"
_CATEGORIES: dict[str, type[Warning]] = {
    NO_INDEX: VectorIndexWarning,
    UNCERTAIN: VectorIndexUncertainWarning,
    ALL_PARTITIONS: VectorPartitionWarning,
}


@dataclass(frozen=True)
class IndexProblem:
    """Why no declared vector index can (or may) serve a query's ORDER BY.

    ``column`` is ``table.column`` of the vector column ordered by; ``reasons`` one line
    per declared vector index on it (naming the index) or for the whole statement.
    ``kind`` is ``"no index"`` (a sequential scan: :class:`VectorIndexWarning`),
    ``"uncertain"`` (a partial index whose predicate the query's WHERE may or may not
    imply: :class:`VectorIndexUncertainWarning`) or ``"all partitions"`` (a partitioned
    table whose key the query does not fix: :class:`VectorPartitionWarning`).
    """

    column: str
    reasons: tuple[str, ...]
    kind: str = NO_INDEX

    @property
    def category(self) -> type[Warning]:
        """The warning class :func:`install_query_checks` gives this problem as."""
        return _CATEGORIES[self.kind]

    def __str__(self) -> str:
        if self.kind == UNCERTAIN:
            head = f"cannot tell whether a vector index on {self.column} can serve this ORDER BY"
        elif self.kind == ALL_PARTITIONS:
            head = (
                f"the ORDER BY on {self.column} scans every partition's vector index and "
                "merges (no partition pruning)"
            )
        else:
            head = f"no vector index on {self.column} can serve this ORDER BY (sequential scan)"
        return head + ": " + "; ".join(self.reasons)


# --- reading the ORDER BY -----------------------------------------------------------------


@dataclass
class DistanceOrder:
    """One ORDER BY key that is (or holds) a distance, as the query checks read it."""

    metric: str | None  # None: a function form or arithmetic hides it
    operand: ColumnElement[Any] | None  # the side that should be the indexed expression
    desc: bool
    function: str | None
    arithmetic: bool
    position: int


def _strip(expr: Any, select_stmt: Select[Any]) -> tuple[Any, bool]:
    """Unwrap groupings, labels, label references and ASC/DESC; return (expr, desc)."""
    desc = False
    for _ in range(20):
        if isinstance(expr, UnaryExpression) and expr.modifier in (
            operators.desc_op,
            operators.asc_op,
            operators.nulls_first_op,
            operators.nulls_last_op,
        ):
            desc = desc or expr.modifier is operators.desc_op
            expr = expr.element
        elif isinstance(expr, (Grouping, Label, _LABEL_REFERENCE)):
            expr = expr.element
        elif isinstance(expr, _TEXTUAL_LABEL_REFERENCE):
            name = expr.element
            found = [c for c in select_stmt.selected_columns if getattr(c, "name", None) == name]
            if not found:
                return None, desc
            expr = found[0]
        else:
            return expr, desc
    return expr, desc


def _operand(left: Any, right: Any) -> Any:
    """The side of a distance holding a table column: the left one, or the right one
    when only it does. pgvector's distance operators are their own commutators, so the
    planner serves ``q <=> col`` as ``col <=> q`` (checked with EXPLAIN)."""
    if right is not None and not _columns_of(left) and _columns_of(right):
        return right
    return left


def _distance(expr: Any) -> tuple[str, Any, str | None] | None:
    """(metric, operand, function name or None) when ``expr`` is itself a distance."""
    if isinstance(expr, BinaryExpression):
        opstring = getattr(expr.operator, "opstring", None)
        if opstring in _BY_OPERATOR:
            return _BY_OPERATOR[opstring], _operand(expr.left, expr.right), None
    if isinstance(expr, Function) and expr.name in _BY_FUNCTION:
        args = list(expr.clauses)
        operand = _operand(args[0], args[1] if len(args) > 1 else None) if args else None
        return _BY_FUNCTION[expr.name], operand, expr.name
    return None


def _outer_nodes(expr: Any) -> Iterator[Any]:
    """``expr`` and the elements inside it, not descending into subqueries: a scalar
    subquery is a value to the outer query (``(SELECT emb FROM t WHERE id = 42) <-> emb``),
    whatever its own columns."""
    stack = [expr]
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, (ScalarSelect, SelectBase)):
            stack.extend(reversed(list(node.get_children())))


def _distance_in(expr: Any) -> tuple[str, Any] | None:
    """(metric, operand) of the first distance operator or function inside ``expr``."""
    for node in _outer_nodes(expr):
        found = _distance(node)
        if found is not None:
            return found[0], found[1]
    return None


def distance_orders(stmt: Select[Any]) -> Iterator[DistanceOrder]:
    """The ORDER BY keys of ``stmt`` that are (or hold) a pgvector distance."""
    for position, clause in enumerate(_private.order_by_clauses(stmt)):
        expr, desc = _strip(clause, stmt)
        if expr is None:
            continue
        direct = _distance(expr)
        if direct is not None:
            yield DistanceOrder(direct[0], direct[1], desc, direct[2], False, position)
            continue
        found = _distance_in(expr)
        if found is not None:
            yield DistanceOrder(found[0], found[1], desc, None, True, position)


_table_column = table_column


def _columns_of(expr: Any) -> list[Column[Any]]:
    found = (_table_column(node) for node in _outer_nodes(expr))
    return [col for col in found if col is not None]


def _unaliased(expr: Any) -> Any:
    """``expr`` with columns of table aliases replaced by the tables' own columns, to
    compare with an index's expression."""

    def replace(element: Any, **kw: Any) -> Any:
        col = _table_column(element)
        return col if col is not None and col is not element else None

    no_options: dict[str, Any] = {}
    return visitors.replacement_traverse(expr, no_options, replace)


def _vector_indexes(table: Table) -> list[tuple[str, VectorIndexSpec]]:
    found = []
    for index in table.indexes:
        try:
            spec = vector_index_spec(index)
        except Exception:  # an invalid declaration is reported where it is declared
            continue
        if spec is not None and spec.expression is not None:
            found.append((str(index.name), spec))
    return found


_PG = postgresql.dialect()  # type: ignore[no-untyped-call]


def _sql(expr: Any) -> str | None:
    try:
        return str(expr.compile(dialect=_PG, compile_kwargs={"literal_binds": True}))
    except Exception:
        return None


def _same_expression(a: Any, b: Any) -> bool:
    """Structurally the same SQL, types of casts included (``compare()`` ignores them)."""
    sa, sb = _sql(a), _sql(b)
    if sa is not None and sb is not None:
        return sa == sb
    return bool(a.compare(b))


def _describe(name: str, spec: VectorIndexSpec) -> str:
    return f"index {name} ({spec.method}, {spec.opclass} on {_sql(spec.expression)})"


def _operator(metric: str) -> str:
    return METRICS[metric].operator


def _check_select(stmt: Select[Any], value_of: ValueOf | None) -> list[IndexProblem]:
    problems: list[IndexProblem] = []
    has_limit = _private.limit_clause(stmt) is not None
    for order in distance_orders(stmt):
        if order.operand is None:
            continue
        columns = _columns_of(order.operand)
        candidates: list[tuple[str, VectorIndexSpec]] = []
        for col in columns:
            assert isinstance(col.table, Table)
            for name, spec in _vector_indexes(col.table):
                if any(c is col or c.compare(col) for c in _columns_of(spec.expression)):
                    candidates.append((name, spec))
        if not candidates:
            continue  # no vector index declared for this column: nothing to say
        col_name = f"{columns[0].table.name}.{columns[0].name}"
        shared: list[str] = []
        if order.position > 0:
            shared.append(
                "the distance is not the first ORDER BY key; an index scan needs it first"
            )
        if order.desc:
            shared.append(
                "ORDER BY ... DESC: vector indexes return nearest first only (ascending "
                "distance; for the largest inner product order by max_inner_product(), "
                "which is negative, ascending)"
            )
        if order.function is not None:
            assert order.metric is not None
            shared.append(
                f"orders by the function {order.function}(); only the operator "
                f"{_operator(order.metric)} can use an index: use "
                f"col.{METRICS[order.metric].method}(q)"
            )
        if order.arithmetic:
            shared.append(
                "orders by an expression over the distance (e.g. 1 - distance); order by "
                "the distance operator itself, ascending"
            )
        if not has_limit:
            shared.append(
                "no LIMIT: the planner picks a vector index only for ORDER BY distance "
                "LIMIT k (and a forced HNSW scan returns at most ef_search rows)"
            )
        if shared:
            names = ", ".join(name for name, _ in candidates)
            problems.append(IndexProblem(col_name, (*shared, f"(indexes: {names})")))
            continue
        where: Predicate | None = None
        if stmt.whereclause is not None:
            source = next(
                n.table for n in _outer_nodes(order.operand) if _table_column(n) is not None
            )
            where = read_predicate(stmt.whereclause, value_of, allow_or=False, source=source)
        reasons: list[str] = []
        served = uncertain = False
        operand = _unaliased(order.operand)
        for name, spec in candidates:
            if not _same_expression(operand, spec.expression):
                reasons.append(
                    f"{_describe(name, spec)} indexes {_sql(spec.expression)} but the query "
                    f"orders by {_sql(operand)}; repeat the indexed expression"
                )
            elif order.metric != spec.metric:
                assert order.metric is not None
                reasons.append(
                    f"{_describe(name, spec)} serves {spec.metric} "
                    f"({_operator(spec.metric)}) but the query orders by {order.metric} "
                    f"({_operator(order.metric)}); use {METRICS[spec.metric].method}() or "
                    f"add an index with metric={order.metric!r}"
                )
            elif (
                spec.where is not None
                and (proof := implies(where, read_predicate(spec.where))).proven is not True
            ):
                uncertain = uncertain or proof.proven is None
                reasons.append(
                    f"{_describe(name, spec)} is partial (WHERE {_sql(spec.where)}): "
                    f"{proof.reason}"
                )
            else:
                served = True
                break
        if not served:
            kind = UNCERTAIN if uncertain else NO_INDEX
            problems.append(IndexProblem(col_name, tuple(reasons), kind))
            continue
        assert isinstance(columns[0].table, Table)
        unpruned = _not_pruned(columns[0].table, where)
        if unpruned is not None:
            problems.append(IndexProblem(col_name, (unpruned,), ALL_PARTITIONS))
    return problems


def _not_pruned(table: Table, where: Predicate | None) -> str | None:
    """Why a top-k query on the partitioned ``table`` scans every partition (None when
    its WHERE fixes the partition key, or ``table`` is not partitioned by columns).

    PostgreSQL prunes a LIST or RANGE partitioned table by comparisons of the key's
    first column, a HASH one only by equality on every key column; the partitioned
    index declared on the parent exists on every partition, and a pruned plan scans the
    remaining partitions' own indexes."""
    key = partition_key(table)
    if key is None:
        return None
    missing = unpruned_key_columns(where, key.strategy, key.columns)
    if not missing:
        return None
    names = ", ".join(c.name for c in missing)
    how = "= or IN" if key.strategy == "hash" else "=, IN or a range"
    reason = (
        f"{table.name} is partitioned by {key.strategy.upper()} "
        f"({', '.join(c.name for c in key.columns)}) and the query's WHERE does not fix "
        f"{names}; filter on {names} ({how}) so that PostgreSQL prunes to the matching "
        "partitions' indexes"
    )
    unknown = [str(item) for item in conjuncts(where) if isinstance(item, Opaque)]
    if unknown:  # e.g. a join's t.id = 3 that an equivalence class carries to the key
        reason += f" (unless PostgreSQL prunes by {' AND '.join(unknown)}, outside the model)"
    return reason


def _selects(stmt: ClauseElement) -> Iterator[Select[Any]]:
    seen: set[int] = set()
    for node in visitors.iterate(stmt, {"column_collections": False}):
        if isinstance(node, Select) and id(node) not in seen:
            seen.add(id(node))
            yield node


def check_query(stmt: Any, params: Mapping[str, Any] | None = None) -> list[IndexProblem]:
    """The reasons no declared vector index can (or may) serve ``stmt``'s vector ORDER BY.

    ``stmt`` is a Core or ORM :class:`~sqlalchemy.sql.Select` (subqueries and CTEs are
    checked too); other statements give ``[]``. Only ORDER BY keys that are a pgvector
    distance (operator or function form, possibly inside arithmetic) on a column whose
    :class:`~sqlalchemy.Table` declares vector indexes are checked; an empty list means
    at least one index can serve each of them (or none is declared).

    A partial index serves the query only when its WHERE implies the index's predicate,
    decided by PostgreSQL's rule (src/backend/optimizer/util/predtest.c) on the
    predicates :mod:`vecalchemy.predicates` models, with the values of the bound
    parameters (PostgreSQL plans an unnamed or freshly prepared statement with them): a
    problem of kind ``"no index"`` when it cannot be proved, ``"uncertain"`` when the
    proof needs something outside the model. ``params`` gives values of parameters by
    name (``bindparam("cat")`` without a value, or overriding the statement's own), as
    passed to ``execute``; a value given as a list serves an ``IN`` parameter.
    """
    if not isinstance(stmt, ClauseElement):
        return []
    value_of = None if params is None else _values_from(params)
    problems: list[IndexProblem] = []
    for select_stmt in _selects(stmt):
        problems.extend(_check_select(select_stmt, value_of))
    return problems


def _values_from(params: Mapping[str, Any]) -> ValueOf:
    def value_of(bind: BindParameter[Any]) -> tuple[bool, Any]:
        if bind.key in params:
            return True, params[bind.key]
        if bind.callable is None and bind.value is None:
            return False, None
        return True, bind.effective_value

    return value_of


# --- the engine hook ----------------------------------------------------------------------

#: per compiled statement: the problems found, by the values of the WHERE's parameters
#: (a compiled form serves every statement of the same shape, whatever its values)
_verdicts: weakref.WeakKeyDictionary[Any, dict[Any, tuple[IndexProblem, ...]]] = (
    weakref.WeakKeyDictionary()
)
_where_params: weakref.WeakKeyDictionary[Any, tuple[tuple[str, str, bool], ...]] = (
    weakref.WeakKeyDictionary()
)
#: distinct parameter values remembered per compiled statement (then forgotten)
_MAX_VALUE_SETS = 64


def _where_binds(compiled: Any, statement: Any) -> tuple[tuple[str, str, bool], ...]:
    """(key, compiled name, expanding) of each parameter in a WHERE of ``statement``."""
    try:
        return _where_params[compiled]
    except (KeyError, TypeError):
        pass
    names = {bind.key: name for bind, name in getattr(compiled, "bind_names", {}).items()}
    found: dict[tuple[str, str, bool], None] = {}
    if isinstance(statement, ClauseElement):
        for select_stmt in _selects(statement):
            if select_stmt.whereclause is None or next(distance_orders(select_stmt), None) is None:
                continue  # only a vector ORDER BY's own WHERE counts
            for node in visitors.iterate(select_stmt.whereclause):
                if isinstance(node, BindParameter) and node.key in names:
                    found[(node.key, names[node.key], bool(node.expanding))] = None
    binds = tuple(found)
    with contextlib.suppress(TypeError):
        _where_params[compiled] = binds
    return binds


def _execution_values(
    binds: tuple[tuple[str, str, bool], ...], parameters: Mapping[str, Any]
) -> dict[str, Any]:
    """The values of ``binds`` in an execution's parameters (by compiled name; an
    expanding ``IN`` parameter arrives expanded as ``name_1``, ``name_2``, ...)."""
    out: dict[str, Any] = {}
    for key, name, expanding in binds:
        if name in parameters:
            out[key] = parameters[name]
        elif expanding:
            values: list[Any] = []
            while f"{name}_{len(values) + 1}" in parameters:
                values.append(parameters[f"{name}_{len(values) + 1}"])
            if values:
                out[key] = values
    return out


def _frozen(values: dict[str, Any]) -> Any:
    items = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in values.items()))
    hash(items)  # TypeError: not cached
    return items


def cached_problems(
    compiled: Any, parameters: Mapping[str, Any] | None = None
) -> tuple[IndexProblem, ...]:
    """:func:`check_query`'s problems for a compiled statement's statement, with the
    WHERE's parameters valued from ``parameters`` (an execution's, by compiled name)
    when given; cached per compiled object and parameter values."""
    statement = getattr(compiled, "statement", None)
    if statement is None:
        return ()
    binds = _where_binds(compiled, statement) if parameters is not None else ()
    values = _execution_values(binds, parameters) if parameters is not None and binds else {}
    try:
        key = _frozen(values)
        cached = _verdicts.get(compiled)
    except TypeError:  # unhashable values, or a compiled object without weak references
        key, cached = None, None
    if cached is not None and key in cached:
        return cached[key]
    problems = tuple(check_query(statement, values) if values else check_query(statement))
    if key is not None:
        with contextlib.suppress(TypeError):
            per_values = _verdicts.setdefault(compiled, {})
            if len(per_values) >= _MAX_VALUE_SETS:
                per_values.clear()
            per_values[key] = problems
    return problems


def cached_verdict(compiled: Any) -> tuple[str, ...]:
    """The :class:`VectorIndexWarning` texts (kinds ``"no index"`` and ``"uncertain"``)
    :func:`check_query` gives for a compiled statement's statement, with its own
    parameter values; cached per compiled object."""
    return tuple(str(p) for p in cached_problems(compiled) if p.kind != ALL_PARTITIONS)


def _before_cursor_execute(
    conn: Any, cursor: Any, statement: Any, parameters: Any, context: Any, executemany: bool
) -> None:
    compiled = getattr(context, "compiled", None)
    if compiled is None or getattr(compiled, "is_ddl", False):
        return
    values = getattr(context, "compiled_parameters", None)
    problems = cached_problems(compiled, values[0] if values else None)
    if problems:
        level = user_stacklevel()
        for problem in problems:
            warnings.warn(str(problem), problem.category, stacklevel=level)


_LIBRARY_DIRS = tuple(
    os.path.dirname(m.__file__) + os.sep
    for m in (sqlalchemy, sys.modules[__package__ or ""])
    if m.__file__
)


def user_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the caller's line, outside SQLAlchemy."""
    frame = inspect.currentframe()
    assert frame is not None and frame.f_back is not None  # (CPython, PyPy)
    frame = frame.f_back
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(_LIBRARY_DIRS):
        frame = frame.f_back
        level += 1
    return level


def install_query_checks(engine: Engine | AsyncEngine) -> None:
    """Warn when ``engine`` runs a SELECT whose vector ORDER BY no declared index can
    serve (:class:`~vecalchemy.exc.VectorIndexWarning`), may not serve
    (:class:`~vecalchemy.exc.VectorIndexUncertainWarning`: a partial index's predicate
    the checks cannot decide), or serves through every partition of a partitioned table
    (:class:`~vecalchemy.exc.VectorPartitionWarning`); see :func:`check_query`.

    Idempotent; sync or async engine. Partial-index verdicts use the execution's
    parameter values. The verdict is cached per compiled statement (SQLAlchemy reuses
    compiled forms) and values of the WHERE's parameters, so a repeated statement costs
    one lookup. Turn the warnings into errors with
    ``warnings.simplefilter("error", VectorIndexWarning)`` (the uncertain one included).
    """
    sync: Engine = engine if isinstance(engine, Engine) else engine.sync_engine
    if not event.contains(sync, "before_cursor_execute", _before_cursor_execute):
        event.listen(sync, "before_cursor_execute", _before_cursor_execute)
