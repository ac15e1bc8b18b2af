"""Moving a whole extract in time, for a demo that should look as of today.

A synthetic world ends on a fixed date (its seed's world, reproducible, calibrated). Run weeks
later, its open referrals would all read overdue. Loading it ``as of`` a moment moves every date
and time in it by the same amount, so that its end is that moment: the world itself, every gap
between its records and every age, is unchanged, and the extract on disk is not touched.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pandas as pd

DAY = timedelta(days=1)


def extract_end(manifest: Mapping[str, Any], referrals: pd.DataFrame) -> datetime:
    """When the extract ends: its manifest's window end (midnight UTC), else its last referral."""
    window = manifest.get("window") or {}
    if isinstance(window, Mapping) and isinstance(window.get("end"), str):
        return datetime.combine(date.fromisoformat(window["end"]), time(0), tzinfo=UTC)
    latest = max((_utc(v) for v in referrals["received_at"] if v is not None), default=None)
    if latest is None:
        raise ValueError("the extract has no referrals and no window end: nothing to shift from")
    return latest


def shift_for(end: datetime, as_of: datetime) -> timedelta:
    """The amount that moves ``end`` to ``as_of`` (whole seconds)."""
    return timedelta(seconds=round((as_of - end).total_seconds()))


def shift_frame(frame: pd.DataFrame, by: timedelta) -> pd.DataFrame:
    """A copy of ``frame`` with every date and time moved by ``by`` (dates by its whole days,
    rounded); other columns as they were. Values are Python objects (``python_values``)."""
    days = timedelta(days=round(by / DAY))
    out = frame.copy()
    for column in out.columns:
        values = out[column].tolist()
        sample = next((v for v in values if v is not None and not _missing(v)), None)
        if isinstance(sample, datetime):
            moved: list[Any] = [v if _missing(v) else v + by for v in values]
        elif isinstance(sample, date):
            moved = [v if _missing(v) else v + days for v in values]
        else:
            continue
        out[column] = pd.Series(moved, index=out.index, dtype=object)
    return out


def shift_frames(frames: Mapping[str, pd.DataFrame], by: timedelta) -> dict[str, pd.DataFrame]:
    """Every frame moved by ``by`` (see ``shift_frame``)."""
    return {name: shift_frame(frame, by) for name, frame in frames.items()}


def _missing(value: Any) -> bool:
    return value is None or value is pd.NaT or (isinstance(value, float) and value != value)


def _utc(value: Any) -> datetime:
    moment = pd.Timestamp(value).to_pydatetime()
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
