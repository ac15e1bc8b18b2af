"""Alembic environment: the URL comes from the config's ``sqlalchemy.url``, set by the caller."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Connection

from triage.store.engine import make_engine
from triage.store.tables import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        from triage.settings import get_settings

        url = get_settings().database_url
    return url


def _configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
        **kwargs,
    )


def run_offline() -> None:
    """Emit the migration SQL without a database connection."""
    _configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Run the migrations against the database."""
    connection: Connection | None = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url())
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


def _driver(connection: Connection) -> Any:
    """The DBAPI connection under a live SQLAlchemy connection."""
    driver = connection.connection.driver_connection
    if driver is None:
        raise RuntimeError("the migration's connection is closed")
    return driver


def _run(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # Batch mode rebuilds SQLite tables (copy, drop, rename); with foreign keys on, the
        # drop would fail or cascade. The pragma only takes effect outside a transaction.
        _driver(connection).execute("PRAGMA foreign_keys=OFF")
    try:
        # make_engine has SQLite BEGIN explicitly, so its DDL is transactional too: run all
        # revisions in one transaction and a failed upgrade leaves no half-built schema.
        _configure(connection=connection, transactional_ddl=True)
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"migration broke foreign keys: {broken[:5]}")
    finally:
        if sqlite:
            _driver(connection).execute("PRAGMA foreign_keys=ON")


if context.is_offline_mode():
    run_offline()
else:
    run_online()
