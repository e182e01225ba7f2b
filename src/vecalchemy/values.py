"""Value classes: :class:`SparseVector`, what a ``SparseVec`` column returns."""

from __future__ import annotations

import decimal
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from .exc import InvalidVectorError
from .facts import SPARSEVEC_MAX_DIM, SPARSEVEC_MAX_NNZ


def is_real(x: object) -> bool:
    """A real number that is not a bool (``int``, ``float``, ``Decimal``, NumPy scalars)."""
    return isinstance(x, (numbers.Real, decimal.Decimal)) and not isinstance(x, bool)


__all__ = ["SparseVector"]


class SparseVector:
    """A sparse vector: ``dim`` dimensions, non-zero ``values`` at 0-based ``indices``.

    Build it from

    - a mapping ``{index: value}`` with ``dim`` (0-based indices, as in SciPy and
      pgvector-python; pgvector's text format ``{1:1.5}/5`` is 1-based, an encoding
      detail vecalchemy handles);
    - a dense 1-D sequence or NumPy array (``dim`` is its length);
    - a SciPy sparse matrix/array with one row, or a pgvector-python ``SparseVector``;
    - :meth:`from_arrays` with parallel index and value arrays.

    The stored form is canonical like pgvector's: indices ascending ``int32``, values
    ``float32``, zeros dropped.

    Raises :class:`~vecalchemy.exc.InvalidVectorError` (a ``ValueError``) with pgvector's
    own wording (src/sparsevec.c) for: dim < 1 or > 1 000 000 000, more than 16 000
    non-zeros, more elements than dimensions, an index out of ``[0, dim)``, duplicate
    indices, NaN or infinite values.
    """

    __slots__ = ("_dim", "_indices", "_values")
    _dim: int
    _indices: np.ndarray
    _values: np.ndarray

    def __init__(self, value: Any, dim: int | None = None) -> None:
        if isinstance(value, SparseVector):
            if dim is not None and dim != value.dim:
                raise InvalidVectorError(f"sparsevec: expected {dim} dimensions, not {value.dim}")
            self._dim, self._indices, self._values = value._dim, value._indices, value._values
            return
        if isinstance(value, Mapping):
            if dim is None:
                raise InvalidVectorError(
                    "sparsevec: a {index: value} mapping needs dim, e.g. SparseVector(d, 1000)"
                )
            keys = list(value.keys())
            idx = _int_array(keys)
            if idx.ndim != 1:  # e.g. tuple keys
                raise InvalidVectorError(f"sparsevec: indices must be integers, got {keys[0]!r}")
            vals = np.asarray(list(value.values()))
            self._set(idx, vals, dim, check_duplicates=False)
            return
        if hasattr(value, "tocoo"):  # scipy.sparse matrix or array
            shape = value.shape
            if len(shape) == 2 and shape[0] != 1:
                raise InvalidVectorError(
                    f"sparsevec: expected a scipy.sparse row of shape (1, n), got shape {shape}"
                )
            coo = value.tocoo()
            coo.sum_duplicates()
            idx = np.asarray(coo.col if len(shape) == 2 else coo.coords[0])
            n = int(shape[-1]) if dim is None else dim
            if dim is not None and dim != int(shape[-1]):
                raise InvalidVectorError(
                    f"sparsevec: expected {dim} dimensions, not {int(shape[-1])}"
                )
            self._set(idx, np.asarray(coo.data), n, check_duplicates=False)
            return
        if _is_pgvector_sparse(value):
            self._set(
                _int_array(value.indices()),
                np.asarray(value.values()),
                int(value.dimensions()),
                check_duplicates=True,
            )
            return
        if type(value).__module__.startswith("pgvector") and hasattr(value, "to_numpy"):
            value = value.to_numpy()  # pgvector-python's dense Vector / HalfVector
        if isinstance(value, (str, bytes)) or not isinstance(value, (Iterable, np.ndarray)):
            raise InvalidVectorError(
                "sparsevec: expected a {index: value} mapping with dim, a dense sequence, "
                f"a scipy.sparse row or a SparseVector, got {type(value).__name__}"
            )
        dense = np.asarray(value)
        if dense.dtype.kind not in "iuf":
            raise InvalidVectorError(
                f"sparsevec: expected numbers, got an array of dtype {dense.dtype}"
            )
        if dense.ndim != 1:
            raise InvalidVectorError(
                f"sparsevec: expected a 1-D sequence, got shape {dense.shape}"
            )
        if dim is not None and dim != dense.size:
            raise InvalidVectorError(f"sparsevec: expected {dim} dimensions, not {dense.size}")
        nz = np.flatnonzero(dense)
        self._set(nz, dense[nz], dense.size, check_duplicates=False)

    @classmethod
    def from_arrays(cls, indices: npt.ArrayLike, values: npt.ArrayLike, dim: int) -> SparseVector:
        """Build from parallel arrays of 0-based ``indices`` and ``values`` (any order)."""
        self = cls.__new__(cls)
        idx = _int_array(indices)
        vals = np.asarray(values)
        if idx.shape != vals.shape or idx.ndim != 1:
            raise InvalidVectorError(
                f"sparsevec: indices and values must be 1-D of one length, got shapes "
                f"{idx.shape} and {vals.shape}"
            )
        self._set(idx, vals, dim, check_duplicates=True)
        return self

    @classmethod
    def _trusted(cls, indices: np.ndarray, values: np.ndarray, dim: int) -> SparseVector:
        """Wrap arrays already validated (decoded from the server)."""
        self = cls.__new__(cls)
        self._dim, self._indices, self._values = dim, indices, values
        return self

    def _set(self, idx: np.ndarray, vals: np.ndarray, dim: int, *, check_duplicates: bool) -> None:
        vals_in = vals
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
            raise InvalidVectorError(f"sparsevec: dim must be an integer, got {dim!r}")
        dim = int(dim)
        if dim < 1:
            raise InvalidVectorError("sparsevec must have at least 1 dimension")
        if dim > SPARSEVEC_MAX_DIM:
            raise InvalidVectorError(
                f"sparsevec cannot have more than {SPARSEVEC_MAX_DIM} dimensions (got {dim})"
            )
        if vals.shape != idx.shape:
            raise InvalidVectorError(
                f"sparsevec: expected numeric values, one number per index (got values of "
                f"shape {vals.shape} for {idx.size} indices)"
            )
        if vals.dtype.kind == "O" and all(is_real(v) for v in vals):
            vals, unheld = objects_to_float64(vals)
            if unheld is not None:
                i, kind = unheld
                if kind == "nan":
                    raise InvalidVectorError(
                        f"NaN not allowed in sparsevec (at index {int(idx[i])})"
                    )
                raise InvalidVectorError(
                    f'"{number_text(vals_in[i])}" is out of range for type sparsevec '
                    f"(at index {int(idx[i])})"
                )
        if vals.dtype.kind not in "iuf":
            raise InvalidVectorError(f"sparsevec: expected numeric values, got dtype {vals.dtype}")
        if idx.size > dim:
            raise InvalidVectorError(
                f"sparsevec cannot have more elements than dimensions ({idx.size} > {dim})"
            )
        if idx.size and (idx.min() < 0 or idx.max() >= dim):
            bad = int(idx[(idx < 0) | (idx >= dim)][0])
            raise InvalidVectorError(
                f"sparsevec index out of bounds: {bad} is not in [0, {dim}) (0-based)"
            )
        order = np.argsort(idx, kind="stable")
        idx = idx[order]
        vals = vals[order]
        if check_duplicates and idx.size > 1:
            dup = np.flatnonzero(idx[1:] == idx[:-1])
            if dup.size:
                raise InvalidVectorError(
                    f"sparsevec indices must not contain duplicates (index {int(idx[dup[0]])})"
                )
        with np.errstate(over="ignore", invalid="ignore"):
            f32 = vals.astype(np.float32)
        finite = np.isfinite(f32)
        if not finite.all():
            i = int(np.flatnonzero(~finite)[0])
            if np.isnan(f32[i]):
                raise InvalidVectorError(f"NaN not allowed in sparsevec (at index {int(idx[i])})")
            if np.isinf(vals[i]):
                raise InvalidVectorError(
                    f"infinite value not allowed in sparsevec (at index {int(idx[i])})"
                )
            raise InvalidVectorError(
                f'"{vals[i]}" is out of range for type sparsevec (at index {int(idx[i])})'
            )
        keep = f32 != 0
        underflow = ~keep & (vals != 0)
        if underflow.any():  # pgvector's sparsevec input refuses it (src/sparsevec.c)
            i = int(np.flatnonzero(underflow)[0])
            raise InvalidVectorError(
                f'"{vals[i]}" is out of range for type sparsevec (at index {int(idx[i])})'
            )
        if not keep.all():
            idx, f32 = idx[keep], f32[keep]
        if idx.size > SPARSEVEC_MAX_NNZ:
            raise InvalidVectorError(
                f"sparsevec cannot have more than {SPARSEVEC_MAX_NNZ} non-zero elements "
                f"(got {idx.size})"
            )
        self._dim = dim
        self._indices = idx.astype(np.int32)
        self._values = f32

    @property
    def dim(self) -> int:
        """Number of dimensions."""
        return self._dim

    @property
    def nnz(self) -> int:
        """Number of non-zero elements."""
        return int(self._indices.size)

    @property
    def indices(self) -> np.ndarray:
        """0-based indices of the non-zeros, ascending, ``(nnz,)`` int32."""
        return self._indices

    @property
    def values(self) -> np.ndarray:
        """The non-zero values, ``(nnz,)`` float32, in index order."""
        return self._values

    def to_dense(self) -> np.ndarray:
        """The dense ``(dim,)`` float32 array."""
        out = np.zeros(self._dim, dtype=np.float32)
        out[self._indices] = self._values
        return out

    def to_dict(self) -> dict[int, float]:
        """``{index: value}`` with 0-based indices."""
        return dict(zip(self._indices.tolist(), self._values.tolist(), strict=True))

    def to_scipy(self) -> Any:
        """A ``scipy.sparse.csr_array`` of shape ``(1, dim)`` (needs SciPy)."""
        from scipy import sparse

        return sparse.csr_array(
            (self._values, self._indices, np.array([0, self.nnz])), shape=(1, self._dim)
        )

    def __eq__(self, other: object) -> bool:
        """Same ``dim``, ``indices`` and ``values``; also against a pgvector-python
        ``SparseVector``, whose values are compared at float4, the precision a
        ``sparsevec`` stores (its own ``==`` defers to this one)."""
        if not isinstance(other, SparseVector):
            if not _is_pgvector_sparse(other):
                return NotImplemented
            try:
                other = SparseVector(other)
            except InvalidVectorError:  # (no sparsevec holds it, so none equals it)
                return False
        return (
            self._dim == other._dim
            and np.array_equal(self._indices, other._indices)
            and np.array_equal(self._values, other._values)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"SparseVector({self.to_dict()!r}, dim={self._dim})"


def _int_array(values: Any) -> np.ndarray:
    arr = np.asarray(values)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind == "O" and all(
        isinstance(i, int) and not isinstance(i, bool) for i in arr
    ):  # integers beyond int64: out of every sparsevec's bounds
        bad = next(i for i in arr if not -(2**63) <= i < 2**63)
        raise InvalidVectorError(
            f"sparsevec index out of bounds: {number_text(bad)} is not in "
            f"[0, {SPARSEVEC_MAX_DIM}) (0-based)"
        )
    if arr.dtype.kind not in "iu":
        raise InvalidVectorError(f"sparsevec: indices must be integers, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def number_text(x: Any) -> str:
    """A number as an error message shows it: ``65520`` rather than ``65520.0``,
    ``1.000000e+400`` for an integer of 401 digits, a ``Decimal`` as written."""
    if isinstance(x, (int, np.integer)):
        digits = str(int(x))
        sign = "-" if digits.startswith("-") else ""
        digits = digits.lstrip("-")
        if len(digits) <= 20:
            return sign + digits
        return f"{sign}{digits[0]}.{digits[1:7]}e+{len(digits) - 1}"
    if not isinstance(x, (float, np.floating)):
        return str(x)
    text = repr(float(x))
    return text[:-2] if text.endswith(".0") else text


def objects_to_float64(arr: np.ndarray) -> tuple[np.ndarray, tuple[int, str] | None]:
    """An object array of real numbers (``int``, ``Decimal``, ``Fraction``...) as float64,
    each element by ``float()``, and the first element float64 cannot hold, if any:
    ``(flat index, "nan")`` for a signalling NaN, ``(flat index, "range")`` for a finite
    number beyond float64 (an ``int`` of 400 digits, ``Decimal("1e400")``)."""
    out = np.empty(arr.shape, dtype=np.float64)
    flat = out.reshape(-1)
    for i, x in enumerate(arr.flat):
        try:
            f = float(x)
        except OverflowError:
            return out, (i, "range")
        except ValueError:  # Decimal("sNaN")
            return out, (i, "nan")
        if f in (np.inf, -np.inf) and not _is_infinite(x):
            return out, (i, "range")
        flat[i] = f
    return out, None


def _is_infinite(x: Any) -> bool:
    is_infinite = getattr(x, "is_infinite", None)  # Decimal
    return bool(is_infinite()) if callable(is_infinite) else x in (np.inf, -np.inf)


def _is_pgvector_sparse(value: Any) -> bool:
    return type(value).__module__.startswith("pgvector") and hasattr(value, "indices")
