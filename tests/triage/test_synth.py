"""The synthetic world: calibration, determinism, contracts and the knobs' directions."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from triage.schema import AgencyEventIn, ReferralIn
from triage.store.extract import read_extract
from triage.synth import World, WorldParams, generate_world
from triage.synth.calibration import calibration_rows, figures
from triage.synth.calibration_targets import load_targets, source_share_targets
from triage.synth.extract import write_extract
from triage.synth.records import SYNTHETIC_PREFIX
from triage.synth.referrals import rake_source_probabilities
from triage.vocab import (
    LIST_SEPARATOR,
    Concern,
    DecisionKind,
    EventKind,
    InjurySite,
    OutcomeLevel,
    ReferrerType,
)

SMALL = WorldParams(n_referrals=4_000)


@pytest.fixture(scope="module")
def default_world():
    """The world ``make demo`` builds."""
    return generate_world(WorldParams())


@pytest.fixture(scope="module")
def small_world():
    """A quick world for contract checks."""
    return generate_world(SMALL)


def test_default_world_reproduces_every_checked_target(default_world):
    rows = calibration_rows(default_world)
    off = [
        (r.target.key, round(r.value, 4), r.target.target)
        for r in rows
        if r.target.checked and not r.ok
    ]
    assert off == []
    assert figures(default_world)["victim_rate_peak_age"] == 0


def test_calibration_tolerances_are_the_documented_ones():
    share = next(t for t in load_targets() if t.key == "source_police")
    rate = next(t for t in load_targets() if t.key == "s47_per_10000")
    assert share.within_tolerance(0.287 + 0.019) and not share.within_tolerance(0.287 + 0.021)
    assert rate.within_tolerance(167.2 * 1.14) and not rate.within_tolerance(167.2 * 1.16)


def test_same_seed_gives_identical_output_and_another_seed_differs(small_world):
    again = generate_world(SMALL)
    for table in (*World.TABLES, *World.PEOPLE_TABLES):
        pd.testing.assert_frame_equal(getattr(small_world, table), getattr(again, table))
    other = generate_world(replace(SMALL, seed=SMALL.seed + 1))
    assert not other.referrals["received_at"].equals(small_world.referrals["received_at"])


def test_extract_round_trips_and_truth_stays_apart(small_world, tmp_path):
    write_extract(small_world, tmp_path)
    back = read_extract(tmp_path)
    pd.testing.assert_frame_equal(back.referrals, small_world.referrals, check_dtype=False)
    assert back.truth.empty, "the truth is read only when asked for"
    model_inputs = ("children", "referrals", "events", "decisions", "outcomes")
    for table in model_inputs:
        columns = set(getattr(small_world, table).columns)
        assert not columns & {"harm_12m", "harm_at_referral", "channel"}, table
    assert read_extract(tmp_path, with_truth=True).truth["harm_12m"].dtype == bool


def test_every_record_is_marked_synthetic(small_world):
    for table in (*World.TABLES, *World.PEOPLE_TABLES):
        assert getattr(small_world, table)["synthetic"].all(), table
    assert small_world.referrals["narrative"].str.startswith(SYNTHETIC_PREFIX).all()
    assert small_world.manifest["synthetic"] is True


def _split(column: pd.Series) -> set[str]:
    return {v for cell in column for v in cell.split(LIST_SEPARATOR) if v}


def test_values_come_from_the_closed_vocabularies(small_world):
    refs, events = small_world.referrals, small_world.events
    assert set(refs["referrer_type"]) <= {v.value for v in ReferrerType}
    assert _split(refs["concerns"]) <= {v.value for v in Concern}
    assert (refs["concerns"] != "").all(), "every referral raises at least one concern"
    assert _split(refs["injury_sites"]) <= {v.value for v in InjurySite}
    assert ((refs["injury_sites"] != "") == refs["injury_reported"]).all()
    assert set(events["kind"]) <= {v.value for v in EventKind}
    assert set(small_world.decisions["decision"]) <= {v.value for v in DecisionKind}
    assert set(small_world.outcomes["highest_level"]) <= {v.value for v in OutcomeLevel}


def test_ids_are_unique_and_references_resolve(small_world):
    w = small_world
    assert w.children["child_id"].is_unique and w.referrals["referral_id"].is_unique
    assert w.events["event_id"].is_unique
    assert not w.referrals.duplicated(["source_system", "source_referral_id"]).any()
    assert w.referrals["child_id"].isin(w.children["child_id"]).all()
    assert w.events["child_id"].dropna().isin(w.children["child_id"]).all()
    households = w.household_memberships["household_id"]
    assert w.children["household_id"].isin(households).all()
    assert w.events["household_id"].dropna().isin(households).all()
    assert w.referrals["household_id"].isin(households).all()
    assert w.decisions["referral_id"].isin(w.referrals["referral_id"]).all()
    # A child who never moved has every referral in the household it lives in at the end.
    stays = w.household_memberships.groupby("person_id").size()
    settled = w.referrals[w.referrals["child_id"].map(stays) == 1]
    child_household = w.children.set_index("child_id")["household_id"]
    assert (settled["child_id"].map(child_household) == settled["household_id"]).all()


def test_sample_of_records_passes_the_intake_contract(small_world):
    children = small_world.children.set_index("child_id")
    for row in small_world.referrals.sample(200, random_state=0).itertuples():
        child = children.loc[row.child_id]
        ReferralIn.model_validate(
            {
                "source_system": row.source_system,
                "source_referral_id": row.source_referral_id,
                "received_at": row.received_at.to_pydatetime(),
                "child": {
                    "child_id": row.child_id,
                    "household_id": row.household_id,
                    "given_name": child.given_name,
                    "family_name": child.family_name,
                    "date_of_birth": child.date_of_birth,
                    "sex": child.sex,
                    "ethnicity": child.ethnicity,
                    "disability": bool(child.disability),
                    "deprivation_decile": int(child.deprivation_decile),
                },
                "referrer": {
                    "type": row.referrer_type,
                    "relationship": None
                    if pd.isna(row.referrer_relationship)
                    else row.referrer_relationship,
                    "referrer_id": None if pd.isna(row.referrer_id) else row.referrer_id,
                },
                "concerns": row.concerns.split(LIST_SEPARATOR),
                "injury": {
                    "reported": bool(row.injury_reported),
                    "sites": [s for s in row.injury_sites.split(LIST_SEPARATOR) if s],
                    "photographed": bool(row.injury_photographed),
                },
                "narrative": row.narrative,
            }
        )
    # Records about an adult alone (no child, no household) are the API's person events.
    events = small_world.events
    about_child_or_household = events["child_id"].notna() | events["household_id"].notna()
    for row in events[about_child_or_household].sample(200, random_state=0).itertuples():
        AgencyEventIn.model_validate(
            {
                "source_system": row.source_system,
                "source_event_id": row.source_event_id,
                "agency": row.agency,
                "kind": row.kind,
                "occurred_at": row.occurred_at.to_pydatetime(),
                "child_id": None if pd.isna(row.child_id) else row.child_id,
                "household_id": row.household_id,
                "person_id": None if pd.isna(row.person_id) else row.person_id,
                "attributes": json.loads(row.attributes) if row.attributes else {},
            }
        )


def test_siblings_share_a_household_and_family_name(small_world):
    per_household = small_world.children.groupby("household_id")
    assert (per_household.size() > 1).any()
    assert (per_household["family_name"].nunique() == 1).all()


def test_open_referrals_form_a_queue_and_outcomes_wait_for_their_horizon(small_world):
    refs = small_world.referrals
    decided = refs["referral_id"].isin(small_world.decisions["referral_id"])
    end = pd.Timestamp(SMALL.end.isoformat(), tz="UTC")
    open_refs = refs[~decided]
    assert len(open_refs) > 0
    assert (open_refs["received_at"] >= end - pd.Timedelta(days=SMALL.open_days)).all()
    labelled = refs[refs["referral_id"].isin(small_world.outcomes["referral_id"])]
    assert (labelled["received_at"] <= end - pd.Timedelta(days=365)).all()


def test_selective_labels_hide_harm_that_nobody_investigated(default_world):
    joined = default_world.outcomes.merge(default_world.truth, on="referral_id")
    assert joined["harm_12m"].mean() > joined["significant_harm_12m"].mean() + 0.05
    harmed = joined[joined["harm_12m"]]
    unseen = harmed[~harmed["investigated_12m"]]
    assert len(unseen) / len(harmed) > 0.2, "much true harm is never investigated"
    assert not unseen["significant_harm_12m"].mean() > 0.05


def test_every_plan_follows_an_enquiry(small_world):
    events = small_world.events
    plans = events[events["kind"] == "cp_plan_start"]
    enquiries = events[events["kind"] == "s47_enquiry"]
    pairs = plans.merge(enquiries, on="child_id", suffixes=("_plan", "_s47"))
    gap = pairs["occurred_at_plan"] - pairs["occurred_at_s47"]
    preceded = pairs[(gap > pd.Timedelta(0)) & (gap <= pd.Timedelta(days=30))]
    assert set(preceded["event_id_plan"]) == set(plans["event_id"])


def test_surveillance_bias_knob_raises_agency_contact_of_deprived_households():
    def contacts_per_child(bias: float) -> float:
        w = generate_world(replace(SMALL, surveillance_bias=bias, n_referrals=8_000))
        deprived = w.children.loc[w.children["deprivation_decile"] <= 2, "child_id"]
        affluent = w.children.loc[w.children["deprivation_decile"] >= 9, "child_id"]
        counts = w.events["child_id"].value_counts()
        return (
            counts.reindex(deprived, fill_value=0).mean()
            / counts.reindex(affluent, fill_value=0).mean()
        )

    assert contacts_per_child(1.2) > contacts_per_child(0.0) * 1.3


def test_custody_disputes_raise_repeated_referrals_from_one_side_few_of_them_false():
    def one_side(share: float) -> tuple[int, float]:
        w = generate_world(replace(SMALL, custody_dispute_share=share))
        refs = w.referrals.merge(w.truth, on="referral_id")
        family = refs[refs["referrer_relationship"].isin(["parent", "relative"])]
        per_referrer = family.groupby("referrer_id").size()
        disputed = refs[refs["custody_dispute"]]
        return int((per_referrer >= 3).sum()), float(disputed["channel"].eq("malicious").mean())

    repeats, false_share = one_side(0.05)
    assert repeats > one_side(0.0)[0] + 5
    # Most concerns raised in a dispute are raised in good faith (Trocmé & Bala 2005: 12%).
    assert false_share < 0.25


def test_relatives_see_harm_that_professionals_miss(default_world):
    refs = default_world.referrals.merge(default_world.truth, on="referral_id")
    relative = refs["referrer_relationship"].isin(["relative", "family_friend"])
    professional = refs["referrer_type"].isin(["police", "school", "health", "la_services"])
    assert refs.loc[relative, "harm_12m"].mean() > refs.loc[professional, "harm_12m"].mean()
    # Repeated concerns from family are mostly about real harm, not a dispute.
    repeat = relative & refs.sort_values("received_at").groupby("child_id")[
        "referrer_relationship"
    ].transform(lambda r: r.isin(["relative", "family_friend"]).cumsum() > 1)
    assert refs.loc[repeat, "harm_12m"].mean() > 0.5
    assert refs.loc[repeat, "channel"].eq("malicious").mean() < 0.1


def test_infants_are_harmed_most(default_world):
    truth = default_world.truth.merge(default_world.referrals, on="referral_id")
    children = default_world.children.set_index("child_id")
    born = pd.to_datetime(truth["child_id"].map(children["date_of_birth"]))
    age = (truth["received_at"].dt.tz_localize(None) - born).dt.days
    assert truth[age < 365]["harm_12m"].mean() > truth[age >= 5 * 365]["harm_12m"].mean()


def test_raking_matches_target_marginals_whatever_the_mix():
    rng = np.random.default_rng(0)
    affinity = rng.random((6, 4)) + 0.05
    counts = rng.integers(10, 1000, 6).astype(float)
    targets = np.array([0.4, 0.3, 0.2, 0.1])
    probs = rake_source_probabilities(counts, affinity, targets)
    realised = (counts[:, None] * probs).sum(axis=0) / counts.sum()
    np.testing.assert_allclose(realised, targets, atol=1e-6)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    np.testing.assert_allclose(source_share_targets().sum(), 1.0)


def test_narratives_say_only_what_the_referrer_raised(default_world):
    refs = default_world.referrals.merge(default_world.truth, on="referral_id")
    children = default_world.children.set_index("child_id")["given_name"]
    names = refs["child_id"].map(children)
    shape = [n.replace(g, "NAME") for n, g in zip(refs["narrative"], names, strict=True)]
    refs = refs.assign(
        shape=shape,
        visible=refs["concerns"].str.split(LIST_SEPARATOR).str[0]
        + "/"
        + refs["referrer_type"]
        + "/"
        + refs["referrer_relationship"].fillna(""),
    )
    by_visible = refs.groupby("visible")["harm_at_referral"].mean()
    # Given what the form shows (concern, referrer), the wording says no more than chance.
    for text, group in refs.groupby("shape"):
        if len(group) >= 50:
            p = by_visible[group["visible"].iloc[0]]
            spread = 4 * np.sqrt(p * (1 - p) / len(group)) + 0.01
            assert abs(group["harm_at_referral"].mean() - p) <= spread, text
