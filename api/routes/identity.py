"""Identity tasks ("possible same person": confirm or reject) and undoing a merge."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query

from api.deps import AUTH_RESPONSES, ActorDep, ReadSessionDep, StateDep, require_roles
from api.schemas import ErrorOut
from service import audit, identity
from service.replies import (
    IdentityTaskList,
    IdentityTaskOut,
    MergeUndone,
    TaskDecided,
    TaskDecisionIn,
    UndoMergeIn,
)
from triage.schema import Id

router = APIRouter(tags=["identity"], responses=AUTH_RESPONSES)

PEOPLE = Depends(require_roles("practitioner", "manager", "admin"))
TaskId = Annotated[Id, Path(description="The identity task's id.")]
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "No such task or merge."},
    409: {"model": ErrorOut, "description": "Decided already, or nothing to merge or undo."},
    422: {"model": ErrorOut, "description": "Invalid input: each bad field and why."},
}


@router.get(
    "/v1/identity-tasks",
    response_model=IdentityTaskList,
    dependencies=[PEOPLE],
    summary="Possible same person tasks, oldest first",
)
def get_identity_tasks(
    session: ReadSessionDep,
    state: StateDep,
    actor: ActorDep,
    status: Annotated[Literal["open", "confirmed", "rejected", "any"], Query()] = "open",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> IdentityTaskList:
    """The tasks with the evidence side by side (viewing them is audited)."""
    items = identity.list_tasks(session, status=None if status == "any" else status, limit=limit)
    audit.record(
        state,
        actor=actor.name,
        action="identity.tasks_viewed",
        entity_type="identity_task",
        payload={"task_ids": [item["task_id"] for item in items], "status": status},
    )
    return IdentityTaskList.model_validate({"items": items})


@router.get(
    "/v1/identity-tasks/{task_id}",
    response_model=IdentityTaskOut,
    responses={404: ERRORS[404]},
    dependencies=[PEOPLE],
    summary="One possible same person task",
)
def get_identity_task(
    task_id: TaskId, session: ReadSessionDep, state: StateDep, actor: ActorDep
) -> IdentityTaskOut:
    """The incoming details beside the candidate's, field by field (viewing is audited)."""
    view = identity.get_task(session, task_id=task_id)
    audit.record(
        state, actor=actor.name, action="identity.task_viewed", entity_type="identity_task",
        entity_id=task_id,
    )  # fmt: skip
    return IdentityTaskOut.model_validate(view)


@router.post(
    "/v1/identity-tasks/{task_id}/confirm",
    response_model=TaskDecided,
    responses=ERRORS,
    dependencies=[PEOPLE],
    summary="The same child: merge the new child into the candidate",
)
def post_confirm(
    task_id: TaskId, body: TaskDecisionIn, state: StateDep, actor: ActorDep
) -> TaskDecided:
    """Merge (reversible), record the decision with its note, rescore the child's referrals."""
    decided = identity.confirm_task(state, task_id=task_id, actor=actor.name, note=body.note)
    return TaskDecided.model_validate(decided.as_dict())


@router.post(
    "/v1/identity-tasks/{task_id}/reject",
    response_model=TaskDecided,
    responses=ERRORS,
    dependencies=[PEOPLE],
    summary="Not the same child: close the task, merge nothing",
)
def post_reject(
    task_id: TaskId, body: TaskDecisionIn, state: StateDep, actor: ActorDep
) -> TaskDecided:
    """Record the decision with its note; the two children stay apart."""
    decided = identity.reject_task(state, task_id=task_id, actor=actor.name, note=body.note)
    return TaskDecided.model_validate(decided.as_dict())


@router.post(
    "/v1/person-merges/{merge_id}/undo",
    response_model=MergeUndone,
    responses=ERRORS,
    dependencies=[PEOPLE],
    summary="Undo a merge (split): move exactly the rows it moved back",
)
def post_undo_merge(
    merge_id: Annotated[Id, Path(description="The merge's id.")],
    body: UndoMergeIn,
    state: StateDep,
    actor: ActorDep,
) -> MergeUndone:
    """Split the merged child again and rescore both children's open referrals."""
    undone = identity.undo_merge(state, merge_id=merge_id, actor=actor.name, reason=body.reason)
    return MergeUndone.model_validate(undone)
