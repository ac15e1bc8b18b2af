"""The published figures the synthetic world reproduces, shipped with the project."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files

import numpy as np

from triage.vocab import ReferrerType

SHARE_TOLERANCE = 0.02
"""Shares must land within 2 percentage points of their target."""
RATE_TOLERANCE = 0.15
"""Rates must land within 15% (relative) of their target."""


@dataclass(frozen=True)
class Target:
    """One published figure: what it is, its value, and where it comes from."""

    key: str
    label: str
    kind: str
    """``share`` (±2 pp), ``rate`` (±15%), ``share_at_most`` or ``ratio_at_least`` (a bound)."""
    target: float
    checked: bool
    year: str
    source: str

    def within_tolerance(self, value: float) -> bool:
        """Whether a generated figure is close enough to this target (or on its side of it)."""
        if self.kind == "share":
            return abs(value - self.target) <= SHARE_TOLERANCE
        if self.kind == "share_at_most":
            return value <= self.target
        if self.kind == "ratio_at_least":
            return value >= self.target
        return abs(value - self.target) <= RATE_TOLERANCE * self.target


@lru_cache(maxsize=1)
def load_targets() -> tuple[Target, ...]:
    """Targets from ``triage/data/calibration_targets.csv``."""
    text = files("triage.data").joinpath("calibration_targets.csv").read_text(encoding="utf-8")
    rows = csv.DictReader(text.splitlines())
    return tuple(
        Target(
            key=r["key"],
            label=r["label"],
            kind=r["kind"],
            target=float(r["target"]) if r["target"] else float("nan"),
            checked=r["checked"] == "true",
            year=r["year"],
            source=r["source"],
        )
        for r in rows
    )


def source_share_targets() -> np.ndarray:
    """Target share of each ``ReferrerType``, in enum order, summing to one."""
    by_key = {t.key: t.target for t in load_targets()}
    shares = np.array([by_key[f"source_{s.value}"] for s in ReferrerType])
    normalised: np.ndarray = shares / shares.sum()
    return normalised
