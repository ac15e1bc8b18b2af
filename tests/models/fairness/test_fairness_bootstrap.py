"""Fairness bootstrap: stratified spread matches the binomial; households widen intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.fairness import AuditConfig, audit


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
