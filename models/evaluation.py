"""Evaluation of a calibrated risk score that orders a review queue.

Pure numpy so that the bootstrap, which re-evaluates hundreds of resamples, stays fast. Labels are
0/1, scores are probabilities in [0, 1]. "Capacity" is the share of referrals reviewed first.
Dot products are written (a * b).sum(), not a @ b: for vectors this size the BLAS call is several
times slower and erratic when other processes compete for the cores.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

CAPACITIES = (0.05, 0.10, 0.20)

_CLIP = 1e-6
_NEWTON_MAX_ITER = 50
_NEWTON_TOL = 1e-10

Sampler = Callable[[np.random.Generator], np.ndarray]


def _as_arrays(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate labels and scores and return them as 1-D float arrays."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    if y.ndim != 1 or y.shape != p.shape:
        raise ValueError(f"y and p must be 1-D of equal length, got {y.shape} and {p.shape}")
    if y.size == 0:
        raise ValueError("no rows to evaluate")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("labels must be 0 or 1")
    # Written so that NaN scores fail too.
    if not np.all((p >= 0) & (p <= 1)):
        raise ValueError("scores must be probabilities in [0, 1]")
    return y, p


def _descending(p: np.ndarray) -> np.ndarray:
    """Row order by score, highest first, ties in original order."""
    return np.argsort(-p, kind="stable")


def _tie_blocks(sorted_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) positions of runs of equal scores in a sorted array."""
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    return starts, np.r_[starts[1:], sorted_scores.size]


def _auc_sorted(ys: np.ndarray, ps: np.ndarray) -> float:
    """Mann–Whitney AUC of labels and scores already sorted by descending score."""
    n = ys.size
    n_pos = ys.sum()
    n_neg = n - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    starts, ends = _tie_blocks(ps)
    # Positions s..e-1 from the top are ascending ranks n-s..n-e+1; ties share their mean.
    ranks = np.repeat(n - (starts + ends - 1) / 2.0, ends - starts)
    u = (ranks * ys).sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def _pr_auc_sorted(ys: np.ndarray, ps: np.ndarray) -> float:
    """Average precision of labels and scores already sorted by descending score."""
    _, ends = _tie_blocks(ps)
    # One operating point per distinct score, as in sklearn: tied rows are flagged together.
    true_pos = np.cumsum(ys)[ends - 1]
    if true_pos[-1] == 0:
        return math.nan
    precision = true_pos / ends
    recall = true_pos / true_pos[-1]
    return float((np.diff(recall, prepend=0.0) * precision).sum())


def auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC via average ranks (Mann–Whitney U); NaN when only one class is present."""
    y, p = _as_arrays(y, p)
    order = _descending(p)
    return _auc_sorted(y[order], p[order])


def pr_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Average precision, as sklearn.metrics.average_precision_score; NaN without positives."""
    y, p = _as_arrays(y, p)
    order = _descending(p)
    return _pr_auc_sorted(y[order], p[order])


def brier(y: np.ndarray, p: np.ndarray) -> float:
    """Brier score: mean squared difference between score and label."""
    y, p = _as_arrays(y, p)
    return float(np.mean((p - y) ** 2))


def _logit(p: np.ndarray) -> np.ndarray:
    """Log-odds of probabilities clipped away from 0 and 1."""
    q = np.clip(p, _CLIP, 1 - _CLIP)
    log_odds: np.ndarray = np.log(q) - np.log1p(-q)
    return log_odds


def _logistic_fit(y: np.ndarray, x: np.ndarray, a: float, b: float) -> tuple[float, np.ndarray]:
    """Log-likelihood and fitted probabilities of the logistic model a + b·x."""
    eta = a + b * x
    # One logaddexp serves both outputs and never overflows: mu = exp(eta - log(1 + e^eta)).
    log1p_exp = np.logaddexp(0.0, eta)
    return float((y * eta).sum() - log1p_exp.sum()), np.exp(eta - log1p_exp)


def _newton_step(y: np.ndarray, x: np.ndarray, mu: np.ndarray) -> tuple[float, float]:
    """Newton step (da, db) for the logistic model a + b·x with fitted probabilities mu."""
    w = mu * (1 - mu)
    resid = y - mu
    wx = w * x
    h00, h01, h11 = w.sum(), wx.sum(), (wx * x).sum()
    g0, g1 = resid.sum(), (resid * x).sum()
    det = h00 * h11 - h01 * h01
    if not det > 0:
        raise np.linalg.LinAlgError("singular information matrix")
    return float((h11 * g0 - h01 * g1) / det), float((h00 * g1 - h01 * g0) / det)


def calibration_slope_intercept(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """(slope b, intercept a) of the ML fit logit P(y=1) = a + b·logit(p); NaN if not identified."""
    y, p = _as_arrays(y, p)
    x = _logit(p)
    if y.min() == y.max() or np.ptp(x) == 0:
        return math.nan, math.nan
    # The intercept is that of this joint fit (not the offset-only calibration-in-the-large);
    # perfect calibration is (1, 0). Starting there, Newton needs only a few steps.
    a, b = 0.0, 1.0
    loglik, mu = _logistic_fit(y, x, a, b)
    for _ in range(_NEWTON_MAX_ITER):
        try:
            da, db = _newton_step(y, x, mu)
        except np.linalg.LinAlgError:
            return math.nan, math.nan
        if max(abs(da), abs(db)) < _NEWTON_TOL:
            return b + db, a + da
        # Step halving keeps the likelihood increasing when a full step overshoots.
        for _ in range(30):
            new_loglik, new_mu = _logistic_fit(y, x, a + da, b + db)
            if new_loglik >= loglik - 1e-12 * abs(loglik):
                break
            da, db = da / 2, db / 2
        a, b, loglik, mu = a + da, b + db, new_loglik, new_mu
    # No convergence means (quasi-)separation: the maximum likelihood estimate does not exist.
    return math.nan, math.nan


def _bin_edges(n_bins: int) -> np.ndarray:
    """Edges k / n_bins of equal-width bins on [0, 1]."""
    # Not linspace: its 3 * 0.1 edge is 0.30000000000000004, which would put a score of 0.3
    # into [0.2, 0.3).
    return np.arange(n_bins + 1) / n_bins


def _bin_index(p: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-width bin of each score on [0, 1]; bins are [lower, upper), the last one closed."""
    if n_bins < 1:
        raise ValueError("n_bins must be at least 1")
    # Compare against the same edges that are reported, not floor(p * n_bins).
    return np.clip(np.searchsorted(_bin_edges(n_bins), p, side="right") - 1, 0, n_bins - 1)


def _bin_sums(
    y: np.ndarray, p: np.ndarray, n_bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-bin row count, score sum and label sum."""
    idx = _bin_index(p, n_bins)
    count = np.bincount(idx, minlength=n_bins)
    return count, np.bincount(idx, p, n_bins), np.bincount(idx, y, n_bins)


def ece(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> float:
    """Expected calibration error: count-weighted mean |mean score − observed rate| over bins."""
    y, p = _as_arrays(y, p)
    _, score_sum, label_sum = _bin_sums(y, p, n_bins)
    return float(np.abs(score_sum - label_sum).sum() / y.size)


def reliability_curve(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Mean score and observed rate per equal-width bin on [0, 1], empty bins omitted."""
    y, p = _as_arrays(y, p)
    count, score_sum, label_sum = _bin_sums(y, p, n_bins)
    edges = _bin_edges(n_bins)
    keep = count > 0
    return pd.DataFrame(
        {
            "bin_lower": edges[:-1][keep],
            "bin_upper": edges[1:][keep],
            "n": count[keep],
            "mean_predicted": score_sum[keep] / count[keep],
            "observed_rate": label_sum[keep] / count[keep],
        }
    )


def n_flagged(capacity: float, n: int) -> int:
    """How many of n referrals a queue of the given capacity reviews."""
    if not 0 < capacity <= 1:
        raise ValueError(f"capacity must be in (0, 1], got {capacity}")
    # Rounding first: 0.3 * 10 is 3.0000000000000004 in floating point and must flag 3, not 4.
    return min(n, math.ceil(round(capacity * n, 9)))


def _at_capacity_sorted(ys: np.ndarray, ps: np.ndarray, capacity: float) -> dict[str, float]:
    """Queue metrics for labels and scores already sorted by descending score."""
    k = n_flagged(capacity, ys.size)
    hits = ys[:k].sum()
    positives = ys.sum()
    recall = hits / positives if positives else math.nan
    return {
        "precision": float(hits / k),
        "recall": float(recall),
        "false_negative_rate": float(1 - recall),
        "flagged": float(k),
        "threshold": float(ps[k - 1]),
    }


def at_capacity(y: np.ndarray, p: np.ndarray, capacity: float) -> dict[str, float]:
    """Precision, recall, FNR, count and lowest score of the top ceil(capacity·n) referrals."""
    y, p = _as_arrays(y, p)
    order = _descending(p)
    return _at_capacity_sorted(y[order], p[order], capacity)


def _capacity_label(capacity: float) -> int:
    """Percentage used in metric names, e.g. 10 for 0.10."""
    # round, not int: int(0.29 * 100) is 28.
    return round(capacity * 100)


def evaluate(
    y: np.ndarray, p: np.ndarray, *, capacities: Sequence[float] = CAPACITIES
) -> dict[str, float]:
    """Discrimination, calibration and queue metrics as one flat dict."""
    y, p = _as_arrays(y, p)
    order = _descending(p)
    ys, ps = y[order], p[order]
    slope, intercept = calibration_slope_intercept(y, p)
    out = {
        "auc": _auc_sorted(ys, ps),
        "pr_auc": _pr_auc_sorted(ys, ps),
        "brier": brier(y, p),
        "calibration_slope": slope,
        "calibration_intercept": intercept,
        "ece": ece(y, p),
        "base_rate": float(y.mean()),
        "n": float(y.size),
    }
    for capacity in capacities:
        queue = _at_capacity_sorted(ys, ps, capacity)
        label = _capacity_label(capacity)
        out[f"precision_at_{label}"] = queue["precision"]
        out[f"recall_at_{label}"] = queue["recall"]
        out[f"fnr_at_{label}"] = queue["false_negative_rate"]
    return out


def _row_sampler(n: int) -> Sampler:
    """Draw n row indices with replacement."""
    return lambda rng: rng.integers(0, n, n)


def cluster_sampler(groups: np.ndarray) -> Sampler:
    """Draw as many groups as there are, with replacement, and return all their rows."""
    # Missing group IDs form one group of their own rather than vanishing from the resample.
    codes = pd.factorize(pd.Series(np.asarray(groups)), use_na_sentinel=False)[0]
    rows = np.argsort(codes, kind="stable")  # CSR layout: rows of group g are contiguous
    counts = np.bincount(codes)
    starts = np.cumsum(counts) - counts

    def draw(rng: np.random.Generator) -> np.ndarray:
        picked = rng.integers(0, counts.size, counts.size)
        lengths = counts[picked]
        offsets = np.cumsum(lengths) - lengths
        within = np.arange(offsets[-1] + lengths[-1]) - np.repeat(offsets, lengths)
        drawn: np.ndarray = rows[np.repeat(starts[picked], lengths) + within]
        return drawn

    return draw


def bootstrap_intervals(
    y: np.ndarray,
    p: np.ndarray,
    *,
    groups: np.ndarray | None = None,
    n_boot: int = 200,
    seed: int = 0,
    level: float = 0.95,
    capacities: Sequence[float] = CAPACITIES,
) -> pd.DataFrame:
    """Point estimates and percentile bootstrap intervals, resampling whole groups if given."""
    y, p = _as_arrays(y, p)
    if n_boot < 1:
        raise ValueError("n_boot must be at least 1")
    if not 0 < level < 1:
        raise ValueError("level must be in (0, 1)")
    if groups is not None and len(groups) != y.size:
        raise ValueError("groups must have one entry per row")
    estimate = evaluate(y, p, capacities=capacities)
    draw = _row_sampler(y.size) if groups is None else cluster_sampler(groups)
    rng = np.random.default_rng(seed)
    replicates = np.empty((n_boot, len(estimate)))
    for i in range(n_boot):
        idx = draw(rng)
        replicates[i] = list(evaluate(y[idx], p[idx], capacities=capacities).values())
    # Percentile intervals: for a metric that resampling biases (ECE grows with noise) the
    # interval can exclude the estimate.
    tail = (1 - level) / 2 * 100
    # Replicates where a metric is undefined (e.g. AUC with one class) are left out; a metric
    # undefined in every replicate gets NaN bounds, which is the honest answer.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lower, upper = np.nanpercentile(replicates, [tail, 100 - tail], axis=0)
    return pd.DataFrame(
        {"estimate": list(estimate.values()), "lower": lower, "upper": upper},
        index=pd.Index(list(estimate), name="metric"),
    )


def compare_labels(
    observed_y: np.ndarray, truth_y: np.ndarray, p: np.ndarray, **kw: Sequence[float]
) -> pd.DataFrame:
    """Metrics against the observed and the latent true label, with gap = observed − truth."""
    observed = evaluate(observed_y, p, **kw)
    truth = evaluate(truth_y, p, **kw)
    frame = pd.DataFrame({"observed": observed, "truth": truth})
    frame.index.name = "metric"
    frame["gap"] = frame["observed"] - frame["truth"]
    return frame


_GROUP_METRICS = ("base_rate", "mean_score", "auc", "selection_rate", "calibration_gap")


def _group_row(y: np.ndarray, p: np.ndarray, flagged: np.ndarray) -> dict[str, float]:
    """Metrics for the rows of one group."""
    base_rate = float(y.mean())
    mean_score = float(p.mean())
    return {
        "base_rate": base_rate,
        "mean_score": mean_score,
        "auc": auc(y, p),
        "selection_rate": float(flagged.mean()),
        "calibration_gap": mean_score - base_rate,
    }


def group_metrics(
    y: np.ndarray,
    p: np.ndarray,
    groups: pd.Series,
    *,
    capacity: float = 0.10,
    min_size: int = 50,
) -> pd.DataFrame:
    """Per-group metrics at one overall queue threshold; small groups listed but suppressed."""
    y, p = _as_arrays(y, p)
    if len(groups) != y.size:
        raise ValueError("groups must have one entry per row")
    # Everyone at or above the overall threshold is selected, so equal scores are treated
    # equally whatever the row order (with ties at the cut this can exceed capacity slightly).
    flagged = p >= at_capacity(y, p, capacity)["threshold"]
    groups = pd.Series(groups)
    # Missing group values become a group of their own rather than being dropped.
    codes, values = pd.factorize(groups, sort=True, use_na_sentinel=False)
    members = np.split(np.argsort(codes, kind="stable"), np.cumsum(np.bincount(codes))[:-1])
    suppressed_metrics = dict.fromkeys(_GROUP_METRICS, math.nan)
    rows = []
    for idx in members:
        suppressed = idx.size < min_size
        metrics = suppressed_metrics if suppressed else _group_row(y[idx], p[idx], flagged[idx])
        rows.append({"n": idx.size, **metrics, "suppressed": suppressed})
    return pd.DataFrame(rows, index=pd.Index(values, name=groups.name or "group"))
