"""Records about a child that became known after a referral arrived: what its score leaves out.

A score counts only the history known before the referral was received (the time rule of the
feature layer), so a later referral about the same child, or an agency's record shared after
receipt, is never in it. The queue and the referral page say how many there are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from triage.store.tables import ChildRow, EventRow, ReferralRow


@dataclass(frozen=True, slots=True)
class Received:
    """A referral as this module needs it: which child, received when."""

    referral_id: str
    child_id: str
    received_at: datetime


def records_known_after(session: Session, *, referrals: Sequence[Received]) -> dict[str, int]:
    """For each referral, the records about its child (its referrals, the child's and the
    household's agency records) that became known after it was received."""
    if not referrals:
        return {}
    child_ids = sorted({r.child_id for r in referrals})
    since = min(r.received_at for r in referrals)
    household_of = dict(
        session.execute(
            select(ChildRow.child_id, ChildRow.household_id).where(ChildRow.child_id.in_(child_ids))
        ).all()
    )
    later_referrals = session.execute(
        select(ReferralRow.child_id, ReferralRow.received_at).where(
            ReferralRow.child_id.in_(child_ids), ReferralRow.received_at > since
        )
    ).all()
    known_after = or_(
        EventRow.recorded_at > since,
        and_(EventRow.recorded_at.is_(None), EventRow.occurred_at > since),
    )
    households = sorted(set(household_of.values()))
    columns = (
        EventRow.event_id,
        EventRow.child_id,
        EventRow.household_id,
        EventRow.occurred_at,
        EventRow.recorded_at,
    )
    # Two reads, each on its own covering index (an OR across the two columns may scan).
    events = [
        *session.execute(select(*columns).where(EventRow.child_id.in_(child_ids), known_after)),
        *session.execute(
            select(*columns).where(EventRow.household_id.in_(households), known_after)
        ),
    ]
    referral_times: dict[str, list[datetime]] = {}
    for child_id, received_at in later_referrals:
        referral_times.setdefault(child_id, []).append(received_at)
    event_times: dict[str, dict[str, datetime]] = {}  # by child: event id -> known from
    child_of_household: dict[str, list[str]] = {}
    for child, household in household_of.items():
        child_of_household.setdefault(household, []).append(child)
    for event_id, event_child, event_household, occurred_at, recorded_at in events:
        known = recorded_at or occurred_at
        children = {event_child} if event_child in household_of else set()
        children |= set(child_of_household.get(event_household or "", ()))
        for child in children:
            event_times.setdefault(child, {})[event_id] = known
    out: dict[str, int] = {}
    for referral in referrals:
        after = referral.received_at
        count = sum(t > after for t in referral_times.get(referral.child_id, ()))
        count += sum(t > after for t in event_times.get(referral.child_id, {}).values())
        out[referral.referral_id] = count
    return out
