"""Each metric by calendar quarter, and a test that each group's metric is the same in each.

The quarter view covers the single groupings and the whole set: the base rate (observed),
the mean score (expected), the calibration gap between them, AUC, and the queue rates at the
10% capacity (selection, precision, FPR, FNR; the threshold held at its value on the whole
period). Every figure has a bootstrap interval from the audit's own bootstrap (household or
stratified, as the audit, with its seed), each group × quarter a cell of its own; rates also
have a Wilson interval. The test for change: for rates, Pearson's chi-square test of
homogeneity across the quarters, divided by the group's design effect when inference is
cluster-aware (the Rao–Scott first-order correction); for the mean score, calibration gap
and AUC, a Wald test that every quarter equals the first, with the covariance of the
differences from the bootstrap (so households seen in several quarters are accounted for).
Both are corrected by Holm (or BH) within each label and metric.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import chi2

from models.fairness._bootstrap import bootstrap_replicates
from models.fairness._config import LABEL_FREE, SHIFTED, AuditConfig
from models.fairness._groups import Grouping
from models.fairness._metrics import exact_metrics
from models.fairness._statistics import (
    adjust,
    design_effect,
    household_codes,
    nan_percentiles,
    safe_div,
    wilson_interval,
)

QUARTER_CAPACITY = 0.10
RATE_METRICS = ("base_rate", "selection_rate_at_10", "precision_at_10", "fpr_at_10", "fnr_at_10")
BOOTSTRAP_METRICS = ("mean_score", "calibration_gap", "auc")
"""Not rates of counts: tested for change by a Wald test on the bootstrap."""
QUARTER_METRICS = (*RATE_METRICS, *BOOTSTRAP_METRICS)
CHI_SQUARE, WALD = "chi_square", "bootstrap_wald"
QUARTER_STREAM = 1
"""The quarter bootstrap's random stream beside the audit's (same seed, its own draws)."""


def _indicators(
    y: np.ndarray, flagged: np.ndarray | None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-row (numerator, denominator) of each rate in the quarter view."""
    one = np.ones(y.size)
    out = {"base_rate": (y, one)}
    if flagged is not None:
        f = flagged.astype(float)
        out["selection_rate_at_10"] = (f, one)
        out["precision_at_10"] = (f * y, f)
        out["fpr_at_10"] = (f * (1 - y), 1 - y)
        out["fnr_at_10"] = ((1 - f) * y, y)
    return out


def quarter_view(
    labels: Mapping[str, np.ndarray],
    p: np.ndarray,
    flags: np.ndarray,
    thresholds: np.ndarray,
    capacities: Sequence[float],
    groupings: Sequence[Grouping],
    periods: np.ndarray,
    clusters: np.ndarray | None,
    config: AuditConfig,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Metrics by group and quarter with intervals, and the test for change per group."""
    quarters, q = np.unique(periods, return_inverse=True)
    n_q = quarters.size
    at = list(capacities).index(QUARTER_CAPACITY) if QUARTER_CAPACITY in capacities else None
    flagged = flags[at] if at is not None else None
    sub = replace(config, capacities=(QUARTER_CAPACITY,) if at is not None else ())
    cells = [
        Grouping(
            g.name,
            g.attributes,
            g.codes * n_q + q,
            [f"{label}@{quarter}" for label in g.labels for quarter in quarters],
        )
        for g in groupings
    ]
    keeps = [
        np.repeat(np.bincount(g.codes, minlength=g.size) >= config.min_size, n_q) for g in groupings
    ]
    flag_rows = flags[[at]] if at is not None else np.zeros((0, p.size), dtype=bool)
    point: dict[str, dict[str, np.ndarray]] = {}
    for lab, values in labels.items():
        parts: dict[str, list[np.ndarray]] = {}
        for cell, keep in zip(cells, keeps, strict=True):
            # A group may have no referrals in some quarter: its figures there are undefined.
            with np.errstate(invalid="ignore", divide="ignore"):
                metrics, _, _ = exact_metrics(
                    values, p, flag_rows, cell, keep, sub.capacities, config.n_bins
                )
            for k, v in metrics.items():
                parts.setdefault(k, []).append(v)
        point[lab] = {k: np.concatenate(v) for k, v in parts.items()}
    replicates, cell_estimates = bootstrap_replicates(
        p,
        labels,
        cells,
        thresholds[[at]] if at is not None else np.zeros(0),
        sub,
        clusters,
        stream=QUARTER_STREAM,
    )
    for lab in labels:
        for name in SHIFTED:
            replicates[lab][name] += point[lab][name] - cell_estimates[lab][name]
    household = None if clusters is None else household_codes(clusters)
    tail = (1 - config.level) / 2
    rows: list[pd.DataFrame] = []
    tests: list[dict[str, Any]] = []
    offset = 0
    for grouping, keep in zip(groupings, keeps, strict=True):
        g = grouping.size
        span = slice(offset, offset + g * n_q)
        offset += g * n_q
        kept = np.flatnonzero(keep.reshape(g, n_q)[:, 0])
        key = grouping.codes * n_q + q
        labels_arr = np.asarray(grouping.labels, dtype=object)
        gi, qi = np.repeat(kept, n_q), np.tile(np.arange(n_q), kept.size)
        for j, (label, y) in enumerate(labels.items()):
            indicators = _indicators(y, flagged)
            for metric in QUARTER_METRICS:
                if metric.split("_at_")[0] in LABEL_FREE and j > 0:
                    continue  # the same under every label: shown and tested once
                if metric not in indicators and metric not in BOOTSTRAP_METRICS:
                    continue
                est = point[label][metric][span].reshape(g, n_q)
                rep = replicates[label][metric][:, span].reshape(-1, g, n_q)
                lower, upper = (x.reshape(g, n_q) for x in nan_percentiles(
                    rep.reshape(rep.shape[0], -1), [tail, 1 - tail]
                ))  # fmt: skip
                frame = {
                    "grouping": grouping.name,
                    "group": labels_arr[gi],
                    "label": label,
                    "metric": metric,
                    "quarter": quarters[qi],
                    "numerator": np.nan,
                    "denominator": np.nan,
                    "estimate": est[gi, qi],
                    "lower": lower[gi, qi],
                    "upper": upper[gi, qi],
                    "wilson_lower": np.nan,
                    "wilson_upper": np.nan,
                }
                if metric in indicators:
                    num_row, den_row = indicators[metric]
                    num = np.bincount(key, num_row, g * n_q).reshape(g, n_q)
                    den = np.bincount(key, den_row, g * n_q).reshape(g, n_q)
                    w_lower, w_upper = wilson_interval(num, den, config.level)
                    frame |= {
                        "numerator": num[gi, qi],
                        "denominator": den[gi, qi],
                        "wilson_lower": w_lower[gi, qi],
                        "wilson_upper": w_upper[gi, qi],
                    }
                    effect = (
                        np.ones(g)
                        if household is None
                        else design_effect(num_row, den_row, grouping.codes, g, household)
                    )
                    for i in kept:
                        tests.append(
                            _test(grouping.name, labels_arr[i], label, metric, num[i], den[i],
                                  quarters, effect[i])
                        )  # fmt: skip
                else:
                    for i in kept:
                        tests.append(
                            _wald(grouping.name, labels_arr[i], label, metric, est[i],
                                  rep[:, i], quarters)
                        )  # fmt: skip
                rows.append(pd.DataFrame(frame))
    by_quarter = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    change = pd.DataFrame(tests)
    if not change.empty:
        change["p_adjusted"] = change.groupby(["label", "metric"])["p_value"].transform(
            lambda s: pd.Series(adjust(s.to_numpy(), config.correction), index=s.index)
        )
        change["changed"] = change["p_adjusted"] < config.alpha
    return by_quarter, change


def _wald(
    grouping: str,
    group: str,
    label: str,
    metric: str,
    estimate: np.ndarray,
    replicates: np.ndarray,
    quarters: np.ndarray,
) -> dict[str, Any]:
    """Wald test of every quarter equal to the first, with the bootstrap's covariance."""
    finite = np.isfinite(replicates)
    used = np.isfinite(estimate) & (finite.mean(0) >= 0.5)
    present = np.flatnonzero(used)
    statistic = p_value = np.nan
    df = int(present.size) - 1
    if df >= 1:
        sample = replicates[:, present]
        sample = sample[np.isfinite(sample).all(1)]
        if sample.shape[0] >= 0.5 * replicates.shape[0]:
            contrast = sample[:, 1:] - sample[:, :1]
            difference = estimate[present[1:]] - estimate[present[0]]
            covariance = np.atleast_2d(np.cov(contrast, rowvar=False))
            rank = int(np.linalg.matrix_rank(covariance))
            if rank >= 1:
                statistic = float(difference @ np.linalg.pinv(covariance) @ difference)
                df = rank
                p_value = float(chi2.sf(statistic, df))
    return _row(grouping, group, label, metric, estimate, used, quarters) | {
        "method": WALD,
        "chi_square": statistic,
        "df": df,
        "design_effect": np.nan,
        "p_value": p_value,
    }


def _row(
    grouping: str,
    group: str,
    label: str,
    metric: str,
    estimate: np.ndarray,
    used: np.ndarray,
    quarters: np.ndarray,
) -> dict[str, Any]:
    """The fields every test row shares: which quarters, and the first and last estimates."""
    present = np.flatnonzero(used)
    first, last = (present[0], present[-1]) if present.size else (0, 0)
    return {
        "grouping": grouping,
        "group": group,
        "label": label,
        "metric": metric,
        "quarters": int(used.sum()),
        "first_quarter": str(quarters[first]),
        "last_quarter": str(quarters[last]),
        "first": estimate[first] if present.size else np.nan,
        "last": estimate[last] if present.size else np.nan,
        "difference": estimate[last] - estimate[first] if present.size else np.nan,
    }


def _test(
    grouping: str,
    group: str,
    label: str,
    metric: str,
    num: np.ndarray,
    den: np.ndarray,
    quarters: np.ndarray,
    effect: float,
) -> dict[str, Any]:
    """Chi-square test of one rate being equal across the quarters with any denominator."""
    used = den > 0
    rate = safe_div(num, den)
    pooled = num[used].sum() / den[used].sum() if used.any() else np.nan
    df = int(used.sum()) - 1
    statistic = p_value = np.nan
    if df >= 1 and 0 < pooled < 1:
        expected = den[used] * pooled
        statistic = float(((num[used] - expected) ** 2 / (expected * (1 - pooled))).sum() / effect)
        p_value = float(chi2.sf(statistic, df))
    return _row(grouping, group, label, metric, rate, used, quarters) | {
        "method": CHI_SQUARE,
        "chi_square": statistic,
        "df": df,
        "design_effect": float(effect),
        "p_value": p_value,
    }
