"""HNSW and IVFFlat indexes: real :class:`sqlalchemy.Index` objects, validated when declared.

``HnswIndex("ix_doc_emb", Doc.embedding, metric="cosine", m=16)`` emits
``CREATE INDEX ix_doc_emb ON doc USING hnsw (embedding vector_cosine_ops) WITH (m = 16)``
through SQLAlchemy's own PostgreSQL dialect options (``postgresql_using``,
``postgresql_ops``, ``postgresql_with``, ``postgresql_where``,
``postgresql_concurrently``). An expression (``cast(col, HalfVec(3072))``) is labelled
so that SQLAlchemy attaches the operator class to it.

:func:`vector_index_spec` reads the same :class:`~vecalchemy.indexes.rules.VectorIndexSpec`
from any ``Index``: these declarations, a plain ``Index(..., postgresql_using="hnsw")``
or a reflected one. The rules are :mod:`vecalchemy.indexes.rules`; building with
progress and CONCURRENTLY is :mod:`vecalchemy.indexes.build`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from contextlib import suppress
from typing import Any, ClassVar

from sqlalchemy import Index, event, literal_column, text
from sqlalchemy.sql import ClauseElement, ColumnElement
from sqlalchemy.sql.elements import ColumnClause, Label, TextClause

from ..facts import DEFAULT_OPCLASS, INDEX_METHODS, METHOD_NAMES, OPCLASSES, opclass_info
from ..sqltext import check_expression_sql, check_identifier
from ..types import TYPES_BY_SQL_TYPE
from .build import build_plainly_in_transaction, build_vector_index, concurrent_connection
from .rules import (
    VectorIndexSpec,
    check_options,
    index_error,
    unlabel,
    validate_vector_index,
    vector_type_of,
)

__all__ = ["HnswIndex", "IvfflatIndex", "vector_index_spec"]

#: the label that carries the operator class of an expression index (postgresql_ops key)
_EXPR_KEY = "vector_index_expr"
#: the operator class a message names as an example
_EXAMPLE_OPCLASS = OPCLASSES[("vector", "cosine")][0]


def _int_option(value: Any) -> int:
    """Reflected WITH values are strings ('16'); declared ones are ints."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return value  # type: ignore[no-any-return]  # validated by check_options


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
            check_expression_sql(first.text, "the index expression")
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
        sql_type, _, declared = vector_type_of(unlabel(expression))
    except (TypeError, AttributeError):
        return None
    default = DEFAULT_OPCLASS.get(method)
    name = key or "embedding"
    if default is None or opclass_info(default)[0] != sql_type:
        raise index_error(
            method,
            f'data type {sql_type} has no default operator class for access method "{method}"; '
            f'name one in postgresql_ops (e.g. {{"{name}": "{_EXAMPLE_OPCLASS}"}}), or '
            "declare HnswIndex/IvfflatIndex, which take the column type's metric",
        )
    default_metric = opclass_info(default)[1]
    if declared is not None and declared != default_metric:
        wanted = OPCLASSES.get((sql_type, declared), (None,))[0]
        raise index_error(
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
        where: ClauseElement | str | None = None,
        concurrently: bool = False,
        **kw: Any,
    ) -> None:
        method = self.method
        if name is not None:
            check_identifier(name, f"{METHOD_NAMES[method]} index name")
        if kw.get("postgresql_include"):
            raise index_error(
                method, f'access method "{method}" does not support included columns (INCLUDE)'
            )
        kw.pop("postgresql_include", None)
        for key in _RESERVED:
            if key in kw:
                raise index_error(method, f"{key} is set by {type(self).__name__}; do not pass it")
        if kw.get("unique"):
            raise index_error(method, f'access method "{method}" does not support unique indexes')
        kw.pop("unique", None)
        if not isinstance(concurrently, bool):
            raise index_error(method, f"concurrently must be a bool, got {concurrently!r}")
        given = {k: v for k, v in options.items() if v is not None}
        checked = check_options(method, given)
        if isinstance(where, str):  # SQL text: accepted only as one expression
            where = text(check_expression_sql(where, "where="))
        if where is not None and not isinstance(where, ClauseElement):
            raise index_error(
                method,
                f"where= must be a SQL expression (e.g. Doc.category == 1, text(...) or "
                f"SQL text), got {type(where).__name__}",
            )
        expr = column_or_expression
        if hasattr(expr, "__clause_element__"):
            expr = expr.__clause_element__()
        if isinstance(expr, ColumnElement) and not isinstance(expr, (ColumnClause, Label)):
            expr = expr.label(_EXPR_KEY)  # so postgresql_ops can name the expression
        elif not isinstance(expr, (str, ColumnElement)):
            raise index_error(
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
            self.ddl_if(callable_=build_plainly_in_transaction)

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
        Async engines: ``await async_conn.run_sync(index.create)`` (an AUTOCOMMIT
        AsyncConnection for ``concurrently=True``), or
        ``await build_vector_index_async(async_engine, index, progress=False)``.
        """
        build_vector_index(bind, self, checkfirst=bool(checkfirst), progress=False)

    def drop(self, bind: Any, checkfirst: Any = False) -> None:
        """Issue ``DROP INDEX`` on ``bind`` (an Engine or Connection); ``CONCURRENTLY``,
        outside a transaction, when declared so (an Engine gives an AUTOCOMMIT connection,
        a Connection must be AUTOCOMMIT, else :class:`~vecalchemy.exc.IndexDefinitionError`).
        Async engines: ``await async_conn.run_sync(index.drop)``."""
        if not self.concurrently:
            super().drop(bind, checkfirst)
            return
        with concurrent_connection(bind, self) as conn:
            super().drop(conn, checkfirst)


def _validate_on_attach(index: _VectorIndex, table: Any) -> None:
    index._validate(index.expressions[0])


class HnswIndex(_VectorIndex):
    """An HNSW index (pgvector 0.5.0+): ``USING hnsw (expr opclass) WITH (m = .., ...)``.

    ``HnswIndex(name, column_or_expression, metric=None, opclass=None, m=None,
    ef_construction=None, where=None, concurrently=False, **kw)``. ``column_or_expression``
    is a column (name, Column or ORM attribute) or an expression such as
    ``cast(col, HalfVec(3072))``, ``cast(binary_quantize(col), Bit(3072))`` or
    ``cast(subvector(col, 1, 256), Vector(256))``. ``metric`` defaults to the one the
    column type declares; HNSW has no default operator class. ``m`` (2-100, default 16)
    and ``ef_construction`` (4-1000, >= 2*m, default 64) are emitted only when given.
    ``where`` makes a partial index: a SQLAlchemy expression, ``text(...)`` or SQL text,
    the text accepted only as one expression (:class:`~vecalchemy.exc.UnsafeSQLError`
    for a ``;``, a ``--`` comment or an unbalanced parenthesis); ``concurrently`` builds
    with ``CREATE INDEX CONCURRENTLY`` outside a transaction. The name must hold in 63
    bytes of UTF-8 without NUL (:class:`~vecalchemy.exc.InvalidIdentifierError`). Other
    keywords go to :class:`sqlalchemy.Index`.
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
        where: ClauseElement | str | None = None,
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
        where: ClauseElement | str | None = None,
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
