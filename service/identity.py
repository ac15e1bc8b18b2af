"""Identity resolution at intake, "possible same person" tasks, merges and their undoing.

A referral without a ``child_id``, or an agency event carrying a child's details instead
(``service.event_children``), is resolved by the linker (``triage.identity``:
``IdentityModel.resolve(record, known) -> Resolution``), which the app holds as
``ServiceContext.identity``. Outcomes:

* ``given``: the sender named the child; the details are kept as an identity record.
* ``linked``: at or above the linker's ``LINK_AT``: the referral or event joins that child.
* ``possible_match``: stored against a NEW child and a task asks a person whether the two
  are the same child. Never a silent merge: only a confirmed task merges.
* ``new``: a new child (and, without a ``household_id``, a new household).

Fail-safe: when the linker is missing or raises, the referral or event is stored all the same
against a ``new`` child, and a task without a candidate asks a person to check by hand whether
the child is already known (the reply says ``new`` with the ``task_id``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import pandas as pd
from sqlalchemy.orm import Session

from service.context import ServiceContext
from service.errors import Conflict, not_found
from service.linker import Resolver
from service.scoring import rescore_each
from triage.schema import ChildDetails, ReferralIn
from triage.store import (
    EventRow,
    IdentityTaskRow,
    PersonMergeRow,
    add_audit_event,
    add_person_merge,
    current_household_of,
    decide_identity_task,
    get_child,
    get_identity_record,
    get_identity_task,
    get_person_merge,
    households_of_persons,
    identity_records_of,
    identity_task_for_event,
    identity_task_for_referral,
    insert_audit_event,
    insert_identity_record_if_new,
    insert_identity_task,
    known_identities_near,
    list_identity_tasks,
    lock_identities,
    merges_of_person,
    open_referrals_of_children,
    repoint_person,
    restore_person,
)
from triage.store.identity import IDENTITY_COLUMNS
from triage.store.tables import utcnow

log = logging.getLogger(__name__)

OUTCOMES = ("given", "linked", "possible_match", "new")
NEW_CHILD_OUTCOMES = frozenset({"possible_match", "new"})
"""Outcomes that store the referral or event against a child the service did not hold before."""
COMPARED_FIELDS: tuple[tuple[str, str], ...] = (
    ("given_name", "Given name"),
    ("family_name", "Family name"),
    ("date_of_birth", "Date of birth"),
    ("sex", "Sex"),
    ("nhs_number", "NHS number"),
    ("postcode", "Postcode"),
    ("school", "School"),
)
"""The fields a task compares side by side, with the words a page shows for them."""
EVIDENCE_WORDS = {
    "exact": "the same",
    "same": "the same",
    "variant": "another form of the same name (such as Bob and Robert)",
    "typo": "one typing slip apart",
    "similar": "a similar spelling",
    "close": "nearly the same (a small difference)",
    "nickname": "a known short form of the same name",
    "day_month_swapped": "day and month swapped",
    "swapped": "day and month swapped",
    "one_part_differs": "one of day, month or year differs",
    "sector": "the same postcode sector, not the same postcode",
    "district": "the same postcode district only",
    "area": "the same postcode area only",
    "differs": "different",
    "missing": "not known on one side",
}
"""The linker's per-field evidence in words (others are shown with spaces for underscores)."""


# --- resolution at intake ---------------------------------------------------------------------


def new_id(prefix: str) -> str:
    """A fresh opaque id (fits ``triage.schema.Id``)."""
    return f"{prefix}-{uuid.uuid4().hex}"


def record_id_for(referral_id: str) -> str:
    """The id of the identity record a referral's child details are kept as."""
    return f"IDR-{referral_id}"


@dataclass(frozen=True)
class ChildResolution:
    """How a referral's child was resolved, and what the intake stores for it."""

    outcome: str
    child_id: str
    household_id: str
    match_probability: float | None
    record: dict[str, Any]
    task: dict[str, Any] | None = None
    candidate_ids: tuple[str, ...] = field(default=())
    seen: frozenset[str] | None = None
    """The known records the linker read (None: it read none), to notice records that arrive
    before a new child is stored (``others_arrived``)."""

    def reply(self) -> dict[str, Any]:
        """The reply's ``resolution`` object."""
        return {
            "outcome": self.outcome,
            "person_id": self.child_id,
            "match_probability": self.match_probability,
            "task_id": self.task["task_id"] if self.task is not None else None,
        }

    def audit(self) -> dict[str, Any]:
        """Ids and numbers only, for the referral's audit event."""
        return {
            "outcome": self.outcome,
            "record_id": self.record["record_id"],
            "match_probability": self.match_probability,
            "task_id": self.task["task_id"] if self.task is not None else None,
            "candidates": list(self.candidate_ids),
        }


def identity_record(
    details: ChildDetails,
    *,
    record_id: str,
    source_system: str,
    source_person_id: str,
    first_seen_at: datetime,
) -> dict[str, Any]:
    """A child's details as one identity record (``IDENTITY_COLUMNS``)."""
    return {
        "record_id": record_id,
        "source_system": source_system,
        "source_person_id": source_person_id,
        "given_name": details.given_name,
        "family_name": details.family_name,
        "date_of_birth": details.date_of_birth,
        "sex": str(details.sex),
        "postcode": details.postcode,
        "nhs_number": details.nhs_number,
        "school": details.school,
        "is_child": True,
        "first_seen_at": first_seen_at,
    }


def known_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Known identity records as the linker reads them (columns fixed even when empty)."""
    return pd.DataFrame(rows, columns=[*IDENTITY_COLUMNS, "person_id"])


def resolve_child(
    resolver: Resolver | None, session: Session, *, referral: ReferralIn, referral_id: str
) -> ChildResolution:
    """Resolve a referral's child (read-only; the intake's transaction stores the result)."""
    child = referral.child
    record = identity_record(
        child,
        record_id=record_id_for(referral_id),
        source_system=referral.source_system,
        # The referral carries no person id of its sender's: the referral's id stands in.
        source_person_id=child.child_id or referral_id,
        first_seen_at=referral.received_at,
    )
    if child.child_id is not None:
        assert child.household_id is not None  # the schema requires it with child_id
        return given(record, child.child_id, child.household_id)
    return resolve_details(
        resolver,
        session,
        details=child,
        record=record,
        household_id=child.household_id,
        opened_by={"referral_id": referral_id},
    )


def given(record: dict[str, Any], child_id: str, household_id: str) -> ChildResolution:
    """The sender named the child: its details are kept as that child's identity record."""
    return ChildResolution(
        "given", child_id, household_id, None, record | _resolved("given", child_id)
    )


def resolve_details(
    resolver: Resolver | None,
    session: Session,
    *,
    details: ChildDetails,
    record: dict[str, Any],
    household_id: str | None,
    opened_by: Mapping[str, str],
) -> ChildResolution:
    """Resolve a child's details to a known child, a possible match, or a new child.

    Read-only: the caller stores the result (``store_resolution``). ``opened_by`` names the
    referral or event (``referral_id`` or ``event_id``) a task would be opened by.
    """
    try:
        if resolver is None:
            raise LookupError("no linker")
        known = known_frame(
            known_identities_near(
                session,
                date_of_birth=details.date_of_birth,
                family_name=details.family_name,
                nhs_number=details.nhs_number,
                postcode=details.postcode,
            )
        )
        resolution = resolver.resolve(record, known)
    except Exception as exc:
        # The type only: a message could quote the child's details.
        log.error("resolving the child of %s failed: %s", record["record_id"], type(exc).__name__)
        return _unresolved(record, household_id, opened_by)
    candidates = tuple(resolution.candidates)
    ids = tuple(c.person_id for c in candidates)
    probability = resolution.match_probability
    seen = frozenset(str(record_id) for record_id in known["record_id"])
    if resolution.outcome == "linked" and resolution.person_id is not None:
        linked = get_child(session, child_id=resolution.person_id)
        if linked is not None:
            household = household_id or current_household_of(session, person_id=linked.child_id)
            return ChildResolution(
                "linked",
                linked.child_id,
                household or linked.household_id,
                probability,
                record | _resolved("linked", linked.child_id, probability),
                candidate_ids=ids,
            )
        # The linker named someone who is not a stored child: a person decides (below).
    child_id = new_id("C")
    household_id = household_id or new_id("H")
    best = candidates[0] if candidates else None
    if resolution.outcome in ("possible_match", "linked") and best is not None:
        task = _task(
            record["record_id"],
            opened_by,
            best.person_id,
            best.match_probability,
            {
                "fields": dict(best.evidence),
                "candidates": [
                    {"person_id": c.person_id, "match_probability": c.match_probability}
                    for c in candidates
                ],
            },
        )
        return ChildResolution(
            "possible_match",
            child_id,
            household_id,
            probability,
            record | _resolved("possible_match", child_id, probability),
            task,
            ids,
            seen,
        )
    return ChildResolution(
        "new",
        child_id,
        household_id,
        probability,
        record | _resolved("new", child_id, probability),
        candidate_ids=ids,
        seen=seen,
    )


def others_arrived(session: Session, resolution: ChildResolution, details: ChildDetails) -> bool:
    """Whether records the linker did not read now share a blocking key with a new child's
    details (then resolve again: a concurrent request stored the same child first).

    Takes ``lock_identities`` for the child's birth year first, so that on PostgreSQL a
    concurrent writer of the same child waits for this transaction and then sees its record.
    """
    if resolution.seen is None or resolution.outcome not in NEW_CHILD_OUTCOMES:
        return False
    lock_identities(session, birth_years=[details.date_of_birth.year])
    rows = known_identities_near(
        session,
        date_of_birth=details.date_of_birth,
        family_name=details.family_name,
        nhs_number=details.nhs_number,
        postcode=details.postcode,
    )
    return any(row["record_id"] not in resolution.seen for row in rows)


def _resolved(
    outcome: str, person_id: str | None = None, probability: float | None = None
) -> dict[str, Any]:
    return {
        "person_id": person_id,
        "resolution": outcome,
        "match_probability": probability,
        "created_at": utcnow(),
    }


def _task(
    record_id: str,
    opened_by: Mapping[str, str],
    candidate: str | None,
    probability: float | None,
    evidence: dict[str, Any],
) -> dict[str, Any]:
    return {
        "task_id": new_id("IDT"),
        "record_id": record_id,
        "referral_id": opened_by.get("referral_id"),
        "event_id": opened_by.get("event_id"),
        "candidate_person_id": candidate,
        "match_probability": probability,
        "evidence": evidence,
        "status": "open",
        "decided_by": None,
        "decided_at": None,
        "note": None,
        "created_at": utcnow(),
    }


def _unresolved(
    record: dict[str, Any], household_id: str | None, opened_by: Mapping[str, str]
) -> ChildResolution:
    """The fail-safe: a new child, and a task to check by hand whether the child is known."""
    child_id = new_id("C")
    task = _task(record["record_id"], opened_by, None, None, {"linker": "unavailable"})
    return ChildResolution(
        "new",
        child_id,
        household_id or new_id("H"),
        None,
        record | _resolved("new", child_id),
        task,
    )


def store_resolution(session: Session, resolution: ChildResolution) -> None:
    """Store the identity record and the task (in the intake's transaction, after the child)."""
    insert_identity_record_if_new(session, record=resolution.record)
    if resolution.task is not None:
        insert_identity_task(session, task=resolution.task)


def stored_resolution(
    session: Session,
    *,
    child_id: str,
    referral_id: str | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """A stored referral's or event's ``resolution`` as its reply showed it (``given`` if none
    kept)."""
    opened_by = referral_id or event_id
    assert opened_by is not None
    record = get_identity_record(session, record_id=record_id_for(opened_by))
    task = (
        identity_task_for_referral(session, referral_id=referral_id)
        if referral_id is not None
        else identity_task_for_event(session, event_id=opened_by)
    )
    if record is None or record.resolution is None:
        return {"outcome": "given", "person_id": child_id, "match_probability": None,
                "task_id": None}  # fmt: skip
    return {
        "outcome": record.resolution,
        # The child it is stored against now (a merge or its undoing moves it).
        "person_id": child_id,
        "match_probability": record.match_probability,
        "task_id": task.task_id if task is not None else None,
    }


# --- tasks ------------------------------------------------------------------------------------


def _words(value: str | None) -> str:
    if value is None:
        return ""
    return EVIDENCE_WORDS.get(value, value.replace("_", " "))


def _plain(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value.isoformat() if isinstance(value, date | datetime) else str(value)


def _compare(incoming: Any, candidate: Any) -> str:
    """Evidence of one field when the linker gave none."""
    if incoming is None or candidate is None:
        return "missing"
    same = str(incoming).casefold() == str(candidate).casefold()
    return "exact" if same else "differs"


def _candidate_details(session: Session, person_id: str | None) -> dict[str, str | None]:
    """What the service holds for a candidate: the child row, then the latest known details."""
    details: dict[str, str | None] = {name: None for name, _ in COMPARED_FIELDS}
    if person_id is None:
        return details
    child = get_child(session, child_id=person_id)
    if child is not None:
        for name in ("given_name", "family_name", "date_of_birth", "sex"):
            details[name] = _plain(getattr(child, name))
    for record in identity_records_of(session, person_id=person_id):
        for name, _ in COMPARED_FIELDS:
            if details[name] is None:
                details[name] = _plain(getattr(record, name))
    return details


def task_view(session: Session, task: IdentityTaskRow) -> dict[str, Any]:
    """A task with the incoming details and the candidate's, field by field, in words."""
    record = get_identity_record(session, record_id=task.record_id)
    assert record is not None
    incoming = {name: _plain(getattr(record, name)) for name, _ in COMPARED_FIELDS}
    candidate = _candidate_details(session, task.candidate_person_id)
    evidence = dict(task.evidence.get("fields", {}))
    comparison = []
    for name, label in COMPARED_FIELDS:
        said = evidence.get(name) or _compare(incoming[name], candidate[name])
        comparison.append(
            {
                "field": name,
                "label": label,
                "incoming": incoming[name],
                "candidate": candidate[name],
                "evidence": said,
                "words": _words(said),
            }
        )
    merge = _merge_of_task(session, task)
    event = session.get(EventRow, task.event_id) if task.event_id is not None else None
    return {
        "task_id": task.task_id,
        "status": task.status,
        "referral_id": task.referral_id,
        "event_id": task.event_id,
        # For the page's words: what the event that opened the task recorded.
        "event_agency": event.agency if event is not None else None,
        "event_kind": event.kind if event is not None else None,
        "record_id": task.record_id,
        "person_id": record.person_id,
        "candidate_person_id": task.candidate_person_id,
        "match_probability": task.match_probability,
        "linker_unavailable": task.evidence.get("linker") == "unavailable",
        "comparison": comparison,
        "created_at": task.created_at,
        "decided_by": task.decided_by,
        "decided_at": task.decided_at,
        "note": task.note,
        "merge_id": merge.merge_id if merge is not None else None,
        "merge_undone": merge is not None and merge.undone_at is not None,
    }


def _merge_of_task(session: Session, task: IdentityTaskRow) -> PersonMergeRow | None:
    if task.status != "confirmed" or task.candidate_person_id is None:
        return None
    for merge in merges_of_person(session, person_id=task.candidate_person_id):
        if merge.moved.get("task_id") == task.task_id:
            return merge
    return None


def task_for_referral(session: Session, *, referral_id: str) -> dict[str, Any] | None:
    """The view of the identity task a referral opened, None if it opened none."""
    task = identity_task_for_referral(session, referral_id=referral_id)
    return task_view(session, task) if task is not None else None


def list_tasks(session: Session, *, status: str | None, limit: int) -> list[dict[str, Any]]:
    """Tasks as listed (oldest first), each with its comparison."""
    return [task_view(session, t) for t in list_identity_tasks(session, status=status, limit=limit)]


def get_task(session: Session, *, task_id: str) -> dict[str, Any]:
    """One task's view; NotFound if there is none."""
    task = get_identity_task(session, task_id=task_id)
    if task is None:
        raise not_found("identity task", task_id)
    return task_view(session, task)


@dataclass(frozen=True)
class Decided:
    """A decided task, the merge it made (if any), and the referrals rescored after it."""

    task: dict[str, Any]
    merge_id: str | None
    rescored: list[str]
    not_rescored: list[str]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "task": self.task,
            "merge_id": self.merge_id,
            "rescored": self.rescored,
            "not_rescored": self.not_rescored,
        }


def _open_task(session: Session, task_id: str) -> IdentityTaskRow:
    task = get_identity_task(session, task_id=task_id)
    if task is None:
        raise not_found("identity task", task_id)
    if task.status != "open":
        raise Conflict("task_decided", f"identity task {task_id!r} is {task.status} already")
    return task


def reject_task(state: ServiceContext, *, task_id: str, actor: str, note: str) -> Decided:
    """Close a task as not the same person; nothing is merged."""
    with state.sessions() as session:
        task = _open_task(session, task_id)
        decide_identity_task(
            session, task_id=task_id, status="rejected", decided_by=actor, at=utcnow(), note=note
        )
        add_audit_event(
            session,
            actor=actor,
            action="identity.task_rejected",
            entity_type="identity_task",
            entity_id=task_id,
            payload={
                "referral_id": task.referral_id,
                "event_id": task.event_id,
                "candidate_person_id": task.candidate_person_id,
                "match_probability": task.match_probability,
            },
        )
        session.commit()
        session.expire_all()
        view = get_task(session, task_id=task_id)
    return Decided(view, None, [], [])


def confirm_task(state: ServiceContext, *, task_id: str, actor: str, note: str) -> Decided:
    """The same person: merge the task's new person into the candidate, then rescore."""
    with state.sessions() as session:
        task = _open_task(session, task_id)
        record = get_identity_record(session, record_id=task.record_id)
        assert record is not None
        into, from_ = task.candidate_person_id, record.person_id
        if into is None:
            raise Conflict(
                "no_candidate",
                "this task names no candidate (the linker was unavailable): reject it once "
                "checked by hand",
            )
        if get_child(session, child_id=into) is None:
            raise Conflict("candidate_not_child", f"{into!r} is not a child this service holds")
        if from_ is None or from_ == into:
            raise Conflict("nothing_to_merge", "the record is already this person's")
        merge = _merge(
            session, from_person_id=from_, into_person_id=into, actor=actor, reason=note,
            task_id=task_id,
        )  # fmt: skip
        decide_identity_task(
            session, task_id=task_id, status="confirmed", decided_by=actor, at=utcnow(), note=note
        )
        add_audit_event(
            session,
            actor=actor,
            action="identity.task_confirmed",
            entity_type="identity_task",
            entity_id=task_id,
            payload={
                "referral_id": task.referral_id,
                "event_id": task.event_id,
                "merge_id": merge.merge_id,
                "match_probability": task.match_probability,
            },
        )
        session.commit()
        merge_id = merge.merge_id
    rescored, not_rescored = _rescore(state, [into], actor=actor, trigger="merge")
    with state.read_sessions() as reader:
        view = get_task(reader, task_id=task_id)
    return Decided(view, merge_id, rescored, not_rescored)


def _merge(
    session: Session,
    *,
    from_person_id: str,
    into_person_id: str,
    actor: str,
    reason: str,
    task_id: str | None,
) -> PersonMergeRow:
    """Re-point the rows, record the merge, audit it (ids and counts only)."""
    into_household = current_household_of(session, person_id=into_person_id)
    moved = repoint_person(
        session,
        from_person_id=from_person_id,
        into_person_id=into_person_id,
        into_household=into_household,
    )
    moved["task_id"] = task_id
    merge = add_person_merge(
        session,
        merge={
            "merge_id": new_id("PM"),
            "from_person_id": from_person_id,
            "into_person_id": into_person_id,
            "merged_at": utcnow(),
            "merged_by": actor,
            "reason": reason,
            "moved": moved,
            "undone_at": None,
            "undone_by": None,
        },
    )
    insert_audit_event(
        session,
        actor=actor,
        action="person.merged",
        entity_type="person",
        entity_id=into_person_id,
        payload={
            "merge_id": merge.merge_id,
            "from_person_id": from_person_id,
            "into_person_id": into_person_id,
            "task_id": task_id,
            "moved": _counts(moved),
        },
    )
    return merge


def _counts(moved: Mapping[str, Any]) -> dict[str, int]:
    return {name: len(rows) for name, rows in moved.items() if isinstance(rows, list | dict)}


def undo_merge(state: ServiceContext, *, merge_id: str, actor: str, reason: str) -> dict[str, Any]:
    """Split a merged person again: exactly the rows the merge moved go back, then rescore."""
    with state.sessions() as session:
        merge = get_person_merge(session, merge_id=merge_id)
        if merge is None:
            raise not_found("person merge", merge_id)
        if merge.undone_at is not None:
            raise Conflict("merge_undone", f"merge {merge_id!r} was undone already")
        later = [
            m
            for m in merges_of_person(session, person_id=merge.into_person_id)
            if m.from_person_id == merge.into_person_id and m.undone_at is None
        ]
        if later:
            raise Conflict(
                "merged_again",
                f"the person was merged again since ({later[0].merge_id}): undo that first",
            )
        restore_person(session, moved=merge.moved, from_person_id=merge.from_person_id)
        merge.undone_at = utcnow()
        merge.undone_by = actor
        add_audit_event(
            session,
            actor=actor,
            action="person.merge_undone",
            entity_type="person",
            entity_id=merge.into_person_id,
            payload={
                "merge_id": merge_id,
                "from_person_id": merge.from_person_id,
                "into_person_id": merge.into_person_id,
                "moved": _counts(merge.moved),
                "reason_chars": len(reason),
            },
        )
        session.commit()
        people = [merge.from_person_id, merge.into_person_id]
        view = merge_view(merge)
    rescored, not_rescored = _rescore(state, people, actor=actor, trigger="merge_undone")
    return view | {"rescored": rescored, "not_rescored": not_rescored}


def merge_view(merge: PersonMergeRow) -> dict[str, Any]:
    """A merge as the API shows it."""
    return {
        "merge_id": merge.merge_id,
        "from_person_id": merge.from_person_id,
        "into_person_id": merge.into_person_id,
        "merged_at": merge.merged_at,
        "merged_by": merge.merged_by,
        "undone_at": merge.undone_at,
        "undone_by": merge.undone_by,
        "moved": {k: v for k, v in merge.moved.items() if k != "task_id"},
        "task_id": merge.moved.get("task_id"),
    }


def _rescore(
    state: ServiceContext, child_ids: list[str], *, actor: str, trigger: str
) -> tuple[list[str], list[str]]:
    """Rescore the open referrals of these children; (rescored, not rescored)."""
    with state.read_sessions() as reader:
        households = households_of_persons(reader, person_ids=child_ids)
        referral_ids = open_referrals_of_children(
            reader, child_ids=child_ids, household_ids=households
        )
    return rescore_each(state, state.models.current, referral_ids, actor=actor, trigger=trigger)
