"""The batch builder: every signal for every referral of an extract, each as of its own time.

Vectorised: records are sorted once per (entity, source, filter) on a packed
``entity * span + time`` key, and each referral finds its window with two ``searchsorted``
calls, so the whole build is O(N log N) with no per-referral Python loop. Distinct counts
walk each window by offset (a loop over offsets, not referrals).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.catalogue import CATALOGUE, Aggregation, Entity, Filter, Signal, Source
from features.records import MS_PER_DAY, ages_in_months, series_to_ms
from triage.vocab import LIST_SEPARATOR, Concern, InjurySite

CONCERN_BITS = {c.value: 1 << i for i, c in enumerate(Concern)}
HEAD_FACE_NECK = InjurySite.head_face_neck.value
INT64_MAX = np.iinfo(np.int64).max


@dataclass
class Table:
    """One source's records as arrays: entity codes, times, and the columns filters read."""

    child: np.ndarray
    household: np.ndarray
    t_ms: np.ndarray
    columns: dict[str, np.ndarray]

    def select(self, mask: np.ndarray) -> Table:
        """The rows where ``mask`` holds."""
        return Table(
            self.child[mask],
            self.household[mask],
            self.t_ms[mask],
            {k: v[mask] for k, v in self.columns.items()},
        )


def _bitmask(lists: pd.Series, bits: dict[str, int]) -> np.ndarray:
    """``;``-joined codes (or lists) as integer bitmasks, via the distinct values."""
    codes, uniques = pd.factorize(lists.fillna(""))
    masks = np.zeros(len(uniques), dtype=np.int64)
    for i, cell in enumerate(uniques):
        items = cell.split(LIST_SEPARATOR) if isinstance(cell, str) else cell
        for item in items:
            masks[i] |= bits.get(item, 0)
    return masks[codes]


class BatchBuilder:
    """Holds an extract's records in array form and computes signals for its referrals."""

    def __init__(
        self,
        children: pd.DataFrame,
        referrals: pd.DataFrame,
        events: pd.DataFrame,
        decisions: pd.DataFrame,
    ) -> None:
        self._children = children
        self._referrals = referrals
        self._events = events
        self._decisions = decisions
        self._cache: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        self._prepare()

    def _prepare(self) -> None:
        refs, events, decisions = self._referrals, self._events, self._decisions
        child_codes, self._child_index = pd.factorize(
            pd.concat([refs["child_id"], events["child_id"].dropna()], ignore_index=True)
        )
        hh_all = pd.concat(
            [refs["household_id"], events["household_id"].dropna()], ignore_index=True
        )
        hh_codes, self._hh_index = pd.factorize(hh_all)
        n = len(refs)
        n_child_events = int(events["child_id"].notna().sum())
        ev_child = np.full(len(events), -1, dtype=np.int64)
        ev_child[events["child_id"].notna().to_numpy()] = child_codes[n : n + n_child_events]
        ev_hh = np.full(len(events), -1, dtype=np.int64)
        ev_hh[events["household_id"].notna().to_numpy()] = hh_codes[n:]

        self.referrals = Table(
            child_codes[:n].astype(np.int64),
            hh_codes[:n].astype(np.int64),
            series_to_ms(refs["received_at"]),
            {
                "referrer_type": refs["referrer_type"].to_numpy(dtype=object),
                "referrer_relationship": refs["referrer_relationship"].to_numpy(dtype=object),
                "referrer_id": refs["referrer_id"].to_numpy(dtype=object),
                "concerns": _bitmask(refs["concerns"], CONCERN_BITS),
                "injury_reported": refs["injury_reported"].to_numpy(dtype=bool),
                "head_face_neck": _bitmask(refs["injury_sites"], {HEAD_FACE_NECK: 1}) > 0,
            },
        )
        self.events = Table(
            ev_child,
            ev_hh,
            series_to_ms(events["occurred_at"]),
            {
                "kind": events["kind"].to_numpy(dtype=object),
                "agency": events["agency"].to_numpy(dtype=object),
            },
        )
        position = pd.Series(np.arange(n), index=refs["referral_id"].to_numpy())
        decided = position.reindex(decisions["referral_id"].to_numpy()).to_numpy()
        known = ~np.isnan(decided)
        rows = decided[known].astype(np.int64)
        self.decisions = Table(
            self.referrals.child[rows],
            self.referrals.household[rows],
            series_to_ms(decisions["decided_at"])[known],
            {"decision": decisions["decision"].to_numpy(dtype=object)[known]},
        )
        all_t = np.concatenate([self.referrals.t_ms, self.events.t_ms, self.decisions.t_ms])
        longest_window = max((s.window_days or 0) for s in CATALOGUE) * MS_PER_DAY
        self._t0 = int(all_t.min()) - longest_window - 1
        self._span = int(all_t.max()) - self._t0 + 1
        n_codes = max(len(self._child_index), len(self._hh_index)) + 1
        if n_codes * self._span >= INT64_MAX:
            raise ValueError("extract too large for a packed int64 key: split it by period")
        dob = self._children.set_index("child_id")["date_of_birth"]
        born = pd.to_datetime(refs["child_id"].map(dob)).to_numpy(dtype="datetime64[D]")
        received = (self.referrals.t_ms // MS_PER_DAY).astype("datetime64[D]")
        self.age_months = ages_in_months(born, received)

    def _key(self, codes: np.ndarray, t_ms: np.ndarray) -> np.ndarray:
        return codes * self._span + (t_ms - self._t0)

    def _table(self, source: Source) -> Table:
        return {
            Source.referrals: self.referrals,
            Source.events: self.events,
            Source.decisions: self.decisions,
        }[source]

    def _mask(self, table: Table, flt: Filter) -> np.ndarray:
        """Rows of ``table`` that pass ``flt``."""
        mask = np.ones(table.t_ms.size, dtype=bool)
        cols = table.columns
        if flt.kinds:
            mask &= np.isin(cols["kind"], [k.value for k in flt.kinds])
        if flt.decisions:
            mask &= np.isin(cols["decision"], [d.value for d in flt.decisions])
        if flt.referrer_types:
            mask &= np.isin(cols["referrer_type"], [r.value for r in flt.referrer_types])
        if flt.relationships:
            mask &= np.isin(cols["referrer_relationship"], [r.value for r in flt.relationships])
        if flt.concerns:
            wanted = sum(CONCERN_BITS[c.value] for c in flt.concerns)
            mask &= (cols["concerns"] & wanted) != 0
        if flt.injury_reported is not None:
            mask &= cols["injury_reported"] == flt.injury_reported
        if flt.injury_head_face_neck is not None:
            mask &= cols["head_face_neck"] == flt.injury_head_face_neck
        return mask

    def _sorted(self, signal: Signal, extra: Filter | None = None):
        """Sorted packed keys of the records a signal reads, with their row order (cached)."""
        flt = extra or signal.filter
        cache_key = (signal.entity, signal.source, flt, signal.distinct_of)
        if cache_key not in self._cache:
            table = self._table(signal.source)
            codes = table.child if signal.entity is Entity.child else table.household
            mask = self._mask(table, flt) & (codes >= 0)
            if signal.distinct_of:
                mask &= pd.notna(table.columns[signal.distinct_of])
            rows = np.flatnonzero(mask)
            keys = self._key(codes[rows], table.t_ms[rows])
            order = np.argsort(keys, kind="stable")
            self._cache[cache_key] = (keys[order], rows[order])
        return self._cache[cache_key]

    def _window(self, signal: Signal, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For every referral, the ``[lo, hi)`` slice of ``keys`` inside its window."""
        refs = self.referrals
        codes = refs.child if signal.entity is Entity.child else refs.household
        hi = np.searchsorted(keys, self._key(codes, refs.t_ms), side="left")
        if signal.window_days is None:
            lo = np.searchsorted(keys, codes * self._span, side="left")
        else:
            start = refs.t_ms - signal.window_days * MS_PER_DAY
            lo = np.searchsorted(keys, self._key(codes, start), side="left")
        return lo, hi

    def signal(self, signal: Signal) -> np.ndarray:
        """One signal for every referral, as float64."""
        if signal.source is Source.referral:
            return self._current(signal)
        if signal.aggregation is Aggregation.max_same_concern:
            return self._max_same_concern(signal)
        keys, rows = self._sorted(signal)
        lo, hi = self._window(signal, keys)
        count = (hi - lo).astype(np.float64)
        agg = signal.aggregation
        if agg is Aggregation.count:
            return count
        if agg is Aggregation.exists:
            return (count > 0).astype(np.float64)
        if agg is Aggregation.days_since:
            table = self._table(signal.source)
            last = table.t_ms[rows[np.maximum(hi - 1, 0)]] if rows.size else np.zeros(hi.size)
            days = (self.referrals.t_ms - last) / MS_PER_DAY
            return np.where(hi > lo, days, np.nan)
        if agg is Aggregation.distinct_count:
            return self._distinct(signal, keys, rows, lo, hi)
        raise ValueError(f"{signal.name}: aggregation {agg} does not apply to history")

    def _distinct(self, signal, keys, rows, lo, hi) -> np.ndarray:
        """Distinct values per window: count records whose next same-valued record is later."""
        table = self._table(signal.source)
        values = pd.factorize(table.columns[signal.distinct_of][rows])[0]
        entity = keys // self._span
        # Position (in key order) of the next record with the same entity and value.
        by_value = np.lexsort((np.arange(keys.size), values, entity))
        next_pos = np.full(keys.size, np.iinfo(np.int64).max, dtype=np.int64)
        same = (entity[by_value][1:] == entity[by_value][:-1]) & (
            values[by_value][1:] == values[by_value][:-1]
        )
        next_pos[by_value[:-1][same]] = by_value[1:][same]
        result = np.zeros(lo.size, dtype=np.float64)
        active = np.flatnonzero(hi > lo)
        offset = 0
        while active.size:
            pos = lo[active] + offset
            result[active] += next_pos[pos] >= hi[active]
            offset += 1
            active = active[lo[active] + offset < hi[active]]
        return result

    def _max_same_concern(self, signal: Signal) -> np.ndarray:
        """Most earlier referrals in the window sharing one of this referral's concerns."""
        best = np.zeros(self.referrals.t_ms.size, dtype=np.float64)
        for concern in Concern:
            keys, _ = self._sorted(signal, Filter(concerns=(concern,)))
            lo, hi = self._window(signal, keys)
            mine = (self.referrals.columns["concerns"] & CONCERN_BITS[concern.value]) != 0
            best = np.where(mine, np.maximum(best, hi - lo), best)
        return best

    def _current(self, signal: Signal) -> np.ndarray:
        """Signals read from each referral itself."""
        if signal.aggregation is Aggregation.value:
            return self.age_months.astype(np.float64)
        hit = self._mask(self.referrals, signal.filter)
        if signal.filter.max_age_months is not None:
            hit &= self.age_months < signal.filter.max_age_months
        return hit.astype(np.float64)

    def build(self, signals: tuple[Signal, ...] = CATALOGUE) -> pd.DataFrame:
        """All requested signals for every referral, indexed by referral_id."""
        data = {s.name: self.signal(s) for s in signals}
        return pd.DataFrame(
            data, index=pd.Index(self._referrals["referral_id"], name="referral_id")
        )


def build_features(
    children: pd.DataFrame,
    referrals: pd.DataFrame,
    events: pd.DataFrame,
    decisions: pd.DataFrame,
    signals: tuple[Signal, ...] = CATALOGUE,
) -> pd.DataFrame:
    """Every signal for every referral of an extract, each as of its own ``received_at``."""
    return BatchBuilder(children, referrals, events, decisions).build(signals)
