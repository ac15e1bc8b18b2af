"""Core-statement plumbing shared by the store modules: the session's connection, INSERT-if-new.

Hot-path writes and reads are prebuilt Core statements run on the session's connection:
no ORM unit of work, no statement built per call (the intake and scoring write paths).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from triage.store.errors import StoreError


def session_connection(session: Session) -> Connection:
    """The connection of the session's transaction, for Core statements."""
    session.flush()  # as the ORM's autoflush would: pending objects first (usually none)
    return session.connection()


_INSERT_IF_NEW: dict[tuple[str, str, bool], Any] = {}
_DIALECT_INSERTS: dict[str, Callable[[Table], sqlite.Insert | postgresql.Insert]] = {
    "sqlite": sqlite.insert,
    "postgresql": postgresql.insert,
}


def insert_if_new_statement(connection: Connection, table: Table, *, returning: bool) -> Any:
    """The dialect's ``INSERT … ON CONFLICT DO NOTHING`` for ``table``, built once and kept."""
    key = (connection.dialect.name, table.name, returning)
    statement = _INSERT_IF_NEW.get(key)
    if statement is None:
        dialect_insert = _DIALECT_INSERTS.get(key[0])
        if dialect_insert is None:
            raise StoreError(f"the store supports SQLite and PostgreSQL, not {key[0]}")
        statement = dialect_insert(table).on_conflict_do_nothing()
        if returning:  # not rowcount: psycopg reports -1 for this statement
            statement = statement.returning(*table.primary_key.columns)
        _INSERT_IF_NEW[key] = statement
    return statement


def insert_if_new(session: Session, table: Table, values: Mapping[str, Any]) -> bool:
    """``INSERT … ON CONFLICT DO NOTHING`` (Core, no ORM flush); True when the row went in.

    On PostgreSQL a concurrent transaction's uncommitted row with the same key makes this
    wait for that transaction; no savepoint is needed, so nothing poisons the caller's.
    """
    connection = session_connection(session)
    statement = insert_if_new_statement(connection, table, returning=True)
    return connection.execute(statement, dict(values)).first() is not None
