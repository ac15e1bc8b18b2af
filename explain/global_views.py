"""Global views of a model over many referrals: importance, dependence, group differences."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from models.families import sigmoid


def importance(signals: Sequence[str], contributions: np.ndarray) -> pd.DataFrame:
    """Mean absolute contribution per signal (log-odds), most important first."""
    table = pd.DataFrame(
        {
            "signal": list(signals),
            "mean_abs_contribution": np.abs(contributions).mean(axis=0),
            "mean_contribution": contributions.mean(axis=0),
            "share_raising": (contributions > 0).mean(axis=0),
        }
    )
    return table.sort_values(
        "mean_abs_contribution", ascending=False, kind="stable", ignore_index=True
    )


def dependence(
    signals: Sequence[str], X: np.ndarray, contributions: np.ndarray, signal: str
) -> pd.DataFrame:
    """A signal's contribution against its value: mean, spread and count per distinct value."""
    j = list(signals).index(signal)
    frame = pd.DataFrame({"value": X[:, j], "contribution": contributions[:, j]})
    grouped = frame.groupby("value", dropna=False)["contribution"]
    return (
        grouped.agg(["mean", "min", "max", "count"])
        .rename(columns={"mean": "mean_contribution", "min": "low", "max": "high"})
        .reset_index()
    )


def group_difference(
    signals: Sequence[str],
    base: np.ndarray,
    contributions: np.ndarray,
    groups: np.ndarray,
    group_a: str,
    group_b: str,
) -> pd.DataFrame:
    """Which signals account for the gap in mean log-odds between two groups (an exact sum).

    Because each score is base plus contributions, the difference in mean log-odds between
    the groups is exactly the sum over signals of the difference in mean contribution (plus
    the difference in mean base, zero for a constant base). Rows are ordered by absolute
    share of that gap.
    """
    in_a, in_b = groups == group_a, groups == group_b
    if not in_a.any() or not in_b.any():
        missing = group_a if not in_a.any() else group_b
        raise ValueError(f"group {missing!r} has no rows")
    gap = contributions[in_a].mean(axis=0) - contributions[in_b].mean(axis=0)
    base_gap = float(base[in_a].mean() - base[in_b].mean())
    total = float(gap.sum()) + base_gap
    table = pd.DataFrame(
        {
            "signal": [*signals, "(base)"],
            "mean_a": [*contributions[in_a].mean(axis=0), base[in_a].mean()],
            "mean_b": [*contributions[in_b].mean(axis=0), base[in_b].mean()],
            "difference": [*gap, base_gap],
        }
    )
    table["share_of_gap"] = table["difference"] / total if total else np.nan
    table = table[(table["signal"] != "(base)") | (table["difference"] != 0)]
    order = table["difference"].abs().sort_values(ascending=False, kind="stable").index
    table = table.loc[order].reset_index(drop=True)
    table.attrs.update(
        group_a=group_a,
        group_b=group_b,
        log_odds_gap=total,
        mean_probability_a=float(sigmoid(base[in_a] + contributions[in_a].sum(axis=1)).mean()),
        mean_probability_b=float(sigmoid(base[in_b] + contributions[in_b].sum(axis=1)).mean()),
    )
    return table


def beeswarm_data(
    signals: Sequence[str],
    X: np.ndarray,
    contributions: np.ndarray,
    *,
    max_rows: int = 2_000,
    top: int = 12,
    seed: int = 0,
) -> pd.DataFrame:
    """Long table for a beeswarm: a sample of rows' contributions for the top signals.

    ``value_rank`` is each value's rank within its signal scaled to [0, 1] (for colour);
    missing values get NaN.
    """
    rng = np.random.default_rng(seed)
    rows = rng.choice(X.shape[0], size=min(max_rows, X.shape[0]), replace=False)
    rows.sort()
    chosen = importance(signals, contributions)["signal"].head(top)
    parts = []
    for name in chosen:
        j = list(signals).index(name)
        values = X[rows, j]
        rank = pd.Series(values).rank(pct=True).to_numpy()
        parts.append(
            pd.DataFrame(
                {
                    "signal": name,
                    "value": values,
                    "value_rank": rank,
                    "contribution": contributions[rows, j],
                }
            )
        )
    return pd.concat(parts, ignore_index=True)
