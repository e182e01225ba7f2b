"""SQLModel table models with vector fields: ``Field(sa_type=Vector(3))``.

``np.ndarray`` fields with vecalchemy's types (pydantic needs ``arbitrary_types_allowed``
for them), ``list[float]`` fields with ``vecalchemy.compat.pgvector``'s: the tables, the
values bound and loaded, one bad vector refused before anything is sent, nearest
neighbours through ``session.exec``, Alembic autogenerate of the models' metadata. The
database tests run in each driver mode (SQLModel's ``Session`` is sync; in the asyncpg
modes it runs inside SQLAlchemy's greenlet, as ``conn.run_sync`` runs a user's code).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest
from alembic_support import REGISTRATIONS, AlembicProject, ops_of
from pydantic import ValidationError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import registry
from sqlmodel import Field, Session, SQLModel, col, func, select

from vecalchemy import HalfVec, HnswIndex, InvalidVectorError, Vector
from vecalchemy.compat.pgvector import VECTOR
from vecalchemy.typing import vector_ops


class Base(SQLModel, registry=registry()):
    # pydantic has no schema for np.ndarray; with this it checks isinstance only
    model_config = {"arbitrary_types_allowed": True}


class Doc(Base, table=True):
    __table_args__ = (HnswIndex("ix_doc_embedding", "embedding"),)
    id: int | None = Field(default=None, primary_key=True)
    embedding: np.ndarray = Field(sa_type=Vector(3, metric="cosine"))
    half: np.ndarray | None = Field(default=None, sa_type=HalfVec(3))


class Item(Base, table=True):
    """pgvector-python's README model, on the compat types."""

    id: int | None = Field(default=None, primary_key=True)
    embedding: list[float] = Field(sa_type=VECTOR(3))


POINTS = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0.1, 0.2, 3]], dtype=np.float32)


def cosine(points: np.ndarray, q: list[float]) -> np.ndarray:
    return np.asarray(1 - points @ q / (np.linalg.norm(points, axis=1) * np.linalg.norm(q)))


@pytest.fixture
def tables(engine: Engine) -> Engine:
    Base.metadata.create_all(engine)
    return engine


@pytest.fixture
def docs(tables: Engine) -> Engine:
    with Session(tables) as session:
        session.add_all([Doc(id=i, embedding=p, half=p) for i, p in enumerate(POINTS)])
        session.add_all([Item(id=i, embedding=p.tolist()) for i, p in enumerate(POINTS)])
        session.commit()
    return tables


def count(engine: Engine, model: type[SQLModel]) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(model)).one()


# --- tables ------------------------------------------------------------------------------


def test_create_all_makes_the_vector_columns_and_the_index(
    tables: Engine, raw_conn: psycopg.Connection
) -> None:
    rows = raw_conn.execute(
        "SELECT attrelid::regclass::text, attname, format_type(atttypid, atttypmod),"
        " attnotnull FROM pg_attribute WHERE attrelid IN ('doc'::regclass, 'item'::regclass)"
        " AND attname IN ('embedding', 'half') ORDER BY 1, 2"
    ).fetchall()
    assert rows == [
        ("doc", "embedding", "vector(3)", True),
        ("doc", "half", "halfvec(3)", False),
        ("item", "embedding", "vector(3)", True),
    ]
    (indexdef,) = raw_conn.execute(
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_doc_embedding'"
    ).fetchone()  # type: ignore[misc]
    assert "USING hnsw (embedding vector_cosine_ops)" in indexdef


# --- values ------------------------------------------------------------------------------


def test_ndarray_fields_load_back_as_float_arrays(docs: Engine) -> None:
    with Session(docs) as session:
        doc = session.get(Doc, 2)
        assert doc is not None
        assert doc.embedding.dtype == np.float32 and doc.embedding.tolist() == [1, 1, 0]
        assert doc.half is not None and doc.half.dtype == np.float16


def test_list_fields_with_the_compat_types_load_back_as_lists(docs: Engine) -> None:
    with Session(docs) as session:
        item = session.get(Item, 3)
    assert item is not None
    assert type(item.embedding) is list
    assert item.embedding == np.array([0.1, 0.2, 3], dtype=np.float32).tolist()


def test_a_list_binds_to_an_ndarray_field(tables: Engine) -> None:
    with Session(tables) as session:
        session.add(Doc(id=7, embedding=[1, 2, 3]))
        session.commit()
        doc = session.get(Doc, 7)
        assert doc is not None and doc.embedding.tolist() == [1, 2, 3]


def test_model_validate_wants_an_array_for_an_ndarray_field_and_a_list_for_a_list() -> None:
    doc = Doc.model_validate({"embedding": np.ones(3)})
    assert isinstance(doc.embedding, np.ndarray)
    with pytest.raises(ValidationError, match="instance of ndarray"):
        Doc.model_validate({"embedding": [1.0, 2.0, 3.0]})
    assert Item.model_validate({"embedding": [1, 2, 3]}).embedding == [1.0, 2.0, 3.0]
    with pytest.raises(ValidationError, match="valid number"):
        Item.model_validate({"embedding": ["a", 2, 3]})


def test_one_bad_vector_is_refused_before_sending_and_nothing_is_written(
    tables: Engine,
) -> None:
    with Session(tables) as session:
        session.add_all(
            [
                Doc(id=1, embedding=np.ones(3)),
                Doc(id=2, embedding=np.ones(2)),
                Doc(id=3, embedding=np.ones(3)),
            ]
        )
        with pytest.raises(StatementError) as caught:
            session.commit()
        session.rollback()
    assert isinstance(caught.value.orig, InvalidVectorError)
    assert "vector(3): expected 3 dimensions, not 2" in str(caught.value.orig)
    assert count(tables, Doc) == 0


def test_a_nan_in_a_list_field_is_refused_and_nothing_is_written(tables: Engine) -> None:
    with Session(tables) as session:
        session.add(Item(id=1, embedding=[1.0, float("nan"), 3.0]))
        with pytest.raises(StatementError) as caught:
            session.commit()
        session.rollback()
    assert isinstance(caught.value.orig, InvalidVectorError)
    assert "NaN not allowed in vector" in str(caught.value.orig)
    assert count(tables, Item) == 0


def test_changing_a_field_to_an_equal_value_issues_no_update(docs: Engine) -> None:
    with Session(docs) as session:
        doc = session.get(Doc, 0)
        assert doc is not None
        doc.embedding = [1.0, 0.0, 0.0]  # type: ignore[assignment]
        assert not session.is_modified(doc)
        doc.embedding = np.array([5, 5, 5])
        assert session.is_modified(doc)
        session.commit()
        session.refresh(doc)
        assert doc.embedding.tolist() == [5, 5, 5]


# --- nearest neighbours ------------------------------------------------------------------


def test_session_exec_orders_by_cosine_distance(docs: Engine) -> None:
    q = [1.0, 0.9, 0.1]
    with Session(docs) as session:
        # (typed code writes vector_ops(Doc.embedding): SQLModel types it np.ndarray)
        nearest = session.exec(
            select(Doc).order_by(Doc.embedding.cosine_distance(q)).limit(2)  # type: ignore[attr-defined]
        ).all()
    assert [d.id for d in nearest] == np.argsort(cosine(POINTS, q))[:2].tolist()
    assert all(isinstance(d.embedding, np.ndarray) for d in nearest)


def test_distance_by_the_declared_metric_with_its_value(docs: Engine) -> None:
    q = [0.0, 1.0, 0.2]
    with Session(docs) as session:
        rows = session.exec(
            select(Doc.id, vector_ops(Doc.embedding).distance(q))
            .order_by(vector_ops(col(Doc.embedding)).distance(q))
            .limit(len(POINTS))
        ).all()
    order = np.argsort(cosine(POINTS, q))
    assert [r[0] for r in rows] == order.tolist()
    np.testing.assert_allclose([r[1] for r in rows], cosine(POINTS, q)[order], atol=1e-6)


def test_compat_list_field_orders_by_l2_distance(docs: Engine) -> None:
    q = [0.0, 0.0, 2.5]
    with Session(docs) as session:
        ids = session.exec(
            select(Item.id).order_by(Item.embedding.l2_distance(q)).limit(1)  # type: ignore[attr-defined]
        ).all()
    assert ids == [3]


# --- Alembic -----------------------------------------------------------------------------

MODELS = """
import numpy as np
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel
from vecalchemy.compat.pgvector import VECTOR


class ModelBase(SQLModel, registry=registry()):
    model_config = {"arbitrary_types_allowed": True}


class Doc(ModelBase, table=True):
    __table_args__ = (HnswIndex("ix_doc_embedding", "embedding", m=8),)
    id: int | None = Field(default=None, primary_key=True)
    embedding: np.ndarray = Field(sa_type=Vector(3, metric="cosine"))
    half: np.ndarray | None = Field(default=None, sa_type=HalfVec(HALF_DIM))


class Item(ModelBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    embedding: list[float] = Field(sa_type=VECTOR(3))


metadata = ModelBase.metadata
"""


@pytest.fixture
def project(
    tmp_path: Path, vector_database_url: str, vector_schema: str
) -> Iterator[AlembicProject]:
    p = AlembicProject(tmp_path, vector_database_url, vector_schema, registration=REGISTRATIONS[0])
    yield p
    p.dispose()


def test_autogenerate_of_sqlmodel_metadata_renders_the_types_and_checks_clean(
    project: AlembicProject,
) -> None:
    project.write_models(MODELS.replace("HALF_DIM", "3"))
    migration = project.revision()
    assert "import vecalchemy\n" in migration
    assert "import vecalchemy.compat.pgvector\n" in migration
    assert (
        "sa.Column('embedding', vecalchemy.Vector(3, metric='cosine'), nullable=False)"
        in migration
    )
    assert "sa.Column('half', vecalchemy.HalfVec(3), nullable=True)" in migration
    assert (
        "sa.Column('embedding', vecalchemy.compat.pgvector.VECTOR(3), nullable=False)" in migration
    )
    assert (
        "op.create_vector_index('ix_doc_embedding', 'doc', 'embedding', method='hnsw', "
        "opclass='vector_cosine_ops', m=8)" in migration
    )
    project.upgrade()
    project.check()
    assert project.column_types("doc") == {
        "id": "integer",
        "embedding": "vector(3)",
        "half": "halfvec(3)",
    }
    assert project.column_types("item") == {"id": "integer", "embedding": "vector(3)"}

    project.write_models(MODELS.replace("HALF_DIM", "4"))
    changed = project.revision()
    assert ops_of(changed, "upgrade") == ["alter_column"]
    assert "type_=vecalchemy.HalfVec(4)" in changed
    project.upgrade()
    project.check()
    assert project.column_types("doc")["half"] == "halfvec(4)"

    project.downgrade("base")
    assert project.tables() == set()
