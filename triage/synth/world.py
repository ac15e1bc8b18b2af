"""Build a whole synthetic world and lay it out in the extract format."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from triage.synth.adult_records import draw_person_events
from triage.synth.agency import draw_agency_events
from triage.synth.calibration_targets import source_share_targets
from triage.synth.composition import PARENT, PARTNER, STEP, Composition, child_segments
from triage.synth.harm import HORIZON_DAYS, draw_episodes
from triage.synth.identity import identity_tables
from triage.synth.layout import World, add_events, assemble
from triage.synth.moves import Residence
from triage.synth.params import WorldParams
from triage.synth.people import People, build_people
from triage.synth.people_layout import adults_in_scope
from triage.synth.population import YEAR, Population, build_population
from triage.synth.referrals import draw_referrals
from triage.synth.services import respond

Progress = Callable[[str], None]


def window_start(params: WorldParams) -> date:
    """First day of the world's window."""
    return params.end - timedelta(days=round(params.years * YEAR))


def _family_types(
    pop: Population, people: People, composition: Composition, day: float
) -> dict[str, int]:
    """Families with a child living there on ``day``, by type (ONS definitions)."""
    r = people.residence
    born = pop.child_dob[r.child]
    here = r.primary & (r.start <= day) & (r.end > day) & (born <= day)
    here &= day < born + 18 * YEAR
    present = np.zeros(pop.hh_deprivation.size, dtype=bool)
    present[r.household[here]] = True
    households = np.flatnonzero(present)
    counts = composition.counts_at(households, np.full(households.size, day))
    adults = counts[:, PARENT] + counts[:, STEP] + counts[:, PARTNER]
    couple = adults >= 2
    lone = adults == 1
    # A couple family with at least one stepchild: a step-parent or a parent's partner.
    step = couple & (counts[:, STEP] + counts[:, PARTNER] > 0)
    return {
        "families": int((couple | lone).sum()),
        "lone_parent": int(lone.sum()),
        "couple": int(couple.sum()),
        "step": int(step.sum()),
    }


def _march_days(pop: Population, start: date) -> list[tuple[str, float]]:
    """Each 31 March in the window after its first year (no history before), as days."""
    days = []
    for year in range(start.year, start.year + 60):
        day = (date(year, 3, 31) - start).days
        if day >= pop.window_days:
            break
        if day >= YEAR:
            days.append((date(year, 3, 31).isoformat(), float(day)))
    return days


def _population_denominators(pop: Population, start: date) -> dict[str, Any]:
    """Implicit population figures the calibration report divides by."""
    window = pop.window_days
    by_age = [float(pop.band_exposure(a, a + 1, window).sum() / YEAR) for a in range(18)]
    march = []
    for iso, day in _march_days(pop, start):
        alive = (pop.child_dob <= day) & (pop.child_dob + 18 * YEAR > day)
        march.append({"date": iso, "children": int(alive.sum())})
    return {
        "child_years": float(sum(by_age)),
        "child_years_by_age": by_age,
        "children_at_31_march": march,
    }


def _kept(residence: Residence, referral_households: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Households with a referral, every child who ever lived in one, and all their homes."""
    households = np.zeros(int(residence.household.max()) + 1, dtype=bool)
    households[referral_households] = True
    children = np.zeros(int(residence.child.max()) + 1, dtype=bool)
    while True:
        children[residence.child[households[residence.household]]] = True
        grown = households.copy()
        grown[residence.household[children[residence.child]]] = True
        if grown.sum() == households.sum():
            return np.flatnonzero(households), np.flatnonzero(children)
        households = grown


def generate_world(params: WorldParams | None = None, progress: Progress | None = None) -> World:
    """Generate a synthetic world; the same parameters and seed give identical output."""
    params = params or WorldParams()
    note = progress or (lambda _step: None)
    rng = np.random.default_rng(params.seed)
    start = window_start(params)

    note("population")
    pop = build_population(params, rng)
    window = pop.window_days
    note("people in the household")
    pop, people, composition = build_people(pop, params, rng)
    families = [
        {"date": iso, **_family_types(pop, people, composition, day)}
        for iso, day in _march_days(pop, start)
    ]
    note("maltreatment episodes")
    until = window + HORIZON_DAYS
    own_parent = people.own_parent_terms()
    segments = child_segments(people.residence, composition, *own_parent, t0=0.0, t1=until)
    del composition  # the rest of the world needs who lives where, not the counts
    episodes = draw_episodes(pop, segments, params, rng)
    del segments
    note("referrals")
    refs = draw_referrals(pop, people.residence, episodes, params, source_share_targets(), rng)
    note("front-door decisions and outcomes")
    services = respond(pop, episodes, refs, params, rng)

    note("agency events")
    kept_households, kept_children = _kept(people.residence, refs.household)
    agency = draw_agency_events(
        pop,
        people.residence,
        episodes,
        refs,
        kept_children,
        kept_households,
        people.hh_start,
        params,
        rng,
    )
    hh_pos = np.full(pop.hh_deprivation.size, -1, dtype=np.int64)
    hh_pos[kept_households] = np.arange(kept_households.size)
    adults = adults_in_scope(people, hh_pos, window)
    person_events = draw_person_events(
        pop, people, adults, kept_households, rng, params.surveillance_bias
    )
    note("records")
    world, ids = assemble(
        pop, people, refs, services, kept_children, kept_households, start, params, rng,
        person_events,
    )  # fmt: skip
    inside = services.event_t < window
    services_household = people.residence.at(services.event_child[inside], services.event_t[inside])
    harm_by_family = episodes.by_family
    del people, episodes, refs  # ten million events next: keep only what they need
    add_events(
        world, services, services_household, agency, person_events, ids, start, window, params.seed
    )
    note("identity records")
    add_identities(world, start, params)
    world.manifest["population"] = {
        **_population_denominators(pop, start),
        "families_at_31_march": families,
        "harm_by_family_type": harm_by_family,
    }
    return world


def add_identities(world: World, start: date, params: WorldParams) -> None:
    """Each agency's identity records of the people it knows, and what each filing names."""
    records, truth, by_referral, by_event = identity_tables(
        world.referrals,
        world.events,
        world.persons if world.persons is not None else pd.DataFrame(),
        world.household_memberships if world.household_memberships is not None else pd.DataFrame(),
        len(world.children),
        (start, params.end),
        params.seed,
    )
    world.referrals["subject_record_id"] = by_referral.to_pandas()
    world.events["subject_record_id"] = by_event.to_pandas()
    world.identity_records, world.identity_truth = records, truth
    world.manifest["rows"] = {
        t: len(getattr(world, t))
        for t in (*World.TABLES, *World.PEOPLE_TABLES, *World.IDENTITY_TABLES)
    }
