"""env.py of the throw-away Alembic projects the tests build (see ``AlembicProject``).

Wired to vecalchemy the way the README says: on Alembic >= 1.18 by naming the
``vecalchemy`` plugin, or by ``vecalchemy_alembic.register()``. Online migrations run
through the project's engine, or, for asyncpg, as Alembic's ``async`` template runs
them: an AsyncEngine from the config (``async_engine_from_config``) and
``connection.run_sync(do_run_migrations)``.
"""

from __future__ import annotations

import asyncio
import importlib.util

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import async_engine_from_config

config = context.config
attrs = config.attributes

spec = importlib.util.spec_from_file_location("alembic_test_models", attrs["models_path"])
assert spec is not None and spec.loader is not None
models = importlib.util.module_from_spec(spec)
spec.loader.exec_module(models)
target_metadata = models.metadata

options = dict(
    target_metadata=target_metadata,
    version_table_schema=attrs.get("version_table_schema"),
    include_schemas=attrs.get("include_schemas", False),
    include_name=attrs.get("include_name"),
    include_object=attrs.get("include_object"),
)
if attrs["registration"] == "register":
    import vecalchemy_alembic

    vecalchemy_alembic.register()
else:
    options["autogenerate_plugins"] = ["alembic.autogenerate.*", "vecalchemy"]


def do_run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, **options)
    with context.begin_transaction():
        context.run_migrations()
    # the driver the run went through and what it left in the migration context's
    # options (the tests check them)
    attrs["migration_driver"] = connection.dialect.driver
    attrs["migration_opts"] = dict(context.get_context().opts)


async def run_async_migrations() -> None:
    connectable = async_engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
        connect_args=attrs["connect_args"],
    )
    async with connectable.connect() as connection:
        await connection.run_sync(do_run_migrations)
    await connectable.dispose()


if context.is_offline_mode():
    context.configure(url=attrs["url"], literal_binds=True, **options)
    with context.begin_transaction():
        context.run_migrations()
elif attrs["driver"] == "asyncpg":
    asyncio.run(run_async_migrations())
else:
    with attrs["engine"].connect() as connection:
        do_run_migrations(connection)
