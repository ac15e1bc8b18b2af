"""The hash-chained, append-only audit log: canonical form, hashing, appending and verifying.

Each event's hash is SHA-256 over the previous event's hash and a canonical JSON of the
event (every column but ``id``, ``prev_hash`` and ``hash``), so changing, removing or
reordering a stored event breaks the link to the next one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from triage.store.tables import AuditEventRow

GENESIS = "0" * 64
"""The ``prev_hash`` of the first event."""

# Any constant works: it only has to be the same for every writer of the chain.
CHAIN_LOCK_KEY = 0x7472_6961_6765  # "triage"

VERIFY_BATCH = 5_000


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 as is: one string for equal JSON values."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def normalise_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The payload exactly as the JSON column will give it back (what gets hashed)."""
    return json.loads(canonical_json(dict(payload)))


def _instant(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def event_document(
    *,
    occurred_at: datetime,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str | None,
    model_version: str | None,
    payload: Mapping[str, Any],
) -> dict[str, Any]:
    """The fields of an event that its hash covers."""
    return {
        "occurred_at": _instant(occurred_at),
        "actor": actor,
        "action": action,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "model_version": model_version,
        "payload": dict(payload),
    }


def chain_hash(prev_hash: str, document: Mapping[str, Any]) -> str:
    """SHA-256 (hex) over the previous hash and the event's canonical JSON."""
    digest = hashlib.sha256()
    digest.update(prev_hash.encode("ascii"))
    digest.update(b"\n")
    digest.update(canonical_json(dict(document)).encode("utf-8"))
    return digest.hexdigest()


def row_hash(row: AuditEventRow, prev_hash: str) -> str:
    """The hash a stored event should carry given the hash before it."""
    return chain_hash(
        prev_hash,
        event_document(
            occurred_at=row.occurred_at,
            actor=row.actor,
            action=row.action,
            entity_type=row.entity_type,
            entity_id=row.entity_id,
            model_version=row.model_version,
            payload=row.payload,
        ),
    )


@dataclass(frozen=True)
class BrokenLink:
    """The first event whose stored hashes do not match the chain."""

    event_id: int
    reason: str


@dataclass(frozen=True)
class ChainReport:
    """The outcome of walking the chain."""

    events: int
    head: str
    broken: BrokenLink | None

    @property
    def ok(self) -> bool:
        """True when every link holds."""
        return self.broken is None


def _rows(session: Session) -> Iterator[AuditEventRow]:
    from triage.store.tables import AuditEventRow

    last_id = -1
    while True:
        batch = session.scalars(
            select(AuditEventRow)
            .where(AuditEventRow.id > last_id)
            .order_by(AuditEventRow.id)
            .limit(VERIFY_BATCH)
        ).all()
        if not batch:
            return
        yield from batch
        last_id = batch[-1].id
        session.expunge_all()


def verify_chain(session: Session) -> ChainReport:
    """Walk every event in id order and report the first broken link, if any."""
    prev = GENESIS
    count = 0
    for row in _rows(session):
        count += 1
        if row.prev_hash != prev:
            return ChainReport(
                count, prev, BrokenLink(row.id, "prev_hash does not match the event before it")
            )
        if row.hash != row_hash(row, prev):
            return ChainReport(
                count, prev, BrokenLink(row.id, "hash does not match the event's contents")
            )
        prev = row.hash
    return ChainReport(count, prev, None)
