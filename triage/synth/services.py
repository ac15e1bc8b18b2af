"""What the front door and children's services did: decisions, the outcome funnel, labels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from triage.synth.channels import SOURCES
from triage.synth.harm import EPISODE_TYPES, HORIZON_DAYS, Episodes
from triage.synth.params import WorldParams
from triage.synth.population import Population
from triage.synth.referrals import CONCERNS, Referrals
from triage.vocab import (
    PROFESSIONAL_REFERRERS,
    Concern,
    DecisionKind,
    EventKind,
    OutcomeLevel,
    PlanCategory,
    ReferrerType,
)

EVENT_KINDS: tuple[EventKind, ...] = tuple(EventKind)

LEVELS: tuple[OutcomeLevel, ...] = tuple(OutcomeLevel)
DECISIONS: tuple[DecisionKind, ...] = tuple(DecisionKind)
LOOKED_AFTER_SHARE = 0.08
CURRENT_HARM_DAYS = 60.0
"""Harm counts as current for the front door when an episode is active within this many days."""


@dataclass
class Services:
    """Per-referral service response and the social-care records it leaves."""

    decided: np.ndarray
    decided_at: np.ndarray
    decision: np.ndarray
    level: np.ndarray
    plan_category: np.ndarray
    harm_now: np.ndarray
    harm_12m: np.ndarray
    # Social-care events: child, time, kind (index into ``EVENT_KINDS``).
    event_child: np.ndarray
    event_t: np.ndarray
    event_kind: np.ndarray


def keyed(child: np.ndarray, t: np.ndarray) -> np.ndarray:
    """One sortable float key per (child, time); times are days in a window of under 60 years."""
    return child.astype(np.float64) * 40_000.0 + (t + 10_000.0)


def count_before(child: np.ndarray, t: np.ndarray, window: float) -> np.ndarray:
    """For each record, how many records of the same child fall in ``[t - window, t)``."""
    key = keyed(child, t)
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    at = np.searchsorted(sorted_key, key, side="left")
    since = np.searchsorted(sorted_key, key - window, side="left")
    return at - since


def any_between(
    child: np.ndarray, t0: np.ndarray, t1: np.ndarray, rec_child: np.ndarray, rec_t: np.ndarray
) -> np.ndarray:
    """Whether each child has a record with time in ``[t0, t1]``."""
    key = np.sort(keyed(rec_child, rec_t))
    lo = np.searchsorted(key, keyed(child, t0), side="left")
    hi = np.searchsorted(key, keyed(child, t1), side="right")
    return hi > lo


def _quantile_levels(score: np.ndarray, shares: list[float]) -> np.ndarray:
    """Cut a score into ordered levels with the given shares (lowest score, first level)."""
    ranks = np.empty(score.size, dtype=np.int64)
    ranks[np.argsort(score, kind="stable")] = np.arange(score.size)
    edges = np.cumsum(shares)[:-1] / sum(shares) * score.size
    return np.searchsorted(edges, ranks, side="right")


def _plan_category(refs: Referrals, episodes: Episodes, episode: np.ndarray) -> np.ndarray:
    """Initial plan category: the current episode's type, else the gravest concern raised."""
    category = np.full(refs.child.size, EPISODE_TYPES.index(PlanCategory.emotional_abuse))
    by_concern = (
        (Concern.neglect, PlanCategory.neglect),
        (Concern.physical_abuse, PlanCategory.physical_abuse),
        (Concern.sexual_abuse, PlanCategory.sexual_abuse),
    )
    for concern, plan in by_concern:
        category[refs.concerns[:, CONCERNS.index(concern)]] = EPISODE_TYPES.index(plan)
    has_episode = episode >= 0
    category[has_episode] = episodes.kind[episode[has_episode]]
    return category.astype(np.int8)


def _decisions(level: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The front-door decision recorded for each referral, given where it ended up."""
    n = level.size
    d = DECISIONS.index
    decision = np.full(n, d(DecisionKind.assessment))
    nfa = level == LEVELS.index(OutcomeLevel.no_further_action)
    options = np.array(
        [
            d(DecisionKind.no_further_action),
            d(DecisionKind.information_advice),
            d(DecisionKind.early_help),
            d(DecisionKind.refer_other_agency),
        ]
    )
    decision[nfa] = options[rng.choice(4, size=nfa.sum(), p=[0.5, 0.25, 0.15, 0.10])]
    urgent = level >= LEVELS.index(OutcomeLevel.s47_enquiry)
    protect = rng.random(n) < 0.1
    decision[urgent] = d(DecisionKind.strategy_discussion)
    decision[urgent & protect] = d(DecisionKind.immediate_protection)
    return decision.astype(np.int8)


def respond(
    pop: Population,
    episodes: Episodes,
    refs: Referrals,
    params: WorldParams,
    rng: np.random.Generator,
) -> Services:
    """Historic decisions, the outcome funnel and the social-care records that follow."""
    n = refs.child.size
    until = pop.window_days
    current = episodes.active_within(refs.child, refs.t, refs.t + CURRENT_HARM_DAYS)
    current = np.where(refs.episode >= 0, refs.episode, current)
    harm_now = current >= 0
    harm_12m = (episodes.active_within(refs.child, refs.t, refs.t + HORIZON_DAYS) >= 0) | harm_now

    age = pop.age_years(refs.child, refs.t)
    concern = {c: refs.concerns[:, i] for i, c in enumerate(CONCERNS)}
    professional = np.isin(refs.source, [SOURCES.index(s) for s in PROFESSIONAL_REFERRERS])
    prior = count_before(refs.child, refs.t, 365.0)
    deprived = pop.hh_deprived[refs.household]
    score = (
        params.decision_truth_weight * harm_now
        + 0.8 * refs.injury_reported
        + 0.9 * (age < 1)
        + 0.3 * (age < 5)
        + 0.9 * concern[Concern.sexual_abuse]
        + 0.4 * concern[Concern.physical_abuse]
        + 0.3 * concern[Concern.domestic_abuse]
        + 0.3 * professional
        - 0.3 * (refs.source == SOURCES.index(ReferrerType.anonymous))
        + 0.25 * np.minimum(prior, 4)
        + params.decision_deprivation_bias * deprived
        + params.decision_noise * rng.standard_normal(n)
    )
    decided = refs.t < until - params.open_days
    shares = params.funnel_shares
    investigated_share = shares["s47_enquiry"] + shares["initial_conference"] + shares["cp_plan"]
    first_cut = [
        shares["no_further_action"],
        shares["not_in_need"],
        shares["child_in_need"],
        investigated_share,
    ]
    level = np.full(n, -1, dtype=np.int64)
    level[decided] = _quantile_levels(score[decided], first_cut)
    s47_level = LEVELS.index(OutcomeLevel.s47_enquiry)
    investigated = level == s47_level
    substantiation = (
        params.substantiation_truth_weight * harm_now[investigated]
        + 0.5 * (age[investigated] < 1)
        + rng.standard_normal(investigated.sum())
    )
    level[investigated] = s47_level + _quantile_levels(
        substantiation, [shares["s47_enquiry"], shares["initial_conference"], shares["cp_plan"]]
    )

    decided_at = refs.t + rng.uniform(1.0, 22.0, n) / 24.0
    events = _social_care_events(refs, level, params, rng)
    return Services(
        decided=decided,
        decided_at=decided_at,
        decision=_decisions(level, rng),
        level=level.astype(np.int8),
        plan_category=_plan_category(refs, episodes, current),
        harm_now=harm_now,
        harm_12m=harm_12m,
        event_child=events[0],
        event_t=events[1],
        event_kind=events[2],
    )


def _social_care_events(
    refs: Referrals, level: np.ndarray, params: WorldParams, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Assessments, child-in-need starts, s47 enquiries and plans that follow each referral."""
    n = refs.child.size
    lv = {lvl: level == LEVELS.index(lvl) for lvl in LEVELS}
    parts: list[tuple[np.ndarray, np.ndarray, int]] = []

    def add(mask: np.ndarray, delay: np.ndarray, kind: EventKind) -> None:
        parts.append((refs.child[mask], refs.t[mask] + delay[mask], EVENT_KINDS.index(kind)))

    assessment_delay = rng.uniform(10.0, 45.0, n)
    add(lv[OutcomeLevel.not_in_need], assessment_delay, EventKind.assessment_nfa)
    add(lv[OutcomeLevel.child_in_need], assessment_delay, EventKind.child_in_need)
    in_case = lv[OutcomeLevel.child_in_need] & (rng.random(n) < params.in_case_s47_probability)
    add(in_case, assessment_delay + rng.uniform(30.0, 300.0, n), EventKind.s47_enquiry)
    investigated = level >= LEVELS.index(OutcomeLevel.s47_enquiry)
    add(investigated, rng.uniform(0.5, 3.0, n), EventKind.s47_enquiry)
    plan = lv[OutcomeLevel.cp_plan]
    plan_start = rng.uniform(10.0, 21.0, n)
    add(plan, plan_start, EventKind.cp_plan_start)
    add(plan, plan_start + rng.gamma(2.0, params.plan_mean_days / 2.0, n), EventKind.cp_plan_end)
    looked_after = plan & (rng.random(n) < LOOKED_AFTER_SHARE)
    add(looked_after, plan_start + rng.uniform(30.0, 200.0, n), EventKind.looked_after_start)
    child = np.concatenate([p[0] for p in parts])
    t = np.concatenate([p[1] for p in parts])
    kind = np.concatenate([np.full(p[0].size, p[2], dtype=np.int8) for p in parts])
    return child, t, kind
