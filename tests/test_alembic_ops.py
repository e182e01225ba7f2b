"""vecalchemy's Alembic operations: their SQL offline and online (through each driver),
validation, reversal."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
import vecalchemy_alembic.ops  # noqa: F401  (registers the operations)
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy.engine import Engine
from vecalchemy_alembic import (
    AlterVectorExtensionUpdateOp,
    CreateVectorExtensionOp,
    CreateVectorIndexOp,
    DropVectorExtensionOp,
    DropVectorIndexOp,
)

from vecalchemy import Bit, HalfVec, IndexDefinitionError, Vector, binary_quantize


class Offline:
    """``op`` in offline mode (``alembic upgrade --sql``) and the SQL it printed."""

    def __init__(self) -> None:
        self.buffer = io.StringIO()
        ctx = MigrationContext.configure(
            dialect_name="postgresql",
            opts={"as_sql": True, "output_buffer": self.buffer, "literal_binds": True},
        )
        self.op = Operations(ctx)

    @property
    def sql(self) -> list[str]:
        return [s.strip() for s in self.buffer.getvalue().split(";") if s.strip()]


@pytest.fixture
def offline() -> Offline:
    return Offline()


#: the online operations run through each driver: psycopg 3 (plain and with the plugin),
#: asyncpg (its AsyncEngine's sync API in SQLAlchemy's greenlet, as ``run_sync`` in an
#: async env.py runs migrations), psycopg2, pg8000
ONLINE_MODES = ("text", "plugin", "asyncpg", "psycopg2", "pg8000")


@pytest.fixture(params=ONLINE_MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def online(engine: Engine) -> Iterator[Operations]:
    """``op`` online, through ``engine`` (one per mode of ONLINE_MODES)."""
    with engine.begin() as conn:
        conn.execute(
            sa.text("CREATE TABLE items (id int, cat int, e vector(3), h halfvec(3), b bit(8))")
        )
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn)
        with ctx.begin_transaction():
            yield Operations(ctx)


def indexdef(engine: Engine, name: str) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(
                sa.text(
                    "SELECT pg_get_indexdef(c.oid) FROM pg_class c"
                    " WHERE c.relname = :n AND c.relnamespace = current_schema()::regnamespace"
                ),
                {"n": name},
            ).scalar_one()
        )


# --- offline SQL -----------------------------------------------------------------------


def test_create_vector_index_offline_sql(offline: Offline) -> None:
    offline.op.create_vector_index(
        "ix_e", "items", "embedding", metric="cosine", opclass="vector_cosine_ops", m=8,
        ef_construction=40,
    )  # fmt: skip
    assert offline.sql == [
        "CREATE INDEX ix_e ON items USING hnsw (embedding vector_cosine_ops) "
        "WITH (m = 8, ef_construction = 40)"
    ]


def test_create_vector_index_offline_sql_quotes_names_and_renders_where(offline: Offline) -> None:
    offline.op.create_vector_index(
        "Ix E", "My Items", "Emb", method="ivfflat", opclass="halfvec_l2_ops", lists=7,
        where="cat = 1", schema="Other",
    )  # fmt: skip
    assert offline.sql == [
        'CREATE INDEX "Ix E" ON "Other"."My Items" USING ivfflat ("Emb" halfvec_l2_ops) '
        "WITH (lists = 7) WHERE cat = 1"
    ]


def test_create_vector_index_typed_expression_offline(offline: Offline) -> None:
    e = sa.column("embedding", Vector(3))
    offline.op.create_vector_index("ix_h", "items", sa.cast(e, HalfVec(3)), metric="l2")
    offline.op.create_vector_index(
        "ix_b", "items", sa.cast(binary_quantize(e), Bit(3)), metric="hamming"
    )
    assert offline.sql == [
        "CREATE INDEX ix_h ON items USING hnsw ((CAST(embedding AS HALFVEC(3))) halfvec_l2_ops)",
        "CREATE INDEX ix_b ON items USING hnsw ((CAST(binary_quantize(embedding) AS BIT(3))) "
        "bit_hamming_ops)",
    ]


def test_create_vector_index_concurrently_offline_leaves_the_transaction(
    offline: Offline,
) -> None:
    offline.op.create_vector_index(
        "ix_e", "items", "e", opclass="vector_l2_ops", concurrently=True
    )
    assert offline.sql == [
        "COMMIT",
        "CREATE INDEX CONCURRENTLY ix_e ON items USING hnsw (e vector_l2_ops)",
        "BEGIN",
    ]


def test_drop_vector_index_offline_sql(offline: Offline) -> None:
    offline.op.drop_vector_index("ix_e", "items", schema="s", if_exists=True)
    assert offline.sql == ["DROP INDEX IF EXISTS s.ix_e"]


def test_extension_operations_offline_sql(offline: Offline) -> None:
    offline.op.create_vector_extension()
    offline.op.create_vector_extension("ext", if_not_exists=False)
    offline.op.alter_vector_extension_update()
    offline.op.alter_vector_extension_update("0.8.1")
    offline.op.drop_vector_extension(if_exists=True, cascade=True)
    assert offline.sql == [
        "CREATE EXTENSION IF NOT EXISTS vector",
        "CREATE EXTENSION vector SCHEMA ext",
        "ALTER EXTENSION vector UPDATE",
        "ALTER EXTENSION vector UPDATE TO '0.8.1'",
        "DROP EXTENSION IF EXISTS vector CASCADE",
    ]


def test_metric_without_a_type_offline_asks_for_the_opclass(offline: Offline) -> None:
    with pytest.raises(IndexDefinitionError, match="in offline mode; give opclass="):
        offline.op.create_vector_index("ix_e", "items", "e", metric="cosine")
    assert offline.sql == []


# --- online ----------------------------------------------------------------------------


def test_metric_on_a_column_name_takes_the_opclass_from_the_column_type(
    online: Operations, vector_engine: Engine
) -> None:
    online.create_vector_index("ix_h", "items", "h", metric="cosine", m=4, ef_construction=8)
    online.get_context().connection.commit()  # type: ignore[union-attr]
    assert indexdef(vector_engine, "ix_h").endswith(
        "USING hnsw (h halfvec_cosine_ops) WITH (m='4', ef_construction='8')"
    )


def test_partial_expression_index_online(online: Operations, vector_engine: Engine) -> None:
    online.create_vector_index(
        "ix_p", "items", sa.text("(e::halfvec(3))"), opclass="halfvec_l2_ops", where="cat = 1"
    )
    online.get_context().connection.commit()  # type: ignore[union-attr]
    assert indexdef(vector_engine, "ix_p").endswith(
        "USING hnsw (((e)::halfvec(3)) halfvec_l2_ops) WHERE (cat = 1)"
    )


def test_concurrently_online_builds_outside_the_transaction(
    online: Operations, vector_engine: Engine
) -> None:
    online.create_vector_index("ix_c", "items", "e", opclass="vector_l2_ops", concurrently=True)
    online.get_context().connection.rollback()  # type: ignore[union-attr]
    assert indexdef(vector_engine, "ix_c").endswith("USING hnsw (e vector_l2_ops)")
    online.drop_vector_index("ix_c", "items", concurrently=True)
    with pytest.raises(sa.exc.NoResultFound):
        indexdef(vector_engine, "ix_c")


def test_concurrently_online_build_failing_on_the_server_leaves_no_invalid_index(
    online: Operations, vector_engine: Engine
) -> None:
    """A CREATE INDEX CONCURRENTLY that fails half-way (here a division by zero in the
    predicate, met when the build reaches row 5) leaves an INVALID index in the catalog;
    the op drops it from a fresh connection before re-raising."""
    with vector_engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO items (id, e) SELECT i, '[1,2,3]' FROM generate_series(1, 9) i")
        )
    with pytest.raises(sa.exc.DBAPIError, match="division by zero") as failed:
        online.create_vector_index(
            "ix_fail",
            "items",
            "e",
            opclass="vector_l2_ops",
            where="1 / (id - 5) > 0",
            concurrently=True,
        )
    with vector_engine.connect() as conn:
        left = conn.execute(
            sa.text("SELECT count(*) FROM pg_class WHERE relname = 'ix_fail'")
        ).scalar_one()
    assert left == 0
    notes = getattr(failed.value, "__notes__", None)
    if notes is not None:  # Python >= 3.11
        assert any("INVALID index 'ix_fail' the failed build left was dropped" in n for n in notes)


@pytest.mark.parametrize(
    ("column", "kwargs", "message"),
    [
        (
            "big",
            {"metric": "cosine"},
            "index 'ix' on items: HNSW index: column cannot have more than 2000 dimensions "
            "for hnsw index (vector(3072)); ",
        ),
        (
            "big",
            {"opclass": "vector_cosine_ops"},
            "column cannot have more than 2000 dimensions for hnsw index",
        ),
        (
            "e",
            {"opclass": "halfvec_cosine_ops"},
            "operator class halfvec_cosine_ops is for type halfvec, but the indexed "
            "expression is vector; use vector_cosine_ops",
        ),
        (
            "nodim",
            {"opclass": "vector_l2_ops"},
            "column does not have dimensions",
        ),
        (
            "cat",
            {"opclass": "vector_l2_ops"},
            "index 'ix': column 'cat' of items is int4; a vector index needs a vector, "
            "halfvec, sparsevec, bit column or expression",
        ),
        (
            "missing",
            {"opclass": "vector_l2_ops"},
            "index 'ix': no column 'missing' in table items",
        ),
        (
            "vb",
            {"metric": "hamming"},
            "index 'ix': column 'vb' of items is bit varying: type not supported for hnsw index",
        ),
    ],
    ids=[
        "dims-by-metric",
        "dims-by-opclass",
        "opclass-type",
        "no-dimensions",
        "not-a-vector",
        "no-column",
        "varbit",
    ],
)
def test_online_column_name_is_checked_against_its_type_before_any_sql(
    online: Operations, vector_engine: Engine, column: str, kwargs: dict[str, object], message: str
) -> None:
    conn = online.get_context().connection
    assert conn is not None
    conn.execute(
        sa.text(
            "ALTER TABLE items ADD COLUMN big vector(3072), ADD COLUMN nodim vector, "
            "ADD COLUMN vb bit varying(8)"
        )
    )
    sent: list[str] = []
    sa.event.listen(conn, "before_cursor_execute", lambda *a: sent.append(a[2]))
    with pytest.raises(IndexDefinitionError) as e:
        online.create_vector_index("ix", "items", column, **kwargs)  # type: ignore[arg-type]
    assert message in str(e.value)
    assert not any("CREATE INDEX" in s for s in sent)


def test_online_column_of_a_table_the_search_path_finds(
    online: Operations, vector_engine: Engine, vector_schema: str
) -> None:
    conn = online.get_context().connection
    assert conn is not None
    other = f"{vector_schema}_b"
    conn.execute(sa.text(f'CREATE SCHEMA "{other}"'))
    try:
        conn.execute(sa.text(f'CREATE TABLE "{other}".later (e vector(3))'))
        conn.execute(sa.text("CREATE TEMP TABLE scratch (e halfvec(3))"))
        conn.execute(sa.text(f'SET LOCAL search_path = "{vector_schema}", "{other}", public'))
        online.create_vector_index("ix_later", "later", "e", metric="cosine")
        online.create_vector_index("ix_scratch", "scratch", "e", metric="l2")
        got = dict(
            conn.execute(
                sa.text(
                    "SELECT indexname, indexdef FROM pg_indexes "
                    "WHERE indexname IN ('ix_later', 'ix_scratch')"
                )
            ).all()
        )
        assert got["ix_later"].endswith("USING hnsw (e vector_cosine_ops)")
        assert got["ix_scratch"].endswith("USING hnsw (e halfvec_l2_ops)")
    finally:
        conn.rollback()
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{other}" CASCADE'))
        conn.commit()


def test_online_ivfflat_without_opclass_leaves_the_default_to_the_server(
    online: Operations, vector_engine: Engine
) -> None:
    online.create_vector_index("ix_d", "items", "e", method="ivfflat", lists=2)
    online.get_context().connection.commit()  # type: ignore[union-attr]
    assert indexdef(vector_engine, "ix_d").endswith("USING ivfflat (e) WITH (lists='2')")


# --- validation before anything is sent ------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"opclass": "vector_l2_ops", "m": 16, "ef_construction": 20},
            "ef_construction must be greater than or equal to 2 \\* m",
        ),
        ({"opclass": "vector_l2_ops", "m": 1}, 'value 1 out of bounds for option "m"'),
        (
            {"method": "ivfflat", "metric": "l1"},
            'operator class "vector_l1_ops" does not exist for access method "ivfflat"',
        ),
        ({"opclass": "vector_foo_ops"}, "unknown pgvector operator class 'vector_foo_ops'"),
        ({}, "HNSW has no default operator class"),
        ({"method": "btree"}, "unknown vector index method 'btree'"),
        ({"opclass": "vector_l2_ops", "lists": 10}, 'unrecognized parameter "lists"'),
    ],
    ids=["ef<2m", "m-range", "ivfflat-l1", "opclass", "no-opclass", "method", "option"],
)
def test_invalid_definition_is_refused_before_any_sql(
    offline: Offline, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(IndexDefinitionError, match=message):
        offline.op.create_vector_index("ix", "items", "e", **kwargs)  # type: ignore[arg-type]
    assert offline.sql == []


def test_typed_expression_gets_the_dimension_rules(offline: Offline) -> None:
    with pytest.raises(IndexDefinitionError, match="cannot have more than 2000 dimensions"):
        offline.op.create_vector_index(
            "ix", "items", sa.column("e", Vector(3000)), metric="cosine"
        )
    assert offline.sql == []


def test_extension_version_must_be_dotted_digits(offline: Offline) -> None:
    with pytest.raises(ValueError, match="dotted digits such as '0.8.1', got \"0.8'; DROP"):
        offline.op.alter_vector_extension_update("0.8'; DROP TABLE x; --")
    assert offline.sql == []


# --- reversal and diffs ----------------------------------------------------------------


def test_create_reverses_to_drop_and_back_to_the_same_definition() -> None:
    create = CreateVectorIndexOp(
        "ix", "items", "e", opclass="vector_cosine_ops", options={"m": 8}, schema="s"
    )
    drop = create.reverse()
    assert isinstance(drop, DropVectorIndexOp)
    assert (drop.index_name, drop.table_name, drop.schema) == ("ix", "items", "s")
    assert drop.reverse() is create


def test_drop_without_a_definition_is_not_reversible() -> None:
    with pytest.raises(ValueError, match="drop_vector_index\\('ix'\\) is not reversible"):
        DropVectorIndexOp("ix", "items").reverse()


def test_diff_tuples_name_the_change() -> None:
    create = CreateVectorIndexOp("ix", "items", "e", opclass="vector_l2_ops", options={"m": 8})
    assert create.to_diff_tuple() == (
        "add_vector_index",
        None,
        "items",
        "ix",
        "hnsw (e vector_l2_ops) WITH (m=8)",
    )
    assert create.reverse().to_diff_tuple()[0] == "remove_vector_index"
    assert CreateVectorExtensionOp().to_diff_tuple() == ("add_vector_extension", None)
    assert isinstance(CreateVectorExtensionOp("x").reverse(), DropVectorExtensionOp)
    assert AlterVectorExtensionUpdateOp("0.8.1").to_diff_tuple() == (
        "update_vector_extension",
        "0.8.1",
    )
