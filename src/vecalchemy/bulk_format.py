"""PostgreSQL's binary ``COPY`` format for :mod:`vecalchemy.bulk` ("COPY ... Binary
Format" in PostgreSQL's docs): validated columns to chunks of COPY data, and the COPY
stream of one vector column to an ``(n, dim)`` matrix. No I/O here.

- Every column fixed-width (vectors, smallint/integer/bigint, real/double precision,
  boolean, given as arrays): one NumPy record array per chunk, the row header, field
  lengths and big-endian values interleaved at C speed (:func:`encode_fixed_chunks`).
- Otherwise rows of Python values with the vectors pre-encoded as ``bytea`` payloads
  (:func:`row_chunks`), for psycopg's ``Copy.write_row``; the other drivers get the same
  bytes from :func:`row_framer`, which frames the rows with psycopg's binary dumpers.
- :func:`matrix_from_copy`: the received stream turned into the matrix in place.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from psycopg import pq
from psycopg.adapt import PyFormat, Transformer
from sqlalchemy.sql.schema import Column

from .codecs import encode_sparse_binary
from .exc import InvalidVectorError
from .facts import (
    COPY_WIRE_TYPES,
    DENSE_DTYPES,
    DENSE_HEADER,
    DENSE_HEADER_FIELDS,
    WIRE_DTYPES,
)

__all__ = [
    "COPY_SIGNATURE",
    "COPY_TRAILER",
    "CHUNK_BYTES",
    "Field",
    "rows_per_chunk",
    "encode_fixed_chunks",
    "row_chunks",
    "copy_types",
    "row_framer",
    "driver_chunks",
    "copy_stream",
    "matrix_from_copy",
]

#: Binary COPY file header (signature, flags, header extension length) and trailer;
#: PostgreSQL docs, "COPY ... Binary Format".
COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
COPY_TRAILER = struct.pack(">h", -1)

#: Bytes of encoded COPY data per chunk sent (bounds the memory used by encoding).
CHUNK_BYTES = 8 * 1024 * 1024

_BYTEA_OID = 17
#: the length word before each field of a binary COPY row
_FIELD_LENGTH = ">i4"
_INT2 = struct.Struct(">h")
_INT4 = struct.Struct(">i")
_NULL = _INT4.pack(-1)


@dataclass
class Field:
    """One COPY column: its SQLAlchemy column, server oid and the validated values."""

    column: Column[Any]
    oid: int
    kind: str  # "vector" | "halfvec" | "sparsevec" | "fixed" | "other"
    values: Any  # (n, dim) array, (n,) array, or an iterator of Python values
    dim: int = 0

    def fixed_dtype(self, prefix: str) -> list[tuple[Any, ...]]:
        """Record fields of this column (length word + payload) for the all-NumPy path."""
        if self.kind in WIRE_DTYPES:
            return [
                (f"{prefix}len", _FIELD_LENGTH),
                *((f"{prefix}{name}", dtype) for name, dtype in DENSE_HEADER_FIELDS),
                (f"{prefix}v", WIRE_DTYPES[self.kind], (self.dim,)),
            ]
        return [(f"{prefix}len", _FIELD_LENGTH), (f"{prefix}v", COPY_WIRE_TYPES[self.oid][1])]


def rows_per_chunk(fields: list[Field], n: int, chunk_rows: int | None) -> int:
    """Rows per chunk: ``chunk_rows`` (a positive int, else ``ValueError``) or about
    :data:`CHUNK_BYTES` of COPY data."""
    if chunk_rows is not None:
        if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
            raise ValueError(f"copy_rows: chunk_rows must be a positive int, got {chunk_rows!r}")
        return chunk_rows
    row_bytes = 2 + sum(8 + 4 * f.dim if f.kind in WIRE_DTYPES else 16 for f in fields)
    return max(1, CHUNK_BYTES // row_bytes)


def encode_fixed_chunks(
    fields: list[Field], n: int, chunk: int
) -> Iterator[tuple[memoryview, int]]:
    """The all-NumPy path: one record array per chunk, already in COPY's binary layout."""
    dtype = np.dtype(
        [("nfields", ">i2")] + [d for i, f in enumerate(fields) for d in f.fixed_dtype(f"c{i}_")]
    )
    buf = np.empty(min(chunk, n), dtype=dtype)
    buf["nfields"] = len(fields)
    for i, f in enumerate(fields):
        if f.kind in WIRE_DTYPES:
            buf[f"c{i}_len"] = DENSE_HEADER.size + WIRE_DTYPES[f.kind].itemsize * f.dim
            buf[f"c{i}_dim"] = f.dim
            buf[f"c{i}_unused"] = 0
        else:
            buf[f"c{i}_len"] = np.dtype(COPY_WIRE_TYPES[f.oid][1]).itemsize
    for start in range(0, n, chunk):
        rec = buf[: min(chunk, n - start)]
        for i, f in enumerate(fields):
            # byte-swap and interleave at C speed
            rec[f"c{i}_v"] = f.values[start : start + len(rec)]
        yield memoryview(rec.data).cast("B"), len(rec)


def row_chunks(fields: list[Field], n: int, chunk: int) -> Iterator[list[tuple[Any, ...]]]:
    """The mixed path: rows of Python values, vectors pre-encoded as ``bytea`` payloads."""
    iters = [iter(f.values) for f in fields if f.kind == "other"]
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        cols: list[Sequence[Any]] = []
        it = iter(iters)
        for f in fields:
            if f.kind in WIRE_DTYPES:
                rec = np.empty(
                    stop - start, [*DENSE_HEADER_FIELDS, ("v", WIRE_DTYPES[f.kind], f.dim)]
                )
                rec["dim"] = f.dim
                rec["unused"] = 0
                rec["v"] = f.values[start:stop]
                mv = memoryview(rec.data).cast("B")
                size = rec.dtype.itemsize
                cols.append([mv[i * size : (i + 1) * size] for i in range(stop - start)])
            elif f.kind == "sparsevec":
                cols.append(
                    [
                        None if v is None else encode_sparse_binary(v)
                        for v in itertools.islice(f.values, start, stop)
                    ]
                )
            elif f.kind == "fixed":
                cols.append(f.values[start:stop].tolist())
            else:
                part = list(itertools.islice(next(it), stop - start))
                if len(part) != stop - start:
                    raise ValueError(
                        f"copy_rows: column {f.column.name!r} ended after {start + len(part)} "
                        f"rows, expected {n}"
                    )
                cols.append(part)
        yield list(zip(*cols, strict=True))


#: what psycopg's binary dumpers raise for a value they cannot send as the column's type
DUMP_ERRORS = (TypeError, ValueError, OverflowError, psycopg.DataError)


def dump_error(
    fields: list[Field], rows: Sequence[Sequence[Any]], first: int
) -> ValueError | None:
    """The error for the first value of ``rows`` (row ``first`` onwards) that psycopg's
    binary dumper for its column refuses, naming the column, the row and the value;
    ``None`` when every value dumps (the failure was another one)."""
    oids = copy_types(fields)
    for r, row in enumerate(rows):
        for field, oid, value in zip(fields, oids, row, strict=True):
            if value is None or field.kind != "other":
                continue
            tx = Transformer()
            tx.set_dumper_types([oid], pq.Format.BINARY)
            try:
                tx.dump_sequence((value,), [PyFormat.BINARY])
            except DUMP_ERRORS as e:
                column = field.column
                return ValueError(
                    f"copy_rows: column {column.name!r} ({column.type}), row {first + r}: "
                    f"{value!r} cannot be sent as that type ({type(e).__name__}: {e})"
                )
    return None


def copy_types(fields: list[Field]) -> list[int]:
    """The type oid each field of :func:`row_chunks` is dumped as (``bytea`` for the
    pre-encoded vectors)."""
    return [_BYTEA_OID if f.kind in (*WIRE_DTYPES, "sparsevec") else f.oid for f in fields]


def row_framer(oids: Sequence[int]) -> Callable[[Sequence[Sequence[Any]]], bytearray]:
    """A function turning rows of Python values into binary COPY rows for columns of
    type ``oids``, each field dumped by psycopg's binary dumper for its oid (``None`` is
    NULL). Raises ``psycopg.ProgrammingError`` now for a type psycopg has no binary
    dumper for, as psycopg's ``Copy.set_types`` does."""
    tx = Transformer()
    tx.set_dumper_types(list(oids), pq.Format.BINARY)
    formats = [PyFormat.BINARY] * len(oids)
    header = _INT2.pack(len(oids))

    def frame(rows: Sequence[Sequence[Any]]) -> bytearray:
        out = bytearray()
        for row in rows:
            out += header
            for field in tx.dump_sequence(row, formats):
                if field is None:
                    out += _NULL
                else:
                    out += _INT4.pack(len(field))
                    out += field
        return out

    return frame


def driver_chunks(fields: list[Field], n: int, chunk: int) -> Iterator[tuple[Any, int]]:
    """The chunks of COPY data and their row counts, for drivers other than psycopg: the
    record arrays, or rows framed by :func:`row_framer` (built now, so a column type
    without a binary dumper is refused before anything is sent)."""
    if all(f.kind in (*WIRE_DTYPES, "fixed") for f in fields):
        return encode_fixed_chunks(fields, n, chunk)
    frame = row_framer(copy_types(fields))

    def framed() -> Iterator[tuple[Any, int]]:
        first = 0
        for rows in row_chunks(fields, n, chunk):
            try:
                block = frame(rows)
            except DUMP_ERRORS as e:
                error = dump_error(fields, rows, first)
                if error is None:
                    raise
                raise error from e
            yield block, len(rows)
            first += len(rows)

    return framed()


def copy_stream(chunks: Iterator[tuple[Any, int]], bar: Any) -> Iterator[Any]:
    """The whole binary COPY stream (header, chunks, trailer), advancing ``bar`` as
    each chunk is taken by the driver."""
    yield COPY_SIGNATURE
    for block, rows in chunks:
        yield block
        if bar is not None:
            bar.update(rows)
    yield COPY_TRAILER


def matrix_from_copy(buf: bytearray, sql_type: str, dim: int | None) -> np.ndarray:
    """Turn a binary COPY stream of one vector column into ``(n, dim)`` in place.

    The stream is the matrix in big-endian with a 10-byte header before each row; rows
    are byte-swapped block by block onto the start of the same buffer, which is then
    truncated: the peak is the received bytes plus one block.
    """
    native = np.dtype(DENSE_DTYPES[sql_type])
    head, tail = len(COPY_SIGNATURE), len(COPY_TRAILER)
    if len(buf) < head + tail or bytes(buf[:11]) != COPY_SIGNATURE[:11]:
        raise InvalidVectorError("fetch_matrix: the server did not send a binary COPY stream")
    body = len(buf) - head - tail
    if body == 0:
        return np.empty((0, dim or 0), dtype=native)
    (length,) = struct.unpack_from(">i", buf, head + 2)
    if length < 0:
        raise InvalidVectorError("fetch_matrix: row 0 is NULL; a matrix cannot hold NULL rows")
    d, _ = DENSE_HEADER.unpack_from(buf, head + 6)
    width = native.itemsize
    row = np.dtype(
        [
            ("nfields", ">i2"),
            ("len", _FIELD_LENGTH),
            *DENSE_HEADER_FIELDS,
            ("v", WIRE_DTYPES[sql_type], (d,)),
        ]
    )
    n, rest = divmod(body, row.itemsize)
    rows = np.frombuffer(buf, dtype=row, count=n, offset=head) if not rest else None
    if rows is None or not (
        (rows["nfields"] == 1).all() and (rows["len"] == DENSE_HEADER.size + width * d).all()
    ):
        del rows
        raise InvalidVectorError(
            f"fetch_matrix: the rows are not all non-NULL {sql_type}s of {d} dimensions "
            "(a matrix needs one dimension and no NULL rows; filter or cast them in the select)"
        )
    out = np.frombuffer(buf, dtype=native, count=n * d).reshape(n, d)
    block = max(1, (1 << 20) // row.itemsize)
    for start in range(0, n, block):
        # destination always lies before the unread rows: in-place is safe
        out[start : start + block] = rows["v"][start : start + block]
    del out, rows
    del buf[n * d * width :]
    return np.frombuffer(buf, dtype=native).reshape(n, d)
