"""Exact per-group metrics: queue rates at each capacity, calibration, ranking, human rates."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from models.evaluation import auc, calibration_slope_intercept
from models.fairness._config import CAPACITIES, ESCALATING, HIGH_BANDS, QUEUE_RATES, SCORE_METRICS
from models.fairness._groups import Grouping
from models.fairness._statistics import safe_div


def capacity_label(capacity: float) -> int:
    """Percentage used in metric names, e.g. 10 for 0.10."""
    return round(capacity * 100)


def metric_names(capacities: Sequence[float] = CAPACITIES) -> list[str]:
    """Every model metric of the audit, queue rates named with their capacity."""
    queue = [f"{r}_at_{capacity_label(c)}" for c in capacities for r in QUEUE_RATES]
    return [*SCORE_METRICS, *queue]


def queue_rates(
    n: np.ndarray, positives: np.ndarray, flagged: np.ndarray, true_pos: np.ndarray
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(numerator, denominator) of each queue rate from the confusion-matrix counts."""
    false_pos = flagged - true_pos
    false_neg = positives - true_pos
    negatives = n - positives
    return {
        "selection_rate": (flagged, n),
        "precision": (true_pos, flagged),
        "fpr": (false_pos, negatives),
        "fnr": (false_neg, positives),
        "fdr": (false_pos, flagged),
        "for": (false_neg, n - flagged),
    }


def exact_metrics(
    y: np.ndarray,
    p: np.ndarray,
    flags: np.ndarray,
    grouping: Grouping,
    keep: np.ndarray,
    capacities: Sequence[float],
    n_bins: int,
) -> tuple[dict[str, np.ndarray], dict[str, tuple[np.ndarray, np.ndarray]], pd.DataFrame]:
    """Exact per-group metrics, rate counts, and reliability curves of one grouping."""
    codes, g = grouping.codes, grouping.size
    n = np.bincount(codes, minlength=g)
    n_pos = np.bincount(codes, y, g)
    out: dict[str, np.ndarray] = {
        "base_rate": n_pos / n,
        "mean_score": np.bincount(codes, p, g) / n,
        "brier": np.bincount(codes, (p - y) ** 2, g) / n,
    }
    out["calibration_gap"] = out["mean_score"] - out["base_rate"]
    bins = np.clip(
        np.searchsorted(np.arange(n_bins + 1) / n_bins, p, side="right") - 1, 0, n_bins - 1
    )
    key = codes * n_bins + bins
    bin_n = np.bincount(key, minlength=g * n_bins).reshape(g, n_bins)
    bin_p = np.bincount(key, p, g * n_bins).reshape(g, n_bins)
    bin_y = np.bincount(key, y, g * n_bins).reshape(g, n_bins)
    out["ece"] = np.abs(bin_p - bin_y).sum(1) / n
    counts: dict[str, tuple[np.ndarray, np.ndarray]] = {"base_rate": (n_pos, n)}
    for capacity, flagged in zip(capacities, flags, strict=True):
        rates = queue_rates(
            n, n_pos, np.bincount(codes, flagged, g), np.bincount(codes, flagged * y, g)
        )
        for name, (num, den) in rates.items():
            counts[f"{name}_at_{capacity_label(capacity)}"] = (num, den)
            out[f"{name}_at_{capacity_label(capacity)}"] = safe_div(num, den)
    order = np.argsort(codes, kind="stable")
    members = np.split(order, np.cumsum(n)[:-1])
    for name in ("auc", "calibration_slope", "calibration_intercept"):
        out[name] = np.full(g, np.nan)
    for i, rows in enumerate(members):
        if keep[i] and rows.size:  # a kept group may have no referrals in a quarter: NaN there
            out["auc"][i] = auc(y[rows], p[rows])
            out["calibration_slope"][i], out["calibration_intercept"][i] = (
                calibration_slope_intercept(y[rows], p[rows])
            )
    gi, bi = np.nonzero(bin_n * keep[:, None])
    reliability = pd.DataFrame(
        {
            "grouping": grouping.name,
            "group": np.asarray(grouping.labels, dtype=object)[gi],
            "bin_lower": bi / n_bins,
            "bin_upper": (bi + 1) / n_bins,
            "n": bin_n[gi, bi],
            "mean_predicted": bin_p[gi, bi] / bin_n[gi, bi],
            "observed_rate": bin_y[gi, bi] / bin_n[gi, bi],
        }
    )
    return out, counts, reliability


def ranking_table(
    rank: np.ndarray,
    y: np.ndarray,
    flags: np.ndarray,
    grouping: Grouping,
    capacities: Sequence[float],
) -> pd.DataFrame:
    """Share of the top k against share of referrals, and log-discounted exposure by rank."""
    codes, g = grouping.codes, grouping.size
    exposure = 1.0 / np.log2(1.0 + rank)
    n = np.bincount(codes, minlength=g)
    share = n / n.sum()
    exposure_share = np.bincount(codes, exposure, g) / exposure.sum()
    frame = pd.DataFrame(
        {
            "grouping": grouping.name,
            "group": grouping.labels,
            "share_of_referrals": share,
            "share_of_positives": np.bincount(codes, y, g) / max(y.sum(), 1),
            "exposure_share": exposure_share,
            "exposure_ratio": exposure_share / share,
            "mean_rank_percentile": np.bincount(codes, rank, g) / n / rank.size,
        }
    )
    for capacity, flagged in zip(capacities, flags, strict=True):
        top = np.bincount(codes, flagged, g) / flagged.sum()
        label = capacity_label(capacity)
        frame[f"share_of_top_{label}"] = top
        frame[f"top_{label}_ratio"] = top / share
    return frame


def human_counts(
    decisions: pd.DataFrame, truth: np.ndarray | None, observed: np.ndarray | None = None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-row (numerator, denominator) indicators of each human-decision rate."""
    decided = decisions["decision"].notna().to_numpy()
    escalated = decisions["decision"].isin(ESCALATING).to_numpy()
    one = np.ones(len(decisions), dtype=float)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {
        "escalated_rate": (escalated & decided, decided),
        # Over every scored referral, as the model's selection rate is.
        "escalated_share": (escalated & decided, one),
    }
    if observed is not None:
        positive = observed.astype(bool)
        out["observed_not_escalated"] = (positive & ~escalated & decided, positive & decided)
    if "investigated" in decisions:
        investigated = decisions["investigated"].fillna(False).astype(bool).to_numpy()
        out["investigated_rate"] = (investigated, one)
    if "band" in decisions:
        high = decisions["band"].isin(HIGH_BANDS).to_numpy()
        out["agreement_with_band"] = ((high == escalated) & decided, decided)
        out["escalated_despite_low_band"] = (escalated & ~high & decided, ~high & decided)
        out["not_escalated_despite_high_band"] = (~escalated & high & decided, high & decided)
    if "agreement" in decisions and decisions["agreement"].notna().any():
        recorded = decisions["agreement"].notna().to_numpy()
        agreement = decisions["agreement"].astype(object)
        out["override_rate"] = ((agreement != "agree").to_numpy() & recorded, recorded)
        out["override_higher_rate"] = ((agreement == "should_be_higher").to_numpy(), recorded)
        out["override_lower_rate"] = ((agreement == "should_be_lower").to_numpy(), recorded)
    if truth is not None:
        harm = truth.astype(bool)
        out["harm_among_escalated"] = (harm & escalated, escalated & decided)
        out["harm_missed_rate"] = (harm & ~escalated & decided, ~escalated & decided)
        out["harmed_not_escalated"] = (harm & ~escalated & decided, harm & decided)
    return {
        k: (np.asarray(a, dtype=float), np.asarray(b, dtype=float)) for k, (a, b) in out.items()
    }
