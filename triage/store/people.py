"""Persons and household memberships: who lived where, in which role, and the events about them.

Every child is a person (``person_id`` = ``child_id``); an adult becomes one when an agency
first names them. A membership is open while ``left_at`` is None. The intake writes through
``insert_*`` (Core, no ORM object) and the few ``close_*``/``lock_*`` steps; the pages read
through ``*_of_*`` and ``read_*`` (see ``triage.store`` for the naming).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from triage.store.statements import insert_if_new, session_connection
from triage.store.tables import (
    EventRow,
    HouseholdMembershipRow,
    PersonRow,
    table_of,
)
from triage.vocab import CHILD_MEMBERSHIP_PREFIX

PERSON_RECORDS_LIMIT = 50
"""Records read per person for a page: the most recent."""
# Any constant distinct from the audit chain's key (triage.store.auditlog.CHAIN_LOCK_KEY).
_MEMBERSHIP_LOCK_KEY = 0x7472_6961_6765_6D62  # "triagemb"
_MEMBERSHIP_LOCK = text("SELECT pg_advisory_xact_lock(:key)").bindparams(key=_MEMBERSHIP_LOCK_KEY)


def lock_memberships(session: Session) -> None:
    """Serialise writers of memberships until the caller's transaction ends.

    Checking that a person has (or has not) an open membership and then opening or closing
    one must not interleave with another request doing the same. SQLite writers already hold
    the database's write lock; PostgreSQL takes a transaction-scoped advisory lock.
    """
    connection = session_connection(session)
    if connection.dialect.name == "postgresql":
        connection.execute(_MEMBERSHIP_LOCK)


def insert_person_if_new(session: Session, *, person: Mapping[str, Any]) -> bool:
    """Insert a person unless the id is stored; True when the row went in."""
    return insert_if_new(session, table_of(PersonRow), person)


def insert_membership_if_new(session: Session, *, membership: Mapping[str, Any]) -> bool:
    """Insert a membership unless its id is stored; True when it went in (person and household
    must exist)."""
    return insert_if_new(session, table_of(HouseholdMembershipRow), membership)


def child_membership(
    *, child_id: str, household_id: str, born: datetime, synthetic: bool = False
) -> dict[str, Any]:
    """The open ``child`` membership of a child stored for the first time."""
    return {
        "membership_id": f"{CHILD_MEMBERSHIP_PREFIX}{child_id}",
        "person_id": child_id,
        "household_id": household_id,
        "role": "child",
        "joined_at": born,
        "left_at": None,
        "synthetic": synthetic,
    }


def close_membership(session: Session, *, membership_id: str, left_at: datetime) -> bool:
    """Set ``left_at`` on an open membership; False when it is not open (or not stored)."""
    result = session_connection(session).execute(
        update(HouseholdMembershipRow)
        .where(
            HouseholdMembershipRow.membership_id == membership_id,
            HouseholdMembershipRow.left_at.is_(None),
        )
        .values(left_at=left_at)
    )
    return bool(result.rowcount)


def persons_by_id(session: Session, *, person_ids: Collection[str]) -> dict[str, PersonRow]:
    """The stored persons among ``person_ids``, by id."""
    if not person_ids:
        return {}
    rows = session.scalars(select(PersonRow).where(PersonRow.person_id.in_(sorted(person_ids))))
    return {row.person_id: row for row in rows}


def open_memberships_of(
    session: Session, *, person_ids: Collection[str]
) -> list[HouseholdMembershipRow]:
    """The open memberships of these persons, oldest first."""
    if not person_ids:
        return []
    query = (
        select(HouseholdMembershipRow)
        .where(
            HouseholdMembershipRow.person_id.in_(sorted(person_ids)),
            HouseholdMembershipRow.left_at.is_(None),
        )
        .order_by(HouseholdMembershipRow.joined_at, HouseholdMembershipRow.membership_id)
    )
    return list(session.scalars(query))


def memberships_of_household(
    session: Session, *, household_id: str
) -> list[HouseholdMembershipRow]:
    """Every membership of a household, past and present, oldest first."""
    query = (
        select(HouseholdMembershipRow)
        .where(HouseholdMembershipRow.household_id == household_id)
        .order_by(HouseholdMembershipRow.joined_at, HouseholdMembershipRow.membership_id)
    )
    return list(session.scalars(query))


def memberships_of_persons(
    session: Session, *, person_ids: Collection[str]
) -> list[HouseholdMembershipRow]:
    """Every membership of these persons, in any household, oldest first."""
    if not person_ids:
        return []
    query = (
        select(HouseholdMembershipRow)
        .where(HouseholdMembershipRow.person_id.in_(sorted(person_ids)))
        .order_by(HouseholdMembershipRow.joined_at, HouseholdMembershipRow.membership_id)
    )
    return list(session.scalars(query))


def households_of_persons(session: Session, *, person_ids: Collection[str]) -> list[str]:
    """The households these persons have ever been members of, sorted."""
    if not person_ids:
        return []
    query = (
        select(HouseholdMembershipRow.household_id)
        .where(HouseholdMembershipRow.person_id.in_(sorted(person_ids)))
        .distinct()
    )
    return sorted(session.scalars(query))


def events_about_persons(
    session: Session,
    *,
    person_ids: Collection[str],
    kinds: Collection[str],
    limit: int = PERSON_RECORDS_LIMIT,
) -> tuple[list[EventRow], dict[str, int]]:
    """The latest ``limit`` events of these kinds about each person (oldest first), and how
    many each person has in all."""
    if not person_ids or not kinds:
        return [], {}
    where = (EventRow.person_id.in_(sorted(person_ids)), EventRow.kind.in_(sorted(kinds)))
    # Not dict(result): a Result has keys() (its columns), so dict() would read it as a mapping.
    totals = {
        person_id: int(n)
        for person_id, n in session.execute(
            select(EventRow.person_id, func.count()).where(*where).group_by(EventRow.person_id)
        )
        if person_id is not None
    }
    rank = (
        func.row_number()
        .over(
            partition_by=EventRow.person_id,
            order_by=(EventRow.occurred_at.desc(), EventRow.event_id.desc()),
        )
        .label("rank")
    )
    ranked = select(EventRow.event_id, rank).where(*where).subquery()
    kept = select(ranked.c.event_id).where(ranked.c.rank <= limit)
    rows = session.scalars(
        select(EventRow)
        .where(EventRow.event_id.in_(kept))
        .order_by(EventRow.occurred_at, EventRow.event_id)
    )
    return list(rows), totals


def stored_event_keys(
    session: Session, *, keys: Collection[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Those of these (source_system, source_event_id) business keys already stored."""
    found: set[tuple[str, str]] = set()
    by_system: dict[str, list[str]] = {}
    for system, event_key in keys:
        by_system.setdefault(system, []).append(event_key)
    for system, event_keys in sorted(by_system.items()):
        query = select(EventRow.source_event_id).where(
            EventRow.source_system == system, EventRow.source_event_id.in_(sorted(event_keys))
        )
        found |= {(system, key) for key in session.scalars(query)}
    return found


def persons_behind_records(session: Session, *, record_ids: Collection[str]) -> dict[str, str]:
    """Which person each record id is about, for the ids that are memberships or events
    naming a person (other ids are left out)."""
    if not record_ids:
        return {}
    ids = sorted(record_ids)
    found: dict[str, str] = {}
    for record_id, person_id in session.execute(
        select(HouseholdMembershipRow.membership_id, HouseholdMembershipRow.person_id).where(
            HouseholdMembershipRow.membership_id.in_(ids)
        )
    ):
        found[record_id] = person_id
    for event_id, about in session.execute(
        select(EventRow.event_id, EventRow.person_id).where(
            EventRow.event_id.in_(ids), EventRow.person_id.is_not(None)
        )
    ):
        if about is not None:
            found[event_id] = about
    return found
