"""The plan guard against the real planner, in every driver mode: no warning when the plan
scans the HNSW index, one warning (or an error, with the statement not executed) when
it does not, once per statement, and no EXPLAIN for any other statement."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from conftest import make_async_engine, make_engine
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, event, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from vecalchemy import HnswIndex, Vector, install_plan_guard, install_query_checks, plan_guard
from vecalchemy.exc import VectorIndexWarning, VectorPlanError, VectorPlanWarning
from vecalchemy.pytest_plugin import libpq_conninfo

metadata = MetaData()
items = Table(
    "items",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("embedding", Vector(3, metric="l2")),
)
HnswIndex("ix_items_hnsw", items.c.embedding)
plain = Table(
    "plain",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("embedding", Vector(3, metric="l2")),
)

_FILL = (
    "INSERT INTO {table} (id, embedding) SELECT g, "
    "ARRAY[sin(g), cos(g), sin(g * 0.7)]::vector FROM generate_series(1, 1000) g"
)


def _top_k(q: list[float], k: int = 5) -> Any:
    return select(items.c.id).order_by(items.c.embedding.l2_distance(q)).limit(k)


@pytest.fixture(scope="module")
def plan_schema(vector_database_url: str) -> Iterator[str]:
    """One schema for the module: both tables loaded and analyzed (the tests change
    planner settings and rows only inside transactions they roll back)."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(libpq_conninfo(vector_database_url), autocommit=True) as raw:
        raw.execute(f'CREATE SCHEMA "{schema}"')
    engine = make_engine(vector_database_url, schema, "text")
    with engine.begin() as conn:
        _create_on(conn)
    engine.dispose()
    yield schema
    with psycopg.connect(libpq_conninfo(vector_database_url), autocommit=True) as raw:
        raw.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def guarded(
    vector_database_url: str, plan_schema: str, mode: str
) -> Iterator[tuple[Engine, list[str]]]:
    """An engine in each mode with the guard installed; the list collects every
    statement sent to the cursor (the guard's own ones included)."""
    engine = make_engine(vector_database_url, plan_schema, mode)
    install_plan_guard(engine)
    sent: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    yield engine, sent
    engine.dispose()


def _explains(sent: list[str]) -> int:
    return sum(s.lstrip().upper().startswith("EXPLAIN") for s in sent)


def test_index_plan_gives_no_warning(guarded: tuple[Engine, list[str]]) -> None:
    engine, sent = guarded
    with engine.connect() as conn, warnings.catch_warnings():
        warnings.simplefilter("error")
        ids = conn.scalars(_top_k([0.1, 0.9, 0.2])).all()
        assert len(ids) == 5
        conn.scalars(_top_k([0.5, 0.5, 0.5])).all()
    assert _explains(sent) == 1  # once per statement: the second run is a lookup


def test_sequential_scan_warns_once_and_returns_the_rows(
    guarded: tuple[Engine, list[str]],
) -> None:
    engine, sent = guarded
    q = [0.1, 0.9, 0.2]
    with engine.connect() as conn:
        expected = conn.scalars(_top_k(q, 1000).limit(None).order_by(None)).all()
        conn.execute(text("SET LOCAL enable_indexscan = off"))  # the guard plans in here
        with pytest.warns(VectorPlanWarning) as record:
            first = conn.scalars(_top_k(q)).all()
        assert len(record) == 1
        assert record[0].filename == __file__  # points at the caller's line
        message = str(record[0].message)
        assert "Seq Scan on items" in message
        assert "ORDER BY" in message and "LIMIT" in message
        assert "ANALYZE" in message and "enable_seqscan = off" in message
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            second = conn.scalars(_top_k([0.7, 0.1, 0.3])).all()
        exact = conn.execute(
            text("SELECT id FROM items ORDER BY embedding <-> CAST(:q AS vector) LIMIT 5"),
            {"q": str(q)},
        ).scalars()
        assert first == list(exact)
    assert len(second) == 5 and len(expected) == 1000
    assert _explains(sent) == 1
    assert issubclass(VectorPlanWarning, VectorIndexWarning)


def test_raise_mode_refuses_before_execution_and_replans(
    guarded: tuple[Engine, list[str]],
) -> None:
    engine, sent = guarded
    install_plan_guard(engine, action="raise")  # idempotent: changes the action
    stmt = _top_k([0.1, 0.9, 0.2])
    with engine.connect() as conn:
        conn.execute(text("SET LOCAL enable_indexscan = off"))
        before = len(sent)
        with pytest.raises(VectorPlanError, match="scans no vector index"):
            conn.execute(stmt)
        issued = sent[before:]
        assert _explains(issued) == 1
        assert not any(s.lstrip().upper().startswith("SELECT ITEMS.ID") for s in issued)
        with pytest.raises(VectorPlanError):  # a refused plan is not remembered
            conn.execute(stmt)
        conn.execute(text("SET LOCAL enable_indexscan = on"))  # the transaction is intact
        assert len(conn.scalars(stmt).all()) == 5
    assert _explains(sent) == 3


def test_other_statements_are_never_explained(guarded: tuple[Engine, list[str]]) -> None:
    engine, sent = guarded
    with engine.connect() as conn, warnings.catch_warnings():
        warnings.simplefilter("ignore", VectorIndexWarning)  # the static check's (no LIMIT)
        warnings.simplefilter("error", VectorPlanWarning)
        conn.execute(select(items.c.id).where(items.c.id < 5)).all()
        conn.execute(select(items.c.id).order_by(items.c.id).limit(3)).all()
        conn.execute(items.update().where(items.c.id == 1).values(id=1))
        conn.execute(text("SELECT id FROM items ORDER BY embedding <-> '[1,2,3]' LIMIT 3"))
        # ordered by a distance but no LIMIT, and a table without a vector index
        conn.execute(select(items.c.id).order_by(items.c.embedding.l2_distance([1, 2, 3])))
        conn.execute(
            select(plain.c.id).order_by(plain.c.embedding.l2_distance([1, 2, 3])).limit(3)
        )
    assert _explains(sent) == 0


def test_session_orm_statement_is_guarded(guarded: tuple[Engine, list[str]]) -> None:
    engine, sent = guarded
    with Session(engine) as session:
        session.execute(text("SET LOCAL enable_indexscan = off"))
        with pytest.warns(VectorPlanWarning, match="Seq Scan on items"):
            assert len(session.scalars(_top_k([0.3, 0.3, 0.3])).all()) == 5
    assert _explains(sent) == 1


def test_static_check_and_guard_together(guarded: tuple[Engine, list[str]]) -> None:
    """A shape no index serves (DESC) gets both: the static reason and the plan."""
    engine, _ = guarded
    install_query_checks(engine)
    stmt = select(items.c.id).order_by(items.c.embedding.l2_distance([1, 2, 3]).desc()).limit(3)
    with engine.connect() as conn, warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        conn.execute(stmt).all()
    kinds = sorted(type(w.message).__name__ for w in record)
    assert kinds == ["VectorIndexWarning", "VectorPlanWarning"]


@pytest.mark.parametrize("mode", ["plugin", "asyncpg"])
def test_explain_sees_the_statements_search_settings(
    guarded: tuple[Engine, list[str]],
) -> None:
    """HNSW's cost grows with ef_search (pgvector #784): on this small table a large
    ef_search turns the plan into a sequential scan, which the guard sees because the
    statement's settings are applied (set_config) before its EXPLAIN."""
    engine, sent = guarded
    q = [0.1, 0.2, 0.3]
    wide = select(items.c.id, items.c.embedding).order_by(items.c.embedding.l2_distance(q))
    with engine.connect() as conn, warnings.catch_warnings():
        warnings.simplefilter("error", VectorPlanWarning)
        assert len(conn.scalars(_top_k(q)).all()) == 5
        before = len(sent)
        with pytest.warns(VectorPlanWarning, match="Seq Scan on items"):
            rows = conn.execute(
                wide.limit(5).execution_options(vector_search={"ef_search": 1000})
            ).all()
        assert len(rows) == 5
    issued = sent[before:]
    set_config = next(i for i, s in enumerate(issued) if "set_config" in s)
    explain = next(i for i, s in enumerate(issued) if s.lstrip().startswith("EXPLAIN"))
    assert set_config < explain


@pytest.mark.parametrize("mode", ["text"])
def test_remembered_statements_are_bounded(
    guarded: tuple[Engine, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, sent = guarded
    monkeypatch.setattr(plan_guard, "MAX_STATEMENTS", 3)
    with engine.connect() as conn:
        for k in range(1, 8):
            conn.execute(select(items.c.id.label(f"c{k}")).limit(k)).all()
    assert len(plan_guard._GUARDS[engine].settled) == 3


def test_bad_action_is_refused() -> None:
    action: Any = "log"
    with pytest.raises(ValueError, match="action must be"):
        install_plan_guard(create_engine("postgresql+psycopg://"), action=action)


@pytest.mark.parametrize("mode", ["plugin", "asyncpg"])
async def test_async_engine(vector_database_url: str, plan_schema: str, mode: str) -> None:
    engine = make_async_engine(vector_database_url, plan_schema, mode)
    install_plan_guard(engine)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SET LOCAL enable_indexscan = off"))
            with pytest.warns(VectorPlanWarning, match="Seq Scan on items"):
                result = await conn.execute(_top_k([0.2, 0.2, 0.9]))
            assert len(result.all()) == 5
            await conn.execute(text("SET LOCAL enable_indexscan = on"))
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                await conn.execute(_top_k([0.2, 0.2, 0.9], 6))
    finally:
        await engine.dispose()


def _create_on(conn: Any) -> None:
    metadata.create_all(conn)
    for table in ("items", "plain"):
        conn.execute(text(_FILL.format(table=table)))
        conn.execute(text(f"ANALYZE {table}"))
