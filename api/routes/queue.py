"""The review queue."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.deps import AUTH_RESPONSES, ActorDep, ModelDep, ReadSessionDep, StateDep, require_roles
from api.errors import invalid
from api.schemas import ErrorOut
from service import audit, casework
from service.replies import QueuePage
from triage.queue import BANDS
from triage.store import QueueFilter
from triage.vocab import Concern

router = APIRouter(prefix="/v1/queue", tags=["queue"], responses=AUTH_RESPONSES)


@router.get(
    "",
    response_model=QueuePage,
    responses={422: {"model": ErrorOut, "description": "A bad filter or cursor."}},
    dependencies=[Depends(require_roles("practitioner", "manager", "admin"))],
    summary="Open referrals in review order",
)
def get_queue(
    session: ReadSessionDep,
    model: ModelDep,
    state: StateDep,
    actor: ActorDep,
    band: Annotated[list[str] | None, Query(description=f"Any of: {', '.join(BANDS)}.")] = None,
    concern: Annotated[list[Concern] | None, Query(description="Raises any of these.")] = None,
    min_age_months: Annotated[int | None, Query(ge=0, le=300)] = None,
    max_age_months: Annotated[int | None, Query(ge=0, le=300)] = None,
    waiting_hours: Annotated[
        float | None, Query(ge=0, le=24 * 365 * 10, description="Waiting at least this long.")
    ] = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> QueuePage:
    """Safety flags first, then unscored, then the look-by time (receipt plus the band's
    hours: Review first 0, Elevated 8, Standard 16, Lower 24) and probability; so no band waits
    indefinitely. Each item names the child's other open referrals and the newer records its
    score leaves out."""
    bands = tuple(band or ())
    unknown = [b for b in bands if b not in BANDS]
    if unknown:
        raise invalid(
            [{"field": "query.band", "reason": f"unknown band(s) {unknown}; use {list(BANDS)}"}]
        )
    if (
        min_age_months is not None
        and max_age_months is not None
        and min_age_months > max_age_months
    ):
        raise invalid([{"field": "query.min_age_months", "reason": "greater than max_age_months"}])
    filters = QueueFilter(
        bands=bands,
        concerns=tuple(str(c) for c in concern or ()),
        min_age_months=min_age_months,
        max_age_months=max_age_months,
    )
    page = casework.read_queue(
        session,
        model=model,
        filters=filters,
        waiting_hours=waiting_hours,
        cursor=cursor,
        limit=limit,
    )
    audit.record(
        state,
        actor=actor.name,
        action="queue.viewed",
        entity_type="queue",
        model_version=model.scorer.version if model is not None else None,
        payload={
            "referral_ids": [item["referral_id"] for item in page["items"]],
            "filters": {
                "band": list(bands),
                "concern": list(filters.concerns),
                "min_age_months": min_age_months,
                "max_age_months": max_age_months,
                "waiting_hours": waiting_hours,
            },
        },
    )
    return QueuePage.model_validate(page)
