"""Alembic environment of the semantic-search example, wired to vecalchemy.

The vecalchemy lines are the two marked below: the import (which, on Alembic < 1.18,
registers everything) and ``autogenerate_plugins`` (Alembic >= 1.18's opt-in for the
``vecalchemy`` plugin; older Alembic ignores it).
"""

from __future__ import annotations

import sys
from logging.config import fileConfig
from pathlib import Path

import vecalchemy_alembic  # vecalchemy
from alembic import context
from sqlalchemy import engine_from_config, pool

EXAMPLES = str(Path(__file__).resolve().parents[1])  # examples/, for models.py
if EXAMPLES not in sys.path:
    sys.path.insert(0, EXAMPLES)
from models import Base  # noqa: E402

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name)

target_metadata = Base.metadata
options = {
    "target_metadata": target_metadata,
    "autogenerate_plugins": [
        "alembic.autogenerate.*",
        vecalchemy_alembic.PLUGIN_NAME,
    ],  # vecalchemy
}


def run_migrations_offline() -> None:
    """``alembic upgrade --sql``: print the SQL instead of running it."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **options,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on ``sqlalchemy.url`` (set by the caller or in alembic.ini)."""
    connectable = engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with connectable.connect() as connection:
        context.configure(connection=connection, **options)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
