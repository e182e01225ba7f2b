"""pgvector's SQL functions, typed so results keep their vector type.

``select(avg(Doc.embedding))`` returns a ``Vector(dim)`` value (an ``np.ndarray``);
``binary_quantize(col)`` is a ``Bit`` expression; ``vector_norm`` emits ``l2_norm`` for
halfvec and sparsevec (pgvector names it so). Python values passed as arguments are
bound with an explicit cast (``binary_quantize('[1,-2,3]')`` alone is ambiguous in
pgvector: "function binary_quantize(unknown) is not unique").
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import Float, Integer, bindparam, func
from sqlalchemy.sql import ColumnElement

from .types import Bit, HalfVec, SparseVec, Vector, VectorType
from .values import SparseVector

__all__ = [
    "avg",
    "sum",
    "l2_normalize",
    "binary_quantize",
    "subvector",
    "vector_dims",
    "vector_norm",
]


def _vector_arg(
    expr: Any, allowed: tuple[type[VectorType], ...], fn: str
) -> tuple[ColumnElement[Any], VectorType]:
    """A SQL expression of a vector type and that type; Python values become typed binds.

    Raises :class:`TypeError` for an expression of another type.
    """
    # ORM attributes (``Doc.embedding``) give their column by this protocol
    if not isinstance(expr, ColumnElement) and hasattr(expr, "__clause_element__"):
        expr = expr.__clause_element__()
    if isinstance(expr, ColumnElement):
        etype = expr.type
        if not isinstance(etype, allowed):
            names = ", ".join(t.__name__ for t in allowed)
            raise TypeError(f"{fn}() takes a {names} expression, got type {etype!r}")
        return expr, etype
    if isinstance(expr, SparseVector):
        vtype: VectorType = SparseVec(expr.dim)
    else:
        vtype = Vector(len(expr)) if isinstance(expr, (list, tuple, np.ndarray)) else Vector()
    if not isinstance(vtype, allowed):
        raise TypeError(f"{fn}() does not take a {type(expr).__name__} value")
    return bindparam(None, expr, type_=vtype), vtype


_DENSE = (Vector, HalfVec)
_ANY = (Vector, HalfVec, SparseVec)


def avg(expr: Any) -> ColumnElement[Any]:
    """``avg(vector|halfvec)`` aggregate (pgvector 0.4.0 / 0.7.0); the element-wise mean,
    of the argument's type. NULL over no rows."""
    e, vtype = _vector_arg(expr, _DENSE, "avg")
    return func.avg(e, type_=vtype)


def sum(expr: Any) -> ColumnElement[Any]:  # noqa: A001 - pgvector's name
    """``sum(vector|halfvec)`` aggregate (pgvector 0.5.0 / 0.7.0), of the argument's type."""
    e, vtype = _vector_arg(expr, _DENSE, "sum")
    return func.sum(e, type_=vtype)


def l2_normalize(expr: Any) -> ColumnElement[Any]:
    """``l2_normalize(v)`` (pgvector 0.7.0): ``v / ||v||``; a zero vector stays zero."""
    e, vtype = _vector_arg(expr, _ANY, "l2_normalize")
    return func.l2_normalize(e, type_=vtype)


def binary_quantize(expr: Any) -> ColumnElement[Any]:
    """``binary_quantize(v)`` (pgvector 0.7.0): a ``bit`` with 1 where the element is > 0.

    Typed ``Bit(dim)`` when the argument has a dimension. To index it, cast to a
    length: ``cast(binary_quantize(col), Bit(dim))`` (an index needs a typmod).
    """
    e, vtype = _vector_arg(expr, _DENSE, "binary_quantize")
    return func.binary_quantize(e, type_=Bit(vtype.dim))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _subvector_dim(dim: int | None, start: Any, count: Any) -> int | None:
    """How many elements ``subvector`` returns, as pgvector computes it (src/vector.c):
    a ``start`` below 1 shortens the slice, and the slice stops at the last element."""
    if not _is_int(count) or count < 1:
        return None
    if dim is None or not _is_int(start):
        return int(count)  # at most count: the argument's dimension is unknown
    got = min(start + count, dim + 1) - max(start, 1)
    return got if got >= 1 else None  # pgvector raises for an empty slice


def subvector(expr: Any, start: int, count: int) -> ColumnElement[Any]:
    """``subvector(v, start, count)`` (pgvector 0.7.0): ``count`` elements from the 1-based
    ``start``, clamped to the elements there are; typed as the argument's type with that
    dimension (``count`` when the argument's dimension is unknown). pgvector raises
    ``vector must have at least 1 dimension`` for an empty slice."""
    e, vtype = _vector_arg(expr, _DENSE, "subvector")
    return func.subvector(
        e, start, count, type_=type(vtype)(_subvector_dim(vtype.dim, start, count))
    )


def vector_dims(expr: Any) -> ColumnElement[int]:
    """``vector_dims(v)`` -> integer, for vector and halfvec (pgvector has no sparsevec form)."""
    e, _ = _vector_arg(expr, _DENSE, "vector_dims")
    return func.vector_dims(e, type_=Integer)


def vector_norm(expr: Any) -> ColumnElement[float]:
    """Euclidean norm: ``vector_norm(vector)``, ``l2_norm(halfvec|sparsevec)`` -> float."""
    e, vtype = _vector_arg(expr, _ANY, "vector_norm")
    if isinstance(vtype, Vector):
        return func.vector_norm(e, type_=Float)
    return func.l2_norm(e, type_=Float)
