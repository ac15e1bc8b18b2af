"""Validation splits by time and by family: train on the past, test on the latest period.

A household seen in a later partition is removed from every earlier one (its earlier
referrals become ``excluded``), so no family sits on both sides of a split: the leakage that
inflated the best-known screening tool's published AUC. A training referral whose 12-month
outcome horizon reaches past the validation start is excluded too: its label was not yet
known then.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

TRAIN, VALIDATION, TEST, EXCLUDED = "train", "validation", "test", "excluded"


@dataclass(frozen=True)
class SplitSpec:
    """Shares of the labelled period given to validation and test (the latest periods)."""

    validation_share: float = 0.15
    test_share: float = 0.20
    label_horizon_days: int = 365


def period_starts(
    received_at: pd.Series, spec: SplitSpec | None = None
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """When the validation and the test periods start.

    The test partition is exactly the referrals received at or after the test start (a
    household's earlier referrals are excluded, never moved into it), so an engine that holds
    only the receipt times can select it.
    """
    spec = spec or SplitSpec()
    shares = (spec.validation_share, spec.test_share)
    if min(shares) <= 0 or sum(shares) >= 1:
        raise ValueError("validation and test shares must be positive and leave room to train")
    ordered = received_at.sort_values(ignore_index=True)
    n = len(ordered)
    val_start = ordered.iloc[round(n * (1 - spec.validation_share - spec.test_share))]
    test_start = ordered.iloc[round(n * (1 - spec.test_share))]
    return val_start, test_start


def temporal_household_split(
    received_at: pd.Series, household_id: pd.Series, spec: SplitSpec | None = None
) -> pd.Series:
    """Assign each referral to train, validation, test or excluded; no household spans two."""
    spec = spec or SplitSpec()
    t = received_at
    val_start, test_start = period_starts(t, spec)
    period = np.where(t >= test_start, TEST, np.where(t >= val_start, VALIDATION, TRAIN))
    split = pd.Series(period, index=received_at.index, dtype=object)
    # A label looks ahead over its horizon: a training referral whose horizon reaches past
    # the validation start had an outcome not yet known then. (Validation labels may still
    # run into the test period: requiring a full horizon there too would leave no validation
    # period in a few years of data.)
    reach = t + pd.Timedelta(days=spec.label_horizon_days)
    split[(split == TRAIN) & (reach > val_start)] = EXCLUDED
    households = household_id.to_numpy()
    in_test = set(households[period == TEST])
    in_validation = set(households[period == VALIDATION]) - in_test
    hh = pd.Series(households, index=received_at.index)
    split[(split != TEST) & hh.isin(in_test)] = EXCLUDED
    split[(split == TRAIN) & hh.isin(in_validation)] = EXCLUDED
    return split
