"""``postgresql+vecalchemy://``: SQLAlchemy's psycopg dialect with vecalchemy's plugin built in.

Published through the ``sqlalchemy.dialects`` entry point; ``create_engine`` gives the
sync dialect and ``create_async_engine`` the async one. It behaves exactly as
``postgresql+psycopg://`` with ``plugins=["vecalchemy"]``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg, PGDialectAsync_psycopg
from sqlalchemy.engine import Engine

from .compiler import VecalchemyCompiler
from .inserts import PAGE_SIZE, do_execute, group_batches
from .plugin import install
from .psycopg import fetch_type_oids, register_on_adapters
from .results import VecalchemyExecutionContext

__all__ = ["VecalchemyDialect", "VecalchemyAsyncDialect", "VecalchemyExecutionContext"]


class _VecalchemyMixin:
    supports_statement_cache = True
    _vecalchemy_binary = True
    _vecalchemy_batches = True
    execution_ctx_cls: Any = VecalchemyExecutionContext
    statement_compiler: Any = VecalchemyCompiler  # literal LIMIT on top-k (compiler.py)
    # executemany INSERTs as pipelined multi-row VALUES batches (vecalchemy.inserts)
    use_insertmanyvalues_wo_returning = True
    insertmanyvalues_page_size = PAGE_SIZE

    def _deliver_insertmanyvalues_batches(
        self,
        connection: Any,
        cursor: Any,
        statement: Any,
        parameters: Any,
        generic_setinputsizes: Any,
        context: Any,
    ) -> Any:
        batches = super()._deliver_insertmanyvalues_batches(  # type: ignore[misc]
            connection, cursor, statement, parameters, generic_setinputsizes, context
        )
        return group_batches(batches, context)

    def do_execute(
        self, cursor: Any, statement: Any, parameters: Any, context: Any = None
    ) -> None:
        do_execute(super().do_execute, cursor, statement, parameters, context)  # type: ignore[misc]

    def on_connect(self) -> Any:
        parent = super().on_connect()  # type: ignore[misc]

        def connect(dbapi_connection: Any) -> None:
            if parent is not None:
                parent(dbapi_connection)
            raw = getattr(dbapi_connection, "driver_connection", dbapi_connection)
            register_on_adapters(raw.adapters, fetch_type_oids(dbapi_connection))

        return connect


class VecalchemyDialect(_VecalchemyMixin, PGDialect_psycopg):
    """Sync ``postgresql+vecalchemy`` dialect (psycopg 3 underneath)."""

    supports_statement_cache = True

    @classmethod
    def get_async_dialect_cls(cls, url: Any) -> Any:
        return VecalchemyAsyncDialect

    @classmethod
    def engine_created(cls, engine: Engine) -> None:
        # the same engine-level behaviour as the plugin (query checks, search option)
        install(engine)


class VecalchemyAsyncDialect(_VecalchemyMixin, PGDialectAsync_psycopg):
    """Async ``postgresql+vecalchemy`` dialect, chosen by ``create_async_engine``."""

    supports_statement_cache = True

    @classmethod
    def engine_created(cls, engine: Engine) -> None:
        install(engine)
