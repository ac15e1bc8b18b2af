"""Researchers' views: pseudonymised referrals and human decisions by group (no case data)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.deps import AUTH_RESPONSES, ActorDep, ReadSessionDep, StateDep, require_roles
from api.schemas import ErrorOut
from models.fairness import DEFAULT_MIN_COUNT
from service import audit
from service.replies import ResearchDecisions, ResearchReferralPage
from service.research import (
    GROUPINGS,
    QUARTER,
    decisions_by_group,
    quarter_bounds,
    quarter_of,
    research_referrals,
)
from triage.pseudonyms import pseudonym_key
from triage.store.statistics import (
    count_referrals,
    decisions_since,
    referral_children,
    referral_records,
)
from triage.store.tables import utcnow

router = APIRouter(
    prefix="/v1/research",
    tags=["research"],
    responses={**AUTH_RESPONSES, 422: {"model": ErrorOut, "description": "A bad parameter."}},
    dependencies=[Depends(require_roles("researcher", "admin"))],
)


@router.get(
    "/referrals",
    response_model=ResearchReferralPage,
    summary="Pseudonymised referrals with scores and decisions (an audited export)",
    description=(
        "No names, dates of birth, narratives, rationales, raw ids, protected attributes or "
        "ages: ids are keyed pseudonyms (stable, not reversible without the service's key), "
        "receipt is a month, reason codes outside the closed set read `other`. Groups are "
        "compared through /v1/research/decisions, where small counts are suppressed."
    ),
)
def get_research_referrals(
    session: ReadSessionDep,
    state: StateDep,
    actor: ActorDep,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> ResearchReferralPage:
    """A page of pseudonymised referrals in order of receipt."""
    records = referral_records(session, offset=offset, limit=limit)
    items = research_referrals(records, key=pseudonym_key(state.secret_key))
    audit.record(
        state,
        actor=actor.name,
        action="export.research_referrals",
        entity_type="research",
        payload={"offset": offset, "limit": limit, "rows": len(items)},
    )
    return ResearchReferralPage.model_validate(
        {"items": items, "total": count_referrals(session), "offset": offset, "limit": limit}
    )


@router.get(
    "/decisions",
    response_model=ResearchDecisions,
    summary="Human decisions by group and band, small counts suppressed (an audited export)",
    description=(
        "Disclosure control is the fairness audit's: a cell with any count from 1 to "
        "`min_count - 1` (decisions or an agreement, so complements too) is withheld, then "
        "further cells, over every grouping at once, until none can be worked out from the "
        "shown cells of any grouping and the band totals, and no band total minus its shown "
        "cells is small. A withheld cell has no numbers."
    ),
)
def get_research_decisions(
    session: ReadSessionDep,
    state: StateDep,
    actor: ActorDep,
    by: Annotated[str, Query(pattern=f"^({'|'.join(GROUPINGS)})$")] = "ethnicity",
    quarter: Annotated[
        str | None,
        Query(
            pattern=QUARTER.pattern,
            description="A calendar quarter such as 2026-Q2 (default: the current one). Fixed, "
            "non-overlapping periods, so that two answers cannot be subtracted.",
        ),
    ] = None,
    min_count: Annotated[int, Query(ge=DEFAULT_MIN_COUNT, le=1000)] = DEFAULT_MIN_COUNT,
) -> ResearchDecisions:
    """Agreement with the band per group, for auditing human decisions as well as the model."""
    quarter = quarter or quarter_of(utcnow())
    start, end = quarter_bounds(quarter)
    facts = decisions_since(session, since=start, until=end)
    pairs = referral_children(session, referral_ids=[f.referral_id for f in facts])
    rows = decisions_by_group(facts, pairs, by=by, min_count=min_count)
    audit.record(
        state,
        actor=actor.name,
        action="export.research_decisions",
        entity_type="research",
        payload={"by": by, "quarter": quarter, "min_count": min_count, "rows": len(rows)},
    )
    return ResearchDecisions.model_validate(
        {"by": by, "quarter": quarter, "min_count": min_count, "rows": rows}
    )
