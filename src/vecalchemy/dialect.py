"""The one activation path: vecalchemy's dialect classes.

``postgresql+vecalchemy://`` (the ``sqlalchemy.dialects`` entry point) and the engine
plugin (``plugins=["vecalchemy"]``, ``?plugin=vecalchemy``, which selects these classes in
:meth:`~vecalchemy.plugin.VecalchemyPlugin.update_url`) give the same dialect: a subclass
of SQLAlchemy's psycopg dialect (sync, and async for ``create_async_engine``) that carries

- binary binds for the vector types, chosen through ``colspecs``
  (:func:`vecalchemy.types.binary_impls`), and ``ARRAY`` of them bound and parsed by
  vecalchemy (:func:`vecalchemy.arrays.array_impls`);
- binary adapters registered on each new connection (``on_connect``), with pgvector's
  type oids found in whatever schema the extension lives in;
- the execution context asking for binary results when a statement returns vectors
  (:mod:`vecalchemy.results`), and grouping executemany INSERT batches
  (:mod:`vecalchemy.inserts`);
- the compiler writing literal LIMIT / OFFSET on top-k selects (:mod:`vecalchemy.compiler`);
- reflection through the dialect's own ``ischema_names`` (``vector`` / ``halfvec`` /
  ``sparsevec`` are vecalchemy's types, those of :mod:`vecalchemy.compat.pgvector` once it
  is imported, whatever other library was imported);
- the query checks and the ``vector_search`` execution option on the engine.

Nothing is assigned to a dialect instance. Another driver gets a sibling class: the
shared behaviour is :class:`VecalchemyDialectMixin`.
"""

from __future__ import annotations

from collections import ChainMap
from typing import Any

from sqlalchemy.dialects import registry
from sqlalchemy.dialects.postgresql import base as pg_base
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.dialects.postgresql.pg8000 import PGDialect_pg8000
from sqlalchemy.dialects.postgresql.psycopg import (
    PGDialect_psycopg,
    PGDialectAsync_psycopg,
    PGExecutionContext_psycopg,
)
from sqlalchemy.dialects.postgresql.psycopg2 import PGDialect_psycopg2
from sqlalchemy.engine import Engine
from sqlalchemy.util import await_only

from .arrays import array_impls
from .asyncpg import register_asyncpg_codecs
from .checks import install_query_checks
from .compiler import (
    VecalchemyAsyncpgCompiler,
    VecalchemyCompiler,
    VecalchemyDDLCompiler,
    VecalchemyPg8000Compiler,
    VecalchemyPsycopg2Compiler,
)
from .inserts import PAGE_SIZE, do_execute, group_batches
from .psycopg import driver_connection, fetch_array_oids, register_on_adapters
from .results import check_result_format, choose_result_format
from .search import install_search_options
from .types import REFLECTED_TYPES, binary_impls

__all__ = [
    "VecalchemyDialectMixin",
    "VecalchemyDialect",
    "VecalchemyAsyncDialect",
    "VecalchemyAsyncpgDialect",
    "VecalchemyPsycopg2Dialect",
    "VecalchemyPg8000Dialect",
    "VecalchemyExecutionContext",
    "install_engine_events",
    "register_on_connection",
    "DIALECT_FOR_DRIVER",
]


class VecalchemyExecutionContext(PGExecutionContext_psycopg):
    """psycopg execution context of vecalchemy's dialects: binary results when a
    statement returns vectors and only binary-safe columns (:mod:`vecalchemy.results`),
    and the state of a grouped executemany INSERT (:mod:`vecalchemy.inserts`)."""

    #: rows inserted so far by a grouped executemany INSERT (``None``: not grouping)
    vecalchemy_rowcount: int | None = None
    #: a group of batches is being sent with one ``executemany``
    vecalchemy_group: bool = False

    def pre_exec(self) -> None:
        super().pre_exec()  # type: ignore[no-untyped-call]
        choose_result_format(self, self.cursor)

    def post_exec(self) -> None:
        check_result_format(self, self.cursor)
        super().post_exec()  # type: ignore[no-untyped-call]


def install_engine_events(engine: Engine) -> None:
    """The engine-level part of vecalchemy: query checks and the ``vector_search`` option."""
    install_query_checks(engine)
    install_search_options(engine)


def register_on_connection(driver: str, dbapi_connection: Any) -> bool:
    """Register vecalchemy's binary adapters (psycopg) or codecs (asyncpg) on a new DBAPI
    connection of SQLAlchemy's, pgvector's array types included; ``False`` for a driver
    that has none (text path: vecalchemy's ARRAY type parses arrays there, see
    :mod:`vecalchemy.arrays`)."""
    if driver == "psycopg":
        raw = driver_connection(dbapi_connection)
        register_on_adapters(raw.adapters, *fetch_array_oids(dbapi_connection))
        return True
    if driver == "asyncpg":
        # (on_connect and pool events run inside SQLAlchemy's greenlet for async engines)
        await_only(register_asyncpg_codecs(dbapi_connection.driver_connection))
        return True
    return False


#: the dialect's reflection names: vecalchemy's types first, then SQLAlchemy's (both live,
#: so vecalchemy.types.use_reflected_types switches what the dialect answers)
_ISCHEMA_NAMES = ChainMap(REFLECTED_TYPES, pg_base.ischema_names)


class VecalchemyDialectMixin:
    """What every vecalchemy dialect adds to its driver's SQLAlchemy dialect: its own
    reflection names, the binary adapters of its driver on each new connection, and the
    engine events (query checks, ``vector_search``)."""

    supports_statement_cache = True
    ischema_names: Any = _ISCHEMA_NAMES
    ddl_compiler: Any = VecalchemyDDLCompiler  # pgvector's index rules on CREATE INDEX
    driver: str

    def on_connect(self) -> Any:
        parent = super().on_connect()  # type: ignore[misc]
        driver = self.driver

        def connect(dbapi_connection: Any) -> None:
            if parent is not None:
                parent(dbapi_connection)
            register_on_connection(driver, dbapi_connection)

        return connect

    @classmethod
    def engine_created(cls, engine: Engine) -> None:
        install_engine_events(engine)


class _PsycopgMixin(VecalchemyDialectMixin):
    """psycopg 3: binary binds and results per statement, executemany INSERTs as
    multi-row VALUES batches, those sharing one statement sent with one pipelined
    ``executemany`` (:mod:`vecalchemy.inserts`)."""

    execution_ctx_cls: Any = VecalchemyExecutionContext
    statement_compiler: Any = VecalchemyCompiler
    colspecs: Any = {
        **PGDialect_psycopg.colspecs,
        **binary_impls("psycopg"),
        **array_impls(PGDialect_psycopg.colspecs),
    }
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
        # (its name is checked on import by vecalchemy._private.DELIVER_BATCHES)
        batches = super()._deliver_insertmanyvalues_batches(  # type: ignore[misc]
            connection, cursor, statement, parameters, generic_setinputsizes, context
        )
        return group_batches(batches, context)

    def do_execute(
        self, cursor: Any, statement: Any, parameters: Any, context: Any = None
    ) -> None:
        do_execute(super().do_execute, cursor, statement, parameters, context)  # type: ignore[misc]


class VecalchemyDialect(_PsycopgMixin, PGDialect_psycopg):
    """Sync ``postgresql+vecalchemy`` dialect (psycopg 3 underneath)."""

    supports_statement_cache = True

    @classmethod
    def get_async_dialect_cls(cls, url: Any) -> Any:
        return VecalchemyAsyncDialect


class VecalchemyAsyncDialect(_PsycopgMixin, PGDialectAsync_psycopg):
    """Async ``postgresql+vecalchemy`` dialect, chosen by ``create_async_engine``."""

    supports_statement_cache = True


class VecalchemyAsyncpgDialect(VecalchemyDialectMixin, PGDialect_asyncpg):
    """``postgresql+vecalchemy_asyncpg`` (``create_async_engine``): asyncpg with
    vecalchemy's binary codecs (:mod:`vecalchemy.asyncpg`), which asyncpg uses for every
    parameter and result of those types. Executemany INSERTs stay SQLAlchemy's: one
    asyncpg ``executemany`` of the single-row statement, which asyncpg pipelines itself
    (measured 16 % faster than multi-row batches on 20 000 x 768 rows)."""

    supports_statement_cache = True
    statement_compiler: Any = VecalchemyAsyncpgCompiler
    colspecs: Any = {
        **PGDialect_asyncpg.colspecs,
        **binary_impls("asyncpg"),
        **array_impls(PGDialect_asyncpg.colspecs),
    }


class VecalchemyPsycopg2Dialect(VecalchemyDialectMixin, PGDialect_psycopg2):
    """``postgresql+vecalchemy_psycopg2``: psycopg2 on the text path (pgvector's text
    format, parsed and formatted by NumPy) with the rest of vecalchemy."""

    supports_statement_cache = True
    statement_compiler: Any = VecalchemyPsycopg2Compiler
    colspecs: Any = {**PGDialect_psycopg2.colspecs, **array_impls(PGDialect_psycopg2.colspecs)}


class VecalchemyPg8000Dialect(VecalchemyDialectMixin, PGDialect_pg8000):
    """``postgresql+vecalchemy_pg8000``: pg8000 on the text path with the rest of
    vecalchemy."""

    supports_statement_cache = True
    statement_compiler: Any = VecalchemyPg8000Compiler
    colspecs: Any = {**PGDialect_pg8000.colspecs, **array_impls(PGDialect_pg8000.colspecs)}


#: driver name in a URL -> the name of vecalchemy's dialect for it (``postgresql+NAME``)
DIALECT_FOR_DRIVER = {
    "psycopg": "vecalchemy",
    "psycopg_async": "vecalchemy_async",
    "asyncpg": "vecalchemy_asyncpg",
    "psycopg2": "vecalchemy_psycopg2",
    "pg8000": "vecalchemy_pg8000",
}
_CLASSES = {
    "vecalchemy": "VecalchemyDialect",
    "vecalchemy_async": "VecalchemyAsyncDialect",
    "vecalchemy_asyncpg": "VecalchemyAsyncpgDialect",
    "vecalchemy_psycopg2": "VecalchemyPsycopg2Dialect",
    "vecalchemy_pg8000": "VecalchemyPg8000Dialect",
}
# also without the package's entry points (e.g. running from a source tree)
for _name, _cls in _CLASSES.items():
    registry.register(f"postgresql.{_name}", __name__, _cls)
