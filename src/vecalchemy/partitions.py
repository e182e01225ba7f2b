"""Partitioned tables: the partition key of a Table, partitions per tenant, and the
per-tenant top-k that PostgreSQL prunes to one partition.

pgvector's README ("Filtering") recommends partial indexes for a few values of a filter
column and partitioning for many, such as tenants: each partition then holds
its own vector index, and a query whose WHERE clause fixes the partition key scans only
that partition's index (PostgreSQL's partition pruning, "Declarative Partitioning" and
"Partition Pruning" in the PostgreSQL documentation).

A vector index declared on the parent (``HnswIndex`` / ``IvfflatIndex`` on a Table with
``postgresql_partition_by``) is a partitioned index: PostgreSQL creates it on every
partition created later, :func:`create_tenant_partition` included.

Partition bounds cannot be bind parameters in DDL: :func:`partition_statement` renders
each bound as a literal of the partition key column's type, checked first.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, Table, literal
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import (
    BigInteger,
    DateTime,
    Integer,
    SmallInteger,
    String,
    TypeDecorator,
    TypeEngine,
)

from . import sqltext
from .exc import PartitionError, UnsafeSQLError

if TYPE_CHECKING:  # sqlalchemy.ext.asyncio needs greenlet, only when used
    pass

__all__ = [
    "PartitionKey",
    "partition_key",
    "PartitionError",  # re-exported from vecalchemy.exc
    "RangeBound",
    "MINVALUE",
    "MAXVALUE",
    "render_bound",
    "partition_statement",
]


@dataclass(frozen=True)
class PartitionKey:
    """The partition key of a partitioned Table: ``strategy`` is ``"list"``,
    ``"range"`` or ``"hash"``; ``columns`` are the key's columns of the Table, in the
    key's order."""

    strategy: str
    columns: tuple[Column[Any], ...]


#: the tokens of a PARTITION BY clause: a quoted identifier ("" doubled), a bare word,
#: a dot, a comma, parentheses, or anything else (which makes an expression)
_KEY_TOKEN = re.compile(
    r"""
      (?P<space>\s+)
    | (?P<qident>"(?:[^"]|"")*")
    | (?P<ident>[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_$\x80-\U0010ffff]*)
    | (?P<punct>[.,()])
    | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _key_tokens(text: str) -> list[tuple[str, str]] | None:
    """(kind, value) of each token of ``text``: ``("word", w)`` for a bare identifier
    (as written), ``("name", n)`` for a quoted one (``""`` read as ``"``), the
    punctuation itself for ``.``, ``,``, ``(``, ``)``; ``None`` for anything else."""
    tokens: list[tuple[str, str]] = []
    for m in _KEY_TOKEN.finditer(text):
        kind = m.lastgroup
        if kind == "space":
            continue
        if kind == "qident":
            tokens.append(("name", m[0][1:-1].replace('""', '"')))
        elif kind == "ident":
            tokens.append(("word", m[0]))
        elif kind == "punct":
            tokens.append((m[0], m[0]))
        else:
            return None
    return tokens


def partition_key(table: Table) -> PartitionKey | None:
    """The partition key of ``table``, read from its ``postgresql_partition_by`` option
    (``"LIST (tenant_id)"``, ``'RANGE ("Day")'``, ``"HASH (a, b)"``); ``None`` when the
    table is not partitioned.

    Each key element is ``column [COLLATE collation] [opclass]`` (PostgreSQL's
    ``CREATE TABLE ... PARTITION BY``): a bare column name is folded to lower case, a
    double-quoted one is taken exactly, as the server reads them, and matched to the
    Table's columns by name. Also ``None`` when the key cannot be mapped to the Table's
    Columns: an expression element (``(lower(name))``, ``f(x)``), a name that is not a
    column of the Table, or a clause that is not ``LIST | RANGE | HASH ( ... )``.
    """
    option = table.dialect_options["postgresql"]["partition_by"]
    if not option:
        return None
    tokens = _key_tokens(str(option))
    if not tokens or len(tokens) < 4 or tokens[0][0] != "word":
        return None
    strategy = tokens[0][1].lower()
    if strategy not in ("list", "range", "hash"):
        return None
    if tokens[1][0] != "(" or tokens[-1][0] != ")":
        return None
    elements: list[list[tuple[str, str]]] = [[]]
    for token in tokens[2:-1]:
        if token[0] == ",":
            elements.append([])
        elif token[0] in ("(", ")"):
            return None  # an expression (or a function call)
        else:
            elements[-1].append(token)
    by_name = {c.name: c for c in table.columns}
    columns: list[Column[Any]] = []
    for element in elements:
        if not element or element[0][0] == ".":
            return None
        kind, value = element[0]
        # PostgreSQL folds only ASCII letters of a bare name (downcase_identifier)
        name = value.translate(_ASCII_LOWER) if kind == "word" else value
        # after the name: COLLATE collation and an opclass (maybe schema-qualified);
        # a dot right after it would make a qualified name, not a column
        if len(element) > 1 and element[1][0] == ".":
            return None
        column = by_name.get(name)
        if column is None:
            return None
        columns.append(column)
    return PartitionKey(strategy, tuple(columns))


# --- bounds: literals of the key column's type --------------------------------------


class RangeBound(enum.Enum):
    """``MINVALUE`` / ``MAXVALUE`` in a RANGE partition's bound: below / above every
    value of that key column (PostgreSQL ``CREATE TABLE ... PARTITION OF``)."""

    MINVALUE = "MINVALUE"
    MAXVALUE = "MAXVALUE"


MINVALUE = RangeBound.MINVALUE
MAXVALUE = RangeBound.MAXVALUE

#: the dialect that renders bounds: PostgreSQL, ``named`` paramstyle (nothing in a
#: literal is escaped for a driver; :class:`~vecalchemy.sqltext.Statement` does that)
PG_DIALECT = postgresql.dialect(paramstyle="named")  # type: ignore[no-untyped-call]

#: PostgreSQL's integer types: (bits, name)
_INT_BITS: tuple[tuple[type[TypeEngine[Any]], int, str], ...] = (
    (SmallInteger, 16, "smallint"),
    (BigInteger, 64, "bigint"),
    (Integer, 32, "integer"),
)

#: the shapes a rendered bound may take: a string constant, a number, a boolean, NULL
_LITERAL = re.compile(
    r"'(?:[^']|'')*'|-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?|true|false|NULL",
    re.DOTALL,
)


def _base_type(type_: TypeEngine[Any]) -> TypeEngine[Any]:
    while isinstance(type_, TypeDecorator):
        type_ = type_.impl_instance
    return type_


def check_value(column: Any, value: Any, what: str) -> None:
    """Raise ``TypeError`` / :class:`PartitionError` unless ``value`` is a value of
    ``column``'s type that PostgreSQL can hold."""
    label = getattr(column, "name", None) or str(column)
    base = _base_type(column.type)
    try:
        expected: type = column.type.python_type
    except NotImplementedError:
        raise TypeError(
            f"{what}: the partition key column {label!r} is of type {column.type!r}, "
            "whose values vecalchemy cannot render as a partition bound; ints, strings, "
            "dates, datetimes, UUIDs, decimals, floats and booleans are supported"
        ) from None
    ok = isinstance(value, expected) and not (isinstance(value, bool) and expected is not bool)
    if expected is float or expected is decimal.Decimal:
        ok = isinstance(value, (int, float, decimal.Decimal)) and not isinstance(value, bool)
    if expected is datetime.date and isinstance(value, datetime.datetime):
        ok = False  # a datetime is a date in Python, not for a date column
    if not ok:
        article = "an" if expected.__name__[:1] in "aeiou" else "a"
        raise TypeError(
            f"{what} must be {article} {expected.__name__} for the column "
            f"{label!r} ({column.type}), got {type(value).__name__} {value!r}"
        )
    if isinstance(value, str) and "\x00" in value:
        raise PartitionError(
            f"{what} {value!r} contains a NUL byte, which a PostgreSQL string cannot hold"
        )
    # Decimal's own test: math.isfinite raises ValueError for a signaling NaN (sNaN)
    if isinstance(value, decimal.Decimal) and not value.is_finite():
        raise PartitionError(f"{what} must be a finite number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise PartitionError(f"{what} must be a finite number, got {value!r}")
    if isinstance(value, int) and not isinstance(value, bool):
        for kind, bits, name in _INT_BITS:
            if isinstance(base, kind):
                low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
                if not low <= value <= high:
                    raise PartitionError(
                        f"{what} {value} is out of range for the {name} column "
                        f"{label!r} ({low} .. {high})"
                    )
                break
    length = getattr(base, "length", None)
    if isinstance(value, str) and isinstance(base, String) and length and len(value) > length:
        raise PartitionError(
            f"{what} {value!r} is {len(value)} characters; the column {label!r} "
            f"holds at most {length}"
        )


def _read_string(sql: str) -> str:
    """The value of the string constant ``'...'`` as PostgreSQL reads it with
    ``standard_conforming_strings`` on (``''`` is one quote)."""
    return sql[1:-1].replace("''", "'")


def render_bound(column: Column[Any], value: Any, what: str = "partition bound") -> str:
    """``value`` as a SQL literal of ``column``'s type, for a partition bound: ``NULL``
    for ``None``, ``MINVALUE`` / ``MAXVALUE`` for :class:`RangeBound`, otherwise
    rendered by SQLAlchemy's PostgreSQL dialect (``literal_binds``) and checked.

    The text must be one constant (a string constant, a number, ``true`` / ``false``)
    and one SQL expression (:func:`~vecalchemy.sqltext.check_expression_sql`); a string
    must read back as the value itself. A string holding a backslash is written as an
    ``E'...'`` constant with the backslash doubled, which the server reads the same
    whatever its ``standard_conforming_strings``.

    Raises ``TypeError`` for a value not of the column's type, :class:`PartitionError`
    for one PostgreSQL cannot hold (NUL byte, integer out of range, string too long,
    NaN or infinity, a signaling NaN included) or would read otherwise (a datetime with a
    time zone for a ``timestamp without time zone`` column, whose literal input ignores
    the zone), :class:`~vecalchemy.exc.UnsafeSQLError` for a rendering that fails the checks.
    """
    if value is None:
        return "NULL"
    if isinstance(value, RangeBound):
        return value.value
    check_value(column, value, what)
    base = _base_type(column.type)
    if (
        isinstance(value, datetime.datetime)
        and value.tzinfo is not None
        and isinstance(base, DateTime)
        and not base.timezone
    ):
        # PostgreSQL's timestamp input silently ignores a time zone written in a literal
        # ("Date/Time Types"), where a bound value is converted: refuse the ambiguity
        raise PartitionError(
            f"{what} {value!r} has a time zone, and the column {column.name!r} is a "
            "timestamp without time zone, whose literal would drop it; pass a naive "
            "datetime (or declare DateTime(timezone=True) for a timestamptz column)"
        )
    try:
        sql = str(
            literal(value, type_=column.type).compile(
                dialect=PG_DIALECT, compile_kwargs={"literal_binds": True}
            )
        )
    except Exception as e:
        raise UnsafeSQLError(
            f"{what} {value!r} cannot be rendered as a literal of {column.type} "
            f"({type(e).__name__}: {e}); nothing was sent"
        ) from None
    if not _LITERAL.fullmatch(sql):
        raise UnsafeSQLError(
            f"{what} {value!r} renders as {sql!r}, which is not one SQL constant; nothing was sent"
        )
    if sql.startswith("'") and "\\" in sql:
        # as an E'...' constant, read the same whatever standard_conforming_strings:
        # SQLAlchemy writes backslashes as they are (a dialect that has seen the server's
        # standard_conforming_strings on) or doubled (SQLAlchemy 2.0 before connecting)
        read = _read_string(sql)
        if not isinstance(value, str):
            raise UnsafeSQLError(
                f"{what} {value!r} renders as {sql!r}, with a backslash whose reading "
                "depends on standard_conforming_strings; nothing was sent"
            )
        if read == value:
            sql = "E" + sql.replace("\\", "\\\\")
        elif read == value.replace("\\", "\\\\"):
            sql = "E" + sql
        else:
            raise UnsafeSQLError(
                f"{what} {value!r} renders as {sql!r}, which reads back as another "
                "string; nothing was sent"
            )
    elif isinstance(value, str) and _read_string(sql) != value:
        raise UnsafeSQLError(
            f"{what} {value!r} renders as {sql!r}, which reads back as another string; "
            "nothing was sent"
        )
    return sqltext.check_expression_sql(sql, what)


def _range_bound(key: PartitionKey, bound: Any, what: str) -> str:
    """``(v1, v2, ...)`` for a RANGE bound: one value per key column."""
    n = len(key.columns)
    if isinstance(bound, tuple):
        items = bound
    elif n == 1:
        items = (bound,)
    else:
        raise TypeError(
            f"{what} must be a tuple of {n} values (one per key column "
            f"{', '.join(c.name for c in key.columns)}), got {type(bound).__name__}"
        )
    if len(items) != n:
        raise PartitionError(
            f"{what} has {len(items)} value(s); the partition key has {n} column(s) "
            f"({', '.join(c.name for c in key.columns)})"
        )
    parts = []
    for column, item in zip(key.columns, items, strict=True):
        if item is None:
            raise PartitionError(
                f"{what}: a RANGE bound cannot be NULL (column {column.name!r}); use "
                "MINVALUE or MAXVALUE"
            )
        parts.append(render_bound(column, item, what))
    return "(" + ", ".join(parts) + ")"


def _hash_number(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int, got {type(value).__name__} {value!r}")
    return value


def partition_statement(
    parent: Table,
    name: str,
    *,
    values: Sequence[Any] | None = None,
    range_from: Any = None,
    range_to: Any = None,
    modulus: int | None = None,
    remainder: int | None = None,
    default: bool = False,
    schema: str | None = None,
    for_script: bool = False,
) -> sqltext.Statement:
    """``CREATE TABLE name PARTITION OF parent FOR VALUES ...`` (or ``DEFAULT``) as a
    :class:`~vecalchemy.sqltext.Statement`, for ``conn.execute`` or Alembic's
    ``op.execute`` (``for_script=True`` for SQL printed rather than sent).

    The bounds must match ``parent``'s partition key (:func:`partition_key`):

    - LIST: ``values``, a non-empty list or tuple of key values (``None`` is ``NULL``):
      ``FOR VALUES IN (...)``;
    - RANGE: ``range_from`` and ``range_to``, each one value (a one-column key) or a
      tuple of one value per key column, :data:`MINVALUE` / :data:`MAXVALUE` allowed:
      ``FOR VALUES FROM (...) TO (...)`` (``range_to`` excluded);
    - HASH: ``modulus`` (> 0) and ``remainder`` (0 <= remainder < modulus):
      ``FOR VALUES WITH (MODULUS m, REMAINDER r)``;
    - ``default=True`` alone (LIST or RANGE): ``DEFAULT``, the rows no other partition
      takes.

    Partition bounds cannot be bind parameters in DDL: each value is rendered as a
    literal of its key column's type (:func:`render_bound`: ints, strings, dates,
    datetimes, UUIDs, decimals, floats, booleans). ``name`` and ``schema`` are checked
    identifiers (63 bytes at most, no NUL) and quoted; ``schema=None`` puts the
    partition in ``parent``'s schema (the first schema of the ``search_path`` when the
    parent has none).

    Raises, before anything is sent: :class:`PartitionError` when ``parent`` has no
    partition key that maps to its Columns, or the bounds given do not fit its
    strategy; ``TypeError`` for a value not of its column's type;
    :class:`~vecalchemy.exc.InvalidIdentifierError` for a bad name;
    :class:`~vecalchemy.exc.UnsafeSQLError` for a bound that does not render as one
    constant. Overlapping bounds are the server's to refuse (a database error).
    """
    key = partition_key(parent)
    if key is None:
        raise PartitionError(
            f"table {parent.name!r} has no partition key of columns "
            f"(postgresql_partition_by={parent.dialect_options['postgresql']['partition_by']!r});"
            " expected LIST, RANGE or HASH of its columns"
        )
    sqltext.check_identifier(name, "partition name")
    if schema is not None:
        sqltext.check_identifier(schema, "partition schema")
    else:
        schema = parent.schema
    given = {
        "values": values is not None,
        "range_from": range_from is not None,
        "range_to": range_to is not None,
        "modulus": modulus is not None,
        "remainder": remainder is not None,
        "default": bool(default),
    }
    wanted = {
        "list": ("values",),
        "range": ("range_from", "range_to"),
        "hash": ("modulus", "remainder"),
    }[key.strategy]
    if default:
        if key.strategy == "hash":
            raise PartitionError(
                f"table {parent.name!r} is HASH-partitioned, and a hash-partitioned table "
                "may not have a DEFAULT partition (PostgreSQL); give modulus= and remainder="
            )
        wanted = ("default",)
    extra = [k for k, v in given.items() if v and k not in wanted]
    missing = [k for k in wanted if not given[k]]
    if extra or missing:
        raise PartitionError(
            f"table {parent.name!r} is {key.strategy.upper()}-partitioned by "
            f"{', '.join(c.name for c in key.columns)}: a partition takes "
            f"{' and '.join(f'{k}=' for k in wanted)}"
            + (f"; missing {', '.join(missing)}" if missing else "")
            + (f"; {', '.join(extra)} does not apply" if extra else "")
        )
    if default:
        bound = "DEFAULT"
    elif key.strategy == "list":
        if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)):
            raise TypeError(
                f"values= must be a list or tuple of key values, got {type(values).__name__} "
                f"{values!r} (for one value v, pass [v])"
            )
        if not values:
            raise PartitionError("values= is empty; a LIST partition needs at least one value")
        column = key.columns[0]
        rendered = ", ".join(render_bound(column, v, "values= item") for v in values)
        bound = f"FOR VALUES IN ({rendered})"
    elif key.strategy == "range":
        low = _range_bound(key, range_from, "range_from=")
        high = _range_bound(key, range_to, "range_to=")
        bound = f"FOR VALUES FROM {low} TO {high}"
    else:
        m = _hash_number(modulus, "modulus=")
        r = _hash_number(remainder, "remainder=")
        if not 0 < m <= 2**31 - 1:
            raise PartitionError(f"modulus= must be a positive integer (int4), got {m}")
        if not 0 <= r < m:
            raise PartitionError(
                f"remainder= must be at least 0 and less than modulus= {m}, got {r}"
            )
        bound = f"FOR VALUES WITH (MODULUS {m}, REMAINDER {r})"
    sql = (
        f"CREATE TABLE {sqltext.qualified(PG_DIALECT, name, schema)} PARTITION OF "
        f"{sqltext.table_name(PG_DIALECT, parent)} {bound}"
    )
    return sqltext.Statement(sql, for_script=for_script)
