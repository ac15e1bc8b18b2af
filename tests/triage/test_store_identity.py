"""The identity store (issue 21): records and their blocking read, tasks, and a merge that
moves exactly its rows and an undo that moves exactly those back; SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from triage.store import (
    EventRow,
    HouseholdMembershipRow,
    IdentityRecordRow,
    ReferralRow,
    add_child,
    add_event,
    add_household,
    add_referral,
    decide_identity_task,
    get_identity_task,
    insert_identity_record_if_new,
    insert_identity_task,
    insert_membership_if_new,
    insert_person_if_new,
    known_identities_near,
    list_identity_tasks,
    repoint_person,
    restore_person,
)
from triage.store.tables import utcnow

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
BORN = date(2015, 3, 1)


def _child(session: Session, child_id: str, household_id: str, given: str) -> None:
    add_household(
        session, household={"household_id": household_id, "deprivation_decile": 3,
                            "synthetic": True},
    )  # fmt: skip
    add_child(
        session,
        child={"child_id": child_id, "household_id": household_id, "given_name": given,
               "family_name": "Ash", "date_of_birth": BORN, "sex": "female",
               "ethnicity": "white", "disability": False, "deprivation_decile": 3,
               "synthetic": True},
    )  # fmt: skip
    insert_person_if_new(
        session,
        person={"person_id": child_id, "is_child": True, "given_name": given,
                "family_name": "Ash", "date_of_birth": BORN, "sex": "female", "synthetic": True},
    )  # fmt: skip
    insert_membership_if_new(
        session,
        membership={"membership_id": f"child:{child_id}", "person_id": child_id,
                    "household_id": household_id, "role": "child",
                    "joined_at": datetime(2015, 3, 1, tzinfo=UTC), "left_at": None,
                    "synthetic": True},
    )  # fmt: skip


def _record(record_id: str, person_id: str | None, **overrides: Any) -> dict[str, Any]:
    return {
        "record_id": record_id, "source_system": "health", "source_person_id": record_id,
        "given_name": "Ada", "family_name": "Ash", "date_of_birth": BORN, "sex": "female",
        "postcode": "LS1 4AP", "nhs_number": None, "school": None, "is_child": True,
        "first_seen_at": T0, "person_id": person_id, "resolution": "loaded",
        "match_probability": None, "created_at": utcnow(),
    } | overrides  # fmt: skip


def _referral(referral_id: str, child_id: str, household_id: str) -> dict[str, Any]:
    return {
        "referral_id": referral_id, "source_system": "mash", "source_referral_id": referral_id,
        "child_id": child_id, "household_id": household_id, "received_at": T0,
        "referrer_type": "school", "concerns": ["neglect"], "injury_reported": False,
        "injury_sites": [], "injury_photographed": False, "narrative": "", "synthetic": True,
    }  # fmt: skip


@pytest.fixture
def two_children(session: Session) -> Session:
    """C1 known in H1 with a record; C9 made at intake in its own household H9, with a
    referral, an event and a record of its own."""
    _child(session, "C1", "H1", "Ada")
    _child(session, "C9", "H9", "Adah")
    insert_identity_record_if_new(session, record=_record("IDR-1", "C1"))
    insert_identity_record_if_new(session, record=_record("IDR-9", "C9", given_name="Adah"))
    add_referral(session, referral=_referral("R1", "C1", "H1"))
    add_referral(session, referral=_referral("R9", "C9", "H9"))
    add_event(
        session,
        event={"event_id": "E9", "source_system": "ed", "source_event_id": "E9", "child_id": "C9",
               "household_id": None, "occurred_at": T0, "agency": "health",
               "kind": "ed_attendance", "attributes": {}, "synthetic": True},
    )  # fmt: skip
    session.commit()
    return session


def _pointers(session: Session) -> dict[str, Any]:
    session.expire_all()
    return {
        "referrals": sorted(session.execute(
            select(ReferralRow.referral_id, ReferralRow.child_id, ReferralRow.household_id)
        ).all()),
        "events": sorted(session.execute(select(EventRow.event_id, EventRow.child_id)).all()),
        "memberships": sorted(session.execute(
            select(HouseholdMembershipRow.membership_id, HouseholdMembershipRow.person_id)
        ).all()),
        "records": sorted(session.execute(
            select(IdentityRecordRow.record_id, IdentityRecordRow.person_id)
        ).all()),
    }  # fmt: skip


def test_the_blocking_read_finds_day_month_swaps_and_stored_children(session: Session) -> None:
    _child(session, "C1", "H1", "Ada")
    _child(session, "C2", "H2", "Bea")
    insert_identity_record_if_new(
        session, record=_record("IDR-1", "C1", date_of_birth=date(2015, 1, 3))
    )
    insert_identity_record_if_new(session, record=_record("IDR-X", None))  # not resolved
    session.commit()
    found = known_identities_near(
        session, date_of_birth=BORN, family_name="ash", nhs_number=None, postcode=None
    )
    ids = {row["record_id"]: row["person_id"] for row in found}
    # IDR-1 has day and month swapped; C2 has no record yet and is offered as itself.
    assert ids == {"IDR-1": "C1", "child:C2": "C2"}


def test_a_merge_moves_exactly_its_rows_and_undo_moves_them_back(two_children: Session) -> None:
    session = two_children
    before = _pointers(session)
    moved = repoint_person(session, from_person_id="C9", into_person_id="C1", into_household="H1")
    session.commit()
    after = _pointers(session)
    assert ("R9", "C1", "H1") in after["referrals"]  # its household was made for it: H1 now
    assert ("E9", "C1") in after["events"]
    assert ("IDR-9", "C1") in after["records"]
    # C9's only household stays C9's (nobody else ever lived there).
    assert ("child:C9", "C9") in after["memberships"]
    assert moved["referral_households"] == {"R9": "H9"}
    restore_person(session, moved=moved, from_person_id="C9")
    session.commit()
    assert _pointers(session) == before


def test_a_task_is_decided_once(two_children: Session) -> None:
    session = two_children
    insert_identity_task(
        session,
        task={"task_id": "T1", "record_id": "IDR-9", "referral_id": "R9",
              "candidate_person_id": "C1", "match_probability": 0.7,
              "evidence": {"fields": {"given_name": "close"}}, "status": "open",
              "decided_by": None, "decided_at": None, "note": None, "created_at": utcnow()},
    )  # fmt: skip
    session.commit()
    assert [t.task_id for t in list_identity_tasks(session)] == ["T1"]
    assert decide_identity_task(
        session, task_id="T1", status="rejected", decided_by="pat", at=utcnow(), note="twins"
    )
    assert not decide_identity_task(
        session, task_id="T1", status="confirmed", decided_by="pat", at=utcnow(), note="again"
    )
    session.commit()
    session.expire_all()
    task = get_identity_task(session, task_id="T1")
    assert task is not None and task.status == "rejected" and task.note == "twins"
    assert list_identity_tasks(session) == []
