"""Scenario suite: histories shaped on safeguarding reviews get the band and reasons they need.

Each scenario is scored as the service scores it (the catalogue over the history, the model,
then the safety rules), by both model families fitted on a synthetic world. Controls check that
repetition alone, with nothing corroborating it, does not escalate.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scenarios import PEOPLE_SCENARIOS, SCENARIOS, Scenario

from explain.reasons import RAISES, reasons_for_row
from features.catalogue import PEOPLE_SIGNAL_NAMES
from features.pointwise import evaluate
from models.dataset import as_matrix
from models.splits import TEST
from models.train import fit_scorer
from triage.queue import BANDS, apply_safety_rules, facts_for


@pytest.fixture(scope="module")
def scorers(scenario_world_data):
    """Both families fitted (train), calibrated and banded (validation) on a synthetic world."""
    return {
        family: fit_scorer(scenario_world_data, family, n_boot=2)
        for family in ("scorecard", "challenger")
    }


PEOPLE_SIGNALS = PEOPLE_SIGNAL_NAMES
"""The signals of who lives with the child (issue 20)."""


@pytest.fixture(scope="module")
def scorers_without_people(scenario_world_data):
    """Both families fitted on the same world without the signals of who lives there."""
    features = scenario_world_data.features.drop(columns=list(PEOPLE_SIGNALS))
    data = replace(scenario_world_data, features=features)
    return {family: fit_scorer(data, family, n_boot=2) for family in ("scorecard", "challenger")}


def share_ranked_below(scorer, data, probability: float) -> float:
    """Share of the world's test-period referrals this scorer ranks below ``probability``."""
    rows = data.features.loc[data.part(TEST), list(scorer.signals)]
    scores = np.asarray(scorer.score_matrix(as_matrix(rows)).probability)
    return float((scores < probability).mean())


def triage(scorer, scenario: Scenario):
    """Band, model band, flags and reasons of a scenario's referral, as the service gives them."""
    query = scenario.query()
    values = evaluate(query, scenario.born, scenario.history())
    row = np.array([[values[s].value for s in scorer.signals]])
    batch = scorer.score_matrix(row)
    facts = facts_for(
        date_of_birth=scenario.born,
        received_at=_received(query),
        injury_reported=query.injury_reported,
        injury_sites=query.injury_sites,
        concerns=query.concerns,
        referrer_relationship=query.referrer_relationship,
        injury_photographed=scenario.referral.photographed,
        history={name: v.value for name, v in values.items()},
    )
    safety = apply_safety_rules(facts, str(batch.band[0]))
    reasons = reasons_for_row(scorer.signals, row[0], batch.contributions[0], values)
    return safety, reasons, float(batch.probability[0])


def _received(query):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(query.t_ms / 1000, tz=UTC)


POLICY_COUNTS = (
    "referrer_relative_friend",
    "relative_friend_concerns_365d",
    "repeat_same_concern_365d",
    "distinct_referrers_365d",
    "prior_nfa_closures_365d",
)


@pytest.mark.parametrize("family", ["scorecard", "challenger"])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_scenario_gets_the_band_and_reasons_it_needs(scorers, family, scenario):
    scorer = scorers[family]
    safety, reasons, probability = triage(scorer, scenario)
    rank = BANDS.index(safety.band)
    story = f"{scenario.name} ({family}): {safety.band}, p={probability:.3f}, {safety.flag_codes}"
    if scenario.at_least:
        assert rank <= BANDS.index(scenario.at_least), story
    assert set(safety.flag_codes) == set(scenario.flags), story
    top = reasons[: scenario.top]
    for signal in scenario.reasons:
        named = [r for r in top if r.signal == signal]
        ranked = [(r.signal, r.direction) for r in reasons[: scenario.top + 4]]
        assert named and named[0].direction == RAISES, f"{story}: {signal} not in {ranked}"
    if scenario.raised_by_history:
        alone, _, alone_probability = triage(scorer, scenario.alone())
        assert rank < BANDS.index(alone.band), (story, alone.band, alone_probability)
    # Who referred, or a count of concerns, never reads as lowering priority.
    for reason in reasons:
        if reason.signal in POLICY_COUNTS:
            assert reason.contribution >= -1e-9, (story, reason.sentence)


@pytest.mark.parametrize("family", ["scorecard", "challenger"])
@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s.control], ids=lambda s: s.name)
def test_repetition_alone_is_not_escalated_and_corroboration_counts(scorers, family, scenario):
    scorer = scorers[family]
    safety, _, probability = triage(scorer, scenario)
    assert not safety.flag_codes and safety.band != BANDS[0], (scenario.name, safety.band)
    _, _, corroborated = triage(scorer, scenario.corroborated())
    assert corroborated >= probability - 1e-12, (scenario.name, probability, corroborated)


@pytest.mark.parametrize("family", ["scorecard", "challenger"])
@pytest.mark.parametrize("scenario", PEOPLE_SCENARIOS, ids=lambda s: s.name)
def test_who_lives_with_the_child_ranks_the_referral_higher(
    scorers, scorers_without_people, scenario_world_data, family, scenario
):
    with_people = scorers[family]
    without_people = scorers_without_people[family]
    assert set(PEOPLE_SIGNALS) <= set(with_people.signals)
    assert set(PEOPLE_SIGNALS).isdisjoint(without_people.signals)
    _, reasons, p_with = triage(with_people, scenario)
    _, _, p_without = triage(without_people, scenario)
    rank_with = share_ranked_below(with_people, scenario_world_data, p_with)
    rank_without = share_ranked_below(without_people, scenario_world_data, p_without)
    story = f"{scenario.name} ({family}): above {rank_with:.1%} with, {rank_without:.1%} without"
    assert rank_with > rank_without, story
    people_reasons = [r for r in reasons[: scenario.top] if r.signal in PEOPLE_SIGNALS]
    assert people_reasons and all(r.direction == RAISES for r in people_reasons), (
        story,
        [r.sentence for r in reasons[: scenario.top]],
    )
