"""The champion's fairness audit for researchers: pseudonymised, small counts suppressed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from api.deps import AUTH_RESPONSES, ActorDep, ModelDep, StateDep, require_roles
from api.errors import ApiError
from api.schemas import ErrorOut
from models.fairness import (
    DEFAULT_MIN_COUNT,
    SCHEMA,
    SCHEMA_VERSION,
    pseudonymise_document,
)
from service.audit import record

_PUBLISHED: dict[tuple[int, str, int], dict[str, Any]] = {}


def _published(stored: dict[str, Any], min_count: int) -> dict[str, Any]:
    """The published document at one threshold, computed once per stored document."""
    key = (id(stored), str(stored.get("generated_at")), min_count)
    if key not in _PUBLISHED:
        try:
            published = pseudonymise_document(stored, min_count=min_count)
        except ValueError as exc:
            raise ApiError(409, "conflict", str(exc)) from exc
        if len(_PUBLISHED) >= 8:
            _PUBLISHED.clear()
        _PUBLISHED[key] = published
    return _PUBLISHED[key]


router = APIRouter(prefix="/v1", tags=["audit"], responses=AUTH_RESPONSES)


@router.get(
    "/audit/fairness",
    summary="The champion's fairness audit (pseudonymised)",
    description=(
        "The fairness audit logged with the champion's training run (JSON schema "
        f"`{SCHEMA}` version {SCHEMA_VERSION}): metrics by group and "
        "intersection with intervals and verdicts. Run and data identifiers are removed; "
        "disclosure control withholds small groups and every cell with a count below "
        "`min_count`, then further cells until none can be worked out from the shown ones "
        "(the rule and its source are in the document's `disclosure`)."
    ),
    responses={
        404: {"model": ErrorOut, "description": "No champion, or no audit logged."},
        409: {"model": ErrorOut, "description": "The audit predates disclosure control."},
    },
    dependencies=[Depends(require_roles("researcher", "admin"))],
)
def fairness_audit(
    state: StateDep,
    model: ModelDep,
    actor: ActorDep,
    min_count: int = Query(
        DEFAULT_MIN_COUNT, ge=DEFAULT_MIN_COUNT, le=1000, description="Suppress counts below this."
    ),
) -> dict[str, Any]:
    """The audit document with small counts suppressed; the export is audited."""
    if model is None or model.fairness is None:
        raise ApiError(404, "not_found", "the champion model has no fairness audit logged")
    document = _published(model.fairness, min_count)
    record(
        state,
        actor=actor.name,
        action="export.fairness_audit",
        entity_type="model",
        entity_id=None,
        model_version=model.scorer.version,
        payload={"min_count": min_count, "schema_version": document.get("schema_version")},
    )
    return document
