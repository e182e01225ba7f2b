"""SQLAlchemy types for pgvector: ``Vector``, ``HalfVec``, ``SparseVec``, ``Bit``.

Each is a :class:`~sqlalchemy.types.TypeDecorator` over a
:class:`~sqlalchemy.types.UserDefinedType` impl that renders the DDL (``VECTOR(768)``)
and an explicit bind cast (``%(p)s::VECTOR(768)``) so pgvector's implicit casts never
pick an operator silently. Values are validated while binding (see
:mod:`vecalchemy.codecs`), before anything is sent: a batch with one bad row sends
nothing.

Results: ``Vector`` -> ``(dim,)`` float32 ``np.ndarray``; ``HalfVec`` -> float16
``np.ndarray``; ``SparseVec`` -> :class:`~vecalchemy.values.SparseVector`; ``Bit`` ->
``str`` of ``0``/``1``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np
from sqlalchemy.dialects.postgresql import base as pg_base
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.expression import BindParameter, cast, type_coerce
from sqlalchemy.types import Float, NullType, TypeDecorator, UserDefinedType

from . import codecs
from .exc import InvalidVectorError
from .facts import BIT_MAX_LENGTH, MAX_DIM, METRICS, SPARSEVEC_MAX_DIM, metrics_for
from .psycopg import BitParam
from .storage_ddl import check_storage, listen_for_storage
from .values import SparseVector

__all__ = [
    "Vector",
    "HalfVec",
    "SparseVec",
    "Bit",
    "VectorType",
    "TYPES_BY_SQL_TYPE",
    "REFLECTED_TYPES",
    "binary_impls",
    "register_reflection",
    "use_reflected_types",
]


# --- impls: DDL and bind casts ------------------------------------------------------


class _PgvectorImpl(UserDefinedType[Any]):
    """Renders ``NAME(dim)``; marks binds for an explicit ``::NAME(dim)`` cast."""

    cache_ok = True
    render_bind_cast = True
    sql_name: ClassVar[str] = ""
    no_dim_spec: ClassVar[str] = ""
    #: How the vector types bind values on a dialect whose impl this is: ``"text"``
    #: (pgvector's text format, any driver), ``"psycopg"`` or ``"asyncpg"`` (what that
    #: driver's binary adapters registered by vecalchemy take). A dialect chooses by
    #: mapping these classes to subclasses in its ``colspecs`` (see :func:`binary_impls`).
    bind_format: ClassVar[str] = "text"

    def __init__(self, dim: int | None = None) -> None:
        self.dim = dim

    def get_col_spec(self, **kw: Any) -> str:
        if self.dim is None:
            return self.no_dim_spec or self.sql_name
        return f"{self.sql_name}({self.dim})"

    def literal_processor(self, dialect: Any) -> Any:
        spec = self.get_col_spec()

        def process(value: str) -> str:
            return f"'{value}'::{spec}"

        return process


class VECTOR(_PgvectorImpl):
    """pgvector ``vector(n)`` (the DDL-level type)."""

    sql_name = "VECTOR"


class HALFVEC(_PgvectorImpl):
    """pgvector ``halfvec(n)`` (the DDL-level type)."""

    sql_name = "HALFVEC"


class SPARSEVEC(_PgvectorImpl):
    """pgvector ``sparsevec(n)`` (the DDL-level type)."""

    sql_name = "SPARSEVEC"


class BITSTRING(_PgvectorImpl):
    """PostgreSQL ``bit(n)``; without a length ``BIT VARYING`` (plain ``BIT`` means ``bit(1)``)."""

    sql_name = "BIT"
    no_dim_spec = "BIT VARYING"


# --- comparators ---------------------------------------------------------------------


class _DistanceComparator(TypeDecorator.Comparator):  # type: ignore[type-arg]
    """Every distance operator of the facts table; each checks the column's type.

    All six methods exist on every vector type so that a metric the type lacks
    (``hamming_distance`` on a ``vector``, ``cosine_distance`` on a ``bit``) raises a
    :class:`TypeError` naming what the type supports, rather than an ``AttributeError``.
    """

    def _distance(self, metric_name: str, other: Any) -> ColumnElement[float]:
        vtype: VectorType = self.type  # type: ignore[assignment]
        m = METRICS[metric_name]
        if vtype.sql_type not in m.types:
            raise TypeError(
                f"{m.method}() ({m.operator}) is not defined for {vtype.sql_type}; "
                f"{vtype.sql_type} supports: "
                + ", ".join(METRICS[n].method + "()" for n in metrics_for(vtype.sql_type))
            )
        return self.expr.op(m.operator, return_type=Float)(vtype._coerce_operand(other))

    def distance(self, other: Any) -> ColumnElement[float]:
        """Distance by the metric declared on the type (``Vector(3, metric="cosine")``).

        Raises :class:`ValueError` when the type declares no metric.
        """
        vtype: VectorType = self.type  # type: ignore[assignment]
        if vtype.metric is None:
            raise ValueError(
                f"{vtype!r} declares no metric; declare one (metric=...) or call one of "
                + ", ".join(METRICS[n].method + "()" for n in metrics_for(vtype.sql_type))
            )
        return self._distance(vtype.metric, other)

    def l2_distance(self, other: Any) -> ColumnElement[float]:
        """Euclidean distance, SQL ``<->`` (vector, halfvec, sparsevec)."""
        return self._distance("l2", other)

    def max_inner_product(self, other: Any) -> ColumnElement[float]:
        """Negative inner product, SQL ``<#>`` (ascending order = largest product first)."""
        return self._distance("inner_product", other)

    def cosine_distance(self, other: Any) -> ColumnElement[float]:
        """Cosine distance, SQL ``<=>`` (NaN for a zero vector)."""
        return self._distance("cosine", other)

    def l1_distance(self, other: Any) -> ColumnElement[float]:
        """Taxicab distance, SQL ``<+>``."""
        return self._distance("l1", other)

    def hamming_distance(self, other: Any) -> ColumnElement[float]:
        """Hamming distance, SQL ``<~>`` (bit only)."""
        return self._distance("hamming", other)

    def jaccard_distance(self, other: Any) -> ColumnElement[float]:
        """Jaccard distance, SQL ``<%>`` (bit only; 1 when the intersection is empty)."""
        return self._distance("jaccard", other)


class VectorComparator(_DistanceComparator):
    """Comparator of ``vector``, ``halfvec`` and ``sparsevec`` (pgvector sql/vector.sql)."""


class BitComparator(_DistanceComparator):
    """Comparator of ``bit`` (pgvector 0.7.0): ``hamming_distance``, ``jaccard_distance``."""


# --- the public types ----------------------------------------------------------------


class VectorType(TypeDecorator[Any]):
    """Base of the four pgvector types: dimension, declared metric, binding, results."""

    cache_ok = True
    sql_type: ClassVar[str] = ""
    max_dim: ClassVar[int] = MAX_DIM
    comparator_factory = VectorComparator

    def __init__(
        self, dim: int | None = None, *, metric: str | None = None, storage: str | None = None
    ) -> None:
        if dim is not None:
            if isinstance(dim, bool) or not isinstance(dim, int):
                raise InvalidVectorError(f"{type(self).__name__}: dim must be an int, got {dim!r}")
            if dim < 1:
                raise InvalidVectorError(
                    f"dimensions for type {self.sql_type} must be at least 1 (got {dim})"
                )
            if dim > self.max_dim:
                raise InvalidVectorError(
                    f"dimensions for type {self.sql_type} cannot exceed {self.max_dim} (got {dim})"
                )
        if metric is not None and metric not in metrics_for(self.sql_type):
            raise ValueError(
                f"{type(self).__name__}: unknown metric {metric!r} for {self.sql_type}; "
                f"expected one of {', '.join(metrics_for(self.sql_type))}"
            )
        if storage is not None:
            storage = check_storage(storage)
        super().__init__(dim)
        self.dim = dim
        self.metric = metric
        #: ``ALTER TABLE ... SET STORAGE`` mode run after ``CREATE TABLE`` (see
        #: :mod:`vecalchemy.storage`); ``None``: the type's own (pgvector's ``external``)
        self.storage = storage
        if storage is not None:
            listen_for_storage(self, storage)

    def __repr__(self) -> str:
        args = [] if self.dim is None else [repr(self.dim)]
        if self.metric is not None:
            args.append(f"metric={self.metric!r}")
        if self.storage is not None:
            args.append(f"storage={self.storage!r}")
        return f"{type(self).__name__}({', '.join(args)})"

    @property
    def python_type(self) -> type:
        return np.ndarray

    def adapt(self, cls: Any, **kw: Any) -> Any:
        # SQLAlchemy copies positional constructor arguments only; keep the metric too
        if (
            isinstance(cls, type)
            and issubclass(cls, VectorType)
            and self.metric in metrics_for(cls.sql_type)
        ):
            kw.setdefault("metric", self.metric)
        if isinstance(cls, type) and issubclass(cls, VectorType) and self.storage is not None:
            kw.setdefault("storage", self.storage)
        return super().adapt(cls, **kw)

    def coerce_compared_value(self, op: Any, value: Any) -> Any:
        # a Python value compared to a vector binds with this exact type
        return self

    def _coerce_operand(self, other: Any) -> Any:
        """Right operand of a distance: a bind of this exact type, or an explicit cast."""
        # ORM attributes, aliased columns and the like give their column by this protocol
        if not isinstance(other, ColumnElement) and hasattr(other, "__clause_element__"):
            other = other.__clause_element__()
        if isinstance(other, BindParameter) and isinstance(other.type, NullType):
            # an untyped bindparam("q") takes this type, so its value is validated and bound
            return type_coerce(other, self)
        if isinstance(other, ColumnElement):
            otype = other.type
            if (
                isinstance(otype, VectorType)
                and type(otype) is type(self)
                and (otype.dim == self.dim or self.dim is None)
            ):
                return other
            return cast(other, type(self)(self.dim))
        return other

    def compare_values(self, x: Any, y: Any) -> bool:
        """Equality the ORM uses to detect a changed attribute.

        Compares the validated forms (so a loaded float32 array equals the list it came
        from, and a ``"1010"`` bit string equals ``[1, 0, 1, 0]``); NumPy arrays have no
        truth value, so ``==`` cannot be used. A value that does not validate compares
        unequal, and the flush then raises while binding it.
        """
        if x is None or y is None:
            return x is y
        if x is y:
            return True
        try:
            cx, cy = self._check(x), self._check(y)
        except (ValueError, TypeError):
            return False
        return self._equal(cx, cy)

    def _equal(self, x: Any, y: Any) -> bool:
        return bool(np.array_equal(x, y))

    # binding and results: subclasses implement _check, _to_text, _from_*
    def bind_processor(self, dialect: Any) -> Any:
        """One closure per (type, dialect) doing what :meth:`process_bind_param` does.

        SQLAlchemy calls the bind processor once per bound value; this one skips
        TypeDecorator's generic wrapper and the per-value dialect lookups. A subclass
        that overrides :meth:`process_bind_param` keeps TypeDecorator's behaviour.
        """
        if type(self).process_bind_param is not VectorType.process_bind_param:
            return super().bind_processor(dialect)
        check_then_bind = self._checker(self._bind_value(dialect))

        def process(value: Any) -> Any:
            if value is None:
                return None
            return check_then_bind(value)

        return process

    def _checker(self, then: Callable[[Any], Any] | None) -> Callable[[Any], Any]:
        check = self._check
        if then is None:
            return check
        return lambda value: then(check(value))

    def _bind_format(self) -> str:
        # (called on the dialect's copy of the type, whose impl the dialect's colspecs chose)
        impl = self.impl_instance
        return impl.bind_format if isinstance(impl, _PgvectorImpl) else "text"

    def _bind_value(self, dialect: Any) -> Callable[[Any], Any] | None:
        """What turns a checked value into the bound one on ``dialect`` (``None``: the
        checked value itself): pgvector text, or what the driver's binary adapters take."""
        bind_format = self._bind_format()
        if bind_format == "text":
            return self._text_binder(dialect)
        return self._binary_binder(bind_format)

    def _text_binder(self, dialect: Any) -> Callable[[Any], Any] | None:
        return self._to_text

    def _binary_binder(self, bind_format: str) -> Callable[[Any], Any] | None:
        return None  # (the driver's dumper or codec takes the checked value)

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        checked = self._check(value)
        then = self._bind_value(dialect)
        return checked if then is None else then(checked)

    def process_literal_param(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        return self._to_text(self._check(value))

    def result_processor(self, dialect: Any, coltype: Any) -> Any:
        """One closure per (type, dialect, column type): values that psycopg's loaders
        already made (``np.ndarray``, ``SparseVector``, ``str`` for bit) pass through
        with one type check; a subclass overriding :meth:`process_result_value` keeps
        TypeDecorator's behaviour."""
        if type(self).process_result_value is not VectorType.process_result_value:
            return super().result_processor(dialect, coltype)
        result_class = self._result_class
        convert = self._convert_result

        def process(value: Any) -> Any:
            if value is None or type(value) is result_class:
                return value
            return convert(value)

        return process

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        return self._convert_result(value)

    def _convert_result(self, value: Any) -> Any:
        if isinstance(value, self._result_class):
            return value
        if isinstance(value, str):
            return self._from_text(value)
        if isinstance(value, (bytes, bytearray, memoryview)):
            return self._from_binary(value)
        # another loader got there first (e.g. pgvector-python's): normalise its object
        return self._from_other(value)

    _result_class: ClassVar[type] = np.ndarray

    def _from_other(self, value: Any) -> Any:
        return self._check(value)

    def _check(self, value: Any) -> Any:
        raise NotImplementedError

    def _to_text(self, checked: Any) -> str:
        raise NotImplementedError

    def _from_text(self, text: str) -> Any:
        raise NotImplementedError

    def _from_binary(self, data: bytes | bytearray | memoryview) -> Any:
        raise NotImplementedError


#: SQLAlchemy's ARRAY type hands its item type each character of an array the driver left
#: as text ('{"[1,2,3]",NULL}'): refused with the remedy rather than decoded into garbage
UNPARSED_ARRAY = (
    "{0}: expected pgvector's text form, got {1!r}: the driver handed over an ARRAY of "
    "{0} as text, which SQLAlchemy's ARRAY type splits into characters; vecalchemy's "
    'dialects parse such arrays: create the engine with plugins=["vecalchemy"] (on psycopg '
    "3, vecalchemy.install(engine) on an existing engine registers the array loaders)"
)


class _DenseType(VectorType):
    cache_ok = True

    def _check(self, value: Any) -> np.ndarray:
        return codecs.check_dense(value, self.sql_type, self.dim)

    def _checker(self, then: Callable[[Any], Any] | None) -> Callable[[Any], Any]:
        return codecs.dense_checker(self.sql_type, self.dim, then)

    def _to_text(self, checked: Any) -> str:
        return codecs.encode_dense_text(checked)

    def _from_text(self, text: str) -> np.ndarray:
        if text[:1] != "[":  # (pgvector's text output always starts so)
            raise InvalidVectorError(UNPARSED_ARRAY.format(self.sql_type, text))
        return codecs.decode_dense_text(text, self.sql_type)

    def _from_binary(self, data: bytes | bytearray | memoryview) -> np.ndarray:
        return codecs.decode_dense_binary(data, self.sql_type)


class Vector(_DenseType):
    """pgvector ``vector(dim)``: float4 elements, up to 16 000 dimensions.

    ``Vector(768, metric="cosine")``. ``dim=None`` leaves the column without a typmod
    (any dimension; such a column cannot be indexed). ``metric`` (``"l2"``,
    ``"inner_product"``, ``"cosine"``, ``"l1"``) drives ``col.distance(q)`` and the
    opclass of indexes declared on the column. ``storage`` (``"plain"``, ``"external"``,
    ``"extended"``, ``"main"``; any of the four types) follows the table's ``CREATE
    TABLE`` (``metadata.create_all``, Alembic's ``op.create_table``) with ``ALTER TABLE
    ... ALTER COLUMN ... SET STORAGE``: ``"plain"`` keeps vectors in the heap row, so the
    planner sees their size (see :mod:`vecalchemy.storage`). An existing column (or
    ``op.add_column``) is changed with :func:`vecalchemy.storage.set_vector_storage`.

    Binds lists/tuples, 1-D arrays of any real dtype, pgvector-python ``Vector``;
    returns a ``(dim,)`` float32 ``np.ndarray``.
    Raises :class:`~vecalchemy.exc.InvalidVectorError` while binding (see
    :func:`vecalchemy.codecs.check_dense`).
    """

    impl = VECTOR
    cache_ok = True
    sql_type = "vector"


class HalfVec(_DenseType):
    """pgvector ``halfvec(dim)`` (0.7.0+): IEEE binary16 elements, up to 16 000 dimensions.

    Returns a ``(dim,)`` float16 ``np.ndarray``. Values whose magnitude rounds beyond
    65504 are refused, as pgvector refuses them (src/halfutils.h).
    """

    impl = HALFVEC
    cache_ok = True
    sql_type = "halfvec"


class SparseVec(VectorType):
    """pgvector ``sparsevec(dim)`` (0.7.0+): up to 1e9 dimensions, 16 000 non-zeros.

    Binds :class:`~vecalchemy.values.SparseVector`, ``{index: value}`` mappings
    (0-based; the column's ``dim`` is used), dense sequences/arrays, SciPy sparse rows,
    pgvector-python ``SparseVector``; returns :class:`~vecalchemy.values.SparseVector`.
    """

    impl = SPARSEVEC
    cache_ok = True
    sql_type = "sparsevec"
    max_dim = SPARSEVEC_MAX_DIM
    _result_class = SparseVector

    def _check(self, value: Any) -> SparseVector:
        return codecs.check_sparse(value, self.dim)

    def _to_text(self, checked: Any) -> str:
        return codecs.encode_sparse_text(checked)

    def _from_text(self, text: str) -> SparseVector:
        try:
            return codecs.decode_sparse_text(text)
        except ValueError:  # (a character of an array's text, see UNPARSED_ARRAY)
            raise InvalidVectorError(UNPARSED_ARRAY.format(self.sql_type, text)) from None

    def _from_binary(self, data: bytes | bytearray | memoryview) -> SparseVector:
        return codecs.decode_sparse_binary(data)

    @property
    def python_type(self) -> type:
        return SparseVector

    def _equal(self, x: Any, y: Any) -> bool:
        return bool(x == y)


class Bit(VectorType):
    """PostgreSQL ``bit(length)`` used as a binary vector (pgvector 0.7.0 indexes it).

    ``Bit(64, metric="hamming")``; metrics ``"hamming"`` (``<~>``) and ``"jaccard"``
    (``<%>``). Without a length the DDL is ``BIT VARYING``, because PostgreSQL's plain
    ``BIT`` means ``bit(1)``.

    Binds ``"0101"`` strings, ``bytes`` (the type's length, or 8 bits a byte), sequences
    of bools, bool or 0/1 arrays, pgvector-python ``Bit``; returns a ``str`` of 0/1.
    Raises :class:`~vecalchemy.exc.InvalidVectorError` for other characters or a
    length mismatch (``bit string length 3 does not match type bit(4)``).
    """

    impl = BITSTRING
    cache_ok = True
    sql_type = "bit"
    max_dim = BIT_MAX_LENGTH
    comparator_factory = BitComparator  # type: ignore[assignment]
    _result_class = str

    def __init__(
        self, length: int | None = None, *, metric: str | None = None, storage: str | None = None
    ) -> None:
        super().__init__(length, metric=metric, storage=storage)
        #: Number of bits (``None``: any). An attribute named like the constructor
        #: argument, so SQLAlchemy's cache key and ``adapt()`` see it.
        self.length = length

    def _check(self, value: Any) -> np.ndarray:
        return codecs.check_bits(value, self.dim)

    def _text_binder(self, dialect: Any) -> Callable[[Any], Any] | None:
        # asyncpg binds bit in binary through its own codec, also without vecalchemy's
        # dialect, and takes only its BitString
        return codecs.bits_to_bitstring if dialect.driver == "asyncpg" else self._to_text

    def _binary_binder(self, bind_format: str) -> Callable[[Any], Any] | None:
        return BitParam if bind_format == "psycopg" else codecs.bits_to_bitstring

    def _to_text(self, checked: Any) -> str:
        return codecs.encode_bits_text(checked)

    def _from_text(self, text: str) -> str:
        return text

    def _from_binary(self, data: bytes | bytearray | memoryview) -> str:
        return codecs.decode_bits_binary(data)

    def _from_other(self, value: Any) -> str:
        return codecs.encode_bits_text(codecs.check_bits(value))

    @property
    def python_type(self) -> type:
        return str


#: pgvector SQL type name (``"vector"``, ``"halfvec"``, ``"sparsevec"``, ``"bit"``) -> type class
TYPES_BY_SQL_TYPE: dict[str, type[VectorType]] = {
    cls.sql_type: cls for cls in (Vector, HalfVec, SparseVec, Bit)
}


# --- per-dialect binding ----------------------------------------------------------------


def binary_impls(bind_format: str) -> dict[type[Any], type[Any]]:
    """``colspecs`` entries making the four types bind for a driver's binary adapters.

    ``bind_format``: ``"psycopg"`` or ``"asyncpg"``. Maps each DDL-level impl
    (``VECTOR`` ...) to a subclass with that :attr:`~_PgvectorImpl.bind_format`, the way
    SQLAlchemy's own dialects map a generic type to their driver's implementation; a
    subclass of ``Vector`` written by a user keeps its class (only the impl is adapted).
    """
    return {
        impl: type(
            f"{impl.__name__}_{bind_format}",
            (impl,),
            {"bind_format": bind_format, "cache_ok": True, "__module__": __name__},
        )
        for impl in (VECTOR, HALFVEC, SPARSEVEC, BITSTRING)
    }


# --- reflection ----------------------------------------------------------------------


#: Reflected PostgreSQL type name -> the class reflection answers with; plain ``bit`` stays
#: SQLAlchemy's. vecalchemy's dialects read this dict itself, so :func:`use_reflected_types`
#: switches what they answer.
REFLECTED_TYPES: dict[str, type[VectorType]] = {
    name: cls for name, cls in TYPES_BY_SQL_TYPE.items() if cls is not Bit
}


def register_reflection() -> None:
    """Make reflection on *plain* PostgreSQL engines return ``Vector(n)`` etc.

    The fallback for engines without vecalchemy's dialect (whose own ``ischema_names``
    answers with :data:`REFLECTED_TYPES`, whatever else was imported): sets the names in
    SQLAlchemy's module-level ``ischema_names`` only where nothing else has (another
    library importing later may assign its own). Idempotent; called on import of
    :mod:`vecalchemy`.
    """
    for name, cls in REFLECTED_TYPES.items():
        pg_base.ischema_names.setdefault(name, cls)


def use_reflected_types(types: Mapping[str, type[VectorType]]) -> None:
    """Make reflection answer the PostgreSQL type names of ``types`` with its classes.

    ``types``: e.g. ``{"vector": VECTOR}``, subclasses of vecalchemy's types taking the
    dimension as their first argument. Sets them in :data:`REFLECTED_TYPES` (vecalchemy's
    dialects) and in SQLAlchemy's module-level ``ischema_names`` (plain engines), where
    they replace whatever was set, as ``pgvector.sqlalchemy`` sets its own. Idempotent;
    :mod:`vecalchemy.compat.pgvector` calls it on import.
    """
    REFLECTED_TYPES.update(types)
    pg_base.ischema_names.update(types)
