"""Children who move: to the other parent's home, into shared care, or to a grandparent's.

Each child has at most one move in the window. The result is where each child lives over
time: ``ChildStays`` (the memberships the agencies record) and ``Residence`` (the same time
split into rows that weigh shared care half in each home, for drawing events).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from triage.synth.params import WorldParams
from triage.synth.population import YEAR, Population
from triage.synth.spells import OPEN, Spells

NO_MOVE, MOVED, SHARED, KINSHIP = 0, 1, 2, 3
MOVE_AGE_YEARS = 16.0
"""Children this old or older stay where they are when the adults' arrangements change."""


@dataclass
class NewHouseholds:
    """Households created in the window: the other parent's home, or a grandparent's."""

    origin: np.ndarray
    created: np.ndarray
    kinship: np.ndarray
    """A grandparent's household (else the other parent's)."""
    parent_spell: np.ndarray
    """The other parent's spell in the origin household's partner slot, or -1."""


@dataclass
class ChildStays:
    """Child memberships: a child in a household from ``joined`` until ``left`` (``OPEN``)."""

    child: np.ndarray
    household: np.ndarray
    joined: np.ndarray
    left: np.ndarray


@dataclass
class Residence:
    """Where each child lives, as rows sorted by child then start; shared care weighs 0.5."""

    child: np.ndarray
    household: np.ndarray
    start: np.ndarray
    end: np.ndarray
    weight: np.ndarray
    primary: np.ndarray
    """False for the second home of a child in shared care."""

    _index: tuple[np.ndarray, np.ndarray] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def _rows(self, child: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each child's rows ``[first, last)``; the index is built once."""
        if self._index is None:
            children = int(self.child.max()) + 1 if self.child.size else 0
            first = np.searchsorted(self.child, np.arange(children), side="left")
            self._index = (first, np.r_[first[1:], self.child.size])
        first, last = self._index
        return first[child], last[child]

    def at(self, child: np.ndarray, t: np.ndarray) -> np.ndarray:
        """The household each ``child`` lives in at ``t`` (the latest row begun by then)."""
        first, last = self._rows(child)
        found = first.copy()
        span = int((last - first).max()) if child.size else 0
        for offset in range(1, span):
            idx = first + offset
            ok = idx < last
            safe = np.where(ok, idx, 0)
            found = np.where(ok & (self.start[safe] <= t), safe, found)
        household: np.ndarray = self.household[found]
        return household

    def covers(self, child: np.ndarray, household: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Whether ``child`` lives in ``household`` at ``t``."""
        first, last = self._rows(child)
        out = np.zeros(child.size, dtype=bool)
        span = int((last - first).max()) if child.size else 0
        for offset in range(span):
            idx = first + offset
            ok = idx < last
            safe = np.where(ok, idx, 0)
            out |= (
                ok
                & (self.household[safe] == household)
                & (self.start[safe] <= t)
                & (self.end[safe] > t)
            )
        return out

    def take(self, rows: np.ndarray) -> Residence:
        """The rows at ``rows`` (still sorted when ``rows`` is)."""
        return Residence(**{f.name: getattr(self, f.name)[rows] for f in fields(self) if f.init})

    def band(
        self, dob: np.ndarray, lo_years: float, hi_years: float, until: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each row's part of the child's ages ``[lo, hi)`` within ``[0, until)``: (from, days)."""
        born = dob[self.child]
        a = np.maximum(np.maximum(born + lo_years * YEAR, 0.0), self.start)
        b = np.minimum(np.minimum(born + hi_years * YEAR, until), self.end)
        return a, np.clip(b - a, 0.0, None)


def household_children(pop: Population) -> tuple[np.ndarray, np.ndarray]:
    """Index range ``[first, last)`` of each household's children (children are by household)."""
    households = np.arange(pop.hh_deprivation.size)
    return (
        np.searchsorted(pop.child_household, households, side="left"),
        np.searchsorted(pop.child_household, households, side="right"),
    )


def _candidates(
    pop: Population, household: np.ndarray, t: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Children under ``MOVE_AGE_YEARS``, born by ``t``, of each event's household.

    Returns (event index, child index) pairs.
    """
    first, last = household_children(pop)
    counts = last[household] - first[household]
    event = np.repeat(np.arange(household.size), counts)
    offset = np.arange(event.size) - np.repeat(np.cumsum(counts) - counts, counts)
    child = first[household][event] + offset
    age = t[event] - pop.child_dob[child]
    young = (age >= 0) & (age < MOVE_AGE_YEARS * YEAR)
    return event[young], child[young]


def draw_moves(
    pop: Population,
    formed: np.ndarray,
    hh_end: np.ndarray,
    partner: Spells,
    bio_kind: int,
    params: WorldParams,
    rng: np.random.Generator,
) -> tuple[NewHouseholds, np.ndarray, np.ndarray, np.ndarray]:
    """New households and each child's move: (households, kind, time, new household index)."""
    window = pop.window_days
    n_children = pop.child_dob.size

    # The other parent leaves and sets up a home some of the children use.
    sep = np.flatnonzero(
        (partner.kind == bio_kind)
        & (partner.left >= 0)
        & (partner.left < window)
        & (rng.random(partner.kind.size) < params.other_parent_household_share)
    )
    sep_hh, sep_t = partner.unit[sep], partner.left[sep]
    s_event, s_child = _candidates(pop, sep_hh, sep_t)
    u = rng.random(s_child.size)
    shared = u < params.shared_care_probability
    moved = ~shared & (u < params.shared_care_probability + params.move_to_other_parent_probability)
    lag = np.where(shared, rng.uniform(0, 60, u.size), rng.uniform(0, YEAR, u.size))
    s_t = sep_t[s_event] + lag
    s_keep = (shared | moved) & (s_t < window)

    # A grandparent takes the children in, more often where the household is struggling.
    risk = (
        1.2 * pop.hh_substance_misuse
        + 0.8 * pop.hh_mental_health
        + 0.6 * pop.hh_domestic_abuse
        + 0.5 * pop.hh_deprived
        + 0.3 * pop.hh_frailty
    )
    rate = params.kinship_move_rate / YEAR * np.exp(risk)
    from_t = np.maximum(formed, 0.0)
    kin_t_all = from_t + rng.exponential(1.0 / rate)
    kin = np.flatnonzero(np.isfinite(formed) & (kin_t_all < np.minimum(window, hh_end)))
    k_event, k_child = _candidates(pop, kin, kin_t_all[kin])
    k_t = kin_t_all[kin][k_event]

    # At most one move per child: the earlier wins.
    kind = np.zeros(n_children, dtype=np.int8)
    when = np.full(n_children, OPEN)
    source = np.full(n_children, -1, dtype=np.int64)  # event index within its kind
    sc = s_child[s_keep]
    kind[sc] = np.where(shared[s_keep], SHARED, MOVED)
    when[sc] = s_t[s_keep]
    source[sc] = s_event[s_keep]
    earlier = k_t < when[k_child]
    kc = k_child[earlier]
    kind[kc], when[kc], source[kc] = KINSHIP, k_t[earlier], k_event[earlier]

    # A new household for each event that still moves a child.
    by_sep = (kind == MOVED) | (kind == SHARED)
    sep_used = np.unique(source[by_sep])
    kin_used = np.unique(source[kind == KINSHIP])
    new_index = np.full(n_children, -1, dtype=np.int64)
    new_index[by_sep] = np.searchsorted(sep_used, source[by_sep])
    new_index[kind == KINSHIP] = sep_used.size + np.searchsorted(kin_used, source[kind == KINSHIP])
    households = NewHouseholds(
        origin=np.concatenate([sep_hh[sep_used], kin[kin_used]]),
        created=np.concatenate([sep_t[sep_used], kin_t_all[kin][kin_used]]),
        kinship=np.r_[np.zeros(sep_used.size, dtype=bool), np.ones(kin_used.size, dtype=bool)],
        parent_spell=np.r_[sep[sep_used], np.full(kin_used.size, -1)],
    )
    return households, kind, when, new_index


def child_stays(
    pop: Population, kind: np.ndarray, when: np.ndarray, new_household: np.ndarray
) -> tuple[ChildStays, Residence]:
    """Memberships and residence rows of every child, from its birth household and its move.

    Built in order (by child, then start): one row for a child who stays, two for a move,
    three for shared care (before, and half in each home after).
    """
    n = kind.size
    born, home = pop.child_dob, pop.child_household
    moves = kind != NO_MOVE
    shared = kind == SHARED
    m = np.flatnonzero(moves)

    stay_count = 1 + moves
    stay_first = np.cumsum(stay_count) - stay_count
    second = stay_first[m] + 1
    stays = ChildStays(
        child=np.repeat(np.arange(n), stay_count),
        household=np.repeat(home, stay_count),
        joined=np.repeat(born, stay_count),
        left=np.full(int(stay_count.sum()), OPEN),
    )
    stays.left[stay_first] = np.where(moves & ~shared, when, OPEN)
    stays.household[second], stays.joined[second] = new_household[m], when[m]

    count = 1 + moves + shared
    first = np.cumsum(count) - count
    total = int(count.sum())
    residence = Residence(
        child=np.repeat(np.arange(n), count),
        household=np.repeat(home, count),
        start=np.repeat(born, count),
        end=np.full(total, OPEN),
        weight=np.ones(total),
        primary=np.ones(total, dtype=bool),
    )
    residence.end[first] = np.where(moves, when, OPEN)
    after = first[m] + 1  # the home after a move, or the birth home, shared
    residence.start[after] = when[m]
    residence.household[after] = np.where(shared[m], home[m], new_household[m])
    residence.weight[after] = np.where(shared[m], 0.5, 1.0)
    s = np.flatnonzero(shared)
    other = first[s] + 2  # the second home of a child in shared care
    residence.start[other], residence.household[other] = when[s], new_household[s]
    residence.weight[other], residence.primary[other] = 0.5, False
    return stays, residence
