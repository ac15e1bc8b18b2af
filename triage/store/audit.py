"""The hash-chained audit log (see ``triage.store.auditlog``): appending one event.

``add_audit_event`` works through the ORM and returns the row; ``insert_audit_event`` is Core
and returns the event's hash.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, text
from sqlalchemy.orm import Session

from triage.store.auditlog import (
    CHAIN_LOCK_KEY,
    GENESIS,
    chain_hash,
    event_document,
    normalise_payload,
)
from triage.store.statements import session_connection
from triage.store.tables import AuditEventRow, table_of, utcnow


def add_audit_event(
    session: Session,
    *,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str | None = None,
    model_version: str | None = None,
    payload: Mapping[str, Any],
    occurred_at: datetime | None = None,
) -> AuditEventRow:
    """Append an audit record, chained to the one before it (see ``triage.store.auditlog``)."""
    row = AuditEventRow(
        **_chained_audit_values(
            _locked_chain_head(session_connection(session)),
            actor=actor,
            action=action,
            entity_type=entity_type,
            entity_id=entity_id,
            model_version=model_version,
            payload=payload,
            occurred_at=occurred_at,
        )
    )
    session.add(row)
    session.flush()
    return row


_INSERT_AUDIT_EVENT = table_of(AuditEventRow).insert()
_CHAIN_HEAD = select(AuditEventRow.hash).order_by(AuditEventRow.id.desc()).limit(1)
_CHAIN_LOCK = text("SELECT pg_advisory_xact_lock(:key)").bindparams(key=CHAIN_LOCK_KEY)


def insert_audit_event(
    session: Session,
    *,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str | None = None,
    model_version: str | None = None,
    payload: Mapping[str, Any],
    occurred_at: datetime | None = None,
    after: str | None = None,
) -> str:
    """``add_audit_event`` without the ORM (no row object); returns the event's hash.

    ``after`` is the hash this transaction's previous ``insert_audit_event`` returned: the
    chain's head is then known (and locked) without reading it again.
    """
    connection = session_connection(session)
    values = _chained_audit_values(
        after if after is not None else _locked_chain_head(connection),
        actor=actor,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        model_version=model_version,
        payload=payload,
        occurred_at=occurred_at,
    )
    connection.execute(_INSERT_AUDIT_EVENT, values)
    return str(values["hash"])


def _locked_chain_head(connection: Connection) -> str:
    """Serialise appenders and return the hash of the last event (``GENESIS`` when none).

    SQLite writers already hold the database write lock (BEGIN IMMEDIATE); on PostgreSQL a
    transaction-scoped advisory lock stops two writers chaining onto the same hash. It is
    held until the caller's transaction ends, so events are committed in chain order.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(_CHAIN_LOCK)
    return connection.execute(_CHAIN_HEAD).scalar() or GENESIS


def _chained_audit_values(
    prev_hash: str,
    *,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str | None,
    model_version: str | None,
    payload: Mapping[str, Any],
    occurred_at: datetime | None,
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "occurred_at": occurred_at or utcnow(),
        "actor": actor,
        "action": action,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "model_version": model_version,
        "payload": normalise_payload(payload),
    }
    return fields | {
        "prev_hash": prev_hash,
        "hash": chain_hash(prev_hash, event_document(**fields)),
    }
