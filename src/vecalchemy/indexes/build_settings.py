"""Build settings applied to one index build's session: ``maintenance_work_mem`` and
``max_parallel_maintenance_workers``, checked, capped to what the server takes, and
restored after the build (:func:`~vecalchemy.build_vector_index`'s ``settings=``)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Index, func, literal_column, select, text
from sqlalchemy.engine import Connection

from .. import sqltext
from ..connections import is_autocommit, set_local
from ..facts import BuildSettings, index_build_settings

__all__ = ["check_settings", "apply_build_settings", "set_gucs"]

#: the build settings build_vector_index applies, and the most the server takes of each
_BUILD_GUCS = ("maintenance_work_mem", "max_parallel_maintenance_workers")
_MAX_WORK_MEM_KB = 2147483647  # MAX_KILOBYTES, src/include/utils/guc.h (64-bit)
_MAX_WORKERS = 1024  # max_parallel_maintenance_workers' own limit (MAX_PARALLEL_WORKER_LIMIT)


def check_settings(
    settings: BuildSettings | Mapping[str, int] | str | None, index: Index
) -> dict[str, int] | str | None:
    """``settings`` as ``{GUC name: int}`` (bytes for ``maintenance_work_mem``), or
    ``"auto"``; ``ValueError`` for anything else, before anything is sent."""
    if settings is None:
        return None
    if isinstance(settings, str):
        if settings != "auto":
            raise ValueError(
                f"settings must be a BuildSettings, a mapping or 'auto', got {settings!r}"
            )
        if getattr(index, "spec", None) is None:
            raise ValueError(
                "settings='auto' needs an HnswIndex or IvfflatIndex over a typed column; for "
                "this index pass index_build_settings(rows, dim, ...)"
            )
        return "auto"
    if isinstance(settings, BuildSettings):
        given: Mapping[str, Any] = {
            "maintenance_work_mem": settings.maintenance_work_mem,
            "max_parallel_maintenance_workers": settings.max_parallel_maintenance_workers,
        }
    elif isinstance(settings, Mapping):
        given = settings
    else:
        raise ValueError(
            f"settings must be a BuildSettings, a mapping or 'auto', got {type(settings).__name__}"
        )
    checked: dict[str, int] = {}
    for name, value in given.items():
        if name not in _BUILD_GUCS:
            raise ValueError(f"unknown build setting {name!r}; expected " + ", ".join(_BUILD_GUCS))
        low = 1024 * 1024 if name == "maintenance_work_mem" else 0
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            unit = " bytes (at least 1 MB)" if low else ""
            raise ValueError(f"{name} must be an int >= {low}{unit}, got {value!r}")
        checked[name] = value
    return checked


_LARGEST_LEAF_SQL = text(
    "SELECT CASE WHEN bool_or(c.reltuples < 0) THEN -1 ELSE max(c.reltuples) END::bigint "
    "FROM pg_catalog.pg_partition_tree(to_regclass(:t)) p "
    "JOIN pg_catalog.pg_class c ON c.oid = p.relid WHERE p.isleaf"
)


def _auto_settings(conn: Connection, index: Index) -> dict[str, int]:
    """:func:`~vecalchemy.index_build_settings` for ``index`` from its table's size: the
    rows of the table, or of its largest partition for a partitioned table (each
    partition's index is built by a build of its own, PostgreSQL's ``CREATE INDEX`` on
    a partitioned table recursing partition by partition)."""
    spec = getattr(index, "spec", None)
    assert spec is not None and index.table is not None
    table = sqltext.regclass_text(index.table.name, conn.schema_for_object(index.table))
    # pg_partition_tree: the table itself for a plain table, its leaves when partitioned;
    # reltuples is -1 for a leaf never vacuumed or analysed
    rows = conn.execute(_LARGEST_LEAF_SQL, {"t": table}).scalar()
    if rows is None or rows < 0:
        counted = (
            select(func.count().label("n"))
            .select_from(index.table)
            .group_by(literal_column("tableoid"))
            .subquery()
        )
        rows = conn.execute(select(func.coalesce(func.max(counted.c.n), 0))).scalar_one()
    options = dict(spec.options)
    estimate = index_build_settings(
        max(int(rows), 1),
        spec.dim,
        method=spec.method,
        sql_type=spec.sql_type if spec.sql_type in ("vector", "halfvec", "bit") else "vector",
        **{k: v for k, v in options.items() if k in ("m", "lists")},
    )
    return {
        "maintenance_work_mem": estimate.maintenance_work_mem,
        "max_parallel_maintenance_workers": estimate.max_parallel_maintenance_workers,
    }


def set_gucs(conn: Connection, values: Mapping[str, str]) -> None:
    """Set (or restore) build settings on ``conn``: transaction-local inside a
    transaction, through :func:`~vecalchemy.connections.set_local` (``SET LOCAL``
    statements on Citus, which propagates them to the shard builds); for the session on
    an AUTOCOMMIT connection (``concurrently=True``), where no transaction exists for
    Citus to propagate them in: set them on the workers there."""
    autocommit = is_autocommit(conn)
    for name, value in values.items():  # one statement per setting, in order
        if autocommit:
            conn.execute(
                text("SELECT set_config(:n, :v, :l)"), {"n": name, "v": value, "l": False}
            )
        else:
            set_local(conn, {name: value})


def apply_build_settings(
    conn: Connection, index: Index, settings: dict[str, int] | str
) -> dict[str, str]:
    """Set the build settings on ``conn``'s session (capped to what the server takes,
    with a warning) and return the previous values, to restore."""
    wanted = _auto_settings(conn, index) if settings == "auto" else settings
    assert isinstance(wanted, dict)
    names = [*wanted, "max_parallel_workers"]
    row = conn.execute(
        text("SELECT " + ", ".join(f"current_setting(:g{i})" for i in range(len(names)))),
        {f"g{i}": n for i, n in enumerate(names)},
    ).one()
    current = dict(zip(names, (str(v) for v in row), strict=True))
    values: dict[str, str] = {}
    for name, value in wanted.items():
        if name == "maintenance_work_mem":
            kb = -(-value // 1024)
            if kb > _MAX_WORK_MEM_KB:
                _capped(index, name, f"{kb}kB", f"{_MAX_WORK_MEM_KB}kB", "the server's maximum")
                kb = _MAX_WORK_MEM_KB
            values[name] = f"{kb}kB"
        else:
            cap = min(int(current["max_parallel_workers"]), _MAX_WORKERS)
            if value > cap:
                _capped(index, name, str(value), str(cap), "max_parallel_workers")
                value = cap
            values[name] = str(value)
    set_gucs(conn, values)
    return {name: current[name] for name in values}


def _capped(index: Index, name: str, wanted: str, cap: str, why: str) -> None:
    warnings.warn(
        f"building index {index.name!r}: {name} {wanted} capped to {cap} ({why})",
        RuntimeWarning,
        stacklevel=5,
    )
