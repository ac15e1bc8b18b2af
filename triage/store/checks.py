"""Multi-agency checks: requests for information, strategy discussions, facts, sign-offs.

The session and its transaction belong to the caller; ``add_*`` flushes, queries return rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from triage.security import new_id
from triage.store.tables import (
    CheckFactRow,
    CheckRequestRow,
    DecisionRow,
    ReferralRow,
    SignOffRow,
    StrategyDiscussionRow,
)

REPEAT_WINDOW = timedelta(days=365)
"""An earlier referral about the child within this window makes a referral a repeat."""


def add_check_request(
    session: Session,
    *,
    referral_id: str,
    agency: str,
    question: str,
    requested_at: datetime,
    requested_by: str,
    due_at: datetime,
) -> CheckRequestRow:
    """Store a new request for information (open until its reply)."""
    row = CheckRequestRow(
        request_id=new_id("RFI"),
        referral_id=referral_id,
        agency=agency,
        question=question,
        requested_at=requested_at,
        requested_by=requested_by,
        due_at=due_at,
    )
    session.add(row)
    session.flush()
    return row


def get_check_request(session: Session, *, request_id: str) -> CheckRequestRow | None:
    """One request for information, or None."""
    return session.get(CheckRequestRow, request_id)


def open_request_to(session: Session, *, referral_id: str, agency: str) -> CheckRequestRow | None:
    """The unanswered request to ``agency`` about a referral, if there is one."""
    query = select(CheckRequestRow).where(
        CheckRequestRow.referral_id == referral_id,
        CheckRequestRow.agency == agency,
        CheckRequestRow.replied_at.is_(None),
    )
    return session.scalars(query.limit(1)).first()


def record_reply(
    session: Session,
    *,
    request_id: str,
    outcome: str,
    summary: str,
    replied_at: datetime,
    replied_by: str,
    channel: str,
) -> bool:
    """Store the reply to an open request; False when it already had one (first reply wins)."""
    # One conditional UPDATE checks and answers, so two concurrent replies cannot both land.
    answered = session.execute(
        update(CheckRequestRow)
        .where(CheckRequestRow.request_id == request_id, CheckRequestRow.replied_at.is_(None))
        .values(
            replied_at=replied_at,
            reply_outcome=outcome,
            reply_summary=summary,
            replied_by=replied_by,
            reply_channel=channel,
        )
        .execution_options(synchronize_session="fetch")
    )
    return bool(answered.rowcount == 1)  # type: ignore[attr-defined]


def check_requests_for_referrals(
    session: Session, *, referral_ids: Sequence[str]
) -> list[CheckRequestRow]:
    """Every request about these referrals, oldest first."""
    if not referral_ids:
        return []
    query = select(CheckRequestRow).where(CheckRequestRow.referral_id.in_(referral_ids))
    return list(session.scalars(query.order_by(CheckRequestRow.requested_at)))


def open_requests_for_agencies(
    session: Session, *, agencies: Sequence[str], limit: int
) -> list[tuple[CheckRequestRow, ReferralRow]]:
    """Unanswered requests to any of ``agencies``, soonest due first, with their referral."""
    if not agencies:
        return []
    query = (
        select(CheckRequestRow, ReferralRow)
        .join(ReferralRow, ReferralRow.referral_id == CheckRequestRow.referral_id)
        .where(CheckRequestRow.agency.in_(agencies), CheckRequestRow.replied_at.is_(None))
        .order_by(CheckRequestRow.due_at, CheckRequestRow.request_id)
        .limit(limit)
    )
    return [(request, referral) for request, referral in session.execute(query)]


def count_open_requests(session: Session, *, referral_ids: Sequence[str]) -> dict[str, int]:
    """Unanswered requests per referral (referrals without any are left out)."""
    if not referral_ids:
        return {}
    query = (
        select(CheckRequestRow.referral_id, func.count())
        .where(
            CheckRequestRow.referral_id.in_(referral_ids),
            CheckRequestRow.replied_at.is_(None),
        )
        .group_by(CheckRequestRow.referral_id)
    )
    return {referral_id: count for referral_id, count in session.execute(query)}


def add_strategy_discussion(
    session: Session,
    *,
    referral_id: str,
    held_at: datetime,
    attendees: Sequence[Mapping[str, Any]],
    outcome: str,
    summary: str,
    recorded_by: str,
    recorded_at: datetime,
) -> StrategyDiscussionRow:
    """Store a strategy discussion."""
    row = StrategyDiscussionRow(
        discussion_id=new_id("SD"),
        referral_id=referral_id,
        held_at=held_at,
        attendees=[dict(attendee) for attendee in attendees],
        outcome=outcome,
        summary=summary,
        recorded_by=recorded_by,
        recorded_at=recorded_at,
    )
    session.add(row)
    session.flush()
    return row


def strategy_discussions_for_referrals(
    session: Session, *, referral_ids: Sequence[str]
) -> list[StrategyDiscussionRow]:
    """Every strategy discussion about these referrals, oldest first."""
    if not referral_ids:
        return []
    query = select(StrategyDiscussionRow).where(StrategyDiscussionRow.referral_id.in_(referral_ids))
    return list(session.scalars(query.order_by(StrategyDiscussionRow.held_at)))


def add_check_fact(
    session: Session,
    *,
    referral_id: str,
    kind: str,
    value: str,
    note: str | None,
    occurred_at: datetime,
    recorded_by: str,
    recorded_at: datetime,
) -> CheckFactRow:
    """Store one fact found out first hand."""
    row = CheckFactRow(
        fact_id=new_id("CF"),
        referral_id=referral_id,
        kind=kind,
        value=value,
        note=note,
        occurred_at=occurred_at,
        recorded_by=recorded_by,
        recorded_at=recorded_at,
    )
    session.add(row)
    session.flush()
    return row


def facts_for_referrals(session: Session, *, referral_ids: Sequence[str]) -> list[CheckFactRow]:
    """Every fact recorded about these referrals, in the order recorded."""
    if not referral_ids:
        return []
    query = select(CheckFactRow).where(CheckFactRow.referral_id.in_(referral_ids))
    return list(session.scalars(query.order_by(CheckFactRow.recorded_at, CheckFactRow.fact_id)))


def earlier_referral_within(
    session: Session, *, child_id: str, before: datetime, window: timedelta = REPEAT_WINDOW
) -> ReferralRow | None:
    """The most recent earlier referral about the child within ``window`` before ``before``."""
    query = (
        select(ReferralRow)
        .where(
            ReferralRow.child_id == child_id,
            ReferralRow.received_at < before,
            ReferralRow.received_at >= before - window,
        )
        .order_by(ReferralRow.received_at.desc())
        .limit(1)
    )
    return session.scalars(query).first()


def referrals_of_child(session: Session, *, child_id: str) -> list[str]:
    """The ids of every referral about the child."""
    query = select(ReferralRow.referral_id).where(ReferralRow.child_id == child_id)
    return list(session.scalars(query))


def add_sign_off(
    session: Session,
    *,
    referral_id: str,
    decision_id: int,
    reasons: Sequence[str],
    requested_by: str,
    requested_at: datetime,
) -> SignOffRow:
    """Store a decision awaiting a manager's sign-off."""
    row = SignOffRow(
        sign_off_id=new_id("SO"),
        referral_id=referral_id,
        decision_id=decision_id,
        reasons=list(reasons),
        status="awaiting",
        requested_by=requested_by,
        requested_at=requested_at,
    )
    session.add(row)
    session.flush()
    return row


def awaiting_sign_off(session: Session, *, referral_id: str) -> SignOffRow | None:
    """The referral's decision awaiting sign-off, if any."""
    query = select(SignOffRow).where(
        SignOffRow.referral_id == referral_id, SignOffRow.status == "awaiting"
    )
    return session.scalars(query.order_by(SignOffRow.requested_at.desc()).limit(1)).first()


def settle_sign_off(
    session: Session, *, sign_off_id: str, status: str, decided_by: str, at: datetime, note: str
) -> bool:
    """Mark an awaiting sign-off ``signed_off`` or ``sent_back``; False if already settled."""
    settled = session.execute(
        update(SignOffRow)
        .where(SignOffRow.sign_off_id == sign_off_id, SignOffRow.status == "awaiting")
        .values(status=status, decided_by=decided_by, decided_at=at, note=note or None)
        .execution_options(synchronize_session="fetch")
    )
    return bool(settled.rowcount == 1)  # type: ignore[attr-defined]


def supersede_sign_offs(session: Session, *, referral_id: str, at: datetime) -> int:
    """Mark the referral's awaiting sign-offs ``superseded`` (a newer decision replaces them)."""
    done = session.execute(
        update(SignOffRow)
        .where(SignOffRow.referral_id == referral_id, SignOffRow.status == "awaiting")
        .values(status="superseded", decided_at=at)
        .execution_options(synchronize_session="fetch")
    )
    return int(done.rowcount)  # type: ignore[attr-defined]


def sign_offs_for_referrals(session: Session, *, referral_ids: Sequence[str]) -> list[SignOffRow]:
    """Every sign-off on these referrals, oldest first."""
    if not referral_ids:
        return []
    query = select(SignOffRow).where(SignOffRow.referral_id.in_(referral_ids))
    return list(session.scalars(query.order_by(SignOffRow.requested_at)))


def sign_offs_awaiting(
    session: Session, *, limit: int
) -> list[tuple[SignOffRow, DecisionRow, ReferralRow]]:
    """Decisions awaiting sign-off, oldest first, with the decision and the referral."""
    query = (
        select(SignOffRow, DecisionRow, ReferralRow)
        .join(DecisionRow, DecisionRow.id == SignOffRow.decision_id)
        .join(ReferralRow, ReferralRow.referral_id == SignOffRow.referral_id)
        .where(SignOffRow.status == "awaiting", ReferralRow.status == "decided")
        .order_by(SignOffRow.requested_at, SignOffRow.sign_off_id)
        .limit(limit)
    )
    return [tuple(row) for row in session.execute(query)]  # type: ignore[misc]


def referrals_awaiting_sign_off(session: Session, *, referral_ids: Sequence[str]) -> set[str]:
    """Which of these referrals have a decision awaiting sign-off."""
    if not referral_ids:
        return set()
    query = select(SignOffRow.referral_id).where(
        SignOffRow.referral_id.in_(referral_ids), SignOffRow.status == "awaiting"
    )
    return set(session.scalars(query))
