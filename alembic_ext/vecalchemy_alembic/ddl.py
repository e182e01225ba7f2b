"""The SQL of vector indexes and of the ``vector`` extension, built from checked parts.

Identifiers are checked (:func:`vecalchemy.sqltext.check_identifier`) and quoted exactly
(:func:`vecalchemy.sqltext.quote`); the index method, the operator class and the option
names come from :mod:`vecalchemy.facts` / :mod:`vecalchemy.indexes` after validation,
option values are checked ints, and SQL expressions are compiled by SQLAlchemy
(``literal_binds``), never formatted from user values. The statements run as
:class:`vecalchemy.sqltext.Statement` (sent as written, no bind parameters parsed).
The one exception is SQL the migration's author writes as such: a key or WHERE clause
given as ``sa.text(...)``, or a WHERE clause given as a string, is emitted as written,
once :func:`vecalchemy.sqltext.check_expression_sql` has found it to be one expression
(a key given as a string is a column name, and is quoted).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.elements import ColumnClause, Label, TextClause

from vecalchemy import sqltext

__all__ = [
    "Expression",
    "compile_sql",
    "key_sql",
    "qualified",
    "index_definition_sql",
    "create_index_sql",
    "drop_index_sql",
    "version_literal",
]

#: what an index key or a WHERE clause may be: a column name (key only), raw SQL
#: (``sa.text``) or a SQLAlchemy expression
Expression = str | ClauseElement

_VERSION = re.compile(r"\A[0-9]+(\.[0-9]+){0,3}\Z")


def compile_sql(element: ClauseElement, dialect: Dialect) -> str:
    """SQL text of ``element`` as it appears in DDL: no table prefix, literals inline,
    nothing escaped for the driver (:func:`vecalchemy.sqltext.exact_sql`)."""
    while isinstance(element, Label):
        element = element.element
    return sqltext.exact_sql(element, dialect, include_table=False)


def key_sql(expression: Expression, dialect: Dialect) -> str:
    """The index key: a quoted column name, or a parenthesised expression."""
    if hasattr(expression, "__clause_element__"):
        expression = expression.__clause_element__()
    while isinstance(expression, Label):
        expression = expression.element
    if isinstance(expression, str):
        return sqltext.quote(dialect, expression)
    if isinstance(expression, ColumnClause) and not expression.is_literal:
        return sqltext.quote(dialect, expression.name)
    if isinstance(expression, TextClause):  # the developer's SQL: one expression only
        sqltext.check_expression_sql(expression.text, "the index key")
    return f"({compile_sql(expression, dialect)})"


def qualified(name: str, schema: str | None, dialect: Dialect) -> str:
    """``"schema"."name"`` (or ``"name"``), quoted as needed."""
    return sqltext.qualified(dialect, name, schema)


def index_definition_sql(
    dialect: Dialect,
    *,
    expression: Expression,
    method: str,
    opclass: str | None,
    options: Mapping[str, int],
    where: Expression | None,
) -> str:
    """What follows ``ON table`` in ``CREATE INDEX``: ``USING method (key opclass) WITH
    (...) WHERE ...``; ``method``, ``opclass`` and ``options`` must be validated already."""
    key = key_sql(expression, dialect)
    parts = [f"USING {method}", f"({key} {opclass})" if opclass else f"({key})"]
    if options:
        parts.append("WITH (" + ", ".join(f"{k} = {int(v)}" for k, v in options.items()) + ")")
    if where is not None:
        pred = (
            sqltext.check_expression_sql(where, "where=")
            if isinstance(where, str)
            else compile_sql(sqltext.check_where(where), dialect)
        )
        parts.append(f"WHERE {pred}")
    return " ".join(parts)


def create_index_sql(
    dialect: Dialect,
    *,
    name: str,
    table: str,
    schema: str | None,
    expression: Expression,
    method: str,
    opclass: str | None,
    options: Mapping[str, int],
    where: Expression | None,
    concurrently: bool = False,
    if_not_exists: bool = False,
) -> str:
    """``CREATE INDEX [CONCURRENTLY] name ON table USING method (key opclass) WITH (...)
    WHERE ...``; ``method``, ``opclass`` and ``options`` must be validated already."""
    parts = ["CREATE INDEX"]
    if concurrently:
        parts.append("CONCURRENTLY")
    if if_not_exists:
        parts.append("IF NOT EXISTS")
    parts.append(sqltext.quote(dialect, name))
    parts.append(f"ON {qualified(table, schema, dialect)}")
    parts.append(
        index_definition_sql(
            dialect,
            expression=expression,
            method=method,
            opclass=opclass,
            options=options,
            where=where,
        )
    )
    return " ".join(parts)


def drop_index_sql(
    dialect: Dialect,
    *,
    name: str,
    schema: str | None,
    concurrently: bool = False,
    if_exists: bool = False,
) -> str:
    """``DROP INDEX [CONCURRENTLY] [IF EXISTS] schema.name``."""
    parts = ["DROP INDEX"]
    if concurrently:
        parts.append("CONCURRENTLY")
    if if_exists:
        parts.append("IF EXISTS")
    parts.append(qualified(name, schema, dialect))
    return " ".join(parts)


def version_literal(version: Any) -> str:
    """A checked extension version as a SQL string literal (``'0.8.1'``).

    Raises :class:`ValueError` for anything but dotted digits.
    """
    if not isinstance(version, str) or not _VERSION.match(version):
        raise ValueError(
            f"extension version must be dotted digits such as '0.8.1', got {version!r}"
        )
    return f"'{version}'"
