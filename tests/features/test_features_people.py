"""Who lives with the child: batch, pointwise and online agree, nothing leaks from the future,
and each rule of the membership signals holds at its edges."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest
from feature_support import (
    Relevant,
    assert_batch_equals_pointwise,
    full_history,
    same,
    with_delays,
    with_people,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.batch import build_features
from features.catalogue import CATALOGUE, PEOPLE_SIGNAL_NAMES, SIGNALS, Aggregation, Source
from features.online import online_features
from features.pointwise import evaluate
from features.records import birth_days, history_from_frames, referral_records
from triage.store.engine import make_engine, session_factory
from triage.store.loader import load_extract
from triage.store.migrate import upgrade
from triage.synth import WorldParams, generate_world
from triage.synth.extract import write_extract
from triage.vocab import ADULT_ROLES, EVENT_AGENCY, EventKind

BASE = datetime(2024, 1, 1, tzinfo=UTC)
DAY_MIN = 60 * 24
PEOPLE_SIGNALS = tuple(SIGNALS[name] for name in PEOPLE_SIGNAL_NAMES)
FOLLOWING = tuple(
    s for s in CATALOGUE if s.entity.value == "household" and s.source is Source.events
)
EVENT_COLUMNS = [
    "event_id",
    "child_id",
    "household_id",
    "person_id",
    "occurred_at",
    "agency",
    "kind",
]
MEMBERSHIP_COLUMNS = ["membership_id", "person_id", "household_id", "role", "joined_at", "left_at"]


def _frames(children, referrals, events, memberships, persons):
    """Typed frames from rows (times as minutes after ``BASE``, or datetimes)."""

    def at(value):
        if value is None:
            return None
        return value if isinstance(value, datetime) else BASE + timedelta(minutes=value)

    children = pd.DataFrame(children, columns=["child_id", "household_id", "date_of_birth"])
    referrals = pd.DataFrame(
        [
            {
                "referral_id": rid,
                "child_id": child,
                "household_id": household,
                "received_at": at(t),
                "referrer_type": "police",
                "referrer_relationship": None,
                "referrer_id": None,
                "concerns": "neglect",
                "injury_reported": False,
                "injury_sites": "",
            }
            for rid, child, household, t in referrals
        ]
    )
    referrals["received_at"] = pd.to_datetime(referrals["received_at"], utc=True)
    events = pd.DataFrame(
        [
            (eid, child, household, person, at(t), EVENT_AGENCY[EventKind(kind)].value, kind)
            for eid, child, household, person, t, kind in events
        ],
        columns=EVENT_COLUMNS,
    )
    events["occurred_at"] = pd.to_datetime(events["occurred_at"], utc=True)
    memberships = pd.DataFrame(
        [(m, p, h, r, at(j), at(left)) for m, p, h, r, j, left in memberships],
        columns=MEMBERSHIP_COLUMNS,
    )
    for column in ("joined_at", "left_at"):
        memberships[column] = pd.to_datetime(memberships[column], utc=True)
    persons = pd.DataFrame(persons, columns=["person_id", "date_of_birth"])
    decisions = pd.DataFrame(
        {"referral_id": [], "decided_at": pd.to_datetime([], utc=True), "decision": []}
    )
    return children, referrals, events, decisions, memberships, persons


def _both(frames) -> tuple[pd.DataFrame, dict[str, dict]]:
    """Batch features, and the pointwise values with provenance, of every referral."""
    children, referrals, events, decisions, memberships, persons = frames
    batch = build_features(
        children, referrals, events, decisions, persons=persons, memberships=memberships
    )
    history = history_from_frames(
        referrals, events, decisions, memberships, birth_days(children, persons)
    )
    dob = children.set_index("child_id")["date_of_birth"]
    pointwise = {
        q.referral_id: evaluate(q, dob[q.child_id], history) for q in referral_records(referrals)
    }
    for rid, values in pointwise.items():
        for name, sv in values.items():
            assert same(batch.at[rid, name], sv.value), (rid, name, batch.at[rid, name], sv)
    return batch, pointwise


# --- random histories with people -------------------------------------------------------------

MINUTES = st.integers(min_value=-400 * DAY_MIN, max_value=800 * DAY_MIN)
TIMES = st.one_of(MINUTES, st.sampled_from([0, 1, 90 * DAY_MIN, 365 * DAY_MIN, 455 * DAY_MIN]))
DELAYS = st.one_of(
    st.none(), st.just(0), st.integers(0, 400 * DAY_MIN), st.sampled_from([1, 90 * DAY_MIN])
)
RECORD_KINDS = [
    "adult_violence_offence",
    "domestic_abuse_perpetrator",
    "probation_supervision",
    "care_proceedings",
    "child_removed",
    "cp_plan_start",
    "cp_plan_end",
    "looked_after_start",
    "domestic_abuse_incident",
    "ed_attendance",
]


@st.composite
def people_histories(draw):
    """Children and adults moving between up to three households, with records about them."""
    ragged = draw(st.booleans())
    households = [f"H-{i * 7}" if ragged else f"H-{i}" for i in range(3)]
    n_children = draw(st.integers(1, 3))
    kids = [f"C-{i}" for i in range(n_children)]
    adults = ["P-1", "P-2", "P-3"]
    born = [date(2020, 1, 1) + timedelta(days=draw(st.integers(0, 1500))) for _ in kids]
    children = [(c, draw(st.sampled_from(households)), b) for c, b in zip(kids, born, strict=True)]
    memberships = []
    for i, (child, _, dob) in enumerate(children):
        for j in range(draw(st.integers(0, 2))):
            at_birth = draw(st.booleans())
            joined = datetime(dob.year, dob.month, dob.day, tzinfo=UTC) if at_birth else draw(TIMES)
            left = draw(st.one_of(st.none(), st.integers(0, 500 * DAY_MIN)))
            memberships.append(
                (f"MC-{i}-{j}", child, draw(st.sampled_from(households)), "child", joined, left)
            )
    for j in range(draw(st.integers(0, 4))):
        joined = draw(TIMES)
        left = draw(st.one_of(st.none(), st.integers(0, 500 * DAY_MIN)))
        memberships.append(
            (
                f"MA-{j}",
                draw(st.sampled_from(adults)),
                draw(st.sampled_from(households)),
                draw(st.sampled_from([r.value for r in ADULT_ROLES])),
                joined,
                left,
            )
        )
    # Leaving times are drawn as a stay's length: a membership never ends before it begins.
    memberships = [
        (m, p, h, r, j, None if left is None else _after(j, left))
        for m, p, h, r, j, left in memberships
    ]
    events = []
    for k in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(RECORD_KINDS))
        about_adult = draw(st.booleans())
        events.append(
            (
                f"E-{k}",
                None if about_adult else draw(st.sampled_from(kids)),
                draw(st.sampled_from(households)),
                draw(st.sampled_from(adults)) if about_adult else None,
                draw(TIMES),
                kind,
            )
        )
    referrals = [
        (f"R-{k}", draw(st.sampled_from(kids)), draw(st.sampled_from(households)), draw(TIMES))
        for k in range(draw(st.integers(1, 6)))
    ]
    persons = [(c, b) for c, _, b in children] + [(a, None) for a in adults]
    frames = _frames(children, referrals, events, memberships, persons)
    if draw(st.booleans()):  # shared late: known only from recorded_at
        delays = [draw(DELAYS) for _ in range(len(frames[2]))]
        frames = (*frames[:2], with_delays(frames[2], delays), *frames[3:])
    return frames


def _after(joined, minutes: int):
    start = joined if isinstance(joined, datetime) else BASE + timedelta(minutes=joined)
    return start + timedelta(minutes=minutes)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(people_histories())
def test_batch_equals_pointwise_on_random_people_histories(frames):
    _both(frames)


# --- a world with people -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def world():
    """A small synthetic world with adults, memberships, moves and adults' records."""
    return with_people(generate_world(WorldParams(n_referrals=2_000, seed=11)), seed=3)


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


def test_the_world_exercises_every_people_signal(batch):
    for signal in (*PEOPLE_SIGNALS, *FOLLOWING):
        assert batch[signal.name].gt(0).any(), signal.name


def test_batch_equals_pointwise_on_a_world_with_people(world, batch):
    assert_batch_equals_pointwise(batch, world, world.referrals.sample(250, random_state=1))


def test_online_from_the_store_equals_batch_with_people(world, batch, database_url, tmp_path):
    write_extract(world, tmp_path / "extract")
    upgrade(database_url)
    load_extract(tmp_path / "extract", url=database_url, progress=False)
    # Referrals where the new signals are not all zero, and a random sample besides.
    busy = batch.index[(batch[[s.name for s in PEOPLE_SIGNALS]] > 0).sum(axis=1) >= 3][:60]
    chosen = [*busy, *world.referrals["referral_id"].sample(60, random_state=5)]
    engine = make_engine(database_url)
    try:
        with session_factory(engine)() as session:
            for referral_id in chosen:
                online = online_features(session, referral_id=referral_id)
                assert not online.truncated
                for name, value in online.vector().items():
                    assert same(batch.at[referral_id, name], value), (referral_id, name)
    finally:
        engine.dispose()


def test_records_at_or_after_a_referral_never_move_its_people_signals(world, batch):
    cutoff = world.referrals["received_at"].quantile(0.5)
    members = world.household_memberships.copy()
    joined_late = members["joined_at"] >= cutoff
    members.loc[joined_late, "role"] = "unrelated_adult"  # rewritten roles of later joins
    members.loc[members["left_at"] >= cutoff, "left_at"] = pd.NaT  # later leaves unknown
    households = world.children["household_id"].unique()
    added = pd.DataFrame(
        {
            "membership_id": [f"LATE-{i}" for i in range(len(households))],
            "person_id": "P-00000",
            "household_id": households,
            "role": "parent_partner",
            "joined_at": cutoff,
            "left_at": pd.Series(
                pd.NaT, index=range(len(households)), dtype=members["left_at"].dtype
            ),
            "synthetic": True,
        }
    )
    members = pd.concat([members, added], ignore_index=True)
    events = world.events.copy()
    later = events["occurred_at"] >= cutoff
    events.loc[later & events["person_id"].notna(), "kind"] = "probation_supervision"
    events.loc[later & events["person_id"].notna(), "agency"] = "police"
    ended = events[events["kind"] == "cp_plan_start"].assign(
        event_id=lambda d: "END-" + d["event_id"],
        source_event_id=lambda d: "END-" + d["source_event_id"],
        kind="cp_plan_end",
        occurred_at=cutoff,
    )
    events = pd.concat([events, ended], ignore_index=True)
    after = build_features(
        world.children,
        world.referrals,
        events,
        world.decisions,
        persons=world.persons,
        memberships=members,
    )
    refs = world.referrals
    before_cutoff = refs.loc[refs["received_at"] <= cutoff, "referral_id"]
    pd.testing.assert_frame_equal(after.loc[before_cutoff], batch.loc[before_cutoff])
    later_ids = refs.loc[refs["received_at"] > cutoff, "referral_id"]
    names = [s.name for s in PEOPLE_SIGNALS]
    assert not after.loc[later_ids, names].equals(batch.loc[later_ids, names])


def test_provenance_names_the_memberships_and_records_counted(world, batch):
    relevant = Relevant(full_history(world))
    dob = world.children.set_index("child_id")["date_of_birth"]
    members = world.household_memberships.set_index("membership_id")
    events = world.events.set_index("event_id")
    received = world.referrals.set_index("referral_id")["received_at"]
    busy = batch.index[(batch[[s.name for s in PEOPLE_SIGNALS]] > 0).any(axis=1)]
    for query in referral_records(
        world.referrals.set_index("referral_id").loc[busy[:120]].reset_index()
    ):
        t = received[query.referral_id]
        values = evaluate(query, dob[query.child_id], relevant.of(query))
        for signal in PEOPLE_SIGNALS:
            sv = values[signal.name]
            membership_ids = [i for i in sv.record_ids if i in members.index]
            event_ids = [i for i in sv.record_ids if i in events.index]
            assert len(membership_ids) + len(event_ids) == len(sv.record_ids), signal.name
            assert bool(sv.record_ids) == bool(sv.value), signal.name
            if signal.aggregation is Aggregation.count:
                assert len(membership_ids) == sv.value, signal.name
            for mid in membership_ids:
                assert members.at[mid, "joined_at"] < t, (signal.name, mid)
            for eid in event_ids:
                assert events.at[eid, "occurred_at"] < t, (signal.name, eid)
            if signal.source is Source.memberships:
                for mid in membership_ids:
                    assert members.at[mid, "household_id"] == query.household_id
                    assert members.at[mid, "person_id"] != query.child_id
                    if signal.filter.roles:
                        assert members.at[mid, "role"] in signal.filter.roles


def test_online_what_if_leaves_out_a_disputed_membership(world, batch, tmp_path):
    url = f"sqlite:///{tmp_path}/whatif.db"
    write_extract(world, tmp_path / "extract")
    upgrade(url)
    load_extract(tmp_path / "extract", url=url, progress=False)
    target = batch.index[batch["unrelated_adult_in_household"] == 1][0]
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            full = online_features(session, referral_id=target)
            disputed = full.values["unrelated_adult_in_household"].record_ids
            without = online_features(session, referral_id=target, exclude_record_ids=disputed)
    finally:
        engine.dispose()
    assert full.vector()["unrelated_adult_in_household"] == 1
    assert without.vector()["unrelated_adult_in_household"] == 0


# --- the rules at their edges ------------------------------------------------------------------

DOB = date(2022, 6, 1)
T = 500 * DAY_MIN  # the referral, in minutes after BASE


def _recorded(frames, recorded: dict[str, float]):
    """The frames with these events recorded at these minutes after ``BASE`` (the others when
    they occurred)."""
    children, referrals, events, *rest = frames
    recorded_at = events["occurred_at"].copy()
    for event_id, minutes in recorded.items():
        recorded_at[events["event_id"] == event_id] = BASE + timedelta(minutes=minutes)
    return (children, referrals, events.assign(recorded_at=recorded_at), *rest)


def _case(memberships, events=(), referrals=None, persons=None, recorded=None):
    """C-1 referred at ``T`` in H-1, with the given memberships and events (``recorded``: when
    some of them were shared); its values."""
    referrals = referrals or [("R-1", "C-1", "H-1", T)]
    frames = _frames(
        [("C-1", "H-1", DOB), ("C-2", "H-1", date(2019, 1, 1))],
        referrals,
        list(events),
        [("MC-1", "C-1", "H-1", "child", datetime(2022, 6, 1, tzinfo=UTC), None), *memberships],
        persons or [("C-1", DOB), ("C-2", date(2019, 1, 1))],
    )
    batch, pointwise = _both(_recorded(frames, recorded or {}))
    return batch.loc[referrals[-1][0]], pointwise[referrals[-1][0]]


@pytest.mark.parametrize(
    ("days_before", "in_90", "in_365"),
    [(90, 1, 1), (90.001, 0, 1), (365, 0, 1), (365.001, 0, 0), (0, 0, 0), (-1, 0, 0)],
)
def test_an_adult_joining_counts_inside_the_window_edges_included(days_before, in_90, in_365):
    joined = T - days_before * DAY_MIN
    row, values = _case([("MA", "P-1", "H-1", "parent_partner", joined, None)])
    assert (row["adult_joined_household_90d"], row["adult_joined_household_365d"]) == (
        in_90,
        in_365,
    )
    if in_365:
        assert values["adult_joined_household_365d"].record_ids == ("MA",)


@pytest.mark.parametrize(("left", "lives_there"), [(None, 1), (T, 1), (T - 1, 0), (T + 1, 1)])
def test_an_adult_who_left_before_the_referral_no_longer_lives_there(left, lives_there):
    row, _ = _case([("MA", "P-1", "H-1", "unrelated_adult", T - 30 * DAY_MIN, left)])
    assert row["unrelated_adult_in_household"] == lives_there
    # Joining is an event of its own: the adult still joined in the last 90 days.
    assert row["adult_joined_household_90d"] == 1


def test_a_step_parent_and_a_relative_are_not_unrelated_adults():
    row, _ = _case(
        [
            ("M1", "P-1", "H-1", "step_parent", 0, None),
            ("M2", "P-2", "H-1", "other_relative", 0, None),
        ]
    )
    assert row["unrelated_adult_in_household"] == 0


@pytest.mark.parametrize(
    ("record_at", "joined_days_before", "joined", "lives"),
    [
        (T - 10 * DAY_MIN, 100, 1, 1),  # recorded after joining, before the referral
        (T - 900 * DAY_MIN, 100, 1, 1),  # recorded long before joining
        (T, 100, 0, 0),  # recorded at the referral's instant: not known yet
        (T - 10 * DAY_MIN, 400, 0, 1),  # joined over a year ago: lives there, did not just join
    ],
)
def test_an_adult_with_a_violence_record(record_at, joined_days_before, joined, lives):
    row, values = _case(
        [("MA", "P-1", "H-1", "parent_partner", T - joined_days_before * DAY_MIN, None)],
        [("E-1", None, "H-9", "P-1", record_at, "adult_violence_offence")],
    )
    assert row["risk_adult_joined_household_365d"] == joined
    assert row["risk_adult_in_household"] == lives
    if lives:
        assert values["risk_adult_in_household"].record_ids == ("E-1", "MA") or values[
            "risk_adult_in_household"
        ].record_ids == ("MA", "E-1")


def test_a_parents_earlier_care_proceedings_count_only_for_a_parent_living_there():
    events = [("E-1", None, "H-9", "P-1", -100 * DAY_MIN, "care_proceedings")]
    parent, _ = _case([("MA", "P-1", "H-1", "parent", 0, None)], events)
    partner, _ = _case([("MA", "P-1", "H-1", "parent_partner", 0, None)], events)
    gone, _ = _case([("MA", "P-1", "H-1", "parent", 0, T - DAY_MIN)], events)
    assert (parent["parent_care_history"], partner["parent_care_history"]) == (1, 0)
    assert gone["parent_care_history"] == 0


@pytest.mark.parametrize(
    ("records", "on_plan"),
    [
        ([("cp_plan_start", 100)], 1),
        ([("cp_plan_start", 100), ("cp_plan_end", 50)], 0),
        ([("cp_plan_start", 100), ("cp_plan_end", 100)], 0),  # ended at the instant it began
        ([("cp_plan_start", 100), ("cp_plan_end", -1)], 1),  # ended after the referral
        ([("cp_plan_end", 150), ("cp_plan_start", 100)], 1),  # an earlier end ends nothing later
        ([("looked_after_start", 100)], 1),
    ],
)
def test_a_sibling_on_a_plan_or_looked_after_now(records, on_plan):
    events = [
        (f"E-{i}", "C-2", "H-1", None, T - days * DAY_MIN, kind)
        for i, (kind, days) in enumerate(records)
    ]
    sibling = ("MC-2", "C-2", "H-1", "child", datetime(2019, 1, 1, tzinfo=UTC), None)
    row, _ = _case([sibling], events)
    assert row["sibling_on_plan_or_looked_after"] == on_plan
    # The referred child's own plan is not a sibling's.
    own = [(e, "C-1", h, p, t, k) for e, _, h, p, t, k in events]
    row, _ = _case([sibling], own)
    assert row["sibling_on_plan_or_looked_after"] == 0


def test_household_changes_count_joins_and_leaves_not_births():
    row, values = _case(
        [
            ("MC-2", "C-2", "H-1", "child", datetime(2019, 1, 1, tzinfo=UTC), None),  # a birth
            ("M1", "P-1", "H-1", "parent_partner", T - 100 * DAY_MIN, T - 20 * DAY_MIN),
            ("M2", "P-2", "H-1", "parent", T - 400 * DAY_MIN, T - 300 * DAY_MIN),
            ("M3", "P-3", "H-2", "parent", T - 100 * DAY_MIN, None),  # another household
        ],
        persons=[("C-1", DOB), ("C-2", date(2019, 1, 1)), ("P-1", None), ("P-2", None)],
    )
    # M1 joined and left, M2 left (joined too long ago), the newborn C-1 is not a change.
    assert row["household_changes_365d"] == 3
    assert sorted(values["household_changes_365d"].record_ids) == ["M1", "M1", "M2"]


def test_a_child_who_moves_brings_the_earlier_households_history():
    moved = T - 200 * DAY_MIN
    stays = [("MC-0", "C-1", "H-0", "child", datetime(2022, 6, 1, tzinfo=UTC), moved)]
    incidents = [
        ("E-1", None, "H-0", None, moved - 50 * DAY_MIN, "domestic_abuse_incident"),  # while there
        ("E-2", None, "H-0", None, moved + 10 * DAY_MIN, "domestic_abuse_incident"),  # after
        ("E-3", None, "H-1", None, T - 5 * DAY_MIN, "domestic_abuse_incident"),  # here
    ]
    frames = _frames(
        [("C-1", "H-1", DOB)],
        [("R-1", "C-1", "H-1", T)],
        incidents,
        [("MC-1", "C-1", "H-1", "child", moved, None), *stays],
        [("C-1", DOB)],
    )
    batch, pointwise = _both(frames)
    assert batch.at["R-1", "police_da_incidents_household_365d"] == 2
    assert pointwise["R-1"]["police_da_incidents_household_365d"].record_ids == ("E-1", "E-3")
    # The move itself: joining H-1 and leaving H-0 (the same instant, two changes).
    assert batch.at["R-1", "household_changes_365d"] == 2
    # Before the move, the child's referral at H-0 reads H-0's own history only.
    before = replace_referral(frames, moved - DAY_MIN, "H-0")
    batch, _ = _both(before)
    assert batch.at["R-1", "police_da_incidents_household_365d"] == 1


@pytest.mark.parametrize(("recorded", "lives"), [(None, 1), (T - 1, 1), (T, 0), (T + DAY_MIN, 0)])
def test_an_adults_record_counts_once_recorded_before_the_referral(recorded, lives):
    row, _ = _case(
        [("MA", "P-1", "H-1", "parent_partner", T - 100 * DAY_MIN, None)],
        [("E-1", None, "H-9", "P-1", T - 10 * DAY_MIN, "adult_violence_offence")],
        recorded={} if recorded is None else {"E-1": recorded},
    )
    assert row["risk_adult_in_household"] == lives


@pytest.mark.parametrize(
    ("start_recorded", "end_recorded", "on_plan"),
    [
        (None, None, 0),  # ended before the referral
        (None, T, 1),  # the end not yet shared: still on the plan as far as anyone knows
        (None, T - 1, 0),
        (T, T + DAY_MIN, 0),  # the plan itself not yet shared
        (T - 1, T, 1),
    ],
)
def test_a_plan_starts_and_ends_when_recorded(start_recorded, end_recorded, on_plan):
    events = [
        ("E-0", "C-2", "H-1", None, T - 100 * DAY_MIN, "cp_plan_start"),
        ("E-1", "C-2", "H-1", None, T - 50 * DAY_MIN, "cp_plan_end"),
    ]
    recorded = {"E-0": start_recorded, "E-1": end_recorded}
    sibling = ("MC-2", "C-2", "H-1", "child", datetime(2019, 1, 1, tzinfo=UTC), None)
    row, _ = _case([sibling], events, recorded={k: v for k, v in recorded.items() if v is not None})
    assert row["sibling_on_plan_or_looked_after"] == on_plan


def test_an_earlier_households_records_count_once_recorded():
    moved = T - 30 * DAY_MIN
    stays = [("MC-0", "C-1", "H-0", "child", datetime(2022, 6, 1, tzinfo=UTC), moved)]
    incidents = [
        ("E-1", None, "H-0", None, moved - 20 * DAY_MIN, "domestic_abuse_incident"),  # there
        ("E-2", None, "H-0", None, moved - 10 * DAY_MIN, "absence_concern"),  # there
        ("E-3", None, "H-1", None, T - 5 * DAY_MIN, "domestic_abuse_incident"),  # here
    ]
    frames = _frames(
        [("C-1", "H-1", DOB)],
        [("R-1", "C-1", "H-1", T), ("R-0", "C-1", "H-1", T - DAY_MIN)],
        incidents,
        [("MC-1", "C-1", "H-1", "child", moved, None), *stays],
        [("C-1", DOB)],
    )
    on_time, _ = _both(frames)
    assert on_time.at["R-1", "police_da_incidents_household_365d"] == 2
    assert on_time.at["R-1", "distinct_agencies_90d"] == 2  # police and school
    # E-1 shared between the two referrals, E-2 after both, E-3 at R-1's instant.
    late = _recorded(frames, {"E-1": T - DAY_MIN / 2, "E-2": T + DAY_MIN, "E-3": T})
    batch, pointwise = _both(late)
    assert batch.at["R-1", "police_da_incidents_household_365d"] == 1
    assert pointwise["R-1"]["police_da_incidents_household_365d"].record_ids == ("E-1",)
    assert batch.at["R-0", "police_da_incidents_household_365d"] == 0
    assert batch.at["R-1", "distinct_agencies_90d"] == 1
    assert batch.at["R-0", "distinct_agencies_90d"] == 0


def replace_referral(frames, minutes: int, household: str):
    """The frames with R-1 received at ``minutes`` in ``household``."""
    children, referrals, *rest = frames
    referrals = referrals.assign(
        received_at=pd.to_datetime([BASE + timedelta(minutes=minutes)], utc=True),
        household_id=household,
    )
    return (children, referrals, *rest)


def test_every_people_signal_reads_aloud_and_names_its_window():
    for signal in PEOPLE_SIGNALS:
        assert SIGNALS[signal.name].direction is not None
        assert signal.sentence(0.0) != signal.sentence(1.0)
        words = signal.sentence(1.0).lower()
        assert "in the last" in words or "at the referral" in words or "before" in words


def test_an_extract_without_people_derives_them(world):
    plain = replace(world, persons=None, household_memberships=None)
    derived = build_features(plain.children, plain.referrals, plain.events, plain.decisions)
    assert (derived["adult_joined_household_365d"] == 0).all()
    assert (derived["household_changes_365d"] == 0).all()
