"""Intake of referrals and agency events: exactly once, idempotent, scored at intake."""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import Enum
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import to_jsonable_python
from sqlalchemy import select
from sqlalchemy.orm import Session

from explain.referral import ExplainedScore, explain_features
from features.online import MAX_RECORDS, HistorySizes, features_for, history_sizes
from features.records import ReferralRecord, to_ms
from service.champion import LoadedModel
from service.context import ServiceContext
from service.errors import Conflict, invalid
from service.event_children import resolve_event_children
from service.identity import (
    ChildResolution,
    others_arrived,
    record_id_for,
    resolve_child,
    store_resolution,
    stored_resolution,
)
from service.people import (
    PeoplePlan,
    add_new_persons,
    apply_memberships,
    child_person,
    plan_people,
    same_name,
)
from service.replies import EventsAccepted, ReferralAccepted
from service.scoring import (
    PlannedScore,
    facts_of,
    plan_score,
    queue_entry,
    rescore_each,
    store_score,
)
from service.views import INTAKE_REASONS, accepted, score_from_row, score_from_scored, unscored
from triage.queue import apply_safety_rules, facts_for
from triage.schema import AgencyEventIn, Child, ReferralIn, error_fields
from triage.store import (
    ChildRow,
    DuplicateEvent,
    DuplicateReferral,
    EventRow,
    IdempotencyKeyRow,
    ReferralRow,
    add_audit_event,
    add_event,
    claim_idempotency_key,
    close_membership,
    get_child,
    get_idempotency_key,
    get_queue_entry,
    get_referral,
    households_of_persons,
    insert_audit_event,
    insert_child_if_new,
    insert_household_if_new,
    insert_membership_if_new,
    insert_person_if_new,
    insert_queue_entry,
    insert_referral,
    latest_score,
    lock_memberships,
    open_memberships_of,
    open_referrals_affected_by,
    read_child_birth_and_household,
    read_child_identity,
    read_referral_id_by_business_key,
    store_idempotent_response,
)
from triage.store.tables import utcnow
from triage.vocab import MEMBERSHIP_EVENT_KINDS, HouseholdRole

log = logging.getLogger(__name__)

REFERRALS_SCOPE = "referrals"
EVENTS_SCOPE = "events"
MAX_EVENTS = 200
"""Events per request: 200 events of about 300 bytes each fit the 64 KiB body limit."""
KEY_FIELD = "header.Idempotency-Key"


@dataclass(frozen=True)
class Reply:
    """A JSON-ready body; ``created`` when this request stored something new, ``replayed``
    when the reply came from a stored key."""

    created: bool
    body: dict[str, Any]
    replayed: bool = False


def _kept_status(created: bool) -> int:
    """How an idempotency key records its reply (the column holds the HTTP status it had)."""
    return 201 if created else 200


def _created(kept_status: int | None) -> bool:
    """Whether a kept reply was a creation (``_kept_status`` read back)."""
    return kept_status == 201


def request_hash(payload: Any) -> str:
    """SHA-256 of the validated request, canonical (key order and spacing do not matter)."""
    return _sha256_json(to_jsonable_python(payload))


_LATER_FIELDS: dict[str, Any] = {
    "household_members": [],
    "person_id": None,
    "person": None,
    "recorded_at": None,
}
"""Fields added to the request bodies since keys were first kept, with their defaults."""


_LATER_CHILD_FIELDS: dict[str, Any] = {"nhs_number": None, "postcode": None, "school": None}
"""Fields added to the child since keys were first kept (issue 21), with their defaults."""


def _as_first_kept(dump: dict[str, Any]) -> dict[str, Any]:
    """A request without the later fields it leaves at their defaults, so a retry with a key
    kept before they existed still matches its digest."""
    kept = {
        key: value
        for key, value in dump.items()
        if key not in _LATER_FIELDS or value != _LATER_FIELDS[key]
    }
    if isinstance(kept.get("child"), dict):
        kept["child"] = {
            key: value
            for key, value in kept["child"].items()
            if key not in _LATER_CHILD_FIELDS or value != _LATER_CHILD_FIELDS[key]
        }
    return kept


def _sha256_json(data: Any) -> str:
    """``request_hash`` of data that is JSON-ready already (e.g. ``model_dump(mode="json")``)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def as_json(schema: type[BaseModel], body: dict[str, Any]) -> dict[str, Any]:
    """A reply body checked against its documented schema, as JSON-ready data."""
    return schema.model_validate(body).model_dump(mode="json")


def new_id(prefix: str) -> str:
    """A fresh opaque id (fits ``triage.schema.Id``)."""
    return f"{prefix}-{uuid.uuid4().hex}"


def _replay(
    session: Session, *, actor: str, scope: str, key: str | None, digest: str
) -> IdempotencyKeyRow | None:
    """The stored key with this digest, None if new; 422 if the key named another request."""
    if key is None:
        return None
    stored = get_idempotency_key(session, actor=actor, scope=scope, key=key)
    if stored is not None and stored.request_hash != digest:
        raise invalid(
            [{"field": KEY_FIELD, "reason": "this key was used with a different request body"}],
            "Idempotency-Key reused with a different request",
        )
    return stored


def _claim(
    session: Session, *, actor: str, scope: str, key: str, digest: str, entity_id: str | None
) -> IdempotencyKeyRow:
    """Claim a key inside the caller's transaction; refuse one a concurrent request holds."""
    row = claim_idempotency_key(
        session, actor=actor, scope=scope, key=key, request_hash=digest, entity_id=entity_id
    )
    if row.entity_id != entity_id or row.request_hash != digest:
        raise Conflict(
            "conflict", "another request with this Idempotency-Key is in progress; retry"
        )
    return row


def _remember(state: ServiceContext, key_row: IdempotencyKeyRow | None, reply: Reply) -> None:
    """Store the reply a key replays from now on."""
    if key_row is None:
        return
    with state.sessions() as session:
        store_idempotent_response(
            session,
            row=key_row,
            status_code=_kept_status(reply.created),
            response=reply.body,
        )
        session.commit()


# --- referrals ------------------------------------------------------------------------------


def referral_view(state: ServiceContext, session: Session, referral_id: str) -> dict[str, Any]:
    """The intake reply for a stored referral, from the store as it is now."""
    referral = get_referral(session, referral_id=referral_id)
    assert referral is not None
    resolution = stored_resolution(session, referral_id=referral_id, child_id=referral.child_id)
    score = latest_score(session, referral_id=referral_id)
    entry = get_queue_entry(session, referral_id=referral_id)
    if score is None:
        # The flags the intake stored read the history as it was at receipt; a referral
        # decided since has no queue entry, and its own facts say what they can.
        if entry is not None:
            flags = list(entry.flags)
        else:
            child = get_child(session, child_id=referral.child_id)
            assert child is not None
            flags = apply_safety_rules(facts_of(referral, child), None).flag_codes
        return as_json(
            ReferralAccepted, accepted(referral, unscored(flags)) | {"resolution": resolution}
        )
    fields = score_from_row(
        score,
        model=state.models.current,
        top=INTAKE_REASONS,
        model_band=entry.model_band if entry is not None else None,
    )
    return as_json(ReferralAccepted, accepted(referral, fields) | {"resolution": resolution})


def _ensure_household(session: Session, household_id: str, decile: int | None) -> None:
    # A concurrent request may add the same new household first (PostgreSQL does not
    # serialise writers as SQLite does): then the insert does nothing and theirs stands.
    insert_household_if_new(
        session,
        household={"household_id": household_id, "deprivation_decile": decile, "synthetic": False},
    )


def _ensure_child(session: Session, referral: ReferralIn) -> tuple[date, list[str] | None]:
    """The child's stored date of birth, and the identity fields the referral contradicts.

    A new child (and household) is stored as sent. A known child is kept as stored: details
    that contradict it are returned (None when they agree) for a person to confirm, never
    written over the stored child or silently ignored.
    """
    child = referral.child
    # The intake resolved the child before this (``_with_child_ids``): both ids are set.
    assert child.child_id is not None and child.household_id is not None
    born, household_known = read_child_birth_and_household(
        session, child_id=child.child_id, household_id=child.household_id
    )
    if not household_known:
        _ensure_household(session, child.household_id, child.deprivation_decile)
    # As for households: a concurrent request may store the child first, so theirs stands.
    if born is None and insert_child_if_new(session, child=_child_values(referral)):
        # Every child is a person living in the household it arrived with, since birth.
        person, membership = child_person(
            child_id=child.child_id,
            household_id=child.household_id,
            given_name=child.given_name,
            family_name=child.family_name,
            date_of_birth=child.date_of_birth,
            sex=str(child.sex),
        )
        if not insert_person_if_new(session, person=person):
            # An adult holds the id: a child's stay must never attach to an adult's record.
            raise Conflict(
                "person_id_clash",
                "the child's id is held by an adult this service knows; nothing was stored",
                [{"field": "child.child_id", "reason": "an adult this service knows has this id"}],
            )
        insert_membership_if_new(session, membership=membership)
        return child.date_of_birth, None
    stored = read_child_identity(session, child_id=child.child_id)
    assert stored is not None
    _follow_a_move(session, child.child_id, child.household_id, referral.received_at)
    return stored[2], identity_mismatch(child, stored)


def _follow_a_move(session: Session, child_id: str, household_id: str, at: datetime) -> None:
    """A known child referred from another household has moved: its open stays end when the
    referral is received and a stay in the new household begins then.

    Without this, the old household's later records would follow the child for good. The
    referral itself still reads the old stay (a stay counts when it began before receipt).
    """
    lock_memberships(session)
    stays = [
        m
        for m in open_memberships_of(session, person_ids=[child_id])
        if m.role == HouseholdRole.child
    ]
    if any(m.household_id == household_id for m in stays):
        return
    for stay in stays:
        close_membership(session, membership_id=stay.membership_id, left_at=at)
    insert_membership_if_new(
        session,
        membership={
            "membership_id": new_id("MEM"),
            "person_id": child_id,
            "household_id": household_id,
            "role": HouseholdRole.child.value,
            "joined_at": at,
            "left_at": None,
            "synthetic": False,
        },
    )


def identity_mismatch(child: Child, stored: tuple[str, str, date]) -> list[str] | None:
    """The identity fields of ``child`` that contradict the stored child's; None if none do."""
    given, family, born = stored
    fields = [
        name
        for name, differs in (
            ("given_name", not same_name(child.given_name, given)),
            ("family_name", not same_name(child.family_name, family)),
            ("date_of_birth", child.date_of_birth != born),
        )
        if differs
    ]
    return fields or None


def _child_values(referral: ReferralIn) -> dict[str, Any]:
    child = referral.child
    return {
        "child_id": child.child_id,
        "household_id": child.household_id,
        "given_name": child.given_name,
        "family_name": child.family_name,
        "date_of_birth": child.date_of_birth,
        "sex": str(child.sex),
        "ethnicity": str(child.ethnicity),
        "disability": child.disability,
        "deprivation_decile": child.deprivation_decile,
        "synthetic": False,
    }


def _referral_values(
    referral: ReferralIn, referral_id: str, sent: ReferralIn | None = None
) -> dict[str, Any]:
    """The referral row of a resolved referral; ``child_as_sent`` from ``sent`` (as sent)."""
    return {
        "referral_id": referral_id,
        "source_system": referral.source_system,
        "source_referral_id": referral.source_referral_id,
        "child_id": referral.child.child_id,
        "household_id": referral.child.household_id,
        "received_at": referral.received_at,
        "referrer_type": str(referral.referrer.type),
        "referrer_relationship": _str_or_none(referral.referrer.relationship),
        "referrer_id": referral.referrer.referrer_id,
        "concerns": [str(c) for c in referral.concerns],
        "injury_reported": referral.injury.reported,
        "injury_sites": [str(s) for s in referral.injury.sites],
        "injury_photographed": referral.injury.photographed,
        "narrative": referral.narrative,
        "status": "open",
        "synthetic": False,
        "created_at": utcnow(),
        "child_as_sent": (sent or referral).child.model_dump(mode="json"),
        "identity_mismatch": None,
        "household_members": [
            member.model_dump(mode="json") for member in referral.household_members
        ],
    }


def refuse_stale(referral: ReferralIn, *, max_age_days: int) -> None:
    """422 on ``received_at`` when the referral was received more than ``max_age_days`` ago."""
    if referral.received_at < utcnow() - timedelta(days=max_age_days):
        raise invalid(
            [
                {
                    "field": "received_at",
                    "reason": f"received_at is more than {max_age_days} days in the past; "
                    "older records are loaded as an extract, not sent to intake",
                }
            ]
        )


def receive_referral(
    state: ServiceContext, *, referral: ReferralIn, actor: str, idempotency_key: str | None
) -> Reply:
    """Store a referral with its audit event, score and queue entry in one transaction.

    The features and score are computed first from a read-only snapshot of the history, so
    the write transaction (on SQLite, the one write lock and one fsync) only stores them. It
    checks that the history has not grown meanwhile and scores again if it has. If scoring
    or storing the score fails, the referral is committed as ``unscored`` all the same.
    """
    refuse_stale(referral, max_age_days=state.settings.max_referral_age_days)
    model = state.models.current  # one model for the whole request, even across a reload
    referral_id = new_id("R")
    digest = _sha256_json(_as_first_kept(referral.model_dump(mode="json")))
    for attempt in range(1, RESOLVE_ATTEMPTS + 1):
        try:
            return _receive_once(
                state,
                referral=referral,
                actor=actor,
                idempotency_key=idempotency_key,
                model=model,
                referral_id=referral_id,
                digest=digest,
                recheck=attempt < RESOLVE_ATTEMPTS,
            )
        except _ResolveAgain:
            log.info("referral %s: the same child arrived meanwhile, resolving again", referral_id)
    raise AssertionError("the last attempt does not check again")


RESOLVE_ATTEMPTS = 3
"""Intakes of one new child racing each other: after this many, the child is stored as
resolved (the last attempt does not look again)."""


class _ResolveAgain(Exception):
    """Records matching a new child's details arrived between the snapshot and the write."""


def _receive_once(
    state: ServiceContext,
    *,
    referral: ReferralIn,
    actor: str,
    idempotency_key: str | None,
    model: LoadedModel | None,
    referral_id: str,
    digest: str,
    recheck: bool,
) -> Reply:
    """One attempt at ``receive_referral`` (``_ResolveAgain`` when its new child arrived)."""
    with state.read_sessions() as reader:
        stored_key = _replay(
            reader, actor=actor, scope=REFERRALS_SCOPE, key=idempotency_key, digest=digest
        )
        if stored_key is not None:
            if stored_key.response is not None and stored_key.status_code is not None:
                created = _created(stored_key.status_code)
                return Reply(created, stored_key.response, replayed=True)
            # Stored, but the process stopped before the reply was: rebuild it from the store.
            assert stored_key.entity_id is not None
            return Reply(True, referral_view(state, reader, stored_key.entity_id), replayed=True)
        resend = read_referral_id_by_business_key(
            reader,
            source_system=referral.source_system,
            source_referral_id=referral.source_referral_id,
        )
        resolution = _resolution(state, reader, referral, referral_id, resend)
        resolved = _with_child_ids(referral, resolution)
        values = _referral_values(resolved, referral_id, sent=referral)
        intake = _Intake(
            referral=resolved,
            values=values,
            record=_record(values),
            digest=digest,
            actor=actor,
            key=idempotency_key,
            resolution=resolution,
            recheck=recheck,
        )
        born, _ = read_child_birth_and_household(
            reader, child_id=intake.record.child_id, household_id=intake.record.household_id
        )
        born = born or referral.child.date_of_birth
        explained = history = None
        if model is not None and resend is None:  # a resend is answered as stored, not scored
            explained = _explain(reader, model, intake, born)
        if not isinstance(explained, _Explained) and resend is None:
            history = _history_values(reader, intake, born)  # the safety rules read it
    # Everything the transaction writes is worked out before it takes the write lock.
    outcome = _safe_outcome(intake, explained, born, history)
    with state.sessions() as session:
        try:
            try:
                reply = _store(session, intake, model, outcome)
            except _ScoreNotStored:
                session.rollback()
                reply = _store(
                    session, intake, model, _outcome(intake, _FAILED, born, outcome.history)
                )
        except DuplicateReferral as duplicate:
            session.rollback()
            return _resent(state, duplicate.referral_id, intake)
        session.commit()
    return reply


@dataclass(frozen=True, slots=True)
class _Intake:
    """A referral as received: its validated body, the row to store, its feature record."""

    referral: ReferralIn
    values: dict[str, Any]
    record: ReferralRecord
    digest: str
    actor: str
    key: str | None
    resolution: ChildResolution
    recheck: bool = False
    """Whether to look, under the write lock, for records of a new child that arrived since."""


def _resolution(
    state: ServiceContext,
    reader: Session,
    referral: ReferralIn,
    referral_id: str,
    resend: str | None,
) -> ChildResolution:
    """How the child is resolved; a resend keeps the child its stored referral has."""
    if resend is not None and referral.child.child_id is None:
        stored = get_referral(reader, referral_id=resend)
        if stored is not None:
            kept = stored_resolution(reader, referral_id=resend, child_id=stored.child_id)
            return ChildResolution(
                kept["outcome"],
                stored.child_id,
                referral.child.household_id or stored.household_id,
                kept["match_probability"],
                {"record_id": record_id_for(resend)},
            )
    return resolve_child(state.identity, reader, referral=referral, referral_id=referral_id)


def _with_child_ids(referral: ReferralIn, resolution: ChildResolution) -> ReferralIn:
    """The referral with its child's resolved ids (the body as sent when it named them)."""
    if referral.child.child_id is not None:
        return referral
    child = referral.child.model_copy(
        update={"child_id": resolution.child_id, "household_id": resolution.household_id}
    )
    return referral.model_copy(update={"child": child})


@dataclass(frozen=True, slots=True)
class _Explained:
    """A new referral's score as computed, with the history sizes it was computed from."""

    score: ExplainedScore
    sizes: HistorySizes


class _Failed(Enum):
    """Scoring raised: the referral is stored unscored (and not scored twice)."""

    FAILED = "failed"


_FAILED = _Failed.FAILED
Scoring = _Explained | _Failed | None
"""A referral's score before the write: computed, failed, or not tried yet (the write scores)."""


class _ScoreNotStored(Exception):
    """Storing the score failed: the transaction is rolled back and stored again unscored."""


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What the write transaction stores for a referral, given the date of birth it used."""

    born: date
    explained: Scoring
    history: Mapping[str, float] | None
    """The signal values the safety rules read when there is no score (None: not read)."""
    score: PlannedScore | None
    entry: dict[str, Any]
    """The queue entry; its ``score_id`` is filled in once the score is stored."""
    reply: Reply


def _safe_outcome(
    intake: _Intake, explained: Scoring, born: date, history: Mapping[str, float] | None
) -> _Outcome:
    """``_outcome``; unscored (logged) if working out the score's outcome fails."""
    if isinstance(explained, _Explained):
        try:
            return _outcome(intake, explained, born, history)
        except Exception as exc:
            log.error("scoring %s failed: %s", intake.record.referral_id, type(exc).__name__)
            history = explained.score.values
    return _outcome(intake, _FAILED if explained is not None else None, born, history)


def _outcome(
    intake: _Intake, explained: Scoring, born: date, history: Mapping[str, float] | None
) -> _Outcome:
    """Facts, safety rules, score, queue entry and reply of a referral (no store needed)."""
    referral, values = intake.referral, intake.values
    referral_id = values["referral_id"]
    if isinstance(explained, _Explained):
        history = explained.score.values
    facts = facts_for(
        date_of_birth=born,
        received_at=referral.received_at,
        injury_reported=values["injury_reported"],
        injury_sites=values["injury_sites"],
        concerns=values["concerns"],
        referrer_relationship=values["referrer_relationship"],
        injury_photographed=values["injury_photographed"],
        history=history,
    )
    planned = None
    if isinstance(explained, _Explained):
        planned = plan_score(referral_id=referral_id, facts=facts, explained=explained.score)
    entry = queue_entry(
        referral_id=referral_id,
        child_id=values["child_id"],
        received_at=referral.received_at,
        concerns=values["concerns"],
        facts=facts,
        score=planned.unstored().score if planned is not None else None,
        model_band=planned.safety.model_band if planned is not None else None,
    )
    if planned is not None:
        fields = score_from_scored(planned.unstored(), top=INTAKE_REASONS)
    else:  # no model, or scoring failed: stored and unscored, the safety rules still apply
        fields = unscored(apply_safety_rules(facts, None).flag_codes)
    row = _Received(
        referral_id=referral_id,
        source_system=referral.source_system,
        source_referral_id=referral.source_referral_id,
        received_at=referral.received_at,
    )
    body = accepted(row, fields) | {"resolution": intake.resolution.reply()}
    reply = Reply(True, as_json(ReferralAccepted, body))
    return _Outcome(
        born=born, explained=explained, history=history, score=planned, entry=entry, reply=reply
    )


def _store(
    session: Session, intake: _Intake, model: LoadedModel | None, outcome: _Outcome
) -> Reply:
    """The write transaction's statements; the reply, which the Idempotency-Key keeps too."""
    referral, referral_id = intake.referral, intake.values["referral_id"]
    if intake.recheck and others_arrived(session, intake.resolution, referral.child):
        raise _ResolveAgain
    stored_born, mismatch = _ensure_child(session, referral)
    if intake.resolution.outcome != "given":
        # The linker weighed these details already; its evidence is on the identity record.
        mismatch = None
    insert_referral(session, referral=intake.values | {"identity_mismatch": mismatch})
    store_resolution(session, intake.resolution)
    received = insert_audit_event(
        session,
        actor=intake.actor,
        action="referral.received",
        entity_type="referral",
        entity_id=referral_id,
        payload={
            "source_system": referral.source_system,
            "source_referral_id": referral.source_referral_id,
            "child_id": referral.child.child_id,
            "request_sha256": intake.digest,
            "identity_mismatch": mismatch,
            "household_members": len(referral.household_members),
            "resolution": intake.resolution.audit(),
        },
    )
    explained = outcome.explained
    if model is not None and explained is not _FAILED:
        # On PostgreSQL the audit event above holds the chain's advisory lock, which the
        # events route takes too before it looks for referrals to rescore: history it commits
        # from now on finds this referral, and what it committed before is counted here.
        try:
            if (
                explained is None
                or stored_born != outcome.born
                or _history_grew(session, explained, intake)
            ):
                # Rare: the child or its history changed since the snapshot; score again here.
                explained = _explain(session, model, intake, stored_born)
                if explained is _FAILED:
                    raise _ScoreNotStored
                outcome = _outcome(intake, explained, stored_born, None)
        except Exception as exc:
            # A failed statement can leave the transaction unusable (PostgreSQL): start again,
            # unscored.
            log.error("scoring %s failed: %s", referral_id, type(exc).__name__)
            raise _ScoreNotStored from exc
    elif stored_born != outcome.born:  # unscored, but the safety rules use the age
        outcome = _outcome(intake, explained, stored_born, outcome.history)
    entry = outcome.entry
    if outcome.score is not None:
        try:
            scored = store_score(
                session, outcome.score, actor=intake.actor, trigger="intake", audit_after=received
            )
        except Exception as exc:
            log.error("storing the score of %s failed: %s", referral_id, type(exc).__name__)
            raise _ScoreNotStored from exc
        entry = entry | {"score_id": scored.score.id}
    insert_queue_entry(session, entry=entry)
    if intake.key is not None:
        key_row = _claim(
            session,
            actor=intake.actor,
            scope=REFERRALS_SCOPE,
            key=intake.key,
            digest=intake.digest,
            entity_id=referral_id,
        )
        store_idempotent_response(
            session, row=key_row, status_code=_kept_status(True), response=outcome.reply.body
        )
    return outcome.reply


def _explain(
    session: Session, model: LoadedModel, intake: _Intake, born: date
) -> _Explained | _Failed:
    """Features and score of a referral not stored yet; ``_FAILED`` (logged) if scoring raises."""
    try:
        features = features_for(
            session, query=intake.record, received_at=intake.values["received_at"], born=born
        )
        return _Explained(explain_features(model.scorer, features), features.sizes)
    except Exception as exc:
        # The type only: a message could quote the referral's content.
        log.error("scoring referral %s failed: %s", intake.record.referral_id, type(exc).__name__)
        return _FAILED


def _history_values(session: Session, intake: _Intake, born: date) -> Mapping[str, float] | None:
    """The referral's signal values without a model, for the safety rules; None if that fails."""
    try:
        features = features_for(
            session, query=intake.record, received_at=intake.values["received_at"], born=born
        )
    except Exception as exc:
        log.error(
            "reading the history of %s failed: %s", intake.record.referral_id, type(exc).__name__
        )
        return None
    return features.vector()


def _history_grew(session: Session, explained: _Explained, intake: _Intake) -> bool:
    """Whether records dated before the referral were committed after its score was computed.

    Records are never deleted, so a count that has not moved means no new record; a source
    cut at ``MAX_RECORDS`` cannot tell, so its referral is always scored again.
    """
    if max(explained.sizes) >= MAX_RECORDS:
        return True
    now = history_sizes(session, query=intake.record, received_at=intake.values["received_at"])
    return now != explained.sizes


def _resent(state: ServiceContext, referral_id: str, intake: _Intake) -> Reply:
    """A resend of a stored referral: 200 with it as it is now, never stored twice.

    If the resend's Idempotency-Key already holds a reply (the first request committed it
    after this one's snapshot), that reply is replayed and kept. A resend whose content
    differs from the stored referral is refused with 409 naming the fields, and audited: the
    stored referral is what the front door reads, so a correction must not vanish silently.
    """
    actor, idempotency_key, digest = intake.actor, intake.key, intake.digest
    with state.sessions() as session:
        stored = get_referral(session, referral_id=referral_id)
        assert stored is not None
        differ = resend_differences(stored, intake.values)
        if differ:
            add_audit_event(
                session,
                actor=actor,
                action="referral.resend_refused",
                entity_type="referral",
                entity_id=referral_id,
                payload={"fields": differ, "request_sha256": digest},
            )
            session.commit()
            raise Conflict(
                "conflict",
                f"referral {stored.source_referral_id!r} of {stored.source_system!r} is stored "
                f"(as {referral_id}) with other content; this resend was not applied",
                [
                    {"field": field, "reason": "differs from the referral stored with this key"}
                    for field in differ
                ],
            )
        reply = Reply(False, referral_view(state, session, referral_id))
        if idempotency_key is not None:
            key_row = _claim(
                session,
                actor=actor,
                scope=REFERRALS_SCOPE,
                key=idempotency_key,
                digest=digest,
                entity_id=referral_id,
            )
            if key_row.response is not None and key_row.status_code is not None:
                return Reply(_created(key_row.status_code), key_row.response, replayed=True)
            store_idempotent_response(
                session, row=key_row, status_code=_kept_status(False), response=reply.body
            )
        session.commit()
    return reply


_RESEND_FIELDS: tuple[tuple[str, str], ...] = (
    ("received_at", "received_at"),
    ("child_id", "child.child_id"),
    ("household_id", "child.household_id"),
    ("referrer_type", "referrer.type"),
    ("referrer_relationship", "referrer.relationship"),
    ("referrer_id", "referrer.referrer_id"),
    ("concerns", "concerns"),
    ("injury_reported", "injury.reported"),
    ("injury_sites", "injury.sites"),
    ("injury_photographed", "injury.photographed"),
    ("narrative", "narrative"),
)
"""Stored referral columns a resend is compared on, with their paths in the request body."""
_UNORDERED = frozenset({"concerns", "injury_sites"})


def resend_differences(stored: ReferralRow, values: Mapping[str, Any]) -> list[str]:
    """Body paths in which a resend (``_referral_values``) differs from the stored referral.

    Lists are compared as sets (order carries no meaning), the household members too. The
    child's details are compared with the child as the stored referral sent it, when it was
    kept (referrals stored since migration 0007).
    """
    differ = []
    sent_child = values["child_as_sent"]
    for column, path in _RESEND_FIELDS:
        if path in ("child.child_id", "child.household_id") and sent_child.get(path[6:]) is None:
            continue  # the service resolved it: the resend did not name one
        old, new = getattr(stored, column), values[column]
        if column in _UNORDERED:
            old, new = set(old), set(new)
        if old != new:
            differ.append(path)
    # Stored before migration 0009 (None): no referral could list members then.
    if _members_key(stored.household_members or []) != _members_key(values["household_members"]):
        differ.append("household_members")
    if stored.child_as_sent is not None:
        sent = values["child_as_sent"]
        for name in sorted(set(stored.child_as_sent) | set(sent)):
            if name not in ("child_id", "household_id") and stored.child_as_sent.get(
                name
            ) != sent.get(name):
                differ.append(f"child.{name}")
    return differ


def _members_key(members: list[Any]) -> list[str]:
    """Household members compared as a set: the order they were listed in carries no meaning."""
    return sorted(json.dumps(member, sort_keys=True) for member in members)


def _record(values: dict[str, Any]) -> ReferralRecord:
    """A referral about to be stored, as the feature builders see it."""
    return ReferralRecord(
        referral_id=values["referral_id"],
        child_id=values["child_id"],
        household_id=values["household_id"],
        t_ms=to_ms(values["received_at"]),
        referrer_type=values["referrer_type"],
        referrer_relationship=values["referrer_relationship"],
        referrer_id=values["referrer_id"],
        concerns=frozenset(values["concerns"]),
        injury_reported=bool(values["injury_reported"]),
        injury_sites=frozenset(values["injury_sites"]),
    )


@dataclass(frozen=True, slots=True)
class _Received:
    """What the reply shows of the referral just stored (``service.views.ReceivedReferral``)."""

    referral_id: str
    source_system: str
    source_referral_id: str
    received_at: datetime


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


# --- agency events --------------------------------------------------------------------------

_EVENT = TypeAdapter(AgencyEventIn)


def validate_events(payload: Any) -> tuple[list[AgencyEventIn], bool]:
    """Validate one event or a list of up to ``MAX_EVENTS``; 422 names each bad item's index."""
    batch = isinstance(payload, list)
    items = payload if batch else [payload]
    if batch and not items:
        raise invalid([{"field": "body", "reason": "the list of events is empty"}])
    if len(items) > MAX_EVENTS:
        raise invalid(
            [
                {
                    "field": "body",
                    "reason": f"at most {MAX_EVENTS} events per request, not {len(items)}",
                }
            ]
        )
    events: list[AgencyEventIn] = []
    errors: list[dict[str, str]] = []
    for index, item in enumerate(items):
        try:
            events.append(_EVENT.validate_python(item))
        except ValidationError as exc:
            for error in error_fields(exc):
                field = error["field"]
                if batch:
                    field = f"{index}.{field}" if field else str(index)
                errors.append({"field": field or "body", "reason": error["reason"]})
    if errors:
        raise invalid(errors)
    return events, batch


def receive_events(
    state: ServiceContext,
    *,
    events: list[AgencyEventIn],
    batch: bool,
    actor: str,
    idempotency_key: str | None,
) -> Reply:
    """Store new events (known ones are reported as duplicates), then rescore affected referrals."""
    digest = request_hash([_as_first_kept(event.model_dump(mode="json")) for event in events])
    model = state.models.current
    path: Callable[[int, str], str] = (lambda i, f: f"{i}.{f}") if batch else (lambda i, f: f)
    with state.sessions() as session:
        stored_key = _replay(
            session, actor=actor, scope=EVENTS_SCOPE, key=idempotency_key, digest=digest
        )
        if stored_key is not None and stored_key.response is not None:
            return Reply(_created(stored_key.status_code), stored_key.response, replayed=True)
        child_ids = sorted({e.child_id for e in events if e.child_id is not None})
        known = set(
            session.scalars(select(ChildRow.child_id).where(ChildRow.child_id.in_(child_ids)))
        )
        unknown = [
            {
                "field": path(i, "child_id"),
                "reason": "no child with this id is known: send a referral about the child first, "
                "or send the event for the household only",
            }
            for i, e in enumerate(events)
            if e.child_id is not None and e.child_id not in known
        ]
        if unknown:
            raise invalid(unknown, "events name children the service does not know")
        people = plan_people(session, events, path)
        for household_id in sorted({e.household_id for e in events if e.household_id}):
            _ensure_household(session, household_id, None)
        persons_added = add_new_persons(session, people)
        results = []
        created = []
        created_at: set[int] = set()
        received = utcnow()
        event_ids = [new_id("E") for _ in events]
        children = resolve_event_children(
            state.identity, session, events, event_ids=event_ids, received=received
        )
        for index, event in enumerate(children.events):
            try:
                row = add_event(
                    session,
                    event={
                        "event_id": event_ids[index],
                        "source_system": event.source_system,
                        "source_event_id": event.source_event_id,
                        "child_id": event.child_id,
                        "household_id": event.household_id,
                        "person_id": event.person_id,
                        "occurred_at": event.occurred_at,
                        "recorded_at": _recorded_at(event, received),
                        "agency": str(event.agency),
                        "kind": str(event.kind),
                        "attributes": dict(event.attributes),
                        "synthetic": False,
                    },
                )
                created.append(row)
                created_at.add(index)
                status, event_id = "created", row.event_id
            except DuplicateEvent as duplicate:
                status, event_id = "duplicate", duplicate.event_id
            results.append(
                {
                    "index": index,
                    "event_id": event_id,
                    "source_system": event.source_system,
                    "source_event_id": event.source_event_id,
                    "status": status,
                    "resolution": children.resolutions.get(index),
                }
            )
        opened, closed = apply_memberships(session, people, created_at)
        affected: list[str] = []
        if created:
            add_audit_event(
                session,
                actor=actor,
                action="events.received",
                entity_type="event",
                payload={
                    "event_ids": [row.event_id for row in created],
                    "duplicates": len(results) - len(created),
                    "request_sha256": digest,
                    **_people_audit(people, persons_added, opened, closed),
                    **({"identity": children.audit} if children.audit else {}),
                },
            )
            # Only records before a referral count for it, so only later referrals can move.
            # An adult's records count wherever the adult has lived.
            adults = sorted({r.person_id for r in created if r.person_id})
            households = {r.household_id for r in created if r.household_id}
            households |= set(households_of_persons(session, person_ids=adults))
            affected = open_referrals_affected_by(
                session,
                child_ids=sorted({r.child_id for r in created if r.child_id}),
                household_ids=sorted(households),
                received_after=min(_known_from(r) for r in created),
            )
        key_row = None
        if idempotency_key is not None:
            key_row = _claim(
                session,
                actor=actor,
                scope=EVENTS_SCOPE,
                key=idempotency_key,
                digest=digest,
                entity_id=None,
            )
        session.commit()
    rescored, not_rescored = rescore_each(state, model, affected, actor=actor, trigger="events")
    body = {
        "created": len(created),
        "duplicates": len(results) - len(created),
        "items": results,
        "rescored": rescored,
        "not_rescored": not_rescored,
    }
    reply = Reply(bool(created), as_json(EventsAccepted, body))
    _remember(state, key_row, reply)
    return reply


def _recorded_at(event: AgencyEventIn, received: datetime) -> datetime:
    """When the event became known: as sent, else when the service received it (never before
    it occurred: an occurred_at within the clock skew ahead of ours is kept)."""
    if event.recorded_at is not None:
        return event.recorded_at
    return max(received, event.occurred_at)


def _known_from(row: EventRow) -> datetime:
    """From when a stored event can move a referral's features: once recorded, except that a
    membership it opened or closed counts from when it occurred (memberships carry no
    recorded_at)."""
    if row.kind in _MEMBERSHIP_KINDS or row.recorded_at is None:
        return row.occurred_at
    return row.recorded_at


_MEMBERSHIP_KINDS = frozenset(kind.value for kind in MEMBERSHIP_EVENT_KINDS)


def _people_audit(
    plan: PeoplePlan, added: list[str], opened: list[str], closed: list[str]
) -> dict[str, Any]:
    """What the events did to persons and memberships, for their audit event (ids only)."""
    done: dict[str, Any] = {
        "persons_added": added,
        "memberships_opened": opened,
        "memberships_closed": closed,
        # A known person is kept as stored: the contradicting fields are named, not applied.
        "person_details_differ": plan.details_differ,
    }
    return {name: value for name, value in done.items() if value}
