"""Retention (issue 24, item 3): each kind goes after its period, measured from its own date;
nothing linked to open work goes; a dry run changes nothing; an apply is audited and
idempotent; and the audit chain still verifies after its oldest events go."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from chain_support import anchor_new_chain
from pydantic import ValidationError
from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from cli.app import app as cli
from triage.retention import KIND_ACTION, RUN_ACTION, AuditLogTarget, RetentionRun, run_retention
from triage.settings import Settings, get_settings
from triage.store import make_engine, session_factory
from triage.store.audit import add_audit_event
from triage.store.auditlog import (
    EXPIRED_ACTION,
    checkpoint_chain,
    read_checkpoint,
    verify_chain,
)
from triage.store.decisions import reopen_referral
from triage.store.tables import (
    AuditEventRow,
    Base,
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
    PersonRow,
    ReferralRow,
    ScoreRow,
)

NOW = datetime.now(UTC)
PERIODS = {
    "referrals": 365,
    "events": 365,
    "identity_tasks": 180,
    "idempotency_keys": 30,
    "audit_log": 400,
}
GIVEN_NAME = "Retentia"  # every synthetic child here; must never reach an audit entry


def ago(days: int) -> datetime:
    """``days`` before the test's now."""
    return NOW - timedelta(days=days)


def _household(session: Session, household_id: str) -> None:
    session.add(HouseholdRow(household_id=household_id, deprivation_decile=5, synthetic=True))


def _child(session: Session, child_id: str, household_id: str, created: int = 1000) -> None:
    session.add(
        ChildRow(
            child_id=child_id, household_id=household_id, given_name=GIVEN_NAME,
            family_name="Test", date_of_birth=date(2015, 3, 4), sex="female",
            ethnicity="white_british", disability=False, deprivation_decile=5, synthetic=True,
            created_at=ago(created),
        )
    )  # fmt: skip
    session.add(
        PersonRow(
            person_id=child_id, is_child=True, given_name=GIVEN_NAME, family_name="Test",
            date_of_birth=date(2015, 3, 4), sex="female", synthetic=True,
        )
    )  # fmt: skip


def _adult(session: Session, person_id: str) -> None:
    session.add(
        PersonRow(
            person_id=person_id, is_child=False, given_name="Adulta", family_name="Test",
            date_of_birth=date(1985, 1, 1), sex="male", synthetic=True,
        )
    )  # fmt: skip


def _member(session: Session, person_id: str, household_id: str) -> None:
    session.add(
        HouseholdMembershipRow(
            membership_id=f"M-{person_id}", person_id=person_id, household_id=household_id,
            role="child" if person_id.startswith("C") else "parent", joined_at=ago(3000),
            left_at=None, synthetic=True,
        )
    )  # fmt: skip


def _referral(
    session: Session,
    referral_id: str,
    child_id: str,
    household_id: str,
    *,
    received: int,
    decided: int | None,
) -> None:
    session.add(
        ReferralRow(
            referral_id=referral_id, source_system="test", source_referral_id=referral_id,
            child_id=child_id, household_id=household_id, received_at=ago(received),
            referrer_type="school", referrer_relationship=None, referrer_id=None,
            concerns=["neglect"], injury_reported=False, injury_sites=[],
            injury_photographed=False, narrative=f"{GIVEN_NAME} was seen.",
            status="open" if decided is None else "decided", synthetic=True,
            created_at=ago(received),
        )
    )  # fmt: skip
    session.flush()
    session.add(
        ScoreRow(
            referral_id=referral_id, scored_at=ago(received), model_version="m1",
            probability=0.3, probability_low=0.2, probability_high=0.4, band="medium",
            flags=[], reasons=[{"signal": "prior_referrals"}],
        )
    )  # fmt: skip
    if decided is not None:
        session.add(
            DecisionRow(
                referral_id=referral_id, decided_at=ago(decided), decision="no_further_action",
                agreement="agree", reason_codes=[], rationale=None, decided_by="u1",
                synthetic=True,
            )
        )  # fmt: skip


def _event(
    session: Session,
    event_id: str,
    days: int,
    *,
    child: str | None = None,
    household: str | None = None,
    person: str | None = None,
) -> None:
    session.add(
        EventRow(
            event_id=event_id, source_system="police", source_event_id=event_id,
            child_id=child, household_id=household, person_id=person, occurred_at=ago(days),
            recorded_at=None, agency="police", kind="domestic_abuse_notification",
            attributes={}, synthetic=True,
        )
    )  # fmt: skip


def _task(
    session: Session, task_id: str, record_id: str, *, status: str, decided: int | None,
    referral: str | None = None,
) -> None:  # fmt: skip
    session.add(
        IdentityTaskRow(
            task_id=task_id, record_id=record_id, referral_id=referral, event_id=None,
            candidate_person_id=None, match_probability=0.9, evidence={}, status=status,
            decided_by="u1" if decided is not None else None,
            decided_at=ago(decided) if decided is not None else None, note=None,
            created_at=ago(900),
        )
    )  # fmt: skip


def _store(session: Session) -> dict[str, int]:
    """The world: which records must go (marked ``gone``) and which must stay, and why.

    Returns the ids of the audit events written, by name.
    """
    for household in ("H1", "H2", "H3", "H4"):
        _household(session, household)
    session.flush()
    _child(session, "C1", "H1")  # everything about C1 is old: C1, A1 and H1 go too
    _adult(session, "A1")
    _child(session, "C2", "H2")
    _adult(session, "A2")
    _child(session, "C3", "H3")
    _child(session, "C4", "H3")
    _child(session, "C5", "H4")
    _child(session, "C6", "H2")  # never referred: kept, H2 still has referrals
    _child(session, "C7", "H1")  # never referred: goes with H1
    session.flush()
    for person, household in (
        ("C1", "H1"), ("A1", "H1"), ("C2", "H2"), ("A2", "H2"), ("C3", "H3"), ("C4", "H3"),
        ("C5", "H4"), ("C6", "H2"), ("C7", "H1"),
    ):  # fmt: skip
        _member(session, person, household)
    session.flush()
    _referral(session, "R1", "C1", "H1", received=800, decided=700)  # gone
    _referral(session, "R2", "C2", "H2", received=800, decided=700)  # kept: C2 has R3 open
    _referral(session, "R3", "C2", "H2", received=10, decided=None)  # open
    _referral(session, "R4", "C3", "H3", received=800, decided=700)  # kept: H3 has R5 open
    _referral(session, "R5", "C4", "H3", received=5, decided=None)  # open
    _referral(session, "R6", "C5", "H4", received=1500, decided=100)  # kept: closed recently
    session.flush()
    session.add(
        OutcomeRow(
            referral_id="R1", highest_level="nfa", investigated_12m=False,
            significant_harm_12m=False, cp_category=None, synthetic=True,
        )
    )  # fmt: skip
    session.add(
        DisputeRow(
            referral_id="R1", record_id="E1", reason="another child", disputed_by="u1",
            disputed_at=ago(750), model_version="m1", before=None, after=None,
        )
    )  # fmt: skip
    session.add(
        CheckRequestRow(
            request_id="Q1", referral_id="R1", agency="health", question="Known?",
            requested_at=ago(760), requested_by="u1", due_at=ago(755), replied_at=None,
            reply_outcome=None, reply_summary=None, replied_by=None, reply_channel=None,
        )
    )  # fmt: skip
    _event(session, "E1", 900, child="C1", household="H1")  # gone
    _event(session, "E2", 900, child="C2", household="H2")  # kept: C2 has an open referral
    _event(session, "E3", 900, household="H3")  # kept: H3 has an open referral
    _event(session, "E4", 30, child="C5", household="H4")  # kept: recent
    _event(session, "E5", 900, person="A1")  # gone
    _event(session, "E6", 900, person="A2")  # kept: A2 lives in H2, which has open work
    session.add(
        IdentityRecordRow(
            record_id="IR1", source_system="health", source_person_id="p1", given_name=None,
            family_name=None, date_of_birth=None, sex="female", postcode=None,
            nhs_number=None, school=None, is_child=True, first_seen_at=ago(900),
            person_id="C5", resolution="linked", match_probability=0.99,
        )
    )  # fmt: skip
    session.flush()
    _task(session, "T1", "IR1", status="confirmed", decided=400, referral="R1")  # gone with R1
    _task(session, "T2", "IR1", status="rejected", decided=400, referral="R3")  # kept: R3 open
    _task(session, "T3", "IR1", status="open", decided=None)  # kept: open
    _task(session, "T4", "IR1", status="confirmed", decided=400)  # gone
    _task(session, "T5", "IR1", status="confirmed", decided=10)  # kept: recent
    for key, days in (("K1", 60), ("K2", 1)):
        session.add(
            IdempotencyKeyRow(
                actor="u1", scope="referrals", key=key, request_hash="0" * 64,
                entity_id=None, status_code=201, response={}, created_at=ago(days),
            )
        )  # fmt: skip
    audit: dict[str, int] = {}
    for name, days, referral in (
        ("a1", 700, "R1"),
        ("a2", 600, "R1"),
        ("a3", 500, "R2"),  # about R2, decided but kept: it and every later event stay
        ("a4", 450, "R3"),
        ("a5", 420, "R1"),
        ("a6", 10, "R1"),
    ):
        row = add_audit_event(
            session, actor="u1", action="referral.viewed", entity_type="referral",
            entity_id=referral, payload={}, occurred_at=ago(days),
        )  # fmt: skip
        audit[name] = row.id
    session.commit()
    return audit


def _ids(engine: Engine, column: Any) -> set[Any]:
    with session_factory(engine)() as session:
        return set(session.scalars(select(column)))


def _snapshot(engine: Engine) -> dict[str, int]:
    with session_factory(engine)() as session:
        return {
            name: session.scalar(select(func.count()).select_from(table)) or 0
            for name, table in Base.metadata.tables.items()
        }


@pytest.fixture
def world(migrated_url: str, tmp_path: Path) -> Iterator[tuple[Settings, Engine, dict[str, int]]]:
    """Settings with an anchored chain, an engine, and the world's audit event ids."""
    settings = Settings(var_dir=tmp_path, database_url=migrated_url)
    anchor_new_chain(settings)
    engine = make_engine(migrated_url)
    with session_factory(engine)() as session:
        audit = _store(session)
    yield settings, engine, audit
    engine.dispose()


def _run(settings: Settings, engine: Engine, *, apply: bool) -> RetentionRun:
    key = settings.get_audit_key()
    assert key is not None
    return run_retention(
        engine, PERIODS, NOW, apply=apply, actor="cli:test",
        audit_log=AuditLogTarget(settings.audit_checkpoint_path(), key),
    )  # fmt: skip


def _records(run: RetentionRun) -> dict[str, int]:
    return {kind.kind: kind.records for kind in run.kinds}


EXPECTED = {
    "referrals": 1,
    "events": 2,
    "identity_tasks": 1,
    "idempotency_keys": 1,
    "people": 4,  # C1's, C7's and A1's person rows, and household H1
    "audit_log": 2,  # a1 and a2, about R1, which this run removes first
}


def test_a_dry_run_counts_what_an_apply_removes_and_changes_nothing(
    world: tuple[Settings, Engine, dict[str, int]],
) -> None:
    settings, engine, _ = world
    before = _snapshot(engine)
    checkpoint = settings.audit_checkpoint_path().read_bytes()
    dry = _run(settings, engine, apply=False)
    assert _records(dry) == EXPECTED
    assert not dry.applied and dry.refused == []
    assert _snapshot(engine) == before
    assert settings.audit_checkpoint_path().read_bytes() == checkpoint
    cutoffs = {kind.kind: kind.cutoff for kind in dry.kinds}
    assert cutoffs["referrals"] == ago(365) and cutoffs["idempotency_keys"] == ago(30)
    applied = _run(settings, engine, apply=True)
    assert _records(applied) == _records(dry)


def test_apply_removes_exactly_the_expired_records_and_nothing_linked_to_open_work(
    world: tuple[Settings, Engine, dict[str, int]],
) -> None:
    settings, engine, _ = world
    run = _run(settings, engine, apply=True)
    assert run.refused == []
    assert _ids(engine, ReferralRow.referral_id) == {"R2", "R3", "R4", "R5", "R6"}
    assert _ids(engine, EventRow.event_id) == {"E2", "E3", "E4", "E6"}
    assert _ids(engine, IdentityTaskRow.task_id) == {"T2", "T3", "T5"}
    assert _ids(engine, IdempotencyKeyRow.key) == {"K2"}
    assert _ids(engine, ChildRow.child_id) == {"C2", "C3", "C4", "C5", "C6"}
    assert _ids(engine, PersonRow.person_id) == {"C2", "C3", "C4", "C5", "C6", "A2"}
    assert _ids(engine, HouseholdRow.household_id) == {"H2", "H3", "H4"}
    # R1's case record went with it; the others' stayed.
    assert _ids(engine, ScoreRow.referral_id) == {"R2", "R3", "R4", "R5", "R6"}
    assert _ids(engine, DecisionRow.referral_id) == {"R2", "R4", "R6"}
    assert _ids(engine, OutcomeRow.referral_id) == set()
    assert _ids(engine, DisputeRow.referral_id) == set()
    assert _ids(engine, CheckRequestRow.request_id) == set()
    rows = {kind.kind: kind.rows for kind in run.kinds}
    assert rows["referrals"] == {
        "referrals": 1, "scores": 1, "decisions": 1, "outcomes": 1, "disputes": 1,
        "check_requests": 1, "identity_tasks": 1, "queue_entries": 0, "sign_offs": 0,
        "priority_judgements": 0, "check_facts": 0, "strategy_discussions": 0,
    }  # fmt: skip


def test_a_referral_reopened_while_a_run_starts_is_kept(
    world: tuple[Settings, Engine, dict[str, int]],
) -> None:
    settings, engine, _ = world
    with session_factory(engine)() as reopener, ThreadPoolExecutor(1) as pool:
        reopen_referral(reopener, referral_id="R1")  # not committed yet: R1 is locked
        run = pool.submit(_run, settings, engine, apply=True)
        time.sleep(0.5)
        assert not run.done()  # the run waits for the reopening
        reopener.commit()
        assert _records(run.result(timeout=60))["referrals"] == 0
    assert "R1" in _ids(engine, ReferralRow.referral_id)


def test_apply_is_audited_without_personal_data_and_idempotent(
    world: tuple[Settings, Engine, dict[str, int]],
) -> None:
    settings, engine, _ = world
    run = _run(settings, engine, apply=True)
    with session_factory(engine)() as session:
        kinds = session.scalars(
            select(AuditEventRow).where(AuditEventRow.action == KIND_ACTION)
        ).all()
        summary = session.scalars(
            select(AuditEventRow).where(AuditEventRow.action == RUN_ACTION)
        ).one()
        stored = [row.payload for row in session.scalars(select(AuditEventRow))]
    assert {row.entity_id for row in kinds} == {
        "referrals", "events", "identity_tasks", "idempotency_keys", "people",
    }  # fmt: skip
    assert summary.actor == "cli:test" and summary.payload["run"] == run.run_id
    assert {k: v["records"] for k, v in summary.payload["kinds"].items()} == EXPECTED
    assert summary.payload["kinds"]["referrals"]["cutoff"] == ago(365).isoformat()
    assert GIVEN_NAME not in json.dumps(stored)
    again = _run(settings, engine, apply=True)
    assert set(_records(again).values()) == {0}
    with session_factory(engine)() as session:
        summaries = session.scalar(select(func.count()).where(AuditEventRow.action == RUN_ACTION))
        kind_entries = session.scalar(
            select(func.count()).where(AuditEventRow.action == KIND_ACTION)
        )
    assert summaries == 2 and kind_entries == len(kinds)  # nothing removed, nothing recorded


def test_the_chain_verifies_from_the_retention_record_and_catches_tampering(
    world: tuple[Settings, Engine, dict[str, int]],
) -> None:
    settings, engine, audit = world
    _run(settings, engine, apply=True)
    key = settings.get_audit_key()
    checkpoint = read_checkpoint(settings.audit_checkpoint_path(), key)
    assert checkpoint is not None
    with session_factory(engine)() as session:
        remaining = set(session.scalars(select(AuditEventRow.id)))
        expired = session.scalars(
            select(AuditEventRow).where(AuditEventRow.action == EXPIRED_ACTION)
        ).one()
        report = verify_chain(session, checkpoint)
    assert audit["a3"] == min(remaining)  # a1, a2 went; a3 (R2, still stored) and after stayed
    assert {audit[name] for name in ("a1", "a2")}.isdisjoint(remaining)
    assert expired.payload["expired_through_event"] == audit["a2"]
    assert checkpoint.event_id == expired.id
    assert report.ok and report.anchored and report.expired_through == audit["a2"]
    with engine.begin() as connection:
        connection.execute(
            update(AuditEventRow).where(AuditEventRow.id == audit["a5"]).values(actor="u2")
        )
    with session_factory(engine)() as session:
        tampered = verify_chain(session, checkpoint)
    assert tampered.broken is not None and tampered.broken.event_id == audit["a5"]


def test_the_service_keeps_signing_checkpoints_after_retention(
    world: tuple[Settings, Engine, dict[str, int]],
) -> None:
    settings, engine, _ = world
    _run(settings, engine, apply=True)
    key = settings.get_audit_key()
    assert key is not None
    path = settings.audit_checkpoint_path()
    with session_factory(engine).begin() as session:
        newest = add_audit_event(
            session, actor="u1", action="queue.viewed", entity_type="queue", payload={}
        ).id
    with session_factory(engine)() as session:
        outcome = checkpoint_chain(session, path, key)
    assert outcome.refused is None and outcome.written
    assert outcome.checkpoint is not None and outcome.checkpoint.event_id == newest
    with session_factory(engine)() as session:
        assert verify_chain(session, read_checkpoint(path, key)).ok


def test_removing_more_than_retention_did_breaks_the_first_link(
    world: tuple[Settings, Engine, dict[str, int]],
) -> None:
    settings, engine, audit = world
    _run(settings, engine, apply=True)
    with engine.begin() as connection:
        connection.execute(delete(AuditEventRow).where(AuditEventRow.id == audit["a3"]))
    with session_factory(engine)() as session:
        report = verify_chain(session, None)
    assert report.broken is not None and report.broken.event_id == audit["a4"]
    assert "outside retention" in report.broken.reason


def test_a_forged_retention_record_does_not_license_removing_events(
    world: tuple[Settings, Engine, dict[str, int]],
) -> None:
    settings, engine, audit = world
    _run(settings, engine, apply=True)
    key = settings.get_audit_key()
    path = settings.audit_checkpoint_path()
    with session_factory(engine).begin() as session:  # anyone with write access can hash
        last = session.get(AuditEventRow, audit["a4"])
        assert last is not None
        add_audit_event(
            session, actor="retention", action=EXPIRED_ACTION, entity_type="audit_log",
            payload={"expired_through_event": last.id, "expired_through_hash": last.hash},
        )  # fmt: skip
        session.execute(delete(AuditEventRow).where(AuditEventRow.id <= audit["a4"]))
    with session_factory(engine)() as session:
        report = verify_chain(session, read_checkpoint(path, key))
        assert report.broken is not None and "not a retention run's" in report.broken.reason
        assert key is not None
        assert checkpoint_chain(session, path, key).refused is not None  # never vouched for


def test_the_audit_log_expires_across_a_gap_in_its_ids(migrated_url: str, tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path, database_url=migrated_url)
    anchor_new_chain(settings)
    engine = make_engine(migrated_url)
    maker = session_factory(engine)
    try:
        events = {}
        for name, days in (("old", 500), ("gap", 500), ("new", 10)):
            with maker() as session:
                row = add_audit_event(
                    session, actor="u1", action="queue.viewed", entity_type="queue",
                    payload={}, occurred_at=ago(days),
                )  # fmt: skip
                events[name] = row.id
                # The gap's insert is rolled back: on PostgreSQL its id is never used.
                session.rollback() if name == "gap" else session.commit()
        run = _run(settings, engine, apply=True)
        audit = {kind.kind: kind for kind in run.kinds}["audit_log"]
        assert audit.refused is None and audit.records == 1
        with maker() as session:
            checkpoint = read_checkpoint(settings.audit_checkpoint_path(), settings.get_audit_key())
            report = verify_chain(session, checkpoint)
        assert report.ok and report.expired_through == events["old"]
    finally:
        engine.dispose()


def test_the_audit_log_is_not_expired_when_its_chain_does_not_verify(
    world: tuple[Settings, Engine, dict[str, int]],
) -> None:
    settings, engine, audit = world
    with engine.begin() as connection:
        connection.execute(
            update(AuditEventRow).where(AuditEventRow.id == audit["a2"]).values(actor="u9")
        )
    run = _run(settings, engine, apply=True)
    (refused,) = run.refused
    assert refused.kind == "audit_log" and "does not verify" in str(refused.refused)
    assert audit["a1"] in _ids(engine, AuditEventRow.id)


@pytest.mark.parametrize(
    ("entity_type", "entity_id"), [("referral", "R9"), ("identity_task", "T9")]
)
def test_audit_entries_about_a_record_still_stored_outlive_the_audit_period(
    migrated_url: str, tmp_path: Path, entity_type: str, entity_id: str
) -> None:
    settings = Settings(var_dir=tmp_path, database_url=migrated_url)
    anchor_new_chain(settings)
    engine = make_engine(migrated_url)
    try:
        with session_factory(engine).begin() as session:
            _household(session, "H9")
            session.flush()
            _child(session, "C9", "H9")
            session.flush()
            _member(session, "C9", "H9")
            # Received 1500 days ago, closed 100 days ago: within the referral period.
            _referral(session, "R9", "C9", "H9", received=1500, decided=100)
            session.add(
                IdentityRecordRow(
                    record_id="IR9", source_system="health", source_person_id="p9",
                    given_name=None, family_name=None, date_of_birth=None, sex="female",
                    postcode=None, nhs_number=None, school=None, is_child=True,
                    first_seen_at=ago(1500), person_id="C9", resolution="linked",
                    match_probability=0.99,
                )
            )  # fmt: skip
            session.flush()
            _task(session, "T9", "IR9", status="confirmed", decided=10, referral="R9")
            ids = {}
            for name, days, kind, about in (
                ("gone", 1450, "referral", "R-never-stored"),
                ("kept", 1400, entity_type, entity_id),  # past the audit period (400 days)
                ("after", 1300, "queue", None),
            ):
                row = add_audit_event(
                    session, actor="u1", action="viewed", entity_type=kind, entity_id=about,
                    payload={}, occurred_at=ago(days),
                )  # fmt: skip
                ids[name] = row.id
        run = _run(settings, engine, apply=True)
        assert run.refused == [] and _records(run)["audit_log"] == 1
        remaining = _ids(engine, AuditEventRow.id)
        assert ids["gone"] not in remaining
        assert {ids["kept"], ids["after"]} <= remaining
        assert {"R9"} == _ids(engine, ReferralRow.referral_id)
    finally:
        engine.dispose()


def test_events_a_stored_referral_could_have_been_scored_on_are_kept(
    world: tuple[Settings, Engine, dict[str, int]],
) -> None:
    settings, engine, _ = world
    with session_factory(engine).begin() as session:
        _adult(session, "A4")
        _household(session, "H5")
        session.flush()
        _member(session, "A4", "H4")
        session.add(
            HouseholdMembershipRow(
                membership_id="M-C5-H5", person_id="C5", household_id="H5", role="child",
                joined_at=ago(3000), left_at=ago(2000), synthetic=True,
            )
        )  # fmt: skip
        # R6 (child C5, household H4) was received 1500 days ago and is kept.
        _event(session, "E7", 1600, child="C5")  # the child's, before R6: kept
        _event(session, "E8", 1600, household="H4")  # the household's, before R6: kept
        _event(session, "E9", 1600, person="A4")  # a member's, before R6: kept
        _event(session, "E10", 1400, child="C5")  # after R6 was received: goes
        _event(session, "E11", 1600, child="C1")  # disputed on R6: kept
        _event(session, "E12", 2500, household="H5")  # where C5 once lived, before R6: kept
        session.flush()
        session.add(
            DisputeRow(
                referral_id="R6", record_id="E11", reason="not this child", disputed_by="u1",
                disputed_at=ago(200), model_version="m1", before=None, after=None,
            )
        )  # fmt: skip
    dry = _records(_run(settings, engine, apply=False))
    run = _run(settings, engine, apply=True)
    assert run.refused == [] and _records(run) == dry
    events = _ids(engine, EventRow.event_id)
    assert {"E7", "E8", "E9", "E11", "E12"} <= events
    # E1 and E5 predate R1, but R1 went in this run: no referral left could use them.
    assert {"E10", "E1", "E5"}.isdisjoint(events)
    assert _ids(engine, ReferralRow.referral_id) == {"R2", "R3", "R4", "R5", "R6"}


def _cli(settings: Settings, *args: str, **env: str) -> tuple[int, str]:
    get_settings.cache_clear()
    environment = {
        "TRIAGE_DATABASE_URL": settings.database_url,
        "TRIAGE_VAR_DIR": str(settings.var_dir),
    } | {f"TRIAGE_RETENTION_{k.upper()}": v for k, v in env.items()}
    result = CliRunner().invoke(cli, list(args), env=environment)
    get_settings.cache_clear()
    return result.exit_code, " ".join(result.output.split())


def test_the_command_is_a_dry_run_unless_told_and_verify_passes_after(
    world: tuple[Settings, Engine, dict[str, int]],
) -> None:
    settings, engine, _ = world
    periods = {
        "referral_days": "365", "event_days": "365", "identity_task_days": "180",
        "idempotency_key_days": "30", "audit_days": "400",
    }  # fmt: skip
    before = _snapshot(engine)
    code, output = _cli(settings, "retention", "apply", **periods)
    assert code == 0 and "Dry run: nothing was changed" in output
    code, output = _cli(settings, "retention", "apply", "--json", **periods)
    document = json.loads(output)
    assert code == 0 and not document["applied"]
    assert {kind: v["records"] for kind, v in document["kinds"].items()} == EXPECTED
    assert _snapshot(engine) == before
    code, output = _cli(settings, "retention", "apply", "--apply", **periods)
    assert code == 0 and "Recorded in the audit log as run" in output
    assert _ids(engine, ReferralRow.referral_id) == {"R2", "R3", "R4", "R5", "R6"}
    code, output = _cli(settings, "auditlog", "verify")
    assert code == 0 and "removed by retention" in output


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"referral_days": "-1"}, "retention_referral_days"),
        ({"event_days": "a year"}, "retention_event_days"),
        ({"audit_days": "100"}, "retention_audit_days"),
    ],
)
def test_bad_settings_name_the_field(env: dict[str, str], field: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=field):
        Settings.model_validate(
            {"var_dir": tmp_path} | {f"retention_{k}": v for k, v in env.items()}
        )
    settings = Settings(var_dir=tmp_path)
    code, output = _cli(settings, "retention", "apply", **env)
    assert code == 2 and field in output
