"""Engine and session construction, with the SQLite settings the service relies on."""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
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
WRITER_LOCK_SUFFIX = "-writer"
"""The file beside a SQLite database on which writer processes queue (``triage.db-writer``)."""
_POLL_SECONDS = (0.0002, 0.0005, 0.001, 0.002)


class WriterLock:
    """Queues SQLite writers: threads of this process on a lock, processes on ``flock``.

    SQLite's busy handler sleeps and polls (1, 2, 5, 10 … 100 ms), so writers contending for
    its write lock waited up to seconds at the tail. Threads of one process queue on a
    ``threading.Lock``; processes (several ``triage serve`` workers, the CLI) then take an
    exclusive ``flock`` on a file beside the database, polled at most 2 ms apart. The kernel
    drops the ``flock`` when its process dies, even by SIGKILL. SQLite still arbitrates:
    on timeout, BEGIN IMMEDIATE goes ahead and its busy timeout applies as before.
    """

    def __init__(self, path: Path | None) -> None:
        self._thread_lock = threading.Lock()  # not RLock: release may run on another thread
        self._path = path
        self._fd: int | None = None
        self._pid = 0

    def acquire(self, timeout: float) -> bool:
        """Take the lock within ``timeout`` seconds; False (not held) when the time runs out."""
        deadline = time.monotonic() + timeout
        if not self._thread_lock.acquire(timeout=timeout):
            return False
        if self._path is None:
            return True
        try:
            fd = self._file()
            for attempt in range(1 << 30):
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        break
                    time.sleep(_POLL_SECONDS[min(attempt, len(_POLL_SECONDS) - 1)])
        except BaseException:
            self._thread_lock.release()
            raise
        self._thread_lock.release()
        return False

    def release(self) -> None:
        """Let the next writer in."""
        try:
            if self._fd is not None and self._pid == os.getpid():
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    def _file(self) -> int:
        # Opened once per process: a descriptor inherited over fork would share the lock.
        if self._fd is None or self._pid != os.getpid():
            assert self._path is not None
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._pid = os.getpid()
        return self._fd


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets WAL, FULL sync, foreign keys and BEGIN IMMEDIATE."""
    url = make_url(normalise_database_url(str(url)) if isinstance(url, str) else url)
    if url.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        return create_engine(url, **kwargs)
    lock_path = None
    if url.database and url.database != ":memory:" and not url.query.get("uri"):
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        lock_path = Path(url.database + WRITER_LOCK_SUFFIX)
    engine = create_engine(url, **kwargs)
    # Writers queue on a lock rather than in SQLite's sleeping busy handler (see WriterLock).
    lock = WriterLock(lock_path)
    event.listen(engine, "connect", _on_sqlite_connect)
    event.listen(engine, "begin", lambda connection: _on_sqlite_begin(connection, lock))
    event.listen(engine, "commit", _commit_then_release)
    event.listen(engine, "rollback", _rollback_then_release)
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


def _on_sqlite_begin(connection: Connection, lock: WriterLock) -> None:
    # Take the write lock up front: a read-then-write transaction can then never fail
    # half-way with SQLITE_BUSY on lock upgrade; busy_timeout makes writers queue instead.
    if lock.acquire(timeout=BUSY_TIMEOUT_MS / 1000):
        connection.info[WRITE_LOCK] = lock
    try:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    except BaseException:
        _release_write_lock(connection)
        raise


def _commit_then_release(connection: Connection) -> None:
    _end_then_release(connection, commit=True)


def _rollback_then_release(connection: Connection) -> None:
    _end_then_release(connection, commit=False)


def _end_then_release(connection: Connection, *, commit: bool) -> None:
    # SQLAlchemy announces COMMIT and ROLLBACK before the driver runs them: end the
    # transaction first, so that the next writer finds SQLite's lock free instead of sleeping
    # in its busy handler. The driver's own call that follows is then a no-op, or raises the
    # same error again and SQLAlchemy wraps it as usual.
    if WRITE_LOCK not in connection.info:
        return
    try:
        dbapi_connection = connection.connection.dbapi_connection
        if dbapi_connection is not None and dbapi_connection.in_transaction:
            with contextlib.suppress(Exception):
                (dbapi_connection.commit if commit else dbapi_connection.rollback)()
    finally:
        _release_write_lock(connection)


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
