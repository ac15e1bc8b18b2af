"""Agency contacts: what police, health, schools and housing record about a child or household."""

from __future__ import annotations

import numpy as np

from triage.synth.channels import SOURCES
from triage.synth.harm import Episodes
from triage.synth.moves import Residence
from triage.synth.params import WorldParams
from triage.synth.population import AGE_BANDS_YEARS, YEAR, Population
from triage.synth.referrals import Referrals
from triage.vocab import EventKind, PlanCategory, ReferrerType

K = EventKind
EVENT_KINDS: tuple[EventKind, ...] = tuple(EventKind)
NEGLECT = tuple(PlanCategory).index(PlanCategory.neglect)
PHYSICAL = tuple(PlanCategory).index(PlanCategory.physical_abuse)
MULTIPLE = tuple(PlanCategory).index(PlanCategory.multiple)

# Child-level background rates per child-year by age band (infant, pre-school, primary,
# secondary), before surveillance bias and household risk.
CHILD_BAND_RATES: dict[EventKind, tuple[float, float, float, float]] = {
    K.ed_attendance: (0.45, 0.40, 0.20, 0.25),
    K.ed_injury_attendance: (0.02, 0.20, 0.10, 0.10),
    K.missed_appointment: (0.30, 0.25, 0.10, 0.08),
    K.gp_concern: (0.01, 0.01, 0.01, 0.02),
    K.health_visitor_concern: (0.04, 0.03, 0.0, 0.0),
    K.absence_concern: (0.0, 0.0, 0.08, 0.15),
    K.safeguarding_concern: (0.0, 0.0, 0.03, 0.04),
    K.exclusion: (0.0, 0.0, 0.005, 0.04),
    K.missing_episode: (0.0, 0.0, 0.002, 0.05),
}
# Extra rates per year while a maltreatment episode lasts: (kinds, episode types or None for all).
EPISODE_RATES: tuple[tuple[EventKind, float, tuple[int, ...] | None], ...] = (
    (K.missed_appointment, 0.8, (NEGLECT, MULTIPLE)),
    (K.absence_concern, 0.8, (NEGLECT, MULTIPLE)),
    (K.ed_injury_attendance, 0.6, (PHYSICAL, MULTIPLE)),
    (K.safeguarding_concern, 0.4, None),
    (K.gp_concern, 0.3, None),
    (K.health_visitor_concern, 0.4, None),
)
SCHOOL_AGE = (5.0, 17.0)
HEALTH_VISITOR_AGE = (0.0, 5.0)


def _poisson_times(
    rng: np.random.Generator, rate_per_day: np.ndarray, start: np.ndarray, end: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Event times of independent Poisson processes, one per row; returns (row, time)."""
    length = np.clip(end - start, 0.0, None)
    counts = rng.poisson(rate_per_day * length)
    row = np.repeat(np.arange(counts.size), counts)
    return row, start[row] + rng.random(row.size) * length[row]


def _age_ok(kind: EventKind, age: np.ndarray) -> np.ndarray:
    """Schools see only school-age children; health visitors only the under-fives."""
    if kind in (K.absence_concern, K.safeguarding_concern, K.exclusion):
        return (age >= SCHOOL_AGE[0]) & (age < SCHOOL_AGE[1])
    if kind is K.health_visitor_concern:
        return age < HEALTH_VISITOR_AGE[1]
    return np.ones(age.shape, dtype=bool)


def draw_agency_events(
    pop: Population,
    residence: Residence,
    episodes: Episodes,
    refs: Referrals,
    children: np.ndarray,
    households: np.ndarray,
    hh_start: np.ndarray,
    params: WorldParams,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Agency events for the given children and households: (child or -1, household, time, kind).

    A household's records begin when it enters the world (``hh_start``); a child's follow it
    from household to household (``residence``).
    """
    until = pop.window_days
    out_child, out_hh, out_t, out_kind = [], [], [], []

    def emit(child: np.ndarray, household: np.ndarray, t: np.ndarray, kind: EventKind) -> None:
        inside = (t >= 0) & (t < until)
        out_child.append(child[inside])
        out_hh.append(household[inside])
        out_t.append(t[inside])
        out_kind.append(np.full(int(inside.sum()), EVENT_KINDS.index(kind), dtype=np.int8))

    # Household-level police and housing records.
    deprived = pop.hh_deprived[households]
    surveillance = np.exp(params.surveillance_bias * deprived)
    begin, window = hh_start[households], np.full(households.size, until)
    household_rates = {
        K.domestic_abuse_incident: (0.02 + 1.2 * pop.hh_domestic_abuse[households]) * surveillance,
        # Offences by a named adult are person records (``adult_records``); these name nobody.
        K.adult_violence_offence: 0.005 * np.sqrt(surveillance),
        K.homelessness: 0.004 * surveillance * (1 + 2 * pop.hh_substance_misuse[households]),
        K.eviction: 0.006 * surveillance,
    }
    for kind, per_year in household_rates.items():
        row, t = _poisson_times(rng, per_year / YEAR, begin, window)
        emit(np.full(row.size, -1), households[row], t, kind)

    # Child-level background records, by age band, in the household of the time.
    wanted = np.zeros(pop.child_dob.size, dtype=bool)
    wanted[children] = True
    rows = residence.take(np.flatnonzero(wanted[residence.child]))
    hh = rows.household
    child_surveillance = np.exp(params.surveillance_bias * pop.hh_deprived[hh]) * rows.weight
    household_strain = 1 + pop.hh_substance_misuse[hh] + 0.5 * pop.hh_mental_health[hh]
    for b, (lo, hi) in enumerate(AGE_BANDS_YEARS):
        start, days = rows.band(pop.child_dob, lo, hi, until)
        end = start + days
        for kind, rates in CHILD_BAND_RATES.items():
            if rates[b] == 0:
                continue
            strain = household_strain if kind is K.missed_appointment else 1.0
            row, t = _poisson_times(rng, rates[b] * child_surveillance * strain / YEAR, start, end)
            age = pop.age_years(rows.child[row], t)
            ok = _age_ok(kind, age)
            emit(rows.child[row][ok], hh[row][ok], t[ok], kind)

    # Traces that maltreatment leaves while it lasts.
    in_scope = wanted[episodes.child]
    ep_child, ep_start, ep_end = (
        episodes.child[in_scope],
        episodes.start[in_scope],
        episodes.end[in_scope],
    )
    ep_kind = episodes.kind[in_scope]
    for kind, per_year, types in EPISODE_RATES:
        rate = np.full(ep_child.size, per_year / YEAR)
        if types is not None:
            rate[~np.isin(ep_kind, types)] = 0.0
        row, t = _poisson_times(rng, rate, ep_start, np.minimum(ep_end, until))
        ok = _age_ok(kind, pop.age_years(ep_child[row], t))
        child, when = ep_child[row][ok], t[ok]
        emit(child, residence.at(child, when), when, kind)

    # Police referrals usually follow a recorded incident or notification shortly before.
    police = refs.source == SOURCES.index(ReferrerType.police)
    noted = police & (rng.random(refs.child.size) < 0.6)
    lag = rng.uniform(0.05, 2.0, refs.child.size)
    noted_t = refs.t[noted] - lag[noted]
    emit(
        refs.child[noted],
        residence.at(refs.child[noted], noted_t),
        noted_t,
        K.child_concern_notification,
    )
    return (
        np.concatenate(out_child),
        np.concatenate(out_hh),
        np.concatenate(out_t),
        np.concatenate(out_kind),
    )
