"""Feature-test helpers: a world with people in it, and the history one referral reads."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import replace

import numpy as np
import pandas as pd

from features.pointwise import evaluate
from features.records import (
    DecisionRecord,
    EventRecord,
    History,
    ReferralRecord,
    birth_days,
    history_from_frames,
    memberships_from_children,
    referral_records,
)
from triage.synth import World
from triage.vocab import ADULT_RISK_KINDS, ADULT_ROLES, EVENT_AGENCY, PARENT_HISTORY_KINDS

DAY = pd.Timedelta(days=1)


def same(a: float, b: float) -> bool:
    """Equal, treating NaN as equal to NaN."""
    return (math.isnan(a) and math.isnan(b)) or a == b


def with_delays(events: pd.DataFrame, minutes: list[int | None]) -> pd.DataFrame:
    """The events with ``recorded_at`` that many minutes after ``occurred_at`` (None: null,
    read as ``occurred_at``)."""
    delay = pd.to_timedelta([np.nan if m is None else m for m in minutes], unit="min")
    recorded = events["occurred_at"] + pd.Series(delay, index=events.index)
    return events.assign(recorded_at=pd.to_datetime(recorded, utc=True))


def delayed_world(world: World, seed: int = 0) -> World:
    """The world with agency-style sharing delays on its events (until the synthetic world
    has its own): most events shared within days, some after weeks, a few a year later."""
    if (
        "recorded_at" in world.events
        and (
            world.events["recorded_at"].fillna(world.events["occurred_at"])
            > world.events["occurred_at"]
        ).any()
    ):
        return world  # the world has its own delays now
    rng = np.random.default_rng(seed)
    n = len(world.events)
    days = np.where(rng.random(n) < 0.05, rng.uniform(30, 400, n), rng.exponential(7.0, n))
    days[rng.random(n) < 0.2] = 0.0
    minutes: list[int | None] = [int(d * 24 * 60) for d in days]
    events = with_delays(world.events, minutes)
    return replace(world, events=events)


def full_history(world: World) -> History:
    """Every record of a world, memberships included (derived from children when absent)."""
    memberships = world.household_memberships
    if memberships is None:
        memberships = memberships_from_children(world.children)
    return history_from_frames(
        world.referrals,
        world.events,
        world.decisions,
        memberships,
        birth_days(world.children, world.persons),
    )


class Relevant:
    """A world's history indexed so that one referral's records (as the online builder reads
    them: the child's, the household's, the child's other households', the members') are quick
    to pick out."""

    def __init__(self, history: History) -> None:
        self.history = history
        self.by_child: dict[str | None, list] = defaultdict(list)
        self.by_household: dict[str | None, list] = defaultdict(list)
        self.by_subject: dict[str | None, list] = defaultdict(list)
        for r in history.referrals:
            self.by_child[r.child_id].append(r)
            self.by_household[r.household_id].append(r)
        for e in history.events:
            self.by_child[e.child_id].append(e)
            self.by_household[e.household_id].append(e)
        for p in history.person_records:
            self.by_subject[p.person_id].append(p)
        for d in history.decisions:
            self.by_child[d.child_id].append(d)
        self.members_of: dict[str, list] = defaultdict(list)
        self.stays_of: dict[str, list] = defaultdict(list)
        for m in history.memberships:
            self.members_of[m.household_id].append(m)
            self.stays_of[m.person_id].append(m)

    def of(self, query: ReferralRecord) -> History:
        """The records that can count for this referral (a superset is harmless)."""
        memberships = {
            m.membership_id: m
            for m in [*self.members_of[query.household_id], *self.stays_of[query.child_id]]
        }
        households = {query.household_id} | {m.household_id for m in memberships.values()}
        people = {m.person_id for m in memberships.values()}
        records = {id(r): r for r in self.by_child[query.child_id]}
        for household in households:
            records |= {id(r): r for r in self.by_household[household]}
        chosen = list(records.values())
        return History(
            referrals=[r for r in chosen if isinstance(r, ReferralRecord)],
            events=[r for r in chosen if isinstance(r, EventRecord)],
            decisions=[r for r in chosen if isinstance(r, DecisionRecord)],
            memberships=list(memberships.values()),
            person_records=[p for person in people for p in self.by_subject[person]],
        )


def assert_batch_equals_pointwise(batch: pd.DataFrame, world: World, referrals=None) -> None:
    """Every signal of the given referals (default all): batch equals the pointwise rules."""
    relevant = Relevant(full_history(world))
    dob = world.children.set_index("child_id")["date_of_birth"]
    for query in referral_records(world.referrals if referrals is None else referrals):
        values = evaluate(query, dob[query.child_id], relevant.of(query))
        for name, sv in values.items():
            assert same(batch.at[query.referral_id, name], sv.value), (query.referral_id, name)


def with_people(world: World, seed: int = 0) -> World:
    """The world with adults, memberships, moves and adults' records added (until the
    synthetic world has its own): a parent in each household since before the window, a
    partner joining a third of them (some leaving again), a fifth of the children moving
    from another household, and violence, probation and care-proceedings records."""
    if world.persons is not None and not world.persons["is_child"].all():
        return world  # the world has its own people now
    rng = np.random.default_rng(seed)
    children, referrals, events = world.children, world.referrals.copy(), world.events.copy()
    start = referrals["received_at"].min()
    end = referrals["received_at"].max()
    span_days = max((end - start) / DAY, 1.0)
    households = children["household_id"].drop_duplicates().tolist()
    persons = [
        {
            "person_id": c.child_id,
            "is_child": True,
            "given_name": c.given_name,
            "family_name": c.family_name,
            "date_of_birth": c.date_of_birth,
            "sex": c.sex,
            "synthetic": True,
        }
        for c in children.itertuples(index=False)
    ]
    memberships = memberships_from_children(children).assign(synthetic=True)
    rows, adult_events = [], []
    adults = 0

    def when(low: float, high: float) -> pd.Timestamp:
        return start + rng.uniform(low, high) * span_days * DAY

    def adult(household: str, role: str, joined: pd.Timestamp, left) -> str:
        nonlocal adults
        person = f"P-{adults:05d}"
        adults += 1
        persons.append(
            {
                "person_id": person,
                "is_child": False,
                "given_name": "Adult",
                "family_name": "Person",
                "date_of_birth": None if rng.random() < 0.3 else pd.Timestamp("1990-01-01").date(),
                "sex": "unknown",
                "synthetic": True,
            }
        )
        rows.append((f"M-{person}", person, household, role, joined, left))
        for kind in (*sorted(ADULT_RISK_KINDS), *sorted(PARENT_HISTORY_KINDS)):
            if rng.random() < 0.12:
                adult_events.append((person, household, kind, when(-1.0, 1.0)))
        return person

    for household in households:
        adult(household, "parent", start - 400 * DAY, None)
        if rng.random() < 0.35:
            joined = when(-0.3, 1.0)
            left = joined + rng.uniform(10, 300) * DAY if rng.random() < 0.3 else None
            role = str(rng.choice([r.value for r in ADULT_ROLES if r.value != "parent"]))
            partner = adult(household, role, joined, left)
            if rng.random() < 0.3:  # the partner's earlier address, no child there
                rows.append(
                    (f"M-{partner}-before", partner, f"H-X{partner}", "unrelated_adult",
                     joined - 700 * DAY, joined)
                )  # fmt: skip
    # Moves: the child lived in another household from birth until the move.
    movers = children.sample(frac=0.2, random_state=seed)
    for c in movers.itertuples(index=False):
        moved = max(when(-0.2, 0.8), pd.Timestamp(c.date_of_birth, tz="UTC") + DAY)
        before = str(rng.choice([h for h in households if h != c.household_id] or households))
        born = pd.Timestamp(c.date_of_birth, tz="UTC")
        own = memberships["person_id"] == c.child_id
        memberships.loc[own, "joined_at"] = moved
        rows.append((f"M-{c.child_id}-before", c.child_id, before, "child", born, moved))
        earlier = (referrals["child_id"] == c.child_id) & (referrals["received_at"] < moved)
        referrals.loc[earlier, "household_id"] = before
        earlier = (events["child_id"] == c.child_id) & (events["occurred_at"] < moved)
        events.loc[earlier, "household_id"] = before
    added = pd.DataFrame(
        rows, columns=["membership_id", "person_id", "household_id", "role", "joined_at", "left_at"]
    ).assign(synthetic=True)
    added["joined_at"] = pd.to_datetime(added["joined_at"], utc=True)
    added["left_at"] = pd.to_datetime(added["left_at"], utc=True)
    memberships = pd.concat([memberships, added], ignore_index=True)
    person_events = pd.DataFrame(
        {
            "event_id": [f"EP-{i:05d}" for i in range(len(adult_events))],
            "source_system": "test",
            "source_event_id": [f"EP-{i:05d}" for i in range(len(adult_events))],
            "child_id": None,
            "household_id": [h for _, h, _, _ in adult_events],
            "person_id": [p for p, _, _, _ in adult_events],
            "occurred_at": pd.to_datetime([t for _, _, _, t in adult_events], utc=True),
            "agency": [EVENT_AGENCY[k].value for _, _, k, _ in adult_events],
            "kind": [k for _, _, k, _ in adult_events],
            "attributes": "{}",
            "synthetic": True,
        }
    )
    events = pd.concat([events.assign(person_id=None), person_events], ignore_index=True)
    events = events.sort_values("occurred_at", kind="stable", ignore_index=True)
    persons_frame = pd.DataFrame(persons)
    return replace(
        world,
        referrals=referrals,
        events=events,
        persons=persons_frame,
        household_memberships=memberships,
    )
