"""Agency events: one or a batch, idempotent, rescoring the referrals they affect."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.deps import (
    AUTH_RESPONSES,
    Actor,
    ActorDep,
    StateDep,
    require_roles,
    require_scope,
    run_intake,
)
from api.errors import ApiError
from api.schemas import ErrorOut
from service.intake import MAX_EVENTS, as_json, receive_events, validate_events
from service.replies import EventsAccepted, EventsReceipt
from triage.schema import AgencyEventIn

router = APIRouter(prefix="/v1/events", tags=["events"], responses=AUTH_RESPONSES)

EVENT_EXAMPLE = {
    "source_system": "police-niche",
    "source_event_id": "DA-2026-0091",
    "agency": "police",
    "kind": "domestic_abuse_incident",
    "occurred_at": "2026-04-10T22:40:00Z",
    "household_id": "H-311",
    "attributes": {"risk_level": "medium"},
}
MEMBERSHIP_EXAMPLE = [
    {
        "source_system": "council-care",
        "source_event_id": "HH-2026-0310",
        "agency": "social_care",
        "kind": "adult_joined_household",
        "occurred_at": "2026-03-14T09:00:00Z",
        "household_id": "H-311",
        "person_id": "A-5521",
        "attributes": {"role": "parent_partner"},
        "person": {"given_name": "Dean", "family_name": "Smith", "sex": "male"},
    },
    {
        "source_system": "council-care",
        "source_event_id": "CP-2019-0042",
        "agency": "social_care",
        "kind": "care_proceedings",
        "occurred_at": "2019-05-20T10:00:00Z",
        "household_id": "H-87",
        "person_id": "A-5521",
    },
]
BY_DETAILS_EXAMPLE = {
    "source_system": "health-ed",
    "source_event_id": "ED-2026-1187",
    "agency": "health",
    "kind": "ed_injury_attendance",
    "occurred_at": "2026-04-12T19:05:00Z",
    "recorded_at": "2026-04-13T08:30:00Z",
    "child": {
        "given_name": "Samm",
        "family_name": "Doe",
        "date_of_birth": "2014-06-01",
        "sex": "male",
        "postcode": "LS6 2AB",
    },
}
EVENT_BODY_SCHEMA = {
    "oneOf": [
        {"$ref": "#/components/schemas/AgencyEventIn"},
        {
            "type": "array",
            "items": {"$ref": "#/components/schemas/AgencyEventIn"},
            "minItems": 1,
            "maxItems": MAX_EVENTS,
        },
    ]
}


@router.post(
    "",
    status_code=201,
    response_model=EventsAccepted,
    response_description="Stored. A referral system's API key gets only the `EventsReceipt` "
    "fields (its own events), not the referrals rescored.",
    responses={
        200: {"model": EventsAccepted, "description": "Every event was already stored."},
        413: {"model": ErrorOut, "description": "Body over 64 KiB."},
        422: {"model": ErrorOut, "description": "Invalid events: fields are `<index>.<field>`."},
    },
    dependencies=[
        Depends(require_roles("referrer", "admin")),
        Depends(require_scope("events:write")),
    ],
    summary=f"Submit one agency event or a list of up to {MAX_EVENTS}",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": EVENT_BODY_SCHEMA,
                    "examples": {
                        "one": {"summary": "One event", "value": EVENT_EXAMPLE},
                        "batch": {"summary": "A batch", "value": [EVENT_EXAMPLE]},
                        "by_details": {
                            "summary": "About a child the hospital knows only by details",
                            "value": BY_DETAILS_EXAMPLE,
                        },
                        "people": {
                            "summary": "An adult joins a household; a record about them",
                            "value": MEMBERSHIP_EXAMPLE,
                        },
                    },
                }
            },
        }
    },
)
async def post_events(
    state: StateDep,
    actor: ActorDep,
    payload: Annotated[Any, Body()],
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255)
    ] = None,
) -> JSONResponse:
    """Store every new event (all or none when any is invalid); rescore affected referrals."""
    # Refusals come at once, not after the intakes waiting for the intake executor.
    events, batch = await run_in_threadpool(_validated, payload, actor)
    reply = await run_intake(
        state,
        receive_events,
        state=state,
        events=events,
        batch=batch,
        actor=actor.name,
        idempotency_key=idempotency_key,
    )
    headers = {"Idempotent-Replayed": "true"} if reply.replayed else None
    # Which referrals the events moved is not the sender's to know: they may be other systems'.
    body = as_json(EventsReceipt, reply.body) if actor.is_key else reply.body
    return JSONResponse(body, status_code=201 if reply.created else 200, headers=headers)


def _validated(payload: Any, actor: Actor) -> tuple[list[AgencyEventIn], bool]:
    """The events, once valid and from the key's own source system and agencies (422 or 403)."""
    events, batch = validate_events(payload)
    if actor.is_key and any(event.source_system != actor.source_system for event in events):
        raise ApiError(
            403, "forbidden", f"this API key submits only for source_system {actor.source_system!r}"
        )
    if actor.is_key:
        refused_agencies(events, batch=batch, agencies=actor.agencies)
    return events, batch


def refused_agencies(events: list[AgencyEventIn], *, batch: bool, agencies: frozenset[str]) -> None:
    """403 naming each event whose agency the key does not report for; the batch is refused."""
    errors = [
        {
            "field": f"{index}.agency" if batch else "agency",
            "reason": f"this API key does not report for agency {str(event.agency)!r}",
        }
        for index, event in enumerate(events)
        if str(event.agency) not in agencies
    ]
    if errors:
        named = sorted({str(event.agency) for event in events} - agencies)
        allowed = ", ".join(sorted(agencies)) or "no agency"
        raise ApiError(
            403,
            "forbidden",
            f"this API key reports for {allowed}, not for {', '.join(named)}",
            errors,
        )
