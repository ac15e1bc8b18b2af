"""Risk-score evaluation: agrees with sklearn, detects miscalibration, gives honest intervals."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from models.evaluation import (
    CAPACITIES,
    at_capacity,
    auc,
    bootstrap_intervals,
    brier,
    calibration_slope_intercept,
    cluster_sampler,
    compare_labels,
    ece,
    evaluate,
    group_metrics,
    pr_auc,
    reliability_curve,
)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


def _calibrated(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Scores with a realistic low base rate and labels drawn as y ~ Bernoulli(p)."""
    rng = np.random.default_rng(seed)
    p = _sigmoid(rng.normal(-2.0, 1.0, n))
    return (rng.random(n) < p).astype(int), p


def _width(frame: pd.DataFrame, metric: str) -> float:
    return float(frame.loc[metric, "upper"] - frame.loc[metric, "lower"])


# --- discrimination -------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("levels", [None, 20, 3])
def test_auc_and_pr_auc_equal_sklearn_including_ties(seed: int, levels: int | None) -> None:
    rng = np.random.default_rng(seed)
    p = rng.random(1500)
    if levels is not None:
        p = np.floor(p * levels) / levels  # heavy ties
    y = (rng.random(p.size) < 0.1 + 0.6 * p).astype(int)
    assert abs(auc(y, p) - roc_auc_score(y, p)) < 1e-12
    assert abs(pr_auc(y, p) - average_precision_score(y, p)) < 1e-12


def test_auc_is_nan_with_one_class_and_pr_auc_without_positives() -> None:
    p = np.array([0.1, 0.4, 0.7])
    assert math.isnan(auc(np.zeros(3), p))
    assert math.isnan(auc(np.ones(3), p))
    assert math.isnan(pr_auc(np.zeros(3), p))


def test_auc_counts_tied_pairs_as_half() -> None:
    # One positive tied with one negative, one positive above everything: (1 + 1 + 0.5 + 1) / 4.
    y = np.array([1, 1, 0, 0])
    p = np.array([0.9, 0.5, 0.5, 0.1])
    assert auc(y, p) == pytest.approx(0.875, abs=1e-15)


def test_inputs_are_validated() -> None:
    with pytest.raises(ValueError, match="0 or 1"):
        auc(np.array([0, 2]), np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        brier(np.array([0, 1]), np.array([0.1, np.nan]))
    with pytest.raises(ValueError, match="equal length"):
        ece(np.array([0, 1]), np.array([0.1, 0.2, 0.3]))


# --- calibration ----------------------------------------------------------------------------


def test_brier_equals_sklearn() -> None:
    y, p = _calibrated(3000, seed=3)
    assert brier(y, p) == pytest.approx(brier_score_loss(y, p), abs=1e-15)


def test_calibration_slope_and_intercept_for_calibrated_scores() -> None:
    y, p = _calibrated(50_000, seed=4)
    slope, intercept = calibration_slope_intercept(y, p)
    assert slope == pytest.approx(1.0, abs=0.1)
    assert intercept == pytest.approx(0.0, abs=0.1)


def test_calibration_fit_is_the_maximum_likelihood_logistic_fit() -> None:
    y, p = _calibrated(5000, seed=5)
    reference = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000)
    reference.fit(_logit(p)[:, None], y)
    slope, intercept = calibration_slope_intercept(y, p)
    assert slope == pytest.approx(reference.coef_[0, 0], abs=1e-5)
    assert intercept == pytest.approx(reference.intercept_[0], abs=1e-5)


def test_calibration_slope_detects_over_and_under_confidence_and_shift() -> None:
    y, p = _calibrated(50_000, seed=6)
    over_slope, _ = calibration_slope_intercept(y, _sigmoid(2 * _logit(p)))
    under_slope, _ = calibration_slope_intercept(y, _sigmoid(0.5 * _logit(p)))
    shift_slope, shift_intercept = calibration_slope_intercept(y, _sigmoid(_logit(p) + 1))
    assert over_slope < 1
    assert over_slope == pytest.approx(0.5, abs=0.05)
    assert under_slope == pytest.approx(2.0, abs=0.2)
    assert shift_slope == pytest.approx(1.0, abs=0.1)
    assert shift_intercept == pytest.approx(-1.0, abs=0.15)


def test_calibration_is_nan_when_not_identified() -> None:
    p = np.linspace(0.05, 0.95, 20)
    separated = (p > 0.5).astype(int)
    assert all(map(math.isnan, calibration_slope_intercept(separated, p)))
    assert all(map(math.isnan, calibration_slope_intercept(np.zeros(20), p)))
    assert all(map(math.isnan, calibration_slope_intercept(separated, np.full(20, 0.3))))


def test_ece_small_for_calibrated_and_large_for_shifted_scores() -> None:
    y, p = _calibrated(50_000, seed=7)
    assert ece(y, p) < 0.01
    assert ece(y, np.clip(p + 0.2, 0, 1)) > 0.15


def test_reliability_curve_and_ece_on_a_hand_example() -> None:
    y = np.array([0, 1, 1, 1])
    p = np.array([0.05, 0.05, 0.3, 1.0])  # 0.3 opens bin [0.3, 0.4); 1.0 is in the last bin
    curve = reliability_curve(y, p)
    assert list(curve.columns) == ["bin_lower", "bin_upper", "n", "mean_predicted", "observed_rate"]
    np.testing.assert_allclose(curve["bin_lower"], [0.0, 0.3, 0.9])
    np.testing.assert_allclose(curve["bin_upper"], [0.1, 0.4, 1.0])
    assert curve["n"].tolist() == [2, 1, 1]
    np.testing.assert_allclose(curve["mean_predicted"], [0.05, 0.3, 1.0])
    np.testing.assert_allclose(curve["observed_rate"], [0.5, 1.0, 1.0])
    assert ece(y, p) == pytest.approx((2 * 0.45 + 0.7 + 0.0) / 4)
    assert ece(y, p, n_bins=1) == pytest.approx(abs(p.mean() - y.mean()))


def test_a_score_on_a_bin_edge_opens_that_bin() -> None:
    p = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    curve = reliability_curve(np.zeros(10), p)
    np.testing.assert_array_equal(curve["bin_lower"], p)
    assert curve["n"].tolist() == [1] * 10


# --- queue at capacity ----------------------------------------------------------------------


def test_at_capacity_on_a_hand_example_with_ties() -> None:
    p = np.array([0.9, 0.8, 0.8, 0.8, 0.5, 0.4, 0.3, 0.2, 0.1, 0.1])
    y = np.array([1, 0, 1, 1, 0, 1, 0, 0, 1, 0])
    # 0.3 * 10 is 3.0000000000000004 in floating point: the queue still holds 3, and of the
    # three tied 0.8 scores the first two in row order are flagged.
    top = at_capacity(y, p, 0.3)
    assert top == {
        "precision": pytest.approx(2 / 3),
        "recall": pytest.approx(2 / 5),
        "false_negative_rate": pytest.approx(3 / 5),
        "flagged": 3,
        "threshold": 0.8,
    }
    assert at_capacity(y, p, 0.25)["flagged"] == 3  # ceil(2.5)
    first = at_capacity(y, p, 0.05)
    assert (first["flagged"], first["precision"], first["recall"]) == (1, 1.0, 0.2)
    assert first["threshold"] == 0.9
    everyone = at_capacity(y, p, 1.0)
    assert (everyone["flagged"], everyone["precision"], everyone["recall"]) == (10, 0.5, 1.0)
    assert everyone["threshold"] == 0.1


def test_at_capacity_breaks_ties_by_row_order() -> None:
    p = np.array([0.8, 0.8, 0.8, 0.1])
    assert at_capacity(np.array([0, 1, 1, 0]), p, 0.5)["precision"] == 0.5
    assert at_capacity(np.array([1, 1, 0, 0]), p, 0.5)["precision"] == 1.0


def test_at_capacity_rejects_impossible_capacities() -> None:
    y, p = np.array([0, 1]), np.array([0.2, 0.7])
    for capacity in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="capacity"):
            at_capacity(y, p, capacity)


def test_evaluate_returns_flat_metrics_consistent_with_the_parts() -> None:
    y, p = _calibrated(4000, seed=8)
    result = evaluate(y, p)
    assert list(result) == [
        "auc",
        "pr_auc",
        "brier",
        "calibration_slope",
        "calibration_intercept",
        "ece",
        "base_rate",
        "n",
        *(f"{m}_at_{c}" for c in (5, 10, 20) for m in ("precision", "recall", "fnr")),
    ]
    assert result["auc"] == auc(y, p)
    assert result["pr_auc"] == pr_auc(y, p)
    assert (result["calibration_slope"], result["calibration_intercept"]) == (
        calibration_slope_intercept(y, p)
    )
    assert result["n"] == 4000
    assert result["base_rate"] == pytest.approx(y.mean())
    for c in CAPACITIES:
        queue = at_capacity(y, p, c)
        label = int(c * 100)
        assert result[f"precision_at_{label}"] == queue["precision"]
        assert result[f"fnr_at_{label}"] == pytest.approx(1 - result[f"recall_at_{label}"])
    assert "precision_at_29" in evaluate(y, p, capacities=(0.29,))  # not 28 from int(28.99…)


# --- bootstrap ------------------------------------------------------------------------------


def test_bootstrap_intervals_contain_the_estimate_and_are_deterministic() -> None:
    y, p = _calibrated(3000, seed=9)
    first = bootstrap_intervals(y, p, n_boot=100, seed=11)
    assert list(first.columns) == ["estimate", "lower", "upper"]
    assert list(first.index) == list(evaluate(y, p))
    pd.testing.assert_series_equal(first["estimate"], pd.Series(evaluate(y, p)), check_names=False)
    # Not ECE: resampling noise inflates it, so on well-calibrated data its percentile interval
    # can lie wholly above the estimate (about 1 seed in 5); that is the method, not a bug.
    inner = first.drop("ece")
    assert (inner["lower"] <= inner["estimate"]).all()
    assert (inner["estimate"] <= inner["upper"]).all()
    assert (first["lower"] < first["upper"]).drop("n").all()
    pd.testing.assert_frame_equal(first, bootstrap_intervals(y, p, n_boot=100, seed=11))
    assert not first.equals(bootstrap_intervals(y, p, n_boot=100, seed=12))


def test_bootstrap_intervals_are_wider_with_fewer_rows() -> None:
    y, p = _calibrated(6000, seed=10)
    full = bootstrap_intervals(y, p, n_boot=100)
    small = bootstrap_intervals(y[:600], p[:600], n_boot=100)
    for metric in ("auc", "brier", "base_rate", "precision_at_10", "calibration_slope"):
        assert _width(small, metric) > 2 * _width(full, metric)


def test_level_controls_interval_width() -> None:
    y, p = _calibrated(2000, seed=13)
    wide = bootstrap_intervals(y, p, n_boot=100, level=0.95)
    narrow = bootstrap_intervals(y, p, n_boot=100, level=0.5)
    assert _width(narrow, "auc") < _width(wide, "auc")


def test_cluster_bootstrap_is_wider_when_rows_within_a_group_are_copies() -> None:
    y, p = _calibrated(500, seed=14)
    household = np.repeat(np.arange(500), 5)  # each row duplicated 5x as one household
    y5, p5 = np.repeat(y, 5), np.repeat(p, 5)
    rows = bootstrap_intervals(y5, p5, n_boot=150)
    clusters = bootstrap_intervals(y5, p5, groups=household, n_boot=150)
    for metric in ("auc", "brier", "base_rate", "precision_at_10"):
        # Copies carry no new information: ~sqrt(5) = 2.2 times wider.
        assert _width(clusters, metric) > 1.5 * _width(rows, metric)
    # The cluster bootstrap of copies behaves like the row bootstrap of the originals.
    originals = bootstrap_intervals(y, p, n_boot=150)
    for metric in ("auc", "brier", "base_rate"):
        assert _width(clusters, metric) == pytest.approx(_width(originals, metric), rel=0.35)


def test_cluster_bootstrap_with_singleton_groups_is_the_row_bootstrap() -> None:
    y, p = _calibrated(800, seed=15)
    rows = bootstrap_intervals(y, p, n_boot=30, seed=3)
    singletons = bootstrap_intervals(y, p, groups=np.arange(800), n_boot=30, seed=3)
    pd.testing.assert_frame_equal(rows, singletons)


def test_cluster_sampler_draws_whole_groups() -> None:
    groups = np.array(["h3", "h1", "h3", "h2", "h1", "h3", None, "h4"], dtype=object)
    rows_of = {
        key: frozenset(np.flatnonzero([g == key for g in groups]))
        for key in ("h1", "h2", "h3", "h4", None)
    }
    draw = cluster_sampler(groups)
    rng = np.random.default_rng(0)
    for _ in range(50):
        idx = draw(rng)
        counts = np.bincount(idx, minlength=groups.size)
        for members in rows_of.values():
            # every row of a group is drawn equally often: the group was resampled whole
            assert len({counts[i] for i in members}) == 1


def test_bootstrap_rejects_misaligned_groups() -> None:
    y, p = _calibrated(100, seed=16)
    with pytest.raises(ValueError, match="one entry per row"):
        bootstrap_intervals(y, p, groups=np.arange(99), n_boot=5)


# --- selective labels and groups -----------------------------------------------------------


def test_compare_labels_shows_the_selective_labels_gap() -> None:
    rng = np.random.default_rng(17)
    p = rng.beta(1.5, 8, 20_000)
    truth = (rng.random(p.size) < p).astype(int)
    # Only referrals scored above the median are investigated; harm elsewhere is never recorded.
    observed = truth * (p >= np.median(p))
    table = compare_labels(observed, truth, p)
    assert list(table.columns) == ["observed", "truth", "gap"]
    assert list(table.index) == list(evaluate(truth, p))
    np.testing.assert_allclose(table["gap"], table["observed"] - table["truth"])
    assert table.loc["base_rate", "gap"] < 0
    assert table.loc["auc", "gap"] > 0  # the model looks better than it is
    assert table.loc["recall_at_10", "gap"] > 0
    assert table.loc["n", "gap"] == 0
    assert table.loc["precision_at_10", "gap"] == 0  # all flagged rows are investigated
    capped = compare_labels(observed, truth, p, capacities=(0.5,))
    assert "recall_at_50" in capped.index


def test_group_metrics_suppresses_small_groups_but_lists_them() -> None:
    rng = np.random.default_rng(18)
    labels = ["a"] * 300 + ["b"] * 200 + ["c"] * 10 + [None] * 5
    groups = pd.Series(labels, name="ethnicity")
    p = rng.random(len(labels)) * 0.5
    p[300:500] += 0.4  # group b scores higher
    y = (rng.random(len(labels)) < p).astype(int)
    table = group_metrics(y, p, groups, capacity=0.10, min_size=50)
    assert table.index.name == "ethnicity"
    assert len(table) == 4  # nothing silently dropped, missing values included
    assert table["n"].tolist() == [300, 200, 10, 5]
    assert table["suppressed"].tolist() == [False, False, True, True]
    metrics = ["base_rate", "mean_score", "auc", "selection_rate", "calibration_gap"]
    assert table.loc[table["suppressed"], metrics].isna().all().all()
    a = table.loc["a"]
    assert a["base_rate"] == pytest.approx(y[:300].mean())
    assert a["mean_score"] == pytest.approx(p[:300].mean())
    assert a["auc"] == pytest.approx(auc(y[:300], p[:300]))
    assert a["calibration_gap"] == pytest.approx(a["mean_score"] - a["base_rate"])
    assert table.loc["b", "selection_rate"] > table.loc["a", "selection_rate"]
    threshold = at_capacity(y, p, 0.10)["threshold"]
    assert a["selection_rate"] == pytest.approx((p[:300] >= threshold).mean())


def test_group_metrics_selects_ties_at_the_cut_together() -> None:
    p = np.full(120, 0.3)
    y = np.tile([0, 1], 60)
    groups = pd.Series(["x"] * 60 + ["y"] * 60)
    table = group_metrics(y, p, groups, capacity=0.10)
    # Equal scores are treated alike whatever the row order.
    assert table["selection_rate"].tolist() == [1.0, 1.0]
