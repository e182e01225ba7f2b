"""What a type checker sees of vector fields of SQLModel table models.

SQLModel types a field's class attribute as the field's value type (``np.ndarray``), so
the distance methods are reached through ``vector_ops()``, as SQLModel's own operators
are through ``col()``. Checked by ``tests/test_typing.py`` with ``mypy --strict``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy import ColumnElement
from sqlalchemy.orm import registry
from sqlmodel import Field, Session, SQLModel, col, select
from typing_extensions import assert_type

from vecalchemy import Vector
from vecalchemy.compat.pgvector import VECTOR
from vecalchemy.typing import vector_ops


class Base(SQLModel, registry=registry()):
    # np.ndarray is no pydantic type; pydantic only checks isinstance for it
    model_config = {"arbitrary_types_allowed": True}


class Doc(Base, table=True):
    id: int | None = Field(default=None, primary_key=True)
    embedding: np.ndarray = Field(sa_type=Vector(3, metric="cosine"))
    listed: list[float] | None = Field(default=None, sa_type=VECTOR(3))


q = [0.1, 0.2, 0.3]

assert_type(Doc.embedding, np.ndarray)
assert_type(vector_ops(Doc.embedding).cosine_distance(q), ColumnElement[float])
assert_type(vector_ops(Doc.listed).l2_distance(q), ColumnElement[float])
assert_type(vector_ops(col(Doc.embedding)).distance(q), ColumnElement[float])


def nearest(session: Session, k: int) -> Sequence[Doc]:
    stmt = select(Doc).order_by(vector_ops(Doc.embedding).cosine_distance(q)).limit(k)
    return assert_type(session.exec(stmt).all(), Sequence[Doc])
