"""Who lives with the child, pointwise: the rules the batch builder vectorises (``household``).

For a referral of child C to household H at time t (every membership and record strictly
before t, as for every source):

- **members** are the memberships of H other than C's own, joined before t; one *lives there*
  at t unless it left before t (a leaving date at or after t is not known yet);
- a member's **records** are the events naming that person (as ``person_id`` or ``child_id``)
  that occurred and were recorded before t; a record is *in force* unless such a record ending
  it (``ENDED_BY``) about the same person followed (occurred) at or after it;
- **changes** are the joins (not at birth) and leaves, in the window, of H's memberships and of
  C's own memberships anywhere (the child's moves);
- **stays**: C's memberships of other households; an event of such a household counts for a
  household signal of H if it happened while C lived there, ``joined <= event < left``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from features.catalogue import ENDED_BY, Aggregation, Filter, Signal
from features.records import (
    MS_PER_DAY,
    EventRecord,
    MembershipRecord,
    PersonRecord,
    ReferralRecord,
)

_ENDS = {kind.value: ender.value for kind, ender in ENDED_BY.items()}


def stays_elsewhere(
    query: ReferralRecord, memberships: Iterable[MembershipRecord]
) -> list[tuple[str, int, int | None]]:
    """The child's stays in households other than the referral's: (household, joined, left)."""
    return [
        (m.household_id, m.joined_ms, m.left_ms)
        for m in memberships
        if m.person_id == query.child_id and m.household_id != query.household_id
    ]


def during_a_stay(event: EventRecord, stays: list[tuple[str, int, int | None]]) -> bool:
    """Whether an event happened in a household while the child lived there."""
    return any(
        event.household_id == household
        and joined <= event.t_ms
        and (left is None or event.t_ms < left)
        for household, joined, left in stays
    )


class Members:
    """One referral's household members, their records and the household's changes."""

    def __init__(
        self,
        query: ReferralRecord,
        memberships: Iterable[MembershipRecord],
        records: Iterable[PersonRecord],
    ) -> None:
        t = query.t_ms
        known = [m for m in memberships if m.joined_ms < t]
        known.sort(key=lambda m: (m.joined_ms, m.membership_id))
        self.members = [
            m
            for m in known
            if m.household_id == query.household_id and m.person_id != query.child_id
        ]
        self.changing = [
            m
            for m in known
            if m.household_id == query.household_id or m.person_id == query.child_id
        ]
        people = {m.person_id for m in self.members}
        self.records: dict[str, list[PersonRecord]] = defaultdict(list)
        for r in sorted(records, key=lambda r: (r.t_ms, r.event_id)):
            if r.t_ms < t and r.known_ms < t and r.person_id in people:
                self.records[r.person_id].append(r)

    def in_force(self, person_id: str, kinds: tuple[str, ...]) -> list[PersonRecord]:
        """The person's records of these kinds before the referral and not since ended."""
        records = self.records.get(person_id, [])
        out = []
        for r in records:
            if r.kind not in kinds:
                continue
            ender = _ENDS.get(r.kind)
            if ender is not None and any(e.kind == ender and e.t_ms >= r.t_ms for e in records):
                continue
            out.append(r)
        return out


def membership_signal(
    signal: Signal, query: ReferralRecord, members: Members
) -> tuple[float, tuple[str, ...]]:
    """A ``Source.memberships`` signal: value and the membership and record IDs behind it."""
    flt: Filter = signal.filter
    t = query.t_ms
    chosen: list[tuple[int, str]] = []
    count = 0
    for m in members.members:
        if flt.roles and m.role not in flt.roles:
            continue
        if flt.lives_there and m.left_ms is not None and m.left_ms < t:
            continue
        if signal.window_days is not None and m.joined_ms < t - signal.window_days * MS_PER_DAY:
            continue
        records: list[PersonRecord] = []
        if flt.person_records:
            records = members.in_force(m.person_id, tuple(k.value for k in flt.person_records))
            if not records:
                continue
        count += 1
        chosen.append((m.joined_ms, m.membership_id))
        chosen += [(r.t_ms, r.event_id) for r in records]
    ids = tuple(dict.fromkeys(record_id for _, record_id in sorted(chosen)))
    if signal.aggregation is Aggregation.count:
        return float(count), ids
    if signal.aggregation is Aggregation.exists:
        return float(count > 0), ids
    raise ValueError(f"{signal.name}: aggregation {signal.aggregation} does not apply to members")


def changes_signal(
    signal: Signal, query: ReferralRecord, members: Members
) -> tuple[float, tuple[str, ...]]:
    """A ``Source.household_changes`` count: one membership ID per join or leave counted."""
    if signal.aggregation is not Aggregation.count:
        raise ValueError(f"{signal.name}: household changes are counted")
    t = query.t_ms
    start = -(2**62) if signal.window_days is None else t - signal.window_days * MS_PER_DAY
    points: list[tuple[int, str]] = []
    for m in members.changing:
        if not m.at_birth and start <= m.joined_ms:  # joined before t: every change is known
            points.append((m.joined_ms, m.membership_id))
        if m.left_ms is not None and start <= m.left_ms < t:
            points.append((m.left_ms, m.membership_id))
    points.sort()
    return float(len(points)), tuple(record_id for _, record_id in points)
