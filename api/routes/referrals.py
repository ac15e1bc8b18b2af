"""Referral intake, the referral view, decisions, reopening and disputes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Path, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from api.deps import (
    AUTH_RESPONSES,
    Actor,
    ActorDep,
    ModelDep,
    ReadSessionDep,
    SessionDep,
    StateDep,
    authenticate,
    bearer,
    current_actor,
    get_state,
    require_roles,
    require_scope,
    run_intake,
)
from api.errors import ApiError, not_found
from api.schemas import ErrorOut
from service import audit, casework
from service.household import audit_panel, panel_note
from service.intake import as_json, receive_referral
from service.replies import (
    DecisionRecorded,
    DisputeIn,
    DisputeOut,
    IntakeReceipt,
    QueueItem,
    ReferralAccepted,
    ReferralDetail,
    ReopenIn,
)
from triage.schema import REFERRAL_EXAMPLE, DecisionIn, Id, ReferralIn
from triage.store import get_referral

router = APIRouter(prefix="/v1/referrals", tags=["referrals"], responses=AUTH_RESPONSES)

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Any unique string per request; a retry with the same key and body replays "
        "the first reply, the same key with another body gets 422.",
    ),
]
ReferralId = Annotated[Id, Path(description="The id the service gave the referral.")]

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "No such referral."},
    422: {"model": ErrorOut, "description": "Invalid input: each bad field and why."},
}

MEMBERS_EXAMPLE = [
    {"given_name": "Dean", "role": "parent_partner", "person_id": "A-5521"},
    {"given_name": "Kim", "family_name": "Doe", "role": "parent", "date_of_birth": "1990-01-02"},
]
DECISION_EXAMPLES = {
    "priority": {
        "summary": "The practitioner's own priority (agreement with the band is derived)",
        "value": {
            "decision": "assessment",
            "priority": "elevated",
            "reason_codes": ["injury_or_harm_described", "pattern_of_concerns"],
        },
    },
    "closing": {
        "summary": "Closing a referral with an injury or an earlier referral: rationale required",
        "value": {
            "decision": "no_further_action",
            "priority": "lower",
            "reason_codes": ["agency_checks_reassure"],
            "rationale": "Seen by the GP: a fall at nursery, consistent with the account.",
        },
    },
    "older_client": {
        "summary": "Older clients: agreement alone (deprecated; no priority is stored)",
        "value": {"decision": "assessment", "agreement": "agree"},
    },
}


def _reply(status_code: int, body: dict[str, Any], replayed: bool) -> JSONResponse:
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return JSONResponse(body, status_code=status_code, headers=headers)


_intake_roles = require_roles("referrer", "admin")
_intake_scope = require_scope("referrals:write")


async def intake_actor(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Actor:
    """``current_actor`` with the intake's role and scope checks, in one call.

    The same checks the ``Depends(require_roles(...))`` routes use. On SQLite with in-process
    rate limits the credential lookup (one indexed read of a local file) runs on the loop,
    through the loop's own connection (``ServiceState.loop_read_sessions``, so it never waits
    for a pooled connection that other routes give back through the loop): a hand-off to a
    thread cost more than the read (bench/RESULTS.md). Otherwise it is one hand-off to the
    thread pool, not one per dependency.
    """
    state = get_state(request)
    if state.loop_read_sessions is not None:
        actor = authenticate(request, state, credentials, state.loop_read_sessions)
    else:
        actor = await run_in_threadpool(current_actor, request, state, credentials)
    return _intake_scope(_intake_roles(actor))


@router.post(
    "",
    status_code=201,
    response_model=ReferralAccepted,
    response_description="Stored and scored. A referral system's API key gets only the "
    "`IntakeReceipt` fields (ids, received_at, due_by, status, band).",
    responses={
        200: {"model": ReferralAccepted, "description": "Already stored (same business key)."},
        413: {"model": ErrorOut, "description": "Body over 64 KiB."},
        409: {
            "model": ErrorOut,
            "description": "A concurrent request holds this key; or the business key is stored "
            "with other content (`errors` name the fields that differ; nothing is changed).",
        },
        422: ERRORS[422],
    },
    summary="Submit a referral",
)
async def post_referral(
    request: Request,
    actor: Annotated[Actor, Depends(intake_actor)],
    referral: Annotated[
        ReferralIn,
        Body(
            openapi_examples={
                "police": {"summary": "A police referral", "value": REFERRAL_EXAMPLE},
                "members": {
                    "summary": "Listing the household members the referrer knows",
                    "value": REFERRAL_EXAMPLE | {"household_members": MEMBERS_EXAMPLE},
                },
            }
        ),
    ],
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Score the referral and store it exactly once; 201 new, 200 already stored."""
    if actor.is_key and referral.source_system != actor.source_system:
        raise ApiError(
            403, "forbidden", f"this API key submits only for source_system {actor.source_system!r}"
        )
    # Scoring and storing block: they run on the intake executor's thread, and the loop waits
    # for them at most the hold (Settings.intake_hold_ms), so /healthz and the request
    # timeout's 503 still answer while a slow intake runs.
    state = get_state(request)
    reply = await run_intake(
        state,
        receive_referral,
        state=state,
        referral=referral,
        actor=actor.name,
        idempotency_key=idempotency_key,
    )
    # A referral system reads back its own receipt; the score's reasons, flags and record IDs
    # come from other agencies' records (people see them on the pages and their own routes).
    body = as_json(IntakeReceipt, reply.body) if actor.is_key else reply.body
    return _reply(201 if reply.created else 200, body, reply.replayed)


@router.get(
    "/{referral_id}",
    response_model=ReferralDetail,
    responses={404: ERRORS[404]},
    dependencies=[Depends(require_roles("practitioner", "manager", "admin"))],
    summary="A referral, its score and reasons, the child's history and who lives there",
)
def get_referral_detail(
    referral_id: ReferralId,
    session: ReadSessionDep,
    model: ModelDep,
    state: StateDep,
    actor: ActorDep,
) -> ReferralDetail:
    """The referral, its latest score with every reason, the child's timeline and who lives
    in the household (for the roles that may see it)."""
    detail = casework.referral_detail(
        session, referral_id=referral_id, model=model, roles=actor.roles
    )
    audit.record(
        state,
        actor=actor.name,
        action="referral.viewed",
        entity_type="referral",
        entity_id=referral_id,
        model_version=detail["score"].get("model_version"),
        payload={"timeline_records": len(detail["timeline"]), **panel_note(detail["household"])},
    )
    audit_panel(
        state, actor=actor.name, referral_id=referral_id, panel=detail["household"], channel="api"
    )
    return ReferralDetail.model_validate(detail)


class ReferralReceipt(BaseModel):
    """What a referral system may read back about a referral it submitted."""

    referral_id: str
    source_system: str
    source_referral_id: str
    received_at: datetime
    status: str


@router.get(
    "/{referral_id}/receipt",
    response_model=ReferralReceipt,
    responses={404: ERRORS[404]},
    dependencies=[
        Depends(require_roles("referrer", "admin")),
        Depends(require_scope("referrals:read")),
    ],
    summary="Whether a submitted referral is stored, and open or decided (referral systems)",
)
def get_referral_receipt(
    referral_id: ReferralId, session: ReadSessionDep, state: StateDep, actor: ActorDep
) -> ReferralReceipt:
    """A referral's receipt; a key sees only referrals from its own source system."""
    row = get_referral(session, referral_id=referral_id)
    # Another system's referral is reported as missing, so ids cannot be probed.
    if row is None or (actor.is_key and row.source_system != actor.source_system):
        raise not_found("referral", referral_id)
    audit.record(
        state,
        actor=actor.name,
        action="referral.receipt_viewed",
        entity_type="referral",
        entity_id=referral_id,
    )
    return ReferralReceipt(
        referral_id=row.referral_id,
        source_system=row.source_system,
        source_referral_id=row.source_referral_id,
        received_at=row.received_at,
        status=row.status,
    )


@router.post(
    "/{referral_id}/decisions",
    status_code=201,
    response_model=DecisionRecorded,
    responses={
        **ERRORS,
        409: {"model": ErrorOut, "description": "The referral already has a decision."},
    },
    dependencies=[Depends(require_roles("practitioner", "manager", "admin"))],
    summary="Record the front-door decision with the practitioner's priority (closes it)",
)
def post_decision(
    referral_id: ReferralId,
    decision: Annotated[DecisionIn, Body(openapi_examples=DECISION_EXAMPLES)],
    session: SessionDep,
    actor: ActorDep,
) -> DecisionRecorded:
    """Record a practitioner's decision; a second one gets 409 until a manager reopens.

    ``priority`` is the practitioner's own priority on the four bands; ``agreement`` is derived
    from it against the band. A rationale is required for a closing decision (no further
    action, information and advice) on a referral with an injury or an earlier referral about
    the child in the 12 months before, whatever the priority; 422 names the field and why.
    """
    recorded = casework.decide(
        session, referral_id=referral_id, decision=decision, actor=actor.name
    )
    return DecisionRecorded.model_validate(recorded)


@router.post(
    "/{referral_id}/reopen",
    response_model=QueueItem,
    responses={**ERRORS, 409: {"model": ErrorOut, "description": "The referral is open."}},
    dependencies=[Depends(require_roles("manager", "admin"))],
    summary="Reopen a decided referral (managers)",
)
def post_reopen(
    referral_id: ReferralId, body: ReopenIn, session: SessionDep, actor: ActorDep
) -> QueueItem:
    """Put a decided referral back in the queue; its decisions stay on record."""
    item = casework.reopen(session, referral_id=referral_id, reason=body.reason, actor=actor.name)
    return QueueItem.model_validate(item)


@router.post(
    "/{referral_id}/disputes",
    status_code=201,
    response_model=DisputeOut,
    responses=ERRORS,
    dependencies=[Depends(require_roles("practitioner", "manager", "admin"))],
    summary="Dispute a record behind the score and see the what-if",
)
def post_dispute(
    referral_id: ReferralId,
    body: DisputeIn,
    session: SessionDep,
    actor: ActorDep,
    model: ModelDep,
) -> DisputeOut:
    """Store the dispute and, with a model, the score before and after leaving the record out."""
    dispute = casework.dispute(
        session,
        referral_id=referral_id,
        record_id=body.record_id,
        reason=body.reason,
        actor=actor.name,
        model=model,
    )
    return DisputeOut.model_validate(dispute)
