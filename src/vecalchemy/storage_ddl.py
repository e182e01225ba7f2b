"""Column storage modes as DDL: ``ALTER TABLE ... ALTER COLUMN ... SET STORAGE`` built
with checked, quoted names, and the hook that runs it after ``CREATE TABLE`` for the
vector types' ``storage=`` option. Why a vector's storage matters, and the advisor:
:mod:`vecalchemy.storage`.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Column, Table, event
from sqlalchemy.engine.mock import MockConnection

from . import sqltext

__all__ = ["STORAGE_MODES", "check_storage", "set_storage_statement", "listen_for_storage"]

#: PostgreSQL's column storage modes (``ALTER TABLE ... ALTER COLUMN ... SET STORAGE``),
#: by their ``pg_attribute.attstorage`` letter
STORAGE_MODES = {"p": "plain", "e": "external", "x": "extended", "m": "main"}

# --- setting the storage --------------------------------------------------------------


def check_storage(storage: Any) -> str:
    """``storage`` in lower case if PostgreSQL has that storage mode (``plain``,
    ``external``, ``extended``, ``main``; any case); otherwise :class:`ValueError`
    naming the modes and the value."""
    modes = tuple(STORAGE_MODES.values())
    if not isinstance(storage, str) or storage.lower() not in modes:
        raise ValueError(
            f"storage must be one of {', '.join(modes)} (PostgreSQL's ALTER TABLE ... SET "
            f"STORAGE), got {storage!r}"
        )
    return storage.lower()


def set_storage_statement(
    dialect: Any, table_name: str, column_name: str, storage: str, schema: str | None = None
) -> str:
    """``ALTER TABLE [schema.]table ALTER COLUMN column SET STORAGE MODE`` with the names
    checked and quoted (:mod:`vecalchemy.sqltext`) and the mode checked
    (:func:`check_storage`); raises before anything is sent."""
    sqltext.check_identifier(table_name, "table name")
    sqltext.check_identifier(column_name, "column name")
    if schema is not None:
        sqltext.check_identifier(schema, "schema name")
    mode = check_storage(storage).upper()
    return (
        f"ALTER TABLE {sqltext.qualified(dialect, table_name, schema)} ALTER COLUMN "
        f"{sqltext.quote(dialect, column_name)} SET STORAGE {mode}"
    )


# --- the column option: SET STORAGE after CREATE TABLE ----------------------------------


def _after_create(
    column: Column[Any], mode: str, table: Table, connection: Any, **kw: Any
) -> None:
    if column.table is not table:  # the column was moved to another table since
        return
    sql = set_storage_statement(connection.dialect, table.name, column.name, mode, table.schema)
    # a mock connection (create_mock_engine, Alembic's --sql) prints a script: exact text
    script = isinstance(connection, MockConnection)
    connection.execute(sqltext.Statement(sql, for_script=script))


def _on_table_attach(mode: str, column: Column[Any], table: Any) -> None:
    if isinstance(table, Table):
        event.listen(table, "after_create", functools.partial(_after_create, column, mode))


def _on_column_attach(mode: str, type_: Any, column: Any) -> None:
    if isinstance(column, Column):
        event.listen(column, "after_parent_attach", functools.partial(_on_table_attach, mode))


def listen_for_storage(type_: Any, storage: str) -> None:
    """Make ``CREATE TABLE`` of every table a column of ``type_`` joins be followed by
    ``ALTER TABLE ... ALTER COLUMN ... SET STORAGE <storage>`` (SQLAlchemy DDL events:
    ``after_parent_attach`` of the type and the column, ``after_create`` of the table),
    for ``metadata.create_all``, ``Table.create`` and Alembic's ``op.create_table``
    (online and ``--sql``). The type option ``Vector(768, storage="plain")`` calls it."""
    event.listen(type_, "after_parent_attach", functools.partial(_on_column_attach, storage))
