"""Engine and session construction, with the SQLite settings the service relies on."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.orm import Session, sessionmaker

from triage.settings import normalise_database_url

BUSY_TIMEOUT_MS = 5000
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
    f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}",
)
WRITE_LOCK = "triage_write_lock"


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets WAL, FULL sync, foreign keys and BEGIN IMMEDIATE."""
    url = make_url(normalise_database_url(str(url)) if isinstance(url, str) else url)
    if url.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        return create_engine(url, **kwargs)
    if url.database and url.database != ":memory:" and not url.query.get("uri"):
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **kwargs)
    # SQLite's busy handler sleeps and polls, so writers of one process contending for the
    # write lock waited up to seconds at the tail; a process-level lock queues them instead
    # (SQLite still arbitrates between processes).
    lock = threading.Lock()  # not RLock: commit and rollback may run on another thread
    event.listen(engine, "connect", _on_sqlite_connect)
    event.listen(engine, "begin", lambda connection: _on_sqlite_begin(connection, lock))
    event.listen(engine, "commit", _release_write_lock)
    event.listen(engine, "rollback", _release_write_lock)
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


def _on_sqlite_begin(connection: Connection, lock: threading.Lock) -> None:
    # Take the write lock up front: a read-then-write transaction can then never fail
    # half-way with SQLITE_BUSY on lock upgrade; busy_timeout makes writers queue instead.
    if lock.acquire(timeout=BUSY_TIMEOUT_MS / 1000):
        connection.info[WRITE_LOCK] = lock
    try:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    except BaseException:
        _release_write_lock(connection)
        raise


def _release_write_lock(connection: Connection) -> None:
    lock = connection.info.pop(WRITE_LOCK, None)
    if lock is not None:
        lock.release()


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
