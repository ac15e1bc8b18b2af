"""Queue rules: safety rules, band order, tiers and the due-by clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from features.records import age_in_months as feature_age_in_months
from triage.queue import (
    BAND_LOOK_HOURS,
    BANDS,
    HISTORY_SIGNALS,
    SAFETY_RULES,
    TIER_SCORED,
    ReferralFacts,
    age_in_months,
    apply_safety_rules,
    due_by,
    facts_for,
    flags_in_words,
    look_by,
    overdue_cutoff,
    queue_sort_key,
    queue_tier,
)

REPEATED = {
    "prior_referrals_child_365d": 2.0,
    "prior_nfa_closures_365d": 2.0,
    "distinct_referrers_365d": 2.0,
}


def facts(
    age: int,
    *,
    injury: bool = False,
    sites: tuple[str, ...] = (),
    by: str | None = None,
    photographed: bool = False,
    history: dict[str, float] | None = None,
) -> ReferralFacts:
    return ReferralFacts(
        age_months=age,
        injury_reported=injury,
        injury_sites=frozenset(sites),
        referrer_relationship=by,
        injury_photographed=photographed,
        history=history,
    )


def test_bands_match_the_models_band_names() -> None:
    from models.bands import BAND_NAMES

    assert BANDS == BAND_NAMES


@pytest.mark.parametrize(
    ("case", "band", "expected_band", "codes"),
    [
        (facts(3, injury=True), "Lower", "Review first", ["non_mobile_infant_injury"]),
        (facts(5, injury=True, sites=("limbs",)), "Elevated", "Review first",
         ["non_mobile_infant_injury"]),
        (facts(6, injury=True), "Lower", "Lower", []),  # six months: mobile age, rule off
        (facts(3), "Standard", "Standard", []),  # no injury
        (facts(9, injury=True, sites=("head_face_neck",)), "Lower", "Review first",
         ["head_injury_under_two"]),
        (facts(2, injury=True, sites=("head_face_neck",)), "Standard", "Review first",
         ["non_mobile_infant_injury", "head_injury_under_two"]),
        (facts(15, injury=True, sites=("head_face_neck",)), "Lower", "Review first",
         ["head_injury_under_two"]),
        (facts(24, injury=True, sites=("head_face_neck",)), "Lower", "Lower", []),
        (facts(3, injury=True), None, None, ["non_mobile_infant_injury"]),  # unscored: flag only
        (facts(60, injury=True, sites=("limbs",), by="relative", photographed=True), "Lower",
         "Review first", ["family_photographed_injury"]),
        (facts(60, injury=True, sites=("limbs",), by="family_friend", photographed=True),
         "Standard", "Review first", ["family_photographed_injury"]),
        (facts(60, injury=True, sites=("limbs",), by="relative"), "Lower", "Lower", []),
        (facts(60, injury=True, sites=("limbs",), by="neighbour", photographed=True), "Lower",
         "Lower", []),
        (facts(150, history=REPEATED), "Lower", "Review first", ["third_referral_after_nfa"]),
        (facts(150, history=REPEATED | {"distinct_referrers_365d": 1}), "Lower", "Lower", []),
        (facts(150, history=REPEATED | {"prior_nfa_closures_365d": 1}), "Lower", "Lower", []),
        (facts(150, history=REPEATED | {"prior_referrals_child_365d": 1}), "Lower", "Lower", []),
        (facts(150), "Lower", "Lower", []),  # history not read: a history rule cannot fire
    ],
)  # fmt: skip
def test_safety_rules_force_review_first_and_say_so(
    case: ReferralFacts, band: str | None, expected_band: str | None, codes: list[str]
) -> None:
    outcome = apply_safety_rules(case, band)
    assert outcome.band == expected_band
    assert outcome.model_band == band
    assert outcome.flag_codes == codes
    for flag in flags_in_words(outcome.flag_codes):
        assert "reviewed first whatever the model" in flag["words"]


def test_a_rule_never_lowers_a_band() -> None:
    assert apply_safety_rules(facts(3, injury=True), "Review first").band == "Review first"


def test_rules_are_declared_with_words_and_conditions() -> None:
    codes = [rule.code for rule in SAFETY_RULES]
    assert len(codes) == len(set(codes))
    for rule in SAFETY_RULES:
        described = rule.describe()
        assert described["words"] and described["when"] and described["forces_band"] in BANDS
    reads = {r.code: r.describe()["reads_history"] for r in SAFETY_RULES}
    assert reads["third_referral_after_nfa"] and not reads["family_photographed_injury"]


def test_history_rules_read_catalogue_signals() -> None:
    from features.catalogue import SIGNALS

    assert HISTORY_SIGNALS and set(SIGNALS) >= HISTORY_SIGNALS


def test_facts_for_keeps_only_the_history_the_rules_read() -> None:
    history = {name: 3.0 for name in HISTORY_SIGNALS} | {"ed_attendances_365d": 9.0}
    made = facts_for(
        date_of_birth=date(2020, 1, 1),
        received_at=datetime(2025, 1, 1, tzinfo=UTC),
        injury_reported=False,
        injury_sites=(),
        concerns=("neglect",),
        history=history,
    )
    assert made.history == {name: 3.0 for name in HISTORY_SIGNALS}


def test_a_retired_rule_still_reads_in_words() -> None:
    (flag,) = flags_in_words(["infant_head_injury"])
    assert "under one year" in flag["words"] and flag["words"] != "infant_head_injury"


def test_age_counts_whole_months_like_the_feature_layer() -> None:
    born = date(2024, 1, 31)
    for offset in range(0, 800, 7):
        on = born + timedelta(days=offset)
        assert age_in_months(born, on) == feature_age_in_months(born, on)
    received = datetime(2026, 4, 18, 23, 30, tzinfo=UTC)
    got = facts_for(
        date_of_birth=date(2025, 11, 19),
        received_at=received,
        injury_reported=True,
        injury_sites=["limbs"],
        concerns=["physical_abuse"],
    )
    assert got.age_months == 4 and got.injury_sites == {"limbs"}


def test_queue_tiers_put_flags_then_unscored_then_every_scored_referral() -> None:
    tiers = [
        queue_tier(flagged=True, band=None),
        queue_tier(flagged=True, band="Review first"),
        queue_tier(flagged=False, band=None),
    ]
    assert tiers == sorted(tiers) and len(set(tiers)) == len(tiers)
    scored = {queue_tier(flagged=False, band=band) for band in BANDS}
    assert scored == {TIER_SCORED} and max(tiers) < TIER_SCORED
    t = datetime(2026, 1, 1, tzinfo=UTC)
    high = queue_sort_key(tier=3, rank_at=t, probability=0.3, referral_id="b")
    low = queue_sort_key(tier=3, rank_at=t, probability=0.2, referral_id="a")
    earlier = queue_sort_key(
        tier=3, rank_at=t - timedelta(hours=1), probability=0.1, referral_id="c"
    )
    assert sorted([low, high, earlier]) == [earlier, high, low]


def _key(band: str, received: datetime, probability: float, referral_id: str) -> tuple:
    tier = queue_tier(flagged=False, band=band)
    return queue_sort_key(
        tier=tier,
        rank_at=look_by(received, band, tier=tier),
        probability=probability,
        referral_id=referral_id,
    )


def test_referrals_arriving_together_keep_band_order() -> None:
    t = datetime(2026, 4, 15, 9, tzinfo=UTC)
    keys = {band: _key(band, t, 0.5, band) for band in BANDS}
    assert sorted(keys.values()) == [keys[band] for band in BANDS]


def test_a_lower_referral_past_its_due_time_rises_above_fresh_higher_bands() -> None:
    received = datetime(2026, 4, 15, 9, tzinfo=UTC)  # a Wednesday
    now = due_by(received) + timedelta(minutes=1)
    waiting = _key("Lower", received, 0.01, "lower")
    for band in BANDS:
        fresh = _key(band, now, 0.99, f"fresh-{band}")
        assert waiting < fresh, band


def test_no_band_is_overtaken_by_referrals_arriving_a_day_later() -> None:
    """The bound behind the rule: only arrivals within 24 hours can overtake a referral."""
    received = datetime(2026, 4, 17, 16, tzinfo=UTC)  # a Friday afternoon
    for band in BANDS:
        waiting = _key(band, received, 0.0, "waiting")
        for other in BANDS:
            later = received + timedelta(hours=max(BAND_LOOK_HOURS.values()), seconds=1)
            assert waiting < _key(other, later, 1.0, "later"), (band, other)
        assert look_by(received, band) <= due_by(received)


def test_safety_flags_and_unscored_referrals_stay_above_waiting_ones() -> None:
    old = _key("Lower", datetime(2026, 4, 1, tzinfo=UTC), 0.0, "old")
    fresh = datetime(2026, 4, 20, tzinfo=UTC)
    for flagged, band in ((True, "Review first"), (True, None), (False, None)):
        tier = queue_tier(flagged=flagged, band=band)
        key = queue_sort_key(
            tier=tier, rank_at=look_by(fresh, band, tier=tier), probability=None, referral_id="x"
        )
        assert key < old


@pytest.mark.parametrize(
    ("received", "due"),
    [
        (datetime(2026, 4, 15, 10, tzinfo=UTC), datetime(2026, 4, 16, 10, tzinfo=UTC)),  # Wed
        (datetime(2026, 4, 17, 10, tzinfo=UTC), datetime(2026, 4, 20, 10, tzinfo=UTC)),  # Fri
        (datetime(2026, 4, 17, 23, tzinfo=UTC), datetime(2026, 4, 20, 23, tzinfo=UTC)),  # Fri late
        (datetime(2026, 4, 18, 10, tzinfo=UTC), datetime(2026, 4, 21, 0, tzinfo=UTC)),  # Sat
        (datetime(2026, 4, 19, 23, tzinfo=UTC), datetime(2026, 4, 21, 0, tzinfo=UTC)),  # Sun
    ],
)
def test_due_by_is_one_working_day_after_receipt(received: datetime, due: datetime) -> None:
    assert due_by(received) == due
    assert due_by(received).weekday() < 5


@given(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)))
def test_overdue_cutoff_splits_overdue_from_not_yet_due(naive_now: datetime) -> None:
    now = naive_now.replace(tzinfo=UTC)
    cutoff = overdue_cutoff(now)
    assert due_by(cutoff - timedelta(microseconds=1)) < now <= due_by(cutoff)
