"""vecalchemy: pgvector as a first-class part of SQLAlchemy and Alembic.

Types (``Vector``, ``HalfVec``, ``SparseVec``, ``Bit``), distance comparators, typed
pgvector functions, binary psycopg adapters and the ``vecalchemy`` engine plugin.
Importing the package registers ``vector``/``halfvec``/``sparsevec`` for PostgreSQL
reflection (idempotent).
"""

from __future__ import annotations

from importlib import metadata as _metadata

from . import batches  # noqa: F401  (registers its Session do_orm_execute listener)
from .bulk import copy_rows, copy_rows_async, fetch_matrix, fetch_matrix_async
from .checks import (
    IndexProblem,
    IndexUsage,
    check_query,
    explain_index_usage,
    install_query_checks,
    measure_recall,
)
from .exc import (
    FilteredSearchWarning,
    IndexDefinitionError,
    InvalidIdentifierError,
    InvalidVectorError,
    PartitionError,
    SearchSettingError,
    UnsafeSQLError,
    UnsupportedSQLAlchemyError,
    VecalchemyError,
    VectorIndexUncertainWarning,
    VectorIndexWarning,
    VectorPartitionWarning,
)
from .facts import METRICS, BuildSettings, Metric, index_build_settings, opclass_for
from .filtered import FilteredResult, SearchStep, filtered_search, filtered_search_async
from .functions import (
    avg,
    binary_quantize,
    l2_normalize,
    subvector,
    sum,
    vector_dims,
    vector_norm,
)
from .hybrid import hybrid_search
from .indexes import (
    BuildProgress,
    HnswIndex,
    IvfflatIndex,
    VectorIndexSpec,
    build_vector_index,
    build_vector_index_async,
    validate_vector_index,
    vector_index_spec,
)
from .partitions import MAXVALUE, MINVALUE, PartitionKey, partition_key, partition_statement
from .plan_guard import install_plan_guard
from .plugin import VecalchemyPlugin, install
from .prepared import PreparedQuery
from .psycopg import (
    BitParam,
    DenseParam,
    HalfVecParam,
    register_adapters,
    register_adapters_async,
)
from .search import (
    SearchSettings,
    apply_search_settings,
    best_chunk_distance,
    binary_quantized_search,
    install_search_options,
    iterative_search,
    search_settings,
)
from .storage import (
    StorageAdvice,
    column_storage,
    count_out_of_line,
    set_vector_storage,
    storage_advice,
)
from .tenants import (
    TenantPartition,
    create_tenant_partition,
    create_tenant_partition_async,
    detach_tenant_partition,
    detach_tenant_partition_async,
    drop_tenant_partition,
    drop_tenant_partition_async,
    tenant_search,
)
from .tuning import TunedSearchSetting, TuningPoint, tune_search_settings
from .types import Bit, HalfVec, SparseVec, Vector, VectorType, register_reflection
from .values import SparseVector

#: The installed distribution's version (one source: ``pyproject.toml``).
__version__ = _metadata.version("vecalchemy")

__all__ = [
    "Vector",
    "HalfVec",
    "SparseVec",
    "Bit",
    "VectorType",
    "SparseVector",
    "avg",
    "sum",
    "l2_normalize",
    "binary_quantize",
    "subvector",
    "vector_dims",
    "vector_norm",
    "Metric",
    "METRICS",
    "opclass_for",
    "VecalchemyPlugin",
    "install",
    "register_adapters",
    "register_adapters_async",
    "DenseParam",
    "HalfVecParam",
    "BitParam",
    "copy_rows",
    "copy_rows_async",
    "fetch_matrix",
    "fetch_matrix_async",
    "HnswIndex",
    "IvfflatIndex",
    "VectorIndexSpec",
    "validate_vector_index",
    "vector_index_spec",
    "build_vector_index",
    "build_vector_index_async",
    "BuildProgress",
    "BuildSettings",
    "index_build_settings",
    "SearchSettings",
    "search_settings",
    "apply_search_settings",
    "install_search_options",
    "iterative_search",
    "binary_quantized_search",
    "best_chunk_distance",
    "hybrid_search",
    "filtered_search",
    "filtered_search_async",
    "FilteredResult",
    "SearchStep",
    "tune_search_settings",
    "TunedSearchSetting",
    "TuningPoint",
    "PreparedQuery",
    "IndexProblem",
    "check_query",
    "install_query_checks",
    "install_plan_guard",
    "IndexUsage",
    "explain_index_usage",
    "measure_recall",
    "StorageAdvice",
    "storage_advice",
    "column_storage",
    "set_vector_storage",
    "count_out_of_line",
    "PartitionKey",
    "partition_key",
    "partition_statement",
    "MINVALUE",
    "MAXVALUE",
    "TenantPartition",
    "create_tenant_partition",
    "create_tenant_partition_async",
    "detach_tenant_partition",
    "detach_tenant_partition_async",
    "drop_tenant_partition",
    "drop_tenant_partition_async",
    "tenant_search",
    "VecalchemyError",
    "InvalidVectorError",
    "IndexDefinitionError",
    "InvalidIdentifierError",
    "SearchSettingError",
    "VectorIndexWarning",
    "VectorIndexUncertainWarning",
    "VectorPartitionWarning",
    "PartitionError",
    "FilteredSearchWarning",
    "UnsafeSQLError",
    "UnsupportedSQLAlchemyError",
]

register_reflection()
