"""Encode and decode pgvector values in pgvector's text and binary formats.

Everything is vectorised with NumPy: one conversion per value, never a Python loop per
element. Wire formats (pgvector src/vector.c, halfvec.c, sparsevec.c; PostgreSQL
varbit.c for ``bit``) are big-endian:

- vector:    ``uint16 dim, uint16 unused=0, dim x float4``
- halfvec:   ``uint16 dim, uint16 unused=0, dim x binary16``
- sparsevec: ``int32 dim, int32 nnz, int32 unused=0, nnz x int32 index (0-based),
  nnz x float4``
- bit:       ``int32 bit length, ceil(n/8) bytes, most significant bit first``

The ``check_*`` functions validate user input the way pgvector's input functions do,
raising :class:`~vecalchemy.exc.InvalidVectorError` with pgvector's wording.
"""

from __future__ import annotations

import decimal
import numbers
import struct
from collections.abc import Callable
from typing import Any

import numpy as np

from .exc import InvalidVectorError
from .metrics import HALFVEC_MAX, MAX_DIM
from .values import SparseVector

__all__ = [
    "check_dense",
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
]

#: SQL type name -> NumPy dtype of a dense value as returned to the user.
DENSE_DTYPES: dict[str, type[np.floating[Any]]] = {"vector": np.float32, "halfvec": np.float16}
_WIRE: dict[str, np.dtype[Any]] = {"vector": np.dtype(">f4"), "halfvec": np.dtype(">f2")}
_HEADER = struct.Struct(">HH")
_SPARSE_HEADER = struct.Struct(">iii")
_BIT_HEADER = struct.Struct(">i")


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
    halfvec``).
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
    if arr.dtype.kind == "O" and arr.ndim == 1 and all(_is_real(x) for x in arr):
        arr = arr.astype(np.float64)  # e.g. Decimal values from a NUMERIC column
    if arr.dtype.kind not in "iuf":
        raise InvalidVectorError(
            f"{label}: expected numbers, got non-numeric elements (dtype {arr.dtype})"
        )
    if arr.ndim != 1:
        raise InvalidVectorError(f"{label}: expected a 1-D value, got shape {arr.shape}")
    n = arr.shape[0]
    if n == 0:
        raise InvalidVectorError(f"{sql_type} must have at least 1 dimension")
    if n > MAX_DIM:
        raise InvalidVectorError(
            f"{sql_type} cannot have more than {MAX_DIM} dimensions (got {n})"
        )
    if dim is not None and n != dim:
        raise InvalidVectorError(f"{label}: expected {dim} dimensions, not {n}")
    dtype = DENSE_DTYPES[sql_type]
    if arr.dtype == dtype:
        out = arr
    else:
        with np.errstate(over="ignore", invalid="ignore"):
            # like pgvector's input functions: parse as float4 (strtof), then round to
            # binary16 for halfvec (src/halfvec.c), so both paths round the same way
            out = arr.astype(np.float32).astype(dtype, copy=False)
    if out.dtype.kind == "f" and not np.isfinite(out).all():
        _raise_not_finite(arr, out, sql_type)
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


def _is_real(x: object) -> bool:
    return isinstance(x, (numbers.Real, decimal.Decimal)) and not isinstance(x, bool)


def _raise_not_finite(arr: np.ndarray, out: np.ndarray, sql_type: str) -> None:
    i = int(np.flatnonzero(~np.isfinite(out))[0])
    original = arr[i]
    if np.isnan(original):
        raise InvalidVectorError(f"NaN not allowed in {sql_type} (element {i})")
    if np.isinf(original):
        raise InvalidVectorError(f"infinite value not allowed in {sql_type} (element {i})")
    limit = f" (largest magnitude {HALFVEC_MAX:g})" if sql_type == "halfvec" else ""
    raise InvalidVectorError(
        f'"{_number_text(original)}" is out of range for type {sql_type} (element {i}){limit}'
    )


def _number_text(x: Any) -> str:
    """``65520`` rather than ``65520.0``, ``4e+38`` rather than ``4.0e+38``."""
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    text = repr(float(x))
    return text[:-2] if text.endswith(".0") else text


def _parse_user_text(text: str, label: str) -> np.ndarray:
    body = text.strip()
    if not (body.startswith("[") and body.endswith("]")):
        raise InvalidVectorError(
            f'{label}: invalid input syntax: "{text}" (Vector contents must start with "[")'
        )
    inner = body[1:-1].strip()
    if not inner:
        return np.zeros(0, dtype=np.float64)
    try:
        return np.array(inner.split(","), dtype=np.float64)
    except ValueError:
        raise InvalidVectorError(f'{label}: invalid input syntax: "{text}"') from None


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
            f"{label}: expected a string of 0/1, bytes, or a sequence of bools, "
            f"got {type(value).__name__}"
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
    payload: bytes = arr.astype(_WIRE[sql_type], copy=False).tobytes()
    return _HEADER.pack(arr.shape[0], 0) + payload


def decode_dense_binary(
    data: bytes | bytearray | memoryview, sql_type: str = "vector"
) -> np.ndarray:
    """Decode a binary payload into a ``(dim,)`` float32 (vector) / float16 (halfvec) array.

    ``data`` is one value as the server sends it (psycopg hands over exactly its bytes),
    so the elements are everything after the 4-byte header.
    """
    wire: np.ndarray = np.frombuffer(data, dtype=_WIRE[sql_type], offset=4)
    return wire.astype(DENSE_DTYPES[sql_type])


def encode_dense_text(arr: np.ndarray) -> str:
    """pgvector text ``[1,2.5,...]`` using NumPy's shortest round-trip formatting."""
    return "[" + ",".join(arr.astype(str)) + "]"


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
        _SPARSE_HEADER.pack(sv.dim, sv.nnz, 0)
        + sv.indices.astype(">i4", copy=False).tobytes()
        + sv.values.astype(">f4", copy=False).tobytes()
    )


def decode_sparse_binary(data: bytes | bytearray | memoryview) -> SparseVector:
    """Decode a binary ``sparsevec`` payload."""
    dim, nnz, _ = _SPARSE_HEADER.unpack_from(data, 0)
    idx = np.frombuffer(data, dtype=">i4", count=nnz, offset=12).astype(np.int32)
    vals = np.frombuffer(data, dtype=">f4", count=nnz, offset=12 + 4 * nnz).astype(np.float32)
    return SparseVector._trusted(idx, vals, dim)


def encode_sparse_text(sv: SparseVector) -> str:
    """pgvector text ``{1:1.5,3:2}/5`` (1-based indices)."""
    if sv.nnz == 0:
        return f"{{}}/{sv.dim}"
    pairs = np.char.add(np.char.add((sv.indices + 1).astype(str), ":"), sv.values.astype(str))
    return "{" + ",".join(pairs) + f"}}/{sv.dim}"


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
    return _BIT_HEADER.pack(bits.shape[0]) + np.packbits(bits).tobytes()


def decode_bits_binary(data: bytes | bytearray | memoryview) -> str:
    """Decode ``bit_send`` output to a string of ``0``/``1``."""
    (n,) = _BIT_HEADER.unpack_from(data, 0)
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8, offset=4), count=n)
    return (bits + 48).tobytes().decode("ascii")


def encode_bits_text(bits: np.ndarray) -> str:
    """``0101`` text for a ``(n,)`` bool array."""
    return (bits.astype(np.uint8) + 48).tobytes().decode("ascii")
