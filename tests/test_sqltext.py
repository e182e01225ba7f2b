"""vecalchemy.sqltext: identifier checks and quoting, WHERE text as one expression."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from vecalchemy import HnswIndex, IvfflatIndex, Vector
from vecalchemy.exc import InvalidIdentifierError, UnsafeSQLError
from vecalchemy.sqltext import (
    Statement,
    check_expression_sql,
    check_identifier,
    escape_percents,
    quote,
    regclass_text,
)

DIALECT = postgresql.dialect()


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "zero-length"),
        ("a\x00b", "NUL byte"),
        ("x" * 64, "64 bytes"),
        ("é" * 32, "64 bytes"),  # 32 characters, 64 bytes: SQLAlchemy counts characters
        (None, "must be a str"),
        (b"ix", "must be a str"),
    ],
)
def test_check_identifier_refuses_what_postgresql_would_not_hold(
    name: object, fragment: str
) -> None:
    with pytest.raises(InvalidIdentifierError, match=fragment):
        check_identifier(name, "index name")


@pytest.mark.parametrize("name", ["x" * 63, "é" * 31 + "x", "ix%1", "a\\:b", 'q"x', " ", "名前"])
def test_check_identifier_accepts_every_name_postgresql_holds(name: str) -> None:
    assert check_identifier(name, "index name") == name


@pytest.mark.parametrize(
    ("name", "quoted"),
    [
        ("plain", "plain"),
        ("Mixed", '"Mixed"'),
        ("select", '"select"'),
        ("ix%1", '"ix%1"'),  # not "ix%%1": the text is exact
        ('q"x', '"q""x"'),
        ("a\tb", 'U&"a\\0009b"'),
        ("a\\b\nc", 'U&"a\\\\b\\000ac"'),
        ("a\n", 'U&"a\\000a"'),  # once bare: SQLAlchemy's legal-name pattern ends in $
    ],
)
def test_quote_writes_the_name_exactly(name: str, quoted: str) -> None:
    assert quote(DIALECT, name) == quoted


def test_regclass_text_is_always_double_quoted() -> None:
    assert regclass_text("t%1", None) == '"t%1"'
    assert regclass_text('a"b', "S") == '"S"."a""b"'


@pytest.mark.parametrize(
    ("driver", "expected"),
    [("psycopg", "LIKE 'a%%'"), ("psycopg2", "LIKE 'a%%'"), ("pg8000", "LIKE 'a%'"),
     ("asyncpg", "LIKE 'a%'")],
)  # fmt: skip
def test_statements_escape_percent_signs_for_the_driver_only(driver: str, expected: str) -> None:
    dialect = sa.create_engine(f"postgresql+{driver}://").dialect
    assert escape_percents(dialect, "LIKE 'a%'") == expected
    assert str(Statement("LIKE 'a%'").compile(dialect=dialect)) == expected
    assert str(Statement("LIKE 'a%'", for_script=True).compile(dialect=dialect)) == "LIKE 'a%'"


@pytest.mark.parametrize(
    "sql",
    [
        "cat = 1",
        "title LIKE 'a%'",
        "x % 2 = 0",
        "(a) AND (b)",
        "title = 'it''s'",
        "title = E'it\\'s'",
        "t = $$a;b$$",
        "t = $x$ ) ; $x$",
        '"a;b" = 1',
        "a /* ; ) /* nested */ */ = 1",
        "a$b = 1",
        "e::text ~ '^a;'",
    ],
)
def test_one_expression_is_accepted(sql: str) -> None:
    assert check_expression_sql(sql, "where=") == sql


@pytest.mark.parametrize(
    ("sql", "fragment"),
    [
        ("true; DROP TABLE t; --", "';'"),
        ("1=1 --", "-- comment"),
        ("a) OR (b", "closes a parenthesis"),
        ("(a", "unclosed"),
        ("'abc", "unterminated string"),
        ("a /* ", "unterminated /\\*"),
        ("$x$ abc", "unterminated dollar"),
        ('"abc', "unterminated quoted identifier"),
        # one expression with standard_conforming_strings on, two statements off
        ("title = '\\''; DROP TABLE t; SELECT '", "';'"),
        ("x = 'it\\'; DROP TABLE t; --'", "';'"),
        ("1e'\\'; drop'", "';'"),
        # an astral character is part of an identifier: 🙂E'...' is a plain string there
        ("\U0001f642E'\\' ; CREATE TABLE pwned (); --'", "';'"),
        ("", "empty"),
        ("a\x00", "NUL"),
    ],
)
def test_more_than_one_expression_is_refused(sql: str, fragment: str) -> None:
    with pytest.raises(UnsafeSQLError, match=fragment):
        check_expression_sql(sql, "where=")


@pytest.mark.parametrize("cls", [HnswIndex, IvfflatIndex])
def test_declared_index_takes_where_text_as_one_expression(cls: type) -> None:
    t = sa.Table("items", sa.MetaData(), sa.Column("id", sa.Integer), sa.Column("e", Vector(3)))
    ix = cls("ix", t.c.e, metric="l2", where="id > 0")
    ddl = str(sa.schema.CreateIndex(ix).compile(dialect=DIALECT))
    assert ddl.endswith("WHERE id > 0")
    with pytest.raises(UnsafeSQLError, match="one SQL expression"):
        cls("ix2", t.c.e, metric="l2", where="true; DROP TABLE items")
    with pytest.raises(UnsafeSQLError, match="one SQL expression"):
        cls("ix3", t.c.e, metric="l2", where=sa.text("true) WITH (m = 2"))
    with pytest.raises(InvalidIdentifierError, match="64 bytes"):
        cls("é" * 32, t.c.e, metric="l2")


def test_alembic_key_text_must_be_one_expression() -> None:
    import io

    import vecalchemy_alembic.ops  # noqa: F401  (registers the operations)
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    buffer = io.StringIO()
    ctx = MigrationContext.configure(
        dialect_name="postgresql", opts={"as_sql": True, "output_buffer": buffer}
    )
    op = Operations(ctx)
    op.create_vector_index("ix", "t", sa.text("(e::halfvec(3))"), opclass="halfvec_l2_ops")
    assert "USING hnsw (((e::halfvec(3))) halfvec_l2_ops)" in buffer.getvalue()
    with pytest.raises(UnsafeSQLError, match="the index key must be one SQL expression"):
        op.create_vector_index(
            "ix2", "t", sa.text("(e)); DROP TABLE t; --"), opclass="vector_l2_ops"
        )
    assert "DROP TABLE" not in buffer.getvalue()


def test_plain_index_text_expression_must_be_one_expression() -> None:
    from vecalchemy import vector_index_spec

    ix = sa.Index(
        "ix",
        sa.text("(e::halfvec(3)); DROP TABLE items"),
        postgresql_using="hnsw",
        postgresql_ops={"(e::halfvec(3)); DROP TABLE items": "halfvec_l2_ops"},
    )
    with pytest.raises(UnsafeSQLError):
        vector_index_spec(ix)
