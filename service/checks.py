"""Multi-agency checks on a referral: requests for information and replies, strategy
discussions and facts found out first hand; each act audited (ids and codes, never text)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from service import signoff
from service.errors import Conflict, invalid, not_found
from triage.checks import (
    AGENCY_WORDS,
    FACT_QUESTIONS,
    FACT_WORDS,
    KEY_AGENCY,
    REPLY_WORDS,
    STRATEGY_WORDS,
    CheckAgency,
    CheckReplyIn,
    CheckRequestIn,
    FactKind,
    FactsIn,
    StrategyDiscussionIn,
    due_problem,
    due_time,
)
from triage.store import add_audit_event, get_child, get_referral
from triage.store.checks import (
    add_check_fact,
    add_check_request,
    add_strategy_discussion,
    check_requests_for_referrals,
    count_open_requests,
    facts_for_referrals,
    get_check_request,
    open_request_to,
    open_requests_for_agencies,
    record_reply,
    strategy_discussions_for_referrals,
)
from triage.store.tables import (
    CheckFactRow,
    CheckRequestRow,
    ReferralRow,
    StrategyDiscussionRow,
    utcnow,
)

AGENCY_CHANNEL = "agency"
RECORDED_CHANNEL = "recorded"
"""How a reply arrived: the agency's own API key, or a practitioner typing it in."""


def _referral_or_404(session: Session, referral_id: str) -> ReferralRow:
    """The referral, or a 404 refusal."""
    referral = get_referral(session, referral_id=referral_id)
    if referral is None:
        raise not_found("referral", referral_id)
    return referral


# --- requests for information ---------------------------------------------------------------


def request_information(
    session: Session, *, referral_id: str, body: CheckRequestIn, actor: str
) -> dict[str, Any]:
    """Ask one agency what it knows (422 for a due time out of range, 409 if one is open)."""
    _referral_or_404(session, referral_id)
    now = utcnow()
    due_at = due_time(body.due_at, now=now)
    if (problem := due_problem(due_at, now=now)) is not None:
        raise invalid([{"field": "due_at", "reason": problem}])
    if open_request_to(session, referral_id=referral_id, agency=str(body.agency)) is not None:
        raise Conflict(
            "request_open",
            f"a request to {body.agency} about this referral is still awaiting its reply",
            [{"field": "agency", "reason": "a request to this agency is awaiting its reply"}],
        )
    row = add_check_request(
        session,
        referral_id=referral_id,
        agency=str(body.agency),
        question=body.question,
        requested_at=now,
        requested_by=actor,
        due_at=due_at,
    )
    add_audit_event(
        session,
        actor=actor,
        action="check.requested",
        entity_type="referral",
        entity_id=referral_id,
        payload={
            "request_id": row.request_id,
            "agency": row.agency,
            "due_at": due_at.isoformat(),
            "question_chars": len(body.question),
        },
    )
    session.commit()
    return request_out(row, now=now)


def may_answer(agency: str, key_agencies: Collection[str]) -> bool:
    """Whether a key reporting for ``key_agencies`` may answer a request to ``agency``."""
    return str(KEY_AGENCY[CheckAgency(agency)]) in key_agencies


def reply(
    session: Session,
    *,
    request_id: str,
    body: CheckReplyIn,
    actor: str,
    key_agencies: Collection[str] | None = None,
) -> dict[str, Any]:
    """Record the reply to a request: from an agency's key (``key_agencies``) or a person.

    A key answers only requests to its own agencies; any other request is reported as
    missing, so request ids cannot be probed. The first reply wins (409 after it).
    """
    row = get_check_request(session, request_id=request_id)
    if row is None or (key_agencies is not None and not may_answer(row.agency, key_agencies)):
        raise not_found("request for information", request_id)
    channel = AGENCY_CHANNEL if key_agencies is not None else RECORDED_CHANNEL
    now = utcnow()
    answered = record_reply(
        session,
        request_id=request_id,
        outcome=str(body.outcome),
        summary=body.summary,
        replied_at=now,
        replied_by=actor,
        channel=channel,
    )
    if not answered:
        raise Conflict("already_replied", f"request {request_id!r} already has its reply")
    add_audit_event(
        session,
        actor=actor,
        action="check.replied",
        entity_type="referral",
        entity_id=row.referral_id,
        payload={
            "request_id": request_id,
            "agency": row.agency,
            "outcome": str(body.outcome),
            "channel": channel,
            "late": now > row.due_at,
            "summary_chars": len(body.summary),
        },
    )
    session.commit()
    session.refresh(row)
    return request_out(row, now=now)


def agency_worklist(
    session: Session, *, key_agencies: Collection[str], actor: str, limit: int
) -> list[dict[str, Any]]:
    """The unanswered requests a key's agencies may answer, soonest due first (audited)."""
    agencies = [str(a) for a, key_agency in KEY_AGENCY.items() if str(key_agency) in key_agencies]
    now = utcnow()
    items = []
    for request, referral in open_requests_for_agencies(session, agencies=agencies, limit=limit):
        child = get_child(session, child_id=referral.child_id)
        # The agency searches its own records for the child: name and date of birth.
        items.append(
            request_out(request, now=now)
            | {
                "child": {
                    "given_name": child.given_name if child else None,
                    "family_name": child.family_name if child else None,
                    "date_of_birth": child.date_of_birth if child else None,
                }
            }
        )
    add_audit_event(
        session,
        actor=actor,
        action="check.worklist_viewed",
        entity_type="check_request",
        payload={"request_ids": [item["request_id"] for item in items]},
    )
    session.commit()
    return items


def request_out(row: CheckRequestRow, *, now: datetime) -> dict[str, Any]:
    """A request for information with its state: awaiting, overdue or replied."""
    if row.replied_at is not None:
        state = "replied"
    elif now > row.due_at:
        state = "overdue"
    else:
        state = "awaiting"
    return {
        "request_id": row.request_id,
        "referral_id": row.referral_id,
        "agency": row.agency,
        "agency_words": AGENCY_WORDS.get(row.agency, row.agency),
        "question": row.question,
        "requested_at": row.requested_at,
        "requested_by": row.requested_by,
        "due_at": row.due_at,
        "state": state,
        "reply": None
        if row.replied_at is None
        else {
            "outcome": row.reply_outcome,
            "outcome_words": REPLY_WORDS.get(row.reply_outcome or "", row.reply_outcome),
            "summary": row.reply_summary or "",
            "replied_at": row.replied_at,
            "replied_by": row.replied_by,
            "channel": row.reply_channel,
            "late": row.replied_at > row.due_at,
        },
    }


# --- strategy discussions and facts ---------------------------------------------------------


def record_strategy_discussion(
    session: Session, *, referral_id: str, body: StrategyDiscussionIn, actor: str
) -> dict[str, Any]:
    """Store a strategy discussion (422 if it predates the referral)."""
    referral = _referral_or_404(session, referral_id)
    if body.held_at < referral.received_at:
        raise invalid([{"field": "held_at", "reason": "is before the referral was received"}])
    row = add_strategy_discussion(
        session,
        referral_id=referral_id,
        held_at=body.held_at,
        attendees=[attendee.model_dump(mode="json") for attendee in body.attendees],
        outcome=str(body.outcome),
        summary=body.summary,
        recorded_by=actor,
        recorded_at=utcnow(),
    )
    add_audit_event(
        session,
        actor=actor,
        action="strategy.recorded",
        entity_type="referral",
        entity_id=referral_id,
        payload={
            "discussion_id": row.discussion_id,
            "agencies": sorted({str(a.agency) for a in body.attendees}),
            "outcome": row.outcome,
            "summary_chars": len(body.summary),
        },
    )
    session.commit()
    return discussion_out(row)


def discussion_out(row: StrategyDiscussionRow) -> dict[str, Any]:
    """A strategy discussion, agencies in words."""
    return {
        "discussion_id": row.discussion_id,
        "referral_id": row.referral_id,
        "held_at": row.held_at,
        "attendees": [
            {
                "agency": attendee["agency"],
                "agency_words": AGENCY_WORDS.get(attendee["agency"], attendee["agency"]),
                "role": attendee.get("role"),
            }
            for attendee in row.attendees
        ],
        "outcome": row.outcome,
        "outcome_words": STRATEGY_WORDS.get(row.outcome, row.outcome),
        "summary": row.summary,
        "recorded_by": row.recorded_by,
        "recorded_at": row.recorded_at,
    }


SEEN_FIRST = (FactKind.child_seen_alone,)
"""Facts that say "yes" only about a child already seen."""


def record_facts(
    session: Session, *, referral_id: str, body: FactsIn, actor: str
) -> list[dict[str, Any]]:
    """Store facts found out first hand (422 when they contradict each other or the dates)."""
    referral = _referral_or_404(session, referral_id)
    now = utcnow()
    current = current_facts(facts_for_referrals(session, referral_ids=[referral_id]))
    seen = {str(f.kind): f.value for f in body.facts}.get("child_seen", current.get("child_seen"))
    errors = []
    for index, fact in enumerate(body.facts):
        occurred_at = fact.occurred_at or now
        if occurred_at < referral.received_at:
            errors.append(
                {"field": f"facts.{index}.occurred_at", "reason": "is before the referral"}
            )
        if fact.kind in SEEN_FIRST and fact.value == "yes" and seen != "yes":
            errors.append(
                {
                    "field": f"facts.{index}.value",
                    "reason": "the child is not recorded as seen: record child_seen yes first",
                }
            )
    if errors:
        raise invalid(errors)
    rows = [
        add_check_fact(
            session,
            referral_id=referral_id,
            kind=str(fact.kind),
            value=fact.value,
            note=fact.note or None,
            occurred_at=fact.occurred_at or now,
            recorded_by=actor,
            recorded_at=now,
        )
        for fact in body.facts
    ]
    add_audit_event(
        session,
        actor=actor,
        action="facts.recorded",
        entity_type="referral",
        entity_id=referral_id,
        payload={
            "fact_ids": [row.fact_id for row in rows],
            "facts": {row.kind: row.value for row in rows},
        },
    )
    session.commit()
    return [fact_out(row) for row in rows]


def current_facts(rows: Sequence[CheckFactRow]) -> dict[str, str]:
    """The latest value of each kind of fact (rows in the order recorded)."""
    return {row.kind: row.value for row in rows}


def fact_out(row: CheckFactRow) -> dict[str, Any]:
    """A fact with its words."""
    return {
        "fact_id": row.fact_id,
        "referral_id": row.referral_id,
        "kind": row.kind,
        "value": row.value,
        "words": FACT_WORDS.get(row.kind, {}).get(row.value, f"{row.kind}: {row.value}"),
        "note": row.note,
        "occurred_at": row.occurred_at,
        "recorded_by": row.recorded_by,
        "recorded_at": row.recorded_at,
    }


# --- reading them back ----------------------------------------------------------------------


def checks_of(session: Session, *, referral_id: str) -> dict[str, Any]:
    """A referral's checks: requests, discussions, facts (current and all), outstanding count."""
    _referral_or_404(session, referral_id)
    now = utcnow()
    ids = [referral_id]
    requests = [
        request_out(r, now=now) for r in check_requests_for_referrals(session, referral_ids=ids)
    ]
    facts = facts_for_referrals(session, referral_ids=ids)
    latest: dict[str, CheckFactRow] = {row.kind: row for row in facts}
    return {
        "referral_id": referral_id,
        "requests": requests,
        "outstanding": sum(r["state"] != "replied" for r in requests),
        "overdue": sum(r["state"] == "overdue" for r in requests),
        "strategy_discussions": [
            discussion_out(row)
            for row in strategy_discussions_for_referrals(session, referral_ids=ids)
        ],
        "facts": [fact_out(row) for row in facts],
        "current_facts": {kind: fact_out(row) for kind, row in latest.items()},
        "generated_at": now,
    }


def outstanding_checks(session: Session, referral_ids: list[str]) -> dict[str, int]:
    """Unanswered requests for information per referral (for the queue and the summary card)."""
    counts = count_open_requests(session, referral_ids=referral_ids)
    return {referral_id: counts.get(referral_id, 0) for referral_id in referral_ids}


def check_timeline_items(session: Session, referral_ids: list[str]) -> list[dict[str, Any]]:
    """The checks as chronology items (kind ``check``, ``strategy`` or ``fact``), oldest first."""
    items: list[dict[str, Any]] = []
    for request in check_requests_for_referrals(session, referral_ids=referral_ids):
        agency = AGENCY_WORDS.get(request.agency, request.agency)
        items.append(
            _item("check", request.requested_at, request.request_id, request.referral_id,
                  f"Information requested from {agency}", agency=request.agency)
        )  # fmt: skip
        if request.replied_at is not None:
            outcome = REPLY_WORDS.get(request.reply_outcome or "", request.reply_outcome)
            items.append(
                _item("check", request.replied_at, request.request_id, request.referral_id,
                      f"{agency} replied: {outcome}", agency=request.agency)
            )  # fmt: skip
    for row in strategy_discussions_for_referrals(session, referral_ids=referral_ids):
        agencies = ", ".join(AGENCY_WORDS.get(a["agency"], a["agency"]) for a in row.attendees)
        outcome = STRATEGY_WORDS.get(row.outcome, row.outcome)
        items.append(
            _item("strategy", row.held_at, row.discussion_id, row.referral_id,
                  f"Strategy discussion ({agencies}): {outcome}")
        )  # fmt: skip
    for fact in facts_for_referrals(session, referral_ids=referral_ids):
        items.append(
            _item("fact", fact.occurred_at, fact.fact_id, fact.referral_id, fact_out(fact)["words"])
        )
    items.sort(key=lambda item: (item["at"], item["kind"], item["record_id"]))
    return items


def _item(
    kind: str,
    at: datetime,
    record_id: str,
    referral_id: str,
    words: str,
    *,
    agency: str | None = None,
) -> dict[str, Any]:
    """One chronology item, shaped like the timeline's (no signal used these records)."""
    return {
        "kind": kind,
        "at": at,
        "record_id": record_id,
        "referral_id": referral_id,
        "words": words,
        "agency": agency,
        "signals": [],
    }


def checks_panel(session: Session, *, referral_id: str) -> dict[str, Any]:
    """What the referral page and the checks pages show: the checks, the sign-offs (with the
    decision awaiting one), the referral's status and the child's name (404 if no referral)."""
    found = checks_of(session, referral_id=referral_id)
    referral = _referral_or_404(session, referral_id)
    child = get_child(session, child_id=referral.child_id)
    sign_offs = signoff.sign_offs_of(session, referral_id=referral_id)
    awaiting = next((s for s in sign_offs if s["status"] == "awaiting"), None)
    if awaiting is not None:
        awaiting = awaiting | {
            "decision": signoff.decision_of(
                session, referral_id=referral_id, decision_id=awaiting["decision_id"]
            )
        }
    return found | {
        "sign_offs": sign_offs,
        "awaiting_sign_off": awaiting,
        "referral_status": referral.status,
        "received_at": referral.received_at,
        "concerns": list(referral.concerns),
        "child_name": " ".join(p for p in (child.given_name, child.family_name) if p)
        if child is not None
        else None,
        "questions": FACT_QUESTIONS,
    }
