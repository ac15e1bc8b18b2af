"""Which referrals are the reference and which calendar months are monitored."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class Windows:
    """The reference period [start, end) and the monitored months (``YYYY-MM``) after it."""

    reference_start: pd.Timestamp
    reference_end: pd.Timestamp
    months: tuple[str, ...]


def month_of(received_at: pd.Series) -> pd.Series:
    """Each moment's calendar month in UTC as ``YYYY-MM``."""
    moments = pd.to_datetime(received_at, utc=True)
    return moments.dt.strftime("%Y-%m")


def default_windows(
    received_at: pd.Series, *, monitor_months: int = 6, reference_months: int = 12
) -> Windows:
    """The last ``monitor_months`` calendar months with referrals, and the
    ``reference_months`` months just before them as the reference."""
    if received_at.empty:
        raise ValueError("no referrals to monitor")
    moments = pd.to_datetime(received_at, utc=True)
    last = moments.max().tz_localize(None).to_period("M")
    first_monitored = last - (monitor_months - 1)
    end = pd.Timestamp(first_monitored.to_timestamp()).tz_localize("UTC")
    start = end - pd.DateOffset(months=reference_months)
    months = pd.period_range(first_monitored, last, freq="M")
    return Windows(
        reference_start=pd.Timestamp(start),
        reference_end=end,
        months=tuple(str(m) for m in months),
    )
