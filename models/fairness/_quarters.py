"""Rates by calendar quarter, and a test that each group's rate is the same in every quarter.

The quarter view covers the single groupings and the whole set, the base rate and the queue
rates at the 10% capacity (the threshold held at its value on the whole period). Each rate
has a Wilson interval; the test for change is Pearson's chi-square test of homogeneity across
the quarters, divided by the group's design effect when inference is cluster-aware (the
Rao–Scott first-order correction), corrected by Holm (or BH) within each label and metric.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import chi2

from models.fairness._config import AuditConfig
from models.fairness._groups import Grouping
from models.fairness._statistics import adjust, design_effect, safe_div, wilson_interval

QUARTER_CAPACITY = 0.10
QUARTER_METRICS = ("base_rate", "selection_rate", "precision", "fpr", "fnr")


def _indicators(
    y: np.ndarray, flagged: np.ndarray | None, first: bool
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-row (numerator, denominator) of each rate in the quarter view."""
    one = np.ones(y.size)
    out = {"base_rate": (y, one)}
    if flagged is not None:
        f = flagged.astype(float)
        if first:
            out["selection_rate_at_10"] = (f, one)
        out["precision_at_10"] = (f * y, f)
        out["fpr_at_10"] = (f * (1 - y), 1 - y)
        out["fnr_at_10"] = ((1 - f) * y, y)
    return out


def quarter_view(
    labels: Mapping[str, np.ndarray],
    flags: np.ndarray,
    capacities: Sequence[float],
    groupings: Sequence[Grouping],
    periods: np.ndarray,
    household: np.ndarray | None,
    config: AuditConfig,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rates by group and quarter with Wilson intervals, and the test for change per group."""
    quarters, q = np.unique(periods, return_inverse=True)
    n_q = quarters.size
    flagged = (
        flags[list(capacities).index(QUARTER_CAPACITY)] if QUARTER_CAPACITY in capacities else None
    )
    rows: list[pd.DataFrame] = []
    tests: list[dict[str, Any]] = []
    for grouping in groupings:
        g = grouping.size
        keep = np.bincount(grouping.codes, minlength=g) >= config.min_size
        key = grouping.codes * n_q + q
        labels_arr = np.asarray(grouping.labels, dtype=object)
        for j, (label, y) in enumerate(labels.items()):
            for metric, (num_row, den_row) in _indicators(y, flagged, j == 0).items():
                num = np.bincount(key, num_row, g * n_q).reshape(g, n_q)
                den = np.bincount(key, den_row, g * n_q).reshape(g, n_q)
                lower, upper = wilson_interval(num, den, config.level)
                gi, qi = np.nonzero(keep[:, None] & np.ones((1, n_q), dtype=bool))
                rows.append(
                    pd.DataFrame(
                        {
                            "grouping": grouping.name,
                            "group": labels_arr[gi],
                            "label": label,
                            "metric": metric,
                            "quarter": quarters[qi],
                            "numerator": num[gi, qi],
                            "denominator": den[gi, qi],
                            "estimate": safe_div(num[gi, qi], den[gi, qi]),
                            "wilson_lower": lower[gi, qi],
                            "wilson_upper": upper[gi, qi],
                        }
                    )
                )
                effect = (
                    np.ones(g)
                    if household is None
                    else design_effect(num_row, den_row, grouping.codes, g, household)
                )
                for i in np.flatnonzero(keep):
                    tests.append(
                        _test(
                            grouping.name,
                            labels_arr[i],
                            label,
                            metric,
                            num[i],
                            den[i],
                            quarters,
                            effect[i],
                        )
                    )
    by_quarter = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    change = pd.DataFrame(tests)
    if not change.empty:
        change["p_adjusted"] = change.groupby(["label", "metric"])["p_value"].transform(
            lambda s: pd.Series(adjust(s.to_numpy(), config.correction), index=s.index)
        )
        change["changed"] = change["p_adjusted"] < config.alpha
    return by_quarter, change


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
        "first": rate[first] if present.size else np.nan,
        "last": rate[last] if present.size else np.nan,
        "difference": rate[last] - rate[first] if present.size else np.nan,
        "chi_square": statistic,
        "df": df,
        "design_effect": float(effect),
        "p_value": p_value,
    }
