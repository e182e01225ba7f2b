"""vecalchemy's Alembic plugin: vector-aware operations and autogenerate.

Operations (``op.create_vector_index``, ``op.drop_vector_index``,
``op.create_vector_extension``, ``op.drop_vector_extension``,
``op.alter_vector_extension_update``, ``op.create_partition``, ``op.drop_partition``)
live in :mod:`vecalchemy_alembic.ops` (``op.set_vector_storage`` in
:mod:`vecalchemy_alembic.storage`); importing
it registers them (migrations that use them import it). Autogenerate comparators
(vector indexes, the extension) are switched on in one of two ways:

- Alembic >= 1.18: this package is the ``alembic.plugins`` entry point ``vecalchemy``;
  name it in env.py: ``context.configure(..., autogenerate_plugins=
  ["alembic.autogenerate.*", "vecalchemy"])``.
- any Alembic >= 1.13: call :func:`register` in env.py (on Alembic < 1.18,
  ``import vecalchemy_alembic`` alone does it).

Types render as ``vecalchemy.Vector(768)`` with ``import vecalchemy`` added to the
migration; if env.py sets its own ``render_item``, call :func:`render_item` from it.

Alembic >= 1.18 imports its plugins while it is itself being imported, so there this
module imports nothing of Alembic; the rest loads on first use (the comparators, a
migration's ``import vecalchemy_alembic.ops``, or :func:`register`).
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

__all__ = [
    "register",
    "setup",
    "render_item",
    "PLUGIN_NAME",
    "CreateVectorIndexOp",
    "DropVectorIndexOp",
    "CreateVectorExtensionOp",
    "DropVectorExtensionOp",
    "AlterVectorExtensionUpdateOp",
    "CreatePartitionOp",
    "DropPartitionOp",
    "SetVectorStorageOp",
]

#: the name to put in ``autogenerate_plugins`` (Alembic >= 1.18)
PLUGIN_NAME = "vecalchemy"

_OPS = (
    "CreateVectorIndexOp",
    "DropVectorIndexOp",
    "CreateVectorExtensionOp",
    "DropVectorExtensionOp",
    "AlterVectorExtensionUpdateOp",
    "CreatePartitionOp",
    "DropPartitionOp",
)
_registered = False


def _alembic_version() -> tuple[int, ...]:
    """The installed Alembic's version, read without importing Alembic."""
    try:
        version = metadata.version("alembic")
    except metadata.PackageNotFoundError:
        return (0,)
    return tuple(int(p) for p in version.split(".")[:2] if p.isdigit())


def _priority() -> dict[str, Any]:
    """Run after Alembic's own comparators, whose index operations ours replace."""
    from alembic import util

    priority = getattr(util, "DispatchPriority", None)
    return {} if priority is None else {"priority": priority.LAST}


def _compare_table(*args: Any) -> Any:
    from .compare import compare_vector_indexes

    return compare_vector_indexes(*args)


def _compare_schema(*args: Any) -> Any:
    from .compare import compare_vector_extension

    return compare_vector_extension(*args)


def _compare_storage(*args: Any) -> Any:
    from .storage import compare_vector_storage

    return compare_vector_storage(*args)


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Alembic ``render_item`` hook: vecalchemy types as ``vecalchemy.Vector(768)``
    (adding ``import vecalchemy``); ``False`` for anything else."""
    from .render import render_item as _render_item

    return _render_item(type_, obj, autogen_context)


def register() -> None:
    """Switch on vecalchemy's operations, renderers and autogenerate comparators
    globally (idempotent); for env.py on any Alembic >= 1.13. On Alembic >= 1.18 the
    ``vecalchemy`` plugin is the alternative; both at once is harmless."""
    global _registered
    from alembic.autogenerate import comparators

    from . import ops, render, storage  # noqa: F401  (importing registers them)

    if _registered:
        return
    _registered = True
    comparators.dispatch_for("table", **_priority())(_compare_table)
    comparators.dispatch_for("schema", **_priority())(_compare_schema)
    comparators.dispatch_for("table", **_priority())(_compare_storage)


def setup(plugin: Any) -> None:
    """The Alembic >= 1.18 plugin hook (entry point ``alembic.plugins``: ``vecalchemy``)."""
    plugin.add_autogenerate_comparator(_compare_table, "table", "vector_indexes", **_priority())
    plugin.add_autogenerate_comparator(
        _compare_schema, "schema", "vector_extension", **_priority()
    )
    plugin.add_autogenerate_comparator(_compare_storage, "table", "vector_storage", **_priority())


def __getattr__(name: str) -> Any:
    if name == "SetVectorStorageOp":
        from .storage import SetVectorStorageOp

        return SetVectorStorageOp
    if name in _OPS:
        from . import ops

        return getattr(ops, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if _alembic_version() < (1, 18):  # no plugin system: importing is registering
    register()
