"""Latent maltreatment episodes: the truth that agencies observe only in part."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from triage.synth.composition import (
    FAMILY_TYPES,
    PARENT,
    PERPETRATOR,
    RELATIVE,
    STEP,
    VIOLENT,
    ChildSegments,
)
from triage.synth.params import WorldParams
from triage.synth.population import AGE_BANDS_YEARS, YEAR, Population
from triage.vocab import PlanCategory

EPISODE_TYPES: tuple[PlanCategory, ...] = tuple(PlanCategory)
EPISODE_TYPE_SHARES = np.array([0.54, 0.26, 0.11, 0.04, 0.05])
"""Neglect, emotional, physical, sexual, multiple; in ``EPISODE_TYPES`` order."""
PHYSICAL_WEIGHT = np.array([0.0, 0.0, 1.0, 0.0, 0.5])
"""How much of the people's physical-abuse multiplier (log) each episode type takes."""
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
    household: np.ndarray
    """The household the child lived in when the episode began."""
    by_family: dict[str, Any] = field(default_factory=dict)
    """Child-years and episodes by family type (``FAMILY_TYPES``), for the calibration report."""

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


def static_log_rate(pop: Population, household: np.ndarray) -> np.ndarray:
    """Log-rate terms of a household's latent risk factors (the people in it come on top)."""
    out: np.ndarray = (
        0.7 * pop.hh_domestic_abuse[household]
        + 0.8 * pop.hh_mental_health[household]
        + 1.2 * pop.hh_substance_misuse[household]
        + 0.25 * pop.hh_deprived[household]
        + 0.5 * pop.hh_frailty[household]
    )
    return out


def people_log_rates(seg: ChildSegments, params: WorldParams) -> tuple[np.ndarray, ...]:
    """Log multipliers from who lives with the child: (all types, physical extra, under-5 extra)."""
    c = seg.counts
    unrelated = seg.unrelated
    step = c[:, STEP] > 0
    relative = (c[:, RELATIVE] > 0) & (c[:, PARENT] > 0)
    violent = c[:, VIOLENT] > 0
    common = (
        np.log(params.unrelated_adult_harm) * unrelated
        + np.log(params.step_parent_harm) * step
        + np.log(params.relative_harm) * relative
        + np.log(params.violent_adult_harm) * violent
        + np.log(params.perpetrator_harm) * (c[:, PERPETRATOR] > 0)
    )
    physical = (
        np.log(params.unrelated_adult_physical_harm) * unrelated
        + np.log(params.step_parent_physical_harm) * step
        + 0.3 * violent
    )
    young = np.log(params.unrelated_adult_young_harm) * unrelated
    return common, physical, young


def draw_episodes(
    pop: Population, seg: ChildSegments, params: WorldParams, rng: np.random.Generator
) -> Episodes:
    """Episodes over the window plus the outcome horizon, at each child's piecewise hazard.

    ``seg`` cuts each child's time by who lives with it; within a piece the hazard is the
    base rate times the household's risk factors, the people present and the age band.
    """
    until = pop.window_days + HORIZON_DAYS
    common, physical, young = people_log_rates(seg, params)
    base = (
        params.harm_base_rate
        / YEAR
        * seg.weight
        * np.exp(static_log_rate(pop, seg.household) + common)
    )
    # Episode types: physical abuse (and half of "multiple") rise with the people present.
    type_total = sum(
        share * np.exp(physical * weight)
        for share, weight in zip(EPISODE_TYPE_SHARES, PHYSICAL_WEIGHT, strict=True)
    )
    multipliers = AGE_BAND_HARM_MULTIPLIER.copy()
    multipliers[0] = params.infant_harm_multiplier
    family = seg.family
    born = pop.child_dob[seg.child]
    exposure_by_family = np.zeros(len(FAMILY_TYPES))
    segments, starts = [], []
    for b, ((lo, hi), multiplier) in enumerate(zip(AGE_BANDS_YEARS, multipliers, strict=True)):
        a = np.maximum(np.maximum(born + lo * YEAR, seg.start), 0.0)
        e = np.minimum(np.minimum(born + hi * YEAR, seg.end), until)
        exposure = np.clip(e - a, 0.0, None)
        exposure_by_family += np.bincount(
            family, weights=exposure * seg.weight, minlength=len(FAMILY_TYPES)
        )
        rate = base * multiplier * type_total * (np.exp(young) if b < 2 else 1.0)
        counts = rng.poisson(rate * exposure)
        who = np.repeat(np.arange(counts.size), counts)
        segments.append(who)
        starts.append(a[who] + rng.random(who.size) * exposure[who])
    row = np.concatenate(segments)
    start = np.concatenate(starts)
    type_weight = EPISODE_TYPE_SHARES * np.exp(np.outer(physical[row], PHYSICAL_WEIGHT))
    kind = _categorical_rows(type_weight, rng).astype(np.int8)
    end = start + rng.exponential(EPISODE_MEAN_DAYS[kind])
    child = seg.child[row]
    order = np.lexsort((start, child))
    by_family = {
        name: {
            "child_years": float(exposure_by_family[i] / YEAR),
            "episodes": int((family[row] == i).sum()),
        }
        for i, name in enumerate(FAMILY_TYPES)
    }
    return Episodes(
        child=child[order],
        start=start[order],
        end=end[order],
        kind=kind[order],
        household=seg.household[row][order],
        by_family=by_family,
    )


def _categorical_rows(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per row from unnormalised row weights."""
    cumulative = np.cumsum(weights, axis=1)
    u = rng.random(weights.shape[0]) * cumulative[:, -1]
    draws: np.ndarray = (cumulative < u[:, None]).sum(axis=1).clip(0, weights.shape[1] - 1)
    return draws
