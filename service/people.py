"""What agency events do to persons and household memberships, checked before anything is stored.

``plan_people`` reads the store (under ``lock_memberships``) and works out, for a batch of
valid events, the persons to add and the memberships to open and close, or refuses the batch
with one error per event at fault. ``add_new_persons`` and ``apply_memberships`` then write
what the plan says for the events that were stored (a resent event changes nothing twice).
"""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy.orm import Session

from service.errors import invalid
from triage.schema import AgencyEventIn, PersonDetails
from triage.store import (
    PersonRow,
    close_membership,
    insert_membership_if_new,
    insert_person_if_new,
    lock_memberships,
    open_memberships_of,
    persons_by_id,
    stored_event_keys,
)
from triage.store.people import child_membership
from triage.vocab import MEMBERSHIP_EVENT_KINDS, EventKind

Path = Callable[[int, str], str]
"""Where an event's field is in the request: ``person_id``, or ``3.person_id`` in a batch."""


@dataclass(frozen=True, slots=True)
class Opening:
    """A membership an ``adult_joined_household`` event opens."""

    index: int
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Closing:
    """The open membership an ``adult_left_household`` event closes, and when."""

    index: int
    membership_id: str
    left_at: datetime


@dataclass
class PeoplePlan:
    """What a batch does to persons and memberships, per event index."""

    new_persons: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Persons to add, by id (from the first event of the batch that gives their details)."""
    openings: list[Opening] = field(default_factory=list)
    closings: list[Closing] = field(default_factory=list)
    details_differ: list[dict[str, Any]] = field(default_factory=list)
    """Known persons whose details an event contradicts: ids and field names (for the audit)."""


def same_name(a: str, b: str) -> bool:
    """Names that differ only in case, spacing or Unicode composition are the same name."""
    return " ".join(unicodedata.normalize("NFC", a).casefold().split()) == " ".join(
        unicodedata.normalize("NFC", b).casefold().split()
    )


def _details_differ(sent: PersonDetails, stored: PersonRow) -> list[str]:
    """The fields of ``sent`` that contradict a stored person (unknown stored values do not)."""
    differ = []
    for name in ("given_name", "family_name"):
        old = getattr(stored, name)
        if old is not None and not same_name(getattr(sent, name), old):
            differ.append(name)
    if sent.date_of_birth is not None and stored.date_of_birth not in (None, sent.date_of_birth):
        differ.append("date_of_birth")
    if str(sent.sex) != "unknown" and stored.sex not in ("unknown", str(sent.sex)):
        differ.append("sex")
    return differ


def _person_values(person_id: str, details: PersonDetails) -> dict[str, Any]:
    return {
        "person_id": person_id,
        "is_child": False,
        "given_name": details.given_name,
        "family_name": details.family_name,
        "date_of_birth": details.date_of_birth,
        "sex": str(details.sex),
        "synthetic": False,
    }


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def plan_people(session: Session, events: Sequence[AgencyEventIn], path: Path) -> PeoplePlan:
    """The persons and memberships a batch adds, opens and closes; 422 naming each event at
    fault (an unknown person, a child's id, leaving without a membership...).

    Events already stored (or repeated in the batch) change nothing and are not checked:
    they are reported as duplicates. Memberships change in the order the events occurred.
    """
    plan = PeoplePlan()
    named = sorted({e.person_id for e in events if e.person_id is not None})
    if not named:
        return plan
    if any(e.kind in MEMBERSHIP_EVENT_KINDS for e in events):
        lock_memberships(session)
    stored_keys = stored_event_keys(
        session, keys={(e.source_system, e.source_event_id) for e in events}
    )
    seen: set[tuple[str, str]] = set()
    fresh: list[int] = []
    for index, event in enumerate(events):
        key = (event.source_system, event.source_event_id)
        if key not in stored_keys and key not in seen and event.person_id is not None:
            fresh.append(index)
        seen.add(key)
    persons = persons_by_id(session, person_ids=named)
    errors: list[dict[str, str]] = []
    for index in fresh:  # a joined event with details adds a new person, wherever it stands
        event = events[index]
        assert event.person_id is not None
        if event.kind is not EventKind.adult_joined_household or event.person is None:
            continue
        stored = persons.get(event.person_id)
        if stored is None and event.person_id not in plan.new_persons:
            plan.new_persons[event.person_id] = _person_values(event.person_id, event.person)
        elif stored is not None and not stored.is_child:
            differ = _details_differ(event.person, stored)
            if differ:
                plan.details_differ.append({"person_id": event.person_id, "fields": differ})
    for index in fresh:
        event = events[index]
        assert event.person_id is not None
        stored = persons.get(event.person_id)
        if stored is None and event.person_id not in plan.new_persons:
            hint = (
                "send the person's details in `person` with this event to add them"
                if event.kind is EventKind.adult_joined_household
                else "send adult_joined_household with the person's details first"
            )
            errors.append(
                {
                    "field": path(index, "person_id"),
                    "reason": f"no person with this id is known: {hint}",
                }
            )
        elif stored is not None and stored.is_child:
            errors.append(
                {
                    "field": path(index, "person_id"),
                    "reason": "this id is a child's: an event about a child carries child_id, "
                    "and only adults join or leave households by these events",
                }
            )
    if errors:
        raise invalid(errors, "events name persons the service does not know")
    _plan_memberships(session, events, fresh, plan, path)
    return plan


def _plan_memberships(
    session: Session,
    events: Sequence[AgencyEventIn],
    fresh: Sequence[int],
    plan: PeoplePlan,
    path: Path,
) -> None:
    """Openings and closings in the order the events occurred; 422 when one cannot apply."""
    changes = sorted(
        (i for i in fresh if events[i].kind in MEMBERSHIP_EVENT_KINDS),
        key=lambda i: (events[i].occurred_at, i),
    )
    if not changes:
        return
    people = sorted({p for i in changes if (p := events[i].person_id) is not None})
    open_now: dict[tuple[str, str], tuple[str, datetime]] = {
        (m.person_id, m.household_id): (m.membership_id, m.joined_at)
        for m in open_memberships_of(session, person_ids=people)
    }
    errors: list[dict[str, str]] = []
    for index in changes:
        event = events[index]
        assert event.person_id is not None and event.household_id is not None
        where = (event.person_id, event.household_id)
        current = open_now.get(where)
        if event.kind is EventKind.adult_joined_household:
            if current is not None:
                errors.append(
                    {
                        "field": path(index, "person_id"),
                        "reason": f"this person already lives in household {event.household_id} "
                        f"(joined {_when(current[1])}): send adult_left_household first",
                    }
                )
                continue
            membership_id = f"M-{uuid.uuid4().hex}"
            plan.openings.append(
                Opening(
                    index,
                    {
                        "membership_id": membership_id,
                        "person_id": event.person_id,
                        "household_id": event.household_id,
                        "role": str(event.attributes["role"]),
                        "joined_at": event.occurred_at,
                        "left_at": None,
                        "synthetic": False,
                    },
                )
            )
            open_now[where] = (membership_id, event.occurred_at)
        elif current is None:
            errors.append(
                {
                    "field": path(index, "person_id"),
                    "reason": "this person has no open membership of household "
                    f"{event.household_id} to close: send adult_joined_household first",
                }
            )
        elif event.occurred_at < current[1]:
            errors.append(
                {
                    "field": path(index, "occurred_at"),
                    "reason": "the person cannot leave before joining: their membership of "
                    f"household {event.household_id} began {_when(current[1])}",
                }
            )
        else:
            plan.closings.append(Closing(index, current[0], event.occurred_at))
            del open_now[where]
    if errors:
        raise invalid(errors, "events change household memberships that cannot change so")


def add_new_persons(session: Session, plan: PeoplePlan) -> list[str]:
    """Store the persons the batch names first (before its events, which refer to them)."""
    return [
        person_id
        for person_id, values in plan.new_persons.items()
        if insert_person_if_new(session, person=values)
    ]


def apply_memberships(
    session: Session, plan: PeoplePlan, created: set[int]
) -> tuple[list[str], list[str]]:
    """Open and close the memberships of the events stored now (``created`` indexes): the ids
    opened and closed."""
    opened = [
        opening.values["membership_id"]
        for opening in plan.openings
        if opening.index in created and insert_membership_if_new(session, membership=opening.values)
    ]
    closed = [
        closing.membership_id
        for closing in plan.closings
        if closing.index in created
        and close_membership(session, membership_id=closing.membership_id, left_at=closing.left_at)
    ]
    return opened, closed


def child_person(
    *,
    child_id: str,
    household_id: str,
    given_name: str,
    family_name: str,
    date_of_birth: date,
    sex: str,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A new child as a person, and the open ``child`` membership of its household from birth."""
    person = {
        "person_id": child_id,
        "is_child": True,
        "given_name": given_name,
        "family_name": family_name,
        "date_of_birth": date_of_birth,
        "sex": sex,
        "synthetic": False,
    }
    born = datetime.combine(date_of_birth, time(), tzinfo=UTC)
    return person, child_membership(child_id=child_id, household_id=household_id, born=born)
