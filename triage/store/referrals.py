"""Households, children, referrals and agency events, and a child's history.

``add_*`` and ``get_*`` work through the ORM; ``insert_*`` and ``read_*`` are the intake's
Core statements (see ``triage.store`` for the naming).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy import Row, bindparam, exists, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from triage.store.errors import ChildNotFound, DuplicateEvent, DuplicateReferral, StoreError
from triage.store.statements import insert_if_new, session_connection
from triage.store.tables import ChildRow, EventRow, HouseholdRow, ReferralRow, table_of

HISTORY_LIMIT = 500


@dataclass(frozen=True, slots=True)
class HistoryItem:
    """One entry of a child's timeline: a referral or an agency event."""

    at: datetime
    kind: Literal["referral", "event"]
    row: ReferralRow | EventRow


def add_household(session: Session, *, household: Mapping[str, Any]) -> HouseholdRow:
    """Add a household."""
    row = HouseholdRow(**household)
    session.add(row)
    session.flush()
    return row


def add_child(session: Session, *, child: Mapping[str, Any]) -> ChildRow:
    """Add a child (its household must exist)."""
    row = ChildRow(**child)
    session.add(row)
    session.flush()
    return row


def insert_household_if_new(session: Session, *, household: Mapping[str, Any]) -> bool:
    """Insert a household unless its id is stored (also concurrently); True when it went in."""
    return insert_if_new(session, table_of(HouseholdRow), household)


def insert_child_if_new(session: Session, *, child: Mapping[str, Any]) -> bool:
    """Insert a child unless its id is stored; True when it went in. Its household must exist."""
    return insert_if_new(session, table_of(ChildRow), child)


_CHILD_BIRTH_AND_HOUSEHOLD = select(
    select(ChildRow.date_of_birth)
    .where(ChildRow.child_id == bindparam("child_id"))
    .scalar_subquery(),
    exists().where(HouseholdRow.household_id == bindparam("household_id")),
)


def read_child_birth_and_household(
    session: Session, *, child_id: str, household_id: str
) -> tuple[date | None, bool]:
    """A stored child's date of birth (None when unknown) and whether a household is stored."""
    row = (
        session_connection(session)
        .execute(_CHILD_BIRTH_AND_HOUSEHOLD, {"child_id": child_id, "household_id": household_id})
        .one()
    )
    return row[0], bool(row[1])


_CHILD_IDENTITY = select(ChildRow.given_name, ChildRow.family_name, ChildRow.date_of_birth).where(
    ChildRow.child_id == bindparam("child_id")
)


def read_child_identity(session: Session, *, child_id: str) -> tuple[str, str, date] | None:
    """A stored child's given name, family name and date of birth; None when unknown."""
    row = session_connection(session).execute(_CHILD_IDENTITY, {"child_id": child_id}).first()
    return None if row is None else (row[0], row[1], row[2])


def identity_to_confirm(session: Session, *, referral_ids: Sequence[str]) -> set[str]:
    """Those of ``referral_ids`` whose child's details contradict the stored child."""
    if not referral_ids:
        return set()
    # Filtered here, not in SQL: a JSON column stores None as JSON null, not SQL NULL.
    rows = session.execute(
        select(ReferralRow.referral_id, ReferralRow.identity_mismatch).where(
            ReferralRow.referral_id.in_(referral_ids)
        )
    )
    return {referral_id for referral_id, mismatch in rows if mismatch}


def get_child(session: Session, *, child_id: str) -> ChildRow | None:
    """Return the child with this id, or None."""
    return session.get(ChildRow, child_id)


def get_referral(session: Session, *, referral_id: str) -> ReferralRow | None:
    """Return the referral with this id, or None."""
    return session.get(ReferralRow, referral_id)


def get_referral_by_business_key(
    session: Session, *, source_system: str, source_referral_id: str
) -> ReferralRow | None:
    """Return the referral with this source-system key, or None."""
    return session.scalars(
        select(ReferralRow).where(
            ReferralRow.source_system == source_system,
            ReferralRow.source_referral_id == source_referral_id,
        )
    ).one_or_none()


_REFERRAL_ID_BY_BUSINESS_KEY = select(ReferralRow.referral_id).where(
    ReferralRow.source_system == bindparam("source_system"),
    ReferralRow.source_referral_id == bindparam("source_referral_id"),
)


def read_referral_id_by_business_key(
    session: Session, *, source_system: str, source_referral_id: str
) -> str | None:
    """The id of the referral with this source-system key, or None (no ORM object)."""
    return (
        session_connection(session)
        .execute(
            _REFERRAL_ID_BY_BUSINESS_KEY,
            {"source_system": source_system, "source_referral_id": source_referral_id},
        )
        .scalar()
    )


def add_referral(session: Session, *, referral: Mapping[str, Any]) -> ReferralRow:
    """Add a referral; raise DuplicateReferral if its id or business key is already stored."""
    row = ReferralRow(**referral)
    existing = _existing_referral(session, row)
    if existing is None:
        try:
            with session.begin_nested():  # a lost race must not poison the caller's transaction
                session.add(row)
        except IntegrityError:
            existing = _existing_referral(session, row)
            if existing is None:
                raise
    if existing is not None:
        raise DuplicateReferral(
            existing.referral_id, existing.source_system, existing.source_referral_id
        )
    return row


def insert_referral(session: Session, *, referral: Mapping[str, Any]) -> None:
    """Add a referral without the ORM; raise DuplicateReferral if its id or key is stored.

    The caller keeps the values it passed; no ``ReferralRow`` enters the session.
    """
    if insert_if_new(session, table_of(ReferralRow), referral):
        return
    columns = (ReferralRow.referral_id, ReferralRow.source_system, ReferralRow.source_referral_id)
    for where in (
        (
            ReferralRow.source_system == referral["source_system"],
            ReferralRow.source_referral_id == referral["source_referral_id"],
        ),
        (ReferralRow.referral_id == referral["referral_id"],),
    ):
        existing = session.execute(select(*columns).where(*where)).first()
        if existing is not None:
            raise DuplicateReferral(*existing)
    raise StoreError("the referral conflicted with a stored row that is not there")


_REFERRAL_FACTS = (
    select(
        ReferralRow.status,
        ReferralRow.child_id,
        ReferralRow.received_at,
        ReferralRow.injury_reported,
        ReferralRow.injury_sites,
        ReferralRow.concerns,
        ReferralRow.referrer_relationship,
        ReferralRow.injury_photographed,
        ChildRow.date_of_birth,
    )
    .join(ChildRow, ChildRow.child_id == ReferralRow.child_id)
    .where(ReferralRow.referral_id == bindparam("referral_id"))
)


def read_referral_facts(session: Session, *, referral_id: str) -> Row[*tuple[Any, ...]] | None:
    """What scoring and the queue need of a stored referral, with the child's date of birth.

    Columns: status, child_id, received_at, injury_reported, injury_sites, concerns,
    referrer_relationship, injury_photographed, date_of_birth; None when there is no such
    referral.
    """
    return (
        session_connection(session).execute(_REFERRAL_FACTS, {"referral_id": referral_id}).first()
    )


def _existing_referral(session: Session, row: ReferralRow) -> ReferralRow | None:
    return get_referral_by_business_key(
        session, source_system=row.source_system, source_referral_id=row.source_referral_id
    ) or get_referral(session, referral_id=row.referral_id)


def add_event(session: Session, *, event: Mapping[str, Any]) -> EventRow:
    """Add an agency event; raise DuplicateEvent if its id or business key is already stored."""
    row = EventRow(**event)
    existing = _existing_event(session, row)
    if existing is None:
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:
            existing = _existing_event(session, row)
            if existing is None:
                raise
    if existing is not None:
        raise DuplicateEvent(existing.event_id, existing.source_system, existing.source_event_id)
    return row


def _existing_event(session: Session, row: EventRow) -> EventRow | None:
    by_key = session.scalars(
        select(EventRow).where(
            EventRow.source_system == row.source_system,
            EventRow.source_event_id == row.source_event_id,
        )
    ).one_or_none()
    return by_key or session.get(EventRow, row.event_id)


def list_open_referrals(
    session: Session, *, limit: int = 100, received_after: datetime | None = None
) -> list[ReferralRow]:
    """Return up to ``limit`` open referrals, oldest first (strictly after ``received_after``)."""
    query = select(ReferralRow).where(ReferralRow.status == "open")
    if received_after is not None:
        query = query.where(ReferralRow.received_at > received_after)
    query = query.order_by(ReferralRow.received_at, ReferralRow.referral_id).limit(limit)
    return list(session.scalars(query))


def history_for_child(
    session: Session, *, child_id: str, before: datetime | None = None, limit: int = HISTORY_LIMIT
) -> list[HistoryItem]:
    """Return the latest ``limit`` referrals and events of a child and its household, by time."""
    child = get_child(session, child_id=child_id)
    if child is None:
        raise ChildNotFound(child_id)
    referrals = select(ReferralRow).where(
        or_(ReferralRow.child_id == child_id, ReferralRow.household_id == child.household_id)
    )
    events = select(EventRow).where(
        or_(EventRow.child_id == child_id, EventRow.household_id == child.household_id)
    )
    if before is not None:
        referrals = referrals.where(ReferralRow.received_at < before)
        events = events.where(EventRow.occurred_at < before)
    referrals = referrals.order_by(ReferralRow.received_at.desc()).limit(limit)
    events = events.order_by(EventRow.occurred_at.desc()).limit(limit)
    items = [HistoryItem(r.received_at, "referral", r) for r in session.scalars(referrals)]
    items += [HistoryItem(e.occurred_at, "event", e) for e in session.scalars(events)]
    items.sort(key=lambda item: item.at)
    return items[-limit:] if limit else []


def open_referrals_affected_by(
    session: Session,
    *,
    child_ids: Sequence[str],
    household_ids: Sequence[str],
    received_after: datetime,
) -> list[str]:
    """Ids of open referrals of these children or households received after a moment."""
    if not child_ids and not household_ids:
        return []
    query = select(ReferralRow.referral_id).where(
        ReferralRow.status == "open",
        ReferralRow.received_at > received_after,
        or_(ReferralRow.child_id.in_(child_ids), ReferralRow.household_id.in_(household_ids)),
    )
    return list(session.scalars(query.order_by(ReferralRow.received_at)))
