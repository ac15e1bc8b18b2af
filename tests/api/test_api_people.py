"""People through the API (issue 20, items 2 and 5): events about a person, adults joining and
leaving households, the members a referral lists, and the household section of the referral
detail; on SQLite and PostgreSQL."""

# ruff: noqa: F811  (the fixtures of tests/api_support.py are imported, then requested by name)

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from access_helpers import key_headers, user_headers
from api_support import (  # noqa: F401  (fixtures)
    T0,
    admin,
    client,
    count,
    make_client,
    referral,
    scorer,
)
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from service import casework
from service.household import PANEL_ROLES, may_see_household
from triage.schema import MAX_KNOWN_MEMBERS
from triage.settings import Settings
from triage.store import (
    AuditEventRow,
    ChildRow,
    EventRow,
    HouseholdMembershipRow,
    PersonRow,
    ReferralRow,
    ScoreRow,
    add_child,
    add_event,
    add_household,
    add_referral,
    close_membership,
    events_about_persons,
    insert_membership_if_new,
    insert_person_if_new,
    make_engine,
    persons_behind_records,
    session_factory,
)

_serial = itertools.count()
HOUSEHOLD = "H-311"
CARE = "council-care"


@pytest.fixture
def settings(migrated_url: str, tmp_path: Path) -> Settings:
    """Settings on a fresh, migrated database: SQLite, then PostgreSQL."""
    return Settings(
        var_dir=tmp_path, database_url=migrated_url, mlflow_tracking_uri=f"sqlite:///{tmp_path}/m"
    )


@pytest.fixture
def db(settings: Settings) -> Iterator[Engine]:
    """An engine for checking what the service stored."""
    engine = make_engine(settings.database_url)
    yield engine
    engine.dispose()


def at(days_before: float) -> str:
    return (T0 - timedelta(days=days_before)).isoformat()


def joined(
    person_id: str = "P-1",
    *,
    days_before: float = 30,
    role: Any = "parent_partner",
    household_id: str | None = HOUSEHOLD,
    details: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An adult_joined_household event (with the person's details unless ``details={}``)."""
    body: dict[str, Any] = {
        "source_system": CARE,
        "source_event_id": f"J-{next(_serial)}",
        "agency": "social_care",
        "kind": "adult_joined_household",
        "occurred_at": at(days_before),
        "person_id": person_id,
        "attributes": {"role": role},
    }
    if household_id is not None:
        body["household_id"] = household_id
    person = {"given_name": "Dean", "family_name": "Smith", "sex": "male"}
    if details != {}:
        body["person"] = details or person
    return body | extra


def left(person_id: str = "P-1", *, days_before: float = 10, **extra: Any) -> dict[str, Any]:
    """An adult_left_household event."""
    return {
        "source_system": CARE,
        "source_event_id": f"L-{next(_serial)}",
        "agency": "social_care",
        "kind": "adult_left_household",
        "occurred_at": at(days_before),
        "household_id": HOUSEHOLD,
        "person_id": person_id,
        "attributes": {"role": "parent_partner"},
    } | extra


def about(
    person_id: str | None = "P-1",
    kind: str = "domestic_abuse_perpetrator",
    agency: str = "police",
    *,
    days_before: float = 200,
    household_id: str = "H-elsewhere",
    source_system: str = "police-niche",
) -> dict[str, Any]:
    """A police (or other) event about a person."""
    body = {
        "source_system": source_system,
        "source_event_id": f"P-{next(_serial)}",
        "agency": agency,
        "kind": kind,
        "occurred_at": at(days_before),
        "recorded_at": at(days_before),  # shared at once
        "household_id": household_id,
    }
    return body | ({"person_id": person_id} if person_id is not None else {})


def memberships(db: Engine, person_id: str) -> list[HouseholdMembershipRow]:
    with session_factory(db)() as session:
        query = select(HouseholdMembershipRow).where(HouseholdMembershipRow.person_id == person_id)
        return list(session.scalars(query.order_by(HouseholdMembershipRow.joined_at)))


def audit_payloads(db: Engine, action: str) -> list[dict[str, Any]]:
    with db.connect() as connection:
        query = select(AuditEventRow.payload).where(AuditEventRow.action == action)
        return list(connection.scalars(query.order_by(AuditEventRow.id)))


def errors_of(response: Any) -> list[tuple[str, str]]:
    return [(e["field"], e["reason"]) for e in response.json()["errors"]]


# --- refusals: each names its field and why ---------------------------------------------------


REFUSALS = [
    (joined(person_id=None), "person_id", "person_id is required"),  # type: ignore[arg-type]
    (joined(household_id=None, child_id="C-1042"), "household_id", "household_id is required"),
    (joined(role=None), "attributes.role", "attributes.role is required"),
    (joined(role="child"), "attributes.role", "an adult's role"),
    (joined(role=3), "attributes.role", "an adult's role"),
    (left(attributes={}), "attributes.role", "attributes.role is required"),
    (about(kind="domestic_abuse_incident"), "person_id", "not about an adult"),
    (about(kind="marac_case", person_id=None), "person_id", "person_id is required"),
    (about() | {"person": {"given_name": "A", "family_name": "B"}}, "person",
     "only with adult_joined_household"),
    (joined(details={"given_name": "A", "family_name": "B", "date_of_birth": "2999-01-01"}),
     "person.date_of_birth", "future"),
]  # fmt: skip
REFUSAL_IDS = [
    "no-person", "no-household", "no-role", "child-role", "number-role", "left-no-role",
    "person-on-household-kind", "marac-without-person", "details-on-police-event",
    "details-born-later",
]  # fmt: skip


@pytest.mark.parametrize(("event", "field", "reason"), REFUSALS, ids=REFUSAL_IDS)
def test_an_event_that_misuses_a_person_gets_422_naming_the_field(
    client: TestClient, db: Engine, event: dict[str, Any], field: str, reason: str
) -> None:
    batch = [about(kind="missing_episode", person_id=None), event]
    for body, where in ((event, field), (batch, f"1.{field}")):
        refused = client.post("/v1/events", json=body)
        assert refused.status_code == 422, refused.text
        got = errors_of(refused)
        assert [f for f, _ in got] == [where], got
        assert reason in got[0][1]
    assert count(db, EventRow) == 0 and count(db, PersonRow) == 0


def test_unknown_and_child_persons_get_422_and_store_nothing(
    client: TestClient, db: Engine
) -> None:
    assert client.post("/v1/referrals", json=referral()).status_code == 201
    stranger = client.post("/v1/events", json=about("P-nobody"))
    assert stranger.status_code == 422
    assert errors_of(stranger) == [
        (
            "person_id",
            "no person with this id is known: send adult_joined_household with the person's "
            "details first",
        )
    ]
    no_details = client.post("/v1/events", json=[about(kind="missing_episode", person_id=None),
                                                 joined("P-new", details={})])  # fmt: skip
    assert no_details.status_code == 422
    assert errors_of(no_details)[0][0] == "1.person_id"
    assert "send the person's details in `person`" in errors_of(no_details)[0][1]
    child = client.post("/v1/events", json=about("C-1042"))
    assert child.status_code == 422
    assert errors_of(child)[0][0] == "person_id" and "a child's" in errors_of(child)[0][1]
    assert count(db, EventRow) == 0
    assert count(db, PersonRow) == 1, "only the referral's child is a person"


# --- memberships open and close --------------------------------------------------------------


def test_joining_adds_the_person_and_opens_a_membership_leaving_closes_it(
    client: TestClient, db: Engine
) -> None:
    first = joined(days_before=60)
    stored = client.post("/v1/events", json=first)
    assert stored.status_code == 201, stored.text
    with session_factory(db)() as session:
        person = session.get(PersonRow, "P-1")
        assert person is not None and not person.is_child
        assert (person.given_name, person.family_name, person.sex) == ("Dean", "Smith", "male")
        event = session.get(EventRow, stored.json()["items"][0]["event_id"])
        assert event is not None and event.person_id == "P-1"
    [open_one] = memberships(db, "P-1")
    assert (open_one.household_id, open_one.role, open_one.left_at) == (
        HOUSEHOLD,
        "parent_partner",
        None,
    )
    assert open_one.joined_at == T0 - timedelta(days=60)

    again = client.post("/v1/events", json=first)  # a resend is a duplicate, not a second stay
    assert again.status_code == 200 and again.json()["duplicates"] == 1
    twice = client.post("/v1/events", json=joined(days_before=50))
    assert twice.status_code == 422
    assert errors_of(twice)[0][0] == "person_id"
    assert f"already lives in household {HOUSEHOLD}" in errors_of(twice)[0][1]
    assert len(memberships(db, "P-1")) == 1

    too_early = client.post("/v1/events", json=left(days_before=61))
    assert too_early.status_code == 422 and errors_of(too_early)[0][0] == "occurred_at"
    leaving = left(days_before=20)
    closed = client.post("/v1/events", json=leaving)
    assert closed.status_code == 201, closed.text
    [stay] = memberships(db, "P-1")
    assert stay.left_at == T0 - timedelta(days=20)
    resent = client.post("/v1/events", json=leaving)
    assert resent.status_code == 200 and resent.json()["duplicates"] == 1
    no_stay = client.post("/v1/events", json=left(days_before=5))
    assert no_stay.status_code == 422
    assert errors_of(no_stay)[0][0] == "person_id"
    assert "no open membership of household" in errors_of(no_stay)[0][1]

    back = client.post("/v1/events", json=joined(days_before=3, details={}))  # known now
    assert back.status_code == 201, back.text
    stays = memberships(db, "P-1")
    assert [(m.joined_at, m.left_at is None) for m in stays] == [
        (T0 - timedelta(days=60), False),
        (T0 - timedelta(days=3), True),
    ]
    received = audit_payloads(db, "events.received")
    assert received[0]["persons_added"] == ["P-1"]
    assert received[0]["memberships_opened"] == [stays[0].membership_id]
    assert received[1]["memberships_closed"] == [stays[0].membership_id]
    assert "Dean" not in str(received), "ids in the audit log, never names"


def test_a_batch_applies_memberships_in_the_order_they_occurred(
    client: TestClient, db: Engine
) -> None:
    # Listed out of order: the person event names the adult the joined event adds, and the
    # leaving comes before the joining in the list but after it in time.
    batch = [about("P-7"), left("P-7", days_before=5), joined("P-7", days_before=40)]
    stored = client.post("/v1/events", json=batch)
    assert stored.status_code == 201, stored.text
    assert stored.json()["created"] == 3
    [stay] = memberships(db, "P-7")
    assert stay.joined_at == T0 - timedelta(days=40)
    assert stay.left_at == T0 - timedelta(days=5)


def test_a_known_person_is_kept_as_stored_and_the_difference_audited(
    client: TestClient, db: Engine
) -> None:
    assert client.post("/v1/events", json=joined(days_before=60)).status_code == 201
    client.post("/v1/events", json=left(days_before=30))
    other = joined(days_before=10, details={"given_name": "  dean ", "family_name": "Jones"})
    assert client.post("/v1/events", json=other).status_code == 201
    with session_factory(db)() as session:
        assert session.get(PersonRow, "P-1").family_name == "Smith"  # type: ignore[union-attr]
    differ = audit_payloads(db, "events.received")[-1]["person_details_differ"]
    assert differ == [{"person_id": "P-1", "fields": ["family_name"]}]
    assert "Jones" not in str(differ)


def test_an_idempotency_key_replays_membership_events_once(client: TestClient, db: Engine) -> None:
    body = [joined(days_before=30), about()]
    headers = {"Idempotency-Key": "people-1"}
    first = client.post("/v1/events", json=body, headers=headers)
    replay = client.post("/v1/events", json=body, headers=headers)
    assert first.status_code == replay.status_code == 201
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.json() == first.json()
    assert len(memberships(db, "P-1")) == 1 and count(db, EventRow) == 2
    other = copy.deepcopy(body)
    other[0]["attributes"]["role"] = "step_parent"
    reused = client.post("/v1/events", json=other, headers=headers)
    assert reused.status_code == 422
    assert errors_of(reused)[0][0] == "header.Idempotency-Key"


# --- rescoring -------------------------------------------------------------------------------


def test_an_adult_s_records_rescore_the_households_they_live_in(
    client: TestClient, db: Engine
) -> None:
    referral_id = client.post("/v1/referrals", json=referral()).json()["referral_id"]
    moved = client.post("/v1/events", json=joined(days_before=30))
    assert moved.json()["rescored"] == [referral_id], "a membership change moves the household"
    # Recorded elsewhere, before the adult joined: it still counts where the adult lives now.
    record = client.post("/v1/events", json=about(household_id="H-elsewhere", days_before=300))
    assert record.status_code == 201, record.text
    assert record.json()["rescored"] == [referral_id]
    assert count(db, ScoreRow, ScoreRow.referral_id == referral_id) == 3
    later = client.post("/v1/events", json=about(days_before=-1))  # after the referral
    assert later.json()["rescored"] == []
    # Sent without recorded_at, a record is known from now on: too late for the referral.
    unshared = {k: v for k, v in about(days_before=100).items() if k != "recorded_at"}
    assert client.post("/v1/events", json=unshared).json()["rescored"] == []


# --- feed isolation --------------------------------------------------------------------------


def test_membership_events_come_only_from_keys_bound_to_social_care(
    client: TestClient, settings: Settings, db: Engine
) -> None:
    police = key_headers(settings.database_url, CARE, agencies=["police"])
    refused = client.post("/v1/events", json=joined(), headers=police)
    assert refused.status_code == 403
    assert refused.json()["errors"] == [
        {"field": "agency", "reason": "this API key does not report for agency 'social_care'"}
    ]
    assert count(db, PersonRow) == 0
    care = key_headers(settings.database_url, CARE, agencies=["social_care"])
    other_system = client.post(
        "/v1/events", json=joined() | {"source_system": "someone-else"}, headers=care
    )
    assert other_system.status_code == 403
    assert client.post("/v1/referrals", json=referral()).status_code == 201
    stored = client.post("/v1/events", json=joined(), headers=care)
    assert stored.status_code == 201, stored.text
    assert set(stored.json()) == {"created", "duplicates", "items"}, "no referral named"
    # A police feed names the adult the council added, and is told only about its own event.
    police_feed = key_headers(settings.database_url, "police-niche", agencies=["police"])
    record = client.post("/v1/events", json=about(), headers=police_feed)
    assert record.status_code == 201 and set(record.json()) == {"created", "duplicates", "items"}


# --- referrals list the members the referrer knows ------------------------------------------


MEMBERS = [
    {"given_name": "Dean", "role": "parent_partner", "person_id": "P-1"},
    {"given_name": "Kim", "family_name": "Doe", "role": "parent", "date_of_birth": "1990-01-02"},
]


def test_a_referral_s_members_are_stored_as_sent_bounded_and_compared_on_resend(
    client: TestClient, db: Engine
) -> None:
    body = referral(household_members=MEMBERS)
    first = client.post("/v1/referrals", json=body)
    assert first.status_code == 201, first.text
    referral_id = first.json()["referral_id"]
    with session_factory(db)() as session:
        stored = session.get(ReferralRow, referral_id)
        assert stored is not None
        assert stored.household_members == [
            MEMBERS[0] | {"family_name": None, "date_of_birth": None},
            MEMBERS[1] | {"person_id": None},
        ]
    assert count(db, PersonRow) == 1, "members as sent are not persons"
    assert count(db, HouseholdMembershipRow) == 1, "nor memberships"
    assert audit_payloads(db, "referral.received")[0]["household_members"] == 2

    reordered = copy.deepcopy(body)
    reordered["household_members"].reverse()
    assert client.post("/v1/referrals", json=reordered).status_code == 200
    changed = copy.deepcopy(body)
    changed["household_members"][0]["role"] = "step_parent"
    conflict = client.post("/v1/referrals", json=changed)
    assert conflict.status_code == 409
    assert [e["field"] for e in conflict.json()["errors"]] == ["household_members"]

    too_many = referral(household_members=[MEMBERS[1]] * (MAX_KNOWN_MEMBERS + 1))
    refused = client.post("/v1/referrals", json=too_many)
    assert refused.status_code == 422
    assert [e["field"] for e in refused.json()["errors"]] == ["household_members"]
    bad = referral(household_members=[{"given_name": "X", "role": "lodger"}, {"role": "parent"}])
    refused = client.post("/v1/referrals", json=bad)
    assert refused.status_code == 422
    assert {e["field"] for e in refused.json()["errors"]} == {
        "household_members.0.role",
        "household_members.1.given_name",
    }
    assert count(db, ReferralRow) == 1


def test_a_new_child_becomes_a_person_living_in_its_household_since_birth(
    client: TestClient, db: Engine
) -> None:
    for _ in range(2):
        assert client.post("/v1/referrals", json=referral()).status_code in (200, 201)
    with session_factory(db)() as session:
        person = session.get(PersonRow, "C-1042")
        assert person is not None and person.is_child
        assert (person.given_name, person.date_of_birth) == ("Sam", date(2014, 6, 1))
    [stay] = memberships(db, "C-1042")
    assert (stay.membership_id, stay.household_id, stay.role) == (
        "child:C-1042",
        HOUSEHOLD,
        "child",
    )
    assert stay.joined_at == datetime(2014, 6, 1, tzinfo=UTC) and stay.left_at is None


# --- the household section of the referral detail -------------------------------------------


def _household_with_history(client: TestClient) -> str:
    """A referral whose household has a current adult with records, an adult who left, and
    the members the referrer listed; returns its id."""
    referral_id = client.post("/v1/referrals", json=referral(household_members=MEMBERS)).json()[
        "referral_id"
    ]
    batch = [
        joined("P-1", days_before=30),
        about("P-1", days_before=400),
        about("P-1", "probation_supervision", days_before=100),
        joined(
            "P-2",
            days_before=900,
            role="parent",
            details={"given_name": "Lee", "family_name": "Doe"},
        ),
        left("P-2", days_before=200),
    ]
    assert client.post("/v1/events", json=batch).status_code == 201
    return referral_id


def test_the_referral_detail_shows_who_lives_here(client: TestClient, db: Engine) -> None:
    referral_id = _household_with_history(client)
    detail = client.get(f"/v1/referrals/{referral_id}")
    assert detail.status_code == 200
    household = detail.json()["household"]
    assert household["household_id"] == HOUSEHOLD
    members = {m["person_id"]: m for m in household["members"]}
    assert [m["person_id"] for m in household["members"]] == ["P-1", "C-1042", "P-2"]
    dean, lee, child = members["P-1"], members["P-2"], members["C-1042"]
    assert dean["lives_here_now"] and not lee["lives_here_now"] and child["lives_here_now"]
    assert [m["role"] for m in dean["memberships"]] == ["parent_partner"]
    assert lee["memberships"][0]["left_at"] == at(200).replace("+00:00", "Z")
    assert [r["event_kind"] for r in dean["records"]] == [
        "domestic_abuse_perpetrator",
        "probation_supervision",
    ]
    assert dean["records"][0]["agency"] == "police" and dean["records_omitted"] == 0
    assert child["records"] == [] and lee["records"] == []
    known = household["known_to_referrer"]
    assert [(k["given_name"], k["matches_member"]) for k in known] == [
        ("Dean", True),
        ("Kim", False),
    ]
    viewed = audit_payloads(db, "referral.viewed")[-1]
    assert viewed["household_panel"] is True and viewed["household_persons"] == 3
    assert viewed["person_records"] == 2
    shown = audit_payloads(db, "household.person_records_viewed")[-1]
    assert shown["referral_id"] == referral_id and shown["channel"] == "api"
    assert set(shown["record_ids"]) == {r["record_id"] for r in dean["records"]}
    assert "Dean" not in str(viewed) + str(shown)


@pytest.mark.parametrize("role", ["researcher", "referrer"])
def test_roles_that_may_not_read_the_referral_get_403_and_no_household(
    client: TestClient, settings: Settings, db: Engine, role: str
) -> None:
    referral_id = _household_with_history(client)
    before = len(audit_payloads(db, "household.person_records_viewed"))
    headers = (
        key_headers(settings.database_url, "police-mash-feed")
        if role == "referrer"
        else user_headers(settings, role)
    )
    refused = client.get(f"/v1/referrals/{referral_id}", headers=headers)
    assert refused.status_code == 403
    assert "Dean" not in refused.text
    assert len(audit_payloads(db, "household.person_records_viewed")) == before


def test_the_service_shows_the_panel_only_to_casework_roles(client: TestClient, db: Engine) -> None:
    referral_id = _household_with_history(client)
    assert {"practitioner", "manager", "admin"} == PANEL_ROLES
    with session_factory(db)() as session:
        for roles, shown in (
            ((), False),
            (("researcher",), False),
            (("referrer",), False),
            (("practitioner",), True),
            (("researcher", "manager"), True),
        ):
            assert may_see_household(roles) is shown
            detail = casework.referral_detail(
                session, referral_id=referral_id, model=None, roles=roles
            )
            assert (detail["household"] is not None) is shown


# --- the store's reads and writes of people --------------------------------------------------


def _stored_adult(session: Session, *, records: int) -> list[str]:
    """Household H1 with child C1, adult A1 living there, and ``records`` events about A1."""
    add_household(session, household={"household_id": "H1", "synthetic": True})
    add_child(
        session,
        child={
            "child_id": "C1", "household_id": "H1", "given_name": "Ada", "family_name": "Ash",
            "date_of_birth": date(2019, 1, 1), "sex": "female", "ethnicity": "white",
            "disability": False, "synthetic": True,
        },
    )  # fmt: skip
    assert insert_person_if_new(
        session,
        person={"person_id": "C1", "is_child": True, "given_name": "Ada", "family_name": "Ash",
                "date_of_birth": date(2019, 1, 1), "sex": "female", "synthetic": True},
    )  # fmt: skip
    assert insert_membership_if_new(
        session,
        membership={"membership_id": "child:C1", "person_id": "C1", "household_id": "H1",
                    "role": "child", "joined_at": datetime(2019, 1, 1, tzinfo=UTC),
                    "left_at": None, "synthetic": True},
    )  # fmt: skip
    assert insert_person_if_new(
        session,
        person={"person_id": "A1", "is_child": False, "given_name": None, "family_name": None,
                "date_of_birth": None, "sex": "unknown", "synthetic": True},
    )  # fmt: skip
    assert insert_membership_if_new(
        session,
        membership={"membership_id": "M1", "person_id": "A1", "household_id": "H1",
                    "role": "unrelated_adult", "joined_at": T0 - timedelta(days=50),
                    "left_at": None, "synthetic": True},
    )  # fmt: skip
    ids = []
    for n in range(records):
        row = add_event(
            session,
            event={"event_id": f"EA{n:02d}", "source_system": "p", "source_event_id": f"p{n}",
                   "child_id": None, "household_id": "H1", "person_id": "A1",
                   "occurred_at": T0 - timedelta(days=100 - n), "agency": "police",
                   "kind": "adult_violence_offence", "attributes": {}, "synthetic": True},
        )  # fmt: skip
        ids.append(row.event_id)
    add_referral(
        session,
        referral={
            "referral_id": "R1", "source_system": "s", "source_referral_id": "r1",
            "child_id": "C1", "household_id": "H1", "received_at": T0, "referrer_type": "police",
            "concerns": ["neglect"], "injury_reported": False, "injury_sites": [],
            "injury_photographed": False, "narrative": "", "synthetic": True,
        },
    )  # fmt: skip
    return ids


def test_the_store_reads_an_adult_s_latest_records_and_whose_records_are_whose(
    session: Session,
) -> None:
    ids = _stored_adult(session, records=5)
    rows, totals = events_about_persons(
        session, person_ids=["A1"], kinds=["adult_violence_offence"], limit=3
    )
    assert [r.event_id for r in rows] == ids[2:], "the latest three, oldest first"
    assert totals == {"A1": 5}
    none, _ = events_about_persons(session, person_ids=["A1"], kinds=["marac_case"])
    assert none == []
    assert persons_behind_records(session, record_ids=["M1", ids[0], "R1", "nope"]) == {
        "M1": "A1",
        ids[0]: "A1",
    }
    assert close_membership(session, membership_id="M1", left_at=T0)
    assert not close_membership(session, membership_id="M1", left_at=T0), "closed already"


def test_the_panel_links_reasons_to_the_persons_behind_them(session: Session) -> None:
    """Hand-made rows: a stored score whose reasons name a membership and a person event."""
    ids = _stored_adult(session, records=1)
    # Someone who never lived in H1, behind a reason through their membership elsewhere.
    add_household(session, household={"household_id": "H0", "synthetic": True})
    insert_person_if_new(
        session,
        person={"person_id": "A0", "is_child": False, "given_name": "Bo", "family_name": None,
                "date_of_birth": None, "sex": "male", "synthetic": True},
    )  # fmt: skip
    insert_membership_if_new(
        session,
        membership={"membership_id": "M0", "person_id": "A0", "household_id": "H0",
                    "role": "parent", "joined_at": T0 - timedelta(days=900),
                    "left_at": T0 - timedelta(days=400), "synthetic": True},
    )  # fmt: skip
    session.add(_score_citing(["M1", ids[0]], ["M0"]))
    session.flush()
    detail = casework.referral_detail(
        session, referral_id="R1", model=None, roles=("practitioner",)
    )
    household = detail["household"]
    members = {m["person_id"]: m for m in household["members"]}
    assert set(members) == {"A1", "C1"}
    assert members["A1"]["signals"] == ["new_adult_joined", "adult_risk_record"]
    assert members["A1"]["memberships"][0]["signals"] == ["new_adult_joined"]
    assert members["A1"]["records"][0]["signals"] == ["adult_risk_record"]
    assert members["C1"]["signals"] == []
    [elsewhere] = household["others_behind_reasons"]
    assert elsewhere["person_id"] == "A0" and elsewhere["signals"] == ["earlier_household"]
    assert elsewhere["memberships"][0]["household_id"] == "H0"


def _adult_in(
    session: Session, person_id: str, household_id: str, days: tuple[int, int | None]
) -> None:
    """An adult with one membership, from ``days[0]`` days before T0 to ``days[1]`` (None: now)."""
    joined_days, left_days = days
    insert_person_if_new(
        session,
        person={"person_id": person_id, "is_child": False, "given_name": None,
                "family_name": None, "date_of_birth": None, "sex": "unknown", "synthetic": True},
    )  # fmt: skip
    insert_membership_if_new(
        session,
        membership={"membership_id": f"M-{person_id}", "person_id": person_id,
                    "household_id": household_id, "role": "unrelated_adult",
                    "joined_at": T0 - timedelta(days=joined_days),
                    "left_at": None if left_days is None else T0 - timedelta(days=left_days),
                    "synthetic": True},
    )  # fmt: skip


def test_people_who_left_long_ago_are_counted_not_listed_unless_behind_a_reason(
    session: Session,
) -> None:
    _stored_adult(session, records=0)
    add_household(session, household={"household_id": "H0", "synthetic": True})
    _adult_in(session, "A2", "H1", (2000, 1000))  # left ~2.7 years before: not listed
    _adult_in(session, "A3", "H1", (2000, 900))  # as long ago, but behind a reason
    _adult_in(session, "A4", "H1", (2000, 700))  # left within two years: listed
    _adult_in(session, "A0", "H0", (300, None))  # lives in another household now
    session.add(_score_citing(["M-A3"], ["M-A0"]))
    session.flush()
    household = casework.referral_detail(
        session, referral_id="R1", model=None, roles=("practitioner",)
    )["household"]
    listed = {m["person_id"]: m for m in household["members"]}
    assert set(listed) == {"A1", "C1", "A3", "A4"}
    assert household["earlier_members_not_shown"] == 1
    assert not listed["A3"]["lives_here_now"] and listed["A1"]["lives_here_now"]
    [elsewhere] = household["others_behind_reasons"]
    # A0 lives somewhere now, but not in the referral's household.
    assert elsewhere["person_id"] == "A0" and not elsewhere["lives_here_now"]


def test_showing_people_without_records_is_audited_too(client: TestClient, db: Engine) -> None:
    referral_id = client.post("/v1/referrals", json=referral()).json()["referral_id"]
    household = client.get(f"/v1/referrals/{referral_id}").json()["household"]
    assert [m["person_id"] for m in household["members"]] == ["C-1042"]
    shown = audit_payloads(db, "household.person_records_viewed")[-1]
    assert shown["referral_id"] == referral_id
    assert shown["person_ids"] == ["C-1042"] and shown["record_ids"] == []


def _score_citing(first: list[str], second: list[str]) -> ScoreRow:
    """A stored score with reasons that cite these record ids (signal names as the signal
    helper might name them: the panel reads only the ids)."""
    reasons = [
        {"signal": name, "value": 1.0, "contribution": weight, "direction": "raises priority",
         "sentence": sentence, "record_ids": records, "records_omitted": 0}
        for name, weight, sentence, records in (
            ("new_adult_joined", 0.6, "A new adult joined the household", first[:1]),
            ("adult_risk_record", 0.4, "An adult with a violence record lives here", first[1:]),
            ("earlier_household", 0.2, "The child's earlier household", second),
        )
    ]  # fmt: skip
    return ScoreRow(
        referral_id="R1",
        scored_at=T0,
        model_version="hand-made/1",
        probability=0.4,
        probability_low=0.3,
        probability_high=0.5,
        band="Elevated",
        flags=[],
        reasons=reasons,
    )


def test_a_known_child_referred_from_another_household_has_moved_there(
    client: TestClient, db: Engine
) -> None:
    assert client.post("/v1/referrals", json=referral()).status_code == 201
    later = T0 + timedelta(days=40)
    moved = referral(household_id="H-NEW", received_at=later)
    assert client.post("/v1/referrals", json=moved).status_code == 201
    old, new = memberships(db, "C-1042")
    assert (old.household_id, old.left_at) == (HOUSEHOLD, later)
    assert (new.household_id, new.role, new.joined_at, new.left_at) == (
        "H-NEW",
        "child",
        later,
        None,
    )
    # A third referral from the new household changes nothing.
    again = referral(household_id="H-NEW", received_at=later + timedelta(days=5))
    assert client.post("/v1/referrals", json=again).status_code == 201
    assert len(memberships(db, "C-1042")) == 2


def test_a_membership_behind_a_reason_can_be_disputed(client: TestClient, db: Engine) -> None:
    referral_id = _household_with_history(client)
    [stay] = [m for m in memberships(db, "P-1") if m.household_id == HOUSEHOLD]
    body = {"record_id": stay.membership_id, "reason": "he never lived here"}
    reply = client.post(f"/v1/referrals/{referral_id}/disputes", json=body)
    assert reply.status_code == 201, reply.text
    unknown = {"record_id": "MEM-nope", "reason": "x"}
    assert client.post(f"/v1/referrals/{referral_id}/disputes", json=unknown).status_code == 422


def test_a_new_child_with_an_adults_id_is_refused_and_nothing_is_stored(
    client: TestClient, db: Engine
) -> None:
    assert client.post("/v1/referrals", json=referral()).status_code == 201
    assert client.post("/v1/events", json=[joined("A-77")]).status_code == 201
    clash = client.post("/v1/referrals", json=referral(child_id="A-77"))
    assert clash.status_code == 409, clash.text
    assert clash.json()["errors"] == [
        {"field": "child.child_id", "reason": "an adult this service knows has this id"}
    ]
    [stay] = memberships(db, "A-77")
    assert stay.role == "parent_partner"
    with session_factory(db)() as session:
        assert session.get(ChildRow, "A-77") is None
