"""The manager's page: what the team decided and where it differed from the model, to learn from."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api.deps import StateDep
from api.web.auth import ManagerViewer
from api.web.case_pages import show
from service import audit
from service.teamstats import AGREEMENTS, team_learning
from triage.store.statistics import decisions_since
from triage.store.tables import utcnow
from triage.vocab import DecisionKind

router = APIRouter(include_in_schema=False)


@router.get("/manager")
def manager(
    request: Request,
    state: StateDep,
    viewer: ManagerViewer,
    weeks: Annotated[int, Query(ge=1, le=104)] = 12,
) -> Response:
    """Decisions by band and disagreement by reason, week by week."""
    now = utcnow()
    since = now - timedelta(weeks=weeks)
    with state.read_sessions() as db:
        facts = decisions_since(db, since=since)
    learning = team_learning(facts, since=since, until=now)
    audit.record(
        state,
        actor=viewer.actor.name,
        action="team.viewed",
        entity_type="team",
        payload={"channel": "page", "weeks": weeks, "decisions": learning.total},
    )
    return show(
        request,
        state,
        viewer,
        "manager.html",
        learning=learning,
        weeks=weeks,
        agreements=AGREEMENTS,
        decision_kinds=[str(k) for k in DecisionKind],
    )
