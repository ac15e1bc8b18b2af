"""Fairness audit: planted disparities, suppression of small groups, reference groups."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from models.fairness import (
    DISPARITY,
    INSUFFICIENT,
    WITHIN,
    AuditConfig,
    ReferenceGroups,
    audit,
)


def test_planted_disparity_equal_groups_and_small_groups() -> None:
    rng = np.random.default_rng(0)
    n = 40_000
    group = rng.choice(["a", "b", "c"], n, p=[0.5, 0.49, 0.01])
    # Group "b" scores 0.15 higher: it dominates the top of the queue.
    p = np.clip(rng.beta(2, 6, n) + 0.15 * (group == "b"), 0, 1)
    y = (rng.random(n) < p).astype(float)
    sex = rng.choice(["f", "m"], n)
    attributes = pd.DataFrame({"ethnicity": group, "sex": sex})
    config = AuditConfig(
        attributes=("ethnicity", "sex"), intersections=(), n_boot=200, min_size=500
    )
    result = audit(y, p, attributes, config=config)
    table = result.comparisons.set_index(["grouping", "group", "metric"])
    assert table.loc[("ethnicity", "b", "selection_rate_at_10"), "verdict"] == DISPARITY
    assert table.loc[("sex", "m", "selection_rate_at_10"), "verdict"] == WITHIN
    assert table.loc[("sex", "m", "mean_score"), "verdict"] == WITHIN
    # "c" has about 400 referrals: suppressed, listed, never shown or tested.
    assert list(result.suppressed["group"]) == ["c"]
    assert result.suppressed.iloc[0]["reason"].startswith("fewer than 500")
    assert "c" not in set(result.metrics["group"]) | set(result.comparisons["group"])
    assert "c" not in set(result.ranking["group"])
    assert result.groups["n"][result.groups["grouping"] == "ethnicity"].sum() == n
    # Every comparison carries a verdict and a corrected p-value at least the raw one.
    assert set(result.comparisons["verdict"]) <= {WITHIN, DISPARITY, INSUFFICIENT}
    ok = result.comparisons["p_value"].notna()
    assert (result.comparisons.loc[ok, "p_adjusted"] >= result.comparisons.loc[ok, "p_value"]).all()


def test_small_but_shown_group_gives_insufficient_evidence() -> None:
    rng = np.random.default_rng(1)
    n = 20_000
    group = rng.choice(["a", "b"], n, p=[0.997, 0.003])
    p = rng.beta(2, 6, n)
    y = (rng.random(n) < p).astype(float)
    config = AuditConfig(attributes=("ethnicity",), intersections=(), n_boot=200, min_size=30)
    result = audit(y, p, pd.DataFrame({"ethnicity": group}), config=config)
    table = result.comparisons.set_index(["group", "metric"])
    assert table.loc[("b", "selection_rate_at_10"), "verdict"] == INSUFFICIENT


def test_reference_group_default_explicit_and_unknown(small_audit) -> None:
    y, p, attributes, result = small_audit
    assert result.references["ethnicity"] == {
        "group": "white",
        "rule": "largest",
        "version": "reference/1-largest",
        "suppressed": False,
    }
    config = AuditConfig(
        attributes=("ethnicity",),
        intersections=(),
        n_boot=20,
        references=ReferenceGroups(version="ref/test-2", groups={"ethnicity": "asian"}),
    )
    explicit = audit(y, p, attributes, config=config)
    assert explicit.references["ethnicity"]["group"] == "asian"
    assert explicit.references["ethnicity"]["rule"] == "explicit"
    assert explicit.references["ethnicity"]["version"] == "ref/test-2"
    assert set(explicit.comparisons["reference"]) == {"asian"}
    assert "asian" not in set(explicit.comparisons["group"])
    row = explicit.comparisons.query("group == 'black' and metric == 'mean_score'").iloc[0]
    assert row["difference"] == pytest.approx(row["estimate"] - row["reference_estimate"])
    bad = AuditConfig(references=ReferenceGroups(groups={"ethnicity": "nobody"}), n_boot=5)
    with pytest.raises(ValueError, match="nobody"):
        audit(y, p, attributes, config=bad)


def test_quarter_view_finds_a_planted_change_and_not_a_stable_rate() -> None:
    rng = np.random.default_rng(5)
    n = 12_000
    group = rng.choice(["a", "b"], n)
    quarter = rng.choice(["2026-Q1", "2026-Q2"], n)
    # Group "a" scores lower in the second quarter: its share of the top 10% falls.
    p = np.clip(rng.beta(2, 6, n) - 0.08 * ((group == "a") & (quarter == "2026-Q2")), 0, 1)
    y = (rng.random(n) < p).astype(float)
    config = AuditConfig(attributes=("ethnicity",), intersections=(), n_boot=20)
    result = audit(y, p, pd.DataFrame({"ethnicity": group}), periods=quarter, config=config)
    rows = result.by_quarter.query("metric == 'selection_rate_at_10' and grouping == 'ethnicity'")
    assert len(rows) == 4
    assert (
        (rows["wilson_lower"] <= rows["estimate"]) & (rows["estimate"] <= rows["wilson_upper"])
    ).all()
    change = result.quarter_change.set_index(["grouping", "group", "metric"])
    a = change.loc[("ethnicity", "a", "selection_rate_at_10")]
    b = change.loc[("ethnicity", "b", "selection_rate_at_10")]
    assert a["changed"] and a["difference"] < -0.03 and a["p_adjusted"] < 1e-6
    assert not b["changed"]
    from scipy.stats import chi2_contingency

    counts = rows[rows["group"] == "a"][["numerator", "denominator"]].to_numpy()
    table = np.column_stack([counts[:, 0], counts[:, 1] - counts[:, 0]])
    assert a["p_value"] == pytest.approx(chi2_contingency(table, correction=False).pvalue, rel=1e-6)


def test_quarter_view_tests_auc_and_calibration_for_change_with_bootstrap_intervals() -> None:
    rng = np.random.default_rng(9)
    n = 15_000
    group = rng.choice(["a", "b"], n)
    quarter = rng.choice(["2026-Q1", "2026-Q2", "2026-Q3"], n)
    risk = rng.beta(2, 5, n)
    y = (rng.random(n) < risk).astype(float)
    p = risk.copy()
    # In the last quarter group "a" is ranked at random (AUC falls, calibration in the large
    # holds) and group "b" is over-scored by 0.1 (calibration moves, ranking holds).
    late_a = np.flatnonzero((group == "a") & (quarter == "2026-Q3"))
    p[late_a] = rng.permutation(p[late_a])
    late_b = (group == "b") & (quarter == "2026-Q3")
    p[late_b] = np.clip(p[late_b] + 0.1, 0, 1)
    config = AuditConfig(attributes=("ethnicity",), intersections=(), n_boot=200)
    result = audit(y, p, pd.DataFrame({"ethnicity": group}), periods=quarter, config=config)
    quarters = result.by_quarter
    for metric in ("auc", "calibration_gap", "mean_score", "fnr_at_10", "fpr_at_10"):
        rows = quarters.query("metric == @metric")
        assert set(rows["grouping"]) == {"overall", "ethnicity"}
        assert len(rows) == 9, metric  # overall and two groups, three quarters each
        inside = (rows["lower"] <= rows["estimate"] + 1e-12) & (
            rows["estimate"] <= rows["upper"] + 1e-12
        )
        assert inside.all(), metric
    # Each quarter's exact figures are the whole-data figures of that group and quarter.
    cell = (group == "a") & (quarter == "2026-Q1")
    row = quarters.query("group == 'a' and quarter == '2026-Q1'").set_index("metric")
    assert row.loc["auc", "estimate"] == pytest.approx(roc_auc_score(y[cell], p[cell]))
    assert row.loc["calibration_gap", "estimate"] == pytest.approx(p[cell].mean() - y[cell].mean())
    assert row.loc["mean_score", "estimate"] == pytest.approx(p[cell].mean())
    change = result.quarter_change.set_index(["grouping", "group", "metric"])
    # The planted changes are found beyond doubt; the unchanged ones are not (chance alone
    # may bring them near 0.05, so the bar for "not found" is 0.001).
    p_value = change["p_adjusted"]
    assert change.loc[("ethnicity", "a", "auc"), "changed"]
    assert change.loc[("ethnicity", "a", "auc"), "difference"] < -0.1
    assert p_value[("ethnicity", "a", "auc")] < 1e-10 < 1e-3 < p_value[("ethnicity", "b", "auc")]
    assert change.loc[("ethnicity", "b", "calibration_gap"), "changed"]
    assert p_value[("ethnicity", "b", "calibration_gap")] < 1e-10
    assert p_value[("ethnicity", "a", "calibration_gap")] > 1e-3
    assert change.loc[("ethnicity", "a", "auc"), "method"] == "bootstrap_wald"
    assert change.loc[("ethnicity", "a", "fnr_at_10"), "method"] == "chi_square"
    assert change.loc[("ethnicity", "a", "auc"), "df"] == 2


def test_quarter_view_takes_a_group_absent_from_a_quarter() -> None:
    # Group "c" is large overall but has no referral in the first quarter (as a new referrer
    # type or a band that empties for a quarter): its figures there are undefined, not an error.
    rng = np.random.default_rng(8)
    n = 3_000
    quarter = rng.choice(["2026-Q1", "2026-Q2"], n)
    group = np.where(quarter == "2026-Q1", rng.choice(["a", "b"], n), rng.choice(["a", "c"], n))
    p = rng.beta(2, 6, n)
    y = (rng.random(n) < p).astype(float)
    config = AuditConfig(attributes=("ethnicity",), intersections=(), n_boot=20)
    result = audit(y, p, pd.DataFrame({"ethnicity": group}), periods=quarter, config=config)
    auc_c = result.by_quarter.query("metric == 'auc' and group == 'c'").set_index("quarter")
    assert np.isnan(auc_c.loc["2026-Q1", "estimate"])
    assert 0.5 < auc_c.loc["2026-Q2", "estimate"] < 1
