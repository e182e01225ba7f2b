"""Executemany INSERTs as multi-row ``VALUES`` batches, pipelined by psycopg.

``conn.execute(insert(Doc), rows)`` / ``session.execute(insert(Doc), rows)`` /
``session.add_all(...)`` with many rows is, by default on psycopg, one single-row
``INSERT`` per row sent through psycopg's pipeline: the server plans and executes
thousands of tiny statements. vecalchemy turns on SQLAlchemy's *insertmanyvalues*
for these INSERTs too (``use_insertmanyvalues_wo_returning``), so each statement
carries :data:`PAGE_SIZE` rows, and sends the batches that share one statement text
with one ``cursor.executemany()``: psycopg converts the statement once, prepares it,
and pipelines the batches, so the client encodes batch *k + 1* while the server
inserts batch *k*. A lone batch (the tail) goes as SQLAlchemy sends it.

Batches are produced lazily, as psycopg asks for them; anything else that looks at
the parameters (an event listener, ``echo`` logging) gets the whole list. INSERTs
with ``RETURNING`` keep SQLAlchemy's own one-batch-at-a-time path (each batch's rows
must be fetched before the next is sent). On an AUTOCOMMIT connection, and for
``ON CONFLICT`` statements (which SQLAlchemy before 2.0.5x still batched), the rows go
as one plain executemany of the single-row statement: all-or-nothing, as psycopg's.

Every row is still validated by the column types' bind processors before the first
batch is sent (SQLAlchemy processes all parameters first), so a batch with one bad
row sends nothing.

Applied by vecalchemy's dialect (``postgresql+vecalchemy://`` or the engine plugin),
whose execution context keeps a grouped INSERT's state; an explicit
``insertmanyvalues_page_size`` (engine argument or execution option) is honoured.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy.sql.dml import Insert

from . import _private

__all__ = ["PAGE_SIZE", "BatchedParameters", "group_batches", "do_execute"]

#: Rows per INSERT statement when the engine sets no ``insertmanyvalues_page_size``.
#: Measured with raw psycopg on the benchmark's server (5 000 rows of ``vector(768)``,
#: pipelined executemany): 100-row statements 1.55x the rate of single-row ones,
#: 1000-row statements 1.13x.
PAGE_SIZE = 100


class BatchedParameters(list[Any]):
    """Parameter dicts of consecutive insertmanyvalues batches sharing one statement.

    Iterating pulls batches from SQLAlchemy's generator as they are needed (psycopg's
    ``executemany`` iterates once); ``len()``, indexing, ``repr()`` and every other
    list operation first pull them all, so code that inspects the parameters sees all
    of them.
    """

    def __init__(
        self, parameters: list[Any], statement: str, source: Iterator[Any] | None
    ) -> None:
        super().__init__(parameters)
        self._statement = statement
        self._source: Iterator[Any] | None = source
        #: the first batch with another statement, for the next group
        self.next_batch: Any = None

    def _pull(self) -> bool:
        if self._source is None:
            return False
        batch = next(self._source, None)
        if batch is None:
            self._source = None
            return False
        if batch.replaced_statement != self._statement or batch.processed_setinputsizes:
            self.next_batch = batch
            self._source = None
            return False
        list.append(self, batch.replaced_parameters)
        return True

    def _pull_all(self) -> None:
        while self._pull():
            pass

    def __iter__(self) -> Iterator[Any]:
        i = 0
        while i < list.__len__(self) or self._pull():
            yield list.__getitem__(self, i)
            i += 1

    def __reduce_ex__(self, protocol: Any) -> Any:
        # copy.copy, copy.deepcopy and pickle give a plain list of every batch
        self._pull_all()
        return (list, (list.copy(self),))

    __hash__ = None


def _pulling_all(name: str) -> Any:
    method = getattr(list, name)

    def pull_then(self: BatchedParameters, *args: Any, **kw: Any) -> Any:
        self._pull_all()
        return method(self, *args, **kw)

    pull_then.__name__ = name
    return pull_then


# every list operation but iteration sees (and acts on) all the batches
for _name in (
    "__len__", "__getitem__", "__setitem__", "__delitem__", "__contains__", "__reversed__",
    "__repr__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__add__",
    "__mul__", "__rmul__", "__iadd__", "__imul__", "append", "extend", "insert", "pop",
    "remove", "clear", "copy", "count", "index", "reverse", "sort",
):  # fmt: skip
    setattr(BatchedParameters, _name, _pulling_all(_name))


def group_batches(batches: Iterator[Any], context: Any) -> Iterator[Any]:
    """Wrap ``DefaultDialect._deliver_insertmanyvalues_batches``: one batch per run of two
    or more batches with the same statement, its parameters a lazy
    :class:`BatchedParameters` (sent by :func:`do_execute` with one ``executemany``).

    A lone batch (a tail, a short insert) goes as SQLAlchemy made it, with psycopg's
    usual prepare threshold, so tail sizes do not each leave a prepared statement.
    On an AUTOCOMMIT connection, and for ``ON CONFLICT`` statements, the rows go as one
    plain executemany of the single-row statement (pipelined, one Sync: all-or-nothing
    in autocommit, and no row meets another in one upsert). INSERT .. RETURNING and
    ``preserve_rowcount`` executions pass through as SQLAlchemy made them.
    """
    compiled = context.compiled
    if (
        compiled is None
        or compiled.effective_returning
        or context.execution_options.get("preserve_rowcount", False)
    ):
        yield from batches
        return
    batch = next(batches, None)
    if batch is None:
        return
    context.vecalchemy_rowcount = 0
    if _autocommit(context) or _upsert(compiled.statement):
        close = getattr(batches, "close", None)
        if close is not None:
            close()
        context.vecalchemy_group = True
        yield _private.replace_batch(
            batch,
            replaced_statement=context.statement,
            replaced_parameters=BatchedParameters(list(context.parameters), "", None),
        )
        return
    while batch is not None:
        following = next(batches, None)
        if (
            following is None
            or batch.processed_setinputsizes  # not psycopg's way
            or following.processed_setinputsizes
            or following.replaced_statement != batch.replaced_statement
        ):
            yield batch  # alone: SQLAlchemy's own execute
            batch = following
            continue
        group = BatchedParameters(
            [batch.replaced_parameters, following.replaced_parameters],
            batch.replaced_statement,
            batches,
        )
        context.vecalchemy_group = True
        try:
            yield _private.replace_batch(batch, replaced_parameters=group)
        finally:
            context.vecalchemy_group = False
        group._pull_all()  # (normally done: executemany iterated it)
        batch = group.next_batch


def _upsert(statement: Any) -> bool:
    # INSERT .. ON CONFLICT (an Insert's clause after VALUES)
    return isinstance(statement, Insert) and _private.post_values_clause(statement) is not None


def _autocommit(context: Any) -> bool:
    try:
        return bool(context.root_connection.connection.dbapi_connection.autocommit)
    except AttributeError:
        return False


def do_execute(base: Any, cursor: Any, statement: str, parameters: Any, context: Any) -> None:
    """The dialect's ``do_execute`` around ``base`` (SQLAlchemy's): a
    :class:`BatchedParameters` group goes with one pipelined ``executemany`` (also when a
    ``before_cursor_execute`` listener replaced it with its own list); and during a
    grouped INSERT, ``rowcount`` is kept the total of all its statements, as a plain
    executemany reports it.
    """
    total = getattr(context, "vecalchemy_rowcount", None)  # (None: another dialect's context)
    if total is None:
        base(cursor, statement, parameters, context)
        return
    if type(parameters) is BatchedParameters or (
        context.vecalchemy_group and isinstance(parameters, (list, tuple))
    ):
        cursor.executemany(statement, parameters)
    else:
        base(cursor, statement, parameters, context)
    rowcount = cursor.rowcount
    if rowcount is not None and rowcount >= 0:
        context.vecalchemy_rowcount = total + rowcount
        _private.set_rowcount(context, context.vecalchemy_rowcount)
