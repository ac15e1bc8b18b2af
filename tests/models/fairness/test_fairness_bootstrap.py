"""Fairness bootstrap: stratified spread matches the binomial; households widen intervals.

The household bootstrap's fast path (pooled units, two sparse products) is checked against
reweighting every household row by row: exactly for given weights, and in distribution.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import poisson

from models.fairness import AuditConfig, audit
from models.fairness._bootstrap import HouseholdDraws, poisson_one
from models.fairness._statistics import household_codes


def test_bootstrap_spread_matches_binomial_and_intervals_contain_estimates(small_audit) -> None:
    _, _, _, result = small_audit
    rows = result.metrics[
        (result.metrics["grouping"] == "ethnicity") & (result.metrics["metric"] == "base_rate")
    ]
    width = rows["upper"] - rows["lower"]
    wilson = rows["wilson_upper"] - rows["wilson_lower"]
    assert np.all(np.abs(width / wilson - 1) < 0.3)
    shown = result.metrics.dropna(subset=["estimate", "lower", "upper"])
    for metric in ("auc", "selection_rate_at_10", "mean_score", "calibration_slope"):
        part = shown[shown["metric"] == metric]
        inside = (part["lower"] <= part["estimate"] + 1e-12) & (
            part["estimate"] <= part["upper"] + 1e-12
        )
        assert inside.mean() > 0.9, metric


def test_household_bootstrap_widens_intervals_for_clustered_families() -> None:
    rng = np.random.default_rng(4)
    households, size = 3000, 4
    # Siblings share ethnicity, score and outcome: four rows carry one family's information.
    ethnicity = np.repeat(rng.choice(["white", "black"], households, p=[0.6, 0.4]), size)
    p = np.repeat(rng.beta(2, 6, households), size)
    y = np.repeat((rng.random(households) < p[::size]).astype(float), size)
    family = np.repeat(np.arange(households), size)
    attributes = pd.DataFrame({"ethnicity": ethnicity})
    widths = {}
    for mode in ("stratified", "household"):
        config = AuditConfig(
            attributes=("ethnicity",), intersections=(), n_boot=300, bootstrap=mode
        )
        result = audit(y, p, attributes, clusters=family, config=config)
        rows = result.metrics.query("metric == 'selection_rate_at_10' and group == 'black'")
        widths[mode] = float((rows["upper"] - rows["lower"]).iloc[0])
        estimate = float(rows["estimate"].iloc[0])
        assert rows["lower"].iloc[0] <= estimate <= rows["upper"].iloc[0]
    assert 1.5 < widths["household"] / widths["stratified"] < 2.6
    with pytest.raises(ValueError, match="household"):
        audit(y, p, attributes, config=AuditConfig(bootstrap="household", n_boot=5))


def _household_world(seed: int = 3) -> tuple[np.ndarray, list[np.ndarray], int]:
    """Household codes and each row's cell in two groupings (singletons, pairs, families)."""
    rng = np.random.default_rng(seed)
    sizes = rng.choice([1, 1, 1, 2, 3, 5], 400)
    household = household_codes(np.repeat([f"H{i:04d}" for i in range(sizes.size)], sizes))
    rows = household.size
    per_group, groups = 6, (1, 3)
    row_key = rng.integers(0, per_group, rows)
    # Few keys, so many lone households share one and are pooled.
    codes = [np.zeros(rows, dtype=np.int64), rng.integers(0, groups[1], rows)]
    columns, offset = [], 0
    for size, code in zip(groups, codes, strict=True):
        columns.append((offset + code) * per_group + row_key)
        offset += size
    return household, columns, offset * per_group


def _reference_counts(
    household: np.ndarray, columns: list[np.ndarray], size: int, weights: np.ndarray
) -> np.ndarray:
    """The slow way: each row takes its household's weight, summed into every grouping's cells."""
    out = np.zeros((size, weights.shape[1]))
    for r in range(weights.shape[1]):
        row_weight = weights[household, r]
        for column in columns:
            out[:, r] += np.bincount(column, row_weight, size)
    return out


def test_household_draws_equal_reweighting_each_household_row_by_row() -> None:
    household, columns, size = _household_world()
    draws = HouseholdDraws.build(household, columns, size)
    pooled = draws.households_per_unit > 1
    assert pooled.any() and draws.units.shape[1] < household.max() + 1
    weights = np.random.default_rng(5).poisson(1.0, (household.max() + 1, 40)).astype(float)
    # A pooled unit's weight is the sum of its households' weights.
    unit_weights = np.stack(
        [np.bincount(draws.unit_of, weights[:, r], draws.units.shape[1]) for r in range(40)],
        axis=1,
    )
    assert np.array_equal(
        draws.counts(unit_weights), _reference_counts(household, columns, size, weights)
    )


def test_household_draws_have_the_moments_of_poisson_household_weights() -> None:
    household, columns, size = _household_world()
    draws = HouseholdDraws.build(household, columns, size)
    replicates = 20_000
    sample = draws.draw(np.random.default_rng(0), replicates)
    # Poisson(1) per household: mean = the counts, variance = Σ over households of m².
    ones = np.ones((household.max() + 1, 1))
    mean = _reference_counts(household, columns, size, ones)[:, 0]
    variance = np.zeros(size)
    for column in columns:
        per_household = np.zeros((household.max() + 1, size))
        np.add.at(per_household, (household, column), 1.0)
        variance += (per_household**2).sum(0)
    observed = sample.mean(0)
    assert np.all(np.abs(observed - mean) <= 5 * np.sqrt(variance / replicates) + 1e-12)
    assert np.allclose(sample.var(0, ddof=1), variance, rtol=0.1, atol=1e-9)
    again = draws.draw(np.random.default_rng(0), replicates)
    assert np.array_equal(sample, again)


def test_poisson_one_draws_follow_the_poisson_distribution() -> None:
    n = 1_000_000
    draws = poisson_one(np.random.default_rng(2), (n,))
    k = np.arange(8)
    pmf = poisson.pmf(k, 1.0)
    frequency = np.bincount(draws.astype(np.int64), minlength=k.size)[: k.size] / n
    assert np.all(np.abs(frequency - pmf) <= 5 * np.sqrt(pmf * (1 - pmf) / n))
    assert draws.max() >= 7 and draws.dtype == float
