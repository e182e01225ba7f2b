"""HNSW and IVFFlat indexes: real :class:`sqlalchemy.Index` objects, validated when declared.

``HnswIndex("ix_doc_emb", Doc.embedding, metric="cosine", m=16)`` emits
``CREATE INDEX ix_doc_emb ON doc USING hnsw (embedding vector_cosine_ops) WITH (m = 16)``
through SQLAlchemy's own PostgreSQL dialect options (``postgresql_using``,
``postgresql_ops``, ``postgresql_with``, ``postgresql_where``,
``postgresql_concurrently``). An expression (``cast(col, HalfVec(3072))``) is labelled
so that SQLAlchemy attaches the operator class to it.

Every rule pgvector enforces at ``CREATE INDEX`` is checked on the client first, by
:func:`validate_vector_index`, which Alembic's ``op.create_vector_index`` uses too. The
facts come from :mod:`vecalchemy.metrics` and pgvector's sources (src/hnsw.c,
src/hnswbuild.c, src/ivfflat.c, src/ivfbuild.c, src/hnswutils.c, src/ivfutils.c).
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sqlalchemy import Index, event, literal_column, text
from sqlalchemy.dialects.postgresql import BIT
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.schema import CreateIndex, DropIndex
from sqlalchemy.sql import ClauseElement, ColumnElement
from sqlalchemy.sql.elements import ColumnClause, Label, TextClause

from .exc import IndexDefinitionError
from .metrics import (
    DEFAULT_OPCLASS,
    INDEX_LIMITS,
    INDEX_METHODS,
    OPCLASSES,
    metrics_for,
    opclass_for,
    opclass_info,
)
from .types import TYPES_BY_SQL_TYPE, VectorType

__all__ = [
    "HnswIndex",
    "IvfflatIndex",
    "VectorIndexSpec",
    "INDEX_OPTIONS",
    "validate_vector_index",
    "vector_index_spec",
    "BuildProgress",
    "build_vector_index",
    "BuildSettings",
    "index_build_settings",
]

#: index method -> option name -> (default, min, max). pgvector src/hnsw.c, src/ivfflat.c.
INDEX_OPTIONS: dict[str, dict[str, tuple[int, int, int]]] = {
    "hnsw": {"m": (16, 2, 100), "ef_construction": (64, 4, 1000)},
    "ivfflat": {"lists": (100, 1, 32768)},
}

_METHOD_NAMES = {"hnsw": "HNSW", "ivfflat": "IVFFlat"}
#: the label that carries the operator class of an expression index (postgresql_ops key)
_EXPR_KEY = "vector_index_expr"


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


def _fail(method: str, message: str) -> IndexDefinitionError:
    return IndexDefinitionError(f"{_METHOD_NAMES.get(method, method)} index: {message}")


def _unlabel(expression: Any) -> Any:
    while isinstance(expression, Label):
        expression = expression.element
    return expression


def _vector_type_of(expression: ColumnElement[Any]) -> tuple[str, int | None, str | None]:
    """(sql type, dim, declared metric) of an indexed expression, or raise TypeError."""
    vtype = expression.type
    if isinstance(vtype, VectorType):
        return vtype.sql_type, vtype.dim, vtype.metric
    if isinstance(vtype, BIT):  # a reflected bit(n) column
        return "bit", (None if vtype.varying else vtype.length), None
    raise TypeError(vtype)


def _check_options(method: str, options: Mapping[str, Any]) -> dict[str, int]:
    allowed = INDEX_OPTIONS[method]
    checked: dict[str, int] = {}
    for name, value in options.items():
        if name not in allowed:
            raise _fail(
                method,
                f'unrecognized parameter "{name}"; {_METHOD_NAMES[method]} accepts '
                + ", ".join(allowed),
            )
        _, low, high = allowed[name]
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(method, f"{name} must be an int between {low} and {high}, got {value!r}")
        if not low <= value <= high:
            raise _fail(
                method,
                f'value {value} out of bounds for option "{name}": valid values are between '
                f'"{low}" and "{high}" (pgvector src/{method}.c)',
            )
        checked[name] = value
    if method == "hnsw":
        m = checked.get("m", allowed["m"][0])
        ef = checked.get("ef_construction", allowed["ef_construction"][0])
        if ef < 2 * m:
            raise _fail(
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
            raise _fail(method, f"unknown pgvector operator class {opclass!r}{right}") from None
        wanted_metric = metric or o_metric
        if o_type != sql_type:
            right = (
                f"use {OPCLASSES[(sql_type, wanted_metric)][0]}"
                if (sql_type, wanted_metric) in OPCLASSES
                else f"{sql_type} supports: {', '.join(metrics_for(sql_type))}"
            )
            raise _fail(
                method,
                f"operator class {opclass} is for type {o_type}, but the indexed "
                f"expression is {sql_type}; {right}",
            )
        if metric is not None and metric != o_metric:
            raise _fail(
                method,
                f"operator class {opclass} serves the {o_metric!r} metric, not {metric!r}; "
                f"for {metric!r} use {OPCLASSES[(sql_type, metric)][0]}"
                if (sql_type, metric) in OPCLASSES
                else f"operator class {opclass} serves {o_metric!r}; {sql_type} has no "
                f"{metric!r} metric",
            )
        if metric is None and declared is not None and declared != o_metric:
            raise _fail(
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
            raise _fail(
                method,
                f"data type {sql_type} has no default operator class for access method "
                f'"{method}"; give metric= (one of {", ".join(metrics_for(sql_type))}) '
                "or declare it on the column type, e.g. Vector(768, metric='cosine')",
            )
    if metric not in metrics_for(sql_type):
        raise _fail(
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
        raise _fail(
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
        raise _fail(
            method,
            f'access method "{method}" does not support multicolumn indexes (got '
            f"{n_expressions} expressions); index the vector alone and filter with a "
            "partial index (where=) or a B-tree on the other column",
        )
    if unique:
        raise _fail(method, f'access method "{method}" does not support unique indexes')
    if tuple(include):
        raise _fail(
            method, f'access method "{method}" does not support included columns (INCLUDE)'
        )
    if where is not None and not isinstance(where, ClauseElement):
        raise _fail(
            method,
            f"where= must be a SQL expression (e.g. Doc.category == 1 or text(...)), "
            f"got {type(where).__name__}",
        )
    if hasattr(expression, "__clause_element__"):
        expression = expression.__clause_element__()
    expression = _unlabel(expression)
    if not isinstance(expression, ColumnElement):
        raise _fail(
            method,
            f"needs a typed Column or SQL expression to check, got {expression!r}; "
            "pass the Column, or column('name', Vector(n)) / cast(...)",
        )
    try:
        sql_type, dim, declared = _vector_type_of(expression)
    except TypeError:
        raise _fail(
            method,
            f"the indexed expression must be vector, halfvec, sparsevec or bit (vecalchemy "
            f"Vector/HalfVec/SparseVec/Bit), got {expression.type!r}",
        ) from None
    if dim is None:
        raise _fail(
            method,
            f"column does not have dimensions: a {sql_type} without a dimension cannot be "
            f"indexed; declare one (e.g. {type(expression.type).__name__}(768)) or index "
            "an expression cast to one",
        )
    metric, resolved = _resolve_opclass(method, sql_type, declared, metric, opclass)
    limit = INDEX_LIMITS.get((sql_type, method))
    if limit is None:  # not reached while OPCLASSES and INDEX_LIMITS agree
        raise _fail(method, f"type {sql_type} is not supported by {method}")
    if limit.max_dim is not None and dim > limit.max_dim:
        raise _fail(
            method,
            f"column cannot have more than {limit.max_dim} dimensions for {method} index "
            f"({sql_type}({dim})); {_dimension_remedy(sql_type, dim, method)}",
        )
    if method == "ivfflat" and dim == 1 and metric in ("inner_product", "cosine"):
        raise _fail(
            method,
            f"dimensions must be greater than one for this opclass ({resolved} on a "
            "1-dimensional column); use l2 or an HNSW index",
        )
    checked = _check_options(method, options or {})
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


def _int_option(value: Any) -> int:
    """Reflected WITH values are strings ('16'); declared ones are ints."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return value  # type: ignore[no-any-return]  # validated by _check_options


def vector_index_spec(index: Index) -> VectorIndexSpec | None:
    """The :class:`VectorIndexSpec` of any :class:`sqlalchemy.Index`, or ``None``.

    Works for :class:`HnswIndex`/:class:`IvfflatIndex` and for a plain
    ``Index(..., postgresql_using="hnsw", postgresql_ops={...})`` (declared or
    reflected). ``None`` when the index does not use hnsw/ivfflat or is not attached to
    a table yet (string columns cannot be typed before). Raises
    :class:`~vecalchemy.exc.IndexDefinitionError` when it is a vector index that
    pgvector would refuse.
    """
    if isinstance(index, _VectorIndex) and index.spec is not None:
        return index.spec
    pg = index.dialect_options["postgresql"]
    method = pg.get("using")
    if not isinstance(method, str) or method.lower() not in INDEX_METHODS:
        return None
    method = method.lower()
    expressions = list(index.expressions)
    if any(not isinstance(e, ClauseElement) for e in expressions):
        return None
    ops: Mapping[str, str] = pg.get("ops") or {}
    opclass = None
    metric = None
    first: Any = expressions[0] if expressions else None
    if len(expressions) == 1:
        key = first.text if isinstance(first, TextClause) else getattr(first, "key", None)
        opclass = ops.get(key) if key is not None else None
        if isinstance(first, TextClause):
            first = _typed_reflected_expression(first.text)
        if opclass is None:
            opclass = _default_opclass(method, first, key)
        else:
            # a named operator class is deliberate: the index serves its metric, whatever
            # the column type declares (an unknown name is refused below)
            with suppress(ValueError):
                metric = opclass_info(opclass)[1]
    with_: Mapping[str, Any] = pg.get("with") or {}
    options = {k: _int_option(v) for k, v in with_.items()}
    where = pg.get("where")
    if isinstance(where, str):  # reflected: "(cat = 1)"
        where = text(where)
    return validate_vector_index(
        method,
        first,
        metric=metric,
        opclass=opclass,
        options=options,
        unique=index.unique,
        include=pg.get("include") or (),
        n_expressions=len(expressions),
        where=where,
    )


def _default_opclass(method: str, expression: Any, key: str | None) -> str | None:
    """The opclass PostgreSQL picks for a key whose DDL names none.

    That is the method's default for the key's type (IVFFlat ``vector_l2_ops``), never
    the metric the column type declares; refused, as by PostgreSQL, when there is none,
    and when the column type declares another metric (the index would not serve it).
    ``None`` when the type is unknown (left to :func:`validate_vector_index`).
    """
    try:
        sql_type, _, declared = _vector_type_of(_unlabel(expression))
    except (TypeError, AttributeError):
        return None
    default = DEFAULT_OPCLASS.get(method)
    name = key or "embedding"
    if default is None or opclass_info(default)[0] != sql_type:
        raise _fail(
            method,
            f'data type {sql_type} has no default operator class for access method "{method}"; '
            f'name one in postgresql_ops (e.g. {{"{name}": "vector_cosine_ops"}}), or '
            "declare HnswIndex/IvfflatIndex, which take the column type's metric",
        )
    default_metric = opclass_info(default)[1]
    if declared is not None and declared != default_metric:
        wanted = OPCLASSES.get((sql_type, declared), (None,))[0]
        raise _fail(
            method,
            f"the index names no operator class, so PostgreSQL builds {default} "
            f"({default_metric!r}), but the column type declares {declared!r}; name the "
            f'operator class: postgresql_ops={{"{name}": "{wanted or default}"}} (or '
            f'"{default}" to index by {default_metric!r} deliberately), or declare '
            "IvfflatIndex, which takes the column type's metric",
        )
    return default


#: a reflected expression ends with a cast to a typed vector: ``(e::halfvec(3))``
_REFLECTED_CAST = re.compile(rf"::({'|'.join(TYPES_BY_SQL_TYPE)})\((\d+)\)\)*$")


def _typed_reflected_expression(sql: str) -> Any:
    """A reflected expression (text) as a typed ``literal_column`` for validation."""
    found = _REFLECTED_CAST.search(sql.strip())
    if found is None:
        return text(sql)  # refused by validate_vector_index: its type is unknown
    sql_type, dim = found.group(1), int(found.group(2))
    return literal_column(sql, TYPES_BY_SQL_TYPE[sql_type](dim))


_RESERVED = ("postgresql_using", "postgresql_ops", "postgresql_with", "postgresql_include")


class _VectorIndex(Index):
    """Common machinery of :class:`HnswIndex` and :class:`IvfflatIndex`."""

    method: ClassVar[str] = ""
    spec: VectorIndexSpec | None
    metric: str | None
    opclass: str | None
    concurrently: bool

    def __init__(
        self,
        name: str,
        column_or_expression: Any,
        *,
        metric: str | None = None,
        opclass: str | None = None,
        options: Mapping[str, int | None],
        where: ClauseElement | None = None,
        concurrently: bool = False,
        **kw: Any,
    ) -> None:
        method = self.method
        if kw.get("postgresql_include"):
            raise _fail(
                method, f'access method "{method}" does not support included columns (INCLUDE)'
            )
        kw.pop("postgresql_include", None)
        for key in _RESERVED:
            if key in kw:
                raise _fail(method, f"{key} is set by {type(self).__name__}; do not pass it")
        if kw.get("unique"):
            raise _fail(method, f'access method "{method}" does not support unique indexes')
        kw.pop("unique", None)
        if not isinstance(concurrently, bool):
            raise _fail(method, f"concurrently must be a bool, got {concurrently!r}")
        given = {k: v for k, v in options.items() if v is not None}
        checked = _check_options(method, given)
        if where is not None and not isinstance(where, ClauseElement):
            raise _fail(
                method,
                f"where= must be a SQL expression (e.g. Doc.category == 1 or text(...)), "
                f"got {type(where).__name__}",
            )
        expr = column_or_expression
        if hasattr(expr, "__clause_element__"):
            expr = expr.__clause_element__()
        if isinstance(expr, ColumnElement) and not isinstance(expr, (ColumnClause, Label)):
            expr = expr.label(_EXPR_KEY)  # so postgresql_ops can name the expression
        elif not isinstance(expr, (str, ColumnElement)):
            raise _fail(
                method,
                f"expected a column name, Column or SQL expression, got {type(expr).__name__}",
            )
        self.metric = metric
        self.opclass = opclass
        self.concurrently = concurrently
        self.spec = None
        self.table = None
        self._vector_options = checked
        if isinstance(expr, ColumnElement):
            self._validate(expr, where)  # fail at declaration when the type is already known
        super().__init__(
            name,
            expr,
            postgresql_using=method,
            postgresql_with=dict(checked),
            postgresql_where=where,
            postgresql_concurrently=concurrently,
            **kw,
        )
        if self.table is not None:
            self._validate(self.expressions[0])
        else:
            event.listen(self, "after_parent_attach", _validate_on_attach)
        if concurrently:
            self.ddl_if(callable_=_build_plainly_in_transaction)

    def _validate(self, expr: Any, where: ClauseElement | None = None) -> None:
        if self.table is not None:
            where = self.dialect_options["postgresql"]["where"]
        spec = validate_vector_index(
            self.method,
            expr,
            metric=self.metric,
            opclass=self.opclass,
            options=self._vector_options,
            where=where,
        )
        self.spec = spec
        if self.table is not None:
            key = getattr(expr, "key", None) or _EXPR_KEY
            self.dialect_kwargs["postgresql_ops"] = {key: spec.opclass}

    def create(self, bind: Any, checkfirst: Any = False) -> None:
        """Issue ``CREATE INDEX`` on ``bind`` (an Engine or Connection).

        With ``concurrently=True`` the statement runs outside a transaction block (an
        Engine gives an AUTOCOMMIT connection; a Connection must be AUTOCOMMIT), and a
        failed build leaves no INVALID index behind: it is dropped and the error
        re-raised. Raises :class:`~vecalchemy.exc.IndexDefinitionError` for a
        Connection inside a transaction (PostgreSQL refuses ``CREATE INDEX
        CONCURRENTLY`` there). For a progress bar use :func:`build_vector_index`.
        """
        build_vector_index(bind, self, checkfirst=bool(checkfirst), progress=False)

    def drop(self, bind: Any, checkfirst: Any = False) -> None:
        """Issue ``DROP INDEX`` (``CONCURRENTLY``, outside a transaction, when declared so)."""
        if not self.concurrently:
            super().drop(bind, checkfirst)
            return
        with _autocommit(bind, self) as conn:
            super().drop(conn, checkfirst)


def _validate_on_attach(index: _VectorIndex, table: Any) -> None:
    index._validate(index.expressions[0])


def _build_plainly_in_transaction(
    ddl: Any,
    target: Any,
    bind: Any,
    tables: Any = None,
    state: Any = None,
    *,
    dialect: Any,
    compiler: Any = None,
    checkfirst: bool = False,
) -> bool:
    """``ddl_if`` of a CONCURRENTLY index: inside a transaction block, build it plainly.

    ``metadata.create_all``/``table.create`` create the index right after its table, in
    one transaction, where PostgreSQL refuses CONCURRENTLY; the table is new and
    invisible to others, so a plain build blocks nobody. Outside a transaction
    (``index.create(engine)``, Alembic's autocommit block) CONCURRENTLY is emitted.
    """
    if not isinstance(ddl, CreateIndex) or bind is None or _is_autocommit(bind):
        return True
    # the flag is flipped for this one statement (DDL runs one statement at a time)
    options = target.dialect_options["postgresql"]
    options["concurrently"] = False
    try:
        bind.execute(CreateIndex(target))
    finally:
        options["concurrently"] = True
    return False


class HnswIndex(_VectorIndex):
    """An HNSW index (pgvector 0.5.0+): ``USING hnsw (expr opclass) WITH (m = .., ...)``.

    ``HnswIndex(name, column_or_expression, metric=None, opclass=None, m=None,
    ef_construction=None, where=None, concurrently=False, **kw)``. ``column_or_expression``
    is a column (name, Column or ORM attribute) or an expression such as
    ``cast(col, HalfVec(3072))``, ``cast(binary_quantize(col), Bit(3072))`` or
    ``cast(subvector(col, 1, 256), Vector(256))``. ``metric`` defaults to the one the
    column type declares; HNSW has no default operator class. ``m`` (2-100, default 16)
    and ``ef_construction`` (4-1000, >= 2*m, default 64) are emitted only when given.
    ``where`` makes a partial index; ``concurrently`` builds with ``CREATE INDEX
    CONCURRENTLY`` outside a transaction. Other keywords go to :class:`sqlalchemy.Index`.
    A ``sparsevec`` index takes any dimension but at most 1 000 non-zeros per row
    (``HNSW_MAX_NNZ``, pgvector src/hnsw.h); the server enforces that per row, at build
    and insert time.

    Raises :class:`~vecalchemy.exc.IndexDefinitionError` (see
    :func:`validate_vector_index`) when declared, or when attached to its table for a
    column given by name.
    """

    method = "hnsw"

    def __init__(
        self,
        name: str,
        column_or_expression: Any,
        *,
        metric: str | None = None,
        opclass: str | None = None,
        m: int | None = None,
        ef_construction: int | None = None,
        where: ClauseElement | None = None,
        concurrently: bool = False,
        **kw: Any,
    ) -> None:
        super().__init__(
            name,
            column_or_expression,
            metric=metric,
            opclass=opclass,
            options={"m": m, "ef_construction": ef_construction},
            where=where,
            concurrently=concurrently,
            **kw,
        )


class IvfflatIndex(_VectorIndex):
    """An IVFFlat index: ``USING ivfflat (expr opclass) WITH (lists = ..)``.

    ``IvfflatIndex(name, column_or_expression, metric=None, opclass=None, lists=None,
    where=None, concurrently=False, **kw)``. ``lists`` (1-32768, default 100; pgvector
    suggests rows/1000 up to 1M rows, sqrt(rows) above). Supports l2, inner_product and
    cosine for vector/halfvec and hamming for bit; not l1, jaccard or sparsevec. Without
    a metric a ``vector`` column gets ``vector_l2_ops`` (IVFFlat's default). Create it
    after the table has data: the lists are k-means centres of the rows present.

    Raises :class:`~vecalchemy.exc.IndexDefinitionError` (see
    :func:`validate_vector_index`).
    """

    method = "ivfflat"

    def __init__(
        self,
        name: str,
        column_or_expression: Any,
        *,
        metric: str | None = None,
        opclass: str | None = None,
        lists: int | None = None,
        where: ClauseElement | None = None,
        concurrently: bool = False,
        **kw: Any,
    ) -> None:
        super().__init__(
            name,
            column_or_expression,
            metric=metric,
            opclass=opclass,
            options={"lists": lists},
            where=where,
            concurrently=concurrently,
            **kw,
        )


# --- building: CONCURRENTLY outside a transaction, progress, cleanup ------------------


@dataclass(frozen=True)
class BuildProgress:
    """One sample of ``pg_stat_progress_create_index`` for a running build.

    ``phase`` as PostgreSQL shows it (``building index: loading tuples``); ``done`` and
    ``total`` count blocks (HNSW ``loading tuples``) or tuples (IVFFlat), whichever the
    phase reports (``unit`` says which: ``"blocks"`` or ``"tuples"``); ``total`` is 0
    while unknown.
    """

    phase: str
    done: int
    total: int
    unit: str = "blocks"


_PROGRESS_SQL = text(
    "SELECT phase, blocks_done, blocks_total, tuples_done, tuples_total "
    "FROM pg_stat_progress_create_index WHERE pid = :pid"
)
_INDEX_STATE_SQL = text(
    "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
    "WHERE c.relname = :name AND i.indrelid = to_regclass(:table)"
)


def _is_autocommit(conn: Connection) -> bool:
    if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
        return True
    return getattr(conn.connection.dbapi_connection, "autocommit", False) is True


@contextmanager
def _autocommit(bind: Any, index: Index) -> Iterator[Connection]:
    """An AUTOCOMMIT connection from an Engine, or the given AUTOCOMMIT Connection."""
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            yield conn.execution_options(isolation_level="AUTOCOMMIT")
        return
    if not isinstance(bind, Connection):
        raise TypeError(f"expected an Engine or Connection, got {type(bind).__name__}")
    if not _is_autocommit(bind):
        raise IndexDefinitionError(
            f"index {index.name!r} is declared concurrently=True, and CREATE/DROP INDEX "
            "CONCURRENTLY cannot run inside a transaction block; pass the Engine, or a "
            "connection with .execution_options(isolation_level='AUTOCOMMIT')"
        )
    yield bind


def _table_name(conn: Connection, index: Index) -> str:
    assert index.table is not None
    return conn.dialect.identifier_preparer.format_table(index.table)


def _drop_if_invalid(conn: Connection, index: Index) -> str | None:
    """Drop the INVALID index a failed CONCURRENTLY build left; return what happened."""
    try:
        valid = conn.execute(
            _INDEX_STATE_SQL, {"name": index.name, "table": _table_name(conn, index)}
        ).scalar()
        if valid is None or valid:
            return None
        conn.execute(DropIndex(index, if_exists=True))
        return f"the INVALID index {index.name!r} the failed build left was dropped"
    except Exception as e:  # the connection may be unusable after the failure
        stmt = DropIndex(index, if_exists=True).compile(dialect=conn.dialect)
        return (
            f"the failed build may have left an INVALID index {index.name!r} ({e}); drop it "
            f"with: {stmt}"
        )


def _watch(
    engine: Engine,
    pid: int,
    report: Callable[[BuildProgress], None],
    stop: threading.Event,
    interval: float,
) -> None:
    """Poll ``pg_stat_progress_create_index`` from a second connection until ``stop``."""
    with engine.connect() as watcher:
        watcher = watcher.execution_options(isolation_level="AUTOCOMMIT")
        while not stop.wait(interval):
            row = watcher.execute(_PROGRESS_SQL, {"pid": pid}).first()
            if row is None:
                continue
            phase, b_done, b_total, t_done, t_total = row
            if b_total and "loading tuples" in phase and not t_total:
                report(BuildProgress(phase, int(b_done), int(b_total)))
            elif t_total:
                report(BuildProgress(phase, int(t_done), int(t_total), "tuples"))
            else:
                report(BuildProgress(phase, int(b_done or 0), int(b_total or 0)))


class _TqdmReporter:
    """A tqdm bar per build phase."""

    def __init__(self, name: str, tqdm: Any) -> None:
        self._tqdm = tqdm
        self._name = name
        self._bar: Any = None
        self._phase: tuple[str, str] = ("", "")

    def __call__(self, p: BuildProgress) -> None:
        if self._bar is None or (p.phase, p.unit) != self._phase:
            self.close()
            self._phase = (p.phase, p.unit)
            self._bar = self._tqdm(
                total=p.total or None,
                desc=f"{self._name}: {p.phase}",
                unit=f" {p.unit}",
                leave=False,
            )
        if p.total and self._bar.total != p.total:
            self._bar.total = p.total
        self._bar.n = p.done
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def build_vector_index(
    bind: Engine | Connection,
    index: Index,
    *,
    checkfirst: bool = False,
    progress: bool | Callable[[BuildProgress], None] = True,
    poll_interval: float = 0.25,
) -> None:
    """Create ``index`` on ``bind``, showing build progress for long builds.

    ``progress=True`` draws a tqdm bar per phase from ``pg_stat_progress_create_index``,
    polled every ``poll_interval`` seconds by a second connection of the same engine
    while the build runs (without tqdm, the ``vecalchemy[progress]`` extra, no bar);
    a callable receives each :class:`BuildProgress` sample instead; ``False`` polls
    nothing. An index declared ``concurrently=True`` is built outside a transaction
    block and, if the build fails, the INVALID index it leaves is dropped before the
    error is re-raised (or, if that drop fails too, the error says how to drop it).

    Raises :class:`~vecalchemy.exc.IndexDefinitionError` for a CONCURRENTLY index on a
    Connection inside a transaction; database errors propagate.
    """
    concurrently = bool(index.dialect_options["postgresql"]["concurrently"])
    if concurrently:
        with _autocommit(bind, index) as conn:
            _build(conn, index, checkfirst, progress, poll_interval, cleanup=True)
    elif isinstance(bind, Engine):
        with bind.begin() as conn:
            _build(conn, index, checkfirst, progress, poll_interval, cleanup=False)
    else:
        _build(bind, index, checkfirst, progress, poll_interval, cleanup=False)


def _build(
    conn: Connection,
    index: Index,
    checkfirst: bool,
    progress: bool | Callable[[BuildProgress], None],
    poll_interval: float,
    *,
    cleanup: bool,
) -> None:
    stop = threading.Event()
    watcher: threading.Thread | None = None
    bar: _TqdmReporter | None = None
    report: Callable[[BuildProgress], None] | None = None
    if callable(progress):
        report = progress
    elif progress:
        try:
            from tqdm.auto import tqdm
        except ImportError:  # the "progress" extra is optional: no bar, as copy_rows
            tqdm = None
        if tqdm is not None:
            report = bar = _TqdmReporter(str(index.name), tqdm)
    if report is not None:
        pid = int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
        watcher = threading.Thread(
            target=_watch, args=(conn.engine, pid, report, stop, poll_interval), daemon=True
        )
        watcher.start()
    try:
        Index.create(index, conn, checkfirst)
    except BaseException as e:
        if cleanup:
            note = _drop_if_invalid(conn, index)
            if note is not None and hasattr(e, "add_note"):
                e.add_note(note)
        raise
    finally:
        stop.set()
        if watcher is not None:
            watcher.join()
        if bar is not None:
            bar.close()


# --- build settings ---------------------------------------------------------------------


@dataclass(frozen=True)
class BuildSettings:
    """Server settings worth having for an index build, and what they are based on.

    ``maintenance_work_mem`` is in bytes (pass ``f"{mb}MB"`` to ``SET``), ``graph_bytes``
    the estimated in-memory size of the HNSW graph (or IVFFlat k-means working set),
    ``max_parallel_maintenance_workers`` a worker count for parallel builds.
    """

    graph_bytes: int
    maintenance_work_mem: int
    max_parallel_maintenance_workers: int
    basis: str

    @property
    def maintenance_work_mem_mb(self) -> int:
        """``maintenance_work_mem`` rounded up to whole MB."""
        return -(-self.maintenance_work_mem // (1024 * 1024))


_VALUE_BYTES = {"vector": 4.0, "halfvec": 2.0, "bit": 1 / 8}
#: in-memory bytes per graph element besides the value and neighbour lists
#: (HnswElementData: heap TIDs, lock, level, pointers; pgvector src/hnsw.h)
_ELEMENT_OVERHEAD = 160
#: bytes per neighbour slot in memory (HnswCandidate: element pointer + distance)
_NEIGHBOR_BYTES = 16


def index_build_settings(
    rows: int,
    dim: int,
    *,
    method: str = "hnsw",
    sql_type: str = "vector",
    m: int = 16,
    lists: int = 100,
    cpus: int | None = None,
) -> BuildSettings:
    """Estimate ``maintenance_work_mem`` and parallel workers for building an index.

    HNSW builds fastest while the whole graph fits in ``maintenance_work_mem`` (pgvector
    README "Index Build Time"; otherwise NOTICE "hnsw graph no longer fits into
    maintenance_work_mem after N tuples"). Per element the in-memory graph holds the
    value (``8 + dim*4`` bytes for vector, ``*2`` halfvec, ``/8`` bit), a neighbour list
    of ``2*m`` slots on layer 0 plus ``m`` per upper layer (``1/(m-1)`` upper layers on
    average, levels drawn with ``mL = 1/ln(m)``), 16 bytes a slot, and about 160 bytes of
    element header (pgvector src/hnsw.h, src/hnswbuild.c). The result adds 25 %
    headroom. IVFFlat's k-means keeps ``min(rows, lists*50)`` samples and ``lists``
    centres in memory (src/ivfbuild.c). Workers: pgvector builds in parallel (HNSW
    0.6.0, IVFFlat 0.5.0); suggested ``min(cpus - 1, 7)`` for 100 000+ rows, else 0.

    Raises :class:`ValueError` for non-positive ``rows``/``dim`` or an unknown method
    or type.
    """
    for label, value in (("rows", rows), ("dim", dim), ("m", m), ("lists", lists)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{label} must be a positive int, got {value!r}")
    if method not in INDEX_METHODS:
        raise ValueError(f"method must be one of {', '.join(INDEX_METHODS)}, got {method!r}")
    if sql_type not in _VALUE_BYTES:
        raise ValueError(f"sql_type must be one of {', '.join(_VALUE_BYTES)}, got {sql_type!r}")
    value_bytes = 8 + math.ceil(dim * _VALUE_BYTES[sql_type])
    if method == "hnsw":
        upper_layers = 1 / (m - 1) if m > 1 else 0.0
        slots = 2 * m + m * upper_layers
        per_element = value_bytes + _ELEMENT_OVERHEAD + slots * _NEIGHBOR_BYTES
        graph = int(rows * per_element)
        basis = (
            f"HNSW graph: {rows} elements x ({value_bytes} B value + ~{_ELEMENT_OVERHEAD} B "
            f"header + {slots:.1f} neighbour slots x {_NEIGHBOR_BYTES} B) = {graph} B "
            "(pgvector src/hnsw.h, src/hnswbuild.c), +25% headroom"
        )
    else:
        samples = min(rows, lists * 50)
        graph = int((samples + 2 * lists) * value_bytes)
        basis = (
            f"IVFFlat k-means: {samples} samples + {lists} centres (x2) x {value_bytes} B "
            f"= {graph} B (pgvector src/ivfbuild.c), +25% headroom"
        )
    mwm = max(64 * 1024 * 1024, int(graph * 1.25))
    cpus = cpus if cpus is not None else (os.cpu_count() or 1)
    workers = min(max(cpus - 1, 0), 7) if rows >= 100_000 else 0
    return BuildSettings(graph, mwm, workers, basis)
