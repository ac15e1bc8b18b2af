"""Alternating spells: a slot in each household that an adult fills, empties and refills."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OPEN = np.inf
"""The end of a spell that lasts past the simulated period."""


@dataclass
class Spells:
    """One row per spell: the unit (household) whose slot it fills, its kind and its span."""

    unit: np.ndarray
    kind: np.ndarray
    joined: np.ndarray
    left: np.ndarray
    """``OPEN`` when the spell lasts past its unit's end."""


def _scale(rate: np.ndarray) -> np.ndarray:
    """Exponential scale for a rate per day; a zero rate never fires."""
    scale: np.ndarray = 1.0 / np.maximum(rate, 1e-15)
    return scale


def alternating_spells(
    start: np.ndarray,
    end: np.ndarray,
    first_kind: np.ndarray,
    first_joined: np.ndarray,
    join_rate: np.ndarray,
    kind_shares: np.ndarray,
    leave_rate: np.ndarray,
    rng: np.random.Generator,
) -> Spells:
    """Simulate each unit's slot from ``start`` to ``end`` (rates per day), vectorised by round.

    A unit whose ``first_kind`` is not negative starts filled by a spell of that kind that
    began at ``first_joined``; an empty slot is filled at ``join_rate`` by a spell whose kind
    is drawn from ``kind_shares``; a spell of kind k ends at ``leave_rate[unit, k]``.
    """
    units = np.arange(start.size)
    on = first_kind >= 0
    cur_unit, cur_kind = units[on], first_kind[on].astype(np.int8)
    cur_joined, cur_from = first_joined[on], start[on]
    off_unit, off_t = units[~on], start[~on]
    parts: list[tuple[np.ndarray, ...]] = []
    cumulative = np.cumsum(kind_shares) / np.sum(kind_shares)
    while cur_unit.size or off_unit.size:
        if cur_unit.size:
            left = cur_from + rng.exponential(_scale(leave_rate[cur_unit, cur_kind]))
            lasting = left >= end[cur_unit]
            parts.append((cur_unit, cur_kind, cur_joined, np.where(lasting, OPEN, left)))
            off_unit = np.concatenate([off_unit, cur_unit[~lasting]])
            off_t = np.concatenate([off_t, left[~lasting]])
        joined = off_t + rng.exponential(_scale(join_rate[off_unit]))
        filled = joined < end[off_unit]
        cur_unit, cur_joined = off_unit[filled], joined[filled]
        cur_from = cur_joined
        drawn = np.searchsorted(cumulative, rng.random(cur_unit.size), side="right")
        cur_kind = np.minimum(drawn, kind_shares.size - 1).astype(np.int8)
        off_unit, off_t = units[:0], start[:0]
    if not parts:
        empty = np.zeros(0)
        return Spells(units[:0], np.zeros(0, dtype=np.int8), empty, empty)
    unit, kind, joined_all, left_all = (np.concatenate(c) for c in zip(*parts, strict=True))
    order = np.lexsort((joined_all, unit))
    return Spells(unit[order], kind[order], joined_all[order], left_all[order])
