"""asyncpg binary codecs for ``vector``, ``halfvec`` and ``sparsevec``.

Registered through asyncpg's documented ``Connection.set_type_codec(..., format="binary")``
on each new connection by vecalchemy's asyncpg dialect (``postgresql+asyncpg://`` with
``plugins=["vecalchemy"]``, or ``postgresql+vecalchemy_asyncpg://``), in whatever schema
the extension lives in; on a plain asyncpg connection call :func:`register_asyncpg_codecs`.
``bit`` keeps asyncpg's own binary codec (``asyncpg.BitString``).

Encoders take what vecalchemy's types bind (a validated ``np.ndarray`` or
:class:`~vecalchemy.values.SparseVector`) and, on a plain connection, anything the types
accept (lists, pgvector-python objects), validated by :mod:`vecalchemy.codecs` with the
same :class:`~vecalchemy.exc.InvalidVectorError` texts. Decoders return ``(dim,)`` float32
/ float16 arrays and :class:`~vecalchemy.values.SparseVector` — one ``np.frombuffer`` a
value. The last ``set_type_codec`` on a connection wins: calling pgvector-python's
``pgvector.asyncpg.register_vector`` after vecalchemy's makes its codec the one in use
(vecalchemy's types still bind and load through it, normalising its objects).

Arrays of these types (``_vector`` ...) use the same codecs for their elements: results
are lists of arrays. asyncpg's array encoder takes every sized iterable inside a list
parameter, a 1-D ``np.ndarray`` included, for a sub-array, so an element of an array
parameter is passed as an :class:`ArrayElement`, which the codecs unwrap.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import codecs
from .facts import DENSE_DTYPES
from .values import SparseVector

__all__ = ["register_asyncpg_codecs", "ArrayElement", "EXTENSION_TYPES_QUERY"]

#: pgvector's types and the schema of each, wherever the extension was created.
EXTENSION_TYPES_QUERY = """
SELECT t.typname, n.nspname
FROM pg_catalog.pg_type t
JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
JOIN pg_catalog.pg_depend d
  ON d.classid = 'pg_catalog.pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e'
JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid AND e.extname = 'vector'
WHERE t.typname IN ('vector', 'halfvec', 'sparsevec')
"""


class ArrayElement:
    """One element of an array parameter for vecalchemy's asyncpg codecs:
    ``[ArrayElement(v1), None, ArrayElement(v2)]`` binds a ``vector[]`` (``halfvec[]``,
    ``sparsevec[]``) whose elements are ``v1``, NULL, ``v2``.

    ``value`` is anything the element type's codec takes (validated there as a plain
    value is). asyncpg's array encoder passes an object that is not a sized iterable to
    the element codec whole, where it would iterate a ``np.ndarray`` as a sub-array of
    numbers. ``ARRAY(Vector(n))`` columns bind their elements as these on vecalchemy's
    asyncpg dialect.
    """

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"ArrayElement({self.value!r})"


def _element(value: Any) -> Any:
    return value.value if type(value) is ArrayElement else value


def _dense_encoder(sql_type: str) -> Any:
    dtype = np.dtype(DENSE_DTYPES[sql_type])

    def encode(value: Any) -> bytes:
        if not (type(value) is np.ndarray and value.dtype == dtype and value.ndim == 1):
            # a plain connection's value, or an array parameter's element
            value = codecs.check_dense(_element(value), sql_type)
        return codecs.encode_dense_binary(value, sql_type)

    return encode


def _dense_decoder(sql_type: str) -> Any:
    def decode(data: bytes) -> np.ndarray:
        return codecs.decode_dense_binary(data, sql_type)

    return decode


def _encode_sparse(value: Any) -> bytes:
    return codecs.encode_sparse_binary(
        value if isinstance(value, SparseVector) else codecs.check_sparse(_element(value))
    )


_CODECS: dict[str, tuple[Any, Any]] = {
    "vector": (_dense_encoder("vector"), _dense_decoder("vector")),
    "halfvec": (_dense_encoder("halfvec"), _dense_decoder("halfvec")),
    "sparsevec": (_encode_sparse, codecs.decode_sparse_binary),
}


async def register_asyncpg_codecs(connection: Any) -> list[str]:
    """Register vecalchemy's binary codecs on an asyncpg ``connection``.

    Finds pgvector's types in the schema the extension lives in; returns the type names
    registered (none when the extension is not installed in the database).
    """
    registered = []
    for name, schema in await connection.fetch(EXTENSION_TYPES_QUERY):
        encoder, decoder = _CODECS[name]
        await connection.set_type_codec(
            name, schema=schema, encoder=encoder, decoder=decoder, format="binary"
        )
        registered.append(str(name))
    return sorted(registered)
