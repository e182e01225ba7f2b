"""A real, throw-away Alembic project per test: models module, revision, upgrade, check.

``AlembicProject(tmp_path, url, schema)`` writes ``migrations/`` (this folder's
``env.py`` and Alembic's own ``script.py.mako``) and a ``models.py`` the test supplies,
and runs Alembic's commands in-process against the session's PostgreSQL, isolated by
``search_path = <schema>, public``. ``driver=`` picks the DBAPI the migrations run
through (``postgresql+<driver>://``): psycopg, psycopg2, pg8000, or asyncpg, for which
env.py runs online migrations the way Alembic's ``async`` template does.
"""

from __future__ import annotations

import io
import re
import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import alembic
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from vecalchemy.testing import driver_url

__all__ = ["AlembicProject", "HAS_PLUGINS", "REGISTRATIONS", "DRIVERS", "search_path_args"]

HAS_PLUGINS = tuple(int(p) for p in alembic.__version__.split(".")[:2]) >= (1, 18)
#: how env.py switches vecalchemy on: the 1.18+ plugin, and register() everywhere
REGISTRATIONS = ("plugin", "register") if HAS_PLUGINS else ("register",)

#: the DBAPIs a project can migrate through; asyncpg with an async env.py
DRIVERS = ("psycopg", "psycopg2", "pg8000", "asyncpg")

_HERE = Path(__file__).parent
_TEMPLATE = Path(alembic.__file__).parent / "templates" / "generic" / "script.py.mako"


def search_path_args(driver: str, schema: str) -> dict[str, Any]:
    """``connect_args`` that set ``search_path = <schema>, public`` with ``driver``."""
    path = f"{schema},public"
    if driver == "asyncpg":
        return {"server_settings": {"search_path": path}}
    if driver == "pg8000":
        return {"startup_params": {"search_path": path}}
    return {"options": f"-csearch_path={path}"}


class AlembicProject:
    """One Alembic project in ``root`` targeting ``schema`` of the database at ``url``
    (a ``postgresql+psycopg`` URL), migrating through ``driver`` (one of DRIVERS)."""

    def __init__(
        self,
        root: Path,
        url: str,
        schema: str,
        *,
        registration: str = REGISTRATIONS[0],
        driver: str = "psycopg",
        **attributes: Any,
    ) -> None:
        assert driver in DRIVERS, driver
        self.root = root
        self.schema = schema
        self.driver = driver
        self.url = driver_url(url, driver)
        scripts = root / "migrations"
        (scripts / "versions").mkdir(parents=True)
        shutil.copy(_HERE / "env.py", scripts / "env.py")
        shutil.copy(_TEMPLATE, scripts / "script.py.mako")
        self.models_path = root / "models.py"
        connect_args = search_path_args(driver, schema)
        #: the engine env.py migrates through (sync drivers) and the tests' catalog
        #: queries use; with asyncpg, env.py makes its own AsyncEngine from the config
        #: and the queries go through psycopg
        self.engine: Engine = (
            create_engine(url, connect_args=search_path_args("psycopg", schema))
            if driver == "asyncpg"
            else create_engine(self.url, connect_args=connect_args)
        )
        self.output = io.StringIO()
        self.config = Config(output_buffer=self.output)
        self.config.set_main_option("script_location", str(scripts))
        # (ConfigParser interpolation: a URL's %-escapes are written as %%)
        self.config.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        self.config.attributes.update(
            models_path=str(self.models_path),
            engine=self.engine,
            url=self.url,
            driver=driver,
            connect_args=connect_args,
            registration=registration,
            **attributes,
        )

    def write_models(self, source: str) -> None:
        """Write ``models.py`` (it must define ``metadata``)."""
        header = (
            "import sqlalchemy as sa\n"
            "from sqlalchemy import Column, Index, Integer, MetaData, Table, cast\n"
            "from vecalchemy import Bit, HalfVec, SparseVec, Vector, binary_quantize\n"
            "from vecalchemy.indexes import HnswIndex, IvfflatIndex\n\n"
            "metadata = MetaData()\n"
        )
        self.models_path.write_text(header + textwrap.dedent(source))

    def revision(self, message: str = "auto") -> str:
        """Autogenerate a revision; return the text of the new migration file."""
        script = command.revision(self.config, message=message, autogenerate=True)
        assert script is not None and not isinstance(script, list)
        return Path(script.path).read_text()

    def upgrade(self, target: str = "head") -> None:
        command.upgrade(self.config, target)

    def downgrade(self, target: str = "base") -> None:
        command.downgrade(self.config, target)

    def check(self) -> None:
        """``alembic check``: raises ``AutogenerateDiffsDetected`` on any difference."""
        command.check(self.config)

    def offline(self, revisions: str, *, downgrade: bool = False) -> str:
        """``alembic upgrade|downgrade <revisions> --sql``: the SQL it prints."""
        start = self.output.tell()
        (command.downgrade if downgrade else command.upgrade)(self.config, revisions, sql=True)
        return self.output.getvalue()[start:]

    def heads(self) -> list[str]:
        return list(ScriptDirectory.from_config(self.config).get_heads())

    def query(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params)]

    def indexes(self, schema: str | None = None) -> dict[str, str]:
        """index name -> ``pg_get_indexdef`` of every index in ``schema`` (default: ours)."""
        rows = self.query(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = :s",
            s=schema or self.schema,
        )
        return {
            name: re.sub(rf'"?{re.escape(schema or self.schema)}"?\.', "", d) for name, d in rows
        }

    def column_types(self, table: str, schema: str | None = None) -> dict[str, str]:
        """column -> ``format_type`` of ``schema.table``."""
        rows = self.query(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"
            " JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid ="
            " c.relnamespace WHERE n.nspname = :s AND c.relname = :t AND a.attnum > 0"
            " AND NOT a.attisdropped",
            s=schema or self.schema,
            t=table,
        )
        return dict(rows)

    def tables(self, schema: str | None = None) -> set[str]:
        rows = self.query(
            "SELECT tablename FROM pg_tables WHERE schemaname = :s", s=schema or self.schema
        )
        return {r[0] for r in rows} - {"alembic_version"}

    def dispose(self) -> None:
        self.engine.dispose()


def ops_of(migration: str, function: str) -> list[str]:
    """The ``op.*`` calls of ``upgrade`` or ``downgrade`` in a migration, in order,
    as their names (``"create_table"``...)."""
    body = migration.split(f"def {function}()", 1)[1].split("\ndef ", 1)[0]
    return [name for name in re.findall(r"\bop\.(\w+)\(", body) if name != "f"]


Runner = Callable[..., AlembicProject]
