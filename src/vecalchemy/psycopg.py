"""psycopg 3 dumpers and loaders for pgvector types (sync and async connections).

:func:`register_adapters` (or :func:`register_adapters_async`) registers them on one
psycopg connection; the engine plugin and the ``postgresql+vecalchemy`` dialect do it
on every new connection. On SQLAlchemy connections the
``Vector``/``HalfVec`` types bind the checked ``np.ndarray`` itself (float32 is sent as
``vector``, float16 as ``halfvec``); for plain psycopg, dumpers are keyed on small
parameter classes (:class:`DenseParam`, :class:`HalfVecParam`, :class:`BitParam`,
:class:`~vecalchemy.values.SparseVector`). Loaders return
``np.ndarray`` (float32 / float16), :class:`~vecalchemy.values.SparseVector`, and for
``bit`` in binary results the same ``str`` of 0/1 that the text format gives.

pgvector's array types (``_vector``, ``_halfvec``, ``_sparsevec``) are registered with
psycopg's own array adapters over these: their results load as lists of those values (in
text and binary), and an :class:`ArrayParam` of them is sent as a binary array.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
from psycopg.adapt import AdaptersMap, Dumper, Loader
from psycopg.pq import Format
from psycopg.types import TypeInfo
from psycopg.types.array import ListBinaryDumper, ListDumper
from sqlalchemy.engine import AdaptedConnection

from . import codecs
from .exc import InvalidVectorError
from .facts import DENSE_DTYPES, DENSE_HEADER, WIRE_DTYPES
from .values import SparseVector

__all__ = [
    "DenseParam",
    "HalfVecParam",
    "BitParam",
    "ArrayParam",
    "VECTOR_TYPES_QUERY",
    "register_adapters",
    "register_adapters_async",
    "register_on_adapters",
    "driver_connection",
    "fetch_type_oids",
    "fetch_array_oids",
]

#: Finds pgvector's types in whatever schema the extension was created in: name, oid, and
#: the oid of the type's array (``_vector`` ...).
VECTOR_TYPES_QUERY = """
SELECT t.typname, t.oid::int8, t.typarray::int8
FROM pg_catalog.pg_type t
JOIN pg_catalog.pg_depend d
  ON d.classid = 'pg_catalog.pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e'
JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid AND e.extname = 'vector'
WHERE t.typname IN ('vector', 'halfvec', 'sparsevec')
"""

BIT_OID = 1560  # PostgreSQL's own bit type (pg_type.dat)


class DenseParam:
    """A ``vector`` parameter for plain psycopg (float4 on the wire).

    ``DenseParam(value)`` validates ``value`` with
    :func:`~vecalchemy.codecs.check_dense`, the validator of ``Vector`` column binds and
    ``copy_rows``: the same inputs, rounding and
    :class:`~vecalchemy.exc.InvalidVectorError` messages, raised on construction.
    ``array`` is the checked ``(dim,)`` float32 array (the value itself when it is one).
    A plain slotted class rather than a dataclass: one is made per bound row.
    """

    __slots__ = ("array",)
    sql_type = "vector"

    def __init__(self, array: Any) -> None:
        self.array = codecs.check_dense(array, self.sql_type)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.array!r})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return bool(np.array_equal(self.array, other.array))

    __hash__ = None  # type: ignore[assignment]


class HalfVecParam(DenseParam):
    """A ``halfvec`` parameter for plain psycopg (binary16 on the wire): validated and
    rounded as a ``HalfVec`` column bind (float4, then binary16; 65519 -> 65504);
    ``array`` is the checked ``(dim,)`` float16 array."""

    __slots__ = ()
    sql_type = "halfvec"


@dataclass(frozen=True, slots=True)
class BitParam:
    """A validated ``(n,)`` bool array bound as ``bit``."""

    bits: np.ndarray


class ArrayParam(list[Any]):
    """A list sent as a binary PostgreSQL array of pgvector values (``_vector`` of float32
    arrays, ``_halfvec`` of float16 arrays, ``_sparsevec`` of
    :class:`~vecalchemy.values.SparseVector`; ``None`` for a NULL element), on a
    connection with vecalchemy's adapters.

    psycopg sends a plain ``list`` parameter as a text array; this subclass picks
    psycopg's binary array dumper, whose elements go through vecalchemy's binary dumpers.
    A multidimensional array is nested ``ArrayParam`` objects. ``ARRAY(Vector(n))``
    columns bind their values as these on vecalchemy's psycopg dialect; the elements must
    already be checked (the column type checks them).
    """

    __slots__ = ()


class _ArrayParamBinaryDumper(ListBinaryDumper):
    """psycopg's binary array dumper for :class:`ArrayParam`; an array whose element type
    has no oid on the connection (the extension was created after it connected) is sent
    as a text array of unknown type instead, which the bind cast resolves."""

    def upgrade(self, obj: list[Any], format: Any) -> Any:
        dumper = super().upgrade(obj, format)
        sub = getattr(dumper, "sub_dumper", None)
        if dumper.format == Format.BINARY and (sub is None or not sub.oid):
            return ListDumper(self.cls, self._tx)
        return dumper


class _DenseBinaryDumper(Dumper):
    format = Format.BINARY
    oid = 0  # "unknown": the server takes the type from the explicit ::VECTOR(n) cast

    def dump(self, obj: DenseParam) -> bytes:
        return codecs.encode_dense_binary(obj.array, obj.sql_type)


class _DenseTextDumper(_DenseBinaryDumper):
    format = Format.TEXT

    def dump(self, obj: DenseParam) -> bytes:
        return codecs.encode_dense_text(obj.array).encode("ascii")


class _ArrayBinaryDumper(Dumper):
    """A validated array that a ``Vector``/``HalfVec`` column type bound (SQLAlchemy
    plugin/dialect connections): float32 is sent as ``vector``, float16 as ``halfvec``,
    typed with the connection's oid for that type.

    The column types hand psycopg the checked array itself rather than a wrapper
    object: a wrapper is one garbage-collected object a row, and an executemany of
    100 000 rows spent ~2 µs a row in the cyclic collector for them (NumPy arrays and
    dicts holding only them are not tracked). Other arrays raise
    :class:`~vecalchemy.exc.InvalidVectorError`.
    """

    format = Format.BINARY
    oid = 0
    #: {"vector": oid, "halfvec": oid} of the connection (0 until the extension exists)
    type_oids: dict[str, int] = {}
    sql_type = ""

    def get_key(self, obj: np.ndarray, format: Any) -> Any:
        key = _ARRAY_KEYS.get(obj.dtype)
        if key is None or obj.ndim != 1:
            _array_type(obj)  # raises, naming what came
        return key

    def upgrade(self, obj: np.ndarray, format: Any) -> Dumper:
        dumper = copy.copy(self)
        dumper.sql_type = _array_type(obj)
        dumper.oid = self.type_oids.get(dumper.sql_type, 0)
        dumper._wire = WIRE_DTYPES[dumper.sql_type]
        return dumper

    _wire: Any = None

    def dump(self, obj: np.ndarray) -> bytes:
        if self._wire is None:  # (not upgraded: psycopg always upgrades by get_key)
            return codecs.encode_dense_binary(obj, _array_type(obj))
        # codecs.encode_dense_binary, its lookups done once per dumper
        return _DENSE_HEADER(obj.shape[0], 0) + obj.astype(self._wire).tobytes()


class _ArrayTextDumper(_ArrayBinaryDumper):
    format = Format.TEXT

    def dump(self, obj: np.ndarray) -> bytes:
        _array_type(obj)
        return codecs.encode_dense_text(obj).encode("ascii")


_ARRAY_TYPES = {np.dtype(np.float32): "vector", np.dtype(np.float16): "halfvec"}
#: psycopg's dumper cache keys, one constant per dtype (no allocation per value)
_ARRAY_KEYS = {dtype: ("vecalchemy array", name) for dtype, name in _ARRAY_TYPES.items()}
_DENSE_HEADER = DENSE_HEADER.pack


def _array_type(obj: np.ndarray) -> str:
    sql_type = _ARRAY_TYPES.get(obj.dtype)
    if sql_type is None or obj.ndim != 1:
        raise InvalidVectorError(
            "a bare NumPy array parameter on a vecalchemy SQLAlchemy connection is sent "
            "as vector (1-D float32) or halfvec (1-D float16), as the column types bind "
            f"it; got dtype {obj.dtype}, shape {obj.shape}: bind it through a Vector/"
            "HalfVec-typed column or bindparam, or convert it"
        )
    return sql_type


class _SparseBinaryDumper(Dumper):
    format = Format.BINARY
    oid = 0

    def dump(self, obj: SparseVector) -> bytes:
        return codecs.encode_sparse_binary(obj)


class _SparseTextDumper(_SparseBinaryDumper):
    format = Format.TEXT

    def dump(self, obj: SparseVector) -> bytes:
        return codecs.encode_sparse_text(obj).encode("ascii")


class _BitBinaryDumper(Dumper):
    format = Format.BINARY
    oid = BIT_OID

    def dump(self, obj: BitParam) -> bytes:
        return codecs.encode_bits_binary(obj.bits)


class _BitTextDumper(_BitBinaryDumper):
    format = Format.TEXT

    def dump(self, obj: BitParam) -> bytes:
        return codecs.encode_bits_text(obj.bits).encode("ascii")


def _dense_loaders(sql_type: str) -> tuple[type[Loader], type[Loader]]:
    class TextLoader(Loader):
        def load(self, data: Any) -> np.ndarray:
            return codecs.decode_dense_text(bytes(data).decode("ascii"), sql_type)

    wire = WIRE_DTYPES[sql_type]
    dtype = DENSE_DTYPES[sql_type]
    frombuffer = np.frombuffer
    header = DENSE_HEADER.size

    class BinaryLoader(Loader):
        """One value: ``codecs.decode_dense_binary`` with its lookups done once."""

        format = Format.BINARY

        def load(self, data: Any) -> np.ndarray:
            return frombuffer(data, wire, offset=header).astype(dtype)

    return TextLoader, BinaryLoader


_VectorTextLoader, _VectorBinaryLoader = _dense_loaders("vector")
_HalfvecTextLoader, _HalfvecBinaryLoader = _dense_loaders("halfvec")


class _SparseTextLoader(Loader):
    def load(self, data: Any) -> SparseVector:
        return codecs.decode_sparse_text(bytes(data).decode("ascii"))


class _SparseBinaryLoader(Loader):
    format = Format.BINARY

    def load(self, data: Any) -> SparseVector:
        return codecs.decode_sparse_binary(data)


class _BitBinaryLoader(Loader):
    format = Format.BINARY

    def load(self, data: Any) -> str:
        return codecs.decode_bits_binary(data)


_LOADERS: dict[str, tuple[type[Loader], type[Loader]]] = {
    "vector": (_VectorTextLoader, _VectorBinaryLoader),
    "halfvec": (_HalfvecTextLoader, _HalfvecBinaryLoader),
    "sparsevec": (_SparseTextLoader, _SparseBinaryLoader),
}


def _with_oid(base: type[Dumper], oid: int) -> type[Dumper]:
    return type(base.__name__, (base,), {"oid": oid})


def register_on_adapters(
    adapters: AdaptersMap, oids: dict[str, int], array_oids: dict[str, int] | None = None
) -> None:
    """Register dumpers and loaders on ``adapters`` given ``{typname: oid}``, and psycopg's
    array adapters for the types in ``array_oids`` (``{typname: oid of its array type}``,
    see :func:`fetch_array_oids`).

    These are the SQLAlchemy connections' adapters: a bare ``np.ndarray`` is what the
    ``Vector``/``HalfVec`` types bind once they have checked it (float32 for vector,
    float16 for halfvec); :func:`register_adapters` puts plain psycopg's validating
    ndarray dumper over it.

    Types missing from ``oids`` (extension not created yet) still get dumpers, with the
    "unknown" oid: the server takes their type from the explicit bind cast. Their
    results stay text and are decoded by the SQLAlchemy types; an :class:`ArrayParam` of
    them is sent as a text array.
    """
    for param, name in ((DenseParam, "vector"), (HalfVecParam, "halfvec")):
        for dense in (_DenseTextDumper, _DenseBinaryDumper):
            adapters.register_dumper(param, _with_oid(dense, oids.get(name, 0)))
    type_oids = {name: oids.get(name, 0) for name in ("vector", "halfvec")}
    for array in (_ArrayTextDumper, _ArrayBinaryDumper):
        adapters.register_dumper(
            np.ndarray, type(array.__name__, (array,), {"type_oids": type_oids})
        )
    for sparse in (_SparseTextDumper, _SparseBinaryDumper):
        adapters.register_dumper(SparseVector, _with_oid(sparse, oids.get("sparsevec", 0)))
    adapters.register_dumper(BitParam, _BitTextDumper)
    adapters.register_dumper(BitParam, _BitBinaryDumper)
    for name, (text_loader, binary_loader) in _LOADERS.items():
        if name in oids:
            adapters.register_loader(oids[name], text_loader)
            adapters.register_loader(oids[name], binary_loader)
    adapters.register_loader(BIT_OID, _BitBinaryLoader)
    for name, array_oid in (array_oids or {}).items():
        if name in oids and array_oid:
            # psycopg's array loaders (text and binary) and list dumpers for the type,
            # whose elements go through the loaders and dumpers above
            TypeInfo(name, oids[name], array_oid).register(adapters)
    adapters.register_dumper(ArrayParam, _ArrayParamBinaryDumper)


class _NdarrayBinaryDumper(Dumper):
    """A bare ``np.ndarray`` parameter of plain psycopg, sent as a validated ``vector``."""

    format = Format.BINARY
    oid = 0

    def dump(self, obj: np.ndarray) -> bytes:
        return codecs.encode_dense_binary(codecs.check_dense(obj, "vector"), "vector")


class _NdarrayTextDumper(_NdarrayBinaryDumper):
    format = Format.TEXT

    def dump(self, obj: np.ndarray) -> bytes:
        return codecs.encode_dense_text(codecs.check_dense(obj, "vector")).encode("ascii")


def _register_plain(
    adapters: AdaptersMap, oids: dict[str, int], array_oids: dict[str, int]
) -> None:
    register_on_adapters(adapters, oids, array_oids)
    for dumper in (_NdarrayTextDumper, _NdarrayBinaryDumper):
        adapters.register_dumper(np.ndarray, _with_oid(dumper, oids.get("vector", 0)))


def register_adapters(conn: Any) -> dict[str, int]:
    """Register vecalchemy's adapters on a sync ``psycopg.Connection`` (plain psycopg).

    Looks pgvector's types up in whatever schema the extension lives in; returns
    ``{typname: oid}`` found (empty when the extension is not created). Leaves the
    connection's transaction state as it found it.

    Afterwards a bare 1-D ``np.ndarray`` parameter is sent as a ``vector`` (validated
    like :class:`~vecalchemy.Vector`: :class:`~vecalchemy.exc.InvalidVectorError` before
    anything is sent); wrap values in :class:`HalfVecParam`, :class:`BitParam` or pass a
    :class:`~vecalchemy.values.SparseVector` for the other types. Results of
    ``vector``/``halfvec``/``sparsevec`` load as float32/float16 arrays and
    ``SparseVector``; ``bit`` as ``str``; their arrays as lists of those (``None`` for a
    NULL element). A list of vectors is sent as a text array, an :class:`ArrayParam` of
    checked values as a binary one.
    """
    rows = _fetch_types(conn)
    oids = _type_oids(rows)
    _register_plain(conn.adapters, oids, _array_oids(rows))
    return oids


async def register_adapters_async(conn: Any) -> dict[str, int]:
    """:func:`register_adapters` for a ``psycopg.AsyncConnection``."""
    idle = conn.info.transaction_status == 0
    async with conn.cursor() as cur:
        await cur.execute(VECTOR_TYPES_QUERY)
        rows = await cur.fetchall()
    if idle and not conn.autocommit:
        await conn.rollback()
    oids = _type_oids(rows)
    _register_plain(conn.adapters, oids, _array_oids(rows))
    return oids


def driver_connection(conn: Any) -> Any:
    """psycopg's own connection behind ``conn``: ``conn`` itself, or the one SQLAlchemy's
    asyncio adapter (an :class:`~sqlalchemy.engine.AdaptedConnection`) wraps."""
    if isinstance(conn, AdaptedConnection):
        return conn.driver_connection
    return conn


def fetch_type_oids(conn: Any) -> dict[str, int]:
    """``{typname: oid}`` of pgvector's types, through a (sync or SQLAlchemy-adapted) DBAPI
    connection; rolls back the transaction it opened so the connection stays idle."""
    return _type_oids(_fetch_types(conn))


def fetch_array_oids(conn: Any) -> tuple[dict[str, int], dict[str, int]]:
    """``({typname: oid}, {typname: oid of its array type})`` of pgvector's types (one
    query, as :func:`fetch_type_oids`): what :func:`register_on_adapters` takes."""
    rows = _fetch_types(conn)
    return _type_oids(rows), _array_oids(rows)


def _fetch_types(conn: Any) -> list[Any]:
    raw = driver_connection(conn)
    idle = raw.info.transaction_status == 0
    cur = conn.cursor()
    try:
        cur.execute(VECTOR_TYPES_QUERY)
        rows = list(cur.fetchall())
    finally:
        cur.close()
    if idle and not raw.autocommit:
        conn.rollback()
    return rows


def _type_oids(rows: list[Any]) -> dict[str, int]:
    return {str(row[0]): int(row[1]) for row in rows}


def _array_oids(rows: list[Any]) -> dict[str, int]:
    return {str(row[0]): int(row[2]) for row in rows if row[2]}
