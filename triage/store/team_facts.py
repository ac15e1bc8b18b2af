"""What the manager's page reads beyond the decision counts: backlog, timing, outcomes, names."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from triage.store.tables import (
    ChildRow,
    DecisionRow,
    HouseholdMembershipRow,
    OutcomeRow,
    PersonRow,
    QueueEntryRow,
    ReferralRow,
    ScoreRow,
)


@dataclass(frozen=True)
class OpenItem:
    """An open referral in the queue: its band (None: unscored) and when it arrived."""

    band: str | None
    received_at: datetime


@dataclass(frozen=True)
class DecisionRecord:
    """A decision with what the manager's panels need: timing, priority, rationale, outcome."""

    referral_id: str
    child_id: str
    received_at: datetime
    decided_at: datetime
    decision: str
    agreement: str | None
    priority: str | None
    priority_before_band: bool | None
    reason_codes: tuple[str, ...]
    rationale: str | None
    band: str | None
    outcome_level: str | None
    significant_harm: bool | None


def open_items(session: Session) -> list[OpenItem]:
    """Every open referral in the queue, oldest first."""
    rows = session.execute(
        select(QueueEntryRow.band, QueueEntryRow.received_at).order_by(QueueEntryRow.received_at)
    ).all()
    return [OpenItem(band=band, received_at=received_at) for band, received_at in rows]


def decision_records(
    session: Session, *, since: datetime, until: datetime | None = None
) -> list[DecisionRecord]:
    """Decisions made in [``since``, ``until``), oldest first, each with the band it was made
    against (the referral's latest score before it) and the referral's outcome when known."""
    band = (
        select(ScoreRow.band)
        .where(
            ScoreRow.referral_id == DecisionRow.referral_id,
            ScoreRow.scored_at <= DecisionRow.decided_at,
        )
        .order_by(ScoreRow.scored_at.desc(), ScoreRow.id.desc())
        .limit(1)
        .correlate(DecisionRow)
        .scalar_subquery()
    )
    window = [DecisionRow.decided_at >= since]
    if until is not None:
        window.append(DecisionRow.decided_at < until)
    rows = session.execute(
        select(
            DecisionRow,
            ReferralRow.child_id,
            ReferralRow.received_at,
            band,
            OutcomeRow.highest_level,
            OutcomeRow.significant_harm_12m,
        )
        .join(ReferralRow, ReferralRow.referral_id == DecisionRow.referral_id)
        .outerjoin(OutcomeRow, OutcomeRow.referral_id == DecisionRow.referral_id)
        .where(*window)
        .order_by(DecisionRow.decided_at, DecisionRow.id)
    ).all()
    return [
        DecisionRecord(
            referral_id=row.referral_id,
            child_id=child_id,
            received_at=received_at,
            decided_at=row.decided_at,
            decision=row.decision,
            agreement=row.agreement,
            priority=row.priority,
            priority_before_band=row.priority_before_band,
            reason_codes=tuple(row.reason_codes),
            rationale=row.rationale,
            band=band_at,
            outcome_level=level,
            significant_harm=harm,
        )
        for row, child_id, received_at, band_at, level, harm in rows
    ]


def names_around_children(session: Session, *, child_ids: Sequence[str]) -> dict[str, set[str]]:
    """For each child, the names of the child and of everyone who lived in its households."""
    names: dict[str, set[str]] = {child_id: set() for child_id in child_ids}
    ids = list(names)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        child = (
            ChildRow.child_id,
            ChildRow.household_id,
            ChildRow.given_name,
            ChildRow.family_name,
        )
        children = session.execute(select(*child).where(ChildRow.child_id.in_(chunk))).all()
        households: dict[str, list[str]] = {}
        for child_id, household_id, given, family in children:
            names[child_id].update(n for n in (given, family) if n)
            households.setdefault(household_id, []).append(child_id)
        people = session.execute(
            select(HouseholdMembershipRow.household_id, PersonRow.given_name, PersonRow.family_name)
            .join(PersonRow, PersonRow.person_id == HouseholdMembershipRow.person_id)
            .where(HouseholdMembershipRow.household_id.in_(list(households)))
        ).all()
        for household_id, person_given, person_family in people:
            for child_id in households.get(household_id, []):
                names[child_id].update(n for n in (person_given, person_family) if n)
    return names
