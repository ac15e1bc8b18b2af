"""The stratified (or household) bootstrap of every group's metrics on a grid of score cells.

The bootstrap is stratified within each group: a replicate redraws each group's size from its
own rows, which is a multinomial draw over the group's counts in a small grid of score cells ×
labels, so its cost does not grow with the number of rows. The cell edges include every
capacity threshold and every reliability bin edge, so the queue rates (selection, precision,
FPR, FNR, FDR, FOR), base rate, mean score, Brier score and ECE of a replicate are the same as
resampling rows would give for those counts; AUC and the calibration slope and intercept are
computed on the cells and each replicate is shifted by (exact − cell estimate) on the full
data. The queue threshold of each capacity is held at its value on the whole scored set: the
intervals describe the sampling of each group's referrals under that queue.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.special import gammaln

from models.fairness._config import AuditConfig
from models.fairness._groups import Grouping
from models.fairness._metrics import capacity_label, queue_rates
from models.fairness._statistics import household_codes, safe_div


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


_POISSON_ONE_CDF = np.cumsum(np.exp(-1.0 - gammaln(np.arange(1, 30))))
"""P(X ≤ k) of a Poisson(1) count X, k = 0 … 28 (the rest is below double precision)."""


_POISSON_ONE_RAW = np.minimum(_POISSON_ONE_CDF * 2.0**64, 2.0**64 - 2048).astype(np.uint64)
"""The same on the scale of the bit generator's raw 64-bit words."""


_BLOCK = 4096
"""Units drawn at a time, so that the raw words and their comparisons stay in cache."""


def poisson_one(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Poisson(1) draws (as floats) by inversion of raw 64-bit words: exact to double precision.

    Three comparisons settle 98% of draws; the rest are looked up in the whole table. About
    three times faster than ``Generator.poisson`` and its conversion to floats.
    """
    u = rng.bit_generator.random_raw(shape)
    weights: np.ndarray = (u > _POISSON_ONE_RAW[0]).astype(float)
    weights += u > _POISSON_ONE_RAW[1]
    weights += u > _POISSON_ONE_RAW[2]
    tail = u > _POISSON_ONE_RAW[2]
    weights[tail] = np.searchsorted(_POISSON_ONE_RAW, u[tail])
    return weights


@dataclass
class HouseholdDraws:
    """Poisson household weights turned into cell counts by two sparse products.

    Rows are first reduced to their distinct keys (a score cell, a label pattern and one group
    per grouping: far fewer than rows), and households to sampling units: the households of
    one referral that share a key pool into one unit, every other household is a unit of its
    own. A unit of k households draws one Poisson(k) weight per replicate, which is exactly
    the sum of their k Poisson(1) weights (their rows add to the same counts), so the counts
    have the distribution of weighting each household, for fewer draws. The counts of a
    replicate are ``aggregate @ (units @ weights)``: work in rows plus keys × groupings, where
    indexing rows per grouping would be rows × groupings.
    """

    units: sparse.csr_matrix
    """Keys × units: how many rows of each key one household of the unit has."""
    aggregate: sparse.csr_matrix
    """Cells × keys: the cell of each key in every grouping."""
    households_per_unit: np.ndarray
    """Pooled units (k > 1) come first, then the units of one household."""
    unit_of: np.ndarray
    """The unit of each household (by code)."""

    @classmethod
    def build(
        cls, household: np.ndarray, columns: Sequence[np.ndarray], size: int
    ) -> HouseholdDraws:
        """Units and keys from each row's household code and its cell in every grouping."""
        # Keys numbered in sorted order of the cells, so row order cannot change a draw.
        key = np.zeros(household.size, dtype=np.int64)
        for column in columns:
            key = pd.factorize(key * size + column, sort=True)[0].astype(np.int64)
        n_keys = int(key.max()) + 1
        first = np.zeros(n_keys, dtype=np.int64)
        first[key[::-1]] = np.arange(key.size)[::-1]
        aggregate = sparse.csr_matrix(
            (
                np.ones(n_keys * len(columns)),
                (
                    np.concatenate([c[first] for c in columns]),
                    np.tile(np.arange(n_keys), len(columns)),
                ),
            ),
            shape=(size, n_keys),
        )
        n_households = int(household.max()) + 1
        rows_in = np.bincount(household, minlength=n_households)
        single = rows_in[household] == 1
        lone = np.bincount(key[single], minlength=n_keys)
        pooled, alone = np.flatnonzero(lone > 1), np.flatnonzero(lone == 1)
        larger = np.flatnonzero(rows_in > 1)
        # Unit numbers: pooled keys, keys with one lone household, then larger households.
        key_unit = np.full(n_keys, -1, dtype=np.int64)
        key_unit[pooled] = np.arange(pooled.size)
        key_unit[alone] = pooled.size + np.arange(alone.size)
        unit_of = np.empty(n_households, dtype=np.int64)
        unit_of[household[single]] = key_unit[key[single]]
        unit_of[larger] = pooled.size + alone.size + np.arange(larger.size)
        n_units = pooled.size + alone.size + larger.size
        households_per_unit = np.bincount(unit_of, minlength=n_units).astype(float)
        many = ~single
        keyed = np.concatenate([pooled, alone])
        units = sparse.csr_matrix(
            (
                np.ones(keyed.size + int(many.sum())),
                (
                    np.concatenate([keyed, key[many]]),
                    np.concatenate([key_unit[keyed], unit_of[household[many]]]),
                ),
            ),
            shape=(n_keys, n_units),
        )
        return cls(units, aggregate, households_per_unit, unit_of)

    def counts(self, weights: np.ndarray) -> np.ndarray:
        """Cell counts (cells × replicates) for unit weights (units × replicates)."""
        result: np.ndarray = self.aggregate @ (self.units @ weights)
        return result

    def draw(self, rng: np.random.Generator, replicates: int) -> np.ndarray:
        """Cell counts of ``replicates`` household bootstrap draws (replicates × cells)."""
        pooled = int(np.count_nonzero(self.households_per_unit > 1))
        weights = np.empty((self.households_per_unit.size, replicates))
        weights[:pooled] = rng.poisson(
            self.households_per_unit[:pooled, None], (pooled, replicates)
        )
        for start in range(pooled, weights.shape[0], _BLOCK):
            stop = min(start + _BLOCK, weights.shape[0])
            weights[start:stop] = poisson_one(rng, (stop - start, replicates))
        return self.counts(weights).T


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-6, 1 - 1e-6)
    log_odds: np.ndarray = np.log(q) - np.log1p(-q)
    return log_odds


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
    out["base_rate"] = safe_div(n_pos, n)
    out["mean_score"] = safe_div(score_sum.sum(-1), n)
    out["calibration_gap"] = out["mean_score"] - out["base_rate"]
    below = np.cumsum(neg, -1) - neg
    out["auc"] = safe_div((pos * (below + 0.5 * neg)).sum(-1), n_pos * n_neg)
    out["brier"] = safe_div(brier_sum, n)
    bin_scores = np.add.reduceat(score_sum, grid.bin_starts, axis=-1)
    bin_pos = np.add.reduceat(pos, grid.bin_starts, axis=-1)
    out["ece"] = safe_div(np.abs(bin_scores - bin_pos).sum(-1), n)
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
            out[f"{name}_at_{capacity_label(capacity)}"] = safe_div(num, den)
    return out


def bootstrap_replicates(
    p: np.ndarray,
    labels: Mapping[str, np.ndarray],
    groupings: list[Grouping],
    thresholds: np.ndarray,
    config: AuditConfig,
    clusters: np.ndarray | None = None,
    stream: int = 0,
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, dict[str, np.ndarray]]]:
    """Bootstrap replicates (n_boot × groups) and full-data cell estimates.

    Stratified: each group's size is kept and its cell counts drawn as a multinomial.
    Household (``clusters`` given): every household gets one Poisson(1) weight per replicate
    and the cell counts are the weighted sums, so a family's rows move together.
    ``stream`` other than 0 draws from its own random stream of the same seed.
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
    score_mean = safe_div(np.concatenate(score_sums), counts)
    sq_mean = safe_div(np.concatenate(brier_sums), counts)
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
    logit_mean = np.nan_to_num(safe_div(logit_blocks, block_n))

    # Full-data cell estimates: the offset between them and the exact estimates shifts AUC,
    # slope and intercept replicates (the other metrics are exact on the cells).
    full = {}
    for j, lab in enumerate(labels):
        by_label, scores, brier = per_label(counts.astype(float), j)
        full[lab] = _model_metrics(by_label, scores, brier, logit_mean, grid, config.capacities)

    rng = np.random.default_rng(config.seed if stream == 0 else (config.seed, stream))
    with np.errstate(invalid="ignore", divide="ignore"):
        probabilities = np.where(n[:, None] > 0, counts / np.maximum(n, 1)[:, None], 0.0)
    out: dict[str, dict[str, list[np.ndarray]]] = {lab: {} for lab in labels}
    households = None
    if clusters is not None:
        columns = []
        offset = 0
        for grouping in groupings:
            columns.append((offset + grouping.codes) * per_group + row_key)
            offset += grouping.size
        households = HouseholdDraws.build(household_codes(clusters), columns, counts.size)
    done = 0
    while done < config.n_boot:
        b = min(config.chunk, config.n_boot - done)
        if households is None:
            draws = rng.multinomial(n, probabilities, size=(b, n.size))
        else:
            draws = households.draw(rng, b).reshape(b, *counts.shape)
        for j, lab in enumerate(labels):
            by_label, scores, brier = per_label(draws, j)
            metrics = _model_metrics(by_label, scores, brier, logit_mean, grid, config.capacities)
            for k, v in metrics.items():
                out[lab].setdefault(k, []).append(v)
        done += b
    result = {lab: {k: np.concatenate(v, axis=0) for k, v in out[lab].items()} for lab in labels}
    return result, full
