"""The online builder: the catalogue for one referral, read from the store.

Three indexed queries (referrals, events, decisions of the child and household, strictly
before the referral, newest first, at most ``MAX_RECORDS`` each), then the same
``pointwise.evaluate`` the tests hold equal to the batch builder.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session

from features.pointwise import SignalValue, evaluate
from features.records import (
    DecisionRecord,
    EventRecord,
    History,
    ReferralRecord,
    to_ms,
)
from triage.store.tables import ChildRow, DecisionRow, EventRow, ReferralRow

MAX_RECORDS = 5_000
"""Per source; a history that reaches it is flagged ``truncated`` (all-time counts may be low)."""


class ReferralNotInStore(LookupError):
    """The referral to build features for is not in the store."""


@dataclass(frozen=True)
class OnlineFeatures:
    """Signals for one referral with their provenance, and whether history was cut short."""

    referral_id: str
    values: dict[str, SignalValue]
    truncated: bool

    def vector(self) -> dict[str, float]:
        """Signal name to value."""
        return {name: sv.value for name, sv in self.values.items()}


def _referral_record(row) -> ReferralRecord:
    return ReferralRecord(
        referral_id=row.referral_id,
        child_id=row.child_id,
        household_id=row.household_id,
        t_ms=to_ms(row.received_at),
        referrer_type=row.referrer_type,
        referrer_relationship=row.referrer_relationship,
        referrer_id=row.referrer_id,
        concerns=frozenset(row.concerns or ()),
        injury_reported=bool(row.injury_reported),
        injury_sites=frozenset(row.injury_sites or ()),
    )


REFERRAL_COLUMNS = (
    ReferralRow.referral_id,
    ReferralRow.child_id,
    ReferralRow.household_id,
    ReferralRow.received_at,
    ReferralRow.referrer_type,
    ReferralRow.referrer_relationship,
    ReferralRow.referrer_id,
    ReferralRow.concerns,
    ReferralRow.injury_reported,
    ReferralRow.injury_sites,
)


_REFERRALS_BEFORE = (
    select(*REFERRAL_COLUMNS)
    .where(
        or_(
            ReferralRow.child_id == bindparam("child"),
            ReferralRow.household_id == bindparam("household"),
        ),
        ReferralRow.received_at < bindparam("before"),
    )
    .order_by(ReferralRow.received_at.desc())
    .limit(MAX_RECORDS)
)
_EVENTS_BEFORE = (
    select(
        EventRow.event_id,
        EventRow.child_id,
        EventRow.household_id,
        EventRow.occurred_at,
        EventRow.agency,
        EventRow.kind,
    )
    .where(
        or_(
            EventRow.child_id == bindparam("child"), EventRow.household_id == bindparam("household")
        ),
        EventRow.occurred_at < bindparam("before"),
    )
    .order_by(EventRow.occurred_at.desc())
    .limit(MAX_RECORDS)
)
_DECISIONS_BEFORE = (
    select(
        DecisionRow.referral_id,
        ReferralRow.child_id,
        ReferralRow.household_id,
        DecisionRow.decided_at,
        DecisionRow.decision,
    )
    .join(ReferralRow, ReferralRow.referral_id == DecisionRow.referral_id)
    .where(ReferralRow.child_id == bindparam("child"), DecisionRow.decided_at < bindparam("before"))
    .order_by(DecisionRow.decided_at.desc())
    .limit(MAX_RECORDS)
)
_REFERRAL_WITH_BIRTH = (
    select(*REFERRAL_COLUMNS, ChildRow.date_of_birth)
    .join(ChildRow, ChildRow.child_id == ReferralRow.child_id)
    .where(ReferralRow.referral_id == bindparam("referral_id"))
)
# Statements are built once: constructing them per call cost more than running them.


def load_history(
    session: Session,
    *,
    query: ReferralRecord,
    received_at: datetime,
    exclude_record_ids: Collection[str] = (),
) -> tuple[History, bool]:
    """The child's and household's records strictly before the referral, newest first, bounded."""
    params = {"child": query.child_id, "household": query.household_id, "before": received_at}
    connection = session.connection()  # Core execution: the ORM layer costs more than the query
    refs = connection.execute(_REFERRALS_BEFORE, params).all()
    events = connection.execute(_EVENTS_BEFORE, params).all()
    decisions = connection.execute(_DECISIONS_BEFORE, params).all()
    excluded = set(exclude_record_ids)
    history = History(
        referrals=[_referral_record(r) for r in refs if r.referral_id not in excluded],
        events=[
            EventRecord(
                e.event_id, e.child_id, e.household_id, to_ms(e.occurred_at), e.agency, e.kind
            )
            for e in events
            if e.event_id not in excluded
        ],
        decisions=[
            DecisionRecord(
                d.referral_id, d.child_id, d.household_id, to_ms(d.decided_at), d.decision
            )
            for d in decisions
            if d.referral_id not in excluded
        ],
    )
    truncated = max(len(refs), len(events), len(decisions)) >= MAX_RECORDS
    return history, truncated


def online_features(
    session: Session, *, referral_id: str, exclude_record_ids: Collection[str] = ()
) -> OnlineFeatures:
    """Every signal for one stored referral, with provenance; disputed records can be left out."""
    row = session.connection().execute(_REFERRAL_WITH_BIRTH, {"referral_id": referral_id}).first()
    if row is None:
        raise ReferralNotInStore(referral_id)
    query = _referral_record(row)
    history, truncated = load_history(
        session, query=query, received_at=row.received_at, exclude_record_ids=exclude_record_ids
    )
    born: date = row.date_of_birth
    return OnlineFeatures(referral_id, evaluate(query, born, history), truncated)
