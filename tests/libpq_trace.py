"""What a connection's libpq sends and receives, for tests that check the wire."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator

import psycopg
from sqlalchemy.engine import Connection


@contextlib.contextmanager
def libpq_trace(conn: Connection) -> Iterator[list[list[str]]]:
    """The frontend/backend messages of ``conn`` inside the block, each as
    ``[direction, length, type, rest]`` (filled on exit)."""
    found: list[list[str]] = []
    fd, path = tempfile.mkstemp()
    pgconn = conn.connection.driver_connection.pgconn  # type: ignore[union-attr]
    try:
        pgconn.trace(fd)
        pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)
        try:
            yield found
        finally:
            pgconn.untrace()
            with open(path, encoding="utf-8", errors="replace") as f:
                content = f.read()
            # a message is one line, unless its text (a statement) has newlines
            found.extend(m.split("\t", 3) for m in re.split(r"\n(?=[FB]\t)", content) if m)
    finally:
        os.close(fd)
        os.remove(path)
