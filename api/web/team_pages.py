"""The manager's page: what the team decided and where it differed from the model, to learn from."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from api.deps import StateDep
from api.web.auth import ManagerViewer, check_form_token, redirect, save_session
from api.web.case_pages import show
from service import audit, decisions, team_panels
from service.errors import Invalid
from service.monitoring import monitoring_panel
from service.teamstats import AGREEMENTS, team_learning
from triage.store.statistics import decisions_since
from triage.store.tables import utcnow
from triage.store.team_facts import decision_records, names_around_children, open_items
from triage.vocab import PRIORITY_BANDS, DecisionKind

MODE_WORDS = {
    decisions.BAND_SHOWN: "Band shown: the band is on the referral page from the start",
    decisions.JUDGE_FIRST: "Judge first: the band is shown after the practitioner's own priority",
}

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
        records = decision_records(db, since=since)
        waiting = open_items(db)
        mode = decisions.decision_mode(db)
        disagreeing = [r.child_id for r in records if r.agreement not in (None, "agree")]
        names = names_around_children(db, child_ids=disagreeing)
        monitoring = monitoring_panel(db)
    learning = team_learning(facts, since=since, until=now)
    rationales = team_panels.disagreement_rationales(records, names=names)
    audit.record(
        state,
        actor=viewer.actor.name,
        action="team.viewed",
        entity_type="team",
        payload={
            "channel": "page",
            "weeks": weeks,
            "decisions": learning.total,
            "rationales_shown": len(rationales),
        },
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
        backlog=team_panels.backlog(waiting, now=now),
        timeliness=team_panels.timeliness(records),
        by_mode=team_panels.agreement_by_mode(records),
        outcomes=team_panels.overrides_against_outcomes(records),
        rationales=rationales,
        small_count=team_panels.SMALL_COUNT,
        mode=mode,
        mode_words=MODE_WORDS,
        priorities={str(k): v for k, v in PRIORITY_BANDS.items()},
        monitoring=monitoring,
        monitoring_hours=round(state.settings.monitor_interval_seconds / 3600, 1),
    )


@router.post("/manager/decision-mode")
def decision_mode(
    request: Request,
    state: StateDep,
    viewer: ManagerViewer,
    mode: Annotated[str, Form(max_length=40)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Switch the team between "band shown" and "judge first" (audited)."""
    check_form_token(viewer, csrf_token)
    try:
        with state.sessions() as db:
            decisions.set_decision_mode(db, mode=mode, actor=viewer.actor.name)
    except Invalid:
        notice = "Choose one of the two ways of working."
    else:
        notice = f"The team now works this way: {MODE_WORDS[mode]}."
    session = viewer.session.with_notice(notice)
    return save_session(request, redirect("/manager#decision-mode"), state, session)
