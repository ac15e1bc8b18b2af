"""The practitioner's pages: the queue, a referral, and reopening a decided referral.

Deciding is its own step (api/web/decision_pages.py), and so is disputing a record
(api/web/dispute_pages.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from api.deps import StateDep
from api.errors import status_of
from api.web.auth import (
    CaseworkViewer,
    ManagerViewer,
    Viewer,
    check_form_token,
    redirect,
    save_session,
)
from api.web.reason_view import reasons_and_chronology
from api.web.render import page
from service import audit, casework, decisions, identity
from service.checks import checks_panel
from service.child_groups import group_by_child
from service.errors import NotFound, Refusal
from service.household import audit_panel, panel_note
from service.referral_summary import referral_summary
from triage.queue import BANDS, overdue_cutoff
from triage.store import QueueFilter
from triage.store.statistics import queue_counts
from triage.store.tables import utcnow
from triage.vocab import Concern

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 25
MAX_REASON_CHARS = 2000
"""As the API's FreeText: disputes and reopening reasons."""
TOO_LONG = f"Keep the reason to {MAX_REASON_CHARS:,} characters"


def reason_problem(text: str, *, missing: str) -> str | None:
    """What is wrong with a free-text reason (``missing`` when empty, too long), or None."""
    if not text.strip():
        return missing
    return TOO_LONG if len(text.strip()) > MAX_REASON_CHARS else None


MAX_AGE_YEARS = 25
JUDGE_FIRST_NO_BAND_FILTER = (
    "Your team gives its own priority before seeing the band, so the queue is not filtered by band"
)


def _queue_filters(
    band: list[str], concern: list[str], min_age: str, max_age: str, waiting: str
) -> tuple[QueueFilter, float | None, list[dict[str, str]]]:
    """The queue filters from the page's form, and an error per field that does not parse."""
    errors: list[dict[str, str]] = []
    bands = tuple(b for b in band if b)
    if unknown := [b for b in bands if b not in BANDS]:
        errors.append({"field": "band", "reason": f"Unknown band {', '.join(unknown)}"})
    concerns = tuple(c for c in concern if c)
    if unknown := [c for c in concerns if c not in Concern.__members__]:
        errors.append({"field": "concern", "reason": f"Unknown concern {', '.join(unknown)}"})
    ages: dict[str, int | None] = {}
    for name, raw in (("min_age", min_age), ("max_age", max_age)):
        ages[name] = None
        if raw.strip():
            try:
                age = int(raw)
            except ValueError:
                errors.append({"field": name, "reason": "Enter the age as a whole number of years"})
                continue
            ages[name] = age
            if not 0 <= age <= MAX_AGE_YEARS:
                errors.append({"field": name, "reason": f"Enter an age from 0 to {MAX_AGE_YEARS}"})
    low, high = ages["min_age"], ages["max_age"]
    if low is not None and high is not None and low > high:
        errors.append({"field": "min_age", "reason": "The youngest age is above the oldest"})
    waiting_hours = None
    if waiting.strip():
        try:
            waiting_hours = float(waiting)
            if not 0 <= waiting_hours <= 24 * 365:
                raise ValueError(waiting)
        except ValueError:
            errors.append({"field": "waiting", "reason": "Enter a number of hours (0 or more)"})
            waiting_hours = None
    filters = QueueFilter(
        bands=bands,
        concerns=concerns,
        min_age_months=low * 12 if low is not None else None,
        # "Up to 4 years" includes a child of 4 years and 11 months.
        max_age_months=high * 12 + 11 if high is not None else None,
    )
    return filters, waiting_hours, errors


@router.get("/queue")
def queue(
    request: Request,
    state: StateDep,
    viewer: CaseworkViewer,
    band: Annotated[list[str], Query(max_length=10)] = [],  # noqa: B006 (FastAPI copies it)
    concern: Annotated[list[str], Query(max_length=20)] = [],  # noqa: B006
    min_age: Annotated[str, Query(max_length=10)] = "",
    max_age: Annotated[str, Query(max_length=10)] = "",
    waiting: Annotated[str, Query(max_length=20)] = "",
    cursor: Annotated[str, Query(max_length=500)] = "",
    start: Annotated[int, Query(ge=1, le=10_000_000)] = 1,
) -> Response:
    """Open referrals in review order, filtered, a page at a time, with a count summary."""
    filters, waiting_hours, errors = _queue_filters(band, concern, min_age, max_age, waiting)
    model = state.models.current
    form = {
        "band": band,
        "concern": concern,
        "min_age": min_age,
        "max_age": max_age,
        "waiting": waiting,
    }
    result: dict[str, Any] = {"items": [], "next_cursor": None}
    counts = None
    hidden: set[str] = set()
    with state.read_sessions() as db:
        judge_first = decisions.decision_mode(db) == decisions.JUDGE_FIRST
    if judge_first and filters.bands:  # the filter would show the bands judge first hides
        errors.append({"field": "band", "reason": JUDGE_FIRST_NO_BAND_FILTER})
    if not errors:
        try:
            with state.read_sessions() as db:
                result = casework.read_queue(
                    db,
                    model=model,
                    filters=filters,
                    waiting_hours=waiting_hours,
                    cursor=cursor or None,
                    limit=PAGE_SIZE,
                )
                hidden = decisions.bands_hidden_in_queue(
                    db,
                    referral_ids=[item["referral_id"] for item in result["items"]],
                    viewer=viewer.actor.name,
                )
                now = utcnow()
                counts = queue_counts(
                    db,
                    filters=casework.waiting_at_least(filters, waiting_hours, now=now),
                    overdue_received_before=overdue_cutoff(now),
                )
        except Refusal:  # a cursor this service did not issue
            errors = [{"field": "cursor", "reason": "This page link is not valid: start again"}]
    audit.record(
        state,
        actor=viewer.actor.name,
        action="queue.viewed",
        entity_type="queue",
        model_version=model.scorer.version if model is not None else None,
        payload={
            "channel": "page",
            "referral_ids": [item["referral_id"] for item in result["items"]],
            "filters": {k: v for k, v in form.items() if v},
        },
    )
    query = [(k, v) for k, values in form.items() for v in _as_list(values) if v]
    return show(
        request,
        state,
        viewer,
        "queue.html",
        status_code=422 if errors else 200,
        items=result["items"],
        groups=group_by_child(result["items"]),
        band_hidden=hidden,
        judge_first=judge_first,
        next_cursor=result["next_cursor"],
        counts=counts,
        start=start,
        form=form,
        filter_query=query,
        errors=errors,
        bands=BANDS,
        concerns=list(Concern),
        outcome_words=model.scorer.outcome_words if model is not None else None,
    )


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def show(
    request: Request,
    state: Any,
    viewer: Viewer,
    template: str,
    *,
    status_code: int = 200,
    **context: Any,
) -> Response:
    """Render a page for the viewer; notices shown once are cleared from the session."""
    response = page(request, template, session=viewer.session, status_code=status_code, **context)
    if viewer.session.notices:
        cleared = replace(viewer.session, notices=())
        save_session(request, response, state, cleared)
    return response


def _referral_page(
    request: Request,
    state: Any,
    viewer: Viewer,
    referral_id: str,
    *,
    status_code: int = 200,
    form_errors: list[dict[str, str]] | None = None,
) -> Response:
    """The referral page, with the forms as submitted when they need correcting."""
    model = state.models.current
    try:
        with state.read_sessions() as db:
            detail = casework.referral_detail(
                db, referral_id=referral_id, model=model, roles=viewer.actor.roles
            )
            identity_task = identity.task_for_referral(db, referral_id=referral_id)
            checks = checks_panel(db, referral_id=referral_id)  # issue 22 (A): the checks
            # Judge first: the band and its reasons wait until this viewer gives a priority.
            band_hidden = decisions.band_hidden_for(
                db, referral_id=referral_id, viewer=viewer.actor.name
            )
            summary = referral_summary(db, detail=detail, now=utcnow())
    except NotFound:
        return show(
            request,
            state,
            viewer,
            "error.html",
            status_code=404,
            title="Referral not found",
            message="There is no referral with this id. It may have been mistyped.",
        )
    audit.record(
        state,
        actor=viewer.actor.name,
        action="referral.viewed",
        entity_type="referral",
        entity_id=referral_id,
        model_version=detail["score"].get("model_version"),
        payload={
            "channel": "page",
            "timeline_records": len(detail["timeline"]),
            **panel_note(detail["household"]),
        },
    )
    audit_panel(
        state,
        actor=viewer.actor.name,
        referral_id=referral_id,
        panel=detail["household"],
        channel="page",
    )
    score = detail["score"]
    reasons = score.get("reasons", [])
    # Reasons in words and the chronology (issue 22, area C): api/web/reason_view.py.
    words = reasons_and_chronology(
        detail, query=request.query_params, names=person_names(detail["household"])
    )
    people_for = people_behind_signals(detail["household"])
    return show(
        request,
        state,
        viewer,
        "referral.html",
        status_code=status_code,
        detail=detail,
        referral=detail["referral"],
        score=score,
        reasons=reasons,
        people_for=people_for,
        person_names=person_names(detail["household"]),
        sentence_of={r["signal"]: r["sentence"] for r in words["page_reasons"]},
        band_hidden=band_hidden,
        form_errors=form_errors or [],
        error_fields={e["field"] for e in form_errors or []},
        can_reopen=bool(viewer.actor.roles & {"manager", "admin"}),
        identity_task=identity_task,
        checks=checks,
        summary=summary,
        **words,
    )


def people_behind_signals(panel: dict[str, Any] | None) -> dict[str, list[dict[str, Any]]]:
    """For each signal, the people in the panel whose records it used (a reason links to them)."""
    found: dict[str, list[dict[str, Any]]] = {}
    if panel is None:
        return found
    for person in [*panel["members"], *panel["others_behind_reasons"]]:
        for signal in person["signals"]:
            found.setdefault(signal, []).append(person)
    return found


def person_names(panel: dict[str, Any] | None) -> dict[str, str]:
    """The name the page shows for each person in the panel, by id."""
    if panel is None:
        return {}
    return {
        person["person_id"]: " ".join(
            part for part in (person["given_name"], person["family_name"]) if part
        )
        or person["person_id"]
        for person in [*panel["members"], *panel["others_behind_reasons"]]
    }


def _store(state: Any, work: Callable[[Session], object]) -> Refusal | None:
    """Run ``work`` in a write session; the service's refusal (404, 409, 422) comes back as is.

    A missing referral needs no case of its own: the referral page then renders as a 404.
    """
    try:
        with state.sessions() as db:
            work(db)
    except Refusal as exc:
        return exc
    return None


@router.get("/referrals/{referral_id}")
def referral(
    request: Request, referral_id: str, state: StateDep, viewer: CaseworkViewer
) -> Response:
    """The referral: facts first, then the band, reasons, history, and the decision form."""
    return _referral_page(request, state, viewer, referral_id)


@router.post("/referrals/{referral_id}/reopen")
def reopen(
    request: Request,
    referral_id: str,
    state: StateDep,
    viewer: ManagerViewer,
    reason: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """A manager puts a decided referral back in the queue."""
    check_form_token(viewer, csrf_token)
    problem = reason_problem(reason, missing="Say why the referral is reopened")
    if problem is not None:
        return _referral_page(
            request,
            state,
            viewer,
            referral_id,
            status_code=422,
            form_errors=[{"field": "reopen", "reason": problem}],
        )
    failed = _store(
        state,
        lambda db: casework.reopen(
            db, referral_id=referral_id, reason=reason, actor=viewer.actor.name
        ),
    )
    if failed is not None:
        error = {"field": "reopen", "reason": "The referral is already open"}
        return _referral_page(
            request, state, viewer, referral_id, status_code=status_of(failed), form_errors=[error]
        )
    session = viewer.session.with_notice(f"Referral {referral_id} is back in the queue.")
    return save_session(request, redirect(f"/referrals/{referral_id}"), state, session)
