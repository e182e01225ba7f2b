"""env.py of the throw-away Alembic projects the tests build (see ``AlembicProject``).

Wired to vecalchemy the way the README says: on Alembic >= 1.18 by naming the
``vecalchemy`` plugin, or by ``vecalchemy_alembic.register()``.
"""

from __future__ import annotations

import importlib.util

from alembic import context

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

if context.is_offline_mode():
    context.configure(url=attrs["url"], literal_binds=True, **options)
    with context.begin_transaction():
        context.run_migrations()
else:
    with attrs["engine"].connect() as connection:
        context.configure(connection=connection, **options)
        with context.begin_transaction():
            context.run_migrations()
