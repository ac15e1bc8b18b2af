"""Identity records in the synthetic world: noise at its rates, twins, duplicates, delays."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from triage.store.errors import ExtractError
from triage.store.extract import NEVER_READ, read_extract, read_table
from triage.synth import WorldParams, generate_world
from triage.synth.calibration import calibration_rows
from triage.synth.extract import write_extract
from triage.synth.identity import NOISE, RECORD_COLUMNS, SHARING_DELAY_DAYS, nhs_numbers

SMALL = WorldParams(n_referrals=4_000)
IDENTITY_KEYS = ("identity_", "twins_", "ethnicity_not_stated", "sharing_delay_")


@pytest.fixture(scope="module")
def small_world():
    """A quick world for the contract checks."""
    return generate_world(SMALL)


@pytest.fixture(scope="module")
def default_world():
    """The world ``make demo`` builds."""
    return generate_world(WorldParams())


@pytest.fixture(scope="module")
def linked(small_world) -> pd.DataFrame:
    """Each identity record beside its true person's details."""
    truth = small_world.identity_records.merge(small_world.identity_truth, on="record_id")
    persons = small_world.persons.add_prefix("true_").rename(
        columns={"true_person_id": "person_id"}
    )
    return truth.merge(persons, on="person_id")


def test_records_have_the_contract_columns_and_every_filing_names_one(small_world):
    w = small_world
    assert tuple(w.identity_records.columns) == RECORD_COLUMNS
    assert w.identity_records["record_id"].is_unique
    assert not w.identity_records.duplicated(["source_system", "source_person_id"]).any()
    # Housing files mostly about a household alone, so a small world may have none of it.
    assert (
        set(NOISE) - {"housing-records"} <= set(w.identity_records["source_system"]) <= set(NOISE)
    )
    assert list(w.identity_truth.columns) == ["record_id", "person_id"]
    records = w.identity_records.set_index("record_id")
    truth = w.identity_truth.set_index("record_id")["person_id"]
    household_only = w.events["child_id"].isna() & w.events["person_id"].isna()
    assert w.events.loc[household_only, "subject_record_id"].isna().all()
    for table, subject in ((w.referrals, "child_id"), (w.events[~household_only], None)):
        ids = table["subject_record_id"]
        assert ids.notna().all() and ids.isin(records.index).all()
        # Filed in the system that holds the record, about the true person the row names.
        assert (records.loc[ids, "source_system"].to_numpy() == table["source_system"]).all()
        person = table[subject] if subject else table["child_id"].fillna(table["person_id"])
        assert (truth.loc[ids].to_numpy() == person.to_numpy()).all()


def test_first_seen_is_the_first_filing_under_the_record(small_world):
    w = small_world
    filed = pd.concat(
        [
            w.referrals[["subject_record_id", "received_at"]].set_axis(["record", "t"], axis=1),
            w.events[["subject_record_id", "occurred_at"]]
            .set_axis(["record", "t"], axis=1)
            .dropna(subset=["record"]),
        ]
    )
    first = filed.groupby("record")["t"].min()
    seen = w.identity_records.set_index("record_id")["first_seen_at"]
    assert (seen.loc[first.index] == first).all()


def test_noise_of_each_kind_is_present(linked):
    given = linked["given_name"] != linked["true_given_name"]
    assert 0.005 < given.mean() < 0.05
    nicknames = linked[given & linked["true_given_name"].isin(["William", "Robert", "Thomas"])]
    assert nicknames["given_name"].isin(["Wills", "Bill", "Billy", "Liam", "Rob", "Bob"]).any() or (
        nicknames["given_name"].isin(["Robbie", "Tom", "Tommy"]).any()
    )
    family = linked["family_name"] != linked["true_family_name"]
    assert 0.02 < family.mean() < 0.10
    typed = pd.to_datetime(linked["date_of_birth"])
    true = pd.to_datetime(linked["true_date_of_birth"])
    swapped = (typed.dt.day == true.dt.month) & (typed.dt.month == true.dt.day) & (typed != true)
    assert swapped.sum() > 0
    assert linked["date_of_birth"].isna().any()
    assert (linked["given_name"] == "Baby").any(), "newborns first seen by health"


def test_nhs_numbers_mostly_missing_outside_health_and_valid(linked):
    health = linked["source_system"].isin(["health-records", "health-referral-hub"])
    assert linked.loc[health, "nhs_number"].notna().mean() > 0.85
    assert linked.loc[~health, "nhs_number"].notna().mean() < 0.3
    numbers = linked["nhs_number"].dropna()
    assert numbers.str.fullmatch(r"9\d{9}").all()
    # One person, one number, whichever agency holds it.
    assert (
        linked.dropna(subset=["nhs_number"]).groupby("person_id")["nhs_number"].nunique() == 1
    ).all()


def test_nhs_numbers_are_distinct_and_pass_the_modulus_11_check():
    numbers = nhs_numbers(50_000, seed=1).to_pylist()
    assert len(set(numbers)) == len(numbers)
    for number in numbers[:2_000]:
        digits = [int(c) for c in number]
        check = (
            11 - sum(d * w for d, w in zip(digits[:9], range(10, 1, -1), strict=True)) % 11
        ) % 11
        assert check == digits[9]


def test_postcodes_follow_moves_and_schools_only_in_education_and_social_care(linked):
    assert linked["postcode"].dropna().str.fullmatch(r"[A-Z]{2}\d{1,2} \d[A-Z]{2}").all()
    moved = linked.dropna(subset=["postcode"]).groupby("person_id")["postcode"].nunique() > 1
    assert moved.any(), "a person seen in two homes has two postcodes"
    schooled = linked["school"].notna()
    assert schooled.any() and linked.loc[schooled, "is_child"].all()
    assert set(linked.loc[schooled, "source_system"]) <= {
        "school-safeguarding", "education-portal", "social-care-records", "council-case-system",
        "front-door-contact-centre",
    }  # fmt: skip


def test_twins_exist_as_distinct_people(small_world, linked):
    children = small_world.children
    twins = children[children.duplicated(["household_id", "date_of_birth"], keep=False)]
    assert len(twins) >= 10
    pairs = twins.groupby(["household_id", "date_of_birth"])
    assert (pairs["child_id"].nunique() >= 2).all()
    assert (pairs["given_name"].nunique() == pairs.size()).all(), "twins have different names"
    assert (pairs["family_name"].nunique() == 1).all()
    # Their records stay apart in the truth: one true person per record.
    twin_records = linked[linked["person_id"].isin(twins["child_id"])]
    assert twin_records.groupby("record_id")["person_id"].nunique().eq(1).all()


def test_some_people_have_two_records_in_one_agency(linked):
    per_system = linked.groupby(["source_system", "person_id"])["record_id"].nunique()
    assert (per_system == 2).sum() > 0
    assert (per_system <= 2).all()


def test_same_seed_gives_identical_identities_and_another_seed_differs(small_world):
    again = generate_world(SMALL)
    for table in ("identity_records", "identity_truth"):
        pd.testing.assert_frame_equal(getattr(small_world, table), getattr(again, table))
    pd.testing.assert_series_equal(small_world.events["recorded_at"], again.events["recorded_at"])
    other = generate_world(replace(SMALL, seed=SMALL.seed + 1))
    assert not other.identity_records["given_name"].equals(
        small_world.identity_records["given_name"]
    )


def test_events_are_recorded_after_they_occur_with_each_agency_s_delay(small_world):
    events = small_world.events
    delay = (events["recorded_at"] - events["occurred_at"]) / pd.Timedelta(days=1)
    assert (delay >= 0).all()
    medians = delay.groupby(events["agency"]).median()
    for agency, days in SHARING_DELAY_DAYS.items():
        if agency in medians and days > 0:
            assert medians[agency] == pytest.approx(days, rel=0.25), agency
    assert (delay[events["agency"] == "social_care"] == 0).all()
    end = pd.Timestamp(small_world.manifest["window"]["end"], tz="UTC")
    assert (events["recorded_at"] <= end).all(), "nothing shared after the extract date"
    assert events["occurred_at"].is_monotonic_increasing


def test_default_world_meets_the_identity_targets(default_world):
    rows = [r for r in calibration_rows(default_world) if r.target.key.startswith(IDENTITY_KEYS)]
    assert len(rows) == 13
    assert [(r.target.key, round(r.value, 4)) for r in rows if r.target.checked and not r.ok] == []


def test_extract_round_trips_identity_records_and_never_reads_their_truth(small_world, tmp_path):
    write_extract(small_world, tmp_path)
    assert (tmp_path / "identity_truth.parquet").exists()
    assert "identity_truth" in NEVER_READ
    with pytest.raises(ValueError, match="never read"):
        read_table(tmp_path, "identity_truth")
    back = read_extract(tmp_path)
    pd.testing.assert_frame_equal(
        back.identity_records, small_world.identity_records, check_dtype=False
    )
    assert back.identity_truth is None
    assert back.events["recorded_at"].equals(small_world.events["recorded_at"])
    typed = read_extract(tmp_path, python_values=True)
    assert (
        typed.identity_records["date_of_birth"]
        .dropna()
        .map(type)
        .eq(type(small_world.identity_records["date_of_birth"].dropna().iloc[0]))
        .all()
    )


def test_an_extract_without_the_identity_tables_and_columns_still_loads(small_world, tmp_path):
    write_extract(small_world, tmp_path)
    for name in ("identity_records", "identity_truth"):
        (tmp_path / f"{name}.parquet").unlink()
    for table, columns in (
        ("referrals", ["subject_record_id"]),
        ("events", ["subject_record_id", "recorded_at"]),
    ):
        path = tmp_path / f"{table}.parquet"
        pd.read_parquet(path).drop(columns=columns).to_parquet(path, index=False)
    for python_values in (False, True):
        back = read_extract(tmp_path, python_values=python_values)
        assert back.identity_records is None
        assert back.events["recorded_at"].isna().all()
        assert back.referrals["subject_record_id"].isna().all()
        assert len(back.events) == len(small_world.events)


def test_an_event_recorded_before_it_occurred_is_refused(small_world, tmp_path: Path):
    write_extract(small_world, tmp_path)
    path = tmp_path / "events.parquet"
    events = pd.read_parquet(path)
    events.loc[0, "recorded_at"] = events.loc[0, "occurred_at"] - pd.Timedelta(days=1)
    events.to_parquet(path, index=False)
    with pytest.raises(ExtractError, match="recorded before it occurred"):
        read_extract(tmp_path)


def test_twin_rate_is_near_the_published_one():
    children = generate_world(replace(SMALL, n_referrals=8_000)).children
    twins = children.duplicated(["household_id", "date_of_birth"], keep=False).mean()
    assert 0.01 < twins < 0.06
    assert np.isfinite(twins)
