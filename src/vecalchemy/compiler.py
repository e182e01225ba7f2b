"""SQL compiler of vecalchemy's dialect: literal LIMIT / OFFSET for top-k queries.

psycopg prepares a statement after a few executions, and PostgreSQL then chooses
between a generic plan (made once) and a custom plan (made at every execution) by
comparing their costs. With ``LIMIT $2`` the generic plan cannot know the row count,
costs more, and loses: a prepared top-k query is planned again at every call (checked
with ``pg_prepared_statements``: 20 of 20 executions custom with ``LIMIT $2``, 15 of 20
generic with ``LIMIT 10``), about 5 % of a 20 000-row HNSW query's latency on the
benchmark's server.

So for a SELECT whose ORDER BY has a distance operator (``<->``, ``<=>``, ``<#>``,
``<+>``, ``<~>``, ``<%>``), an integer LIMIT / OFFSET (``.limit(10)``, or a
``bindparam("k", type_=Integer)``) is rendered as a SQLAlchemy ``literal_execute``
parameter: the statement is still compiled and cached once, and the number is written
into the SQL at execution (``LIMIT 10``). An untyped ``bindparam`` stays a bind; every
other statement compiles exactly as with SQLAlchemy's psycopg compiler.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer
from sqlalchemy.dialects.postgresql.asyncpg import PGCompiler_asyncpg
from sqlalchemy.dialects.postgresql.base import PGCompiler, PGDDLCompiler
from sqlalchemy.dialects.postgresql.pg8000 import PGCompiler_pg8000
from sqlalchemy.dialects.postgresql.psycopg import PGCompiler_psycopg
from sqlalchemy.sql.expression import BindParameter

from . import _private
from .checks import distance_orders
from .indexes import vector_index_spec
from .sqltext import check_identifier

__all__ = [
    "LiteralLimitMixin",
    "VecalchemyCompiler",
    "VecalchemyAsyncpgCompiler",
    "VecalchemyPsycopg2Compiler",
    "VecalchemyPg8000Compiler",
    "KEEP_BOUND_LIMITS",
    "VecalchemyDDLCompiler",
]

#: compile keyword that keeps LIMIT / OFFSET bound (``PreparedQuery`` binds them itself)
KEEP_BOUND_LIMITS = "vecalchemy_keep_bound_limits"


class LiteralLimitMixin:
    """A PostgreSQL compiler with literal LIMIT / OFFSET on vector top-k selects."""

    process: Any

    def limit_clause(self, select: Any, **kw: Any) -> str:
        if kw.pop(KEEP_BOUND_LIMITS, False) or not any(True for _ in distance_orders(select)):
            text: str = super().limit_clause(select, **kw)  # type: ignore[misc]
            return text
        # PGCompiler.limit_clause, with integer binds rendered at execution
        text = ""
        limit, offset = _private.limit_clause(select), _private.offset_clause(select)
        if limit is not None:
            text += " \n LIMIT " + self._row_count(limit, kw)
        if offset is not None:
            if limit is None:
                text += "\n LIMIT ALL"
            text += " OFFSET " + self._row_count(offset, kw)
        return text

    def _row_count(self, clause: Any, kw: dict[str, Any]) -> str:
        if isinstance(clause, BindParameter) and isinstance(clause.type, Integer):
            kw = {**kw, "literal_execute": True}
        text: str = self.process(clause, **kw)
        return text


class VecalchemyCompiler(LiteralLimitMixin, PGCompiler_psycopg):
    """``PGCompiler_psycopg`` with literal LIMIT / OFFSET on vector top-k selects."""


class VecalchemyAsyncpgCompiler(LiteralLimitMixin, PGCompiler_asyncpg):
    """``PGCompiler_asyncpg`` with literal LIMIT / OFFSET on vector top-k selects."""


class VecalchemyPsycopg2Compiler(LiteralLimitMixin, PGCompiler):
    """psycopg2's ``PGCompiler`` with literal LIMIT / OFFSET on vector top-k selects."""


class VecalchemyPg8000Compiler(LiteralLimitMixin, PGCompiler_pg8000):
    """``PGCompiler_pg8000`` with literal LIMIT / OFFSET on vector top-k selects, and
    pgvector's ``<%>`` (Jaccard) written ``<%%>``: pg8000 reads every ``%`` of a statement
    as a parameter marker, and SQLAlchemy escapes it for its own ``%`` operator only."""

    def visit_custom_op_binary(self, element: Any, operator: Any, **kw: Any) -> str:
        if "%" not in operator.opstring:
            text: str = super().visit_custom_op_binary(  # type: ignore[no-untyped-call]
                element, operator, **kw
            )
            return text
        kw["eager_grouping"] = operator.eager_grouping
        opstring = operator.opstring.replace("%", "%%")
        generic: str = self._generate_generic_binary(element, f" {opstring} ", **kw)
        return generic


class VecalchemyDDLCompiler(PGDDLCompiler):
    """``PGDDLCompiler`` enforcing pgvector's index rules on every ``CREATE INDEX`` of a
    vector index, including a plain ``Index(..., postgresql_using="hnsw")``: an index the
    server would refuse or build against the column's declared metric raises
    :class:`~vecalchemy.exc.IndexDefinitionError` before anything is sent
    (:func:`vecalchemy.vector_index_spec`)."""

    def visit_create_index(
        self,
        create: Any,
        include_schema: Any = False,
        include_table_schema: Any = True,
        **kw: Any,
    ) -> str:
        if vector_index_spec(create.element) is not None and create.element.name is not None:
            check_identifier(create.element.name, "index name")
        text: str = super().visit_create_index(  # type: ignore[no-untyped-call]
            create, include_schema=include_schema, include_table_schema=include_table_schema, **kw
        )
        return text
