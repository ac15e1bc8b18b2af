"""Promotion gates: a candidate becomes champion only when every gate passes."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import pandas as pd


@dataclass(frozen=True)
class GateConfig:
    """Configurable thresholds, checked on the test period."""

    min_auc: float = 0.65
    calibration_slope_range: tuple[float, float] = (0.8, 1.2)
    max_group_calibration_gap: float = 0.05
    """Largest difference between groups in (mean score − observed rate)."""
    min_group_size: int = 500


@dataclass(frozen=True)
class GateResult:
    """One gate: passed or not, the measured value, the limit and how far off it is."""

    gate: str
    passed: bool
    value: float
    limit: str
    shortfall: float
    detail: str

    def to_dict(self) -> dict:
        """JSON form."""
        return asdict(self)


def check_gates(
    metrics: dict[str, float], group_gaps: dict[str, pd.DataFrame], config: GateConfig
) -> list[GateResult]:
    """Evaluate every gate; a failed gate says which and by how much."""
    results = []
    # A metric that could not be computed (NaN) fails its gate, with an unknown shortfall.
    auc = metrics["auc"]
    results.append(
        GateResult("min_auc", bool(auc >= config.min_auc), auc, f">= {config.min_auc}",
                   max(0.0, config.min_auc - auc) if math.isfinite(auc) else math.inf,
                   "area under the ROC curve on the test period")
    )  # fmt: skip
    lo, hi = config.calibration_slope_range
    slope = metrics["calibration_slope"]
    off = max(0.0, lo - slope, slope - hi) if math.isfinite(slope) else math.inf
    results.append(
        GateResult("calibration_slope", bool(lo <= slope <= hi), slope, f"in [{lo}, {hi}]", off,
                   "logistic recalibration slope on the test period")
    )  # fmt: skip
    for attribute, table in group_gaps.items():
        big = table[(~table["suppressed"]) & (table["n"] >= config.min_group_size)]
        gaps = big["calibration_gap"].dropna()
        spread = float(gaps.max() - gaps.min()) if len(gaps) > 1 else 0.0
        worst = f"{gaps.idxmax()} vs {gaps.idxmin()}" if len(gaps) > 1 else "one group only"
        limit = config.max_group_calibration_gap
        results.append(
            GateResult(f"group_calibration_gap:{attribute}", spread <= limit, spread,
                       f"<= {limit}", max(0.0, spread - limit),
                       f"difference in (mean score - observed rate) between {worst}")
        )  # fmt: skip
    return results
