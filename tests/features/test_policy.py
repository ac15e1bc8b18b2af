"""The priority policy: whose voice counts, obeyed by both families and enforced by a gate."""

from __future__ import annotations

import copy
import math
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.catalogue import SIGNALS, Aggregation
from features.pointwise import evaluate
from features.policy import (
    DEFAULT_MODEL_INPUTS,
    NEVER_LOWERS,
    NOT_INPUTS,
    PRIORITY_POLICY,
    Rule,
    policy_markdown,
)
from features.records import History, ReferralRecord
from models.families import sigmoid
from models.gates import policy_gates
from models.splits import TEST
from triage.vocab import Concern, InjurySite, ReferrerRelationship, ReferrerType

BORN = date(2023, 3, 1)
RECEIVED = datetime(2025, 6, 1, 9, 30, tzinfo=UTC)
MS = 1000


def test_the_policy_names_real_signals_and_keeps_who_referred_out_of_the_models():
    assert {e.signal for e in PRIORITY_POLICY} <= set(SIGNALS)
    assert {"referrer_professional", "referrer_anonymous"} == NOT_INPUTS
    assert not NOT_INPUTS & set(DEFAULT_MODEL_INPUTS)
    counted = {
        "relative_friend_concerns_365d",
        "repeat_same_concern_365d",
        "distinct_referrers_365d",
        "prior_injury_reports_365d",
        "prior_nfa_closures_365d",
    }
    assert counted <= NEVER_LOWERS
    assert all(SIGNALS[e.signal].direction is not None for e in PRIORITY_POLICY
               if e.rule is Rule.never_lowers)  # fmt: skip
    assert "`relative_friend_concerns_365d` | never lowers" in policy_markdown()


def _referral(i: int, days_before: float, **fields) -> ReferralRecord:
    values = {
        "referral_id": f"R-{i}",
        "child_id": "C-1",
        "household_id": "H-1",
        "t_ms": int((RECEIVED - timedelta(days=days_before)).timestamp() * MS),
        "referrer_type": ReferrerType.police.value,
        "referrer_relationship": None,
        "referrer_id": f"P-{i}",
        "concerns": frozenset({Concern.neglect.value}),
        "injury_reported": False,
        "injury_sites": frozenset(),
    }
    return ReferralRecord(**(values | fields))


CONCERNS = st.frozensets(st.sampled_from([c.value for c in Concern]), min_size=1, max_size=3)
SITES = st.frozensets(st.sampled_from([s.value for s in InjurySite]), max_size=2)


@st.composite
def earlier_referral(draw, i: int) -> ReferralRecord:
    """Any earlier referral about the child in the last two years."""
    sites = draw(SITES)
    kind = draw(st.sampled_from([t.value for t in ReferrerType]))
    return _referral(
        i,
        draw(st.floats(0.01, 730)),
        referrer_type=kind,
        referrer_relationship=draw(
            st.one_of(st.none(), st.sampled_from([r.value for r in ReferrerRelationship]))
        ),
        referrer_id=draw(st.one_of(st.none(), st.sampled_from(["A", "B", "C", "D"]))),
        concerns=draw(CONCERNS),
        injury_reported=bool(sites),
        injury_sites=sites,
    )


@st.composite
def relatives_concern(draw) -> ReferralRecord:
    """An earlier referral by a relative or family friend."""
    sites = draw(SITES)
    return _referral(
        99,
        draw(st.floats(0.01, 400)),
        referrer_type=ReferrerType.individual.value,
        referrer_relationship=draw(st.sampled_from(["relative", "family_friend"])),
        referrer_id=draw(st.sampled_from(["A", "IND-R1", "IND-F2"])),
        concerns=draw(CONCERNS),
        injury_reported=bool(sites),
        injury_sites=sites,
    )


def _row(query: ReferralRecord, earlier: list[ReferralRecord], signals: tuple[str, ...]):
    values = evaluate(query, BORN, History(referrals=earlier))
    return np.array([[values[s].value for s in signals]])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    earlier=st.lists(st.integers(0, 10**6), max_size=4).flatmap(
        lambda seeds: st.tuples(*(earlier_referral(i) for i in range(len(seeds))))
    ),
    added=relatives_concern(),
    concerns=CONCERNS,
    sites=SITES,
    relative_referring=st.booleans(),
)
def test_an_earlier_relatives_concern_never_lowers_the_probability(
    fitted_families, earlier, added, concerns, sites, relative_referring
):
    query = _referral(
        0,
        0.0,
        referrer_type=ReferrerType.individual.value if relative_referring else "school",
        referrer_relationship="relative" if relative_referring else None,
        concerns=concerns,
        injury_reported=bool(sites),
        injury_sites=sites,
    )
    for model in fitted_families[:2]:
        before = _row(query, list(earlier), model.signals)
        after = _row(query, [*earlier, added], model.signals)
        p_before, p_after = sigmoid(model.log_odds(before)), sigmoid(model.log_odds(after))
        assert p_after[0] >= p_before[0] - 1e-12, model.family


def _plausible_rows(rng: np.random.Generator, signals: tuple[str, ...], n: int) -> np.ndarray:
    """Random rows over each signal's range, "none" included (no earlier referral, zero counts)."""
    out = np.zeros((n, len(signals)))
    for j, name in enumerate(signals):
        aggregation = SIGNALS[name].aggregation
        if aggregation is Aggregation.exists:
            out[:, j] = rng.integers(0, 2, n)
        elif aggregation is Aggregation.value:
            out[:, j] = rng.integers(0, 216, n)
        elif aggregation is Aggregation.days_since:
            out[:, j] = np.where(rng.random(n) < 0.4, math.nan, rng.uniform(0, 2000, n))
        else:
            out[:, j] = np.where(rng.random(n) < 0.5, 0, rng.integers(0, 12, n))
    return out


def test_no_policy_signal_contributes_below_its_value_at_none(fitted_families):
    rng = np.random.default_rng(3)
    for model in fitted_families[:2]:
        X = _plausible_rows(rng, model.signals, 4_000)
        _, contributions = model.contributions(X)
        for j, name in enumerate(model.signals):
            if name not in NEVER_LOWERS:
                continue
            assert contributions[:, j].min() >= -1e-9, (model.family, name)
            at_none = X.copy()
            none = SIGNALS[name].aggregation is Aggregation.days_since
            at_none[:, j] = math.nan if none else 0.0
            assert np.abs(model.contributions(at_none)[1][:, j]).max() < 1e-9, (model.family, name)


def test_the_scorecard_shapes_never_turn_against_their_direction(fitted_families):
    scorecard = fitted_families[0]
    for name, binning, sign, table in zip(
        scorecard.signals, scorecard.binnings, scorecard.signs, scorecard.tables_, strict=True
    ):
        if sign:
            in_order = table[binning.priority_order(sign)]
            assert (np.diff(in_order) >= -1e-12).all(), name


def test_the_policy_gate_passes_both_families_and_names_a_broken_signal(fitted_families):
    scorecard, challenger, X, _ = fitted_families
    for model in (scorecard, challenger):
        gates = policy_gates(model, model.signals, X[TEST])
        assert gates and all(g.passed for g in gates), [g for g in gates if not g.passed]
        assert {g.gate for g in gates} == {f"priority_policy:{s}" for s in NEVER_LOWERS}

    broken = copy.deepcopy(scorecard)
    j = broken.signals.index("relative_friend_concerns_365d")
    broken.tables_[j] = -np.abs(broken.tables_[j]) - 0.1 * np.arange(broken.tables_[j].size)
    failed = [g for g in policy_gates(broken, broken.signals, X[TEST]) if not g.passed]
    assert [g.gate for g in failed] == ["priority_policy:relative_friend_concerns_365d"]
    assert failed[0].shortfall > 0 and "lowers priority" in failed[0].detail


def test_a_model_reading_who_referred_cannot_pass_the_gate(fitted_families):
    scorecard = fitted_families[0]
    gates = policy_gates(scorecard, ("referrer_professional",), np.zeros((1, 1)))
    assert [g.gate for g in gates] == ["priority_policy:referrer_professional"]
    assert not gates[0].passed and "keeps this signal out" in gates[0].detail


@pytest.mark.parametrize("family", [0, 1])
def test_a_relative_referring_never_lowers_priority(fitted_families, family):
    model = fitted_families[family]
    j = model.signals.index("referrer_relative_friend")
    X = fitted_families[2][TEST][:2_000]
    as_relative, as_other = X.copy(), X.copy()
    as_relative[:, j], as_other[:, j] = 1.0, 0.0
    assert (model.log_odds(as_relative) >= model.log_odds(as_other) - 1e-9).all()


PEOPLE = (
    "adult_joined_household_90d",
    "adult_joined_household_365d",
    "unrelated_adult_in_household",
    "risk_adult_joined_household_365d",
    "risk_adult_in_household",
    "parent_care_history",
    "sibling_on_plan_or_looked_after",
    "household_changes_365d",
)


def test_who_lives_with_the_child_is_under_the_policy():
    assert set(PEOPLE) <= NEVER_LOWERS
    assert set(PEOPLE) <= set(DEFAULT_MODEL_INPUTS)
    assert all(SIGNALS[name].direction is not None for name in PEOPLE)


@pytest.mark.parametrize("family", [0, 1])
def test_more_of_who_lives_with_the_child_never_lowers_priority(fitted_families, family):
    model = fitted_families[family]
    X = fitted_families[2][TEST][:2_000]
    for name in PEOPLE:
        j = model.signals.index(name)
        more = X.copy()
        more[:, j] = X[:, j] + 1.0 if SIGNALS[name].aggregation is Aggregation.count else 1.0
        assert (model.log_odds(more) >= model.log_odds(X) - 1e-9).all(), name
