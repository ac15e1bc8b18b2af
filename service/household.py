"""The "Who lives here" panel of a referral: members, roles, when each joined or left, and each
adult's records, linked to the reasons of the score; shown only to the roles that may see it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from service.context import ServiceContext
from service.views import known_member_out, person_out
from triage.store import (
    EventRow,
    HouseholdMembershipRow,
    ReferralRow,
    add_audit_event,
    events_about_persons,
    memberships_of_household,
    memberships_of_persons,
    persons_behind_records,
    persons_by_id,
)
from triage.store.people import PERSON_RECORDS_LIMIT
from triage.vocab import PERSON_EVENT_KINDS

PANEL_ROLES: frozenset[str] = frozenset({"practitioner", "manager", "admin"})
"""Who may see the people in a household and each adult's records: the roles that may read the
referral page. Any other role, and a caller with no role, sees no panel (default-deny)."""
EARLIER_MEMBERS_YEARS = 2
"""Someone who left the household more than this many years before the referral is not shown,
unless the score used their records: the panel shows who matters now, not everyone ever."""
RECORD_KINDS: tuple[str, ...] = tuple(sorted(str(kind) for kind in PERSON_EVENT_KINDS))
"""An adult's relevant records: the events about a person (membership changes are shown as
the memberships themselves)."""


def may_see_household(roles: Collection[str]) -> bool:
    """Whether a caller holding ``roles`` may see the panel (default-deny)."""
    return bool(PANEL_ROLES.intersection(roles))


def _signals_by_record(reasons: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """The signals of the score that used each record id."""
    found: dict[str, list[str]] = {}
    for reason in reasons:
        for record_id in reason.get("record_ids", ()):
            found.setdefault(record_id, []).append(reason["signal"])
    return found


def household_panel(
    session: Session, *, referral: ReferralRow, reasons: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """Everyone who has lived in the referral's household, the people behind the reasons who
    have not, each adult's records, and the members the referrer listed."""
    household_id = referral.household_id
    signals_of = _signals_by_record(reasons)
    behind = persons_behind_records(session, record_ids=signals_of)
    here, earlier = _recent_memberships(
        memberships_of_household(session, household_id=household_id),
        since=_years_before(referral.received_at, EARLIER_MEMBERS_YEARS),
        keep=set(behind.values()),
    )
    member_ids = {m.person_id for m in here}
    elsewhere = set(behind.values()) - member_ids
    persons = persons_by_id(session, person_ids=member_ids | elsewhere)
    adults = sorted(pid for pid, person in persons.items() if not person.is_child)
    records, totals = events_about_persons(session, person_ids=adults, kinds=RECORD_KINDS)
    records_of: dict[str, list[EventRow]] = {}
    for row in records:
        if row.person_id is not None:
            records_of.setdefault(row.person_id, []).append(row)
    signals_of_person: dict[str, list[str]] = {}
    for record_id, person_id in behind.items():
        for signal in signals_of.get(record_id, ()):
            if signal not in signals_of_person.setdefault(person_id, []):
                signals_of_person[person_id].append(signal)
    memberships_of: dict[str, list[HouseholdMembershipRow]] = {}
    for membership in here:
        memberships_of.setdefault(membership.person_id, []).append(membership)
    others_of: dict[str, list[HouseholdMembershipRow]] = {}
    for membership in memberships_of_persons(session, person_ids=elsewhere):
        others_of.setdefault(membership.person_id, []).append(membership)

    def member(person_id: str, memberships: list[HouseholdMembershipRow]) -> dict[str, Any]:
        return person_out(
            persons[person_id],
            memberships=memberships,
            records=records_of.get(person_id, []),
            records_total=totals.get(person_id, 0),
            signals_of=signals_of,
            signals=signals_of_person.get(person_id, []),
            household_id=household_id,
        )

    members = [member(pid, ms) for pid, ms in memberships_of.items() if pid in persons]
    members.sort(key=_member_order)
    others = [member(pid, others_of.get(pid, [])) for pid in sorted(elsewhere) if pid in persons]
    listed = referral.household_members or []
    return {
        "household_id": household_id,
        "members": members,
        "others_behind_reasons": others,
        "known_to_referrer": [known_member_out(m, shown=persons) for m in listed],
        "records_limit": PERSON_RECORDS_LIMIT,
        "earlier_members_not_shown": earlier,
        "earlier_members_years": EARLIER_MEMBERS_YEARS,
    }


def _years_before(moment: datetime, years: int) -> datetime:
    """``moment`` less whole years (29 February falls back to the 28th)."""
    try:
        return moment.replace(year=moment.year - years)
    except ValueError:
        return moment.replace(year=moment.year - years, day=28)


def _recent_memberships(
    memberships: Sequence[HouseholdMembershipRow], *, since: datetime, keep: Collection[str]
) -> tuple[list[HouseholdMembershipRow], int]:
    """The memberships of people who lived there at or after ``since`` (all of each such
    person's), or whose records are in ``keep``; and how many other people there were."""
    recent = {
        m.person_id
        for m in memberships
        if m.left_at is None or m.left_at >= since or m.person_id in keep
    }
    everyone = {m.person_id for m in memberships}
    return [m for m in memberships if m.person_id in recent], len(everyone - recent)


def _member_order(member: Mapping[str, Any]) -> tuple[Any, ...]:
    """Who lives here now first (adults before children), then who has left, latest first."""
    spans = member["memberships"]
    joined = min(m["joined_at"] for m in spans)
    if member["lives_here_now"]:
        return (0, member["is_child"], joined, member["person_id"])
    left = max(m["left_at"] for m in spans if m["left_at"] is not None)
    return (1, -left.timestamp(), member["person_id"])


def shown_records(panel: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """The persons and the record ids the panel shows (for the audit)."""
    people = [*panel["members"], *panel["others_behind_reasons"]]
    return (
        [person["person_id"] for person in people],
        [record["record_id"] for person in people for record in person["records"]],
    )


def audit_panel(
    state: ServiceContext,
    *,
    actor: str,
    referral_id: str,
    panel: Mapping[str, Any] | None,
    channel: str,
) -> None:
    """Record that people or their records were shown: who saw them, which persons and records."""
    if panel is None:
        return
    person_ids, record_ids = shown_records(panel)
    if not person_ids:  # names, roles and dates of people are personal data too
        return
    with state.sessions() as session:
        add_audit_event(
            session,
            actor=actor,
            action="household.person_records_viewed",
            entity_type="household",
            entity_id=panel["household_id"],
            payload={
                "referral_id": referral_id,
                "channel": channel,
                "person_ids": person_ids,
                "record_ids": record_ids,
            },
        )
        session.commit()


def panel_note(panel: Mapping[str, Any] | None) -> dict[str, Any]:
    """What the referral view's audit event notes of the panel (counts, ids of no one)."""
    if panel is None:
        return {"household_panel": False}
    person_ids, record_ids = shown_records(panel)
    return {
        "household_panel": True,
        "household_persons": len(person_ids),
        "person_records": len(record_ids),
    }
