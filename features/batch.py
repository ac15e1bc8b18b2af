"""The batch builder: every signal for every referral of an extract, each as of its own time.

Vectorised: each record source is sorted once per entity on a packed ``entity * span +
time`` key (a signal's filter takes an order-preserving view), and each referral finds its
window with two ``searchsorted`` calls, so the whole build is O(N log N) with no per-referral
Python loop. Distinct counts walk each window by offset (a loop over offsets, not referrals).

An event counts only once known: occurred AND recorded before the referral (windows stay on
``occurred_at``). The few events recorded late, after a referral of their entity that followed
their occurrence, are paired with those referrals and subtracted from the windows' counts;
nothing is re-sorted, and an extract without delays takes no extra step.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from features.catalogue import (
    CATALOGUE,
    PERSON_RECORD_KINDS,
    Aggregation,
    Entity,
    Filter,
    Signal,
    Source,
)
from features.household_batch import NEVER, ROLES, People, PeopleTables
from features.id_codes import arrow_array, arrow_chunks, codes_of, encode_together
from features.records import (
    EPOCH_TIMESTAMP,
    MS_PER_DAY,
    ages_in_months,
    birth_days,
    known_ms,
    memberships_from_children,
    series_to_ms,
)
from triage.vocab import (
    LIST_SEPARATOR,
    Agency,
    Concern,
    DecisionKind,
    EventKind,
    InjurySite,
    ReferrerRelationship,
    ReferrerType,
)

CONCERN_BITS = {c.value: 1 << i for i, c in enumerate(Concern)}
HEAD_FACE_NECK = InjurySite.head_face_neck.value
INT64_MAX = np.iinfo(np.int64).max
THREADS = 2
"""Worker threads: numpy releases the GIL in the sorts, searches and masks that dominate."""


@dataclass
class Table:
    """One source's records as arrays: entity codes, times, and the columns filters read."""

    child: np.ndarray
    household: np.ndarray
    t_ms: np.ndarray
    columns: dict[str, np.ndarray]


def _vocabulary_codes(column: pd.Series, vocabulary: tuple[str, ...]) -> np.ndarray:
    """Position of each value in ``vocabulary`` (-1 for nulls and unknown values), as int16."""
    found = pc.index_in(pa.chunked_array(arrow_chunks(column)), value_set=pa.array(vocabulary))
    return codes_of(found).astype(np.int16)  # small codes: 8.7M events' columns stay small


def _lookup(codes: list[int], size: int) -> np.ndarray:
    """A table for ``table[code]``: True at ``codes``, False elsewhere and at -1 (unknown)."""
    table = np.zeros(size + 1, dtype=bool)
    table[codes] = True
    return table


def _taken(column: pd.Series, rows: np.ndarray) -> pa.Array:
    """Some rows of a string column, as one Arrow array (the whole column is not joined)."""
    taken = pa.chunked_array(arrow_chunks(column)).take(pa.array(rows))
    return taken.combine_chunks() if isinstance(taken, pa.ChunkedArray) else taken


def _bitmask(lists: pd.Series, bits: dict[str, int]) -> np.ndarray:
    """``;``-joined codes as integer bitmasks, computed once per distinct string."""
    encoded = arrow_array(lists).cast(pa.string()).dictionary_encode()
    masks = np.zeros(len(encoded.dictionary), dtype=np.int64)
    for i, cell in enumerate(encoded.dictionary.to_pylist()):
        for item in (cell or "").split(LIST_SEPARATOR):
            masks[i] |= bits.get(item, 0)
    codes = codes_of(encoded.indices)
    return np.where(codes >= 0, masks[np.maximum(codes, 0)], 0)


def _expand(starts: np.ndarray, stops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (i, k) with ``starts[i] <= k < stops[i]``, as two index arrays."""
    n = np.maximum(stops - starts, 0)
    left = np.repeat(np.arange(starts.size), n)
    right = np.repeat(starts - np.cumsum(n) + n, n) + np.arange(left.size)
    return left, right


def _stable_order_by_code(
    codes: np.ndarray, time_order: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rows with a code (>= 0) by (code, time, row), and their codes in that order.

    The time order, stably sorted by code: equal to a stable argsort of the packed (code,
    time) key, but by 16-bit radix passes (numpy radix-sorts 16-bit integers) instead of a
    comparison sort of 8.7M int64 keys. The codes come back too: gathering them again at
    random costs as much as a pass.
    """
    # int32 rows and codes halve the transient memory of each pass (both stay below 2**31).
    order: NDArray[np.int32] = time_order[codes[time_order] >= 0].astype(np.int32)
    ordered: NDArray[np.int32] = codes[order].astype(np.int32)
    shift = 0
    while shift == 0 or (ordered.size and int(ordered.max()) >> shift):
        step: np.ndarray = np.argsort(
            ((ordered >> shift) & 0xFFFF).astype(np.uint16), kind="stable"
        )
        order, ordered = order[step], ordered[step]
        del step
        shift += 16
    return order.astype(np.intp), ordered


VOCABULARIES: dict[str, tuple[str, ...]] = {
    "referrer_type": tuple(v.value for v in ReferrerType),
    "referrer_relationship": tuple(v.value for v in ReferrerRelationship),
    "kind": tuple(v.value for v in EventKind),
    "agency": tuple(v.value for v in Agency),
    "decision": tuple(v.value for v in DecisionKind),
}


SORTED_SOURCES = (Source.referrals, Source.events, Source.decisions)
"""Sources sorted once per entity on the packed key; memberships go by ``People``."""


class BatchBuilder:
    """Holds an extract's records in array form and computes signals for its referrals.

    ``memberships`` and ``persons`` are the extract's own; without memberships, each child
    lives in its household since birth (an extract written before vocabulary 2).
    """

    def __init__(
        self,
        children: pd.DataFrame,
        referrals: pd.DataFrame,
        events: pd.DataFrame,
        decisions: pd.DataFrame,
        *,
        persons: pd.DataFrame | None = None,
        memberships: pd.DataFrame | None = None,
    ) -> None:
        self._children = children
        self._referrals = referrals
        self._events = events
        self._decisions = decisions
        self._persons = persons
        self._memberships = (
            memberships_from_children(children) if memberships is None else memberships
        )
        self._cache: dict[tuple[Entity, Source], tuple[np.ndarray, np.ndarray]] = {}
        self._late_cache: dict[Entity, tuple[np.ndarray, np.ndarray]] = {}
        self._time_orders: dict[Source, np.ndarray] = {}
        self._prepare()

    def _prepare(self) -> None:
        refs, events, decisions = self._referrals, self._events, self._decisions
        members = self._memberships
        with ThreadPoolExecutor(THREADS) as pool:
            by_child = pool.submit(encode_together, refs["child_id"], events["child_id"])
            by_household = pool.submit(
                encode_together,
                refs["household_id"],
                events["household_id"],
                members["household_id"],
            )
            (ref_child, ev_child) = by_child.result()
            (ref_hh, ev_hh, member_hh) = by_household.result()
        vocab = VOCABULARIES
        self.referrals = Table(
            ref_child,
            ref_hh,
            series_to_ms(refs["received_at"]),
            {
                "referrer_type": _vocabulary_codes(refs["referrer_type"], vocab["referrer_type"]),
                "referrer_relationship": _vocabulary_codes(
                    refs["referrer_relationship"], vocab["referrer_relationship"]
                ),
                "referrer_id": encode_together(refs["referrer_id"])[0],
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
                "kind": _vocabulary_codes(events["kind"], vocab["kind"]),
                "agency": _vocabulary_codes(events["agency"], vocab["agency"]),
            },
        )
        self.events_known = known_ms(events, self.events.t_ms)
        """When each event became known (``recorded_at``; its ``occurred_at`` when absent)."""
        late = self.events_known > self.events.t_ms
        self._late: np.ndarray | None = late if late.any() else None
        """Events recorded after they occurred (None when there are none: no extra work)."""
        self._longest_delay = (
            int((self.events_known - self.events.t_ms).max()) if self._late is not None else 0
        )
        referral_ids = arrow_array(refs["referral_id"]).cast(pa.string())
        decided = codes_of(
            pc.index_in(
                arrow_array(decisions["referral_id"]).cast(pa.string()), value_set=referral_ids
            )
        )
        known = decided >= 0
        rows = decided[known]
        self.decisions = Table(
            self.referrals.child[rows],
            self.referrals.household[rows],
            series_to_ms(decisions["decided_at"])[known],
            {"decision": _vocabulary_codes(decisions["decision"], vocab["decision"])[known]},
        )
        all_t = np.concatenate([self.referrals.t_ms, self.events.t_ms, self.decisions.t_ms])
        longest_window = max((s.window_days or 0) for s in CATALOGUE) * MS_PER_DAY
        self._t0 = int(all_t.min()) - longest_window - 1
        # One more than the latest time: an open membership end sits after every referral.
        self._span = int(all_t.max()) - self._t0 + 2
        self.people = self._people(member_hh, ref_hh)
        n_codes = (
            int(
                max(
                    ref_child.max(initial=0),
                    ref_hh.max(initial=0),
                    ev_child.max(initial=0),
                    ev_hh.max(initial=0),
                    member_hh.max(initial=0),
                    self.people.tables.person.max(initial=0),
                    self.people.ref_person.max(initial=0),
                )
            )
            + 2
        )
        if n_codes * self._span >= INT64_MAX:
            raise ValueError("extract too large for a packed int64 key: split it by period")
        child_position = codes_of(
            pc.index_in(
                arrow_array(refs["child_id"]).cast(pa.string()),
                value_set=arrow_array(self._children["child_id"]).cast(pa.string()),
            )
        )
        if (child_position < 0).any():
            raise ValueError("referrals name children missing from the children table")
        dob = pd.to_datetime(self._children["date_of_birth"]).to_numpy(dtype="datetime64[D]")
        received = (self.referrals.t_ms // MS_PER_DAY).astype("datetime64[D]")
        self.age_months = ages_in_months(dob[child_position], received)
        # Referrals sorted by (entity, time) once: searchsorted with sorted needles is far faster.
        with ThreadPoolExecutor(THREADS) as pool:
            orders = pool.map(
                self._query_order_of, ((Entity.child, ref_child), (Entity.household, ref_hh))
            )
            self._query_order = dict(orders)
        self.people.household_order = self._query_order[Entity.household][0]
        if np.array_equal(self.people.ref_person, ref_child):  # numbered IDs: the same codes
            self.people.child_order = self._query_order[Entity.child][0]

    def _people(self, member_hh: np.ndarray, ref_hh: np.ndarray) -> People:
        """Memberships and the records membership signals read, in array form."""
        members, events = self._memberships, self._events
        kind = self.events.columns["kind"]
        wanted = [VOCABULARIES["kind"].index(k) for k in sorted(PERSON_RECORD_KINDS)]
        about = np.flatnonzero(_lookup(wanted, len(VOCABULARIES["kind"]))[kind])
        # A record about each person an event names, as its person_id or its child_id.
        child = _taken(events["child_id"], about)
        if "person_id" in events:
            adult = _taken(events["person_id"], about)
            twice = pc.fill_null(pc.equal(adult, child), False).to_numpy(zero_copy_only=False)
            child = pc.if_else(pa.array(twice), pa.nulls(len(child), pa.string()), child)
        else:
            adult = pa.nulls(len(child), pa.string())
        subjects = pa.concat_arrays([adult, child])
        about = np.concatenate([about, about])
        born = birth_days(self._children, self._persons)
        ref_person, member_person, record_person, born_person = encode_together(
            self._referrals["child_id"],
            members["person_id"],
            subjects.to_pandas(),
            born.index.to_series(),
        )
        joined = series_to_ms(members["joined_at"])
        left_at = members["left_at"]
        left = np.where(
            left_at.notna().to_numpy(), series_to_ms(left_at.fillna(EPOCH_TIMESTAMP)), NEVER
        )
        # Each member's birth day by person code (NaN for a person without a record).
        by_code = np.full(
            int(max(member_person.max(initial=0), born_person.max(initial=0))) + 1, np.nan
        )
        by_code[born_person[born_person >= 0]] = born.to_numpy()[born_person >= 0]
        days = np.where(member_person >= 0, by_code[np.maximum(member_person, 0)], np.nan)
        at_birth = np.floor_divide(joined, MS_PER_DAY) == np.nan_to_num(days, nan=-(2**40))
        tables = PeopleTables(
            household=member_hh,
            person=member_person,
            role=_vocabulary_codes(members["role"], ROLES),
            joined=joined,
            left=left.astype(np.int64),
            at_birth=at_birth,
            record_person=record_person,
            record_kind=kind[about],
            record_t=self.events.t_ms[about],
            record_known=self.events_known[about],
        )
        return People(tables, ref_hh, ref_person, self.referrals.t_ms, self._t0, self._span)

    def _query_order_of(
        self, entity_codes: tuple[Entity, np.ndarray]
    ) -> tuple[Entity, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        entity, codes = entity_codes
        keys = self._key(codes, self.referrals.t_ms)
        order = np.argsort(keys, kind="stable")
        return entity, (order, codes[order], keys[order])

    def _key(self, codes: np.ndarray, t_ms: np.ndarray) -> np.ndarray:
        key: np.ndarray = codes.astype(np.int64, copy=False) * self._span
        key += t_ms
        key -= self._t0
        return key

    def _table(self, source: Source) -> Table:
        return {
            Source.referrals: self.referrals,
            Source.events: self.events,
            Source.decisions: self.decisions,
        }[source]

    def _mask(self, table: Table, flt: Filter, rows: np.ndarray | None = None) -> np.ndarray:
        """Rows of ``table`` (or just ``rows`` of it) that pass ``flt``."""
        cols = table.columns
        if rows is not None:
            cols = {name: column[rows] for name, column in cols.items()}
        mask = np.ones(table.t_ms.size if rows is None else rows.size, dtype=bool)
        for column, wanted in (
            ("kind", flt.kinds),
            ("decision", flt.decisions),
            ("referrer_type", flt.referrer_types),
            ("referrer_relationship", flt.relationships),
        ):
            if wanted:
                codes = [VOCABULARIES[column].index(w.value) for w in wanted]
                mask &= _lookup(codes, len(VOCABULARIES[column]))[cols[column]]
        if flt.concerns:
            bits = sum(CONCERN_BITS[c.value] for c in flt.concerns)
            mask &= (cols["concerns"] & bits) != 0
        if flt.injury_reported is not None:
            mask &= cols["injury_reported"] == flt.injury_reported
        if flt.injury_head_face_neck is not None:
            mask &= cols["head_face_neck"] == flt.injury_head_face_neck
        return mask

    def _all_sorted(self, entity: Entity, source: Source) -> tuple[np.ndarray, np.ndarray]:
        """Every record of a source with an entity, sorted once on the packed key (cached)."""
        cache_key = (entity, source)
        if cache_key not in self._cache:
            table = self._table(source)
            codes = table.child if entity is Entity.child else table.household
            rows, sorted_codes = _stable_order_by_code(codes, self._time_order(source))
            self._cache[cache_key] = (self._key(sorted_codes, table.t_ms[rows]), rows)
        return self._cache[cache_key]

    def _time_order(self, source: Source) -> np.ndarray:
        """Rows of a source by time, ties by row (cheap when the extract is in time order)."""
        if source not in self._time_orders:
            self._time_orders[source] = np.argsort(self._table(source).t_ms, kind="stable")
        return self._time_orders[source]

    def _sorted(self, signal: Signal, extra: Filter | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Sorted packed keys of the records a signal reads, with their rows (a filtered view)."""
        flt = extra or signal.filter
        keys, rows = self._all_sorted(signal.entity, signal.source)
        table = self._table(signal.source)
        mask = self._mask(table, flt)
        if signal.distinct_of:
            mask &= table.columns[signal.distinct_of] >= 0
        keep = mask[rows]  # filtering a sorted array keeps it sorted: no second sort
        if keep.all():  # no copy when nothing is filtered out (two threads share the peak)
            return keys, rows
        return keys[keep], rows[keep]

    def _window(self, signal: Signal, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For every referral, the ``[lo, hi)`` slice of ``keys`` inside its window."""
        order, codes, query_keys = self._query_order[signal.entity]
        hi_sorted = np.searchsorted(keys, query_keys, side="left")
        if signal.window_days is None:
            lo_sorted = np.searchsorted(keys, codes * self._span, side="left")
        else:
            shift = signal.window_days * MS_PER_DAY
            lo_sorted = np.searchsorted(keys, query_keys - shift, side="left")
        lo, hi = np.empty_like(lo_sorted), np.empty_like(hi_sorted)
        lo[order], hi[order] = lo_sorted, hi_sorted
        return lo, hi

    def signal(self, signal: Signal) -> np.ndarray:
        """One signal for every referral, as float64."""
        if signal.source is Source.referral:
            return self._current(signal)
        if signal.source is Source.memberships:
            return self.people.membership_signal(signal)
        if signal.source is Source.household_changes:
            return self.people.changes_signal(signal)
        if signal.aggregation is Aggregation.max_same_concern:
            return self._max_same_concern(signal)
        keys, rows = self._sorted(signal)
        lo, hi = self._window(signal, keys)
        follows = signal.entity is Entity.household and signal.source is Source.events
        late = self._late_for(signal)
        if signal.aggregation is Aggregation.distinct_count and (follows or late is not None):
            return self._distinct_recounted(signal, keys, rows, lo, hi, follows, late)
        count: NDArray[np.float64] = (hi - lo).astype(np.float64)
        if follows:  # the earlier households' events, while the child lived there
            stays = self.people.stay_counts(keys, signal.window_days)
            count += np.bincount(stays[0], weights=stays[1], minlength=count.size)
            if self._late is not None:  # less those not yet recorded at the referral
                stay, _ = self._late_in_stays(keys, rows, stays)
                count -= np.bincount(stays[0][stay], minlength=count.size)
        elif signal.aggregation is Aggregation.days_since and signal.entity is Entity.household:
            raise ValueError(f"{signal.name}: days since a household record is not supported")
        if late is not None:  # events in the window not yet recorded at the referral
            if signal.aggregation is Aggregation.days_since and late[1].size:
                raise ValueError(f"{signal.name}: days since an event recorded late: unsupported")
            count -= np.bincount(late[1], minlength=count.size)
        agg = signal.aggregation
        if agg is Aggregation.count:
            return count
        if agg is Aggregation.exists:
            return (count > 0).astype(np.float64)
        if agg is Aggregation.days_since:
            table = self._table(signal.source)
            last = table.t_ms[rows[np.maximum(hi - 1, 0)]] if rows.size else np.zeros(hi.size)
            days = (self.referrals.t_ms - last) / MS_PER_DAY
            since: np.ndarray = np.where(hi > lo, days, np.nan)
            return since
        if agg is Aggregation.distinct_count:
            return self._distinct(signal, keys, rows, lo, hi)
        raise ValueError(f"{signal.name}: aggregation {agg} does not apply to history")

    def _distinct(
        self,
        signal: Signal,
        keys: np.ndarray,
        rows: np.ndarray,
        lo: np.ndarray,
        hi: np.ndarray,
    ) -> np.ndarray:
        """Distinct values per window: count records whose next same-valued record is later."""
        table = self._table(signal.source)
        if signal.distinct_of is None:
            raise ValueError(f"{signal.name}: a distinct count names the field it counts")
        values = table.columns[signal.distinct_of][rows]
        # Positions grouped by value, in key order within a value: a stable sort of the small
        # (int16) values is a radix sort, far cheaper than sorting packed (entity, value) keys.
        by_value = np.argsort(values, kind="stable").astype(np.int32)  # rows < 2**31
        # Position (in key order) of the next record with the same entity and value.
        next_pos = np.full(keys.size, np.iinfo(np.int32).max, dtype=np.int32)
        value_sorted = values[by_value]
        same = value_sorted[1:] == value_sorted[:-1]
        del value_sorted
        entity_sorted = keys[by_value]
        entity_sorted //= self._span
        same &= entity_sorted[1:] == entity_sorted[:-1]
        del entity_sorted
        next_pos[by_value[:-1][same]] = by_value[1:][same]
        del by_value, same
        result = np.zeros(lo.size, dtype=np.float64)
        active = np.flatnonzero(hi > lo)
        offset = 0
        while active.size:
            pos = lo[active] + offset
            result[active] += next_pos[pos] >= hi[active]
            offset += 1
            active = active[lo[active] + offset < hi[active]]
        return result

    def _distinct_recounted(
        self,
        signal: Signal,
        keys: np.ndarray,
        rows: np.ndarray,
        lo: np.ndarray,
        hi: np.ndarray,
        follows: bool,
        late: tuple[np.ndarray, np.ndarray] | None,
    ) -> np.ndarray:
        """A distinct count over the window, the child's stays (``follows``: a household's
        events) and less the events not yet recorded (``late``).

        Referrals with no record in a stay and none recorded late keep the single-window
        count; the others count, value by value, what is present in the window or a stay once
        the late records are taken off.
        """
        result = self._distinct(signal, keys, rows, lo, hi)
        if signal.distinct_of is None:
            raise ValueError(f"{signal.name}: a distinct count names the field it counts")
        no_pairs = (np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp))
        stays = self.people.stay_counts(keys, signal.window_days) if follows else None
        ref, extra, stay_lo, stay_hi = stays if stays is not None else (no_pairs[0],) * 4
        late_rows, late_refs = late if late is not None else no_pairs
        stay_late, stay_late_rows = (
            self._late_in_stays(keys, rows, stays)
            if stays is not None and self._late is not None
            else no_pairs
        )
        touched = np.unique(np.concatenate([ref[extra > 0], late_refs]))
        if not touched.size:
            return result
        column = self._table(signal.source).columns[signal.distinct_of]
        values = column[rows]
        index = np.full(result.size, -1, dtype=np.int64)
        index[touched] = np.arange(touched.size)
        in_stays = index[ref] >= 0
        ref_t, s_lo, s_hi = index[ref[in_stays]], stay_lo[in_stays], stay_hi[in_stays]
        entity = self.referrals.child if signal.entity is Entity.child else self.referrals.household
        codes = entity[touched]
        q_hi = self._key(codes, self.referrals.t_ms[touched])
        if signal.window_days is None:
            q_lo = codes * self._span
        else:
            q_lo = q_hi - signal.window_days * MS_PER_DAY
        late_values, late_at = column[late_rows], index[late_refs]
        stay_late_values, stay_late_at = column[stay_late_rows], index[ref[stay_late]]
        distinct = np.zeros(touched.size, dtype=np.float64)
        for value in np.unique(values[values >= 0]):
            mine = keys[values == value]
            here = np.searchsorted(mine, q_hi) - np.searchsorted(mine, q_lo)
            here -= np.bincount(late_at[late_values == value], minlength=touched.size)
            there = np.bincount(
                ref_t,
                weights=np.searchsorted(mine, s_hi) - np.searchsorted(mine, s_lo),
                minlength=touched.size,
            )
            there -= np.bincount(stay_late_at[stay_late_values == value], minlength=touched.size)
            distinct += (here + there) > 0
        result[touched] = distinct
        return result

    def _late_pairs(self, entity: Entity) -> tuple[np.ndarray, np.ndarray]:
        """(event row, referral) for each referral of an entity received after one of its
        events occurred but not after it was recorded: in the window, not yet known (cached)."""
        if entity not in self._late_cache:
            if self._late is None:
                raise ValueError("no event was recorded after it occurred")
            keys, rows = self._all_sorted(entity, Source.events)
            at = np.flatnonzero(self._late[rows])
            late_keys = keys[at]
            order, _, query_keys = self._query_order[entity]
            # The first referral received after each late event, by counting the referrals
            # at or before it (fewer referrals than events: they are the needles).
            below = np.searchsorted(late_keys, query_keys, side="left")
            first = np.cumsum(np.bincount(below, minlength=late_keys.size + 1))[:-1]
            # Only events followed by a referral of their own entity go on (cheap: that
            # referral's key is in order), then only those it preceded before they were
            # recorded (known, clipped to one after the latest time: after every referral).
            some = first < query_keys.size
            some[some] = query_keys[first[some]] // self._span == late_keys[some] // self._span
            at, first = at[some], first[some]
            known = np.minimum(self.events_known[rows[at]], self._t0 + self._span - 1)
            known_keys = self._key(keys[at] // self._span, known)
            some = query_keys[first] <= known_keys
            at, first, known_keys = at[some], first[some], known_keys[some]
            last = np.searchsorted(query_keys, known_keys, side="right")  # ...up to recorded
            pair, position = _expand(first, last)
            self._late_cache[entity] = (rows[at[pair]], order[position])
        return self._late_cache[entity]

    def _late_for(self, signal: Signal) -> tuple[np.ndarray, np.ndarray] | None:
        """The late (event row, referral) pairs inside a signal's filter and window, or None
        when the signal reads no events or no event was recorded late."""
        if self._late is None or signal.source is not Source.events:
            return None
        event_rows, refs = self._late_pairs(signal.entity)
        ok = self._mask(self.events, signal.filter, event_rows)
        if signal.distinct_of:
            ok &= self.events.columns[signal.distinct_of][event_rows] >= 0
        if signal.window_days is not None:
            start = self.referrals.t_ms[refs] - signal.window_days * MS_PER_DAY
            ok &= self.events.t_ms[event_rows] >= start
        return event_rows[ok], refs[ok]

    def _late_in_stays(
        self, keys: np.ndarray, rows: np.ndarray, stays: tuple[np.ndarray, ...]
    ) -> tuple[np.ndarray, np.ndarray]:
        """(stay, event row) for the events a stay's window counts (``keys``, ``rows``: a
        signal's household events) that were not yet recorded at the stay's referral."""
        if self._late is None:
            raise ValueError("no event was recorded after it occurred")
        ref, _, lo, hi = stays
        at = np.flatnonzero(self._late[rows])
        late_keys = keys[at]
        t = self.referrals.t_ms[ref]
        # Only events within the longest delay before the referral can still be unknown.
        recent = self._key(lo // self._span, np.maximum(t - self._longest_delay, self._t0))
        first = np.searchsorted(late_keys, np.maximum(lo, recent), side="left")
        last = np.searchsorted(late_keys, hi, side="left")
        stay, position = _expand(first, last)
        event_rows = rows[at[position]]
        unknown = self.events_known[event_rows] >= t[stay]
        return stay[unknown], event_rows[unknown]

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
        history = {(s.entity, s.source) for s in signals if s.source in SORTED_SOURCES}
        # Biggest sources first so the two threads finish together.
        heavy_first = sorted(
            range(len(signals)), key=lambda i: signals[i].source is not Source.events
        )
        # Each signal goes straight into its row of the frame's one block: no copy at the end.
        matrix = np.empty((len(signals), self.referrals.t_ms.size), dtype=np.float64)

        def into_row(i: int) -> None:
            matrix[i] = self.signal(signals[i])

        with ThreadPoolExecutor(THREADS) as pool:
            # Sorted sources are shared by many signals: build each once before the signals
            # (two at a time: 1.5 s sooner at 1M; the peak is in the signals, not here).
            for source in {source for _, source in history}:
                self._time_order(source)
            list(pool.map(lambda pair: self._all_sorted(*pair), sorted(history)))
            self._time_orders.clear()  # only the sorts needed them
            if self._late is not None:  # shared by the event signals of each entity
                late = [entity for entity, source in sorted(history) if source is Source.events]
                list(pool.map(self._late_pairs, late))
            list(pool.map(into_row, heavy_first))
        self._cache.clear()  # the sorted sources are done with: free them before the frame
        self._late_cache.clear()
        return pd.DataFrame(
            matrix.T,
            index=pd.Index(self._referrals["referral_id"], name="referral_id"),
            columns=[s.name for s in signals],
            copy=False,
        )


def build_features(
    children: pd.DataFrame,
    referrals: pd.DataFrame,
    events: pd.DataFrame,
    decisions: pd.DataFrame,
    signals: tuple[Signal, ...] = CATALOGUE,
    *,
    persons: pd.DataFrame | None = None,
    memberships: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every signal for every referral of an extract, each as of its own ``received_at``."""
    builder = BatchBuilder(
        children, referrals, events, decisions, persons=persons, memberships=memberships
    )
    return builder.build(signals)


class ExtractTables(Protocol):
    """What the builder reads of an extract (``triage.store.extract.read_extract``'s world)."""

    children: pd.DataFrame
    referrals: pd.DataFrame
    events: pd.DataFrame
    decisions: pd.DataFrame
    persons: pd.DataFrame | None
    household_memberships: pd.DataFrame | None


def features_of(world: ExtractTables, events: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every signal for every referral of an extract read into memory (``events`` instead of
    the world's own, if given)."""
    return build_features(
        world.children,
        world.referrals,
        world.events if events is None else events,
        world.decisions,
        persons=world.persons,
        memberships=world.household_memberships,
    )
