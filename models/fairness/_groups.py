"""Who is audited: the attributes, deprivation bands, whose voice referred, and groupings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

VOICE_GROUPINGS = ("referrer_voice", "referrer_type", "referrer_relationship")
"""Whose voice counts: relatives' concerns must be acted on as often as professionals'."""


ATTRIBUTES = ("ethnicity", "sex", "disability", "deprivation_band", "age_band", *VOICE_GROUPINGS)


PROTECTED = ("ethnicity", "sex", "disability", "deprivation_band")


INTERSECTIONS = (*combinations(PROTECTED, 2), ("sex", "age_band"))


SEPARATOR = " × "


def parse_intersection(text: str) -> tuple[str, ...]:
    """``"ethnicity,sex,age_band"`` as an intersection; ValueError naming what is wrong."""
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [name for name in names if name not in ATTRIBUTES]
    if unknown:
        raise ValueError(f"unknown attribute {unknown[0]!r}; one of {', '.join(ATTRIBUTES)}")
    if len(names) < 2 or len(set(names)) != len(names):
        raise ValueError(f"{text!r} must name two or three different attributes")
    if len(names) > 3:
        raise ValueError(f"{text!r} names {len(names)} attributes; at most three are audited")
    return names


MISSING = "missing"


OVERALL, OVERALL_GROUP = "overall", "all referrals"
"""The whole scored set, audited as a grouping of one group: the totals every table sums to."""


_DEPRIVATION_BANDS = ("1-2 (most deprived)", "3-4", "5-6", "7-8", "9-10 (least deprived)")


def deprivation_band(decile: pd.Series) -> pd.Series:
    """Deprivation deciles as quintile bands: 1-2 (most deprived) … 9-10 (least deprived)."""
    values = pd.to_numeric(decile, errors="coerce")
    band = (values - 1) // 2
    labels = np.asarray(_DEPRIVATION_BANDS, dtype=object)
    out = pd.Series(MISSING, index=decile.index, dtype=object)
    ok = band.between(0, 4)
    out[ok] = labels[band[ok].astype(int).to_numpy()]
    return out


def audit_attributes(protected: pd.DataFrame) -> pd.DataFrame:
    """The audited attributes as strings, deprivation in quintile bands, missing as 'missing'."""
    frame = pd.DataFrame(index=protected.index)
    for name in ATTRIBUTES:
        if name == "deprivation_band" and "deprivation_decile" in protected:
            frame[name] = deprivation_band(protected["deprivation_decile"])
        elif name == "disability" and name in protected and protected[name].dtype == bool:
            frame[name] = np.where(protected[name], "disabled", "not disabled")
        elif name in protected:
            column = protected[name]
            frame[name] = column.astype(object).where(column.notna(), MISSING).astype(str)
    return frame


@dataclass
class Grouping:
    """One attribute or intersection: each row's group and the groups' labels."""

    name: str
    attributes: tuple[str, ...]
    codes: np.ndarray
    labels: list[str]

    @property
    def size(self) -> int:
        """Number of groups."""
        return len(self.labels)


def factorize_attribute(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Codes and sorted string labels of one attribute, missing values as 'missing'."""
    codes, uniques = pd.factorize(column, use_na_sentinel=False)
    labels = np.array([MISSING if pd.isna(u) else str(u) for u in uniques], dtype=object)
    merged, inverse = np.unique(labels, return_inverse=True)
    return inverse[codes].astype(np.int64), merged


def make_grouping(
    attributes: pd.DataFrame,
    names: Sequence[str],
    factorized: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> Grouping:
    """Groups of one attribute or of the intersection of several (sorted labels, none dropped)."""
    codes = np.zeros(len(attributes), dtype=np.int64)
    values: list[np.ndarray] = []
    for name in names:
        c, v = (factorized or {}).get(name) or factorize_attribute(attributes[name])
        codes = codes * len(v) + c
        values.append(v)
    used, compact = np.unique(codes, return_inverse=True)
    labels = []
    for code in used:
        parts = []
        for v in reversed(values):
            code, i = divmod(int(code), len(v))
            parts.append(str(v[i]))
        labels.append(SEPARATOR.join(reversed(parts)))
    return Grouping(SEPARATOR.join(names), tuple(names), compact.astype(np.int64), labels)
