"""Canaries for the private SQLAlchemy names behind vecalchemy._private.

Each accessor is called on a real object of the installed SQLAlchemy and must return
what the name holds there; a SQLAlchemy that renamed one fails here, loudly, and each
accessor raises UnsupportedSQLAlchemyError (not a silent default) when its name is gone.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy
from conftest import make_async_engine, make_engine
from sqlalchemy import Column, Integer, MetaData, Table, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Engine
from sqlalchemy.engine.default import DefaultDialect, DefaultExecutionContext
from sqlalchemy.ext.asyncio import AsyncEngine

from vecalchemy import Vector, _private
from vecalchemy.dialect import VecalchemyDialect
from vecalchemy.exc import UnsupportedSQLAlchemyError

md = MetaData()
doc = Table("doc", md, Column("id", Integer, primary_key=True), Column("v", Vector(3)))


def test_limit_and_offset_clauses_are_the_selects_binds() -> None:
    stmt = select(doc.c.id).limit(10).offset(5)
    assert _private.limit_clause(stmt).value == 10
    assert _private.offset_clause(stmt).value == 5
    assert _private.limit_clause(select(doc.c.id)) is None
    assert _private.offset_clause(select(doc.c.id)) is None


def test_order_by_clauses_are_the_keys_given() -> None:
    key = doc.c.v.l2_distance([1, 2, 3])
    stmt = select(doc.c.id).order_by(key, doc.c.id)
    clauses = _private.order_by_clauses(stmt)
    assert len(clauses) == 2 and clauses[0].compare(key) and clauses[1] is doc.c.id
    assert _private.order_by_clauses(select(doc.c.id)) == ()


def test_label_reference_types_are_what_order_by_wraps_labels_in() -> None:
    label_ref, textual_ref = _private.label_reference_types()
    labelled = doc.c.v.l2_distance([1, 2, 3]).label("d")
    by_label = select(doc.c.id, labelled).order_by(labelled)
    by_name = select(doc.c.id, labelled).order_by("d")
    assert isinstance(_private.order_by_clauses(by_label)[0], label_ref)
    assert isinstance(_private.order_by_clauses(by_name)[0], textual_ref)


def test_post_values_clause_is_set_by_on_conflict_only() -> None:
    assert _private.post_values_clause(insert(doc)) is None
    upsert = pg_insert(doc).on_conflict_do_nothing()
    assert _private.post_values_clause(upsert) is not None


def test_result_columns_carry_each_columns_type() -> None:
    compiled = select(doc.c.id, doc.c.v).compile(dialect=VecalchemyDialect())
    types = [c.type for c in _private.result_columns(compiled)]
    assert isinstance(types[0], Integer) and isinstance(types[1], Vector)


def test_rowcount_set_on_a_context_is_what_the_result_reports(
    vector_database_url: str, vector_schema: str
) -> None:
    seen: list[int] = []
    eng: Engine = make_engine(vector_database_url, vector_schema, "plugin")
    try:
        with eng.connect() as conn:
            result = conn.exec_driver_sql("SELECT 1")
            context = result.context
            assert isinstance(context, DefaultExecutionContext)
            _private.set_rowcount(context, 42)
            seen.append(result.rowcount)
    finally:
        eng.dispose()
    assert seen == [42]


def test_insertmanyvalues_batches_replace_their_parameters(
    vector_database_url: str, vector_schema: str
) -> None:
    replaced: list[Any] = []
    eng = make_engine(vector_database_url, vector_schema, "text", insertmanyvalues_page_size=2)
    md.create_all(eng)
    deliver = DefaultDialect._deliver_insertmanyvalues_batches

    def spy(self: Any, *args: Any) -> Any:
        for batch in deliver(self, *args):
            copy = _private.replace_batch(batch, replaced_parameters=batch.replaced_parameters)
            replaced.append((type(copy) is type(batch), copy.replaced_statement))
            yield copy

    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(type(eng.dialect), _private.DELIVER_BATCHES, spy)
            eng.dialect.use_insertmanyvalues_wo_returning = True
            with eng.begin() as conn:
                conn.execute(insert(doc), [{"id": i, "v": [i, 0, 0]} for i in range(4)])
                assert conn.execute(select(doc.c.id)).scalars().all() == [0, 1, 2, 3]
    finally:
        md.drop_all(eng)
        eng.dispose()
    assert len(replaced) == 2 and all(same and "INSERT" in sql for same, sql in replaced)


async def test_driver_cursor_is_psycopgs_own_behind_the_async_adapter(
    vector_database_url: str, vector_schema: str
) -> None:
    import psycopg

    seen: list[Any] = []
    eng: AsyncEngine = make_async_engine(vector_database_url, vector_schema, "plugin")

    def record(conn: Any, cursor: Any, *args: Any) -> None:
        seen.append(_private.driver_cursor(cursor))

    sqlalchemy.event.listen(eng.sync_engine, "before_cursor_execute", record)
    try:
        async with eng.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")
    finally:
        await eng.dispose()
    assert len(seen) == 1 and isinstance(seen[0], psycopg.AsyncCursor)


def test_the_overridden_dialect_method_exists_in_sqlalchemy() -> None:
    assert callable(_private.require(DefaultDialect, _private.DELIVER_BATCHES))
    assert VecalchemyDialect._deliver_insertmanyvalues_batches is not (
        DefaultDialect._deliver_insertmanyvalues_batches
    )


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: _private.limit_clause(object()), "GenerativeSelect._limit_clause"),
        (lambda: _private.offset_clause(object()), "GenerativeSelect._offset_clause"),
        (lambda: _private.order_by_clauses(object()), "GenerativeSelect._order_by_clauses"),
        (lambda: _private.post_values_clause(object()), "Insert._post_values_clause"),
        (lambda: _private.result_columns(object()), "SQLCompiler._result_columns"),
        (lambda: _private.replace_batch(object()), "_InsertManyValuesBatch._replace"),
        (lambda: _private.require(DefaultDialect, "_gone"), "DefaultDialect._gone"),
    ],
)
def test_a_missing_name_fails_loudly_naming_it_and_the_versions(call: Any, name: str) -> None:
    with pytest.raises(UnsupportedSQLAlchemyError) as err:
        call()
    assert name in str(err.value)
    assert sqlalchemy.__version__ in str(err.value) and _private.SUPPORTED in str(err.value)


def test_a_renamed_async_cursor_attribute_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy.dialects.postgresql.psycopg import AsyncAdapt_psycopg_cursor

    adapter = object.__new__(AsyncAdapt_psycopg_cursor)
    with pytest.raises(UnsupportedSQLAlchemyError, match="AsyncAdapt_psycopg_cursor._cursor"):
        _private.driver_cursor(adapter)


def test_a_renamed_rowcount_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(DefaultExecutionContext, "_rowcount")
    with pytest.raises(UnsupportedSQLAlchemyError, match="DefaultExecutionContext._rowcount"):
        _private.set_rowcount(object.__new__(DefaultExecutionContext), 1)


def test_a_renamed_label_reference_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy.sql import elements

    monkeypatch.delattr(elements, "_textual_label_reference")
    with pytest.raises(UnsupportedSQLAlchemyError, match="_textual_label_reference"):
        _private.label_reference_types()
