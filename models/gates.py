"""Promotion gates: a candidate becomes champion only when every gate passes."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from features.catalogue import SIGNALS, Aggregation
from features.policy import NEVER_LOWERS, NOT_INPUTS, POLICY, POLICY_VERSION
from models.evaluation import n_flagged

POLICY_SLACK = 1e-9
"""Log-odds a policy signal may lower a score by before the gate counts it (rounding only)."""


class Explainable(Protocol):
    """What the policy gate needs of a model family."""

    def contributions(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def log_odds(self, X: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class GateConfig:
    """Configurable thresholds, checked on the test period."""

    min_auc: float = 0.65
    calibration_slope_range: tuple[float, float] = (0.8, 1.2)
    max_group_calibration_gap: float = 0.05
    """Largest difference between groups in (mean score − observed rate)."""
    min_group_size: int = 500
    fnr_capacity: float = 0.10
    """The share of referrals reviewed first, at which missed children are counted."""
    max_group_fnr_excess: float = 0.15
    """How much higher a group's false-negative rate (children with the observed outcome not
    in the first ``fnr_capacity``) may be than everyone's."""
    min_group_positives: int = 50
    """Groups with fewer children with the observed outcome are not judged (too noisy)."""


@dataclass(frozen=True)
class GateResult:
    """One gate: passed or not, the measured value, the limit and how far off it is."""

    gate: str
    passed: bool
    value: float
    limit: str
    shortfall: float
    detail: str

    def to_dict(self) -> dict[str, Any]:
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


FNR_GROUPINGS = ("referrer_type",)
"""Groupings the false-negative gate judges besides the audited protected ones."""


def fnr_gates(
    y: np.ndarray, p: np.ndarray, groupings: dict[str, pd.Series], config: GateConfig
) -> list[GateResult]:
    """Per grouping: no group's children with the observed outcome are missed much more often.

    The first ``fnr_capacity`` of referrals by score are "reviewed first"; a child with the
    observed outcome outside them is missed. A grouping fails when a group with at least
    ``min_group_positives`` such children is missed more than ``max_group_fnr_excess`` above
    the rate for everyone; the detail names the worst group and by how much.
    """
    y = np.asarray(y, dtype=np.int64)
    order = np.argsort(-np.asarray(p, dtype=np.float64), kind="stable")
    flagged = np.zeros(y.size, dtype=bool)
    flagged[order[: n_flagged(config.fnr_capacity, y.size)]] = True
    positive = y == 1
    overall = float(1 - flagged[positive].mean()) if positive.any() else math.nan
    limit = config.max_group_fnr_excess
    results = []
    for name, groups in groupings.items():
        # pandas' str dtype keeps missing values missing: they are a group of their own.
        labels = groups.astype(object).fillna("not recorded").map(str).to_numpy(dtype=object)
        rates = {}
        for group in np.unique(labels[positive]):
            members = positive & (labels == group)
            if members.sum() >= config.min_group_positives:
                rates[str(group)] = (float(1 - flagged[members].mean()), int(members.sum()))
        if not rates or not math.isfinite(overall):
            results.append(
                GateResult(f"group_fnr:{name}", True, 0.0, f"<= +{limit}", 0.0,
                           f"no group has {config.min_group_positives} or more children with "
                           "the observed outcome")
            )  # fmt: skip
            continue
        worst, (rate, count) = max(rates.items(), key=lambda item: (item[1][0], item[0]))
        excess = rate - overall
        results.append(
            GateResult(f"group_fnr:{name}", excess <= limit, excess, f"<= +{limit}",
                       max(0.0, excess - limit),
                       f"{name} '{worst}': {rate:.1%} of {count} children with the outcome "
                       f"missed in the first {config.fnr_capacity:.0%}, against {overall:.1%} "
                       "for everyone")
        )  # fmt: skip
    return results


def toward_higher_priority(X: np.ndarray, column: int, signal: str) -> np.ndarray:
    """Every row moved one step the way the signal raises priority (one more record, or sooner).

    "No earlier record" (a missing days-since value) moves to a record a year ago.
    """
    moved = np.array(X, dtype=np.float64, copy=True)
    values = moved[:, column]
    aggregation = SIGNALS[signal].aggregation
    if aggregation is Aggregation.days_since:
        moved[:, column] = np.where(np.isnan(values), 365.0, values / 2)
    elif aggregation is Aggregation.exists:
        moved[:, column] = 1.0
    else:
        moved[:, column] = values + 1
    return moved


def policy_gates(model: Explainable, signals: tuple[str, ...], X: np.ndarray) -> list[GateResult]:
    """One gate per policy signal the model reads: kept out, or never lowering priority.

    A never-lowers signal fails when any row's contribution is below zero (it is measured from
    "none") or when one more such record, or a sooner one, lowers any row's log-odds.
    """
    results = []
    for name in signals:
        if name in NOT_INPUTS:
            results.append(
                GateResult(f"priority_policy:{name}", False, 1.0, "not a model input", 1.0,
                           f"{POLICY_VERSION} keeps this signal out of every model: "
                           f"{POLICY[name].why}")
            )  # fmt: skip
    if not any(name in NEVER_LOWERS for name in signals):
        return results
    _, contributions = model.contributions(X)
    log_odds = model.log_odds(X)
    for j, name in enumerate(signals):
        if name not in NEVER_LOWERS:
            continue
        below_none = float(max(0.0, -contributions[:, j].min()))
        lowered = float(
            max(0.0, (log_odds - model.log_odds(toward_higher_priority(X, j, name))).max())
        )
        worst = max(below_none, lowered)
        passed = worst <= POLICY_SLACK
        detail = (
            "never lowers priority on the test period"
            if passed
            else f"lowers priority by up to {worst:.4f} log-odds "
            f"({'below its value at none' if below_none >= lowered else 'as it grows'})"
        )
        results.append(
            GateResult(f"priority_policy:{name}", passed, worst, f"<= {POLICY_SLACK:g}",
                       max(0.0, worst - POLICY_SLACK), detail)
        )  # fmt: skip
    return results
