"""What a decision needs from the store: earlier referrals, blind priorities, team settings."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from triage.store.tables import PriorityJudgementRow, ReferralRow, TeamSettingRow


def get_priority_judgement(
    session: Session, *, referral_id: str, judged_by: str
) -> PriorityJudgementRow | None:
    """The priority ``judged_by`` recorded for a referral before seeing its band, if any."""
    return session.scalar(
        select(PriorityJudgementRow).where(
            PriorityJudgementRow.referral_id == referral_id,
            PriorityJudgementRow.judged_by == judged_by,
        )
    )


def judged_referral_ids(
    session: Session, *, referral_ids: Sequence[str], judged_by: str
) -> set[str]:
    """Which of ``referral_ids`` ``judged_by`` has given their own priority for."""
    if not referral_ids:
        return set()
    rows = session.scalars(
        select(PriorityJudgementRow.referral_id).where(
            PriorityJudgementRow.referral_id.in_(referral_ids),
            PriorityJudgementRow.judged_by == judged_by,
        )
    )
    return set(rows)


def add_priority_judgement(
    session: Session, *, referral_id: str, judged_by: str, priority: str, judged_at: datetime
) -> tuple[PriorityJudgementRow, bool]:
    """Record a judgement once; a second one is not stored (the first, and False, come back)."""
    found = get_priority_judgement(session, referral_id=referral_id, judged_by=judged_by)
    if found is not None:
        return found, False
    row = PriorityJudgementRow(
        referral_id=referral_id, judged_by=judged_by, priority=priority, judged_at=judged_at
    )
    session.add(row)
    session.flush()
    return row, True


def get_team_setting(session: Session, *, name: str) -> TeamSettingRow | None:
    """A team setting by name (None: never set)."""
    return session.get(TeamSettingRow, name)


def save_team_setting(
    session: Session, *, name: str, value: str, changed_by: str, changed_at: datetime
) -> TeamSettingRow:
    """Set a team setting, keeping who changed it and when."""
    row = session.get(TeamSettingRow, name)
    if row is None:
        row = TeamSettingRow(name=name, value=value, changed_by=changed_by, changed_at=changed_at)
        session.add(row)
    else:
        row.value, row.changed_by, row.changed_at = value, changed_by, changed_at
    session.flush()
    return row


def earlier_referrals_of_child(
    session: Session, *, child_id: str, since: datetime, before: datetime
) -> list[datetime]:
    """When the child's referrals received in [``since``, ``before``) arrived, newest first."""
    return list(
        session.scalars(
            select(ReferralRow.received_at)
            .where(
                ReferralRow.child_id == child_id,
                ReferralRow.received_at >= since,
                ReferralRow.received_at < before,
            )
            .order_by(ReferralRow.received_at.desc())
        )
    )
