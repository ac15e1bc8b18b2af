"""Identity records, "possible same person" tasks and person merges (and their undoing).

An identity record is one agency's view of one person; ``person_id`` is who it resolved to.
A merge re-points a person's rows to another person and keeps exactly which rows it moved
(``person_merges.moved``), so that undoing it moves those rows back and nothing else.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, text, update
from sqlalchemy.orm import Session

from triage.store.statements import insert_if_new, session_connection
from triage.store.tables import (
    ChildRow,
    EventRow,
    HouseholdMembershipRow,
    IdentityRecordRow,
    IdentityTaskRow,
    PersonMergeRow,
    QueueEntryRow,
    ReferralRow,
    table_of,
)
from triage.vocab import HouseholdRole

IDENTITY_COLUMNS = (
    "record_id",
    "source_system",
    "source_person_id",
    "given_name",
    "family_name",
    "date_of_birth",
    "sex",
    "postcode",
    "nhs_number",
    "school",
    "is_child",
    "first_seen_at",
)
"""The columns of an identity record as agencies hold it (the linker's input, same names)."""
KNOWN_LIMIT = 5_000
"""Known records read for one resolution at most (the blocking keys keep it far below)."""
STORED_CHILD_SYSTEM = "front-door"
"""``source_system`` of a stored child offered to the linker when no record names it yet."""


# Any constant distinct from the other advisory locks' (auditlog, people).
_IDENTITY_LOCK_SPACE = 0x7472_6964  # "trid"
_IDENTITY_LOCK = text("SELECT pg_advisory_xact_lock(:space, :year)")


def lock_identities(session: Session, *, birth_years: Collection[int]) -> None:
    """Serialise, until the transaction ends, writers making new children born in these years.

    Checking that no known record matches a child's details and then storing a new child must
    not interleave with another request doing the same for the same child, or both would make
    one. Every blocking key but the NHS number shares the birth year, so the lock is per year,
    taken in order (no deadlock between two batches). SQLite writers already hold the
    database's write lock; PostgreSQL takes transaction-scoped advisory locks.
    """
    connection = session_connection(session)
    if connection.dialect.name != "postgresql":
        return
    for year in sorted(set(birth_years)):
        connection.execute(_IDENTITY_LOCK, {"space": _IDENTITY_LOCK_SPACE, "year": year})


def insert_identity_record_if_new(session: Session, *, record: Mapping[str, Any]) -> bool:
    """Insert an identity record unless its id is stored; True when it went in."""
    return insert_if_new(session, table_of(IdentityRecordRow), record)


def get_identity_record(session: Session, *, record_id: str) -> IdentityRecordRow | None:
    """One identity record, or None."""
    return session.get(IdentityRecordRow, record_id)


def _swapped(born: date) -> date | None:
    """The date with day and month swapped, when that is a date (a common typing error)."""
    try:
        return born.replace(month=born.day, day=born.month)
    except ValueError:
        return None


def known_identities_near(
    session: Session,
    *,
    date_of_birth: date | None,
    family_name: str | None,
    nhs_number: str | None,
    postcode: str | None,
    limit: int = KNOWN_LIMIT,
) -> list[dict[str, Any]]:
    """Resolved identity records sharing a blocking key with these details, as dicts.

    Blocking keys (any one): the date of birth, or it with day and month swapped; the NHS
    number; the family name (case-blind) with the same birth year; the postcode with the
    same birth year. Stored children no record names yet are offered as records of
    ``STORED_CHILD_SYSTEM`` (record_id ``child:<id>``), so children stored before identity
    records existed can be linked too.
    """
    births = [d for d in (date_of_birth, date_of_birth and _swapped(date_of_birth)) if d]
    year = date_of_birth.year if date_of_birth is not None else None
    record = IdentityRecordRow
    keys: list[Any] = []
    if births:
        keys.append(record.date_of_birth.in_(births))
    if nhs_number:
        keys.append(record.nhs_number == nhs_number)
    same_year = record.date_of_birth.between(date(year, 1, 1), date(year, 12, 31)) if year else None
    if family_name and same_year is not None:
        keys.append(and_(func.lower(record.family_name) == family_name.lower(), same_year))
    if postcode and same_year is not None:
        keys.append(and_(record.postcode == postcode, same_year))
    rows: list[dict[str, Any]] = []
    if keys:
        query = (
            select(*(getattr(record, c) for c in IDENTITY_COLUMNS), record.person_id)
            .where(record.person_id.is_not(None), or_(*keys))
            .order_by(record.record_id)
            .limit(limit)
        )
        rows = [dict(row._mapping) for row in session.execute(query)]
    child_keys: list[Any] = []
    if births:
        child_keys.append(ChildRow.date_of_birth.in_(births))
    if family_name and year:
        child_keys.append(
            and_(
                func.lower(ChildRow.family_name) == family_name.lower(),
                ChildRow.date_of_birth.between(date(year, 1, 1), date(year, 12, 31)),
            )
        )
    if child_keys:
        # Correlated (an index probe per child), not NOT IN over every record's person.
        named = exists().where(IdentityRecordRow.person_id == ChildRow.child_id)
        query_children = (
            select(
                ChildRow.child_id,
                ChildRow.given_name,
                ChildRow.family_name,
                ChildRow.date_of_birth,
                ChildRow.sex,
                ChildRow.created_at,
            )
            .where(or_(*child_keys), ~named)
            .order_by(ChildRow.child_id)
            .limit(max(limit - len(rows), 0))
        )
        for child in session.execute(query_children):
            rows.append(
                {
                    "record_id": f"child:{child.child_id}",
                    "source_system": STORED_CHILD_SYSTEM,
                    "source_person_id": child.child_id,
                    "given_name": child.given_name,
                    "family_name": child.family_name,
                    "date_of_birth": child.date_of_birth,
                    "sex": child.sex,
                    "postcode": None,
                    "nhs_number": None,
                    "school": None,
                    "is_child": True,
                    "first_seen_at": child.created_at,
                    "person_id": child.child_id,
                }
            )
    return rows


def identity_records_of(session: Session, *, person_id: str) -> list[IdentityRecordRow]:
    """The identity records resolved to a person, oldest first."""
    query = (
        select(IdentityRecordRow)
        .where(IdentityRecordRow.person_id == person_id)
        .order_by(IdentityRecordRow.first_seen_at, IdentityRecordRow.record_id)
    )
    return list(session.scalars(query))


def current_household_of(session: Session, *, person_id: str) -> str | None:
    """The household of the person's most recent open child membership (None: none open)."""
    query = (
        select(HouseholdMembershipRow.household_id)
        .where(
            HouseholdMembershipRow.person_id == person_id,
            HouseholdMembershipRow.left_at.is_(None),
            HouseholdMembershipRow.role == HouseholdRole.child.value,
        )
        .order_by(HouseholdMembershipRow.joined_at.desc(), HouseholdMembershipRow.membership_id)
        .limit(1)
    )
    return session.scalar(query)


# --- tasks -----------------------------------------------------------------------------------


def insert_identity_task(session: Session, *, task: Mapping[str, Any]) -> bool:
    """Insert an open identity task unless its id is stored; True when it went in."""
    return insert_if_new(session, table_of(IdentityTaskRow), task)


def get_identity_task(session: Session, *, task_id: str) -> IdentityTaskRow | None:
    """One identity task, or None."""
    return session.get(IdentityTaskRow, task_id)


def list_identity_tasks(
    session: Session, *, status: str | None = "open", limit: int = 100
) -> list[IdentityTaskRow]:
    """Identity tasks, oldest first (``status`` None: every status)."""
    query = select(IdentityTaskRow).order_by(IdentityTaskRow.created_at, IdentityTaskRow.task_id)
    if status is not None:
        query = query.where(IdentityTaskRow.status == status)
    return list(session.scalars(query.limit(limit)))


def identity_task_for_referral(session: Session, *, referral_id: str) -> IdentityTaskRow | None:
    """The identity task a referral opened, if any (the newest)."""
    query = (
        select(IdentityTaskRow)
        .where(IdentityTaskRow.referral_id == referral_id)
        .order_by(IdentityTaskRow.created_at.desc())
        .limit(1)
    )
    return session.scalar(query)


def identity_task_for_event(session: Session, *, event_id: str) -> IdentityTaskRow | None:
    """The identity task an agency event opened, if any (the newest)."""
    query = (
        select(IdentityTaskRow)
        .where(IdentityTaskRow.event_id == event_id)
        .order_by(IdentityTaskRow.created_at.desc())
        .limit(1)
    )
    return session.scalar(query)


def open_identity_tasks_for_referrals(
    session: Session, *, referral_ids: Collection[str]
) -> set[str]:
    """Which of these referrals have an open identity task."""
    if not referral_ids:
        return set()
    query = select(IdentityTaskRow.referral_id).where(
        IdentityTaskRow.referral_id.in_(sorted(referral_ids)), IdentityTaskRow.status == "open"
    )
    return {r for r in session.scalars(query) if r is not None}


def decide_identity_task(
    session: Session, *, task_id: str, status: str, decided_by: str, at: datetime, note: str
) -> bool:
    """Close an open task as ``confirmed`` or ``rejected``; False when it was not open."""
    result = session_connection(session).execute(
        update(IdentityTaskRow)
        .where(IdentityTaskRow.task_id == task_id, IdentityTaskRow.status == "open")
        .values(status=status, decided_by=decided_by, decided_at=at, note=note)
    )
    return bool(result.rowcount)


# --- merges ----------------------------------------------------------------------------------


def add_person_merge(session: Session, *, merge: Mapping[str, Any]) -> PersonMergeRow:
    """Add a merge record and flush it."""
    row = PersonMergeRow(**merge)
    session.add(row)
    session.flush()
    return row


def get_person_merge(session: Session, *, merge_id: str) -> PersonMergeRow | None:
    """One merge, or None."""
    return session.get(PersonMergeRow, merge_id)


def merges_of_person(session: Session, *, person_id: str) -> list[PersonMergeRow]:
    """Merges into or from a person, newest first."""
    query = (
        select(PersonMergeRow)
        .where(
            or_(
                PersonMergeRow.into_person_id == person_id,
                PersonMergeRow.from_person_id == person_id,
            )
        )
        .order_by(PersonMergeRow.merged_at.desc())
    )
    return list(session.scalars(query))


def _ids(session: Session, column: Any, *where: Any) -> list[str]:
    return sorted(session.scalars(select(column).where(*where)))


def _sole_member_households(session: Session, person_id: str) -> set[str]:
    """Households in which this person is the only member ever (made for them at intake)."""
    membership = HouseholdMembershipRow
    theirs = select(membership.household_id).where(membership.person_id == person_id)
    others = select(membership.household_id).where(
        membership.household_id.in_(theirs), membership.person_id != person_id
    )
    return set(session.scalars(theirs.where(membership.household_id.not_in(others))))


def repoint_person(
    session: Session, *, from_person_id: str, into_person_id: str, into_household: str | None
) -> dict[str, Any]:
    """Move a person's rows to another person; return exactly what moved (for ``undo``).

    Re-pointed: referrals and queue entries (``child_id``), events (``child_id`` and
    ``person_id``), household memberships and identity records (``person_id``). A household
    only ever holding the merged person (made for them at intake) stays theirs, and their
    referrals there move to ``into_household`` (the other person's current household).
    """
    shells = _sole_member_households(session, from_person_id)
    referral_ids = _ids(session, ReferralRow.referral_id, ReferralRow.child_id == from_person_id)
    households: dict[str, str] = {}
    if into_household is not None and shells:
        query = select(ReferralRow.referral_id, ReferralRow.household_id).where(
            ReferralRow.child_id == from_person_id, ReferralRow.household_id.in_(sorted(shells))
        )
        households = {row.referral_id: row.household_id for row in session.execute(query)}
    moved: dict[str, Any] = {
        "referrals": referral_ids,
        "referral_households": households,
        "queue_entries": _ids(
            session, QueueEntryRow.referral_id, QueueEntryRow.child_id == from_person_id
        ),
        "events_child": _ids(session, EventRow.event_id, EventRow.child_id == from_person_id),
        "events_person": _ids(session, EventRow.event_id, EventRow.person_id == from_person_id),
        "memberships": _ids(
            session,
            HouseholdMembershipRow.membership_id,
            HouseholdMembershipRow.person_id == from_person_id,
            HouseholdMembershipRow.household_id.not_in(sorted(shells)),
        ),
        "identity_records": _ids(
            session, IdentityRecordRow.record_id, IdentityRecordRow.person_id == from_person_id
        ),
    }
    _apply(session, moved, person_id=into_person_id, household_id=into_household)
    return moved


def restore_person(session: Session, *, moved: Mapping[str, Any], from_person_id: str) -> None:
    """Undo ``repoint_person``: move exactly the recorded rows back to ``from_person_id``."""
    _apply(session, moved, person_id=from_person_id, household_id=None)


def _apply(
    session: Session, moved: Mapping[str, Any], *, person_id: str, household_id: str | None
) -> None:
    """Point the recorded rows at ``person_id``; households to ``household_id`` (None: back)."""
    connection = session_connection(session)
    steps: list[tuple[Any, Any, str, str]] = [
        (ReferralRow, ReferralRow.referral_id, "referrals", "child_id"),
        (QueueEntryRow, QueueEntryRow.referral_id, "queue_entries", "child_id"),
        (EventRow, EventRow.event_id, "events_child", "child_id"),
        (EventRow, EventRow.event_id, "events_person", "person_id"),
        (
            HouseholdMembershipRow,
            HouseholdMembershipRow.membership_id,
            "memberships",
            "person_id",
        ),
        (IdentityRecordRow, IdentityRecordRow.record_id, "identity_records", "person_id"),
    ]
    for row_class, key, name, column in steps:
        ids = list(moved.get(name, []))
        for start in range(0, len(ids), 500):
            connection.execute(
                update(row_class)
                .where(key.in_(ids[start : start + 500]))
                .values({column: person_id})
            )
    for referral_id, old_household in dict(moved.get("referral_households", {})).items():
        target = household_id if household_id is not None else old_household
        connection.execute(
            update(ReferralRow)
            .where(ReferralRow.referral_id == referral_id)
            .values(household_id=target)
        )


def open_referrals_of_children(
    session: Session, *, child_ids: Collection[str], household_ids: Collection[str] = ()
) -> list[str]:
    """The open referrals about these children or in these households, oldest first (to
    rescore after a merge: a household's other children read its members' records too)."""
    if not child_ids and not household_ids:
        return []
    query = (
        select(ReferralRow.referral_id)
        .where(
            or_(
                ReferralRow.child_id.in_(sorted(child_ids)),
                ReferralRow.household_id.in_(sorted(household_ids)),
            ),
            ReferralRow.status == "open",
        )
        .order_by(ReferralRow.received_at, ReferralRow.referral_id)
    )
    return list(session.scalars(query))
