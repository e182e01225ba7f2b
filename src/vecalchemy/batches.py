"""ORM executemany INSERTs and UPDATEs validated whole before the ORM sends any of them.

``session.execute(insert(Doc), rows)`` (ORM bulk INSERT, also an ``ON CONFLICT`` upsert
built on ``insert(Doc)``) and ``session.execute(update(Doc), rows)`` (ORM bulk UPDATE by
primary key) are sent by SQLAlchemy's ORM as one executemany per run of consecutive rows
with the same keys (for an INSERT, also the same keys holding ``None``, which it leaves
out of the statement), and for a mapper over several tables (joined inheritance) table
by table. The column types validate their values while each executemany is processed,
just before it is sent, so a bad vector in a later run would be refused after the
earlier runs had been written, and a caller catching the error and committing would
keep them.

:func:`validate_orm_rows`, a ``do_orm_execute`` listener on
:class:`~sqlalchemy.orm.Session` (every session, sync or behind an ``AsyncSession``, on
any driver, with or without vecalchemy's dialect), validates every vector value of such
an execution with its column type's own check before the ORM sends anything. An
execution that the ORM sends as one executemany (one table, every row with the same
keys and the same ``None`` keys: the common case) is left to the bind processors, which
process every row before sending; the listener then only compares the rows' keys.

Nothing is needed for a flush (``session.add_all(...)``) or the legacy
``Session.bulk_insert_mappings`` / ``bulk_update_mappings`` / ``bulk_save_objects``,
which also send one executemany per key set but run no ``do_orm_execute`` event: a
failure in them rolls the session's transaction back, so nothing they sent can be
committed.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from itertools import chain, repeat
from typing import Any

from sqlalchemy import Column, event
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Mapper, ORMExecuteState, Session

from .exc import InvalidVectorError
from .types import VectorType

__all__ = ["validate_orm_rows", "vector_attributes", "has_other_orm_execute_listeners"]


def vector_attributes(mapper: Mapper[Any]) -> list[tuple[str, VectorType]]:
    """``(attribute key, column type)`` of each vector column ``mapper`` persists, in
    the keys an ORM bulk INSERT / UPDATE takes (a key mapping columns of several tables
    with different vector types appears once for each type)."""
    tables = set(mapper.tables)
    found: list[tuple[str, VectorType]] = []
    for prop in mapper.column_attrs:
        seen: list[VectorType] = []
        for col in prop.columns:
            vtype = col.type
            if (
                isinstance(col, Column)
                and col.table in tables
                and isinstance(vtype, VectorType)
                and not any(vtype is other for other in seen)
            ):
                seen.append(vtype)
                found.append((prop.key, vtype))
    return found


def validate_orm_rows(state: ORMExecuteState) -> None:
    """``do_orm_execute`` listener: validate every vector value of an ORM bulk INSERT or
    UPDATE that the ORM will send as more than one statement, before it sends any.

    Acts on an ORM-enabled ``insert()`` / ``update()`` executed with parameters whose
    rows do not all have the same keys (for an INSERT, also the same keys holding
    ``None``), or whose mapper persists several tables; every other execution is left as
    it is, after comparing the rows' keys. Each value goes through its column type's own
    validation (the one its bind processor runs).

    Raises :class:`sqlalchemy.exc.StatementError` whose ``orig`` is the
    :class:`~vecalchemy.exc.InvalidVectorError` the type's binding raises, its message
    followed by the row index and the attribute (``vector(3): expected 3 dimensions,
    not 2 (row 4, Doc.embedding)``), as SQLAlchemy wraps the error of a bind processor;
    nothing has been sent. Any other error of a type's validation arrives the same way,
    unchanged, as ``orig``.
    """
    if not (state.is_insert or state.is_update):
        return
    params = state.parameters
    rows: Sequence[Any]
    if isinstance(params, Mapping):
        rows = (params,)
    elif isinstance(params, (list, tuple)) and params:
        rows = params
    else:
        return
    mapper = state.bind_mapper
    if mapper is None:  # (a Core table: processed whole before anything is sent)
        return
    if len(mapper.tables) < 2 and (len(rows) < 2 or not _split(rows, none_splits=state.is_insert)):
        return
    attributes = vector_attributes(mapper)
    if attributes:
        _validate(state, mapper, rows, attributes)


def has_other_orm_execute_listeners(session: Session) -> bool:
    """Whether ``session`` has ``do_orm_execute`` listeners besides
    :func:`validate_orm_rows`, which every session has and which acts on no SELECT."""
    return any(fn is not validate_orm_rows for fn in session.dispatch.do_orm_execute)


def _split(rows: Sequence[Any], *, none_splits: bool) -> bool:
    """Whether the ORM sends ``rows`` as more than one executemany: their key sets
    differ or (``none_splits``, an INSERT) their keys holding ``None`` differ. (C-level
    passes over the rows; a row that is not a ``dict`` counts as a split.)"""
    try:
        keys = rows[0].keys()
        if not all(map(keys.__eq__, map(dict.keys, rows))):
            return True
        if not none_splits or not any(
            map(operator.is_, chain.from_iterable(map(dict.values, rows)), repeat(None))
        ):
            return False
    except (AttributeError, TypeError):
        return True
    nones = _none_keys(rows[0])
    return any(_none_keys(row) != nones for row in rows)


def _none_keys(row: dict[str, Any]) -> list[str]:
    return [key for key, value in row.items() if value is None]


def _validate(
    state: ORMExecuteState,
    mapper: Mapper[Any],
    rows: Sequence[Any],
    attributes: list[tuple[str, VectorType]],
) -> None:
    checks = [(key, _check_for(vtype, state)) for key, vtype in attributes]
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            continue  # (the ORM refuses it itself)
        for key, check in checks:
            value = row.get(key)
            if value is None:
                continue
            try:
                check(value)
            except Exception as exc:
                raise _refusal(exc, index, f"{mapper.class_.__name__}.{key}") from exc


def _check_for(vtype: VectorType, state: ORMExecuteState) -> Callable[[Any], Any]:
    """The validation ``vtype``'s bind processor runs: its checker, or for a subclass
    overriding ``process_bind_param`` that method (on the session's dialect)."""
    if type(vtype).process_bind_param is VectorType.process_bind_param:
        return vtype._checker(None)
    dialect = state.session.get_bind(**state.bind_arguments).dialect
    process = vtype.process_bind_param
    return lambda value: process(value, dialect)


def _refusal(exc: Exception, index: int, attribute: str) -> StatementError:
    orig: Exception = exc
    if isinstance(exc, InvalidVectorError):
        orig = InvalidVectorError(f"{exc} (row {index}, {attribute})")
        orig.__cause__ = exc
    name = f"{type(orig).__module__}.{type(orig).__qualname__}"
    return StatementError(f"({name}) {orig}", None, None, orig)


event.listen(Session, "do_orm_execute", validate_orm_rows)
