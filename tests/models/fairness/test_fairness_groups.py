"""Fairness groups: deprivation deciles as quintile bands."""

from __future__ import annotations

import pandas as pd

from models.fairness import deprivation_band


def test_deprivation_bands() -> None:
    bands = deprivation_band(pd.Series([1, 2, 3, 10, None]))
    assert list(bands) == ["1-2 (most deprived)", "1-2 (most deprived)", "3-4",
                           "9-10 (least deprived)", "missing"]  # fmt: skip
