"""Retention of the audit log: its oldest events go, and what stays still verifies.

Before removing events 1..N, one transaction appends an ``audit.expired`` event recording N,
the hash of event N and how many went, then deletes them; ``verify_chain`` starts from that
hash (``triage.store.auditlog.retention_start``). The run holds the checkpoint file's lock
throughout: it expires only a chain that verifies against the signed checkpoint, and then
signs the ``audit.expired`` event, so the checkpoint never names an event that is gone.
Events about a referral or an identity task still stored are kept (retention of the audit
log runs after the other kinds', so these are what this run left), and with them every later
one (the chain is cut only at its start).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, and_, delete, func, or_, select
from sqlalchemy.orm import Session

from triage.store.audit import add_audit_event
from triage.store.auditlog import (
    EXPIRED_ACTION,
    Checkpoint,
    CheckpointError,
    checkpoint_lock,
    read_checkpoint,
    verify_chain,
    write_checkpoint,
)
from triage.store.engine import session_factory
from triage.store.tables import AuditEventRow, IdentityTaskRow, ReferralRow


@dataclass(frozen=True)
class AuditExpiry:
    """What expiring the audit log did (or would do): events through ``through`` go."""

    through: int
    events: int
    refused: str | None = None
    anchor_id: int | None = None
    """The ``audit.expired`` event now at the chain's start (None: nothing was removed)."""


STORED_ENTITIES: dict[str, Any] = {
    "referral": ReferralRow.referral_id,
    "identity_task": IdentityTaskRow.task_id,
}
"""The audit entity types that name a stored record, and the column holding its id."""


def _about_a_stored_entity() -> Any:
    """The event names a record (by entity type and id) that is still in the store."""
    return or_(
        *(
            and_(AuditEventRow.entity_type == entity_type, AuditEventRow.entity_id.in_(select(key)))
            for entity_type, key in STORED_ENTITIES.items()
        )
    )


def expiring_prefix(session: Session, cutoff: datetime) -> AuditExpiry:
    """The oldest events all before ``cutoff`` and none about a record still stored."""
    first_kept = session.scalar(
        select(func.min(AuditEventRow.id)).where(
            or_(AuditEventRow.occurred_at >= cutoff, _about_a_stored_entity())
        )
    )
    newest_expiring = select(func.max(AuditEventRow.id))
    if first_kept is not None:  # ids may skip numbers (a rolled-back insert on PostgreSQL)
        newest_expiring = newest_expiring.where(AuditEventRow.id < first_kept)
    through = session.scalar(newest_expiring) or 0
    events = session.scalar(select(func.count()).where(AuditEventRow.id <= through)) or 0
    return AuditExpiry(through if events else 0, events)


def expire_audit_events(
    engine: Engine,
    cutoff: datetime,
    *,
    checkpoint_path: Path,
    key: str,
    actor: str,
    payload: dict[str, Any],
) -> AuditExpiry:
    """Remove the expiring prefix behind an ``audit.expired`` event, then sign that event.

    Refused (nothing removed) when the checkpoint cannot be trusted, the chain does not
    verify against it, or a chain with events has no checkpoint: removing evidence of a
    chain that does not verify would hide what happened to it.
    """
    maker = session_factory(engine)
    with checkpoint_lock(checkpoint_path):
        try:
            checkpoint = read_checkpoint(checkpoint_path, key)
        except CheckpointError as exc:
            return AuditExpiry(0, 0, refused=f"audit checkpoint not trusted: {exc}")
        with maker() as session:
            report = verify_chain(session, checkpoint)
        if report.broken is not None:
            return AuditExpiry(
                0,
                0,
                refused=f"the audit chain does not verify (event {report.broken.event_id}: "
                f"{report.broken.reason})",
            )
        if checkpoint is None and report.events:
            return AuditExpiry(
                0, 0, refused=f"the audit chain has no signed checkpoint at {checkpoint_path}"
            )
        with maker.begin() as session:
            found = expiring_prefix(session, cutoff)
            if not found.events:
                return found
            last_hash = session.scalar(
                select(AuditEventRow.hash).where(AuditEventRow.id == found.through)
            )
            anchor = add_audit_event(
                session,
                actor=actor,
                action=EXPIRED_ACTION,
                entity_type="audit_log",
                payload=payload
                | {
                    "expired_through_event": found.through,
                    "expired_through_hash": last_hash,
                    "expired_events": found.events,
                    "cutoff": cutoff.isoformat(),
                },
            )
            anchor_id, anchor_hash = anchor.id, str(anchor.hash)
            session.execute(delete(AuditEventRow).where(AuditEventRow.id <= found.through))
            retained = session.scalar(select(func.count()).where(AuditEventRow.id <= anchor_id))
        write_checkpoint(
            checkpoint_path,
            key,
            Checkpoint(
                event_id=anchor_id,
                events=int(retained or 0),
                hash=anchor_hash,
                written_at=datetime.now(UTC).isoformat(timespec="seconds"),
            ),
        )
    return AuditExpiry(found.through, found.events, anchor_id=anchor_id)
