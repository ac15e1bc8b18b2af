"""Fairness statistics: Wilson intervals, Holm and BH corrections, verdicts, Fisher's test."""

from __future__ import annotations

import numpy as np
import pytest

from models.fairness import (
    DISPARITY,
    INSUFFICIENT,
    WITHIN,
    benjamini_hochberg,
    holm,
    verdicts,
    wilson_interval,
)


def test_wilson_interval_matches_known_values() -> None:
    lower, upper = wilson_interval(np.array([5, 0, 10]), np.array([10, 10, 10]))
    np.testing.assert_allclose(lower, [0.236593, 0.0, 0.722467], atol=1e-6)
    np.testing.assert_allclose(upper, [0.763407, 0.277533, 1.0], atol=1e-6)
    lower, upper = wilson_interval(np.array([0]), np.array([0]))
    assert np.isnan(lower[0]) and np.isnan(upper[0])


def test_holm_and_benjamini_hochberg() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.005, np.nan])
    np.testing.assert_allclose(holm(p)[:4], [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(benjamini_hochberg(p)[:4], [0.02, 0.04, 0.04, 0.02])
    assert np.isnan(holm(p)[4]) and np.isnan(benjamini_hochberg(p)[4])
    assert holm(np.array([0.9, 0.8]))[0] == 1.0


def test_verdicts_follow_the_documented_rule() -> None:
    estimate = np.array([0.10, 0.01, 0.10, 0.02, np.nan])
    lower = np.array([0.07, -0.02, -0.01, -0.08, np.nan])
    upper = np.array([0.13, 0.04, 0.21, 0.12, np.nan])
    p_adj = np.array([0.001, 0.4, 0.2, 0.6, np.nan])
    out = verdicts(estimate, lower, upper, p_adj, 0.05)
    assert list(out) == [DISPARITY, WITHIN, INSUFFICIENT, INSUFFICIENT, INSUFFICIENT]
    # Significant but small: not a disparity, and within tolerance only if the interval is.
    assert verdicts(np.array([0.02]), np.array([0.01]), np.array([0.03]), np.array([1e-6]), 0.05)[
        0
    ] == (WITHIN)


def test_fisher_exact_matches_scipy_and_small_counts_use_it() -> None:
    from scipy.stats import fisher_exact

    from models.fairness import fisher_exact_p

    for k1, n1, k2, n2 in [(4, 5, 3, 23), (0, 7, 9, 12), (2, 2, 40, 90), (5, 50, 5, 50)]:
        expected = fisher_exact([[k1, n1 - k1], [k2, n2 - k2]]).pvalue
        assert fisher_exact_p(k1, n1, k2, n2) == pytest.approx(expected, rel=1e-9, abs=1e-12)
