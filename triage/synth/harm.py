"""Latent maltreatment episodes: the truth that agencies observe only in part."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from triage.synth.params import WorldParams
from triage.synth.population import AGE_BANDS_YEARS, YEAR, Population
from triage.vocab import PlanCategory

EPISODE_TYPES: tuple[PlanCategory, ...] = tuple(PlanCategory)
EPISODE_TYPE_SHARES = np.array([0.54, 0.26, 0.11, 0.04, 0.05])
"""Neglect, emotional, physical, sexual, multiple; in ``EPISODE_TYPES`` order."""
EPISODE_MEAN_DAYS = np.array([300.0, 200.0, 60.0, 150.0, 300.0])
AGE_BAND_HARM_MULTIPLIER = np.array([1.0, 1.5, 1.0, 0.8])
"""Relative episode rates by age band; the infant entry is replaced by the world's knob."""

HORIZON_DAYS = 365.0


@dataclass
class Episodes:
    """Columnar maltreatment episodes, sorted by child then start."""

    child: np.ndarray
    start: np.ndarray
    end: np.ndarray
    kind: np.ndarray

    def active_within(self, child: np.ndarray, t0: np.ndarray, t1: np.ndarray) -> np.ndarray:
        """Index of an episode of each ``child`` overlapping ``[t0, t1]``, or -1 when none."""
        found = np.full(child.size, -1, dtype=np.int64)
        if self.child.size == 0:
            return found
        first = np.searchsorted(self.child, child, side="left")
        last = np.searchsorted(self.child, child, side="right")
        # Children rarely have more than a handful of episodes: scan by offset, vectorised.
        max_span = int((last - first).max()) if child.size else 0
        for offset in range(max_span):
            idx = first + offset
            valid = idx < last
            safe = np.where(valid, idx, 0)
            hit = valid & (found < 0) & (self.start[safe] <= t1) & (self.end[safe] >= t0)
            found[hit] = safe[hit]
        return found


def harm_rate_per_day(pop: Population, params: WorldParams) -> np.ndarray:
    """Each child's episode rate per day before the age multiplier."""
    hh = pop.child_household
    log_rate = (
        1.0 * pop.hh_domestic_abuse[hh]
        + 0.8 * pop.hh_mental_health[hh]
        + 1.2 * pop.hh_substance_misuse[hh]
        + 0.9 * pop.hh_adult_violence[hh]
        + 0.25 * pop.hh_deprived[hh]
        + 0.5 * pop.hh_frailty[hh]
    )
    rate: np.ndarray = params.harm_base_rate / YEAR * np.exp(log_rate)
    return rate


def draw_episodes(pop: Population, params: WorldParams, rng: np.random.Generator) -> Episodes:
    """Episodes for every child over the window plus the outcome horizon."""
    until = pop.window_days + HORIZON_DAYS
    base = harm_rate_per_day(pop, params)
    multipliers = AGE_BAND_HARM_MULTIPLIER.copy()
    multipliers[0] = params.infant_harm_multiplier
    children, starts = [], []
    for (lo, hi), multiplier in zip(AGE_BANDS_YEARS, multipliers, strict=True):
        exposure = pop.band_exposure(lo, hi, until)
        counts = rng.poisson(base * multiplier * exposure)
        who = np.repeat(np.arange(counts.size), counts)
        band_start = np.maximum(pop.child_dob[who] + lo * YEAR, 0.0)
        children.append(who)
        starts.append(band_start + rng.random(who.size) * exposure[who])
    child = np.concatenate(children)
    start = np.concatenate(starts)
    kind = rng.choice(len(EPISODE_TYPES), size=child.size, p=EPISODE_TYPE_SHARES).astype(np.int8)
    end = start + rng.exponential(EPISODE_MEAN_DAYS[kind])
    order = np.lexsort((start, child))
    return Episodes(child=child[order], start=start[order], end=end[order], kind=kind[order])
