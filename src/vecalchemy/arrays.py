"""``ARRAY`` of vecalchemy's vector types: several vectors in one row.

pgvector's types have PostgreSQL array types (``_vector``, ``_halfvec``, ``_sparsevec``):
``ARRAY(Vector(768))`` (``sqlalchemy.ARRAY`` or ``postgresql.ARRAY``) declares
``VECTOR(768)[]``. SQLAlchemy's ARRAY type hands its item type each element of the list a
driver returns, but each *character* of an array the driver left as text
(``'{"[1,2,3]",NULL}'``), and guesses the nesting of a bound value from its first element
(a vector given as a list looks like a sub-array to it). vecalchemy's dialects map
``ARRAY`` through ``colspecs`` (as SQLAlchemy's own dialects map it to their driver's
subclass) to a subclass of their driver's ARRAY type which, when the item type is a
``Vector``, ``HalfVec`` or ``SparseVec`` (or a subclass), does the following; every other
ARRAY keeps the driver's behaviour.

- Binds: every element is checked by the item type before anything is sent, and a
  refusal names the element's 0-based position (``array element 2: vector(3): expected
  3 dimensions, not 2``; ``array element [1][0]: ...`` in a multidimensional array). The
  nesting is read from the value: a list of numbers or a 1-D NumPy array is one vector,
  a 2-D array is a list of vectors, ``dimensions=`` fixes the depth; a ragged
  multidimensional value is refused. The checked elements are bound as the driver's
  adapters take them: psycopg 3 a binary array (:class:`~vecalchemy.psycopg.ArrayParam`),
  asyncpg one :class:`~vecalchemy.asyncpg.ArrayElement` per element (binary codecs),
  psycopg2 and pg8000 pgvector's text of each element.
- Results: a :class:`VectorList` (``as_tuple=True``: a ``tuple``), nested for a
  multidimensional array, of the item type's results (``None`` for a NULL element), made
  from the list the driver built, from PostgreSQL's array text (psycopg2, pg8000;
  psycopg without the array loaders) parsed by :func:`parse_array_text`, or from
  PostgreSQL's binary array format (:func:`split_array_binary`).
"""

from __future__ import annotations

import decimal
import numbers
import re
import struct
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from sqlalchemy import types as sqltypes
from sqlalchemy.dialects.postgresql import ARRAY as PGARRAY

from .asyncpg import ArrayElement
from .exc import InvalidVectorError
from .psycopg import ArrayParam
from .types import SparseVec, VectorType, _DenseType

__all__ = [
    "VectorARRAY",
    "VectorList",
    "array_impls",
    "parse_array_text",
    "split_array_binary",
]

#: item types whose arrays vecalchemy binds and parses (``bit[]`` is a built-in array
#: type every driver parses, and keeps the driver's behaviour)
_ITEM_TYPES = (_DenseType, SparseVec)


# --- the array formats -----------------------------------------------------------------

#: one token of PostgreSQL's array text (src/backend/utils/adt/arrayfuncs.c, array_out):
#: a brace, a double-quoted element (backslash escapes), or an unquoted one; delimiters
#: and whitespace between tokens are skipped
_TOKEN = re.compile(r'[{}]|"(?:[^"\\]|\\.)*"|[^{},"\s]+')
_ESCAPE = re.compile(r"\\(.)")


def parse_array_text(text: str) -> list[Any]:
    """PostgreSQL's text form of an array (``'{"[1,2]",NULL}'``, ``'{{...},{...}}'``,
    ``'[0:1]={...}'``) as nested lists of element texts, ``None`` for NULL.

    The delimiter is the comma, that of every pgvector type. Raises
    :class:`~vecalchemy.exc.InvalidVectorError` for text that is not an array.
    """
    body = text
    if body.startswith("["):  # explicit bounds, e.g. '[0:1]={...}' (array_out)
        body = body.partition("=")[2]
    stack: list[list[Any]] = []
    root: list[Any] | None = None
    for match in _TOKEN.finditer(body):
        token = match.group()
        if token == "{":
            sub: list[Any] = []
            if stack:
                stack[-1].append(sub)
            elif root is None:
                root = sub
            else:
                break  # text after the array
            stack.append(sub)
        elif token == "}":
            if not stack:
                break
            stack.pop()
        elif not stack:
            break
        elif token[0] == '"':
            inner = token[1:-1]
            stack[-1].append(_ESCAPE.sub(r"\1", inner) if "\\" in inner else inner)
        else:
            stack[-1].append(None if token.upper() == "NULL" else token)
    else:
        if root is not None and not stack:
            return root
    raise InvalidVectorError(f"expected PostgreSQL's text form of an array, got {text!r}")


_ARRAY_HEADER = struct.Struct("!iiI")  # ndim, has-null flag, element type oid
_ARRAY_DIM = struct.Struct("!ii")  # size, lower bound
_LENGTH = struct.Struct("!i")


def split_array_binary(data: bytes | bytearray | memoryview) -> list[Any]:
    """PostgreSQL's binary form of an array (array_send) as nested lists of the elements'
    binary payloads (``memoryview`` slices of ``data``), ``None`` for NULL."""
    view = memoryview(data)
    ndim, _, _ = _ARRAY_HEADER.unpack_from(view, 0)
    if ndim == 0:
        return []
    sizes = [
        _ARRAY_DIM.unpack_from(view, _ARRAY_HEADER.size + i * _ARRAY_DIM.size)[0]
        for i in range(ndim)
    ]
    pos = _ARRAY_HEADER.size + ndim * _ARRAY_DIM.size
    count = 1
    for size in sizes:
        count *= size
    elements: list[Any] = []
    for _ in range(count):
        (n,) = _LENGTH.unpack_from(view, pos)
        pos += _LENGTH.size
        if n < 0:
            elements.append(None)
        else:
            elements.append(view[pos : pos + n])
            pos += n
    for size in reversed(sizes[1:]):  # innermost dimension first
        elements = [elements[i : i + size] for i in range(0, len(elements), size)]
    return elements


# --- binding ----------------------------------------------------------------------------


def _is_number(x: Any) -> bool:
    return isinstance(x, (numbers.Number, decimal.Decimal, np.generic)) and not isinstance(x, str)


def _first_set(x: Any) -> Any:
    """The first element of ``x`` that is not None (None if there is none)."""
    for v in x:
        if v is not None:
            return v
    return None


def _is_subarray(x: Any, level: int, dims: int | None) -> bool:
    """Whether ``x``, met at nesting ``level`` (>= 1) of a bound array, is a sub-array
    rather than one vector."""
    if dims is not None:
        return level < dims
    if isinstance(x, np.ndarray):
        return x.ndim > 1
    if isinstance(x, (list, tuple)) and len(x) > 0:
        # one vector given as a sequence holds numbers; a list of NULLs is a sub-array
        first = _first_set(x)
        return first is None or not _is_number(first)
    return False


def _position(index: tuple[int, ...]) -> str:
    return str(index[0]) if len(index) == 1 else "".join(f"[{i}]" for i in index)


def _array_binder(
    label: str,
    dims: int | None,
    bind_item: Callable[[Any], Any],
    collection: Callable[[Any], Any],
    wrap: Callable[[Any], Any] | None,
) -> Callable[[Any], Any]:
    """The bind processor of one ARRAY type on one dialect: checks the whole value, then
    gives it in the driver's form (see the module's docstring)."""

    def refuse(message: str) -> InvalidVectorError:
        return InvalidVectorError(f"{label}: {message}")

    def process(value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, (list, tuple, np.ndarray)) or (
            isinstance(value, np.ndarray) and value.ndim == 0
        ):
            raise refuse(f"expected a list of vectors, got {type(value).__name__}")
        if dims in (None, 1) and len(value) > 0 and _is_number(_first_set(value)):
            raise refuse("expected a list of vectors, got one vector (a list of numbers)")
        shape: list[int] = []  # the length of the sub-arrays of each level
        leaf_level: list[int] = []  # the level of the elements, once one is met

        def ragged(index: tuple[int, ...]) -> InvalidVectorError:
            return refuse(
                "multidimensional arrays must have sub-arrays with matching dimensions "
                f"(array element {_position(index)})"
            )

        def walk(x: Any, index: tuple[int, ...], level: int) -> Any:
            if level == 0 or (x is not None and _is_subarray(x, level, dims)):
                if not isinstance(x, (list, tuple, np.ndarray)):
                    raise refuse(
                        f"expected a sub-array at array element {_position(index)} "
                        f"(dimensions={dims}), got {type(x).__name__}"
                    )
                if leaf_level and leaf_level[0] <= level:
                    raise ragged(index)
                n = len(x)
                if level < len(shape):
                    if shape[level] != n:
                        raise ragged(index)
                else:
                    if n == 0 and level > 0:
                        raise refuse(f"empty sub-array at array element {_position(index)}")
                    shape.append(n)
                return collection([walk(v, (*index, i), level + 1) for i, v in enumerate(x)])
            if len(shape) > level or (leaf_level and leaf_level[0] != level):
                raise ragged(index)
            if not leaf_level:
                leaf_level.append(level)
            if x is None:
                return None
            try:
                bound = bind_item(x)
            except InvalidVectorError as err:
                raise InvalidVectorError(f"array element {_position(index)}: {err}") from None
            return bound if wrap is None else wrap(bound)

        return walk(value, (), 0)

    return process


# --- the type -----------------------------------------------------------------------------


class VectorList(list[Any]):
    """The result of a vector ARRAY: a ``list`` whose ``==`` compares element by element
    by value (``np.array_equal`` for arrays), where a plain list of NumPy arrays raises
    NumPy's "truth value of an array is ambiguous".

    SQLAlchemy's ORM compares an attribute's loaded value with the one assigned to it
    (``ARRAY.compare_values`` is ``==``) when it flushes; this makes assigning a new
    list to a loaded ``ARRAY(Vector(n))`` attribute work. ``!=`` is its negation; not
    hashable, as a list.
    """

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, (list, tuple)):
            return NotImplemented
        return len(self) == len(other) and all(map(_equal, self, other))

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = None


def _equal(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if a is None or b is None:
        return False
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        try:
            return bool(np.array_equal(np.asarray(a), np.asarray(b)))
        except (TypeError, ValueError):
            return False
    return bool(a == b)


class VectorARRAY(PGARRAY):  # type: ignore[type-arg]
    """PostgreSQL ``ARRAY`` whose processors bind and parse arrays of vecalchemy's vector
    types (see the module's docstring); a dialect uses it through :func:`array_impls`.
    Arrays of other types are left to the driver's ARRAY type."""

    def bind_processor(self, dialect: Any) -> Any:
        item = self.item_type
        if not isinstance(item, _ITEM_TYPES):
            return super().bind_processor(dialect)
        impl = item.dialect_impl(dialect)
        bind_item = impl.bind_processor(dialect)
        bind_format = impl._bind_format() if isinstance(impl, VectorType) else "text"
        collection: Callable[[Any], Any] = ArrayParam if bind_format == "psycopg" else list
        wrap = ArrayElement if bind_format == "asyncpg" else None
        return _array_binder(
            f"{_label(item)}[]",
            self.dimensions,
            bind_item if bind_item is not None else _same,
            collection,
            wrap,
        )

    def result_processor(self, dialect: Any, coltype: Any) -> Any:
        item = self.item_type
        if not isinstance(item, _ITEM_TYPES):
            return super().result_processor(dialect, coltype)
        convert = item.dialect_impl(dialect).result_processor(dialect, coltype) or _same
        collection: Callable[[Any], Any] = tuple if self.as_tuple else VectorList
        label = f"{_label(item)}[]"

        def elements(x: list[Any]) -> Any:
            return collection([elements(v) if isinstance(v, list) else convert(v) for v in x])

        def process(value: Any) -> Any:
            if value is None:
                return None
            if isinstance(value, str):
                try:
                    value = parse_array_text(value)
                except InvalidVectorError as err:
                    raise InvalidVectorError(f"{label}: {err}") from None
            elif isinstance(value, (bytes, bytearray, memoryview)):
                value = split_array_binary(value)
            return elements(value)

        return process


def _label(item: VectorType) -> str:
    return item.sql_type if item.dim is None else f"{item.sql_type}({item.dim})"


def _same(value: Any) -> Any:
    return value


def array_impls(colspecs: Mapping[Any, Any]) -> dict[type[Any], type[Any]]:
    """``colspecs`` entries making a dialect bind and parse arrays of vecalchemy's vector
    types: ``ARRAY`` mapped to a subclass of :class:`VectorARRAY` and of the driver's own
    ARRAY type in ``colspecs`` (which keeps, e.g., its bind casts)."""
    base = colspecs.get(sqltypes.ARRAY, PGARRAY)
    name = "Vector" + base.__name__.lstrip("_")
    return {sqltypes.ARRAY: type(name, (VectorARRAY, base), {"__module__": __name__})}
