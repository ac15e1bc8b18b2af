"""The checks pages: ask an agency, record its reply, a strategy discussion, what was found
out first hand, and a manager's sign-off. Each form is a page of its own (one question set,
few Tab stops); the referral page shows the checks and links here."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from api.deps import StateDep
from api.web.auth import CaseworkViewer, ManagerViewer, Viewer, check_form_token, redirect
from api.web.auth import save_session as save
from api.web.case_pages import show
from service import audit, checks, signoff
from service.errors import NotFound, Refusal
from triage.checks import (
    AGENCY_WORDS,
    FACT_QUESTIONS,
    FACT_WORDS,
    REPLY_WORDS,
    STRATEGY_WORDS,
    CheckAgency,
    CheckReplyIn,
    CheckRequestIn,
    FactKind,
    FactsIn,
    ReplyOutcome,
    SignOffIn,
    StrategyAgency,
    StrategyDiscussionIn,
    StrategyOutcome,
)
from triage.schema import error_fields
from triage.store.checks import get_check_request
from triage.store.tables import utcnow

router = APIRouter(include_in_schema=False)

LOCAL = ZoneInfo("Europe/London")
DUE_CHOICES = {"4": "Within 4 hours", "24": "Within 24 hours", "72": "Within 3 days"}
YES_NO_FACTS = (
    FactKind.child_seen,
    FactKind.child_seen_alone,
    FactKind.child_spoken_to,
    FactKind.referrer_contacted,
)
CORROBORATION_WORDS = {
    "corroborated": "Others corroborate it",
    "partly_corroborated": "Others partly corroborate it",
    "not_corroborated": "Others do not corroborate it",
    "not_yet_tested": "Not yet tested against what others say",
}
VERDICT_WORDS = {
    "sign_off": "Sign off the decision: the referral leaves the queue",
    "send_back": "Send it back to the practitioner: the referral is open again",
}


# --- shared plumbing ------------------------------------------------------------------------


def _panel(state: Any, referral_id: str) -> dict[str, Any] | None:
    """The referral's checks panel, or None when there is no such referral."""
    try:
        with state.read_sessions() as db:
            return checks.checks_panel(db, referral_id=referral_id)
    except NotFound:
        return None


def _not_found(request: Request, state: Any, viewer: Viewer, what: str) -> Response:
    return show(
        request,
        state,
        viewer,
        "error.html",
        status_code=404,
        title=f"{what} not found",
        message="There is nothing with this id. It may have been mistyped.",
    )


def _viewed(state: Any, viewer: Viewer, page_name: str, referral_id: str) -> None:
    """Audit that a checks page showing a referral's details was opened."""
    audit.record(
        state,
        actor=viewer.actor.name,
        action="checks.page_viewed",
        entity_type="referral",
        entity_id=referral_id,
        payload={"channel": "page", "page": page_name},
    )


def _store(state: Any, work: Callable[[Session], object]) -> Refusal | None:
    """Run ``work`` in a write session; the service's refusal comes back as is."""
    try:
        with state.sessions() as db:
            work(db)
    except Refusal as exc:
        return exc
    return None


def _errors(exc: ValidationError, fields: dict[str, str]) -> list[dict[str, str]]:
    """Pydantic's errors as the form's: the field's id and the reason in the form's words."""
    out = []
    for error in error_fields(exc):
        name = error["field"]
        field = fields.get(name) or fields.get(name.split(".")[0]) or name
        if "at most" in error["reason"]:
            reason = f"This is too long: it {error['reason'].replace('String should', 'should')}"
        else:
            reason = WORDS.get(field, error["reason"])
        out.append({"field": field, "reason": reason})
    return out


WORDS = {
    "agency": "Choose the agency to ask",
    "question": "Say what you are asking",
    "outcome": "Choose what the reply says",
    "summary": "Say what the concerns are",
    "held_date": "Enter the date as day/month/year, for example 7/12/2026",
    "attendees": "Choose at least children's social care, police and health",
    "verdict": "Choose whether to sign off or send back",
    "note": "Say why the decision is sent back",
    "carer_note": "Summarise the parent's or carer's account",
}


def parse_local(day: str, time: str) -> datetime | None:
    """``7/12/2026`` and ``14:30`` (UK local time) as an aware UTC moment; None if unreadable."""
    try:
        d, m, y = (int(part) for part in day.strip().split("/"))
        hours, minutes = (int(part) for part in (time.strip() or "00:00").split(":"))
        local = datetime(y, m, d, hours, minutes, tzinfo=LOCAL)
    except ValueError:
        return None
    return local.astimezone(UTC)


def local_now() -> tuple[str, str]:
    """Today's date and the time now, as the date and time fields take them."""
    now = utcnow().astimezone(LOCAL)
    return f"{now.day}/{now.month}/{now.year}", f"{now:%H:%M}"


def _back(request: Request, state: Any, viewer: Viewer, referral_id: str, notice: str) -> Response:
    """To the referral's checks section with a notice shown once."""
    session = viewer.session.with_notice(notice)
    return save(request, redirect(f"/referrals/{referral_id}#checks-title"), state, session)


# --- asking an agency -----------------------------------------------------------------------


def _request_page(
    request: Request,
    state: Any,
    viewer: Viewer,
    panel: dict[str, Any],
    *,
    form: dict[str, Any] | None = None,
    errors: list[dict[str, str]] | None = None,
) -> Response:
    return show(
        request,
        state,
        viewer,
        "checks/request.html",
        status_code=422 if errors else 200,
        panel=panel,
        agencies={str(a): AGENCY_WORDS[str(a)] for a in CheckAgency},
        due_choices=DUE_CHOICES,
        form=form or {"due": "24"},
        form_errors=errors or [],
    )


@router.get("/referrals/{referral_id}/checks/request")
def request_form(
    request: Request, referral_id: str, state: StateDep, viewer: CaseworkViewer
) -> Response:
    """The form to ask an agency for information."""
    panel = _panel(state, referral_id)
    if panel is None:
        return _not_found(request, state, viewer, "Referral")
    _viewed(state, viewer, "request", referral_id)
    return _request_page(request, state, viewer, panel)


@router.post("/referrals/{referral_id}/checks/request")
def request_post(
    request: Request,
    referral_id: str,
    state: StateDep,
    viewer: CaseworkViewer,
    agency: Annotated[str, Form(max_length=40)] = "",
    question: Annotated[str, Form()] = "",
    due: Annotated[str, Form(max_length=10)] = "24",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Store the request and go back to the referral; the form again if anything is missing."""
    check_form_token(viewer, csrf_token)
    panel = _panel(state, referral_id)
    if panel is None:
        return _not_found(request, state, viewer, "Referral")
    form = {"agency": agency, "question": question, "due": due}
    hours = int(due) if due in DUE_CHOICES else 24
    try:
        body = CheckRequestIn.model_validate(
            {
                "agency": agency or None,
                "question": question,
                "due_at": utcnow() + timedelta(hours=hours),
            }
        )
    except ValidationError as exc:
        errors = _errors(exc, {"agency": "agency", "question": "question"})
        return _request_page(request, state, viewer, panel, form=form, errors=errors)
    who = viewer.actor.name
    failed = _store(
        state,
        lambda db: checks.request_information(db, referral_id=referral_id, body=body, actor=who),
    )
    if failed is not None:
        errors = [{"field": "agency", "reason": "A request to this agency is awaiting its reply"}]
        return _request_page(request, state, viewer, panel, form=form, errors=errors)
    words = AGENCY_WORDS[str(body.agency)]
    return _back(request, state, viewer, referral_id, f"Request sent to {words}.")


# --- recording a reply ----------------------------------------------------------------------


def _reply_page(
    request: Request,
    state: Any,
    viewer: Viewer,
    panel: dict[str, Any],
    check: dict[str, Any],
    *,
    form: dict[str, Any] | None = None,
    errors: list[dict[str, str]] | None = None,
    status_code: int = 200,
) -> Response:
    return show(
        request,
        state,
        viewer,
        "checks/reply.html",
        status_code=422 if errors and status_code == 200 else status_code,
        panel=panel,
        check=check,
        outcomes={str(o): REPLY_WORDS[str(o)] for o in ReplyOutcome},
        form=form or {},
        form_errors=errors or [],
    )


def _request_and_panel(state: Any, request_id: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    with state.read_sessions() as db:
        row = get_check_request(db, request_id=request_id)
        if row is None:
            return None
        check = checks.request_out(row, now=utcnow())
        panel = checks.checks_panel(db, referral_id=row.referral_id)
    return check, panel


@router.get("/checks/{request_id}/reply")
def reply_form(
    request: Request, request_id: str, state: StateDep, viewer: CaseworkViewer
) -> Response:
    """The form to record an agency's reply."""
    found = _request_and_panel(state, request_id)
    if found is None:
        return _not_found(request, state, viewer, "Request")
    check, panel = found
    _viewed(state, viewer, "reply", panel["referral_id"])
    return _reply_page(request, state, viewer, panel, check)


@router.post("/checks/{request_id}/reply")
def reply_post(
    request: Request,
    request_id: str,
    state: StateDep,
    viewer: CaseworkViewer,
    outcome: Annotated[str, Form(max_length=40)] = "",
    summary: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Store the reply as recorded by a practitioner and go back to the referral."""
    check_form_token(viewer, csrf_token)
    found = _request_and_panel(state, request_id)
    if found is None:
        return _not_found(request, state, viewer, "Request")
    check, panel = found
    form = {"outcome": outcome, "summary": summary}
    try:
        body = CheckReplyIn.model_validate({"outcome": outcome or None, "summary": summary})
    except ValidationError as exc:
        errors = _errors(exc, {"outcome": "outcome", "summary": "summary"})
        return _reply_page(request, state, viewer, panel, check, form=form, errors=errors)
    who = viewer.actor.name
    failed = _store(state, lambda db: checks.reply(db, request_id=request_id, body=body, actor=who))
    if failed is not None:
        errors = [{"field": "outcome", "reason": "This request already has its reply"}]
        return _reply_page(
            request, state, viewer, panel, check, form=form, errors=errors, status_code=409
        )
    notice = f"Reply from {check['agency_words']} recorded."
    return _back(request, state, viewer, panel["referral_id"], notice)


# --- a strategy discussion ------------------------------------------------------------------


def _strategy_page(
    request: Request,
    state: Any,
    viewer: Viewer,
    panel: dict[str, Any],
    *,
    form: dict[str, Any] | None = None,
    errors: list[dict[str, str]] | None = None,
) -> Response:
    day, time = local_now()
    return show(
        request,
        state,
        viewer,
        "checks/strategy.html",
        status_code=422 if errors else 200,
        panel=panel,
        attendee_agencies={str(a): AGENCY_WORDS[str(a)] for a in StrategyAgency},
        outcomes={str(o): STRATEGY_WORDS[str(o)] for o in StrategyOutcome},
        form=form or {"held_date": day, "held_time": time, "attendees": [], "roles": {}},
        form_errors=errors or [],
    )


@router.get("/referrals/{referral_id}/strategy")
def strategy_form(
    request: Request, referral_id: str, state: StateDep, viewer: CaseworkViewer
) -> Response:
    """The form to record a strategy discussion."""
    panel = _panel(state, referral_id)
    if panel is None:
        return _not_found(request, state, viewer, "Referral")
    _viewed(state, viewer, "strategy", referral_id)
    return _strategy_page(request, state, viewer, panel)


@router.post("/referrals/{referral_id}/strategy")
async def strategy_post(
    request: Request, referral_id: str, state: StateDep, viewer: CaseworkViewer
) -> Response:
    """Store the discussion and go back to the referral; the form again if anything is wrong."""
    data = await request.form()
    check_form_token(viewer, str(data.get("csrf_token", ""))[:200])
    panel = _panel(state, referral_id)
    if panel is None:
        return _not_found(request, state, viewer, "Referral")
    agencies = [str(a) for a in data.getlist("attendees")][: len(StrategyAgency)]
    roles = {a: str(data.get(f"role_{a}", ""))[:100].strip() for a in map(str, StrategyAgency)}
    form: dict[str, Any] = {
        "held_date": str(data.get("held_date", ""))[:20],
        "held_time": str(data.get("held_time", ""))[:10],
        "attendees": agencies,
        "roles": roles,
        "outcome": str(data.get("outcome", ""))[:40],
        "summary": str(data.get("summary", "")),
    }
    held_at = parse_local(form["held_date"], form["held_time"])
    errors: list[dict[str, str]] = []
    if held_at is None:
        errors.append({"field": "held_date", "reason": WORDS["held_date"]})
    try:
        body = StrategyDiscussionIn.model_validate(
            {
                "held_at": held_at or utcnow(),
                "attendees": [{"agency": a, "role": roles.get(a) or None} for a in agencies],
                "outcome": form["outcome"] or None,
                "summary": form["summary"],
            }
        )
    except ValidationError as exc:
        errors += _errors(
            exc,
            {"held_at": "held_date", "attendees": "attendees", "outcome": "outcome",
             "summary": "summary"},
        )  # fmt: skip
        return _strategy_page(request, state, viewer, panel, form=form, errors=errors)
    if errors:
        return _strategy_page(request, state, viewer, panel, form=form, errors=errors)
    who = viewer.actor.name
    failed = _store(
        state,
        lambda db: checks.record_strategy_discussion(
            db, referral_id=referral_id, body=body, actor=who
        ),
    )
    if failed is not None:
        errors = [{"field": "held_date", "reason": "The date is before the referral was received"}]
        return _strategy_page(request, state, viewer, panel, form=form, errors=errors)
    return _back(request, state, viewer, referral_id, "Strategy discussion recorded.")


# --- what was found out first hand ----------------------------------------------------------


def _facts_page(
    request: Request,
    state: Any,
    viewer: Viewer,
    panel: dict[str, Any],
    *,
    form: dict[str, Any] | None = None,
    errors: list[dict[str, str]] | None = None,
) -> Response:
    day, time = local_now()
    return show(
        request,
        state,
        viewer,
        "checks/facts.html",
        status_code=422 if errors else 200,
        panel=panel,
        yes_no_facts=[str(kind) for kind in YES_NO_FACTS],
        questions=FACT_QUESTIONS,
        fact_words=FACT_WORDS,
        corroboration=CORROBORATION_WORDS,
        form=form or {"fact_date": day, "fact_time": time},
        form_errors=errors or [],
    )


@router.get("/referrals/{referral_id}/facts")
def facts_form(
    request: Request, referral_id: str, state: StateDep, viewer: CaseworkViewer
) -> Response:
    """The form to record what was found out first hand."""
    panel = _panel(state, referral_id)
    if panel is None:
        return _not_found(request, state, viewer, "Referral")
    _viewed(state, viewer, "facts", referral_id)
    return _facts_page(request, state, viewer, panel)


@router.post("/referrals/{referral_id}/facts")
async def facts_post(
    request: Request, referral_id: str, state: StateDep, viewer: CaseworkViewer
) -> Response:
    """Store the facts answered (the rest stay as they are) and go back to the referral."""
    data = await request.form()
    check_form_token(viewer, str(data.get("csrf_token", ""))[:200])
    panel = _panel(state, referral_id)
    if panel is None:
        return _not_found(request, state, viewer, "Referral")
    kinds = [str(kind) for kind in FactKind]
    form = {kind: str(data.get(kind, ""))[:40] for kind in kinds}
    form |= {
        "carer_note": str(data.get("carer_note", "")),
        "fact_date": str(data.get("fact_date", ""))[:20],
        "fact_time": str(data.get("fact_time", ""))[:10],
    }
    occurred_at = parse_local(form["fact_date"], form["fact_time"])
    answered = [kind for kind in kinds if form[kind]]
    errors: list[dict[str, str]] = []
    if form["carer_note"].strip() and not form["carer_account"]:
        reason = "Say whether others corroborate the account you summarised"
        errors.append({"field": "fact-carer_account", "reason": reason})
    elif not answered:
        errors.append({"field": "fact-child_seen", "reason": "Answer at least one question"})
    if occurred_at is None:
        errors.append({"field": "fact_date", "reason": WORDS["held_date"]})
    if errors:
        return _facts_page(request, state, viewer, panel, form=form, errors=errors)
    facts = [
        {
            "kind": kind,
            "value": form[kind],
            "occurred_at": occurred_at,
            "note": form["carer_note"] if kind == "carer_account" else "",
        }
        for kind in answered
    ]
    try:
        body = FactsIn.model_validate({"facts": facts})
    except ValidationError as exc:
        errors = _fact_errors(error_fields(exc), answered)
        return _facts_page(request, state, viewer, panel, form=form, errors=errors)
    who = viewer.actor.name
    refusal = _store(
        state, lambda db: checks.record_facts(db, referral_id=referral_id, body=body, actor=who)
    )
    if refusal is not None:
        errors = _fact_errors(refusal.errors or [], answered)
        return _facts_page(request, state, viewer, panel, form=form, errors=errors)
    return _back(request, state, viewer, referral_id, "What you found out is recorded.")


def _fact_errors(raw: list[dict[str, str]], answered: list[str]) -> list[dict[str, str]]:
    """``facts.<i>.<part>`` errors as the facts form's fields, in its words."""
    out = []
    for error in raw:
        parts = error["field"].split(".")
        kind = answered[int(parts[1])] if len(parts) > 1 and parts[1].isdigit() else answered[0]
        part = parts[2] if len(parts) > 2 else "value"
        if part == "note":
            out.append({"field": "carer_note", "reason": WORDS["carer_note"]})
        elif part == "occurred_at":
            reason = "The date is in the future or before the referral was received"
            out.append({"field": "fact_date", "reason": reason})
        elif kind == "child_seen_alone":
            reason = "The child can be seen alone only once recorded as seen: answer that first"
            out.append({"field": f"fact-{kind}", "reason": reason})
        else:
            out.append({"field": f"fact-{kind}", "reason": f"Choose an answer: {error['reason']}"})
    return out


# --- a manager's sign-off -------------------------------------------------------------------


def _sign_off_page(
    request: Request,
    state: Any,
    viewer: Viewer,
    panel: dict[str, Any],
    *,
    form: dict[str, Any] | None = None,
    errors: list[dict[str, str]] | None = None,
    status_code: int = 200,
) -> Response:
    awaiting = panel["awaiting_sign_off"]
    own = awaiting is not None and awaiting["requested_by"] == viewer.actor.name
    return show(
        request,
        state,
        viewer,
        "checks/sign_off.html",
        status_code=422 if errors and status_code == 200 else status_code,
        panel=panel,
        awaiting=awaiting,
        own_decision=own,
        verdicts=VERDICT_WORDS,
        form=form or {},
        form_errors=errors or [],
    )


@router.get("/referrals/{referral_id}/sign-off")
def sign_off_form(
    request: Request, referral_id: str, state: StateDep, viewer: ManagerViewer
) -> Response:
    """The held decision, why it is held, and the manager's answer."""
    panel = _panel(state, referral_id)
    if panel is None:
        return _not_found(request, state, viewer, "Referral")
    _viewed(state, viewer, "sign_off", referral_id)
    return _sign_off_page(request, state, viewer, panel)


@router.post("/referrals/{referral_id}/sign-off")
def sign_off_post(
    request: Request,
    referral_id: str,
    state: StateDep,
    viewer: ManagerViewer,
    verdict: Annotated[str, Form(max_length=40)] = "",
    note: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Sign off or send back; then the list of decisions still awaiting sign-off."""
    check_form_token(viewer, csrf_token)
    panel = _panel(state, referral_id)
    if panel is None:
        return _not_found(request, state, viewer, "Referral")
    form = {"verdict": verdict, "note": note}
    try:
        body = SignOffIn.model_validate({"verdict": verdict or None, "note": note})
    except ValidationError as exc:
        errors = _errors(exc, {"verdict": "verdict", "note": "note"})
        return _sign_off_page(request, state, viewer, panel, form=form, errors=errors)
    who = viewer.actor.name
    failed = _store(
        state,
        lambda db: signoff.settle(db, referral_id=referral_id, body=body, actor=who),
    )
    if failed is not None:
        reason = (
            "Another manager signs off your own decision"
            if failed.code == "own_decision"
            else "Nothing here awaits sign-off now"
        )
        return _sign_off_page(
            request,
            state,
            viewer,
            panel,
            form=form,
            errors=[{"field": "verdict", "reason": reason}],
            status_code=409,
        )
    done = (
        "signed off: it has left the queue"
        if body.verdict == "sign_off"
        else ("sent back: it is open again in the queue")
    )
    session = viewer.session.with_notice(f"Decision on referral {referral_id} {done}.")
    return save(request, redirect("/sign-offs"), state, session)


@router.get("/sign-offs")
def sign_offs(request: Request, state: StateDep, viewer: ManagerViewer) -> Response:
    """Decisions awaiting a manager's sign-off, oldest first."""
    with state.read_sessions() as db:
        items = signoff.awaiting(db)
    audit.record(
        state,
        actor=viewer.actor.name,
        action="signoffs.viewed",
        entity_type="sign_off",
        payload={"channel": "page", "sign_off_ids": [item["sign_off_id"] for item in items]},
    )
    return show(request, state, viewer, "checks/sign_offs.html", items=items)
