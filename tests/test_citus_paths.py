"""Transaction-local settings as ``SET LOCAL`` statements (the form Citus propagates to
its shards), forced on plain PostgreSQL, and EXPLAIN reading through a Citus custom
scan's worker plans."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
import sqlalchemy as sa
from conftest import ASYNC_MODES, make_async_engine
from sqlalchemy import event, select
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncSession

from vecalchemy import connections
from vecalchemy.connections import has_citus, set_local
from vecalchemy.exc import UnsafeSQLError
from vecalchemy.explain import measure_recall, walk_plan
from vecalchemy.indexes import HnswIndex
from vecalchemy.indexes.build import build_vector_index
from vecalchemy.indexes.build_settings import apply_build_settings, set_gucs
from vecalchemy.search import apply_search_settings, install_search_options, search_settings
from vecalchemy.types import Vector

ROWS, DIM = 300, 8
#: a custom (placeholder) setting: PostgreSQL takes any string for it, so a hostile value
#: can be read back exactly
PLACEHOLDER = "vecalchemy_test.value"

items = sa.Table(
    "items",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("e", Vector(DIM)),
)


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every transaction-local setting sent as SET LOCAL statements, as on Citus."""
    monkeypatch.setattr(connections, "SET_LOCAL_STATEMENTS", True)


@pytest.fixture
def sent(engine: Engine) -> Iterator[list[str]]:
    """Every statement the engine sends, as the driver receives it."""
    out: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        out.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    yield out
    event.remove(engine, "before_cursor_execute", record)


@pytest.fixture
def loaded(raw_conn: psycopg.Connection) -> np.ndarray:
    """``items``: 300 rows of 8-dim vectors with an HNSW L2 index."""
    raw_conn.execute(f"CREATE TABLE items (id int PRIMARY KEY, e vector({DIM}))")
    data = np.random.default_rng(11).standard_normal((ROWS, DIM)).astype(np.float32)
    with raw_conn.cursor().copy("COPY items (id, e) FROM STDIN") as copy:
        for i, v in enumerate(data):
            copy.write_row([i, "[" + ",".join(map(str, v.tolist())) + "]"])
    raw_conn.execute("CREATE INDEX items_e_idx ON items USING hnsw (e vector_l2_ops)")
    raw_conn.execute("ANALYZE items")
    return data


def _show(conn: sa.Connection, name: str) -> str:
    return str(conn.execute(select(sa.func.current_setting(name))).scalar_one())


def _set_locals(sent: list[str]) -> list[str]:
    return [s for s in sent if s.lstrip().upper().startswith("SET LOCAL")]


# --- search settings --------------------------------------------------------------------


def test_search_settings_apply_and_restore_as_set_local_statements(
    engine: Engine, statements: None, sent: list[str]
) -> None:
    with engine.connect() as conn:
        apply_search_settings(conn, ef_search=55)
        with search_settings(
            conn, ef_search=77, hnsw_iterative_scan="relaxed_order", prefer_index=True
        ):
            assert _show(conn, "hnsw.ef_search") == "77"
            assert _show(conn, "hnsw.iterative_scan") == "relaxed_order"
            assert _show(conn, "enable_seqscan") == "off"
            assert _show(conn, "citus.propagate_set_commands") == "local"
        # back to the values before the block, still inside the transaction
        assert _show(conn, "hnsw.ef_search") == "55"
        assert _show(conn, "hnsw.iterative_scan") == "off"
        assert _show(conn, "enable_seqscan") == "on"
        conn.rollback()
        assert _show(conn, "hnsw.ef_search") == "40"
    assert not any("set_config" in s for s in sent)
    assert "SET LOCAL hnsw.ef_search = '77'" in _set_locals(sent)
    assert "SET LOCAL hnsw.iterative_scan = 'relaxed_order'" in _set_locals(sent)
    assert "SET LOCAL enable_seqscan = 'off'" in _set_locals(sent)
    # the propagation switch precedes the settings, each time
    first = _set_locals(sent)[0]
    assert first == "SET LOCAL citus.propagate_set_commands = 'local'"


def test_execution_option_applies_as_set_local_statements(
    engine: Engine, statements: None, sent: list[str]
) -> None:
    install_search_options(engine)
    stmt = select(sa.func.current_setting("hnsw.ef_search")).execution_options(
        vector_search={"ef_search": 91}
    )
    with engine.connect() as conn:
        assert conn.execute(stmt).scalar_one() == "91"
    assert "SET LOCAL hnsw.ef_search = '91'" in _set_locals(sent)
    assert not any("set_config" in s for s in sent)


@pytest.mark.parametrize("mode", ASYNC_MODES)
async def test_search_settings_on_an_async_session_as_set_local_statements(
    vector_database_url: str, vector_schema: str, mode: str, statements: None
) -> None:
    engine = make_async_engine(vector_database_url, vector_schema, mode)
    try:
        async with AsyncSession(engine) as session:
            async with search_settings(session, probes=12, ivfflat_iterative_scan="relaxed_order"):
                got = await session.execute(
                    select(
                        sa.func.current_setting("ivfflat.probes"),
                        sa.func.current_setting("ivfflat.iterative_scan"),
                        sa.func.current_setting("citus.propagate_set_commands"),
                    )
                )
                assert tuple(got.one()) == ("12", "relaxed_order", "local")
            got = await session.execute(select(sa.func.current_setting("ivfflat.probes")))
            assert got.scalar_one() == "1"  # restored on leaving the block
    finally:
        await engine.dispose()


# --- measure_recall ---------------------------------------------------------------------


def _recall(engine: Engine, forced: bool, monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setattr(connections, "SET_LOCAL_STATEMENTS", forced)
    stmt = select(items.c.id).order_by(items.c.e.l2_distance([0.1] * DIM)).limit(10)
    # ef_search 4 < LIMIT 10: an index scan returns at most 4 rows, the exact run 10
    with engine.connect() as conn, search_settings(conn, ef_search=4, prefer_index=True):
        recall = measure_recall(conn, stmt, 10)
        assert _show(conn, "enable_indexscan") == "on"
        assert _show(conn, "enable_seqscan") == "off"
        assert _show(conn, "plan_cache_mode") == "auto"
    return recall


def test_measure_recall_is_the_same_with_set_local_statements(
    engine: Engine, loaded: np.ndarray, monkeypatch: pytest.MonkeyPatch, sent: list[str]
) -> None:
    by_statements = _recall(engine, True, monkeypatch)
    assert "SET LOCAL enable_indexscan = 'off'" in _set_locals(sent)
    by_set_config = _recall(engine, False, monkeypatch)
    # the exact run left the index: 4 ANN rows against 10 exact ones
    assert by_statements <= 0.4
    assert by_statements == by_set_config


# --- build settings ---------------------------------------------------------------------


def test_build_settings_apply_and_restore_as_set_local_statements(
    engine: Engine, loaded: np.ndarray, statements: None, sent: list[str]
) -> None:
    ix = HnswIndex("ix_build", items.c.e, metric="l2")
    with engine.connect() as conn:
        before = (
            _show(conn, "maintenance_work_mem"),
            _show(conn, "max_parallel_maintenance_workers"),
        )
        restore = apply_build_settings(
            conn,
            ix,
            {"maintenance_work_mem": 96 * 1024 * 1024, "max_parallel_maintenance_workers": 0},
        )
        assert _show(conn, "maintenance_work_mem") == "96MB"
        assert _show(conn, "max_parallel_maintenance_workers") == "0"
        set_gucs(conn, restore)
        assert (
            _show(conn, "maintenance_work_mem"),
            _show(conn, "max_parallel_maintenance_workers"),
        ) == before
        sent.clear()
        build_vector_index(
            conn, ix, progress=False, settings={"maintenance_work_mem": 80 * 1024 * 1024}
        )
        assert _show(conn, "maintenance_work_mem") == before[0]
        conn.commit()
    create = next(i for i, s in enumerate(sent) if s.lstrip().upper().startswith("CREATE INDEX"))
    applied = sent.index("SET LOCAL maintenance_work_mem = '81920kB'")
    restored = sent.index(f"SET LOCAL maintenance_work_mem = '{before[0]}'")
    assert applied < create < restored
    assert not any("set_config" in s for s in sent)


# --- the helper itself ------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["it's", "a;b", "'; RESET ALL; --", "''", "$$x$$", "100%", "ünïcode", ""],
    ids=["quote", "semicolon", "injection", "two-quotes", "dollar", "percent", "utf8", "empty"],
)
@pytest.mark.parametrize("forced", [True, False], ids=["set-local", "set-config"])
def test_a_value_is_read_back_exactly(engine: Engine, value: str, forced: bool) -> None:
    with engine.connect() as conn:
        set_local(conn, {PLACEHOLDER: value}, statements=forced)
        assert _show(conn, PLACEHOLDER) == value
        assert _show(conn, "search_path") != ""  # the session is intact
        conn.rollback()


@pytest.mark.parametrize(
    "value",
    ["a\\b", "a\x00b", "a\nb", "a\rb", "a\tb", "\x1b[0m", "a\x7fb", 100, None],
    ids=["backslash", "nul", "newline", "cr", "tab", "escape", "del", "int", "none"],
)
@pytest.mark.parametrize("forced", [True, False], ids=["set-local", "set-config"])
def test_an_unsafe_value_is_refused_before_anything_is_sent(
    engine: Engine, sent: list[str], value: Any, forced: bool
) -> None:
    unsafe = pytest.raises(UnsafeSQLError, match=f"setting {PLACEHOLDER}")
    with engine.connect() as conn, unsafe:
        set_local(conn, {PLACEHOLDER: value}, statements=forced)
    assert sent == []


@pytest.mark.parametrize(
    "name",
    [
        "hnsw.ef_search; RESET ALL",
        "Enable_seqscan",
        "a.b.c",
        "x y",
        '"quoted"',
        "1abc",
        "",
        42,
    ],
)
def test_a_name_that_is_not_a_guc_name_is_refused(
    engine: Engine, sent: list[str], name: Any
) -> None:
    with engine.connect() as conn, pytest.raises(UnsafeSQLError, match="must be a GUC name"):
        set_local(conn, {name: "1"}, statements=True)
    assert sent == []


def test_citus_is_detected_once_per_pooled_connection(engine: Engine, sent: list[str]) -> None:
    for _ in range(3):
        with engine.connect() as conn:
            assert has_citus(conn) is False
            set_local(conn, {"enable_seqscan": "off"})
            assert _show(conn, "enable_seqscan") == "off"
            conn.rollback()
    assert sum("extname = 'citus'" in s for s in sent) == 1
    # no Citus here: the plain form, one set_config round trip per call
    assert sum("set_config" in s for s in sent) == 3
    assert _set_locals(sent) == []


def test_set_local_needs_a_transaction_to_last(engine: Engine) -> None:
    with engine.connect() as conn:
        set_local(conn, {"enable_seqscan": "off"}, statements=True)
        conn.commit()
        assert _show(conn, "enable_seqscan") == "on"
        assert _show(conn, "citus.propagate_set_commands") == ""


# --- EXPLAIN through a Citus custom scan ------------------------------------------------

#: ``EXPLAIN (FORMAT JSON, VERBOSE)`` of a nearest-neighbour query on a distributed table,
#: in the shape Citus prints (src/backend/distributed/planner/multi_explain.c; its
#: regression test src/test/regress/expected/multi_explain.out): the worker's plan of one
#: task, with shard names, under the custom scan's "Distributed Query"
CITUS_PLAN: dict[str, Any] = {
    "Node Type": "Limit",
    "Plans": [
        {
            "Node Type": "Sort",
            "Parent Relationship": "Outer",
            "Plans": [
                {
                    "Node Type": "Custom Scan",
                    "Parent Relationship": "Outer",
                    "Custom Plan Provider": "Citus Adaptive",
                    "Distributed Query": {
                        "Job": {
                            "Task Count": 32,
                            "Tasks Shown": "One of 32",
                            "Tasks": [
                                {
                                    "Query": "SELECT id FROM public.items_102008 items ...",
                                    "Node": "host=worker1 port=5432 dbname=app",
                                    "Remote Plan": [
                                        [
                                            {
                                                "Plan": {
                                                    "Node Type": "Limit",
                                                    "Plans": [
                                                        {
                                                            "Node Type": "Index Scan",
                                                            "Parent Relationship": "Outer",
                                                            "Index Name": "items_e_idx_102008",
                                                            "Relation Name": "items_102008",
                                                            "Schema": "public",
                                                            "Alias": "items",
                                                        }
                                                    ],
                                                }
                                            }
                                        ]
                                    ],
                                }
                            ],
                        }
                    },
                }
            ],
        },
        {"Node Type": "Seq Scan", "Relation Name": "doc_2024", "Schema": "public"},
    ],
}


def test_walk_descends_into_the_worker_plans_of_a_citus_custom_scan() -> None:
    nodes = [(depth, node["Node Type"]) for depth, node in walk_plan(CITUS_PLAN)]
    assert nodes == [
        (0, "Limit"),
        (1, "Sort"),
        (2, "Custom Scan"),
        (3, "Limit"),
        (4, "Index Scan"),
        (1, "Seq Scan"),
    ]


def test_walk_gives_shard_nodes_the_declared_names() -> None:
    by_type = {node["Node Type"]: node for _, node in walk_plan(CITUS_PLAN)}
    scan = by_type["Index Scan"]
    assert scan["Index Name"] == "items_e_idx"
    assert scan["Relation Name"] == "items"
    # a coordinator node keeps its name, digits and all (a partition, not a shard)
    assert by_type["Seq Scan"]["Relation Name"] == "doc_2024"
    # the plan itself is not modified
    remote = CITUS_PLAN["Plans"][0]["Plans"][0]["Distributed Query"]["Job"]["Tasks"][0]
    assert remote["Remote Plan"][0][0]["Plan"]["Plans"][0]["Index Name"] == "items_e_idx_102008"


def test_walk_of_a_plain_plan_is_unchanged() -> None:
    plan = {
        "Node Type": "Limit",
        "Plans": [{"Node Type": "Index Scan", "Index Name": "ix_1", "Relation Name": "t_1"}],
    }
    assert [node for _, node in walk_plan(plan)] == [plan, plan["Plans"][0]]
