"""Binary result format for statements that return vectors, and only for those.

psycopg can ask the server for all result columns in binary (one format per
statement), which makes pgvector values ~20x cheaper to decode. But psycopg returns
raw ``bytes`` for every type it has no binary loader for (``tsvector``, user enums,
``citext``, PostGIS ``geometry``...), so binary must never be used for a statement
that returns such a column.

The rule, decided once per compiled statement (the statement cache makes it free):
binary when the statement is a SQLAlchemy construct (not ``text()``) whose result
columns include a ``Vector``/``HalfVec``/``SparseVec`` (or an ``ARRAY`` of one, whose
array loaders vecalchemy registers) and whose other result
columns all have a type from :data:`BINARY_SAFE_TYPES` (exact classes: a subclass such
as ``Enum`` or ``CITEXT`` is not in it). After execution the server's column oids are
checked too: a column without a binary loader (a model whose declared type differs
from the table's) turns the statement back to text from its next execution.

vecalchemy's dialect applies it in its execution context
(:class:`vecalchemy.dialect.VecalchemyExecutionContext`); :func:`vecalchemy.install` on an
engine of another dialect applies it through ``before_cursor_execute`` /
``after_cursor_execute`` listeners doing the same.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.pq import Format
from sqlalchemy import types as sqltypes
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.sql.compiler import Compiled, SQLCompiler
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.sql.selectable import TextualSelect

from . import _private
from .types import Bit, HalfVec, SparseVec, Vector, VectorType

__all__ = [
    "BINARY_SAFE_TYPES",
    "binary_results_ok",
    "choose_result_format",
    "check_result_format",
    "loads_in_binary",
    "driver_cursor",
    "on_before_cursor_execute",
    "on_after_cursor_execute",
]

#: SQLAlchemy types whose values psycopg loads identically from text and binary
#: (checked by tests/test_binary_results.py against every one of them).
BINARY_SAFE_TYPES: frozenset[type[Any]] = frozenset(
    {
        sqltypes.Integer,
        sqltypes.SmallInteger,
        sqltypes.BigInteger,
        sqltypes.INTEGER,
        sqltypes.SMALLINT,
        sqltypes.BIGINT,
        sqltypes.Boolean,
        sqltypes.BOOLEAN,
        sqltypes.String,
        sqltypes.Text,
        sqltypes.Unicode,
        sqltypes.UnicodeText,
        sqltypes.VARCHAR,
        sqltypes.TEXT,
        sqltypes.Double,
        sqltypes.DOUBLE_PRECISION,
        sqltypes.DOUBLE,
        sqltypes.Numeric,
        sqltypes.NUMERIC,
        sqltypes.Uuid,
        sqltypes.UUID,
        sqltypes.LargeBinary,
        pg.BYTEA,
        sqltypes.DateTime,
        sqltypes.TIMESTAMP,
        pg.TIMESTAMP,
        sqltypes.Date,
        sqltypes.DATE,
        sqltypes.JSON,
        pg.JSON,
        pg.JSONB,
        Bit,
    }
)

_VECTOR_TYPES = (Vector, HalfVec, SparseVec)
_CURSORS = (psycopg.Cursor, psycopg.AsyncCursor, psycopg.ServerCursor, psycopg.AsyncServerCursor)
# Compiled objects live in the statement cache; the decision is cached next to them.
_decisions: weakref.WeakKeyDictionary[Compiled, bool] = weakref.WeakKeyDictionary()


def _is_vector(t: Any) -> bool:
    """A vector type, or an ARRAY of one (``_vector`` ...: psycopg's array loaders over
    vecalchemy's, registered with them)."""
    return isinstance(t, _VECTOR_TYPES) or (
        isinstance(t, sqltypes.ARRAY) and isinstance(t.item_type, _VECTOR_TYPES)
    )


def _safe(t: Any) -> bool:
    cls = type(t)
    if cls is sqltypes.Float:
        # FLOAT(p <= 24) is real: float4 loads as 0.10000000149011612 in binary
        return t.precision is None or t.precision > 24
    return cls in BINARY_SAFE_TYPES or _is_vector(t)


def binary_results_ok(compiled: Compiled | None) -> bool:
    """True when ``compiled`` returns a vector column and only binary-safe columns."""
    if not isinstance(compiled, SQLCompiler):  # (None, DDL)
        return False
    try:
        return _decisions[compiled]
    except (KeyError, TypeError):
        pass
    columns = _private.result_columns(compiled)
    statement = compiled.statement
    ok = (
        bool(columns)
        and not isinstance(statement, (TextClause, TextualSelect))
        and any(_is_vector(c.type) for c in columns)
        and all(_safe(c.type) for c in columns)
    )
    _decisions[compiled] = ok
    return ok


def driver_cursor(cursor: Any) -> Any:
    """psycopg's cursor behind SQLAlchemy's ``cursor`` when it can receive binary
    results, else ``None`` (client-side binding cursors cannot)."""
    inner = _private.driver_cursor(cursor)
    if isinstance(inner, (psycopg.ClientCursor, psycopg.AsyncClientCursor)):
        return None
    return inner if isinstance(inner, _CURSORS) else None


def choose_result_format(context: Any, cursor: Any) -> None:
    """Set ``cursor``'s result format for the statement of ``context`` (before executing)."""
    if context is not None and binary_results_ok(context.compiled):
        inner = driver_cursor(cursor)
        if inner is not None:
            inner.format = Format.BINARY


def check_result_format(context: Any, cursor: Any) -> None:
    """After executing: if a binary result holds a column psycopg cannot load in
    binary, execute that statement in text from now on."""
    compiled = context.compiled if context is not None else None
    if not isinstance(compiled, SQLCompiler) or not _decisions.get(compiled, False):
        return
    inner = driver_cursor(cursor)
    if inner is None or inner.format != Format.BINARY or not inner.description:
        return
    types = [c.type for c in _private.result_columns(compiled)]
    if not loads_in_binary(inner.adapters, inner.description, types):
        _decisions[compiled] = False


def loads_in_binary(adapters: Any, description: Any, types: Sequence[Any]) -> bool:
    """Whether every column of a binary result (``description``, psycopg's) loads as it
    would from text: psycopg has a binary loader for it, or its declared type (``types``,
    in result order) is one of vecalchemy's, which decode binary payloads themselves."""
    for i, col in enumerate(description):
        if i < len(types) and isinstance(types[i], VectorType):
            continue  # (e.g. varbit, which psycopg has no binary loader for)
        if adapters.get_loader(col.type_code, Format.BINARY) is None:
            return False
    return True


def on_before_cursor_execute(
    conn: Any,
    cursor: Any,
    statement: str,
    parameters: Any,
    context: Any,
    executemany: bool,
) -> None:
    """``before_cursor_execute`` listener, for engines of another dialect than
    vecalchemy's (:func:`vecalchemy.install`)."""
    choose_result_format(context, cursor)


def on_after_cursor_execute(
    conn: Any,
    cursor: Any,
    statement: str,
    parameters: Any,
    context: Any,
    executemany: bool,
) -> None:
    """``after_cursor_execute`` listener paired with :func:`on_before_cursor_execute`."""
    check_result_format(context, cursor)
