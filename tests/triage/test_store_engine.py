"""The store's schema and engine on SQLite and PostgreSQL: the migrations match the models
and run both ways, SQLite's settings on every connection, and SQLite writers in several
processes queueing on the writer lock."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect
from sqlalchemy import event as sa_event
from sqlalchemy.exc import OperationalError

from triage.store import (
    Base,
    make_engine,
)
from triage.store.engine import WRITER_LOCK_SUFFIX
from triage.store.migrate import alembic_config, current_revision, downgrade, upgrade

TABLES = {
    "households",
    "children",
    "referrals",
    "events",
    "decisions",
    "outcomes",
    "scores",
    "audit_events",
}


# --- migrations ----------------------------------------------------------------------------


def test_migration_matches_metadata(engine: Engine) -> None:
    assert set(inspect(engine).get_table_names()) >= TABLES
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def _reflected_names(engine: Engine, table: str) -> set[str]:
    inspector = inspect(engine)
    names = {inspector.get_pk_constraint(table)["name"]}
    for constraints in (
        inspector.get_check_constraints(table),
        inspector.get_unique_constraints(table),
        inspector.get_foreign_keys(table),
    ):
        names |= {constraint["name"] for constraint in constraints}
    indexes = inspector.get_indexes(table)
    return names | {index["name"] for index in indexes if not index.get("duplicates_constraint")}


def test_migration_names_constraints_like_metadata(engine: Engine) -> None:
    # compare_metadata ignores CHECK constraints and names; batch migrations rely on both.
    for table in Base.metadata.sorted_tables:
        declared = {constraint.name for constraint in table.constraints}
        declared |= {index.name for index in table.indexes}
        reflected = _reflected_names(engine, table.name)
        if engine.dialect.name == "sqlite" and table.kwargs.get("sqlite_autoincrement"):
            # "INTEGER PRIMARY KEY AUTOINCREMENT" is inline DDL: SQLite keeps no PK name.
            declared.discard(table.primary_key.name)
            reflected.discard(None)
        assert reflected == declared, table.name


def test_upgrade_twice_is_a_noop(migrated_url: str) -> None:
    script = ScriptDirectory.from_config(alembic_config(migrated_url))
    assert len(script.get_heads()) == 1, "the migrations form one chain"
    head = script.get_current_head()
    assert current_revision(migrated_url) == head
    upgrade(migrated_url)
    assert current_revision(migrated_url) == head


def test_downgrade_to_base_and_back(migrated_url: str) -> None:
    downgrade(migrated_url, "base")
    engine = make_engine(migrated_url)
    try:
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        assert current_revision(migrated_url) is None
        upgrade(migrated_url)
        inspect_again = inspect(engine)
        inspect_again.clear_cache()
        assert set(inspect_again.get_table_names()) >= TABLES
    finally:
        engine.dispose()


# --- SQLite engine settings ----------------------------------------------------------------


@pytest.fixture
def sqlite_engine(tmp_path: Any) -> Any:
    engine = make_engine(f"sqlite:///{tmp_path / 'nested' / 'dir' / 'triage.db'}")
    yield engine
    engine.dispose()


def test_sqlite_pragmas_on_every_connection(sqlite_engine: Engine) -> None:
    for _ in range(2):
        with sqlite_engine.connect() as connection:
            pragma = lambda name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
            assert pragma("journal_mode") == "wal"
            assert pragma("synchronous") == 2
            assert pragma("foreign_keys") == 1
            assert pragma("busy_timeout") == 5000
        sqlite_engine.dispose()  # the second round checks a brand-new connection


def test_sqlite_read_takes_the_write_lock(sqlite_engine: Engine) -> None:
    with sqlite_engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    other = make_engine(sqlite_engine.url)
    try:
        with sqlite_engine.connect() as reader:
            reader.exec_driver_sql("SELECT count(*) FROM t").scalar()  # BEGIN IMMEDIATE
            with other.connect() as writer:
                writer.connection.driver_connection.execute("PRAGMA busy_timeout=0")
                with pytest.raises(OperationalError, match="locked"):
                    writer.exec_driver_sql("INSERT INTO t VALUES (1)")
    finally:
        other.dispose()


def test_sqlite_savepoint_rolls_back_inside_transaction(sqlite_engine: Engine) -> None:
    with sqlite_engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    with sqlite_engine.connect() as connection:
        connection.exec_driver_sql("INSERT INTO t VALUES (1)")
        nested = connection.begin_nested()
        connection.exec_driver_sql("INSERT INTO t VALUES (2)")
        nested.rollback()
        connection.commit()
        assert connection.exec_driver_sql("SELECT x FROM t").scalars().all() == [1]


# --- SQLite writers in several processes -----------------------------------------------------

HOLD_THE_WRITE_LOCK = """
import sys, time
from triage.store import make_engine
engine = make_engine(sys.argv[1])
with engine.begin() as connection:
    connection.exec_driver_sql("INSERT INTO t VALUES (1)")
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
print("committed", flush=True)
"""


def _impatient(engine: Engine) -> Engine:
    """The engine, with SQLite's own busy wait turned off: only the writer lock may queue it."""
    sa_event.listen(
        engine, "connect", lambda dbapi, _: dbapi.execute("PRAGMA busy_timeout=0"), insert=False
    )
    return engine


def _hold(url: str, seconds: float) -> subprocess.Popen[bytes]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_WRITE_LOCK, url, str(seconds)], stdout=subprocess.PIPE
    )
    assert holder.stdout is not None and holder.stdout.readline() == b"holding\n"
    return holder


def test_sqlite_writers_of_other_processes_queue_on_the_writer_lock(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'triage.db'}"
    engine = _impatient(make_engine(url))
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        assert (tmp_path / f"triage.db{WRITER_LOCK_SUFFIX}").exists()
        holder = _hold(url, 0.5)
        started = time.monotonic()
        # Without the writer lock this fails at once ("database is locked"): no busy timeout.
        with engine.begin() as connection:
            connection.exec_driver_sql("INSERT INTO t VALUES (2)")
        assert time.monotonic() - started > 0.3
        assert holder.wait(timeout=10) == 0
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT x FROM t").scalars().all() == [1, 2]
    finally:
        engine.dispose()


def test_sqlite_writer_lock_of_a_killed_process_is_released(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'triage.db'}"
    engine = _impatient(make_engine(url))
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        holder = _hold(url, 60)
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        started = time.monotonic()
        with engine.begin() as connection:
            connection.exec_driver_sql("INSERT INTO t VALUES (2)")
        assert time.monotonic() - started < 1
        with engine.connect() as connection:  # the killed writer's row never committed
            assert connection.exec_driver_sql("SELECT x FROM t").scalars().all() == [2]
    finally:
        engine.dispose()
