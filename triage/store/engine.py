"""Engine and session construction, with the SQLite settings the service relies on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.orm import Session, sessionmaker

from triage.settings import normalise_database_url

SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
)


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets WAL, FULL sync, foreign keys and BEGIN IMMEDIATE."""
    url = make_url(normalise_database_url(str(url)) if isinstance(url, str) else url)
    if url.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        return create_engine(url, **kwargs)
    if url.database and url.database != ":memory:" and not url.query.get("uri"):
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **kwargs)
    event.listen(engine, "connect", _on_sqlite_connect)
    event.listen(engine, "begin", _on_sqlite_begin)
    return engine


def _on_sqlite_connect(dbapi_connection: Any, connection_record: Any) -> None:
    # Take transaction control away from the sqlite3 driver (which never BEGINs before
    # SELECT or DDL) so that _on_sqlite_begin decides how every transaction starts.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()


def _on_sqlite_begin(connection: Connection) -> None:
    # Take the write lock up front: a read-then-write transaction can then never fail
    # half-way with SQLITE_BUSY on lock upgrade; busy_timeout makes writers queue instead.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Return a session factory bound to ``engine`` (objects stay usable after commit)."""
    return sessionmaker(engine, expire_on_commit=False)


def make_read_engine(url: str | URL, **kwargs: Any) -> Engine:
    """An engine for read-only work: on SQLite, deferred BEGIN and ``query_only`` (no write lock).

    WAL readers never block writers, so reads need not queue behind BEGIN IMMEDIATE; other
    databases get a plain engine.
    """
    url = make_url(normalise_database_url(str(url)) if isinstance(url, str) else url)
    if url.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        return create_engine(url, **kwargs)
    engine = create_engine(url, **kwargs)
    event.listen(engine, "connect", _on_sqlite_read_connect)
    event.listen(engine, "begin", _on_sqlite_read_begin)
    return engine


def _on_sqlite_read_connect(dbapi_connection: Any, connection_record: Any) -> None:
    _on_sqlite_connect(dbapi_connection, connection_record)
    dbapi_connection.execute("PRAGMA query_only=ON")


def _on_sqlite_read_begin(connection: Connection) -> None:
    # One snapshot for the whole read, without taking the write lock.
    connection.exec_driver_sql("BEGIN")
