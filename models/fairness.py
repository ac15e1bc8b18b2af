"""Fairness audit of a ranked queue and of human decisions, by group and intersection.

Every group's metrics come from per-group sufficient statistics. The point estimates are exact
(row level). The bootstrap is stratified within each group: a replicate redraws each group's
size from its own rows, which is a multinomial draw over the group's counts in a small grid of
score cells × labels, so its cost does not grow with the number of rows. The cell edges include
every capacity threshold and every reliability bin edge, so the queue rates (selection,
precision, FPR, FNR, FDR, FOR), base rate, mean score, Brier score and ECE of a replicate are the
same as resampling rows would give for those counts; AUC and the calibration slope and
intercept are computed on the cells and each replicate is shifted by (exact − cell estimate)
on the full data. The queue threshold of each capacity is held at its value on the whole scored
set: the intervals describe the sampling of each group's referrals under that queue.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Literal

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.special import gammaln, ndtr, ndtri

from models.evaluation import at_capacity, auc, calibration_slope_intercept

CAPACITIES = (0.05, 0.10, 0.20, 0.30, 0.50)
VOICE_GROUPINGS = ("referrer_voice", "referrer_type", "referrer_relationship")
"""Whose voice counts: relatives' concerns must be acted on as often as professionals'."""
ATTRIBUTES = ("ethnicity", "sex", "disability", "deprivation_band", "age_band", *VOICE_GROUPINGS)
PROTECTED = ("ethnicity", "sex", "disability", "deprivation_band")
INTERSECTIONS = (*combinations(PROTECTED, 2), ("sex", "age_band"))
QUEUE_RATES = ("selection_rate", "precision", "fpr", "fnr", "fdr", "for")
SCORE_METRICS = (
    "base_rate",
    "mean_score",
    "calibration_gap",
    "auc",
    "brier",
    "ece",
    "calibration_slope",
    "calibration_intercept",
)
WITHIN, DISPARITY, INSUFFICIENT = "within tolerance", "disparity", "insufficient evidence"
VERDICTS = (WITHIN, DISPARITY, INSUFFICIENT)
TOLERANCE_VERSION = "fairness-tolerance/1"
DEFAULT_TOLERANCES: Mapping[str, float] = {
    **dict.fromkeys(QUEUE_RATES, 0.05),
    "base_rate": 0.05,
    "mean_score": 0.05,
    "calibration_gap": 0.05,
    "auc": 0.05,
    "brier": 0.02,
    "ece": 0.03,
    "calibration_slope": 0.2,
    "calibration_intercept": 0.2,
}
"""Largest absolute difference from the reference group that counts as no material disparity.

Rates and scores are on the probability scale (0.05 is five percentage points, the same size
as the training gate on calibration gaps); slope and intercept are on the logistic scale.
"""
SHIFTED = ("auc", "calibration_slope", "calibration_intercept")
"""Metrics computed approximately on the bootstrap cells; replicates are shifted to exact."""
ECE_MIN_SIZE = 200
"""ECE differences are judged only for groups at least this large (ECE is biased when small)."""
HUMAN_TOLERANCE = 0.05
ESCALATING = ("assessment", "strategy_discussion", "immediate_protection")
"""Front-door decisions that take a referral further (the human counterpart of "selected")."""
HIGH_BANDS = ("Review first", "Elevated")
SEPARATOR = " × "
MISSING = "missing"
_DEPRIVATION_BANDS = ("1-2 (most deprived)", "3-4", "5-6", "7-8", "9-10 (least deprived)")


@dataclass(frozen=True)
class ReferenceGroups:
    """The explicit, versioned reference group of each grouping; unlisted ones use the largest."""

    version: str = "reference/1-largest"
    groups: Mapping[str, str] = field(default_factory=dict)

    def choose(self, grouping: str, labels: Sequence[str], counts: np.ndarray) -> tuple[int, str]:
        """Index of the reference group and the rule that chose it."""
        if grouping in self.groups:
            wanted = self.groups[grouping]
            if wanted not in labels:
                raise ValueError(f"reference group {wanted!r} of {grouping!r} has no rows")
            return list(labels).index(wanted), "explicit"
        # Largest group; ties go to the first label in sorted order so the choice is stable.
        return int(np.argmax(counts)), "largest"


@dataclass(frozen=True)
class AuditConfig:
    """Everything an audit can be told."""

    capacities: tuple[float, ...] = CAPACITIES
    attributes: tuple[str, ...] = ATTRIBUTES
    intersections: tuple[tuple[str, ...], ...] = INTERSECTIONS
    min_size: int = 50
    """Groups with fewer referrals are suppressed: listed, never shown, never tested."""
    n_boot: int = 1000
    level: float = 0.95
    alpha: float = 0.05
    correction: Literal["holm", "bh"] = "holm"
    tolerances: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_TOLERANCES))
    references: ReferenceGroups = field(default_factory=ReferenceGroups)
    n_bins: int = 10
    n_cells: int = 64
    """Score quantile cells for the bootstrap grid (capacity and bin edges are added)."""
    calibration_blocks: int = 16
    bootstrap: Literal["stratified", "household"] = "stratified"
    """'household' reweights whole households (Poisson weights): siblings share attributes and
    outcomes, so within-group row resampling can understate uncertainty. Its cost grows with
    rows; rate comparisons then use effective counts (counts over the design effect)."""
    seed: int = 0
    chunk: int = 50


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


def wilson_interval(
    successes: np.ndarray, trials: np.ndarray, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for a binomial proportion; NaN where there are no trials."""
    k = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    z = float(ndtri(1 - (1 - level) / 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        phat = k / n
        denom = 1 + z * z / n
        centre = (phat + z * z / (2 * n)) / denom
        half = z * np.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / denom
        lower, upper = np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)
    bad = ~(n > 0)
    return np.where(bad, np.nan, lower), np.where(bad, np.nan, upper)


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (step-down, monotone); NaN stays NaN and is not counted."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(adjusted, 1.0)
    return out


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (step-up, monotone); NaN stays NaN, not counted."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    scaled = p[order] * m / np.arange(1, m + 1)
    out[order] = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    return out


def verdicts(
    estimate: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    p_adjusted: np.ndarray,
    tolerance: np.ndarray | float,
    alpha: float = 0.05,
) -> np.ndarray:
    """Disparity, within tolerance, or insufficient evidence, for differences from a reference.

    Disparity: the corrected test rejects "no difference" and the estimate is beyond the
    tolerance. Within tolerance: the whole interval of the difference lies inside ±tolerance.
    Anything else, including an undefined estimate, is insufficient evidence.
    """
    d = np.asarray(estimate, dtype=float)
    tol = np.broadcast_to(np.asarray(tolerance, dtype=float), d.shape)
    with np.errstate(invalid="ignore"):
        disparity = (np.asarray(p_adjusted) < alpha) & (np.abs(d) > tol)
        within = (np.asarray(lower) >= -tol) & (np.asarray(upper) <= tol) & ~disparity
    out = np.full(d.shape, INSUFFICIENT, dtype=object)
    out[within] = WITHIN
    out[disparity] = DISPARITY
    return out


def adjust(p_values: np.ndarray, method: str) -> np.ndarray:
    """Adjust p-values by Holm ('holm') or Benjamini–Hochberg ('bh')."""
    if method == "holm":
        return holm(p_values)
    if method == "bh":
        return benjamini_hochberg(p_values)
    raise ValueError(f"correction must be 'holm' or 'bh', not {method!r}")


def capacity_label(capacity: float) -> int:
    """Percentage used in metric names, e.g. 10 for 0.10."""
    return round(capacity * 100)


def metric_names(capacities: Sequence[float] = CAPACITIES) -> list[str]:
    """Every model metric of the audit, queue rates named with their capacity."""
    queue = [f"{r}_at_{capacity_label(c)}" for c in capacities for r in QUEUE_RATES]
    return [*SCORE_METRICS, *queue]


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


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, np.asarray(a, dtype=float) / np.where(b > 0, b, 1), np.nan)


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


@dataclass
class _CellGrid:
    """Bootstrap grid: lower edges of score cells and where capacities and bins start."""

    edges: np.ndarray
    capacity_cells: np.ndarray
    bin_starts: np.ndarray
    block_starts: np.ndarray

    @classmethod
    def build(cls, p: np.ndarray, thresholds: np.ndarray, config: AuditConfig) -> _CellGrid:
        """Quantile cells of the scores, with every threshold and bin edge among the edges."""
        bins = np.arange(config.n_bins) / config.n_bins
        quantiles = np.quantile(p, np.arange(config.n_cells) / config.n_cells)
        edges = np.unique(np.concatenate([[0.0], thresholds, bins, quantiles]))
        # A cell belongs to the reliability bin of its lower edge, computed as evaluation does.
        cell_bin = np.clip(np.searchsorted(bins, edges, side="right") - 1, 0, config.n_bins - 1)
        bin_starts = np.flatnonzero(np.r_[True, cell_bin[1:] != cell_bin[:-1]])
        step = max(1, math.ceil(edges.size / config.calibration_blocks))
        return cls(
            edges=edges,
            capacity_cells=np.searchsorted(edges, thresholds),
            bin_starts=bin_starts,
            block_starts=np.arange(0, edges.size, step),
        )

    def cell(self, p: np.ndarray) -> np.ndarray:
        """Cell of each score: the last edge at or below it."""
        return np.searchsorted(self.edges, p, side="right") - 1


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(q) - np.log1p(-q)


def _batched_logistic(
    success: np.ndarray, trials: np.ndarray, x: np.ndarray, iterations: int = 25
) -> tuple[np.ndarray, np.ndarray]:
    """(slope, intercept) of weighted logistic fits a + b·x over the last axis, many at once."""
    shape = success.shape[:-1]
    a, b = np.zeros(shape), np.ones(shape)
    converged = np.zeros(shape, dtype=bool)
    with np.errstate(all="ignore"):
        for _ in range(iterations):
            eta = a[..., None] + b[..., None] * x
            mu = 1 / (1 + np.exp(-eta))
            w = trials * mu * (1 - mu)
            resid = success - trials * mu
            wx = w * x
            h00, h01, h11 = w.sum(-1), wx.sum(-1), (wx * x).sum(-1)
            g0, g1 = resid.sum(-1), (resid * x).sum(-1)
            det = h00 * h11 - h01 * h01
            da = (h11 * g0 - h01 * g1) / det
            db = (h00 * g1 - h01 * g0) / det
            # Damped steps keep separated replicates from overflowing; they never converge.
            scale = np.minimum(1.0, 5.0 / np.maximum(np.abs(da), np.abs(db)))
            a, b = a + scale * da, b + scale * db
            converged = np.maximum(np.abs(da), np.abs(db)) < 1e-8
            if converged.all():
                break
    ok = converged & (det > 0)
    return np.where(ok, b, np.nan), np.where(ok, a, np.nan)


def _model_metrics(
    counts: np.ndarray,
    score_sum: np.ndarray,
    brier_sum: np.ndarray,
    logit_mean: np.ndarray,
    grid: _CellGrid,
    capacities: Sequence[float],
) -> dict[str, np.ndarray]:
    """Every metric from cell counts (..., cells, 2) of one label; AUC, slope approximate."""
    neg, pos = counts[..., 0], counts[..., 1]
    n_pos, n_neg = pos.sum(-1), neg.sum(-1)
    n = n_pos + n_neg
    out: dict[str, np.ndarray] = {}
    out["base_rate"] = _safe_div(n_pos, n)
    out["mean_score"] = _safe_div(score_sum.sum(-1), n)
    out["calibration_gap"] = out["mean_score"] - out["base_rate"]
    below = np.cumsum(neg, -1) - neg
    out["auc"] = _safe_div((pos * (below + 0.5 * neg)).sum(-1), n_pos * n_neg)
    out["brier"] = _safe_div(brier_sum, n)
    bin_scores = np.add.reduceat(score_sum, grid.bin_starts, axis=-1)
    bin_pos = np.add.reduceat(pos, grid.bin_starts, axis=-1)
    out["ece"] = _safe_div(np.abs(bin_scores - bin_pos).sum(-1), n)
    block_pos = np.add.reduceat(pos, grid.block_starts, axis=-1).astype(float)
    block_n = np.add.reduceat(pos + neg, grid.block_starts, axis=-1).astype(float)
    out["calibration_slope"], out["calibration_intercept"] = _batched_logistic(
        block_pos, block_n, logit_mean
    )
    pos_above = np.cumsum(pos[..., ::-1], -1)[..., ::-1]
    all_above = pos_above + np.cumsum(neg[..., ::-1], -1)[..., ::-1]
    for capacity, cell in zip(capacities, grid.capacity_cells, strict=True):
        rates = queue_rates(n, n_pos, all_above[..., cell], pos_above[..., cell])
        for name, (num, den) in rates.items():
            out[f"{name}_at_{capacity_label(capacity)}"] = _safe_div(num, den)
    return out


def _quantiles(replicates: np.ndarray, probs: Sequence[float]) -> list[np.ndarray]:
    """Percentiles along axis 0 ignoring NaN (linear interpolation, as numpy's default)."""
    ordered = np.sort(replicates, axis=0)  # NaN sort last
    valid = (~np.isnan(replicates)).sum(0)
    out = []
    for q in probs:
        pos = q * np.maximum(valid - 1, 0)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, np.maximum(valid - 1, 0))
        frac = pos - lo
        a = np.take_along_axis(ordered, lo[None], 0)[0]
        b = np.take_along_axis(ordered, hi[None], 0)[0]
        out.append(np.where(valid > 0, a + frac * (b - a), np.nan))
    return out


@dataclass
class FairnessAudit:
    """Everything the audit measured; tables are long, one row per group × metric."""

    config: AuditConfig
    n: int
    thresholds: dict[int, float]
    groups: pd.DataFrame
    suppressed: pd.DataFrame
    references: dict[str, dict[str, str]]
    metrics: pd.DataFrame
    comparisons: pd.DataFrame
    reliability: pd.DataFrame
    ranking: pd.DataFrame
    human: pd.DataFrame | None
    human_comparisons: pd.DataFrame | None
    labels: tuple[str, ...]

    def summary(
        self, metric: str = "selection_rate_at_10", label: str = "observed"
    ) -> pd.DataFrame:
        """One metric's comparisons, disparities first."""
        table = self.comparisons[
            (self.comparisons["metric"] == metric) & (self.comparisons["label"] == label)
        ]
        rank = table["verdict"].map({DISPARITY: 0, INSUFFICIENT: 1, WITHIN: 2})
        return table.assign(_r=rank).sort_values(["_r", "p_adjusted"]).drop(columns="_r")


def _exact_metrics(
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
            out[f"{name}_at_{capacity_label(capacity)}"] = _safe_div(num, den)
    order = np.argsort(codes, kind="stable")
    members = np.split(order, np.cumsum(n)[:-1])
    for name in ("auc", "calibration_slope", "calibration_intercept"):
        out[name] = np.full(g, np.nan)
    for i, rows in enumerate(members):
        if keep[i]:
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


def _ranking(
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


def _human_counts(
    decisions: pd.DataFrame, truth: np.ndarray | None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-row (numerator, denominator) indicators of each human-decision rate."""
    decided = decisions["decision"].notna().to_numpy()
    escalated = decisions["decision"].isin(ESCALATING).to_numpy()
    one = np.ones(len(decisions), dtype=float)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {
        "escalated_rate": (escalated & decided, decided),
    }
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


def _two_proportion(
    k1: np.ndarray, n1: np.ndarray, k2: np.ndarray, n2: np.ndarray, level: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Newcombe hybrid-score interval of p1 − p2 (from Wilson intervals) and a test's p-value.

    The test is the pooled two-proportion z-test, or Fisher's exact test where an expected
    cell count is below 5 (the normal approximation misleads there).
    """
    p1, p2 = _safe_div(k1, n1), _safe_div(k2, n2)
    l1, u1 = wilson_interval(k1, n1, level)
    l2, u2 = wilson_interval(k2, n2, level)
    d = p1 - p2
    lower = d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    upper = d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    pooled = _safe_div(k1 + k2, n1 + n2)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
        z = np.where(se > 0, np.abs(d) / se, np.where(d == 0, 0.0, np.inf))
        expected = np.minimum.reduce(
            [n1 * pooled, n1 * (1 - pooled), n2 * pooled, n2 * (1 - pooled)]
        )
    p_value = 2 * (1 - ndtr(z))
    for i in np.flatnonzero((expected < 5) & (n1 > 0) & (n2 > 0)):
        # Effective counts need not be whole: Fisher's test takes them rounded.
        a, b = round(k1[i]), max(round(n1[i]), 1)
        c, d = round(k2[i]), max(round(n2[i]), 1)
        p_value[i] = fisher_exact_p(min(a, b), b, min(c, d), d)
    return lower, upper, p_value


def fisher_exact_p(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided Fisher exact p-value of k1/n1 against k2/n2 (as scipy's, without its overhead)."""
    total, successes = n1 + n2, k1 + k2
    x = np.arange(max(0, n1 - (total - successes)), min(successes, n1) + 1)
    log_pmf = (
        gammaln(successes + 1) - gammaln(x + 1) - gammaln(successes - x + 1)
        + gammaln(total - successes + 1) - gammaln(n1 - x + 1)
        - gammaln(total - successes - n1 + x + 1)
        - gammaln(total + 1) + gammaln(n1 + 1) + gammaln(total - n1 + 1)
    )  # fmt: skip
    observed = log_pmf[k1 - x[0]]
    # The relative tolerance is scipy's: tables as likely as the observed one count as extreme.
    return float(min(1.0, np.exp(log_pmf[log_pmf <= observed + 1e-7]).sum()))


def _compare(
    est: np.ndarray,
    rep: np.ndarray,
    reference: np.ndarray,
    counts: tuple[list[np.ndarray], list[np.ndarray]] | None,
    level: float,
    tail: float,
    clustered: bool = False,
) -> dict[str, np.ndarray]:
    """Difference and ratio against each group's reference, with interval and p-value.

    Rates are compared on their counts (Newcombe interval, pooled two-proportion z-test), which
    stays honest at 0 or 1 where a bootstrap has no spread; other metrics use the bootstrap
    (percentile interval of the difference, z-test with its standard error). With a clustered
    (household) bootstrap the counts are divided by each group's design effect, the bootstrap
    variance over the binomial one (at least 1): Kish's effective sample size.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio_rep = rep / rep[:, reference]
        ratio = est / est[reference]
    r_lower, r_upper = _quantiles(
        np.where(np.isfinite(ratio_rep), ratio_rep, np.nan), [tail, 1 - tail]
    )
    d_est = est - est[reference]
    if counts is not None:
        num, den = (np.concatenate(x) for x in zip(*counts, strict=True))
        if clustered:
            with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                binomial = est * (1 - est) / den
                effect = np.nanvar(rep, axis=0, ddof=1) / binomial
            effect = np.where(np.isfinite(effect) & (effect > 1), effect, 1.0)
            num, den = num / effect, den / effect
        d_lower, d_upper, p_value = _two_proportion(num, den, num[reference], den[reference], level)
        method = "newcombe"
    else:
        diff = rep - rep[:, reference]
        d_lower, d_upper = _quantiles(diff, [tail, 1 - tail])
        valid = (~np.isnan(diff)).sum(0)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = np.nansum(diff, 0) / valid
            se = np.sqrt(np.nansum((diff - mean) ** 2, 0) / (valid - 1))
            # No spread and a non-zero difference means the bootstrap cannot judge it.
            stat = np.where(se > 0, np.abs(d_est) / se, np.where(d_est == 0, 0.0, np.nan))
        p_value = np.where(valid >= 0.5 * rep.shape[0], 2 * (1 - ndtr(stat)), np.nan)
        method = "bootstrap"
    return {
        "difference": d_est,
        "difference_lower": d_lower,
        "difference_upper": d_upper,
        "ratio": np.where(np.isfinite(ratio), ratio, np.nan),
        "ratio_lower": r_lower,
        "ratio_upper": r_upper,
        "p_value": np.where(np.isnan(d_est), np.nan, p_value),
        "method": np.full(est.size, method, dtype=object),
    }


def audit(
    y: np.ndarray,
    p: np.ndarray,
    attributes: pd.DataFrame,
    *,
    truth: np.ndarray | None = None,
    decisions: pd.DataFrame | None = None,
    clusters: np.ndarray | None = None,
    config: AuditConfig | None = None,
) -> FairnessAudit:
    """Audit a scored set: model metrics, intervals, comparisons, verdicts, ranking, humans.

    ``decisions`` (optional) is aligned with the rows: ``decision`` and, where known,
    ``investigated``, the model's ``band`` and the practitioner's recorded ``agreement``.
    ``clusters`` (household IDs) are needed for ``config.bootstrap == 'household'``.
    """
    config = config or AuditConfig()
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    if y.ndim != 1 or y.shape != p.shape or len(attributes) != y.size or y.size == 0:
        raise ValueError("y, p and attributes must have the same, non-zero number of rows")
    if not np.all((y == 0) | (y == 1)) or not np.all((p >= 0) & (p <= 1)):
        raise ValueError("labels must be 0/1 and scores probabilities in [0, 1]")
    label_arrays = {"observed": y}
    if truth is not None:
        label_arrays["truth"] = np.asarray(truth, dtype=float)
        if label_arrays["truth"].shape != y.shape:
            raise ValueError("truth must have one entry per row")
    labels = tuple(label_arrays)
    capacities = config.capacities
    thresholds = np.array([at_capacity(y, p, c)["threshold"] for c in capacities])
    flags = p[None, :] >= thresholds[:, None]

    # Tied scores share their mean rank, so row order cannot move exposure between groups.
    rank = pd.Series(-p).rank(method="average").to_numpy()
    names = [(a,) for a in config.attributes if a in attributes]
    names += [t for t in config.intersections if all(a in attributes for a in t)]
    factorized = {a: factorize_attribute(attributes[a]) for t in names for a in t}
    groupings = [make_grouping(attributes, t, factorized) for t in names]

    group_rows, suppressed_rows, references = [], [], {}
    metric_frames, reliability_frames, ranking_frames = [], [], []
    exact: dict[str, dict[str, list[np.ndarray]]] = {lab: {} for lab in labels}
    rate_counts: dict[str, dict[str, list[tuple[np.ndarray, np.ndarray]]]] = {
        lab: {} for lab in labels
    }
    keeps, ref_index = [], []
    offset = 0
    for grouping in groupings:
        n_g = np.bincount(grouping.codes, minlength=grouping.size)
        keep = n_g >= config.min_size
        ref, rule = config.references.choose(grouping.name, grouping.labels, n_g)
        references[grouping.name] = {
            "group": grouping.labels[ref],
            "rule": rule,
            "version": config.references.version,
            "suppressed": bool(not keep[ref]),
        }
        for i, label in enumerate(grouping.labels):
            row = {"grouping": grouping.name, "group": label, "n": int(n_g[i])}
            group_rows.append({**row, "share": n_g[i] / y.size, "suppressed": not keep[i]})
            if not keep[i]:
                suppressed_rows.append({**row, "reason": f"fewer than {config.min_size} referrals"})
        for lab, values in label_arrays.items():
            metrics, counts, rel = _exact_metrics(
                values, p, flags, grouping, keep, capacities, config.n_bins
            )
            for k, v in metrics.items():
                exact[lab].setdefault(k, []).append(v)
            for k, v in counts.items():
                rate_counts[lab].setdefault(k, []).append(v)
            reliability_frames.append(rel.assign(label=lab))
        ranking_frames.append(_ranking(rank, y, flags, grouping, capacities))
        keeps.append(keep)
        ref_index.append(np.full(grouping.size, offset + ref))
        offset += grouping.size

    keep_all = np.concatenate(keeps)
    reference = np.concatenate(ref_index)
    group_frame = pd.DataFrame(group_rows)
    group_frame["reference"] = np.arange(len(group_frame)) == reference
    names_all = metric_names(capacities)
    point = {lab: {k: np.concatenate(exact[lab][k]) for k in names_all} for lab in labels}

    household = config.bootstrap == "household"
    if household and (clusters is None or len(clusters) != y.size):
        raise ValueError("a household bootstrap needs one household ID per row (clusters=)")
    replicates, cell_estimates = _bootstrap(
        p, label_arrays, groupings, thresholds, config, clusters if household else None
    )
    for lab in labels:
        for name in SHIFTED:
            replicates[lab][name] += point[lab][name] - cell_estimates[lab][name]

    metric_frames, comparison_frames = [], []
    tail = (1 - config.level) / 2
    ref_ok = keep_all[reference]
    for lab in labels:
        for name in names_all:
            est = point[lab][name]
            rep = replicates[lab][name]
            lower, upper = _quantiles(rep, [tail, 1 - tail])
            frame = pd.DataFrame(
                {
                    "grouping": group_frame["grouping"],
                    "group": group_frame["group"],
                    "label": lab,
                    "metric": name,
                    "estimate": est,
                    "lower": lower,
                    "upper": upper,
                }
            )
            if name in rate_counts[lab] or name.split("_at_")[0] in QUEUE_RATES:
                num, den = (np.concatenate(x) for x in zip(*rate_counts[lab][name], strict=True))
                wl, wu = wilson_interval(num, den, config.level)
                frame["numerator"], frame["denominator"] = num, den
                frame["wilson_lower"], frame["wilson_upper"] = wl, wu
            metric_frames.append(frame[keep_all])

            test = _compare(
                est, rep, reference, rate_counts[lab].get(name), config.level, tail, household
            )
            if name == "ece":
                # ECE is biased upwards in small groups (noise alone opens |score − rate|).
                small = group_frame["n"].to_numpy() < ECE_MIN_SIZE
                test["p_value"] = np.where(small, np.nan, test["p_value"])
                test["difference_lower"] = np.where(small, np.nan, test["difference_lower"])
            comparison_frames.append(
                pd.DataFrame(
                    {
                        "grouping": group_frame["grouping"],
                        "group": group_frame["group"],
                        "reference": group_frame["group"].to_numpy()[reference],
                        "label": lab,
                        "metric": name,
                        "estimate": est,
                        "reference_estimate": est[reference],
                        **test,
                        "tolerance": config.tolerances.get(name.split("_at_")[0], np.nan),
                    }
                )[keep_all & ref_ok & (np.arange(keep_all.size) != reference)]
            )
    metrics_frame = pd.concat(metric_frames, ignore_index=True)
    comparisons = pd.concat(comparison_frames, ignore_index=True)
    # One family per label and metric: "does any group differ on this metric?"
    comparisons["p_adjusted"] = comparisons.groupby(["label", "metric"])["p_value"].transform(
        lambda s: pd.Series(adjust(s.to_numpy(), config.correction), index=s.index)
    )
    comparisons["verdict"] = verdicts(
        comparisons["difference"].to_numpy(),
        comparisons["difference_lower"].to_numpy(),
        comparisons["difference_upper"].to_numpy(),
        comparisons["p_adjusted"].to_numpy(),
        comparisons["tolerance"].to_numpy(),
        config.alpha,
    )

    human = human_comparisons = None
    if decisions is not None:
        human, human_comparisons = _human_audit(
            decisions, label_arrays.get("truth"), groupings, keep_all, reference, config
        )
    return FairnessAudit(
        config=config,
        n=int(y.size),
        thresholds={
            capacity_label(c): float(t) for c, t in zip(capacities, thresholds, strict=True)
        },
        groups=group_frame,
        suppressed=pd.DataFrame(suppressed_rows, columns=["grouping", "group", "n", "reason"]),
        references=references,
        metrics=metrics_frame,
        comparisons=comparisons,
        reliability=pd.concat(reliability_frames, ignore_index=True),
        ranking=pd.concat(ranking_frames, ignore_index=True)[keep_all].reset_index(drop=True),
        human=human,
        human_comparisons=human_comparisons,
        labels=labels,
    )


def _human_audit(
    decisions: pd.DataFrame,
    truth: np.ndarray | None,
    groupings: list[Grouping],
    keep: np.ndarray,
    reference: np.ndarray,
    config: AuditConfig,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Human-decision rates by group with Wilson intervals, and Newcombe comparisons."""
    indicators = _human_counts(decisions.reset_index(drop=True), truth)
    rows, comparisons = [], []
    for name, (num_row, den_row) in indicators.items():
        num = np.concatenate([np.bincount(g.codes, num_row, g.size) for g in groupings])
        den = np.concatenate([np.bincount(g.codes, den_row, g.size) for g in groupings])
        groups = np.concatenate([np.asarray(g.labels, dtype=object) for g in groupings])
        grouping = np.concatenate([np.full(g.size, g.name, dtype=object) for g in groupings])
        lower, upper = wilson_interval(num, den, config.level)
        rows.append(
            pd.DataFrame(
                {
                    "grouping": grouping,
                    "group": groups,
                    "metric": name,
                    "numerator": num,
                    "denominator": den,
                    "estimate": _safe_div(num, den),
                    "wilson_lower": lower,
                    "wilson_upper": upper,
                }
            )[keep]
        )
        d_lower, d_upper, p_value = _two_proportion(
            num, den, num[reference], den[reference], config.level
        )
        est = _safe_div(num, den)
        mask = keep & keep[reference] & (np.arange(num.size) != reference)
        comparisons.append(
            pd.DataFrame(
                {
                    "grouping": grouping,
                    "group": groups,
                    "reference": groups[reference],
                    "metric": name,
                    "estimate": est,
                    "reference_estimate": est[reference],
                    "difference": est - est[reference],
                    "difference_lower": d_lower,
                    "difference_upper": d_upper,
                    "p_value": np.where(np.isnan(est - est[reference]), np.nan, p_value),
                    "tolerance": HUMAN_TOLERANCE,
                }
            )[mask]
        )
    human = pd.concat(rows, ignore_index=True)
    table = pd.concat(comparisons, ignore_index=True)
    table["p_adjusted"] = table.groupby("metric")["p_value"].transform(
        lambda s: pd.Series(adjust(s.to_numpy(), config.correction), index=s.index)
    )
    table["verdict"] = verdicts(
        table["difference"].to_numpy(),
        table["difference_lower"].to_numpy(),
        table["difference_upper"].to_numpy(),
        table["p_adjusted"].to_numpy(),
        HUMAN_TOLERANCE,
        config.alpha,
    )
    return human, table


def _bootstrap(
    p: np.ndarray,
    labels: Mapping[str, np.ndarray],
    groupings: list[Grouping],
    thresholds: np.ndarray,
    config: AuditConfig,
    clusters: np.ndarray | None = None,
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, dict[str, np.ndarray]]]:
    """Bootstrap replicates (n_boot × groups) and full-data cell estimates.

    Stratified: each group's size is kept and its cell counts drawn as a multinomial.
    Household (``clusters`` given): every household gets one Poisson(1) weight per replicate
    and the cell counts are the weighted sums, so a family's rows move together.
    """
    grid = _CellGrid.build(p, thresholds, config)
    cells = grid.cell(p)
    n_cells = grid.edges.size
    label_list = list(labels.values())
    # Joint label code: observed + 2·truth, so one draw serves both labels and their gap.
    joint = np.zeros(p.size, dtype=np.int64)
    for j, values in enumerate(label_list):
        joint += values.astype(np.int64) << j
    width = 1 << len(label_list)
    row_key = cells * width + joint
    per_group = n_cells * width
    stacked_counts, score_sums, logit_sums, brier_sums = [], [], [], []
    logit = _logit(p)
    sq = p * p
    for grouping in groupings:
        key = grouping.codes * per_group + row_key
        size = grouping.size * per_group
        stacked_counts.append(np.bincount(key, minlength=size).reshape(grouping.size, -1))
        score_sums.append(np.bincount(key, p, size).reshape(grouping.size, -1))
        logit_sums.append(np.bincount(key, logit, size).reshape(grouping.size, -1))
        brier_sums.append(np.bincount(key, sq, size).reshape(grouping.size, -1))
    counts = np.concatenate(stacked_counts).astype(np.int64)
    n = counts.sum(1)
    score_mean = _safe_div(np.concatenate(score_sums), counts)
    sq_mean = _safe_div(np.concatenate(brier_sums), counts)
    score_mean = np.nan_to_num(score_mean)
    sq_mean = np.nan_to_num(sq_mean)
    logit_all = np.concatenate(logit_sums)
    shape = (counts.shape[0], n_cells, width)

    def per_label(c: np.ndarray, j: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Counts (…, cells, 2), score sums and Brier sums of label j from joint cell counts."""
        c5 = c.reshape(*c.shape[:-1], n_cells, width)
        bit = (np.arange(width) >> j) & 1
        by_label = np.stack([c5[..., bit == 0].sum(-1), c5[..., bit == 1].sum(-1)], axis=-1)
        weighted = c * score_mean
        scores = weighted.reshape(c5.shape).sum(-1)
        # Σ (p − y)² = Σ p² − 2 Σ y·p + Σ y over each joint cell.
        y_cell = np.tile(bit, n_cells).astype(float)
        brier = (c * (sq_mean - 2 * y_cell * score_mean + y_cell)).sum(-1)
        return by_label, scores, brier

    logit_blocks = np.add.reduceat(logit_all.reshape(shape).sum(-1), grid.block_starts, axis=1)
    block_n = np.add.reduceat(counts.reshape(shape).sum(-1), grid.block_starts, axis=1)
    logit_mean = np.nan_to_num(_safe_div(logit_blocks, block_n))

    # Full-data cell estimates: the offset between them and the exact estimates shifts AUC,
    # slope and intercept replicates (the other metrics are exact on the cells).
    full = {}
    for j, lab in enumerate(labels):
        by_label, scores, brier = per_label(counts.astype(float), j)
        full[lab] = _model_metrics(by_label, scores, brier, logit_mean, grid, config.capacities)

    rng = np.random.default_rng(config.seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        probabilities = np.where(n[:, None] > 0, counts / np.maximum(n, 1)[:, None], 0.0)
    out: dict[str, dict[str, list[np.ndarray]]] = {lab: {} for lab in labels}
    membership = None
    if clusters is not None:
        household = pd.factorize(pd.Series(np.asarray(clusters)), use_na_sentinel=False)[0]
        columns, offset = [], 0
        for grouping in groupings:
            columns.append((offset + grouping.codes) * per_group + row_key)
            offset += grouping.size
        membership = sparse.csr_matrix(
            (
                np.ones(p.size * len(groupings)),
                (np.tile(household, len(groupings)), np.concatenate(columns)),
            ),
            shape=(household.max() + 1, counts.size),
        ).T.tocsr()
    done = 0
    while done < config.n_boot:
        b = min(config.chunk, config.n_boot - done)
        if membership is None:
            draws = rng.multinomial(n, probabilities, size=(b, n.size))
        else:
            weights = rng.poisson(1.0, (membership.shape[1], b)).astype(float)
            draws = (membership @ weights).T.reshape(b, *counts.shape)
        for j, lab in enumerate(labels):
            by_label, scores, brier = per_label(draws, j)
            metrics = _model_metrics(by_label, scores, brier, logit_mean, grid, config.capacities)
            for k, v in metrics.items():
                out[lab].setdefault(k, []).append(v)
        done += b
    result = {lab: {k: np.concatenate(v, axis=0) for k, v in out[lab].items()} for lab in labels}
    return result, full
