"""Counts for people looking at the whole: the queue's summary and the team's recent decisions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from triage.store.queue import QueueFilter, queue_conditions
from triage.store.tables import ChildRow, DecisionRow, QueueEntryRow, ReferralRow, ScoreRow


@dataclass(frozen=True)
class QueueCounts:
    """How many referrals are open, how many match the filters, and of those, how many stand out."""

    open: int
    matching: int
    flagged: int
    unscored: int
    overdue: int


def queue_counts(
    session: Session, *, filters: QueueFilter, overdue_received_before: datetime
) -> QueueCounts:
    """Open referrals in all, and those matching ``filters``: flagged, unscored, overdue."""
    total = session.scalar(select(func.count()).select_from(QueueEntryRow)) or 0
    # Tiers 0 and 1 (triage.queue): a safety rule fired, scored or not.
    flagged = case((QueueEntryRow.tier <= 1, 1), else_=0)
    unscored = case((QueueEntryRow.score_id.is_(None), 1), else_=0)
    overdue = case((QueueEntryRow.received_at < overdue_received_before, 1), else_=0)
    row = session.execute(
        select(func.count(), func.sum(flagged), func.sum(unscored), func.sum(overdue)).where(
            *queue_conditions(filters)
        )
    ).one()
    return QueueCounts(
        open=total,
        matching=row[0] or 0,
        flagged=row[1] or 0,
        unscored=row[2] or 0,
        overdue=row[3] or 0,
    )


@dataclass(frozen=True)
class DecisionFact:
    """A decision recorded in the service, with the band the referral had when it was made."""

    referral_id: str
    decided_at: datetime
    decision: str
    agreement: str
    reason_codes: tuple[str, ...]
    band: str | None


def decisions_since(
    session: Session, *, since: datetime, until: datetime | None = None
) -> list[DecisionFact]:
    """Decisions with a recorded agreement made in [``since``, ``until``), oldest first."""
    window = [DecisionRow.decided_at >= since, DecisionRow.agreement.is_not(None)]
    if until is not None:
        window.append(DecisionRow.decided_at < until)
    rows: Sequence[DecisionRow] = session.scalars(
        select(DecisionRow).where(*window).order_by(DecisionRow.decided_at, DecisionRow.id)
    ).all()
    bands = _bands_at(session, rows)
    return [
        DecisionFact(
            referral_id=row.referral_id,
            decided_at=row.decided_at,
            decision=row.decision,
            agreement=row.agreement or "",
            reason_codes=tuple(row.reason_codes),
            band=bands.get(row.id),
        )
        for row in rows
    ]


def _bands_at(session: Session, decisions: Sequence[DecisionRow]) -> dict[int, str]:
    """Each decision's band: its referral's latest score made before the decision."""
    by_referral: dict[str, list[DecisionRow]] = {}
    for row in decisions:
        by_referral.setdefault(row.referral_id, []).append(row)
    bands: dict[int, str] = {}
    ids = list(by_referral)
    for start in range(0, len(ids), 500):
        scores = session.execute(
            select(ScoreRow.referral_id, ScoreRow.scored_at, ScoreRow.band)
            .where(ScoreRow.referral_id.in_(ids[start : start + 500]))
            .order_by(ScoreRow.referral_id, ScoreRow.scored_at)
        ).all()
        for referral_id, scored_at, band in scores:
            for decision in by_referral[referral_id]:
                if scored_at <= decision.decided_at:
                    bands[decision.id] = band
    return bands


@dataclass(frozen=True)
class ReferralRecord:
    """A referral with its child, latest score and latest decision (for pseudonymised export)."""

    referral: ReferralRow
    child: ChildRow
    score: ScoreRow | None
    decision: DecisionRow | None


def referral_records(session: Session, *, offset: int, limit: int) -> list[ReferralRecord]:
    """Referrals in order of receipt, each with its child, latest score and latest decision."""
    pairs = session.execute(
        select(ReferralRow, ChildRow)
        .join(ChildRow, ChildRow.child_id == ReferralRow.child_id)
        .order_by(ReferralRow.received_at, ReferralRow.referral_id)
        .offset(offset)
        .limit(limit)
    ).all()
    ids = [referral.referral_id for referral, _ in pairs]
    scores: dict[str, ScoreRow] = {}
    decisions: dict[str, DecisionRow] = {}
    if ids:
        for score in session.scalars(
            select(ScoreRow).where(ScoreRow.referral_id.in_(ids)).order_by(ScoreRow.scored_at)
        ):
            scores[score.referral_id] = score  # the latest wins
        for decision in session.scalars(
            select(DecisionRow)
            .where(DecisionRow.referral_id.in_(ids))
            .order_by(DecisionRow.decided_at, DecisionRow.id)
        ):
            decisions[decision.referral_id] = decision
    return [
        ReferralRecord(
            referral=referral,
            child=child,
            score=scores.get(referral.referral_id),
            decision=decisions.get(referral.referral_id),
        )
        for referral, child in pairs
    ]


def count_referrals(session: Session) -> int:
    """How many referrals the store holds."""
    return session.scalar(select(func.count()).select_from(ReferralRow)) or 0


def referral_children(
    session: Session, *, referral_ids: Sequence[str]
) -> dict[str, tuple[ReferralRow, ChildRow]]:
    """Each referral with its child, by referral id."""
    found: dict[str, tuple[ReferralRow, ChildRow]] = {}
    ids = list(dict.fromkeys(referral_ids))
    for start in range(0, len(ids), 500):
        pairs = session.execute(
            select(ReferralRow, ChildRow)
            .join(ChildRow, ChildRow.child_id == ReferralRow.child_id)
            .where(ReferralRow.referral_id.in_(ids[start : start + 500]))
        ).all()
        found.update({referral.referral_id: (referral, child) for referral, child in pairs})
    return found
