"""Autogenerate renderers: the Python text of vecalchemy's operations, and of its types.

Registered with :data:`alembic.autogenerate.renderers` when this module is imported.
:func:`render_item` renders ``Vector(768)`` etc. as ``vecalchemy.Vector(768)`` and adds
``import vecalchemy`` to the migration.
"""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import renderers
from alembic.autogenerate.api import AutogenContext
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.elements import ColumnClause, Label, TextClause

import vecalchemy
from vecalchemy.types import VectorType

from .ddl import compile_sql
from .ops import (
    AlterVectorExtensionUpdateOp,
    CreateVectorExtensionOp,
    CreateVectorIndexOp,
    DropVectorExtensionOp,
    DropVectorIndexOp,
)

__all__ = ["render_item", "render_expression"]


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | bool:
    """An Alembic ``render_item`` hook: vecalchemy types as ``vecalchemy.Vector(768)``.

    Adds ``import vecalchemy`` to the migration's imports; returns ``False`` (Alembic's
    default rendering) for everything else. Call it from your own ``render_item`` if
    env.py has one.
    """
    if type_ == "type" and isinstance(obj, VectorType):
        cls = type(obj)
        if getattr(vecalchemy, cls.__name__, None) is cls:
            autogen_context.imports.add("import vecalchemy")
            return f"vecalchemy.{obj!r}"
        autogen_context.imports.add(f"import {cls.__module__}")
        return f"{cls.__module__}.{obj!r}"
    return False


def _op_prefix(autogen_context: AutogenContext) -> str:
    # importing vecalchemy_alembic.ops registers op.create_vector_index & co.
    autogen_context.imports.add("import vecalchemy_alembic.ops  # noqa: F401")
    return str(autogen_context.opts.get("alembic_module_prefix") or "op.")


def _sa_prefix(autogen_context: AutogenContext) -> str:
    return str(autogen_context.opts.get("sqlalchemy_module_prefix") or "sa.")


def render_expression(expression: Any, autogen_context: AutogenContext) -> str:
    """An index key or WHERE clause as Python: a column name, or ``sa.text('...')``."""
    while isinstance(expression, Label):
        expression = expression.element
    if isinstance(expression, str):
        return repr(expression)
    if isinstance(expression, ColumnClause) and not expression.is_literal:
        return repr(expression.name)
    if isinstance(expression, TextClause):
        sql = expression.text
    elif isinstance(expression, ClauseElement):
        sql = compile_sql(expression, autogen_context.dialect)
    else:  # pragma: no cover - ops validate their arguments
        raise TypeError(f"cannot render {expression!r}")
    return f"{_sa_prefix(autogen_context)}text({sql!r})"


def _args(*positional: str, **keywords: Any) -> str:
    parts = list(positional)
    parts += [f"{k}={v}" for k, v in keywords.items() if v is not None]
    return ", ".join(parts)


@renderers.dispatch_for(CreateVectorIndexOp)
def _render_create_vector_index(autogen_context: AutogenContext, op: CreateVectorIndexOp) -> str:
    where = None
    if isinstance(op.where, str):
        where = f"{_sa_prefix(autogen_context)}text({op.where!r})"
    elif op.where is not None:
        where = render_expression(op.where, autogen_context)
    options = {k: repr(v) for k, v in op.options.items()}
    args = _args(
        repr(op.index_name),
        repr(op.table_name),
        render_expression(op.expression, autogen_context),
        method=repr(op.method),
        opclass=repr(op.opclass) if op.opclass else None,
        metric=repr(op.metric) if op.metric and not op.opclass else None,
        **options,
        where=where,
        concurrently="True" if op.concurrently else None,
        schema=repr(op.schema) if op.schema else None,
    )
    return f"{_op_prefix(autogen_context)}create_vector_index({args})"


@renderers.dispatch_for(DropVectorIndexOp)
def _render_drop_vector_index(autogen_context: AutogenContext, op: DropVectorIndexOp) -> str:
    args = _args(
        repr(op.index_name),
        table_name=repr(op.table_name) if op.table_name else None,
        schema=repr(op.schema) if op.schema else None,
        concurrently="True" if op.concurrently else None,
        if_exists="True" if op.if_exists else None,
    )
    return f"{_op_prefix(autogen_context)}drop_vector_index({args})"


@renderers.dispatch_for(CreateVectorExtensionOp)
def _render_create_vector_extension(
    autogen_context: AutogenContext, op: CreateVectorExtensionOp
) -> str:
    args = _args(
        *([repr(op.schema)] if op.schema else []),
        if_not_exists=None if op.if_not_exists else "False",
    )
    return f"{_op_prefix(autogen_context)}create_vector_extension({args})"


@renderers.dispatch_for(DropVectorExtensionOp)
def _render_drop_vector_extension(
    autogen_context: AutogenContext, op: DropVectorExtensionOp
) -> str:
    args = _args(
        if_exists="True" if op.if_exists else None, cascade="True" if op.cascade else None
    )
    return f"{_op_prefix(autogen_context)}drop_vector_extension({args})"


@renderers.dispatch_for(AlterVectorExtensionUpdateOp)
def _render_alter_vector_extension_update(
    autogen_context: AutogenContext, op: AlterVectorExtensionUpdateOp
) -> str:
    args = repr(op.version) if op.version else ""
    return f"{_op_prefix(autogen_context)}alter_vector_extension_update({args})"
