"""The rules pgvector enforces at ``CREATE INDEX``, checked on the client first.

:func:`validate_vector_index` turns a method, an indexed expression and its options into
a normalised :class:`VectorIndexSpec`, or raises
:class:`~vecalchemy.exc.IndexDefinitionError` naming the rule and the remedy. The
declarations (:mod:`vecalchemy.indexes.declaration`) and Alembic's
``op.create_vector_index`` call it. The facts come from :mod:`vecalchemy.facts`; the
rules from pgvector's sources (src/hnsw.c, src/hnswbuild.c, src/ivfflat.c,
src/ivfbuild.c, src/hnswutils.c, src/ivfutils.c).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.dialects.postgresql import BIT
from sqlalchemy.sql import ClauseElement, ColumnElement
from sqlalchemy.sql.elements import Cast, ColumnClause, Label

from ..exc import IndexDefinitionError
from ..facts import (
    DEFAULT_OPCLASS,
    INDEX_LIMITS,
    INDEX_METHODS,
    INDEX_OPTIONS,
    METHOD_NAMES,
    OPCLASSES,
    metrics_for,
    opclass_for,
    opclass_info,
)
from ..sqltext import check_where
from ..types import VectorType

__all__ = [
    "VectorIndexSpec",
    "validate_vector_index",
    "check_options",
    "index_error",
    "unlabel",
    "vector_type_of",
]


@dataclass(frozen=True)
class VectorIndexSpec:
    """What a vector index is, normalised: the same for a declaration and a reflection.

    ``options`` holds only the options given explicitly (``m``, ``ef_construction``,
    ``lists``), as PostgreSQL's ``pg_class.reloptions`` does. ``expression`` is the
    indexed Column or SQL expression (without any label), ``where`` the partial-index
    predicate or ``None``.
    """

    method: str
    sql_type: str
    dim: int
    metric: str
    opclass: str
    options: Mapping[str, int] = field(default_factory=dict, hash=False)
    expression: ColumnElement[Any] | None = field(default=None, compare=False, hash=False)
    where: ClauseElement | None = field(default=None, compare=False, hash=False)


def index_error(method: str, message: str) -> IndexDefinitionError:
    """An :class:`~vecalchemy.exc.IndexDefinitionError` prefixed ``HNSW index: ``."""
    return IndexDefinitionError(f"{METHOD_NAMES.get(method, method)} index: {message}")


def unlabel(expression: Any) -> Any:
    """``expression`` without the labels around it (declarations label expressions)."""
    while isinstance(expression, Label):
        expression = expression.element
    return expression


def vector_type_of(expression: ColumnElement[Any]) -> tuple[str, int | None, str | None]:
    """(sql type, dim, declared metric) of an indexed expression, or raise TypeError."""
    vtype = expression.type
    if isinstance(vtype, VectorType):
        return vtype.sql_type, vtype.dim, vtype.metric
    if isinstance(vtype, BIT):  # a reflected bit(n) column
        return "bit", (None if vtype.varying else vtype.length), None
    raise TypeError(vtype)


def check_options(method: str, options: Mapping[str, Any]) -> dict[str, int]:
    """The checked ``WITH`` options of a ``method`` index (``m``, ``ef_construction``,
    ``lists``): ints in pgvector's ranges, ``ef_construction >= 2*m``. Raises
    :class:`~vecalchemy.exc.IndexDefinitionError` otherwise."""
    allowed = INDEX_OPTIONS[method]
    checked: dict[str, int] = {}
    for name, value in options.items():
        if name not in allowed:
            raise index_error(
                method,
                f'unrecognized parameter "{name}"; {METHOD_NAMES[method]} accepts '
                + ", ".join(allowed),
            )
        _, low, high = allowed[name]
        if isinstance(value, bool) or not isinstance(value, int):
            raise index_error(
                method, f"{name} must be an int between {low} and {high}, got {value!r}"
            )
        if not low <= value <= high:
            raise index_error(
                method,
                f'value {value} out of bounds for option "{name}": valid values are between '
                f'"{low}" and "{high}" (pgvector src/{method}.c)',
            )
        checked[name] = value
    if method == "hnsw":
        m = checked.get("m", allowed["m"][0])
        ef = checked.get("ef_construction", allowed["ef_construction"][0])
        if ef < 2 * m:
            raise index_error(
                method,
                f"ef_construction must be greater than or equal to 2 * m (m={m}, "
                f"ef_construction={ef}); give ef_construction >= {2 * m} or a smaller m "
                "(pgvector src/hnswbuild.c)",
            )
    return checked


def _resolve_opclass(
    method: str, sql_type: str, declared: str | None, metric: str | None, opclass: str | None
) -> tuple[str, str]:
    """(metric, opclass) for the index, from an explicit opclass, metric or the type."""
    if opclass is not None:
        try:
            o_type, o_metric, o_methods = opclass_info(opclass)
        except ValueError:
            right = (
                f"; for {sql_type} by {metric} use {opclass_for(sql_type, metric)}"
                if metric is not None and (sql_type, metric) in OPCLASSES
                else ""
            )
            raise index_error(
                method, f"unknown pgvector operator class {opclass!r}{right}"
            ) from None
        wanted_metric = metric or o_metric
        if o_type != sql_type:
            right = (
                f"use {OPCLASSES[(sql_type, wanted_metric)][0]}"
                if (sql_type, wanted_metric) in OPCLASSES
                else f"{sql_type} supports: {', '.join(metrics_for(sql_type))}"
            )
            raise index_error(
                method,
                f"operator class {opclass} is for type {o_type}, but the indexed "
                f"expression is {sql_type}; {right}",
            )
        if metric is not None and metric != o_metric:
            raise index_error(
                method,
                f"operator class {opclass} serves the {o_metric!r} metric, not {metric!r}; "
                f"for {metric!r} use {OPCLASSES[(sql_type, metric)][0]}"
                if (sql_type, metric) in OPCLASSES
                else f"operator class {opclass} serves {o_metric!r}; {sql_type} has no "
                f"{metric!r} metric",
            )
        if metric is None and declared is not None and declared != o_metric:
            raise index_error(
                method,
                f"operator class {opclass} serves the {o_metric!r} metric, but the column "
                f"type declares {declared!r}; for {declared!r} use "
                f"{OPCLASSES[(sql_type, declared)][0]}, or pass metric={o_metric!r} to "
                "index it by another metric deliberately",
            )
        metric = o_metric
    if metric is None:
        metric = declared
    if metric is None:
        default = DEFAULT_OPCLASS.get(method)
        if default is not None and opclass_info(default)[0] == sql_type:
            metric = opclass_info(default)[1]
        else:
            raise index_error(
                method,
                f"data type {sql_type} has no default operator class for access method "
                f'"{method}"; give metric= (one of {", ".join(metrics_for(sql_type))}) '
                "or declare it on the column type, e.g. Vector(768, metric='cosine')",
            )
    if metric not in metrics_for(sql_type):
        raise index_error(
            method,
            f"type {sql_type} has no {metric!r} metric; it supports: "
            + ", ".join(metrics_for(sql_type)),
        )
    name, methods = OPCLASSES[(sql_type, metric)]
    if method not in methods:
        why = (
            "IVFFlat does not support sparsevec"
            if sql_type == "sparsevec"
            else f"IVFFlat has no {metric} operator class"
        )
        raise index_error(
            method,
            f'operator class "{name}" does not exist for access method "{method}" ({why}; '
            "pgvector sql/vector.sql); use HnswIndex",
        )
    return metric, name


def _dimension_remedy(sql_type: str, dim: int, method: str) -> str:
    halfvec = INDEX_LIMITS[("halfvec", method)].max_dim or 0
    bits = INDEX_LIMITS[("bit", method)].max_dim or 0
    if sql_type == "vector" and dim <= halfvec:
        return (
            f"index a half-precision expression instead: cast(col, HalfVec({dim})) "
            f"(up to {halfvec} dimensions), or cast(binary_quantize(col), Bit({dim})) "
            f"(up to {bits})"
        )
    if sql_type in ("vector", "halfvec") and dim <= bits:
        return (
            f"index a binary-quantized expression instead: cast(binary_quantize(col), "
            f"Bit({dim})) (up to {bits} dimensions), and re-rank with the exact distance"
        )
    return "index a subvector, e.g. cast(subvector(col, 1, n), Vector(n)), or reduce dimensions"


def validate_vector_index(
    method: str,
    expression: Any,
    *,
    metric: str | None = None,
    opclass: str | None = None,
    options: Mapping[str, Any] | None = None,
    unique: bool = False,
    include: Iterable[Any] = (),
    n_expressions: int = 1,
    where: ClauseElement | None = None,
) -> VectorIndexSpec:
    """Check a vector index definition against pgvector's rules; return its spec.

    ``method`` is ``"hnsw"`` or ``"ivfflat"``; ``expression`` a Column or SQL
    expression typed ``Vector(n)``/``HalfVec(n)``/``SparseVec(n)``/``Bit(n)``. The
    operator class is ``opclass``, else the one for ``metric``, else for the metric the
    column type declares (IVFFlat alone has a default, ``vector_l2_ops``).

    Raises :class:`~vecalchemy.exc.IndexDefinitionError` naming the rule and the remedy
    for: an unknown method; more than one expression, ``unique`` or ``include``
    (pgvector src/hnsw.c, src/ivfflat.c: ``amcanmulticol``/``amcanunique``/
    ``amcaninclude`` are false); a non-vector or dimensionless expression ("column does
    not have dimensions"); an opclass contradicting the type or metric; IVFFlat with
    l1, jaccard or sparsevec; more dimensions than the method indexes (2 000 vector,
    4 000 halfvec, 64 000 bit; src/hnswutils.c, src/ivfutils.c); options out of range
    (``m`` 2-100, ``ef_construction`` 4-1000 and >= 2*m, ``lists`` 1-32768); ivfflat
    ip/cosine on a 1-dimensional expression.
    """
    if method not in INDEX_METHODS:
        raise IndexDefinitionError(
            f"unknown vector index method {method!r}; expected one of {', '.join(INDEX_METHODS)}"
        )
    if n_expressions != 1:
        raise index_error(
            method,
            f'access method "{method}" does not support multicolumn indexes (got '
            f"{n_expressions} expressions); index the vector alone and filter with a "
            "partial index (where=) or a B-tree on the other column",
        )
    if unique:
        raise index_error(method, f'access method "{method}" does not support unique indexes')
    if tuple(include):
        raise index_error(
            method, f'access method "{method}" does not support included columns (INCLUDE)'
        )
    if where is not None and not isinstance(where, ClauseElement):
        raise index_error(
            method,
            f"where= must be a SQL expression (e.g. Doc.category == 1 or text(...)), "
            f"got {type(where).__name__}",
        )
    check_where(where)
    if hasattr(expression, "__clause_element__"):
        expression = expression.__clause_element__()
    expression = unlabel(expression)
    if not isinstance(expression, ColumnElement):
        raise index_error(
            method,
            f"needs a typed Column or SQL expression to check, got {expression!r}; "
            "pass the Column, or column('name', Vector(n)) / cast(...)",
        )
    try:
        sql_type, dim, declared = vector_type_of(expression)
    except TypeError:
        raise index_error(
            method,
            f"the indexed expression must be vector, halfvec, sparsevec or bit (vecalchemy "
            f"Vector/HalfVec/SparseVec/Bit), got {expression.type!r}",
        ) from None
    if dim is None:
        raise index_error(
            method,
            f"column does not have dimensions: a {sql_type} without a dimension cannot be "
            f"indexed; declare one (e.g. {type(expression.type).__name__}(768)) or index "
            "an expression cast to one",
        )
    if not isinstance(expression, (ColumnClause, Cast)):
        # a function or operator result has no type modifier on the server, whatever type
        # SQLAlchemy gives it: pgvector reads the dimensions from the modifier only
        # (src/hnswbuild.c, src/ivfbuild.c)
        name = type(expression.type).__name__
        raise index_error(
            method,
            f"column does not have dimensions: the server gives this {sql_type} expression "
            f"no dimensions; cast it, e.g. cast(expression, {name}({dim}))",
        )
    metric, resolved = _resolve_opclass(method, sql_type, declared, metric, opclass)
    limit = INDEX_LIMITS.get((sql_type, method))
    if limit is None:  # not reached while OPCLASSES and INDEX_LIMITS agree
        raise index_error(method, f"type {sql_type} is not supported by {method}")
    if limit.max_dim is not None and dim > limit.max_dim:
        raise index_error(
            method,
            f"column cannot have more than {limit.max_dim} dimensions for {method} index "
            f"({sql_type}({dim})); {_dimension_remedy(sql_type, dim, method)}",
        )
    if method == "ivfflat" and dim == 1 and metric in ("inner_product", "cosine"):
        raise index_error(
            method,
            f"dimensions must be greater than one for this opclass ({resolved} on a "
            "1-dimensional column); use l2 or an HNSW index",
        )
    checked = check_options(method, options or {})
    return VectorIndexSpec(
        method=method,
        sql_type=sql_type,
        dim=dim,
        metric=metric,
        opclass=resolved,
        options=checked,
        expression=expression,
        where=where,
    )
