"""Retention: which stored records are past their period, and removing them with what hangs
off them (issue 24, item 3).

Each kind's period runs from one date: a referral's closing decision (its latest decision;
``received_at`` for a decided referral loaded without one), an agency event's ``occurred_at``,
an identity task's ``decided_at``, an idempotency key's ``created_at``. Open work is never
removed, nor anything linked to it: a referral is linked to the open referrals of its child
and of its household; an event to open work when it is about a child with an open referral,
a household with one (the referral's household, the child's, or one the child is a member
of) or an adult member of such a household; an identity task when it is open or its referral
is. An event is also kept while a referral that remains could have been scored on it (received
after it occurred, about its child, household or a member of it) or a remaining dispute names
it, so a kept score's reasons still point at records. People (children, adults, households,
memberships, identity records, merges) have no period of their own: they go in the same run
once no referral or event refers to them or their household. The audit log is
``triage.store.audit_retention``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Select, and_, delete, exists, func, literal, or_, select, union
from sqlalchemy.orm import Session

from triage.store.coltypes import UTCDateTime
from triage.store.tables import (
    CheckFactRow,
    CheckRequestRow,
    ChildRow,
    DecisionRow,
    DisputeRow,
    EventRow,
    HouseholdMembershipRow,
    HouseholdRow,
    IdempotencyKeyRow,
    IdentityRecordRow,
    IdentityTaskRow,
    OutcomeRow,
    PersonMergeRow,
    PersonRow,
    PriorityJudgementRow,
    QueueEntryRow,
    ReferralRow,
    ScoreRow,
    SignOffRow,
    StrategyDiscussionRow,
)

REFERRALS = "referrals"
EVENTS = "events"
IDENTITY_TASKS = "identity_tasks"
IDEMPOTENCY_KEYS = "idempotency_keys"
PEOPLE = "people"
AUDIT_LOG = "audit_log"

PERIOD_KINDS: tuple[str, ...] = (REFERRALS, EVENTS, IDENTITY_TASKS, IDEMPOTENCY_KEYS, AUDIT_LOG)
"""The kinds with a configurable period, in the order a run removes them (audit log last)."""

KEPT = 0
"""A period of 0 days: the kind is kept indefinitely."""

BATCH = 500
"""Keys per DELETE (well under SQLite's bound-parameter limit)."""


def cutoff_for(now: datetime, days: int) -> datetime | None:
    """The instant before which a kind's records are past ``days`` (None: kept indefinitely)."""
    return None if days == KEPT else now - timedelta(days=days)


# --- what counts as open work ----------------------------------------------------------------


def _open_referrals() -> Select[Any]:
    return select(ReferralRow.referral_id).where(ReferralRow.status == "open")


def _open_children() -> Select[Any]:
    return select(ReferralRow.child_id).where(ReferralRow.status == "open")


def _open_households() -> Any:
    """Households of open referrals, of children with one, and those such children live in."""
    open_children = _open_children()
    return union(
        select(ReferralRow.household_id).where(ReferralRow.status == "open"),
        select(ChildRow.household_id).where(ChildRow.child_id.in_(open_children)),
        select(HouseholdMembershipRow.household_id).where(
            HouseholdMembershipRow.person_id.in_(open_children)
        ),
    )


def _open_people() -> Any:
    """Children with an open referral and every member of a household with open work."""
    return union(
        _open_children(),
        select(HouseholdMembershipRow.person_id).where(
            HouseholdMembershipRow.household_id.in_(_open_households())
        ),
    )


def _open_task_referrals() -> Select[Any]:
    return select(IdentityTaskRow.referral_id).where(
        IdentityTaskRow.status == "open", IdentityTaskRow.referral_id.is_not(None)
    )


# --- what is past its period ------------------------------------------------------------------


def _instant(value: datetime) -> Any:
    return literal(value, UTCDateTime())


def expired_referrals(session: Session, cutoff: datetime) -> list[str]:
    """Decided referrals closed before ``cutoff`` with no open work linked to them."""
    closed_at = (
        select(func.max(DecisionRow.decided_at))
        .where(DecisionRow.referral_id == ReferralRow.referral_id)
        .scalar_subquery()
    )
    query = (
        select(ReferralRow.referral_id)
        .where(
            ReferralRow.status == "decided",
            func.coalesce(closed_at, ReferralRow.received_at) < _instant(cutoff),
            ReferralRow.child_id.not_in(_open_children()),
            ReferralRow.household_id.not_in(_open_households()),
            ReferralRow.referral_id.not_in(_open_task_referrals()),
        )
        .order_by(ReferralRow.referral_id)
    )
    if session.get_bind().dialect.name == "postgresql":
        # A reopening between this read and the delete waits, and the row is read again.
        query = query.with_for_update(of=ReferralRow)
    return list(session.scalars(query))


def _usable_by_a_stored_referral() -> Any:
    """A referral still stored, received after the event, whose scoring could have read it.

    A superset of what the scorer reads (``features.online``): the child's and the referral
    household's events, the records of anyone who is (or was) a member of that household,
    and the events of other households the child is (or was) a member of. Membership dates
    are not compared: keeping a record a little longer is the safe side.
    """
    later = ReferralRow.received_at > EventRow.occurred_at
    member = HouseholdMembershipRow
    return or_(
        exists().where(later, ReferralRow.child_id == EventRow.child_id),
        exists().where(later, ReferralRow.household_id == EventRow.household_id),
        exists().where(
            later,
            member.household_id == ReferralRow.household_id,
            or_(member.person_id == EventRow.person_id, member.person_id == EventRow.child_id),
        ),
        exists().where(
            later,
            member.person_id == ReferralRow.child_id,
            member.household_id == EventRow.household_id,
        ),
    )


def expired_events(session: Session, cutoff: datetime) -> list[str]:
    """Agency events that occurred before ``cutoff``, not about open work, that no stored
    referral could have been scored on and no stored dispute names."""
    open_tasks = select(IdentityTaskRow.event_id).where(
        IdentityTaskRow.status == "open", IdentityTaskRow.event_id.is_not(None)
    )
    disputed = select(DisputeRow.record_id)
    query = (
        select(EventRow.event_id)
        .where(
            EventRow.occurred_at < cutoff,
            or_(EventRow.child_id.is_(None), EventRow.child_id.not_in(_open_children())),
            or_(
                EventRow.household_id.is_(None),
                EventRow.household_id.not_in(_open_households()),
            ),
            or_(EventRow.person_id.is_(None), EventRow.person_id.not_in(_open_people())),
            EventRow.event_id.not_in(open_tasks),
            EventRow.event_id.not_in(disputed),
            ~_usable_by_a_stored_referral(),
        )
        .order_by(EventRow.event_id)
    )
    return list(session.scalars(query))


def expired_identity_tasks(session: Session, cutoff: datetime) -> list[str]:
    """Confirmed or rejected identity tasks decided before ``cutoff``, their referral closed."""
    decided_at = func.coalesce(IdentityTaskRow.decided_at, IdentityTaskRow.created_at)
    query = (
        select(IdentityTaskRow.task_id)
        .where(
            IdentityTaskRow.status != "open",
            decided_at < _instant(cutoff),
            or_(
                IdentityTaskRow.referral_id.is_(None),
                IdentityTaskRow.referral_id.not_in(_open_referrals()),
            ),
        )
        .order_by(IdentityTaskRow.task_id)
    )
    return list(session.scalars(query))


def expired_idempotency_keys(session: Session, cutoff: datetime) -> list[tuple[str, str, str]]:
    """Idempotency keys stored before ``cutoff`` (a retry that late is a new request)."""
    query = (
        select(IdempotencyKeyRow.actor, IdempotencyKeyRow.scope, IdempotencyKeyRow.key)
        .where(IdempotencyKeyRow.created_at < cutoff)
        .order_by(IdempotencyKeyRow.actor, IdempotencyKeyRow.scope, IdempotencyKeyRow.key)
    )
    return [(actor, scope, key) for actor, scope, key in session.execute(query)]


# --- removing them ------------------------------------------------------------------------------


def _batches(keys: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(keys), BATCH):
        yield keys[start : start + BATCH]


def _count(counts: dict[str, int], table: str, removed: int) -> None:
    counts[table] = counts.get(table, 0) + removed


def _removed(session: Session, statement: Any) -> int:
    """Run a DELETE and return how many rows it removed."""
    result = cast(CursorResult[Any], session.execute(statement))
    return max(result.rowcount, 0)


def delete_referrals(
    session: Session, referral_ids: Sequence[str], progress: Callable[[int], None] | None = None
) -> dict[str, int]:
    """Remove the referrals with their case record; rows removed per table."""
    counts: dict[str, int] = {}
    in_tables = (
        QueueEntryRow,
        SignOffRow,
        PriorityJudgementRow,
        CheckFactRow,
        StrategyDiscussionRow,
        CheckRequestRow,
        DisputeRow,
        ScoreRow,
        OutcomeRow,
        DecisionRow,
    )  # children first: foreign keys point at the rows after them
    for batch in _batches(referral_ids):
        for row_class in in_tables:
            column = row_class.__table__.c.referral_id
            removed = _removed(session, delete(row_class).where(column.in_(batch)))
            _count(counts, str(row_class.__tablename__), removed)
        tasks = delete(IdentityTaskRow).where(
            IdentityTaskRow.referral_id.in_(batch), IdentityTaskRow.status != "open"
        )
        _count(counts, "identity_tasks", _removed(session, tasks))
        referrals = delete(ReferralRow).where(ReferralRow.referral_id.in_(batch))
        _count(counts, "referrals", _removed(session, referrals))
        if progress is not None:
            progress(len(batch))
    return counts


def delete_events(
    session: Session, event_ids: Sequence[str], progress: Callable[[int], None] | None = None
) -> dict[str, int]:
    """Remove the events (and closed identity tasks they raised); rows removed per table."""
    counts: dict[str, int] = {}
    for batch in _batches(event_ids):
        tasks = delete(IdentityTaskRow).where(
            IdentityTaskRow.event_id.in_(batch), IdentityTaskRow.status != "open"
        )
        _count(counts, "identity_tasks", _removed(session, tasks))
        events = delete(EventRow).where(EventRow.event_id.in_(batch))
        _count(counts, "events", _removed(session, events))
        if progress is not None:
            progress(len(batch))
    return counts


def delete_identity_tasks(
    session: Session, task_ids: Sequence[str], progress: Callable[[int], None] | None = None
) -> dict[str, int]:
    """Remove the identity tasks; rows removed per table."""
    counts: dict[str, int] = {}
    for batch in _batches(task_ids):
        tasks = delete(IdentityTaskRow).where(IdentityTaskRow.task_id.in_(batch))
        _count(counts, "identity_tasks", _removed(session, tasks))
        if progress is not None:
            progress(len(batch))
    return counts


def delete_idempotency_keys(
    session: Session,
    keys: Sequence[tuple[str, str, str]],
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Remove the idempotency keys; rows removed per table."""
    counts: dict[str, int] = {}
    columns = (IdempotencyKeyRow.actor, IdempotencyKeyRow.scope, IdempotencyKeyRow.key)
    for batch in _batches(keys):
        matches = or_(*(and_(*(c == v for c, v in zip(columns, k, strict=True))) for k in batch))
        removed = _removed(session, delete(IdempotencyKeyRow).where(matches))
        _count(counts, "idempotency_keys", removed)
        if progress is not None:
            progress(len(batch))
    return counts


# --- people nothing refers to any more ----------------------------------------------------------


def _households_in_use(*more: Any) -> Any:
    """Households a referral or an event still refers to (and those of ``more`` selects)."""
    return union(
        select(ReferralRow.household_id),
        select(EventRow.household_id).where(EventRow.household_id.is_not(None)),
        *more,
    )


def orphaned_children(session: Session) -> list[str]:
    """Children no referral, event or open identity task refers to, in no household one does.

    A never-referred sibling stays while their household's referrals or events do: they are
    part of the household a practitioner reads about.
    """
    in_use = _households_in_use()
    query = (
        select(ChildRow.child_id)
        .where(
            ~exists().where(ReferralRow.child_id == ChildRow.child_id),
            ~exists().where(EventRow.child_id == ChildRow.child_id),
            ~exists().where(EventRow.person_id == ChildRow.child_id),
            ChildRow.household_id.not_in(in_use),
            ~exists().where(
                HouseholdMembershipRow.person_id == ChildRow.child_id,
                HouseholdMembershipRow.household_id.in_(in_use),
            ),
            ~_open_task_on(ChildRow.child_id),
        )
        .order_by(ChildRow.child_id)
    )
    return list(session.scalars(query))


def _open_task_on(person_id: Any) -> Any:
    """An open identity task about the person (as candidate or through their record)."""
    return or_(
        exists().where(
            IdentityTaskRow.status == "open", IdentityTaskRow.candidate_person_id == person_id
        ),
        exists().where(
            IdentityTaskRow.status == "open",
            IdentityTaskRow.record_id == IdentityRecordRow.record_id,
            IdentityRecordRow.person_id == person_id,
        ),
    )


def orphaned_adults(session: Session) -> list[str]:
    """Adults no event or open task refers to, in no household with a child, a referral or
    an event left."""
    with_children = _households_in_use(
        select(HouseholdMembershipRow.household_id)
        .join(PersonRow, PersonRow.person_id == HouseholdMembershipRow.person_id)
        .where(PersonRow.is_child.is_(True))
    )
    query = (
        select(PersonRow.person_id)
        .where(
            PersonRow.is_child.is_(False),
            ~exists().where(EventRow.person_id == PersonRow.person_id),
            ~exists().where(
                HouseholdMembershipRow.person_id == PersonRow.person_id,
                HouseholdMembershipRow.household_id.in_(with_children),
            ),
            ~_open_task_on(PersonRow.person_id),
        )
        .order_by(PersonRow.person_id)
    )
    return list(session.scalars(query))


def delete_people(session: Session, person_ids: Sequence[str]) -> dict[str, int]:
    """Remove the people (children or adults) with their memberships, records and merges."""
    counts: dict[str, int] = {}
    for batch in _batches(person_ids):
        records = select(IdentityRecordRow.record_id).where(IdentityRecordRow.person_id.in_(batch))
        merges = or_(
            PersonMergeRow.from_person_id.in_(batch), PersonMergeRow.into_person_id.in_(batch)
        )
        people = PersonRow.person_id.in_(batch)
        members = HouseholdMembershipRow.person_id.in_(batch)
        steps: tuple[tuple[str, Any], ...] = (
            (
                "identity_tasks",
                delete(IdentityTaskRow).where(IdentityTaskRow.record_id.in_(records)),
            ),
            (
                "identity_records",
                delete(IdentityRecordRow).where(IdentityRecordRow.person_id.in_(batch)),
            ),
            ("household_memberships", delete(HouseholdMembershipRow).where(members)),
            ("person_merges", delete(PersonMergeRow).where(merges)),
            ("persons", delete(PersonRow).where(people)),
            ("children", delete(ChildRow).where(ChildRow.child_id.in_(batch))),
        )
        for table, statement in steps:
            _count(counts, table, _removed(session, statement))
    return counts


def orphaned_households(session: Session) -> list[str]:
    """Households no child, referral, event or membership refers to."""
    household = HouseholdRow.household_id
    query = (
        select(household)
        .where(
            ~exists().where(ChildRow.household_id == household),
            ~exists().where(ReferralRow.household_id == household),
            ~exists().where(EventRow.household_id == household),
            ~exists().where(HouseholdMembershipRow.household_id == household),
        )
        .order_by(household)
    )
    return list(session.scalars(query))


def delete_households(session: Session, household_ids: Sequence[str]) -> dict[str, int]:
    """Remove the households; rows removed per table."""
    counts: dict[str, int] = {}
    for batch in _batches(household_ids):
        households = delete(HouseholdRow).where(HouseholdRow.household_id.in_(batch))
        _count(counts, "households", _removed(session, households))
    return counts


def delete_orphaned_people(session: Session) -> dict[str, int]:
    """Remove children nothing refers to, then such adults, then households left empty."""
    counts = delete_people(session, orphaned_children(session))
    for table, removed in delete_people(session, orphaned_adults(session)).items():
        _count(counts, table, removed)
    for table, removed in delete_households(session, orphaned_households(session)).items():
        _count(counts, table, removed)
    return counts
