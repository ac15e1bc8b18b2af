"""Idempotency keys: a client's retried write replays the stored reply."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from triage.store.errors import StoreError
from triage.store.statements import insert_if_new
from triage.store.tables import IdempotencyKeyRow, table_of, utcnow


def get_idempotency_key(
    session: Session, *, actor: str, scope: str, key: str
) -> IdempotencyKeyRow | None:
    """Return the stored idempotency key of this actor and route, or None."""
    return session.get(IdempotencyKeyRow, (actor, scope, key))


def claim_idempotency_key(
    session: Session, *, actor: str, scope: str, key: str, request_hash: str, entity_id: str | None
) -> IdempotencyKeyRow:
    """Store a new idempotency key, or return the one a concurrent request stored first.

    The new key is inserted without the ORM: the row returned for it is not in the session.
    """
    values = {
        "actor": actor,
        "scope": scope,
        "key": key,
        "request_hash": request_hash,
        "entity_id": entity_id,
        "created_at": utcnow(),
    }
    if insert_if_new(session, table_of(IdempotencyKeyRow), values):
        return IdempotencyKeyRow(**values)
    existing = get_idempotency_key(session, actor=actor, scope=scope, key=key)
    if existing is None:  # pragma: no cover - a conflict names a stored row
        raise StoreError("the idempotency key conflicted with a stored row that is not there")
    return existing


def store_idempotent_response(
    session: Session, *, row: IdempotencyKeyRow, status_code: int, response: Mapping[str, Any]
) -> None:
    """Record the reply a key replays from now on."""
    session.execute(
        update(IdempotencyKeyRow)
        .where(
            IdempotencyKeyRow.actor == row.actor,
            IdempotencyKeyRow.scope == row.scope,
            IdempotencyKeyRow.key == row.key,
        )
        .values(status_code=status_code, response=dict(response))
    )
