"""Stores at head without running Alembic per test: one store migrated per test run, copied.

Alembic's upgrade costs a fraction of a second on SQLite and more on PostgreSQL, and hundreds
of tests start from a migrated store. So the root conftest's ``store_templates`` migrates one
SQLite file and one PostgreSQL schema per run, and tests get copies: the file copied, the
schema restored from ``pg_dump`` of the template under the test's own schema name. The same
copies can carry data: a module builds a world once and each test gets it fresh
(tests/api/test_review_export.py). The migration tests still run Alembic on empty stores
(tests/triage/test_store.py, tests/triage/test_store_engine.py), and a copy must pass them too.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from triage.settings import normalise_database_url
from triage.store import make_engine
from triage.store.migrate import upgrade


def conninfo(url: str) -> str:
    """A libpq connection string for a SQLAlchemy PostgreSQL URL (its schema option kept)."""
    plain = make_url(normalise_database_url(url)).set(drivername="postgresql")
    return plain.render_as_string(hide_password=False)


def schema_of(url: str) -> str:
    """The private schema a test's PostgreSQL URL puts first on its search path."""
    options = str(make_url(url).query.get("options", ""))
    prefix = "-csearch_path="
    if not options.startswith(prefix):
        raise ValueError(f"not a private-schema URL (options {options!r})")
    return options.removeprefix(prefix)


def schema_url(server_url: str, schema: str) -> str:
    """The server URL with ``schema`` first on the search path, as conftest's database_url."""
    url = make_url(server_url).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


def create_schema(server_url: str, schema: str) -> None:
    """An empty schema on the server."""
    admin = make_engine(server_url)
    try:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    finally:
        admin.dispose()


def drop_schema(server_url: str, schema: str) -> None:
    """Drop a schema and all it holds."""
    admin = make_engine(server_url)
    try:
        with admin.begin() as connection:
            connection.exec_driver_sql("SET LOCAL lock_timeout = '10s'")
            connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        admin.dispose()


class SchemaDump:
    """A schema's tables and rows as SQL that recreates them under another schema's name."""

    def __init__(self, server_url: str, schema: str) -> None:
        dump = subprocess.run(
            [
                "pg_dump",
                f"--dbname={conninfo(server_url)}",
                f"--schema={schema}",
                "--no-owner",
                "--no-privileges",
                "--inserts",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        # The target schema exists already (conftest's database_url made it); psql's
        # meta-commands (\restrict) are not SQL. The schema name is a random hex token, so
        # replacing it touches nothing else.
        lines = [
            line
            for line in dump.splitlines()
            if not line.startswith("\\") and line != f"CREATE SCHEMA {schema};"
        ]
        self.schema = schema
        self.sql = "\n".join(lines)

    def restore(self, url: str) -> None:
        """Recreate the dumped schema's contents in the (empty) private schema of ``url``."""
        target = schema_of(url)
        with psycopg.connect(conninfo(url)) as connection:
            connection.execute(self.sql.replace(self.schema, target).encode())


def sqlite_copy(template: Path, path: Path) -> str:
    """Copy a SQLite store file to ``path`` and return its URL."""
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


class StoreTemplates:
    """One store migrated to head per backend, made on first use; tests get copies."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._sqlite: Path | None = None
        self._postgres: tuple[str, SchemaDump | None] | None = None

    def sqlite(self, path: Path) -> str:
        """A SQLite store at head at ``path`` (a copy of the template); its URL."""
        if self._sqlite is None:
            template = self.directory / "template.db"
            upgrade(f"sqlite:///{template}")
            self._sqlite = template
        return sqlite_copy(self._sqlite, path)

    def postgres(self, url: str, server_url: str) -> None:
        """Bring the empty private schema of ``url`` to head (a copy of the template's).

        Without a working ``pg_dump`` (absent, or older than the server) each store is
        migrated itself: slower, the same schema.
        """
        if self._postgres is None:
            schema = f"t_template_{uuid.uuid4().hex}"
            create_schema(server_url, schema)
            try:
                upgrade(schema_url(server_url, schema))
                dump: SchemaDump | None = SchemaDump(server_url, schema)
            except (OSError, subprocess.CalledProcessError):
                dump = None
            finally:
                drop_schema(server_url, schema)
            self._postgres = (server_url, dump)
        dump = self._postgres[1]
        if dump is None:
            upgrade(url)
        else:
            dump.restore(url)

    def migrated(self, url: str, server_url: str | None) -> None:
        """Bring the empty store at ``url`` to head: SQLite or a private PostgreSQL schema."""
        if make_url(url).get_backend_name() == "sqlite":
            database = make_url(url).database
            assert database, url
            self.sqlite(Path(database))
            return
        assert server_url is not None, "a PostgreSQL store needs the server's URL"
        self.postgres(url, server_url)
