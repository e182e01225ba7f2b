"""Encode and decode pgvector values in pgvector's text and binary formats.

Everything is vectorised with NumPy: one conversion per value, never a Python loop per
element. Wire formats (pgvector src/vector.c, halfvec.c, sparsevec.c; PostgreSQL
varbit.c for ``bit``) are big-endian (their layouts and dtypes: :mod:`vecalchemy.facts`):

- vector:    ``uint16 dim, uint16 unused=0, dim x float4``
- halfvec:   ``uint16 dim, uint16 unused=0, dim x binary16``
- sparsevec: ``int32 dim, int32 nnz, int32 unused=0, nnz x int32 index (0-based),
  nnz x float4``
- bit:       ``int32 bit length, ceil(n/8) bytes, most significant bit first``

The ``check_*`` functions validate user input the way pgvector's input functions do,
raising :class:`~vecalchemy.exc.InvalidVectorError` with pgvector's wording. Dense
values have one validator, whatever the path: :func:`check_dense` for a bound value
(column binds, :class:`~vecalchemy.PreparedQuery`, the plain-psycopg parameters) and
its matrix form :func:`check_dense_matrix` for ``copy_rows``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from .exc import InvalidVectorError
from .facts import (
    BIT_HEADER,
    DENSE_DTYPES,
    DENSE_HEADER,
    HALFVEC_MAX,
    MAX_DIM,
    SPARSE_HEADER,
    SPARSE_INDEX_WIRE,
    SPARSE_VALUE_WIRE,
    WIRE_DTYPES,
)
from .values import SparseVector, is_real, number_text, objects_to_float64

__all__ = [
    "check_dense",
    "check_dense_matrix",
    "dense_checker",
    "check_sparse",
    "check_bits",
    "encode_dense_binary",
    "decode_dense_binary",
    "encode_dense_text",
    "decode_dense_text",
    "encode_sparse_binary",
    "decode_sparse_binary",
    "encode_sparse_text",
    "decode_sparse_text",
    "encode_bits_binary",
    "decode_bits_binary",
    "encode_bits_text",
    "bits_to_bitstring",
]


def _type_label(sql_type: str, dim: int | None) -> str:
    return f"{sql_type}({dim})" if dim is not None else sql_type


def check_dense(value: Any, sql_type: str = "vector", dim: int | None = None) -> np.ndarray:
    """Validate ``value`` for a ``vector``/``halfvec`` and return it as a NumPy array.

    ``value``: list/tuple of numbers, a 1-D NumPy array of any real dtype, a
    pgvector-python ``Vector``/``HalfVector``, or pgvector text ``"[1,2,3]"``.
    Returns ``(n,)`` float32 for ``vector`` or float16 for ``halfvec``.

    Values are rounded as pgvector's input functions round them: to float4 first, then
    (halfvec) to the nearest binary16, so 65519 becomes 65504 and 65520 is refused.

    Raises :class:`InvalidVectorError` for: a non-numeric or not 1-D value; no
    elements; more than 16 000 (pgvector VECTOR_MAX_DIM / HALFVEC_MAX_DIM); ``n != dim``
    (``expected 3 dimensions, not 2``); NaN; ±inf or a float64 beyond float32; for
    halfvec a magnitude that rounds beyond 65504 (``"65520" is out of range for type
    halfvec``). :func:`check_dense_matrix` applies the same rules to a whole matrix.
    """
    label = _type_label(sql_type, dim)
    arr: np.ndarray
    if isinstance(value, np.ndarray):
        arr = value
    elif isinstance(value, (list, tuple)):
        try:
            arr = np.asarray(value)
        except ValueError as e:  # ragged nesting
            raise InvalidVectorError(
                f"{label}: expected a flat sequence of numbers ({e})"
            ) from None
    elif isinstance(value, str):
        arr = _parse_user_text(value, label)
    elif hasattr(value, "to_numpy") and type(value).__module__.startswith("pgvector"):
        arr = np.asarray(value.to_numpy())
    else:
        raise InvalidVectorError(
            f"{label}: expected a list, tuple or 1-D NumPy array of numbers, "
            f"got {type(value).__name__}"
        )
    return _check_array(arr, sql_type, dim, _Refusal(label))


def check_dense_matrix(
    values: Any, sql_type: str = "vector", dim: int | None = None, *, name: str | None = None
) -> np.ndarray:
    """Validate a whole ``(n, dim)`` matrix for a ``vector``/``halfvec`` column at once.

    ``values``: a 2-D NumPy array of any real dtype, or a sequence of equal-length
    sequences of numbers. Returns ``(n, dim)`` float32 (``vector``) or float16
    (``halfvec``): ``values`` itself when it already has that dtype, else one rounded
    copy. Every row is held to :func:`check_dense`'s rules, rounding and messages, in
    vectorised NumPy (no Python loop per row); a bad element is placed as ``(row 3,
    element 5)`` where :func:`check_dense` says ``(element 5)``. ``name`` (a column
    name) prefixes every message as ``name (vector(8)): ``, in place of the type label
    :func:`check_dense` puts before some messages.

    Raises :class:`InvalidVectorError` for what :func:`check_dense` refuses, and for a
    value that is not 2-D (``expected a 2-D (n, dim) matrix, got shape (8,)``).
    """
    label = _type_label(sql_type, dim)
    refusal = _Refusal(label, f"{name} ({label})" if name is not None else None)
    try:
        arr = np.asarray(values)
    except ValueError as e:  # ragged rows
        raise refusal(f"expected a 2-D (n, dim) matrix of numbers ({e})") from None
    return _check_array(arr, sql_type, dim, refusal, rows=True)


class _Refusal:
    """Builds the error of one check: ``vector(3): message`` for messages about the
    value's form, the bare message for those worded as pgvector words them (NaN, range,
    dimension count), and ``prefix: message`` for every one when the caller names the
    column (``copy_rows``)."""

    def __init__(self, label: str, prefix: str | None = None) -> None:
        self.label = label
        self.prefix = prefix

    def __call__(self, message: str, *, labelled: bool = True) -> InvalidVectorError:
        if self.prefix is not None:
            return InvalidVectorError(f"{self.prefix}: {message}")
        return InvalidVectorError(f"{self.label}: {message}" if labelled else message)


def _check_array(
    arr: np.ndarray, sql_type: str, dim: int | None, refuse: _Refusal, *, rows: bool = False
) -> np.ndarray:
    """The checks and the rounding shared by :func:`check_dense` (one ``(n,)`` value)
    and :func:`check_dense_matrix` (``rows=True``: ``(rows, n)``)."""
    ndim = 2 if rows else 1
    if arr.dtype.kind == "O" and arr.ndim == ndim and all(is_real(x) for x in arr.flat):
        # e.g. Decimal values from a NUMERIC column, Python ints beyond int64
        converted, bad = objects_to_float64(arr)
        if bad is not None:
            i, kind = bad
            at = np.unravel_index(i, arr.shape)
            where = f"row {at[0]}, element {at[1]}" if rows else f"element {at[0]}"
            if kind == "nan":
                raise refuse(f"NaN not allowed in {sql_type} ({where})", labelled=False)
            raise refuse(
                f'"{number_text(arr.flat[i])}" is out of range for type {sql_type} ({where})',
                labelled=False,
            )
        arr = converted
    if arr.dtype.kind not in "iuf":
        raise refuse(f"expected numbers, got non-numeric elements (dtype {arr.dtype})")
    if arr.ndim != ndim:
        shape = "a 2-D (n, dim) matrix" if rows else "a 1-D value"
        raise refuse(f"expected {shape}, got shape {arr.shape}")
    n = arr.shape[-1]
    if n == 0:
        raise refuse(f"{sql_type} must have at least 1 dimension", labelled=False)
    if n > MAX_DIM:
        raise refuse(
            f"{sql_type} cannot have more than {MAX_DIM} dimensions (got {n})", labelled=False
        )
    if dim is not None and n != dim:
        raise refuse(f"expected {dim} dimensions, not {n}")
    dtype = DENSE_DTYPES[sql_type]
    if arr.dtype == dtype:
        out = arr
    else:
        with np.errstate(over="ignore", invalid="ignore"):
            # like pgvector's input functions: parse as float4 (strtof), then round to
            # binary16 for halfvec (src/halfvec.c), so both paths round the same way
            out = arr.astype(np.float32, copy=False).astype(dtype, copy=False)
    if rows:
        # one float64 sum finds any NaN/inf without an (n, dim) temporary (inf - inf is
        # NaN, which NumPy would warn about)
        with np.errstate(invalid="ignore"):
            finite = np.isfinite(out.sum(dtype=np.float64))
    else:
        finite = np.isfinite(out).all()
    if not finite:
        _raise_not_finite(arr, out, sql_type, refuse)
    return out


def dense_checker(
    sql_type: str = "vector",
    dim: int | None = None,
    then: Callable[[np.ndarray], Any] | None = None,
) -> Callable[[Any], Any]:
    """:func:`check_dense` for one column type, with a short path for its common value;
    ``then`` (optional) is applied to the checked array (one call less a value).

    For ``vector(dim)``, a float32 ``np.ndarray`` of shape ``(dim,)`` whose elements are
    all finite is accepted as it is (one ``np.isfinite`` pass, no conversion); every other
    value, and any value the short path does not accept, goes through
    :func:`check_dense`, which raises the precise :class:`InvalidVectorError`.
    """
    finish: Callable[[np.ndarray], Any] = then if then is not None else _same
    if sql_type != "vector" or dim is None:
        return lambda value: finish(check_dense(value, sql_type, dim))
    shape = (dim,)
    float32 = np.dtype(np.float32)
    ndarray = np.ndarray
    isfinite = np.isfinite

    def check(value: Any) -> Any:
        # (not a dot product with zeros, cheaper, because inf * 0 raises NumPy's
        # "invalid value" RuntimeWarning, an error under -W error)
        if (
            type(value) is ndarray
            and value.dtype is float32
            and value.shape == shape
            and isfinite(value).all()
        ):
            return finish(value)
        return finish(check_dense(value, sql_type, dim))

    return check


def _same(arr: np.ndarray) -> np.ndarray:
    return arr


def _raise_not_finite(arr: np.ndarray, out: np.ndarray, sql_type: str, refuse: _Refusal) -> None:
    at = tuple(int(i) for i in np.argwhere(~np.isfinite(out))[0])  # the first, row-major
    original = arr[at]
    where = f"row {at[0]}, element {at[1]}" if len(at) == 2 else f"element {at[0]}"
    if np.isnan(original):
        raise refuse(f"NaN not allowed in {sql_type} ({where})", labelled=False)
    if np.isinf(original):
        raise refuse(f"infinite value not allowed in {sql_type} ({where})", labelled=False)
    limit = f" (largest magnitude {HALFVEC_MAX:g})" if sql_type == "halfvec" else ""
    raise refuse(
        f'"{number_text(original)}" is out of range for type {sql_type} ({where}){limit}',
        labelled=False,
    )


#: one element of pgvector's text form as C's strtof reads it (decimal forms, inf, nan)
_C_NUMBER = re.compile(
    r"\s*[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf(?:inity)?|nan)\s*",
    re.IGNORECASE | re.ASCII,
)


def _parse_user_text(text: str, label: str) -> np.ndarray:
    body = text.strip()
    if not (body.startswith("[") and body.endswith("]")):
        raise InvalidVectorError(
            f'{label}: invalid input syntax: "{text}" (Vector contents must start with "[")'
        )
    inner = body[1:-1].strip()
    if not inner:
        return np.zeros(0, dtype=np.float64)
    items = inner.split(",")
    # what strtof reads (pgvector src/vector.c): ASCII digits, no "_" separators
    if not all(map(_C_NUMBER.fullmatch, items)):
        raise InvalidVectorError(f'{label}: invalid input syntax: "{text}"')
    return np.array(items, dtype=np.float64)


def check_sparse(value: Any, dim: int | None = None) -> SparseVector:
    """Validate ``value`` for a ``sparsevec(dim)`` and return a :class:`SparseVector`.

    Accepts what :class:`SparseVector` accepts; a ``{index: value}`` mapping takes
    ``dim`` from the column. Raises :class:`InvalidVectorError` as SparseVector does,
    and ``expected 5 dimensions, not 4`` when ``dim`` differs.
    """
    sv = value if isinstance(value, SparseVector) else SparseVector(value, dim)
    if dim is not None and sv.dim != dim:
        raise InvalidVectorError(f"sparsevec({dim}): expected {dim} dimensions, not {sv.dim}")
    return sv


def check_bits(value: Any, length: int | None = None) -> np.ndarray:
    """Validate ``value`` for ``bit(length)`` and return a ``(n,)`` bool array.

    ``value``: a string of ``0``/``1``; ``bytes`` (all ``8*len`` bits, or the first
    ``length`` bits when the type has a length, the pad bits being zero); a sequence of
    bools or a bool/0-1 integer NumPy array; a pgvector-python ``Bit``.

    Raises :class:`InvalidVectorError` for another character (``"2" is not a valid
    binary digit``, with its position), integers other than 0/1, bytes of the wrong size
    or with set pad bits, a length differing from ``length`` (PostgreSQL: ``bit string
    length 3 does not match type bit(4)``), or an empty value (``at least 1 bit``).
    """
    label = _type_label("bit", length)
    bits: np.ndarray
    if isinstance(value, str):
        # one code point per element, so a position counts characters, not bytes
        raw = np.frombuffer(value.encode("utf-32-le"), dtype=np.uint32)
        bad = (raw != 48) & (raw != 49)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InvalidVectorError(
                f'{label}: "{value[i]}" is not a valid binary digit (position {i}); '
                "expected only 0 and 1"
            )
        bits = raw == 49
    elif isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        n = 8 * len(data) if length is None else length
        if (n + 7) // 8 != len(data):
            raise InvalidVectorError(
                f"{label}: {len(data)} bytes cannot hold exactly {n} bits "
                f"(expected {(n + 7) // 8} bytes)"
            )
        bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
        if bits[n:].any():
            raise InvalidVectorError(f"{label}: the pad bits after bit {n} must be zero")
        bits = bits[:n].astype(bool)
    elif hasattr(value, "to_numpy") and type(value).__module__.startswith("pgvector"):
        bits = np.asarray(value.to_numpy()).astype(bool)
    elif _is_bitstring(value):  # asyncpg's BitString: its bytes, most significant bit first
        bits = np.unpackbits(np.frombuffer(value.bytes, dtype=np.uint8), count=len(value))
        bits = bits.astype(bool)
    elif isinstance(value, (list, tuple, np.ndarray)):
        try:
            arr = np.asarray(value)
        except ValueError as e:  # ragged nesting
            raise InvalidVectorError(f"{label}: expected a flat sequence of bools ({e})") from None
        if arr.ndim != 1:
            raise InvalidVectorError(f"{label}: expected a 1-D value, got shape {arr.shape}")
        if arr.size == 0:  # np.asarray([]) is float64: say "empty", not "wrong dtype"
            bits = arr.astype(bool)
        elif arr.dtype.kind == "b":
            bits = arr
        elif arr.dtype.kind in "iu":
            bad = (arr != 0) & (arr != 1)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise InvalidVectorError(
                    f"{label}: expected only 0 and 1, got {arr[i]} (element {i})"
                )
            bits = arr.astype(bool)
        else:
            raise InvalidVectorError(
                f"{label}: expected bools or 0/1 integers, got dtype {arr.dtype}"
            )
    else:
        raise InvalidVectorError(
            f"{label}: expected a string of 0/1, bytes, an asyncpg BitString or a sequence "
            f"of bools, got {type(value).__name__}"
        )
    if bits.size == 0:
        raise InvalidVectorError(f"{label}: a bit string must have at least 1 bit, got 0")
    if length is not None and bits.size != length:
        raise InvalidVectorError(
            f"bit string length {bits.size} does not match type bit({length})"
        )
    return bits


# --- dense: vector / halfvec ---------------------------------------------------------


def encode_dense_binary(arr: np.ndarray, sql_type: str = "vector") -> bytes:
    """Binary ``vector``/``halfvec`` payload for a validated 1-D array."""
    payload: bytes = arr.astype(WIRE_DTYPES[sql_type], copy=False).tobytes()
    return DENSE_HEADER.pack(arr.shape[0], 0) + payload


def decode_dense_binary(
    data: bytes | bytearray | memoryview, sql_type: str = "vector"
) -> np.ndarray:
    """Decode a binary payload into a ``(dim,)`` float32 (vector) / float16 (halfvec) array.

    ``data`` is one value as the server sends it (psycopg hands over exactly its bytes),
    so the elements are everything after the 4-byte header.
    """
    wire: np.ndarray = np.frombuffer(data, dtype=WIRE_DTYPES[sql_type], offset=DENSE_HEADER.size)
    return wire.astype(DENSE_DTYPES[sql_type])


#: significant digits that round-trip every value of the dtype through text (float32: 9,
#: IEEE binary16: 5); pgvector parses text with strtof, then rounds to binary16 for halfvec
_ROUND_TRIP_DIGITS = {np.dtype(np.float32): 9, np.dtype(np.float16): 5}


@functools.lru_cache(maxsize=64)
def _text_format(n: int, digits: int) -> str:
    # one %-format for the whole vector: ~2.5x faster than NumPy's astype(str) (Dragon4)
    return ",".join([f"%.{digits}g"] * n)


def encode_dense_text(arr: np.ndarray) -> str:
    """pgvector text ``[1,2.5,...]`` of a checked float32 / float16 array, each element with
    the significant digits that round-trip its dtype (9 / 5)."""
    digits = _ROUND_TRIP_DIGITS.get(arr.dtype, 17)
    return "[" + _text_format(arr.shape[0], digits) % tuple(arr.tolist()) + "]"


def decode_dense_text(text: str | bytes, sql_type: str = "vector") -> np.ndarray:
    """Parse pgvector's text output ``[1,2.5]`` with NumPy's C parser."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        text = bytes(text).decode("ascii")
    return np.fromstring(text[1:-1], dtype=np.float32, sep=",").astype(
        DENSE_DTYPES[sql_type], copy=False
    )


# --- sparsevec -----------------------------------------------------------------------


def encode_sparse_binary(sv: SparseVector) -> bytes:
    """Binary ``sparsevec`` payload (0-based indices)."""
    return (
        SPARSE_HEADER.pack(sv.dim, sv.nnz, 0)
        + sv.indices.astype(SPARSE_INDEX_WIRE, copy=False).tobytes()
        + sv.values.astype(SPARSE_VALUE_WIRE, copy=False).tobytes()
    )


def decode_sparse_binary(data: bytes | bytearray | memoryview) -> SparseVector:
    """Decode a binary ``sparsevec`` payload."""
    dim, nnz, _ = SPARSE_HEADER.unpack_from(data, 0)
    idx = np.frombuffer(
        data, dtype=SPARSE_INDEX_WIRE, count=nnz, offset=SPARSE_HEADER.size
    ).astype(np.int32)
    vals = np.frombuffer(
        data, dtype=SPARSE_VALUE_WIRE, count=nnz, offset=SPARSE_HEADER.size + 4 * nnz
    ).astype(np.float32)
    return SparseVector._trusted(idx, vals, dim)


def encode_sparse_text(sv: SparseVector) -> str:
    """pgvector text ``{1:1.5,3:2}/5`` (1-based indices)."""
    if sv.nnz == 0:
        return f"{{}}/{sv.dim}"
    pairs = ",".join(
        map("%d:%.9g".__mod__, zip((sv.indices + 1).tolist(), sv.values.tolist(), strict=True))
    )
    return "{" + pairs + f"}}/{sv.dim}"


def decode_sparse_text(text: str | bytes) -> SparseVector:
    """Parse pgvector's canonical text output ``{1:1.5,3:2}/5``."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        text = bytes(text).decode("ascii")
    body, _, dim = text.rpartition("/")
    inner = body[1:-1]
    if not inner:
        return SparseVector._trusted(np.zeros(0, np.int32), np.zeros(0, np.float32), int(dim))
    flat = np.fromstring(inner.replace(":", ","), dtype=np.float64, sep=",")
    idx = flat[0::2].astype(np.int32) - 1
    return SparseVector._trusted(idx, flat[1::2].astype(np.float32), int(dim))


# --- bit -----------------------------------------------------------------------------


def encode_bits_binary(bits: np.ndarray) -> bytes:
    """PostgreSQL ``bit_send`` payload for a ``(n,)`` bool array."""
    return BIT_HEADER.pack(bits.shape[0]) + np.packbits(bits).tobytes()


def decode_bits_binary(data: bytes | bytearray | memoryview) -> str:
    """Decode ``bit_send`` output to a string of ``0``/``1``."""
    (n,) = BIT_HEADER.unpack_from(data, 0)
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8, offset=BIT_HEADER.size), count=n)
    return (bits + 48).tobytes().decode("ascii")


def _is_bitstring(value: Any) -> bool:
    return type(value).__name__ == "BitString" and type(value).__module__.startswith("asyncpg")


def bits_to_bitstring(bits: np.ndarray) -> Any:
    """An ``asyncpg.BitString`` of a ``(n,)`` bool array (what asyncpg's ``bit`` codec takes)."""
    from asyncpg import BitString

    return BitString.frombytes(np.packbits(bits).tobytes(), bits.shape[0])


def encode_bits_text(bits: np.ndarray) -> str:
    """``0101`` text for a ``(n,)`` bool array."""
    return (bits.astype(np.uint8) + 48).tobytes().decode("ascii")
