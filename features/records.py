"""The records both builders read, and the time arithmetic they must share exactly."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

from triage.vocab import LIST_SEPARATOR

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MS_PER_DAY = 86_400_000


def to_ms(moment: datetime) -> int:
    """Milliseconds since the epoch, truncated (floored), from an aware datetime."""
    return (moment - EPOCH) // timedelta(milliseconds=1)


def series_to_ms(values: pd.Series) -> np.ndarray:
    """Milliseconds since the epoch, floored, from a tz-aware timestamp column."""
    micros = values.dt.tz_convert("UTC").dt.as_unit("us").astype("int64").to_numpy()
    return np.floor_divide(micros, 1000)


def age_in_months(born: date, on: date) -> int:
    """Whole calendar months completed between two dates."""
    return (on.year - born.year) * 12 + (on.month - born.month) - (on.day < born.day)


def ages_in_months(born: np.ndarray, on: np.ndarray) -> np.ndarray:
    """``age_in_months`` over arrays of ``datetime64[D]``."""
    by, bm, bd = _ymd(born)
    oy, om, od = _ymd(on)
    return (oy - by) * 12 + (om - bm) - (od < bd)


def _ymd(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


def _split(cell: object) -> frozenset[str]:
    """A ``LIST_SEPARATOR``-joined cell (or a list) as a set."""
    if isinstance(cell, str):
        return frozenset(v for v in cell.split(LIST_SEPARATOR) if v)
    if cell is None or (isinstance(cell, float) and cell != cell):
        return frozenset()
    return frozenset(cell)


def _none(value: object) -> object:
    """Missing values as None."""
    return None if value is None or (isinstance(value, float) and value != value) else value


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
        for r, ms in zip(referrals.itertuples(index=False), t, strict=True)
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
            for e, ms in zip(events.itertuples(index=False), ev_t, strict=True)
        ],
        decisions=[
            DecisionRecord(d.referral_id, d.child_id, d.household_id, int(ms), d.decision)
            for d, ms in zip(
                joined.itertuples(index=False), series_to_ms(joined["decided_at"]), strict=True
            )
        ],
    )
