"""The one table of pgvector facts that the rest of vecalchemy reads.

Metric <-> operator <-> comparator method <-> operator class per type <-> index methods;
dimension limits of the types and of each index method; index option ranges; the
search-setting GUCs with their types and ranges; the build-memory rules; the wire
formats of the binary protocol. Nothing else in vecalchemy (or vecalchemy_alembic)
spells an operator, an operator class, a limit or a range: it imports it from here.

Sources (github.com/pgvector/pgvector): sql/vector.sql (operators, operator classes),
src/vector.h, src/halfvec.h, src/sparsevec.h (type limits), src/hnsw.h, src/ivfflat.h,
src/hnswutils.c, src/ivfutils.c (index dimension limits), src/hnsw.c, src/ivfflat.c
(index options and GUCs), src/hnswbuild.c, src/ivfbuild.c (build memory), src/vector.c,
src/halfvec.c, src/sparsevec.c (binary send/recv); PostgreSQL src/include/utils/varbit.h
and src/backend/utils/adt/varbit.c for ``bit``.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "Metric",
    "METRICS",
    "OPCLASSES",
    "VECTOR_TYPES",
    "INDEX_METHODS",
    "METHOD_NAMES",
    "IndexLimit",
    "INDEX_LIMITS",
    "INDEX_OPTIONS",
    "DEFAULT_OPCLASS",
    "MAX_DIM",
    "SPARSEVEC_MAX_DIM",
    "SPARSEVEC_MAX_NNZ",
    "HALFVEC_MAX",
    "BIT_MAX_LENGTH",
    "MAX_IDENTIFIER_BYTES",
    "Guc",
    "SEARCH_SETTINGS",
    "SEARCH_SETTINGS_BY_GUC",
    "BuildSettings",
    "VALUE_BYTES",
    "HNSW_ELEMENT_OVERHEAD",
    "HNSW_NEIGHBOR_BYTES",
    "index_build_settings",
    "DENSE_DTYPES",
    "WIRE_DTYPES",
    "DENSE_HEADER",
    "DENSE_HEADER_FIELDS",
    "SPARSE_HEADER",
    "SPARSE_INDEX_WIRE",
    "SPARSE_VALUE_WIRE",
    "BIT_HEADER",
    "FIXED_WIDTH_TYPES",
    "DATETIME_WIDTH_TYPES",
    "COPY_WIRE_TYPES",
    "metric",
    "metrics_for",
    "opclass_for",
    "opclass_info",
]

# --- types and metrics ------------------------------------------------------------------

#: SQL type names pgvector indexes (``bit`` is PostgreSQL's own type).
VECTOR_TYPES = ("vector", "halfvec", "sparsevec", "bit")
#: Index access methods pgvector provides.
INDEX_METHODS = ("hnsw", "ivfflat")
#: index method -> its name as pgvector's documentation spells it (for messages).
METHOD_NAMES = {"hnsw": "HNSW", "ivfflat": "IVFFlat"}

#: Max dimensions of ``vector`` and ``halfvec`` values (VECTOR_MAX_DIM, HALFVEC_MAX_DIM).
MAX_DIM = 16000
#: Max dimensions of a ``sparsevec`` (SPARSEVEC_MAX_DIM, src/sparsevec.h).
SPARSEVEC_MAX_DIM = 1_000_000_000
#: Max non-zero elements of a ``sparsevec`` (SPARSEVEC_MAX_NNZ, src/sparsevec.h).
SPARSEVEC_MAX_NNZ = 16000
#: Largest finite IEEE binary16 magnitude; values that round beyond it are refused.
HALFVEC_MAX = 65504.0
#: Max length of a ``bit(n)`` (PostgreSQL's VARBITMAXLEN, src/include/utils/varbit.h).
BIT_MAX_LENGTH = 83886080
#: Max bytes of a PostgreSQL identifier (NAMEDATALEN - 1, src/include/pg_config_manual.h);
#: the server truncates longer names with only a NOTICE.
MAX_IDENTIFIER_BYTES = 63


@dataclass(frozen=True)
class Metric:
    """A distance metric: its name, SQL operator, comparator method and SQL function."""

    name: str
    operator: str
    method: str
    function: str
    types: tuple[str, ...]


_M = Metric
#: metric name -> Metric. ``method`` is the comparator method on vecalchemy's types;
#: ``function`` is pgvector's function form (which no index can serve).
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        _M("l2", "<->", "l2_distance", "l2_distance", ("vector", "halfvec", "sparsevec")),
        _M(
            "inner_product",
            "<#>",
            "max_inner_product",
            "inner_product",
            ("vector", "halfvec", "sparsevec"),
        ),
        _M(
            "cosine",
            "<=>",
            "cosine_distance",
            "cosine_distance",
            ("vector", "halfvec", "sparsevec"),
        ),
        _M("l1", "<+>", "l1_distance", "l1_distance", ("vector", "halfvec", "sparsevec")),
        _M("hamming", "<~>", "hamming_distance", "hamming_distance", ("bit",)),
        _M("jaccard", "<%>", "jaccard_distance", "jaccard_distance", ("bit",)),
    )
}

#: (sql type, metric) -> (opclass, index methods that have it). pgvector sql/vector.sql.
OPCLASSES: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {
    ("vector", "l2"): ("vector_l2_ops", ("hnsw", "ivfflat")),
    ("vector", "inner_product"): ("vector_ip_ops", ("hnsw", "ivfflat")),
    ("vector", "cosine"): ("vector_cosine_ops", ("hnsw", "ivfflat")),
    ("vector", "l1"): ("vector_l1_ops", ("hnsw",)),
    ("halfvec", "l2"): ("halfvec_l2_ops", ("hnsw", "ivfflat")),
    ("halfvec", "inner_product"): ("halfvec_ip_ops", ("hnsw", "ivfflat")),
    ("halfvec", "cosine"): ("halfvec_cosine_ops", ("hnsw", "ivfflat")),
    ("halfvec", "l1"): ("halfvec_l1_ops", ("hnsw",)),
    ("sparsevec", "l2"): ("sparsevec_l2_ops", ("hnsw",)),
    ("sparsevec", "inner_product"): ("sparsevec_ip_ops", ("hnsw",)),
    ("sparsevec", "cosine"): ("sparsevec_cosine_ops", ("hnsw",)),
    ("sparsevec", "l1"): ("sparsevec_l1_ops", ("hnsw",)),
    ("bit", "hamming"): ("bit_hamming_ops", ("hnsw", "ivfflat")),
    ("bit", "jaccard"): ("bit_jaccard_ops", ("hnsw",)),
}

#: index method -> the opclass PostgreSQL uses when none is named (and that
#: ``pg_get_indexdef`` omits). HNSW has no default opclass.
DEFAULT_OPCLASS: dict[str, str | None] = {"hnsw": None, "ivfflat": OPCLASSES[("vector", "l2")][0]}


@dataclass(frozen=True)
class IndexLimit:
    """How many dimensions (or, for sparsevec, non-zeros) an index method accepts."""

    max_dim: int | None
    max_nnz: int | None = None


#: (sql type, index method) -> limit. A missing key means "not supported".
#: pgvector src/hnsw.h HNSW_MAX_DIM, src/ivfflat.h IVFFLAT_MAX_DIM, src/hnswutils.c,
#: src/ivfutils.c (halfvec x2, bit x32), HNSW_MAX_NNZ for sparsevec.
INDEX_LIMITS: dict[tuple[str, str], IndexLimit] = {
    ("vector", "hnsw"): IndexLimit(2000),
    ("vector", "ivfflat"): IndexLimit(2000),
    ("halfvec", "hnsw"): IndexLimit(4000),
    ("halfvec", "ivfflat"): IndexLimit(4000),
    ("bit", "hnsw"): IndexLimit(64000),
    ("bit", "ivfflat"): IndexLimit(64000),
    ("sparsevec", "hnsw"): IndexLimit(None, max_nnz=1000),
}

#: index method -> option name -> (default, min, max). pgvector src/hnsw.c, src/ivfflat.c.
INDEX_OPTIONS: dict[str, dict[str, tuple[int, int, int]]] = {
    "hnsw": {"m": (16, 2, 100), "ef_construction": (64, 4, 1000)},
    "ivfflat": {"lists": (100, 1, 32768)},
}


def metric(name: str) -> Metric:
    """Return the :class:`Metric` called ``name``.

    Raises :class:`ValueError` naming the known metrics when ``name`` is unknown.
    """
    try:
        return METRICS[name]
    except KeyError:
        raise ValueError(
            f"unknown metric {name!r}; expected one of {', '.join(sorted(METRICS))}"
        ) from None


def metrics_for(sql_type: str) -> tuple[str, ...]:
    """Names of the metrics pgvector defines for ``sql_type`` (``"vector"``, ``"bit"`` ...)."""
    return tuple(name for name, m in METRICS.items() if sql_type in m.types)


def opclass_for(sql_type: str, metric_name: str, method: str | None = None) -> str:
    """The operator class for ``metric_name`` on ``sql_type``, e.g. ``vector_cosine_ops``.

    With ``method`` ("hnsw"/"ivfflat") also checks that the method has that opclass.
    Raises :class:`ValueError` naming what exists when the combination does not.
    """
    metric(metric_name)
    try:
        opclass, methods = OPCLASSES[(sql_type, metric_name)]
    except KeyError:
        raise ValueError(
            f"pgvector has no {metric_name!r} metric for type {sql_type}; "
            f"{sql_type} supports: {', '.join(metrics_for(sql_type)) or 'none'}"
        ) from None
    if method is not None and method not in methods:
        raise ValueError(
            f"operator class {opclass} does not exist for access method {method!r} "
            f"(pgvector provides it for {', '.join(methods)} only)"
        )
    return opclass


def opclass_info(opclass: str) -> tuple[str, str, tuple[str, ...]]:
    """Reverse lookup: opclass name -> (sql type, metric name, index methods).

    Raises :class:`ValueError` for a name pgvector does not define.
    """
    for (sql_type, metric_name), (name, methods) in OPCLASSES.items():
        if name == opclass:
            return sql_type, metric_name, methods
    raise ValueError(f"unknown pgvector operator class {opclass!r}")


# --- search settings (GUCs) ----------------------------------------------------------------


@dataclass(frozen=True)
class Guc:
    """A pgvector setting: its GUC name, Python type and range (or, for enums, choices)."""

    name: str
    kind: type
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()


#: field of :class:`~vecalchemy.search.SearchSettings` -> pgvector GUC with its type and
#: range, as src/hnsw.c ``HnswInit`` and src/ivfflat.c ``IvfflatInit`` define them (and
#: ``pg_settings`` shows them).
SEARCH_SETTINGS: dict[str, Guc] = {
    "ef_search": Guc("hnsw.ef_search", int, 1, 1000),
    "hnsw_iterative_scan": Guc(
        "hnsw.iterative_scan", str, choices=("off", "relaxed_order", "strict_order")
    ),
    "max_scan_tuples": Guc("hnsw.max_scan_tuples", int, 1, 2147483647),
    "scan_mem_multiplier": Guc("hnsw.scan_mem_multiplier", float, 1, 1000),
    "probes": Guc("ivfflat.probes", int, 1, 32768),
    "ivfflat_iterative_scan": Guc("ivfflat.iterative_scan", str, choices=("off", "relaxed_order")),
    "max_probes": Guc("ivfflat.max_probes", int, 1, 32768),
}
#: GUC name (``hnsw.ef_search``) -> field name (``ef_search``).
SEARCH_SETTINGS_BY_GUC = {g.name: f for f, g in SEARCH_SETTINGS.items()}


# --- build memory -----------------------------------------------------------------------


@dataclass(frozen=True)
class BuildSettings:
    """Server settings worth having for an index build, and what they are based on.

    ``maintenance_work_mem`` is in bytes (pass ``f"{mb}MB"`` to ``SET``), ``graph_bytes``
    the estimated in-memory size of the HNSW graph (or IVFFlat k-means working set),
    ``max_parallel_maintenance_workers`` a worker count for parallel builds.
    """

    graph_bytes: int
    maintenance_work_mem: int
    max_parallel_maintenance_workers: int
    basis: str

    @property
    def maintenance_work_mem_mb(self) -> int:
        """``maintenance_work_mem`` rounded up to whole MB."""
        return -(-self.maintenance_work_mem // (1024 * 1024))


#: bytes per element of an in-memory value (plus an 8-byte header), per SQL type
VALUE_BYTES = {"vector": 4.0, "halfvec": 2.0, "bit": 1 / 8}
#: in-memory bytes per graph element besides the value and neighbour lists
#: (HnswElementData: heap TIDs, lock, level, pointers; pgvector src/hnsw.h)
HNSW_ELEMENT_OVERHEAD = 160
#: bytes per neighbour slot in memory (HnswCandidate: element pointer + distance)
HNSW_NEIGHBOR_BYTES = 16


def index_build_settings(
    rows: int,
    dim: int,
    *,
    method: str = "hnsw",
    sql_type: str = "vector",
    m: int = INDEX_OPTIONS["hnsw"]["m"][0],
    lists: int = INDEX_OPTIONS["ivfflat"]["lists"][0],
    cpus: int | None = None,
) -> BuildSettings:
    """Estimate ``maintenance_work_mem`` and parallel workers for building an index.

    HNSW builds fastest while the whole graph fits in ``maintenance_work_mem`` (pgvector
    README "Index Build Time"; otherwise NOTICE "hnsw graph no longer fits into
    maintenance_work_mem after N tuples"). Per element the in-memory graph holds the
    value (``8 + dim*4`` bytes for vector, ``*2`` halfvec, ``/8`` bit), a neighbour list
    of ``2*m`` slots on layer 0 plus ``m`` per upper layer (``1/(m-1)`` upper layers on
    average, levels drawn with ``mL = 1/ln(m)``), 16 bytes a slot, and about 160 bytes of
    element header (pgvector src/hnsw.h, src/hnswbuild.c). The result adds 25 %
    headroom. IVFFlat's k-means keeps ``min(rows, lists*50)`` samples and ``lists``
    centres in memory (src/ivfbuild.c). Workers: pgvector builds in parallel (HNSW
    0.6.0, IVFFlat 0.5.0); suggested ``min(cpus - 1, 7)`` for 100 000+ rows, else 0.

    Raises :class:`ValueError` for non-positive ``rows``/``dim`` or an unknown method
    or type.
    """
    for label, value in (("rows", rows), ("dim", dim), ("m", m), ("lists", lists)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{label} must be a positive int, got {value!r}")
    if method not in INDEX_METHODS:
        raise ValueError(f"method must be one of {', '.join(INDEX_METHODS)}, got {method!r}")
    if sql_type not in VALUE_BYTES:
        raise ValueError(f"sql_type must be one of {', '.join(VALUE_BYTES)}, got {sql_type!r}")
    value_bytes = 8 + math.ceil(dim * VALUE_BYTES[sql_type])
    if method == "hnsw":
        upper_layers = 1 / (m - 1) if m > 1 else 0.0
        slots = 2 * m + m * upper_layers
        per_element = value_bytes + HNSW_ELEMENT_OVERHEAD + slots * HNSW_NEIGHBOR_BYTES
        graph = int(rows * per_element)
        basis = (
            f"HNSW graph: {rows} elements x ({value_bytes} B value + ~{HNSW_ELEMENT_OVERHEAD} "
            f"B header + {slots:.1f} neighbour slots x {HNSW_NEIGHBOR_BYTES} B) = {graph} B "
            "(pgvector src/hnsw.h, src/hnswbuild.c), +25% headroom"
        )
    else:
        samples = min(rows, lists * 50)
        graph = int((samples + 2 * lists) * value_bytes)
        basis = (
            f"IVFFlat k-means: {samples} samples + {lists} centres (x2) x {value_bytes} B "
            f"= {graph} B (pgvector src/ivfbuild.c), +25% headroom"
        )
    mwm = max(64 * 1024 * 1024, int(graph * 1.25))
    cpus = cpus if cpus is not None else (os.cpu_count() or 1)
    workers = min(max(cpus - 1, 0), 7) if rows >= 100_000 else 0
    return BuildSettings(graph, mwm, workers, basis)


# --- wire formats (binary protocol; big-endian) -----------------------------------------

#: SQL type -> NumPy dtype of a dense value as returned to the user.
DENSE_DTYPES: dict[str, type[np.floating[Any]]] = {"vector": np.float32, "halfvec": np.float16}
#: SQL type -> big-endian dtype of one element on the wire: float4 / IEEE binary16
#: (pgvector src/vector.c ``vector_send``, src/halfvec.c ``halfvec_send``).
WIRE_DTYPES: dict[str, np.dtype[Any]] = {"vector": np.dtype(">f4"), "halfvec": np.dtype(">f2")}
#: vector/halfvec header before the elements: ``uint16 dim, uint16 unused = 0``.
DENSE_HEADER = struct.Struct(">HH")
#: the same header as fields of a NumPy record (COPY rows are built as record arrays).
DENSE_HEADER_FIELDS: tuple[tuple[str, str], ...] = (("dim", ">u2"), ("unused", ">u2"))
#: sparsevec header: ``int32 dim, int32 nnz, int32 unused = 0`` (src/sparsevec.c), then
#: ``nnz`` 0-based int32 indices and ``nnz`` float4 values.
SPARSE_HEADER = struct.Struct(">iii")
SPARSE_INDEX_WIRE = np.dtype(">i4")
SPARSE_VALUE_WIRE = WIRE_DTYPES["vector"]
#: bit header: ``int32`` bit length, then ``ceil(n/8)`` bytes, most significant bit first
#: (PostgreSQL varbit.c ``bit_send``).
BIT_HEADER = struct.Struct(">i")
#: Fixed-width PostgreSQL types COPY writes straight from NumPy: oid -> (name, big-endian
#: dtype). PostgreSQL pg_type.dat and each type's ``*send`` function.
FIXED_WIDTH_TYPES: dict[int, tuple[str, str]] = {
    16: ("boolean", "?"),
    21: ("smallint", ">i2"),
    23: ("integer", ">i4"),
    20: ("bigint", ">i8"),
    700: ("real", WIRE_DTYPES["vector"].str),
    701: ("double precision", ">f8"),
}

#: Dates and timestamps COPY writes from NumPy ``datetime64`` arrays: oid -> (name, NumPy
#: unit, big-endian dtype). The binary value is the count of units since 2000-01-01
#: (``POSTGRES_EPOCH_JDATE``, src/include/datatype/timestamp.h; ``date_send``,
#: ``timestamp_send``; a ``timestamptz`` is microseconds since 2000-01-01 UTC).
DATETIME_WIDTH_TYPES: dict[int, tuple[str, str, str]] = {
    1082: ("date", "D", ">i4"),
    1114: ("timestamp without time zone", "us", ">i8"),
    1184: ("timestamp with time zone", "us", ">i8"),
}

#: Every fixed-width type COPY writes from one NumPy column: oid -> (name, big-endian dtype)
COPY_WIRE_TYPES: dict[int, tuple[str, str]] = {
    **FIXED_WIDTH_TYPES,
    **{oid: (name, wire) for oid, (name, _, wire) in DATETIME_WIDTH_TYPES.items()},
}
