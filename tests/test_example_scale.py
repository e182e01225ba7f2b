"""examples/scale.py on 5 000 rows against the test database, judged by what it reports."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
import pytest

from vecalchemy.testing import libpq_conninfo

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ROWS = 5_000
CLIENTS = 2
#: two tenants: 2 500 rows a partition, enough for the planner to prefer the HNSW index
TENANTS = 2


def _scale() -> ModuleType:
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    return importlib.import_module("scale")


def _schemas(url: str) -> set[str]:
    with psycopg.connect(libpq_conninfo(url), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'scale\\_%'"
        ).fetchall()
    return {r[0] for r in rows}


@pytest.fixture(scope="module")
def scale_run(
    vector_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Any, set[str]]:
    before = _schemas(vector_database_url)
    plot = tmp_path_factory.mktemp("plot") / "scale.png"
    results = _scale().main(
        [
            "--database-url",
            vector_database_url,
            "--rows",
            str(ROWS),
            "--tenants",
            str(TENANTS),
            "--clients",
            str(CLIENTS),
            "--queries",
            "30",
            "--plot",
            str(plot),
            "--no-progress",
        ]
    )
    return results, _schemas(vector_database_url) - before


def test_scale_loads_every_row_and_reports_the_load_rates_to_compare(
    scale_run: tuple[Any, set[str]],
) -> None:
    results, _ = scale_run
    assert results.rows == ROWS
    assert results.calibration_rows == ROWS  # fewer than 20 000 rows: all of them
    for rates in (results.load_rows_per_s, results.calibration_before, results.calibration_after):
        assert set(rates) == {"vector", "halfvec"}
        assert all(rate > 0 for rate in rates.values())


def test_scale_top_k_returns_k_rows(scale_run: tuple[Any, set[str]]) -> None:
    results, _ = scale_run
    assert results.topk_rows == _scale().K


def test_scale_measures_latency_with_one_and_several_clients_sync_and_async(
    scale_run: tuple[Any, set[str]],
) -> None:
    results, _ = scale_run
    assert {(x.api, x.clients) for x in results.latency} == {
        (api, clients) for api in ("sync, threads", "async, asyncio") for clients in (1, CLIENTS)
    }
    for x in results.latency:
        assert 0 < x.p50_ms <= x.p99_ms
        assert x.qps > 0


def test_scale_recall_lies_in_0_1_and_is_high_at_the_largest_ef_search(
    scale_run: tuple[Any, set[str]],
) -> None:
    results, _ = scale_run
    scale = _scale()
    assert {(p.sql_type, p.ef_search) for p in results.recall} == {
        (t, ef) for t in ("vector", "halfvec") for ef in scale.EF_SEARCH
    }
    assert all(0.0 <= p.recall <= 1.0 for p in results.recall)
    best = {p.sql_type: p.recall for p in results.recall if p.ef_search == max(scale.EF_SEARCH)}
    assert best["vector"] >= 0.9
    assert best["halfvec"] >= 0.9


def test_scale_halfvec_table_is_smaller_than_the_vector_table(
    scale_run: tuple[Any, set[str]],
) -> None:
    results, _ = scale_run
    sizes = {s.sql_type: s for s in results.sizes}
    assert sizes["halfvec"].heap < sizes["vector"].heap
    assert sizes["halfvec"].index < sizes["vector"].index
    for s in sizes.values():
        assert s.total >= s.heap + s.index > 0


def test_scale_filtered_query_reports_rows_and_recall_in_range(
    scale_run: tuple[Any, set[str]],
) -> None:
    results, _ = scale_run
    assert [f.iterative_scan for f in results.filtered] == ["off", "relaxed_order"]
    assert 0 < results.filter_fraction < 0.1
    for f in results.filtered:
        assert 0 <= f.rows <= _scale().K
        assert 0.0 <= f.recall <= 1.0


def test_scale_tenant_query_explain_names_the_partitions_own_index(
    scale_run: tuple[Any, set[str]],
) -> None:
    results, _ = scale_run
    assert results.pruned_partition == f"items_t{results.pruned_tenant}"
    assert results.pruned_indexes == (f"{results.pruned_partition}_embedding_idx",)
    assert f"Index Scan on {results.pruned_partition}" in results.pruned_plan
    assert 0.0 <= results.pruned_recall <= 1.0


def test_scale_reports_memory(scale_run: tuple[Any, set[str]]) -> None:
    results, _ = scale_run
    assert results.maintenance_work_mem.endswith(" MB")
    assert int(results.maintenance_work_mem.split()[0]) >= 64  # index_build_settings' floor
    assert results.peak_rss_bytes > 0


def test_scale_writes_a_png_plot(scale_run: tuple[Any, set[str]]) -> None:
    results, _ = scale_run
    assert results.plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_scale_drops_its_schema(scale_run: tuple[Any, set[str]]) -> None:
    _, left = scale_run
    assert left == set()


def test_scale_refuses_ef_construction_below_twice_m(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _scale().parse_args(["--ef-construction", "31"])
    assert exit_info.value.code == 2
    assert "at least 2*m" in capsys.readouterr().err
