"""build_vector_index(settings=...): build settings applied to the build's session only."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from vecalchemy import HnswIndex, IvfflatIndex, Vector, build_vector_index, copy_rows
from vecalchemy.facts import index_build_settings

ROWS, DIM = 600, 16


def _items(engine: Engine) -> sa.Table:
    table = sa.Table(
        "items", sa.MetaData(), sa.Column("id", sa.Integer), sa.Column("e", Vector(DIM))
    )
    table.create(engine)
    rng = np.random.default_rng(7)
    with engine.begin() as conn:
        copy_rows(
            conn,
            table,
            {"id": np.arange(ROWS), "e": rng.standard_normal((ROWS, DIM))},
            progress=False,
        )
    return table


def _record(engine: Engine) -> list[tuple[str, Any]]:
    sent: list[tuple[str, Any]] = []

    def before(conn: Any, cursor: Any, statement: str, params: Any, *rest: Any) -> None:
        sent.append((statement, params))

    event.listen(engine, "before_cursor_execute", before)
    return sent


def _set_configs(sent: list[tuple[str, Any]]) -> list[tuple[str, str]]:
    """(name, value) of each set_config the build sent, in order."""
    out = []
    for statement, params in sent:
        if "set_config" in statement:
            values = list(params.values()) if isinstance(params, dict) else list(params)
            out.append((str(values[0]), str(values[1])))
    return out


def _current(conn: sa.Connection, name: str) -> str:
    return str(conn.execute(sa.select(sa.func.current_setting(name))).scalar_one())


@pytest.mark.parametrize("concurrently", [False, True], ids=["in-transaction", "concurrently"])
def test_settings_hold_for_the_build_only(engine: Engine, concurrently: bool) -> None:
    table = _items(engine)
    ix = HnswIndex("ix_e", table.c.e, metric="l2", concurrently=concurrently)
    isolation = "AUTOCOMMIT" if concurrently else "READ COMMITTED"
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level=isolation)
        before = (
            _current(conn, "maintenance_work_mem"),
            _current(conn, "max_parallel_maintenance_workers"),
        )
        sent = _record(engine)
        build_vector_index(
            conn,
            ix,
            progress=False,
            settings={
                "maintenance_work_mem": 96 * 1024 * 1024,
                "max_parallel_maintenance_workers": 1,
            },
        )
        applied = _set_configs(sent)
        assert applied[:2] == [
            ("maintenance_work_mem", "98304kB"),
            ("max_parallel_maintenance_workers", "1"),
        ]
        create = next(
            i for i, (s, _) in enumerate(sent) if s.lstrip().upper().startswith("CREATE INDEX")
        )
        first_set = next(i for i, (s, _) in enumerate(sent) if "set_config" in s)
        assert first_set < create
        after = (
            _current(conn, "maintenance_work_mem"),
            _current(conn, "max_parallel_maintenance_workers"),
        )
        assert after == before  # restored on the build's own session
        if not concurrently:
            conn.commit()
    with engine.connect() as conn:
        assert (
            conn.execute(sa.text("SELECT count(*) FROM pg_class WHERE relname = 'ix_e'")).scalar()
            == 1
        )


def test_auto_settings_come_from_the_table(engine: Engine) -> None:
    table = _items(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("ANALYZE items"))
    ix = IvfflatIndex("ix_auto", table.c.e, metric="l2", lists=10)
    sent = _record(engine)
    build_vector_index(engine, ix, progress=False, settings="auto")
    expected = index_build_settings(ROWS, DIM, method="ivfflat", lists=10)
    applied = dict(_set_configs(sent)[:2])
    assert applied["maintenance_work_mem"] == f"{-(-expected.maintenance_work_mem // 1024)}kB"
    assert applied["max_parallel_maintenance_workers"] == str(
        expected.max_parallel_maintenance_workers
    )


@pytest.mark.parametrize("analysed", [True, False], ids=["reltuples", "counted"])
def test_auto_settings_of_a_partitioned_table_size_one_partition(
    engine: Engine, analysed: bool
) -> None:
    """Each partition's index is a build of its own: "auto" sizes for the largest
    partition, not for the rows of all partitions together."""
    table = sa.Table(
        "parts",
        sa.MetaData(),
        sa.Column("k", sa.Integer),
        sa.Column("e", Vector(DIM)),
        postgresql_partition_by="LIST (k)",
    )
    with engine.begin() as conn:
        table.create(conn)
        for k in (1, 2):
            conn.execute(sa.text(f"CREATE TABLE parts_{k} PARTITION OF parts FOR VALUES IN ({k})"))
        rng = np.random.default_rng(3)
        copy_rows(
            conn,
            table,
            {"k": np.array([1] * 30 + [2] * 90), "e": rng.standard_normal((120, DIM))},
            progress=False,
        )
        if analysed:
            # the statistics of a large table, as ANALYZE would leave them (the sizes
            # differ in the estimate only above its 64 MB floor)
            conn.execute(sa.text("ANALYZE parts"))
            conn.execute(
                sa.text("UPDATE pg_class SET reltuples = 100000 WHERE relname = 'parts_1'")
            )
            conn.execute(
                sa.text("UPDATE pg_class SET reltuples = 300000 WHERE relname = 'parts_2'")
            )
    largest = 300_000 if analysed else 90
    expected = index_build_settings(largest, DIM, m=16)
    assert (
        index_build_settings(400_000, DIM, m=16).maintenance_work_mem
        != (expected.maintenance_work_mem)
        or not analysed
    )
    ix = HnswIndex("ix_parts", table.c.e, metric="l2", m=16)
    sent = _record(engine)
    build_vector_index(engine, ix, progress=False, settings="auto")
    applied = dict(_set_configs(sent)[:2])
    assert applied["maintenance_work_mem"] == f"{-(-expected.maintenance_work_mem // 1024)}kB"
    assert applied["max_parallel_maintenance_workers"] == str(
        expected.max_parallel_maintenance_workers
    )


def test_workers_beyond_the_server_are_capped_with_a_warning(engine: Engine) -> None:
    table = _items(engine)
    ix = HnswIndex("ix_cap", table.c.e, metric="l2")
    with engine.connect() as conn:
        cap = int(_current(conn, "max_parallel_workers"))
    sent = _record(engine)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build_vector_index(
            engine, ix, progress=False, settings={"max_parallel_maintenance_workers": 1000}
        )
    assert any(f"capped to {cap} (max_parallel_workers)" in str(w.message) for w in caught)
    assert ("max_parallel_maintenance_workers", str(cap)) in _set_configs(sent)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"maintenance_work_mem": 1000}, "at least 1 MB"),
        ({"maintenance_work_mem": "1GB"}, "must be an int"),
        ({"work_mem": 2**20}, "unknown build setting 'work_mem'"),
        ({"max_parallel_maintenance_workers": -1}, "must be an int >= 0"),
        ("fast", "'auto'"),
        (42, "got int"),
    ],
)
def test_bad_settings_are_refused_before_anything_is_sent(
    engine: Engine, settings: Any, message: str
) -> None:
    table = sa.Table("items", sa.MetaData(), sa.Column("e", Vector(DIM)))
    ix = HnswIndex("ix_bad", table.c.e, metric="l2")
    sent = _record(engine)
    with pytest.raises(ValueError, match=message):
        build_vector_index(engine, ix, progress=False, settings=settings)
    assert sent == []


def test_auto_needs_a_declared_vector_index(engine: Engine) -> None:
    table = sa.Table("items", sa.MetaData(), sa.Column("e", Vector(DIM)))
    ix = sa.Index(
        "ix_plain", table.c.e, postgresql_using="hnsw", postgresql_ops={"e": "vector_l2_ops"}
    )
    with pytest.raises(ValueError, match="HnswIndex or IvfflatIndex"):
        build_vector_index(engine, ix, progress=False, settings="auto")
