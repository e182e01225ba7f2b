"""The one table of pgvector's distance metrics.

Every other module (comparators, index validation, query checks, Alembic) reads the
facts below; nothing else in vecalchemy spells an operator or an operator class.

Sources: pgvector sql/vector.sql (operators, operator classes), src/hnsw.h,
src/ivfflat.h, src/hnswutils.c, src/ivfutils.c (dimension limits).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Metric",
    "METRICS",
    "OPCLASSES",
    "VECTOR_TYPES",
    "INDEX_METHODS",
    "IndexLimit",
    "INDEX_LIMITS",
    "DEFAULT_OPCLASS",
    "MAX_DIM",
    "SPARSEVEC_MAX_DIM",
    "SPARSEVEC_MAX_NNZ",
    "HALFVEC_MAX",
    "metric",
    "metrics_for",
    "opclass_for",
    "opclass_info",
]

#: SQL type names pgvector indexes (``bit`` is PostgreSQL's own type).
VECTOR_TYPES = ("vector", "halfvec", "sparsevec", "bit")
#: Index access methods pgvector provides.
INDEX_METHODS = ("hnsw", "ivfflat")

#: Max dimensions of ``vector`` and ``halfvec`` values (VECTOR_MAX_DIM, HALFVEC_MAX_DIM).
MAX_DIM = 16000
#: Max dimensions of a ``sparsevec`` (SPARSEVEC_MAX_DIM, src/sparsevec.h).
SPARSEVEC_MAX_DIM = 1_000_000_000
#: Max non-zero elements of a ``sparsevec`` (SPARSEVEC_MAX_NNZ, src/sparsevec.h).
SPARSEVEC_MAX_NNZ = 16000
#: Largest finite IEEE binary16 magnitude; values that round beyond it are refused.
HALFVEC_MAX = 65504.0


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
DEFAULT_OPCLASS: dict[str, str | None] = {"hnsw": None, "ivfflat": "vector_l2_ops"}


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
