"""Disputing a record as its own step: GET shows the record and asks why it is wrong, POST
stores the dispute (with its what-if) and returns to the referral page's result.

The chronology links each disputable record here instead of carrying a form per row: a child
with 500 records had about 300 forms on the referral page (issue 22, the page's speed).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from api.deps import StateDep
from api.web.auth import CaseworkViewer, Viewer, check_form_token, redirect, save_session
from api.web.case_pages import MAX_REASON_CHARS, reason_problem, show
from service import audit, casework
from service.chronology import Entry, entries
from service.errors import NotFound, Refusal

router = APIRouter(include_in_schema=False)


def disputable_record(timeline: list[dict[str, Any]], record_id: str) -> Entry | None:
    """The record ``record_id`` of a referral's chronology in words, if it may be disputed."""
    return next((e for e in entries(timeline) if e.record_id == record_id and e.disputable), None)


def _not_found(request: Request, state: Any, viewer: Viewer, referral_id: str) -> Response:
    """No such referral, or no such record in its history."""
    return show(
        request,
        state,
        viewer,
        "error.html",
        status_code=404,
        title="Record not found",
        message=(
            f"Referral {referral_id} has no record with this id in its history. "
            "Go back to the referral and choose the record from its history."
        ),
    )


def _dispute_page(
    request: Request,
    state: Any,
    viewer: Viewer,
    referral_id: str,
    record_id: str,
    *,
    reason: str = "",
    errors: list[dict[str, str]] | None = None,
    status_code: int = 200,
) -> Response:
    """The record in words and the form asking why it is wrong (audited as a view)."""
    try:
        with state.read_sessions() as db:
            # No household panel here (roles=()): the page shows one record, not the people.
            detail = casework.referral_detail(
                db, referral_id=referral_id, model=state.models.current, roles=()
            )
    except NotFound:
        return _not_found(request, state, viewer, referral_id)
    entry = disputable_record(detail["timeline"], record_id)
    if entry is None:
        return _not_found(request, state, viewer, referral_id)
    audit.record(
        state,
        actor=viewer.actor.name,
        action="referral.viewed",
        entity_type="referral",
        entity_id=referral_id,
        payload={"channel": "page", "step": "dispute", "record_id": record_id},
    )
    return show(
        request,
        state,
        viewer,
        "dispute.html",
        status_code=status_code,
        referral=detail["referral"],
        entry=entry,
        reason=reason,
        form_errors=errors or [],
        error_fields={e["field"] for e in errors or []},
        max_chars=MAX_REASON_CHARS,
    )


@router.get("/referrals/{referral_id}/dispute")
def dispute_form(
    request: Request,
    referral_id: str,
    state: StateDep,
    viewer: CaseworkViewer,
    record: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    """Dispute one record of the referral's history: the record, then why it is wrong."""
    return _dispute_page(request, state, viewer, referral_id, record)


@router.post("/referrals/{referral_id}/dispute")
def dispute(
    request: Request,
    referral_id: str,
    state: StateDep,
    viewer: CaseworkViewer,
    record_id: Annotated[str, Form(max_length=64)] = "",
    reason: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Store the dispute; the what-if appears on the referral page."""
    check_form_token(viewer, csrf_token)
    problem = reason_problem(reason, missing="Say why the record is wrong")
    stored: dict[str, Any] = {}
    if problem is None:
        try:
            with state.sessions() as db:
                stored = casework.dispute(
                    db,
                    referral_id=referral_id,
                    record_id=record_id,
                    reason=reason.strip(),
                    actor=viewer.actor.name,
                    model=state.models.current,
                )
        except Refusal:
            return _not_found(request, state, viewer, referral_id)
    if problem is not None:
        return _dispute_page(
            request,
            state,
            viewer,
            referral_id,
            record_id,
            reason=reason,
            errors=[{"field": "reason", "reason": problem}],
            status_code=422,
        )
    session = viewer.session.with_notice(
        f"Dispute of record {record_id} recorded: it is listed under Disputed records."
    )
    target = f"/referrals/{referral_id}#dispute-{stored['dispute_id']}"
    return save_session(request, redirect(target), state, session)
