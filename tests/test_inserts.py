"""Executemany INSERTs as pipelined multi-row VALUES batches (vecalchemy.inserts).

What the server receives is read from libpq's protocol trace: the Parse, Bind and Sync
messages psycopg sends. Mode "text" is a plain psycopg engine and keeps SQLAlchemy's
default (one Bind per row); modes "plugin" and "dialect" send multi-row statements and
pipeline the batches sharing one statement text.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg
import pytest
from conftest import make_async_engine, make_engine
from libpq_trace import libpq_trace
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    Table,
    Text,
    bindparam,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from vecalchemy import (
    Bit,
    HalfVec,
    InvalidVectorError,
    SparseVec,
    SparseVector,
    Vector,
    install,
)
from vecalchemy.functions import l2_normalize
from vecalchemy.inserts import PAGE_SIZE, BatchedParameters

VECALCHEMY_MODES = ("plugin", "dialect")

# what these tests read is psycopg's wire (libpq's trace) and vecalchemy's psycopg grouping;
# the behaviour every driver shares is tested in tests/test_executemany.py
pytestmark = pytest.mark.psycopg_only(
    "executemany INSERTs grouped into pipelined multi-row batches are vecalchemy's psycopg 3 "
    "path, read from libpq's trace; other drivers send SQLAlchemy's own executemany"
)

_PARSE = re.compile(r'^ "([^"]*)" "(.*)" \d+(?: \d+)*$', re.DOTALL)
_BIND = re.compile(r'^ "[^"]*" "([^"]*)" (\d+)((?: \d+)*)')


@dataclass
class Wire:
    """Frontend messages of one libpq trace, reduced to what these tests look at."""

    #: statement texts of the Parse messages, in order
    parses: list[str] = field(default_factory=list)
    #: per Sync-delimited round, (statement text, parameter count) of each Bind
    rounds: list[list[tuple[str, int]]] = field(default_factory=list)

    def insert_rounds(self) -> list[list[int]]:
        """Parameter counts of the INSERT Binds, grouped by the Sync that ends them."""
        found = [[n for text, n in r if text.startswith("INSERT")] for r in self.rounds]
        return [r for r in found if r]

    def bind_rounds(self) -> list[list[int]]:
        """Parameter counts of every Bind, grouped by the Sync that ends them."""
        return [[n for _, n in r] for r in self.rounds if r]

    def insert_binds(self) -> list[int]:
        return [n for r in self.insert_rounds() for n in r]

    def insert_parses(self) -> list[str]:
        return [p for p in self.parses if p.startswith("INSERT")]


def _wire(messages: list[list[str]]) -> Wire:
    wire = Wire()
    prepared: dict[str, str] = {}
    current: list[tuple[str, int]] = []
    for parts in messages:
        if len(parts) < 3 or parts[0] != "F":
            continue
        kind, rest = parts[2], parts[3] if len(parts) > 3 else ""
        if kind == "Parse":
            m = _PARSE.match(rest)
            assert m is not None, parts
            prepared[m.group(1)] = m.group(2)
            wire.parses.append(m.group(2))
        elif kind == "Bind":
            # Bind "<portal>" "<statement>" <n formats> <codes...> <n params> <values...>
            m = _BIND.match(rest)
            assert m is not None, parts
            tokens = m.group(3).split()
            n_formats = int(m.group(2))
            n_params = int(tokens[n_formats])
            current.append((prepared.get(m.group(1), "?"), n_params))
        elif kind == "Sync":
            wire.rounds.append(current)
            current = []
    if current:
        wire.rounds.append(current)
    return wire


@contextlib.contextmanager
def wire_trace(conn: Connection) -> Iterator[Wire]:
    """Trace what ``conn``'s libpq connection sends inside the block (filled on exit)."""
    wire = Wire()
    messages: list[list[str]] = []
    try:
        with libpq_trace(conn) as messages:
            yield wire
    finally:  # (also when the block raised: what was sent before the error)
        traced = _wire(messages)
        wire.parses, wire.rounds = traced.parses, traced.rounds


def make_docs(engine: Engine, name: str = "docs") -> Table:
    t = Table(
        name,
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("embedding", Vector(3)),
    )
    t.create(engine)
    return t


def doc_rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {"id": i, "embedding": np.array([i, 0.5, -i], dtype=np.float32)}
        for i in range(start, start + n)
    ]


def read_back(engine: Engine, t: Table) -> list[tuple[int, list[float]]]:
    with engine.connect() as conn:
        rows = conn.execute(select(t.c.id, t.c.embedding).order_by(t.c.id)).all()
    return [(r.id, np.asarray(r.embedding, dtype=np.float32).tolist()) for r in rows]


def expected(rows: list[dict[str, Any]]) -> list[tuple[int, list[float]]]:
    return [(r["id"], r["embedding"].tolist()) for r in rows]


def count(engine: Engine, t: Table) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(t)) or 0)


@pytest.fixture
def small_page_engine(vector_database_url: str, vector_schema: str, mode: str) -> Iterator[Engine]:
    eng = make_engine(vector_database_url, vector_schema, mode, insertmanyvalues_page_size=2)
    yield eng
    eng.dispose()


# --- what the server receives -----------------------------------------------------------


def test_engine_page_size_sends_multi_row_statements_pipelined(
    small_page_engine: Engine, mode: str
) -> None:
    t = make_docs(small_page_engine)
    rows = doc_rows(5)
    with small_page_engine.begin() as conn, wire_trace(conn) as wire:
        conn.execute(insert(t), rows)
    if mode == "text":
        # SQLAlchemy's default on psycopg: one statement, one Bind per row, one pipeline
        assert wire.insert_rounds() == [[2, 2, 2, 2, 2]]
        assert len(wire.insert_parses()) == 1
    else:
        # two 2-row batches in one pipeline, then the 1-row remainder
        assert wire.insert_rounds() == [[4, 4], [2]]
        assert [p.count("), (") + 1 for p in wire.insert_parses()] == [2, 1]
    assert read_back(small_page_engine, t) == expected(rows)


def test_page_size_execution_option_sends_multi_row_statements(engine: Engine, mode: str) -> None:
    t = make_docs(engine)
    rows = doc_rows(5)
    with engine.begin() as conn, wire_trace(conn) as wire:
        conn.execution_options(insertmanyvalues_page_size=2).execute(insert(t), rows)
    assert wire.insert_rounds() == ([[2] * 5] if mode == "text" else [[4, 4], [2]])
    assert read_back(engine, t) == expected(rows)


@pytest.mark.parametrize("mode", VECALCHEMY_MODES, indirect=True)
def test_default_page_size_is_100_rows(engine: Engine) -> None:
    assert PAGE_SIZE == 100
    t = make_docs(engine)
    rows = doc_rows(250)
    with engine.begin() as conn, wire_trace(conn) as wire:
        conn.execute(insert(t), rows)
    assert wire.insert_rounds() == [[200, 200], [100]]
    assert read_back(engine, t) == expected(rows)


@pytest.mark.parametrize("mode", VECALCHEMY_MODES, indirect=True)
def test_engine_page_size_argument_is_kept(
    vector_database_url: str, vector_schema: str, mode: str
) -> None:
    eng = make_engine(vector_database_url, vector_schema, mode, insertmanyvalues_page_size=7)
    try:
        assert eng.dialect.insertmanyvalues_page_size == 7
        t = make_docs(eng)
        rows = doc_rows(20)
        with eng.begin() as conn, wire_trace(conn) as wire:
            conn.execute(insert(t), rows)
        assert wire.insert_rounds() == [[14, 14], [12]]
        assert read_back(eng, t) == expected(rows)
    finally:
        eng.dispose()


def test_text_mode_keeps_sqlalchemys_single_row_executemany(engine: Engine, mode: str) -> None:
    if mode != "text":
        assert engine.dialect.use_insertmanyvalues_wo_returning
        return
    assert not engine.dialect.use_insertmanyvalues_wo_returning
    t = make_docs(engine)
    with engine.begin() as conn, wire_trace(conn) as wire:
        conn.execute(insert(t), doc_rows(3))
    assert wire.insert_rounds() == [[2, 2, 2]]


@pytest.mark.parametrize("mode", VECALCHEMY_MODES, indirect=True)
def test_batches_sharing_a_statement_go_in_one_cursor_call(small_page_engine: Engine) -> None:
    t = make_docs(small_page_engine)
    calls: list[tuple[int, bool]] = []

    # (before_cursor_execute: SQLAlchemy 2.0 gives after_cursor_execute of insertmanyvalues
    # the whole executemany's parameters)
    @event.listens_for(small_page_engine, "before_cursor_execute")
    def record(conn: Any, cursor: Any, stmt: str, params: Any, ctx: Any, many: bool) -> None:
        if stmt.startswith("INSERT"):
            calls.append((_sets(params), many))

    with small_page_engine.begin() as conn:
        conn.execute(insert(t), doc_rows(7))
    # batches of 2, 2, 2 (one statement text) then 1
    assert calls == [(3, True), (1, True)]


@pytest.mark.parametrize(("n", "rounds"), [(2, [[4]]), (4, [[4, 4]]), (3, [[4], [2]])])
@pytest.mark.parametrize("mode", VECALCHEMY_MODES, indirect=True)
def test_row_counts_at_and_around_the_page_size(
    small_page_engine: Engine, n: int, rounds: list[list[int]]
) -> None:
    t = make_docs(small_page_engine)
    rows = doc_rows(n)
    with small_page_engine.begin() as conn, wire_trace(conn) as wire:
        assert conn.execute(insert(t), rows).rowcount == n
    assert wire.insert_rounds() == rounds
    assert read_back(small_page_engine, t) == expected(rows)


def test_every_vector_type_round_trips_through_multi_row_batches(
    small_page_engine: Engine, mode: str
) -> None:
    t = Table(
        "all_types",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("v", Vector(3)),
        Column("h", HalfVec(2)),
        Column("s", SparseVec(6)),
        Column("b", Bit(4)),
    )
    t.create(small_page_engine)
    rows = [
        {
            "id": i,
            "v": np.array([i, -0.25, 1e-3], dtype=np.float32),
            "h": np.array([i, 0.5], dtype=np.float16),
            "s": SparseVector({i: 1.5, 5: -2.0}, 6),
            "b": format(i, "04b"),
        }
        for i in range(5)
    ]
    rows[2] |= {"v": None, "s": None}  # NULLs inside a batch
    with small_page_engine.begin() as conn:
        conn.execute(insert(t), rows)
        back = conn.execute(select(t).order_by(t.c.id)).all()
    got = [
        (
            r.id,
            None if r.v is None else np.asarray(r.v).tolist(),
            np.asarray(r.h).tolist(),
            None if r.s is None else (r.s.indices.tolist(), r.s.values.tolist()),
            r.b,
        )
        for r in back
    ]
    assert got == [
        (
            r["id"],
            None if r["v"] is None else r["v"].tolist(),
            r["h"].tolist(),
            None if r["s"] is None else (r["s"].indices.tolist(), r["s"].values.tolist()),
            r["b"],
        )
        for r in rows
    ]


def test_sql_expression_around_the_bound_vector_is_applied_per_row(
    small_page_engine: Engine, mode: str
) -> None:
    t = make_docs(small_page_engine)
    stmt = insert(t).values(embedding=l2_normalize(bindparam("raw", type_=Vector(3))))
    with small_page_engine.begin() as conn, wire_trace(conn) as wire:
        conn.execute(stmt, [{"id": i, "raw": [3.0 * (i + 1), 4.0 * (i + 1), 0]} for i in range(5)])
    assert wire.insert_rounds() == ([[2] * 5] if mode == "text" else [[4, 4], [2]])
    assert [v for _, v in read_back(small_page_engine, t)] == [
        np.array([0.6, 0.8, 0.0], dtype=np.float32).tolist()
    ] * 5


def test_repeated_executemany_on_one_connection_lands_every_row(
    small_page_engine: Engine, mode: str
) -> None:
    t = make_docs(small_page_engine)
    first, second = doc_rows(5), doc_rows(5, start=5)
    with small_page_engine.begin() as conn:
        conn.execute(insert(t), first)
        with wire_trace(conn) as wire:
            conn.execute(insert(t), second)
    if mode == "text":  # the statement prepared by the first call is reused
        assert wire.parses == []
    else:  # the 2-row statement too; the lone 1-row tail goes unprepared, parsed each time
        assert wire.parses == [
            "INSERT INTO docs (id, embedding) VALUES ($1::INTEGER, $2::VECTOR(3))"
        ]
    assert wire.bind_rounds() == ([[2] * 5] if mode == "text" else [[4, 4], [2]])
    assert read_back(small_page_engine, t) == expected(first + second)


def test_upsert_keeps_one_row_per_statement_and_lands_every_row(
    small_page_engine: Engine,
) -> None:
    t = make_docs(small_page_engine)
    with small_page_engine.begin() as conn:
        conn.execute(insert(t), doc_rows(3))
    new = [{"id": i, "embedding": np.full(3, 10 + i, dtype=np.float32)} for i in range(1, 6)]
    stmt = pg_insert(t)
    stmt = stmt.on_conflict_do_update(
        index_elements=[t.c.id], set_={"embedding": stmt.excluded.embedding}
    )
    with small_page_engine.begin() as conn, wire_trace(conn) as wire:
        result = conn.execution_options(preserve_rowcount=True).execute(stmt, new)
        assert result.rowcount == 5
    # SQLAlchemy sends ON CONFLICT executemany row by row in every mode (a multi-row
    # VALUES could name one key twice, which DO UPDATE refuses)
    assert wire.insert_rounds() == [[2] * 5]
    assert read_back(small_page_engine, t) == expected(doc_rows(1) + new)


def test_upsert_naming_one_key_twice_applies_both_in_order(small_page_engine: Engine) -> None:
    t = make_docs(small_page_engine)
    stmt = pg_insert(t)
    stmt = stmt.on_conflict_do_update(
        index_elements=[t.c.id], set_={"embedding": stmt.excluded.embedding}
    )
    rows = [{"id": 7, "embedding": np.full(3, v, dtype=np.float32)} for v in (1, 2, 3)]
    with small_page_engine.begin() as conn:
        conn.execute(stmt, rows)
    assert read_back(small_page_engine, t) == [(7, [3.0, 3.0, 3.0])]


def test_upsert_on_conflict_do_nothing_counts_only_inserted_rows(
    small_page_engine: Engine,
) -> None:
    t = make_docs(small_page_engine)
    with small_page_engine.begin() as conn:
        conn.execute(insert(t), doc_rows(3))
    stmt = pg_insert(t).on_conflict_do_nothing(index_elements=[t.c.id])
    with small_page_engine.begin() as conn:
        # ids 1 and 2 exist: 3 of the 5 rows are inserted, as the server reports
        result = conn.execution_options(preserve_rowcount=True).execute(stmt, doc_rows(5, start=1))
        assert result.rowcount == 3
    assert [i for i, _ in read_back(small_page_engine, t)] == [0, 1, 2, 3, 4, 5]


def _plain_insert_rounds(eng: Engine, rows: list[dict[str, Any]]) -> tuple[Any, int]:
    t = make_docs(eng)
    with eng.begin() as conn, wire_trace(conn) as wire:
        rowcount = conn.execute(insert(t), rows).rowcount
    rounds = wire.insert_rounds()
    assert read_back(eng, t) == expected(rows)
    with eng.begin() as conn:
        t.drop(conn)
    return rounds, rowcount


def test_install_on_a_plain_engine_leaves_executemany_as_sqlalchemy_sends_it(
    vector_database_url: str, vector_schema: str
) -> None:
    # install() adds engine events only; regrouping batches belongs to vecalchemy's
    # dialect (the plugin), so an installed plain engine sends what SQLAlchemy sends
    rows = doc_rows(5)
    plain = make_engine(vector_database_url, vector_schema, "text", insertmanyvalues_page_size=2)
    installed = make_engine(
        vector_database_url, vector_schema, "text", insertmanyvalues_page_size=2
    )
    try:
        assert install(installed) and install(installed)  # idempotent
        assert _plain_insert_rounds(installed, rows) == _plain_insert_rounds(plain, rows)
    finally:
        plain.dispose()
        installed.dispose()


def test_install_on_a_plain_engine_keeps_sqlalchemys_page_size(
    vector_database_url: str, vector_schema: str
) -> None:
    eng = make_engine(vector_database_url, vector_schema, "text")
    try:
        default = eng.dialect.insertmanyvalues_page_size
        assert install(eng)
        assert eng.dialect.insertmanyvalues_page_size == default != PAGE_SIZE
    finally:
        eng.dispose()


def test_a_row_missing_a_column_raises_before_anything_is_sent(
    small_page_engine: Engine,
) -> None:
    t = make_docs(small_page_engine)
    rows = doc_rows(5)
    del rows[4]["embedding"]
    with (
        small_page_engine.connect() as conn,
        wire_trace(conn) as wire,
        pytest.raises(
            StatementError,
            match="A value is required for bind parameter 'embedding', in parameter group 4",
        ),
    ):
        conn.execute(insert(t), rows)
    assert wire.insert_binds() == []
    assert count(small_page_engine, t) == 0


# --- rowcount ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", VECALCHEMY_MODES, indirect=True)
def test_rowcount_is_the_total_over_all_batches(small_page_engine: Engine) -> None:
    t = make_docs(small_page_engine)
    with small_page_engine.begin() as conn:
        result = conn.execute(insert(t), doc_rows(5))
        assert result.rowcount == 5


def test_rowcount_with_preserve_rowcount_is_exact_in_every_mode(
    small_page_engine: Engine,
) -> None:
    t = make_docs(small_page_engine)
    with small_page_engine.begin() as conn:
        result = conn.execution_options(preserve_rowcount=True).execute(insert(t), doc_rows(5))
        assert result.rowcount == 5
    assert count(small_page_engine, t) == 5


# --- events and logging ------------------------------------------------------------------


def _sets(params: Any) -> int:
    """How many parameter sets a cursor call carries (a lone batch is one dict)."""
    return 1 if isinstance(params, dict) else len(params)


def _ids(params: Any) -> list[int]:
    """The ``id`` values in a parameter dict or list of dicts (``id`` or ``id__<n>``)."""
    sets = [params] if isinstance(params, dict) else list(params)
    return [v for p in sets for k, v in p.items() if re.fullmatch(r"id(__\d+)?", k)]


def test_before_cursor_execute_sees_every_row_once(small_page_engine: Engine, mode: str) -> None:
    t = make_docs(small_page_engine)
    seen: list[tuple[int, list[int]]] = []

    @event.listens_for(small_page_engine, "before_cursor_execute")
    def record(conn: Any, cursor: Any, stmt: str, params: Any, ctx: Any, many: bool) -> None:
        if stmt.startswith("INSERT"):
            seen.append((_sets(params), _ids(params)))

    rows = doc_rows(5)
    with small_page_engine.begin() as conn:
        conn.execute(insert(t), rows)
    if mode == "text":
        assert seen == [(5, [0, 1, 2, 3, 4])]
    else:
        # parameter sets of the batches: two 2-row batches, then the 1-row one
        assert seen == [(2, [0, 1, 2, 3]), (1, [4])]
    assert read_back(small_page_engine, t) == expected(rows)


def test_before_cursor_execute_can_rewrite_the_statement(
    small_page_engine: Engine, mode: str
) -> None:
    t = make_docs(small_page_engine)

    @event.listens_for(small_page_engine, "before_cursor_execute", retval=True)
    def comment(
        conn: Any, cursor: Any, stmt: str, params: Any, ctx: Any, many: bool
    ) -> tuple[str, Any]:
        return stmt + " /* tagged */", params

    rows = doc_rows(5)
    with small_page_engine.begin() as conn, wire_trace(conn) as wire:
        conn.execute(insert(t), rows)
    assert wire.insert_parses() and all(p.endswith("/* tagged */") for p in wire.insert_parses())
    assert read_back(small_page_engine, t) == expected(rows)


def test_before_cursor_execute_can_return_a_copy_of_the_parameters(
    small_page_engine: Engine, mode: str
) -> None:
    t = make_docs(small_page_engine)

    @event.listens_for(small_page_engine, "before_cursor_execute", retval=True)
    def copy(
        conn: Any, cursor: Any, stmt: str, params: Any, ctx: Any, many: bool
    ) -> tuple[str, Any]:
        if isinstance(params, dict):
            return stmt, dict(params)
        return stmt, [dict(p) for p in params]

    rows = doc_rows(5)
    with small_page_engine.begin() as conn:
        conn.execute(insert(t), rows)
    assert read_back(small_page_engine, t) == expected(rows)


def _ids_in_log(message: str) -> list[int]:
    return [int(v) for v in re.findall(r"'id__\d+': (\d+)", message)]


def test_echo_logs_the_multi_row_statement_and_inserts(
    vector_database_url: str,
    vector_schema: str,
    mode: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    eng = make_engine(
        vector_database_url, vector_schema, mode, insertmanyvalues_page_size=2, echo=True
    )
    try:
        t = make_docs(eng)
        rows = doc_rows(5)
        with caplog.at_level(logging.INFO, logger="sqlalchemy.engine"), eng.begin() as conn:
            conn.execute(insert(t), rows)
        messages = [r.getMessage() for r in caplog.records]
        inserts = [m for m in messages if m.startswith("INSERT INTO docs")]
        if mode == "text":
            assert inserts == [
                "INSERT INTO docs (id, embedding) VALUES (%(id)s::INTEGER, "
                "%(embedding)s::VECTOR(3))"
            ]
        else:
            # one line per cursor call: the two 2-row batches together, then the last row
            assert [m.count("), (") + 1 for m in inserts] == [2, 1]
            logged = [m for m in messages if "insertmanyvalues" in m]
            assert len(logged) == 2
            assert [_ids_in_log(m) for m in logged] == [[0, 1, 2, 3], [4]]
        assert read_back(eng, t) == expected(rows)
    finally:
        eng.dispose()


# --- errors -----------------------------------------------------------------------------


@pytest.fixture
def one_conn_engine(vector_database_url: str, vector_schema: str, mode: str) -> Iterator[Engine]:
    """Page size 2 and a pool of exactly one connection, so a later use is the same one."""
    eng = make_engine(
        vector_database_url,
        vector_schema,
        mode,
        insertmanyvalues_page_size=2,
        pool_size=1,
        max_overflow=0,
    )
    yield eng
    eng.dispose()


def _assert_connection_usable(engine: Engine, t: Table, pid: int) -> None:
    with engine.begin() as conn:
        assert conn.connection.driver_connection.info.backend_pid == pid  # type: ignore[union-attr]
        conn.execute(insert(t), doc_rows(3, start=100))
        assert conn.scalar(select(func.count()).select_from(t)) == 3


def test_unique_violation_in_the_last_batch_raises_integrity_error_and_rolls_back(
    one_conn_engine: Engine,
) -> None:
    t = make_docs(one_conn_engine)
    rows = doc_rows(5)
    rows[4]["id"] = 0  # the 1-row last batch collides with the first row
    with pytest.raises(IntegrityError) as err, one_conn_engine.begin() as conn:
        pid = conn.connection.driver_connection.info.backend_pid  # type: ignore[union-attr]
        conn.execute(insert(t), rows)
    assert isinstance(err.value.orig, psycopg.errors.UniqueViolation)
    assert 'duplicate key value violates unique constraint "docs_pkey"' in str(err.value)
    assert count(one_conn_engine, t) == 0
    _assert_connection_usable(one_conn_engine, t, pid)


def test_unique_violation_inside_a_pipelined_group_raises_integrity_error(
    one_conn_engine: Engine,
) -> None:
    t = make_docs(one_conn_engine)
    rows = doc_rows(6)  # three 2-row batches sharing one statement
    rows[3]["id"] = 1  # the second batch collides with the first
    with pytest.raises(IntegrityError) as err, one_conn_engine.begin() as conn:
        pid = conn.connection.driver_connection.info.backend_pid  # type: ignore[union-attr]
        conn.execute(insert(t), rows)
    assert isinstance(err.value.orig, psycopg.errors.UniqueViolation)
    assert "Key (id)=(1) already exists." in str(err.value)
    assert count(one_conn_engine, t) == 0
    _assert_connection_usable(one_conn_engine, t, pid)


def test_unique_violation_in_a_savepoint_keeps_the_outer_transaction(
    one_conn_engine: Engine,
) -> None:
    t = make_docs(one_conn_engine)
    rows = doc_rows(6, start=10)
    rows[5]["id"] = 10
    with one_conn_engine.begin() as conn:
        conn.execute(insert(t), doc_rows(5))
        with pytest.raises(IntegrityError), conn.begin_nested():
            conn.execute(insert(t), rows)
        conn.execute(insert(t), doc_rows(3, start=20))
    assert [i for i, _ in read_back(one_conn_engine, t)] == [0, 1, 2, 3, 4, 20, 21, 22]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.array([0, np.nan, 1], dtype=np.float32), r"NaN not allowed in vector \(element 1\)"),
        ([1.0, 2.0], r"vector\(3\): expected 3 dimensions, not 2"),
    ],
    ids=["nan", "wrong-dimension"],
)
def test_bad_vector_in_the_last_row_raises_before_anything_is_sent(
    small_page_engine: Engine, bad: Any, message: str
) -> None:
    t = make_docs(small_page_engine)
    rows = doc_rows(5)
    rows[4]["embedding"] = bad
    with (
        small_page_engine.connect() as conn,
        wire_trace(conn) as wire,
        pytest.raises(StatementError, match=message) as err,
    ):
        conn.execute(insert(t), rows)
    assert isinstance(err.value.orig, InvalidVectorError)
    assert wire.insert_binds() == []
    assert wire.insert_parses() == []
    assert count(small_page_engine, t) == 0


# --- paths that keep SQLAlchemy's own behaviour -------------------------------------------


def test_returning_executemany_returns_all_ids_in_order(
    small_page_engine: Engine, mode: str
) -> None:
    t = make_docs(small_page_engine)
    rows = doc_rows(7)[::-1]  # descending ids: order comes from the parameters
    with small_page_engine.begin() as conn, wire_trace(conn) as wire:
        result = conn.execute(insert(t).returning(t.c.id, sort_by_parameter_order=True), rows)
        ids = result.scalars().all()
    assert ids == [r["id"] for r in rows]
    # RETURNING: one batch per round trip, its rows fetched before the next is sent
    assert wire.insert_rounds() == [[4], [4], [4], [2]]
    assert read_back(small_page_engine, t) == sorted(expected(rows))


@pytest.mark.parametrize("mode", VECALCHEMY_MODES, indirect=True)
def test_preserve_rowcount_keeps_one_statement_per_batch(small_page_engine: Engine) -> None:
    t = make_docs(small_page_engine)
    rows = doc_rows(5)
    with small_page_engine.begin() as conn, wire_trace(conn) as wire:
        conn.execution_options(preserve_rowcount=True).execute(insert(t), rows)
    assert wire.insert_rounds() == [[4], [4], [2]]
    assert read_back(small_page_engine, t) == expected(rows)


# --- ORM --------------------------------------------------------------------------------


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "orm_docs"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    embedding: Mapped[np.ndarray] = mapped_column(Vector(3))


class AutoDoc(Base):
    __tablename__ = "orm_auto_docs"
    id: Mapped[int] = mapped_column(primary_key=True)
    embedding: Mapped[np.ndarray] = mapped_column(Vector(3))


def _orm_rows(session: Session, model: Any) -> list[tuple[int, list[float]]]:
    return [
        (d.id, d.embedding.tolist()) for d in session.scalars(select(model).order_by(model.id))
    ]


def test_orm_add_all_with_primary_keys_lands_every_row(
    small_page_engine: Engine, mode: str
) -> None:
    Base.metadata.create_all(small_page_engine)
    rows = doc_rows(5)
    with Session(small_page_engine) as session, wire_trace(session.connection()) as wire:
        session.add_all([Doc(**r) for r in rows])
        session.commit()
    assert wire.insert_rounds() == ([[2] * 5] if mode == "text" else [[4, 4], [2]])
    with Session(small_page_engine) as session:
        assert _orm_rows(session, Doc) == expected(rows)


def test_orm_bulk_insert_lands_every_row(small_page_engine: Engine, mode: str) -> None:
    Base.metadata.create_all(small_page_engine)
    rows = doc_rows(5)
    with Session(small_page_engine) as session:
        session.execute(insert(Doc), rows)
        session.commit()
    with Session(small_page_engine) as session:
        assert _orm_rows(session, Doc) == expected(rows)


def test_orm_add_all_without_primary_keys_assigns_server_ids(
    small_page_engine: Engine, mode: str
) -> None:
    Base.metadata.create_all(small_page_engine)
    vectors = [np.array([i, 1, 2], dtype=np.float32) for i in range(5)]
    with Session(small_page_engine) as session:
        docs = [AutoDoc(embedding=v) for v in vectors]
        session.add_all(docs)
        session.flush()
        ids = [d.id for d in docs]
        session.commit()
    assert ids == [1, 2, 3, 4, 5]
    with Session(small_page_engine) as session:
        assert _orm_rows(session, AutoDoc) == [
            (i, v.tolist()) for i, v in zip(ids, vectors, strict=True)
        ]


# --- async ------------------------------------------------------------------------------


@pytest.fixture
async def async_engine(
    vector_database_url: str, vector_schema: str, mode: str
) -> AsyncIterator[AsyncEngine]:
    eng = make_async_engine(vector_database_url, vector_schema, mode, insertmanyvalues_page_size=2)
    yield eng
    await eng.dispose()


@pytest.mark.parametrize("mode", VECALCHEMY_MODES, indirect=True)
async def test_async_executemany_insert_lands_every_row_with_total_rowcount(
    async_engine: AsyncEngine, engine: Engine
) -> None:
    t = make_docs(engine)
    rows = doc_rows(5)
    statements: list[int] = []

    @event.listens_for(async_engine.sync_engine, "before_cursor_execute")
    def record(conn: Any, cursor: Any, stmt: str, params: Any, ctx: Any, many: bool) -> None:
        if stmt.startswith("INSERT"):
            statements.append(_sets(params))

    async with async_engine.begin() as conn:
        result = await conn.execute(insert(t), rows)
        assert result.rowcount == 5
    assert statements == [2, 1]
    assert read_back(engine, t) == expected(rows)


@pytest.mark.parametrize("mode", VECALCHEMY_MODES, indirect=True)
async def test_async_unique_violation_raises_integrity_error_and_rolls_back(
    async_engine: AsyncEngine, engine: Engine
) -> None:
    t = make_docs(engine)
    rows = doc_rows(5)
    rows[3]["id"] = 0  # inside the pipelined group of two batches
    with pytest.raises(IntegrityError) as err:
        async with async_engine.begin() as conn:
            await conn.execute(insert(t), rows)
    assert isinstance(err.value.orig, psycopg.errors.UniqueViolation)
    async with async_engine.begin() as conn:
        await conn.execute(insert(t), doc_rows(3, start=100))
    assert [i for i, _ in read_back(engine, t)] == [100, 101, 102]


# --- tables without vectors -------------------------------------------------------------


def _names_table(engine: Engine) -> Table:
    t = Table("names", MetaData(), Column("id", Integer, primary_key=True), Column("name", Text))
    t.create(engine)
    return t


@pytest.mark.parametrize("mode", VECALCHEMY_MODES, indirect=True)
def test_table_without_vectors_inserts_in_batches(engine: Engine) -> None:
    t = _names_table(engine)
    rows = [{"id": i, "name": f"name {i}"} for i in range(1000)]
    with engine.begin() as conn, wire_trace(conn) as wire:
        result = conn.execute(insert(t), rows)
        assert result.rowcount == 1000
    assert wire.insert_rounds() == [[200] * 10]
    with engine.connect() as conn:
        back = conn.execute(select(t.c.id, t.c.name).order_by(t.c.id)).all()
    assert [tuple(r) for r in back] == [(r["id"], r["name"]) for r in rows]


def test_table_without_vectors_preserve_rowcount_is_exact(engine: Engine) -> None:
    t = _names_table(engine)
    rows = [{"id": i, "name": f"name {i}"} for i in range(1000)]
    with engine.begin() as conn:
        result = conn.execution_options(preserve_rowcount=True).execute(insert(t), rows)
        assert result.rowcount == 1000
    assert count(engine, t) == 1000


# --- BatchedParameters ------------------------------------------------------------------


@dataclass
class Batch:
    """The fields of SQLAlchemy's insertmanyvalues batch that BatchedParameters reads."""

    replaced_statement: str
    replaced_parameters: dict[str, Any]
    processed_setinputsizes: Any = None


def test_batched_parameters_pull_batches_only_as_iterated() -> None:
    pulled: list[int] = []

    def source() -> Iterator[Batch]:
        for i in range(1, 4):
            pulled.append(i)
            yield Batch("S", {"id__0": i})
        pulled.append(4)
        yield Batch("T", {"id__0": 4})

    params = BatchedParameters([{"id__0": 0}], "S", source())
    it = iter(params)
    assert next(it) == {"id__0": 0}
    assert pulled == []
    assert next(it) == {"id__0": 1}
    assert pulled == [1]
    assert list(it) == [{"id__0": 2}, {"id__0": 3}]
    # stops at the first batch with another statement and keeps it for the next group
    assert pulled == [1, 2, 3, 4]
    assert params.next_batch == Batch("T", {"id__0": 4})


def test_batched_parameters_len_and_repr_see_every_batch() -> None:
    source = iter([Batch("S", {"id__0": 1}), Batch("S", {"id__0": 2})])
    params = BatchedParameters([{"id__0": 0}], "S", source)
    assert len(params) == 3
    assert repr(params) == "[{'id__0': 0}, {'id__0': 1}, {'id__0': 2}]"
    assert params[-1] == {"id__0": 2}
    assert params.next_batch is None


@pytest.mark.parametrize(
    ("operation", "result"),
    [
        pytest.param(lambda p: list(p), [{"i": 0}, {"i": 1}, {"i": 2}], id="list"),
        pytest.param(lambda p: p[1:], [{"i": 1}, {"i": 2}], id="slice"),
        pytest.param(lambda p: str(p), "[{'i': 0}, {'i': 1}, {'i': 2}]", id="str"),
        pytest.param(lambda p: p == [{"i": 0}, {"i": 1}, {"i": 2}], True, id="eq"),
        pytest.param(lambda p: copy.copy(p), [{"i": 0}, {"i": 1}, {"i": 2}], id="copy.copy"),
        pytest.param(lambda p: json.dumps(p), '[{"i": 0}, {"i": 1}, {"i": 2}]', id="json"),
        pytest.param(lambda p: p.copy(), [{"i": 0}, {"i": 1}, {"i": 2}], id="copy()"),
        pytest.param(lambda p: {"i": 2} in p, True, id="in"),
        pytest.param(lambda p: p != [{"i": 0}, {"i": 1}, {"i": 2}], False, id="ne"),
        pytest.param(lambda p: p.count({"i": 2}), 1, id="count"),
        pytest.param(lambda p: p.index({"i": 2}), 2, id="index"),
        pytest.param(
            lambda p: list(reversed(p)),
            [{"i": 2}, {"i": 1}, {"i": 0}],
            id="reversed",
        ),
        pytest.param(lambda p: p + [], [{"i": 0}, {"i": 1}, {"i": 2}], id="concat"),
    ],
)
def test_batched_parameters_list_operations_see_every_batch(
    operation: Callable[[BatchedParameters], Any], result: Any
) -> None:
    source = iter([Batch("S", {"i": 1}), Batch("S", {"i": 2})])
    assert operation(BatchedParameters([{"i": 0}], "S", source)) == result


# --- autocommit, prepared statements, the user's own do_execute --------------------------


def test_autocommit_executemany_is_all_or_nothing(small_page_engine: Engine, mode: str) -> None:
    """As plain psycopg's executemany: one pipeline, one Sync, one implicit transaction."""
    t = make_docs(small_page_engine)
    rows = doc_rows(7)  # page size 2: groups [2, 2, 2] and a lone tail of 1
    rows[6]["id"] = 0  # the tail collides with the first row
    auto = small_page_engine.execution_options(isolation_level="AUTOCOMMIT")
    with pytest.raises(IntegrityError), auto.connect() as conn:
        conn.execute(insert(t), rows)
    assert count(small_page_engine, t) == 0
    with auto.connect() as conn, wire_trace(conn) as wire:
        rowcount = conn.execute(insert(t), doc_rows(7)).rowcount
    assert rowcount == (-1 if mode == "text" else 7)  # (SQLAlchemy's own: -1)
    # the single-row statement, one Bind a row, in one round
    assert wire.insert_rounds() == [[2] * 7]
    assert read_back(small_page_engine, t) == expected(doc_rows(7))


def test_lone_batches_leave_no_prepared_statement_per_size(
    small_page_engine: Engine, mode: str
) -> None:
    t = make_docs(small_page_engine)
    with small_page_engine.begin() as conn:
        start = 0
        for n in (3, 5, 7, 9, 11, 13, 2, 4, 6):  # lone batches of 1 and 2 rows, many times
            conn.execute(insert(t), doc_rows(n, start=start))
            start += n
        prepared = (
            conn.execute(
                text("SELECT statement FROM pg_prepared_statements WHERE statement LIKE 'INSERT%'")
            )
            .scalars()
            .all()
        )
    if mode == "text":  # plain executemany: the single-row statement
        assert len(prepared) == 1
    else:
        # the 2-row statement (executemany), and the 1-row one once psycopg's threshold
        # of five executions is reached: never one per size
        assert len(prepared) <= 2
        assert all(p.count("), (") <= 1 for p in prepared)
    assert count(small_page_engine, t) == start


def test_the_users_do_execute_listeners_still_run(small_page_engine: Engine, mode: str) -> None:
    t = make_docs(small_page_engine)
    seen: list[str] = []

    @event.listens_for(small_page_engine, "do_execute")
    def on_execute(cursor: Any, statement: str, parameters: Any, context: Any) -> None:
        if statement.startswith("INSERT"):
            seen.append("execute")

    @event.listens_for(small_page_engine, "do_executemany")
    def on_executemany(cursor: Any, statement: str, parameters: Any, context: Any) -> None:
        if statement.startswith("INSERT"):
            seen.append("executemany")

    with small_page_engine.begin() as conn:
        conn.execute(insert(t), doc_rows(5))
    # text: one plain executemany; vecalchemy: the group of two batches, then the tail
    assert seen == (["executemany"] if mode == "text" else ["execute", "execute"])
    assert read_back(small_page_engine, t) == expected(doc_rows(5))
