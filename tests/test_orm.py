"""The ORM: ``Mapped[np.ndarray]`` columns, change detection, bulk insert, nearest neighbours."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sqlalchemy import event, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, aliased, mapped_column

from vecalchemy import Bit, HalfVec, SparseVec, SparseVector, Vector, avg


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "doc"
    id: Mapped[int] = mapped_column(primary_key=True)
    embedding: Mapped[np.ndarray] = mapped_column(Vector(3, metric="l2"))
    half: Mapped[np.ndarray | None] = mapped_column(HalfVec(3))
    sparse: Mapped[SparseVector | None] = mapped_column(SparseVec(5))
    code: Mapped[str | None] = mapped_column(Bit(4))


POINTS = np.array([[0, 0, 0], [1, 0, 0], [0, 2, 0], [3, 3, 3]], dtype=np.float32)


@pytest.fixture
def docs(engine: Engine) -> Engine:
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add_all(
            [
                Doc(
                    id=i,
                    embedding=p,
                    half=p,
                    sparse=SparseVector(p.tolist() + [0, 0]),
                    code="1010",
                )
                for i, p in enumerate(POINTS)
            ]
        )
        session.commit()
    return engine


@pytest.fixture
def updates(docs: Engine) -> Iterator[list[str]]:
    statements: list[str] = []

    @event.listens_for(docs, "before_cursor_execute")
    def capture(conn: Any, cursor: Any, stmt: str, *args: Any) -> None:
        if stmt.startswith("UPDATE"):
            statements.append(stmt)

    yield statements
    event.remove(docs, "before_cursor_execute", capture)


def test_add_all_and_load_back_typed_values(docs: Engine) -> None:
    with Session(docs) as session:
        doc = session.get(Doc, 2)
        assert doc is not None
        assert doc.embedding.dtype == np.float32 and doc.embedding.tolist() == [0, 2, 0]
        assert doc.half is not None and doc.half.dtype == np.float16
        assert doc.sparse == SparseVector({1: 2.0}, 5)
        assert doc.code == "1010"


def test_select_by_distance_orders_nearest_first(docs: Engine) -> None:
    q = [2.9, 3, 3]
    with Session(docs) as session:
        ids = session.scalars(select(Doc.id).order_by(Doc.embedding.l2_distance(q)).limit(2)).all()
    assert ids == np.argsort(np.linalg.norm(POINTS - q, axis=1))[:2].tolist()


def test_select_entities_with_their_distance(docs: Engine) -> None:
    with Session(docs) as session:
        rows = session.execute(
            select(Doc, Doc.embedding.distance([0, 0, 0]).label("d")).order_by("d")
        ).all()
    assert [doc.id for doc, _ in rows] == [0, 1, 2, 3]
    np.testing.assert_allclose([d for _, d in rows], np.linalg.norm(POINTS, axis=1), rtol=1e-6)


def test_aliased_entity_supports_distances(docs: Engine) -> None:
    a = aliased(Doc)
    with Session(docs) as session:
        ids = session.scalars(select(a.id).order_by(a.embedding.cosine_distance([0, 1, 0]))).all()
    assert ids[0] == 2


def test_self_join_by_distance_between_two_aliases(docs: Engine) -> None:
    a, b = aliased(Doc), aliased(Doc)
    with Session(docs) as session:
        nearest_to_1 = session.scalars(
            select(b.id)
            .join(a, a.id == 1)
            .where(b.id != 1)
            .order_by(b.embedding.l2_distance(a.embedding))
            .limit(1)
        ).one()
    assert nearest_to_1 == 0


def test_reassigning_an_array_attribute_is_detected(docs: Engine, updates: list[str]) -> None:
    with Session(docs) as session:
        doc = session.get(Doc, 1)
        assert doc is not None
        doc.embedding = np.array([7, 8, 9], dtype=np.float32)
        session.commit()
    assert len(updates) == 1
    with Session(docs) as session:
        assert session.get(Doc, 1).embedding.tolist() == [7, 8, 9]  # type: ignore[union-attr]


def test_assigning_an_equal_value_issues_no_update(docs: Engine, updates: list[str]) -> None:
    with Session(docs) as session:
        doc = session.get(Doc, 1)
        assert doc is not None
        doc.embedding = [1.0, 0.0, 0.0]  # type: ignore[assignment]
        doc.code = [True, False, True, False]  # type: ignore[assignment]
        doc.sparse = {0: 1.0}  # type: ignore[assignment]
        session.commit()
    assert updates == []


def test_bit_attribute_change_from_a_bool_list_is_detected(
    docs: Engine, updates: list[str]
) -> None:
    with Session(docs) as session:
        doc = session.get(Doc, 1)
        assert doc is not None
        doc.code = [True, True, True, True]  # type: ignore[assignment]
        session.commit()
    assert len(updates) == 1
    with Session(docs) as session:
        assert session.get(Doc, 1).code == "1111"  # type: ignore[union-attr]


def test_session_execute_insert_with_a_list_of_rows(engine: Engine) -> None:
    Base.metadata.create_all(engine)
    rows = [{"id": i, "embedding": np.full(3, i, dtype=np.float64)} for i in range(50)]
    with Session(engine) as session:
        session.execute(insert(Doc), rows)
        session.commit()
        stored = session.scalars(select(Doc.embedding).order_by(Doc.id)).all()
    np.testing.assert_array_equal(np.stack(stored), np.repeat(np.arange(50.0), 3).reshape(50, 3))


def test_orm_bulk_update_by_primary_key(docs: Engine) -> None:
    with Session(docs) as session:
        session.execute(update(Doc), [{"id": 0, "embedding": [5, 5, 5]}])
        session.commit()
        assert session.get(Doc, 0).embedding.tolist() == [5, 5, 5]  # type: ignore[union-attr]


def test_aggregate_in_an_orm_query(docs: Engine) -> None:
    with Session(docs) as session:
        mean = session.scalar(select(avg(Doc.embedding)))
    np.testing.assert_allclose(mean, POINTS.mean(axis=0), rtol=1e-6)


def test_subquery_of_an_entity_keeps_the_comparator(docs: Engine) -> None:
    sq = select(Doc.id, Doc.embedding).where(Doc.id > 0).subquery()
    with Session(docs) as session:
        first = session.scalars(
            select(sq.c.id).order_by(sq.c.embedding.l2_distance([0, 0, 0])).limit(1)
        ).one()
    assert first == 1


def test_vector_attribute_against_a_halfvec_attribute_casts_to_vector(docs: Engine) -> None:
    stmt = select(Doc.embedding.l2_distance(Doc.half))
    assert "doc.embedding <-> CAST(doc.half AS VECTOR(3))" in str(stmt.compile(docs))
    with Session(docs) as session:
        assert session.scalars(stmt).all() == [0.0] * len(POINTS)


def test_functions_accept_orm_attributes(docs: Engine) -> None:
    from vecalchemy import vector_norm

    with Session(docs) as session:
        norms = session.scalars(select(vector_norm(Doc.half)).order_by(Doc.id)).all()
    np.testing.assert_allclose(norms, np.linalg.norm(POINTS, axis=1), rtol=1e-6)
