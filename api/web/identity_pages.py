"""Identity pages: possible same child checks (the evidence side by side) and undoing a merge."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from api.deps import StateDep
from api.errors import status_of
from api.web.auth import CaseworkViewer, check_form_token, redirect, save_session
from api.web.case_pages import reason_problem, show
from service import audit, identity
from service.errors import NotFound, Refusal

router = APIRouter(include_in_schema=False)

DECISIONS = ("confirm", "reject")


@router.get("/identity-tasks")
def identity_tasks(request: Request, state: StateDep, viewer: CaseworkViewer) -> Response:
    """Open possible same person tasks, oldest first."""
    with state.read_sessions() as db:
        tasks = identity.list_tasks(db, status="open", limit=200)
    audit.record(
        state,
        actor=viewer.actor.name,
        action="identity.tasks_viewed",
        entity_type="identity_task",
        payload={"channel": "page", "task_ids": [t["task_id"] for t in tasks]},
    )
    return show(request, state, viewer, "identity_tasks.html", tasks=tasks)


def _task_page(
    request: Request,
    state: Any,
    viewer: Any,
    task_id: str,
    *,
    status_code: int = 200,
    form_errors: list[dict[str, str]] | None = None,
    note: str = "",
) -> Response:
    """One task: the incoming details beside the candidate's, and the two equal choices."""
    try:
        with state.read_sessions() as db:
            task = identity.get_task(db, task_id=task_id)
    except NotFound:
        return show(
            request, state, viewer, "error.html", status_code=404, title="Task not found",
            message="There is no identity task with this id. It may have been mistyped.",
        )  # fmt: skip
    audit.record(
        state,
        actor=viewer.actor.name,
        action="identity.task_viewed",
        entity_type="identity_task",
        entity_id=task_id,
        payload={"channel": "page"},
    )
    return show(
        request,
        state,
        viewer,
        "identity_task.html",
        status_code=status_code,
        task=task,
        form_errors=form_errors or [],
        note=note,
    )


@router.get("/identity-tasks/{task_id}")
def identity_task(
    request: Request, task_id: str, state: StateDep, viewer: CaseworkViewer
) -> Response:
    """The task page."""
    return _task_page(request, state, viewer, task_id)


@router.post("/identity-tasks/{task_id}/decide")
def decide_task(
    request: Request,
    task_id: str,
    state: StateDep,
    viewer: CaseworkViewer,
    decision: Annotated[str, Form(max_length=20)] = "",
    note: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Confirm (merge) or reject; both need a note, neither is the default."""
    check_form_token(viewer, csrf_token)
    problem = None
    if decision not in DECISIONS:
        problem = {"field": "decision", "reason": "Choose whether this is the same child"}
    elif note_problem := reason_problem(note, missing="Say what your decision rests on"):
        problem = {"field": "note", "reason": note_problem}
    if problem is not None:
        return _task_page(
            request, state, viewer, task_id, status_code=422, form_errors=[problem], note=note
        )
    act = identity.confirm_task if decision == "confirm" else identity.reject_task
    try:
        decided = act(state, task_id=task_id, actor=viewer.actor.name, note=note.strip())
    except Refusal as exc:
        error = {"field": "decision", "reason": exc.message}
        return _task_page(
            request, state, viewer, task_id, status_code=status_of(exc), form_errors=[error],
            note=note,
        )  # fmt: skip
    if decision == "confirm":
        notice = (
            f"Recorded: the same child. The referral now reads child "
            f"{decided.task['candidate_person_id']}'s history and was scored again. "
            "The merge can be undone from the task."
        )
    else:
        notice = "Recorded: not the same child. Nothing was merged."
    session = viewer.session.with_notice(notice)
    target = (
        f"/referrals/{decided.task['referral_id']}"
        if decided.task["referral_id"]
        else (f"/identity-tasks/{task_id}")
    )
    return save_session(request, redirect(target), state, session)


@router.post("/person-merges/{merge_id}/undo")
def undo_merge(
    request: Request,
    merge_id: str,
    state: StateDep,
    viewer: CaseworkViewer,
    task_id: Annotated[str, Form(max_length=64)] = "",
    reason: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Split a merged child again; back to the task page."""
    check_form_token(viewer, csrf_token)
    if words := reason_problem(reason, missing="Say why the merge is undone"):
        return _task_page(
            request, state, viewer, task_id, status_code=422,
            form_errors=[{"field": "undo-reason", "reason": words}],
        )  # fmt: skip
    try:
        identity.undo_merge(state, merge_id=merge_id, actor=viewer.actor.name, reason=reason)
    except Refusal as exc:
        return _task_page(
            request, state, viewer, task_id, status_code=status_of(exc),
            form_errors=[{"field": "undo-reason", "reason": exc.message}],
        )  # fmt: skip
    session = viewer.session.with_notice(
        "The merge is undone: the two children are apart again and their referrals were scored "
        "again."
    )
    return save_session(request, redirect(f"/identity-tasks/{task_id}"), state, session)
