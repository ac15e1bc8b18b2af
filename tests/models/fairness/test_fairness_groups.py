"""Fairness groups: deprivation deciles as quintile bands, intersections asked for by name."""

from __future__ import annotations

import pandas as pd
import pytest

from models.fairness import deprivation_band, parse_intersection


def test_deprivation_bands() -> None:
    bands = deprivation_band(pd.Series([1, 2, 3, 10, None]))
    assert list(bands) == ["1-2 (most deprived)", "1-2 (most deprived)", "3-4",
                           "9-10 (least deprived)", "missing"]  # fmt: skip


def test_parse_intersection_names_what_is_wrong() -> None:
    assert parse_intersection(" ethnicity, sex ,age_band") == ("ethnicity", "sex", "age_band")
    with pytest.raises(ValueError, match="unknown attribute 'postcode'"):
        parse_intersection("ethnicity,postcode")
    with pytest.raises(ValueError, match="two or three different"):
        parse_intersection("sex")
    with pytest.raises(ValueError, match="two or three different"):
        parse_intersection("sex,sex")
    with pytest.raises(ValueError, match="at most three"):
        parse_intersection("ethnicity,sex,age_band,disability")
