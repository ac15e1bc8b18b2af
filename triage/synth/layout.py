"""Lay the world's arrays out as extract tables, with stable, readable identifiers.

String columns are built as Arrow arrays from integer codes (``take`` on a small vocabulary),
so a million referrals and ten million events cost seconds, not minutes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from triage.synth.adult_records import PersonEvents
from triage.synth.agency import EVENT_KINDS
from triage.synth.arrow import frame, join, labels, prefixed, timestamps
from triage.synth.channels import HEALTH_ROLES, INDIVIDUAL_ROLES, SITES, SOURCES, Channel
from triage.synth.harm import EPISODE_TYPES, HORIZON_DAYS
from triage.synth.identity import sharing_delays
from triage.synth.params import WORLD_VERSION, WorldParams
from triage.synth.people import ROLES, People
from triage.synth.people_layout import (
    memberships_table,
    person_ids,
    persons_table,
    recorded_adult_rows,
)
from triage.synth.population import ETHNICITIES, Population
from triage.synth.records import distinct_twin_names, draw_names, narratives
from triage.synth.referrals import CONCERNS, Referrals, _categorical
from triage.synth.services import DECISIONS, LEVELS, Services, any_between
from triage.vocab import EVENT_AGENCY, LIST_SEPARATOR, EventKind, OutcomeLevel, ReferrerType, Sex

SOURCE_SYSTEMS: dict[ReferrerType, str] = {
    ReferrerType.police: "police-mash-feed",
    ReferrerType.school: "education-portal",
    ReferrerType.education_services: "education-portal",
    ReferrerType.health: "health-referral-hub",
    ReferrerType.la_services: "council-case-system",
}
DEFAULT_SOURCE_SYSTEM = "front-door-contact-centre"
EVENT_SOURCE_SYSTEMS = {
    "police": "police-records",
    "health": "health-records",
    "school": "school-safeguarding",
    "housing": "housing-records",
    "social_care": "social-care-records",
}
RELATIONSHIPS: tuple[str, ...] = tuple(r.value for r in HEALTH_ROLES + INDIVIDUAL_ROLES)
NO_RELATIONSHIP = -1


@dataclass
class World:
    """A synthetic extract: the tables of DESIGN.md, the separate truth, and the manifest."""

    children: pd.DataFrame
    referrals: pd.DataFrame
    events: pd.DataFrame
    decisions: pd.DataFrame
    outcomes: pd.DataFrame
    truth: pd.DataFrame
    manifest: dict[str, Any]
    persons: pd.DataFrame | None = None
    """Every child and adult (vocabulary 2); None in an extract written before it."""
    household_memberships: pd.DataFrame | None = None
    """Who lived in which household, in which role, when; None as ``persons``."""
    identity_records: pd.DataFrame | None = None
    """Each agency's record of each person it knows, as typed (issue 21); None before it."""
    identity_truth: pd.DataFrame | None = None
    """The true person of each identity record: like ``truth``, never loaded."""

    TABLES = ("children", "referrals", "events", "decisions", "outcomes", "truth")
    PEOPLE_TABLES = ("persons", "household_memberships")
    """Optional tables: written when the world has them."""
    IDENTITY_TABLES = ("identity_records", "identity_truth")
    """Optional tables: written when the world has them."""


def join_flags(matrix: np.ndarray, names: tuple[str, ...]) -> pa.Array:
    """Each row's true columns as a ``LIST_SEPARATOR``-joined string, via distinct bit patterns."""
    weights = 1 << np.arange(matrix.shape[1], dtype=np.int64)
    code = matrix.astype(np.int64) @ weights
    uniq, inverse = np.unique(code, return_inverse=True)
    joined = [
        LIST_SEPARATOR.join(n for i, n in enumerate(names) if u >> i & 1) for u in uniq.tolist()
    ]
    return labels(joined, inverse)


def relationship_codes(pop: Population, refs: Referrals, rng: np.random.Generator) -> np.ndarray:
    """Referrer relationship per referral as an index into ``RELATIONSHIPS``, or -1."""
    n = refs.child.size
    age = pop.age_years(refs.child, refs.t)
    out = np.full(n, NO_RELATIONSHIP, dtype=np.int64)
    health = refs.source == SOURCES.index(ReferrerType.health)
    weights = np.column_stack(
        [
            np.full(n, 0.35),
            0.25 * (age < 5),
            np.where(refs.channel == Channel.accidental_injury, 2.0, 0.3),
            0.3 * (age < 1),
            np.where(refs.channel == Channel.child_mental_health, 1.5, 0.1) * (age >= 5),
        ]
    )
    out[health] = _categorical(weights[health], rng)
    individual = refs.source == SOURCES.index(ReferrerType.individual)
    # parent, relative, family friend, neighbour, self: family who saw harm at home are
    # relatives and friends; a side of a custody dispute is mostly the other parent; a
    # persistent caller is mostly a neighbour.
    ordinary = ~(refs.by_family | refs.disputed | refs.persistent)
    weights = np.column_stack(
        [
            np.select([refs.disputed, ordinary], [3.0, 0.25], 0.0),
            np.select([refs.by_family, refs.disputed, refs.persistent], [0.65, 1.0, 0.25], 0.40),
            np.select([refs.by_family, refs.persistent], [0.35, 0.15], 0.12 * ordinary),
            np.where(refs.persistent, 0.6, 0.15 * ordinary),
            0.08 * (age >= 12) * ordinary,
        ]
    )
    out[individual] = len(HEALTH_ROLES) + _categorical(weights[individual], rng)
    return out


POOLED_REFERRERS: dict[str, tuple[str, int | None, int | None]] = {
    # source or role: (prefix, pool size (None: scales with volume), households per unit)
    "police": ("PC-", None, None),
    "school": ("SCH-", None, 150),
    "education_services": ("EWS-", 8, None),
    "housing": ("HSG-", 10, None),
    "la_services": ("LA-", None, None),
    "other_legal": ("YJS-", 15, None),
    "other": ("VOL-", 25, None),
    "gp": ("GP-", None, 400),
    "health_visitor": ("HV-", None, 400),
    "hospital": ("HOSP-", 4, None),
    "midwife": ("MW-", 4, None),
    "camhs": ("CAMHS-", 1, None),
}
PERSON_LETTERS = {"parent": "P", "relative": "R", "family_friend": "F", "neighbour": "N"}


def referrer_ids(
    refs: Referrals,
    relationship: np.ndarray,
    hh_index: np.ndarray,
    hh_ids: pa.Array,
    child_ids: pa.Array,
    rng: np.random.Generator,
) -> pa.Array:
    """Stable referrer identities: schools and GPs by household, relatives, officers."""
    n = refs.child.size
    source = np.array([s.value for s in SOURCES])[refs.source]
    role = np.array([*RELATIONSHIPS, ""])[relationship]  # -1 picks ""
    key = np.where(role != "", role, source)
    prefixes: list[str] = [""]
    prefix_code = np.zeros(n, dtype=np.int64)
    number = np.zeros(n, dtype=np.int64)
    for name, (prefix, pool, per_unit) in POOLED_REFERRERS.items():
        rows = key == name
        prefixes.append(prefix)
        prefix_code[rows] = len(prefixes) - 1
        if per_unit:
            number[rows] = hh_index[rows] // per_unit
        else:
            number[rows] = rng.integers(0, pool or max(20, n // 200), rows.sum())
    pooled = join(labels(prefixes, prefix_code), prefixed("", number, 4))

    which = rng.integers(1, 4, n)
    which[refs.disputed | refs.persistent] = 1  # the same person, again
    letter_code = np.select(
        [role == r for r in PERSON_LETTERS], list(range(len(PERSON_LETTERS))), -1
    )
    person_suffix = labels(list(PERSON_LETTERS.values()), letter_code)
    suffix = join(person_suffix, pa.array(which).cast(pa.large_string()))
    person = join("IND-", hh_ids, "-", suffix)
    is_person = pa.array(np.isin(role, list(PERSON_LETTERS)))
    is_self = pa.array(role == "self")
    is_pooled = pa.array(prefix_code > 0)
    out = pc.if_else(is_pooled, pooled, pa.nulls(n, pa.large_string()))
    out = pc.if_else(is_person, person, out)
    return pc.if_else(is_self, join("SELF-", child_ids), out)


def assemble(
    pop: Population,
    people: People,
    refs: Referrals,
    services: Services,
    kept_children: np.ndarray,
    kept_households: np.ndarray,
    start: date,
    params: WorldParams,
    rng: np.random.Generator,
    person_events: PersonEvents,
) -> tuple[World, EventIds]:
    """The extract tables but the events (``add_events``), the truth and the manifest.

    Also returns what the events need, so the caller can drop the people first.
    """
    window = pop.window_days
    child_pos = np.full(pop.child_household.size, -1, dtype=np.int64)
    child_pos[kept_children] = np.arange(kept_children.size)
    hh_pos = np.full(pop.hh_deprivation.size, -1, dtype=np.int64)
    hh_pos[kept_households] = np.arange(kept_households.size)
    width = max(6, len(str(kept_children.size)))
    child_ids = prefixed("C-", np.arange(kept_children.size), width)
    hh_ids = prefixed("H-", np.arange(kept_households.size), width)

    born_in = pop.child_household[kept_children]
    c_hh = people.residence.at(kept_children, np.full(kept_children.size, window))
    male = pop.child_sex[kept_children] == 1
    given, family = draw_names(pop.child_ethnicity[kept_children], male, born_in, params.seed, rng)
    given = distinct_twin_names(given, born_in, pop.child_dob[kept_children], male, params.seed)
    sex_code = pop.child_sex[kept_children].astype(np.int64)
    sex_code[rng.random(sex_code.size) < 0.003] = tuple(Sex).index(Sex.unknown)
    dob_days = np.floor(pop.child_dob[kept_children]).astype("timedelta64[D]")
    children = frame(
        {
            "child_id": child_ids,
            "household_id": hh_ids.take(pa.array(hh_pos[c_hh])),
            "given_name": pa.array(given, type=pa.large_string()),
            "family_name": pa.array(family, type=pa.large_string()),
            "date_of_birth": pa.array(np.datetime64(start.isoformat(), "D") + dob_days),
            "sex": labels([s.value for s in Sex], sex_code),
            "ethnicity": labels([e.value for e in ETHNICITIES], pop.child_ethnicity[kept_children]),
            "disability": pop.child_disability[kept_children],
            "deprivation_decile": pop.hh_deprivation[c_hh].astype(np.int64),
            "synthetic": np.ones(kept_children.size, dtype=bool),
        }
    )

    n = refs.child.size
    r_child_index = child_pos[refs.child]
    r_hh_index = hh_pos[refs.household]
    r_child_ids = child_ids.take(pa.array(r_child_index))
    r_hh_ids = hh_ids.take(pa.array(r_hh_index))
    referral_ids = prefixed("REF-", np.arange(n), 7)
    systems = [SOURCE_SYSTEMS.get(s, DEFAULT_SOURCE_SYSTEM) for s in SOURCES]
    relationship = relationship_codes(pop, refs, rng)
    who_keys = np.where(
        relationship >= 0,
        np.array([*RELATIONSHIPS, ""])[relationship],
        np.array([s.value for s in SOURCES])[refs.source],
    )
    referrals = frame(
        {
            "referral_id": referral_ids,
            "source_system": labels(systems, refs.source),
            "source_referral_id": prefixed("SRC-", np.arange(n), 8),
            "child_id": r_child_ids,
            "household_id": r_hh_ids,
            "received_at": timestamps(start, refs.t),
            "referrer_type": labels([s.value for s in SOURCES], refs.source),
            "referrer_relationship": labels(RELATIONSHIPS, relationship),
            "referrer_id": referrer_ids(refs, relationship, r_hh_index, r_hh_ids, r_child_ids, rng),
            "concerns": join_flags(refs.concerns, tuple(c.value for c in CONCERNS)),
            "injury_reported": refs.injury_reported,
            "injury_sites": join_flags(refs.injury_sites, tuple(s.value for s in SITES)),
            "injury_photographed": refs.photographed,
            "narrative": pa.array(
                narratives(refs.concerns, who_keys, given[r_child_index], rng),
                type=pa.large_string(),
            ),
            "synthetic": np.ones(n, dtype=bool),
        }
    )

    decided = services.decided
    decisions = frame(
        {
            "referral_id": referral_ids.filter(pa.array(decided)),
            "decided_at": timestamps(start, services.decided_at[decided]),
            "decision": labels([d.value for d in DECISIONS], services.decision[decided]),
            "synthetic": np.ones(int(decided.sum()), dtype=bool),
        }
    )
    adult_rows = recorded_adult_rows(people, hh_pos, window)
    known = np.zeros(people.adults.sex.size, dtype=bool)
    known[people.memberships.person[adult_rows]] = True
    known[person_events.person] = True
    adults = np.flatnonzero(known)
    ids = person_ids(people, adults)
    persons = persons_table(pop, people, adults, ids, children, born_in, start, params.seed, rng)
    memberships = memberships_table(
        pop, people, adult_rows, ids, child_pos, child_ids, hh_pos, hh_ids, start
    )
    custody_dispute = pop.hh_custody_dispute[refs.household]
    outcomes, truth = _labels(refs, services, referral_ids, decided, window, custody_dispute)
    manifest = {
        "synthetic": True,
        "world_version": WORLD_VERSION,
        "generated_by": "triage.synth",
        "params": params.to_dict(),
        "window": {"start": start.isoformat(), "end": params.end.isoformat()},
        "created": datetime.combine(params.end, datetime.min.time(), UTC).isoformat(),
        "rows": {},
    }
    world = World(
        children, referrals, pd.DataFrame(), decisions, outcomes, truth, manifest, persons,
        memberships,
    )  # fmt: skip
    return world, EventIds(child_ids, hh_ids, ids.ids, child_pos, hh_pos, ids.position)


def add_events(
    world: World,
    services: Services,
    services_household: np.ndarray,
    agency: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    person_events: PersonEvents,
    ids: EventIds,
    start: date,
    window: float,
    seed: int,
) -> None:
    """Lay out the events (``services_household``: where each service event's child lived)."""
    pa.default_memory_pool().release_unused()  # what the other tables left free, first
    world.events = _events(
        services, services_household, agency, person_events, ids, start, window, seed
    )
    world.manifest["rows"] = {
        t: len(getattr(world, t)) for t in (*World.TABLES, *World.PEOPLE_TABLES)
    }


@dataclass
class EventIds:
    """Identifiers of the extract's children, households and adults, and where each sits."""

    child: pa.Array
    household: pa.Array
    person: pa.Array
    child_pos: np.ndarray
    hh_pos: np.ndarray
    person_pos: np.ndarray


def _nullable_take(ids: pa.Array, position: np.ndarray) -> pa.Array:
    """``ids[position]``, null where ``position`` is negative."""
    missing = position < 0
    if not missing.any():
        return ids.take(pa.array(position))
    return ids.take(pa.array(np.where(missing, 0, position), mask=missing))


def _events(
    services: Services,
    services_household: np.ndarray,
    agency: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    person_events: PersonEvents,
    ids: EventIds,
    start: date,
    window: float,
    seed: int,
) -> pd.DataFrame:
    """Agency, social-care and person events in time order, each in the household of its time.

    Ten million rows at the largest size: each column is built and its codes dropped in turn.
    """
    ev_child, ev_hh, ev_t, ev_kind = agency
    inside = services.event_t < window
    s_child, s_t = services.event_child[inside], services.event_t[inside]
    pe = person_events
    n_child_events = ev_child.size + s_child.size
    all_t = np.concatenate([ev_t, s_t, pe.t])
    order = np.argsort(all_t, kind="stable")
    all_t = all_t[order]

    def ordered(*parts: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.concatenate(parts)[order]
        return out

    # When each agency shared the event: what was not shared by the extract date is not in it.
    agency_names = sorted(EVENT_SOURCE_SYSTEMS)
    agency_of_kind = np.array([agency_names.index(EVENT_AGENCY[k].value) for k in EVENT_KINDS])
    kind = ordered(ev_kind, services.event_kind[inside], pe.kind).astype(np.int64)
    recorded = all_t + sharing_delays(agency_of_kind[kind], tuple(agency_names), seed)
    shared = recorded <= window
    if not shared.all():
        order, all_t, recorded, kind = order[shared], all_t[shared], recorded[shared], kind[shared]
    m = all_t.size

    def positions(entity: np.ndarray, position: np.ndarray) -> np.ndarray:
        found: np.ndarray = np.where(entity >= 0, position[np.maximum(entity, 0)], -1)
        return found

    # Attributes: 0 none, 1 an injury, 2 + k the role k of a membership change.
    attribute = ordered(
        np.zeros(n_child_events, dtype=np.int64), np.where(pe.role >= 0, 2 + pe.role, 0)
    )
    attribute[kind == EVENT_KINDS.index(EventKind.ed_injury_attendance)] = 1
    agency_code = agency_of_kind[kind]
    event_ids = prefixed("EVT-", np.arange(m), 8)
    attribute_texts = [
        "{}",
        json.dumps({"injury": True}),
        *(json.dumps({"role": r.value}) for r in ROLES),
    ]
    columns: dict[str, object] = {
        "event_id": event_ids,
        "source_system": labels([EVENT_SOURCE_SYSTEMS[a] for a in agency_names], agency_code),
        "source_event_id": event_ids,
        "child_id": _nullable_take(
            ids.child,
            positions(ordered(ev_child, s_child, np.full(pe.person.size, -1)), ids.child_pos),
        ),
        "household_id": _nullable_take(
            ids.household,
            positions(ordered(ev_hh, services_household, pe.household), ids.hh_pos),
        ),
        "person_id": _nullable_take(
            ids.person, positions(ordered(np.full(n_child_events, -1), pe.person), ids.person_pos)
        ),
        "occurred_at": timestamps(start, all_t),
        "recorded_at": timestamps(start, recorded),
        "agency": labels(agency_names, agency_code),
        "kind": labels([k.value for k in EVENT_KINDS], kind),
        "attributes": labels(attribute_texts, attribute),
        "synthetic": np.ones(m, dtype=bool),
    }
    del all_t, recorded, kind, attribute, agency_code, event_ids
    return frame(columns, release=True)


def _labels(
    refs: Referrals,
    services: Services,
    referral_ids: pa.Array,
    decided: np.ndarray,
    window: float,
    custody_dispute: np.ndarray,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Observed outcomes (only where the horizon has passed) and the separate latent truth."""
    kind = services.event_kind
    plan = kind == EVENT_KINDS.index(EventKind.cp_plan_start)
    s47 = kind == EVENT_KINDS.index(EventKind.s47_enquiry)
    horizon = refs.t + HORIZON_DAYS
    labelled = decided & (horizon <= window)
    # What the records show within 12 months, and only where someone looked.
    investigated = any_between(
        refs.child, refs.t, horizon, services.event_child[s47], services.event_t[s47]
    )
    harmed = any_between(
        refs.child, refs.t, horizon, services.event_child[plan], services.event_t[plan]
    )
    level = services.level.astype(np.int64)
    plan_level = LEVELS.index(OutcomeLevel.cp_plan)
    category = np.where(level == plan_level, services.plan_category, -1)
    outcomes = frame(
        {
            "referral_id": referral_ids.filter(pa.array(labelled)),
            "highest_level": labels([lv.value for lv in LEVELS], level[labelled]),
            "investigated_12m": investigated[labelled],
            "significant_harm_12m": harmed[labelled],
            "cp_category": labels([c.value for c in EPISODE_TYPES], category[labelled]),
            "synthetic": np.ones(int(labelled.sum()), dtype=bool),
        }
    )
    truth = frame(
        {
            "referral_id": referral_ids,
            "harm_12m": services.harm_12m,
            "harm_at_referral": services.harm_now,
            "channel": labels([c.name for c in Channel], refs.channel),
            "custody_dispute": custody_dispute,
            "synthetic": np.ones(refs.child.size, dtype=bool),
        }
    )
    return outcomes, truth
