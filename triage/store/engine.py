"""Engine and session construction, with the SQLite settings the service relies on."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, ExceptionContext, make_url
from sqlalchemy.exc import DBAPIError
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
WROTE = "triage_wrote"
"""Set on a connection's ``info`` once its transaction has run an INSERT, UPDATE or DELETE."""
_WRITE_VERBS = ("INSERT", "UPDATE", "DELETE")

log = logging.getLogger(__name__)

# SQLite primary result codes (the low byte of an extended code) that mean the store cannot
# take the write now, not that the write itself is wrong.
_SQLITE_UNAVAILABLE = {
    5: "busy",  # SQLITE_BUSY
    6: "busy",  # SQLITE_LOCKED
    7: "out_of_memory",  # SQLITE_NOMEM
    10: "io_error",  # SQLITE_IOERR
    13: "disk_full",  # SQLITE_FULL
    14: "cannot_open",  # SQLITE_CANTOPEN
    15: "busy",  # SQLITE_PROTOCOL
}
# PostgreSQL SQLSTATEs, most specific first: classes 08 (connection), 53 (resources),
# 57P (operator intervention: shutdown, crash recovery) and 58 (system, e.g. I/O).
_POSTGRES_UNAVAILABLE = (
    ("53100", "disk_full"),
    ("53200", "out_of_memory"),
    ("58030", "io_error"),
    ("40P01", "busy"),
    ("55P03", "busy"),
    ("08", "connection_lost"),
    ("53", "out_of_resources"),
    ("57P", "shutting_down"),
    ("58", "system_error"),
)
TRANSIENT_REASONS = frozenset({"busy"})
"""Reasons that clear by themselves (lock contention): refused, but the store is not failing."""


@dataclass(frozen=True)
class StoreFailure:
    """Why the store could not take a write: a reason word and the driver's code (no data)."""

    reason: str
    code: str

    def as_log(self) -> dict[str, str]:
        """The failure as log fields."""
        return {"reason": self.reason, "code": self.code}


def store_failure(exc: BaseException | None) -> StoreFailure | None:
    """The store failure behind ``exc`` (a driver error, wrapped or not), or None if none is.

    Constraint violations, bad SQL and other errors of the request itself give None.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        failure = _driver_failure(exc)
        if failure is not None:
            return failure
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            return StoreFailure("connection_lost", "disconnect")
        exc = getattr(exc, "orig", None) or exc.__cause__
    return None


def _driver_failure(exc: BaseException) -> StoreFailure | None:
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        reason = _SQLITE_UNAVAILABLE.get(code & 0xFF) if isinstance(code, int) else None
        name = getattr(exc, "sqlite_errorname", None) or str(code)
        return StoreFailure(reason, name) if reason is not None else None
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str):
        for prefix, reason in _POSTGRES_UNAVAILABLE:
            if sqlstate.startswith(prefix):
                return StoreFailure(reason, sqlstate)
    return None


class StoreHealth:
    """Whether the last write on an engine committed, and if not why (``/readyz`` reads it).

    A write that fails for a reason in ``store_failure`` marks the store failing; the next
    transaction that writes and commits marks it well again.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failure: StoreFailure | None = None

    @property
    def failure(self) -> StoreFailure | None:
        """The failure of the last write, None when it committed (or none was tried)."""
        return self._failure

    def failed(self, failure: StoreFailure) -> None:
        """Record a write that did not commit; log when the store starts failing."""
        if failure.reason in TRANSIENT_REASONS:
            return
        with self._lock:
            changed, self._failure = self._failure != failure, failure
        if changed:
            log.error(json.dumps({"event": "store_writes_failing"} | failure.as_log()))

    def committed(self) -> None:
        """Record a write that committed; log when the store recovers."""
        with self._lock:
            recovered, self._failure = self._failure is not None, None
        if recovered:
            log.warning(json.dumps({"event": "store_writes_recovered"}))


_HEALTH: weakref.WeakKeyDictionary[Engine, StoreHealth] = weakref.WeakKeyDictionary()


def store_health(engine: Engine) -> StoreHealth:
    """The write health of an engine made by ``make_engine``."""
    health = _HEALTH.get(engine)
    if health is None:
        health = _HEALTH.setdefault(engine, StoreHealth())
    return health


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
        engine = create_engine(url, **kwargs)
        _watch_writes(engine)
        event.listen(engine, "commit", lambda connection: _committed(connection, engine))
        event.listen(engine, "rollback", _rolled_back)
        return engine
    lock_path = None
    if url.database and url.database != ":memory:" and not url.query.get("uri"):
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        lock_path = Path(url.database + WRITER_LOCK_SUFFIX)
    engine = create_engine(url, **kwargs)
    # Writers queue on a lock rather than in SQLite's sleeping busy handler (see WriterLock).
    lock = WriterLock(lock_path)
    _watch_writes(engine)
    event.listen(engine, "connect", _on_sqlite_connect)
    event.listen(engine, "begin", lambda connection: _on_sqlite_begin(connection, lock))
    event.listen(engine, "commit", lambda connection: _commit_then_release(connection, engine))
    event.listen(engine, "rollback", _rollback_then_release)
    return engine


def _watch_writes(engine: Engine) -> None:
    """Note which transactions write, and record failures in the engine's ``StoreHealth``."""
    health = store_health(engine)

    def after_execute(connection: Connection, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip()[:6].upper() in _WRITE_VERBS:
            connection.info[WROTE] = True

    def handle_error(context: ExceptionContext) -> None:
        failure = store_failure(context.original_exception)
        if failure is None and context.is_disconnect:
            failure = StoreFailure("connection_lost", "disconnect")
        if failure is not None:
            health.failed(failure)

    event.listen(engine, "after_cursor_execute", after_execute)
    event.listen(engine, "handle_error", handle_error)


def _committed(connection: Connection, engine: Engine) -> None:
    # Announced before the driver commits: if that fails, handle_error runs next and records
    # the failure, so the last word is still the outcome.
    if connection.info.pop(WROTE, False):
        store_health(engine).committed()


def _rolled_back(connection: Connection) -> None:
    connection.info.pop(WROTE, None)


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


def _commit_then_release(connection: Connection, engine: Engine) -> None:
    # SQLAlchemy announces COMMIT before the driver runs it: commit first, so that the next
    # writer finds SQLite's lock free instead of sleeping in its busy handler.
    wrote = connection.info.pop(WROTE, False)
    if WRITE_LOCK not in connection.info:
        _committed_if(wrote, engine)
        return
    try:
        dbapi_connection = connection.connection.dbapi_connection
        if dbapi_connection is not None and dbapi_connection.in_transaction:
            try:
                dbapi_connection.commit()
            except sqlite3.Error as exc:
                if dbapi_connection.in_transaction:
                    # Still open (e.g. a deferred constraint): the driver's own commit() that
                    # follows runs COMMIT again and raises this error, wrapped as usual.
                    return
                # SQLite rolled the transaction back itself (SQLITE_FULL, SQLITE_IOERR): the
                # driver's commit() would now do nothing and report success. Nothing was
                # stored, so the caller must hear it.
                failure = store_failure(exc) or StoreFailure("commit_failed", _sqlite_name(exc))
                store_health(engine).failed(failure)
                raise DBAPIError.instance("COMMIT", None, exc, sqlite3.Error) from exc
        _committed_if(wrote, engine)
    finally:
        _release_write_lock(connection)


def _committed_if(wrote: bool, engine: Engine) -> None:
    if wrote:
        store_health(engine).committed()


def _sqlite_name(exc: sqlite3.Error) -> str:
    return str(getattr(exc, "sqlite_errorname", None) or type(exc).__name__)


def _rollback_then_release(connection: Connection) -> None:
    # As for COMMIT: end the transaction first so the next writer finds the lock free. A
    # failing ROLLBACK is not hidden: the driver's own rollback() that follows runs it again
    # on a transaction still open and raises, and on one SQLite already ended nothing is kept
    # either way.
    connection.info.pop(WROTE, None)
    if WRITE_LOCK not in connection.info:
        return
    try:
        dbapi_connection = connection.connection.dbapi_connection
        if dbapi_connection is not None and dbapi_connection.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                dbapi_connection.rollback()
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
