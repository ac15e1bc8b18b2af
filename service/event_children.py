"""Agency events that name a child by details, not by id: resolved as a referral's child is.

An agency often holds a child under its own client number, not the service's child id. An
event may then carry the child's details (``AgencyEventIn.child``); the linker resolves them
in the events' transaction, one event after another, so that two events in one batch about
the same unknown child find each other:

* ``linked``: the event is stored against that child;
* ``possible_match``: against a new child, with a task a person decides (never a silent
  merge); confirming the task moves the event to the known child;
* ``new``: against a new child (and a new household when the event names none).

An event that names ``child_id`` and details keeps the details as the agency's identity record
of that child (``given``). An event already stored (same source system and event id) is not
resolved again: it is reported as a duplicate, with the resolution it had.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.identity import (
    NEW_CHILD_OUTCOMES,
    ChildResolution,
    given,
    identity_record,
    record_id_for,
    resolve_details,
    store_resolution,
    stored_resolution,
)
from service.linker import Resolver
from service.people import child_person
from triage.schema import AgencyEventIn, ChildDetails
from triage.store import (
    EventRow,
    insert_child_if_new,
    insert_household_if_new,
    insert_membership_if_new,
    insert_person_if_new,
    lock_identities,
)


@dataclass(frozen=True)
class ResolvedEvents:
    """The events with resolved child ids, and how each event's child was resolved."""

    events: list[AgencyEventIn]
    resolutions: dict[int, dict[str, object] | None]
    """The reply's ``resolution`` per event index (events that sent details only)."""
    audit: list[dict[str, object]]
    """Ids and numbers only, for the events' audit event."""


def resolve_event_children(
    resolver: Resolver | None,
    session: Session,
    events: Sequence[AgencyEventIn],
    *,
    event_ids: Sequence[str],
    received: datetime,
) -> ResolvedEvents:
    """Resolve and store the children of events that sent details (in the caller's transaction)."""
    resolved = list(events)
    replies: dict[int, dict[str, object] | None] = {}
    audit: list[dict[str, object]] = []
    stored = _stored_events(session, events)
    # Another batch about the same unknown child waits here, then reads this one's records.
    years = [e.child.date_of_birth.year for e in events if e.child and e.child_id is None]
    lock_identities(session, birth_years=years)
    seen: dict[tuple[str, str], int] = {}
    for index, event in enumerate(events):
        if event.child is None:
            continue
        key = (event.source_system, event.source_event_id)
        earlier = stored.get(key)
        if earlier is not None or key in seen:
            # A resend: the stored event keeps the child it was resolved to.
            if earlier is not None:
                replies[index] = _as_stored(session, earlier)
                resolved[index] = _with_child(event, earlier.child_id)
            else:
                replies[index] = replies.get(seen[key])
                resolved[index] = resolved[seen[key]]
            continue
        seen[key] = index
        resolution = _resolve(resolver, session, event, event_ids[index], received)
        if resolution.outcome in NEW_CHILD_OUTCOMES:
            _store_new_child(session, resolution, event.child)
        store_resolution(session, resolution)
        session.flush()  # the next event of the batch reads this one's record
        replies[index] = resolution.reply()
        audit.append({"index": index} | resolution.audit())
        resolved[index] = _with_child(event, resolution.child_id)
    return ResolvedEvents(resolved, replies, audit)


def _resolve(
    resolver: Resolver | None,
    session: Session,
    event: AgencyEventIn,
    event_id: str,
    received: datetime,
) -> ChildResolution:
    assert event.child is not None
    record = identity_record(
        event.child,
        record_id=record_id_for(event_id),
        source_system=event.source_system,
        # The agency's own person id is not in the contract: its event id stands in.
        source_person_id=event.source_event_id,
        first_seen_at=received,
    )
    if event.child_id is not None:
        return given(record, event.child_id, event.household_id or "")
    return resolve_details(
        resolver,
        session,
        details=event.child,
        record=record,
        household_id=event.household_id,
        opened_by={"event_id": event_id},
    )


def _store_new_child(session: Session, resolution: ChildResolution, details: ChildDetails) -> None:
    """A child first known from an event: stored with what the event says (nothing more)."""
    insert_household_if_new(
        session,
        household={
            "household_id": resolution.household_id,
            "deprivation_decile": None,
            "synthetic": False,
        },
    )
    insert_child_if_new(
        session,
        child={
            "child_id": resolution.child_id,
            "household_id": resolution.household_id,
            "given_name": details.given_name,
            "family_name": details.family_name,
            "date_of_birth": details.date_of_birth,
            "sex": str(details.sex),
            "ethnicity": "not_stated",
            "disability": False,
            "deprivation_decile": None,
            "synthetic": False,
        },
    )
    person, membership = child_person(
        child_id=resolution.child_id,
        household_id=resolution.household_id,
        given_name=details.given_name,
        family_name=details.family_name,
        date_of_birth=details.date_of_birth,
        sex=str(details.sex),
    )
    insert_person_if_new(session, person=person)
    insert_membership_if_new(session, membership=membership)


def _stored_events(
    session: Session, events: Sequence[AgencyEventIn]
) -> dict[tuple[str, str], EventRow]:
    """Events with details already stored, by business key."""
    keys = {(e.source_system, e.source_event_id) for e in events if e.child is not None}
    if not keys:
        return {}
    systems = sorted({system for system, _ in keys})
    ids = sorted({event_id for _, event_id in keys})
    query = select(EventRow).where(
        EventRow.source_system.in_(systems), EventRow.source_event_id.in_(ids)
    )
    rows = session.scalars(query)
    return {
        (r.source_system, r.source_event_id): r
        for r in rows
        if (r.source_system, r.source_event_id) in keys
    }


def _as_stored(session: Session, row: EventRow) -> dict[str, object] | None:
    """A stored event's resolution as its first reply gave it (None: it named no child)."""
    if row.child_id is None:
        return None
    return stored_resolution(session, event_id=row.event_id, child_id=row.child_id)


def _with_child(event: AgencyEventIn, child_id: str | None) -> AgencyEventIn:
    if child_id is None or event.child_id is not None:
        return event
    return event.model_copy(update={"child_id": child_id})
