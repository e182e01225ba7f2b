"""Partial vector indexes: the query checks decide whether a query's WHERE implies the
index's predicate as PostgreSQL does (predtest.c), and EXPLAIN agrees.

For each predicate kind: a query the index serves (no problem, and the plan scans the
index), one it cannot serve (a "no index" problem with the reason, and the plan scans no
vector index) and one outside the model (an "uncertain" problem)."""

from __future__ import annotations

import datetime
import uuid
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from conftest import make_engine
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    bindparam,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.engine import Engine

from vecalchemy.checks import check_query, explain_index_usage, install_query_checks
from vecalchemy.exc import VectorIndexUncertainWarning, VectorIndexWarning
from vecalchemy.indexes import HnswIndex
from vecalchemy.pytest_plugin import libpq_conninfo
from vecalchemy.types import Vector

Q = [0.3, -0.2, 0.9]
D = datetime.date


def _table() -> Table:
    """A fresh Table object for the module's table ``item`` (one index declared per
    case, so that only that case's index can serve the query)."""
    return Table(
        "item",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("cat", Integer),
        Column("flag", Boolean),
        Column("name", String),
        Column("day", Date),
        Column("e", Vector(3, metric="l2")),
    )


Where = Callable[[Any], Any]

#: kind -> (index predicate, {verdict: (query WHERE, fragment of the problem)})
CASES: dict[str, tuple[Where, dict[str, tuple[Where, str]]]] = {
    "equality": (
        lambda c: c.cat == 3,
        {
            "usable": (lambda c: c.cat == 3, ""),
            "not usable": (lambda c: c.cat == 2, "query has cat = 2, index requires cat = 3"),
            "cannot tell": (lambda c: func.abs(c.cat) == 3, "abs(item.cat) = 3"),
        },
    ),
    "IN": (
        lambda c: c.cat.in_([1, 2, 3]),
        {
            "usable": (lambda c: c.cat.in_([1, 2]), ""),
            "not usable": (
                lambda c: c.cat.in_([1, 4]),
                "query has cat IN (1, 4), index requires cat IN (1, 2, 3)",
            ),
            "cannot tell": (
                lambda c: c.cat.in_(select(func.generate_series(1, 2))),
                "the operator in_op is not modelled",
            ),
        },
    ),
    "range": (
        lambda c: c.cat > 1,
        {
            "usable": (lambda c: c.cat >= 2, ""),
            "not usable": (lambda c: c.cat >= 1, "query has cat >= 1, index requires cat > 1"),
            "cannot tell": (lambda c: c.cat + 0 >= 2, "the left side is not a column"),
        },
    ),
    "range of dates": (
        lambda c: c.day >= D(2024, 3, 1),
        {
            "usable": (lambda c: c.day == D(2024, 3, 4), ""),
            "not usable": (
                lambda c: c.day > D(2024, 2, 28),
                "query has day > '2024-02-28', index requires day >= '2024-03-01'",
            ),
            "cannot tell": (
                lambda c: c.day >= func.current_date(),
                "not a constant known before execution",
            ),
        },
    ),
    "BETWEEN": (
        lambda c: c.cat.between(1, 3),
        {
            "usable": (lambda c: c.cat.between(2, 3), ""),
            "not usable": (
                lambda c: c.cat.between(0, 3),
                "query has cat >= 0 AND cat <= 3, index requires cat >= 1 AND cat <= 3",
            ),
            "cannot tell": (
                lambda c: c.cat.between(1, func.abs(-3)),
                "BETWEEN bounds not known before execution",
            ),
        },
    ),
    "IS NOT NULL": (
        lambda c: c.name.is_not(None),
        {
            "usable": (lambda c: c.name == "n1", ""),  # a strict comparison implies it
            "not usable": (
                lambda c: c.cat == 1,
                "query has no condition on name, index requires name IS NOT NULL",
            ),
            "cannot tell": (lambda c: func.lower(c.name) == "n1", "lower(item.name) = 'n1'"),
        },
    ),
    "IS NULL": (
        lambda c: c.name.is_(None),
        {
            "usable": (lambda c: c.name.is_(None), ""),
            "not usable": (
                lambda c: c.name == "n1",
                "query has name = 'n1', index requires name IS NULL",
            ),
            "cannot tell": (
                lambda c: func.coalesce(c.name, "x") == "x",
                "coalesce(item.name, 'x') = 'x'",
            ),
        },
    ),
    "boolean column": (
        lambda c: c.flag,
        {
            "usable": (lambda c: and_(c.flag, c.cat >= 0), ""),
            "not usable": (lambda c: ~c.flag, "query has NOT flag, index requires flag"),
            "cannot tell": (
                lambda c: or_(c.flag, c.cat == 1),
                "OR in the query's WHERE is not modelled",
            ),
        },
    ),
    "NOT boolean column": (
        lambda c: ~c.flag,
        {
            "usable": (lambda c: c.flag == False, ""),  # noqa: E712 (SQL: flag = false)
            "not usable": (lambda c: c.flag, "query has flag, index requires NOT flag"),
            "cannot tell": (lambda c: ~func.bool(c.cat), "a UnaryExpression is not modelled"),
        },
    ),
    "IS TRUE": (
        lambda c: c.flag.is_(True),
        {
            "usable": (lambda c: c.flag.is_(True), ""),
            # PostgreSQL proves flag IS TRUE only from itself
            "not usable": (lambda c: c.flag, "query has flag, index requires flag IS TRUE"),
            "cannot tell": (
                lambda c: c.flag.is_(func.bool(1)),
                "IS with something other than NULL, TRUE or FALSE",
            ),
        },
    ),
    "conjunction": (
        lambda c: and_(c.cat == 3, c.flag),
        {
            "usable": (lambda c: and_(c.flag, c.name == "n1", c.cat == 3), ""),
            "not usable": (
                lambda c: and_(c.cat == 3, c.name == "n1"),
                "query has cat = 3, index requires cat = 3 AND flag",
            ),
            "cannot tell": (
                lambda c: and_(c.cat == 3, func.coalesce(c.flag, False)),
                "coalesce(item.flag, false)",
            ),
        },
    ),
    "OR in the index": (
        lambda c: or_(c.cat == 1, c.cat == 4),
        {
            "usable": (lambda c: c.cat == 4, ""),
            "not usable": (
                lambda c: c.cat == 2,
                "query has cat = 2, index requires cat = 1 OR cat = 4",
            ),
            "cannot tell": (
                lambda c: or_(c.cat == 1, c.cat == 4),
                "OR in the query's WHERE is not modelled",
            ),
        },
    ),
    "string order": (
        lambda c: c.name < "n2",
        {
            "usable": (lambda c: c.name < "n2", ""),
            "not usable": (
                lambda c: c.name.is_not(None),
                "query has name IS NOT NULL, index requires name < 'n2'",
            ),
            # 'n1' < 'n2' holds in PostgreSQL's collation too, but the order of strings
            # is the server's: the checks do not decide it
            "cannot tell": (lambda c: c.name == "n1", "a string's on the column's collation"),
        },
    ),
}

PARAMS = [(kind, verdict) for kind, (_, cases) in CASES.items() for verdict in cases]

#: more cases from PostgreSQL's rule: (index predicate, query WHERE, verdict, fragment)
MORE: dict[str, tuple[Where, Where, str, str]] = {
    "an equality implies an IN list": (
        lambda c: c.cat.in_([1, 2, 3]),
        lambda c: c.cat == 2,
        "usable",
        "",
    ),
    "flag = true is flag": (lambda c: c.flag, lambda c: c.flag == True, "usable", ""),  # noqa: E712
    "a range does not imply an equality": (
        lambda c: c.cat == 1,
        lambda c: and_(c.cat >= 1, c.cat <= 1),
        "not usable",
        "query has cat >= 1 AND cat <= 1, index requires cat = 1",
    ),
    "NOT flag does not imply flag IS NOT NULL": (
        lambda c: c.flag.is_not(None),
        lambda c: ~c.flag,
        "not usable",
        "query has NOT flag, index requires flag IS NOT NULL",
    ),
    "an IN list on another column": (
        lambda c: c.cat == 3,
        lambda c: c.id.in_([3, 8, 13]),
        "not usable",
        "query has no condition on cat, index requires cat = 3",
    ),
    "<> is not modelled": (
        lambda c: c.cat == 3,
        lambda c: c.cat != 2,
        "cannot tell",
        "the operator ne is not modelled",
    ),
    "NOT IN is not modelled": (
        lambda c: c.cat == 3,
        lambda c: c.cat.not_in([1, 2]),
        "cannot tell",
        "not_in_op is not modelled",
    ),
    "a comparison across types": (
        lambda c: c.cat == 3,
        lambda c: c.cat == 3.0,
        "cannot tell",
        "cat (INTEGER) compared with a float",
    ),
    "SQL text as the index predicate": (
        lambda c: text("cat = 3"),
        lambda c: c.cat == 3,
        "cannot tell",
        "a TextClause is not modelled",
    ),
}


@pytest.fixture(scope="module")
def items_schema(vector_database_url: str) -> Iterator[str]:
    """The module's table ``item``: 400 rows, cat 0..4, flag and name with NULLs."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(libpq_conninfo(vector_database_url), autocommit=True) as raw:
        raw.execute(f'CREATE SCHEMA "{schema}"')
    engine = make_engine(vector_database_url, schema, "plugin")
    table = _table()
    rng = np.random.default_rng(5)
    with engine.begin() as conn:
        table.create(conn)
        conn.execute(
            table.insert(),
            [
                {
                    "id": i,
                    "cat": i % 5,
                    "flag": None if i % 7 == 0 else i % 2 == 0,
                    "name": None if i % 11 == 0 else f"n{i % 3}",
                    "day": D(2024, 1, 1) + datetime.timedelta(days=i % 120),
                    "e": v,
                }
                for i, v in enumerate(rng.standard_normal((400, 3)).astype(np.float32))
            ],
        )
        conn.execute(text("ANALYZE item"))
    engine.dispose()
    yield schema
    with psycopg.connect(libpq_conninfo(vector_database_url), autocommit=True) as raw:
        raw.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(scope="module")
def items(vector_database_url: str, items_schema: str) -> Iterator[Engine]:
    """The module's table through psycopg 3 with the plugin."""
    engine = make_engine(vector_database_url, items_schema, "plugin")
    yield engine
    engine.dispose()


@pytest.fixture
def items_in_mode(vector_database_url: str, items_schema: str, mode: str) -> Iterator[Engine]:
    """The module's table through each driver / mode."""
    engine = make_engine(vector_database_url, items_schema, mode)
    yield engine
    engine.dispose()


def _case(kind: str, verdict: str) -> tuple[Table, Any, str]:
    """The table with the kind's partial index ``ix_case`` declared, the query, the
    expected fragment."""
    index_where, cases = CASES[kind]
    table = _table()
    HnswIndex("ix_case", table.c.e, where=index_where(table.c), m=4, ef_construction=8)
    where, fragment = cases[verdict]
    stmt = select(table.c.id).where(where(table.c)).order_by(table.c.e.l2_distance(Q)).limit(5)
    return table, stmt, fragment


def _verdict(stmt: Any, params: dict[str, Any] | None = None) -> tuple[str, str]:
    problems = check_query(stmt, params)
    if not problems:
        return "usable", ""
    assert len(problems) == 1, problems
    kinds = {"no index": "not usable", "uncertain": "cannot tell"}
    return kinds[problems[0].kind], str(problems[0])


def _plan_indexes(engine: Engine, table: Table, stmt: Any, **params: Any) -> tuple[str, ...]:
    """The vector indexes of the plan, with the case's index built in a transaction
    that is rolled back."""
    with engine.connect() as conn:
        for index in table.indexes:
            index.create(conn)
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        return explain_index_usage(conn, stmt.params(**params) if params else stmt).index_names


@pytest.mark.parametrize(("kind", "verdict"), PARAMS)
def test_verdict_on_the_partial_index(items: Engine, kind: str, verdict: str) -> None:
    table, stmt, fragment = _case(kind, verdict)
    got, message = _verdict(stmt)
    assert got == verdict, message
    assert fragment in message
    if verdict == "usable":
        assert _plan_indexes(items, table, stmt) == ("ix_case",)
    elif verdict == "not usable":
        assert _plan_indexes(items, table, stmt) == ()


@pytest.mark.parametrize("case", list(MORE))
def test_more_verdicts_of_the_rule(items: Engine, case: str) -> None:
    index_where, where, verdict, fragment = MORE[case]
    table = _table()
    HnswIndex("ix_case", table.c.e, where=index_where(table.c), m=4, ef_construction=8)
    stmt = select(table.c.id).where(where(table.c)).order_by(table.c.e.l2_distance(Q)).limit(5)
    got, message = _verdict(stmt)
    assert got == verdict, message
    assert fragment in message
    if verdict == "usable":
        assert _plan_indexes(items, table, stmt) == ("ix_case",)
    elif verdict == "not usable":
        assert _plan_indexes(items, table, stmt) == ()


@pytest.mark.parametrize(("filtered", "verdict"), [("a", "usable"), ("b", "cannot tell")])
def test_self_join_decides_on_the_ordered_alias_only(
    items: Engine, filtered: str, verdict: str
) -> None:
    """``a`` ordered, ``b`` filtered: whether ``b.cat = 3`` reaches ``a`` is the
    planner's (here PostgreSQL 18 removes the self-join on the primary key, and the
    plan scans ix_case for ``a``): cannot tell."""
    table = _table()
    HnswIndex("ix_case", table.c.e, where=table.c.cat == 3, m=4, ef_construction=8)
    a, b = table.alias("a"), table.alias("b")
    stmt = (
        select(a.c.id)
        .join(b, a.c.id == b.c.id)
        .where({"a": a, "b": b}[filtered].c.cat == 3)
        .order_by(a.c.e.l2_distance(Q))
        .limit(5)
    )
    got, message = _verdict(stmt)
    assert got == verdict, message
    if verdict == "usable":
        assert _plan_indexes(items, table, stmt) == ("ix_case",)
    else:
        assert "b.cat = 3: a condition on another table or alias of the query" in message


def test_not_usable_message_names_the_index_and_both_sides() -> None:
    _, stmt, _ = _case("equality", "not usable")
    [problem] = check_query(stmt)
    assert str(problem) == (
        "no vector index on item.e can serve this ORDER BY (sequential scan): index "
        "ix_case (hnsw, vector_l2_ops on item.e) is partial (WHERE item.cat = 3): query "
        "has cat = 2, index requires cat = 3"
    )


def test_no_where_is_not_usable(items: Engine) -> None:
    table, _, _ = _case("equality", "usable")
    stmt = select(table.c.id).order_by(table.c.e.l2_distance(Q)).limit(5)
    got, message = _verdict(stmt)
    assert got == "not usable"
    assert "the query has no WHERE; index requires cat = 3" in message
    assert _plan_indexes(items, table, stmt) == ()


@pytest.mark.parametrize(("value", "verdict"), [(3, "usable"), (2, "not usable")])
def test_bound_parameter_is_decided_on_its_value(
    items_in_mode: Engine, value: int, verdict: str
) -> None:
    """``cat = $1`` sent with 3 is planned with 3, on every driver: an unnamed
    statement's plan, or a prepared one's first (custom) plans."""
    table = _table()
    HnswIndex("ix_case", table.c.e, where=table.c.cat == 3, m=4, ef_construction=8)
    stmt = (
        select(table.c.id)
        .where(table.c.cat == bindparam("c"))
        .order_by(table.c.e.l2_distance(Q))
        .limit(5)
    )
    assert _verdict(stmt)[0] == "cannot tell"  # no value before execution
    assert _verdict(stmt, {"c": value})[0] == verdict
    expected = ("ix_case",) if verdict == "usable" else ()
    assert _plan_indexes(items_in_mode, table, stmt, c=value) == expected


def test_a_generic_plan_cannot_use_the_partial_index(items: Engine) -> None:
    """The documented limit: planned without the values, ``cat = $1`` proves nothing."""
    table = _table()
    HnswIndex("ix_case", table.c.e, where=table.c.cat == 3, m=4, ef_construction=8)
    with items.connect() as conn:
        for index in table.indexes:
            index.create(conn)
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        conn.execute(
            text(
                "PREPARE top_k(int) AS SELECT id FROM item WHERE cat = $1 "
                "ORDER BY e <-> '[1,2,3]' LIMIT 5"
            )
        )
        try:
            plans = []
            for mode in ("force_generic_plan", "force_custom_plan"):
                conn.execute(text(f"SET LOCAL plan_cache_mode = {mode}"))
                plans.append(list(conn.execute(text("EXPLAIN EXECUTE top_k(3)")).scalars()))
        finally:
            conn.execute(text("DEALLOCATE top_k"))
    generic, custom = plans
    assert not any("ix_case" in line for line in generic), generic
    assert any("ix_case" in line for line in custom), custom


def test_execution_warns_by_the_values_of_each_execution(items_in_mode: Engine) -> None:
    """One compiled form serves cat = 3 and cat = 2 (and IN lists of any values): the
    warning follows each execution's values, on every driver's parameter style."""
    table = _table()
    HnswIndex("ix_case", table.c.e, where=table.c.cat == 3, m=4, ef_construction=8)
    install_query_checks(items_in_mode)
    with items_in_mode.connect() as conn, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for index in table.indexes:
            index.create(conn)
        got: list[tuple[int, list[type[Warning]]]] = []
        for value in (3, 2, 3, 2):
            caught.clear()
            stmt = (
                select(table.c.id)
                .where(table.c.cat == value)
                .order_by(table.c.e.l2_distance(Q))
                .limit(5)
            )
            conn.execute(stmt).all()
            got.append((value, [w.category for w in caught]))
        for values in ([3], [3, 2], [3]):
            caught.clear()
            stmt = (
                select(table.c.id)
                .where(table.c.cat.in_(values))
                .order_by(table.c.e.l2_distance(Q))
                .limit(5)
            )
            conn.execute(stmt).all()
            got.append((len(values), [w.category for w in caught]))
    assert got == [
        (3, []),
        (2, [VectorIndexWarning]),
        (3, []),
        (2, [VectorIndexWarning]),
        (1, []),
        (2, [VectorIndexWarning]),
        (1, []),
    ]


def test_uncertain_warning_is_a_vector_index_warning(items: Engine) -> None:
    table, stmt, _ = _case("equality", "cannot tell")
    install_query_checks(items)
    with items.connect() as conn, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for index in table.indexes:
            index.create(conn)
        conn.execute(stmt).all()
    categories = [w.category for w in caught]
    assert categories == [VectorIndexUncertainWarning]
    assert issubclass(VectorIndexUncertainWarning, VectorIndexWarning)
    assert "cannot tell whether a vector index on item.e can serve" in str(caught[0].message)
