"""Does a query's WHERE imply a partial index's predicate? PostgreSQL's rule, modelled.

PostgreSQL uses a partial index only when it can *prove* that the query's WHERE implies
the index's predicate (src/backend/optimizer/util/predtest.c,
``predicate_implied_by``). The proof is syntactic and limited; this module replays it
for the predicates people write, on the columns of one table:

- ``col = c``, ``col < c``, ``col <= c``, ``col > c``, ``col >= c``: proved with the
  btree operator rules (``x = 3`` implies ``x <= 5``; ``x >= 3`` implies ``x > 2``;
  ``x >= 1 AND x <= 1`` does *not* imply ``x = 1``, as in PostgreSQL);
- ``col IN (c1, c2, ...)`` (up to 100 values, predtest.c ``MAX_SAOP_ARRAY_SIZE``): an
  OR of equalities; ``BETWEEN a AND b``: ``>= a AND <= b``;
- ``col IS NULL`` (implied only by itself), ``col IS NOT NULL`` (implied by any
  comparison of ``col``, as comparisons are strict);
- boolean columns: ``flag`` (= ``flag = true``), ``NOT flag`` (= ``flag = false``),
  and ``flag IS TRUE`` / ``IS FALSE`` / ``IS NOT TRUE`` / ``IS NOT FALSE``, each
  implied only by itself (PostgreSQL does not prove ``flag IS TRUE`` from ``flag``);
- AND on both sides, OR in the index predicate (predtest.c's AND/OR recursion).

:func:`unpruned_key_columns` applies the same model to partition pruning
(src/backend/partitioning/partprune.c).

Anything else (a function, arithmetic, ``<>``, a subquery, SQL text, a parameter whose
value is not known, OR in the query's WHERE, a column of another table or alias of the
query, which a join's equalities can carry over) is :class:`Opaque`: an implication that
needs it is *unknown*. Values are compared in Python: numbers, dates and timestamps by
order; strings by equality only (their order depends on the column's collation).

A bound parameter counts with its value: PostgreSQL plans an unnamed (one-shot)
statement with the values of its parameters, and psycopg's prepared statements begin
with such custom plans, so ``cat = $1`` sent with 3 implies ``cat = 3``. A generic plan
(``plan_cache_mode = force_generic_plan``, or one the plan cache keeps after five
executions) cannot: it is planned without the values.
"""

from __future__ import annotations

import datetime
import operator as _op
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql import operators, visitors
from sqlalchemy.sql.elements import (
    AsBoolean,
    BinaryExpression,
    BindParameter,
    BooleanClauseList,
    ColumnClause,
    False_,
    Grouping,
    Null,
    True_,
)
from sqlalchemy.sql.schema import Column
from sqlalchemy.sql.selectable import Alias
from sqlalchemy.types import Boolean, Date, DateTime, Float, Integer, Numeric, String

__all__ = [
    "Atom",
    "AnyOf",
    "Opaque",
    "And",
    "Or",
    "Predicate",
    "Implication",
    "ValueOf",
    "table_column",
    "read_predicate",
    "implies",
    "conjuncts",
    "describe",
    "unpruned_key_columns",
]

#: predtest.c MAX_SAOP_ARRAY_SIZE: a longer IN list is not expanded into an OR
MAX_IN_VALUES = 100

_COMPARISONS = {
    _op.eq: "=",
    _op.lt: "<",
    _op.le: "<=",
    _op.gt: ">",
    _op.ge: ">=",
}
_FLIPPED = {"=": "=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_ORDERED = frozenset(_FLIPPED)
_BOOL_TESTS = {
    (operators.is_, True): "IS TRUE",
    (operators.is_, False): "IS FALSE",
    (operators.is_not, True): "IS NOT TRUE",
    (operators.is_not, False): "IS NOT FALSE",
}
_PG = postgresql.dialect()  # type: ignore[no-untyped-call]


def table_column(node: Any) -> Column[Any] | None:
    """The table's Column behind ``node``: itself, or the one it stands for in an alias
    of the table (``table.alias()``, ORM ``aliased(Model)``)."""
    if not isinstance(node, ColumnClause):
        return None
    table = node.table
    if isinstance(node, Column) and isinstance(table, Table):
        own = table.c.get(node.key)  # the Column itself, not an ORM-annotated copy
        return own if isinstance(own, Column) else node
    while isinstance(table, Alias):  # (an alias of an alias of the table, too)
        table = table.element
    if isinstance(table, Table) and table is not node.table:
        base = table.c.get(node.key)
        if isinstance(base, Column):
            return base
    return None


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, datetime.date)):
        text = value if isinstance(value, str) else value.isoformat()
        return "'" + text.replace("'", "''") + "'"
    return str(value)


@dataclass(frozen=True)
class Atom:
    """One modelled condition on one column: ``op`` is ``=``, ``<``, ``<=``, ``>``,
    ``>=`` (with ``value``), ``IS NULL``, ``IS NOT NULL``, ``IS TRUE``, ``IS FALSE``,
    ``IS NOT TRUE`` or ``IS NOT FALSE``. A boolean column alone is ``= True``, ``NOT
    flag`` is ``= False``."""

    column: Column[Any]
    op: str
    value: Any = None

    def __str__(self) -> str:
        name = self.column.name
        if self.op == "=" and isinstance(self.value, bool):
            return name if self.value else f"NOT {name}"
        if self.op in _ORDERED:
            return f"{name} {self.op} {_literal(self.value)}"
        return f"{name} {self.op}"


@dataclass(frozen=True)
class AnyOf:
    """``column IN (values)``: an OR of equalities (predtest.c expands a constant
    array of up to 100 elements)."""

    column: Column[Any]
    values: tuple[Any, ...]

    def __str__(self) -> str:
        return f"{self.column.name} IN ({', '.join(_literal(v) for v in self.values)})"


@dataclass(frozen=True)
class Opaque:
    """A condition outside the model: its SQL (values inlined, or ``None``) and why."""

    sql: str | None
    why: str

    def __str__(self) -> str:
        return self.sql if self.sql is not None else "(an expression)"


@dataclass(frozen=True)
class And:
    items: tuple[Predicate, ...]

    def __str__(self) -> str:
        return " AND ".join(_parenthesised(i) for i in self.items)


@dataclass(frozen=True)
class Or:
    items: tuple[Predicate, ...]

    def __str__(self) -> str:
        return " OR ".join(_parenthesised(i) for i in self.items)


Predicate = Atom | AnyOf | Opaque | And | Or

#: ``(known, value)`` of a bound parameter; ``known`` False when its value comes only
#: at execution
ValueOf = Callable[[BindParameter[Any]], tuple[bool, Any]]


def _parenthesised(item: Predicate) -> str:
    return f"({item})" if isinstance(item, (And, Or)) else str(item)


def describe(predicate: Predicate | None) -> str:
    """``predicate`` as SQL-like text (column names without their table)."""
    return "nothing" if predicate is None else str(predicate)


def _own_value(bind: BindParameter[Any]) -> tuple[bool, Any]:
    if bind.callable is None and bind.value is None:
        return False, None  # given at execution (bindparam("x") without a value)
    return True, bind.effective_value


def _sql(expr: Any) -> str | None:
    """``expr`` as PostgreSQL SQL with its values inlined (a parameter without a value
    stays a placeholder)."""
    unvalued = any(
        isinstance(node, BindParameter) and node.callable is None and node.value is None
        for node in visitors.iterate(expr)
    )
    try:
        if unvalued:
            return str(expr.compile(dialect=_PG))
        return str(expr.compile(dialect=_PG, compile_kwargs={"literal_binds": True}))
    except Exception:  # a type without a literal renderer
        return None


def _fits(column: Column[Any], value: Any) -> bool:
    """Whether ``value`` compares with ``column`` as the same SQL type (a cross-type
    comparison such as ``int_col = 1.5`` casts the column and proves nothing)."""
    sql_type = column.type
    if isinstance(sql_type, Boolean):
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if isinstance(sql_type, Integer):
        return isinstance(value, int)
    if isinstance(sql_type, Float):
        return isinstance(value, (int, float))
    if isinstance(sql_type, Numeric):
        return isinstance(value, (int, Decimal))
    if isinstance(sql_type, DateTime):
        return isinstance(value, datetime.datetime)
    if isinstance(sql_type, Date):
        return isinstance(value, datetime.date) and not isinstance(value, datetime.datetime)
    if isinstance(sql_type, String):
        return isinstance(value, str)
    return False


def _constant(node: Any, value_of: ValueOf) -> tuple[bool, Any]:
    """``(known, value)`` of a constant operand (a bind, ``true``/``false``)."""
    if isinstance(node, Grouping):
        node = node.element
    if isinstance(node, True_):
        return True, True
    if isinstance(node, False_):
        return True, False
    if isinstance(node, BindParameter):
        return value_of(node)
    return False, None


def _opaque(expr: Any, why: str) -> Opaque:
    return Opaque(_sql(expr), why)


def read_predicate(
    expr: Any,
    value_of: ValueOf | None = None,
    *,
    allow_or: bool = True,
    source: Any = None,
) -> Predicate:
    """The model of a WHERE expression (a SQLAlchemy clause).

    ``value_of`` gives the value of a bound parameter (default: the parameter's own
    value; a parameter without one is :class:`Opaque`). ``allow_or=False`` makes an OR
    (not an ``IN`` list) :class:`Opaque`, as for a query's WHERE, whose disjunctions
    the checks do not decide. ``source`` (a Table or an alias of it) is the FROM item
    whose columns stand for the table's; a condition on a column of any other FROM item
    (another table, another alias of the same table) is :class:`Opaque`, as a join's
    equalities can carry it over (PostgreSQL's equivalence classes, self-join removal).
    """
    return _Reader(value_of or _own_value, allow_or, source).read(expr)


@dataclass(frozen=True)
class _Reader:
    value_of: ValueOf
    allow_or: bool
    source: Any

    def column(self, node: Any) -> Column[Any] | None:
        col = table_column(node)
        if col is None or self.source is None or node.table is self.source:
            return col
        return None  # another FROM item's column

    def elsewhere(self, node: Any) -> bool:
        """Whether ``node`` is a column of another FROM item than ``source``."""
        return self.column(node) is None and table_column(node) is not None

    def read(self, expr: Any) -> Predicate:
        return _read(expr, self)


#: why a condition on another FROM item is not decided
_ELSEWHERE = (
    "a condition on another table or alias of the query (a join's equalities can carry "
    "it to the ordered table: PostgreSQL's equivalence classes, self-join removal)"
)


def _read(expr: Any, reader: _Reader) -> Predicate:
    value_of, allow_or = reader.value_of, reader.allow_or
    while isinstance(expr, Grouping):
        expr = expr.element
    subject = expr.left if isinstance(expr, BinaryExpression) else expr
    if isinstance(expr, AsBoolean):
        subject = expr.element
    if reader.elsewhere(subject):
        return _opaque(expr, _ELSEWHERE)
    if isinstance(expr, BooleanClauseList):
        items = tuple(_read(e, reader) for e in expr.clauses)
        if expr.operator is operators.and_:
            return _flat(And, items)
        if expr.operator is operators.or_:
            if not allow_or:
                return _opaque(expr, "OR in the query's WHERE is not modelled")
            return _flat(Or, items)
        return _opaque(expr, "an unknown boolean operator")
    column = reader.column(expr)
    if column is not None:
        if isinstance(column.type, Boolean):
            return Atom(column, "=", True)
        return _opaque(expr, f"{column.name} is not a boolean column")
    if isinstance(expr, AsBoolean):  # NOT flag
        column = reader.column(expr.element)
        if column is not None and isinstance(column.type, Boolean):
            return Atom(column, "=", expr.operator is operators.is_true)
        return _opaque(expr, "NOT of an expression that is not a boolean column")
    if isinstance(expr, BinaryExpression):
        return _read_binary(expr, value_of, reader.column(expr.left))
    return _opaque(expr, f"a {type(expr).__name__} is not modelled")


def _flat(kind: type[And] | type[Or], items: tuple[Predicate, ...]) -> Predicate:
    out: list[Predicate] = []
    for item in items:
        out.extend(item.items if isinstance(item, kind) else (item,))
    return out[0] if len(out) == 1 else kind(tuple(out))


def _read_binary(
    expr: BinaryExpression[Any], value_of: ValueOf, column: Column[Any] | None
) -> Predicate:
    op = expr.operator
    right = expr.right
    if column is None:
        return _opaque(expr, "the left side is not a column of the table")
    if op in _COMPARISONS:
        known, value = _constant(right, value_of)
        if not known:
            return _opaque(expr, "the compared value is not a constant known before execution")
        if not _fits(column, value):
            return _opaque(
                expr,
                f"{column.name} ({column.type}) compared with a {type(value).__name__}",
            )
        return Atom(column, _COMPARISONS[op], value)
    if op in (operators.is_, operators.is_not):
        if isinstance(right, Null):
            return Atom(column, "IS NULL" if op is operators.is_ else "IS NOT NULL")
        known, value = _constant(right, value_of)
        if known and isinstance(value, bool) and isinstance(column.type, Boolean):
            return Atom(column, _BOOL_TESTS[(op, value)])
        return _opaque(expr, "IS with something other than NULL, TRUE or FALSE")
    if op is operators.in_op and isinstance(right, BindParameter):
        known, values = value_of(right)
        if not known or not isinstance(values, (list, tuple)):
            return _opaque(expr, "the IN list is not known before execution")
        if not values or len(values) > MAX_IN_VALUES:
            return _opaque(expr, f"an IN list of {len(values)} values (1 to 100 are modelled)")
        if not all(_fits(column, v) for v in values):
            return _opaque(expr, f"an IN list whose values are not all of {column.name}'s type")
        return AnyOf(column, tuple(values))
    if op in (operators.between_op, operators.not_between_op) and hasattr(right, "clauses"):
        bounds = list(right.clauses)
        if len(bounds) != 2 or expr.modifiers.get("symmetric"):
            return _opaque(expr, "BETWEEN SYMMETRIC is not modelled")
        (k1, low), (k2, high) = (_constant(b, value_of) for b in bounds)
        if not (k1 and k2 and _fits(column, low) and _fits(column, high)):
            return _opaque(expr, "BETWEEN bounds not known before execution or of another type")
        if op is operators.between_op:  # the parser's x >= a AND x <= b
            return And((Atom(column, ">=", low), Atom(column, "<=", high)))
        return Or((Atom(column, "<", low), Atom(column, ">", high)))
    return _opaque(expr, f"the operator {getattr(op, '__name__', op)} is not modelled")


# --- implication ------------------------------------------------------------------------

#: three-valued: True proved, False not provable by PostgreSQL, None outside the model
Truth = bool | None


def _any(results: Iterator[Truth]) -> Truth:
    out: Truth = False
    for r in results:
        if r is True:
            return True
        if r is None:
            out = None
    return out


def _each(results: Iterator[Truth]) -> Truth:
    out: Truth = True
    for r in results:
        if r is False:
            return False
        if r is None:
            out = None
    return out


def _order(a: Any, b: Any) -> int | None:
    """-1, 0, 1 comparing two constants, or None when Python cannot tell PostgreSQL's
    order (strings: collation; naive vs aware timestamps)."""
    if isinstance(a, str) or isinstance(b, str):
        return 0 if a == b else None
    try:
        return int(a > b) - int(a < b)
    except TypeError:
        return None


def _interval(atom: Atom) -> tuple[Any, bool, Any, bool]:
    """(low, low included, high, high included) of a comparison; None: unbounded."""
    v = atom.value
    return {
        "=": (v, True, v, True),
        "<": (None, False, v, False),
        "<=": (None, False, v, True),
        ">": (v, False, None, False),
        ">=": (v, True, None, False),
    }[atom.op]


def _contained(clause: Atom, pred: Atom) -> Truth:
    """Whether every value satisfying ``clause`` satisfies ``pred`` (dense order: the
    btree proof rules of predtest.c know nothing of integers' gaps)."""
    strings = isinstance(clause.value, str) or isinstance(pred.value, str)
    if clause.op == "=" and pred.op == "=" and strings:
        return bool(clause.value == pred.value)  # (deterministic collations)
    c_lo, c_lo_in, c_hi, c_hi_in = _interval(clause)
    p_lo, p_lo_in, p_hi, p_hi_in = _interval(pred)
    checks: list[Truth] = []
    if p_lo is not None:
        if c_lo is None:
            return False
        o = _order(c_lo, p_lo)
        checks.append(None if o is None else (o > 0 or (o == 0 and (p_lo_in or not c_lo_in))))
    if p_hi is not None:
        if c_hi is None:
            return False
        o = _order(c_hi, p_hi)
        checks.append(None if o is None else (o < 0 or (o == 0 and (p_hi_in or not c_hi_in))))
    return _each(iter(checks))


def _atom_implies(clause: Atom, pred: Atom) -> Truth:
    if clause.column is not pred.column:
        return False
    if pred.op == "IS NOT NULL":  # implied by a clause strict for the column
        if clause.op == "=" and isinstance(clause.value, bool):
            return clause.value  # flag is strict for flag; NOT flag is not (predtest.c)
        return clause.op in _ORDERED or clause.op == "IS NOT NULL"
    if pred.op not in _ORDERED:  # IS NULL, IS [NOT] TRUE/FALSE: only by themselves
        return clause.op == pred.op
    if clause.op not in _ORDERED:
        return False
    if isinstance(pred.value, bool) or isinstance(clause.value, bool):
        return clause.op == pred.op == "=" and clause.value == pred.value
    return _contained(clause, pred)


def _same(a: Predicate, b: Predicate) -> bool:
    """predtest.c's first rule: a clause implies an equal() predicate."""
    return a == b or (
        isinstance(a, Opaque) and isinstance(b, Opaque) and a.sql is not None and a.sql == b.sql
    )


def _expand(node: Predicate) -> Predicate:
    if isinstance(node, AnyOf):
        return Or(tuple(Atom(node.column, "=", v) for v in node.values))
    return node


def _implies(clause: Predicate, pred: Predicate) -> Truth:
    if _same(clause, pred):
        return True
    clause, pred = _expand(clause), _expand(pred)
    if isinstance(clause, And):
        if isinstance(pred, And):
            return _each(_implies(clause, p) for p in pred.items)
        if isinstance(pred, Or):
            return _any(
                iter(
                    (
                        _any(_implies(clause, p) for p in pred.items),
                        _any(_implies(c, pred) for c in clause.items),
                    )
                )
            )
        return _any(_implies(c, pred) for c in clause.items)
    if isinstance(clause, Or):
        if isinstance(pred, Or):
            return _each(_any(_implies(c, p) for p in pred.items) for c in clause.items)
        return _each(_implies(c, pred) for c in clause.items)
    if isinstance(pred, And):
        return _each(_implies(clause, p) for p in pred.items)
    if isinstance(pred, Or):
        return _any(_implies(clause, p) for p in pred.items)
    if isinstance(clause, Atom) and isinstance(pred, Atom):
        return _atom_implies(clause, pred)
    return None  # an Opaque side


def conjuncts(predicate: Predicate | None) -> tuple[Predicate, ...]:
    """The top-level AND items of ``predicate`` (itself when it is not an AND)."""
    if predicate is None:
        return ()
    return predicate.items if isinstance(predicate, And) else (predicate,)


def _columns(predicate: Predicate) -> Iterator[Column[Any]]:
    if isinstance(predicate, (Atom, AnyOf)):
        yield predicate.column
    elif isinstance(predicate, (And, Or)):
        for item in predicate.items:
            yield from _columns(item)


def _unknowns(predicate: Predicate) -> Iterator[Opaque]:
    if isinstance(predicate, Opaque):
        yield predicate
    elif isinstance(predicate, (And, Or)):
        for item in predicate.items:
            yield from _unknowns(item)


@dataclass(frozen=True)
class Implication:
    """The verdict of :func:`implies`: ``proven`` True (PostgreSQL proves it), False
    (it cannot), None (outside the model: cannot tell); ``reason`` says why, in terms
    of both sides (``query has cat = 2, index requires cat = 3``)."""

    proven: bool | None
    reason: str


def implies(clause: Predicate | None, predicate: Predicate) -> Implication:
    """Whether the query's WHERE (``clause``, None when there is none) implies an
    index ``predicate``, by predtest.c's rules (see the module docstring)."""
    if clause is None:
        return Implication(False, f"the query has no WHERE; index requires {predicate}")
    proven = _implies(clause, predicate)
    if proven is True:
        return Implication(True, f"the query's {clause} implies {predicate}")
    if proven is None:
        unknown = [*_unknowns(predicate), *_unknowns(clause)]
        why = "; ".join(f"{u}: {u.why}" for u in unknown) or (
            "the order of these constants depends on the server (a string's on the "
            "column's collation)"
        )
        return Implication(
            None, f"cannot tell whether the query's WHERE implies {predicate} ({why})"
        )
    columns: list[Column[Any]] = []
    for col in _columns(predicate):
        if not any(col is c for c in columns):
            columns.append(col)
    relevant = [
        item
        for item in conjuncts(clause)
        if any(col is c for col in _columns(item) for c in columns)
    ]
    has = " AND ".join(_parenthesised(c) for c in relevant)
    if not has:
        has = "no condition on " + ", ".join(c.name for c in columns)
    return Implication(False, f"query has {has}, index requires {predicate}")


# --- partition pruning ------------------------------------------------------------------

#: the conditions on a partition key column that PostgreSQL prunes by
#: (src/backend/partitioning/partprune.c): btree comparisons and IN for LIST and RANGE,
#: equality (and IN, an OR of equalities) for HASH
_PRUNING_OPS = {
    "list": frozenset({"=", "<", "<=", ">", ">=", "IS NULL"}),
    "range": frozenset({"=", "<", "<=", ">", ">="}),
    "hash": frozenset({"="}),
}


def _prunes(item: Predicate, column: Column[Any], strategy: str) -> bool:
    if isinstance(item, AnyOf):
        return item.column is column
    if isinstance(item, Atom):
        return item.column is column and item.op in _PRUNING_OPS[strategy]
    if isinstance(item, And):
        return any(_prunes(i, column, strategy) for i in item.items)
    return False


def unpruned_key_columns(
    where: Predicate | None, strategy: str, columns: tuple[Column[Any], ...]
) -> list[Column[Any]]:
    """The partition key ``columns`` that ``where`` (a query's WHERE) does not restrict
    the way PostgreSQL prunes by; empty when the plan scans only matching partitions.

    ``strategy`` is ``"list"``, ``"range"`` or ``"hash"``. LIST and RANGE prune by a
    comparison, ``IN`` or ``BETWEEN`` on the key's first column (a multi-column RANGE
    key by its leading columns), HASH only by equality (or ``IN``) on every key column
    (partprune.c). Conditions under an OR or outside the model do not count.
    """
    if strategy not in _PRUNING_OPS:
        raise ValueError(f"strategy must be 'list', 'range' or 'hash', got {strategy!r}")
    needed = columns if strategy == "hash" else columns[:1]
    items = conjuncts(where)
    return [c for c in needed if not any(_prunes(i, c, strategy) for i in items)]
