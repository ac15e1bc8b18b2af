"""The extract loader: counts, idempotence, validation, CSV fallback, and never reading truth."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select

from models.dataset import load_training_data
from triage.store import (
    ChildRow,
    DecisionRow,
    EventRow,
    HouseholdRow,
    OutcomeRow,
    ReferralRow,
    make_engine,
    session_factory,
)
from triage.store.extract import read_extract, validate_table
from triage.store.loader import ExtractError, load_extract
from triage.store.tables import HouseholdMembershipRow, PersonRow

EXPECTED = {
    "households": 2,
    "children": 3,
    "persons": 3,  # derived: the tiny extract has no people tables
    "household_memberships": 3,
    "referrals": 4,
    "events": 5,
    "decisions": 2,
    "outcomes": 2,
}


def test_loads_tiny_extract(tiny_extract: Path, migrated_url: str) -> None:
    assert load_extract(tiny_extract, url=migrated_url, progress=False) == EXPECTED
    engine = make_engine(migrated_url)
    try:
        with session_factory(engine)() as session:
            for row_type, table in (
                (HouseholdRow, "households"),
                (ChildRow, "children"),
                (ReferralRow, "referrals"),
                (EventRow, "events"),
                (DecisionRow, "decisions"),
                (OutcomeRow, "outcomes"),
            ):
                count = session.scalar(select(func.count()).select_from(row_type))
                assert count == EXPECTED[table], table
            statuses = dict(
                session.execute(select(ReferralRow.referral_id, ReferralRow.status)).all()
            )
            assert statuses == {"R1": "decided", "R2": "open", "R3": "decided", "R4": "open"}
            r3 = session.get(ReferralRow, "R3")
            assert r3 is not None
            assert r3.concerns == ["physical_abuse"]
            assert r3.injury_sites == ["head_face_neck", "limbs"]
            assert r3.received_at == datetime(2024, 2, 3, 8, tzinfo=UTC)
            assert session.get(ReferralRow, "R1").injury_sites == []  # type: ignore[union-attr]
            assert session.get(EventRow, "E1").attributes == {"severity": "high"}  # type: ignore[union-attr]
            h1, h2 = session.get(HouseholdRow, "H1"), session.get(HouseholdRow, "H2")
            assert (h1.deprivation_decile, h2.deprivation_decile) == (2, None)  # type: ignore[union-attr]
            c1 = session.get(ChildRow, "C1")
            assert c1 is not None and c1.date_of_birth.isoformat() == "2015-03-01"
    finally:
        engine.dispose()


def test_second_load_inserts_nothing(tiny_extract: Path, migrated_url: str) -> None:
    load_extract(tiny_extract, url=migrated_url, progress=False)
    assert load_extract(tiny_extract, url=migrated_url, progress=False) == dict.fromkeys(
        EXPECTED, 0
    )


def test_incremental_load_adds_only_new_rows(
    extract_frames: dict[str, pd.DataFrame], write_extract, migrated_url: str
) -> None:
    first = {name: frame for name, frame in extract_frames.items()}
    first["decisions"] = extract_frames["decisions"].iloc[:1]
    load_extract(write_extract(first), url=migrated_url, progress=False)
    counts = load_extract(write_extract(extract_frames), url=migrated_url, progress=False)
    assert counts == dict.fromkeys(EXPECTED, 0) | {"decisions": 1}


@pytest.mark.parametrize(
    ("table", "column", "value"),
    [
        ("referrals", "referrer_type", "carrier_pigeon"),
        ("referrals", "concerns", "neglect;witchcraft"),
        ("events", "kind", "parade"),
        ("children", "sex", "x"),
        ("decisions", "decision", "shrug"),
    ],
)
def test_unknown_vocabulary_value_names_table_and_column(
    extract_frames: dict[str, pd.DataFrame],
    write_extract,
    migrated_url: str,
    table: str,
    column: str,
    value: str,
) -> None:
    extract_frames[table].loc[0, column] = value
    with pytest.raises(ExtractError) as caught:
        load_extract(write_extract(extract_frames), url=migrated_url, progress=False)
    assert (caught.value.table, caught.value.column) == (table, column)
    assert value.split(";")[-1] in str(caught.value)
    assert f"{table}.{column}" in str(caught.value)


def test_missing_column_raises(
    extract_frames: dict[str, pd.DataFrame], write_extract, migrated_url: str
) -> None:
    extract_frames["events"] = extract_frames["events"].drop(columns=["occurred_at"])
    with pytest.raises(ExtractError, match=r"events\.occurred_at: required column is missing"):
        load_extract(write_extract(extract_frames), url=migrated_url, progress=False)


def test_invalid_extract_loads_nothing(
    extract_frames: dict[str, pd.DataFrame], write_extract, migrated_url: str
) -> None:
    extract_frames["outcomes"].loc[1, "referral_id"] = "R404"
    with pytest.raises(ExtractError, match=r"outcomes\.referral_id: 1 unknown id"):
        load_extract(write_extract(extract_frames), url=migrated_url, progress=False)
    assert load_extract(
        write_extract(extract_frames | {"outcomes": extract_frames["outcomes"].iloc[:1]}),
        url=migrated_url,
        progress=False,
    ) == EXPECTED | {"outcomes": 1}


def test_naive_timestamps_refused(
    extract_frames: dict[str, pd.DataFrame], write_extract, migrated_url: str
) -> None:
    referrals = extract_frames["referrals"]
    referrals["received_at"] = referrals["received_at"].dt.tz_localize(None)
    with pytest.raises(ExtractError, match=r"referrals\.received_at: .*timezone-aware"):
        load_extract(write_extract(extract_frames), url=migrated_url, progress=False)


def test_truth_is_never_read(
    tiny_extract: Path, migrated_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tiny_extract / "truth.parquet").write_bytes(b"not parquet at all")
    (tiny_extract / "truth.csv").write_text("\x00garbage")
    opened: list[str] = []
    for reader in ("read_parquet", "read_csv"):
        original = getattr(pd, reader)

        def spy(path, *args, _original=original, **kwargs):  # type: ignore[no-untyped-def]
            opened.append(Path(path).name)
            return _original(path, *args, **kwargs)

        monkeypatch.setattr(pd, reader, spy)
    assert load_extract(tiny_extract, url=migrated_url, progress=False) == EXPECTED
    assert not [name for name in opened if name.startswith("truth")]
    assert opened  # the spy really watched the loader


def test_csv_fallback(
    extract_frames: dict[str, pd.DataFrame], write_extract, migrated_url: str
) -> None:
    extract_frames["referrals"].loc[3, "narrative"] = ""  # CSV writes it as a bare empty field
    directory = write_extract(extract_frames, fmt="csv")
    assert not list(directory.glob("*.parquet"))
    assert load_extract(directory, url=migrated_url, progress=False) == EXPECTED
    engine = make_engine(migrated_url)
    try:
        with session_factory(engine)() as session:
            r2 = session.get(ReferralRow, "R2")
            assert r2 is not None
            assert (r2.referrer_relationship, r2.referrer_id) == ("gp", None)
            assert r2.concerns == ["neglect", "domestic_abuse"]
            assert r2.received_at == datetime(2024, 2, 1, 14, tzinfo=UTC)
            assert session.get(ReferralRow, "R4").narrative == ""  # type: ignore[union-attr]
            assert session.get(EventRow, "E1").attributes == {"severity": "high"}  # type: ignore[union-attr]
            assert session.get(ReferralRow, "R1").status == "decided"  # type: ignore[union-attr]
    finally:
        engine.dispose()


def test_missing_table_file_raises(
    extract_frames: dict[str, pd.DataFrame], write_extract, migrated_url: str
) -> None:
    del extract_frames["events"]
    with pytest.raises(ExtractError, match=r"events\.parquet"):
        load_extract(write_extract(extract_frames), url=migrated_url, progress=False)


def test_progress_bar_runs(tiny_extract: Path, migrated_url: str) -> None:
    assert load_extract(tiny_extract, url=migrated_url, progress=True) == EXPECTED


# --- the one reader: training reads through the loader's checks ------------------------------


def test_training_refuses_an_extract_the_loader_refuses(
    extract_frames: dict[str, pd.DataFrame], write_extract, migrated_url: str
) -> None:
    extract_frames["referrals"].loc[0, "concerns"] = "neglect;made_up"
    directory = write_extract(extract_frames)
    with pytest.raises(ExtractError) as loading:
        load_extract(directory, url=migrated_url, progress=False)
    with pytest.raises(ExtractError) as training:
        load_training_data(directory)
    assert str(training.value) == str(loading.value)
    assert (training.value.table, training.value.column) == ("referrals", "concerns")


def test_training_reads_the_parquet_tables_as_written(
    extract_frames: dict[str, pd.DataFrame], tiny_extract: Path
) -> None:
    world = read_extract(tiny_extract)
    for table in ("children", "referrals", "events", "decisions", "outcomes"):
        written = pd.read_parquet(tiny_extract / f"{table}.parquet")
        pd.testing.assert_frame_equal(getattr(world, table)[list(written.columns)], written)
    # An extract written before vocabulary 2: events gain an empty person_id column, and each
    # child becomes a person living in its household since birth.
    assert world.events["person_id"].isna().all()
    assert world.persons is not None and world.household_memberships is not None
    assert list(world.persons["person_id"]) == list(world.children["child_id"])
    memberships = world.household_memberships
    assert list(memberships["household_id"]) == list(world.children["household_id"])
    assert set(memberships["role"]) == {"child"} and memberships["left_at"].isna().all()
    assert world.truth.empty, "the truth only when asked for"
    truth = read_extract(tiny_extract, with_truth=True).truth
    pd.testing.assert_frame_equal(truth, extract_frames["truth"])
    assert world.manifest == {"tables": sorted(extract_frames)}


def test_training_refuses_a_csv_extract_with_a_precise_error(
    extract_frames: dict[str, pd.DataFrame], write_extract
) -> None:
    directory = write_extract(extract_frames, fmt="csv")
    with pytest.raises(ExtractError, match=r"children: typed columns need children\.parquet"):
        load_training_data(directory)


def test_a_manifest_that_is_not_a_json_object_is_refused(
    tiny_extract: Path, migrated_url: str
) -> None:
    (tiny_extract / "manifest.json").write_text("[1, 2]")
    with pytest.raises(ExtractError, match=r"manifest: manifest\.json is not a JSON object"):
        load_extract(tiny_extract, url=migrated_url, progress=False)
    (tiny_extract / "manifest.json").unlink()  # a council's export need not carry one
    assert load_extract(tiny_extract, url=migrated_url, progress=False) == EXPECTED


def test_repeated_attribute_documents_give_each_event_its_own_dict(
    extract_frames: dict[str, pd.DataFrame],
) -> None:
    events = extract_frames["events"].copy()
    events["attributes"] = '{"severity": "high"}'
    attributes = validate_table("events", events)["attributes"].tolist()
    assert attributes == [{"severity": "high"}] * len(events)
    assert len({id(document) for document in attributes}) == len(events)


# --- people in the household (vocabulary 2) --------------------------------------------------


def _with_people(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The tiny extract with its children as persons, two adults, memberships and an adult's
    event: a mother in H1 since 2010 and her partner, who lived at H9 (no child there) and
    joined H1 in January 2024."""
    children = frames["children"]
    persons = pd.DataFrame(
        {
            "person_id": [*children["child_id"], "P1", "P2"],
            "is_child": [True, True, True, False, False],
            "given_name": [*children["given_name"], "Dee", "Eli"],
            "family_name": [*children["family_name"], "Ash", "Oak"],
            "date_of_birth": [*children["date_of_birth"].dt.date, date(1990, 5, 5), None],
            "sex": [*children["sex"], "female", "male"],
            "synthetic": True,
        }
    )
    memberships = pd.DataFrame(
        {
            "membership_id": ["M1", "M2", "M3", "M4", "M5", "M6"],
            "person_id": ["C1", "C2", "C3", "P1", "P2", "P2"],
            "household_id": ["H1", "H1", "H2", "H1", "H9", "H1"],
            "role": ["child", "child", "child", "parent", "unrelated_adult", "parent_partner"],
            "joined_at": pd.Series(
                [
                    _utc(2015, 3, 1),
                    _utc(2018, 7, 9),
                    _utc(2012, 1, 31),
                    _utc(2010, 1, 1),
                    _utc(2019, 1, 1),
                    _utc(2024, 1, 10),
                ]
            ),
            "left_at": pd.Series([None, None, None, None, _utc(2024, 1, 10), None]),
            "synthetic": True,
        }
    )
    memberships["left_at"] = pd.to_datetime(memberships["left_at"], utc=True)
    events = frames["events"].assign(person_id=[None, None, None, None, "P2"])
    return frames | {"persons": persons, "household_memberships": memberships, "events": events}


def _utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_loads_persons_memberships_and_events_about_a_person(
    extract_frames: dict[str, pd.DataFrame], write_extract, migrated_url: str
) -> None:
    directory = write_extract(_with_people(extract_frames))
    counts = load_extract(directory, url=migrated_url, progress=False)
    # H9 is named only by a membership: it is stored as a household of its own.
    assert counts == EXPECTED | {"persons": 5, "household_memberships": 6, "households": 3}
    engine = make_engine(migrated_url)
    try:
        with session_factory(engine)() as session:
            partner = session.get(HouseholdMembershipRow, "M6")
            assert partner is not None and partner.role == "parent_partner"
            assert partner.joined_at == _utc(2024, 1, 10) and partner.left_at is None
            earlier = session.get(HouseholdMembershipRow, "M5")
            assert earlier is not None and earlier.left_at == _utc(2024, 1, 10)
            assert session.get(PersonRow, "P2").date_of_birth is None  # type: ignore[union-attr]
            assert session.get(PersonRow, "P1").is_child is False  # type: ignore[union-attr]
            assert session.get(EventRow, "E5").person_id == "P2"  # type: ignore[union-attr]
            assert session.get(EventRow, "E1").person_id is None  # type: ignore[union-attr]
            h9 = session.get(HouseholdRow, "H9")
            assert h9 is not None and h9.deprivation_decile is None
    finally:
        engine.dispose()
    assert load_extract(directory, url=migrated_url, progress=False) == dict.fromkeys(counts, 0)


def test_an_old_extract_then_a_new_one_adds_only_the_new_people(
    extract_frames: dict[str, pd.DataFrame], write_extract, migrated_url: str
) -> None:
    assert load_extract(write_extract(extract_frames), url=migrated_url, progress=False) == (
        EXPECTED
    )
    counts = load_extract(
        write_extract(_with_people(extract_frames)), url=migrated_url, progress=False
    )
    # The children are already persons; their derived memberships (child:<id>) stay, the
    # extract's own are new rows; E5 is already stored, so its person_id is not rewritten.
    assert counts == dict.fromkeys(EXPECTED, 0) | {
        "persons": 2,
        "household_memberships": 6,
        "households": 1,
    }


@pytest.mark.parametrize(
    ("table", "column", "value"),
    [("household_memberships", "person_id", "P404"), ("events", "person_id", "P404")],
)
def test_a_person_neither_in_the_extract_nor_stored_is_refused(
    extract_frames: dict[str, pd.DataFrame],
    write_extract,
    migrated_url: str,
    table: str,
    column: str,
    value: str,
) -> None:
    frames = _with_people(extract_frames)
    frames[table].loc[frames[table].index[-1], column] = value
    with pytest.raises(ExtractError, match=rf"{table}\.{column}: 1 unknown id.*P404"):
        load_extract(write_extract(frames), url=migrated_url, progress=False)
    engine = make_engine(migrated_url)
    try:
        with session_factory(engine)() as session:
            assert session.scalar(select(func.count()).select_from(PersonRow)) == 0
    finally:
        engine.dispose()


def test_events_recorded_at_is_loaded_and_optional(
    extract_frames: dict[str, pd.DataFrame], write_extract, migrated_url: str
) -> None:
    events = extract_frames["events"]
    occurred = pd.to_datetime(events["occurred_at"], utc=True)
    recorded = occurred + pd.to_timedelta([3, 0, 0, 0, 0], unit="D")
    recorded = recorded.where(pd.Series([True, True, False, True, True]))  # a null: occurred_at
    directory = write_extract(extract_frames | {"events": events.assign(recorded_at=recorded)})
    load_extract(directory, url=migrated_url, progress=False)
    engine = make_engine(migrated_url)
    try:
        with session_factory(engine)() as session:
            stored = dict(session.execute(select(EventRow.event_id, EventRow.recorded_at)).all())
    finally:
        engine.dispose()
    ids = events["event_id"].tolist()
    assert stored[ids[0]] == occurred[0].to_pydatetime() + pd.Timedelta(days=3)
    assert stored[ids[1]] == occurred[1].to_pydatetime()
    assert stored[ids[2]] is None


def test_an_event_recorded_before_it_occurred_is_refused(
    extract_frames: dict[str, pd.DataFrame], write_extract, migrated_url: str
) -> None:
    events = extract_frames["events"]
    early = pd.to_datetime(events["occurred_at"], utc=True) - pd.Timedelta(hours=1)
    directory = write_extract(extract_frames | {"events": events.assign(recorded_at=early)})
    with pytest.raises(ExtractError, match=r"recorded_at.*recorded before it occurred"):
        load_extract(directory, url=migrated_url, progress=False)


def test_identity_records_load_when_present_filed_under_their_referrals_child(
    extract_frames: dict[str, pd.DataFrame], write_extract, migrated_url: str
) -> None:
    from triage.store import IdentityRecordRow

    frames = dict(extract_frames)
    frames["referrals"] = frames["referrals"].assign(
        subject_record_id=["IDR-1"] + [None] * (len(frames["referrals"]) - 1)
    )
    frames["identity_records"] = pd.DataFrame(
        {
            "record_id": ["IDR-1", "IDR-2"],
            "source_system": ["police", "health"],
            "source_person_id": ["P-7", "NHS-1"],
            "given_name": ["Ada", None],
            "family_name": ["Ash", "Ash"],
            "date_of_birth": [date(2015, 3, 1), None],
            "sex": ["female", "unknown"],
            "postcode": ["LS1 4AP", None],
            "nhs_number": [None, "9434765919"],
            "school": [None, None],
            "is_child": [True, True],
            "first_seen_at": [_utc(2020, 1, 1), _utc(2021, 1, 1)],
        }
    )
    directory = write_extract(frames)
    counts = load_extract(directory, url=migrated_url, progress=False)
    assert counts == EXPECTED | {"identity_records": 2}
    child_of_first = frames["referrals"]["child_id"].iloc[0]
    engine = make_engine(migrated_url)
    try:
        with session_factory(engine)() as session:
            first = session.get(IdentityRecordRow, "IDR-1")
            second = session.get(IdentityRecordRow, "IDR-2")
            assert first is not None and second is not None
            assert (first.person_id, first.resolution) == (child_of_first, "loaded")
            assert second.person_id is None and second.date_of_birth is None
    finally:
        engine.dispose()
    # Old extracts (no identity_records) load as before: test_loads_tiny_extract.
    assert load_extract(directory, url=migrated_url, progress=False) == dict.fromkeys(counts, 0)
