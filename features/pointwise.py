"""The catalogue for one referral over its history, with the records behind every value."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from features.catalogue import CATALOGUE, Aggregation, Entity, Filter, Signal, Source
from features.members import (
    Members,
    changes_signal,
    during_a_stay,
    membership_signal,
    stays_elsewhere,
)
from features.records import (
    MS_PER_DAY,
    DecisionRecord,
    EventRecord,
    History,
    ReferralRecord,
    age_in_months,
)
from triage.vocab import InjurySite

Record = ReferralRecord | EventRecord | DecisionRecord


@dataclass(frozen=True)
class SignalValue:
    """A signal's value for one referral and the IDs of the records that produced it."""

    value: float
    record_ids: tuple[str, ...]


def record_id(record: Record) -> str:
    """The ID a page links to."""
    if isinstance(record, EventRecord):
        return record.event_id
    return record.referral_id


def passes(flt: Filter, record: Record) -> bool:
    """Whether a record satisfies a signal's filter."""
    if isinstance(record, EventRecord):
        return not flt.kinds or record.kind in flt.kinds
    if isinstance(record, DecisionRecord):
        return not flt.decisions or record.decision in flt.decisions
    if flt.referrer_types and record.referrer_type not in flt.referrer_types:
        return False
    if flt.relationships and record.referrer_relationship not in flt.relationships:
        return False
    if flt.concerns and not record.concerns & set(flt.concerns):
        return False
    if flt.injury_reported is not None and record.injury_reported != flt.injury_reported:
        return False
    head = InjurySite.head_face_neck.value in record.injury_sites
    return flt.injury_head_face_neck is None or head == flt.injury_head_face_neck


def known_before(record: Record, t_ms: int) -> bool:
    """The time rule: a record counts if it happened before ``t_ms`` and, for an event, was
    also recorded (shared by its agency) before it."""
    if isinstance(record, EventRecord):
        return record.t_ms < t_ms and record.known_ms < t_ms
    return record.t_ms < t_ms


class _Prepared:
    """One referral's history: records strictly before it, by source and entity, oldest first.

    A household's events include those of the households the child lived in before, while the
    child lived there (``features.members``).
    """

    def __init__(self, query: ReferralRecord, history: History) -> None:
        self.lists: dict[tuple[Source, Entity], tuple[list[Record], list[int]]] = {}
        self.members = Members(query, history.memberships, history.person_records)
        stays = stays_elsewhere(query, history.memberships)
        sources = (
            (Source.referrals, history.referrals),
            (Source.events, history.events),
            (Source.decisions, history.decisions),
        )
        for source, records in sources:
            before = sorted(
                (r for r in records if known_before(r, query.t_ms)),
                key=lambda r: (r.t_ms, record_id(r)),
            )
            child = [r for r in before if r.child_id == query.child_id]
            household = [
                r
                for r in before
                if r.household_id == query.household_id
                or (stays and isinstance(r, EventRecord) and during_a_stay(r, stays))
            ]
            self.lists[source, Entity.child] = (child, [r.t_ms for r in child])
            self.lists[source, Entity.household] = (household, [r.t_ms for r in household])

    def window(self, signal: Signal, query: ReferralRecord) -> list[Record]:
        """The signal's records inside its window that pass its filter, oldest first."""
        records, times = self.lists[signal.source, signal.entity]
        if signal.window_days is not None:
            start = bisect_left(times, query.t_ms - signal.window_days * MS_PER_DAY)
            records = records[start:]
        flt = signal.filter
        return [r for r in records if passes(flt, r)]


def evaluate_signal(
    signal: Signal, query: ReferralRecord, age_months: int, history: History | _Prepared
) -> SignalValue:
    """One signal for one referral."""
    if signal.source is Source.referral:
        return _current(signal, query, age_months)
    prepared = history if isinstance(history, _Prepared) else _Prepared(query, history)
    if signal.source is Source.memberships:
        return SignalValue(*membership_signal(signal, query, prepared.members))
    if signal.source is Source.household_changes:
        return SignalValue(*changes_signal(signal, query, prepared.members))
    chosen = prepared.window(signal, query)
    ids = tuple(record_id(r) for r in chosen)
    agg = signal.aggregation
    if agg is Aggregation.count:
        return SignalValue(float(len(chosen)), ids)
    if agg is Aggregation.exists:
        return SignalValue(float(bool(chosen)), ids)
    if agg is Aggregation.days_since:
        if not chosen:
            return SignalValue(math.nan, ())
        last = chosen[-1]
        return SignalValue((query.t_ms - last.t_ms) / MS_PER_DAY, (record_id(last),))
    if agg is Aggregation.distinct_count:
        of = signal.distinct_of
        if of is None:
            raise ValueError(f"{signal.name}: a distinct count names the field it counts")
        valued = [r for r in chosen if getattr(r, of) is not None]
        distinct = {getattr(r, of) for r in valued}
        return SignalValue(float(len(distinct)), tuple(record_id(r) for r in valued))
    if agg is Aggregation.max_same_concern:
        best: list[Record] = []
        for concern in sorted(query.concerns):
            # Only referrals carry concerns; the catalogue counts them over referrals alone.
            same: list[Record] = [
                r for r in chosen if isinstance(r, ReferralRecord) and concern in r.concerns
            ]
            if len(same) > len(best):
                best = same
        return SignalValue(float(len(best)), tuple(record_id(r) for r in best))
    raise ValueError(f"{signal.name}: aggregation {agg} does not apply to history")


def _current(signal: Signal, query: ReferralRecord, age_months: int) -> SignalValue:
    """Signals read from the referral being scored."""
    own = (query.referral_id,)
    if signal.aggregation is Aggregation.value:
        return SignalValue(float(age_months), own)
    flt = signal.filter
    young_enough = flt.max_age_months is None or age_months < flt.max_age_months
    hit = young_enough and passes(flt, query)
    return SignalValue(float(hit), own if hit else ())


def received_date(query: ReferralRecord) -> date:
    """The UTC calendar date of a referral, as the batch builder computes it."""
    return datetime.fromtimestamp(query.t_ms // 1000, tz=UTC).date()


def evaluate(
    query: ReferralRecord,
    date_of_birth: date,
    history: History,
    signals: Iterable[Signal] = CATALOGUE,
) -> dict[str, SignalValue]:
    """Every signal for one referral: values and provenance."""
    months = age_in_months(date_of_birth, received_date(query))
    prepared = _Prepared(query, history)
    return {s.name: evaluate_signal(s, query, months, prepared) for s in signals}
