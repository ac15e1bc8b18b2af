"""Decisions on referrals, reopening a decided one, and disputes of the records behind a score."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from triage.store.errors import ReferralAlreadyDecided, ReferralNotDecided, ReferralNotFound
from triage.store.referrals import get_referral
from triage.store.tables import (
    DecisionRow,
    DisputeRow,
    EventRow,
    HouseholdMembershipRow,
    ReferralRow,
    utcnow,
)
from triage.vocab import DecisionKind


def record_decision(
    session: Session,
    *,
    referral_id: str,
    decision: str,
    decided_at: datetime,
    agreement: str | None = None,
    reason_codes: Sequence[str] = (),
    rationale: str | None = None,
    decided_by: str | None = None,
    synthetic: bool = False,
    priority: str | None = None,
    priority_before_band: bool | None = None,
) -> DecisionRow:
    """Record the decision on an open referral and close it; refuse a second decision."""
    decision = DecisionKind(decision).value
    # One conditional UPDATE both checks and closes, so two concurrent deciders cannot both win.
    closed = session.execute(
        update(ReferralRow)
        .where(ReferralRow.referral_id == referral_id, ReferralRow.status == "open")
        .values(status="decided")
    )
    if closed.rowcount != 1:  # type: ignore[attr-defined]
        if get_referral(session, referral_id=referral_id) is None:
            raise ReferralNotFound(referral_id)
        raise ReferralAlreadyDecided(referral_id)
    row = DecisionRow(
        referral_id=referral_id,
        decided_at=decided_at,
        decision=decision,
        agreement=agreement,
        reason_codes=list(reason_codes),
        rationale=rationale,
        decided_by=decided_by,
        synthetic=synthetic,
        priority=priority,
        priority_before_band=priority_before_band,
    )
    session.add(row)
    session.flush()
    return row


def reopen_referral(session: Session, *, referral_id: str) -> ReferralRow:
    """Reopen a decided referral (its decisions stay on record); refuse an open one."""
    reopened = session.execute(
        update(ReferralRow)
        .where(ReferralRow.referral_id == referral_id, ReferralRow.status == "decided")
        .values(status="open")
    )
    if reopened.rowcount != 1:  # type: ignore[attr-defined]
        if get_referral(session, referral_id=referral_id) is None:
            raise ReferralNotFound(referral_id)
        raise ReferralNotDecided(referral_id)
    row = get_referral(session, referral_id=referral_id)
    assert row is not None
    session.refresh(row)
    return row


def decisions_for_referral(session: Session, *, referral_id: str) -> list[DecisionRow]:
    """Every decision recorded on a referral, oldest first."""
    query = select(DecisionRow).where(DecisionRow.referral_id == referral_id)
    return list(session.scalars(query.order_by(DecisionRow.decided_at, DecisionRow.id)))


def decisions_for_referrals(session: Session, *, referral_ids: Sequence[str]) -> list[DecisionRow]:
    """Every decision on any of these referrals, oldest first."""
    if not referral_ids:
        return []
    query = select(DecisionRow).where(DecisionRow.referral_id.in_(referral_ids))
    return list(session.scalars(query.order_by(DecisionRow.decided_at, DecisionRow.id)))


def add_dispute(
    session: Session,
    *,
    referral_id: str,
    record_id: str,
    reason: str,
    disputed_by: str,
    disputed_at: datetime | None = None,
    model_version: str | None = None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> DisputeRow:
    """Store a dispute of a record with the scores before and after leaving it out."""
    row = DisputeRow(
        referral_id=referral_id,
        record_id=record_id,
        reason=reason,
        disputed_by=disputed_by,
        disputed_at=disputed_at or utcnow(),
        model_version=model_version,
        before=dict(before) if before is not None else None,
        after=dict(after) if after is not None else None,
    )
    session.add(row)
    session.flush()
    return row


def disputes_for_referral(session: Session, *, referral_id: str) -> list[DisputeRow]:
    """Every dispute raised on a referral, oldest first."""
    query = select(DisputeRow).where(DisputeRow.referral_id == referral_id)
    return list(session.scalars(query.order_by(DisputeRow.disputed_at, DisputeRow.id)))


def record_exists(session: Session, *, record_id: str) -> bool:
    """Whether a referral, an agency event or a household membership has this id (a decision's
    record is its referral; a membership is behind the signals of who lives with the child)."""
    if session.get(ReferralRow, record_id) is not None:
        return True
    if session.get(EventRow, record_id) is not None:
        return True
    return session.get(HouseholdMembershipRow, record_id) is not None
