"""The records both builders read, and the time arithmetic they must share exactly."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Protocol, cast

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from features.catalogue import PERSON_RECORD_KINDS
from triage.vocab import CHILD_MEMBERSHIP_PREFIX, LIST_SEPARATOR

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MS_PER_DAY = 86_400_000
EPOCH_TIMESTAMP = pd.Timestamp(0, tz="UTC")
"""A placeholder for a missing time before conversion (its value is never read)."""


def to_ms(moment: datetime) -> int:
    """Milliseconds since the epoch, truncated (floored), from an aware datetime."""
    return (moment - EPOCH) // timedelta(milliseconds=1)


def series_to_ms(values: pd.Series) -> NDArray[np.int64]:
    """Milliseconds since the epoch, floored, from a tz-aware timestamp column."""
    micros: NDArray[np.int64] = (
        values.dt.tz_convert("UTC").dt.as_unit("us").astype("int64").to_numpy(np.int64)
    )
    return micros // 1000


def known_ms(events: pd.DataFrame, occurred_ms: NDArray[np.int64]) -> NDArray[np.int64]:
    """When each event became known: ``recorded_at`` in ms, ``occurred_at`` where it is absent,
    null or earlier (the time rule reads both, so the later of the two)."""
    if "recorded_at" not in events:
        return occurred_ms
    recorded = events["recorded_at"]
    if not isinstance(recorded.dtype, pd.DatetimeTZDtype):
        recorded = pd.to_datetime(recorded, utc=True)
    # NaT reads as the smallest int64, so a null takes occurred_at in the maximum.
    micros = recorded.dt.tz_convert("UTC").to_numpy(dtype="datetime64[us]").view(np.int64)
    known: NDArray[np.int64] = np.maximum(micros // 1000, occurred_ms)
    return known


def age_in_months(born: date, on: date) -> int:
    """Whole calendar months completed between two dates."""
    return (on.year - born.year) * 12 + (on.month - born.month) - (on.day < born.day)


def ages_in_months(born: NDArray[np.datetime64], on: NDArray[np.datetime64]) -> NDArray[np.int64]:
    """``age_in_months`` over arrays of ``datetime64[D]``."""
    by, bm, bd = _ymd(born)
    oy, om, od = _ymd(on)
    return (oy - by) * 12 + (om - bm) - (od < bd)


def _ymd(
    days: NDArray[np.datetime64],
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Year, month and day of ``datetime64[D]`` values."""
    years = days.astype("datetime64[Y]")
    months = days.astype("datetime64[M]")
    y = years.astype(np.int64) + 1970
    m = (months - years.astype("datetime64[M]")).astype(np.int64) + 1
    d = (days - months.astype("datetime64[D]")).astype(np.int64) + 1
    return y, m, d


@dataclass(frozen=True)
class ReferralRecord:
    """A referral as the builders see it (no names, no narrative)."""

    referral_id: str
    child_id: str
    household_id: str
    t_ms: int
    referrer_type: str
    referrer_relationship: str | None
    referrer_id: str | None
    concerns: frozenset[str]
    injury_reported: bool
    injury_sites: frozenset[str]


@dataclass(frozen=True)
class EventRecord:
    """An agency event."""

    event_id: str
    child_id: str | None
    household_id: str | None
    t_ms: int
    agency: str
    kind: str
    person_id: str | None = None
    """The adult the event is about (vocabulary 2)."""
    recorded_ms: int | None = None
    """When the agency shared it (``recorded_at``); None: when it occurred."""

    @property
    def known_ms(self) -> int:
        """When it became known: the later of occurring and being recorded."""
        return self.t_ms if self.recorded_ms is None else max(self.t_ms, self.recorded_ms)


@dataclass(frozen=True)
class PersonRecord:
    """An event as a record about one person: one it names as its person_id or its child_id."""

    event_id: str
    person_id: str
    t_ms: int
    kind: str
    recorded_ms: int | None = None
    """When the agency shared it (``recorded_at``); None: when it occurred."""

    @property
    def known_ms(self) -> int:
        """When it became known: the later of occurring and being recorded."""
        return self.t_ms if self.recorded_ms is None else max(self.t_ms, self.recorded_ms)


def person_records(events: Iterable[EventRecord], kinds: Collection[str]) -> list[PersonRecord]:
    """The events of these kinds as records about each person they name."""
    out = []
    for e in events:
        if e.kind in kinds:
            for person in dict.fromkeys((e.person_id, e.child_id)):
                if person is not None:
                    out.append(PersonRecord(e.event_id, person, e.t_ms, e.kind, e.recorded_ms))
    return out


@dataclass(frozen=True)
class MembershipRecord:
    """A person living in a household with a role, from ``joined_ms`` until ``left_ms``."""

    membership_id: str
    person_id: str
    household_id: str
    role: str
    joined_ms: int
    left_ms: int | None
    born_day: int | None = None
    """The person's date of birth in days since the epoch, when known."""

    @property
    def at_birth(self) -> bool:
        """Whether the membership began on the person's day of birth (a birth, not a move)."""
        return self.born_day is not None and self.joined_ms // MS_PER_DAY == self.born_day


@dataclass(frozen=True)
class DecisionRecord:
    """A front-door decision, dated when it was made; identified by its referral."""

    referral_id: str
    child_id: str
    household_id: str
    t_ms: int
    decision: str


@dataclass
class History:
    """Everything recorded about a child and their household, in any order."""

    referrals: list[ReferralRecord] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)
    decisions: list[DecisionRecord] = field(default_factory=list)
    memberships: list[MembershipRecord] = field(default_factory=list)
    person_records: list[PersonRecord] = field(default_factory=list)
    """Records about the people in the household, from events (``person_records``)."""


# Rows of the extract tables as ``itertuples`` yields them (pandas makes the named tuple class
# at run time, so the casts below name its fields); missing text cells are NaN.
class _ReferralRow(Protocol):
    referral_id: str
    child_id: str
    household_id: str
    referrer_type: str
    referrer_relationship: str | float | None
    referrer_id: str | float | None
    concerns: str | Iterable[str] | float | None
    injury_reported: object
    injury_sites: str | Iterable[str] | float | None


class _EventRow(Protocol):
    event_id: str
    child_id: str | float | None
    household_id: str | float | None
    agency: str
    kind: str


class _MembershipRow(Protocol):
    membership_id: str
    person_id: str
    household_id: str
    role: str


class _DecisionRow(Protocol):
    referral_id: str
    child_id: str
    household_id: str
    decision: str


def _split(cell: str | Iterable[str] | float | None) -> frozenset[str]:
    """A ``LIST_SEPARATOR``-joined cell (or a list) as a set."""
    if isinstance(cell, str):
        return frozenset(v for v in cell.split(LIST_SEPARATOR) if v)
    if cell is None or (isinstance(cell, float) and cell != cell):
        return frozenset()
    if isinstance(cell, float):
        raise TypeError("'float' object is not iterable")
    return frozenset(cell)


def _none(value: str | float | None) -> str | None:
    """Missing values (None or NaN) as None."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    # A present text cell; a number here would break the record's contract, as before.
    return cast(str, value)


def referral_records(referrals: pd.DataFrame) -> list[ReferralRecord]:
    """Extract rows as ``ReferralRecord``s."""
    t = series_to_ms(referrals["received_at"])
    return [
        ReferralRecord(
            referral_id=r.referral_id,
            child_id=r.child_id,
            household_id=r.household_id,
            t_ms=int(ms),
            referrer_type=r.referrer_type,
            referrer_relationship=_none(r.referrer_relationship),
            referrer_id=_none(r.referrer_id),
            concerns=_split(r.concerns),
            injury_reported=bool(r.injury_reported),
            injury_sites=_split(r.injury_sites),
        )
        for r, ms in zip(
            cast("Iterable[_ReferralRow]", referrals.itertuples(index=False)), t, strict=True
        )
    ]


def memberships_from_children(children: pd.DataFrame) -> pd.DataFrame:
    """Each child living in its household since birth: the memberships of an extract without
    any (``triage.store.extract.derive_people``, less the columns the builders do not read)."""
    born = _dates(children["date_of_birth"])
    return pd.DataFrame(
        {
            "membership_id": CHILD_MEMBERSHIP_PREFIX + children["child_id"].astype(str),
            "person_id": children["child_id"],
            "household_id": children["household_id"],
            "role": "child",
            "joined_at": born.dt.tz_localize("UTC").astype("datetime64[us, UTC]"),
            "left_at": pd.Series(pd.NaT, index=children.index, dtype="datetime64[us, UTC]"),
        }
    )


def _dates(values: pd.Series) -> pd.Series:
    """Dates (``date`` objects, naive timestamps, or missing) as naive day timestamps."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    return pd.to_datetime(values).dt.floor("D")


def birth_days(children: pd.DataFrame, persons: pd.DataFrame | None) -> pd.Series:
    """Person ID to date of birth in days since the epoch (persons' own, else children's)."""
    table = persons if persons is not None else children
    ids = table["person_id"] if persons is not None else table["child_id"]
    born = _dates(table["date_of_birth"])
    days = born.to_numpy(dtype="datetime64[D]").astype(np.int64).astype(np.float64)
    days[born.isna().to_numpy()] = np.nan
    return pd.Series(days, index=pd.Index(ids.astype(str), name="person_id"))


def membership_records(memberships: pd.DataFrame, born: pd.Series) -> list[MembershipRecord]:
    """Extract rows as ``MembershipRecord``s; ``born`` from ``birth_days``."""
    joined = series_to_ms(memberships["joined_at"])
    left_at = memberships["left_at"]
    left = series_to_ms(left_at.fillna(EPOCH_TIMESTAMP))
    gone = left_at.notna().to_numpy()
    days = born.reindex(memberships["person_id"].astype(str)).to_numpy()
    return [
        MembershipRecord(
            m.membership_id,
            m.person_id,
            m.household_id,
            m.role,
            int(j),
            int(ms) if has_left else None,
            None if d != d else int(d),
        )
        for m, j, ms, has_left, d in zip(
            cast("Iterable[_MembershipRow]", memberships.itertuples(index=False)),
            joined,
            left,
            gone,
            days,
            strict=True,
        )
    ]


def history_from_frames(
    referrals: pd.DataFrame,
    events: pd.DataFrame,
    decisions: pd.DataFrame,
    memberships: pd.DataFrame | None = None,
    born: pd.Series | None = None,
) -> History:
    """A ``History`` holding every record of the given extract tables."""
    ev_t = series_to_ms(events["occurred_at"])
    ev_known = known_ms(events, ev_t)
    person = events["person_id"] if "person_id" in events else pd.Series([None] * len(events))
    event_records = [
        EventRecord(
            e.event_id,
            _none(e.child_id),
            _none(e.household_id),
            int(ms),
            e.agency,
            e.kind,
            _none(p),
            None if known == ms else int(known),
        )
        for e, ms, p, known in zip(
            cast("Iterable[_EventRow]", events.itertuples(index=False)),
            ev_t,
            person.tolist(),
            ev_known,
            strict=True,
        )
    ]
    by_referral = referrals.set_index("referral_id")[["child_id", "household_id"]]
    joined = decisions.join(by_referral, on="referral_id", how="inner")
    return History(
        referrals=referral_records(referrals),
        events=event_records,
        decisions=[
            DecisionRecord(d.referral_id, d.child_id, d.household_id, int(ms), d.decision)
            for d, ms in zip(
                cast("Iterable[_DecisionRow]", joined.itertuples(index=False)),
                series_to_ms(joined["decided_at"]),
                strict=True,
            )
        ],
        memberships=(
            []
            if memberships is None
            else membership_records(memberships, pd.Series(dtype=float) if born is None else born)
        ),
        person_records=person_records(event_records, PERSON_RECORD_KINDS),
    )
