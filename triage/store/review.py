"""Reads for a practice-review chronology: a child's or household's records and the audit
events behind them (every kind, past and present, in the order they were made)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from triage.store.tables import (
    AuditEventRow,
    ChildRow,
    DisputeRow,
    HouseholdMembershipRow,
    HouseholdRow,
    IdentityRecordRow,
    IdentityTaskRow,
    PersonMergeRow,
    PersonRow,
    PriorityJudgementRow,
    ReferralRow,
    ScoreRow,
    UserRow,
)


def household_exists(session: Session, *, household_id: str) -> bool:
    """Whether a household has this id."""
    return session.get(HouseholdRow, household_id) is not None


def children_ever_in_household(session: Session, *, household_id: str) -> list[str]:
    """Every child who was ever in the household: a membership (past or present), the child's
    stored household, or a referral that named it; sorted."""
    members = select(HouseholdMembershipRow.person_id).join(
        PersonRow, PersonRow.person_id == HouseholdMembershipRow.person_id
    )
    members = members.where(
        HouseholdMembershipRow.household_id == household_id, PersonRow.is_child.is_(True)
    )
    stored = select(ChildRow.child_id).where(ChildRow.household_id == household_id)
    referred = select(ReferralRow.child_id).where(ReferralRow.household_id == household_id)
    found = {*session.scalars(members), *session.scalars(stored), *session.scalars(referred)}
    known = set(session.scalars(select(ChildRow.child_id).where(ChildRow.child_id.in_(found))))
    return sorted(known)


def children_by_id(session: Session, *, child_ids: Collection[str]) -> list[ChildRow]:
    """The stored children among ``child_ids``, by id."""
    if not child_ids:
        return []
    query = select(ChildRow).where(ChildRow.child_id.in_(sorted(child_ids)))
    return list(session.scalars(query.order_by(ChildRow.child_id)))


def referrals_of_children(session: Session, *, child_ids: Collection[str]) -> list[ReferralRow]:
    """Every referral about these children, oldest first."""
    if not child_ids:
        return []
    query = select(ReferralRow).where(ReferralRow.child_id.in_(sorted(child_ids)))
    return list(session.scalars(query.order_by(ReferralRow.received_at, ReferralRow.referral_id)))


def scores_for_referrals(session: Session, *, referral_ids: Sequence[str]) -> list[ScoreRow]:
    """Every score of these referrals, oldest first."""
    if not referral_ids:
        return []
    query = select(ScoreRow).where(ScoreRow.referral_id.in_(referral_ids))
    return list(session.scalars(query.order_by(ScoreRow.scored_at, ScoreRow.id)))


def disputes_for_referrals(session: Session, *, referral_ids: Sequence[str]) -> list[DisputeRow]:
    """Every dispute raised on these referrals, oldest first."""
    if not referral_ids:
        return []
    query = select(DisputeRow).where(DisputeRow.referral_id.in_(referral_ids))
    return list(session.scalars(query.order_by(DisputeRow.disputed_at, DisputeRow.id)))


def priority_judgements_for_referrals(
    session: Session, *, referral_ids: Sequence[str]
) -> list[PriorityJudgementRow]:
    """Every priority given before the band was shown on these referrals, oldest first."""
    if not referral_ids:
        return []
    query = select(PriorityJudgementRow).where(PriorityJudgementRow.referral_id.in_(referral_ids))
    order = (PriorityJudgementRow.judged_at, PriorityJudgementRow.id)
    return list(session.scalars(query.order_by(*order)))


def identity_tasks_touching(
    session: Session, *, child_ids: Collection[str], referral_ids: Collection[str]
) -> list[IdentityTaskRow]:
    """Identity tasks about these children: opened by their referrals, naming one of them as
    the candidate, or about a record that resolved to one of them; oldest first."""
    if not child_ids:
        return []
    records = select(IdentityRecordRow.record_id).where(
        IdentityRecordRow.person_id.in_(sorted(child_ids))
    )
    conditions = [
        IdentityTaskRow.candidate_person_id.in_(sorted(child_ids)),
        IdentityTaskRow.record_id.in_(records),
    ]
    if referral_ids:
        conditions.append(IdentityTaskRow.referral_id.in_(sorted(referral_ids)))
    query = select(IdentityTaskRow).where(or_(*conditions))
    return list(
        session.scalars(query.order_by(IdentityTaskRow.created_at, IdentityTaskRow.task_id))
    )


def merges_touching(session: Session, *, person_ids: Collection[str]) -> list[PersonMergeRow]:
    """Merges into or from any of these persons, oldest first."""
    if not person_ids:
        return []
    ids = sorted(person_ids)
    query = select(PersonMergeRow).where(
        or_(PersonMergeRow.into_person_id.in_(ids), PersonMergeRow.from_person_id.in_(ids))
    )
    return list(session.scalars(query.order_by(PersonMergeRow.merged_at)))


def audit_events_about(
    session: Session, *, entity_type: str, entity_ids: Collection[str]
) -> list[AuditEventRow]:
    """Every audit event about these entities of one type, in chain order."""
    if not entity_ids:
        return []
    query = select(AuditEventRow).where(
        AuditEventRow.entity_type == entity_type, AuditEventRow.entity_id.in_(sorted(entity_ids))
    )
    return list(session.scalars(query.order_by(AuditEventRow.id)))


def chain_head(session: Session) -> AuditEventRow | None:
    """The newest audit event (the head of the chain), or None for an empty log."""
    return session.scalars(select(AuditEventRow).order_by(AuditEventRow.id.desc()).limit(1)).first()


def user_roles(session: Session, *, user_ids: Collection[str]) -> dict[str, list[str]]:
    """The roles each stored user among ``user_ids`` holds now, by user id."""
    if not user_ids:
        return {}
    query = select(UserRow.user_id, UserRow.roles).where(UserRow.user_id.in_(sorted(user_ids)))
    return {user_id: list(roles) for user_id, roles in session.execute(query)}
