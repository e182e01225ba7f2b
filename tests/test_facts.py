"""The facts table agrees with the server's catalog (operators, operator classes, defaults)."""

from __future__ import annotations

import psycopg
import pytest

from vecalchemy.facts import (
    BIT_MAX_LENGTH,
    DEFAULT_OPCLASS,
    METRICS,
    OPCLASSES,
    SEARCH_SETTINGS,
    metric,
    metrics_for,
    opclass_for,
    opclass_info,
)


def test_opclasses_and_their_index_methods_match_the_catalog(
    raw_conn: psycopg.Connection,
) -> None:
    rows = raw_conn.execute(
        "SELECT c.opcname, a.amname FROM pg_opclass c JOIN pg_am a ON a.oid = c.opcmethod "
        "WHERE a.amname IN ('hnsw', 'ivfflat')"
    ).fetchall()
    catalog: dict[str, set[str]] = {}
    for opcname, amname in rows:
        catalog.setdefault(opcname, set()).add(amname)
    assert {name: set(methods) for name, methods in OPCLASSES.values()} == catalog


def test_each_opclass_orders_by_its_metrics_operator_on_its_type(
    raw_conn: psycopg.Connection,
) -> None:
    rows = raw_conn.execute(
        "SELECT c.opcname, o.oprname, format_type(c.opcintype, NULL) FROM pg_opclass c "
        "JOIN pg_amop ao ON ao.amopfamily = c.opcfamily AND ao.amoppurpose = 'o' "
        "JOIN pg_operator o ON o.oid = ao.amopopr "
        "JOIN pg_am a ON a.oid = c.opcmethod WHERE a.amname IN ('hnsw', 'ivfflat')"
    ).fetchall()
    catalog = {(opcname, oprname, typ) for opcname, oprname, typ in rows}
    ours = {
        (opclass, METRICS[metric_name].operator, sql_type)
        for (sql_type, metric_name), (opclass, _) in OPCLASSES.items()
    }
    assert ours == catalog


def test_default_opclass_per_method_matches_the_catalog(raw_conn: psycopg.Connection) -> None:
    rows = raw_conn.execute(
        "SELECT a.amname, c.opcname FROM pg_opclass c JOIN pg_am a ON a.oid = c.opcmethod "
        "WHERE a.amname IN ('hnsw', 'ivfflat') AND c.opcdefault"
    ).fetchall()
    assert {m: d for m, d in DEFAULT_OPCLASS.items() if d is not None} == dict(rows)


def test_every_metric_operator_exists_for_its_types_returning_float8(
    raw_conn: psycopg.Connection,
) -> None:
    rows = raw_conn.execute(
        "SELECT oprname, format_type(oprleft, NULL) FROM pg_operator "
        "WHERE oprleft = oprright AND oprresult = 'float8'::regtype "
        "AND format_type(oprleft, NULL) IN ('vector', 'halfvec', 'sparsevec', 'bit')"
    ).fetchall()
    ours = {(m.operator, t) for m in METRICS.values() for t in m.types}
    assert ours <= set(rows)


def test_every_metric_function_exists_for_its_types(raw_conn: psycopg.Connection) -> None:
    for m in METRICS.values():
        for sql_type in m.types:
            found = raw_conn.execute(
                "SELECT to_regprocedure(%s)", [f"{m.function}({sql_type}, {sql_type})"]
            ).fetchone()
            assert found is not None and found[0] is not None, (m.function, sql_type)


def test_metrics_for_each_type() -> None:
    assert metrics_for("vector") == ("l2", "inner_product", "cosine", "l1")
    assert metrics_for("bit") == ("hamming", "jaccard")


def test_opclass_for_names_the_operator_class() -> None:
    assert opclass_for("halfvec", "cosine", "hnsw") == "halfvec_cosine_ops"


def test_opclass_for_refuses_a_method_without_that_opclass() -> None:
    with pytest.raises(
        ValueError, match="vector_l1_ops does not exist for access method 'ivfflat'"
    ):
        opclass_for("vector", "l1", "ivfflat")


def test_opclass_for_refuses_a_metric_the_type_lacks() -> None:
    with pytest.raises(ValueError, match="no 'hamming' metric for type vector"):
        opclass_for("vector", "hamming")


def test_opclass_info_is_the_reverse_lookup() -> None:
    assert opclass_info("sparsevec_ip_ops") == ("sparsevec", "inner_product", ("hnsw",))


def test_unknown_metric_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown metric 'dot'; expected one of cosine, hamming"):
        metric("dot")


_KINDS = {int: "integer", float: "real", str: "enum"}


def _number(value: object) -> float | None:
    return None if value is None else float(str(value))


def test_search_settings_match_pg_settings(raw_conn: psycopg.Connection) -> None:
    raw_conn.execute("SELECT '[1]'::vector")  # loads the library: its GUCs exist from now on
    rows = raw_conn.execute(
        "SELECT name, vartype, min_val, max_val, enumvals FROM pg_settings "
        "WHERE name LIKE 'hnsw.%' OR name LIKE 'ivfflat.%'"
    ).fetchall()
    server = {name: (kind, _number(low), _number(high), c) for name, kind, low, high, c in rows}
    ours = {
        g.name: (_KINDS[g.kind], _number(g.low), _number(g.high), list(g.choices) or None)
        for g in SEARCH_SETTINGS.values()
    }
    assert server == ours


def test_bit_max_length_is_postgresqls(raw_conn: psycopg.Connection) -> None:
    raw_conn.execute(f"SELECT NULL::bit({BIT_MAX_LENGTH})")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=str(BIT_MAX_LENGTH)):
        raw_conn.execute(f"SELECT NULL::bit({BIT_MAX_LENGTH + 1})")
