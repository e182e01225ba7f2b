"""SQL that vecalchemy writes by hand: names checked and quoted once, statements sent as
written, and a developer's WHERE text checked to be one expression.

vecalchemy builds a few statements itself (``COPY``, ``CREATE INDEX`` of the Alembic
ops, ``CREATE EXTENSION``, ``DROP INDEX`` after a failed build). Every identifier in them
goes through :func:`quote` (SQLAlchemy's preparer decides whether to quote, and the name
is written exactly, ``%`` and ``:`` included); every value is bound; the statement runs as
a :class:`Statement`, which SQLAlchemy sends unparsed (no ``text()`` reading ``:name`` as a
parameter or ``\\:`` as an escape), with percent signs escaped for the driver's
paramstyle at compile time only.

Names are checked when declared (:func:`check_identifier`): PostgreSQL keeps at most 63
bytes of an identifier (``NAMEDATALEN - 1``, src/include/pg_config_manual.h) and
truncates longer ones with only a NOTICE, and cannot hold a NUL byte.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import ExecutableDDLElement
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.elements import TextClause

from .exc import InvalidIdentifierError, UnsafeSQLError
from .facts import MAX_IDENTIFIER_BYTES

__all__ = [
    "check_identifier",
    "quote",
    "qualified",
    "table_name",
    "regclass_text",
    "Statement",
    "escape_percents",
    "check_expression_sql",
    "check_where",
    "exact_sql",
]


def check_identifier(name: Any, what: str) -> str:
    """``name`` if PostgreSQL holds it exactly as given; otherwise
    :class:`~vecalchemy.exc.InvalidIdentifierError` naming ``what`` (``"index name"``):
    not a ``str``, empty, holding a NUL byte, or over 63 bytes of UTF-8 (the server
    would silently truncate it)."""
    if not isinstance(name, str):
        raise InvalidIdentifierError(f"{what} must be a str, got {type(name).__name__} {name!r}")
    if not name:
        raise InvalidIdentifierError(
            f"{what} is empty; PostgreSQL refuses a zero-length delimited identifier"
        )
    if "\x00" in name:
        raise InvalidIdentifierError(
            f"{what} {name!r} contains a NUL byte, which a PostgreSQL identifier cannot hold"
        )
    size = len(name.encode("utf-8"))
    if size > MAX_IDENTIFIER_BYTES:
        raise InvalidIdentifierError(
            f"{what} {name!r} is {size} bytes in UTF-8; PostgreSQL keeps at most "
            f"{MAX_IDENTIFIER_BYTES} (NAMEDATALEN - 1) and would silently truncate it"
        )
    return name


#: control characters, written as Unicode escapes in a quoted identifier so that no
#: tool between here and the server changes them (Alembic's ``--sql`` output turns a tab
#: into four spaces)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def quote(dialect: Dialect, name: str) -> str:
    """``name`` as an identifier in SQL: bare when SQLAlchemy's preparer leaves it bare
    (lower-case, not reserved), otherwise double-quoted with ``"`` doubled, and with
    control characters as ``U&"..."`` escapes (``U&"a\\0009b"`` for a tab). Unlike the
    preparer's own output, ``%`` is not doubled: the text is exact, for statements that
    no paramstyle reads (COPY) and for :class:`Statement`, which escapes at compile."""
    # SQLAlchemy's legal-characters pattern ends in ``$``, which also matches before a
    # final newline: a name with a control character is never left bare
    if _CONTROL.search(name) is None and dialect.identifier_preparer.quote(name) == name:
        return name
    quoted = name.replace('"', '""')
    if not _CONTROL.search(name):
        return f'"{quoted}"'
    escaped = _CONTROL.sub(lambda m: f"\\{ord(m[0]):04x}", quoted.replace("\\", "\\\\"))
    return f'U&"{escaped}"'


def qualified(dialect: Dialect, name: str, schema: str | None) -> str:
    """``schema.name`` (or ``name``), each quoted by :func:`quote`."""
    return f"{quote(dialect, schema)}.{quote(dialect, name)}" if schema else quote(dialect, name)


def regclass_text(name: str, schema: str | None = None) -> str:
    """``"schema"."name"`` as ``regclass`` input reads it (a bound value for
    ``to_regclass(:name)`` / ``CAST(:name AS regclass)``): always double-quoted, ``"``
    doubled, nothing else escaped (``regclass`` input knows no ``U&"..."`` form)."""
    parts = [schema, name] if schema else [name]
    return ".".join('"' + p.replace('"', '""') + '"' for p in parts)


def table_name(dialect: Dialect, table: Table) -> str:
    """The quoted, schema-qualified name of ``table`` (exact text, see :func:`quote`)."""
    return qualified(dialect, table.name, table.schema)


def escape_percents(dialect: Dialect, sql: str) -> str:
    """``sql`` as the driver must receive it, with no parameters, to run ``sql``: ``%``
    doubled for the ``format``/``pyformat`` paramstyles of psycopg and psycopg2 (they
    read ``%%`` as ``%``); unchanged for asyncpg, for pg8000 (which sends a statement
    without parameters as it is) and for the ``named`` paramstyle of Alembic's offline
    SQL."""
    if dialect.driver != "pg8000" and dialect.paramstyle in ("format", "pyformat"):
        return sql.replace("%", "%%")
    return sql


class Statement(ExecutableDDLElement):
    """One statement vecalchemy wrote from checked, quoted parts; SQLAlchemy sends it as
    written (no bind parameters are parsed from it), percent signs escaped for the
    driver. ``conn.execute(Statement(sql))`` and Alembic's ``op.execute`` run it.
    ``for_script=True`` compiles to ``sql`` itself, for SQL printed rather than sent
    (Alembic's ``--sql`` output, read by psql whatever the dialect's paramstyle)."""

    inherit_cache = False

    def __init__(self, sql: str, *, for_script: bool = False) -> None:
        self.sql = sql
        self.for_script = for_script


@compiles(Statement)
def _compile_statement(element: Statement, compiler: Any, **kw: Any) -> str:
    if element.for_script:
        return element.sql
    return escape_percents(compiler.dialect, element.sql)


# --- a developer's SQL text: one expression ------------------------------------------

#: tokens that can hide a ``;`` or a parenthesis, in PostgreSQL's lexer
#: (src/backend/parser/scan.l): comments, quoted identifiers, string constants, dollar
#: quotes; an identifier may hold ``$`` (``a$b``), which then starts no dollar quote
_TOKEN = re.compile(
    r"""
      (?P<line_comment>--)
    | (?P<block_comment>/\*)
    | (?P<ident>[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_$\x80-\U0010ffff]*)
    | (?P<dollar>\$(?:[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_\x80-\U0010ffff]*)?\$)
    | (?P<qident>")
    | (?P<string>')
    | (?P<other>[\s\S])
    """,
    re.VERBOSE,
)


def _skip_string(sql: str, i: int, backslash: bool) -> int:
    """Index after the string constant whose opening quote is at ``i - 1``."""
    n = len(sql)
    while i < n:
        c = sql[i]
        if backslash and c == "\\":
            i += 2
            continue
        if c == "'":
            if i + 1 < n and sql[i + 1] == "'":
                i += 2
                continue
            return i + 1
        i += 1
    raise UnsafeSQLError("an unterminated string constant")


def _skip_block_comment(sql: str, i: int) -> int:
    depth = 1
    n = len(sql)
    while i < n:
        if sql.startswith("/*", i):
            depth += 1
            i += 2
        elif sql.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    raise UnsafeSQLError("an unterminated /* comment")


def _scan(sql: str, standard_strings: bool) -> None:
    """Walk ``sql`` as PostgreSQL's lexer would; raise :class:`UnsafeSQLError` at a
    ``;``, a ``--`` comment, an unbalanced parenthesis or anything unterminated.
    ``standard_strings`` is the server's ``standard_conforming_strings``: off, a
    backslash escapes a quote in every string constant, not only in ``E'...'``."""
    depth = 0
    i = 0
    n = len(sql)
    prev_ident = ""
    while i < n:
        m = _TOKEN.match(sql, i)
        assert m is not None
        kind = m.lastgroup
        i = m.end()
        ident = ""
        if kind == "line_comment":
            raise UnsafeSQLError("a -- comment (it would swallow the rest of the statement)")
        if kind == "block_comment":
            i = _skip_block_comment(sql, i)
        elif kind == "ident":
            # E'...' only for an E that starts its token (1e'...' is a number, then junk)
            start = m.start()
            before = sql[start - 1] if start > 0 else " "
            after_word = before.isalnum() or before in "_$." or ord(before) > 127
            ident = "" if after_word else m[0]
        elif kind == "dollar":
            end = sql.find(m[0], i)
            if end < 0:
                raise UnsafeSQLError(f"an unterminated dollar-quoted string ({m[0]})")
            i = end + len(m[0])
        elif kind == "qident":
            end = sql.find('"', i)
            while end >= 0 and sql.startswith('""', end):
                end = sql.find('"', end + 2)
            if end < 0:
                raise UnsafeSQLError("an unterminated quoted identifier")
            i = end + 1
        elif kind == "string":
            escapes = not standard_strings or prev_ident.lower() == "e"
            i = _skip_string(sql, i, escapes)
        else:
            c = m[0]
            if c == ";":
                raise UnsafeSQLError("a ';' (a second statement)")
            if c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
                if depth < 0:
                    raise UnsafeSQLError("a ')' that closes a parenthesis it did not open")
        prev_ident = ident
    if depth:
        raise UnsafeSQLError(f"{depth} unclosed parenthesis(es)")


def check_expression_sql(sql: Any, what: str) -> str:
    """``sql`` if it can only be one SQL expression inside the statement vecalchemy
    writes around it; :class:`~vecalchemy.exc.UnsafeSQLError` otherwise (raised before
    anything is sent).

    Refused: anything but a ``str``, empty text, a NUL byte, a ``;`` outside quotes and
    comments (a second statement), a ``--`` comment, a ``)`` closing what the text did
    not open (it would end the surrounding clause), and unterminated quotes, comments or
    parentheses. Checked for both settings of ``standard_conforming_strings``, so text
    that is one expression under one reading and two statements under the other is
    refused.
    """
    if not isinstance(sql, str):
        raise UnsafeSQLError(f"{what} must be SQL text (str), got {type(sql).__name__}")
    if not sql.strip():
        raise UnsafeSQLError(f"{what} is empty; expected one SQL expression")
    if "\x00" in sql:
        raise UnsafeSQLError(f"{what} {sql!r} contains a NUL byte")
    for standard in (True, False):
        try:
            _scan(sql, standard)
        except UnsafeSQLError as e:
            raise UnsafeSQLError(
                f"{what} must be one SQL expression; {sql!r} holds {e}. Nothing was sent"
            ) from None
    return sql


def check_where(where: Any, what: str = "where=") -> Any:
    """A WHERE clause as given: a SQLAlchemy expression as is; SQL text (``str`` or
    ``text()``) checked by :func:`check_expression_sql`; ``None`` as is."""
    if where is None:
        return None
    if isinstance(where, TextClause):
        check_expression_sql(where.text, what)
        return where
    if isinstance(where, ClauseElement):
        return where
    check_expression_sql(where, what)
    return where


_NAMED_TWINS: dict[type[Dialect], Dialect] = {}


def exact_sql(element: ClauseElement, dialect: Dialect, **compile_kwargs: Any) -> str:
    """The SQL of ``element`` as the server must read it: compiled by a twin of
    ``dialect`` with the ``named`` paramstyle and ``literal_binds``, so nothing in it is
    escaped for a driver (``LIKE 'a%'`` stays ``'a%'``, ``text("a \\\\:b")`` is
    ``a :b``). For statements sent as :class:`Statement`. A bind parameter without a
    value raises SQLAlchemy's ``CompileError``."""
    twin = _NAMED_TWINS.get(type(dialect))
    if twin is None:
        make: Any = type(dialect)
        twin = _NAMED_TWINS.setdefault(type(dialect), make(paramstyle="named"))
    kw = {"literal_binds": True, **compile_kwargs}
    return str(element.compile(dialect=twin, compile_kwargs=kw))
