"""Multi-agency checks: requests for information and agencies' replies, strategy discussions,
facts found out first hand, and managers' sign-off of decisions that skipped the checks."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query

from api.deps import (
    AUTH_RESPONSES,
    ActorDep,
    ReadSessionDep,
    SessionDep,
    StateDep,
    require_roles,
    require_scope,
)
from api.schemas import ErrorOut
from service import audit, checks, signoff
from service.check_replies import (
    AgencyWorklist,
    CheckRequestOut,
    ChecksOut,
    FactsRecorded,
    SignOffList,
    SignOffOut,
    StrategyDiscussionOut,
)
from triage.checks import (
    CheckReplyIn,
    CheckRequestIn,
    FactsIn,
    SignOffIn,
    StrategyDiscussionIn,
)
from triage.schema import Id

router = APIRouter(prefix="/v1", tags=["checks"], responses=AUTH_RESPONSES)

ReferralId = Annotated[Id, Path(description="The id the service gave the referral.")]
RequestId = Annotated[Id, Path(description="The request's id (RFI-…).")]
CASEWORK = ("practitioner", "manager", "admin")
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "No such referral or request."},
    422: {"model": ErrorOut, "description": "Invalid input: each bad field and why."},
}

REQUEST_EXAMPLE = {
    "agency": "police",
    "question": "Any domestic abuse incidents at the address in the last 12 months?",
    "due_at": "2026-12-08T17:00:00Z",
}
REPLY_EXAMPLE = {
    "outcome": "known_with_concerns",
    "summary": "Two call-outs to the address in October; no arrests.",
}
STRATEGY_EXAMPLE = {
    "held_at": "2026-12-07T15:30:00Z",
    "attendees": [
        {"agency": "social_care", "role": "Team manager"},
        {"agency": "police", "role": "Detective Sergeant"},
        {"agency": "health", "role": "Named nurse"},
    ],
    "outcome": "section_47_enquiry",
    "summary": "Joint visit tomorrow morning.",
}
FACTS_EXAMPLE = {
    "facts": [
        {"kind": "child_seen", "value": "yes", "occurred_at": "2026-12-07T10:00:00Z"},
        {"kind": "child_seen_alone", "value": "yes"},
        {
            "kind": "carer_account",
            "value": "partly_corroborated",
            "note": "Says the bruise was a fall.",
        },
    ]
}


@router.get(
    "/referrals/{referral_id}/checks",
    response_model=ChecksOut,
    responses={404: ERRORS[404]},
    dependencies=[Depends(require_roles(*CASEWORK))],
    summary="Everything checked about a referral",
)
def get_checks(
    referral_id: ReferralId, session: ReadSessionDep, state: StateDep, actor: ActorDep
) -> ChecksOut:
    """Requests and replies, strategy discussions, facts and sign-offs, with counts."""
    found = checks.checks_of(session, referral_id=referral_id)
    found["sign_offs"] = signoff.sign_offs_of(session, referral_id=referral_id)
    audit.record(
        state,
        actor=actor.name,
        action="checks.viewed",
        entity_type="referral",
        entity_id=referral_id,
        payload={"channel": "api", "requests": len(found["requests"])},
    )
    return ChecksOut.model_validate(found)


@router.post(
    "/referrals/{referral_id}/checks",
    status_code=201,
    response_model=CheckRequestOut,
    responses={
        **ERRORS,
        409: {"model": ErrorOut, "description": "A request to this agency awaits its reply."},
    },
    dependencies=[Depends(require_roles(*CASEWORK))],
    summary="Ask an agency for information about the referral's child",
)
def post_check_request(
    referral_id: ReferralId,
    body: Annotated[CheckRequestIn, Body(openapi_examples={"police": {"value": REQUEST_EXAMPLE}})],
    session: SessionDep,
    actor: ActorDep,
) -> CheckRequestOut:
    """Store the request; due in 24 hours unless ``due_at`` says otherwise (14 days at most)."""
    made = checks.request_information(session, referral_id=referral_id, body=body, actor=actor.name)
    return CheckRequestOut.model_validate(made)


@router.get(
    "/checks/outstanding",
    response_model=AgencyWorklist,
    dependencies=[Depends(require_roles("referrer")), Depends(require_scope("checks:reply"))],
    summary="Requests awaiting this agency's reply (agency API keys)",
)
def get_outstanding(
    session: SessionDep,
    actor: ActorDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> AgencyWorklist:
    """The unanswered requests to the agencies the key reports for, soonest due first."""
    items = checks.agency_worklist(
        session, key_agencies=actor.agencies, actor=actor.name, limit=limit
    )
    return AgencyWorklist.model_validate({"items": items})


@router.post(
    "/checks/{request_id}/reply",
    response_model=CheckRequestOut,
    responses={
        **ERRORS,
        409: {"model": ErrorOut, "description": "The request already has its reply."},
    },
    dependencies=[
        Depends(require_roles("referrer", *CASEWORK)),
        Depends(require_scope("checks:reply")),
    ],
    summary="Reply to a request for information (the agency's key, or a practitioner for it)",
)
def post_reply(
    request_id: RequestId,
    body: Annotated[CheckReplyIn, Body(openapi_examples={"concerns": {"value": REPLY_EXAMPLE}})],
    session: SessionDep,
    actor: ActorDep,
) -> CheckRequestOut:
    """Record the reply; a key answers only requests to its own agencies (others: 404)."""
    answered = checks.reply(
        session,
        request_id=request_id,
        body=body,
        actor=actor.name,
        key_agencies=actor.agencies if actor.is_key else None,
    )
    return CheckRequestOut.model_validate(answered)


@router.post(
    "/referrals/{referral_id}/strategy-discussions",
    status_code=201,
    response_model=StrategyDiscussionOut,
    responses=ERRORS,
    dependencies=[Depends(require_roles(*CASEWORK))],
    summary="Record a strategy discussion",
)
def post_strategy_discussion(
    referral_id: ReferralId,
    body: Annotated[
        StrategyDiscussionIn, Body(openapi_examples={"s47": {"value": STRATEGY_EXAMPLE}})
    ],
    session: SessionDep,
    actor: ActorDep,
) -> StrategyDiscussionOut:
    """Store when it was held, the agencies that attended (social care, police and health at
    least) and what it decided."""
    recorded = checks.record_strategy_discussion(
        session, referral_id=referral_id, body=body, actor=actor.name
    )
    return StrategyDiscussionOut.model_validate(recorded)


@router.post(
    "/referrals/{referral_id}/facts",
    status_code=201,
    response_model=FactsRecorded,
    responses=ERRORS,
    dependencies=[Depends(require_roles(*CASEWORK))],
    summary="Record facts found out first hand (child seen, account corroborated...)",
)
def post_facts(
    referral_id: ReferralId,
    body: Annotated[FactsIn, Body(openapi_examples={"visit": {"value": FACTS_EXAMPLE}})],
    session: SessionDep,
    actor: ActorDep,
) -> FactsRecorded:
    """Store the facts; the latest of each kind is the current answer."""
    facts = checks.record_facts(session, referral_id=referral_id, body=body, actor=actor.name)
    return FactsRecorded.model_validate({"facts": facts})


@router.get(
    "/sign-offs",
    response_model=SignOffList,
    dependencies=[Depends(require_roles("manager", "admin"))],
    summary="Decisions awaiting a manager's sign-off (managers)",
)
def get_sign_offs(
    session: ReadSessionDep,
    state: StateDep,
    actor: ActorDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 100,
) -> SignOffList:
    """Held decisions, oldest first, with the decision, its rationale and why it is held."""
    items = signoff.awaiting(session, limit=limit)
    audit.record(
        state,
        actor=actor.name,
        action="signoffs.viewed",
        entity_type="sign_off",
        payload={"channel": "api", "sign_off_ids": [item["sign_off_id"] for item in items]},
    )
    return SignOffList.model_validate({"items": items})


@router.post(
    "/referrals/{referral_id}/sign-off",
    response_model=SignOffOut,
    responses={
        **ERRORS,
        409: {
            "model": ErrorOut,
            "description": "Nothing awaits sign-off, or it is the caller's own decision.",
        },
    },
    dependencies=[Depends(require_roles("manager", "admin"))],
    summary="Sign off a held decision, or send it back (managers)",
)
def post_sign_off(
    referral_id: ReferralId, body: SignOffIn, session: SessionDep, actor: ActorDep
) -> SignOffOut:
    """Signed off: the referral leaves the queue. Sent back: it is open again (a note says why)."""
    settled = signoff.settle(session, referral_id=referral_id, body=body, actor=actor.name)
    return SignOffOut.model_validate(settled)
