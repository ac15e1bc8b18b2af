"""A national world: regions drawn one at a time into one extract, sharing nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cli.app import app
from features.batch import features_of
from triage.store.extract import read_extract
from triage.synth import WorldParams, generate_world
from triage.synth import national as national_module
from triage.synth.extract import write_extract
from triage.synth.identity import REGION_BLOCK, regional_nhs_numbers
from triage.synth.national import region_count, region_params, regional_ids, write_national

PARAMS = WorldParams(seed=11, n_referrals=1_200)
REGIONS = 3


@pytest.fixture(scope="module")
def extract(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A three-region world written as one extract."""
    directory = tmp_path_factory.mktemp("national")
    write_national(PARAMS, REGIONS, directory)
    return directory


def test_every_key_is_unique_across_regions_and_the_extract_reads(extract: Path) -> None:
    world = read_extract(extract, with_truth=True)
    for table, key in [
        ("referrals", "referral_id"),
        ("children", "child_id"),
        ("events", "event_id"),
        ("persons", "person_id"),
        ("household_memberships", "membership_id"),
        ("identity_records", "record_id"),
    ]:
        frame = getattr(world, table)
        assert frame[key].is_unique, table
    regions = world.referrals["referral_id"].str.slice(4, 6).value_counts()
    assert sorted(regions.index) == ["00", "01", "02"]
    assert regions.sum() == len(world.referrals)
    # A referral's child is in its own region.
    assert (world.referrals["child_id"].str[2:4] == world.referrals["referral_id"].str[4:6]).all()
    manifest = json.loads((extract / "manifest.json").read_text())
    assert manifest["rows"]["referrals"] == len(world.referrals)
    assert manifest["params"]["n_referrals"] == PARAMS.n_referrals
    assert [r["region"] for r in manifest["regions"]] == [0, 1, 2]


def test_a_region_is_the_world_of_its_own_seed_with_its_digits(extract: Path) -> None:
    second = region_params(PARAMS, REGIONS)[1]
    alone = generate_world(second).referrals
    expected = regional_ids(pa.Table.from_pandas(alone, preserve_index=False), 1).to_pandas()
    national = pd.read_parquet(extract / "referrals.parquet")
    got = national[national["referral_id"].str.startswith("REF-01")].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)


def test_nhs_numbers_name_one_person_each_across_regions(extract: Path) -> None:
    records = pd.read_parquet(
        extract / "identity_records.parquet", columns=["record_id", "nhs_number"]
    )
    truth = pd.read_parquet(extract / "identity_truth.parquet")
    known = records.dropna(subset=["nhs_number"]).merge(truth, on="record_id")
    assert known.groupby("nhs_number")["person_id"].nunique().max() == 1
    assert known.groupby("person_id")["nhs_number"].nunique().max() == 1
    # Each region's numbers come from its own block (IDR-01… has 91…).
    assert (known["nhs_number"].str[1] == known["record_id"].str[5]).all()


def _features(directory: Path) -> pd.DataFrame:
    return features_of(read_extract(directory, with_truth=False))


def test_a_region_has_the_features_of_its_world_alone(extract: Path, tmp_path: Path) -> None:
    # Histories stay within a region: a referral's signals are those of its region's world.
    alone = tmp_path / "alone"
    write_extract(generate_world(region_params(PARAMS, REGIONS)[2]), alone)
    expected = _features(alone)
    national = _features(extract)
    got = national[national.index.str.startswith("REF-02")]
    got.index = got.index.str.replace("REF-02", "REF-", n=1)
    pd.testing.assert_frame_equal(got, expected.loc[got.index], check_exact=True)
    assert len(got) == len(expected)


def test_a_column_missing_from_the_first_region_takes_text_later(tmp_path: Path) -> None:
    writers = national_module._Writers(tmp_path)
    writers.write("t", pa.table({"id": ["a"], "note": pa.array([None], pa.null())}))
    writers.write("t", pa.table({"id": ["b"], "note": pa.array(["text"], pa.large_string())}))
    writers.finish()
    assert pq.read_table(tmp_path / "t.parquet").column("note").to_pylist() == [None, "text"]


def test_regional_nhs_numbers_are_valid_distinct_and_disjoint() -> None:
    a, b = regional_nhs_numbers(50_000, 1, 0), regional_nhs_numbers(50_000, 1, 9)
    both = np.concatenate([a, b])
    assert np.unique(both).size == both.size
    digits = (both[:, None] // 10 ** np.arange(9, -1, -1)) % 10
    assert ((digits[:, :9] @ np.arange(10, 1, -1) + digits[:, 9]) % 11 == 0).all()
    assert (a // 10 // REGION_BLOCK == 90).all() and (b // 10 // REGION_BLOCK == 99).all()
    with pytest.raises(ValueError, match="do not fit"):
        regional_nhs_numbers(REGION_BLOCK, 1, 0)
    with pytest.raises(ValueError, match="at most 10 regions"):
        regional_nhs_numbers(10, 1, 10)


def test_a_failed_region_leaves_no_extract(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def failing(params: WorldParams, progress: object = None) -> object:
        calls.append(params.seed)
        if len(calls) == 2:
            raise MemoryError("region two did not fit")
        return generate_world(params)

    monkeypatch.setattr(national_module, "generate_world", failing)
    with pytest.raises(MemoryError):
        write_national(WorldParams(seed=3, n_referrals=600), 3, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_region_count_and_refusals() -> None:
    assert region_count(50_000) == 1
    assert region_count(1_000_000) == 1
    assert region_count(4_500_000) == 5
    with pytest.raises(ValueError, match="too few"):
        region_params(WorldParams(n_referrals=250), 3)
    result = CliRunner().invoke(app, ["synth", "--referrals", "250", "--regions", "3"])
    assert result.exit_code == 2
    assert "too few for 3 regions" in " ".join(result.output.split())
    result = CliRunner().invoke(app, ["synth", "--regions", "11"])
    assert result.exit_code == 2 and "--regions" in result.output


def test_the_command_line_draws_regions_and_reports_peak_memory(tmp_path: Path) -> None:
    out = tmp_path / "nation"
    result = CliRunner().invoke(
        app, ["synth", "--out", str(out), "--referrals", "600", "--regions", "2", "--seed", "5"]
    )
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())  # rich wraps long lines
    assert "in 2 regions:" in said and "Peak memory" in said
    assert (out / "referrals.parquet").exists()
    assert not list(out.glob("*.partial"))
