"""Who lives with the child, vectorised: the rules of ``features.members`` for every referral.

Each membership signal becomes a set of intervals of referral times: a membership counts for a
referral at t when ``a < t <= b`` (joined before t; not left before t; joined within the
window; a record in force at t). A sorted array of each end, keyed by household, answers every
referral with two ``searchsorted`` calls: ``#(a < t) - #(b < t)``. The child's own
memberships are taken off the same way, keyed by (household, person). Changes are points
counted in ``[t - D, t)`` by household, by person and by both. The child's stays in other
households pair each referral with the child's few memberships.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from features.catalogue import ENDED_BY, Aggregation, Signal
from features.records import MS_PER_DAY
from triage.vocab import EventKind, HouseholdRole

ROLES: tuple[str, ...] = tuple(r.value for r in HouseholdRole)
KINDS: tuple[str, ...] = tuple(k.value for k in EventKind)
NEVER = np.iinfo(np.int64).max // 4
"""An open end (no leaving date, no ending record): later than any referral."""


@dataclass
class PeopleTables:
    """Memberships and records about people as arrays, in the builder's code spaces."""

    household: np.ndarray
    person: np.ndarray
    role: np.ndarray
    joined: np.ndarray
    left: np.ndarray
    """Leaving times; ``NEVER`` while the person still lives there."""
    at_birth: np.ndarray
    record_person: np.ndarray
    record_kind: np.ndarray
    record_t: np.ndarray
    record_known: np.ndarray
    """When each record became known (its event's ``recorded_at``, at or after ``record_t``)."""


def _counts_in(keys: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Sorted ``keys`` in ``[lo, hi)`` for each pair of bounds."""
    counts: np.ndarray = np.searchsorted(keys, hi, side="left") - np.searchsorted(
        keys, lo, side="left"
    )
    return counts


def _search(
    haystack: np.ndarray, needles: np.ndarray, order: np.ndarray | None, side: str = "left"
) -> np.ndarray:
    """``np.searchsorted`` with the needles visited in ``order`` (sorted needles: far faster)."""
    if order is None:
        found: np.ndarray = np.searchsorted(haystack, needles, side=side)  # type: ignore[call-overload]
        return found
    out = np.empty(needles.size, dtype=np.intp)
    out[order] = np.searchsorted(haystack, needles[order], side=side)  # type: ignore[call-overload]
    return out


def _pairs(
    sorted_codes: np.ndarray, wanted: np.ndarray, order: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Every (i, j) with ``sorted_codes[j] == wanted[i]``, as two index arrays."""
    lo = _search(sorted_codes, wanted, order, "left")
    hi = _search(sorted_codes, wanted, order, "right")
    n = hi - lo
    left = np.repeat(np.arange(wanted.size), n)
    starts = np.repeat(lo - np.cumsum(n) + n, n)
    right = starts + np.arange(left.size)
    return left, right


@dataclass
class People:
    """Membership, change and stay signals for every referral of a batch."""

    tables: PeopleTables
    ref_household: np.ndarray
    ref_person: np.ndarray
    ref_t: np.ndarray
    t0: int
    span: int
    household_order: np.ndarray | None = None
    """Referrals by (household, time), when the builder has it: sorted needles search faster."""
    child_order: np.ndarray | None = None
    """Referrals by (child, time), when the builder's child codes are the person codes."""
    _stays: tuple[np.ndarray, ...] | None = field(default=None, init=False)
    _person_order: np.ndarray | None = field(default=None, init=False)
    _pairs_of: tuple[np.ndarray, np.ndarray] | None = field(default=None, init=False)

    def person_order(self) -> np.ndarray:
        """Referrals by (person, time)."""
        if self._person_order is None and self.child_order is not None:
            self._person_order = self.child_order
        if self._person_order is None:
            self._person_order = np.argsort(
                self.ref_person * self.span + (self.ref_t - self.t0), kind="stable"
            )
        return self._person_order

    def pair_codes(self) -> tuple[np.ndarray, np.ndarray]:
        """Dense codes of each membership's (household, person), and of each referral's (-1 if
        the child has no membership of the referral's household)."""
        if self._pairs_of is None:
            tb = self.tables
            width = int(max(tb.person.max(initial=0), self.ref_person.max(initial=0))) + 1
            unique, codes = np.unique(tb.household * width + tb.person, return_inverse=True)
            wanted = self.ref_household * width + self.ref_person
            position = np.searchsorted(unique, wanted)
            found = position < unique.size
            found[found] = unique[position[found]] == wanted[found]
            self._pairs_of = (codes.reshape(-1), np.where(found, position, -1))
        return self._pairs_of

    def _offset(self, t_ms: np.ndarray) -> np.ndarray:
        """Times as offsets within the packed key, clipped: order against referrals is kept."""
        clipped: np.ndarray = np.clip(t_ms, self.t0, self.t0 + self.span - 1) - self.t0
        return clipped

    def _count_open(
        self,
        key: np.ndarray,
        a: np.ndarray,
        b: np.ndarray,
        query_key: np.ndarray,
        order: np.ndarray | None,
    ) -> np.ndarray:
        """Per referral: intervals ``(a, b]`` of its key that hold its time (0 for key -1)."""
        counts = np.zeros(self.ref_t.size, dtype=np.int64)
        asked = None
        if order is None:  # dense pair codes: only referrals whose pair has an interval
            present = np.zeros(int(max(key.max(initial=0), query_key.max(initial=0))) + 1, bool)
            present[key] = True
            asked = np.flatnonzero((query_key >= 0) & present[np.maximum(query_key, 0)])
        if asked is not None and not asked.size:
            return counts
        starts = np.sort(key * self.span + self._offset(a))
        ends = np.sort(key * self.span + self._offset(b))
        query = query_key * self.span + (self.ref_t - self.t0)
        if asked is not None:
            query = query[asked]
            order = np.argsort(query, kind="stable")
        found: np.ndarray = _search(starts, query, order) - _search(ends, query, order)
        if asked is None:
            return found
        counts[asked] = found
        return counts

    def _in_force(self, kinds: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per person, the merged intervals ``(s, e]`` of times at which a record is in force."""
        tb = self.tables
        codes = [KINDS.index(k) for k in kinds]
        chosen = np.isin(tb.record_kind, codes)
        person, start = tb.record_person[chosen], tb.record_t[chosen]
        stop = np.full(start.size, NEVER, dtype=np.int64)
        for kind, ender in ENDED_BY.items():
            if kind.value not in kinds:
                continue
            starts = tb.record_kind[chosen] == KINDS.index(kind.value)
            ends = tb.record_kind == KINDS.index(ender.value)
            end_person = tb.record_person[ends]
            by_time = np.argsort(
                end_person * self.span + self._offset(tb.record_t[ends]), kind="stable"
            )
            end_keys = (end_person * self.span + self._offset(tb.record_t[ends]))[by_time]
            # A record ends once an ending record at or after it is known: the earliest known
            # of the person's ending records from there on (a suffix minimum; later persons'
            # packed keys are larger, so it never reaches past the person).
            known = (end_person * self.span + self._offset(tb.record_known[ends]))[by_time]
            earliest = np.minimum.accumulate(known[::-1])[::-1]
            end_times = earliest % self.span + self.t0
            want = person[starts] * self.span + self._offset(start[starts])
            first = np.searchsorted(end_keys, want, side="left")  # the first end at or after
            has = first < end_keys.size
            same = np.zeros(want.size, dtype=bool)
            same[has] = end_keys[first[has]] // self.span == person[starts][has]
            if end_keys.size:
                found = end_times[np.minimum(first, end_keys.size - 1)]
                stop[starts] = np.where(same, found, NEVER)
        start = tb.record_known[chosen]  # in force from when it became known
        keep = start < stop
        person, start, stop = person[keep], start[keep], stop[keep]
        order = np.lexsort((start, person))
        person, start, stop = person[order], start[order], stop[order]
        # Merge overlapping intervals of one person: a new block where the start passes every
        # earlier end of that person (a new person always starts one).
        packed_stop = person * self.span + self._offset(stop)
        packed_start = person * self.span + self._offset(start)
        reach = np.maximum.accumulate(packed_stop) if packed_stop.size else packed_stop
        new = np.ones(person.size, dtype=bool)
        new[1:] = (packed_start[1:] > reach[:-1]) | (person[1:] != person[:-1])
        block = np.cumsum(new) - 1
        ends = np.full(int(new.sum()), -1, dtype=np.int64)
        np.maximum.at(ends, block, stop)
        return person[new], start[new], ends

    def membership_signal(self, signal: Signal) -> np.ndarray:
        """A ``Source.memberships`` signal for every referral."""
        tb, flt = self.tables, signal.filter
        rows = np.ones(tb.person.size, dtype=bool)
        if flt.roles:
            rows &= np.isin(tb.role, [ROLES.index(r.value) for r in flt.roles])
        rows_idx = np.flatnonzero(rows)
        a = tb.joined[rows_idx]
        b = tb.left[rows_idx] if flt.lives_there else np.full(a.size, NEVER, dtype=np.int64)
        if signal.window_days is not None:
            b = np.minimum(b, a + signal.window_days * MS_PER_DAY)
        if flt.person_records:
            person, start, stop = self._in_force(tuple(k.value for k in flt.person_records))
            m, r = _pairs(person, tb.person[rows_idx])  # few memberships: no order needed
            rows_idx, a, b = rows_idx[m], np.maximum(a[m], start[r]), np.minimum(b[m], stop[r])
        keep = a < b
        rows_idx, a, b = rows_idx[keep], a[keep], b[keep]
        member_pair, ref_pair = self.pair_codes()
        count: np.ndarray = self._count_open(
            tb.household[rows_idx], a, b, self.ref_household, self.household_order
        ) - self._count_open(member_pair[rows_idx], a, b, ref_pair, None)
        if signal.aggregation is Aggregation.count:
            values: np.ndarray = count.astype(np.float64)
            return values
        if signal.aggregation is Aggregation.exists:
            present: np.ndarray = (count > 0).astype(np.float64)
            return present
        raise ValueError(f"{signal.name}: aggregation {signal.aggregation} does not apply")

    def changes_signal(self, signal: Signal) -> np.ndarray:
        """A ``Source.household_changes`` count for every referral."""
        tb = self.tables
        joins = np.flatnonzero(~tb.at_birth)
        leaves = np.flatnonzero(tb.left < NEVER)
        rows = np.concatenate([joins, leaves])
        when = np.concatenate([tb.joined[joins], tb.left[leaves]])
        member_pair, ref_pair = self.pair_codes()
        t_off = self.ref_t - self.t0
        window = None if signal.window_days is None else signal.window_days * MS_PER_DAY
        total = np.zeros(self.ref_t.size, dtype=np.int64)
        for key, query_key, order, sign in (
            (tb.household[rows], self.ref_household, self.household_order, 1),
            (tb.person[rows], self.ref_person, self.person_order(), 1),
            # The child's own memberships of the household were counted twice above.
            (member_pair[rows], ref_pair, None, -1),
        ):
            asked = np.flatnonzero(query_key >= 0) if order is None else np.arange(t_off.size)
            points = np.sort(key * self.span + self._offset(when))
            base = query_key[asked] * self.span
            hi = base + t_off[asked]
            lo = base if window is None else base + self._offset(self.ref_t[asked] - window)
            if order is None:
                order = np.argsort(hi, kind="stable")
            counts = _search(points, hi, order) - _search(points, lo, order)
            total[asked] += sign * counts
        return total.astype(np.float64)

    def stays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(referral, household, joined, left) of each stay of the child in another household
        begun before the referral; a child's overlapping stays in one household merged."""
        if self._stays is None:
            tb = self.tables
            by_person = np.argsort(tb.person * self.span + self._offset(tb.joined), kind="stable")
            ref, j = _pairs(tb.person[by_person], self.ref_person, self.person_order())
            stay = by_person[j]
            keep = (tb.household[stay] != self.ref_household[ref]) & (
                tb.joined[stay] < self.ref_t[ref]
            )
            ref, stay = ref[keep], stay[keep]
            # Few stays remain: merge overlapping ones of a referral in one household (shared
            # care, returns), a new block where a stay begins after the group's earlier ends.
            order = np.lexsort((tb.joined[stay], tb.household[stay], ref))
            ref, household = ref[order], tb.household[stay][order]
            joined, left = tb.joined[stay][order], tb.left[stay][order]
            group = np.ones(ref.size, dtype=bool)
            group[1:] = (ref[1:] != ref[:-1]) | (household[1:] != household[:-1])
            code = np.cumsum(group) - 1
            reach = np.maximum.accumulate(code * self.span + self._offset(left))
            new = group.copy()
            new[1:] |= code[1:] * self.span + self._offset(joined[1:]) > reach[:-1]
            starts = np.flatnonzero(new)
            ends = np.maximum.reduceat(left, starts) if starts.size else left
            self._stays = (ref[starts], household[starts], joined[starts], ends)
        ref, household, joined, left = self._stays
        return ref, household, joined, left

    def stay_counts(self, keys: np.ndarray, window_days: int | None) -> tuple[np.ndarray, ...]:
        """Per stay: its referral and the ``keys`` (household-keyed, sorted) in the window
        while the child lived there; also the bounds, for per-value counts."""
        ref, household, joined, left = self.stays()
        t = self.ref_t[ref]
        lo_t = joined if window_days is None else np.maximum(joined, t - window_days * MS_PER_DAY)
        hi_t = np.minimum(left, t)
        lo = household * self.span + self._offset(lo_t)
        hi = household * self.span + self._offset(np.maximum(hi_t, lo_t))
        return ref, _counts_in(keys, lo, hi), lo, hi
