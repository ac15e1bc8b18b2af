"""Alert thresholds and what the monitor reads: documented defaults, set in one place."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

AGREE = "agree"


@dataclass(frozen=True)
class Thresholds:
    """When a monitored month raises an alert (defaults in docs/operations/monitoring.md)."""

    psi_alert: float = 0.25
    """A signal's (or the score's) PSI against the reference above this is an alert."""
    psi_warn: float = 0.10
    """... above this, a warning shown in the report (no alert)."""
    calibration_ratio: float = 1.5
    """Observed outcome rate over mean predicted probability outside [1/r, r] ..."""
    calibration_z: float = 3.0
    """... and that far from expected in standard errors: a calibration alert."""
    selection_ratio: float = 1.5
    """A month's share of referrals at or above the capacity threshold outside the reference's
    share x [1/r, r], and 3 standard errors from it, is an alert."""
    group_selection_change: float = 0.10
    """A group's selection rate this far (absolute) from its reference rate, and 3 standard
    errors away, is an alert."""
    override_change: float = 0.15
    """Share of decisions disagreeing with the band this far from the reference's share."""
    unscored_share: float = 0.05
    """Share of a month's referrals left without a score above this is an alert."""
    min_count: int = 100
    """Fewer referrals (or decisions, or known outcomes) than this in a month or group: its
    figures are shown with a small-number caution and raise no alert."""
    suppress_below: int = 10
    """Counts below this are withheld from the report (disclosure control)."""
    capacity: float = 0.10
    """Share of referrals the team reviews first: the selection threshold is the reference's
    score quantile at 1 - capacity."""
    bins: int = 10
    """PSI bins: the reference's deciles (fewer for signals with fewer distinct values)."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


@dataclass(frozen=True)
class MonitorData:
    """Per-referral rows to monitor (aggregated before anything leaves the monitor).

    Every field is indexed by referral id. ``probability`` and the ``signals`` are NaN where
    a referral has no score; ``label`` is NaN where its outcome is not known yet;
    ``agreement`` is None where no decision recorded one.
    """

    received_at: pd.Series
    signals: pd.DataFrame
    probability: pd.Series
    label: pd.Series
    agreement: pd.Series
    groups: pd.DataFrame
    """Audit groups as strings: referrer type and voice, age band, sex, ethnicity, ..."""
    scoring_expected: pd.Series | None = None
    """Whether each referral should have a score (None: all). History loaded from before the
    service scored anything is not "unscored"; the unscored share counts only these."""
