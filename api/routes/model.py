"""The champion model: what it is, and reloading it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from api.deps import AUTH_RESPONSES, ActorDep, ServiceState, StateDep, require_roles
from service.champion import freeze_garbage_collector
from service.replies import ModelInfo, ReloadOut
from service.scoring import score_backlog, sync_queue
from triage.queue import SAFETY_RULES

router = APIRouter(prefix="/v1", tags=["model"], responses=AUTH_RESPONSES)

RELOAD_SCORING_LIMIT = 5_000
"""Referrals scored inside the reload request; the rest stay queued as unscored (reported)."""


def model_info(state: ServiceState) -> dict[str, Any]:
    """The champion model's description, or the reason there is none."""
    holder = state.models
    current = holder.current
    info: dict[str, Any] = {
        "status": "no_model" if current is None else "loaded",
        "safety_rules": [rule.describe() for rule in SAFETY_RULES],
        "last_error": holder.last_error,
    }
    if current is not None:
        scorer = current.scorer
        info |= {
            "version": scorer.version,
            "family": scorer.family,
            "outcome": scorer.outcome,
            "outcome_words": scorer.outcome_words,
            "catalogue_version": scorer.catalogue_version,
            "signals": list(scorer.signals),
            "bands": scorer.bands.to_dict(),
            "card": current.card,
            "gates": current.gates,
            "loaded_at": current.loaded_at,
        }
    return info


@router.get(
    "/model",
    response_model=ModelInfo,
    dependencies=[Depends(require_roles("practitioner", "manager", "researcher", "admin"))],
    summary="The champion model, or 'no_model'",
)
def get_model(state: StateDep) -> ModelInfo:
    """Champion version, what it predicts, band thresholds, safety rules, model card, gates."""
    return ModelInfo.model_validate(model_info(state))


@router.post(
    "/admin/reload-model",
    response_model=ReloadOut,
    dependencies=[Depends(require_roles("admin"))],
    summary="Reload the champion and score the unscored queue",
)
async def reload_model(state: StateDep, actor: ActorDep) -> ReloadOut:
    """Reload the champion (keeping the old one if that fails), then score the backlog."""
    return ReloadOut.model_validate(await run_in_threadpool(reload_and_score, state, actor.name))


def reload_and_score(state: ServiceState, actor: str) -> dict[str, Any]:
    """Reload, queue referrals loaded behind the service's back, score what needs it."""
    reloaded = state.models.load()
    if reloaded:
        freeze_garbage_collector(state.settings, again=True)
    with state.sessions() as session:
        queued = sync_queue(session)
        session.commit()
    scored = failed = remaining = 0
    model = state.models.current
    if model is not None:
        result = score_backlog(state.sessions, model, actor=actor, limit=RELOAD_SCORING_LIMIT)
        scored, failed, remaining = result.scored, result.failed, result.remaining
    return {
        "reloaded": reloaded,
        "model": model_info(state),
        "queued": queued,
        "scored": scored,
        "failed": failed,
        "remaining": remaining,
    }
