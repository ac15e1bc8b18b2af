"""The decision as its own step: the practitioner's priority, the decision, then check answers.

GET ``/referrals/{id}/decide`` asks "What priority would you give?" (in "judge first" mode on
its own, before the band is shown; POST ``/priority`` records it); POST ``/decide`` checks the
answers and shows them back ("check your answers", each with a Change button); POST
``/decision`` records the decision. Free text never travels in a URL: the answers move
between the steps as form fields.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError

from api.deps import StateDep
from api.errors import status_of
from api.web.auth import CaseworkViewer, Viewer, check_form_token, redirect, save_session
from api.web.case_pages import show
from service import audit, casework, decisions
from service.errors import Conflict, NotFound, Refusal
from triage.schema import DecisionIn, error_fields
from triage.vocab import PRACTICE_REASON_CODES, PRIORITY_BANDS, DecisionKind, Priority

router = APIRouter(include_in_schema=False)

DECISION_WORDS: dict[str, str] = {
    DecisionKind.no_further_action: "No further action",
    DecisionKind.information_advice: "Information and advice",
    DecisionKind.early_help: "Early help",
    DecisionKind.assessment: "Assessment by children's social care",
    DecisionKind.strategy_discussion: "Strategy discussion",
    DecisionKind.immediate_protection: "Immediate protection",
    DecisionKind.refer_other_agency: "Refer to another agency",
}
AGREEMENT_WORDS: dict[str | None, str] = {
    "agree": "The same as the band",
    "should_be_higher": "Higher than the band",
    "should_be_lower": "Lower than the band",
    None: "No band to compare with (not scored)",
}
FIELD_WORDS: dict[str, str] = {
    "priority": "Choose the priority you would give",
    "decision": "Choose a decision",
    "reason_codes": "Choose reasons from the list",
}
CHANGEABLE = ("priority", "decision", "reason_codes", "rationale")
PRIORITY_VALUES = frozenset(str(p) for p in Priority)


def _answers(
    priority: str, decision: str, reason_codes: list[str], rationale: str
) -> dict[str, Any]:
    """The answers as the form holds them (strings; nothing parsed yet)."""
    return {
        "priority": priority,
        "decision": decision,
        "reason_codes": [c for c in reason_codes if c],
        "rationale": rationale.strip(),
    }


def _parse(answers: dict[str, Any]) -> tuple[DecisionIn | None, list[dict[str, str]]]:
    """The answers as a ``DecisionIn``, or the errors in the form's words."""
    errors = []
    unknown = [c for c in answers["reason_codes"] if c not in PRACTICE_REASON_CODES]
    if unknown:
        errors.append({"field": "reason_codes", "reason": FIELD_WORDS["reason_codes"]})
    try:
        parsed = DecisionIn.model_validate(
            {
                "decision": answers["decision"] or None,
                "priority": answers["priority"] or None,
                "reason_codes": answers["reason_codes"],
                "rationale": answers["rationale"],
            }
        )
    except ValidationError as exc:
        errors.extend(_in_words(e) for e in error_fields(exc))
        return None, _first_per_field(errors)
    return (None if errors else parsed), errors


def _in_words(error: dict[str, str]) -> dict[str, str]:
    """A validation error in the words of the form."""
    field = error["field"].split(".")[0]
    if field == "rationale":
        return {"field": field, "reason": "The rationale is too long (5,000 characters at most)"}
    if field == "reason_codes" and "at most" in error["reason"]:
        return {"field": field, "reason": "Choose at most 10 reasons"}
    return {"field": field, "reason": FIELD_WORDS.get(field, error["reason"])}


def _first_per_field(errors: list[dict[str, str]]) -> list[dict[str, str]]:
    """One error per field, in the order the form asks (the summary links to each once)."""
    seen: dict[str, dict[str, str]] = {}
    for error in errors:
        seen.setdefault(error["field"], error)
    return sorted(
        seen.values(),
        key=lambda e: CHANGEABLE.index(e["field"]) if e["field"] in CHANGEABLE else 99,
    )


def _refusal_errors(exc: Refusal) -> list[dict[str, str]]:
    """The service's refusal as form errors (the rationale rule names why it applies)."""
    if exc.code == "already_decided":
        return [{"field": "decision", "reason": "This referral already has a decision"}]
    errors = []
    for error in exc.errors or [{"field": "decision", "reason": exc.message}]:
        if error["field"] == "rationale":
            reason = error["reason"].split(": ", 1)[-1]
            errors.append({"field": "rationale", "reason": f"Explain your decision: {reason}"})
        else:
            errors.append(error)
    return errors


def _step(
    request: Request,
    state: Any,
    viewer: Viewer,
    referral_id: str,
    *,
    answers: dict[str, Any] | None = None,
    errors: list[dict[str, str]] | None = None,
    focus: str = "",
    status_code: int = 200,
) -> Response:
    """The decision step (or, in judge-first mode before a priority, the priority question)."""
    try:
        with state.read_sessions() as db:
            step = decisions.decision_step(db, referral_id=referral_id, viewer=viewer.actor.name)
    except NotFound:
        return _not_found(request, state, viewer)
    _audit_view(state, viewer, referral_id, "priority" if step["band_hidden"] else "decide")
    answers = dict(answers or {})
    if step["blind_priority"] is not None and not answers.get("priority"):
        answers["priority"] = str(step["blind_priority"])
    template = "decision/priority_first.html" if step["band_hidden"] else "decision/step.html"
    return show(
        request,
        state,
        viewer,
        template,
        status_code=status_code,
        step=step,
        referral=step["referral"],
        answers=answers,
        form_errors=errors or [],
        error_fields={e["field"] for e in errors or []},
        focus=focus,
        priorities=PRIORITY_BANDS,
        decision_words=DECISION_WORDS,
        reason_codes=PRACTICE_REASON_CODES,
    )


def _audit_view(state: Any, viewer: Viewer, referral_id: str, step: str) -> None:
    """A decision page shows the referral in brief: audited as a view of it, naming the step."""
    audit.record(
        state,
        actor=viewer.actor.name,
        action="referral.viewed",
        entity_type="referral",
        entity_id=referral_id,
        payload={"channel": "page", "step": step},
    )


def _not_found(request: Request, state: Any, viewer: Viewer) -> Response:
    """The page for a referral the service does not hold."""
    return show(
        request,
        state,
        viewer,
        "error.html",
        status_code=404,
        title="Referral not found",
        message="There is no referral with this id. It may have been mistyped.",
    )


@router.get("/referrals/{referral_id}/decide")
def decide_step(
    request: Request, referral_id: str, state: StateDep, viewer: CaseworkViewer
) -> Response:
    """The decision step: your priority first, then the decision, reasons and rationale."""
    return _step(request, state, viewer, referral_id)


@router.post("/referrals/{referral_id}/priority")
def record_priority(
    request: Request,
    referral_id: str,
    state: StateDep,
    viewer: CaseworkViewer,
    priority: Annotated[str, Form(max_length=64)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Judge first: record your priority before the band is shown, then continue."""
    check_form_token(viewer, csrf_token)
    if priority not in PRIORITY_VALUES:
        error = {"field": "priority", "reason": FIELD_WORDS["priority"]}
        return _step(request, state, viewer, referral_id, errors=[error], status_code=422)
    try:
        with state.sessions() as db:
            decisions.judge_priority(
                db, referral_id=referral_id, priority=Priority(priority), actor=viewer.actor.name
            )
    except NotFound:
        return _not_found(request, state, viewer)
    except Conflict:
        return save_session(request, redirect(f"/referrals/{referral_id}"), state, viewer.session)
    notice = (
        f"Your priority ({PRIORITY_BANDS[Priority(priority)]}) is recorded. The band is shown now."
    )
    session = viewer.session.with_notice(notice)
    return save_session(request, redirect(f"/referrals/{referral_id}/decide"), state, session)


@router.post("/referrals/{referral_id}/decide")
def check_answers(
    request: Request,
    referral_id: str,
    state: StateDep,
    viewer: CaseworkViewer,
    priority: Annotated[str, Form(max_length=64)] = "",
    decision: Annotated[str, Form(max_length=64)] = "",
    reason_codes: Annotated[list[str], Form(max_length=20)] = [],  # noqa: B006
    # No max_length on typed text: a long answer comes back with its words kept and a message.
    rationale: Annotated[str, Form()] = "",
    change: Annotated[str, Form(max_length=64)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Check your answers, or the step again with what to correct (or the answer to change)."""
    check_form_token(viewer, csrf_token)
    who = viewer.actor.name
    answers = _answers(priority, decision, reason_codes, rationale)
    if change:
        focus = change if change in CHANGEABLE else ""
        return _step(request, state, viewer, referral_id, answers=answers, focus=focus)
    parsed, errors = _parse(answers)
    checked: dict[str, Any] = {}
    if parsed is not None:
        try:
            with state.read_sessions() as db:
                if decisions.band_hidden_for(db, referral_id=referral_id, viewer=who):
                    return redirect(f"/referrals/{referral_id}/decide")
                checked = decisions.preview(db, referral_id=referral_id, decision=parsed, actor=who)
                step = decisions.decision_step(db, referral_id=referral_id, viewer=who)
        except NotFound:
            return _not_found(request, state, viewer)
        except Refusal as exc:
            errors = _refusal_errors(exc)
    if errors:
        return _step(
            request, state, viewer, referral_id, answers=answers, errors=errors, status_code=422
        )
    _audit_view(state, viewer, referral_id, "check")
    return show(
        request,
        state,
        viewer,
        "decision/check.html",
        step=step,
        referral=step["referral"],
        answers=answers,
        checked=checked,
        agreement_words=AGREEMENT_WORDS,
        priorities=PRIORITY_BANDS,
        decision_words=DECISION_WORDS,
        reason_codes=PRACTICE_REASON_CODES,
    )


@router.post("/referrals/{referral_id}/decision")
def record_decision(
    request: Request,
    referral_id: str,
    state: StateDep,
    viewer: CaseworkViewer,
    priority: Annotated[str, Form(max_length=64)] = "",
    decision: Annotated[str, Form(max_length=64)] = "",
    reason_codes: Annotated[list[str], Form(max_length=20)] = [],  # noqa: B006
    rationale: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Record the checked decision and return to the queue (the step again if it fails)."""
    check_form_token(viewer, csrf_token)
    who = viewer.actor.name
    answers = _answers(priority, decision, reason_codes, rationale)
    parsed, errors = _parse(answers)
    recorded: dict[str, object] = {}
    if parsed is not None:
        try:
            with state.sessions() as db:
                recorded = casework.decide(db, referral_id=referral_id, decision=parsed, actor=who)
        except NotFound:
            return _not_found(request, state, viewer)
        except Refusal as exc:
            errors = _refusal_errors(exc)
            status = status_of(exc)
            return _step(
                request,
                state,
                viewer,
                referral_id,
                answers=answers,
                errors=errors,
                status_code=status,
            )
    if errors:
        return _step(
            request, state, viewer, referral_id, answers=answers, errors=errors, status_code=422
        )
    notice = f"Decision recorded for referral {referral_id}. It has left the queue."
    if recorded.get("sign_off"):  # the checks' gate: held until a manager signs it off
        notice = (
            f"Decision recorded for referral {referral_id}. It needs a manager's sign-off "
            "and stays in the queue until then."
        )
    return save_session(request, redirect("/queue"), state, viewer.session.with_notice(notice))
