"""vecalchemy's exceptions: one small tree rooted at :class:`VecalchemyError`.

Errors about a *value* (a vector that pgvector would reject) also subclass
:class:`ValueError`, so ``except ValueError`` keeps working for callers who do not
know vecalchemy.
"""

from __future__ import annotations

__all__ = [
    "VecalchemyError",
    "InvalidVectorError",
    "IndexDefinitionError",
    "SearchSettingError",
    "PartitionError",
    "FilteredSearchWarning",
    "VectorIndexWarning",
    "VectorIndexUncertainWarning",
    "VectorPartitionWarning",
    "VectorPlanWarning",
    "VectorPlanError",
    "UnsupportedSQLAlchemyError",
    "InvalidIdentifierError",
    "UnsafeSQLError",
]


class VecalchemyError(Exception):
    """Root of every error vecalchemy raises on purpose."""


class InvalidVectorError(VecalchemyError, ValueError):
    """A value that pgvector would reject, caught on the client before anything is sent.

    The message names the SQL type, what was expected and what came; where pgvector has
    an error text for the same condition (pgvector src/vector.c, halfvec.c, sparsevec.c)
    the message contains it.
    """


class IndexDefinitionError(VecalchemyError, ValueError):
    """An HNSW/IVFFlat index declaration that PostgreSQL + pgvector would refuse."""


class SearchSettingError(VecalchemyError, ValueError):
    """A search setting (``hnsw.ef_search`` ...) with a wrong name, type or range."""


class PartitionError(VecalchemyError, ValueError):
    """A partition that PostgreSQL would refuse or that is not where it is asked for
    (the parent not partitioned as needed, bounds not matching the partition key, a
    tenant's partition that exists already or does not exist), raised before the
    statement is sent."""


class VectorIndexWarning(UserWarning):
    """A query orders by a vector distance in a way no declared vector index can serve.

    Turn it into an error with ``warnings.simplefilter("error", VectorIndexWarning)``.
    """


class VectorIndexUncertainWarning(VectorIndexWarning):
    """Whether a declared partial vector index can serve a query is outside what the
    query checks model: the query's WHERE holds a function, an OR, a subquery, a
    parameter without a known value... where the index's predicate (``WHERE ...``)
    would need it (PostgreSQL's proof: src/backend/optimizer/util/predtest.c).

    A subclass of :class:`VectorIndexWarning`, so its filters cover it; prove the
    answer with :func:`~vecalchemy.checks.explain_index_usage`.
    """


class VectorPartitionWarning(UserWarning):
    """A top-k vector query on a partitioned table does not fix the partition key: the
    plan scans every partition's index and merges the results (a Merge Append of one
    index scan per partition), instead of one partition's index.

    Not a :class:`VectorIndexWarning` (the indexes serve the query); a query across all
    partitions may be intended. Silence it with
    ``warnings.filterwarnings("ignore", category=VectorPartitionWarning)``.
    """


class FilteredSearchWarning(UserWarning):
    """:func:`~vecalchemy.filtered.filtered_search` (``warn=True``) returned fewer than
    ``k`` rows although more rows match the filter. Turn it into an error with
    ``warnings.simplefilter("error", FilteredSearchWarning)``."""


class VectorPlanWarning(VectorIndexWarning):
    """The server's plan for an ``ORDER BY <distance> LIMIT k`` statement on a table with
    a vector index scans no vector index (a sequential scan and sort, most often).

    Given by :func:`~vecalchemy.plan_guard.install_plan_guard`; the planner can prefer
    the heap although the query has the index's shape, e.g. when vectors over ~500
    dimensions are TOASTed and the table scan looks cheap (pgvector issue #784, pull
    request #133).
    """


class VectorPlanError(VecalchemyError, RuntimeError):
    """Raised instead of :class:`VectorPlanWarning` by a plan guard installed with
    ``action="raise"``: the statement was planned (EXPLAIN) and not executed."""


class UnsupportedSQLAlchemyError(VecalchemyError, RuntimeError):
    """The installed SQLAlchemy lacks an internal name vecalchemy relies on.

    Raised instead of silently changing behaviour; the message names the missing name,
    the installed version and the supported range (``vecalchemy._private``).
    """


class InvalidIdentifierError(VecalchemyError, ValueError):
    """A name (index, table, column, schema) PostgreSQL would not hold exactly as given:
    empty, with a NUL byte, or over 63 bytes of UTF-8, which the server silently
    truncates (``NAMEDATALEN - 1``, src/include/pg_config_manual.h). Raised when the
    name is declared, before anything is sent."""


class UnsafeSQLError(VecalchemyError, ValueError):
    """SQL text given where one expression is expected (a ``where=`` string) that could
    be more: a ``;``, a ``--`` comment, an unbalanced parenthesis, an unterminated
    quote. Raised before anything is sent."""
