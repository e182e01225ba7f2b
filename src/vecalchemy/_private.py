"""Every private SQLAlchemy name vecalchemy touches, each behind one accessor.

SQLAlchemy offers no public API for these; each is read here and nowhere else, and each
accessor fails loudly (:class:`~vecalchemy.exc.UnsupportedSQLAlchemyError`, naming the
name and the SQLAlchemy version) instead of falling back to a default that would
silently change behaviour (an ``ON CONFLICT`` insert batched, binary results turned
off). ``tests/test_private_names.py`` calls every accessor on real objects, so a
SQLAlchemy release that renames one fails the suite. The versions tested are pinned in
``pyproject.toml`` (``SQLAlchemy>=2.0,<2.2``).

What each serves, and why no public API does:

- ``Select._limit_clause`` / ``_offset_clause``: the LIMIT / OFFSET *clause* (a bind
  or an expression) of a select; the compiler renders integer binds literally and
  :class:`~vecalchemy.PreparedQuery` turns them into literals. Public ``Select`` has
  no getter for the clause.
- ``Select._order_by_clauses``: the ORDER BY keys, read by the query checks.
- ``_label_reference`` / ``_textual_label_reference``: what ``order_by("name")`` and
  ``order_by(label)`` leave in a select; the query checks look through them.
- ``Insert._post_values_clause``: set by ``on_conflict_do_*``; such inserts are not
  regrouped (no row may meet another in one upsert).
- ``Compiled._result_columns``: the result columns of any compiled statement (select,
  ``RETURNING``, compound) with their SQLAlchemy types, which decide the result format.
- ``DefaultExecutionContext._rowcount``: the rowcount a grouped executemany reports.
- ``_InsertManyValuesBatch._replace``: a copy of one insertmanyvalues batch with other
  parameters; the batch class is private, its fields are read as documented on it.
- ``DefaultDialect._deliver_insertmanyvalues_batches``: the dialect method that yields
  those batches, overridden by vecalchemy's dialects.
- SQLAlchemy's asyncio cursor adapter's ``_cursor``: the driver's own cursor, whose
  result format is set per statement.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy
from sqlalchemy.dialects.postgresql.psycopg import AsyncAdapt_psycopg_cursor
from sqlalchemy.engine.default import DefaultDialect, DefaultExecutionContext
from sqlalchemy.sql import elements
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.selectable import GenerativeSelect

from .exc import UnsupportedSQLAlchemyError

__all__ = [
    "SUPPORTED",
    "DELIVER_BATCHES",
    "limit_clause",
    "offset_clause",
    "order_by_clauses",
    "label_reference_types",
    "post_values_clause",
    "result_columns",
    "set_rowcount",
    "replace_batch",
    "driver_cursor",
    "require",
]

#: The SQLAlchemy versions these names were checked on (pyproject.toml pins the same).
SUPPORTED = ">=2.0,<2.2"

#: Name of the dialect method yielding insertmanyvalues batches (overridden by vecalchemy).
DELIVER_BATCHES = "_deliver_insertmanyvalues_batches"


def _missing(owner: str, name: str) -> UnsupportedSQLAlchemyError:
    return UnsupportedSQLAlchemyError(
        f"vecalchemy needs SQLAlchemy's {owner}.{name}, which SQLAlchemy "
        f"{sqlalchemy.__version__} does not have; vecalchemy supports SQLAlchemy {SUPPORTED}"
    )


def require(owner: type, name: str) -> Any:
    """``owner.name`` (a class attribute), or :class:`UnsupportedSQLAlchemyError`."""
    try:
        return getattr(owner, name)
    except AttributeError:
        raise _missing(owner.__name__, name) from None


def _read(obj: Any, owner: str, name: str) -> Any:
    try:
        return getattr(obj, name)
    except (AttributeError, RecursionError):
        # (RecursionError: a class whose __getattr__ delegates to the missing name itself,
        # as SQLAlchemy 2.0's async cursor adapter does)
        raise _missing(owner, name) from None


def limit_clause(select: GenerativeSelect) -> Any:
    """The LIMIT clause of ``select`` (a bind, an expression, or ``None``)."""
    return _read(select, "GenerativeSelect", "_limit_clause")


def offset_clause(select: GenerativeSelect) -> Any:
    """The OFFSET clause of ``select`` (a bind, an expression, or ``None``)."""
    return _read(select, "GenerativeSelect", "_offset_clause")


def order_by_clauses(select: GenerativeSelect) -> tuple[Any, ...]:
    """The ORDER BY keys of ``select``, as given to ``order_by()``."""
    return tuple(_read(select, "GenerativeSelect", "_order_by_clauses"))


def label_reference_types() -> tuple[Any, Any]:
    """The classes ``order_by()`` wraps a label (``_label_reference``) and a label's name
    given as a string (``_textual_label_reference``) in."""
    module = "sqlalchemy.sql.elements"
    return (
        _read(elements, module, "_label_reference"),
        _read(elements, module, "_textual_label_reference"),
    )


def post_values_clause(insert: Insert) -> Any:
    """The clause after VALUES (``ON CONFLICT ...``) of ``insert``, or ``None``."""
    return _read(insert, "Insert", "_post_values_clause")


def result_columns(compiled: Any) -> list[Any]:
    """The result columns of a compiled statement (each with ``.type``), in order."""
    return list(_read(compiled, "SQLCompiler", "_result_columns"))


def set_rowcount(context: DefaultExecutionContext, rowcount: int) -> None:
    """Make ``context.rowcount`` (and the result's) report ``rowcount``."""
    require(DefaultExecutionContext, "_rowcount")
    context._rowcount = rowcount


def replace_batch(batch: Any, **fields: Any) -> Any:
    """A copy of an insertmanyvalues batch (a named tuple) with ``fields`` replaced."""
    replace = _read(batch, "_InsertManyValuesBatch", "_replace")
    return replace(**fields)


def driver_cursor(cursor: Any) -> Any:
    """psycopg's own cursor behind ``cursor`` (SQLAlchemy's asyncio adapter wraps it)."""
    if isinstance(cursor, AsyncAdapt_psycopg_cursor):
        return _read(cursor, "AsyncAdapt_psycopg_cursor", "_cursor")
    return cursor


# checked when vecalchemy is imported: a dialect overriding a method SQLAlchemy no longer
# calls would silently do nothing
require(DefaultDialect, DELIVER_BATCHES)
