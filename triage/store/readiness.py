"""The readiness probe's write: a one-row table rewritten to prove the store can commit."""

from __future__ import annotations

from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from triage.store.tables import StoreProbeRow, utcnow

PROBE_ROW_ID = 1


def touch_store_probe(session: Session) -> None:
    """Rewrite the probe row (adding it if missing): a small write that needs room to commit."""
    now = utcnow()
    changed = session.execute(
        update(StoreProbeRow).where(StoreProbeRow.id == PROBE_ROW_ID).values(probed_at=now)
    )
    if changed.rowcount == 0:  # type: ignore[attr-defined]
        session.execute(insert(StoreProbeRow).values(id=PROBE_ROW_ID, probed_at=now))
