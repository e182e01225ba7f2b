"""What a type checker sees of vecalchemy's columns, distances and functions.

``tests/test_typing.py`` checks this file with ``mypy --strict`` (every ``assert_type``
must hold, nothing may be reported) and imports it, so each line also runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import (
    BinaryExpression,
    Column,
    ColumnElement,
    Integer,
    Label,
    MetaData,
    Table,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, aliased, mapped_column
from typing_extensions import assert_type

from vecalchemy import (
    Bit,
    HalfVec,
    SparseVec,
    SparseVector,
    Vector,
    avg,
    binary_quantize,
    l2_normalize,
    subvector,
    vector_dims,
    vector_norm,
)
from vecalchemy.compat.pgvector import VECTOR
from vecalchemy.typing import VectorMapped, vector_column, vector_ops


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "doc"
    id: Mapped[int] = mapped_column(primary_key=True)
    embedding: VectorMapped[np.ndarray] = vector_column(Vector(3, metric="cosine"))
    half: VectorMapped[np.ndarray | None] = vector_column(HalfVec(3))
    sparse: VectorMapped[SparseVector | None] = vector_column(SparseVec(5))
    code: VectorMapped[str | None] = vector_column(Bit(4), nullable=True)
    listed: VectorMapped[list[float] | None] = vector_column(VECTOR(3))
    plain: Mapped[np.ndarray | None] = mapped_column(Vector(3))


q = [0.1, 0.2, 0.3]

# --- ORM: the seven methods on a VectorMapped column ------------------------------------

assert_type(Doc.embedding.cosine_distance(q), ColumnElement[float])
assert_type(Doc.embedding.l2_distance(q), ColumnElement[float])
assert_type(Doc.embedding.max_inner_product(q), ColumnElement[float])
assert_type(Doc.embedding.l1_distance(q), ColumnElement[float])
assert_type(Doc.embedding.distance(q), ColumnElement[float])
assert_type(Doc.code.hamming_distance("1010"), ColumnElement[float])
assert_type(Doc.code.jaccard_distance("1010"), ColumnElement[float])
assert_type(Doc.half.l2_distance(Doc.embedding), ColumnElement[float])
assert_type(Doc.sparse.max_inner_product(SparseVector({0: 1.0}, 5)), ColumnElement[float])
assert_type(Doc.listed.cosine_distance(q), ColumnElement[float])

# the rest of the attribute stays SQLAlchemy's
assert_type(Doc.embedding.cosine_distance(q) < 0.5, ColumnElement[bool])
assert_type(Doc.embedding.cosine_distance(q).label("d"), Label[float])
assert_type(Doc.embedding.is_not(None), BinaryExpression[bool])

# instances hold the values of the annotation
doc = Doc(id=1, embedding=np.zeros(3, dtype=np.float32))
assert_type(doc.embedding, np.ndarray)
assert_type(doc.half, np.ndarray | None)
assert_type(doc.sparse, SparseVector | None)
assert_type(doc.code, str | None)
assert_type(doc.listed, list[float] | None)
doc.embedding = np.ones(3)


def nearest(session: Session, k: int) -> Sequence[Doc]:
    stmt = select(Doc).order_by(Doc.embedding.cosine_distance(q)).limit(k)
    return assert_type(session.scalars(stmt).all(), Sequence[Doc])


def nearest_distances(session: Session) -> Sequence[float]:
    stmt = select(Doc.embedding.cosine_distance(q))
    return assert_type(session.scalars(stmt).all(), Sequence[float])


# a plain Mapped column: SQLAlchemy's attribute answers unknown names with Any
assert_type(Doc.plain.cosine_distance(q), Any)
# vector_ops() types it, and aliases, whose attributes SQLAlchemy types as Any
assert_type(vector_ops(Doc.plain).cosine_distance(q), ColumnElement[float])
a = aliased(Doc)
assert_type(vector_ops(a.embedding).l2_distance(Doc.embedding), ColumnElement[float])

# --- Core --------------------------------------------------------------------------------

metadata = MetaData()
items = Table(
    "items",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("embedding", Vector(3)),
    Column("bits", Bit(8)),
)

assert_type(vector_ops(items.c.embedding).l2_distance(q), ColumnElement[float])
assert_type(vector_ops(items.c.bits).hamming_distance("10101010"), ColumnElement[float])
sub = select(items).subquery()
assert_type(vector_ops(sub.c.embedding).cosine_distance(q), ColumnElement[float])
core = select(items.c.id).order_by(vector_ops(items.c.embedding).l2_distance(q)).limit(5)

# --- functions ---------------------------------------------------------------------------

assert_type(vector_norm(Doc.embedding), ColumnElement[float])
assert_type(vector_dims(items.c.embedding), ColumnElement[int])
assert_type(avg(Doc.embedding), ColumnElement[Any])
assert_type(l2_normalize(Doc.half), ColumnElement[Any])
assert_type(subvector(Doc.embedding, 1, 2), ColumnElement[Any])
assert_type(binary_quantize(items.c.embedding), ColumnElement[Any])
assert_type(
    vector_ops(binary_quantize(Doc.embedding)).hamming_distance(Doc.code), ColumnElement[float]
)
