"""Build a whole synthetic world and lay it out in the extract format."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import numpy as np

from triage.synth.agency import draw_agency_events
from triage.synth.calibration_targets import source_share_targets
from triage.synth.harm import draw_episodes
from triage.synth.layout import World, assemble
from triage.synth.params import WorldParams
from triage.synth.population import YEAR, Population, build_population
from triage.synth.referrals import draw_referrals
from triage.synth.services import respond

Progress = Callable[[str], None]


def window_start(params: WorldParams) -> date:
    """First day of the world's window."""
    return params.end - timedelta(days=round(params.years * YEAR))


def _population_denominators(pop: Population, start: date) -> dict[str, Any]:
    """Implicit population figures the calibration report divides by."""
    window = pop.window_days
    by_age = [float(pop.band_exposure(a, a + 1, window).sum() / YEAR) for a in range(18)]
    march = []
    for year in range(start.year, start.year + 60):
        day = (date(year, 3, 31) - start).days
        if day >= window:
            break
        if day >= YEAR:  # skip the first year: no history yet
            alive = (pop.child_dob <= day) & (pop.child_dob + 18 * YEAR > day)
            march.append({"date": date(year, 3, 31).isoformat(), "children": int(alive.sum())})
    return {
        "child_years": float(sum(by_age)),
        "child_years_by_age": by_age,
        "children_at_31_march": march,
    }


def generate_world(params: WorldParams | None = None, progress: Progress | None = None) -> World:
    """Generate a synthetic world; the same parameters and seed give identical output."""
    params = params or WorldParams()
    note = progress or (lambda _step: None)
    rng = np.random.default_rng(params.seed)
    start = window_start(params)

    note("population")
    pop = build_population(params, rng)
    note("maltreatment episodes")
    episodes = draw_episodes(pop, params, rng)
    note("referrals")
    refs = draw_referrals(pop, episodes, params, source_share_targets(), rng)
    note("front-door decisions and outcomes")
    services = respond(pop, episodes, refs, params, rng)

    note("agency events")
    kept_households = np.unique(pop.child_household[refs.child])
    kept_children = np.flatnonzero(np.isin(pop.child_household, kept_households))
    ev_child, ev_hh, ev_t, ev_kind = draw_agency_events(
        pop, episodes, refs, kept_children, kept_households, params, rng
    )
    note("records")
    agency = (ev_child, ev_hh, ev_t, ev_kind)
    world = assemble(
        pop, refs, services, kept_children, kept_households, start, params, rng, agency
    )
    world.manifest["population"] = _population_denominators(pop, start)
    return world
