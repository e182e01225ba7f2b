"""What the server does with a query: EXPLAIN read for the vector indexes a plan scans
(:func:`explain_index_usage`, Citus's remote plans included), and recall@k of an ANN
query against the exact answer (:func:`measure_recall`).

:mod:`vecalchemy.checks` reads the statement; this module asks the server.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.base import Executable

from . import sqltext
from .connections import is_autocommit, set_local, sync_connection
from .facts import INDEX_METHODS

if TYPE_CHECKING:  # sqlalchemy.ext.asyncio needs greenlet only when used
    pass

__all__ = ["IndexUsage", "explain_index_usage", "measure_recall"]


# --- EXPLAIN -----------------------------------------------------------------------------


class Explain(Executable, ClauseElement):
    """``EXPLAIN (FORMAT JSON, VERBOSE) <statement>`` with the statement's own binds."""

    inherit_cache = False

    def __init__(self, statement: Any) -> None:
        self.statement = statement


@compiles(Explain)
def _compile_explain(element: Explain, compiler: Any, **kw: Any) -> str:
    return "EXPLAIN (FORMAT JSON, VERBOSE) " + str(compiler.process(element.statement, **kw))


@dataclass(frozen=True)
class IndexUsage:
    """What the planner chose: the vector indexes (``(name, method)``) its plan scans,
    the other indexes it scans, the plan as text lines (``Node Type on relation using
    index``) and the relations it scans, in plan order.

    On a partitioned table the plan scans partitions: ``relations`` names the
    partitions left after pruning and ``vector_indexes`` their own indexes (the
    partitions' indexes attached to the parent's, e.g. ``doc_2_e_idx``), one per
    partition under an Append / Merge Append when several remain.
    """

    vector_indexes: tuple[tuple[str, str], ...]
    other_indexes: tuple[str, ...]
    plan: tuple[str, ...]
    relations: tuple[str, ...] = ()

    @property
    def uses_vector_index(self) -> bool:
        """Whether any HNSW/IVFFlat index serves the plan."""
        return bool(self.vector_indexes)

    @property
    def index_names(self) -> tuple[str, ...]:
        """Names of the vector indexes used."""
        return tuple(name for name, _ in self.vector_indexes)


#: a Citus shard relation's name: the table's or index's name, ``_``, the shard id
#: (https://docs.citusdata.com/en/stable/develop/reference_ddl.html; Citus
#: src/backend/distributed/relay/relay_event_utility.c ``AppendShardIdToName``)
_SHARD_NAME = re.compile(r"(.+)_\d+")


def _remote_plans(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The worker plans a Citus custom scan shows: ``"Distributed Query" -> "Job" ->
    "Tasks"[*] -> "Remote Plan"``, each the worker's own ``EXPLAIN (FORMAT JSON)`` output
    (a list of ``{"Plan": ...}``, itself inside a list) (Citus
    src/backend/distributed/planner/multi_explain.c; one task unless
    ``citus.explain_all_tasks``)."""
    job = (plan.get("Distributed Query") or {}).get("Job") or {}
    for task in job.get("Tasks") or ():
        pending: list[Any] = [task.get("Remote Plan")] if isinstance(task, dict) else []
        while pending:
            item = pending.pop(0)
            if isinstance(item, list):
                pending[:0] = item
            elif isinstance(item, dict):
                if "Plan" in item:
                    yield item["Plan"]
                elif "Node Type" in item:
                    yield item


def _shard_node(node: dict[str, Any]) -> dict[str, Any]:
    """A worker plan node with its shard names (``items_e_idx_102008``) turned back into
    the names declared on the coordinator (``items_e_idx``)."""
    out = dict(node)
    for key in ("Index Name", "Relation Name"):
        name = node.get(key)
        match = _SHARD_NAME.fullmatch(name) if isinstance(name, str) else None
        if match is not None:
            out[key] = match.group(1)
    return out


def walk_plan(
    plan: dict[str, Any], depth: int = 0, *, remote: bool = False
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Each plan node with its depth, the worker plans under a Citus custom scan
    included (their shard names turned back into the coordinator's names)."""
    yield depth, _shard_node(plan) if remote else plan
    for child in plan.get("Plans", ()):
        yield from walk_plan(child, depth + 1, remote=remote)
    for child in _remote_plans(plan):
        yield from walk_plan(child, depth + 1, remote=True)


_AM_SQL = text(
    "SELECT am.amname FROM pg_class c JOIN pg_am am ON am.oid = c.relam "
    "WHERE c.oid = to_regclass(:name)"
)


def explain_index_usage(bind: Connection | Session, stmt: Any) -> IndexUsage:
    """Run ``EXPLAIN`` for ``stmt`` (with its bound values) and report the vector index(es)
    the plan uses, if any, as an :class:`IndexUsage`.

    ``bind`` is a sync Connection or Session, on any driver; it runs in the current
    transaction, so search settings and ``SET LOCAL enable_seqscan = off`` applied there
    count. The statement is planned (with its values, whether or not the driver
    prepares statements), not executed. Async (asyncpg, psycopg async): ``await
    async_conn.run_sync(explain_index_usage, stmt)``. Database errors propagate.
    """
    conn = sync_connection(bind)
    raw = conn.execute(Explain(stmt)).scalar_one()
    doc = json.loads(raw) if isinstance(raw, str) else raw
    vector: list[tuple[str, str]] = []
    other: list[str] = []
    lines: list[str] = []
    relations: list[str] = []
    for depth, node in walk_plan(doc[0]["Plan"]):
        line = node["Node Type"]
        if "Relation Name" in node:
            line += f" on {node['Relation Name']}"
            relations.append(str(node["Relation Name"]))
        index = node.get("Index Name")
        if index is not None:
            line += f" using {index}"
            qualified = sqltext.regclass_text(index, node.get("Schema"))
            am = conn.execute(_AM_SQL, {"name": qualified}).scalar()
            if am in INDEX_METHODS:
                vector.append((index, str(am)))
            else:
                other.append(index)
        lines.append("  " * depth + line)
    return IndexUsage(tuple(vector), tuple(other), tuple(lines), tuple(relations))


# --- recall ----------------------------------------------------------------------------


def first_column(rows: Iterable[Any], k: int) -> list[Any]:
    out = []
    for row in rows:
        out.append(row[0])
        if len(out) == k:
            break
    return out


#: the planner settings of the exact run: no index scan, a sequential scan allowed (or the
#: planner falls back to the index anyway), and a plan made now, with these settings
EXACT_SETTINGS = {
    "enable_indexscan": "off",
    "enable_seqscan": "on",
    "plan_cache_mode": "force_custom_plan",
}


def set_exact_settings(conn: Connection, settings: dict[str, str]) -> None:
    # SET LOCAL statements on Citus, so that the shards' exact run leaves their indexes too
    set_local(conn, settings)


def measure_recall(bind: Connection | Session, stmt: Any, k: int) -> float:
    """recall@k of ``stmt`` (an ANN query) against the exact answer.

    Runs ``stmt`` as is (current search settings apply), then again with ``SET LOCAL
    enable_indexscan = off, enable_seqscan = on`` (exact: a sequential scan and sort)
    and ``plan_cache_mode = force_custom_plan``, so that a statement the driver has
    prepared (psycopg after ``prepare_threshold`` runs, asyncpg and pg8000 always) is
    planned afresh with those settings instead of reusing a cached generic plan, which
    PostgreSQL does not replan when planner settings change and which would keep the
    index. Returns ``|ANN top-k ∩ exact top-k| / |exact top-k|`` (a float in [0, 1])
    comparing the first selected column (select the primary key first); 1.0 when the
    exact answer is empty. The three settings are restored afterwards.

    ``bind`` is a sync Connection or Session in a transaction (begun if none is), on any
    driver. Raises :class:`ValueError` for a bad ``k`` and for an AUTOCOMMIT
    connection, where ``SET LOCAL`` would not reach the exact query. Async (asyncpg,
    psycopg async): ``await async_conn.run_sync(measure_recall, stmt, k)``.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    conn = sync_connection(bind)
    if is_autocommit(conn):
        raise ValueError(
            "measure_recall needs a transaction: it turns index scans off with SET LOCAL, "
            "which on this AUTOCOMMIT connection would last a single statement and leave "
            "the exact query on the index"
        )
    ann = first_column(conn.execute(stmt), k)
    names = list(EXACT_SETTINGS)
    row = conn.execute(select(*(func.current_setting(name) for name in names))).one()
    previous = dict(zip(names, (str(v) for v in row), strict=True))
    set_exact_settings(conn, EXACT_SETTINGS)
    try:
        exact = first_column(conn.execute(stmt), k)
    finally:
        set_exact_settings(conn, previous)
    if not exact:
        return 1.0
    return len(set(ann) & set(exact)) / len(exact)
