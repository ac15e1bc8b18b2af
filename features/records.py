"""The records both builders read, and the time arithmetic they must share exactly."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Protocol, cast

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from triage.vocab import LIST_SEPARATOR

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MS_PER_DAY = 86_400_000


def to_ms(moment: datetime) -> int:
    """Milliseconds since the epoch, truncated (floored), from an aware datetime."""
    return (moment - EPOCH) // timedelta(milliseconds=1)


def series_to_ms(values: pd.Series) -> NDArray[np.int64]:
    """Milliseconds since the epoch, floored, from a tz-aware timestamp column."""
    micros: NDArray[np.int64] = (
        values.dt.tz_convert("UTC").dt.as_unit("us").astype("int64").to_numpy(np.int64)
    )
    return micros // 1000


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


def history_from_frames(
    referrals: pd.DataFrame, events: pd.DataFrame, decisions: pd.DataFrame
) -> History:
    """A ``History`` holding every record of the given extract tables."""
    ev_t = series_to_ms(events["occurred_at"])
    by_referral = referrals.set_index("referral_id")[["child_id", "household_id"]]
    joined = decisions.join(by_referral, on="referral_id", how="inner")
    return History(
        referrals=referral_records(referrals),
        events=[
            EventRecord(
                e.event_id, _none(e.child_id), _none(e.household_id), int(ms), e.agency, e.kind
            )
            for e, ms in zip(
                cast("Iterable[_EventRow]", events.itertuples(index=False)), ev_t, strict=True
            )
        ],
        decisions=[
            DecisionRecord(d.referral_id, d.child_id, d.household_id, int(ms), d.decision)
            for d, ms in zip(
                cast("Iterable[_DecisionRow]", joined.itertuples(index=False)),
                series_to_ms(joined["decided_at"]),
                strict=True,
            )
        ],
    )
