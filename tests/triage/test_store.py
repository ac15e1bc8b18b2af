"""The store on SQLite and PostgreSQL: types and constraints, the repository, and the Core
writes of the intake and scoring paths (migrations and the engine: test_store_engine.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import delete, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from triage.store import (
    ChildNotFound,
    DuplicateEvent,
    DuplicateReferral,
    EventRow,
    QueueEntryRow,
    ReferralAlreadyDecided,
    ReferralNotFound,
    ReferralRow,
    add_audit_event,
    add_child,
    add_event,
    add_household,
    add_referral,
    add_score,
    claim_idempotency_key,
    get_idempotency_key,
    get_referral,
    get_referral_by_business_key,
    history_for_child,
    insert_audit_event,
    insert_child_if_new,
    insert_household_if_new,
    insert_queue_entry,
    insert_referral,
    insert_score,
    latest_score,
    list_open_referrals,
    make_engine,
    read_child_birth_and_household,
    read_referral_facts,
    record_decision,
    session_factory,
    store_idempotent_response,
    upsert_queue_entry,
)
from triage.store.auditlog import verify_chain
from triage.store.coltypes import NaiveDatetimeError
from triage.store.migrate import alembic_config, current_revision, upgrade

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def referral(referral_id: str, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "referral_id": referral_id,
        "source_system": "mash",
        "source_referral_id": f"src-{referral_id}",
        "child_id": "C1",
        "household_id": "H1",
        "received_at": T0,
        "referrer_type": "school",
        "concerns": ["neglect"],
        "injury_reported": False,
        "injury_sites": [],
        "injury_photographed": False,
        "narrative": "Arrives hungry.",
        "synthetic": True,
    }
    return values | overrides


def event(event_id: str, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "event_id": event_id,
        "source_system": "police",
        "source_event_id": f"src-{event_id}",
        "child_id": "C1",
        "household_id": "H1",
        "occurred_at": T0,
        "agency": "police",
        "kind": "domestic_abuse_incident",
        "attributes": {"severity": "high"},
        "synthetic": True,
    }
    return values | overrides


def child(child_id: str, household_id: str) -> dict[str, Any]:
    return {
        "child_id": child_id,
        "household_id": household_id,
        "given_name": "Ada",
        "family_name": "Ash",
        "date_of_birth": date(2015, 3, 1),
        "sex": "female",
        "ethnicity": "white",
        "disability": False,
        "deprivation_decile": 3,
        "synthetic": True,
    }


@pytest.fixture
def people(session: Session) -> Session:
    """Households H1 (children C1, C2) and H2 (child C3), committed."""
    for household_id in ("H1", "H2"):
        add_household(
            session,
            household={"household_id": household_id, "deprivation_decile": 3, "synthetic": True},
        )
    for child_id, household_id in (("C1", "H1"), ("C2", "H1"), ("C3", "H2")):
        add_child(session, child=child(child_id, household_id))
    session.commit()
    return session


# --- types and constraints -----------------------------------------------------------------


@pytest.mark.parametrize("offset_hours", [2, -5, 0])
def test_timestamps_round_trip_as_aware_utc(people: Session, offset_hours: int) -> None:
    local = datetime(2024, 6, 1, 12, 30, 15, 123456, tzinfo=timezone(timedelta(hours=offset_hours)))
    add_referral(people, referral=referral("R1", received_at=local))
    people.commit()
    people.expunge_all()
    if people.bind.dialect.name == "postgresql":  # type: ignore[union-attr]
        # timestamptz comes back in the session's zone: it must still read as UTC.
        people.execute(text("SET LOCAL TIME ZONE 'America/New_York'"))
    stored = get_referral(people, referral_id="R1")
    assert stored is not None
    assert stored.received_at == local
    assert stored.received_at.utcoffset() == timedelta(0)
    assert stored.received_at.tzinfo == UTC
    assert stored.received_at.hour == 12 - offset_hours
    assert stored.created_at.tzinfo == UTC


def test_naive_datetime_refused(people: Session) -> None:
    with pytest.raises(StatementError) as caught:
        add_referral(people, referral=referral("R1", received_at=datetime(2024, 6, 1, 12)))
    assert isinstance(caught.value.orig, NaiveDatetimeError)


def test_json_lists_round_trip(people: Session) -> None:
    add_referral(
        people,
        referral=referral("R1", concerns=["neglect", "domestic_abuse"], injury_sites=["limbs"]),
    )
    people.commit()
    people.expunge_all()
    stored = get_referral(people, referral_id="R1")
    assert stored is not None
    assert (stored.concerns, stored.injury_sites, stored.status) == (
        ["neglect", "domestic_abuse"],
        ["limbs"],
        "open",
    )


def test_foreign_keys_enforced(people: Session) -> None:
    with pytest.raises(IntegrityError):
        add_referral(people, referral=referral("R1", child_id="NOBODY"))


@pytest.mark.parametrize("statement", ["decile", "status"])
def test_check_constraints_enforced(people: Session, statement: str) -> None:
    with pytest.raises(IntegrityError):
        if statement == "decile":
            add_household(
                people,
                household={"household_id": "H9", "deprivation_decile": 11, "synthetic": True},
            )
        else:
            add_referral(people, referral=referral("R1", status="closed"))


# --- repository ----------------------------------------------------------------------------


def test_duplicate_referral_business_key_refused(people: Session) -> None:
    add_referral(people, referral=referral("R1"))
    people.commit()
    with pytest.raises(DuplicateReferral) as caught:
        add_referral(people, referral=referral("R-other", source_referral_id="src-R1"))
    assert caught.value.referral_id == "R1"
    assert "R1" in str(caught.value)
    # The caller's transaction is still usable after the refusal.
    add_referral(people, referral=referral("R2"))
    people.commit()
    by_key = get_referral_by_business_key(people, source_system="mash", source_referral_id="src-R2")
    assert by_key is not None and by_key.referral_id == "R2"


def test_duplicate_referral_id_refused(people: Session) -> None:
    add_referral(people, referral=referral("R1"))
    with pytest.raises(DuplicateReferral) as caught:
        add_referral(people, referral=referral("R1", source_referral_id="different"))
    assert caught.value.referral_id == "R1"


def test_duplicate_event_refused(people: Session) -> None:
    add_event(people, event=event("E1"))
    people.commit()
    with pytest.raises(DuplicateEvent) as caught:
        add_event(people, event=event("E-other", source_event_id="src-E1"))
    assert caught.value.event_id == "E1"


def test_record_decision_closes_and_refuses_a_second(people: Session) -> None:
    add_referral(people, referral=referral("R1"))
    add_referral(people, referral=referral("R2", received_at=T0 + timedelta(hours=1)))
    people.commit()
    decision = record_decision(
        people,
        referral_id="R1",
        decision="early_help",
        decided_at=T0 + timedelta(hours=3),
        reason_codes=["neglect_pattern"],
        decided_by="sw-7",
    )
    people.commit()
    assert decision.id is not None
    assert get_referral(people, referral_id="R1").status == "decided"  # type: ignore[union-attr]
    assert [r.referral_id for r in list_open_referrals(people, limit=10)] == ["R2"]
    with pytest.raises(ReferralAlreadyDecided):
        record_decision(people, referral_id="R1", decision="assessment", decided_at=T0)
    with pytest.raises(ReferralNotFound):
        record_decision(people, referral_id="R404", decision="assessment", decided_at=T0)
    with pytest.raises(ValueError, match="not_a_decision"):
        record_decision(people, referral_id="R2", decision="not_a_decision", decided_at=T0)


def test_list_open_referrals_oldest_first_and_limited(people: Session) -> None:
    for number in range(5):
        add_referral(
            people, referral=referral(f"R{number}", received_at=T0 - timedelta(days=number))
        )
    people.commit()
    assert [r.referral_id for r in list_open_referrals(people, limit=3)] == ["R4", "R3", "R2"]
    after = list_open_referrals(people, limit=10, received_after=T0 - timedelta(days=2))
    assert [r.referral_id for r in after] == ["R1", "R0"]


def test_history_for_child_includes_household_and_respects_before(people: Session) -> None:
    add_referral(people, referral=referral("R-own", received_at=T0))
    add_referral(
        people, referral=referral("R-sibling", child_id="C2", received_at=T0 + timedelta(days=1))
    )
    add_referral(people, referral=referral("R-other", child_id="C3", household_id="H2"))
    add_event(people, event=event("E-own", occurred_at=T0 - timedelta(days=3)))
    add_event(people, event=event("E-home", child_id=None, occurred_at=T0 - timedelta(days=2)))
    add_event(people, event=event("E-other", child_id="C3", household_id="H2"))
    add_event(people, event=event("E-late", child_id=None, occurred_at=T0 + timedelta(days=5)))
    people.commit()

    history = history_for_child(people, child_id="C1")
    ids = [getattr(item.row, f"{item.kind}_id") for item in history]
    assert ids == ["E-own", "E-home", "R-own", "R-sibling", "E-late"]
    assert [item.at for item in history] == sorted(item.at for item in history)

    before = history_for_child(people, child_id="C1", before=T0 + timedelta(days=1))
    assert [getattr(i.row, f"{i.kind}_id") for i in before] == ["E-own", "E-home", "R-own"]
    latest_two = history_for_child(people, child_id="C1", limit=2)
    assert [getattr(i.row, f"{i.kind}_id") for i in latest_two] == ["R-sibling", "E-late"]
    assert isinstance(history[0].row, EventRow) and isinstance(history[2].row, ReferralRow)
    with pytest.raises(ChildNotFound):
        history_for_child(people, child_id="NOBODY")


def test_scores_latest_wins(people: Session) -> None:
    add_referral(people, referral=referral("R1"))
    assert latest_score(people, referral_id="R1") is None
    for hours, probability in ((1, 0.2), (3, 0.4), (2, 0.9)):
        add_score(
            people,
            referral_id="R1",
            scored_at=T0 + timedelta(hours=hours),
            model_version="m1",
            probability=probability,
            probability_low=probability - 0.1,
            probability_high=probability + 0.05,
            band="medium",
            flags=["injury"],
            reasons=[{"feature": "prior_referrals", "contribution": 0.12}],
        )
    people.commit()
    latest = latest_score(people, referral_id="R1")
    assert latest is not None
    assert (latest.probability, latest.scored_at) == (0.4, T0 + timedelta(hours=3))
    assert latest.reasons == [{"feature": "prior_referrals", "contribution": 0.12}]


def test_audit_events_append(session: Session) -> None:
    first = add_audit_event(
        session, actor="sw-7", action="view", entity_type="referral", entity_id="R1", payload={}
    )
    second = add_audit_event(
        session,
        actor="system",
        action="score",
        entity_type="referral",
        entity_id="R1",
        model_version="m1",
        payload={"probability": 0.4},
    )
    session.commit()
    assert second.id > first.id
    assert second.occurred_at.tzinfo == UTC
    assert second.payload == {"probability": 0.4}
    # Chained: see tests/triage/test_auditlog.py for verification and tampering.
    assert first.prev_hash == "0" * 64
    assert second.prev_hash == first.hash
    assert second.hash is not None and len(second.hash) == 64


def test_committed_row_survives_a_new_engine(migrated_url: str) -> None:
    engine = make_engine(migrated_url)
    with session_factory(engine)() as session:
        add_household(
            session, household={"household_id": "H1", "deprivation_decile": None, "synthetic": True}
        )
        add_child(session, child=child("C1", "H1"))
        add_referral(session, referral=referral("R1"))
        session.commit()
    engine.dispose()

    reopened = make_engine(migrated_url)
    try:
        with session_factory(reopened)() as session:
            stored = session.scalars(select(ReferralRow)).one()
            assert (stored.referral_id, stored.received_at) == ("R1", T0)
            assert session.execute(text("SELECT count(*) FROM children")).scalar() == 1
    finally:
        reopened.dispose()


def test_downgrade_to_the_first_revision_and_back(migrated_url: str) -> None:
    from triage.store.migrate import downgrade

    downgrade(migrated_url, "0001")
    assert current_revision(migrated_url) == "0001"
    upgrade(migrated_url)
    head = ScriptDirectory.from_config(alembic_config(migrated_url)).get_current_head()
    assert current_revision(migrated_url) == head


# --- Core writes of the intake and scoring paths --------------------------------------------


def test_conflict_free_inserts_say_whether_the_row_went_in(people: Session) -> None:
    household = {"household_id": "H9", "deprivation_decile": None, "synthetic": False}
    assert insert_household_if_new(people, household=household)
    assert not insert_household_if_new(people, household=household | {"household_id": "H1"})
    assert insert_child_if_new(people, child=child("C9", "H9"))
    assert not insert_child_if_new(people, child=child("C1", "H9") | {"date_of_birth": T0.date()})
    people.commit()
    assert read_child_birth_and_household(people, child_id="C1", household_id="H9") == (
        date(2015, 3, 1),
        True,
    )
    assert read_child_birth_and_household(people, child_id="C0", household_id="H0") == (None, False)
    assert people.execute(text("SELECT household_id FROM children WHERE child_id = 'C1'")).scalar()
    assert people.execute(text("SELECT count(*) FROM children")).scalar() == 4


def test_insert_referral_refuses_a_duplicate_and_the_transaction_goes_on(people: Session) -> None:
    insert_referral(people, referral=referral("R1"))
    with pytest.raises(DuplicateReferral) as by_key:
        insert_referral(people, referral=referral("R2", source_referral_id="src-R1"))
    assert by_key.value.referral_id == "R1"
    with pytest.raises(DuplicateReferral) as by_id:
        insert_referral(people, referral=referral("R1", source_referral_id="another"))
    assert (by_id.value.referral_id, by_id.value.source_referral_id) == ("R1", "src-R1")
    insert_referral(people, referral=referral("R3"))
    people.commit()
    assert sorted(people.scalars(select(ReferralRow.referral_id))) == ["R1", "R3"]
    facts = read_referral_facts(people, referral_id="R1")
    assert facts is not None
    assert (facts.status, facts.received_at, facts.concerns) == ("open", T0, ["neglect"])
    assert facts.date_of_birth == date(2015, 3, 1)
    assert read_referral_facts(people, referral_id="R-none") is None


def test_core_and_orm_audit_events_form_one_chain(session: Session) -> None:
    first = add_audit_event(session, actor="a", action="x", entity_type="t", payload={})
    second = insert_audit_event(
        session, actor="b", action="y", entity_type="t", payload={"n": 1.5, "k": ["v"]}
    )
    third = add_audit_event(session, actor="c", action="z", entity_type="t", payload={})
    session.commit()
    assert third.prev_hash == second and first.hash != second
    report = verify_chain(session)
    assert report.ok and report.events == 3 and report.head == third.hash


def test_scores_and_queue_entries_without_the_orm(people: Session) -> None:
    insert_referral(people, referral=referral("R1"))
    values = {
        "referral_id": "R1",
        "scored_at": T0,
        "model_version": "m/1",
        "probability": 0.3,
        "probability_low": 0.2,
        "probability_high": 0.4,
        "band": "Elevated",
        "flags": [],
        "reasons": [{"signal": "s", "contribution": 0.1}],
    }
    score_id = insert_score(people, score=values)
    latest = latest_score(people, referral_id="R1")
    assert latest is not None and (latest.id, latest.band) == (score_id, "Elevated")
    entry = {
        "referral_id": "R1",
        "child_id": "C1",
        "received_at": T0,
        "age_months": 108,
        "concerns": ["neglect"],
        "concerns_key": ";neglect;",
        "flags": [],
        "tier": 5,
        "sort_probability": 0.0,
        "band": None,
        "model_band": None,
        "probability": None,
        "probability_low": None,
        "probability_high": None,
        "model_version": None,
        "score_id": None,
        "reasons": [],
    }
    insert_queue_entry(people, entry=entry)
    upsert_queue_entry(people, entry=entry | {"band": "Elevated", "score_id": score_id})
    people.commit()
    stored = people.scalars(select(QueueEntryRow)).one()
    assert (stored.band, stored.score_id, stored.concerns) == ("Elevated", score_id, ["neglect"])
    people.execute(delete(QueueEntryRow))
    upsert_queue_entry(people, entry=entry)  # no entry: inserted
    assert people.scalars(select(QueueEntryRow.referral_id)).all() == ["R1"]


def test_an_idempotency_key_is_claimed_once(session: Session) -> None:
    claim = dict(actor="k1", scope="referrals", key="retry-1")
    first = claim_idempotency_key(session, **claim, request_hash="h1", entity_id="R1")
    again = claim_idempotency_key(session, **claim, request_hash="h2", entity_id="R2")
    assert (again.request_hash, again.entity_id) == ("h1", "R1")
    store_idempotent_response(session, row=first, status_code=201, response={"id": "R1"})
    session.commit()
    stored = get_idempotency_key(session, **claim)
    assert stored is not None and (stored.status_code, stored.response) == (201, {"id": "R1"})
