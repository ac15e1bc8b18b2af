"""Who lives in each household when: piecewise-constant counts of adults by role and history.

Each household's adult memberships become change points; between two change points the
household's composition is constant. A child's time is then cut by the compositions of the
households it lives in, and each piece carries what the harm hazard needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from triage.synth.moves import Residence

PARENT, STEP, PARTNER, RELATIVE, LODGER, VIOLENT, PERPETRATOR = range(7)
COUNTS = 7
SECONDS = 86_400.0
TIME_OFFSET = 2**31


def time_keys(household: np.ndarray, t: np.ndarray) -> np.ndarray:
    """One sortable int64 per (household, time), to the second."""
    seconds = np.clip(np.round(np.nan_to_num(t, posinf=1e7) * SECONDS), -TIME_OFFSET, 2**31 - 1)
    keys: np.ndarray = (household.astype(np.int64) << 32) + (seconds.astype(np.int64) + TIME_OFFSET)
    return keys


@dataclass
class Composition:
    """Household segments sorted by household then start; ``counts`` per ``COUNTS`` column.

    Built from a day on (``build_composition``): ask about no earlier time.
    """

    household: np.ndarray
    start: np.ndarray
    counts: np.ndarray
    key: np.ndarray

    def segment_at(self, household: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Index of each household's segment at ``t``, or -1 before its first adult joined."""
        idx = np.searchsorted(self.key, time_keys(household, t), side="right") - 1
        safe = np.maximum(idx, 0)
        found: np.ndarray = np.where((idx >= 0) & (self.household[safe] == household), idx, -1)
        return found

    def counts_at(self, household: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Counts of each household at ``t`` (zeros before its first adult joined)."""
        idx = self.segment_at(household, t)
        out: np.ndarray = self.counts[np.maximum(idx, 0)].copy()
        out[idx < 0] = 0
        return out


def build_composition(
    household: np.ndarray,
    joined: np.ndarray,
    left: np.ndarray,
    columns: np.ndarray,
    since: float,
) -> Composition:
    """Segments from ``since`` on, from adult memberships (``columns``: what each adds).

    Memberships running at ``since`` make one opening segment per household; only later
    joins and leaves cut it, so a household whose adults stay put is one segment.
    """
    n_households = int(household.max()) + 1 if household.size else 0
    running_then = (joined <= since) & (left > since)
    h_open = household[running_then]
    opening = np.column_stack(
        [
            np.bincount(h_open, weights=columns[running_then, c], minlength=n_households)
            for c in range(COUNTS)
        ]
    ).astype(np.int16)
    open_households = np.flatnonzero(opening.any(axis=1))
    later = joined > since
    ends = np.isfinite(left) & (left > since)
    ev_household = np.concatenate([open_households, household[later], household[ends]])
    ev_t = np.concatenate([np.full(open_households.size, float(since)), joined[later], left[ends]])
    delta = np.concatenate([opening[open_households], columns[later], -columns[ends]]).astype(
        np.int16
    )
    key = time_keys(ev_household, ev_t)
    order = np.argsort(key, kind="stable")
    key, ev_household, ev_t, delta = key[order], ev_household[order], ev_t[order], delta[order]
    running = np.cumsum(delta, axis=0, dtype=np.int32)
    starts = np.flatnonzero(np.r_[True, ev_household[1:] != ev_household[:-1]])
    base = np.zeros((starts.size, COUNTS), dtype=np.int32)
    base[1:] = running[starts[1:] - 1]
    before = np.repeat(base, np.diff(np.r_[starts, key.size]), axis=0)
    return Composition(ev_household, ev_t, (running - before).astype(np.int16), key)


@dataclass
class ChildSegments:
    """A child's time cut by household composition, within ``[t0, t1)``."""

    child: np.ndarray
    household: np.ndarray
    start: np.ndarray
    end: np.ndarray
    weight: np.ndarray
    counts: np.ndarray
    """Household counts as this child sees them (its own parent counted as a parent)."""

    @property
    def unrelated(self) -> np.ndarray:
        """An unrelated adult (a parent's partner, a lodger) lives with the child."""
        out: np.ndarray = (self.counts[:, PARTNER] + self.counts[:, LODGER]) > 0
        return out

    @property
    def family(self) -> np.ndarray:
        """Family type code per segment, in ``FAMILY_TYPES`` order."""
        c = self.counts
        parents = c[:, PARENT]
        code = np.select(
            [
                self.unrelated,
                c[:, STEP] > 0,
                (parents >= 2) & (c[:, RELATIVE] == 0),
                (parents == 1) & (c[:, RELATIVE] == 0),
                (parents >= 1) & (c[:, RELATIVE] > 0),
            ],
            [3, 2, 0, 1, 4],
            5,
        )
        return code.astype(np.int8)


FAMILY_TYPES = ("two_parents", "lone_parent", "step_parent", "unrelated_adult", "relative", "other")
"""How a child's household is classed for the harm figures (first match, right to left)."""


def child_segments(
    residence: Residence,
    composition: Composition,
    own_parent_household: np.ndarray,
    own_parent_joined: np.ndarray,
    own_parent_left: np.ndarray,
    own_parent_column: np.ndarray,
    t0: float,
    t1: float,
) -> ChildSegments:
    """Cut each residence row in ``[t0, t1)`` at its household's composition changes.

    ``own_parent_*`` (per child) name a partner or step-parent who is this child's own parent
    (a half-sibling's father, present at the birth): counted as a parent for that child.
    """
    a = np.maximum(residence.start, t0)
    b = np.minimum(residence.end, t1)
    live = np.flatnonzero(b > a)
    hh, a, b = residence.household[live], a[live], b[live]
    found = composition.segment_at(hh, a)
    household_first = np.searchsorted(composition.key, hh.astype(np.int64) << 32, side="left")
    first = np.where(found >= 0, found, household_first)
    last = np.searchsorted(composition.key, time_keys(hh, b), side="left") - 1
    last = np.maximum(last, first)
    counts = last - first + 1
    row = np.repeat(np.arange(live.size), counts)
    seg = np.repeat(first, counts) + (
        np.arange(row.size) - np.repeat(np.cumsum(counts) - counts, counts)
    )
    nxt = np.minimum(seg + 1, composition.start.size - 1)
    seg_end = np.where(
        (seg + 1 < composition.start.size) & (composition.household[nxt] == hh[row]),
        composition.start[nxt],
        np.inf,
    )
    start = np.maximum(a[row], composition.start[seg])
    end = np.minimum(b[row], seg_end)
    keep = end > start
    row, seg, start, end = row[keep], seg[keep], start[keep], end[keep]
    child = residence.child[live][row]
    household = hh[row]
    seg_counts = composition.counts[seg].copy()
    # The child's own parent among the household's partners or step-parents.
    own = (
        (own_parent_household[child] == household)
        & (own_parent_joined[child] <= start)
        & (own_parent_left[child] > start)
    )
    column = own_parent_column[child[own]]
    rows = np.flatnonzero(own)
    seg_counts[rows, column] -= 1
    seg_counts[rows, PARENT] += 1
    return ChildSegments(
        child=child,
        household=household,
        start=start,
        end=end,
        weight=residence.weight[live][row],
        counts=seg_counts,
    )
