"""The catalogue compiled to SQL (DuckDB) equals the numpy builder, signal by signal."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from feature_support import delayed_world
from typer.testing import CliRunner

from cli.app import app
from features.batch import build_features as numpy_features
from features.catalogue import CATALOGUE, Aggregation, Entity, Filter, Signal, Source
from features.sql import SignalsNotCompiled, build_features, build_features_from_frames
from features.sql.compiler import compile_signals
from features.sql.dialect import SPARK
from triage.synth import WorldParams, generate_world
from triage.synth.extract import write_extract
from triage.vocab import Concern

T = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
MS = timedelta(milliseconds=1)


def assert_same_features(sql: pd.DataFrame, numpy: pd.DataFrame) -> None:
    """Every signal for every referral: exactly equal, NaN where NaN."""
    assert list(sql.columns) == list(numpy.columns)
    assert list(sql.index) == list(numpy.index)
    bad = {}
    for name in numpy.columns:
        a, b = numpy[name].to_numpy(float), sql[name].to_numpy(float)
        both_nan = np.isnan(a) & np.isnan(b)
        ok = both_nan | (a == b)  # days_since too: the same float64 division as numpy
        if not ok.all():
            bad[name] = int((~ok).sum())
    assert not bad, f"referrals differing, by signal: {bad}"


def _numpy(world) -> pd.DataFrame:
    return numpy_features(
        world.children,
        world.referrals,
        world.events,
        world.decisions,
        persons=world.persons,
        memberships=world.household_memberships,
    )


def _sql(world) -> pd.DataFrame:
    return build_features_from_frames(
        world.children,
        world.referrals,
        world.events,
        world.decisions,
        persons=world.persons,
        memberships=world.household_memberships,
    )


@pytest.fixture(scope="module")
def world():
    """A small seeded synthetic world, with sharing delays on its events."""
    return delayed_world(generate_world(WorldParams(n_referrals=2_000, seed=11)), seed=2)


def test_every_signal_compiles():
    assert compile_signals(CATALOGUE).signals == CATALOGUE


def test_duckdb_equals_numpy_on_a_synthetic_world_with_delays(world):
    numpy = _numpy(world)
    assert_same_features(_sql(world), numpy)
    # The world exercises what the rule guards: late records, moves, members with records.
    for name in ("police_da_incidents_household_365d", "household_changes_365d",
                 "risk_adult_in_household", "days_since_last_referral"):  # fmt: skip
        assert numpy[name].fillna(0).gt(0).any(), name


def test_an_extract_without_people_tables_or_delays(world):
    events = world.events.drop(columns=["recorded_at", "person_id"], errors="ignore")
    numpy = numpy_features(world.children, world.referrals, events, world.decisions)
    sql = build_features_from_frames(world.children, world.referrals, events, world.decisions)
    assert_same_features(sql, numpy)


@pytest.fixture(scope="module")
def extract_dir(tmp_path_factory):
    """A small world written as an extract (Parquet tables)."""
    directory = tmp_path_factory.mktemp("extract")
    write_extract(generate_world(WorldParams(n_referrals=600, seed=5)), directory)
    return directory


def test_duckdb_reads_the_extract_parquet_files(extract_dir):
    tmp_path = extract_dir
    tables = {
        t: pd.read_parquet(tmp_path / f"{t}.parquet")
        for t in ("children", "referrals", "events", "decisions", "persons",
                  "household_memberships")
    }  # fmt: skip
    numpy = numpy_features(
        tables["children"],
        tables["referrals"],
        tables["events"],
        tables["decisions"],
        persons=tables["persons"],
        memberships=tables["household_memberships"],
    )
    assert_same_features(build_features(tmp_path, engine="duckdb"), numpy)


def test_the_command_line_writes_the_same_features_on_either_engine(extract_dir, tmp_path):
    written = {}
    for engine in ("numpy", "duckdb"):
        out = tmp_path / f"{engine}.parquet"
        args = ["features", "build", str(extract_dir), "--engine", engine, "--out", str(out)]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        written[engine] = pd.read_parquet(out)
    assert_same_features(written["duckdb"], written["numpy"])
    missing = CliRunner().invoke(app, ["features", "build", str(tmp_path / "none")])
    assert missing.exit_code == 2 and "No extract directory" in missing.output


def test_the_spark_engine_without_java_exits_2_naming_the_cause(extract_dir, monkeypatch):
    import features.sql.spark

    monkeypatch.setattr(features.sql.spark.shutil, "which", lambda name: None)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    args = ["features", "build", str(extract_dir), "--engine", "spark", "--master", "local[1]"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "Spark unavailable" in result.output
    assert "no Java runtime" in result.output or "pyspark is not installed" in result.output


# --- the time rule at its edges -------------------------------------------------------------


def _edge_world():
    """One household: child C-1 scored at ``T + 0.7 ms`` (R-Q), records placed on every edge."""
    at = pd.Timestamp(T)
    children = pd.DataFrame(
        {"child_id": ["C-1", "C-2"], "household_id": ["H-1", "H-2"],
         "date_of_birth": [date(2023, 6, 2), date(2020, 1, 1)]}
    )  # fmt: skip
    received = [
        at + pd.Timedelta(microseconds=700),  # R-Q, the referral scored: T in ms
        at + pd.Timedelta(microseconds=200),  # same millisecond, 0.5 ms earlier: excluded
        at - pd.Timedelta(microseconds=400),  # floors to T - 1 ms: counts
        at - 365 * DAY,  # exactly 365 days earlier: inside the window
        at - 365 * DAY - MS,  # one millisecond more: outside it (in all history)
        at + DAY,  # later: never counts
    ]
    referrals = pd.DataFrame(
        {
            "referral_id": ["R-Q", "R-same-ms", "R-1ms", "R-365d", "R-365d-1ms", "R-later"],
            "child_id": "C-1",
            "household_id": "H-1",
            "received_at": pd.to_datetime(received, utc=True),
            "referrer_type": ["police", "police", "health", "anonymous", "police", "police"],
            "referrer_relationship": None,
            "referrer_id": ["P-1", "P-2", "P-3", None, "P-4", "P-5"],
            "concerns": ["neglect;physical_abuse", "neglect", "physical_abuse",
                         "physical_abuse;neglect", "neglect", "neglect"],
            "injury_reported": [True, False, True, False, False, False],
            "injury_sites": ["head_face_neck", "", "arm", "", "", ""],
        }
    )  # fmt: skip
    kinds = ["ed_attendance"] * 3 + ["domestic_abuse_incident", "adult_violence_offence"]
    events = pd.DataFrame(
        {
            "event_id": [f"E-{i}" for i in range(5)],
            "child_id": ["C-1", "C-1", "C-1", None, None],
            "household_id": ["H-1", "H-1", "H-1", "H-2", "H-1"],
            "person_id": [None, None, None, None, "A-1"],
            "occurred_at": pd.to_datetime(
                [at - 10 * DAY, at - 10 * DAY, at - 10 * DAY, at - 70 * DAY, at - 5 * DAY],
                utc=True,
            ),
            # recorded at the referral's millisecond (not yet known), 1 ms before it (known),
            # null (known when it occurred); the last, a day before the referral.
            "recorded_at": pd.to_datetime(
                [at + pd.Timedelta(microseconds=100), at - MS, pd.NaT, pd.NaT, at - DAY],
                utc=True,
            ),
            "agency": ["health", "health", "health", "police", "police"],
            "kind": kinds,
        }
    )
    decisions = pd.DataFrame(
        {"referral_id": ["R-1ms", "R-365d"], "decided_at": pd.to_datetime([at - MS, at], utc=True),
         "decision": ["no_further_action", "no_further_action"]}
    )  # fmt: skip
    persons = pd.DataFrame(
        {"person_id": ["C-1", "C-2", "A-1", "A-2"],
         "date_of_birth": [date(2023, 6, 2), date(2020, 1, 1), date(1990, 1, 1), date(1991, 1, 1)]}
    )  # fmt: skip
    memberships = pd.DataFrame(
        {
            "membership_id": ["M-C1-H2", "M-C1-H1", "M-A1", "M-A2", "M-C2"],
            "person_id": ["C-1", "C-1", "A-1", "A-2", "C-2"],
            "household_id": ["H-2", "H-1", "H-1", "H-1", "H-2"],
            "role": ["child", "child", "unrelated_adult", "parent_partner", "child"],
            # C-1 born into H-2, moved to H-1 60 days ago; A-1 joined 30 days ago and leaves
            # at the referral's very instant (still lives there); A-2 joins at that instant.
            "joined_at": pd.to_datetime(
                [pd.Timestamp("2023-06-02", tz="UTC"), at - 60 * DAY, at - 30 * DAY, at,
                 pd.Timestamp("2020-01-01", tz="UTC")], utc=True
            ),
            "left_at": pd.to_datetime([at - 60 * DAY, pd.NaT, at, pd.NaT, pd.NaT], utc=True),
        }
    )  # fmt: skip
    return children, referrals, events, decisions, persons, memberships


def test_the_time_rule_at_its_edges_on_both_engines():
    children, referrals, events, decisions, persons, memberships = _edge_world()
    args = (children, referrals, events, decisions)
    people = {"persons": persons, "memberships": memberships}
    numpy = numpy_features(*args, **people)
    sql = build_features_from_frames(*args, **people)
    assert_same_features(sql, numpy)
    q = sql.loc["R-Q"]
    assert q["prior_referrals_child_all"] == 3  # not the same-ms one, not the later one
    assert q["prior_referrals_child_365d"] == 2  # the edge at exactly 365 days counts
    assert q["days_since_last_referral"] == pytest.approx(1 / 86_400_000)
    assert q["ed_attendances_365d"] == 2  # recorded at the referral's ms: not yet known
    assert q["prior_nfa_closures_365d"] == 1  # decided at the referral's ms: not yet
    assert q["police_da_incidents_household_365d"] == 1  # from H-2, while the child lived there
    assert q["unrelated_adult_in_household"] == 1  # A-1 leaves at the instant: still there
    assert q["risk_adult_in_household"] == 1  # A-1's record, known a day before
    assert q["adult_joined_household_90d"] == 1  # A-2 joins at the instant: not yet
    assert q["household_changes_365d"] == 3  # the child's move out and in; A-1 joining
    assert q["repeat_same_concern_365d"] == 2
    assert q["child_age_months"] == 11 and q["infant_under_1"] == 1


# --- what the compiler does not (yet) render ----------------------------------------------


def test_a_declaration_without_a_rendering_is_named():
    odd = (
        Signal("concerns_in_events", Entity.child, Source.events, Aggregation.count, "{value}",
               filter=Filter(concerns=(Concern.neglect,))),
        Signal("same_concern_events", Entity.child, Source.events,
               Aggregation.max_same_concern, "{value}"),
    )  # fmt: skip
    with pytest.raises(SignalsNotCompiled) as raised:
        compile_signals(CATALOGUE + odd)
    assert set(raised.value.reasons) == {"concerns_in_events", "same_concern_events"}
    assert "concerns" in raised.value.reasons["concerns_in_events"]


def test_the_spark_rendering_uses_no_duckdb_functions():
    sql = compile_signals(CATALOGUE, SPARK).sql
    for duckdb_only in ("epoch_us", "list_contains", "string_split", "//"):
        assert duckdb_only not in sql
    assert "unix_micros" in sql and "array_contains" in sql


def test_spark_submit_s_master_stands_unless_one_is_given(monkeypatch):
    from contextlib import contextmanager

    import features.sql.spark
    from cli.features_build import spark_or_exit

    asked: list[str | None] = []

    @contextmanager
    def running(master, app_name):
        asked.append(master)
        yield object()

    monkeypatch.setattr(features.sql.spark, "spark_running", running)
    monkeypatch.setenv("TRIAGE_SPARK_MASTER", "local[3]")
    monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
    with spark_or_exit(None, "t"):
        pass
    monkeypatch.setenv("PYSPARK_GATEWAY_PORT", "40000")  # as spark-submit launches Python
    with spark_or_exit(None, "t"), spark_or_exit("local[1]", "t"):
        pass
    assert asked == ["local[3]", None, "local[1]"]
