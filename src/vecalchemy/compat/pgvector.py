"""``pgvector.sqlalchemy`` 0.5's names and value semantics on vecalchemy's types.

Switching costs one import line::

    from vecalchemy.compat.pgvector import VECTOR  # was: from pgvector.sqlalchemy import VECTOR

The names are those of ``pgvector.sqlalchemy`` 0.5 (its ``__all__``: ``Vector``,
``VECTOR``, ``HALFVEC``, ``BIT``, ``SPARSEVEC``, ``avg``, ``sum``) and so are the values
they return: ``VECTOR`` and ``HALFVEC`` give a ``list`` of ``float`` (the stored float4 /
binary16 elements, exactly), ``SPARSEVEC`` a ``pgvector.SparseVector`` (vecalchemy's
:class:`~vecalchemy.values.SparseVector` when the ``pgvector`` package is not installed),
``BIT`` a ``str`` of ``0``/``1``; ``ARRAY(VECTOR(n))`` gives lists of lists on
vecalchemy's dialects (every driver: see :mod:`vecalchemy.arrays`) and wherever the
driver hands over the array's elements.

Each type is a subclass of vecalchemy's (``VECTOR`` of :class:`~vecalchemy.Vector`,
``HALFVEC`` of :class:`~vecalchemy.HalfVec`, ``SPARSEVEC`` of
:class:`~vecalchemy.SparseVec`, ``BIT`` of :class:`~vecalchemy.Bit`), so everything
vecalchemy adds is kept: values validated before anything is sent
(:class:`~vecalchemy.exc.InvalidVectorError`, whose text also holds pgvector-python's own
wording where it has one, e.g. ``expected ndim to be 1``), ``metric=``, the distance
comparators with explicit casts, index rules and query checks, binary binds and results
on vecalchemy's dialects, ``copy_rows``, the Alembic plugin.

Importing the module makes reflection answer ``vector``, ``halfvec`` and ``sparsevec``
columns with these classes, on vecalchemy's dialects and on plain PostgreSQL engines, as
importing ``pgvector.sqlalchemy`` does (:func:`register_reflection`); plain ``bit`` stays
SQLAlchemy's ``BIT``, as there.
"""

from __future__ import annotations

import decimal
import functools
import marshal
import numbers
import struct
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np
from sqlalchemy.sql.functions import ReturnTypeFromArgs, sum

from ..exc import InvalidVectorError
from ..facts import DENSE_DTYPES
from ..types import Bit, HalfVec, SparseVec, VectorType, _DenseType, use_reflected_types
from ..types import Vector as _Vector
from ..values import SparseVector

__all__ = ["Vector", "VECTOR", "HALFVEC", "BIT", "SPARSEVEC", "avg", "sum"]


def _pgvector_sparse_class() -> type[Any] | None:
    """pgvector-python's ``SparseVector``, when the ``pgvector`` package is installed."""
    try:
        from pgvector import SparseVector as cls
    except ImportError:  # pragma: no cover - the pgvector package is optional
        return None
    return cls


_PgvectorSparseVector = _pgvector_sparse_class()
#: what SPARSEVEC returns
_SPARSE_RESULT: type[Any] = _PgvectorSparseVector or SparseVector


# --- pgvector-python's wording -----------------------------------------------------------
# Each function names pgvector-python 0.5's phrase for what makes ``value`` unbindable,
# when pgvector-python refuses it for that same reason (its vector.py, halfvec.py,
# sparsevec.py, bit.py); ``None`` when the refusal is another one (a dimension, a NaN:
# vecalchemy's text already holds pgvector's own server wording for those).


def _dense_wording(value: Any, dim: int | None) -> str | None:
    if isinstance(value, np.ndarray):
        return "expected ndim to be 1" if value.ndim != 1 else None
    if isinstance(value, list):
        real = all(isinstance(v, (numbers.Real, decimal.Decimal)) for v in value)
        return None if real else "expected list[float]"
    if isinstance(value, (tuple, str)) or type(value).__module__.startswith("pgvector"):
        return None
    return "expected list or ndarray"


def _sparse_wording(value: Any, dim: int | None) -> str | None:
    if isinstance(value, Mapping):
        return "missing dimensions" if dim is None else None
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple) and len(shape) > 1:
        return "expected ndim to be 1"
    return None


def _bit_wording(value: Any, dim: int | None) -> str | None:
    if isinstance(value, str):
        return None if set(value) <= {"0", "1"} else "expected bit string"
    if isinstance(value, list):
        bools = all(isinstance(v, (int, np.bool_, np.integer)) and v in (0, 1) for v in value)
        return None if bools else "expected list[bool]"
    if isinstance(value, np.ndarray):
        if value.ndim != 1:
            return "expected ndim to be 1"
        kind = value.dtype.kind
        bools = kind == "b" or (kind in "iu" and bool(((value == 0) | (value == 1)).all()))
        return None if bools else "expected elements to be boolean"
    if isinstance(value, (bytes, tuple)) or type(value).__module__.startswith(
        ("pgvector", "asyncpg")
    ):
        return None
    return "expected bytes, str, list, or ndarray"


_WORDING: dict[str, Callable[[Any, int | None], str | None]] = {
    "vector": _dense_wording,
    "halfvec": _dense_wording,
    "sparsevec": _sparse_wording,
    "bit": _bit_wording,
}


def _reworded(err: InvalidVectorError, value: Any, vtype: VectorType) -> InvalidVectorError:
    """``err`` with pgvector-python's own phrase for refusing ``value`` appended."""
    phrase = _WORDING[vtype.sql_type](value, vtype.dim)
    if phrase is None or phrase in str(err):
        return err
    return InvalidVectorError(f"{err} ({phrase})")


# --- the types ---------------------------------------------------------------------------

#: SQLAlchemy's ARRAY hands its item type each character of an array the driver left as
#: text, e.g. '{"[1,2,3]"}'; said rather than decoded into empty vectors
_UNPARSED_ARRAY = (
    "{0}: expected pgvector's text form '[1,2,3]', got {1!r}: an ARRAY of {0} needs "
    "vecalchemy's dialect, which parses such arrays on every driver "
    '(plugins=["vecalchemy"]), '
    "or a driver that parses them, e.g. with pgvector-python's adapters registered on "
    "each connection (pgvector.psycopg.register_vector, pgvector.psycopg2.register_vector), "
    "as pgvector.sqlalchemy needs them"
)


# --- binding lists fast -------------------------------------------------------------------
# A list of Python floats is what pgvector.sqlalchemy's users bind. np.asarray reads such a
# list twice (once to find its dtype, once to convert it), and the floats of a large batch
# are cold in memory: check_dense takes ~55 µs for 768 of them, most of what such an insert
# costs on the client. marshal writes a list in one C pass that reads each element once: a
# float (exactly ``float``: not an int, a bool or a subclass such as np.float64) as b"g"
# and its IEEE double, little-endian, anything else otherwise. NumPy reads those doubles in
# place, strided: ~20 µs, and the same array.

_MARSHAL_VERSION = 2  # (from version 3 on, an object met twice may be written as a reference)
#: below these magnitudes a double rounds to a finite float4 (float4's largest) and, for
#: halfvec, then to a finite binary16 (binary16's largest)
_FAST_LIMIT = {"vector": float(np.finfo(np.float32).max), "halfvec": 65504.0}
_SEQUENCES = (list, tuple)


def _marshal_writes_floats_as_read() -> bool:
    """Whether ``marshal`` writes a list of floats as :func:`_sequence_converter` reads it
    (a 5-byte header, then b"g" and 8 little-endian bytes a float), checked once."""
    try:
        dumped = marshal.dumps([0.5, -2.0], _MARSHAL_VERSION)
    except ValueError:  # pragma: no cover - an interpreter whose marshal lacks the version
        return False
    floats = b"".join(b"g" + struct.pack("<d", x) for x in (0.5, -2.0))
    return dumped == b"[" + struct.pack("<i", 2) + floats


_MARSHAL_FLOATS = _marshal_writes_floats_as_read()


@functools.lru_cache(maxsize=64)
def _sequence_converter(sql_type: str, dim: int) -> Callable[[Any], np.ndarray | None] | None:
    """The checked array of a ``list`` / ``tuple`` of ``dim`` Python floats; ``None`` for
    any other value (ints, NumPy scalars, a NaN, a value out of range...), which then
    takes :func:`vecalchemy.codecs.check_dense`. ``None`` instead of a converter when
    ``marshal`` does not write floats as expected.

    The same array as :func:`~vecalchemy.codecs.check_dense` returns for such a value:
    the float64 values rounded to float4 (then to binary16 for halfvec, as there), each
    finite and in range. A dump of exactly ``5 + 9 * dim`` bytes with b"g" at every 9th
    byte from the 6th holds ``dim`` floats and nothing else, since each b"g" record is 9
    bytes long.
    """
    if not _MARSHAL_FLOATS:  # pragma: no cover - CPython and PyPy write them so
        return None
    dumps = marshal.dumps
    size = 5 + 9 * dim
    tags = b"g" * dim
    limit = _FAST_LIMIT[sql_type]
    dtype = np.dtype(DENSE_DTYPES[sql_type])
    float32 = np.dtype(np.float32)
    doubles = np.dtype("<f8")
    ndarray = np.ndarray
    absolute = np.absolute

    def convert(value: Any) -> np.ndarray | None:
        if len(value) != dim:
            return None
        try:
            dumped = dumps(value, _MARSHAL_VERSION)
        except ValueError:  # (an object marshal does not write)
            return None
        if len(dumped) != size or dumped[5::9] != tags:
            return None
        wide: np.ndarray = ndarray((dim,), doubles, dumped, 6, (9,))
        if not absolute(wide).max() < limit:  # (NaN compares false)
            return None
        arr: np.ndarray = wide.astype(float32)
        return arr if dtype is float32 else arr.astype(dtype)

    return convert


class _DenseList(_DenseType):
    """Results as a ``list`` of ``float``, as ``pgvector.sqlalchemy`` returns them."""

    cache_ok = True
    _result_class: ClassVar[type] = list

    def _convert_result(self, value: Any) -> Any:
        if type(value) is not np.ndarray:
            if isinstance(value, str) and not value.startswith("["):
                raise InvalidVectorError(_UNPARSED_ARRAY.format(self.sql_type, value))
            value = super()._convert_result(value)
        return value.tolist() if isinstance(value, np.ndarray) else value

    def result_processor(self, dialect: Any, coltype: Any) -> Any:
        """The array a binary loader or codec made, as a list, with one type test a row;
        anything else (text, ``None``, a driver's own object) through
        :meth:`_convert_result`."""
        if type(self).process_result_value is not VectorType.process_result_value:
            return super().result_processor(dialect, coltype)
        convert = self._convert_result
        ndarray = np.ndarray

        def process(value: Any) -> Any:
            if type(value) is ndarray:
                return value.tolist()
            if value is None:
                return None
            return convert(value)

        return process

    def _check(self, value: Any) -> np.ndarray:
        if type(value) in _SEQUENCES and self.dim is not None:
            sequences = _sequence_converter(self.sql_type, self.dim)
            arr = None if sequences is None else sequences(value)
            if arr is not None:
                return arr
        try:
            return super()._check(value)
        except InvalidVectorError as err:
            raise _reworded(err, value, self) from None

    def _checker(self, then: Callable[[Any], Any] | None) -> Callable[[Any], Any]:
        dense = super()._checker(then)
        sequences = None if self.dim is None else _sequence_converter(self.sql_type, self.dim)
        vtype = self

        def check(value: Any) -> Any:
            if sequences is not None and type(value) in _SEQUENCES:
                arr = sequences(value)
                if arr is not None:
                    return arr if then is None else then(arr)
            try:
                return dense(value)
            except InvalidVectorError as err:
                raise _reworded(err, value, vtype) from None

        return check

    @property
    def python_type(self) -> type:
        return list


class VECTOR(_DenseList, _Vector):
    """pgvector ``vector(dim)``: vecalchemy's :class:`~vecalchemy.Vector` returning lists.

    ``VECTOR(3)``, ``VECTOR(768, metric="cosine")``. Binds what ``Vector`` binds (lists,
    tuples, 1-D NumPy arrays, pgvector-python ``Vector``); returns a ``list`` of ``dim``
    floats, each the stored float4 exactly (``0.1`` reads back as
    ``0.10000000149011612``). Raises :class:`~vecalchemy.exc.InvalidVectorError` while
    binding, with pgvector's wording (``expected 3 dimensions, not 2``,
    ``expected ndim to be 1``).
    """

    cache_ok = True


class HALFVEC(_DenseList, HalfVec):
    """pgvector ``halfvec(dim)``: vecalchemy's :class:`~vecalchemy.HalfVec` returning lists
    of floats (each the stored binary16 exactly)."""

    cache_ok = True


class SPARSEVEC(SparseVec):
    """pgvector ``sparsevec(dim)``: vecalchemy's :class:`~vecalchemy.SparseVec` returning
    ``pgvector.SparseVector`` (vecalchemy's :class:`~vecalchemy.values.SparseVector`
    when the ``pgvector`` package is not installed).

    Binds either ``SparseVector`` class, ``{index: value}`` mappings (0-based; the
    column's ``dim``), dense sequences and SciPy sparse rows.
    """

    cache_ok = True
    _result_class = _SPARSE_RESULT

    def _convert_result(self, value: Any) -> Any:
        if _PgvectorSparseVector is None or isinstance(value, _PgvectorSparseVector):
            return super()._convert_result(value)
        sv = value if isinstance(value, SparseVector) else super()._convert_result(value)
        # (pgvector-python builds it from {index: value} and dimensions, 0-based)
        return _PgvectorSparseVector(sv.to_dict(), sv.dim)

    def _check(self, value: Any) -> SparseVector:
        try:
            return super()._check(value)
        except InvalidVectorError as err:
            raise _reworded(err, value, self) from None

    @property
    def python_type(self) -> type:
        return _SPARSE_RESULT


class BIT(Bit):
    """PostgreSQL ``bit(length)``: vecalchemy's :class:`~vecalchemy.Bit` (returns a ``str``
    of 0/1; ``hamming_distance``, ``jaccard_distance``). Without a length the DDL is
    ``BIT VARYING`` (``pgvector.sqlalchemy``'s ``BIT()`` is ``bit(1)``)."""

    cache_ok = True

    def _check(self, value: Any) -> np.ndarray:
        try:
            return super()._check(value)
        except InvalidVectorError as err:
            raise _reworded(err, value, self) from None


#: pgvector.sqlalchemy's alias
Vector = VECTOR


class avg(ReturnTypeFromArgs[Any]):
    """SQL ``avg(expr)`` typed as its argument, as in ``pgvector.sqlalchemy``:
    ``avg(Item.embedding)`` is the element-wise mean (pgvector 0.4.0), a ``VECTOR`` value.
    ``sum`` is SQLAlchemy's own ``sum``, which is typed the same way."""

    inherit_cache = True
    package = "vecalchemy"


# --- reflection --------------------------------------------------------------------------

_REFLECTED = {"vector": VECTOR, "halfvec": HALFVEC, "sparsevec": SPARSEVEC}


def register_reflection() -> None:
    """Make reflection answer ``vector`` / ``halfvec`` / ``sparsevec`` columns with this
    module's classes, on vecalchemy's dialects and on plain PostgreSQL engines
    (:func:`vecalchemy.types.use_reflected_types`). Idempotent; called on import."""
    use_reflected_types(_REFLECTED)


register_reflection()
