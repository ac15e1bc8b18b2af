"""The feature layer: batch and online agree, nothing leaks from the future, provenance holds."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

import docs_pages
import numpy as np
import pandas as pd
import pytest
from feature_support import (
    assert_batch_equals_pointwise,
    delayed_world,
    full_history,
    same,
    with_delays,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cli.app import app
from features.batch import build_features
from features.catalogue import (
    CATALOGUE,
    PROTECTED_INPUTS,
    SIGNALS,
    Aggregation,
    Source,
    catalogue_markdown,
)
from features.online import online_features
from features.pointwise import evaluate
from features.policy import DEFAULT_MODEL_INPUTS
from features.records import (
    History,
    age_in_months,
    ages_in_months,
    birth_days,
    history_from_frames,
    memberships_from_children,
    referral_records,
)
from triage.store.engine import make_engine, session_factory
from triage.store.loader import load_extract
from triage.store.migrate import upgrade
from triage.synth import WorldParams, generate_world
from triage.synth.extract import write_extract
from triage.vocab import (
    EVENT_AGENCY,
    LIST_SEPARATOR,
    Concern,
    DecisionKind,
    EventKind,
    InjurySite,
    ReferrerRelationship,
    ReferrerType,
)

BASE = datetime(2024, 1, 1, tzinfo=UTC)


def by_household(history: History) -> dict[str, History]:
    """The history split by household; a child's records also go to every household it was
    referred in (a child who moves takes its own records along)."""
    homes: dict[str, set[str]] = defaultdict(set)
    for r in history.referrals:
        homes[r.child_id].add(r.household_id)
    split: dict[str, History] = defaultdict(History)
    sources = (
        ("referrals", history.referrals),
        ("events", history.events),
        ("decisions", history.decisions),
    )
    for source, records in sources:
        for record in records:
            child = record.child_id
            for household in {record.household_id} | (homes[child] if child else set()):
                getattr(split[household], source).append(record)
    for membership in history.memberships:
        for household in {membership.household_id} | homes[membership.person_id]:
            split[household].memberships.append(membership)
    return split


# --- random histories -------------------------------------------------------------------

MINUTES = st.integers(min_value=0, max_value=60 * 24 * 800)
TIMES = st.one_of(MINUTES, st.sampled_from([0, 1, 60 * 24 * 90, 60 * 24 * 365]))
DELAYS = st.one_of(
    st.none(), st.just(0), st.integers(0, 60 * 24 * 400), st.sampled_from([1, 60 * 24 * 90])
)


@st.composite
def histories(draw):
    """A few children in one or two households with referrals, events and decisions."""
    n_children = draw(st.integers(1, 3))
    # Fixed-width numbered IDs take the builder's parsing path; ragged ones its hashing path.
    ragged = draw(st.booleans())
    child_ids = [f"C-{i * 7}" if ragged else f"C-{i}" for i in range(n_children)]
    households = [f"H-{draw(st.integers(0, 1)) * (11 if ragged else 1)}" for _ in range(n_children)]
    children = pd.DataFrame(
        {
            "child_id": child_ids,
            "household_id": households,
            "date_of_birth": [
                date(2020, 1, 1) + timedelta(days=draw(st.integers(0, 1500)))
                for _ in range(n_children)
            ],
        }
    )
    ref_rows = []
    for i in range(draw(st.integers(1, 8))):
        c = draw(st.integers(0, n_children - 1))
        sites = draw(st.lists(st.sampled_from(list(InjurySite)), max_size=2, unique=True))
        ref_rows.append(
            {
                "referral_id": f"R-{i}",
                "child_id": child_ids[c],
                "household_id": households[c],
                "received_at": BASE
                + timedelta(minutes=draw(TIMES), milliseconds=draw(st.integers(0, 2))),
                "referrer_type": draw(st.sampled_from(list(ReferrerType))).value,
                "referrer_relationship": draw(
                    st.one_of(st.none(), st.sampled_from([r.value for r in ReferrerRelationship]))
                ),
                "referrer_id": draw(st.one_of(st.none(), st.sampled_from(["P-1", "P-2", "P-3"]))),
                "concerns": LIST_SEPARATOR.join(
                    draw(
                        st.lists(
                            st.sampled_from([c.value for c in Concern]),
                            min_size=1,
                            max_size=3,
                            unique=True,
                        )
                    )
                ),
                "injury_reported": bool(sites),
                "injury_sites": LIST_SEPARATOR.join(s.value for s in sites),
            }
        )
    referrals = pd.DataFrame(ref_rows)
    referrals["received_at"] = pd.to_datetime(referrals["received_at"], utc=True)
    ev_rows = []
    for i in range(draw(st.integers(0, 10))):
        kind = draw(st.sampled_from(list(EventKind)))
        c = draw(st.integers(0, n_children - 1))
        household_level = draw(st.booleans())
        ev_rows.append(
            {
                "event_id": f"E-{i}",
                "child_id": None if household_level else child_ids[c],
                "household_id": households[c],
                "occurred_at": BASE + timedelta(minutes=draw(TIMES)),
                "agency": EVENT_AGENCY[kind].value,
                "kind": kind.value,
            }
        )
    events = pd.DataFrame(
        ev_rows, columns=["event_id", "child_id", "household_id", "occurred_at", "agency", "kind"]
    )
    events["occurred_at"] = pd.to_datetime(events["occurred_at"], utc=True)
    if draw(st.booleans()):  # shared late: known only from recorded_at
        events = with_delays(events, [draw(DELAYS) for _ in range(len(events))])
    decided = [r for r in ref_rows if draw(st.booleans())]
    decisions = pd.DataFrame(
        {
            "referral_id": [r["referral_id"] for r in decided],
            "decided_at": pd.to_datetime(
                [
                    r["received_at"] + timedelta(minutes=draw(st.integers(0, 60 * 24 * 30)))
                    for r in decided
                ],
                utc=True,
            ),
            "decision": [draw(st.sampled_from([d.value for d in DecisionKind])) for _ in decided],
        }
    )
    return children, referrals, events, decisions


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_batch_equals_pointwise_on_random_histories(frames):
    children, referrals, events, decisions = frames
    batch = build_features(children, referrals, events, decisions)
    history = history_from_frames(
        referrals,
        events,
        decisions,
        memberships_from_children(children),
        birth_days(children, None),
    )
    dob = children.set_index("child_id")["date_of_birth"]
    for query in referral_records(referrals):
        for name, sv in evaluate(query, dob[query.child_id], history).items():
            assert same(batch.at[query.referral_id, name], sv.value), (query.referral_id, name)


# --- a synthetic world -----------------------------------------------------------------


@pytest.fixture(scope="module")
def world():
    """A small synthetic world."""
    return generate_world(WorldParams(n_referrals=2_500, seed=7))


@pytest.fixture(scope="module")
def batch(world):
    """Its batch features."""
    return build_features(
        world.children,
        world.referrals,
        world.events,
        world.decisions,
        persons=world.persons,
        memberships=world.household_memberships,
    )


def test_batch_equals_pointwise_on_a_synthetic_world(world, batch):
    assert_batch_equals_pointwise(batch, world, world.referrals.sample(150, random_state=3))
    assert list(batch.columns) == [s.name for s in CATALOGUE]
    assert batch.index.is_unique and len(batch) == len(world.referrals)


def test_online_from_the_store_equals_batch(world, batch, database_url, tmp_path):
    write_extract(world, tmp_path / "extract")
    upgrade(database_url)
    load_extract(tmp_path / "extract", url=database_url, progress=False)
    engine = make_engine(database_url)
    try:
        with session_factory(engine)() as session:
            for referral_id in world.referrals["referral_id"].sample(120, random_state=5):
                online = online_features(session, referral_id=referral_id)
                assert not online.truncated
                for name, value in online.vector().items():
                    assert same(batch.at[referral_id, name], value), (referral_id, name)
    finally:
        engine.dispose()


def test_records_at_or_after_a_referral_never_move_its_features(world, batch):
    refs, events = world.referrals, world.events
    cutoff = refs["received_at"].quantile(0.6)
    # Add records at exactly the cutoff and after it, and rewrite every later event.
    at_cutoff = refs[refs["received_at"] <= cutoff].tail(200)
    added_events = pd.DataFrame(
        {
            "event_id": [f"X-{i}" for i in range(len(at_cutoff))],
            "source_system": "test",
            "source_event_id": [f"X-{i}" for i in range(len(at_cutoff))],
            "child_id": at_cutoff["child_id"].to_numpy(),
            "household_id": at_cutoff["household_id"].to_numpy(),
            "occurred_at": cutoff,
            "agency": "police",
            "kind": "domestic_abuse_incident",
        }
    )
    later = events["occurred_at"] >= cutoff
    changed = events.copy()
    changed.loc[later, "kind"] = "s47_enquiry"
    changed.loc[later, "agency"] = "social_care"
    added_refs = at_cutoff.assign(
        referral_id=lambda d: "Y-" + d["referral_id"],
        source_referral_id=lambda d: "Y-" + d["source_referral_id"],
        received_at=cutoff + pd.Timedelta(days=1),
        referrer_id="P-NEW",
    )
    moved_refs = pd.concat([refs, added_refs], ignore_index=True)
    decisions = world.decisions.copy()
    decisions.loc[decisions["decided_at"] >= cutoff, "decision"] = "no_further_action"
    after = build_features(
        world.children,
        moved_refs,
        pd.concat([changed, added_events]),
        decisions,
        persons=world.persons,
        memberships=world.household_memberships,
    )
    before_cutoff = refs.loc[refs["received_at"] <= cutoff, "referral_id"]
    pd.testing.assert_frame_equal(after.loc[before_cutoff], batch.loc[before_cutoff])
    # ...and the same additions do move the features of later referrals.
    later_ids = refs.loc[refs["received_at"] > cutoff + pd.Timedelta(days=1), "referral_id"]
    assert not after.loc[later_ids].equals(batch.loc[later_ids])


# --- when records became known (recorded_at) --------------------------------------------


@pytest.fixture(scope="module")
def delayed(world):
    """The world with sharing delays on its events."""
    return delayed_world(world, seed=1)


@pytest.fixture(scope="module")
def delayed_batch(delayed):
    """Its batch features."""
    return build_features(
        delayed.children,
        delayed.referrals,
        delayed.events,
        delayed.decisions,
        persons=delayed.persons,
        memberships=delayed.household_memberships,
    )


def test_recorded_when_it_occurred_changes_nothing(world):
    events = world.events.drop(columns="recorded_at", errors="ignore")
    built = [
        build_features(
            world.children,
            world.referrals,
            frame,
            world.decisions,
            persons=world.persons,
            memberships=world.household_memberships,
        )
        for frame in (events, events.assign(recorded_at=events["occurred_at"]))
    ]
    pd.testing.assert_frame_equal(built[1], built[0])


def test_delays_lower_counts_and_batch_equals_pointwise(delayed, delayed_batch):
    assert_batch_equals_pointwise(
        delayed_batch, delayed, delayed.referrals.sample(200, random_state=4)
    )
    on_time = build_features(
        delayed.children,
        delayed.referrals,
        delayed.events.drop(columns="recorded_at"),
        delayed.decisions,
        persons=delayed.persons,
        memberships=delayed.household_memberships,
    )
    counts = [s.name for s in CATALOGUE if s.source is Source.events]
    assert (delayed_batch[counts] <= on_time[counts]).all().all()
    assert (delayed_batch[counts] < on_time[counts]).any().any()


def test_online_from_the_store_equals_batch_with_delays(
    delayed, delayed_batch, database_url, tmp_path
):
    write_extract(delayed, tmp_path / "extract")
    upgrade(database_url)
    load_extract(tmp_path / "extract", url=database_url, progress=False)
    engine = make_engine(database_url)
    try:
        with session_factory(engine)() as session:
            for referral_id in delayed.referrals["referral_id"].sample(120, random_state=6):
                online = online_features(session, referral_id=referral_id)
                for name, value in online.vector().items():
                    assert same(delayed_batch.at[referral_id, name], value), (referral_id, name)
    finally:
        engine.dispose()


def test_records_recorded_at_or_after_a_referral_never_move_its_features(delayed, delayed_batch):
    refs, events = delayed.referrals, delayed.events
    cutoff = refs["received_at"].quantile(0.6)
    # Every event recorded at or after the cutoff, even one that occurred long before it, is
    # rewritten; and events that occurred before it are added, recorded at it.
    recorded_later = events["recorded_at"].fillna(events["occurred_at"]) >= cutoff
    assert (recorded_later & (events["occurred_at"] < cutoff)).sum() > 50
    changed = events.copy()
    changed.loc[recorded_later, "kind"] = "s47_enquiry"
    changed.loc[recorded_later, "agency"] = "social_care"
    at_cutoff = refs[refs["received_at"] <= cutoff].tail(200)
    added = pd.DataFrame(
        {
            "event_id": [f"X-{i}" for i in range(len(at_cutoff))],
            "source_system": "test",
            "source_event_id": [f"X-{i}" for i in range(len(at_cutoff))],
            "child_id": at_cutoff["child_id"].to_numpy(),
            "household_id": at_cutoff["household_id"].to_numpy(),
            "occurred_at": at_cutoff["received_at"].to_numpy() - pd.Timedelta(days=3),
            "recorded_at": cutoff,
            "agency": "police",
            "kind": "domestic_abuse_incident",
        }
    )
    after = build_features(
        delayed.children,
        refs,
        pd.concat([changed, added], ignore_index=True),
        delayed.decisions,
        persons=delayed.persons,
        memberships=delayed.household_memberships,
    )
    before_cutoff = refs.loc[refs["received_at"] <= cutoff, "referral_id"]
    pd.testing.assert_frame_equal(after.loc[before_cutoff], delayed_batch.loc[before_cutoff])
    later_ids = refs.loc[refs["received_at"] > cutoff, "referral_id"]
    assert not after.loc[later_ids].equals(delayed_batch.loc[later_ids])


def _one_child(times_minutes: list[float], query_minutes: float):
    """A child with earlier referrals at the given minutes and one referral being scored."""
    children = pd.DataFrame(
        {"child_id": ["C-1"], "household_id": ["H-1"], "date_of_birth": [date(2020, 1, 1)]}
    )
    times = [*times_minutes, query_minutes]
    referrals = pd.DataFrame(
        {
            "referral_id": [f"R-{i}" for i in range(len(times))],
            "child_id": "C-1",
            "household_id": "H-1",
            "received_at": pd.to_datetime([BASE + timedelta(minutes=m) for m in times], utc=True),
            "referrer_type": "police",
            "referrer_relationship": None,
            "referrer_id": "P-1",
            "concerns": "neglect",
            "injury_reported": False,
            "injury_sites": "",
        }
    )
    empty_events = pd.DataFrame(
        columns=["event_id", "child_id", "household_id", "occurred_at", "agency", "kind"]
    )
    empty_events["occurred_at"] = pd.to_datetime(empty_events["occurred_at"], utc=True)
    empty_decisions = pd.DataFrame(
        {"referral_id": [], "decided_at": pd.to_datetime([], utc=True), "decision": []}
    )
    features = build_features(children, referrals, empty_events, empty_decisions)
    return features.loc[f"R-{len(times) - 1}"]


def test_same_instant_is_excluded_and_window_edges_are_inclusive():
    day = 60 * 24
    query = 400 * day
    row = _one_child([query, query - 365 * day, query - 365 * day - 1, query - 0.001], query)
    # Same instant: excluded. Exactly 365 days earlier: inside. One minute more: outside.
    # 0.06 s earlier (a different millisecond): inside.
    assert row["prior_referrals_child_365d"] == 2
    assert row["prior_referrals_child_all"] == 3
    assert row["days_since_last_referral"] == pytest.approx(0.001 / day)


def test_provenance_names_exactly_the_records_counted(world, batch):
    history = by_household(full_history(world))
    dob = world.children.set_index("child_id")["date_of_birth"]
    refs_by_id = world.referrals.set_index("referral_id")
    events_by_id = world.events.set_index("event_id")
    stays_by_id = world.household_memberships.set_index("membership_id")
    for query in referral_records(world.referrals.sample(80, random_state=11)):
        values = evaluate(query, dob[query.child_id], history[query.household_id])
        for name, sv in values.items():
            signal = SIGNALS[name]
            if signal.aggregation in (Aggregation.count, Aggregation.max_same_concern):
                assert len(sv.record_ids) == sv.value, name
            if signal.aggregation is Aggregation.exists:
                assert bool(sv.record_ids) == bool(sv.value), name
            if signal.source is Source.referral:
                assert set(sv.record_ids) <= {query.referral_id}
                continue
            for record_id in sv.record_ids:
                if record_id in events_by_id.index:
                    when = events_by_id.at[record_id, "occurred_at"]
                elif record_id in stays_by_id.index:  # a stay: it began before the referral
                    when = stays_by_id.at[record_id, "joined_at"]
                else:
                    when = refs_by_id.at[record_id, "received_at"]
                if signal.source is not Source.decisions:
                    assert when < refs_by_id.at[query.referral_id, "received_at"], (name, record_id)


def test_protected_attributes_are_not_inputs_and_do_not_move_features(world, batch):
    assert not PROTECTED_INPUTS & set(DEFAULT_MODEL_INPUTS)
    assert not PROTECTED_INPUTS & set(batch.columns)
    shuffled = world.children.copy()
    rng = np.random.default_rng(0)
    for column in ("ethnicity", "sex", "disability", "deprivation_decile"):
        shuffled[column] = rng.permutation(shuffled[column].to_numpy())
    again = build_features(
        shuffled,
        world.referrals,
        world.events,
        world.decisions,
        persons=world.persons,
        memberships=world.household_memberships,
    )
    pd.testing.assert_frame_equal(again, batch)


def test_ages_in_months_match_the_scalar_rule():
    born = [date(2020, 1, 31), date(2020, 2, 29), date(2019, 12, 15), date(2024, 5, 1)]
    on = [date(2020, 2, 29), date(2021, 2, 28), date(2020, 12, 14), date(2024, 5, 1)]
    vectorised = ages_in_months(
        np.array(born, dtype="datetime64[D]"), np.array(on, dtype="datetime64[D]")
    )
    assert (
        list(vectorised)
        == [age_in_months(b, o) for b, o in zip(born, on, strict=True)]
        == [0, 11, 11, 0]
    )


@pytest.mark.parametrize("value", [0.0, 1.0, 3.0, float("nan")])
def test_every_signal_reads_aloud(value):
    for signal in CATALOGUE:
        sentence = signal.sentence(value)
        assert sentence[:1].isupper() or sentence[:1].isdigit(), signal.name
        assert "{" not in sentence, signal.name


def test_catalogue_lists_on_the_command_line_and_in_the_docs():
    result = CliRunner().invoke(app, ["features", "list", "--markdown"])
    assert result.exit_code == 0
    for signal in CATALOGUE:
        assert f"`{signal.name}`" in result.stdout
    # The README's copy of the table moved to the docs site, which generates it at build time.
    assert catalogue_markdown() in docs_pages.signals_markdown()


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["C-0012", "C-0340", None], [12, 340, -1]),
        ([None, "C-0012", None, "C-0340"], [-1, 12, -1, 340]),
        ([None, None], [-1, -1]),
        (["C-12", "C-0340"], [12, 340]),  # two widths: two shapes
        (["C-0012", "PER-00340", "C-0013"], [12, 340, 13]),  # children and adults
        (["C-0012", "D-0340"], None),  # two prefixes of one width: hashed instead
        (["C-00x2"], None),  # not digits
        (["C-0012", ""], None),  # an empty ID is not numbered
        (["C-0012", "C-0340", "C-0341", "D-0342", "C-0343"], None),  # prefix differs late
        (["C-0012", "C-0340", "C-0341", "C-03:2", "C-0343"], None),  # a byte above "9"
        (["C-0012", "C-0340", "C-0341", "C-03/2", "C-0343"], None),  # a byte below "0"
        (["C-1", "C-12", "C-123", "C-1234", "C-12345"], None),  # more shapes than allowed
    ],
)
def test_numbered_ids_parse_exactly_or_decline(values, expected, monkeypatch):
    import pyarrow as pa

    from features import id_codes

    monkeypatch.setattr(id_codes, "PARSE_BLOCK", 2)  # several blocks, one odd-sized
    parsed = id_codes.numbered_ids(pa.array(values, type=pa.string()))
    if expected is None:
        assert parsed is None
    else:
        assert parsed is not None and list(parsed[2]) == expected


def test_numbered_ids_read_past_a_null_slot_that_holds_bytes():
    import pyarrow as pa

    from features.id_codes import numbered_ids

    # "C-0012", null (its slot still holds "C-9999"), "C-0340": Arrow allows bytes under a null.
    data = pa.py_buffer(b"C-0012C-9999C-0340")
    offsets = pa.py_buffer(np.array([0, 6, 12, 18], dtype=np.int32).tobytes())
    validity = pa.py_buffer(bytes([0b101]))
    arr = pa.StringArray.from_buffers(3, offsets, data, validity, null_count=1)
    parsed = numbered_ids(arr)
    assert parsed is not None and list(parsed[2]) == [12, -1, 340]


@pytest.mark.parametrize(
    "columns",
    [
        [["C-0012", "C-0340", None], ["C-0340", "C-0099"]],
        [["C-0012", "PER-00012"], [None, "PER-00012", "C-0012", "C-0007"]],  # two shapes
        [["C-0012", "x-1"], ["C-0012"]],  # not all numbered: hashed
        [["C-0012", None], ["D-0012"]],  # shapes differ between columns, same number
    ],
)
def test_shared_codes_are_equal_exactly_when_the_ids_are(columns):
    from features.id_codes import encode_together

    series = [pd.Series(c, dtype="string[pyarrow]") for c in columns]
    codes = encode_together(*series)
    flat_ids = [v for c in columns for v in c]
    flat_codes = np.concatenate(codes)
    assert [len(c) for c in codes] == [len(c) for c in columns]
    for i, a in enumerate(flat_ids):
        assert (flat_codes[i] == -1) == (a is None)
        for j, b in enumerate(flat_ids):
            if a is not None and b is not None:
                assert (flat_codes[i] == flat_codes[j]) == (a == b), (a, b)


def test_large_sparse_case_numbers_are_renumbered_not_overflowed(world, batch):
    renamed = {cid: f"C-{98_000_000 + int(cid[2:]) * 97:09d}" for cid in world.children["child_id"]}
    children = world.children.assign(child_id=world.children["child_id"].map(renamed))
    referrals = world.referrals.assign(child_id=world.referrals["child_id"].map(renamed))
    events = world.events.assign(child_id=world.events["child_id"].map(renamed))
    persons = world.persons.assign(person_id=world.persons["person_id"].replace(renamed))
    stays = world.household_memberships
    stays = stays.assign(person_id=stays["person_id"].replace(renamed))
    again = build_features(
        children, referrals, events, world.decisions, persons=persons, memberships=stays
    )
    pd.testing.assert_frame_equal(again, batch)


def test_online_what_if_leaves_out_disputed_records(world, batch, tmp_path):
    url = f"sqlite:///{tmp_path}/whatif.db"
    write_extract(world, tmp_path / "extract")
    upgrade(url)
    load_extract(tmp_path / "extract", url=url, progress=False)
    target = batch.index[batch["prior_referrals_child_all"] >= 2][0]
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            full = online_features(session, referral_id=target)
            disputed = full.values["prior_referrals_child_all"].record_ids[:1]
            without = online_features(session, referral_id=target, exclude_record_ids=disputed)
    finally:
        engine.dispose()
    assert (
        without.vector()["prior_referrals_child_all"]
        == full.vector()["prior_referrals_child_all"] - 1
    )
    assert disputed[0] not in without.values["prior_referrals_child_all"].record_ids
