"""Static types of vector columns: the distance methods as mypy and pyright see them.

SQLAlchemy types an ORM attribute as ``InstrumentedAttribute[T]`` and a Core column as
``Column[T]``; neither declares a column type's own comparator methods, so
``Doc.embedding.cosine_distance(q)`` works at run time but is ``Any`` to a type checker
on a ``Mapped[np.ndarray]`` column. Declared with this module's names, the seven methods
(:class:`DistanceOperators`) are typed::

    from vecalchemy.typing import VectorMapped, vector_column, vector_ops

    class Doc(Base):
        __tablename__ = "doc"
        id: Mapped[int] = mapped_column(primary_key=True)
        embedding: VectorMapped[np.ndarray] = vector_column(Vector(3, metric="cosine"))

    Doc.embedding.cosine_distance(q)               # ColumnElement[float]
    doc.embedding                                  # np.ndarray
    vector_ops(items.c.embedding).l2_distance(q)   # a Core column, alias, SQLModel field

Nothing changes at run time: ``VectorMapped`` is :class:`~sqlalchemy.orm.Mapped`,
``vector_column`` is :func:`~sqlalchemy.orm.mapped_column` (same arguments) and
:func:`vector_ops` returns its argument once it has checked its type. Models mapped with
``MappedAsDataclass`` keep ``mapped_column``: type checkers know only it as a dataclass
field.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar, overload

import numpy as np
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql import ColumnElement

from .types import VectorType
from .values import SparseVector

if TYPE_CHECKING:
    from sqlalchemy.orm import InstrumentedAttribute

    from .types import VectorComparator

__all__ = ["DistanceOperators", "VectorMapped", "vector_column", "vector_ops"]

_T = TypeVar("_T")
_P = ParamSpec("_P")
#: what SQLModel declares a vector field as (its class attribute has the field's type)
_V = TypeVar("_V", bound="np.ndarray[Any, Any] | Sequence[float] | SparseVector | str | None")
_T_co = TypeVar("_T_co", covariant=True)


class DistanceOperators(Protocol):
    """The distance methods of a vector expression (:class:`~vecalchemy.types.VectorComparator`).

    Each returns a float expression; a metric the column's type lacks raises
    :class:`TypeError` when called, ``distance`` without a declared metric
    :class:`ValueError`.
    """

    def distance(self, other: Any) -> ColumnElement[float]:
        """Distance by the metric declared on the type (``Vector(3, metric="cosine")``)."""
        ...

    def l2_distance(self, other: Any) -> ColumnElement[float]:
        """Euclidean distance, SQL ``<->``."""
        ...

    def max_inner_product(self, other: Any) -> ColumnElement[float]:
        """Negative inner product, SQL ``<#>``."""
        ...

    def cosine_distance(self, other: Any) -> ColumnElement[float]:
        """Cosine distance, SQL ``<=>``."""
        ...

    def l1_distance(self, other: Any) -> ColumnElement[float]:
        """Taxicab distance, SQL ``<+>``."""
        ...

    def hamming_distance(self, other: Any) -> ColumnElement[float]:
        """Hamming distance, SQL ``<~>`` (bit)."""
        ...

    def jaccard_distance(self, other: Any) -> ColumnElement[float]:
        """Jaccard distance, SQL ``<%>`` (bit)."""
        ...


if TYPE_CHECKING:

    class VectorAttribute(InstrumentedAttribute[_T_co], DistanceOperators):
        """``Doc.embedding`` of a ``VectorMapped`` column: an ORM attribute with the
        distance methods."""

    class VectorColumnElement(ColumnElement[_T], DistanceOperators):
        """A Core column or expression of a vector type, with the distance methods."""

    class VectorMapped(Mapped[_T_co]):
        """``Mapped[T]`` whose class-level attribute has the distance methods."""

        @overload
        def __get__(self, instance: None, owner: Any) -> VectorAttribute[_T_co]: ...

        @overload
        def __get__(self, instance: object, owner: Any) -> _T_co: ...

        def __get__(
            self, instance: object | None, owner: Any
        ) -> VectorAttribute[_T_co] | _T_co: ...

    def _comparator_declares_every_method(comparator: VectorComparator) -> DistanceOperators:
        # the protocol and the comparator stay in step: mypy checks this conversion
        return comparator

else:
    VectorMapped = Mapped


def _returning_vector_mapped(column: Callable[_P, Any]) -> Callable[_P, VectorMapped[Any]]:
    return column


#: :func:`~sqlalchemy.orm.mapped_column` itself, typed to return ``VectorMapped``: the
#: value of a ``VectorMapped[...]`` annotation (``mapped_column``'s ``MappedColumn`` is
#: not one, so a type checker refuses that assignment).
vector_column = _returning_vector_mapped(mapped_column)


@overload
def vector_ops(expr: Mapped[_T]) -> VectorAttribute[_T]: ...


@overload
def vector_ops(expr: ColumnElement[_T]) -> VectorColumnElement[_T]: ...


@overload
def vector_ops(expr: _V) -> VectorAttribute[_V]: ...


def vector_ops(expr: Any) -> Any:
    """``expr`` itself, typed with the distance methods of :class:`DistanceOperators`.

    ``expr``: a Core column or expression of a vector type (``items.c.embedding``,
    ``subquery.c.embedding``), an ORM attribute (``aliased(Doc).embedding``), or a
    SQLModel field (``Doc.embedding``, which SQLModel types as the field's value type:
    this plays the part of SQLModel's ``col()``).

    Raises :class:`TypeError` when ``expr`` is not an expression of ``Vector``,
    ``HalfVec``, ``SparseVec`` or ``Bit`` (or a subclass).
    """
    element = expr
    # ORM attributes give their column by this protocol
    if not isinstance(element, ColumnElement) and hasattr(element, "__clause_element__"):
        element = element.__clause_element__()
    if not isinstance(element, ColumnElement) or not isinstance(element.type, VectorType):
        got = f"type {element.type!r}" if isinstance(element, ColumnElement) else repr(expr)
        raise TypeError(
            f"vector_ops() takes an expression of Vector, HalfVec, SparseVec or Bit; got {got}"
        )
    return expr
