"""HNSW / IVFFlat index declarations: every refusal with its message, every accepted form
created on the real server (through each driver) and read back with ``pg_get_indexdef``;
builds with progress and CONCURRENTLY on sync engines and async ones."""

from __future__ import annotations

import re
import sys
import threading
import warnings

import numpy as np
import psycopg
import pytest
from conftest import make_async_engine, make_engine
from sqlalchemy import Column, Index, Integer, MetaData, Table, cast, event, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from vecalchemy import (
    Bit,
    BuildProgress,
    HalfVec,
    HnswIndex,
    IndexDefinitionError,
    IvfflatIndex,
    SparseVec,
    SparseVector,
    UnsafeSQLError,
    Vector,
    binary_quantize,
    build_vector_index,
    check_query,
    index_build_settings,
    subvector,
    validate_vector_index,
    vector_index_spec,
)
from vecalchemy.indexes import build_vector_index_async

#: one mode per driver, for the slower builds: psycopg 3 (plugin), asyncpg (sync API in
#: SQLAlchemy's greenlet), psycopg2, pg8000
DRIVERS = ("plugin", "asyncpg", "psycopg2", "pg8000")


def _table(*cols: Column[object], name: str = "doc") -> Table:
    return Table(name, MetaData(), Column("id", Integer, primary_key=True), *cols)


def _indexdef(raw_conn: psycopg.Connection, name: str, schema: str) -> str:
    row = raw_conn.execute("SELECT pg_get_indexdef(to_regclass(%s))", (name,)).fetchone()
    assert row is not None and row[0] is not None, f"index {name} does not exist"
    return str(row[0]).replace(f"{schema}.", "")


def _load_random(raw_conn: psycopg.Connection, table: str, rows: int, dim: int) -> None:
    raw_conn.execute(f"CREATE TABLE {table} (e vector({dim}))")
    data = np.random.default_rng(rows).standard_normal((rows, dim)).astype(np.float32)
    with raw_conn.cursor().copy(f"COPY {table} (e) FROM STDIN") as copy:
        for row in data:
            copy.write_row(["[" + ",".join(map(str, row.tolist())) + "]"])


def _index_exists(raw_conn: psycopg.Connection, name: str) -> bool:
    row = raw_conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


# --- refusals -----------------------------------------------------------------------


def test_ivfflat_with_l1_is_refused_naming_hnsw() -> None:
    t = _table(Column("e", Vector(3)))
    with pytest.raises(IndexDefinitionError) as e:
        IvfflatIndex("ix", t.c.e, metric="l1")
    assert 'operator class "vector_l1_ops" does not exist for access method "ivfflat"' in str(
        e.value
    )
    assert "use HnswIndex" in str(e.value)


def test_ivfflat_with_jaccard_is_refused() -> None:
    t = _table(Column("b", Bit(64)))
    with pytest.raises(IndexDefinitionError, match='"bit_jaccard_ops" does not exist for access'):
        IvfflatIndex("ix", t.c.b, metric="jaccard")


def test_ivfflat_on_sparsevec_is_refused() -> None:
    t = _table(Column("s", SparseVec(100)))
    with pytest.raises(IndexDefinitionError, match="IVFFlat does not support sparsevec"):
        IvfflatIndex("ix", t.c.s, metric="l2")


def test_vector_beyond_2000_dimensions_suggests_halfvec_or_binary_quantize() -> None:
    t = _table(Column("e", Vector(3072, metric="cosine")))
    with pytest.raises(IndexDefinitionError) as e:
        HnswIndex("ix", t.c.e)
    msg = str(e.value)
    assert "column cannot have more than 2000 dimensions for hnsw index (vector(3072))" in msg
    assert "cast(col, HalfVec(3072))" in msg
    assert "cast(binary_quantize(col), Bit(3072))" in msg


def test_halfvec_beyond_4000_dimensions_suggests_binary_quantize() -> None:
    t = _table(Column("e", HalfVec(5000, metric="l2")))
    with pytest.raises(IndexDefinitionError) as e:
        IvfflatIndex("ix", t.c.e)
    msg = str(e.value)
    assert "column cannot have more than 4000 dimensions for ivfflat index" in msg
    assert "cast(binary_quantize(col), Bit(5000))" in msg


def test_bit_beyond_64000_dimensions_suggests_subvector() -> None:
    t = _table(Column("b", Bit(64001, metric="hamming")))
    with pytest.raises(IndexDefinitionError) as e:
        HnswIndex("ix", t.c.b)
    assert "column cannot have more than 64000 dimensions for hnsw index" in str(e.value)
    assert "subvector" in str(e.value)


def test_column_without_dimensions_is_refused() -> None:
    t = _table(Column("e", Vector(metric="l2")))
    with pytest.raises(IndexDefinitionError, match="column does not have dimensions"):
        HnswIndex("ix", t.c.e)


@pytest.mark.parametrize(
    ("kw", "fragment"),
    [
        ({"m": 1}, 'value 1 out of bounds for option "m": valid values are between "2" and "100"'),
        ({"m": 101}, 'value 101 out of bounds for option "m"'),
        ({"ef_construction": 3}, 'value 3 out of bounds for option "ef_construction"'),
        ({"ef_construction": 1001}, 'between "4" and "1000"'),
        ({"m": 16, "ef_construction": 31}, "ef_construction must be greater than or equal to 2"),
        ({"m": 40}, "(m=40, ef_construction=64); give ef_construction >= 80"),
        ({"m": True}, "m must be an int between 2 and 100, got True"),
        ({"m": "16"}, "m must be an int between 2 and 100, got '16'"),
        ({"ef_construction": 64.0}, "ef_construction must be an int between 4 and 1000"),
    ],
)
def test_hnsw_option_out_of_range_is_refused(kw: dict[str, object], fragment: str) -> None:
    t = _table(Column("e", Vector(3, metric="l2")))
    with pytest.raises(IndexDefinitionError) as e:
        HnswIndex("ix", t.c.e, **kw)  # type: ignore[arg-type]
    assert fragment in str(e.value)


def test_ef_construction_of_exactly_twice_m_is_accepted() -> None:
    t = _table(Column("e", Vector(3, metric="l2")))
    ix = HnswIndex("ix", t.c.e, m=16, ef_construction=32)
    assert ix.spec is not None and dict(ix.spec.options) == {"m": 16, "ef_construction": 32}


@pytest.mark.parametrize("lists", [0, 32769, -1])
def test_lists_out_of_range_is_refused(lists: int) -> None:
    t = _table(Column("e", Vector(3)))
    with pytest.raises(
        IndexDefinitionError, match=f'value {lists} out of bounds for option "lists"'
    ):
        IvfflatIndex("ix", t.c.e, lists=lists)


def test_multicolumn_is_refused() -> None:
    t = _table(Column("e", Vector(3)), Column("f", Vector(3)))
    with pytest.raises(
        IndexDefinitionError, match='access method "hnsw" does not support multicolumn indexes'
    ):
        validate_vector_index("hnsw", t.c.e, metric="l2", n_expressions=2)
    plain = Index("ix", t.c.e, t.c.f, postgresql_using="ivfflat")
    with pytest.raises(IndexDefinitionError, match="does not support multicolumn"):
        vector_index_spec(plain)


def test_unique_is_refused() -> None:
    t = _table(Column("e", Vector(3, metric="l2")))
    with pytest.raises(
        IndexDefinitionError, match='access method "hnsw" does not support unique indexes'
    ):
        HnswIndex("ix", t.c.e, unique=True)


def test_include_is_refused() -> None:
    t = _table(Column("e", Vector(3, metric="l2")))
    with pytest.raises(IndexDefinitionError, match="does not support included columns"):
        HnswIndex("ix", t.c.e, postgresql_include=["id"])


def test_opclass_for_another_type_is_refused_naming_the_right_one() -> None:
    t = _table(Column("e", Vector(3)))
    with pytest.raises(IndexDefinitionError) as e:
        HnswIndex("ix", t.c.e, opclass="halfvec_l2_ops")
    assert "operator class halfvec_l2_ops is for type halfvec" in str(e.value)
    assert "use vector_l2_ops" in str(e.value)


def test_opclass_contradicting_the_metric_is_refused_naming_the_right_one() -> None:
    t = _table(Column("e", Vector(3)))
    with pytest.raises(IndexDefinitionError) as e:
        HnswIndex("ix", t.c.e, metric="cosine", opclass="vector_l2_ops")
    assert "serves the 'l2' metric, not 'cosine'; for 'cosine' use vector_cosine_ops" in str(
        e.value
    )


def test_opclass_contradicting_the_declared_metric_is_refused() -> None:
    t = _table(Column("e", Vector(3, metric="inner_product")))
    with pytest.raises(IndexDefinitionError, match="for 'inner_product' use vector_ip_ops"):
        HnswIndex("ix", t.c.e, opclass="vector_cosine_ops")


def test_hnsw_without_any_metric_is_refused() -> None:
    t = _table(Column("e", Vector(3)))
    with pytest.raises(IndexDefinitionError) as e:
        HnswIndex("ix", t.c.e)
    assert 'data type vector has no default operator class for access method "hnsw"' in str(
        e.value
    )


def test_ivfflat_inner_product_on_one_dimension_is_refused() -> None:
    t = _table(Column("e", Vector(1)))
    with pytest.raises(IndexDefinitionError, match="dimensions must be greater than one"):
        IvfflatIndex("ix", t.c.e, metric="inner_product")


def test_unknown_opclass_and_unknown_metric_are_refused() -> None:
    t = _table(Column("e", Vector(3)))
    with pytest.raises(IndexDefinitionError, match="unknown pgvector operator class 'vector_dot'"):
        HnswIndex("ix", t.c.e, opclass="vector_dot")
    with pytest.raises(IndexDefinitionError, match="type vector has no 'dot' metric"):
        HnswIndex("ix", t.c.e, metric="dot")


def test_non_vector_column_is_refused() -> None:
    t = _table(Column("n", Integer))
    with pytest.raises(IndexDefinitionError, match="must be vector, halfvec, sparsevec or bit"):
        HnswIndex("ix", t.c.n, metric="l2")


def test_where_given_as_a_string_must_be_one_expression() -> None:
    t = _table(Column("e", Vector(3, metric="l2")))
    assert (
        HnswIndex("ix", t.c.e, where="cat = 1").dialect_options["postgresql"]["where"] is not None
    )
    with pytest.raises(UnsafeSQLError, match="holds a ';'"):
        HnswIndex("ix2", t.c.e, where="cat = 1; DROP TABLE doc")
    with pytest.raises(IndexDefinitionError, match="where= must be a SQL expression"):
        HnswIndex("ix3", t.c.e, where=1)  # type: ignore[arg-type]


def test_column_named_by_string_is_checked_when_attached_to_its_table() -> None:
    with pytest.raises(IndexDefinitionError, match="column does not have dimensions"):
        Table("doc", MetaData(), Column("e", Vector()), HnswIndex("ix", "e", metric="l2"))


# --- accepted forms, created on the server ---------------------------------------------


class _Base(DeclarativeBase):
    pass


def _doc_table(md: MetaData) -> Table:
    return Table(
        "doc",
        md,
        Column("id", Integer, primary_key=True),
        Column("cat", Integer),
        Column("embedding", Vector(3, metric="cosine")),
    )


def test_hnsw_on_column_with_options_and_where(
    engine: Engine, raw_conn: psycopg.Connection, vector_schema: str
) -> None:
    md = MetaData()
    t = _doc_table(md)
    HnswIndex("ix_doc", t.c.embedding, m=8, ef_construction=40, where=t.c.cat == 1)
    md.create_all(engine)
    assert _indexdef(raw_conn, "ix_doc", vector_schema) == (
        "CREATE INDEX ix_doc ON doc USING hnsw (embedding vector_cosine_ops) "
        "WITH (m='8', ef_construction='40') WHERE (cat = 1)"
    )


@pytest.mark.parametrize("mode", DRIVERS)
def test_halfvec_expression_index(
    engine: Engine, raw_conn: psycopg.Connection, vector_schema: str
) -> None:
    md = MetaData()
    t = _doc_table(md)
    HnswIndex("ix_half", cast(t.c.embedding, HalfVec(3)), metric="l2")
    md.create_all(engine)
    assert _indexdef(raw_conn, "ix_half", vector_schema) == (
        "CREATE INDEX ix_half ON doc USING hnsw (((embedding)::halfvec(3)) halfvec_l2_ops)"
    )


def test_binary_quantize_expression_index(
    engine: Engine, raw_conn: psycopg.Connection, vector_schema: str
) -> None:
    md = MetaData()
    t = _doc_table(md)
    HnswIndex("ix_bq", cast(binary_quantize(t.c.embedding), Bit(3)), metric="hamming")
    md.create_all(engine)
    assert _indexdef(raw_conn, "ix_bq", vector_schema) == (
        "CREATE INDEX ix_bq ON doc USING hnsw "
        "(((binary_quantize(embedding))::bit(3)) bit_hamming_ops)"
    )


@pytest.mark.parametrize("mode", DRIVERS)
def test_subvector_expression_index(
    engine: Engine, raw_conn: psycopg.Connection, vector_schema: str
) -> None:
    md = MetaData()
    t = _doc_table(md)
    IvfflatIndex("ix_sub", cast(subvector(t.c.embedding, 1, 2), Vector(2)), lists=1)
    md.create_all(engine)
    # IVFFlat's default opclass (vector_l2_ops) is emitted, and omitted by pg_get_indexdef
    assert _indexdef(raw_conn, "ix_sub", vector_schema) == (
        "CREATE INDEX ix_sub ON doc USING ivfflat "
        "(((subvector(embedding, 1, 2))::vector(2))) WITH (lists='1')"
    )


@pytest.mark.parametrize("mode", DRIVERS)
def test_ivfflat_cosine_on_halfvec_column(
    engine: Engine, raw_conn: psycopg.Connection, vector_schema: str
) -> None:
    md = MetaData()
    t = Table("h", md, Column("id", Integer, primary_key=True), Column("e", HalfVec(4)))
    IvfflatIndex("ix_h", t.c.e, metric="cosine", lists=2)
    md.create_all(engine)
    assert _indexdef(raw_conn, "ix_h", vector_schema) == (
        "CREATE INDEX ix_h ON h USING ivfflat (e halfvec_cosine_ops) WITH (lists='2')"
    )


@pytest.mark.parametrize("mode", DRIVERS)
def test_hnsw_l1_on_sparsevec_and_jaccard_on_bit(
    engine: Engine, raw_conn: psycopg.Connection, vector_schema: str
) -> None:
    md = MetaData()
    t = Table(
        "s",
        md,
        Column("id", Integer, primary_key=True),
        Column("sv", SparseVec(100)),
        Column("b", Bit(16, metric="jaccard")),
    )
    HnswIndex("ix_sv", t.c.sv, metric="l1")
    HnswIndex("ix_b", t.c.b)
    md.create_all(engine)
    assert _indexdef(raw_conn, "ix_sv", vector_schema) == (
        "CREATE INDEX ix_sv ON s USING hnsw (sv sparsevec_l1_ops)"
    )
    assert _indexdef(raw_conn, "ix_b", vector_schema) == (
        "CREATE INDEX ix_b ON s USING hnsw (b bit_jaccard_ops)"
    )


def test_orm_table_args_with_column_name(
    engine: Engine, raw_conn: psycopg.Connection, vector_schema: str
) -> None:
    class Base(DeclarativeBase):
        pass

    class Doc(Base):
        __tablename__ = "orm_doc"
        id: Mapped[int] = mapped_column(primary_key=True)
        embedding: Mapped[np.ndarray] = mapped_column(Vector(3, metric="inner_product"))
        __table_args__ = (HnswIndex("ix_orm", "embedding", m=4, ef_construction=8),)

    Base.metadata.create_all(engine)
    assert _indexdef(raw_conn, "ix_orm", vector_schema) == (
        "CREATE INDEX ix_orm ON orm_doc USING hnsw (embedding vector_ip_ops) "
        "WITH (m='4', ef_construction='8')"
    )


def test_create_and_drop_one_index(engine: Engine, raw_conn: psycopg.Connection) -> None:
    md = MetaData()
    t = _doc_table(md)
    md.create_all(engine)
    ix = HnswIndex("ix_later", t.c.embedding)
    ix.create(engine)
    assert _index_exists(raw_conn, "ix_later")
    ix.drop(engine)
    assert not _index_exists(raw_conn, "ix_later")


# --- CONCURRENTLY -----------------------------------------------------------------------


def test_concurrently_builds_outside_a_transaction(
    engine: Engine, raw_conn: psycopg.Connection, vector_schema: str
) -> None:
    md = MetaData()
    t = _doc_table(md)
    md.create_all(engine)
    seen: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _record(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        seen.append(statement.strip())

    ix = HnswIndex("ix_conc", t.c.embedding, concurrently=True)
    ix.create(engine)
    assert "CREATE INDEX CONCURRENTLY ix_conc ON doc USING hnsw (embedding vector_cosine_ops)" in (
        seen
    )
    valid = raw_conn.execute(
        "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('ix_conc')"
    ).fetchone()
    assert valid == (True,)
    ix.drop(engine)
    assert "DROP INDEX CONCURRENTLY ix_conc" in seen
    assert not _index_exists(raw_conn, "ix_conc")


def test_concurrently_index_is_built_plainly_by_create_all(
    engine: Engine, raw_conn: psycopg.Connection, vector_schema: str
) -> None:
    md = MetaData()
    t = _doc_table(md)
    HnswIndex("ix_conc", t.c.embedding, concurrently=True)
    md.create_all(engine)  # one transaction: the new table is invisible to others
    assert _indexdef(raw_conn, "ix_conc", vector_schema) == (
        "CREATE INDEX ix_conc ON doc USING hnsw (embedding vector_cosine_ops)"
    )


def test_concurrently_on_a_connection_in_a_transaction_is_refused_before_sending(
    engine: Engine, raw_conn: psycopg.Connection
) -> None:
    md = MetaData()
    t = _doc_table(md)
    md.create_all(engine)
    ix = HnswIndex("ix_conc", t.c.embedding, concurrently=True)
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
        with pytest.raises(IndexDefinitionError, match="cannot run inside a transaction block"):
            ix.create(conn)
    assert not _index_exists(raw_conn, "ix_conc")


def test_concurrently_on_an_autocommit_connection(
    engine: Engine, raw_conn: psycopg.Connection
) -> None:
    md = MetaData()
    t = _doc_table(md)
    md.create_all(engine)
    ix = HnswIndex("ix_conc", t.c.embedding, concurrently=True)
    with engine.connect() as conn:
        ix.create(conn.execution_options(isolation_level="AUTOCOMMIT"))
    assert _index_exists(raw_conn, "ix_conc")


def test_failed_concurrent_build_leaves_no_invalid_index(
    engine: Engine, raw_conn: psycopg.Connection
) -> None:
    md = MetaData()
    t = Table("sp", md, Column("id", Integer, primary_key=True), Column("sv", SparseVec(2000)))
    md.create_all(engine)
    too_dense = SparseVector(dict.fromkeys(range(1001), 1.0), 2000)
    with engine.begin() as conn:
        conn.execute(t.insert(), {"id": 1, "sv": too_dense})
    ix = HnswIndex("ix_sp", t.c.sv, metric="l2", concurrently=True)
    with pytest.raises(DBAPIError) as e:
        ix.create(engine)
    assert "sparsevec cannot have more than 1000 non-zero elements for hnsw index" in str(e.value)
    assert "the INVALID index 'ix_sp' the failed build left was dropped" in e.value.__notes__
    assert not _index_exists(raw_conn, "ix_sp")


# --- progress and build settings ----------------------------------------------------------


def _assert_hnsw_progress(samples: list[BuildProgress]) -> None:
    phases = {s.phase for s in samples}
    assert "building index: loading tuples" in phases
    loading = [s for s in samples if s.phase == "building index: loading tuples"]
    assert all(0 <= s.done <= s.total for s in loading if s.total)
    assert {s.unit for s in loading} == {"blocks"}


@pytest.mark.parametrize("mode", DRIVERS)
def test_build_progress_is_reported_from_a_second_connection(
    engine: Engine, raw_conn: psycopg.Connection
) -> None:
    _load_random(raw_conn, "big", 3000, 32)
    t = Table("big", MetaData(), Column("e", Vector(32)))
    ix = HnswIndex("ix_big", t.c.e, metric="l2")
    samples: list[BuildProgress] = []
    threads_before = threading.active_count()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # the watcher worked
        build_vector_index(engine, ix, progress=samples.append, poll_interval=0.005)
    assert threading.active_count() == threads_before
    assert _index_exists(raw_conn, "ix_big")
    _assert_hnsw_progress(samples)


def test_build_goes_on_with_a_warning_when_progress_cannot_be_read(
    vector_database_url: str, vector_schema: str, raw_conn: psycopg.Connection
) -> None:
    _load_random(raw_conn, "big", 300, 8)
    t = Table("big", MetaData(), Column("e", Vector(8)))
    # one connection in the pool: the watcher gets none
    engine = make_engine(
        vector_database_url, vector_schema, "plugin", pool_size=1, max_overflow=0,
        pool_timeout=0.05,
    )  # fmt: skip
    try:
        with pytest.warns(RuntimeWarning, match="cannot show the progress of the build of "):
            build_vector_index(engine, HnswIndex("ix_big", t.c.e, metric="l2"), progress=True)
    finally:
        engine.dispose()
    assert _index_exists(raw_conn, "ix_big")


@pytest.mark.parametrize("mode", ["plugin", "asyncpg"])
async def test_async_build_with_progress_and_concurrently(
    vector_database_url: str, vector_schema: str, raw_conn: psycopg.Connection, mode: str
) -> None:
    """psycopg async and asyncpg: ``build_vector_index_async`` on an AsyncEngine and an
    AsyncConnection, and ``run_sync`` of ``create`` / ``drop``."""
    _load_random(raw_conn, "big", 3000, 32)
    t = Table("big", MetaData(), Column("e", Vector(32)))
    engine = make_async_engine(vector_database_url, vector_schema, mode)
    try:
        samples: list[BuildProgress] = []
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            await build_vector_index_async(
                engine,
                HnswIndex("ix_big", t.c.e, metric="l2", concurrently=True),
                progress=samples.append,
                poll_interval=0.005,
            )
        _assert_hnsw_progress(samples)
        valid = raw_conn.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('ix_big')"
        ).fetchone()
        assert valid == (True,)
        _load_random(raw_conn, "small", 50, 4)
        small = Table("small", MetaData(), Column("e", Vector(4)))
        async with engine.connect() as conn:
            await build_vector_index_async(
                conn, HnswIndex("ix_tx", small.c.e, metric="cosine"), progress=False
            )
            await conn.rollback()
        assert not _index_exists(raw_conn, "ix_tx")  # built in the caller's transaction
        conc = HnswIndex("ix_conc", small.c.e, metric="l1", concurrently=True)
        async with engine.connect() as conn:
            with pytest.raises(IndexDefinitionError, match="cannot run inside a transaction"):
                await conn.run_sync(conc.create)
        async with engine.connect() as conn:
            auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await auto.run_sync(conc.create)
            assert _index_exists(raw_conn, "ix_conc")
            await auto.run_sync(conc.drop)
        assert not _index_exists(raw_conn, "ix_conc")
        with pytest.raises(TypeError, match="expected an AsyncEngine or AsyncConnection"):
            await build_vector_index_async(engine.sync_engine, conc)  # type: ignore[arg-type]
    finally:
        await engine.dispose()


def test_build_progress_bar_is_drawn_with_tqdm(
    vector_engine: Engine, raw_conn: psycopg.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    _load_random(raw_conn, "big2", 3000, 32)
    t = Table("big2", MetaData(), Column("e", Vector(32)))
    ix = HnswIndex("ix_big2", t.c.e, metric="l2")
    build_vector_index(vector_engine, ix, progress=True, poll_interval=0.005)
    assert "ix_big2: building index" in capsys.readouterr().err


def test_build_without_tqdm_builds_without_a_bar(
    vector_engine: Engine,
    raw_conn: psycopg.Connection,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # import raises ImportError
    with pytest.raises(ImportError):
        import tqdm.auto  # noqa: F401
    _load_random(raw_conn, "big3", 300, 8)
    t = Table("big3", MetaData(), Column("e", Vector(8)))
    threads_before = threading.active_count()
    build_vector_index(vector_engine, HnswIndex("ix_big3", t.c.e, metric="l2"), progress=True)
    assert _index_exists(raw_conn, "ix_big3")
    assert threading.active_count() == threads_before
    assert "ix_big3" not in capsys.readouterr().err


def test_hnsw_memory_estimate_matches_where_pgvector_says_the_graph_stops_fitting(
    raw_conn: psycopg.Connection,
) -> None:
    notices: list[str] = []
    raw_conn.add_notice_handler(lambda d: notices.append(str(d.message_primary)))
    _load_random(raw_conn, "est", 1000, 128)
    raw_conn.execute("SET maintenance_work_mem = '1MB'")
    raw_conn.execute("CREATE INDEX ON est USING hnsw (e vector_l2_ops)")
    found = [re.search(r"after (\d+) tuples", n) for n in notices]
    tuples = next(int(m.group(1)) for m in found if m)
    per_element = index_build_settings(1, 128).graph_bytes
    assert per_element == pytest.approx(1024 * 1024 / tuples, rel=0.1)


def test_build_settings_scale_with_rows_and_say_their_basis() -> None:
    small = index_build_settings(10_000, 768)
    large = index_build_settings(1_000_000, 768, cpus=8)
    assert large.graph_bytes == pytest.approx(100 * small.graph_bytes, rel=1e-6)
    assert large.maintenance_work_mem == int(large.graph_bytes * 1.25)
    assert small.maintenance_work_mem == 64 * 1024 * 1024  # floor: PostgreSQL's default
    assert large.max_parallel_maintenance_workers == 7
    assert small.max_parallel_maintenance_workers == 0
    assert "src/hnsw.h" in large.basis
    ivf = index_build_settings(1_000_000, 768, method="ivfflat", lists=1000)
    assert "k-means" in ivf.basis
    with pytest.raises(ValueError, match="rows must be a positive int, got 0"):
        index_build_settings(0, 768)


# --- specs ----------------------------------------------------------------------------


def test_spec_of_a_plain_sqlalchemy_index() -> None:
    t = _table(Column("e", Vector(3)))
    plain = Index(
        "ix",
        t.c.e,
        postgresql_using="hnsw",
        postgresql_ops={"e": "vector_ip_ops"},
        postgresql_with={"m": 24},
    )
    spec = vector_index_spec(plain)
    assert spec is not None
    assert (spec.method, spec.sql_type, spec.dim, spec.metric, spec.opclass) == (
        "hnsw",
        "vector",
        3,
        "inner_product",
        "vector_ip_ops",
    )
    assert dict(spec.options) == {"m": 24}
    assert spec.expression is t.c.e


def test_spec_of_a_plain_ivfflat_index_without_opclass_has_the_default_opclass() -> None:
    t = _table(Column("e", Vector(3)))
    spec = vector_index_spec(Index("ix", t.c.e, postgresql_using="ivfflat"))
    assert spec is not None
    assert (spec.metric, spec.opclass) == ("l2", "vector_l2_ops")


def test_plain_ivfflat_index_without_opclass_on_a_column_of_another_metric_is_refused() -> None:
    # the DDL names no opclass, so PostgreSQL builds vector_l2_ops, whatever the column declares
    t = _table(Column("e", Vector(3, metric="cosine")))
    plain = Index("ix", t.c.e, postgresql_using="ivfflat")
    with pytest.raises(IndexDefinitionError) as e:
        vector_index_spec(plain)
    assert str(e.value) == (
        "IVFFlat index: the index names no operator class, so PostgreSQL builds "
        "vector_l2_ops ('l2'), but the column type declares 'cosine'; name the operator "
        'class: postgresql_ops={"e": "vector_cosine_ops"} (or "vector_l2_ops" to index by '
        "'l2' deliberately), or declare IvfflatIndex, which takes the column type's metric"
    )


@pytest.mark.parametrize("method", ["hnsw", "ivfflat"])
def test_plain_index_naming_an_opclass_serves_its_metric_whatever_the_column_declares(
    method: str,
) -> None:
    t = _table(Column("e", Vector(3, metric="cosine")))
    plain = Index("ix", t.c.e, postgresql_using=method, postgresql_ops={"e": "vector_l2_ops"})
    spec = vector_index_spec(plain)
    assert spec is not None
    assert (spec.method, spec.metric, spec.opclass) == (method, "l2", "vector_l2_ops")
    [problem] = check_query(select(t.c.e).order_by(t.c.e.distance([1, 2, 3])).limit(3))
    assert "serves l2 (<->) but the query orders by cosine (<=>)" in str(problem)
    assert check_query(select(t.c.e).order_by(t.c.e.l2_distance([1, 2, 3])).limit(3)) == []


def test_plain_index_naming_an_opclass_of_another_type_is_refused() -> None:
    t = _table(Column("e", Vector(3, metric="cosine")))
    plain = Index("ix", t.c.e, postgresql_using="hnsw", postgresql_ops={"e": "halfvec_l2_ops"})
    with pytest.raises(IndexDefinitionError, match="operator class halfvec_l2_ops is for type"):
        vector_index_spec(plain)


def test_spec_of_a_plain_hnsw_index_without_opclass_is_refused_as_by_the_server(
    engine: Engine, mode: str
) -> None:
    t = _table(Column("e", Vector(3, metric="cosine")), name="plain_hnsw")
    plain = Index("ix_plain_hnsw", t.c.e, postgresql_using="hnsw")
    message = 'data type vector has no default operator class for access method "hnsw"'
    with pytest.raises(IndexDefinitionError) as e:
        vector_index_spec(plain)
    assert message in str(e.value)
    # vecalchemy's dialects refuse it before sending; a plain engine gets the server's
    refused = DBAPIError if mode in ("text", "asyncpg-text") else IndexDefinitionError
    with pytest.raises(refused) as server:
        t.metadata.create_all(engine)
    assert message in str(server.value)


def test_spec_of_a_btree_index_is_none() -> None:
    t = _table(Column("n", Integer))
    assert vector_index_spec(Index("ix", t.c.n)) is None


def test_reflected_indexes_give_the_declared_specs(
    engine: Engine, raw_conn: psycopg.Connection
) -> None:
    md = MetaData()
    t = _doc_table(md)
    declared = [
        HnswIndex("r_col", t.c.embedding, m=8, ef_construction=40),
        HnswIndex("r_half", cast(t.c.embedding, HalfVec(3)), metric="l2", where=t.c.cat == 1),
        IvfflatIndex("r_ivf", t.c.embedding, metric="l2", lists=3),
        HnswIndex("r_bq", cast(binary_quantize(t.c.embedding), Bit(3)), metric="jaccard"),
    ]
    md.create_all(engine)
    reflected = Table("doc", MetaData(), autoload_with=engine)
    by_name = {ix.name: vector_index_spec(ix) for ix in reflected.indexes}
    for ix in declared:
        want, got = ix.spec, by_name[ix.name]
        assert want is not None and got is not None
        assert (got.method, got.sql_type, got.dim, got.metric, got.opclass) == (
            want.method,
            want.sql_type,
            want.dim,
            want.metric,
            want.opclass,
        )
        assert dict(got.options) == dict(want.options)
        assert (got.where is None) == (want.where is None)


# --- plain Index objects: the rules hold when the index is created ----------------------


def _plain_indexes() -> tuple[MetaData, Table, dict[str, Index]]:
    md = MetaData()
    t = Table(
        "pix",
        md,
        Column("id", Integer, primary_key=True),
        Column("a", Vector(3)),
        Column("b", Vector(3, metric="cosine")),
    )
    bad = {
        "multicolumn": Index(
            "pix_two",
            t.c.a,
            t.c.b,
            postgresql_using="hnsw",
            postgresql_ops={"a": "vector_l2_ops", "b": "vector_cosine_ops"},
        ),
        "default opclass against the declared metric": Index(
            "pix_ivf", t.c.b, postgresql_using="ivfflat"
        ),
    }
    return md, t, bad


@pytest.mark.parametrize("case", ["multicolumn", "default opclass against the declared metric"])
@pytest.mark.parametrize("how", ["create_all", "index.create"])
def test_a_plain_vector_index_pgvector_would_refuse_is_refused_when_created(
    vector_database_url: str, vector_schema: str, case: str, how: str
) -> None:
    eng = make_engine(vector_database_url, vector_schema, "plugin")
    md, t, bad = _plain_indexes()
    for name, index in bad.items():
        if name != case:
            t.indexes.discard(index)
    try:
        with pytest.raises(IndexDefinitionError) as err:
            if how == "create_all":
                md.create_all(eng)
            else:
                t.create(eng)
                bad[case].create(eng)
        assert ("multicolumn" in str(err.value)) == (case == "multicolumn")
        with eng.connect() as conn:
            names = (
                conn.execute(text("SELECT indexname FROM pg_indexes WHERE tablename = 'pix'"))
                .scalars()
                .all()
            )
        assert bad[case].name not in names
    finally:
        md.drop_all(eng)
        eng.dispose()
