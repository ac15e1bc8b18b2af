"""The practice-review chronology: everything the service held and did about a child (or every
child ever in a household), in time order, with the audit-log entries behind each item.

A safeguarding review needs what the tool said at the time, so every record is given with its
stored values exactly (scores, bands, reasons, model versions, safety rules, decisions and
their rationales); words are added beside them, never instead. Each audit entry carries its
sequence number, hash and previous hash, so a reviewer can check it against
``triage auditlog verify``. No HTTP here: the page and the command line both call ``build``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.orm import Session

from explain.words import reason_line
from service.errors import Invalid, NotFound, invalid
from service.plain_names import agency_name, decision_name, referrer_name
from service.reason_words import sentence_of
from triage.queue import flags_in_words
from triage.store import add_audit_event
from triage.store.auditlog import row_hash
from triage.store.checks import (
    check_requests_for_referrals,
    facts_for_referrals,
    sign_offs_for_referrals,
    strategy_discussions_for_referrals,
)
from triage.store.decisions import decisions_for_referrals
from triage.store.identity import identity_records_of
from triage.store.people import memberships_of_persons
from triage.store.review import (
    audit_events_about,
    chain_head,
    children_by_id,
    children_ever_in_household,
    disputes_for_referrals,
    household_exists,
    identity_tasks_touching,
    merges_touching,
    priority_judgements_for_referrals,
    referrals_of_children,
    scores_for_referrals,
    user_roles,
)
from triage.store.tables import AuditEventRow, Base, ReferralRow, table_of, utcnow

FORMAT = "triage.practice-review"
VERSION = 1
"""Bumped whenever a field changes meaning or goes; new fields do not bump it."""
EXPORT_ACTION = "export.practice_review"
SUBJECT_KINDS = ("child", "household")
REASON_MAX = 200
"""The review's name or reference (``CSPR 2026/14``), as the audit entry records it."""
ID_MAX = 64

ITEM_TITLES = {
    "referral": "Referral received",
    "score": "Scored",
    "priority": "Own priority given before the band",
    "decision": "Front-door decision",
    "sign_off": "Sign-off",
    "dispute": "Record disputed",
    "check_request": "Information requested",
    "check_reply": "Reply to a request",
    "strategy_discussion": "Strategy discussion",
    "fact": "Fact recorded",
    "reopened": "Reopened",
    "identity_record": "Agency record linked to the child",
    "identity_task": "Who is this child? task",
    "merge": "Records merged",
}
"""Each kind of item, as the chronology titles it."""

_AUDIT_ONLY = {"referral.reopened": ("reopened", "Put back in the queue by a manager")}
"""Acts recorded only in the audit log that belong in the chronology as items of their own."""


@dataclass(frozen=True)
class Subject:
    """Whom the review is about: one child, or one household (every child ever in it)."""

    kind: str
    id: str


def subject_of(*, child: str | None, household: str | None) -> Subject:
    """The subject named by exactly one of ``child`` and ``household``; 422-style otherwise."""
    child, household = (child or "").strip() or None, (household or "").strip() or None
    if child and household:
        raise invalid(
            [{"field": "household", "reason": "give a child or a household, not both"}],
            "give a child or a household, not both",
        )
    if not child and not household:
        raise invalid(
            [{"field": "child", "reason": "give a child id or a household id"}],
            "give a child id or a household id",
        )
    kind, value = ("child", child) if child else ("household", household)
    assert value is not None
    if len(value) > ID_MAX or not all(c.isalnum() or c in "._-" for c in value):
        raise invalid([{"field": kind, "reason": "an id is letters, digits, '.', '_' or '-'"}])
    return Subject(kind, value)


def check_reason(reason: str | None) -> str:
    """The review's name or reference, trimmed; 422-style when missing or too long."""
    text = " ".join((reason or "").split())
    if not text:
        raise invalid([{"field": "reason", "reason": "name the review this export is for"}])
    if len(text) > REASON_MAX:
        raise invalid([{"field": "reason", "reason": f"at most {REASON_MAX} characters"}])
    return text


def _children_of(session: Session, subject: Subject) -> list[str]:
    """The children the subject covers; NotFound naming the field when the id is unknown."""
    if subject.kind == "child":
        if not children_by_id(session, child_ids=[subject.id]):
            raise NotFound(
                "not_found",
                f"no child with id {subject.id!r}",
                [{"field": "child", "reason": "no child has this id"}],
            )
        return [subject.id]
    if not household_exists(session, household_id=subject.id):
        raise NotFound(
            "not_found",
            f"no household with id {subject.id!r}",
            [{"field": "household", "reason": "no household has this id"}],
        )
    return children_ever_in_household(session, household_id=subject.id)


# --- values -----------------------------------------------------------------------------------


def _values(row: Base, *skip: str) -> dict[str, Any]:
    """A stored row's columns, exactly as stored (``skip``: columns left out)."""
    return {
        column.key: getattr(row, column.key)
        for column in table_of(type(row)).columns
        if column.key not in skip
    }


def _actor_kind(actor: str) -> str:
    if actor.startswith("U-"):
        return "user"
    if actor.startswith("K-"):
        return "api_key"
    if actor.startswith("cli:"):
        return "cli"  # "cli:<login>": the person who ran a command
    return actor  # "system", "cli", "test"...


def _entry(row: AuditEventRow, roles: Mapping[str, list[str]]) -> dict[str, Any]:
    """An audit event as the review shows it, with whether its hash matches its contents."""
    kind = _actor_kind(row.actor)
    return {
        "sequence": row.id,
        "occurred_at": row.occurred_at,
        "action": row.action,
        "actor": row.actor,
        "actor_kind": kind,
        "actor_roles_now": roles.get(row.actor, ["referrer"] if kind == "api_key" else []),
        "entity_type": row.entity_type,
        "entity_id": row.entity_id,
        "model_version": row.model_version,
        "payload": row.payload,
        "prev_hash": row.prev_hash,
        "hash": row.hash,
        "hash_matches_contents": row.prev_hash is not None
        and row.hash == row_hash(row, row.prev_hash),
    }


def _item(kind: str, at: datetime, record: dict[str, Any], words: str, key: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "title": ITEM_TITLES[kind],
        "at": at,
        "words": words,
        "record": record,
        "audit": [],
        "_key": key,
    }


def _audit_keys(row: AuditEventRow) -> list[tuple[str, Any]]:
    """The items an audit event is behind, by (item kind, id)."""
    payload = row.payload or {}
    action = row.action
    by_payload = {
        "referral.scored": ("score", "score_id"),
        "referral.decided": ("decision", "decision_id"),
        "referral.disputed": ("dispute", "dispute_id"),
        "check.requested": ("check_request", "request_id"),
        "check.replied": ("check_reply", "request_id"),
        "strategy.recorded": ("strategy_discussion", "discussion_id"),
        "signoff.requested": ("sign_off", "sign_off_id"),
        "signoff.signed_off": ("sign_off", "sign_off_id"),
        "signoff.sent_back": ("sign_off", "sign_off_id"),
        "person.merged": ("merge", "merge_id"),
        "person.merge_undone": ("merge", "merge_id"),
    }
    if action == "referral.received":
        resolution = payload.get("resolution") or {}
        return [("referral", row.entity_id), ("identity_record", resolution.get("record_id"))]
    if action == "referral.priority_judged":
        return [("priority", (row.entity_id, row.actor))]
    if action == "facts.recorded":
        return [("fact", fact_id) for fact_id in payload.get("fact_ids", ())]
    if row.entity_type == "identity_task":
        return [("identity_task", row.entity_id)]
    if action in by_payload:
        kind, field = by_payload[action]
        return [(kind, payload.get(field))]
    return []


# --- items ------------------------------------------------------------------------------------


def _referral_item(row: ReferralRow) -> dict[str, Any]:
    who = referrer_name(row.referrer_type, row.referrer_relationship)
    concerns = ", ".join(c.replace("_", " ") for c in row.concerns) or "no concern named"
    words = f"From {who} ({row.referrer_type}), about {concerns}"
    if row.injury_reported:
        sites = ", ".join(s.replace("_", " ") for s in row.injury_sites)
        words += "; injury reported" + (f" ({sites})" if sites else "")
        words += ", photographed" if row.injury_photographed else ""
    return _item("referral", row.received_at, _values(row), words, row.referral_id)


def _score_words(record: Mapping[str, Any]) -> str:
    flags = flags_in_words(record["flags"])
    words = (
        f"{record['band']}: probability {record['probability']:.3f} "
        f"({record['probability_low']:.3f}–{record['probability_high']:.3f}), "
        f"model {record['model_version']}"
    )
    if flags:
        words += "; safety rule: " + "; ".join(flag["words"] for flag in flags)
    return words


def reasons_in_words(reasons: Iterable[Mapping[str, Any]]) -> list[str]:
    """Stored reasons as sentences with their pull in words (as the referral page reads them)."""
    out = []
    for reason in reasons:
        try:
            out.append(reason_line(sentence_of(reason), float(reason.get("contribution", 0.0))))
        except (KeyError, TypeError, ValueError):  # a reason stored in an older shape
            out.append(str(reason.get("sentence") or reason.get("signal") or reason))
    return out


def _decision_words(record: Mapping[str, Any]) -> str:
    words = decision_name(record["decision"])
    if record.get("priority"):
        words += f"; own priority {record['priority'].replace('_', ' ')}"
    if record.get("agreement"):
        words += f"; {record['agreement'].replace('_', ' ')}"
    return words


def _referral_items(
    session: Session, referrals: Sequence[ReferralRow]
) -> dict[str, list[dict[str, Any]]]:
    """Every item of each referral (unordered), by referral id."""
    ids = [r.referral_id for r in referrals]
    items: dict[str, list[dict[str, Any]]] = {rid: [] for rid in ids}
    for referral in referrals:
        items[referral.referral_id].append(_referral_item(referral))
    for score in scores_for_referrals(session, referral_ids=ids):
        record = _values(score)
        record["safety_rules"] = flags_in_words(score.flags)
        record["reasons_in_words"] = reasons_in_words(score.reasons)
        item = _item("score", score.scored_at, record, _score_words(record), score.id)
        items[score.referral_id].append(item)
    for judged in priority_judgements_for_referrals(session, referral_ids=ids):
        words = f"Own priority {judged.priority.replace('_', ' ')}, before the band was shown"
        key = (judged.referral_id, judged.judged_by)
        items[judged.referral_id].append(
            _item("priority", judged.judged_at, _values(judged), words, key)
        )
    for decision in decisions_for_referrals(session, referral_ids=ids):
        record = _values(decision)
        record["override"] = decision.agreement not in (None, "agree")
        words = _decision_words(record) + ("; overrides the band" if record["override"] else "")
        items[decision.referral_id].append(
            _item("decision", decision.decided_at, record, words, decision.id)
        )
    for sign_off in sign_offs_for_referrals(session, referral_ids=ids):
        words = f"{sign_off.status.replace('_', ' ').capitalize()}: " + "; ".join(sign_off.reasons)
        items[sign_off.referral_id].append(
            _item("sign_off", sign_off.requested_at, _values(sign_off), words, sign_off.sign_off_id)
        )
    for dispute in disputes_for_referrals(session, referral_ids=ids):
        words = f"Record {dispute.record_id} disputed"
        if dispute.before and dispute.after:
            words += f": band {dispute.before.get('band')} → {dispute.after.get('band')} without it"
        items[dispute.referral_id].append(
            _item("dispute", dispute.disputed_at, _values(dispute), words, dispute.id)
        )
    for request in check_requests_for_referrals(session, referral_ids=ids):
        record = _values(request)
        agency = agency_name(request.agency)
        items[request.referral_id].append(
            _item(
                "check_request",
                request.requested_at,
                record,
                f"Asked {agency}",
                request.request_id,
            )
        )
        if request.replied_at is not None:
            outcome = (request.reply_outcome or "").replace("_", " ")
            items[request.referral_id].append(
                _item(
                    "check_reply",
                    request.replied_at,
                    record,
                    f"{agency} replied: {outcome}",
                    request.request_id,
                )
            )
    for talk in strategy_discussions_for_referrals(session, referral_ids=ids):
        agencies = ", ".join(agency_name(a.get("agency", "")) for a in talk.attendees)
        words = f"{talk.outcome.replace('_', ' ').capitalize()}; attended by {agencies}"
        items[talk.referral_id].append(
            _item("strategy_discussion", talk.held_at, _values(talk), words, talk.discussion_id)
        )
    for fact in facts_for_referrals(session, referral_ids=ids):
        words = f"{fact.kind.replace('_', ' ')}: {fact.value.replace('_', ' ')}"
        items[fact.referral_id].append(
            _item("fact", fact.occurred_at, _values(fact), words, fact.fact_id)
        )
    return items


def _attach(
    items: Iterable[dict[str, Any]],
    events: Iterable[AuditEventRow],
    roles: Mapping[str, list[str]],
) -> list[AuditEventRow]:
    """Put each event on the items it is behind; return the events no item claimed."""
    by_key: dict[tuple[str, Any], list[dict[str, Any]]] = defaultdict(list)
    for item in items:
        by_key[(item["kind"], item["_key"])].append(item)
    left = []
    for event in events:
        claimed = False
        for key in _audit_keys(event):
            for item in by_key.get(key, ()):
                item["audit"].append(_entry(event, roles))
                claimed = True
        if not claimed:
            left.append(event)
    return left


def _ordered(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Oldest first; items at the same moment keep the order they were made in."""
    out = sorted(
        items, key=lambda i: (_utc(i["at"]), i["audit"][0]["sequence"] if i["audit"] else 0)
    )
    for item in out:
        item.pop("_key", None)
    return out


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# --- the document -----------------------------------------------------------------------------


def build(
    session: Session,
    *,
    subject: Subject,
    reason: str,
    generated_by: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The chronology of the subject as one document (Python values; ``to_json`` for the file).

    Raises ``NotFound`` (naming the field) for an unknown child or household.
    """
    child_ids = _children_of(session, subject)
    children = children_by_id(session, child_ids=child_ids)
    referrals = referrals_of_children(session, child_ids=child_ids)
    referral_ids = [r.referral_id for r in referrals]
    items = _referral_items(session, referrals)
    tasks = identity_tasks_touching(session, child_ids=child_ids, referral_ids=referral_ids)
    merges = merges_touching(session, person_ids=child_ids)
    events = [
        *audit_events_about(session, entity_type="referral", entity_ids=referral_ids),
        *audit_events_about(
            session, entity_type="identity_task", entity_ids=[t.task_id for t in tasks]
        ),
        *audit_events_about(
            session, entity_type="person", entity_ids={m.into_person_id for m in merges}
        ),
    ]
    memberships = memberships_of_persons(session, person_ids=child_ids)
    households = {c.household_id for c in children} | {m.household_id for m in memberships}
    earlier = sorted(
        [
            *audit_events_about(session, entity_type="child", entity_ids=child_ids),
            *audit_events_about(session, entity_type="household", entity_ids=households),
        ],
        key=lambda event: event.id,
    )
    roles = user_roles(session, user_ids={e.actor for e in [*events, *earlier]})

    identity_items: dict[str, list[dict[str, Any]]] = {c: [] for c in child_ids}
    for child_id in child_ids:
        for record in identity_records_of(session, person_id=child_id):
            words = f"{record.source_system} record, {(record.resolution or 'resolved')}"
            if record.match_probability is not None:
                words += f", match probability {record.match_probability:.2f}"
            identity_items[child_id].append(
                _item(
                    "identity_record",
                    record.first_seen_at,
                    _values(record),
                    words,
                    record.record_id,
                )
            )
    referral_child = {r.referral_id: r.child_id for r in referrals}
    for task in tasks:
        words = task.status.capitalize()
        if task.match_probability is not None:
            words += f", match probability {task.match_probability:.2f}"
        owner = referral_child.get(task.referral_id or "", task.candidate_person_id or "")
        identity_items.get(owner, identity_items[child_ids[0]]).append(
            _item("identity_task", task.created_at, _values(task), words, task.task_id)
        )
    for merge in merges:
        owner = (
            merge.into_person_id if merge.into_person_id in identity_items else merge.from_person_id
        )
        words = f"{merge.from_person_id} merged into {merge.into_person_id}"
        words += f", undone {merge.undone_at:%Y-%m-%d}" if merge.undone_at else ""
        identity_items[owner].append(
            _item("merge", merge.merged_at, _values(merge), words, merge.merge_id)
        )

    every_item = [i for group in (*items.values(), *identity_items.values()) for i in group]
    unclaimed = _attach(every_item, events, roles)
    other: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in unclaimed:
        if event.entity_type != "referral" or event.entity_id not in items:
            continue  # an identity or merge event about another record of the person
        if event.action in _AUDIT_ONLY:
            kind, words = _AUDIT_ONLY[event.action]
            item = _item(kind, event.occurred_at, {}, words, None)
            item["audit"].append(_entry(event, roles))
            items[event.entity_id].append(item)
        else:
            other[event.entity_id].append(_entry(event, roles))

    stays: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for membership in memberships:
        stays[membership.person_id].append(_values(membership, "synthetic"))
    by_child: dict[str, list[ReferralRow]] = defaultdict(list)
    for referral in referrals:
        by_child[referral.child_id].append(referral)
    head = chain_head(session)
    document_children: list[dict[str, Any]] = []
    for child in children:
        document_children.append(
            {
                "child": _values(child),
                "memberships": stays[child.child_id],
                "referrals": [
                    {
                        "referral_id": r.referral_id,
                        "received_at": r.received_at,
                        "timeline": _ordered(items[r.referral_id]),
                        "other_audit": other[r.referral_id],
                    }
                    for r in by_child[child.child_id]
                ],
                "identity": _ordered(identity_items.get(child.child_id, [])),
            }
        )
    every_item = [i for group in (*items.values(), *identity_items.values()) for i in group]
    # An entry can be behind two items (a receipt and the identity record it resolved).
    shown = {e["sequence"] for i in every_item for e in i["audit"]}
    audit_count = len(shown | {e["sequence"] for entries in other.values() for e in entries})
    return {
        "format": FORMAT,
        "version": VERSION,
        "generated_at": now or utcnow(),
        "generated_by": generated_by,
        "reason": reason,
        "subject": {"kind": subject.kind, "id": subject.id},
        "times": "ISO 8601 in UTC (the HTML shows UK local time)",
        "audit_chain": {
            "head_sequence": head.id if head is not None else 0,
            "head_hash": head.hash if head is not None else None,
            "verify_with": "triage auditlog verify",
        },
        "counts": {
            "children": len(document_children),
            "referrals": len(referrals),
            "scores": sum(1 for i in every_item if i["kind"] == "score"),
            "decisions": sum(1 for i in every_item if i["kind"] == "decision"),
            "overrides": sum(
                1 for i in every_item if i["kind"] == "decision" and i["record"]["override"]
            ),
            "audit_entries": audit_count,
        },
        "children": document_children,
        "earlier_exports": [_entry(e, roles) for e in earlier],
    }


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return _utc(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"not JSON: {type(value).__name__}")


def to_json(document: Mapping[str, Any]) -> str:
    """The document as the JSON file holds it: times as ISO 8601 UTC, keys in a stable order."""
    return json.dumps(document, default=_default, indent=1, ensure_ascii=False) + "\n"


def file_name(document: Mapping[str, Any], extension: str) -> str:
    """``review-<id>.json`` or ``.html`` (ids are letters, digits, '.', '_' or '-': checked)."""
    return f"review-{document['subject']['id']}.{extension}"


def record_export(
    session: Session,
    *,
    document: Mapping[str, Any],
    actor: str,
    channel: str,
    files: Sequence[str] = (),
) -> None:
    """Append the export's audit event (who, which child or household, the review, what went)."""
    subject = document["subject"]
    add_audit_event(
        session,
        actor=actor,
        action=EXPORT_ACTION,
        entity_type=subject["kind"],
        entity_id=subject["id"],
        payload={
            "reason": document["reason"],
            "channel": channel,
            "files": list(files),
            "children": document["counts"]["children"],
            "referrals": document["counts"]["referrals"],
            "audit_entries": document["counts"]["audit_entries"],
            "chain_head": document["audit_chain"]["head_sequence"],
        },
    )


__all__ = [
    "EXPORT_ACTION",
    "FORMAT",
    "VERSION",
    "Invalid",
    "NotFound",
    "Subject",
    "build",
    "check_reason",
    "file_name",
    "record_export",
    "subject_of",
    "to_json",
]
